"""
Run folders and the statistics of runs over seeds: the one home of both for every script that runs
experiments (experiments.py, gendist.py, evokd.py) or reports them (eval.py --summarize, bench.py).

A run folder is what train.py writes into --out_dir. It is *finished* when its metrics.json exists:
train.py writes that file last, atomically, so a script that finds it skips the run, and a folder
copied without its model weights (a committed record, say) still counts as finished. A folder is
*claimed* for one set of settings: its first use writes them into it (`claim`), and a later use with
other settings is refused in one line that names what differs, so no folder ever mixes the runs of two
set-ups. Settings name data files by their content (`file_hash`), never by their path, so a record
made on one machine resumes on another.

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


def claim(folder, settings, name="settings.json", free=()):
    """Bind `folder` to `settings` (a JSON-able dict): written on first use; afterwards the same settings
    are required, except the keys in `free` (what may change on a resumed run: a server address, how many
    rounds). Raises DataError naming the settings that differ."""
    path = os.path.join(folder, name)
    held = read_json(path)
    if held is None:
        os.makedirs(folder, exist_ok=True)
        write_json(path, settings)
        return
    mine = {k: v for k, v in settings.items() if k not in free}
    theirs = {k: v for k, v in held.items() if k not in free}
    diff = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
    if diff:
        raise DataError(f"{folder} holds a run with other settings ({', '.join('--' + k for k in diff)} differ; "
                        f"see {path}): use the same flags to resume it, or another output folder")


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


def machine(threads=None):
    """What a number was measured on: the CPU's model, whether it computes bf16 natively (AVX-512 BF16 or AMX:
    where it does not, train.py runs in fp32 and speed is not comparable), the threads the run used, and the GPU
    if one was used. Read from /proc/cpuinfo (Linux); None for what cannot be read."""
    cpu, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and cpu is None:
                    cpu = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
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


def pm(mean, std=None, signed=False, digits=2):
    """'79.03 ± 0.52' ('+1.34 ± 0.61' signed); '–' for no value, no '±' for no spread."""
    if mean is None:
        return "–"
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
