"""regimens.py: the simulated corruption, annotation F1 over matched sentences, the table maths,
and a tiny end-to-end run that resumes without repeating a run."""
import json
import os

import pytest

from common import CONLL, write_tiny_conll
from data import read_conll
from eval import get_entities
from regimens import annotation_f1, main, markdown, summarize
from simulate import corrupt
from runs import mean_std, paired


@pytest.fixture(scope="module")
def conll_train():
    return read_conll(os.path.join(CONLL, "train.txt"))


def changed_share(before, after):
    n = changed = 0
    for (_, g), (_, c) in zip(before, after):
        gold, now = get_entities(g), set(get_entities(c))
        n += len(gold)
        changed += sum(e not in now for e in gold)
    return changed / n


def test_rate_zero_changes_nothing_and_rate_one_changes_every_entity(conll_train):
    sents = conll_train[:3000]
    same, stats = corrupt(sents, 0.0, seed=1)
    assert same == sents and stats["corrupted"] == 0
    every, stats = corrupt(sents, 1.0, seed=1)
    assert changed_share(sents, every) == 1.0 and stats["corrupted"] == stats["entities"]
    assert all(stats[k] > 0.25 * stats["entities"] for k in ("dropped", "wrong type", "wrong boundary"))


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_share_of_changed_entities_is_the_rate_and_tags_stay_valid(conll_train, rate):
    out, stats = corrupt(conll_train, rate, seed=0)
    assert stats["entities"] > 20000
    assert changed_share(conll_train, out) == pytest.approx(rate, abs=1e-3)
    assert [w for w, _ in out] == [w for w, _ in conll_train]  # sentences and tokens never change
    types = {t[2:] for _, tags in conll_train for t in tags if t != "O"}
    for _, tags in out:
        assert get_entities(tags, strict=True) == get_entities(tags)  # strict IOB2: no stray I-
        assert {t[2:] for t in tags if t != "O"} <= types


def test_corruption_is_seeded_and_nested_across_rates(conll_train):
    sents = conll_train[:2000]
    assert corrupt(sents, 0.3, seed=4) == corrupt(sents, 0.3, seed=4)
    assert corrupt(sents, 0.3, seed=4)[0] != corrupt(sents, 0.3, seed=5)[0]
    low, high = corrupt(sents, 0.1, seed=4)[0], corrupt(sents, 0.3, seed=4)[0]
    for (_, g), (_, lo), (_, hi) in zip(sents, low, high):  # what 0.1 changed, 0.3 changed too
        changed_lo = {e for e in get_entities(g) if e not in set(get_entities(lo))}
        assert changed_lo <= {e for e in get_entities(g) if e not in set(get_entities(hi))}


def test_boundary_and_type_corruptions_on_one_sentence():
    words = ["New", "York", "is", "big"]
    gold = ["B-LOC", "I-LOC", "O", "O"]
    seen = set()
    for seed in range(60):
        (_, tags), = corrupt([(words, gold)], 1.0, seed=seed, types=["LOC", "PER"])[0]
        seen.add(tuple(tags))
    assert seen == {("O", "O", "O", "O"), ("B-PER", "I-PER", "O", "O"),  # dropped, wrong type
                    ("B-LOC", "I-LOC", "I-LOC", "O"),  # extended right (nothing to the left)
                    ("O", "B-LOC", "O", "O"), ("B-LOC", "O", "O", "O")}  # shrunk


def test_annotation_f1_over_the_sentences_d_shares_with_o():
    o = [(["A", "b"], ["B-PER", "O"]), (["C"], ["B-LOC"]), (["A", "b"], ["O", "O"]), (["D"], ["B-ORG"])]
    d = [(["C"], ["B-LOC"]), (["A", "b"], ["B-PER", "O"]), (["Z"], ["B-PER"])]  # 2 of O's 4, and one stranger
    a = annotation_f1(o, d)
    assert (a["matched"], a["n_original"], a["n_distilled"]) == (2, 4, 3)
    assert a["f1"] == 1.0  # C LOC and A PER both right; the missing sentences do not count
    d[1] = (["A", "b"], ["B-ORG", "O"])
    assert annotation_f1(o, d)["f1"] == pytest.approx(0.5)
    assert annotation_f1(o, [(["Z"], ["O"])])["f1"] is None


def test_table_maths_mean_std_and_paired_differences():
    assert mean_std([]) == (None, None) and mean_std([0.5]) == (0.5, None)
    m, s = mean_std([0.80, 0.82, 0.84])
    assert m == pytest.approx(0.82) and s == pytest.approx(0.02)
    c = paired({0: 0.80, 1: 0.85, 2: 0.84}, {0: 0.81, 1: 0.82, 2: 0.80, 3: 0.9})
    assert c["n"] == 3 and c["paired"] == 3 and c["better"] == 2
    assert c["delta_mean"] == pytest.approx((-0.01 + 0.03 + 0.04) / 3)
    assert c["delta_std"] == pytest.approx(mean_std([-0.01, 0.03, 0.04])[1])

    rows = [{"d": "x", "regimen": r, "seed": s, "status": "done", "test_f1": f, "realised_d_share": sh}
            for r, sh, fs in (("original", 0.0, [0.80, 0.82]), ("seq-d-o", 0.5, [0.83, 0.81]))
            for s, f in enumerate(fs)]
    rows.append({"d": "x", "regimen": "seq-d-o", "seed": 2, "status": "failed", "error": "boom"})
    summary = summarize(rows, ["x"], ["original", "seq-d-o"])
    sdo = summary["x"]["seq-d-o"]
    assert sdo["n"] == 2 and sdo["better"] == 1 and sdo["delta_mean"] == pytest.approx(0.01) and sdo["d_share"] == 0.5
    d = {"name": "x", "path": "x.conll", "simulated": False,
         "steps": dict.fromkeys(("original", "distilled", "mixed"), (10, 5)), "batch_size": 8,
         "annotation": {"f1": 0.5, "matched": 3, "n_original": 4, "n_distilled": 3}}
    md = markdown("python regimens.py --x", [d], ["original", "seq-d-o"], summary, rows, 3)
    assert "| seq-d-o | 82.00 ± 1.41 (n=2) | +1.00 ± 2.83 | 1/2 | 0.50 |" in md
    assert "| original | 81.00 ± 1.41 (n=2) | – | – | 0.00 |" in md
    assert "annotation F1 50.00 over 3 of 4 O sentences" in md and "seq-d-o seed 2" in md
    assert "dev F1 every 5 steps and at the last; test F1 of the best-dev checkpoint" in md
    # one dev evaluation, at the end: nothing to choose from
    d["steps"] = dict.fromkeys(("original", "distilled", "mixed"), (10, 10))
    md = markdown("python regimens.py --x", [d], ["original", "seq-d-o"], summary, rows, 3)
    assert "dev F1 once, at the last step; test F1 of the last checkpoint" in md and "best-dev" not in md
    d["steps"] = {"original": (5, 5), "distilled": (5, 5), "mixed": (10, 10)}  # --budget o
    md = markdown("python regimens.py --x", [d], ["original", "seq-d-o"], summary, rows, 3)
    assert ("The same O steps for every run, D's on top: original 5 steps, distilled 5, "
            "the regimens that mix them 10") in md


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """40 training sentences as O, 20 dev and 20 test sentences of CoNLL-2003."""
    d = tmp_path_factory.mktemp("tiny")
    write_tiny_conll(str(d), n_train=40, n_eval=20, train_name="o.conll")
    return d


@pytest.mark.slow
def test_end_to_end_two_runs_at_once_then_resume_without_repeating_a_run(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    out = tmp_path / "exp"
    argv = ["--original", str(tiny / "o.conll"), "--data_dir", str(tiny), "--simulate", "0.5", "--seeds", "0",
            "--regimens", "original", "seq-d-o", "--schedules", "--max_steps", "2", "--batch_size", "8",
            "--jobs", "2", "--out_dir", str(out), "--", "--eval_batch_size", "32"]
    main(argv)
    first = capsys.readouterr().out
    assert "0 already done, 2 to run" in first and first.count(": done in") == 2
    threads = max(1, (os.cpu_count() or 1) // 2)  # the runs share the cores instead of each taking all of them
    for log in out.rglob("train.log"):
        assert f"device cpu with {threads} threads" in log.read_text()
    res = json.loads((out / "results.json").read_text())
    assert {(r["regimen"], r["status"]) for r in res["runs"]} == {("original", "done"), ("seq-d-o", "done")}
    run = {r["regimen"]: r for r in res["runs"]}
    assert run["seq-d-o"]["total_steps"] == 2 and run["original"]["realised_d_share"] == 0.0
    assert res["d_files"][0]["annotation"]["matched"] == 40 and res["d_files"][0]["corruption"]["corrupted"] > 0
    md = (out / "results.md").read_text()
    assert "simulated" in md and "| seq-d-o |" in md and "| original |" in md and \
        "python regimens.py --original" in md
    assert not (out / "runs" / "sim-0.5" / "seq-d-o" / "seed0" / "model").exists()  # models are not kept

    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}
    main(argv)
    second = capsys.readouterr().out
    assert "2 already done, 0 to run" in second and "done in" not in second
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")} == mtimes


@pytest.mark.slow
def test_a_crashing_run_is_recorded_and_the_runner_carries_on(tiny, tmp_path, capsys):
    out = tmp_path / "exp"
    argv = ["--original", str(tiny / "o.conll"), "--data_dir", str(tiny), "--simulate", "0.5", "--seeds", "0,1",
            "--regimens", "original", "--schedules", "--max_steps", "1", "--out_dir", str(out),
            "--", "--no_such_flag", "1"]
    main(argv)  # one run at a time (--jobs 1)
    assert capsys.readouterr().out.count("FAILED") == 2  # both seeds tried
    res = json.loads((out / "results.json").read_text())
    assert [r["status"] for r in res["runs"]] == ["failed", "failed"]
    assert "unrecognized arguments" in res["runs"][0]["error"]
    assert "Failed (stderr in results.json): original seed 0, original seed 1" in (out / "results.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("budget, steps", [("total", {"original": 10, "distilled": 10, "seq-d-o": 10}),
                                           ("o", {"original": 5, "distilled": 5, "seq-d-o": 10})])
def test_the_two_budgets(tiny, tmp_path, capsys, budget, steps):
    """total: every regimen of a D gets ceil((|O| + |D|) / batch) x epochs steps; o: each gets its own data's
    (original O's, distilled D's, a mix both's), so O is seen as often in every run and D comes on top.
    O and the simulated D have 40 sentences each; batch 8, 1 epoch."""
    out = tmp_path / budget
    main(["--original", str(tiny / "o.conll"), "--data_dir", str(tiny), "--simulate", "0.5", "--seeds", "0",
          "--epochs", "1", "--batch_size", "8", "--regimens", "original", "distilled", "seq-d-o", "--schedules",
          "--budget", budget, "--out_dir", str(out), "--dry_run"])
    cmds = capsys.readouterr().out.strip().splitlines()
    got = {c.split("--strategy ")[1].split()[0]: int(c.split("--max_steps ")[1].split()[0]) for c in cmds}
    assert got == steps
    # once an epoch
    assert all(f"--eval_every {steps[r]}" in c for r, c in zip(("original", "distilled", "seq-d-o"), cmds))
    assert f"original/steps{steps['original']}_eval{steps['original']}" in cmds[0]
    with pytest.raises(SystemExit):
        main(["--original", str(tiny / "o.conll"), "--simulate", "0.5", "--budget", "o", "--max_steps", "3"])


def test_runner_flags_after_double_dash_are_refused(tiny):
    with pytest.raises(SystemExit):
        main(["--original", str(tiny / "o.conll"), "--simulate", "0.5", "--", "--seed", "3"])


@pytest.mark.slow
def test_bbc_sentences_labelled_by_a_model_are_a_d_under_both_budgets(tiny, tmp_path, capsys):
    """D of new text: seeded BBC sentences (with article and sentence kept) labelled by a model folder
    (annotate.py --labeller, the strong annotator's path), none of them in O, through the runner."""
    import annotate
    from common import DATA
    from train import Config, train
    train(Config(data_dir=str(tiny), original=str(tiny / "o.conll"), out_dir=str(tmp_path / "m"), max_steps=10,
                 batch_size=8, lr=3e-4, progress=0))
    d_path = str(tmp_path / "bbc_model.conll")
    annotate.run(annotate.parse_args(["--format", "bbc", "--input", os.path.join(DATA, "bbc", "bbc.jsonl"),
                                      "--limit", "30", "--seed", "0", "--labeller", str(tmp_path / "m" / "model"),
                                      "--out", d_path, "--progress", "0"]))
    assert len(read_conll(d_path)) == 30
    for budget in ("total", "o"):
        out = tmp_path / budget
        main(["--original", str(tiny / "o.conll"), "--data_dir", str(tiny), "--distilled", f"bbc={d_path}",
              "--seeds", "0", "--regimens", "original", "union", "--schedules", "--epochs", "0.2", "--batch_size", "8",
              "--budget", budget, "--out_dir", str(out), "--", "--eval_batch_size", "32"])
        res = json.loads((out / "results.json").read_text())
        steps = {r["regimen"]: r["total_steps"] for r in res["runs"]}
        # 40 O, 30 D, batch 8
        assert steps == ({"original": 2, "union": 2} if budget == "total" else {"original": 1, "union": 2})
        md = (out / "results.md").read_text()
        assert "annotation F1 n/a (no sentence matches O)" in md and "| union |" in md
        assert ("The same O steps" in md) == (budget == "o")
    capsys.readouterr()


@pytest.mark.slow
def test_a_grid_resumes_from_its_records_alone_without_repeating_a_finished_run(tiny, tmp_path, capsys):
    """What a repository keeps of a grid (each run's settings.json, runner.json and metrics.json; no weights,
    logs or predictions), copied to another folder as a fresh clone would have it, with one run still to do:
    the same command runs only that one, and refuses the records under other settings."""
    import shutil
    out = tmp_path / "exp"
    argv = ["--original", str(tiny / "o.conll"), "--data_dir", str(tiny), "--simulate", "0.5", "--seeds", "0,1",
            "--regimens", "original", "--schedules", "--max_steps", "2", "--batch_size", "8", "--out_dir", str(out),
            "--", "--eval_batch_size", "32"]
    main(argv)
    capsys.readouterr()
    clone = tmp_path / "clone"
    for p in out.rglob("*"):
        if p.is_file() and p.name in ("settings.json", "runner.json", "metrics.json") and "seed1" not in str(p):
            (clone / p.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, clone / p.relative_to(out))
    seed0 = next(clone.rglob("seed0"))
    record = json.loads((seed0 / "runner.json").read_text())
    assert record["command"].startswith("python train.py ") and "commit" in record
    resumed = [a if a != str(out) else str(clone) for a in argv]
    main(resumed)
    log = capsys.readouterr().out
    assert "1 already done, 1 to run" in log and log.count("done in") == 1 and "seed 1" in log
    assert json.loads((seed0 / "metrics.json").read_text()) == \
        json.loads((out / seed0.relative_to(clone) / "metrics.json").read_text())
    from cli import DataError
    with pytest.raises(DataError, match="other settings"):
        main(resumed[:-1] + ["16"])  # --eval_batch_size 16 for every run: the same folders, other settings
