"""
Span-level precision, recall and F1 for BIO tags, written by hand.

An entity is a maximal run of tokens with one type. Two readings of a tag sequence:
- default (conlleval.pl, seqeval's default mode): an entity starts at B-X, at I-X after O,
  or at any tag whose type differs from the previous tag's; it ends before O, before a B-,
  or before a change of type. So [I-PER, I-PER] is one PER entity.
- strict (IOB2): an entity is B-X followed by I-X of the same type; an I-X that does not
  continue such a run belongs to no entity. So [I-PER, I-PER] has no entity at all.
A predicted entity is correct only if its type, start and end all equal a gold entity's.

    python eval.py --gold data/conll2003/test.txt --pred out/test_predictions.conll [--strict] [--json]
    python eval.py --summarize runs/seed0 runs/seed1 runs/seed2     # mean ± std over train.py runs
"""
import argparse
import json
import os
import sys
from collections import Counter

from data import read_conll


def get_entities(tags, strict=False):
    """The entities of one tag sequence as (type, start, end) with end exclusive."""
    entities = []
    start, etype = None, None  # the entity being read, if any
    for i, tag in enumerate(list(tags) + ["O"]):  # a final O closes the last entity
        prefix, ttype = (tag[0], tag[2:]) if tag != "O" else ("O", None)
        continues = start is not None and prefix == "I" and ttype == etype
        if continues:
            continue
        if start is not None:
            entities.append((etype, start, i))
            start, etype = None, None
        if prefix == "B" or (prefix == "I" and not strict):
            start, etype = i, ttype
    return entities


def _prf(n_correct, n_pred, n_gold):
    p = n_correct / n_pred if n_pred else 0.0
    r = n_correct / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def span_f1(gold, pred, strict=False):
    """Micro and per-type scores over sentences: gold and pred are lists of tag lists."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    n_gold, n_pred, n_correct = Counter(), Counter(), Counter()
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i + 1}: {len(g)} gold tags but {len(p)} predicted")
        g_ents, p_ents = set(get_entities(g, strict)), set(get_entities(p, strict))
        n_gold.update(e[0] for e in g_ents)
        n_pred.update(e[0] for e in p_ents)
        n_correct.update(e[0] for e in g_ents & p_ents)
    per_type = {}
    for t in sorted(set(n_gold) | set(n_pred)):
        p, r, f = _prf(n_correct[t], n_pred[t], n_gold[t])
        per_type[t] = {"precision": p, "recall": r, "f1": f, "support": n_gold[t]}
    p, r, f = _prf(sum(n_correct.values()), sum(n_pred.values()), sum(n_gold.values()))
    return {"precision": p, "recall": r, "f1": f, "per_type": per_type}


def check_same_tokens(gold_sents, pred_sents, gold_path="gold", pred_path="pred"):
    """Refuse a prediction file that is not over exactly the gold tokens, naming the first difference."""
    for i, ((gw, _), (pw, _)) in enumerate(zip(gold_sents, pred_sents)):
        for j in range(max(len(gw), len(pw))):
            a = gw[j] if j < len(gw) else "<end of sentence>"
            b = pw[j] if j < len(pw) else "<end of sentence>"
            if a != b:
                raise ValueError(f"sentence {i + 1}, token {j + 1}: {gold_path} has {a!r}, {pred_path} has {b!r}")
    if len(gold_sents) != len(pred_sents):
        raise ValueError(f"{gold_path} has {len(gold_sents)} sentences, {pred_path} has {len(pred_sents)}")


def format_report(scores):
    lines = [f"{'type':<8}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for t, s in scores["per_type"].items():
        lines.append(f"{t:<8}{100 * s['precision']:>10.2f}{100 * s['recall']:>10.2f}{100 * s['f1']:>10.2f}{s['support']:>9}")
    support = sum(s["support"] for s in scores["per_type"].values())
    lines.append(f"{'overall':<8}{100 * scores['precision']:>10.2f}{100 * scores['recall']:>10.2f}"
                 f"{100 * scores['f1']:>10.2f}{support:>9}")
    return "\n".join(lines)


def summarize(run_dirs):
    """Mean ± sample std over runs (e.g. seeds) of what train.py wrote into each metrics.json."""
    import statistics
    runs = []
    for d in run_dirs:
        with open(os.path.join(d, "metrics.json")) as f:
            runs.append(json.load(f))

    def ms(xs, scale=1.0):
        xs = [scale * x for x in xs]
        return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.2f}"
    return (f"{len(runs)} runs: test F1 {ms([r['test']['f1'] for r in runs], 100)}, dev F1 {ms([r['dev']['f1'] for r in runs], 100)}, "
            f"training s {ms([r['train_seconds'] for r in runs])}, tokens/s {ms([r['train_tokens_per_s'] for r in runs])}\n"
            f"test F1 per run: " + ", ".join(f"{100 * r['test']['f1']:.2f}" for r in runs))


def main(argv=None):
    ap = argparse.ArgumentParser(description="BIO span F1 of a prediction file against a gold file (tag in the last column).")
    ap.add_argument("--gold", help="CoNLL-style file, gold tag in the last column")
    ap.add_argument("--pred", help="CoNLL-style file over the same tokens, predicted tag in the last column")
    ap.add_argument("--strict", action="store_true", help="strict IOB2: an I-X without B-X starts no entity")
    ap.add_argument("--json", action="store_true", help="print the scores as JSON")
    ap.add_argument("--summarize", nargs="+", metavar="OUT_DIR", help="instead: mean ± std over train.py output folders")
    args = ap.parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize))
        return
    if not (args.gold and args.pred):
        ap.error("--gold and --pred are required (or --summarize)")
    try:
        gold, pred = read_conll(args.gold), read_conll(args.pred)
        check_same_tokens(gold, pred, args.gold, args.pred)
    except ValueError as e:
        sys.exit(f"error: {e}")
    scores = span_f1([t for _, t in gold], [t for _, t in pred], strict=args.strict)
    print(json.dumps(scores, indent=2) if args.json else format_report(scores))


if __name__ == "__main__":
    main()
