"""
Every training regimen over several seeds, for one or more distilled (D) files: test F1 tables.

    python regimens.py --original runs/o_1000.conll --distilled runs/d_smollm2_1000.conll --simulate 0.1,0.3,0.5
    python regimens.py --original o.conll --simulate 0.5 --seeds 0 --regimens original seq-d-o --schedules \\
        --max_steps 2 --batch_size 8 -- --bf16 0      # a smoke run; extra train.py flags after --
    python regimens.py ... --dry_run               # print every train.py command and stop

For each D, every regimen is one train.py run per seed (runs.run_stage): `original` (O alone),
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

Simulated D (--simulate 0.1,0.3,0.5): simulate.py, whose docstring says how O's entities are corrupted.

Annotation F1: each D's labels against O's gold (eval.span_f1), over the D sentences whose tokens
equal an O sentence's (a real D may lack the sentences whose LLM call failed, or hold others);
reported with how many sentences matched. D's own gold column is not used.

Several at once: --jobs N runs N train.py runs side by side, in a pool of N worker processes, each with
cpu_count / N threads (unless OMP_NUM_THREADS is set). On 2 CPU cores, two 1-thread runs finish ~1.25x sooner
than one 2-thread run after another; never give the runs more threads in all than there are cores, each would
slow many times.

Resume: a run whose metrics.json exists is not repeated (runs.finished); a failed run (the end of its log and
its error are kept in results.json) is retried by the same command. Each run folder keeps its record: settings.json
(train.py's arguments, with O, D and the dev and test files given by content hash: out_dir refuses to
mix runs made from other data or settings, runs.claim), runner.json (runs.provenance: the command, the git
commit of the code that ran it, the machine; status and time) and train.py's metrics.json. The rest is not part of
the record: the model/ folder of a finished run is deleted unless --keep_models 1 (about 90 MB each), and the logs and
test predictions may be dropped, so a copy of the records alone (the results/ folder of this repository,
say, on a fresh machine) resumes the grid without repeating a finished run.
"""
import concurrent.futures
import functools
import multiprocessing
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass

from cli import above, at_least, int_list, opt, parse_config, run_main
from data import atomic_write, read_conll
from eval import span_f1
from runs import claim, file_hash, finished, mean_std, paired, pm, read_json, run_stage, table, write_json
from simulate import make_simulated
from train import Config as TrainConfig

REGIMENS = ("original", "distilled", "union", "seq-d-o", "seq-o-d")
DEFAULT_SCHEDULES = ("sigmoid:k=10,t0=0.5", "power:gamma=2")
# train.py flags the runner sets itself; after `--` they would silently override or be overridden
RUNNER_FLAGS = {"original", "train_file", "distilled", "strategy", "schedule", "schedule_args", "seed", "out_dir",
                "progress", "max_steps", "data_dir", "epochs", "batch_size", "lr", "max_len", "eval_every", "model_dir"}


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
    from mix import step_budget  # imports torch; only needed here
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
                label = f"original / {steps} steps" if name == "original" else f"{d['name']} / {name}"
                jobs.append({"d": d["name"], "regimen": name, "seed": seed, "run_dir": run_dir,
                             "label": f"{label} / seed {seed}", "args": [*train_args, "--out_dir", run_dir],
                             "command": shlex.join(["python", "train.py", *train_args, "--out_dir", run_dir]),
                             "settings": flag_values(key)})
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
    """Refuse an out_dir whose finished runs were made with other data or settings (each run's settings.json),
    before any run starts."""
    for job in jobs:
        if finished(job["run_dir"]):
            claim(job["run_dir"], job["settings"])


def train_from_args(argv):
    """train.py as its command line runs it: how every run of the grid trains."""
    from train import parse_args, train
    return train(parse_args(argv))


def set_threads(threads):
    """A worker process of --jobs: its share of the cores (more threads than cores slows every run many times)."""
    import torch
    torch.set_num_threads(threads)


def run_job(job, keep_models=False):
    """One run of the grid, through runs.run_stage (its printing in train.log): a failed run is recorded and
    returned, never raised, so the grid goes on; its weights are deleted unless keep_models."""
    try:
        run_stage(job["run_dir"], functools.partial(train_from_args, job["args"]), settings=job["settings"],
                  command=job["command"], log=True)
    except (Exception, SystemExit) as e:
        record = read_json(os.path.join(job["run_dir"], "runner.json")) or {}
        if record.get("status") != "failed":  # refused before it ran: the folder holds a run of other settings
            return {"command": job["command"], "status": "failed", "wall_s": 0.0, "error": str(e)}
    record = read_json(os.path.join(job["run_dir"], "runner.json")) or {}
    if record.get("status") == "done" and not keep_models:
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
                   error=record.get("error"), wall_s=record.get("wall_s"))
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
        raise SystemExit(f"error: {message} (see python regimens.py -h)")
    for a in extra:
        flag = a[2:].split("=")[0] if a.startswith("--") else None
        if flag in RUNNER_FLAGS:
            error(f"--{flag} after -- is set by regimens.py for every run" +
                  (f"; use regimens.py --{flag}" if flag in vars(args) else ""))
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
        last = (record.get("error") or "").strip().splitlines()[-1:] or ["(no error printed)"]
        print(f"    {job['label']}: FAILED after {fmt_time(record.get('wall_s'))}: {last[0]}", flush=True)


def run_pool(args, todo, done):
    """--jobs N: the runs in N worker processes at once, each with its share of the cores (unless OMP_NUM_THREADS
    is set); done(n_done, job, record) after each."""
    threads = int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // args.jobs))
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, initializer=set_threads, initargs=(threads,),
                                                  mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {}
        for i, job in enumerate(todo):
            print(f"[{i + 1}/{len(todo)}] {job['label']} -> {job['run_dir']}", flush=True)
            futures[pool.submit(run_job, job, bool(args.keep_models))] = job
        for n_done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            done(n_done, futures[future], future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: no queued run starts; running ones end


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = "python regimens.py " + shlex.join(argv)
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
    started = time.time()
    if args.jobs == 1:  # here, in this process: Ctrl-C stops the run at the end of a step, with a checkpoint
        for i, job in enumerate(todo):
            print(f"[{i + 1}/{len(todo)}] {job['label']} -> {job['run_dir']}", flush=True)
            report(job, run_job(job, bool(args.keep_models)), i + 1, len(todo), started)
            write_results(args, command, ds, regimen_names, jobs)
    else:
        run_pool(args, todo, lambda n_done, job, record: (report(job, record, n_done, len(todo), started),
                                                          write_results(args, command, ds, regimen_names, jobs)))
    rows, _ = write_results(args, command, ds, regimen_names, jobs)
    failed = sum(r["status"] == "failed" for r in {r["run_dir"]: r for r in rows}.values())
    print(f"wrote {os.path.join(args.out_dir, 'results.md')} and results.json"
          + (f"; {failed} run(s) failed: run the same command again to retry them" if failed else ""), flush=True)
    return rows


if __name__ == "__main__":
    run_main(main)
