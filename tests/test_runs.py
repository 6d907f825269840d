"""runs.py, the one home of run folders and seed statistics: claiming a folder for one set of settings (and a
folder claimed before a flag was renamed), a stage killed mid-run that resumes to the same result, the statistics
and tables."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from common import ROOT, write_tiny_conll
from cli import DataError
from runs import claim, finished, mean_std, paired, pm, provenance, table, vs_base


def test_a_folder_is_claimed_for_one_set_of_settings(tmp_path):
    claim(str(tmp_path / "out"), {"k": 1, "lr": 0.1, "rounds": 3})
    claim(str(tmp_path / "out"), {"k": 1, "lr": 0.1, "rounds": 3})  # the same: resumes
    claim(str(tmp_path / "out"), {"k": 1, "lr": 0.1, "rounds": 8}, free={"rounds"})  # a free setting may change
    with pytest.raises(DataError, match=r"holds a run with other settings \(--k, --lr differ"):
        claim(str(tmp_path / "out"), {"k": 2, "lr": 0.2, "rounds": 3})
    assert json.loads((tmp_path / "out" / "settings.json").read_text()) == {"k": 1, "lr": 0.1, "rounds": 3}
    assert not finished(str(tmp_path / "out"))


def test_a_record_names_the_commit_and_only_code_changes_mark_it(tmp_path):
    """A grid run from a worktree whose results/ is a link elsewhere still runs the commit's code: not "+changes"."""
    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    for name in ("runs.py", "cli.py", "data.py"):
        shutil.copy(os.path.join(os.path.dirname(__file__), "..", name), repo / name)
    (repo / "results" / "page.md").write_text("a table\n")

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    def version():
        return subprocess.run([sys.executable, "-c", "import runs; print(runs.code_version())"], cwd=repo,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "code")
    (repo / "results" / "page.md").write_text("another table\n")
    assert version() == git("rev-parse", "HEAD")
    (repo / "runs.py").write_text((repo / "runs.py").read_text() + "\n# edited\n")
    assert version() == git("rev-parse", "HEAD") + "+changes"


def test_statistics_and_tables():
    assert mean_std([]) == (None, None) and mean_std([2.0]) == (2.0, None)
    s = paired({0: 80.0, 1: 85.0, 2: 84.0}, {0: 81.0, 1: 82.0, 2: 80.0})
    assert (s["paired"], s["better"], s["diffs"]) == (3, 2, [-1.0, 3.0, 4.0]) and s["delta_mean"] == pytest.approx(2.0)
    assert vs_base(s) == "+2.00 ± 2.65 (2/3 better)" and vs_base(paired({0: 1.0}, {})) == "–"
    assert pm(79.03, 0.52) == "79.03 ± 0.52" and pm(1.5, None, signed=True) == "+1.50" and pm(None) == "–"
    assert table(["a", "b"], [[1, None]]) == "| a | b |\n|---|---|\n| 1 | – |\n"


def test_a_folder_claimed_before_a_flag_was_renamed_resumes(tmp_path):
    claim(str(tmp_path / "out"), {"k": 8, "lr": 0.1})  # as gendist.py wrote it when --per_class was --k
    claim(str(tmp_path / "out"), {"per_class": 8, "lr": 0.1}, renamed={"k": "per_class"})
    with pytest.raises(DataError, match=r"other settings \(--per_class differ"):
        claim(str(tmp_path / "out"), {"per_class": 32, "lr": 0.1}, renamed={"k": "per_class"})


# A stage as the pipelines run one: train.py's loop through runs.run_stage, in fp32 (the claim is bit-for-bit
# equality), a small student, a checkpoint after every step so that a kill lands mid-run
STAGE = """
import functools, sys
import runs, train
cfg = train.parse_args(sys.argv[2:] + ["--out_dir", sys.argv[1]])
runs.run_stage(sys.argv[1], functools.partial(train.train, cfg), settings={"args": sys.argv[2:]},
               command="python train.py " + " ".join(sys.argv[2:]), log=True)
"""


def test_a_stage_killed_mid_run_resumes_to_the_same_result_and_is_not_run_again(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_tiny_conll(str(data), n_train=200, n_eval=40)
    args = ["--data_dir", str(data), "--max_steps", "24", "--batch_size", "8", "--eval_every", "10",
            "--eval_batch_size", "32", "--student", "L2-H192", "--lr", "1e-3", "--bf16", "0", "--ckpt_every", "1",
            "--progress", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def stage(folder):
        return subprocess.Popen([sys.executable, "-c", STAGE, str(folder), *args], cwd=ROOT, env=env)
    assert stage(tmp_path / "whole").wait() == 0
    killed = tmp_path / "killed"
    proc = stage(killed)
    deadline = time.time() + 300
    while not (killed / "checkpoint" / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and not finished(str(killed)), "the stage ended before it could be killed"
    assert json.loads((killed / "runner.json").read_text())["status"] == "running"
    assert stage(killed).wait() == 0
    whole, resumed = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "whole", killed))
    timing = {"train_seconds", "train_tokens_per_s", "wall_seconds", "checkpoint_seconds", "checkpoints", "resumed",
              "config", "record"}
    assert resumed["resumed"] and {k: v for k, v in whole.items() if k not in timing} == \
        {k: v for k, v in resumed.items() if k not in timing}
    wa, wb = (load_file(str(d / "model" / "model.safetensors")) for d in (tmp_path / "whole", killed))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)  # bit for bit
    record = json.loads((killed / "runner.json").read_text())
    assert record["status"] == "done" and record["command"].startswith("python train.py ") and "commit" in record
    stamp = (killed / "metrics.json").stat().st_mtime_ns
    assert stage(killed).wait() == 0 and (killed / "metrics.json").stat().st_mtime_ns == stamp  # finished: skipped
    other = subprocess.run([sys.executable, "-c", STAGE, str(killed), *args, "--lr", "1e-4"], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert other.returncode != 0 and "holds a run with other settings" in other.stderr


def test_a_run_record_names_its_command_machine_and_precision():
    """runs.provenance: what every run folder's record carries; the command rebuilds the run's config exactly."""
    import shlex

    import train
    from cli import command_line, parse_config
    cfg = parse_config(train.Config, ["--seed", "2", "--lr", "5e-05", "--out_dir", "out/a b", "--progress", "0",
                                      "--student", "L2-H384"])
    command = command_line("train.py", cfg)
    assert command.startswith("python train.py --")
    assert "--epochs" not in command  # only the flags that differ from their defaults
    assert parse_config(train.Config, shlex.split(command)[2:]) == cfg
    record = provenance(command, precision="bf16", threads=1)
    assert record["command"] == command and record["precision"] == "bf16"
    assert record["machine"]["threads"] == 1 and record["machine"]["cores"] == os.cpu_count()
    assert set(record["machine"]) >= {"cpu", "avx512_bf16", "gpu"}
    assert "copied_from" not in record
    assert provenance(command, copied_from="results/x")["copied_from"] == "results/x"
