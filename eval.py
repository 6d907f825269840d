"""
Span-level precision, recall and F1 for BIO tags, and accuracy and macro-F1 for text classification,
written by hand.

An entity is a maximal run of tokens with one type. Two readings of a tag sequence:
- default (conlleval.pl, seqeval's default mode): an entity starts at B-X, at I-X after O,
  or at any tag whose type differs from the previous tag's; it ends before O, before a B-,
  or before a change of type. So [I-PER, I-PER] is one PER entity.
- strict (IOB2): an entity is B-X followed by I-X of the same type; an I-X that does not
  continue such a run belongs to no entity. So [I-PER, I-PER] has no entity at all.
A predicted entity is correct only if its type, start and end all equal a gold entity's.

Classification (a gold file ending in .jsonl): one JSON object a line in both files, the same texts
in the same order; accuracy, per-class precision/recall/F1, macro-F1 (unweighted mean over the
labels, 0 where undefined, as scikit-learn's zero_division=0) and the confusion matrix.

    python eval.py --gold data/conll2003/test.txt --pred out/test_predictions.conll [--strict] [--json]
    python eval.py --gold runs/bbc_split/test.jsonl --pred out/test_predictions.jsonl [--json]
    python eval.py --summarize runs/seed0 runs/seed1 runs/seed2     # mean ± std over train.py runs
    python eval.py --summarize runs/kd_s0 runs/kd_s1 --against runs/gold_s0 runs/gold_s1   # and paired differences
    python eval.py --gold data/conll2003/test.txt --pred a/test_predictions.conll --versus b/test_predictions.conll
"""
import json
from collections import Counter
from dataclasses import dataclass

from cli import DataError, command_line, opt, parse_config, run_main
from data import atomic_write, read_conll, read_jsonl_numbered
from runs import headline, mean_std, paired, pm, provenance, read_runs, vs_base


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
                raise DataError(f"sentence {i + 1}, token {j + 1}: {gold_path} has {a!r}, {pred_path} has {b!r}")
    if len(gold_sents) != len(pred_sents):
        raise DataError(f"{gold_path} has {len(gold_sents)} sentences, {pred_path} has {len(pred_sents)}")


def format_report(scores):
    lines = [f"{'type':<8}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for t, s in scores["per_type"].items():
        lines.append(f"{t:<8}{100 * s['precision']:>10.2f}{100 * s['recall']:>10.2f}{100 * s['f1']:>10.2f}"
                     f"{s['support']:>9}")
    support = sum(s["support"] for s in scores["per_type"].values())
    lines.append(f"{'overall':<8}{100 * scores['precision']:>10.2f}{100 * scores['recall']:>10.2f}"
                 f"{100 * scores['f1']:>10.2f}{support:>9}")
    return "\n".join(lines)


def classification_scores(gold, pred, labels=None):
    """Accuracy, macro-F1, per-class scores and confusion matrix of two equal-length lists of labels.

    labels defaults to the sorted union of gold and pred; a text whose gold or predicted label is not
    in labels is left out of the matrix (and of the per-class scores of the labels it lacks)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predicted")
    if not gold:
        raise ValueError("no texts to score")
    labels = sorted(set(gold) | set(pred)) if labels is None else list(labels)
    n_gold, n_pred = Counter(gold), Counter(pred)
    n_correct = Counter(g for g, p in zip(gold, pred) if g == p)
    per_class = {}
    for label in labels:
        p, r, f = _prf(n_correct[label], n_pred[label], n_gold[label])
        per_class[label] = {"precision": p, "recall": r, "f1": f, "support": n_gold[label]}
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]  # rows: gold, columns: predicted
    for g, p in zip(gold, pred):
        if g in index and p in index:
            matrix[index[g]][index[p]] += 1
    return {"accuracy": sum(n_correct.values()) / len(gold),
            "macro_f1": sum(s["f1"] for s in per_class.values()) / len(labels) if labels else 0.0,
            "per_class": per_class, "confusion": {"labels": labels, "matrix": matrix}}


def format_classification_report(scores):
    labels = scores["confusion"]["labels"]
    w = max(len("macro avg"), *map(len, labels))
    lines = [f"{'label':<{w}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for label, s in scores["per_class"].items():
        lines.append(f"{label:<{w}}{100 * s['precision']:>10.2f}{100 * s['recall']:>10.2f}{100 * s['f1']:>10.2f}"
                     f"{s['support']:>9}")
    per_class = scores["per_class"].values()
    support = sum(s["support"] for s in per_class)
    macro_p, macro_r = (sum(s[k] for s in per_class) / max(len(per_class), 1) for k in ("precision", "recall"))
    lines.append(f"{'macro avg':<{w}}{100 * macro_p:>10.2f}{100 * macro_r:>10.2f}{100 * scores['macro_f1']:>10.2f}"
                 f"{support:>9}")
    lines.append(f"{'accuracy':<{w}}{'':>20}{100 * scores['accuracy']:>10.2f}{support:>9}")
    cw = max(7, *(len(str(c)) + 2 for row in scores["confusion"]["matrix"] for c in row))
    lines += ["", "confusion matrix (rows: gold, columns: predicted)",
              f"{'':<{w}}" + "".join(f"{label[:cw - 2]:>{cw}}" for label in labels)]
    for label, row in zip(labels, scores["confusion"]["matrix"]):
        lines.append(f"{label:<{w}}" + "".join(f"{c:>{cw}}" for c in row))
    return "\n".join(lines)


def read_label_pairs(gold_path, pred_path, label_field="label", pred_field="label"):
    """Gold and predicted labels of two JSONL files over the same texts, refusing the first line where they differ."""
    gold, pred = read_jsonl_numbered(gold_path), read_jsonl_numbered(pred_path)
    if len(gold) != len(pred):
        raise DataError(f"{gold_path} has {len(gold)} records, {pred_path} has {len(pred)}")
    out = ([], [])
    for (gl, g), (pl, p) in zip(gold, pred):
        for key in ("id", "text"):
            if key in g and key in p and g[key] != p[key]:
                raise DataError(f"{gold_path}:{gl} and {pred_path}:{pl}: different {key}s "
                                f"({str(g[key])[:60]!r} and {str(p[key])[:60]!r}); "
                                "the files must list the same texts in the same order")
        for path, lineno, rec, field, labels in ((gold_path, gl, g, label_field, out[0]),
                                                 (pred_path, pl, p, pred_field, out[1])):
            if not isinstance(rec.get(field), str):
                raise DataError(f"{path}:{lineno}: field {field!r} is {rec.get(field, 'missing')!r}, "
                                "expected a label string")
            labels.append(rec[field])
    return out


def how_missed(entity, predicted):
    """What a prediction did with a gold entity it did not get right: "typed X" (the span, another type), "span"
    (an overlapping entity of another extent) or "missed" (nothing there)."""
    _, start, end = entity
    same_span = [t for t, s, e in predicted if (s, e) == (start, end)]
    if same_span:
        return f"typed {same_span[0]}"
    return "span" if any(s < end and start < e for _, s, e in predicted) else "missed"


def versus(gold, pred, other, n_examples=5):
    """Where two predictions over the same gold sentences differ, entity by entity: the gold entities `pred` gets
    right and `other` does not ("gained", by type and by what `other` did instead: how_missed), the reverse ("lost"),
    and the wrong entities only one of them predicts; with the first n_examples sentences of each way."""
    found = {"gained": Counter(), "lost": Counter()}
    spurious = Counter()
    examples = {"gained": [], "lost": []}
    for (words, g), (_, a), (_, b) in zip(gold, pred, other):
        ge, ae, be = (set(get_entities(t)) for t in (g, a, b))
        for e in sorted(ge, key=lambda x: x[1]):
            if (e in ae) == (e in be):
                continue
            way, wrong = ("gained", be) if e in ae else ("lost", ae)
            how = how_missed(e, wrong)
            found[way][f"{e[0]}, {how}"] += 1
            if len(examples[way]) < n_examples:
                examples[way].append({"sentence": " ".join(words), "entity": " ".join(words[e[1]:e[2]]),
                                      "gold": e[0], "instead": how})
        spurious["pred only"] += len(ae - ge - be)
        spurious["other only"] += len(be - ge - ae)
    return {"gained": dict(found["gained"].most_common()), "lost": dict(found["lost"].most_common()),
            "wrong entities": dict(spurious), "examples": examples}


def format_versus(v):
    lines = []
    for way, say in (("gained", "right in --pred, not in --versus"), ("lost", "right in --versus, not in --pred")):
        lines.append(f"{sum(v[way].values())} gold entities {say}: "
                     + ", ".join(f"{k} {n}" for k, n in v[way].items()))
        lines += [f"  {x['entity']} ({x['gold']}; the other: {x['instead']}): {x['sentence']}" for x in v["examples"][way]]
    w = v["wrong entities"]
    lines.append(f"wrong entities only --pred predicts: {w['pred only']}; only --versus: {w['other only']}")
    return "\n".join(lines)


def compare(run_dirs, against):
    """Paired differences, run i minus run i of `against` (the same seed, say): mean ± std and wins."""
    if len(run_dirs) != len(against):
        raise DataError(f"{len(run_dirs)} runs to compare against {len(against)}: pair them one to one (same seeds)")
    ours, theirs = ({i: headline(r) for i, r in enumerate(read_runs(dirs))} for dirs in (run_dirs, against))
    stats = paired(ours, theirs)
    return f"paired difference {vs_base(stats)}: " + ", ".join(f"{d:+.2f}" for d in stats["diffs"])


def summarize(run_dirs):
    """Mean ± sample std over runs (e.g. seeds) of what train.py wrote into each metrics.json."""
    runs = read_runs(run_dirs)

    def ms(xs, scale=1.0):
        mean, std = mean_std(scale * x for x in xs)
        return pm(mean, std or 0.0)
    tasks = {r.get("task", "ner") for r in runs}
    if len(tasks) > 1:
        raise DataError(f"runs of different tasks ({', '.join(sorted(tasks))}) cannot be summarized together")
    if tasks == {"classify"}:
        speed = "".join(f", {name} {ms([r[key] for r in runs])}" for key, name in
                        (("train_seconds", "training s"), ("train_tokens_per_s", "tokens/s"))
                        if all(key in r for r in runs))
        return (f"{len(runs)} runs: test accuracy {ms([r['test']['accuracy'] for r in runs], 100)}, "
                f"test macro-F1 {ms([r['test']['macro_f1'] for r in runs], 100)}, "
                f"dev accuracy {ms([r['dev']['accuracy'] for r in runs], 100)}, "
                f"dev macro-F1 {ms([r['dev']['macro_f1'] for r in runs], 100)}"
                f"{speed}\ntest accuracy / macro-F1 per run: "
                + ", ".join(f"{100 * r['test']['accuracy']:.2f} / {100 * r['test']['macro_f1']:.2f}" for r in runs))
    return (f"{len(runs)} runs: test F1 {ms([r['test']['f1'] for r in runs], 100)}, "
            f"dev F1 {ms([r['dev']['f1'] for r in runs], 100)}, "
            f"training s {ms([r['train_seconds'] for r in runs])}, "
            f"tokens/s {ms([r['train_tokens_per_s'] for r in runs])}\n"
            f"test F1 per run: " + ", ".join(f"{100 * r['test']['f1']:.2f}" for r in runs))


@dataclass
class Config:
    gold: str = opt("", "CoNLL-style file, gold tag in the last column; or JSONL, one labelled text a line")
    pred: str = opt("", "CoNLL-style file over the same tokens, predicted tag in the last column; "
                        "or JSONL over the same texts")
    label_field: str = opt("label", "JSONL: the gold file's label field")
    pred_field: str = opt("label", "JSONL: the prediction file's label field")
    strict: bool = opt(False, "strict IOB2: an I-X without B-X starts no entity")
    json: bool = opt(False, "print the scores as JSON")
    summarize: list = opt(None, "instead: mean ± std over train.py output folders", nargs="+")
    against: list = opt(None, "with --summarize: also the paired differences of the test score to these runs, "
                              "one to one in order (the same seeds)", nargs="+")
    versus: str = opt("", "NER: another prediction file over the same tokens; instead of scores, the gold entities "
                          "one gets right and the other does not, by type and by what the other did, with examples")
    examples: int = opt(5, "with --versus: sentences shown of each way")
    out: str = opt("", "with --versus: also write it as JSON, with its record (the command, the machine), to this file")


def main(argv=None):
    args = parse_config(Config, argv, description="BIO span F1 of a prediction file against a gold file (tag in the "
                                                  "last column); accuracy and macro-F1 when the gold file is .jsonl.")
    if args.summarize:
        print(summarize(args.summarize))
        if args.against:
            print(compare(args.summarize, args.against))
        return
    if not (args.gold and args.pred):
        raise SystemExit("error: --gold and --pred are required (or --summarize) (see python eval.py -h)")
    if args.versus and args.gold.endswith(".jsonl") or args.out and not args.versus:
        raise SystemExit("error: --versus compares two NER prediction files (CoNLL) against the gold; --out goes with it")
    if args.gold.endswith(".jsonl"):
        scores = classification_scores(*read_label_pairs(args.gold, args.pred, args.label_field, args.pred_field))
        print(json.dumps(scores, indent=2, ensure_ascii=False) if args.json else format_classification_report(scores))
        return
    gold, pred = read_conll(args.gold), read_conll(args.pred)
    check_same_tokens(gold, pred, args.gold, args.pred)
    if args.versus:
        other = read_conll(args.versus)
        check_same_tokens(gold, other, args.gold, args.versus)
        v = versus(gold, pred, other, args.examples)
        print(format_versus(v))
        if args.out:
            v = {"gold": args.gold, "pred": args.pred, "versus": args.versus, **v,
                 "record": provenance(command_line("eval.py", args))}
            atomic_write(args.out, json.dumps(v, indent=1, ensure_ascii=False) + "\n")
        return
    scores = span_f1([t for _, t in gold], [t for _, t in pred], strict=args.strict)
    print(json.dumps(scores, indent=2) if args.json else format_report(scores))


if __name__ == "__main__":
    run_main(main)
