"""runs.py, the one home of run folders and seed statistics: claiming a folder for one set of settings, the statistics
and tables, and run folders written by older versions of the experiment scripts, which keep resuming."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

import experiments
import gendist
from common import write_tiny_conll
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


def test_an_experiments_folder_of_an_older_version_resumes_and_is_checked(tmp_path, capsys):
    """Older versions of experiments.py kept, per run, only runner.json with a fingerprint: the sha1 of train.py's
    arguments with O and D by content hash and the dev/test folder by its absolute path (no settings.json). Such a
    folder resumes without repeating a run, and is refused when the fingerprint is of other settings."""
    data = tmp_path / "data"
    data.mkdir()
    write_tiny_conll(str(data), n_train=30, n_eval=10, train_name="o.conll")
    out = tmp_path / "exp"
    argv = ["--original", str(data / "o.conll"), "--data_dir", str(data), "--simulate", "0.5", "--seeds", "0",
            "--regimens", "original", "--schedules", "--max_steps", "1", "--batch_size", "8", "--out_dir", str(out),
            "--", "--eval_batch_size", "32"]
    experiments.main(argv)
    run_dir = next(out.rglob("seed0"))
    command = json.loads((run_dir / "runner.json").read_text())["command"].split()[2:]  # train.py's arguments
    args = command[:command.index("--out_dir")]
    hashes = {str(data / "o.conll"): "sha1:" + hashlib.sha1((data / "o.conll").read_bytes()).hexdigest()}
    key = [hashes.get(a, a) for a in args]
    key[1] = os.path.abspath(str(data))  # as older versions wrote it
    old = {"fingerprint": hashlib.sha1(json.dumps(key).encode()).hexdigest(), "command": "...", "status": "done"}
    (run_dir / "settings.json").unlink()
    (run_dir / "runner.json").write_text(json.dumps(old))
    capsys.readouterr()
    experiments.main(argv)
    assert "1 already done, 0 to run" in capsys.readouterr().out
    (run_dir / "runner.json").write_text(json.dumps({**old, "fingerprint": "0" * 40}))
    with pytest.raises(DataError, match="made with other data or settings"):
        experiments.main(argv)


def test_a_gendist_folder_of_an_older_version_keeps_its_generated_text(tmp_path):
    """Older versions of gendist.py kept G's content hash in generated.hash: the same G resumes, another is refused."""
    g, other = tmp_path / "g.jsonl", tmp_path / "other.jsonl"
    g.write_text('{"text": "a"}\n')
    other.write_text('{"text": "b"}\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "generated.hash").write_text(hashlib.sha1(g.read_bytes()).hexdigest() + "\n")
    rc = gendist.RunConfig(generated=str(g), out_dir=str(out))
    assert gendist.claim_out_dir(rc) == hashlib.sha1(g.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="another --generated"):
        gendist.claim_out_dir(gendist.RunConfig(generated=str(other), out_dir=str(out)))


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
