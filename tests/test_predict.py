"""predict.py: the same predictions train.py scored, every input format, hostile raw text, int8, clear refusals."""
import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from common import ROOT, write_tiny_conll
from data import read_conll
from eval import span_f1
from serve import quantize_int8
from train import Config, train


@pytest.fixture(scope="module")
def ner_model(tmp_path_factory):
    """A smoke NER model (a few steps on tiny CoNLL-2003) and the folder of its data."""
    d = tmp_path_factory.mktemp("ner")
    write_tiny_conll(str(d), n_train=120, n_eval=60)
    # evaluated in train.py's default batches, predict.py's too: in bf16 a near tie can flip with a batch's padding
    metrics = train(Config(data_dir=str(d), out_dir=str(d / "out"), max_steps=30, lr=3e-4, batch_size=8, progress=0))
    assert metrics["test"]["f1"] > 0.1  # it tags entities, so agreeing with train.py's predictions means something
    return d, str(d / "out" / "model"), metrics


@pytest.fixture(scope="module")
def context_model(tmp_path_factory):
    """A smoke NER model trained with --context 16 on tiny CoNLL-2003 kept in its documents, and its data folder."""
    d = tmp_path_factory.mktemp("context")
    write_tiny_conll(str(d), n_train=120, n_eval=60, docs=True)
    metrics = train(Config(data_dir=str(d), out_dir=str(d / "out"), max_steps=30, lr=3e-4, batch_size=8, progress=0,
                           context=16))
    assert metrics["test"]["f1"] > 0.1
    return d, str(d / "out" / "model"), metrics


def predict(*args, stdin=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"), *map(str, args)], input=stdin,
                          capture_output=True, text=True, cwd=ROOT)


@pytest.mark.slow
def test_conll_predictions_are_what_train_scored(ner_model, tmp_path):
    d, model, metrics = ner_model
    r = predict("--model_dir", model, "--input", d / "test.txt", "--out", tmp_path / "pred.conll")
    assert r.returncode == 0, r.stderr
    ours = read_conll(tmp_path / "pred.conll")
    assert ours == read_conll(d / "out" / "test_predictions.conll")
    gold = read_conll(d / "test.txt")
    assert span_f1([t for _, t in gold], [t for _, t in ours]) == metrics["test"]
    assert read_conll(tmp_path / "pred.conll", column=1) == gold  # the input's columns are kept


@pytest.mark.slow
def test_predictions_with_context_are_what_train_scored(context_model, tmp_path):
    d, model, metrics = context_model
    assert metrics["config"]["context"] == 16
    assert len(set(read_conll(d / "test.txt", docs=True)[1])) > 1  # more than one document to keep apart
    r = predict("--model_dir", model, "--input", d / "test.txt", "--context", 16, "--out", tmp_path / "pred.conll")
    assert r.returncode == 0, r.stderr
    ours = read_conll(tmp_path / "pred.conll")
    assert ours == read_conll(d / "out" / "test_predictions.conll")
    gold = read_conll(d / "test.txt")
    assert span_f1([t for _, t in gold], [t for _, t in ours]) == metrics["test"]
    assert read_conll(tmp_path / "pred.conll", docs=True)[1] == read_conll(d / "test.txt", docs=True)[1]


@pytest.mark.slow
def test_a_model_reads_with_the_context_it_was_trained_with(context_model, ner_model, tmp_path):
    """train.py writes --context into the model's config.json (only where it is not 0: a model trained without context
    is saved as before); predict.py reads with it unless told otherwise, and then says so on standard error."""
    d, model, _ = context_model
    with open(os.path.join(model, "config.json")) as f:
        assert json.load(f)["context"] == 16
    with open(os.path.join(ner_model[1], "config.json")) as f:
        assert "context" not in json.load(f)
    r = predict("--model_dir", model, "--input", d / "test.txt", "--out", tmp_path / "pred.conll")
    assert r.returncode == 0, r.stderr
    assert "note:" not in r.stderr
    assert read_conll(tmp_path / "pred.conll") == read_conll(d / "out" / "test_predictions.conll")
    r = predict("--model_dir", model, "--input", d / "test.txt", "--context", 0, "--out", tmp_path / "alone.conll")
    assert r.returncode == 0, r.stderr
    assert f"note: {model} was trained with --context 16; it reads with --context 0 here" in r.stderr
    assert "-DOCSTART-" not in (tmp_path / "alone.conll").read_text()  # read alone, written without documents


@pytest.mark.slow
def test_text_with_context_reads_its_documents_apart(context_model, tmp_path):
    """Plain text: a blank line ends a document; each document labels as it would alone (in fp32, where the padding
    of the batch a sentence shares cannot flip a near tie)."""
    _, model, _ = context_model
    one, two = "Angela Merkel met Airbus in Toulouse. She flew home.\n", "Merkel won. Toulouse lost.\n"
    runs = {name: predict("--model_dir", model, "--format", "text", "--context", 16, "--bf16", 0, stdin=text)
            for name, text in (("both", one + "\n" + two), ("one", one), ("two", two))}
    assert all(r.returncode == 0 for r in runs.values()), runs["both"].stderr
    assert runs["both"].stdout == runs["one"].stdout + runs["two"].stdout
    assert runs["both"].stdout.count("-DOCSTART- -X- -X- O\n\n") == 2


@pytest.mark.slow
def test_stdin_text_prints_the_tagged_tokens(ner_model):
    _, model, _ = ner_model
    r = predict("--model_dir", model, "--format", "text", stdin="Angela Merkel met Airbus in Toulouse.\n")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line]
    assert [w for w, _ in rows] == ["Angela", "Merkel", "met", "Airbus", "in", "Toulouse", "."]
    assert all(t == "O" or t[:2] in ("B-", "I-") for _, t in rows)


@pytest.mark.slow
def test_hostile_raw_text_labels_every_token(ner_model, tmp_path):
    _, model, _ = ner_model
    long_line = " ".join(f"word{i} Paris" for i in range(1500))  # 3,000 words, no full stop
    text = ("\ufeffFirst line with a BOM.\n\n\n\u200b\nEmoji 😀 in Berlin 🇩🇪 today.\n"
            "\tTabs\tand  spaces\there.\n" + long_line + "\n\n")
    (tmp_path / "hostile.txt").write_text(text, encoding="utf-8")
    r = predict("--model_dir", model, "--format", "text", "--input", tmp_path / "hostile.txt",
                "--out", tmp_path / "out.conll", "--soft")
    assert r.returncode == 0, r.stderr
    sents, soft = read_conll(tmp_path / "out.conll", with_probs=True)
    words = [w for ws, _ in sents for w in ws]
    assert words[:5] == ["First", "line", "with", "a", "BOM"] and "\ufeff" not in "".join(words)
    assert "😀" in words and "Tabs" in words and sum(w.startswith("word") for w in words) == 1500
    assert max(len(ws) for ws, _ in sents) >= 3000  # one sentence, windowed, every word tagged
    assert all(len(t) == len(ws) for ws, t in sents) and all(s is not None for s in soft)


@pytest.mark.slow
def test_soft_output_reads_back_as_soft_labels(ner_model, tmp_path):
    d, model, _ = ner_model
    r = predict("--model_dir", model, "--input", d / "valid.txt", "--out", tmp_path / "soft.conll", "--soft")
    assert r.returncode == 0, r.stderr
    sents, soft = read_conll(tmp_path / "soft.conll", with_probs=True)
    labels = json.loads(open(os.path.join(model, "config.json")).read())["id2label"]
    assert all(set(p) == set(labels.values()) and abs(sum(p.values()) - 1) < 1e-2 for s in soft for p in s)


@pytest.mark.parametrize("args, stdin, why", [
    (["--format", "jsonl"], "{}", "is a token classifier (NER): use --format conll or text"),
    (["--format", "text"], "\n\n  \n", "standard input: no sentences"),
    (["--format", "text"], None, "not UTF-8"),
    (["--input", "missing.conll"], None, "missing.conll: No such file or directory"),
    (["--format", "text", "--int8", "1", "--device", "cuda"], "Hello.", "--int8 1 runs on the CPU"),
])
@pytest.mark.slow
def test_bad_input_is_one_line(ner_model, tmp_path, args, stdin, why):
    _, model, _ = ner_model
    if stdin is None and "--input" not in args:
        (tmp_path / "latin1.txt").write_bytes("Caf\xe9 in Paris.".encode("latin-1"))
        args = args + ["--input", str(tmp_path / "latin1.txt")]
    r = predict("--model_dir", model, *args, stdin=stdin)
    assert r.returncode != 0 and why in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_a_folder_that_is_not_a_bert_folder_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    r = predict("--model_dir", tmp_path, "--format", "text", stdin="Hello.")
    assert r.returncode != 0 and "model_type 'gpt2'" in r.stderr and "Traceback" not in r.stderr
    r = predict("--model_dir", tmp_path / "nowhere", "--format", "text", stdin="Hello.")
    assert r.returncode != 0 and "no such model folder" in r.stderr and "Traceback" not in r.stderr


def test_int8_scales_each_row_and_leaves_the_model_alone():
    """One row 100x the others: with a scale per row the others keep their precision; with one scale per matrix
    (PyTorch's default, the oracle here) they fall to a few int8 steps."""
    from torch.ao.quantization import quantize_dynamic
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 8)).eval()
    with torch.no_grad():
        model[0].weight[0] *= 100
    before = model[0].weight.clone()
    q = quantize_int8(model)
    assert isinstance(model[0], torch.nn.Linear) and torch.equal(model[0].weight, before)  # a copy is quantized
    w = q[0].weight()
    assert w.dtype == torch.qint8 and w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
    assert w.q_per_channel_scales().shape == (8,)
    x = torch.randn(32, 64)
    with torch.no_grad():
        ref = model(x)[:, 1:]
        err = {name: float((m(x)[:, 1:] - ref).abs().max() / ref.abs().max())
               for name, m in (("row", q), ("matrix", quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear})))}
    assert err["row"] < 0.03 and err["matrix"] > 10 * err["row"], err


@pytest.mark.slow
def test_int8_predictions_stay_close_to_fp32(ner_model, tmp_path):
    d, model, _ = ner_model
    for int8 in (0, 1):
        r = predict("--model_dir", model, "--input", d / "test.txt", "--out", tmp_path / f"{int8}.conll",
                    "--int8", int8, "--soft")
        assert r.returncode == 0, r.stderr
    (fp32, p32), (int8, p8) = (read_conll(tmp_path / f"{i}.conll", with_probs=True) for i in (0, 1))
    assert [w for w, _ in fp32] == [w for w, _ in int8]
    gaps = [abs(a[k] - b[k]) for s32, s8 in zip(p32, p8) for a, b in zip(s32, s8) for k in a]
    same = [a == b for (_, t32), (_, t8) in zip(fp32, int8) for a, b in zip(t32, t8)]
    # quantized (not the fp32 model) and close to it: a smoke model has near ties, so a few labels flip
    assert 0 < sum(gaps) / len(gaps) < 0.01 and sum(same) / len(same) > 0.95
