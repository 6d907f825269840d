"""
Phase 1: an LLM labels texts through any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, the llama.cpp server):
the entities of each sentence (NER) or one label per text (classification), as a task file says (task.py:
its labels, their definitions, its domain, worked examples; CoNLL-2003's by default), and the labels are scored
against gold where there is gold. The README's porting section walks through a task of one's own.

    python annotate.py --input data/conll2003/train.txt --limit 1000 --seed 0 --prompt completion --out runs/d.conll
    python annotate.py --format bbc --input data/bbc/bbc.jsonl --limit 500 --out runs/bbc.conll
    python annotate.py --task_file tasks/bbc.json --format bbc --input data/bbc/bbc.jsonl --limit 200 \
        --prompt completion --examples runs/bbc/train.jsonl --out runs/bbc_llm.jsonl      # BBC's topics, by the LLM
    python annotate.py --limit 1000 --dry_run          # one full prompt and a token estimate; sends nothing

Input (--format): a CoNLL file (its gold tags are used only to score the LLM), BBC articles, any JSONL (the text in
--text_field) or plain text (NER: blank lines separate documents; classify: one text a line). For NER, texts are
split here into sentences and CoNLL-2003 tokens (punctuation, "'s" and "n't" split off), with document (BBC:
article) id and sentence index kept. `--limit N --seed S` takes data.sample_indices' seeded sample, so
`python data.py sample --limit N --seed S` writes the gold of exactly the sentences annotated here.

Prompts (written out below, the task file filling their blanks): `standard` (chat; the definitions of the task's
labels and k worked examples; for NER the answer is a JSON list of {"text", "type"}), `cot` (NER, chat; four steps:
context, candidates, type of each, justification; then "Answer: <JSON list>") and `completion` (/v1/completions; k
example lines "Sentence: ..." / "Entities: Name (TYPE); ..." or "Text: ..." / "Label: ...", stop at the newline,
which very small models follow far better than JSON). Worked examples (shots.py) come from the task file, or are
drawn from a gold file (--examples, or the task file's examples_file), the same for every request or, with
`--demos knn`, the k most similar to each; with none anywhere the prompt is zero-shot on the definitions. A reply's
entity of a type outside the task, or a label outside it, is dropped and counted, never kept.

Files written, FILE being --out without its extension:
- --out: CoNLL, `token gold llm` with gold input, `token llm` without; the LLM tag is always last. Classify: the
  JSONL train.py --task classify reads, the input's records with the LLM's label in --label_field (an input label
  kept as gold_label) and, with --confidence, its confidence; a text whose reply names no label is left out.
- FILE.replies.jsonl: one line per input sentence in input order: the raw reply, entities kept (text, type,
  start, end, the item of the reply it came from and, with --confidence, its confidence) and dropped by reason, the
  status, its sentence number in --out ("out_sentence") and, for BBC, article and sentence.
- FILE.report.json: the config; requests sent, cache hits, retries, failed attempts by kind, sentences failed by
  reason (listed), parse failures, tokens (from `usage`, this run's and of every reply used), entities proposed /
  kept / dropped by reason, the names a reply copied from its worked examples, wall seconds; with gold input, span F1
  (eval.py, overall and per type) over the sentences in --out and over all input (a failed sentence as all-O); with
  --confidence, "confidence": the method, what the filter left out, and, with gold, the coverage-quality curve and the
  calibration (confidence.py). Classify: texts written / failed, the labels given, and against gold the accuracy,
  macro-F1, per-class scores and confusion matrix (eval.py) over the texts in --out.

`--confidence logprobs|samples` gives every entity and sentence a confidence (confidence.py says how and why), and
`--min_confidence T --filter sentence|entity` leaves out of --out the sentences, or the entities, less sure than T.

`--labeller MODEL_DIR` labels the same sentences with a trained NER model folder instead (predict.py), into
the same files: a strong annotator, such as MiniLM trained on all of CoNLL-2003, to set beside the LLM. With
`--context N` (a model trained with train.py --context N; by default the N the model was trained with) it reads each
sentence in its document, the sampled ones and the others alike lending context (predict.py --context).

A sentence whose request failed for good (after retries) or whose reply cannot be read is NOT written
to --out as all-O (that would teach the student its names are not names): it is left out and listed
in the report with the reason. Only replies that were read are cached, so the same command run again
retries exactly those sentences.

Cache and resume, HTTP faults and the key are llm.py's (the one LLM client): each reply that was
read is committed to an sqlite cache (--cache) the moment it arrives, and the output files are written
at the end, atomically. A run killed at any moment (kill -9 included) is resumed by the same command:
finished sentences come from the cache (only requests in flight at the kill are sent again) and each
sentence is written once. A second identical run sends no request. Timeouts, 429, 5xx and dropped
connections are retried with backoff; any other 4xx (wrong model, bad key) stops the run with the
server's message. The key comes from $OPENAI_API_KEY (or --api_key_env) and is written nowhere.
"""
import json
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass

import confidence
from cli import DataError, above, at_least, command_line, opt, parse_config, run_main, stop_in_one_line
from data import atomic_write, open_text, read_conll, read_jsonl_numbered, sample_indices, write_conll
from eval import get_entities, span_f1
from rawtext import split_sentences, tokenize
from replies import Replies, align, assemble, assemble_labels, label_reply, parse_reply, side_paths  # noqa: F401
from shots import draw_shots, embed, fixed_shots, knn_shots, worked_example  # noqa: F401 (tests use draw_shots)
from runs import provenance
from task import number_word, of as task_of, or_list
from llm import Fatal, LLMConfig, ask, cached_count, chat_request, completion_request, http_report, prompt_text


@dataclass
class Config(LLMConfig):  # the endpoint, model, key, retries, concurrency and cache flags come from llm.py
    # the task and the data
    task_file: str = opt("", "task file (task.py): kind, labels, definitions, domain, worked examples; "
                             "default tasks/conll2003.json")
    input: str = opt("data/conll2003/train.txt", "the texts: a CoNLL file, BBC jsonl, any JSONL or plain text")
    format: str = opt("conll", "conll | bbc | jsonl (the text in --text_field) | text (ner: blank lines separate "
                               "documents; classify: one text a line)", choices=["conll", "bbc", "jsonl", "text"])
    text_field: str = opt("text", "--format jsonl: the field holding the text")
    label_field: str = opt("label", "classify: the field of gold labels in the input and of the LLM's in --out")
    limit: int = opt(None, "annotate a seeded random sample of this many sentences (texts)", type=at_least(1))
    seed: int = opt(0, "seed of the sample and of the worked examples")
    out: str = opt("runs/llm.conll", "CoNLL output (classify: JSONL); FILE.report.json and FILE.replies.jsonl "
                                     "go beside it")
    # prompt
    prompt: str = opt("standard", "prompt form (classify: standard or completion)",
                      choices=["standard", "cot", "completion"])
    shots: int = opt(None, "worked examples; default 3 standard, 2 cot, 8 completion (classify: 3, -, 4)",
                     type=at_least(0))
    demos: str = opt("random", "random: the same seeded worked examples for every sentence | knn: for each sentence, "
                               "the most similar of the worked examples (MiniLM sentence embeddings)",
                     choices=["random", "knn"])
    examples: str = opt(None, "gold file the worked examples are drawn from (CoNLL; classify: JSONL); default: the "
                              "task file's examples or examples_file; with neither, zero-shot", type=str)
    text_words: int = opt(150, "classify: a text is cut to its first this many words in a prompt", type=at_least(5))
    temperature: float = opt(0.0, "sampling temperature", type=at_least(0.0, float))
    max_tokens: int = opt(None, "reply length limit; default 256 standard, 384 cot, 64 completion (classify: 16)",
                          type=at_least(1))
    max_entity_tokens: int = opt(10, "longer 'entities' are dropped (CoNLL-2003 train's longest has 10 tokens)",
                                 type=at_least(1))
    dry_run: bool = opt(False, "print one full prompt and a token estimate; send nothing")
    labeller: str = opt("", "a trained NER model folder labels the sentences instead of the LLM (predict.py): a strong "
                            "annotator to set beside it; the prompt flags are then unused")
    labeller_runtime: str = opt("torch", "--labeller through torch or its ONNX export in ONNX Runtime (predict.py "
                                         "--runtime)", choices=["torch", "onnx"])
    context: int = opt(None, "with --labeller: the model reads each sentence with up to N word pieces of its document "
                             "on each side (predict.py --context; documents: -DOCSTART- in CoNLL, the article in "
                             "JSONL), from every sentence of the input, sampled or not; default (None): the N the "
                             "model was trained with", type=at_least(0))
    # how sure the LLM is of each label (confidence.py)
    confidence: str = opt("none", "a confidence per entity and sentence: logprobs (the reply's token "
                                  "log-probabilities, where the endpoint returns them) | samples (agreement of "
                                  "--samples replies at --sample_temperature)", choices=["none", "logprobs", "samples"])
    samples: int = opt(5, "--confidence samples: replies sampled per sentence, each a cached request", type=at_least(1))
    sample_temperature: float = opt(0.8, "--confidence samples: their temperature", type=above(0))
    min_confidence: float = opt(0.0, "leave out of --out what is less sure than this (see --filter)",
                                type=at_least(0.0, float))
    filter: str = opt("sentence", "sentence: leave out a sentence unless every entity in it clears --min_confidence | "
                                  "entity: keep the sentence, drop its doubtful entities (classify: the text goes)",
                      choices=["sentence", "entity"])


DEFAULT_SHOTS = {"standard": 3, "cot": 2, "completion": 8}
DEFAULT_MAX_TOKENS = {"standard": 256, "cot": 384, "completion": 64}
CLASSIFY_SHOTS, CLASSIFY_MAX_TOKENS = {"standard": 3, "completion": 4}, 16


def parse_args(argv=None):
    cfg = parse_config(Config, argv, description=__doc__.split("\n\n")[0])
    task = task_of(cfg)
    if task.kind == "classify":
        if cfg.prompt == "cot" or cfg.format == "conll" or cfg.labeller:
            raise SystemExit("error: classify labels texts (--format jsonl, bbc or text) with --prompt standard or "
                             "completion, by the LLM (no --labeller)")
        cfg.shots = CLASSIFY_SHOTS[cfg.prompt] if cfg.shots is None else cfg.shots
        cfg.max_tokens = cfg.max_tokens or CLASSIFY_MAX_TOKENS
    cfg.shots = DEFAULT_SHOTS[cfg.prompt] if cfg.shots is None else cfg.shots
    cfg.max_tokens = DEFAULT_MAX_TOKENS[cfg.prompt] if cfg.max_tokens is None else cfg.max_tokens
    if cfg.min_confidence > 0 and cfg.confidence == "none":
        raise SystemExit("error: --min_confidence needs a confidence: add --confidence logprobs or samples")
    if cfg.labeller and cfg.confidence != "none":
        raise SystemExit("error: --confidence is the LLM's; a --labeller model folder gives none")
    if cfg.context and not cfg.labeller:
        raise SystemExit("error: --context is the --labeller model's; the LLM reads one sentence")
    return cfg


# ---------------------------------------------------------------------------------------------
# Input: CoNLL sentences, or texts (BBC articles, any JSONL, plain text); for NER cut into sentences and
# CoNLL-2003 tokens (rawtext.split_sentences) with document and sentence index kept.

def read_texts(cfg):
    """[(document id, text, gold label or None)] of a JSONL or plain-text input."""
    if cfg.format == "text":
        with open_text(cfg.input) as f:
            raw = f.read()
        if task_of(cfg).kind == "classify":  # one text a line
            return [(n, line, None) for n, line in enumerate(x for x in raw.splitlines() if x.strip())]
        return [(n, doc, None) for n, doc in enumerate(d for d in re.split(r"\n\s*\n", raw) if d.strip())]
    field = "text" if cfg.format == "bbc" else cfg.text_field
    out = []
    for lineno, rec in read_jsonl_numbered(cfg.input):
        if (cfg.format == "bbc" and "id" not in rec) or not isinstance(rec.get(field), str):
            want = "'id' and a string 'text'" if cfg.format == "bbc" else f"a string {field!r} (see --text_field)"
            raise DataError(f"{cfg.input}:{lineno}: expected a JSON object with {want}")
        gold = rec.get(cfg.label_field)
        out.append((rec.get("id", len(out)), rec[field], gold if isinstance(gold, str) else None, rec))
    return out


def input_sentences(cfg):
    """NER: every sentence of the input as (words, gold or None, meta), and each one's document id (CoNLL's
    -DOCSTART-, a JSONL record, a plain-text block between blank lines): the context a --labeller reads."""
    if cfg.format == "conll":
        sents, docs = read_conll(cfg.input, docs=True)
        return [(words, tags, {}) for words, tags in sents], docs
    doc = "article" if cfg.format == "bbc" else "document"
    sents, docs = [], []
    for n, t in enumerate(read_texts(cfg)):
        found = split_sentences(t[1])
        sents += [(words, None, {doc: t[0], "sentence": j}) for j, words in enumerate(found)]
        docs += [n] * len(found)
    return sents, docs


def load_records(cfg):
    """The units to annotate: dicts with index (in the whole input), words, gold (or None), meta; classify: text
    and the input record too."""
    if cfg.format != "conll" and task_of(cfg).kind == "classify":
        texts = read_texts(cfg)
        recs = [{"words": tokenize(t[1]), "text": t[1], "gold": t[2], "input": t[3] if len(t) > 3 else {"text": t[1]},
                 "meta": {"id": t[0]}} for t in texts]
        return [{"index": i, **recs[i]} for i in sample_indices(len(recs), cfg.limit, cfg.seed)]
    sents, _ = input_sentences(cfg)
    return [{"index": i, "words": sents[i][0], "gold": sents[i][1], "meta": sents[i][2]}
            for i in sample_indices(len(sents), cfg.limit, cfg.seed)]


# ---------------------------------------------------------------------------------------------
# Prompts. The task file (task.py) fills the blanks: its domain, its labels and their definitions, its words.

STANDARD_SYSTEM = """\
You are an expert annotator of named entities in {domain} text. Label every named entity in the sentence with one of \
{n} types:
{definitions}
Copy each entity exactly as it is written in the sentence, in the order they appear. {rules}
Answer with a JSON list and nothing else: [{{"text": "...", "type": "{first}"}}], or [] if the sentence has no \
entity."""

COT_SYSTEM = """\
You are an expert annotator of named entities in {domain} text. The {n} entity types are:
{definitions}
Work in four steps, one line each:
1. Context: what the sentence is about.
2. Candidates: the names in the sentence, copied exactly as written.
3. Types: the type of each candidate, decided from the context (drop a candidate that is not a name).
4. Justification: why each type is right.
Then write a last line "Answer: " followed by the JSON list [{{"text": "...", "type": "{first}"}}], or [] if there is \
no entity."""

COT_NONE = """\
1. Context: a {domain} sentence that names no one and nothing in particular.
2. Candidates: none.
3. Types: none.
4. Justification: {no_entity}.
Answer: []"""

COT_STEPS = """\
1. Context: a {domain} sentence that mentions {names}.
2. Candidates: {names}.
3. Types: {types}.
4. Justification: {whys}.
Answer: {answer}"""

COMPLETION_HEADER = "Named entities in {domain} sentences. Types: {types}.\n\n"

# classify: one label per text
CLASSIFY_SYSTEM = """\
You are an expert annotator of {domain} texts. Give the text exactly one of these {n} labels:
{definitions}
Answer with the label only."""

CLASSIFY_HEADER = "{domain} texts, each with one label. Labels: {types}.\n\n"


def blanks(task):
    """What the prompts' blanks are filled with, from the task file."""
    n = task.labels
    return {"domain": task.domain, "n": number_word(len(n)), "first": task.names[0],
            "definitions": "\n".join(f"{k}: {v['definition']}" for k, v in n.items()),
            "types": ", ".join(f"{k} ({v['short']})" for k, v in n.items()),
            "labels": or_list(task.names), "rules": task.word("rules") if task.kind == "ner" else "",
            "no_entity": task.word("no_entity")}


def json_answer(ents):
    return json.dumps([{"text": t, "type": y} for t, y in ents])


def cot_answer(ents, task=None):
    """The worked example's reasoning, written from its gold entities."""
    task = task or task_of(None)
    if not ents:
        return COT_NONE.format(**blanks(task))
    names = "; ".join(t for t, _ in ents)
    return COT_STEPS.format(domain=task.domain, names=names, types="; ".join(f"{t} is {y}" for t, y in ents),
                            whys="; ".join(f"{t} {task.labels[y]['why']}" for t, y in ents), answer=json_answer(ents))


def completion_answer(ents):
    return "; ".join(f"{t} ({y})" for t, y in ents) if ents else "none"


def flat(text, words):
    """A text on one line, cut to its first `words` words (classify prompts)."""
    w = text.split()
    return " ".join(w[:words]) + (" …" if len(w) > words else "")


def build_request(cfg, unit, shots, sample=None):
    """(endpoint, JSON payload) of the request for one sentence (its words; classify: a text); `sample` j: the j-th
    sampled reply (--confidence samples: at --sample_temperature, seeded by j, so each sample is a request of its own,
    cached as any other)."""
    task = task_of(cfg)
    fill = blanks(task)
    params = dict(temperature=cfg.temperature, max_tokens=cfg.max_tokens)
    if sample is not None:
        params.update(temperature=cfg.sample_temperature, seed=sample)
    elif cfg.confidence == "logprobs":  # the chosen token's log-probability at every step of the reply
        params.update(logprobs=1) if cfg.prompt == "completion" else params.update(logprobs=True, top_logprobs=1)
    if task.kind == "classify":
        shown = [(flat(t, cfg.text_words), y) for t, y in shots]
        unit, (name, answer) = flat(unit, cfg.text_words), ("Text", lambda y: y)
        header = CLASSIFY_HEADER.format(**fill)
        header = header[0].upper() + header[1:]
        system = CLASSIFY_SYSTEM.format(**fill)
        tail = "Label:"
    else:
        shown = [(" ".join(w), e) for w, e in shots]
        unit, name, header, tail = " ".join(unit), "Sentence", COMPLETION_HEADER.format(**fill), "Entities:"
        system, answer = (STANDARD_SYSTEM.format(**fill), json_answer) if cfg.prompt == "standard" else \
            (COT_SYSTEM.format(**fill), lambda e: cot_answer(e, task))
    if cfg.prompt == "completion":
        answer = answer if task.kind == "classify" else completion_answer
        prompt = header + "".join(f"{name}: {u}\n{tail} {answer(e)}\n\n" for u, e in shown)
        return completion_request(cfg, prompt + f"{name}: {unit}\n{tail}", stop=["\n"], **params)
    messages = [{"role": "system", "content": system}]
    for u, e in shown:
        messages += [{"role": "user", "content": f"{name}: {u}"}, {"role": "assistant", "content": answer(e)}]
    messages.append({"role": "user", "content": f"{name}: {unit}"})
    return chat_request(cfg, messages, **params)


def requests_of(cfg, records):
    """(the worked examples of each record, the request of each record)."""
    task = task_of(cfg)
    shots = knn_shots(cfg, records, task) if cfg.demos == "knn" else [fixed_shots(cfg, records, task)] * len(records)
    return shots, [build_request(cfg, r["words"] if task.kind == "ner" else r["text"], s)
                   for r, s in zip(records, shots)]


# ---------------------------------------------------------------------------------------------
# The run.

def dry_run(cfg, calls):
    cached = cached_count(cfg, calls)
    print(prompt_text(*calls[0]))
    chars = [len(prompt_text(e, p)) for e, p in calls]
    todo = len(calls) - cached
    est = sum(chars) / 4 * todo / max(1, len(calls))  # about 4 characters a token in English
    unit = "text" if task_of(cfg).kind == "classify" else "sentence"
    print(f"\n--- {len(calls)} {unit}s, {cached} cached, {todo} to send to "
          f"{cfg.base_url}/{calls[0][0]} ({cfg.model})")
    print(f"--- prompt tokens about {est:,.0f} ({sum(chars) / 4 / len(calls):,.0f} a {unit}); "
          f"completion tokens at most {todo * cfg.max_tokens:,} ({cfg.max_tokens} a {unit})")


def run(cfg):
    """Annotate, write --out and its two side files, and return the report (None for --dry_run)."""
    t0 = time.time()
    task = task_of(cfg)
    records = load_records(cfg)
    if not records:
        raise DataError(f"no {'texts' if task.kind == 'classify' else 'sentences'} in {cfg.input}")
    if cfg.labeller:
        return label_with_model(cfg, records, t0)
    shots, calls = requests_of(cfg, records)
    if cfg.dry_run:
        return dry_run(cfg, calls)

    def readable(reply):
        if task.kind == "classify":
            return label_reply(reply["content"], task)[0] is not None
        return parse_reply(cfg.prompt, reply["content"], reply["finish_reason"])[0] is not None

    # --confidence samples: each sentence's k samples right after it, so a server that keeps the last prompt's
    # state (llama.cpp) processes each prompt once
    k = cfg.samples if cfg.confidence == "samples" else 0
    every = [c for i, (r, s) in enumerate(zip(records, shots))
             for c in [calls[i], *(build_request(cfg, r["words"] if task.kind == "ner" else r["text"], s, sample=j)
                                   for j in range(k))]]
    try:
        (replies, gave_up, stats), stopped = ask(cfg, every, readable, desc=cfg.prompt, unit="req"), None
    except Fatal as e:  # the report still says what came back and why the run stopped
        (replies, gave_up, stats), stopped = e.partial, str(e)
    samples = [replies[i * (k + 1) + 1:(i + 1) * (k + 1)] for i in range(len(records))] if k else None
    replies = replies[::k + 1]
    # sentence -> (reason, detail)
    failures = {i // (k + 1): ("gave_up", why) for i, why in gave_up.items() if i % (k + 1) == 0}
    done = Replies(cfg, task, records, replies, samples, shots, failures)
    report = (assemble_labels if task.kind == "classify" else assemble)(done, stats, stopped, time.time() - t0)
    if stopped:
        raise Fatal(stopped)
    return report


def label_with_model(cfg, records, t0):
    """--labeller: the model folder's tags for every sentence, written as an LLM's would be (--out, the replies
    file with each sentence's entities and, for BBC, article and sentence; the report, with span F1 given gold)."""
    from predict import check_labeller, reading_context, tag_words
    check_labeller(cfg.labeller)
    context = reading_context(cfg.labeller, cfg.context)
    sents, docs = input_sentences(cfg)  # the records' context comes from their whole documents
    tags = tag_words(cfg.labeller, [words for words, _, _ in sents], context=context, docs=docs,
                     scored=[r["index"] for r in records], progress=bool(cfg.progress) and len(records) >= 1000,
                     runtime=cfg.labeller_runtime)
    has_gold = records[0]["gold"] is not None
    rows = [list(zip(r["words"], r["gold"], t) if has_gold else zip(r["words"], t)) for r, t in zip(records, tags)]
    lines = [json.dumps({"index": r["index"], **r["meta"], "status": "model", "out_sentence": i,
                         "entities": worked_example(r["words"], t)[1]}, ensure_ascii=False)
             for i, (r, t) in enumerate(zip(records, tags))]
    report = {"config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
              "record": provenance(command_line("annotate.py", cfg)), "labeller": cfg.labeller, "context": context,
              "seconds": round(time.time() - t0, 2), "sentences": len(records), "sentences_written": len(rows),
              "entities_kept": sum(len(get_entities(t)) for t in tags), "failed": []}
    if has_gold:
        report["span_f1"] = span_f1([r["gold"] for r in records], tags)
    report_path, replies_path = side_paths(cfg.out)
    os.makedirs(os.path.dirname(cfg.out) or ".", exist_ok=True)
    write_conll(cfg.out, rows)
    atomic_write(replies_path, "\n".join(lines) + "\n")
    atomic_write(report_path, json.dumps(report, indent=1) + "\n")
    return report


def summary(report, out):
    r = report
    if "labeller" in r:
        return (f"{out}: {r['sentences_written']} sentences labelled by {r['labeller']}, {r['entities_kept']} entities"
                + (f"; span F1 vs gold {100 * r['span_f1']['f1']:.1f}" if "span_f1" in r else ""))
    unit = "text" if "texts" in r else "sentence"
    s = (f"{out}: {r[unit + 's_written']}/{r[unit + 's']} {unit}s written; {r['requests_sent']} requests, "
         f"{r['cache_hits']} cached, {r['retries']} retries; "
         f"tokens {r['prompt_tokens']:,} in, {r['completion_tokens']:,} out; ")
    if unit == "text":
        s += "labels " + ", ".join(f"{k} {v}" for k, v in r["labels_given"].items())
        if "classification" in r:
            s += (f"; vs gold: accuracy {100 * r['classification']['accuracy']:.1f}, macro-F1 "
                  f"{100 * r['classification']['macro_f1']:.1f} (over the texts written)")
    else:
        s += f"entities {r['entities_kept']}/{r['entities_proposed']} kept"
    if "span_f1" in r:
        s += (f"; span F1 vs gold {100 * r['span_f1']['f1']:.1f} "
              f"({100 * r['span_f1_all_input']['f1']:.1f} over all input)")
    c = r.get("confidence")
    if c:
        s += (f"\nconfidence ({c['method']}): below {c['min_confidence']:g}, {c[unit + 's_filtered']} {unit}s "
              + (f"and {c['entities_filtered']} entities " if unit == "sentence" else "")
              + f"left out (--filter {c['filter']})")
        if c["replies_without_logprobs"]:
            s += (f"; {c['replies_without_logprobs']} replies came without log-probabilities: this endpoint may not "
                  "return them (try --confidence samples)")
    if r["failed"]:
        s += (f"\n{len(r['failed'])} {unit}s failed ({r['failures_by_reason']}) and are not in {out}; "
              "the same command retries them")
    return s


@stop_in_one_line
def main(argv=None):
    cfg = parse_args(argv)
    report = run(cfg)
    if report is not None:
        print(summary(report, cfg.out))
    return 0


if __name__ == "__main__":
    run_main(main)
