"""
How sure is the LLM of each label? A confidence for every entity and every sentence an LLM labels, from what the
endpoint offers, and what filtering by it buys: annotate.py --confidence logprobs|samples --min_confidence T.

    python annotate.py --input data/conll2003/train.txt --limit 200 --seed 0 --prompt completion --demos knn \\
        --confidence logprobs --out runs/conf/logprobs.conll      # the report holds the curve and the calibration

Two ways, both in [0, 1]:
- logprobs (an endpoint that returns token log-probabilities: `logprobs` on /v1/completions, `logprobs` /
  `top_logprobs` on chat): an entity's confidence is the smallest probability among the tokens that write it in the
  reply (its words, the bracket, its type): the weakest step in writing it. Not the product of them all (the joint
  probability), which would call every long name doubtful just for its length, and not their mean, in which the
  many tokens a model copies from the sentence with near certainty would drown the one it hesitated on (where the
  name starts, where it ends, which type). With greedy decoding (temperature 0) each of those tokens was the most
  probable one, so the smallest is how close the model came to writing something else.
- samples, for endpoints that return no probabilities: k more replies at temperature above 0 (k requests, each
  cached like any other), parsed and aligned as the greedy one; an entity's confidence is the share of the k samples
  that hold it too, same type, same tokens (self-consistency, Wang et al. 2023).
A sentence is as sure as its least sure entity; a sentence with no entity, as sure as the reply that said so (its
smallest token probability; or the share of samples that found none either).

Filtering (--min_confidence T): `sentence` keeps a sentence in D only if its confidence is at least T, since a
sentence kept with one doubtful entity removed still teaches `O` for that name; `entity` keeps every sentence and
drops only the doubtful entities (their tokens become O). With gold tags, `curve` gives span F1, precision and recall
of what each rule keeps, at each threshold, against the share kept, and `calibration` the share of entities right in
each band of confidence (is a confidence of 0.9 right about 90 % of the time?).
"""
import math

from eval import get_entities, span_f1

THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def token_spans(logprobs):
    """[(start, end, probability)] of each reply token in the reply's text, the tokens laid end to end."""
    spans, at = [], 0
    for token, lp in logprobs:
        spans.append((at, at + len(token), None if lp is None else math.exp(lp)))
        at += len(token)
    return spans


def item_spans(content, pairs):
    """For each (text, type) the reply proposed, in order, the characters of the reply that write it: from its text to
    its type, found left to right ("Name (TYPE)" in a completion line, {"text": ..., "type": ...} in JSON); None where
    it cannot be found."""
    out, cursor = [], 0
    for pair in pairs:
        if pair is None:
            out.append(None)
            continue
        text, etype = pair
        i = content.find(text, cursor)
        j = content.find(etype, i + len(text)) if i >= 0 else -1
        if i < 0 or j < 0:
            out.append(None)
            continue
        out.append((i, j + len(etype)))
        cursor = j + len(etype)
    return out


def weakest(spans, start=0, end=None):
    """The smallest token probability over the tokens that overlap [start, end) of the reply (all of it by default);
    1.0 where there is none (an empty reply is as sure as it can be of saying nothing)."""
    end = math.inf if end is None else end
    probs = [p for a, b, p in spans if p is not None and a < end and b > start]
    return min(probs) if probs else 1.0


def from_logprobs(reply, pairs, kept):
    """(confidence of each kept entity, of the sentence) from the reply's token log-probabilities. pairs: (text, type)
    of every item of the reply, in order; kept: the aligned entities, each with "item", the index of its item."""
    spans = token_spans(reply["logprobs"])
    where = item_spans(reply["content"], pairs)
    conf = [weakest(spans, *where[e["item"]]) if where[e["item"]] else weakest(spans) for e in kept]
    return conf, (min(conf) if conf else weakest(spans))


def from_samples(kept, samples):
    """(confidence of each kept entity, of the sentence) from k samples: each the set of (type, start, end) that
    sample's reply aligned to (None: an unreadable sample, which agrees with nothing)."""
    k = max(1, len(samples))
    conf = [sum(s is not None and (e["type"], e["start"], e["end"]) in s for s in samples) / k for e in kept]
    return conf, (min(conf) if conf else sum(s is not None and not s for s in samples) / k)


def filtered_tags(tags, kept, conf, threshold):
    """The tags with every entity below the threshold removed (its tokens O)."""
    tags = list(tags)
    for e, c in zip(kept, conf):
        if c < threshold:
            tags[e["start"]:e["end"]] = ["O"] * (e["end"] - e["start"])
    return tags


def curve(items, thresholds=THRESHOLDS):
    """What each filter keeps at each threshold, and how good it is against gold. items: one per labelled sentence,
    {"gold", "tags", "kept", "conf", "sentence_conf"}. Rows: threshold; sentence rule: share of sentences kept and span
    F1 / precision / recall over them; entity rule: share of entities kept and F1 / P / R over every sentence."""
    n_ent = sum(len(it["kept"]) for it in items)
    rows = []
    for t in thresholds:
        kept = [it for it in items if it["sentence_conf"] >= t]
        s = span_f1([it["gold"] for it in kept], [it["tags"] for it in kept]) if kept else None
        e = span_f1([it["gold"] for it in items],
                    [filtered_tags(it["tags"], it["kept"], it["conf"], t) for it in items])
        rows.append({"threshold": t, "sentences_kept": len(kept) / max(1, len(items)),
                     "sentence_f1": s and s["f1"], "sentence_precision": s and s["precision"],
                     "sentence_recall": s and s["recall"],
                     "entities_kept": sum(c >= t for it in items for c in it["conf"]) / max(1, n_ent),
                     "entity_f1": e["f1"], "entity_precision": e["precision"], "entity_recall": e["recall"]})
    return rows


def calibration(items, bands=10):
    """Per band of entity confidence [0, 0.1), ..., [0.9, 1.0]: entities, their mean confidence, and the share that are
    right (type, start and end of a gold entity)."""
    rows = [{"band": f"{b / bands:.1f}-{(b + 1) / bands:.1f}", "entities": 0, "mean_confidence": 0.0, "right": 0}
            for b in range(bands)]
    for it in items:
        gold = set(get_entities(it["gold"]))
        for e, c in zip(it["kept"], it["conf"]):
            r = rows[min(bands - 1, int(c * bands))]
            r["entities"] += 1
            r["mean_confidence"] += c
            r["right"] += (e["type"], e["start"], e["end"]) in gold
    for r in rows:
        n = r["entities"]
        r["mean_confidence"], r["precision"] = (r["mean_confidence"] / n, r["right"] / n) if n else (None, None)
    return rows


# ---------------------------------------------------------------------------------------------
# Classification (annotate.py with a classify task file): one label per text.

def label_from_logprobs(reply, label):
    """The confidence of the label a reply gave: the smallest probability among the tokens that write it (the whole
    reply where the label cannot be found in it, written in another case, say)."""
    spans = token_spans(reply["logprobs"])
    i = reply["content"].lower().find(label.lower())
    return weakest(spans, i, i + len(label)) if i >= 0 else weakest(spans)


def label_curve(items, labels, thresholds=THRESHOLDS):
    """What the filter keeps at each threshold, and how good it is against gold. items: {"gold", "label", "conf"}
    per labelled text. Rows: threshold, share of texts kept, accuracy and macro-F1 over them."""
    from eval import classification_scores
    rows = []
    for t in thresholds:
        kept = [it for it in items if it["conf"] >= t]
        s = classification_scores([it["gold"] for it in kept], [it["label"] for it in kept], labels) if kept else None
        rows.append({"threshold": t, "texts_kept": len(kept) / max(1, len(items)),
                     "accuracy": s and s["accuracy"], "macro_f1": s and s["macro_f1"]})
    return rows
