"""
Reading an LLM's reply, and what a labelling run writes from its replies. For NER: find the answer (a JSON list, a
chain of thought's last "Answer:" line, or a completion line "Name (TYPE); ...") and map each entity string onto the
sentence's tokens; for classification, the one label the reply gives. The types and labels a reply may use are the
task file's (task.py); anything else is dropped and counted by reason, never kept. annotate.py and evokd.py read
every reply here, and annotate.py's --out, FILE.replies.jsonl and FILE.report.json are written here (assemble,
assemble_labels).

    python -c "import replies; print(replies.parse_reply('completion', 'EU (ORG); German (MISC)'))"

The parsers were written against what small models really reply (tests/test_annotate.py holds such replies):
invalid types, "entities" that are the whole sentence, broken JSON, names repeated, reasoning before the answer,
a label followed by its copied definition.
"""
import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass

import confidence
from data import atomic_write, write_conll, write_jsonl
from eval import classification_scores, span_f1
from cli import command_line
from llm import http_report
from runs import provenance

ANSWER_RE = re.compile(r"\banswer\s*:", re.I)
TEXT_KEYS, TYPE_KEYS = ("text", "entity", "name", "word", "span"), ("type", "label", "entity_type", "category", "tag")
OBJECT_RE = re.compile(r"\{[^{}]*\}")
OPEN_RE = re.compile(r"[\[{]")
FIELD_RE = re.compile(r"""["']?(\w+)["']?\s*:\s*(?:"([^"]*)"|'([^']*)')""")
ITEM_RE = re.compile(r"^(.+?)\s*\(\s*([A-Za-z-]+)\s*\)\W*$")


def json_values(text):
    """The top-level JSON lists and objects in `text`, in order; fences and prose around them are skipped."""
    decoder, values, i = json.JSONDecoder(), [], 0
    while (m := OPEN_RE.search(text, i)) is not None:
        try:
            value, i = decoder.raw_decode(text, m.start())
            values.append(value)
        except json.JSONDecodeError:
            i = m.start() + 1
    return values


def json_items(text):
    """(items, how) from a JSON-style answer: the last list; else an {"entities": [...]} object or an
    {entity: type} / {type: [entities]} mapping; else the {...} fragments of a broken list (how =
    "repaired": single quotes, a missing bracket, a reply cut off mid-list). None if there is none."""
    values = json_values(text)
    lists = [v for v in values if isinstance(v, list)]
    if lists:
        return lists[-1], "ok"
    for v in reversed(values):
        if isinstance(v.get("entities"), list):
            return v["entities"], "ok"
        if v and not any(k in v for k in TEXT_KEYS) and all(isinstance(x, (str, list)) for x in v.values()):
            return [(k, t) if isinstance(t, str) else (x, k) for k, t in v.items()
                    for x in (t if isinstance(t, list) else [None])], "ok"
    items = []
    for frag in OBJECT_RE.findall(text):
        try:
            items.append(json.loads(frag))
        except ValueError:
            items.append({m[0]: m[1] or m[2] for m in FIELD_RE.findall(frag)})
    items = [x for x in items if isinstance(x, dict) and any(k in x for k in TEXT_KEYS)]
    return (items, "repaired") if items else None


def completion_items(text):
    """Items from a line "Name (TYPE); Name (TYPE)" or "none"; a part without "(TYPE)" is kept as a bare
    string, which counts as a malformed entity."""
    line = text.strip().split("\n")[0].strip()
    if not line:
        return None
    if line.lower().rstrip(".") in ("none", "no entities", "-", "n/a"):
        return [], "ok"
    items = []
    for part in filter(None, (p.strip() for p in line.split(";"))):
        m = ITEM_RE.match(part)
        items.append((m[1], m[2]) if m else part)
    return items, "ok"


def parse_reply(form, content, finish_reason=None):
    """(items, status): status "ok" or "repaired" with a list of raw items, or a failure ("empty",
    "truncated", "no_answer") with items None. For `cot`, the answer after the last "Answer:" wins."""
    if not content or not content.strip():
        return None, "empty"
    if form == "completion":
        return completion_items(content) or (None, "no_answer")
    found = None
    if form == "cot":
        marks = list(ANSWER_RE.finditer(content))
        if marks:
            found = json_items(content[marks[-1].end():])
        if not found and finish_reason == "length":
            return None, "truncated"  # cut off in the reasoning: any list so far is not the answer
    found = found or json_items(content)
    if found is None:
        return None, "truncated" if finish_reason == "length" else "no_answer"
    return found


def item_pair(item):
    """(text, type) of one answer item, or None if it has no such shape."""
    if isinstance(item, dict):
        text = next((item[k] for k in TEXT_KEYS if k in item), None)
        etype = next((item[k] for k in TYPE_KEYS if k in item), None)
    elif isinstance(item, (list, tuple)) and len(item) == 2:
        text, etype = item
    else:
        return None
    return (text, etype) if isinstance(text, str) and isinstance(etype, str) else None


def default_task():
    import task
    return task.load(None, "ner")


def find_span(tokens, needle, start, tags):
    """First (i, j), i >= start, whose tokens joined without spaces equal `needle` and whose tags are
    all O (tags None: any). Matching without spaces finds "Germany's" in `Germany 's`."""
    for i in range(start, len(tokens)):
        if not needle.startswith(tokens[i]):
            continue
        s, j = "", i
        while j < len(tokens) and len(s) < len(needle):
            s, j = s + tokens[j], j + 1
        if s == needle and (tags is None or all(t == "O" for t in tags[i:j])):
            return i, j
    return None


def align(words, items, max_entity_tokens=10, task=None):
    """BIO tags on exactly `words`, the entities kept, and a Counter of those dropped by reason.

    Entities are placed left to right with a cursor that follows the previous match, first exactly
    and then ignoring case, so a repeated name maps to its occurrences in order. One not found after
    the cursor is looked for from the start (a list out of order). Tokens already labelled are never
    relabelled; pure punctuation at either end of a match is trimmed off. A type that is not one of the
    task's (task.label_of: any case, B-/I- prefix, the task file's aliases; default CoNLL-2003's) is bad_type."""
    task = task or default_task()
    tags, kept, dropped, cursor = ["O"] * len(words), [], Counter(), 0
    lower = [w.lower() for w in words]
    for k, item in enumerate(items):
        pair = item_pair(item)
        if pair is None:
            dropped["malformed"] += 1
            continue
        text, etype = pair
        etype = task.label_of(etype)
        if etype is None:
            dropped["bad_type"] += 1
            continue
        needle = "".join(text.split())
        if not any(c.isalnum() for c in needle):
            dropped["not_found"] += 1
            continue
        searches = [(words, needle, cursor), (lower, needle.lower(), cursor), (words, needle, 0),
                    (lower, needle.lower(), 0)]
        span, n = None, 0
        for n, (toks, nd, start) in enumerate(searches):
            if (span := find_span(toks, nd, start, tags)) is not None:
                break
        if span is None:
            dropped["overlap" if find_span(lower, needle.lower(), 0, None) else "not_found"] += 1
            continue
        i, j = span
        while not any(c.isalnum() for c in words[i]):
            i += 1
        while not any(c.isalnum() for c in words[j - 1]):
            j -= 1
        if j - i > max_entity_tokens:
            dropped["too_long"] += 1
            continue
        tags[i:j] = [f"B-{etype}"] + [f"I-{etype}"] * (j - i - 1)
        kept.append({"text": " ".join(words[i:j]), "type": etype, "start": i, "end": j, "item": k})
        if n < 2:
            cursor = span[1]
    return tags, kept, dropped



def demo_overlap(words, items, shots):
    """(entities the reply names that are not in the sentence, how many of those a worked example names,
    whether a worked example is a near copy of the sentence: 80 % or more of its distinct tokens shared)."""
    sentence = "".join(words).lower()
    named = {t.lower() for _, ents in shots for t, _ in ents}
    outside = [p[0] for p in map(item_pair, items) if p and "".join(p[0].split()).lower() not in sentence]
    near = any(len(set(words) & set(w)) >= 0.8 * len(set(words) | set(w)) for w, _ in shots)
    return len(outside), sum(t.lower() in named for t in outside), near


LABEL_RE = re.compile(r"^[\s\"'*`:(\[]*(.*?)[\s\"'*`.,;:)\]]*$")


def label_reply(content, task):
    """(label, status) of a classification reply: its first line (quotes, brackets, a final stop and anything from an
    opening bracket on trimmed off) naming one of the task's labels (task.label_of); (None, "empty" | "no_answer") otherwise, never a guess."""
    if not content or not content.strip():
        return None, "empty"
    # "business (companies, markets, ...)": small models copy the definition after the label, cut off or not
    line = LABEL_RE.match(re.sub(r"(?<=\w)\s*\(.*$", "", content.strip().split("\n")[0])).group(1)
    label = task.label_of(line) if line else None
    return (label, "ok") if label else (None, "no_answer")


# ---------------------------------------------------------------------------------------------
# What a labelling run writes from its replies: --out, FILE.replies.jsonl and FILE.report.json (annotate.py).

@dataclass
class Replies:
    """A labelling run's replies and what they answer: one reply (None: none came back) per record."""
    cfg: object
    task: object
    records: list
    replies: list
    samples: list  # --confidence samples: each record's sampled replies; else None
    shots: list  # each record's worked examples
    failures: dict  # record -> (reason, detail)


def side_paths(out):
    stem = os.path.splitext(out)[0]
    return f"{stem}.report.json", f"{stem}.replies.jsonl"


def entity_confidence(cfg, task, words, reply, items, kept, samples):
    """(confidence of each kept entity, of the sentence) by --confidence (confidence.py); None where the endpoint
    sent no log-probabilities."""
    if cfg.confidence == "logprobs":
        if not reply.get("logprobs"):
            return None
        return confidence.from_logprobs(reply, [item_pair(x) for x in items], kept)
    sets = []
    for s in samples:
        found = None if s is None else parse_reply(cfg.prompt, s["content"], s["finish_reason"])[0]
        sets.append(None if found is None else {(e["type"], e["start"], e["end"])
                                                for e in align(words, found, cfg.max_entity_tokens, task)[1]})
    return confidence.from_samples(kept, sets)


def read_sentence(done, i, acc, scored):
    """Sentence i's reply read, aligned, scored for confidence and filtered: (its line of the replies file, its tags
    for --out or None). An unreadable reply goes into done.failures."""
    cfg, rec, reply = done.cfg, done.records[i], done.replies[i]
    line, tags = {"index": rec["index"], **rec["meta"], "status": None, "out_sentence": None}, None
    if reply is None:
        return line, None
    line["reply"] = reply
    items, status = parse_reply(cfg.prompt, reply["content"], reply["finish_reason"])
    line["status"] = status
    count_tokens(acc, reply)
    if items is None:
        done.failures[i] = (status, f"reply not readable ({status})")
        return line, None
    tags, kept, dropped = align(rec["words"], items, cfg.max_entity_tokens, done.task)
    acc["entities_proposed"] += len(items)
    acc["entities_kept"] += len(kept)
    acc.update(f"type_{e['type']}" for e in kept)
    outside, copied, near = demo_overlap(rec["words"], items, done.shots[i])
    acc["entities_not_in_sentence"] += outside
    acc["entities_copied_from_demos"] += copied
    acc["sentences_with_near_copy_demo"] += near
    acc.update({f"dropped_{k}": v for k, v in dropped.items()})
    acc[f"replies_{status}"] += 1
    line.update(entities=kept, dropped=dict(dropped))
    sure = entity_confidence(cfg, done.task, rec["words"], reply, items, kept, done.samples[i] if done.samples else
                             None) if cfg.confidence != "none" else None
    if sure is not None:
        conf, line["confidence"] = sure[0], round(sure[1], 4)
        for e, c in zip(kept, conf):
            e["confidence"] = round(c, 4)
        if rec["gold"] is not None:
            scored.append({"gold": rec["gold"], "tags": tags, "kept": kept, "conf": conf, "sentence_conf": sure[1]})
        if cfg.filter == "entity":  # the doubtful entities go, the sentence stays
            acc["entities_filtered"] += sum(c < cfg.min_confidence for c in conf)
            tags = confidence.filtered_tags(tags, kept, conf, cfg.min_confidence)
        elif sure[1] < cfg.min_confidence:
            acc["sentences_filtered"] += 1  # the whole sentence goes: it would teach O for its doubtful names
            line["filtered"] = True
    elif cfg.confidence != "none":
        acc["replies_without_logprobs"] += 1
    return line, tags


def count_tokens(acc, reply):
    acc["prompt_tokens_total"] += reply["usage"].get("prompt_tokens", 0)
    acc["completion_tokens_total"] += reply["usage"].get("completion_tokens", 0)


def base_report(done, stats, stopped, seconds, unit, written, acc):
    """The report's fields common to entities and labels."""
    reasons = Counter(r for r, _ in done.failures.values())
    return {
        "config": {k: v for k, v in asdict(done.cfg).items() if k != "progress"},
        "record": provenance(command_line("annotate.py", done.cfg)),
        "task": done.task.path,
        "stopped": stopped,
        "seconds": round(seconds, 2),  # wall time of this run, requests and cache look-ups
        f"{unit}s": len(done.records),
        f"{unit}s_written": written,
        f"{unit}s_failed": len(done.failures),
        f"{unit}s_not_attempted": sum(r is None for r in done.replies) - reasons["gave_up"],
        **http_report(stats),
        "failures_by_reason": dict(reasons),
        "parse_failures": sum(v for k, v in reasons.items() if k != "gave_up"),
        "replies_repaired": acc["replies_repaired"],
        "prompt_tokens_total": acc["prompt_tokens_total"],  # of every reply used, cached ones included
        "completion_tokens_total": acc["completion_tokens_total"],
        "failed": [{"index": done.records[i]["index"], **done.records[i]["meta"], "reason": r, "detail": d}
                   for i, (r, d) in sorted(done.failures.items())]}


def confidence_report(cfg, acc, unit, **curves):
    return {"method": cfg.confidence, **({"samples": cfg.samples, "sample_temperature": cfg.sample_temperature}
                                         if cfg.confidence == "samples" else {}),
            "min_confidence": cfg.min_confidence, "filter": cfg.filter, f"{unit}s_filtered": acc[f"{unit}s_filtered"],
            **({"entities_filtered": acc["entities_filtered"]} if unit == "sentence" else {}),
            "replies_without_logprobs": acc["replies_without_logprobs"], **curves}


def write_outputs(cfg, report, write_out, lines):
    """--out and the replies file (not when the run was stopped), and the report, each atomically."""
    report_path, replies_path = side_paths(cfg.out)
    os.makedirs(os.path.dirname(cfg.out) or ".", exist_ok=True)
    if not report["stopped"]:
        write_out()
        atomic_write(replies_path, "\n".join(lines) + "\n")
    atomic_write(report_path, json.dumps(report, indent=1) + "\n")
    return report


def assemble(done, stats, stopped, seconds):
    """NER: write --out (CoNLL), the replies file and the report (only the report if the run was stopped)."""
    records, has_gold = done.records, done.records[0]["gold"] is not None
    rows, lines, acc, scored = [], [], Counter(), []
    gold_out, pred_out, pred_all = [], [], []
    for i, rec in enumerate(records):
        line, tags = read_sentence(done, i, acc, scored)
        if i in done.failures:
            line.update(status=done.failures[i][0], reason=done.failures[i][1])
        elif tags is not None and not line.get("filtered"):
            line["out_sentence"] = len(rows)
            rows.append(list(zip(*((rec["words"], rec["gold"], tags) if has_gold else (rec["words"], tags)))))
            if has_gold:
                gold_out.append(rec["gold"])
                pred_out.append(tags)
        if has_gold:
            pred_all.append(tags if tags is not None and not line.get("filtered") else ["O"] * len(rec["words"]))
        lines.append(json.dumps(line, ensure_ascii=False))
    report = base_report(done, stats, stopped, seconds, "sentence", len(rows), acc)
    failed = report.pop("failed")
    report.update({
        "entities_proposed": acc["entities_proposed"],
        "entities_kept": acc["entities_kept"],
        "entities_by_type": {k[5:]: v for k, v in sorted(acc.items()) if k.startswith("type_")},  # of those kept
        "entities_dropped": {k[8:]: v for k, v in sorted(acc.items()) if k.startswith("dropped_")},
        "entities_not_in_sentence": acc["entities_not_in_sentence"],  # named in the reply, absent from the sentence
        "entities_copied_from_demos": acc["entities_copied_from_demos"],  # ... and named by one of its worked examples
        # a worked example shares >= 80 % of its tokens
        "sentences_with_near_copy_demo": acc["sentences_with_near_copy_demo"],
        "failed": failed})
    if has_gold:
        report["span_f1"] = span_f1(gold_out, pred_out)  # over the sentences in --out
        report["span_f1_all_input"] = span_f1([r["gold"] for r in records], pred_all)  # failed ones as all-O
    if done.cfg.confidence != "none":
        report["confidence"] = confidence_report(done.cfg, acc, "sentence", **(
            {"curve": confidence.curve(scored), "calibration": confidence.calibration(scored)} if scored else {}))
    return write_outputs(done.cfg, report, lambda: write_conll(done.cfg.out, rows), lines)


def read_text(done, i, acc):
    """Text i's reply read (classify): (its line of the replies file, the label or None, its confidence or None)."""
    cfg, rec, reply = done.cfg, done.records[i], done.replies[i]
    line = {"index": rec["index"], **rec["meta"], "status": None, "out_line": None}
    if reply is None:
        return line, None, None
    count_tokens(acc, reply)
    label, status = label_reply(reply["content"], done.task)
    line.update(reply=reply, status=status, label=label)
    if label is None:  # recorded and left out: a guessed label would be a wrong label taught as right
        done.failures[i] = (status, f"reply not readable ({status})")
        return line, None, None
    conf = None
    if cfg.confidence == "logprobs":
        conf = confidence.label_from_logprobs(reply, label) if reply.get("logprobs") else None
    elif cfg.confidence == "samples":
        conf = sum(s is not None and label_reply(s["content"], done.task)[0] == label
                   for s in done.samples[i]) / max(1, len(done.samples[i]))
    if conf is None and cfg.confidence != "none":
        acc["replies_without_logprobs"] += 1
    if conf is not None:
        line["confidence"] = round(conf, 4)
        if conf < cfg.min_confidence:
            acc["texts_filtered"] += 1
            line["filtered"] = True
    return line, label, conf


def assemble_labels(done, stats, stopped, seconds):
    """classify: write --out (the input's records, the LLM's label in --label_field, the input's own label kept as
    gold_<field>), the replies file and the report, with accuracy and macro-F1 against gold where there is gold."""
    cfg, field = done.cfg, done.cfg.label_field
    out, lines, acc, scored, given = [], [], Counter(), [], Counter()
    for i, rec in enumerate(done.records):
        line, label, conf = read_text(done, i, acc)
        if i in done.failures:
            line.update(status=done.failures[i][0], reason=done.failures[i][1])
        elif label is not None:
            given[label] += 1
            if rec["gold"] in done.task.labels and conf is not None:
                scored.append({"gold": rec["gold"], "label": label, "conf": conf})
            if not line.get("filtered"):
                line["out_line"] = len(out)
                gold = {f"gold_{field}": rec["input"][field]} if field in rec["input"] else {}
                out.append({**{k: v for k, v in rec["input"].items() if k != field}, field: label, **gold,
                            **({"confidence": round(conf, 4)} if conf is not None else {})})
        lines.append(json.dumps(line, ensure_ascii=False))
    report = base_report(done, stats, stopped, seconds, "text", len(out), acc)
    report["labels_given"] = dict(sorted(given.items()))
    with_gold = [(r[f"gold_{field}"], r[field]) for r in out if f"gold_{field}" in r]
    if with_gold and {g for g, _ in with_gold} <= set(done.task.names):  # over the texts in --out, none guessed
        report["classification"] = classification_scores(*zip(*with_gold), labels=done.task.names)
    elif with_gold:  # the input's labels are another task's: nothing to score against
        report["gold_not_scored"] = f"the input's {field} values are not all labels of {done.task.path}"
    if cfg.confidence != "none":
        report["confidence"] = confidence_report(cfg, acc, "text", **(
            {"curve": confidence.label_curve(scored, done.task.names)} if scored else {}))
    return write_outputs(cfg, report, lambda: write_jsonl(cfg.out, out), lines)
