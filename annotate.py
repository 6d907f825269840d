"""
Phase 1: an LLM labels sentences for NER through any OpenAI-compatible endpoint (OpenAI, vLLM,
Ollama, the llama.cpp server), and the labels are scored against gold where there is gold.

    python annotate.py --input data/conll2003/train.txt --limit 1000 --seed 0 --prompt completion --out runs/d.conll
    python annotate.py --format bbc --input data/bbc/bbc.jsonl --limit 500 --out runs/bbc.conll
    python annotate.py --limit 1000 --dry_run          # one full prompt and a token estimate; sends nothing

Input: a CoNLL file (its gold tags are used only to score the LLM), or BBC articles, split here into
sentences and CoNLL-2003 tokens (punctuation, "'s" and "n't" split off) with article id and sentence
index kept. `--limit N --seed S` takes data.sample_indices' seeded sample, so
`python data.py sample --limit N --seed S` writes the gold of exactly the sentences annotated here.

Prompts (written out below): `standard` (chat; definitions of the four types and k worked examples
drawn, seeded, from a gold file; the answer is a JSON list of {"text", "type"}), `cot` (chat; four
steps: context, candidates, type of each, justification; then "Answer: <JSON list>") and `completion`
(/v1/completions; k example lines "Sentence: ..." / "Entities: Name (TYPE); ...", stop at the newline,
which very small models follow far better than JSON). `--demos knn` replaces the one seeded set of worked
examples by, for each sentence, the k sentences of the gold file most similar to it (cosine of MiniLM
sentence embeddings: the mean of the last hidden states over real word pieces; the gold file's
embeddings are cached beside --cache under the hash of its bytes), as GPT-NER did.

Files written, FILE being --out without its extension:
- --out: CoNLL, `token gold llm` with gold input, `token llm` without; the LLM tag is always last.
- FILE.replies.jsonl: one line per input sentence in input order: the raw reply, entities kept (text, type,
  start, end, the item of the reply it came from and, with --confidence, its confidence) and dropped by reason, the
  status, its sentence number in --out ("out_sentence") and, for BBC, article and sentence.
- FILE.report.json: the config; requests sent, cache hits, retries, failed attempts by kind, sentences failed by
  reason (listed), parse failures, tokens (from `usage`, this run's and of every reply used), entities proposed /
  kept / dropped by reason, the names a reply copied from its worked examples, wall seconds; with gold input, span F1
  (eval.py, overall and per type) over the sentences in --out and over all input (a failed sentence as all-O); with
  --confidence, "confidence": the method, what the filter left out, and, with gold, the coverage-quality curve and the
  calibration (confidence.py).

`--confidence logprobs|samples` gives every entity and sentence a confidence (confidence.py says how and why), and
`--min_confidence T --filter sentence|entity` leaves out of --out the sentences, or the entities, less sure than T.

`--labeller MODEL_DIR` labels the same sentences with a trained NER model folder instead (predict.py), into
the same files: a strong annotator, such as MiniLM trained on all of CoNLL-2003, to set beside the LLM. With
`--context N` (a model trained with train.py --context N) it reads each sentence in its document, the sampled ones
and the others alike lending context (predict.py --context).

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
import functools
import json
import os
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

import confidence
from cli import DataError, above, at_least, command_line, opt, parse_config, run_main, stop_in_one_line
from data import atomic_write, read_conll, read_jsonl_numbered, sample_indices, split_sentences, write_conll
from eval import get_entities, span_f1
from runs import file_hash, provenance
from llm import Fatal, LLMConfig, ask, cached_count, chat_request, completion_request, http_report, prompt_text


@dataclass
class Config(LLMConfig):  # the endpoint, model, key, retries, concurrency and cache flags come from llm.py
    # data
    input: str = opt("data/conll2003/train.txt", "CoNLL file or BBC jsonl")
    format: str = opt("conll", "input format", choices=["conll", "bbc"])
    limit: int = opt(None, "annotate a seeded random sample of this many sentences", type=at_least(1))
    seed: int = opt(0, "seed of the sample and of the worked examples")
    out: str = opt("runs/llm.conll", "CoNLL output; FILE.report.json and FILE.replies.jsonl go beside it")
    # prompt
    prompt: str = opt("standard", "prompt form", choices=["standard", "cot", "completion"])
    shots: int = opt(None, "worked examples; default 3 standard, 2 cot, 8 completion", type=at_least(0))
    demos: str = opt("random", "random: the same seeded worked examples for every sentence | knn: for each sentence, "
                               "the most similar sentences of --examples (MiniLM sentence embeddings)",
                     choices=["random", "knn"])
    examples: str = opt("data/conll2003/train.txt", "gold CoNLL file the worked examples are drawn from")
    temperature: float = opt(0.0, "sampling temperature", type=at_least(0.0, float))
    max_tokens: int = opt(None, "reply length limit; default 256 standard, 384 cot, 64 completion", type=at_least(1))
    max_entity_tokens: int = opt(10, "longer 'entities' are dropped (CoNLL-2003 train's longest has 10 tokens)",
                                 type=at_least(1))
    dry_run: bool = opt(False, "print one full prompt and a token estimate; send nothing")
    labeller: str = opt("", "a trained NER model folder labels the sentences instead of the LLM (predict.py): a strong "
                            "annotator to set beside it; the prompt flags are then unused")
    labeller_runtime: str = opt("torch", "--labeller through torch or its ONNX export in ONNX Runtime (predict.py "
                                         "--runtime)", choices=["torch", "onnx"])
    context: int = opt(0, "with --labeller: the model reads each sentence with up to N word pieces of its document "
                          "on each side (predict.py --context; documents: -DOCSTART- in CoNLL, the article in JSONL), "
                          "from every sentence of the input, sampled or not", type=at_least(0))
    # how sure the LLM is of each label (confidence.py)
    confidence: str = opt("none", "a confidence per entity and sentence: logprobs (the reply's token "
                                  "log-probabilities, where the endpoint returns them) | samples (agreement of "
                                  "--samples replies at --sample_temperature)", choices=["none", "logprobs", "samples"])
    samples: int = opt(5, "--confidence samples: replies sampled per sentence, each a cached request", type=at_least(1))
    sample_temperature: float = opt(0.8, "--confidence samples: their temperature", type=above(0))
    min_confidence: float = opt(0.0, "leave out of --out what is less sure than this (see --filter)",
                                type=at_least(0.0, float))
    filter: str = opt("sentence", "sentence: leave out a sentence unless every entity in it clears --min_confidence | "
                                  "entity: keep the sentence, drop its doubtful entities",
                      choices=["sentence", "entity"])


DEFAULT_SHOTS = {"standard": 3, "cot": 2, "completion": 8}
DEFAULT_MAX_TOKENS = {"standard": 256, "cot": 384, "completion": 64}


def parse_args(argv=None):
    cfg = parse_config(Config, argv, description=__doc__.split("\n\n")[0])
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
# Input: CoNLL sentences, or BBC articles cut into sentences and CoNLL-2003 tokens.

def input_sentences(cfg):
    """Every sentence of the input as (words, gold or None, meta), and each one's document id (data.py)."""
    if cfg.format == "conll":
        sents, docs = read_conll(cfg.input, docs=True)
        return [(words, tags, {}) for words, tags in sents], docs
    sents, docs = [], []
    for lineno, article in read_jsonl_numbered(cfg.input):
        if "id" not in article or not isinstance(article.get("text"), str):
            raise DataError(f"{cfg.input}:{lineno}: expected a JSON object with 'id' and a string 'text'")
        found = split_sentences(article["text"])
        sents += [(words, None, {"article": article["id"], "sentence": j}) for j, words in enumerate(found)]
        docs += [lineno] * len(found)
    return sents, docs


def load_records(cfg):
    """The sentences to annotate: dicts with index (in the whole input), words, gold (or None), meta."""
    sents, _ = input_sentences(cfg)
    return [{"index": i, "words": sents[i][0], "gold": sents[i][1], "meta": sents[i][2]}
            for i in sample_indices(len(sents), cfg.limit, cfg.seed)]


# ---------------------------------------------------------------------------------------------
# Prompts. Worked examples come from a gold file: the same k sentences for every request.

DEFINITIONS = """\
PER: people: first names, surnames, full names (e.g. "Clinton", "Alex Ferguson").
ORG: organisations: companies, sports teams and clubs, political parties, unions, institutions, agencies \
(e.g. "Reuters", "Manchester United", "EU").
LOC: locations: countries, cities, regions, continents, rivers, mountains (e.g. "Germany", "Paris", "Europe").
MISC: other names: nationalities and other words made from names, languages, religions, events, titles of works, \
products (e.g. "German", "World Cup", "Windows")."""

STANDARD_SYSTEM = f"""\
You are an expert annotator of named entities in news text. Label every named entity in the sentence with one of \
four types:
{DEFINITIONS}
Copy each entity exactly as it is written in the sentence, in the order they appear. Dates, numbers, job titles and \
other common nouns are not entities.
Answer with a JSON list and nothing else: [{{"text": "...", "type": "PER"}}], or [] if the sentence has no entity."""

COT_SYSTEM = f"""\
You are an expert annotator of named entities in news text. The four entity types are:
{DEFINITIONS}
Work in four steps, one line each:
1. Context: what the sentence is about.
2. Candidates: the names in the sentence, copied exactly as written.
3. Types: the type of each candidate, decided from the context (drop a candidate that is not a name).
4. Justification: why each type is right.
Then write a last line "Answer: " followed by the JSON list [{{"text": "...", "type": "PER"}}], or [] if there is \
no entity."""

COMPLETION_HEADER = ("Named entities in news sentences. Types: PER (person), ORG (organisation), LOC (location), "
                     "MISC (other names: nationalities, events, works).\n\n")

WHY = {"PER": "names a person", "ORG": "names an organisation", "LOC": "names a place",
       "MISC": "is another kind of name (a nationality, event, work or product)"}


def json_answer(ents):
    return json.dumps([{"text": t, "type": y} for t, y in ents])


def cot_answer(ents):
    """The worked example's reasoning, written from its gold entities."""
    if not ents:
        return ("1. Context: a news sentence that names no one and nothing in particular.\n2. Candidates: none.\n"
                "3. Types: none.\n4. Justification: no word names a person, organisation, place or other thing.\n"
                "Answer: []")
    names = "; ".join(t for t, _ in ents)
    return (f"1. Context: a news sentence that mentions {names}.\n2. Candidates: {names}.\n"
            f"3. Types: {'; '.join(f'{t} is {y}' for t, y in ents)}.\n"
            f"4. Justification: {'; '.join(f'{t} {WHY[y]}' for t, y in ents)}.\nAnswer: {json_answer(ents)}")


def completion_answer(ents):
    return "; ".join(f"{t} ({y})" for t, y in ents) if ents else "none"


def worked_example(words, tags):
    """A gold sentence as a worked example: (words, [(entity text, type)])."""
    return words, [(" ".join(words[s:e]), t) for t, s, e in get_entities(tags)]


def draw_shots(path, k, seed, exclude=()):
    """k worked examples (words, [(text, type)]) drawn with `seed` from a gold CoNLL file: ordinary prose
    (6-30 tokens, not a headline or a results line), one without entities when k >= 3, the others
    chosen to show all four types first; no sentence that is being annotated."""
    if k <= 0:
        return []
    sents = read_conll(path)
    order = list(range(len(sents)))
    random.Random(seed).shuffle(order)
    exclude = set(exclude)

    def prose(words):
        alpha = [w for w in words if w.isalpha()]
        return 6 <= len(words) <= 30 and len(alpha) >= 4 and sum(w.islower() for w in alpha) >= 0.5 * len(alpha)

    with_ents, without = [], []
    for i in order:
        words, tags = sents[i]
        if tuple(words) not in exclude and prose(words):
            ex = worked_example(words, tags)
            (with_ents if ex[1] else without).append(ex)
    want = k - 1 if k >= 3 and without else k
    chosen, seen = [], set()
    while len(chosen) < want and with_ents:  # first the sentences that show the most types not shown yet
        best = max(with_ents, key=lambda ex: len({t for _, t in ex[1]} - seen))  # the first such, in seeded order
        if not {t for _, t in best[1]} - seen:
            break
        chosen.append(best)
        seen |= {t for _, t in best[1]}
    for ex in with_ents:
        if len(chosen) < want and ex not in chosen:
            chosen.append(ex)
    if want < k:
        chosen.insert(1, without[0])  # not last, so "the last example is empty" is no pattern to copy
    return chosen


@functools.lru_cache(maxsize=1)
def minilm():
    """The default MiniLM weights and tokenizer, loaded once per process."""
    from model import default_model_dir, from_pretrained, load_tokenizer
    return from_pretrained(default_model_dir(), verbose=False), load_tokenizer(default_model_dir())


def embed(sentences):
    """Unit sentence embeddings (predict.sentence_embeddings) from the default MiniLM weights."""
    import torch
    from predict import sentence_embeddings
    return sentence_embeddings(*minilm(), sentences, torch.device("cpu"))


def example_embeddings(path, cache_dir):
    """embed() of every sentence of a gold CoNLL file, cached in cache_dir under the hash of the file's bytes:
    computed once, computed again when the file changes."""
    cached = os.path.join(cache_dir, f"knn-{file_hash(path)[:16]}.npy")
    if os.path.exists(cached):
        return np.load(cached)
    emb = embed([w for w, _ in read_conll(path)])
    os.makedirs(cache_dir, exist_ok=True)
    tmp = cached + ".tmp.npy"
    np.save(tmp, emb)
    os.replace(tmp, cached)  # a kill leaves no half-written cache
    return emb


def knn_shots(cfg, records):
    """For each record, the cfg.shots sentences of cfg.examples most similar to it (cosine of sentence
    embeddings), least similar first, so the nearest sits just before the sentence asked about; never a
    sentence being annotated (so never the sentence itself), and each distinct sentence once."""
    if cfg.shots <= 0:
        return [[] for _ in records]
    sents = read_conll(cfg.examples)
    emb = example_embeddings(cfg.examples, os.path.dirname(cfg.cache) or ".")
    exclude, seen, keep = {tuple(r["words"]) for r in records}, set(), []
    for i, (words, _) in enumerate(sents):
        if tuple(words) not in exclude and tuple(words) not in seen:
            seen.add(tuple(words))
            keep.append(i)
    sims = embed([r["words"] for r in records]) @ emb[keep].T  # (records, candidates)
    k = min(cfg.shots, len(keep))
    out = []
    for row in sims:
        top = np.argpartition(-row, k - 1)[:k]
        # ascending: the most similar last
        out.append([worked_example(*sents[keep[j]]) for j in top[np.argsort(row[top])]])
    return out


def build_request(cfg, words, shots, sample=None):
    """(endpoint, JSON payload) of the request for one sentence; `sample` j: the j-th sampled reply (--confidence
    samples: at --sample_temperature, seeded by j, so each sample is a request of its own, cached as any other)."""
    sentence = " ".join(words)
    params = dict(temperature=cfg.temperature, max_tokens=cfg.max_tokens)
    if sample is not None:
        params.update(temperature=cfg.sample_temperature, seed=sample)
    elif cfg.confidence == "logprobs":  # the chosen token's log-probability at every step of the reply
        params.update(logprobs=1) if cfg.prompt == "completion" else params.update(logprobs=True, top_logprobs=1)
    if cfg.prompt == "completion":
        prompt = COMPLETION_HEADER + "".join(
            f"Sentence: {' '.join(w)}\nEntities: {completion_answer(e)}\n\n" for w, e in shots)
        prompt += f"Sentence: {sentence}\nEntities:"
        return completion_request(cfg, prompt, stop=["\n"], **params)
    system, answer = (STANDARD_SYSTEM, json_answer) if cfg.prompt == "standard" else (COT_SYSTEM, cot_answer)
    messages = [{"role": "system", "content": system}]
    for w, e in shots:
        messages += [{"role": "user", "content": f"Sentence: {' '.join(w)}"},
                     {"role": "assistant", "content": answer(e)}]
    messages.append({"role": "user", "content": f"Sentence: {sentence}"})
    return chat_request(cfg, messages, **params)


# ---------------------------------------------------------------------------------------------
# Reading the reply: find the answer, then map its entity strings onto the sentence's tokens.

ANSWER_RE = re.compile(r"\banswer\s*:", re.I)
TEXT_KEYS, TYPE_KEYS = ("text", "entity", "name", "word", "span"), ("type", "label", "entity_type", "category", "tag")
OBJECT_RE = re.compile(r"\{[^{}]*\}")
OPEN_RE = re.compile(r"[\[{]")
FIELD_RE = re.compile(r"""["']?(\w+)["']?\s*:\s*(?:"([^"]*)"|'([^']*)')""")
ITEM_RE = re.compile(r"^(.+?)\s*\(\s*([A-Za-z-]+)\s*\)\W*$")
TYPES = ("PER", "ORG", "LOC", "MISC")
TYPE_ALIASES = {"PERSON": "PER", "ORGANIZATION": "ORG", "ORGANISATION": "ORG", "LOCATION": "LOC",
                "MISCELLANEOUS": "MISC"}


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


def normalise_type(etype):
    t = re.sub(r"^[BI]-", "", etype.strip().upper())
    t = TYPE_ALIASES.get(t, t)
    return t if t in TYPES else None


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


def align(words, items, max_entity_tokens=10):
    """BIO tags on exactly `words`, the entities kept, and a Counter of those dropped by reason.

    Entities are placed left to right with a cursor that follows the previous match, first exactly
    and then ignoring case, so a repeated name maps to its occurrences in order. One not found after
    the cursor is looked for from the start (a list out of order). Tokens already labelled are never
    relabelled; pure punctuation at either end of a match is trimmed off."""
    tags, kept, dropped, cursor = ["O"] * len(words), [], Counter(), 0
    lower = [w.lower() for w in words]
    for k, item in enumerate(items):
        pair = item_pair(item)
        if pair is None:
            dropped["malformed"] += 1
            continue
        text, etype = pair
        etype = normalise_type(etype)
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


# ---------------------------------------------------------------------------------------------
# The run.

def side_paths(out):
    stem = os.path.splitext(out)[0]
    return f"{stem}.report.json", f"{stem}.replies.jsonl"


def dry_run(cfg, calls):
    cached = cached_count(cfg, calls)
    print(prompt_text(*calls[0]))
    chars = [len(prompt_text(e, p)) for e, p in calls]
    todo = len(calls) - cached
    est = sum(chars) / 4 * todo / max(1, len(calls))  # about 4 characters a token in English
    print(f"\n--- {len(calls)} sentences, {cached} cached, {todo} to send to "
          f"{cfg.base_url}/{calls[0][0]} ({cfg.model})")
    print(f"--- prompt tokens about {est:,.0f} ({sum(chars) / 4 / len(calls):,.0f} a sentence); "
          f"completion tokens at most {todo * cfg.max_tokens:,} ({cfg.max_tokens} a sentence)")


def run(cfg):
    """Annotate, write --out and its two side files, and return the report (None for --dry_run)."""
    t0 = time.time()
    records = load_records(cfg)
    if not records:
        raise DataError(f"no sentences in {cfg.input}")
    if cfg.labeller:
        return label_with_model(cfg, records, t0)
    if cfg.demos == "knn":
        shots = knn_shots(cfg, records)
    else:
        shots = [draw_shots(cfg.examples, cfg.shots, cfg.seed,
                            exclude={tuple(r["words"]) for r in records})] * len(records)
    calls = [build_request(cfg, r["words"], s) for r, s in zip(records, shots)]
    if cfg.dry_run:
        return dry_run(cfg, calls)

    def readable(reply):
        return parse_reply(cfg.prompt, reply["content"], reply["finish_reason"])[0] is not None

    # --confidence samples: each sentence's k samples right after it, so a server that keeps the last prompt's
    # state (llama.cpp) processes each prompt once
    k = cfg.samples if cfg.confidence == "samples" else 0
    every = [c for i, (r, s) in enumerate(zip(records, shots))
             for c in [calls[i], *(build_request(cfg, r["words"], s, sample=j) for j in range(k))]]
    try:
        (replies, gave_up, stats), stopped = ask(cfg, every, readable, desc=cfg.prompt, unit="req"), None
    except Fatal as e:  # the report still says what came back and why the run stopped
        (replies, gave_up, stats), stopped = e.partial, str(e)
    samples = [replies[i * (k + 1) + 1:(i + 1) * (k + 1)] for i in range(len(records))] if k else None
    replies = replies[::k + 1]
    # sentence -> (reason, detail)
    failures = {i // (k + 1): ("gave_up", why) for i, why in gave_up.items() if i % (k + 1) == 0}
    report = assemble(cfg, records, replies, failures, stats, stopped, time.time() - t0, shots, samples)
    if stopped:
        raise Fatal(stopped)
    return report


def label_with_model(cfg, records, t0):
    """--labeller: the model folder's tags for every sentence, written as an LLM's would be (--out, the replies
    file with each sentence's entities and, for BBC, article and sentence; the report, with span F1 given gold)."""
    from predict import check_labeller, tag_words
    check_labeller(cfg.labeller)
    sents, docs = input_sentences(cfg)  # the records' context comes from their whole documents
    tags = tag_words(cfg.labeller, [words for words, _, _ in sents], context=cfg.context, docs=docs,
                     scored=[r["index"] for r in records], progress=bool(cfg.progress) and len(records) >= 1000,
                     runtime=cfg.labeller_runtime)
    has_gold = records[0]["gold"] is not None
    rows = [list(zip(r["words"], r["gold"], t) if has_gold else zip(r["words"], t)) for r, t in zip(records, tags)]
    lines = [json.dumps({"index": r["index"], **r["meta"], "status": "model", "out_sentence": i,
                         "entities": worked_example(r["words"], t)[1]}, ensure_ascii=False)
             for i, (r, t) in enumerate(zip(records, tags))]
    report = {"config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
              "record": provenance(command_line("annotate.py", cfg)), "labeller": cfg.labeller,
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


def demo_overlap(words, items, shots):
    """(entities the reply names that are not in the sentence, how many of those a worked example names,
    whether a worked example is a near copy of the sentence: 80 % or more of its distinct tokens shared)."""
    sentence = "".join(words).lower()
    named = {t.lower() for _, ents in shots for t, _ in ents}
    outside = [p[0] for p in map(item_pair, items) if p and "".join(p[0].split()).lower() not in sentence]
    near = any(len(set(words) & set(w)) >= 0.8 * len(set(words) | set(w)) for w, _ in shots)
    return len(outside), sum(t.lower() in named for t in outside), near


def label_confidence(cfg, words, reply, items, kept, samples):
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
                                                for e in align(words, found, cfg.max_entity_tokens)[1]})
    return confidence.from_samples(kept, sets)


def assemble(cfg, records, replies, failures, stats, stopped, seconds, shots, samples=None):
    """Write --out, the replies file and the report (only the report if the run was stopped)."""
    report_path, replies_path = side_paths(cfg.out)
    has_gold = records[0]["gold"] is not None
    rows, lines, acc = [], [], Counter()
    gold_out, pred_out, pred_all, scored = [], [], [], []
    for i, rec in enumerate(records):
        reply = replies[i]
        line = {"index": rec["index"], **rec["meta"], "status": None, "out_sentence": None}
        tags = None
        if reply is not None:
            line["reply"] = reply
            items, status = parse_reply(cfg.prompt, reply["content"], reply["finish_reason"])
            line["status"] = status
            acc["prompt_tokens_total"] += reply["usage"].get("prompt_tokens", 0)
            acc["completion_tokens_total"] += reply["usage"].get("completion_tokens", 0)
            if items is None:
                failures[i] = (status, f"reply not readable ({status})")
            else:
                tags, kept, dropped = align(rec["words"], items, cfg.max_entity_tokens)
                acc["entities_proposed"] += len(items)
                acc["entities_kept"] += len(kept)
                outside, copied, near = demo_overlap(rec["words"], items, shots[i])
                acc["entities_not_in_sentence"] += outside
                acc["entities_copied_from_demos"] += copied
                acc["sentences_with_near_copy_demo"] += near
                acc.update({f"dropped_{k}": v for k, v in dropped.items()})
                acc[f"replies_{status}"] += 1
                line.update(entities=kept, dropped=dict(dropped))
                sure = label_confidence(cfg, rec["words"], reply, items, kept, samples[i] if samples else None) \
                    if cfg.confidence != "none" else None
                if sure is not None:
                    conf, line["confidence"] = sure[0], round(sure[1], 4)
                    for e, c in zip(kept, conf):
                        e["confidence"] = round(c, 4)
                    if has_gold:
                        scored.append({"gold": rec["gold"], "tags": tags, "kept": kept, "conf": conf,
                                       "sentence_conf": sure[1]})
                    if cfg.filter == "entity":  # the doubtful entities go, the sentence stays
                        acc["entities_filtered"] += sum(c < cfg.min_confidence for c in conf)
                        tags = confidence.filtered_tags(tags, kept, conf, cfg.min_confidence)
                    elif sure[1] < cfg.min_confidence:
                        # the whole sentence goes: it would teach O for its doubtful names
                        acc["sentences_filtered"] += 1
                        line["filtered"] = True
                elif cfg.confidence != "none":
                    acc["replies_without_logprobs"] += 1
        if i in failures:
            line.update(status=failures[i][0], reason=failures[i][1])
        elif tags is not None and not line.get("filtered"):
            line["out_sentence"] = len(rows)
            cols = (rec["words"], rec["gold"], tags) if has_gold else (rec["words"], tags)
            rows.append(list(zip(*cols)))
            if has_gold:
                gold_out.append(rec["gold"])
                pred_out.append(tags)
        if has_gold:
            pred_all.append(tags if tags is not None and not line.get("filtered") else ["O"] * len(rec["words"]))
        lines.append(json.dumps(line, ensure_ascii=False))
    reasons = Counter(r for r, _ in failures.values())
    report = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
        "record": provenance(command_line("annotate.py", cfg)),
        "stopped": stopped,
        "seconds": round(seconds, 2),  # wall time of this run, requests and cache look-ups
        "sentences": len(records),
        "sentences_written": len(rows),
        "sentences_failed": len(failures),
        "sentences_not_attempted": sum(r is None for r in replies) - reasons["gave_up"],
        **http_report(stats),
        "failures_by_reason": dict(reasons),
        "parse_failures": sum(v for k, v in reasons.items() if k != "gave_up"),
        "replies_repaired": acc["replies_repaired"],
        "prompt_tokens_total": acc["prompt_tokens_total"],  # of every reply used, cached ones included
        "completion_tokens_total": acc["completion_tokens_total"],
        "entities_proposed": acc["entities_proposed"],
        "entities_kept": acc["entities_kept"],
        "entities_dropped": {k[8:]: v for k, v in sorted(acc.items()) if k.startswith("dropped_")},
        "entities_not_in_sentence": acc["entities_not_in_sentence"],  # named in the reply, absent from the sentence
        "entities_copied_from_demos": acc["entities_copied_from_demos"],  # ... and named by one of its worked examples
        # a worked example shares >= 80 % of its tokens
        "sentences_with_near_copy_demo": acc["sentences_with_near_copy_demo"],
        "failed": [{"index": records[i]["index"], **records[i]["meta"], "reason": r, "detail": d}
                   for i, (r, d) in sorted(failures.items())],
    }
    if has_gold:
        report["span_f1"] = span_f1(gold_out, pred_out)  # over the sentences in --out
        report["span_f1_all_input"] = span_f1([r["gold"] for r in records], pred_all)  # failed ones as all-O
    if cfg.confidence != "none":
        report["confidence"] = {
            "method": cfg.confidence, **({"samples": cfg.samples, "sample_temperature": cfg.sample_temperature}
                                         if cfg.confidence == "samples" else {}),
            "min_confidence": cfg.min_confidence, "filter": cfg.filter, "sentences_filtered": acc["sentences_filtered"],
            "entities_filtered": acc["entities_filtered"], "replies_without_logprobs": acc["replies_without_logprobs"],
            **({"curve": confidence.curve(scored), "calibration": confidence.calibration(scored)} if scored else {})}
    os.makedirs(os.path.dirname(cfg.out) or ".", exist_ok=True)
    if not stopped:
        write_conll(cfg.out, rows)
        atomic_write(replies_path, "\n".join(lines) + "\n")
    atomic_write(report_path, json.dumps(report, indent=1) + "\n")
    return report


def summary(report, out):
    r = report
    if "labeller" in r:
        return (f"{out}: {r['sentences_written']} sentences labelled by {r['labeller']}, {r['entities_kept']} entities"
                + (f"; span F1 vs gold {100 * r['span_f1']['f1']:.1f}" if "span_f1" in r else ""))
    s = (f"{out}: {r['sentences_written']}/{r['sentences']} sentences written; {r['requests_sent']} requests, "
         f"{r['cache_hits']} cached, {r['retries']} retries; "
         f"tokens {r['prompt_tokens']:,} in, {r['completion_tokens']:,} out; "
         f"entities {r['entities_kept']}/{r['entities_proposed']} kept")
    if "span_f1" in r:
        s += (f"; span F1 vs gold {100 * r['span_f1']['f1']:.1f} "
              f"({100 * r['span_f1_all_input']['f1']:.1f} over all input)")
    c = r.get("confidence")
    if c:
        s += (f"\nconfidence ({c['method']}): below {c['min_confidence']:g}, {c['sentences_filtered']} sentences and "
              f"{c['entities_filtered']} entities left out (--filter {c['filter']})")
        if c["replies_without_logprobs"]:
            s += (f"; {c['replies_without_logprobs']} replies came without log-probabilities: this endpoint may not "
                  "return them (try --confidence samples)")
    if r["failed"]:
        s += (f"\n{len(r['failed'])} sentences failed ({r['failures_by_reason']}) and are not in {out}; "
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
