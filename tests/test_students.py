"""students.py: the transfer set (BBC sentences without duplicates or copies of dev and test, labelled softly by
the teacher) and the ablation in smoke mode: every row, the choices of layers kept and matched on dev, a table, a
resume that trains nothing again, and each run's F1 in int8 as predict.py --int8 1 gives it."""
import json
import os

import pytest

import predict
import students as S
from common import write_tiny_conll
from data import read_conll, write_jsonl
from eval import span_f1
from train import Config, train

pytestmark = pytest.mark.slow  # every test here trains


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("students")
    data = d / "conll"
    data.mkdir()
    write_tiny_conll(str(data), n_train=80, n_eval=30)
    train(Config(data_dir=str(data), out_dir=str(d / "teacher"), max_steps=8, batch_size=8, lr=3e-4, progress=0))
    test_sentence = " ".join(max((w for w, _ in read_conll(str(data / "test.txt"))), key=len))
    articles = [{"id": "a", "text": "Shares in Siemens rose on Monday. The minister visited Paris. "
                                    "Shares in Siemens rose on Monday."},
                {"id": "b", "text": f"{test_sentence}\n\nAngela Merkel met Airbus in Toulouse."}]
    write_jsonl(str(d / "bbc.jsonl"), articles)
    return d, data


def test_the_transfer_set_drops_duplicates_and_held_out_copies_and_is_labelled_softly(setup, capsys):
    d, data = setup
    report = S.transfer(S.TransferConfig(teacher=str(d / "teacher" / "model"), bbc=str(d / "bbc.jsonl"),
                                         data_dir=str(data), out_dir=str(d / "transfer")))
    assert report["bbc_dropped"] == {"duplicate": 1, "leak_eval": 1}  # the second Siemens sentence, the copy of test
    sents, soft = read_conll(str(d / "transfer" / "bbc_soft.conll"), with_probs=True)
    assert [" ".join(w) for w, _ in sents] == ["Shares in Siemens rose on Monday .", "The minister visited Paris .",
                                               "Angela Merkel met Airbus in Toulouse ."]
    assert all(sent is not None and all(abs(sum(p.values()) - 1) < 1e-2 for p in sent) for sent in soft)
    assert report["bbc"]["sentences"] == 3 and report["conll"]["sentences"] == 80
    assert "bbc: 3 sentences" in capsys.readouterr().out


def test_the_transfer_set_with_context_is_labelled_in_its_articles_and_marks_them(setup, tmp_path):
    d, data = setup
    teacher = str(d / "teacher" / "model")
    report = S.transfer(S.TransferConfig(teacher=teacher, bbc=str(d / "bbc.jsonl"), data_dir=str(data), context=16,
                                         out_dir=str(tmp_path / "transfer")))
    assert report["context"] == 16
    sents, docs = read_conll(str(tmp_path / "transfer" / "bbc_soft.conll"), docs=True)
    assert [" ".join(w) for w, _ in sents] == ["Shares in Siemens rose on Monday .", "The minister visited Paris .",
                                               "Angela Merkel met Airbus in Toulouse ."]
    assert docs == [0, 0, 1]  # the first two from article a, the last from b: its copy of test is no context
    assert [t for _, t in sents] == predict.tag_words(teacher, [w for w, _ in sents], context=16, docs=docs)
    conll, conll_docs = read_conll(str(tmp_path / "transfer" / "conll_soft.conll"), docs=True)
    assert conll_docs == read_conll(str(data / "train.txt"), docs=True)[1]


def test_the_ablation_chooses_layers_on_dev_runs_every_row_and_resumes(setup, tmp_path, capsys):
    d, data = setup
    if not (d / "transfer" / "bbc_soft.conll").exists():
        S.transfer(S.TransferConfig(teacher=str(d / "teacher" / "model"), bbc=str(d / "bbc.jsonl"), data_dir=str(data),
                                    out_dir=str(d / "transfer")))
    speed = tmp_path / "speed.json"  # what bench.py --out writes, reduced to what the table reads
    speed.write_text(json.dumps({"command": "python bench.py --configs ours,student,student-int8 --student L2-H384",
                                 "median": {"ours": {"infer_tok_s": 1000.0}, "student": {"infer_tok_s": 2600.0},
                                            "student-int8": {"infer_tok_s": 3900.0}}}))
    argv = ["run", "--teacher", str(d / "teacher" / "model"), "--transfer", str(d / "transfer"),
            "--data_dir", str(data), "--seeds", "0,1", "--ablation_seeds", "0", "--max_steps", "2",
            "--speed", str(speed), "--out_dir", str(tmp_path / "out")]
    assert S.main(argv) == 0
    out = tmp_path / "out"
    res = json.loads((out / "results.json").read_text())
    assert res["layers"] in ("bottom", "spread") and set(res["dev_by_layers"]) == {"bottom", "spread"}
    assert res["match"] in ("bottom", "spread") and set(res["dev_by_match"]) == {"bottom", "spread"}
    assert {r: len(v["test_by_seed"]) for r, v in res["rows"].items()} == \
        {"a_gold": 2, "b_soft": 1, "c_transfer": 1, "d_hidden": 2}
    layers = {"bottom": [0, 1], "spread": [0, 5]}
    for match in ("bottom", "spread"):  # the student is built from the chosen layers and matched with either
        hidden = json.loads((out / f"d_hidden_{res['layers']}_match-{match}_s0" / "metrics.json").read_text())
        assert hidden["config"]["teacher"] and set(hidden["loss_terms"]) == {"labels", "hidden", "attention"}
        assert hidden["config"]["student_layers"] == res["layers"] and hidden["teacher"]["layer_map"] == layers[match]
    assert (out / f"d_hidden_{res['layers']}_match-{res['match']}_s1" / "metrics.json").exists()
    md = (out / "results.md").read_text()
    assert "python students.py run" in md and "(2.60x)" in md and "| d_hidden |" in md and "(seed 0 only)" in md
    assert "the student in int8 3,900 tokens/s (3.90x)" in md
    assert f"-> **{res['match']}**" in md
    stamps = {p: os.path.getmtime(p / "metrics.json") for p in out.iterdir() if (p / "metrics.json").exists()}
    assert len(stamps) == 8  # b_soft and d (seed 0) with both layer choices, then a on two seeds, d and c on one
    capsys.readouterr()
    assert S.main(argv) == 0
    assert "->" not in capsys.readouterr().out.split("# Distilling")[0]  # nothing trained again
    assert stamps == {p: os.path.getmtime(p / "metrics.json") for p in stamps}
    # the transfer set on every seed too: its second seed runs, nothing else does
    assert S.main(argv + ["--full_rows", "c_transfer,d_hidden"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert {r: len(v["test_by_seed"]) for r, v in res["rows"].items()} == \
        {"a_gold": 2, "b_soft": 1, "c_transfer": 2, "d_hidden": 2}
    assert stamps == {p: os.path.getmtime(p / "metrics.json") for p in stamps}
    # int8: every run scored again as predict.py --int8 1 tags it, once; nothing trained again
    assert S.main(argv + ["--full_rows", "c_transfer,d_hidden", "--int8", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    run = out / f"a_gold_{res['layers']}_s1"
    predict.main(["--model_dir", str(run / "model"), "--input", str(data / "test.txt"), "--int8", "1",
                  "--out", str(tmp_path / "int8.conll"), "--progress", "0"])
    gold, tagged = read_conll(str(data / "test.txt")), read_conll(str(tmp_path / "int8.conll"))
    int8 = json.loads((run / "int8.json").read_text())
    assert int8["test"] == 100 * span_f1([t for _, t in gold], [t for _, t in tagged])["f1"]
    assert res["rows"]["a_gold"]["int8_test_by_seed"]["1"] == int8["test"] and set(int8) == {"dev", "test"}
    assert "| test F1, int8 |" in (out / "results.md").read_text()
    quantized = {p: os.path.getmtime(p / "int8.json") for p in stamps}
    assert S.main(argv + ["--full_rows", "c_transfer,d_hidden", "--int8", "1"]) == 0
    assert quantized == {p: os.path.getmtime(p / "int8.json") for p in stamps}
    assert stamps == {p: os.path.getmtime(p / "metrics.json") for p in stamps}
    # the teacher's targets kept on file: a setting a folder may change, so the finished rows come back untrained
    assert S.main(argv + ["--full_rows", "c_transfer,d_hidden", "--cache_teacher", "1"]) == 0
    assert stamps == {p: os.path.getmtime(p / "metrics.json") for p in stamps}
    rc = S.RunConfig(teacher=str(d / "teacher" / "model"), cache_teacher=1)
    assert S.train_config(rc, "d_hidden", 0, "bottom", str(out), "bottom").cache_teacher == 1  # where a teacher runs
    assert S.train_config(rc, "c_transfer", 0, "bottom", str(out)).cache_teacher == 0
    with pytest.raises(S.DataError, match="--full_rows e_more: expected rows among a_gold"):
        S.main(argv + ["--full_rows", "e_more"])
    with pytest.raises(S.DataError, match="other settings"):
        S.main([a if a != "L2-H384" else "L1-H384" for a in argv] + ["--student", "L1-H384"])


def test_score_serves_finished_runs_in_int8_and_onnx_as_predict_py_tags_and_keeps_a_record(setup, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    d, data = setup
    run = d / "teacher"
    argv = ["score", "--runs", str(run), "--data_dir", str(data), "--served", "onnx,onnx-int8"]
    assert S.main(argv) == 0
    gold = read_conll(str(data / "test.txt"))
    for name, flags in (("onnx", []), ("onnx-int8", ["--int8", "1"])):
        predict.main(["--model_dir", str(run / "model"), "--input", str(data / "test.txt"), "--runtime", "onnx",
                      *flags, "--out", str(tmp_path / f"{name}.conll"), "--progress", "0"])
        tagged = read_conll(str(tmp_path / f"{name}.conll"))
        held = json.loads((run / f"{name}.json").read_text())
        assert held["test"] == 100 * span_f1([t for _, t in gold], [t for _, t in tagged])["f1"]
        assert held["record"]["command"] == "python students.py " + " ".join(argv)
        assert held["record"]["precision"] == ("int8" if flags else "fp32")
    out = capsys.readouterr().out
    assert "| onnx | onnx-int8 |" in out and str(run) in out
    kept = {n: os.path.getmtime(run / f"{n}.json") for n in ("onnx", "onnx-int8")}
    assert S.main(argv) == 0  # measured once: a second command reads the records
    assert kept == {n: os.path.getmtime(run / f"{n}.json") for n in ("onnx", "onnx-int8")}
    with pytest.raises(S.DataError, match="--served fp16: expected any of int8, onnx, onnx-int8"):
        S.main(["score", "--runs", str(run), "--served", "fp16"])
    with pytest.raises(S.DataError, match="no metrics.json"):
        S.main(["score", "--runs", str(tmp_path), "--data_dir", str(data)])
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "metrics.json").write_text(json.dumps({"task": "classify", "test": {"accuracy": 0.5}}))
    with pytest.raises(S.DataError, match="not an NER run"):
        S.main(["score", "--runs", str(tmp_path / "cls"), "--data_dir", str(data)])


def test_score_reads_a_run_with_another_context_and_keeps_that_record_apart(setup, tmp_path, capsys):
    """score --context N: each run read with N instead of its own (here a teacher trained alone, read with context),
    as predict.py --context N tags it, in <way>-c<N>.json; its own records stay as they were."""
    d, data = setup
    run = d / "teacher"
    argv = ["score", "--runs", str(run), "--data_dir", str(data), "--served", "torch,int8", "--context", "16"]
    assert S.main(argv) == 0
    assert "| torch, read with --context 16 | int8, read with --context 16 |" in capsys.readouterr().out
    gold = read_conll(str(data / "test.txt"))
    for name, flags in (("torch", []), ("int8", ["--int8", "1"])):
        predict.main(["--model_dir", str(run / "model"), "--input", str(data / "test.txt"), "--context", "16",
                      *flags, "--out", str(tmp_path / f"{name}.conll"), "--progress", "0"])
        held = json.loads((run / f"{name}-c16.json").read_text())
        tagged = read_conll(str(tmp_path / f"{name}.conll"))
        assert held["test"] == 100 * span_f1([t for _, t in gold], [t for _, t in tagged])["f1"]
        assert held["context"] == 16 and held["record"]["precision"] in (("int8",) if flags else ("bf16", "fp32"))
    assert not (run / "torch.json").exists()
    with pytest.raises(S.DataError, match="--served torch is train.py's own way"):
        S.main(["score", "--runs", str(run), "--data_dir", str(data), "--served", "torch"])
