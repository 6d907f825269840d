"""report.py: every results table rendered from the committed records, and a check that fails when a page drifts.

The repository's own pages are checked as committed; the failure cases run on a copy of the README and results/ in a
temporary folder, one number edited by hand or one record taken away."""
import json
import os
import shutil

import pytest

import records
import report
import tables_llm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_committed_pages_match_their_records(capsys):
    assert report.main(["--check"]) == 0, capsys.readouterr().out


@pytest.fixture
def copy(tmp_path, monkeypatch):
    """The README and results/ copied to a temporary folder, which report.py then reads instead."""
    shutil.copy(os.path.join(ROOT, "README.md"), tmp_path / "README.md")
    shutil.copytree(os.path.join(ROOT, "results"), tmp_path / "results",
                    ignore=shutil.ignore_patterns("*.png", "model", "checkpoint"))
    monkeypatch.setattr(records, "HERE", str(tmp_path))
    return tmp_path


def edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_number_edited_by_hand_fails_the_check_naming_its_cell(copy, capsys):
    page = copy / "results" / "regimens.md"
    edit(page, "| sigmoid:k=10,t0=0.5 | 81.41 ± 0.20 |", "| sigmoid:k=10,t0=0.5 | 81.51 ± 0.20 |")
    assert report.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert ("results/regimens.md: table regimens_bbc_total_strong: row 'sigmoid:k=10,t0=0.5', column 'test F1': "
            "the page says '81.51 ± 0.20', the records give '81.41 ± 0.20'") in out
    report.main(["--no_figures"])  # rendering puts the records' number back
    assert "| sigmoid:k=10,t0=0.5 | 81.41 ± 0.20 |" in page.read_text(encoding="utf-8")
    assert report.main(["--check"]) == 0


def test_a_missing_record_and_an_unknown_table_fail_the_check(copy, capsys):
    os.remove(copy / "results" / "students" / "transfer.json")
    edit(copy / "results" / "students.md", "<!-- table: students_ablation -->", "<!-- table: students_typo -->")
    assert report.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "results/students.md: table students_transfer: results/students/transfer.json: record missing" in out
    assert "results/students.md: table students_typo: no such table in report.py" in out


def test_a_readme_headline_number_must_be_in_a_rendered_table_of_its_page(copy, capsys):
    readme = copy / "README.md"
    text = readme.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| Phases 2-3"))
    readme.write_text(text.replace(row, row.replace("| BBC text in D", "| 12.34 F1 with BBC text in D", 1)),
                      encoding="utf-8")
    assert report.main(["--check"]) == 1
    assert ("README.md: experiments table, row 'Phases 2-3: O vs D regimens': 12.34 is in no rendered table of "
            "results/regimens.md") in capsys.readouterr().out


def test_a_hand_check_verdict_changed_in_its_record_moves_its_type_and_the_precision(copy, capsys):
    path = copy / "results" / "llm_labels" / "ner_news_check.json"
    rec = json.loads(path.read_text(encoding="utf-8"))
    k = next(i for i, c in enumerate(rec["checks"]) if c["verdict"] != "correct")
    rec["checks"][k]["verdict"] = "correct"
    path.write_text(json.dumps(rec), encoding="utf-8")
    assert report.main(["--check"]) == 1
    assert (f"results/llm_labels.md: table ner_news_check: row {rec['checks'][k]['type']!r}, column 'correct'"
            in capsys.readouterr().out)
    rows = {r[0]: r for r in report.rows_of(tables_llm.ner_news_check())}
    right = sum(c["verdict"] == "correct" for c in rec["checks"])
    assert rows["all"][1:3] == [str(len(rec["checks"])), str(right)]
    assert rows["all"][-1] == f"{100 * right / len(rec['checks']):.1f}"


def test_rows_cells_and_machines():
    assert report.rows_of("| a | b |\n|---|---|\n| 1 | 2 |\n") == [["a", "b"], ["1", "2"]]
    assert records.cell({0: 1.0, 1: 3.0}) == "2.00 ± 1.41 (1.00, 3.00)"
    assert records.versus({0: 2.0, 1: 4.0}, {0: 1.0, 1: 1.0}) == "+2.00 ± 1.41 (2/2 better)"
    assert records.versus({0: 1.0}, {0: 1.004}) == "+0.00"  # a change that rounds to zero has no sign to show
    assert records.versus({0: 1.0, 1: 1.0}, {0: 1.003, 1: 1.001}) == "+0.00 ± 0.00 (0/2 better)"
    new = {"record": {"machine": {"cpu": "X", "avx512_bf16": True, "threads": 1, "gpu": None}, "precision": "bf16"}}
    assert report.machine_of(new) == "X (AVX-512 BF16), 1 thread(s), bf16"
    old = {"precision": "fp32", "config": {"bf16": 1}}  # bf16 asked for, fp32 ran: a CPU without native bf16
    assert report.machine_of(old).startswith("not recorded: a CPU without native bf16")


def test_the_context_teachers_students_pair_seed_by_seed_and_fill_as_runs_finish(copy):
    import tables
    for _, _, *folders in tables.CONTEXT_TEACHERS:  # the committed runs set aside: these records are made by hand
        for folder in folders:
            shutil.rmtree(copy / folder, ignore_errors=True)

    def run(folder, name, seed, test, int8):
        d = copy / "results" / "students" / folder / f"{name}_s{seed}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"test": {"f1": test / 100}, "dev": {"f1": 0.9}}))
        (d / "int8.json").write_text(json.dumps({"test": int8, "dev": 90.0}))
    for s, (t, i) in enumerate([(86.0, 85.5), (86.2, 85.9), (85.8, 85.6)]):  # today's teacher's students
        run("L2-H384-teacher-s0", "d_hidden_bottom_match-bottom", s, t, i)
    run("L2-H384-teacher-ctx64", "d_hidden_bottom_match-bottom", 0, 86.5, 86.0)  # one seed finished so far
    rows = {r[0]: r for r in report.rows_of(tables.context_students())}
    teacher = sum(records.f1s(records.seeds_of("results/training/default/s{s}")).values()) / 3
    assert list(rows) == ["row", "`d_hidden`"]  # no Intel Xeon rows: none of its students has finished
    assert rows["`d_hidden`"][1:7] == ["AMD EPYC", "86.00 ± 0.20 (0, 1, 2)", "85.67 ± 0.21", "86.50 (0)", "86.00",
                                       "+0.50"]
    assert rows["`d_hidden`"][7:] == [f"{teacher:.2f}", f"{teacher - 85.666667:.2f}", f"{teacher - 86.0:.2f}"]
    run("L2-H384-teacher-ctx64", "a_gold_bottom", 0, 84.0, 83.5)  # a row only one teacher's students have yet
    run("L2-H384-xeon-teacher-s0", "a_gold_bottom", 0, 84.4, 84.1)  # the other machine: its own rows and teacher
    body = report.rows_of(tables.context_students())[1:]
    rows = {(r[0], r[1]): r for r in body}
    assert [r[:2] for r in body] == [["`a_gold`", "AMD EPYC"], ["`d_hidden`", "AMD EPYC"], ["`a_gold`", "Intel Xeon"]]
    assert rows["`a_gold`", "AMD EPYC"][2:7] == ["–", "–", "84.00 (0)", "83.50", "–"]
    xeon = sum(records.f1s(records.seeds_of("results/context/xeon/c0_s{s}")).values()) / 3
    assert rows["`a_gold`", "Intel Xeon"][2:] == ["84.40 (0)", "84.10", "–", "–", "–", f"{xeon:.2f}",
                                                  f"{xeon - 84.1:.2f}", "–"]


def test_the_context_grid_pairs_each_run_with_n_0_on_its_own_machine(copy):
    import tables
    for old in ["xeon", *(f"c{n}_s{s}" for n in (32, 64) for s in range(3))]:  # set aside: records made by hand
        shutil.rmtree(copy / "results" / "context" / old, ignore_errors=True)
    amd = records.f1s(records.seeds_of(tables.DEFAULT_RUNS))

    def run(folder, cpu, test, dev=0.9):
        d = copy / "results" / "context" / folder
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({
            "test": {"f1": test / 100}, "dev": {"f1": dev}, "train_seconds": 100.0, "train_tokens_per_s": 1000.0,
            "record": {"machine": {"cpu": cpu}}}))
    xeon = "Intel(R) Xeon(R) Processor"
    run("xeon/c0_s0", xeon, 87.0)
    run("xeon/c0_s1", xeon, 88.0)
    run("xeon/c32_s0", xeon, 87.5)  # pairs with the Xeon's N = 0, seed 0: +0.50
    run("c32_s1", xeon, 88.5)       # another folder, the same machine: the same row, pairs with the Xeon's seed 1
    run("c32_s2", "AMD EPYC", 88.0)  # pairs with the default run of seed 2, which ran on the AMD
    rows = report.rows_of(tables.context_grid())[1:]
    assert [r[:3] for r in rows] == [["0", "AMD EPYC", "0, 1, 2"], ["32", "AMD EPYC", "2"],
                                     ["0", "Intel Xeon", "0, 1"], ["32", "Intel Xeon", "0, 1"]]
    assert rows[1][4] == f"{88.0 - amd[2]:+.2f}"
    assert rows[3][3:5] == ["88.00 ± 0.71 (87.50, 88.50)", "+0.50 ± 0.00 (2/2 better)"]
    run("c64_s0", "a third CPU", 88.0)  # no N = 0 on its machine: nothing to pair with
    assert report.rows_of(tables.context_grid())[-1][3:5] == ["88.00", "–"]
