"""
A killed or interrupted `python train.py` resumes where it stopped: the run's state, its resumable checkpoints,
every random generator and a Ctrl-C that stops at the end of a step. train.py calls these.

    python -m pytest -q tests/test_resume.py

While a run trains, out_dir/checkpoint/ holds: last.pt (model, optimizer, the sampler's place and order, every
random generator, and the RunState: history, the best dev score so far, the counters), best-STEP.pt (the best dev
state) and settings.json (every flag that shapes the result and the data files by content hash). They are written
atomically (data.atomic_write: to a temporary file, flushed, renamed) by the master process alone; the same command
run again after a kill (even kill -9) or Ctrl-C resumes from there and ends exactly where the run would have ended
without the interruption. A checkpoint of other settings is refused in one line. Run again once the run has finished
(its metrics.json written), the same command gives that run back without training it again, and other settings in
its folder are refused in one line; --restart 1 trains it again either way.
"""
import os
import shutil
import signal
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.distributed as dist

from cli import DataError
from data import atomic_write
from runs import claim, differing, file_hash, read_json, write_json

CHECKPOINT = "checkpoint"  # the folder in out_dir: settings.json, last.pt and the best dev state best-STEP.pt
# the flags that may change when a run resumes: where it writes and how it reports, not what it computes
FLAGS_FREE_ON_RESUME = {"out_dir", "progress", "ckpt_minutes", "ckpt_every", "restart", "device"}


@dataclass
class RunState:
    """Where a run stands besides its weights, optimizer and sampler (sampler.step is the step): what last.pt keeps,
    and the best dev weights (in best-STEP.pt)."""
    best_dev: dict  # the best dev scores so far ({key: -1.0} before the first evaluation)
    history: list = field(default_factory=list)  # one {"step", "loss", "dev_<key>"} per evaluation
    best_step: int = -1
    best_file: str = None  # best-STEP.pt
    train_time: float = 0.0  # seconds inside optimizer steps, over every try
    train_tokens: int = 0  # real word pieces trained on by this process
    ckpt_time: float = 0.0  # seconds spent writing checkpoints
    n_ckpt: int = 0
    term_sums: list = field(default_factory=lambda: [0.0, 0.0, 0.0])  # with a teacher: labels, hidden, attention
    best_state: dict = None  # the best dev weights, not in last.pt

    def saved(self):
        """last.pt's part of the state (the weights of the best step go to their own file)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "best_state"}


def run_settings(cfg, paths):
    """What a resumed run must share with the run it resumes: every flag that shapes the result, and the data files
    (original, distilled, dev, test) by their content."""
    # --context 0, --dev_share 0, --teacher_context 0 and --cache_teacher 0 are left out, so a checkpoint written
    # before the flags existed still resumes
    settings = {k: v for k, v in asdict(cfg).items() if k not in FLAGS_FREE_ON_RESUME
                and (k not in ("context", "dev_share", "teacher_context", "cache_teacher") or v)}
    settings["data"] = {role: file_hash(p) for role, p in zip(("original", "distilled", "dev", "test"), paths) if p}
    if cfg.teacher:  # by content, as the data: a teacher retrained into the same folder gives other targets
        weights = [os.path.join(cfg.teacher, n) for n in ("model.safetensors", "pytorch_model.bin")]
        settings["teacher_weights"] = file_hash(next(p for p in weights if os.path.exists(p)))
    return settings


def run_inputs(settings):
    """The settings that are files' content (the data, a teacher's weights): what metrics.json keeps as "inputs"."""
    return {k: settings[k] for k in ("data", "teacher_weights") if k in settings}


def finished_run(out_dir, cfg, settings):
    """The metrics.json of the run that has finished in out_dir (None where none has), refused in one line when that
    run had other settings. A record written before a flag or its inputs were kept is compared on what it holds."""
    metrics = read_json(os.path.join(out_dir, "metrics.json"))
    if metrics is None:
        return None
    held = {**metrics.get("config", {}), **metrics.get("inputs", {})}
    mine = {**asdict(cfg), **run_inputs(settings)}
    diff = differing(mine, held, FLAGS_FREE_ON_RESUME, shared_only=True)
    if diff:
        words = {"data": "the data files' content", "teacher_weights": "the teacher's weights"}
        named = ", ".join(words.get(k, "--" + k) for k in diff)
        raise DataError(f"{out_dir} holds a finished run with other settings ({named} differ; see its metrics.json): "
                        "choose another --out_dir, or --restart 1 to train this one again")
    return metrics


def load_checkpoint(folder, settings):
    """The state an earlier try of this run left in `folder` (None if it left none), refused in one line when that
    run had other settings."""
    path = os.path.join(folder, "last.pt")
    if not os.path.exists(path):
        return None
    try:
        claim(folder, settings, free=FLAGS_FREE_ON_RESUME)
    except DataError as e:
        raise DataError(f"{e}; --restart 1 starts this run over") from None
    return torch.load(path, weights_only=True)


def resume_or_start(folder, saved, settings, parts, *, rank, best_dev):
    """The RunState of `saved`, the checkpoint an earlier try of the same command left (its parts and random state put
    back), or of a fresh start: whatever an earlier try left is dropped first (a finished run's metrics.json too, so a
    restart killed early never looks finished), and settings.json says the new run's."""
    if saved:
        return restore(folder, saved, parts, rank)
    if rank == 0:
        shutil.rmtree(folder, ignore_errors=True)
        with suppress(FileNotFoundError):
            os.remove(os.path.join(os.path.dirname(folder), "metrics.json"))
        os.makedirs(folder)
        write_json(os.path.join(folder, "settings.json"), settings)
    return RunState(best_dev=best_dev)


def restore(folder, saved, parts, rank):
    """The RunState of a checkpoint `saved` (load_checkpoint's), its parts ({name: model, optimizer, sampler, ...})
    and this process's random state put back."""
    for name, part in parts.items():
        part.load_state_dict(saved[name])
    set_rng_state(saved["rng"][rank])
    run = RunState(**{f.name: saved[f.name] for f in fields(RunState) if f.name in saved})
    if run.best_file:
        run.best_state = torch.load(os.path.join(folder, run.best_file), weights_only=True)
    return run


def save_checkpoint(folder, run, parts, *, world, master, new_best):
    """Everything the steps after this one depend on: the parts' states ({name: anything with state_dict()}), every
    process's random state and the RunState, written by the master alone (every process resumes from it)."""
    rng = gather_rng_states(world)
    if master:
        t0 = time.perf_counter()
        state = {name: part.state_dict() for name, part in parts.items()}
        state.update(run.saved(), rng=rng, n_ckpt=run.n_ckpt + 1)  # n_ckpt counts this one
        write_state(folder, state, run.best_state if new_best else None)
        run.ckpt_time, run.n_ckpt = run.ckpt_time + time.perf_counter() - t0, run.n_ckpt + 1
    if world > 1:
        dist.barrier()


def write_state(folder, state, best_state):
    """last.pt (the whole training state) and, when the best dev state is new, best-STEP.pt beside it; then every
    other best-*.pt goes. last.pt names its best file, which is written first and deleted only after a newer
    last.pt names another: whenever the process dies, last.pt and its best file agree."""
    if best_state is not None:
        atomic_write(os.path.join(folder, state["best_file"]), lambda f: torch.save(best_state, f))
    atomic_write(os.path.join(folder, "last.pt"), lambda f: torch.save(state, f))
    for name in os.listdir(folder):
        if name.startswith("best-") and name != state["best_file"]:
            os.remove(os.path.join(folder, name))


def gather_rng_states(world):
    """Every process's torch random state (dropout), on the master: [rank 0's, rank 1's, ...]."""
    mine = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    if world == 1:
        return [mine]
    states = [None] * world
    dist.all_gather_object(states, mine)
    return states


def set_rng_state(state):
    torch.set_rng_state(state["cpu"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def catch_sigint(world):
    """Inside, a first Ctrl-C (SIGINT) asks the run to stop at the end of the step (`stop()` says whether it was
    asked, on every process at once under torchrun); a second one interrupts at once, as usual."""
    asked = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        asked.set()
        signal.signal(signal.SIGINT, previous)

    def stop():
        if world == 1:
            return asked.is_set()
        flag = torch.tensor(float(asked.is_set()))
        dist.all_reduce(flag)  # one process saw it: all stop at the same step
        return flag.item() > 0
    main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be installed
    if main_thread:
        signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
