"""Tests of mix.py: the schedules, their checks, the regimens and the seeded sampler.

    python -m pytest -q tests/test_mix.py
"""
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import mix  # noqa: E402
from mix import (SCHEDULES, STRATEGIES, MixSampler, Stream, get_schedule, parse_schedule_args,  # noqa: E402
                 strategy_schedule)

GRID = [i / 200 for i in range(201)]


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- schedules

def test_values_at_ends_and_midpoints():
    assert mix.constant(0.0) == mix.constant(1.0) == 0.5
    assert mix.linear(0.0) == 1.0 and mix.linear(1.0) == 0.0 and mix.linear(0.5) == 0.5
    assert mix.linear(0.0, p0=0.2, p1=0.8) == pytest.approx(0.2) and \
        mix.linear(1.0, p0=0.2, p1=0.8) == pytest.approx(0.8)
    assert mix.sigmoid(0.3, k=7.0, t0=0.3) == 0.5
    assert mix.sigmoid(0.0) == pytest.approx(1 / (1 + math.exp(-5)))
    assert mix.sigmoid(1.0) == pytest.approx(1 / (1 + math.exp(5)))
    assert mix.sigmoid(1.0, k=1e6, t0=0.0) == 0.0 and mix.sigmoid(0.0, k=1e6, t0=1.0) == 1.0  # no overflow
    assert mix.power(0.0) == 1.0 and mix.power(1.0) == 0.0 and mix.power(0.5, gamma=3.0) == 0.125
    assert mix.step(0.0) == 1.0 and mix.step(0.4999) == 1.0 and mix.step(0.5) == 0.0 and mix.step(1.0) == 0.0
    assert mix.step(0.2, tau=0.2) == 0.0 and mix.step(0.19, tau=0.2) == 1.0


@pytest.mark.parametrize("name, params", [
    ("linear", {}), ("linear", {"p0": 0.7, "p1": 0.7}), ("sigmoid", {}), ("sigmoid", {"k": 50.0, "t0": 0.1}),
    ("power", {}), ("power", {"gamma": 0.5}), ("step", {}), ("step", {"tau": 0.0}), ("constant", {"p": 0.3}),
])
def test_non_increasing_and_in_unit_interval(name, params):
    fn = get_schedule(name, **params)
    ps = [fn(t) for t in GRID]
    assert all(0.0 <= p <= 1.0 for p in ps)
    assert all(a >= b for a, b in zip(ps, ps[1:])), f"{fn.describe} increases somewhere"


def test_every_schedule_in_unit_interval_at_defaults():
    for name in SCHEDULES:
        fn = get_schedule(name)
        assert all(0.0 <= fn(t) <= 1.0 for t in GRID), name


def test_describe_and_defaults():
    fn = get_schedule("sigmoid", k=10, t0=0.5)
    assert fn.describe == "sigmoid(k=10, t0=0.5)" and repr(fn) == fn.describe
    assert get_schedule("power").describe == "power(gamma=2)"
    assert get_schedule("linear", p1=0.25).describe == "linear(p0=1, p1=0.25)"
    assert get_schedule("sigmoid", k=20.0, t0=0.3)(0.3) == 0.5
    with pytest.raises(ValueError, match="t must be in"):
        fn(1.5)


@pytest.mark.parametrize("name, params, words", [
    ("cosine", {}, ["unknown schedule", "sigmoid", "power"]),
    ("power", {"gama": 2.0}, ["gama", "gamma"]),
    ("sigmoid", {"tau": 0.5}, ["tau", "k, t0"]),
    ("constant", {"p": 1.5}, ["p ", "[0, 1]"]),
    ("linear", {"p0": -0.1}, ["p0", "[0, 1]"]),
    ("linear", {"p1": 2.0}, ["p1", "[0, 1]"]),
    ("sigmoid", {"t0": 1.1}, ["t0", "[0, 1]"]),
    ("step", {"tau": -1.0}, ["tau", "[0, 1]"]),
    ("power", {"gamma": 0.0}, ["gamma", "> 0"]),
    ("sigmoid", {"k": -10.0}, ["k must be > 0", "D first, O later"]),
    ("sigmoid", {"k": 0.0}, ["k must be > 0"]),
    ("sigmoid", {"k": float("nan")}, ["k", "finite"]),
    ("sigmoid", {"k": "10"}, ["k", "number"]),
])
def test_bad_parameters_refused(name, params, words):
    with pytest.raises(ValueError) as e:
        get_schedule(name, **params)
    for word in words:
        assert word in str(e.value), f"{word!r} not in {e.value}"


def test_parse_schedule_args():
    assert parse_schedule_args("k=10,t0=0.5") == {"k": 10.0, "t0": 0.5}
    assert parse_schedule_args(" k = 20 , t0=0.3, ") == {"k": 20.0, "t0": 0.3}
    assert parse_schedule_args("gamma=1e-1") == {"gamma": 0.1}
    assert parse_schedule_args("") == {} and parse_schedule_args(None) == {}
    for text, piece in [("k10", "k10"), ("k=ten", "k=ten"), ("k=10,t0", "t0"), ("=3", "=3"), ("2x=1", "2x=1"),
                        ("k=1,k=2", "'k'")]:
        with pytest.raises(ValueError, match=piece):
            parse_schedule_args(text)


# ----------------------------------------------------------------------------- regimens

def test_strategies():
    assert strategy_schedule("original", 10, 30)(0.0) == 0.0 == strategy_schedule("original", 10, 0)(1.0)
    assert strategy_schedule("distilled", 10, 30)(0.0) == 1.0 == strategy_schedule("distilled", 0, 30)(1.0)
    union = strategy_schedule("union", 1000, 3000)
    assert all(union(t) == 0.75 for t in GRID)
    d_o = strategy_schedule("seq-d-o", 1000, 3000)  # D gets 3/4 of the steps, then O
    assert d_o(0.0) == 1.0 and d_o(0.7499) == 1.0 and d_o(0.75) == 0.0 and d_o(1.0) == 0.0
    o_d = strategy_schedule("seq-o-d", 1000, 3000)  # O gets 1/4 of the steps, then D
    assert o_d(0.0) == 0.0 and o_d(0.2499) == 0.0 and o_d(0.25) == 1.0 and o_d(1.0) == 1.0
    sched = strategy_schedule("schedule", 10, 30, schedule="sigmoid", schedule_args="k=20,t0=0.3")
    assert sched.describe == "sigmoid(k=20, t0=0.3)" and sched(0.3) == 0.5
    assert strategy_schedule("schedule", 10, 0, schedule="constant", schedule_args="p=0")(0.5) == 0.0
    assert set(STRATEGIES) == {"original", "distilled", "union", "seq-d-o", "seq-o-d", "schedule"}


@pytest.mark.parametrize("args, kwargs, words", [
    (("mix", 10, 10), {}, ["unknown strategy", "seq-d-o"]),
    (("distilled", 10, 0), {}, ["distilled", "none"]),
    (("original", 0, 10), {}, ["original", "none"]),
    (("union", 10, 0), {}, ["distilled"]),
    (("seq-d-o", 0, 10), {}, ["original"]),
    (("seq-o-d", 10, 0), {}, ["distilled"]),
    (("union", 10, 10), {"schedule": "sigmoid"}, ["only used with strategy 'schedule'"]),
    (("seq-d-o", 10, 10), {"schedule_args": "k=3"}, ["only used with strategy 'schedule'"]),
    (("schedule", 10, 10), {}, ["needs a schedule name"]),
    (("schedule", 10, 0), {"schedule": "sigmoid"}, ["distilled", "none"]),
    (("schedule", 0, 10), {"schedule": "power"}, ["original", "none"]),
    (("schedule", 10, 10), {"schedule": "sigmoid", "schedule_args": "k=-1"}, ["k must be > 0"]),
    (("union", -1, 10), {}, ["n_original"]),
    (("union", 10, 2.5), {}, ["n_distilled"]),
])
def test_strategy_refusals(args, kwargs, words):
    with pytest.raises(ValueError) as e:
        strategy_schedule(*args, **kwargs)
    for word in words:
        assert word in str(e.value), f"{word!r} not in {e.value}"


# ----------------------------------------------------------------------------- sampler

def lengths_of(n, seed):
    return torch.randint(3, 60, (n,), generator=gen(seed)).tolist()


def test_realised_share_follows_schedule():
    # windows of 100 steps x 8 draws: the D count is a sum of Bernoullis with known mean and variance
    steps, bs, window = 2000, 8, 100
    fn = get_schedule("sigmoid", k=10.0, t0=0.5)
    sampler = MixSampler(lengths_of(300, 1), lengths_of(200, 2), fn, steps, bs, gen(0))
    batches = list(sampler)
    assert len(batches) == len(sampler.realised) == steps
    counts = [sum(src == "D" for src, _ in b) for b in batches]
    assert counts == [round(r * bs) for r in sampler.realised]
    ps = [fn(s / steps) for s in range(steps)]

    def max_abs_z(ps):
        zs = []
        for w in range(0, steps, window):
            mean = bs * sum(ps[w:w + window])
            var = bs * sum(p * (1 - p) for p in ps[w:w + window])
            zs.append(abs(sum(counts[w:w + window]) - mean) / math.sqrt(var))
        return max(zs)

    assert max_abs_z(ps) < 5.5                      # a correct sampler: |z| > 5.5 in any of 20 windows ~ 1e-6
    assert max_abs_z([1 - p for p in ps]) > 20      # p and 1-p swapped is caught by a wide margin


def test_same_seed_same_batches_other_seed_others():
    lo, ld = lengths_of(50, 1), lengths_of(40, 2)

    def run(seed, group=True):
        return list(MixSampler(lo, ld, get_schedule("linear"), 60, 8, gen(seed), group))
    assert run(3) == run(3) and run(3, False) == run(3, False)
    assert run(3) != run(4)


def test_seq_d_o_switches_once():
    steps, nO, nD = 100, 30, 70
    sampler = MixSampler(lengths_of(nO, 1), lengths_of(nD, 2), strategy_schedule("seq-d-o", nO, nD), steps, 4, gen(0))
    for s, batch in enumerate(sampler):
        assert {src for src, _ in batch} == ({"D"} if s < 70 else {"O"}), s
    assert sampler.realised == [1.0] * 70 + [0.0] * 30


@pytest.mark.parametrize("group", [True, False])
def test_stream_visits_each_index_once_per_pass(group):
    n = 37
    stream = Stream(lengths_of(n, 5), 8, gen(0), group_by_length=group)
    taken = stream.take(5) + stream.take(0) + stream.take(n * 3 - 5)  # passes are not aligned with takes
    assert stream.passes == 3
    for k in range(3):
        assert sorted(taken[k * n:(k + 1) * n]) == list(range(n))
    assert taken[:n] != taken[n:2 * n]  # each pass is a fresh order


def test_sampler_visits_each_index_once_per_pass():
    nO, nD = 23, 17
    sampler = MixSampler(lengths_of(nO, 1), lengths_of(nD, 2), get_schedule("constant"), 50, 8, gen(0))
    seen = {"O": [], "D": []}
    for batch in sampler:
        for src, i in batch:
            seen[src].append(i)
    for src, n in (("O", nO), ("D", nD)):
        full = len(seen[src]) // n
        assert full >= 2
        for k in range(full):
            assert sorted(seen[src][k * n:(k + 1) * n]) == list(range(n)), src


def test_group_by_length_cuts_padding():
    lengths, bs = lengths_of(2000, 7), 32

    def waste(group):
        stream = Stream(lengths, bs, gen(0), group_by_length=group)
        total = 0
        for _ in range(len(lengths) // bs):
            batch = [lengths[i] for i in stream.take(bs)]
            total += max(batch) * len(batch) - sum(batch)
        return total
    assert waste(True) < waste(False) / 10


def test_group_by_length_keeps_block_order_random():
    lengths = list(range(100))  # all distinct: sorted blocks would come out in length order if not shuffled
    firsts = [Stream(lengths, 10, gen(seed)).take(10) for seed in range(5)]
    assert all(max(b) - min(b) == 9 for b in firsts)   # a block is 10 neighbouring lengths
    assert len({min(b) for b in firsts}) > 1           # but which block comes first is random


def test_missing_source_refused():
    with pytest.raises(ValueError, match="distilled data .* none"):
        MixSampler(lengths_of(10, 1), [], get_schedule("sigmoid"), 10, 4, gen(0))
    with pytest.raises(ValueError, match="original data .* none"):
        MixSampler([], lengths_of(10, 1), get_schedule("power"), 10, 4, gen(0))
    # a schedule that never needs the missing source is fine
    assert all(src == "O" for b in MixSampler(lengths_of(10, 1), [], strategy_schedule("original", 10, 0), 5, 4, gen(0))
               for src, _ in b)
    with pytest.raises(ValueError, match="must be in"):
        MixSampler(lengths_of(10, 1), lengths_of(10, 1), lambda t: 1.5, 10, 4, gen(0))
    with pytest.raises(ValueError, match="none"):
        Stream([], 4, gen(0)).take(1)


def test_sampler_iterates_once():
    sampler = MixSampler(lengths_of(10, 1), lengths_of(10, 2), get_schedule("constant"), 3, 2, gen(0))
    assert len(list(sampler)) == 3 == len(sampler)
    with pytest.raises(RuntimeError, match="once"):
        list(sampler)


def test_command_line(capsys):
    mix.main([])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + len(SCHEDULES) and len({len(line) for line in out}) == 1  # aligned
    mix.main(["--schedule", "sigmoid", "--schedule_args", "k=20,t0=0.3"])
    out = capsys.readouterr().out
    assert "sigmoid(k=20, t0=0.3)" in out and "power" not in out
    with pytest.raises(SystemExit):
        mix.main(["--schedule", "sigmoid", "--schedule_args", "k=-2"])
