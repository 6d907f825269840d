"""
Every training regimen over several seeds, for one or more distilled (D) files: test F1 tables.

    python experiments.py --original runs/o_1000.conll --distilled runs/d_smollm2_1000.conll --simulate 0.1,0.3,0.5
    python experiments.py --original o.conll --simulate 0.5 --seeds 0 --regimens original seq-d-o --schedules \\
        --max_steps 2 --batch_size 8 -- --bf16 0      # a smoke run; extra train.py flags after --
    python experiments.py ... --dry_run               # print every train.py command and stop

For each D, every regimen is one `python train.py` subprocess per seed: `original` (O alone),
`distilled` (D alone), `union`, `seq-d-o` (D then O, the paper's Simple Mix), `seq-o-d`, and each
`--schedules NAME:ARGS` (train.py --strategy schedule --schedule NAME --schedule_args ARGS).
Writes into --out_dir, after every run: results.md (per D: a heading with its annotation F1 against O and the step
budget, the command, then each regimen's test F1 mean ± std over seeds, the paired difference to `original`, seeds
better, the realised share of D; and one table of every D side by side) and results.json ({"command", "d_files" (each
D's name, path, annotation F1, steps), "regimens", "seeds", "summary" {D: {regimen: {"mean", "std", "delta_mean",
"delta_std", "paired", "better", "diffs", "d_share"}}} with F1 as fractions, "runs" [one row per run]}).

Step budget. train.py gives a strategy epochs x ceil((|O| + |D|) / batch) steps, |.| counted in
windows, but refuses --distilled with strategy original, so `original` could not see D's size.
Every run is therefore given an explicit --max_steps: the budget of its D, computed here the way
train.py does (windows from predict.encode with the model's tokenizer, --max_len), so all regimens of
one D train for exactly the same number of steps (`--budget total`, the default: D as a substitute for
part of O's steps). `--budget o` gives every run the same O steps instead, D's steps on top (D as an
addition): `original` trains epochs x ceil(|O| / batch) steps, `distilled` epochs x ceil(|D| / batch),
and every regimen that mixes the two epochs x ceil((|O| + |D|) / batch), in which O is drawn as often
as in `original` (exactly so for union and the sequences; on average over the run for a schedule whose
mean D share is |D| / (|O| + |D|)). --max_steps N sets N for every run instead of either budget.
`original` depends on D only through that budget: its runs live in runs/original/steps{N}_eval{E}/
and are shared by every D with the same budget (the simulated D files all have |O| sentences).

Scored checkpoint. train.py evaluates the whole dev set every --eval_every steps and at the last
step, keeps the checkpoint with the best dev F1, and scores that one on test. --eval_every 0 (the
default) means once per epoch of the budget, ceil((|O| + |D|) / batch) steps, passed explicitly to
every run: left to itself train.py would count an `original` epoch over O alone and so give O-only
runs twice as many checkpoints to choose from (the full dev set costs ~15 s on 2 CPU cores).

Simulated D (--simulate 0.1,0.3,0.5): from O, round(rate x E) of O's E gold entities (eval.py's
default reading) are corrupted, the others left as they are; sentences and tokens never change.
The corrupted entities are the first round(rate x E) of one seeded permutation of all entities
(--sim_seed), so a higher rate corrupts a superset of a lower one's entities. Each corrupted
entity gets one of three kinds, uniformly, from its own seeded generator:
- dropped: all its tags become O;
- wrong type: B-/I- of another type of O's label set, chosen uniformly (if O has a single type:
  dropped instead);
- wrong boundary: one of the moves that are possible, chosen uniformly: extend by one token into
  the O token just before or after it, or shrink an entity of two or more tokens by its first or
  last token; when none is possible (a one-token entity between other entities or the sentence's
  ends), wrong type instead.
Entities are processed left to right on the tags changed so far, so an extension only ever takes
a token that is O at that moment and no untouched entity changes. Tags are written in IOB2 (B- at
every entity's start). The files are out_dir/data/sim-RATE.conll (`token gold corrupted`), and
are labelled as simulated in results.md.

Annotation F1: each D's labels against O's gold (eval.span_f1), over the D sentences whose tokens
equal an O sentence's (a real D may lack the sentences whose LLM call failed, or hold others);
reported with how many sentences matched. D's own gold column is not used.

Several at once: --jobs N runs N train.py processes side by side, each with cpu_count / N threads
(OMP_NUM_THREADS). On 2 CPU cores, two 1-thread runs finish ~1.25x sooner than one 2-thread run after
another; never give the runs more threads in all than there are cores, each would slow many times.

Resume: a run whose metrics.json exists is not repeated (runs.finished); a failed run (its stderr tail is
kept in results.json) is retried by the same command. Each run folder keeps its record: settings.json
(train.py's arguments, with O, D and the dev and test files given by content hash: out_dir refuses to
mix runs made from other data or settings, runs.claim), runner.json (the command, the git commit of the
code that ran it, status and time) and train.py's metrics.json. The rest is not part of the record: the
model/ folder of a finished run is deleted unless --keep_models 1 (about 90 MB each), and the logs and
test predictions may be dropped, so a copy of the records alone (the results/ folder of this repository,
say, on a fresh machine) resumes the grid without repeating a finished run.
"""
import concurrent.futures
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from cli import DataError, above, at_least, int_list, opt, parse_config, run_main
from data import atomic_write, labels_from, read_conll, write_conll
from eval import get_entities, span_f1
from train import Config as TrainConfig
from runs import claim, code_version, file_hash, finished, mean_std, paired, pm, read_json, table, write_json

HERE = os.path.dirname(os.path.abspath(__file__))
REGIMENS = ("original", "distilled", "union", "seq-d-o", "seq-o-d")
DEFAULT_SCHEDULES = ("sigmoid:k=10,t0=0.5", "power:gamma=2")
KINDS = ("dropped", "wrong type", "wrong boundary")
# train.py flags the runner sets itself; after `--` they would silently override or be overridden
RUNNER_FLAGS = {"original", "train_file", "distilled", "strategy", "schedule", "schedule_args", "seed", "out_dir",
                "progress", "max_steps", "data_dir", "epochs", "batch_size", "lr", "max_len", "eval_every", "model_dir"}


# ---------------------------------------------------------------------------------------------
# Simulated distilled data

def boundary_moves(tags, start, end):
    """The wrong-boundary edits possible for the entity tags[start:end], given the current tags."""
    moves = []
    if start > 0 and tags[start - 1] == "O":
        moves.append("extend left")
    if end < len(tags) and tags[end] == "O":
        moves.append("extend right")
    if end - start > 1:
        moves += ["shrink left", "shrink right"]
    return moves


def corrupt(sentences, rate, seed=0, types=None):
    """A copy of `sentences` ((words, tags) pairs) with round(rate x entities) gold entities corrupted
    (see the module docstring); returns (sentences, stats). `types`: the label set's entity types
    (default: those in `sentences`)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"corruption rate must be in [0, 1], got {rate}")
    types = sorted(types or {t[2:] for _, tags in sentences for t in tags if t != "O"})
    entities = [(si, e) for si, (_, tags) in enumerate(sentences) for e in get_entities(tags)]
    k = round(rate * len(entities))
    chosen = set(random.Random(seed).sample(range(len(entities)), len(entities))[:k])
    out = [(list(words), list(tags)) for words, tags in sentences]
    stats = {"entities": len(entities), "corrupted": k, **dict.fromkeys(KINDS, 0)}
    for i, (si, (etype, start, end)) in enumerate(entities):
        if i not in chosen:
            continue
        rng = random.Random(f"{seed}:{i}")  # per entity: its kind does not depend on the rate
        tags = out[si][1]
        kind = rng.choice(KINDS)
        moves = boundary_moves(tags, start, end)
        others = [t for t in types if t != etype]
        if kind == "wrong boundary" and not moves:
            kind = "wrong type"
        if kind == "wrong type" and not others:
            kind = "dropped"
        stats[kind] += 1
        if kind == "dropped":
            tags[start:end] = ["O"] * (end - start)
        elif kind == "wrong type":
            new = rng.choice(others)
            tags[start:end] = [f"B-{new}"] + [f"I-{new}"] * (end - start - 1)
        else:
            move = rng.choice(moves)
            start, end = {"extend left": (start - 1, end), "extend right": (start, end + 1),
                          "shrink left": (start + 1, end), "shrink right": (start, end - 1)}[move]
            if move.startswith("shrink"):  # the token given up becomes O
                tags[start - 1 if move == "shrink left" else end] = "O"
            tags[start:end] = [f"B-{etype}"] + [f"I-{etype}"] * (end - start - 1)
    return out, stats


def make_simulated(original_path, rates, seed, data_dir):
    """Write out_dir/data/sim-RATE.conll for each rate (unchanged files are not rewritten); returns D entries."""
    o = read_conll(original_path)
    types = [l[2:] for l in labels_from(o) if l.startswith("B-")]
    os.makedirs(data_dir, exist_ok=True)
    ds = []
    for rate in rates:
        sents, stats = corrupt(o, rate, seed, types)
        path = os.path.join(data_dir, f"sim-{rate:g}.conll")
        tmp = path + ".new"
        write_conll(tmp, [list(zip(w, g, c)) for (w, g), (_, c) in zip(o, sents)])
        if os.path.exists(path) and file_hash(path) == file_hash(tmp):
            os.remove(tmp)
        else:
            os.replace(tmp, path)
        ds.append({"name": f"sim-{rate:g}", "path": path, "simulated": True, "rate": rate,
                   "sim_seed": seed, "corruption": stats})
    return ds


# ---------------------------------------------------------------------------------------------
# Annotation quality and the step budget

def annotation_f1(original, distilled):
    """D's tags against O's gold over the D sentences whose tokens equal an O sentence's (each O
    sentence matched at most once, in order)."""
    pool = {}
    for i, (words, _) in enumerate(original):
        pool.setdefault(tuple(words), []).append(i)
    gold, pred = [], []
    for words, tags in distilled:
        left = pool.get(tuple(words))
        if left:
            gold.append(original[left.pop(0)][1])
            pred.append(tags)
    scores = span_f1(gold, pred) if gold else {}
    return {"f1": scores.get("f1"), "precision": scores.get("precision"), "recall": scores.get("recall"),
            "matched": len(gold), "n_original": len(original), "n_distilled": len(distilled)}


def count_windows(sentences, tokenizer, max_len):
    from predict import encode  # imports torch; only needed here
    return len(encode(sentences, tokenizer, {}, max_len))


def budget(n_o, n_d, epochs, batch_size):
    """(total steps, steps per epoch) from window counts: train.py's own formula."""
    from train import step_budget  # imports torch; only needed here
    return step_budget(n_o, n_d, epochs, batch_size)


# ---------------------------------------------------------------------------------------------
# Runs

def steps_per_regimen(args, n_o, n_d):
    """{"original", "distilled", "mixed"}: (steps, eval_every) of the runs of one D under --budget."""
    def one(n_o_, n_d_):
        total, per_epoch = budget(n_o_, n_d_, args.epochs, args.batch_size)
        return args.max_steps or total, args.eval_every or per_epoch
    if args.budget == "o" and not args.max_steps:
        return {"original": one(n_o, 0), "distilled": one(0, n_d), "mixed": one(n_o, n_d)}
    both = one(n_o, n_d)
    return {"original": both, "distilled": both, "mixed": both}


def regimen_list(regimens, schedules):
    """[(name, folder, strategy args)] for the regimens and the schedules NAME:ARGS."""
    from mix import get_schedule, parse_schedule_args
    out = []
    for r in regimens:
        if r not in REGIMENS:
            raise ValueError(f"unknown regimen {r!r}; known: {', '.join(REGIMENS)} (schedules go in --schedules)")
        out.append((r, r, ["--strategy", r]))
    for s in schedules:
        name, _, args = s.partition(":")
        get_schedule(name, **parse_schedule_args(args))  # a typo fails now, not after hours of runs
        out.append((s, re.sub(r"[^A-Za-z0-9.=-]+", "_", s),
                    ["--strategy", "schedule", "--schedule", name, "--schedule_args", args]))
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"a regimen or schedule is given twice: {names}")
    return out


def plan(args, ds, regimens, hashes):
    """One job per (D, regimen, seed): its folder, its train.py arguments and the settings it is claimed with."""
    jobs = []
    for d in ds:
        for name, folder, strategy in regimens:
            steps, eval_every = d["steps"]["original" if name == "original"
                                           else "distilled" if name == "distilled" else "mixed"]
            for seed in args.seeds:
                if name == "original":
                    budget_dir = f"steps{steps}_eval{eval_every}"
                    run_dir = os.path.join(args.out_dir, "runs", "original", budget_dir, f"seed{seed}")
                    data = ["--original", args.original]
                else:
                    run_dir = os.path.join(args.out_dir, "runs", d["name"], folder, f"seed{seed}")
                    data = ["--original", args.original, "--distilled", d["path"]]
                train_args = ["--data_dir", args.data_dir, *data, *strategy, "--seed", str(seed),
                              "--epochs", f"{args.epochs:g}", "--batch_size", str(args.batch_size),
                              "--lr", f"{args.lr:g}", "--max_len", str(args.max_len), "--max_steps", str(steps),
                              "--eval_every", str(eval_every),
                              *(["--model_dir", args.model_dir] if args.model_dir else []),
                              "--progress", "0", *args.extra]
                # what the run depends on: its arguments, with every data file (dev and test too) given by its content
                key = [hashes.get(a, a) for a in train_args]
                key[1] = hashes[args.data_dir]
                # run folders of older versions named the dev/test folder
                legacy = [hashes.get(a, a) for a in train_args]
                legacy[1] = os.path.abspath(args.data_dir)
                label = f"original / {steps} steps" if name == "original" else f"{d['name']} / {name}"
                jobs.append({"d": d["name"], "regimen": name, "seed": seed, "run_dir": run_dir,
                             "label": f"{label} / seed {seed}",
                             "cmd": [sys.executable, os.path.join(HERE, "train.py"), *train_args, "--out_dir", run_dir],
                             "command": shlex.join(["python", "train.py", *train_args, "--out_dir", run_dir]),
                             "settings": flag_values(key),
                             "legacy_fingerprint": hashlib.sha1(json.dumps(legacy).encode()).hexdigest()})
    return jobs


def flag_values(args):
    """train.py's arguments ['--seed', '0', ...] as {"seed": "0", ...}: a run's settings, named as its flags."""
    out, flag = {}, None
    for a in args:
        if isinstance(a, str) and a.startswith("--"):
            flag = a[2:]
            out[flag] = None
        elif flag is not None:
            out[flag] = a
            flag = None
    return out


def check_resumable(jobs):
    """Refuse an out_dir whose finished runs were made with other data or settings (settings.json of each run;
    older run folders hold only a fingerprint in runner.json, checked the way they were made)."""
    for job in jobs:
        if not finished(job["run_dir"]):
            continue
        record = read_json(os.path.join(job["run_dir"], "runner.json")) or {}
        if not os.path.exists(os.path.join(job["run_dir"], "settings.json")) and "fingerprint" in record:
            if record["fingerprint"] != job["legacy_fingerprint"]:
                raise DataError(f"{job['run_dir']} holds a finished run made with other data or settings than now "
                                f"(it ran: {record.get('command')}); use another --out_dir, "
                                "or delete that folder to redo it")
            continue
        claim(job["run_dir"], job["settings"])


def tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except FileNotFoundError:
        return ""


def run_job(job, keep_models=False, threads=0, commit=None):
    """Run one train.py as a subprocess; a crash is recorded, never raised. threads > 0 sets its OMP_NUM_THREADS.
    The run folder keeps its record: settings.json (what it was made from), runner.json (the command, the code's
    commit, status, time) and train.py's metrics.json; its weights are deleted unless keep_models."""
    os.makedirs(job["run_dir"], exist_ok=True)
    # not finished: any earlier try is redone
    write_json(os.path.join(job["run_dir"], "settings.json"), job["settings"])
    record = {"command": job["command"], "commit": commit, "status": "running"}
    write_json(os.path.join(job["run_dir"], "runner.json"), record)
    t0 = time.time()
    with open(os.path.join(job["run_dir"], "train.log"), "w") as out, \
            open(os.path.join(job["run_dir"], "train.err"), "w") as err:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else None
        rc = subprocess.run(job["cmd"], stdout=out, stderr=err, env=env).returncode
    ok = rc == 0 and finished(job["run_dir"])
    record.update(status="done" if ok else "failed", returncode=rc, wall_s=round(time.time() - t0, 1),
                  error=None if ok else tail(os.path.join(job["run_dir"], "train.err")))
    write_json(os.path.join(job["run_dir"], "runner.json"), record)
    if ok and not keep_models:
        shutil.rmtree(os.path.join(job["run_dir"], "model"), ignore_errors=True)
    return record


def collect(job):
    """The result of one job as found on disk."""
    record = read_json(os.path.join(job["run_dir"], "runner.json")) or {}
    metrics = read_json(os.path.join(job["run_dir"], "metrics.json"))
    row = {k: job[k] for k in ("d", "regimen", "seed", "run_dir", "command")}
    if metrics:
        cfg = metrics["config"]
        row.update(status="done", test_f1=metrics["test"]["f1"], dev_f1=metrics["dev"]["f1"],
                   best_step=metrics["best_step"], total_steps=metrics["total_steps"],
                   realised_d_share=metrics["realised_d_share"], wall_s=record.get("wall_s"),
                   train_seconds=metrics["train_seconds"], commit=record.get("commit"), config=cfg)
    else:
        row.update(status="failed" if record.get("status") == "failed" else "pending",
                   error=record.get("error"), returncode=record.get("returncode"), wall_s=record.get("wall_s"))
    return row


# ---------------------------------------------------------------------------------------------
# Tables

def summarize(rows, d_names, regimen_names):
    """{d: {regimen: runs.paired(test F1 by seed, original's) + realised D share}} from collected rows (F1 as
    fractions)."""
    summary = {}
    for d in d_names:
        by = {r: {x["seed"]: x for x in rows if x["d"] == d and x["regimen"] == r and x["status"] == "done"}
              for r in regimen_names}
        base = {s: x["test_f1"] for s, x in by.get("original", {}).items()}
        summary[d] = {}
        for r in regimen_names:
            stats = paired({s: x["test_f1"] for s, x in by[r].items()}, base if r != "original" else {})
            stats["d_share"] = mean_std(x["realised_d_share"] for x in by[r].values())[0]
            summary[d][r] = stats
    return summary


def pct(x):
    return None if x is None else 100 * x


def d_heading(d):
    a, c = d["annotation"], d.get("corruption")
    f1 = ("n/a (no sentence matches O)" if a["f1"] is None
          else f"{pm(pct(a['f1']))} over {a['matched']} of {a['n_original']} O sentences")
    what = (f"**simulated**: {c['corrupted']} of O's {c['entities']} gold entities ({100 * d['rate']:g}%) corrupted: "
            f"{c['dropped']} dropped, {c['wrong type']} wrong type, {c['wrong boundary']} wrong boundary "
            f"(sim_seed {d['sim_seed']})" if d["simulated"] else f"`{d['path']}`")
    (steps, every), st = d["steps"]["mixed"], d["steps"]
    scored = ("dev F1 once, at the last step; test F1 of the last checkpoint" if every >= steps
              else f"dev F1 every {every} steps and at the last; test F1 of the best-dev checkpoint")
    if st["original"] == st["distilled"] == st["mixed"]:
        runs = f"Every run: {steps} steps of {d['batch_size']} sentences, {scored}."
    else:
        once = all(e >= s for s, e in st.values())  # every run evaluates dev once, at its last step
        runs = (f"The same O steps for every run, D's on top: original {st['original'][0]} steps, "
                f"distilled {st['distilled'][0]}, the regimens that mix them {steps}, of {d['batch_size']} sentences; "
                + ("dev F1 once, at the last step; test F1 of the last checkpoint." if once else
                   f"dev F1 every {st['original'][1]}, {st['distilled'][1]} and {every} steps and at the last; "
                   "test F1 of the best-dev checkpoint."))
    return f"### D = {d['name']}: {a['n_distilled']} sentences, annotation F1 {f1}\n\n{what}. {runs}"


def markdown(command, ds, regimen_names, summary, rows, n_seeds):
    cmd = f"Command: `{command}`"
    lines = ["# Original (O) against distilled (D) labels: test F1 over seeds", "",
             f"Test span F1 in percent, mean ± sample std over seeds; Δ: mean ± std of the per-seed differences to "
             f"`original` with the same seed (under the step budget its heading gives); better: seeds where the "
             f"regimen beats `original`. seq-d-o is the paper's Simple Mix. {n_seeds} seed(s) planned; "
             "(n=k) marks fewer finished.", ""]
    for d in ds:
        body = []
        for r in regimen_names:
            s = summary[d["name"]][r]
            n = "" if s["n"] == n_seeds else f" (n={s['n']})"
            vs = r != "original" and s["paired"]
            body.append([r, pm(pct(s["mean"]), pct(s["std"])) + n,
                         pm(pct(s["delta_mean"]), pct(s["delta_std"]), signed=True) if vs else "–",
                         f"{s['better']}/{s['paired']}" if vs else "–",
                         "–" if s["d_share"] is None else f"{s['d_share']:.2f}"])
        lines += [d_heading(d), "", cmd, "",
                  table(["regimen", "test F1", "Δ vs original", "better than original", "D share"], body)]
        failed = [x for x in rows if x["d"] == d["name"] and x["status"] == "failed"]
        if failed:
            lines += ["Failed (stderr in results.json): "
                      + ", ".join(f"{x['regimen']} seed {x['seed']}" for x in failed), ""]
    order = sorted(ds, key=lambda d: -1 if d["annotation"]["f1"] is None else d["annotation"]["f1"], reverse=True)
    lines += ["### All D files, by annotation F1: mean test F1", "", cmd, "",
              table(["regimen", *(f"{d['name']} ({pm(pct(d['annotation']['f1']))})" for d in order)],
                    [[r, *(pm(pct(summary[d["name"]][r]["mean"])) for d in order)] for r in regimen_names])]
    return "\n".join(lines)


def write_results(args, command, ds, regimen_names, jobs):
    rows = [collect(j) for j in jobs]
    summary = summarize(rows, [d["name"] for d in ds], regimen_names)
    os.makedirs(args.out_dir, exist_ok=True)
    write_json(os.path.join(args.out_dir, "results.json"),
               {"command": command, "d_files": ds, "regimens": regimen_names, "seeds": args.seeds,
                "summary": summary, "runs": rows})
    md = markdown(command, ds, regimen_names, summary, rows, len(args.seeds))
    atomic_write(os.path.join(args.out_dir, "results.md"), md)
    return rows, summary


# ---------------------------------------------------------------------------------------------
# Command line

@dataclass
class Config:
    original: str = opt(None, "O: gold-labelled CoNLL file (e.g. from data.py sample)", type=str, required=True)
    distilled: list = opt(lambda: [], "D files (tag in the last column), each [NAME=]PATH; NAME defaults to the file "
                                      "name without extension", nargs="*")
    simulate: str = opt("", "comma-separated corruption rates: simulated D files made from O")
    sim_seed: int = opt(0, "seed of the simulated corruption")
    regimens: list = opt(lambda: list(REGIMENS), f"of {', '.join(REGIMENS)}", nargs="*")
    schedules: list = opt(lambda: list(DEFAULT_SCHEDULES), "blending schedules NAME:ARGS of mix.py run as --strategy "
                                                          "schedule; --schedules alone: none", nargs="*")
    seeds: list = opt(lambda: [0, 1, 2], "comma-separated training seeds, one run of each regimen per seed",
                      type=int_list)
    out_dir: str = opt("runs/experiments", "results.md, results.json, runs/, data/")
    data_dir: str = opt("data/conll2003", "holds valid.txt and test.txt")
    epochs: float = opt(TrainConfig.epochs, "sets the step budget", type=above(0))
    budget: str = opt("total", "total: the same steps for every regimen of a D (D replaces some of O's) | o: the same "
                               "O steps, D's on top", choices=["total", "o"])
    max_steps: int = opt(0, "> 0: this many steps for every run instead of the budget", type=at_least(0))
    batch_size: int = opt(TrainConfig.batch_size, "sentences per step", type=at_least(1))
    lr: float = opt(TrainConfig.lr, "peak learning rate", type=above(0))
    max_len: int = opt(TrainConfig.max_len, "word pieces per window, [CLS] and [SEP] included", type=at_least(3))
    eval_every: int = opt(0, "steps between dev evaluations; 0: once per epoch of the budget", type=at_least(0))
    model_dir: str = opt("", "a Hugging Face BERT folder; default: train.py's")
    keep_models: int = opt(0, "1 keeps each run's model/ folder", choices=[0, 1])
    jobs: int = opt(1, "runs at once, each with cpu_count / jobs threads (unless OMP_NUM_THREADS is set)",
                    type=at_least(1))
    dry_run: bool = opt(False, "print the train.py commands and stop")


def parse_args(argv):
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    else:
        extra = []
    args = parse_config(Config, argv, description=__doc__.strip().split("\n\n")[0],
                        epilog="Anything after -- goes to every train.py run unchanged "
                               "(e.g. -- --bf16 0 --warmup 0.1).")
    args.extra = extra

    def error(message):
        raise SystemExit(f"error: {message} (see python experiments.py -h)")
    for a in extra:
        flag = a[2:].split("=")[0] if a.startswith("--") else None
        if flag in RUNNER_FLAGS:
            error(f"--{flag} after -- is set by experiments.py for every run" +
                  (f"; use experiments.py --{flag}" if flag in vars(args) else ""))
    try:
        args.rates = [float(x) for x in args.simulate.split(",") if x.strip()]
    except ValueError:
        error(f"--simulate takes comma-separated rates such as 0.1,0.3,0.5, got {args.simulate!r}")
    if any(not 0 <= r <= 1 for r in args.rates):
        error(f"--simulate rates must lie in [0, 1], got {args.simulate!r}")
    if args.budget == "o" and args.max_steps:
        error("--max_steps sets one step count for every run; it cannot give the same O steps (--budget o)")
    if not args.distilled and not args.rates:
        error("nothing to compare: give --distilled files and/or --simulate rates")
    needed = [args.original, *(d.partition("=")[2] or d for d in args.distilled),
              *(os.path.join(args.data_dir, f) for f in ("valid.txt", "test.txt"))]
    missing = [f for f in needed if not os.path.isfile(f)]
    if missing:
        error(f"no such file: {', '.join(missing)}")
    if args.model_dir:
        from model import check_model_dir
        check_model_dir(args.model_dir)
    return args


def fmt_time(s):
    return "?" if s is None else f"{s / 3600:.1f} h" if s >= 5400 else f"{s / 60:.0f} min" if s >= 90 else f"{s:.0f} s"


def report(job, record, n_done, total, started):
    left = fmt_time((time.time() - started) / n_done * (total - n_done))
    if record["status"] == "done":
        m = read_json(os.path.join(job["run_dir"], "metrics.json"))
        print(f"    {job['label']}: done in {fmt_time(record['wall_s'])}: test F1 {pm(pct(m['test']['f1']))}, "
              f"dev F1 {pm(pct(m['dev']['f1']))} ({n_done}/{total} done, ~{left} left)", flush=True)
    else:
        last = (record["error"] or "").strip().splitlines()[-1:] or ["(no stderr)"]
        print(f"    {job['label']}: FAILED (exit {record['returncode']}) after {fmt_time(record['wall_s'])}: {last[0]}",
              flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = "python experiments.py " + shlex.join(argv)
    args = parse_args(argv)
    try:
        regimens = regimen_list(args.regimens, args.schedules)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    regimen_names = [n for n, _, _ in regimens]

    ds = []
    for spec in args.distilled:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = os.path.splitext(os.path.basename(spec))[0], spec
        ds.append({"name": name, "path": path, "simulated": False})
    ds += make_simulated(args.original, args.rates, args.sim_seed, os.path.join(args.out_dir, "data"))
    names = [d["name"] for d in ds]
    if len(set(names)) != len(names):
        raise SystemExit(f"error: two D files share a name in {names}; name them with --distilled NAME=PATH")

    from model import default_model_dir, load_tokenizer
    tokenizer = load_tokenizer(args.model_dir or default_model_dir())
    o = read_conll(args.original)
    n_o = count_windows(o, tokenizer, args.max_len)
    hashes = {args.original: "sha1:" + file_hash(args.original),
              args.data_dir: {f: "sha1:" + file_hash(os.path.join(args.data_dir, f))
                              for f in ("valid.txt", "test.txt")}}
    for d in ds:
        sents = read_conll(d["path"])
        hashes[d["path"]] = "sha1:" + file_hash(d["path"])
        n_d = count_windows(sents, tokenizer, args.max_len)
        d.update(annotation=annotation_f1(o, sents), steps=steps_per_regimen(args, n_o, n_d),
                 batch_size=args.batch_size)

    jobs = plan(args, ds, regimens, hashes)
    unique = list({j["run_dir"]: j for j in jobs}.values())  # `original` runs are shared between D files
    if args.dry_run:
        for j in unique:
            print(("[done] " if finished(j["run_dir"]) else "") + j["command"])
        return None
    check_resumable(unique)
    todo = [j for j in unique if not finished(j["run_dir"])]
    print(f"{len(unique)} runs for {len(ds)} D file(s) x {len(regimens)} regimens x {len(args.seeds)} seed(s): "
          f"{len(unique) - len(todo)} already done, {len(todo)} to run", flush=True)
    write_results(args, command, ds, regimen_names, jobs)
    threads = 0
    if args.jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // args.jobs)  # more threads than cores slows every run many times
    started, commit = time.time(), code_version()

    def start(i, job):
        print(f"[{i + 1}/{len(todo)}] {job['label']} -> {job['run_dir']}", flush=True)
        return run_job(job, bool(args.keep_models), threads, commit)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
    try:
        futures = {pool.submit(start, i, job): job for i, job in enumerate(todo)}
        for n_done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            report(futures[future], future.result(), n_done, len(todo), started)
            write_results(args, command, ds, regimen_names, jobs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: no queued run starts; running ones end
    rows, _ = write_results(args, command, ds, regimen_names, jobs)
    failed = sum(r["status"] == "failed" for r in {r["run_dir"]: r for r in rows}.values())
    print(f"wrote {os.path.join(args.out_dir, 'results.md')} and results.json"
          + (f"; {failed} run(s) failed: run the same command again to retry them" if failed else ""), flush=True)
    return rows


if __name__ == "__main__":
    run_main(main)
