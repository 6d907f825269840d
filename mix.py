"""
Blending original (O, human-labelled) and distilled (D, LLM-labelled) data during training.

A schedule maps training progress t = step / total_steps in [0, 1] to p(t), the probability that
an example of the next batch comes from D. A regimen (`original`, `union`, `seq-d-o` = the paper's
Simple Mix, ...) is just a schedule. `MixSampler` turns a schedule into batches of (source, index)
pairs with a seeded torch.Generator passed in, and records the realised share of D per step.

    python mix.py                                              # table of every schedule
    python mix.py --schedule sigmoid --schedule_args k=20,t0=0.3
    python mix.py --plot schedules.png                         # needs matplotlib
"""
import inspect
import math
from dataclasses import dataclass

import torch

from cli import opt, parse_config, run_main

# ----------------------------------------------------------------------------- schedules
# Each maps t in [0, 1] to p(t) in [0, 1], the probability of drawing from D.

def constant(t, p=0.5):
    return p


def linear(t, p0=1.0, p1=0.0):
    return p0 + (p1 - p0) * t  # p0 at t=0, p1 at t=1


def sigmoid(t, k=10.0, t0=0.5):
    z = k * (t - t0)  # 1 / (1 + exp(z)), written so that exp never overflows
    return math.exp(-z) / (1.0 + math.exp(-z)) if z >= 0 else 1.0 / (1.0 + math.exp(z))


def power(t, gamma=2.0):
    return max(0.0, 1.0 - t) ** gamma


def step(t, tau=0.5):
    return 1.0 if t < tau else 0.0


SCHEDULES = {"constant": constant, "linear": linear, "sigmoid": sigmoid, "power": power, "step": step}
UNIT_PARAMS = {"p", "p0", "p1", "t0", "tau"}  # must lie in [0, 1]
POSITIVE_PARAMS = {"gamma", "k"}              # must be > 0


class Schedule:
    """A schedule with its parameters bound: call it with t, print it to see what it is."""

    def __init__(self, fn, params, name=None):
        self.fn, self.params = fn, dict(params)
        args = ", ".join(f"{key}={value:g}" for key, value in self.params.items())
        self.describe = f"{name or fn.__name__}({args})"

    def __call__(self, t):
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"{self.describe}: training progress t must be in [0, 1], got {t}")
        return self.fn(t, **self.params)

    def __repr__(self):
        return self.describe


def parse_schedule_args(text):
    """'k=10,t0=0.5' -> {'k': 10.0, 't0': 0.5}; '' or None -> {}."""
    params = {}
    for piece in (text or "").split(","):
        if not piece.strip():
            continue  # tolerate 'k=10,' and spaces
        key, sep, value = (s.strip() for s in piece.partition("="))
        if not sep or not key.isidentifier():
            raise ValueError(f"schedule argument {piece.strip()!r} is not of the form name=number (e.g. k=10,t0=0.5)")
        if key in params:
            raise ValueError(f"schedule argument {key!r} is given twice in {text!r}")
        try:
            params[key] = float(value)
        except ValueError:
            raise ValueError(f"schedule argument {piece.strip()!r}: {value!r} is not a number") from None
    return params


def get_schedule(name, **params):
    """The schedule `name` with `params` (the rest at their defaults), checked; returns t -> p."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
    fn = SCHEDULES[name]
    accepted = {key: par.default for key, par in inspect.signature(fn).parameters.items() if key != "t"}
    for key, value in params.items():
        if key not in accepted:
            raise ValueError(f"schedule {name!r} has no parameter {key!r}; it accepts: {', '.join(accepted)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"schedule {name!r}: parameter {key} must be a finite number, got {value!r}")
        if key in UNIT_PARAMS and not 0.0 <= value <= 1.0:
            raise ValueError(f"schedule {name!r}: parameter {key} must be in [0, 1], got {value:g}")
        if key == "gamma" and value <= 0:
            raise ValueError(f"schedule 'power': parameter gamma must be > 0, got {value:g} "
                             "(gamma > 1 leaves D sooner, gamma < 1 later)")
        if key == "k" and value <= 0:
            raise ValueError(f"schedule 'sigmoid': parameter k must be > 0, got {value:g}; k > 0 means D first, "
                             "O later (larger k, sharper switch at t0); for O first use strategy seq-o-d "
                             "or linear with p0=0,p1=1")
    return Schedule(fn, {**accepted, **{key: float(value) for key, value in params.items()}})


# ----------------------------------------------------------------------------- regimens

STRATEGIES = ("original", "distilled", "union", "seq-d-o", "seq-o-d", "schedule")


def _o_then_d(t, tau):
    return 1.0 - step(t, tau)


def step_budget(n_original, n_distilled, epochs, batch_size):
    """(total steps, steps per epoch): the same for every strategy over the same two sources."""
    per_epoch = math.ceil((n_original + n_distilled) / batch_size)
    return math.ceil(epochs * per_epoch), per_epoch


def strategy_schedule(strategy, n_original, n_distilled, schedule=None, schedule_args=None):
    """The schedule of a training regimen, given how many examples each source holds."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    for what, n in (("n_original", n_original), ("n_distilled", n_distilled)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{what} must be a count of examples (int >= 0), got {n!r}")
    if strategy != "schedule" and (schedule or schedule_args):
        raise ValueError(f"a schedule ({schedule!r}, args {schedule_args!r}) is only used with strategy "
                         f"'schedule', not {strategy!r}; drop it or choose strategy 'schedule'")
    needs_o = strategy in ("original", "union", "seq-d-o", "seq-o-d")
    needs_d = strategy in ("distilled", "union", "seq-d-o", "seq-o-d")
    if needs_o and n_original == 0:
        raise ValueError(f"strategy {strategy!r} needs original (human-labelled) data, but there is none")
    if needs_d and n_distilled == 0:
        raise ValueError(f"strategy {strategy!r} needs distilled (LLM-labelled) data, but there is none")
    n = n_original + n_distilled
    if strategy == "original":
        return Schedule(constant, {"p": 0.0})
    if strategy == "distilled":
        return Schedule(constant, {"p": 1.0})
    if strategy == "union":  # shuffled together: every example equally likely, so D's share is its size
        return Schedule(constant, {"p": n_distilled / n})
    if strategy == "seq-d-o":  # each source gets steps in proportion to its size
        return Schedule(step, {"tau": n_distilled / n})
    if strategy == "seq-o-d":
        return Schedule(_o_then_d, {"tau": n_original / n}, name="1 - step")
    if not schedule:
        raise ValueError(f"strategy 'schedule' needs a schedule name; known: {', '.join(SCHEDULES)}")
    fn = get_schedule(schedule, **parse_schedule_args(schedule_args))
    ps = [fn(i / 1000) for i in range(1001)]  # the sampler checks every step; this fails early
    if max(ps) > 0 and n_distilled == 0:
        raise ValueError(f"{fn.describe} draws distilled data, but there is none")
    if min(ps) < 1 and n_original == 0:
        raise ValueError(f"{fn.describe} draws original data, but there is none")
    return fn


# ----------------------------------------------------------------------------- sampling

def child_generator(generator):
    """A new CPU generator seeded from `generator`, so each source's order is its own random stream."""
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))


class Stream:
    """An endless stream of example indices of one source, pass after pass.
    Each pass is a fresh random permutation (from the torch.Generator passed in). With group_by_length,
    the permuted indices are stably sorted by length, cut into blocks of batch_size, and the blocks' order shuffled,
    so consecutive indices have similar lengths (little padding) while the block order stays random."""

    def __init__(self, lengths, batch_size, generator, group_by_length=True):
        assert batch_size >= 1, f"batch_size must be >= 1, got {batch_size}"
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.batch_size, self.generator, self.group_by_length = batch_size, generator, group_by_length
        self.buffer, self.passes = [], 0  # indices left in the current pass; passes started so far

    def __len__(self):
        return len(self.lengths)

    def new_pass(self):
        order = torch.randperm(len(self.lengths), generator=self.generator)
        if self.group_by_length:
            # the random permutation breaks ties between equal lengths; the stable sort keeps it
            order = order[torch.sort(self.lengths[order], stable=True).indices]
            blocks = order.split(self.batch_size)
            order = torch.cat([blocks[i] for i in torch.randperm(len(blocks), generator=self.generator)])
        self.buffer, self.passes = order.tolist(), self.passes + 1

    def state_dict(self):
        return {"generator": self.generator.get_state(), "buffer": list(self.buffer), "passes": self.passes}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])
        self.buffer, self.passes = list(state["buffer"]), state["passes"]

    def take(self, n):
        out = []
        while len(out) < n:
            if not self.buffer:
                if len(self.lengths) == 0:
                    raise ValueError(f"cannot take {n} examples from a source with none")
                self.new_pass()
            got, self.buffer = self.buffer[:n - len(out)], self.buffer[n - len(out):]
            out += got
        return out


class MixSampler:
    """Per step: each of the batch_size examples comes from D with probability p(t), t = step / total_steps
    (one Bernoulli draw per example with torch.rand(batch_size, generator=...)); the D examples are taken
    from D's Stream, the rest from O's Stream. Yields, per step, a list of (source, index) pairs with source
    in {"O", "D"}. Iterate it once: a second run would continue the generator, so it is refused. state_dict()
    taken after step s was yielded holds everything the steps after it depend on (the generators, each
    stream's pass and place in it), so a sampler given it by load_state_dict() yields exactly the batches
    s + 1, s + 2, ..."""

    def __init__(self, lengths_o, lengths_d, schedule, total_steps, batch_size, generator, group_by_length=True):
        assert total_steps >= 1 and batch_size >= 1, \
            f"need total_steps, batch_size >= 1, got {total_steps}, {batch_size}"
        self.schedule, self.total_steps, self.batch_size, self.generator = schedule, total_steps, batch_size, generator
        self.p = [schedule(s / total_steps) for s in range(total_steps)]  # expected share of D per step
        name = getattr(schedule, "describe", getattr(schedule, "__name__", repr(schedule)))
        for s, p in enumerate(self.p):  # check every step now rather than fail mid-training
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"schedule {name} gives p={p} at step {s}; a probability must be in [0, 1]")
            if p > 0 and len(lengths_d) == 0:
                raise ValueError(f"schedule {name} draws distilled data (p={p:g} at step {s}), but there is none")
            if p < 1 and len(lengths_o) == 0:
                raise ValueError(f"schedule {name} draws original data (p={p:g} at step {s}), but there is none")
        # the streams get generators of their own, seeded first, so the Bernoulli draws never shift their orders
        self.streams = {src: Stream(lengths, batch_size, child_generator(generator), group_by_length)
                        for src, lengths in (("O", lengths_o), ("D", lengths_d))}
        self.realised = []  # share of D in each yielded batch
        self.started, self.step = False, 0

    def __len__(self):
        return self.total_steps

    def __iter__(self):
        if self.started:
            raise RuntimeError("a MixSampler is iterated once; build a new one from a freshly seeded generator")
        self.started = True
        for s in range(self.step, self.total_steps):
            is_d = (torch.rand(self.batch_size, generator=self.generator) < self.p[s]).tolist()
            n_d = sum(is_d)
            taken = {"D": iter(self.streams["D"].take(n_d)), "O": iter(self.streams["O"].take(self.batch_size - n_d))}
            # keep each draw at its position, so a rank's slice of the global batch is itself a fair mix
            batch = [(src, next(taken[src])) for src in ("D" if d else "O" for d in is_d)]
            self.realised.append(n_d / self.batch_size)
            self.step = s + 1
            yield batch

    def state_dict(self):
        return {"step": self.step, "generator": self.generator.get_state(), "realised": list(self.realised),
                "streams": {src: stream.state_dict() for src, stream in self.streams.items()}}

    def load_state_dict(self, state):
        if self.started:
            raise RuntimeError("load a MixSampler's state before iterating it")
        self.step, self.realised = state["step"], list(state["realised"])
        self.generator.set_state(state["generator"])
        for src, stream in self.streams.items():
            stream.load_state_dict(state["streams"][src])


# ----------------------------------------------------------------------------- command line

T_POINTS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def table(schedules, ts=T_POINTS):
    """p(t) of each schedule as aligned text, one row per schedule."""
    width = max(len(fn.describe) for fn in schedules)
    lines = [f"{'p(t)':<{width}}" + "".join(f"  {f't={t:g}':>7}" for t in ts)]
    lines += [f"{fn.describe:<{width}}" + "".join(f"  {fn(t):7.4f}" for t in ts) for fn in schedules]
    return "\n".join(lines)


def plot(schedules, path, n=201):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: --plot needs matplotlib, which is not installed: pip install matplotlib "
                         "(or drop --plot for the text table)") from None
    ts = [i / (n - 1) for i in range(n)]
    fig, ax = plt.subplots(figsize=(6, 4))
    for fn in schedules:
        ax.plot(ts, [fn(t) for t in ts], label=fn.describe)
    ax.set(xlabel="training progress t = step / total_steps", ylabel="p(t): probability of distilled data",
           ylim=(-0.03, 1.03))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


@dataclass
class Config:
    schedule: str = opt(None, "show only this schedule; none: all of them", type=str, choices=list(SCHEDULES))
    schedule_args: str = opt("", "parameters, e.g. k=20,t0=0.3; none: the schedule's defaults")
    plot: str = opt("", "also draw the curves into this file (needs matplotlib)")


def main(argv=None):
    args = parse_config(Config, argv, description="Print (or plot) the blending schedules p(t).")
    try:
        if args.schedule:
            schedules = [get_schedule(args.schedule, **parse_schedule_args(args.schedule_args))]
        elif args.schedule_args:
            raise ValueError("--schedule_args needs --schedule")
        else:
            schedules = [get_schedule(name) for name in SCHEDULES]
    except ValueError as e:
        raise SystemExit(f"error: {e} (see python mix.py -h)")
    print(table(schedules))
    if args.plot:
        plot(schedules, args.plot)


if __name__ == "__main__":
    run_main(main)
