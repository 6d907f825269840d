"""gendist.py: a smoke run of the whole pipeline (the teacher, its labels, every regimen of the student) that
resumes without training again, and the regimen with the teacher's hidden states."""
import json
import os

import pytest

import gendist as G
from common import DATA, write_tiny_conll
from data import read_conll, read_jsonl, write_jsonl
from test_generate import FRESH, POOL


def tiny_bbc_split(d):
    """A tiny data.py split of BBC: 6 articles per class for training (2 of them the k = 2 subset), 2 each for valid
    and test; returns the training records."""
    by_label = {}
    for a in read_jsonl(os.path.join(DATA, "bbc", "bbc.jsonl")):
        by_label.setdefault(a["label"], []).append({"text": a["title"] + "\n\n" + a["text"], "label": a["label"]})
    train = [r for rs in by_label.values() for r in rs[:6]]
    write_jsonl(d / "train.jsonl", train)
    write_jsonl(d / "train_k2_s0.jsonl", [r for rs in by_label.values() for r in rs[:2]])
    write_jsonl(d / "valid.jsonl", [r for rs in by_label.values() for r in rs[6:8]])
    write_jsonl(d / "test.jsonl", [r for rs in by_label.values() for r in rs[8:10]])
    return train


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classify", "ner"])
def test_pipeline_smoke_runs_every_regimen_and_resumes(tmp_path, task):
    d = tmp_path / "data"
    d.mkdir()
    if task == "classify":
        train = tiny_bbc_split(d)
        write_jsonl(tmp_path / "gen.jsonl", [{"id": f"g{i}", "text": t} for i, t in enumerate(FRESH + POOL[:3])])
        extra = ["--k", "2"]
    else:
        write_tiny_conll(str(d), n_train=100, n_eval=20)
        (tmp_path / "gen.conll").write_text(
            "The minister visited Paris on Monday .\n\nShares in Siemens rose .\n".replace(" ", "\n"))
        extra = ["--k", "20", "--unlabelled", os.path.join(DATA, "bbc", "bbc.jsonl"), "--u_size", "20"]
    args = ["run", "--task", task, "--data_dir", str(d),
            "--generated", str(tmp_path / ("gen.jsonl" if task == "classify" else "gen.conll")),
            "--seeds", "0", "--steps", "3", "--eval_every", "3", "--teacher_epochs", "1", "--teacher_eval_every", "5",
            "--max_len", "64", "--out_dir", str(tmp_path / "out"), *extra]
    assert G.main(args) == 0
    rows = json.load(open(tmp_path / "out" / "results.json"))["rows"]
    assert set(rows) == {"teacher", *G.REGIMENS} and all(len(r["by_seed"]) == 1 for r in rows.values())
    md = (tmp_path / "out" / "results.md").read_text()
    assert "python gendist.py run" in md and "x fewer" in md
    # the teacher's labels: L keeps gold as its hard label, U and G get the teacher's distribution
    ext = ".jsonl" if task == "classify" else ".conll"
    data = tmp_path / "out" / "data" / "s0"
    if task == "classify":
        l_soft, g_soft = read_jsonl(data / f"L_soft{ext}"), read_jsonl(data / f"G_soft{ext}")
        assert [r["label"] for r in l_soft] == [r["label"] for r in read_jsonl(d / "train_k2_s0.jsonl")]
        assert all(abs(sum(r["probs"].values()) - 1) < 1e-3 for r in l_soft + g_soft) and len(g_soft) == 5
        assert len(read_jsonl(data / f"c_L+U_soft{ext}")) == len(l_soft) + len(train) - len(l_soft)
        assert len(read_jsonl(data / f"c_L+U_G-size_soft{ext}")) == len(l_soft) + len(g_soft)  # U cut to G's size
    else:
        sents, soft = read_conll(data / f"G_soft{ext}", with_probs=True)
        assert len(sents) == 2 and all(s is not None for s in soft)
    # the same command again trains nothing
    stamps = {p: os.path.getmtime(p / "metrics.json") for p in (tmp_path / "out").iterdir()
              if (p / "metrics.json").exists()}
    assert len(stamps) == 7
    assert G.main(args) == 0
    assert stamps == {p: os.path.getmtime(p / "metrics.json") for p in stamps}


@pytest.mark.slow
def test_regimen_f_runs_the_teacher_beside_the_student(tmp_path):
    """--hidden_weight > 0 adds (f): (c)'s data, and the teacher's hidden states as targets through a learned map (the
    student is narrower); its metrics record the hidden term, and (f) differs from (c) only by that."""
    d = tmp_path / "data"
    d.mkdir()
    tiny_bbc_split(d)
    args = ["run", "--task", "classify", "--data_dir", str(d), "--k", "2", "--seeds", "0", "--steps", "3",
            "--eval_every", "3", "--teacher_epochs", "1", "--teacher_eval_every", "5", "--max_len", "64",
            "--hidden_weight", "1", "--out_dir", str(tmp_path / "out")]
    assert G.main(args) == 0
    f = json.load(open(tmp_path / "out" / "f_L+U_soft_hidden_s0" / "metrics.json"))
    c = json.load(open(tmp_path / "out" / "c_L+U_soft_s0" / "metrics.json"))
    assert f["teacher"]["projection"] and f["loss_terms"]["hidden"] > 0 and f["teacher"]["attn_weight"] == 0.0
    assert f["config"]["train_file"] == c["config"]["train_file"] and "teacher" not in c
    assert "| f_L+U_soft_hidden |" in (tmp_path / "out" / "results.md").read_text()
