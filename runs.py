"""
Run folders, the one way a pipeline runs a stage in one, and the statistics of runs over seeds: the one home of
these for every script that runs experiments (regimens.py, gendist.py, evokd.py, students.py) or reports them
(eval.py --summarize, bench.py).

A run folder is what train.py writes into --out_dir. It is *finished* when its metrics.json exists:
train.py writes that file last, atomically, so a script that finds it skips the run, and a folder
copied without its model weights (a committed record, say) still counts as finished. A folder is
*claimed* for one set of settings: its first use writes them into it (`claim`), and a later use with
other settings is refused in one line that names what differs, so no folder ever mixes the runs of two
set-ups. Settings name data files by their content (`file_hash`), never by their path, so a record
made on one machine resumes on another.

A stage (`run_stage`) is one training run of a pipeline in its own folder: the folder is claimed for the stage's
settings, a finished stage is skipped, an unfinished one is run (train.py resumes it from its checkpoint), and
runner.json records how it went (`provenance`: the command, the commit, the machine; its status and time).

The statistics: mean ± sample standard deviation over seeds, paired differences (the run of seed s
minus the baseline's run of seed s, which removes what the seeds share), and the markdown tables
that show them.

    python -m pytest -q tests/test_runs.py
"""
import hashlib
import json
import os
import statistics
import subprocess
import time
import traceback
from contextlib import ExitStack, redirect_stderr, redirect_stdout

from cli import DataError
from data import atomic_write

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------------------------
# Run folders

def finished(run_dir):
    return os.path.exists(os.path.join(run_dir, "metrics.json"))


def file_hash(path):
    """sha1 of a file's bytes: how settings name a data file."""
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def read_json(path):
    """A JSON file's content, or None if it is missing or was never completed."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json(path, obj):
    atomic_write(path, json.dumps(obj, indent=1) + "\n")


def differing(mine, held, free=(), shared_only=False):
    """The sorted keys whose values differ between two settings dicts, leaving out those in `free`. A key only one of
    them holds counts as differing, unless shared_only (a record written before that setting was kept)."""
    keys = mine.keys() & held.keys() if shared_only else mine.keys() | held.keys()
    return sorted(k for k in keys if k not in free and mine.get(k) != held.get(k))


def claim(folder, settings, name="settings.json", free=(), renamed=None):
    """Bind `folder` to `settings` (a JSON-able dict): written on first use; afterwards the same settings
    are required, except the keys in `free` (what may change on a resumed run: a server address, how many
    rounds). `renamed` {old key: new key}: a folder claimed before a setting was renamed holds it under its old
    name. Raises DataError naming the settings that differ."""
    path = os.path.join(folder, name)
    held = read_json(path)
    if held is None:
        os.makedirs(folder, exist_ok=True)
        write_json(path, settings)
        return
    held = {(renamed or {}).get(k, k): v for k, v in held.items()}
    diff = differing(settings, held, free)
    if diff:
        raise DataError(f"{folder} holds a run with other settings ({', '.join('--' + k for k in diff)} differ; "
                        f"see {path}): use the same flags to resume it, or another output folder")


def run_stage(run_dir, work, settings=None, command=None, log=False):
    """Run one stage of a pipeline in `run_dir`, and return its metrics.json: claim the folder for `settings` (None:
    the pipeline has claimed its whole output folder for its settings), return a finished stage's metrics without
    running it again, else call `work()` (a training run that writes run_dir/metrics.json, e.g. train.train with its
    Config) and write runner.json, the stage's record: provenance(command), status ("running", "done", "failed"),
    wall_s, and a failed try's error, which is raised again. log=True: the stage's printing goes to run_dir/train.log
    (a grid of runs, a loop of rounds) instead of the console.

    Training runs here, in this process, never as a `python train.py` subprocess: the stage's metrics come back as a
    value, a killed pipeline leaves no training behind it still writing into the folder its next run resumes, and no
    run pays again for starting Python and importing torch (seconds each, on every stage of every test). A grid that
    runs stages side by side (regimens.py --jobs) runs this same function in a pool of worker processes."""
    if settings is not None:
        claim(run_dir, settings)
    if finished(run_dir):
        return read_json(os.path.join(run_dir, "metrics.json"))
    os.makedirs(run_dir, exist_ok=True)
    record_path, t0 = os.path.join(run_dir, "runner.json"), time.time()
    write_json(record_path, {"command": command, "status": "running"})
    log_path = os.path.join(run_dir, "train.log")
    try:
        with ExitStack() as stack:
            if log:
                f = stack.enter_context(open(log_path, "w", encoding="utf-8"))
                stack.enter_context(redirect_stdout(f))
                stack.enter_context(redirect_stderr(f))
            work()
        if not finished(run_dir):
            raise RuntimeError(f"{run_dir}: the stage ended without writing metrics.json")
    except (Exception, SystemExit) as e:  # SystemExit: a usage mistake argparse reported
        printed = open(log_path, encoding="utf-8", errors="replace").read()[-3000:] if log else ""
        write_json(record_path, {**provenance(command), "status": "failed", "wall_s": round(time.time() - t0, 1),
                                 "error": (printed + "".join(traceback.format_exception_only(e)))[-3000:]})
        raise
    metrics = read_json(os.path.join(run_dir, "metrics.json"))
    write_json(record_path, {**provenance(command, precision=metrics.get("precision")), "status": "done",
                             "wall_s": round(time.time() - t0, 1)})
    return metrics


def read_runs(run_dirs):
    """The metrics.json of each run folder, refused in one line where it is not train.py's."""
    runs = []
    for d in run_dirs:
        path = os.path.join(d, "metrics.json")
        with open(path, encoding="utf-8") as f:
            try:
                runs.append(json.load(f))
            except ValueError as e:  # invalid JSON, or bytes that are not UTF-8
                raise DataError(f"{path}: not a metrics.json of train.py ({e})") from None
    return runs


def headline(run):
    """The score a run is judged by: test span F1 (NER) or test accuracy (classification), in %."""
    return 100 * run["test"]["accuracy" if run.get("task") == "classify" else "f1"]


def code_version():
    """The git commit of this code ("+changes" if a tracked .py or requirements file differs from it; results and
    data may change beside a grid), or None outside a checkout: kept in each run's record, so a number can be traced
    to the code that made it."""
    try:
        head = subprocess.run(["git", "-C", HERE, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--untracked-files=no", "--",
                                "*.py", "requirements*.txt"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def cpu_info(path="/proc/cpuinfo"):
    """(the CPU's model name, the set of its flags) from /proc/cpuinfo (Linux); (None, set()) where it cannot be
    read."""
    cpu, flags = None, set()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and cpu is None:
                    cpu = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return cpu, flags


def machine(threads=None):
    """What a number was measured on: the CPU's model, whether it computes bf16 natively (AVX-512 BF16 or AMX:
    where it does not, train.py runs in fp32 and speed is not comparable), the threads the run used, and the GPU
    if one was used. Read from /proc/cpuinfo (cpu_info); None for what cannot be read."""
    cpu, flags = cpu_info()
    import torch  # here, not at the top: report.py reads records without importing torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(),
            "avx512_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}) if flags else None,
            "avx2": "avx2" in flags if flags else None,
            "threads": threads if threads is not None else torch.get_num_threads(), "gpu": gpu,
            "torch": torch.__version__}


def provenance(command, precision=None, threads=None, copied_from=None):
    """The record every run keeps beside its metrics: the command that made it, the code's commit ("+changes" where
    the tree differed), the machine and the precision. `copied_from` names the folder a copied record came from."""
    record = {"command": command, "commit": code_version(), "machine": machine(threads), "precision": precision,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if copied_from:
        record["copied_from"] = copied_from
    return record


# ---------------------------------------------------------------------------------------------
# Statistics over seeds

def mean_std(xs):
    """Mean and sample standard deviation (n - 1); std is None below two values, both None for none."""
    xs = list(xs)
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def paired(by_seed, base_by_seed):
    """A result's values by seed against a baseline's, paired by seed: mean ± std of the values and of the
    per-seed differences, how many seeds were paired and on how many the result is higher."""
    seeds = sorted(set(by_seed) & set(base_by_seed))
    diffs = [by_seed[s] - base_by_seed[s] for s in seeds]
    mean, std = mean_std(by_seed.values())
    delta, delta_std = mean_std(diffs)
    return {"n": len(by_seed), "mean": mean, "std": std, "delta_mean": delta, "delta_std": delta_std,
            "paired": len(seeds), "better": sum(d > 0 for d in diffs), "diffs": diffs}


def round_ratios(rounds, name, base):
    """Each round's own ratio of `name`'s inference speed to `base`'s, sorted (rounds: bench.py --out's, a list of
    rounds per configuration): the two ran back to back in a round, so a drift of the machine cancels."""
    return sorted(a["infer_tok_s"] / b["infer_tok_s"] for a, b in zip(rounds[name], rounds[base]))


def pm(mean, std=None, signed=False, digits=2):
    """'79.03 ± 0.52' ('+1.34 ± 0.61' signed); '–' for no value, no '±' for no spread."""
    if mean is None:
        return "–"
    if signed:
        mean = round(mean, digits) + 0.0  # + 0.0: a change that rounds to zero reads +0.00, not -0.00
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return text if std is None else f"{text} ± {std:.{digits}f}"


def vs_base(stats, digits=2):
    """A paired comparison as a table cell: '+1.34 ± 0.61 (3/3 better)', '–' where nothing was paired."""
    if not stats["paired"]:
        return "–"
    return (f"{pm(stats['delta_mean'], stats['delta_std'], signed=True, digits=digits)} "
            f"({stats['better']}/{stats['paired']} better)")


def table(header, rows):
    """A markdown table: a header row and rows of cells (anything; None shows as '–')."""
    cell = lambda x: "–" if x is None else str(x)  # noqa: E731
    return "\n".join(["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(map(cell, r)) + " |" for r in rows)]) + "\n"
