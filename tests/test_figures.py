"""figures.py's choice of records, without matplotlib."""
import json

import figures


def test_each_confidence_curve_is_drawn_once_under_the_unfiltered_labelling(tmp_path):
    curve = [{"threshold": 0.0, "sentences_kept": 1.0, "sentence_f1": 0.6}]
    other = [{"threshold": 0.0, "sentences_kept": 1.0, "sentence_f1": 0.7}]
    reports = {"a_filtered": {"min_confidence": 0.6, "curve": curve},
               "b_plain": {"min_confidence": 0.0, "curve": curve}, "c_samples": {"curve": other},
               "d_no_curve": {"min_confidence": 0.0}}
    (tmp_path / "confidence").mkdir()
    for name, conf in reports.items():
        (tmp_path / "confidence" / f"{name}.report.json").write_text(json.dumps({"confidence": conf}))
    (tmp_path / "confidence" / "e_plain.report.json").write_text(json.dumps({"span_f1": 0.5}))
    kept = [p.rsplit("/", 1)[1] for p, _ in figures.confidence_reports(str(tmp_path))]
    assert kept == ["b_plain.report.json", "c_samples.report.json"]


def test_a_student_row_copied_into_another_folder_is_drawn_once(tmp_path):
    (tmp_path / "speed.json").write_text(json.dumps({"median": {"ours": {"infer_tok_s": 1.0}}}))
    gold = {"test_by_seed": {"0": 84.15, "1": 84.51}, "mean": 84.33, "std": 0.25}
    folders = {"L2": {"a_gold": gold, "d_hidden": {"test_by_seed": {"0": 85.65}, "mean": 85.65, "std": 0.0}},
               "L2-4ep": {"a_gold": gold, "d_hidden": {"test_by_seed": {"0": 86.13}, "mean": 86.13, "std": 0.0}},
               "L3": {"a_gold": {**gold, "test_by_seed": {"0": 86.0, "1": 86.2}}},
               "no_speed": {"a_gold": gold}}
    for name, rows in folders.items():
        (tmp_path / "students" / name).mkdir(parents=True)
        config = {"student": "L3-H384" if name == "L3" else "L2-H384",
                  "speed": "" if name == "no_speed" else str(tmp_path / "speed.json")}
        (tmp_path / "students" / name / "results.json").write_text(json.dumps({"config": config, "rows": rows}))
    kept, lines = figures.student_rows(str(tmp_path))
    assert [(folder, [row for row, _ in rows]) for folder, _, _, rows in kept] == \
        [("L2", ["a_gold", "d_hidden"]), ("L2-4ep", ["d_hidden"]), ("L3", ["a_gold"])]
    assert len(lines) == 1 and "no_speed" in lines[0] and "run without --speed" in lines[0]
