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
