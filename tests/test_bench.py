"""bench.py's ratio lines, from recorded rounds (the timing itself is a benchmark, not a test), and its student
beside a teacher that reads documents taking train.py's step."""
import json
import subprocess
import sys

import torch

import bench
from bench import student_ratios
from cli import parse_config
from common import CONLL, ROOT


def rounds(name, infer, train=None):
    return [{"name": name, "infer_tok_s": x, "train_tok_s": train} for x in infer]


def test_ratio_lines_give_the_ratio_of_medians_and_each_rounds_own_ratio(tmp_path):
    runs = {"ours": rounds("ours", [100, 200, 100], 10.0), "student": rounds("student", [300, 500, 250], 30.0),
            "student-int8": rounds("student-int8", [330, 750, 250])}
    med = {"ours": {"infer_tok_s": 100, "train_tok_s": 10.0}, "student": {"infer_tok_s": 300, "train_tok_s": 30.0},
           "student-int8": {"infer_tok_s": 330, "train_tok_s": None}}
    want = ["ratio student/ours: training 3.00, inference 3.00 (by round: median 2.50, 2.50 to 3.00)",
            "ratio student-int8/student: inference 1.10 (by round: median 1.10, 1.00 to 1.50)",
            "ratio student-int8/ours: inference 3.30 (by round: median 3.30, 2.50 to 3.75)"]
    assert student_ratios(med, runs) == want
    saved = tmp_path / "speed.json"  # --report prints them again from what --out wrote, without running anything
    saved.write_text(json.dumps({"command": "python bench.py --student L2-H384", "median": med, "rounds": runs}))
    out = subprocess.run([sys.executable, "bench.py", "--report", str(saved)], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.splitlines() == ["command: python bench.py --student L2-H384", *want]


def test_onnx_runtime_configurations_are_set_against_ours_in_the_same_precision():
    runs = {"ours": rounds("ours", [200, 220], 10.0), "ours-fp32": rounds("ours-fp32", [100, 90]),
            "ort": rounds("ort", [125, 100]), "student-ort-int8": rounds("student-ort-int8", [1000, 1320])}
    med = {n: {"infer_tok_s": x, "train_tok_s": 10.0 if n == "ours" else None}
           for n, x in (("ours", 210), ("ours-fp32", 95), ("ort", 112.5), ("student-ort-int8", 1160))}
    assert student_ratios(med, runs) == [
        "ratio ours-fp32/ort: inference 0.84 (by round: median 0.85, 0.80 to 0.90)",
        "ratio ours/ort: inference 1.87 (by round: median 1.90, 1.60 to 2.20)",
        "ratio student-ort-int8/ours: inference 5.52 (by round: median 5.50, 5.00 to 6.00)"]



def test_a_student_beside_a_teacher_reading_documents_trains_as_train_py_steps():
    args = parse_config(bench.Config, ["--student", "L2-H384", "--sentences", "24", "--teacher_context", "16",
                                       "--data_dir", CONLL])
    torch.manual_seed(0)
    examples, labels = bench.load_examples(24, 0, CONLL, context=0)
    model = bench.build("ours-student-teacher-ctx", labels, "L2-H384")[0]
    teacher, cfg, viewed, opt = bench.beside_teacher("ours-student-teacher-ctx", model, examples, args, bf16=False)
    assert teacher.reads == 16 and any(len(e["teacher"][0]) > len(e["ids"]) for e in viewed)
    before = {k: v.clone() for k, v in teacher.student.state_dict().items()}
    bench.step_beside(teacher, cfg, viewed[:8], bf16=False)  # train.forward_backward: gradients on the student and W
    assert all(p.grad is not None for p in teacher.student.parameters() if p.requires_grad)
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in teacher.student.state_dict().items())


def test_a_student_beside_a_cached_teacher_reads_every_step_back():
    args = parse_config(bench.Config, ["--student", "L2-H384", "--sentences", "24", "--teacher_context", "16",
                                       "--data_dir", CONLL])
    examples, labels = bench.load_examples(24, 0, CONLL, context=0)
    model = bench.build("ours-student-teacher-ctx-cached", labels, "L2-H384")[0]
    teacher, cfg, viewed, opt = bench.beside_teacher("ours-student-teacher-ctx-cached", model, examples, args,
                                                     bf16=False)
    assert teacher.reads == 16 and cfg.cache_teacher == 1 and len(teacher.cache.at) == len(viewed)
    bench.step_beside(teacher, cfg, viewed[3:11], bf16=False)
    bench.step_beside(teacher, cfg, viewed[:5], bf16=False)
    assert teacher.read_back == 2  # every step's targets from the file: no teacher in the timed steps
