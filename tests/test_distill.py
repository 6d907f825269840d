"""Text classification and soft-label distillation: the loss against a hand computation, soft-label files,
smoke runs of train.py --task classify, predict.py --soft, and a student that learns its teacher's labels."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common import DATA, ROOT, write_tiny_conll
from cli import DataError
from data import format_probs, parse_probs, read_classification, read_conll, read_jsonl, write_jsonl
from distill import distillation_loss, loss_sum
from train import Config, train


# ------------------------------------------------------------------------------------------ the loss

def test_distillation_loss_equals_a_hand_computation():
    rng = np.random.default_rng(0)
    for T in (1.0, 2.0, 4.0):
        z = rng.normal(size=(5, 7)) * 3
        p = rng.dirichlet(np.ones(7) * 0.3, size=5)
        p[0, 2] = 0.0  # a label the teacher rules out
        p[0] /= p[0].sum()
        # by hand: the teacher at temperature T is p^(1/T) renormalised (= softmax(teacher logits / T))
        pT = np.where(p > 0, p, 0) ** (1 / T)
        pT /= pT.sum(1, keepdims=True)
        qT = np.exp(z / T) / np.exp(z / T).sum(1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(pT > 0, pT * (np.log(pT) - np.log(qT)), 0.0)
        hand = T * T * terms.sum(1)
        ours = distillation_loss(torch.tensor(z), torch.tensor(p), T).numpy()
        assert np.allclose(ours, hand, atol=1e-5), (T, ours, hand)
    assert float(distillation_loss(torch.tensor([[1.0, 2.0]]), torch.softmax(torch.tensor([[1.0, 2.0]]), -1), 3.0)) == \
        pytest.approx(0, abs=1e-6)


def test_with_t1_and_one_hot_targets_the_gradients_equal_cross_entropy():
    torch.manual_seed(0)
    labels = torch.randint(0, 6, (10,))
    z1 = torch.randn(10, 6, requires_grad=True)
    z2 = z1.detach().clone().requires_grad_(True)
    distillation_loss(z1, F.one_hot(labels, 6).double(), 1.0).sum().backward()
    F.cross_entropy(z2, labels, reduction="sum").backward()
    assert torch.allclose(z1.grad, z2.grad, atol=1e-6)
    # at T = 2 the T^2 factor keeps the gradient's size comparable to cross entropy's, not 4x smaller
    z3 = z1.detach().clone().requires_grad_(True)
    distillation_loss(z3, torch.softmax(torch.randn(10, 6), -1), 2.0).sum().backward()
    assert 0.2 < z3.grad.norm() / z2.grad.norm() < 5


def test_loss_mixes_hard_and_soft_labels_with_kd_alpha_only_where_soft_labels_exist():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 4)  # (B, T, C)
    labels = torch.tensor([[1, -100, 2], [0, 3, -100]])
    soft = torch.softmax(torch.randn(2, 3, 4), -1)
    has = torch.tensor([[True, False, False], [False, True, False]])
    cfg = Config(kd_alpha=0.3, kd_temperature=2.0)
    ce = F.cross_entropy(logits.reshape(-1, 4), labels.reshape(-1), ignore_index=-100, reduction="none").reshape(2, 3)
    kd = distillation_loss(logits, soft, 2.0)
    want = 0.3 * ce[0, 0] + 0.7 * kd[0, 0] + ce[0, 2] + ce[1, 0] + 0.3 * ce[1, 1] + 0.7 * kd[1, 1]
    assert float(loss_sum(logits, labels, soft * has[..., None], has, cfg)) == pytest.approx(float(want), rel=1e-5)
    assert float(loss_sum(logits, labels, soft, torch.zeros_like(has), cfg)) == pytest.approx(float(ce.sum()), rel=1e-5)


# ------------------------------------------------------------------------------------------ soft-label files

def test_conll_soft_labels_round_trip_and_the_hard_tag_stays_last(tmp_path):
    labels = ["O", "B-ORG", "I-ORG"]
    p = tmp_path / "soft.conll"
    p.write_text(f"EU B-ORG {format_probs([0.1, 0.85, 0.05], labels)} B-ORG\n"
                 f"rejects O {format_probs([0.97, 0.02, 0.01], labels)} O\n\n"
                 "plain O O\n\n")
    sentences, soft = read_conll(p, with_probs=True)
    assert sentences == read_conll(p) == [(["EU", "rejects"], ["B-ORG", "O"]), (["plain"], ["O"])]
    assert soft[0][0] == {"O": 0.1, "B-ORG": 0.85, "I-ORG": 0.05} and soft[1] is None
    assert read_conll(p, column=1)[0][1] == ["B-ORG", "O"]  # the input's tag column is still readable
    bad = tmp_path / "partial.conll"
    bad.write_text(f"EU {format_probs([0.1, 0.9, 0.0], labels)} B-ORG\nrejects O O\n")
    with pytest.raises(DataError, match="some words only"):
        read_conll(bad, with_probs=True)
    with pytest.raises(DataError, match=r"x\.conll:3: .*not a probability distribution"):
        parse_probs("O=1.5|B-X=0.2", "x.conll:3")


def test_jsonl_soft_labels_give_their_most_probable_label(tmp_path):
    p = tmp_path / "soft.jsonl"
    write_jsonl(p, [{"text": "Shares rose.", "probs": {"business": 0.8, "sport": 0.2}},
                    {"text": "A goal.", "label": "sport", "probs": {"business": 0.3, "sport": 0.7}},
                    {"text": "No soft label.", "label": "sport"}])
    recs = read_classification(p)
    assert [r["label"] for r in recs] == ["business", "sport", "sport"]
    assert recs[0]["probs"] == {"business": 0.8, "sport": 0.2} and "probs" not in recs[2]
    write_jsonl(p, [{"text": "x", "probs": {"a": -0.5, "b": 1.5}}])
    with pytest.raises(DataError, match=r"soft\.jsonl:1: .*not a probability distribution"):
        read_classification(p)


# ------------------------------------------------------------------------------------------ classification runs

@pytest.fixture(scope="module")
def tiny_bbc(tmp_path_factory):
    """A small deduplicated BBC split: 12 articles per class to train on, 4 per class for dev and for test."""
    d = tmp_path_factory.mktemp("bbc")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "data.py"), "split",
                        "--input", os.path.join(DATA, "bbc", "bbc.jsonl"), "--out_dir", str(d / "full"),
                        "--seed", "0", "--per_class", "12"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    train_k = read_jsonl(d / "full" / "train_k12_s0.jsonl")
    write_jsonl(d / "train.jsonl", train_k)
    for name in ("valid", "test"):
        recs = read_jsonl(d / "full" / f"{name}.jsonl")
        write_jsonl(d / f"{name}.jsonl", [x for label in sorted({x["label"] for x in recs})
                                          for x in recs if x["label"] == label][::20][:20])
    return d


def classify(data_dir, out, **kw):
    defaults = dict(task="classify", data_dir=str(data_dir), out_dir=str(out), max_len=64, batch_size=8, max_steps=4,
                    eval_batch_size=32, progress=0)
    return train(Config(**{**defaults, **kw}))


@pytest.mark.slow
def test_classify_run_writes_every_score_and_its_predictions(tiny_bbc, tmp_path):
    m = classify(tiny_bbc, tmp_path, seed=1)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["task"] == "classify"
    for split in ("dev", "test"):
        s = on_disk[split]
        assert {"accuracy", "macro_f1", "per_class", "confusion"} <= set(s)
        assert set(s["per_class"]) == {"business", "entertainment", "politics", "sport", "tech"}
        assert {"precision", "recall", "f1", "support"} <= set(s["per_class"]["sport"])
    preds = read_jsonl(tmp_path / "test_predictions.jsonl")
    test = read_jsonl(tiny_bbc / "test.jsonl")
    assert [p["text"] for p in preds] == [t["text"] for t in test] and \
        [p["gold"] for p in preds] == [t["label"] for t in test]
    assert np.mean([p["gold"] == p["pred"] for p in preds]) == pytest.approx(m["test"]["accuracy"])
    matrix = np.array(m["test"]["confusion"]["matrix"])
    assert matrix.sum() == len(test) and np.trace(matrix) == sum(p["gold"] == p["pred"] for p in preds)
    import transformers
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "model"))
    assert hf.config.num_labels == 5
    # eval.py scores the predictions file the same way
    r = subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), "--gold", str(tiny_bbc / "test.jsonl"),
                        "--pred", str(tmp_path / "test_predictions.jsonl"), "--pred_field", "pred", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(m["test"]["accuracy"])


@pytest.mark.slow
def test_classify_with_a_student_and_settable_fields(tiny_bbc, tmp_path):
    for name in ("train", "valid", "test"):
        write_jsonl(tmp_path / f"{name}.jsonl",
                    [{"body": r["text"], "topic": r["label"]} for r in read_jsonl(tiny_bbc / f"{name}.jsonl")])
    m = classify(tmp_path, tmp_path / "out", text_field="body", label_field="topic", student="L1-H384")
    cfg = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 1 and cfg["architectures"] == ["BertForSequenceClassification"]
    assert 0.0 <= m["test"]["macro_f1"] <= 1.0


@pytest.mark.slow
def test_a_student_trained_on_its_teachers_soft_labels_agrees_with_the_teacher(tiny_bbc, tmp_path):
    """The teacher: MiniLM fine-tuned briefly. Its soft labels on the training texts (predict.py --soft) are the
    student's only data; trained on them, a 1-layer student must reproduce the teacher's labels on those texts."""
    classify(tiny_bbc, tmp_path / "teacher", max_steps=40, lr=2e-4, seed=0)
    soft = tmp_path / "teacher_soft.jsonl"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"),
                        "--model_dir", str(tmp_path / "teacher" / "model"), "--input", str(tiny_bbc / "train.jsonl"),
                        "--out", str(soft), "--soft", "--max_len", "64"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    recs = read_jsonl(soft)
    assert all(abs(sum(x["probs"].values()) - 1) < 1e-3 and x["label"] == max(x["probs"], key=x["probs"].get)
               for x in recs)
    assert all("gold" in x for x in recs)  # the input's label is kept beside the prediction
    assert len({x["label"] for x in recs}) >= 4  # a teacher that says one label for all would prove nothing
    m = classify(tiny_bbc, tmp_path / "student", distilled=str(soft), strategy="distilled", student="L1-H384",
                 max_steps=100, lr=1e-3, kd_temperature=2.0, dropout=0.0, seed=0)
    assert m["realised_d_share"] == 1.0
    # the student's labels on the teacher's texts
    r = subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"),
                        "--model_dir", str(tmp_path / "student" / "model"), "--input", str(tiny_bbc / "train.jsonl"),
                        "--out", str(tmp_path / "student.jsonl"), "--max_len", "64"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    agree = np.mean([a["label"] == b["label"] for a, b in zip(recs, read_jsonl(tmp_path / "student.jsonl"))])
    assert agree >= 0.9, agree


# ------------------------------------------------------------------------------------------ NER soft labels

@pytest.mark.slow
def test_ner_soft_labels_from_predict_train_a_student(tmp_path):
    write_tiny_conll(str(tmp_path), n_train=120, n_eval=40)
    base = dict(data_dir=str(tmp_path), max_steps=4, batch_size=8, eval_batch_size=32, progress=0)
    train(Config(out_dir=str(tmp_path / "teacher"), **base))
    soft = tmp_path / "soft.conll"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"),
                        "--model_dir", str(tmp_path / "teacher" / "model"), "--input", str(tmp_path / "test.txt"),
                        "--out", str(soft), "--soft"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # predict.py gives exactly the predictions train.py scored for the same model
    assert read_conll(soft) == read_conll(tmp_path / "teacher" / "test_predictions.conll")
    sentences, dists = read_conll(soft, with_probs=True)
    assert all(len(d) == len(w) for (w, _), d in zip(sentences, dists))
    assert all(len(x) == 9 and abs(sum(x.values()) - 1) < 1e-2 for d in dists for x in d)  # every label of the teacher
    s = train(Config(out_dir=str(tmp_path / "student"), distilled=str(soft), strategy="distilled", student="L2-H192",
                     **base))
    assert s["realised_d_share"] == 1.0 and 0.0 <= s["test"]["f1"] <= 1.0
