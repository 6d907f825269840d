"""predict.py: the same predictions train.py scored, every input format, hostile raw text, clear refusals."""
import json
import os
import subprocess
import sys

import pytest

from common import ROOT, write_tiny_conll
from data import read_conll
from eval import span_f1
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


def predict(*args, stdin=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"), *map(str, args)], input=stdin,
                          capture_output=True, text=True, cwd=ROOT)


def test_conll_predictions_are_what_train_scored(ner_model, tmp_path):
    d, model, metrics = ner_model
    r = predict("--model_dir", model, "--input", d / "test.txt", "--out", tmp_path / "pred.conll")
    assert r.returncode == 0, r.stderr
    ours = read_conll(tmp_path / "pred.conll")
    assert ours == read_conll(d / "out" / "test_predictions.conll")
    gold = read_conll(d / "test.txt")
    assert span_f1([t for _, t in gold], [t for _, t in ours]) == metrics["test"]
    assert read_conll(tmp_path / "pred.conll", column=1) == gold  # the input's columns are kept


def test_stdin_text_prints_the_tagged_tokens(ner_model):
    _, model, _ = ner_model
    r = predict("--model_dir", model, "--format", "text", stdin="Angela Merkel met Airbus in Toulouse.\n")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line]
    assert [w for w, _ in rows] == ["Angela", "Merkel", "met", "Airbus", "in", "Toulouse", "."]
    assert all(t == "O" or t[:2] in ("B-", "I-") for _, t in rows)


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
])
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
