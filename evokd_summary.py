"""
evokd.py's record of its rounds, written and read: a finished round's line of rounds.jsonl (`round_line`, printed by
`print_round`), and the tables (and a plot) of finished runs: test F1 by round for each group of runs (k, labeller,
variant), the gain over round 0, the variants paired by seed, what the LLM wrote, and how good its labels were against
a model folder's tags.

    python evokd.py summary runs/evokd/k1_*_s? --against runs/ner/teacher/model --out runs/evokd/k1.md --plot k1.png
"""
import json
import os
import statistics
import sys
from collections import Counter
from dataclasses import dataclass

from cli import DataError, opt
from data import atomic_write, read_jsonl
from eval import get_entities
from runs import mean_std, paired, pm, table

MAX_LEN = 128  # evokd.py's --max_len default: the word pieces a window holds when the model tags the new sentences


# ---------------------------------------------------------------------------------------------
# A finished round's line of rounds.jsonl, as evokd.py writes and prints it; the tables below read these lines

def usage(replies):
    return (sum(r["usage"].get("prompt_tokens", 0) for r in replies),
            sum(r["usage"].get("completion_tokens", 0) for r in replies))


def accuracy(items):
    return round(sum(it["pred"] == it["tags"] for it in items) / len(items), 4) if items else None


def round_line(rnd, m, last, *, batch, newest, used, n_generated, dropped, train_items, replay, analysis, seconds):
    """A finished round's line of rounds.jsonl (m: the student's metrics; None: it did not train, so it scores as
    `last`, the line before)."""
    p_tok, c_tok = usage(used)
    kinds = Counter(it["kind"] for it in batch)
    return {"round": rnd, "dev_f1": m["dev"]["f1"] if m else last["dev_f1"],
            "test_f1": m["test"]["f1"] if m else last["test_f1"],
            "prompt_tokens": p_tok, "completion_tokens": c_tok, "requests": len(used), "generated": n_generated,
            "kept": len(batch), "dropped": dict(dropped), "hard": kinds["hard"], "easy": kinds["easy"],
            "similar": kinds["similar"],
            "hard_acc": accuracy([it for it in batch if it["kind"] == "hard"]),
            "easy_acc": accuracy([it for it in batch if it["kind"] == "easy"]),
            "similar_acc": accuracy([it for it in batch if it["kind"] == "similar"]),
            "studied": {"correct": sum(it["pred"] == it["tags"] for it in newest),
                        "wrong": sum(it["pred"] != it["tags"] for it in newest)},
            "train_sentences": len(train_items), "replayed": len(replay), "analysis": analysis,
            "examples": [" ".join(it["words"]) for it in batch[:3]], "seconds": seconds}


def print_round(r):
    acc = lambda x: "-" if x is None else f"{100 * x:.0f}%"  # noqa: E731
    drops = ", ".join(f"{k} {v}" for k, v in sorted(r["dropped"].items())) or "none"
    kinds = f"similar {r['similar']}" if r["similar"] else f"hard {r['hard']} / easy {r['easy']}"
    print(f"round {r['round']}: dev F1 {100 * r['dev_f1']:.2f}, test F1 {100 * r['test_f1']:.2f} | "
          f"{r['generated']} generated, {r['kept']} kept ({kinds}), dropped: {drops} | student right before training: "
          f"hard {acc(r['hard_acc'])}, easy {acc(r['easy_acc'])}"
          + (f", similar {acc(r['similar_acc'])}" if r["similar"] else "")
          + f" | {r['prompt_tokens']} + {r['completion_tokens']} tokens, {r['seconds']:.0f} s", flush=True)
    if r["analysis"]:
        print("  analysis: " + " ".join(r["analysis"].split())[:400], flush=True)


# ---------------------------------------------------------------------------------------------
# The tables of finished runs

def group_name(c):
    k = c.get("per_type", c.get("k"))  # config.json of runs made before --k was named --per_type: k
    return f"k={k} " + ("model labeller" if c["labeller"] else "LLM labeller") + f" {c['variant']}"


def summary(run_dirs, out=None, plot=None, against=None):
    groups, missing, folders = {}, [], {}
    for d in run_dirs:
        path = os.path.join(d, "rounds.jsonl")
        if not os.path.exists(path):
            missing.append(d)
            continue
        with open(os.path.join(d, "config.json")) as f:
            c = json.load(f)
        groups.setdefault(group_name(c), {})[c["seed"]] = read_jsonl(path)
        folders.setdefault(group_name(c), []).append((d, c))
    if not groups:
        raise DataError("no finished round in " + ", ".join(run_dirs) + " (no rounds.jsonl)")
    if missing:
        print(f"skipped, no rounds.jsonl: {', '.join(missing)}", file=sys.stderr)
    n_rounds = min(len(r) for g in groups.values() for r in g.values())
    f = lambda x: None if x is None else 100 * x  # noqa: E731
    lines = ["test F1 by round (mean over seeds; round 0 is the seed set alone):", "",
             table(["runs", "seeds", *range(n_rounds)],
                   [[name, len(g), *(pm(f(statistics.fmean(r[i]["test_f1"] for r in g.values())))
                                     for i in range(n_rounds))]
                    for name, g in sorted(groups.items())])]
    body = []
    for name, g in sorted(groups.items()):
        final = {s: f(r[n_rounds - 1]["test_f1"]) for s, r in g.items()}
        gain = {s: final[s] - f(r[0]["test_f1"]) for s, r in g.items()}
        tokens = statistics.fmean(sum(x["prompt_tokens"] + x["completion_tokens"] for x in r[:n_rounds])
                                  for r in g.values())
        # the LLM may write fewer
        sentences = statistics.fmean(sum(x.get("kept", 0) for x in r[:n_rounds]) for r in g.values())
        vs = []
        for other in ("auggpt", "evokd"):  # the baseline, and the method for its ablations
            base = groups.get(name.rsplit(" ", 1)[0] + " " + other)
            compared = base and not name.endswith(other) and not (other == "evokd" and name.endswith("auggpt"))
            stats = paired(final, {s: f(r[n_rounds - 1]["test_f1"]) for s, r in base.items()} if compared else {})
            vs.append(f"{pm(stats['delta_mean'], stats['delta_std'])} ({stats['better']}/{stats['paired']})"
                      if stats["paired"] else "")
        g_mean = statistics.fmean(gain.values())
        per_point = f"{tokens / g_mean:,.0f}" if g_mean > 0 and tokens else "-"
        body.append([name, pm(*mean_std(final.values())), pm(*mean_std(gain.values())), *vs, f"{sentences:,.0f}",
                     f"{tokens:,.0f}", per_point])
    lines += [f"after round {n_rounds - 1}:", "",
              table(["runs", "test F1", "gain over round 0", "vs auggpt (paired, seeds better)", "vs evokd",
                     "new sentences", "tokens", "tokens per point of F1 gained"], body)]
    body = []
    for name, g in sorted(groups.items()):
        cells = []
        for kind in ("hard", "easy", "similar"):
            rows = [x for r in g.values() for x in r[1:n_rounds] if x.get(kind)]
            n = sum(x[kind] for x in rows)
            cells.append(f"{100 * sum(x[kind] * x[kind + '_acc'] for x in rows) / n:.1f}% of {n}" if n else "")
        body.append([name, *cells])
    lines += ["did the LLM foresee the student's errors? The student's sentence accuracy on the new sentences, tagged "
              "before it trained on them (all rounds and seeds):", "", table(["runs", "hard", "easy", "similar"], body)]
    if against:
        lines += label_agreement(folders, n_rounds, against)
    text = "\n".join(lines)
    print(text, end="")
    if out:
        atomic_write(out, text)
    if plot:
        draw(groups, n_rounds, plot)
    return text


def label_agreement(folders, n_rounds, model_dir):
    """Table lines: each group's labels of its new sentences (rounds 1 to n_rounds - 1) scored against a model
    folder's tags of the same sentences, span F1 with the model as the reference."""
    from eval import span_f1
    from predict import tag_words
    body = []
    for name, runs in sorted(folders.items()):
        if any(os.path.abspath(c["labeller"] or "-") == os.path.abspath(model_dir) for _, c in runs):
            continue  # labelled by that very model
        items = [it for d, _ in runs for r in range(1, n_rounds)
                 if os.path.exists(os.path.join(d, f"round_{r:02d}", "batch.jsonl"))
                 for it in read_jsonl(os.path.join(d, f"round_{r:02d}", "batch.jsonl"))]
        ref = tag_words(model_dir, [it["words"] for it in items], MAX_LEN)
        s = span_f1(ref, [it["tags"] for it in items])
        count = lambda tags: sum(len(get_entities(t)) for t in tags)  # noqa: E731
        body.append([name, len(items), f"{100 * s['f1']:.1f}", f"{100 * s['precision']:.1f}",
                     f"{100 * s['recall']:.1f}", count([it["tags"] for it in items]), count(ref)])
    return [f"the labels of the new sentences against `{model_dir}`'s tags of them "
            "(span F1, the model as reference):", "",
            table(["runs", "sentences", "F1", "precision", "recall", "entities labelled",
                   "entities the model finds"], body)]


def draw(groups, n_rounds, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: --plot needs matplotlib, which is not installed: pip install matplotlib "
                         "(or drop --plot for the text tables)") from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, g in sorted(groups.items()):
        ax.plot(range(n_rounds), [100 * statistics.fmean(r[i]["test_f1"] for r in g.values()) for i in range(n_rounds)],
                marker="o", label=f"{name} ({len(g)} seeds)")
    ax.set_xlabel("round")
    ax.set_ylabel("test F1 (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot -> {path}")


@dataclass
class SummaryConfig:
    runs: list = opt(None, "run folders (--out_dir of evokd.py)", nargs="+", positional=True)
    out: str = opt("", "also write the tables to this markdown file")
    plot: str = opt("", "also draw test F1 by round into this file (needs matplotlib)")
    against: str = opt("", "also score the new sentences' labels against this model folder's tags of them "
                           "(how good was the labeller?)")
