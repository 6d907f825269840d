"""train.py survives being killed: a run killed at a random moment (SIGKILL, mid-step or mid-save) and run again
with the same command ends exactly where the uninterrupted run ends; Ctrl-C stops at the end of a step with a
checkpoint; other settings in the same folder are refused; a finished run is given back, not trained again; a loss
that becomes NaN stops the run."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from common import ROOT, write_tiny_conll

pytestmark = pytest.mark.slow  # every test here trains, most in subprocesses

# fp32 (--bf16 0): the claim tested is bit-for-bit equality; a small student keeps each checkpoint small, and a
# checkpoint after every step (--ckpt_every 1) lets a kill at a random moment land anywhere, in a save too
ARGS = ["--max_steps", "24", "--batch_size", "8", "--eval_every", "10", "--eval_batch_size", "32",
        "--student", "L2-H192", "--lr", "1e-3", "--bf16", "0", "--ckpt_every", "1", "--progress", "0"]
TIMING = {"train_seconds", "train_tokens_per_s", "wall_seconds", "checkpoint_seconds", "checkpoints", "resumed",
          "config", "record"}  # config and record name the run's own --out_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    write_tiny_conll(str(d), n_train=200, n_eval=40)
    return d


def command(tiny, out, *extra):
    return [sys.executable, os.path.join(ROOT, "train.py"), "--data_dir", str(tiny), "--out_dir", str(out),
            *ARGS, *extra]


def run(cmd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    t0 = time.time()
    r = run(command(tiny, out))
    assert r.returncode == 0, r.stderr
    return out, time.time() - t0


def same_run(a, b):
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert {k: v for k, v in ma.items() if k not in TIMING} == {k: v for k, v in mb.items() if k not in TIMING}
    wa, wb = (load_file(str(d / "model" / "model.safetensors")) for d in (a, b))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)  # bit for bit
    assert (a / "test_predictions.conll").read_text() == (b / "test_predictions.conll").read_text()
    return mb


def test_killed_at_a_random_moment_the_same_command_ends_where_the_whole_run_ends(tiny, uninterrupted, tmp_path):
    whole, _ = uninterrupted
    m = json.loads((whole / "metrics.json").read_text())
    training = m["train_seconds"] + m["checkpoint_seconds"]  # what the steps and their saves took
    out = tmp_path / "killed"
    rng = random.Random()  # a different moment every time the test runs: no friendly, fixed step
    for attempt in range(5):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.Popen(command(tiny, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=ROOT, env=env)
        while not (out / "checkpoint" / "last.pt").exists() and proc.poll() is None:  # the first step is done
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.8) * training)  # then anywhere in the steps, the dev passes or the saves
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (out / "metrics.json").exists():
            break  # killed before the end, as wanted; otherwise try again from scratch
        shutil.rmtree(out)
    assert (out / "checkpoint" / "last.pt").exists() and not (out / "metrics.json").exists()
    r = run(command(tiny, out))
    assert r.returncode == 0 and "resuming from" in r.stdout, r.stdout + r.stderr
    assert same_run(whole, out)["resumed"]
    assert not (out / "checkpoint").exists()  # a finished run keeps metrics.json and model/, not its checkpoint


def test_ctrl_c_stops_at_the_end_of_a_step_with_a_checkpoint_and_the_run_resumes(tiny, uninterrupted, tmp_path):
    whole, seconds = uninterrupted
    out = tmp_path / "stopped"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command(tiny, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env=env)
    while not (out / "checkpoint" / "last.pt").exists():  # training has begun
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "run the same command to resume" in log and "Traceback" not in log, log
    assert (out / "checkpoint" / "last.pt").exists() and not (out / "metrics.json").exists()
    r = run(command(tiny, out))
    assert r.returncode == 0 and "resuming from" in r.stdout, r.stdout + r.stderr
    assert same_run(whole, out)["resumed"]


def test_a_checkpoint_of_other_settings_is_refused_and_restart_starts_over(tiny, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command(tiny, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env=env)
    while not (out / "checkpoint" / "last.pt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = run(command(tiny, out, "--lr", "3e-4"))
    assert r.returncode == 2 and "lr differ" in r.stderr and "--restart 1" in r.stderr and \
        "Traceback" not in r.stderr, r.stderr
    r = run(command(tiny, out, "--lr", "3e-4", "--max_steps", "3", "--restart", "1"))
    assert r.returncode == 0 and "resuming" not in r.stdout, r.stderr
    assert json.loads((out / "metrics.json").read_text())["config"]["lr"] == 3e-4


def test_a_finished_run_is_given_back_not_trained_again_and_other_settings_are_refused(tiny, uninterrupted, tmp_path):
    out = tmp_path / "finished"
    shutil.copytree(uninterrupted[0], out)  # a finished run, as a committed record is one (its out_dir may change)
    before = (out / "metrics.json").read_bytes()
    r = run(command(tiny, out))
    assert r.returncode == 0 and "not trained again" in r.stdout and "step 1/" not in r.stdout, r.stdout + r.stderr
    assert (out / "metrics.json").read_bytes() == before
    r = run(command(tiny, out, "--lr", "3e-4"))
    assert r.returncode == 2 and "finished run" in r.stderr and "lr differ" in r.stderr and \
        "--restart 1" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run(command(tiny, out, "--lr", "3e-4", "--max_steps", "3", "--restart", "1"))
    assert r.returncode == 0 and "not trained again" not in r.stdout, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["lr"] == 3e-4 and m["total_steps"] == 3 and set(m["inputs"]["data"]) == {"original", "dev", "test"}


def test_a_finished_run_on_other_data_is_refused(tiny, uninterrupted, tmp_path):
    out = tmp_path / "finished"
    shutil.copytree(uninterrupted[0], out)
    m = json.loads((out / "metrics.json").read_text())
    m["inputs"]["data"]["original"] = "0" * 40  # the run was trained on a train.txt of other content
    (out / "metrics.json").write_text(json.dumps(m))
    r = run(command(tiny, out))
    assert r.returncode == 2 and "the data files' content differ" in r.stderr and "Traceback" not in r.stderr, r.stderr
    del m["inputs"]  # a record written before the inputs were kept is compared on its flags alone
    (out / "metrics.json").write_text(json.dumps(m))
    assert "not trained again" in run(command(tiny, out)).stdout


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_step(tiny, tmp_path):
    r = run(command(tiny, tmp_path / "nan", "--lr", "1e9", "--grad_clip", "0", "--warmup", "0"))
    assert r.returncode != 0 and "the loss became" in r.stderr and "at step" in r.stderr and \
        "--lr" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "nan" / "metrics.json").exists()


def test_under_torchrun_the_master_alone_writes_and_every_process_resumes(tiny, tmp_path):
    """Two processes killed together after a checkpoint, then the same torchrun command: the end is the uninterrupted
    two-process run's, bit for bit (each process's random state is in the checkpoint the master wrote)."""
    def torchrun(out):
        cmd = command(tiny, out)
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *cmd[1:]]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    whole = subprocess.run(torchrun(tmp_path / "whole"), capture_output=True, text=True, cwd=ROOT, env=env)
    assert whole.returncode == 0, whole.stderr[-3000:]
    out = tmp_path / "killed"
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(torchrun(out), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                            start_new_session=True)
    while not (out / "checkpoint" / "last.pt").exists() and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(random.Random().uniform(0.0, 1.0))
    # the launcher and both workers, which torchrun starts in sessions of their own
    subprocess.run(["pkill", "-9", "-f", "--", f"--out_dir {out} "])
    proc.wait()
    log.close()
    assert (out / "checkpoint" / "last.pt").exists() and not (out / "metrics.json").exists(), \
        (tmp_path / "killed.log").read_text()[-3000:]
    r = subprocess.run(torchrun(out), capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0 and r.stdout.count("resuming from") == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert same_run(tmp_path / "whole", out)["world_size"] == 2
