"""serve.py: ONNX Runtime in the PyTorch model's place: the same logits, the same tags through predict.py, an export
made once and made again when the weights change, one-line errors."""
import os
import subprocess
import sys

import pytest
import torch

from cli import DataError
from common import CONLL, ROOT, write_tiny_conll
from data import read_conll
from model import default_model_dir, from_pretrained, load_tokenizer, save_pretrained
from student import make_student
from predict import collate, label_texts, tag_words

pytest.importorskip("onnxruntime", reason="pip install onnx onnxruntime")
pytest.importorskip("onnx", reason="pip install onnx onnxruntime")
from serve import onnx_model, onnx_paths  # noqa: E402

LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def model_folder(folder, head, student=""):
    """MiniLM's pretrained encoder with a fresh head (and, with `student`, a student made from it), saved."""
    torch.manual_seed(0)
    model = from_pretrained(default_model_dir(), id2label=LABELS, head=head, verbose=False)
    if student:
        model = make_student(model, student)
    save_pretrained(model.eval(), str(folder), tokenizer_dir=default_model_dir())
    return model.eval()


def ragged_batch(seed, sizes=(1, 5, 17, 40)):
    """Ids and mask of sentences of different lengths padded to the longest: batch and sequence not the export's."""
    g = torch.Generator().manual_seed(seed)
    pieces = [[101] + torch.randint(1000, 29000, (n,), generator=g).tolist() + [102] for n in sizes]
    examples = [{"ids": ids, "labels": [-100] * len(ids)} for ids in pieces]
    ids, mask, _ = collate(examples, "cpu")
    return ids, mask


@pytest.mark.parametrize("head,student", [("token", ""), ("sequence", ""), ("token", "L2-H192"),
                                          ("sequence", "L2-H384")])
def test_onnx_logits_are_the_models(tmp_path, head, student):
    model = model_folder(tmp_path, head, student)
    served = onnx_model(model, str(tmp_path))
    for seed, sizes in ((0, (1, 5, 17, 40)), (1, (3,)), (2, (60, 2, 2, 9, 30, 11, 7))):
        ids, mask = ragged_batch(seed, sizes)
        with torch.no_grad():
            ours = model(ids, mask)[0]
        theirs = served(ids, mask)[0]
        assert theirs.shape == ours.shape
        real = mask.bool() if head == "token" else slice(None)  # padding's logits are never read
        assert (theirs[real] - ours[real]).abs().max() < 1e-4
    if head == "sequence":  # and predict.py's path over texts gives the same labels and distributions
        texts = [{"text": t} for t in ("Markets fell in London.", "The match ended in a draw after extra time.")]
        tok = load_tokenizer(str(tmp_path))
        a, b = (label_texts(m, tok, texts, torch.device("cpu"), soft=True, bf16=False) for m in (model, served))
        assert [r["label"] for r in a] == [r["label"] for r in b]
        assert all(abs(r["probs"][k] - s["probs"][k]) < 1e-4 for r, s in zip(a, b) for k in r["probs"])


def test_export_is_reused_while_the_weights_are_unchanged(tmp_path):
    model = model_folder(tmp_path, "sequence", "L2-H192")
    fp32, q8 = onnx_paths(str(tmp_path))
    onnx_model(model, str(tmp_path), int8=True)
    first = {p: os.stat(p).st_mtime_ns for p in (fp32, q8)}
    again = onnx_model(model, str(tmp_path), int8=True)
    assert {p: os.stat(p).st_mtime_ns for p in (fp32, q8)} == first  # neither made again
    ids, mask = ragged_batch(0)
    before = again(ids, mask)[0]
    # new weights in the same folder: both files are made again from them
    with torch.no_grad():
        model.classifier.weight.mul_(-1)
    save_pretrained(model, str(tmp_path), tokenizer_dir=default_model_dir())
    fresh = onnx_model(from_pretrained(str(tmp_path), verbose=False), str(tmp_path), int8=True)
    assert all(os.stat(p).st_mtime_ns != first[p] for p in (fp32, q8))
    with torch.no_grad():
        ours = model(ids, mask)[0]
    assert not torch.allclose(fresh(ids, mask)[0], before)
    fp = onnx_model(model, str(tmp_path))  # the fp32 file, reused, has the new weights
    assert (fp(ids, mask)[0] - ours).abs().max() < 1e-4


@pytest.fixture(scope="module")
def ner_model(tmp_path_factory):
    """A smoke NER model: a few steps on tiny CoNLL-2003, so it tags entities and has near ties as real models do."""
    from train import Config, train
    d = tmp_path_factory.mktemp("ner")
    write_tiny_conll(str(d), n_train=120, n_eval=20)
    metrics = train(Config(data_dir=str(d), out_dir=str(d / "out"), max_steps=30, lr=3e-4, batch_size=8, progress=0,
                           bf16=0))
    assert metrics["test"]["f1"] > 0.05
    return str(d / "out" / "model")


def predict(*args, pre=""):
    code = f"{pre}import runpy, sys; sys.argv = ['predict.py', *sys.argv[1:]]; runpy.run_path('predict.py', " \
           "run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_onnx_tags_conll_test_as_torch_fp32_does(ner_model, tmp_path):
    """All of CoNLL-2003 test (3,453 sentences): fp32 ONNX Runtime gives PyTorch fp32's tags, every one; int8 ONNX
    stays close; tag_words (annotate.py's labeller) tags as predict.py does."""
    test = os.path.join(CONLL, "test.txt")
    for name, flags in (("torch", ["--bf16", 0]), ("onnx", ["--runtime", "onnx"]),
                        ("onnx8", ["--runtime", "onnx", "--int8", 1])):
        r = predict("--model_dir", ner_model, "--input", test, "--out", tmp_path / f"{name}.conll", *flags)
        assert r.returncode == 0, r.stderr
    torch32, onnx32, onnx8 = (read_conll(tmp_path / f"{n}.conll") for n in ("torch", "onnx", "onnx8"))
    assert len(torch32) == len(read_conll(test)) and onnx32 == torch32
    same = [a == b for (_, t32), (_, t8) in zip(torch32, onnx8) for a, b in zip(t32, t8)]
    assert 0.95 < sum(same) / len(same)  # quantized, and close
    assert tag_words(ner_model, [w for w, _ in torch32[:50]], runtime="onnx") == [t for _, t in onnx32[:50]]


def test_without_onnxruntime_one_line_says_what_to_install(ner_model):
    r = predict("--model_dir", ner_model, "--format", "text", "--runtime", "onnx",
                pre="import sys; sys.modules['onnxruntime'] = None; ")  # as if it were not installed
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "pip install onnx onnxruntime" in r.stderr
    r = predict("--model_dir", ner_model, "--format", "text", "--runtime", "onnx", "--device", "cuda")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "drop --device cuda" in r.stderr


def test_a_model_that_will_not_export_is_one_line(tmp_path, monkeypatch):
    model = model_folder(tmp_path, "token", "L2-H192")

    def refuse(*args, **kwargs):  # as the exporter fails on an operator it has no ONNX form of
        raise RuntimeError("Exporting the operator 'aten::frobnicate' to ONNX opset version 17 is not supported.\n"
                           "Please feel free to request support.")
    monkeypatch.setattr(torch.onnx, "export", refuse)
    with pytest.raises(DataError) as e:
        onnx_model(model, str(tmp_path))
    assert "will not export to ONNX" in str(e.value) and "frobnicate" in str(e.value) and "\n" not in str(e.value)
    assert not [f for f in os.listdir(tmp_path) if "onnx" in f]  # no half-written file left behind
