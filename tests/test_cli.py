"""Every script's answer to bad input: one line on stderr, `error: ...`, naming the file (and line), a non-zero
exit status and never a traceback; train.py refuses impossible settings before loading anything; -h explains
every flag.

    python -m pytest -q tests/test_cli.py
"""
import contextlib
import importlib
import io
import os
import re
import subprocess
import sys
from dataclasses import fields

import pytest
import torch

from cli import run_main
from common import ROOT
from train import Config, check_config, train

CONLL = "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n"
JSONL = '{"text": "EU rejects German call", "label": "politics"}\n{"text": "Peter Blackburn", "label": "sport"}\n'
LATIN1 = "EU B-ORG\nrejects O\nZürich B-LOC\n".encode("latin-1")  # line 3 is not UTF-8
BAD_TAG = "EU B-ORG\nrejects B_ORG\n"
DOCSTART = "-DOCSTART- -X- -X- O\n\n\n"
INVISIBLE = "\n  \n\u200b\n\ufeff\u2060\n"  # blank lines, as far as anyone can see
NOT_OBJECT = '{"text": "a", "label": "x"}\n[1, 2]\n'

# script, arguments, the file written into the folder {d} (its path is {f}), its content, what stderr must say.
# {d} also holds good train/valid/test .txt and .jsonl files, unless the row's file replaces one of them.
CASES = [
    ("train.py", "--data_dir {d}/nowhere", None, None, "{d}/nowhere: no such data folder"),
    ("train.py", "--data_dir {d}", "valid.txt", None, "{d}/valid.txt: no such file (--data_dir: the folder must hold"),
    ("train.py", "--data_dir {d}", "train.txt", LATIN1, "{f}:3: not UTF-8 (byte 0xfc"),
    ("train.py", "--data_dir {d}", "train.txt", "", "no sentences in {f}"),
    ("train.py", "--data_dir {d}", "train.txt", DOCSTART, "no sentences in {f}"),
    ("train.py", "--data_dir {d}", "test.txt", BAD_TAG, "{f}:2: tag 'B_ORG' is not O, B-TYPE or I-TYPE"),
    ("train.py", "--task classify --data_dir {d}", "valid.jsonl", NOT_OBJECT, "{f}:2: expected a JSON object"),
    ("train.py", "--data_dir {d} --model_dir {d}", None, None, "{d}: not a BERT folder: no config.json"),
    ("train.py", "--task classify --data_dir {d} --teacher {d} --teacher_context 8", None, None,
     "--teacher_context 8: context is for ner (a text is read whole)"),
    ("train.py", "--data_dir {d} --cache_teacher 1", None, None, "--cache_teacher 1 needs --teacher"),
    ("train.py", "--data_dir {d} --model_dir {d}", "config.json", '{"model_type": "gpt2"}',
     "{d}: not a BERT folder: model_type 'gpt2'"),
    ("train.py", "--data_dir {d} --model_dir {d}", "config.json", '{"model_type": "bert"}',
     "{d}: not a BERT folder: no weights"),
    ("train.py", "--batch_size 0", None, None, "--batch_size 0: expected at least 1"),
    ("train.py", "--strategy mixed", None, None, "argument --strategy: invalid choice: 'mixed'"),
    ("eval.py", "--gold {d}/missing.txt --pred {d}/test.txt", None, None, "{d}/missing.txt: No such file or directory"),
    ("eval.py", "--gold {d}/test.txt --pred {f}", "p.txt", LATIN1, "{f}:3: not UTF-8"),
    ("eval.py", "--gold {f} --pred {f}", "p.txt", "", "no sentences in {f}"),
    ("eval.py", "--gold {f} --pred {f}", "p.txt", INVISIBLE, "no sentences in {f}"),
    ("eval.py", "--gold {d}/test.txt --pred {f}", "p.txt", BAD_TAG, "{f}:2: tag 'B_ORG'"),
    ("eval.py", "--gold {d}/test.jsonl --pred {f}", "p.jsonl", NOT_OBJECT, "{f}:2: expected a JSON object"),
    ("eval.py", "--gold {f} --pred {f}", "p.jsonl", "\n", "no records in {f}"),
    ("eval.py", "--summarize {d}", None, None, "{d}/metrics.json: No such file or directory"),
    ("data.py", "sample --input {d}/missing.txt --limit 5 --out {d}/o.txt", None, None,
     "{d}/missing.txt: No such file"),
    ("data.py", "sample --input {f} --limit 5 --out {d}/o.txt", "in.txt", LATIN1, "{f}:3: not UTF-8"),
    ("data.py", "sample --input {f} --limit 5 --out {d}/o.txt", "in.txt", "", "no sentences in {f}"),
    ("data.py", "sample --input {f} --limit 5 --out {d}/o.txt", "in.txt", DOCSTART, "no sentences in {f}"),
    ("data.py", "sample --input {f} --limit 5 --out {d}/o.txt", "in.txt", BAD_TAG, "{f}:2: tag 'B_ORG'"),
    ("data.py", "sample --input {d}/train.txt --limit 0 --out {d}/o.txt", None, None,
     "argument --limit: expected an integer >= 1"),
    ("data.py", "split --input {d}/missing.jsonl --out_dir {d}/s", None, None, "{d}/missing.jsonl: No such file"),
    ("data.py", "split --input {f} --out_dir {d}/s", "in.jsonl", '{"text": "Zürich"}'.encode("latin-1"),
     "{f}:1: not UTF-8"),
    ("data.py", "split --input {f} --out_dir {d}/s", "in.jsonl", "", "no records in {f}"),
    ("data.py", "split --input {f} --out_dir {d}/s", "in.jsonl", NOT_OBJECT, "{f}:2: expected a JSON object"),
    ("data.py", "split --input {d}/train.jsonl --out_dir {d}/s --valid 0.6 --test 0.5", None, None,
     "leave nothing for train"),
    ("annotate.py", "--input {d}/missing.txt --out {d}/o.conll", None, None, "{d}/missing.txt: No such file"),
    ("annotate.py", "--input {f} --out {d}/o.conll", "in.txt", LATIN1, "{f}:3: not UTF-8"),
    ("annotate.py", "--input {f} --out {d}/o.conll", "in.txt", "", "no sentences in {f}"),
    ("annotate.py", "--input {f} --out {d}/o.conll", "in.txt", DOCSTART, "no sentences in {f}"),
    ("annotate.py", "--input {f} --out {d}/o.conll", "in.txt", BAD_TAG, "{f}:2: tag 'B_ORG'"),
    ("annotate.py", "--format bbc --input {f} --out {d}/o.conll", "in.jsonl", NOT_OBJECT,
     "{f}:2: expected a JSON object"),
    ("annotate.py", "--concurrency 0", None, None, "argument --concurrency: expected an integer >= 1, got '0'"),
    ("annotate.py", "--min_confidence 0.5", None, None, "--min_confidence needs a confidence"),
    ("annotate.py", "--labeller {d} --confidence samples", None, None, "a --labeller model folder gives none"),
    ("mix.py", "--schedule cosine", None, None, "argument --schedule: invalid choice: 'cosine'"),
    ("mix.py", "--schedule sigmoid --schedule_args k=-2", None, None, "parameter k must be > 0"),
    ("regimens.py", "--original {d}/missing.conll --simulate 0.5 --data_dir {d}", None, None,
     "no such file: {d}/missing.conll"),
    ("regimens.py", "--original {f} --simulate 0.5 --data_dir {d} --out_dir {d}/x", "o.conll", LATIN1,
     "{f}:3: not UTF-8"),
    ("regimens.py", "--original {f} --simulate 0.5 --data_dir {d} --out_dir {d}/x", "o.conll", "",
     "no sentences in {f}"),
    ("regimens.py", "--original {d}/train.txt --simulate 0.5 --data_dir {d} --model_dir {d}", None, None,
     "{d}: not a BERT folder"),
    ("regimens.py", "--original {d}/train.txt --simulate 0.5 --jobs 0", None, None,
     "argument --jobs: expected an integer >= 1"),
    ("gendist.py", "generate --input {d}/missing.jsonl", None, None, "{d}/missing.jsonl: No such file"),
    ("gendist.py", "generate --input {f} --exclude {f}", "in.jsonl", NOT_OBJECT, "{f}:2: expected a JSON object"),
    ("gendist.py", "generate --input {f} --exclude {f}", "in.jsonl", '{"title": "no text"}',
     "{f}: record 1 has no text in field 'text'"),
    ("gendist.py", "generate --n 0", None, None, "argument --n: expected an integer >= 1"),
    ("gendist.py", "generate --form poem", None, None, "argument --form: invalid choice: 'poem'"),
    ("gendist.py", "poem", None, None, "expected a command, generate or run, got poem"),
    ("gendist.py", "run --data_dir {d} --k 3 --out_dir {d}/g", None, None, "{d}/train_k3_s0.jsonl: no such file"),
    ("gendist.py", "run --task ner --data_dir {d} --out_dir {d}/g", None, None, "--unlabelled: ner needs a BBC JSONL"),
    ("gendist.py", "run --data_dir {d} --out_dir {d}/g --generated {d}/none.jsonl", None, None,
     "{d}/none.jsonl: no such file"),
    ("gendist.py", "run --data_dir {d} --out_dir {d}/g --seeds 0,x", None, None,
     "argument --seeds: expected comma-separated integers, got '0,x'"),
    ("annotate.py", "--input {d}/train.txt --labeller {d}/none --out {d}/o.conll", None, None,
     "--labeller {d}/none: not a model folder"),
    ("evokd.py", "--data_dir {d}/nowhere --out_dir {d}/e", None, None, "{d}/nowhere/train.txt: no such file"),
    ("llm_server.py", "--model {d}/nowhere.gguf", None, None, "{d}/nowhere.gguf: no such file"),
    ("llm_server.py", "--repack sometimes", None, None, "argument --repack: invalid choice: 'sometimes'"),
    ("evokd.py", "--data_dir {d} --labeller {d}/none --out_dir {d}/e", None, None,
     "--labeller {d}/none: not a model folder"),
    ("evokd.py", "--data_dir {d} --out_dir {d}", "config.json", '{"k": 3}', "{d} holds a run with other settings (--"),
    ("evokd.py", "--n 0", None, None, "argument --n: expected an integer >= 1"),
    ("evokd.py", "--variant magic", None, None, "argument --variant: invalid choice: 'magic'"),
    ("evokd.py", "summary {d}", None, None, "no finished round in {d} (no rounds.jsonl)"),
    ("bench.py", "--data_dir {d}/nowhere", None, None, "{d}/nowhere/train.txt: No such file"),
    ("bench.py", "--steps 0", None, None, "argument --steps: expected an integer >= 1"),
    ("bench.py", "--configs student-teacher-ctx --student L2-H384 --context 16", None, None,
     "--configs student-teacher-ctx: its student reads sentences alone; leave out --context"),
    ("bench.py", "--report {d}/nowhere.json", None, None, "--report {d}/nowhere.json: no such file"),
    ("bench.py", "--report {f}", "speed.json", '{"command": "python bench.py"}',
     "--report {f}: not a JSON that bench.py --out wrote"),
    ("bench_annotate.py", "--input {f}", "in.txt", INVISIBLE, "no sentences in {f}"),
    ("baseline_tfidf.py", "--data_dir {d}/nowhere", None, None, "{d}/nowhere/train.jsonl: No such file"),
    ("baseline_tfidf.py", "--data_dir {d}", "train.jsonl",
     JSONL.encode().replace(b"German", "Zürich".encode("latin-1")), "{f}:1: not UTF-8"),
    ("baseline_tfidf.py", "--data_dir {d}", "valid.jsonl", "", "no records in {f}"),
    ("baseline_tfidf.py", "--data_dir {d}", "test.jsonl", NOT_OBJECT, "{f}:2: expected a JSON object"),
]


def run(script, *args, cwd=ROOT):
    """A script run as its own program: its entry point, `python script.py ...`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def run_here(script, *args):
    """A script run inside this process, as its last line runs it (run_main(main)), with its exit caught: what the
    program would print and its exit status, without starting Python and torch again for each case."""
    module = importlib.import_module(script[:-3])
    threads, argv, out, err = torch.get_num_threads(), sys.argv, io.StringIO(), io.StringIO()
    sys.argv = [script, *args]  # the program's name in its usage line
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run_main(module.main, list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)  # bench.py sets its own
    if isinstance(code, str):  # SystemExit("error: ..."): Python prints it and exits with 1
        err.write(code + "\n")
        code = 1
    return subprocess.CompletedProcess([script, *args], code or 0, out.getvalue(), err.getvalue())


def prepare(d, name, content):
    """The case's folder: good data files, then the case's own file (None: the file is absent)."""
    for split in ("train", "valid", "test"):
        (d / f"{split}.txt").write_text(CONLL, encoding="utf-8")
        (d / f"{split}.jsonl").write_text(JSONL, encoding="utf-8")
    if name:
        path = d / name
        path.unlink(missing_ok=True)
        if content is not None:
            path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return {"d": str(d), "f": str(d / (name or ""))}


def answer(i, folder, here=True):
    script, args, name, content, _ = CASES[i]
    where = prepare(folder, name, content)
    argv = [a.format(**where) for a in args.split()]
    return where, run_here(script, *argv) if here else run(script, *argv)


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c[0]} {c[1]} {c[2] or ''}".strip() for c in CASES])
def test_bad_input_is_one_line_naming_the_file(tmp_path, monkeypatch, i):
    monkeypatch.chdir(ROOT)
    where, r = answer(i, tmp_path)
    want = CASES[i][4].format(**where)
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and r.stderr.endswith("\n"), r.stderr
    assert want in r.stderr, r.stderr


FIRST_CASE = {script: next(i for i, c in enumerate(CASES) if c[0] == script) for script, *_ in CASES}


@pytest.mark.parametrize("script", sorted(FIRST_CASE))
def test_each_script_as_a_program_answers_bad_input_in_one_line(tmp_path, script):
    """The entry point itself, once per script: `python script.py` with its first bad-input case."""
    where, r = answer(FIRST_CASE[script], tmp_path, here=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert CASES[FIRST_CASE[script]][4].format(**where) in r.stderr, r.stderr


def test_train_default_run_without_conll2003_says_where_to_get_it(tmp_path):
    r = run("train.py", cwd=tmp_path)  # no data/ here
    assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: data/conll2003: no such data folder")
    assert "see the README's Data section" in r.stderr and "train.txt, valid.txt and test.txt" in r.stderr


@pytest.mark.parametrize("flags, message", [
    (dict(batch_size=0), "--batch_size 0: expected at least 1"),
    (dict(max_len=2), "--max_len 2: expected at least 3"),
    (dict(epochs=-1), "--epochs -1: expected more than 0"),
    (dict(lr=0), "--lr 0: expected more than 0"),
    (dict(lr=-1e-4), "--lr -0.0001: expected more than 0"),
    (dict(grad_accum=0), "--grad_accum 0: expected at least 1"),
    (dict(batch_size=32, grad_accum=3), "--batch_size 32 must be a multiple of --grad_accum 3"),
    (dict(eval_batch_size=0), "--eval_batch_size 0: expected at least 1"),
    (dict(kd_temperature=0), "--kd_temperature 0: expected more than 0"),
    (dict(kd_alpha=-0.1), "--kd_alpha -0.1: expected a weight in [0, 1]"),
    (dict(kd_alpha=1.5), "--kd_alpha 1.5: expected a weight in [0, 1]"),
    (dict(warmup=1.0), "--warmup 1.0: expected a fraction of the steps in [0, 1)"),
    (dict(warmup=-0.1), "--warmup -0.1: expected a fraction"),
    (dict(max_steps=-1), "--max_steps -1"),
    (dict(eval_every=-5), "--eval_every -5"),
    (dict(dropout=1.0), "--dropout 1.0"),
    (dict(task="pos"), "--task 'pos': expected ner or classify"),
    (dict(strategy="mixed"), "unknown strategy 'mixed'"),
    (dict(strategy="distilled"), "strategy 'distilled' needs distilled (LLM-labelled) data"),
    (dict(distilled="d.conll"), "--distilled is given but --strategy original ignores it"),
    (dict(strategy="schedule", distilled="d.conll", schedule="cosine"), "unknown schedule 'cosine'"),
    (dict(strategy="schedule", distilled="d.conll", schedule="sigmoid", schedule_args="k"),
     "not of the form name=number"),
    (dict(decode="best"), "--decode 'best'"),
    (dict(student="L2"), "student 'L2': expected L<layers>-H<hidden>"),
    (dict(student_init="copied"), "--student_init 'copied'"),
    (dict(task="classify"), "--task classify needs --data_dir"),
])
def test_check_config_refuses_what_cannot_train(flags, message):
    with pytest.raises(SystemExit) as e:
        check_config(Config(**flags))
    assert str(e.value.code).startswith("error: ") and message in str(e.value.code) and "\n" not in str(e.value.code)


def test_train_checks_before_it_loads_anything(tmp_path):
    with pytest.raises(SystemExit, match="--batch_size 0"):  # a data folder that does not exist is not even looked at
        train(Config(batch_size=0, data_dir=str(tmp_path / "nowhere"), model_dir=str(tmp_path / "nowhere")))
    check_config(Config())  # the defaults pass
    check_config(Config(max_steps=4, task="classify", data_dir="x", strategy="schedule", distilled="d",
                        schedule="linear"))


def flags_without_help(text):
    """The options of a -h text that have no help words, or no default where they are optional."""
    usage, options = text.split("\n\n")[0], text.split("options:\n", 1)[1]
    bad = []
    for block in re.findall(r"^  (-.*?)(?=^  -|\Z)", options, re.M | re.S):
        flag = block.split()[0].rstrip(",")
        words = re.sub(r"^-\S+(,? -\S+)*( [^\s-]\S*)?", "", block).split()  # the flag, its aliases and metavar
        required = re.search(rf"\s{flag}\b", usage)  # in the usage line without [ ]
        if flag != "-h" and (len(words) < 3 or not ("(default:" in block or required)):
            bad.append(block)
    return bad


def test_train_help_explains_every_flag():
    r = run_here("train.py", "-h")
    assert r.returncode == 0 and flags_without_help(r.stdout) == []
    assert all(f"  --{f.name} " in r.stdout for f in fields(Config))


@pytest.mark.parametrize("script", ["eval.py", "data.py sample", "data.py split", "mix.py", "annotate.py",
                                    "gendist.py generate", "gendist.py run", "evokd.py", "evokd.py summary",
                                    "regimens.py", "generate.py", "bench.py", "bench_annotate.py", "baseline_tfidf.py",
                                    "llm_server.py"])
def test_every_script_explains_its_flags(script, capsys, monkeypatch):
    name, *sub = script.split()
    module = __import__(name[:-3])
    monkeypatch.setattr(sys, "argv", [name, *sub, "-h"])  # bench.py and bench_annotate.py read sys.argv
    with pytest.raises(SystemExit) as e:
        module.main(*([[*sub, "-h"]] if name not in ("bench.py", "bench_annotate.py") else []))
    assert e.value.code == 0
    assert flags_without_help(capsys.readouterr().out) == []
