"""
Simulated distilled data: O's gold labels with a share of its entities corrupted, a D whose annotation quality is
known exactly (regimens.py --simulate).

From O (--simulate 0.1,0.3,0.5), round(rate x E) of O's E gold entities (eval.py's
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

    python -m pytest -q tests/test_regimens.py -k corrupt
"""
import os
import random

from data import labels_from, read_conll, write_conll
from eval import get_entities
from runs import file_hash

KINDS = ("dropped", "wrong type", "wrong boundary")


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
    (see the docstring above); returns (sentences, stats). `types`: the label set's entity types
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
