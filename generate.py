"""
Generation-Distillation's new text: an LLM writes in-domain texts like a pool of real ones, and the texts that pass
the filters (textfilter.py) are kept; gendist.py's pipeline then has a teacher label them for a student.

    python generate.py --task classify --input runs/bbc/train.jsonl --n 100 --form completion --out runs/gen/bbc.jsonl
    python generate.py --task ner --input data/conll2003/train.txt --n 300 --form completion --out runs/gen/ner.conll

(`python gendist.py generate ...` is the same command.) Each request shows the LLM `--shots` real
texts drawn (seeded, per request) from the pool --input (labels, if any, are never shown) and asks for a
new one: as chat for instruct models (`--form chat`), or as a plain completion for base models (`--form
completion`: the examples one after the other, then the opening words of another real text to continue). A
classify reply is one text; an ner reply is cut into sentences and tokens by rawtext.py's tokenizer, each sentence
a unit. Every unit passes the filters, in this order, and the first it fails is its reason in the report:
- empty: no word at all; degenerate: a phrase repeated over and over (under half of its word
  3-grams distinct);
- too_short / too_long: fewer than --min_words or more than --max_words words;
- leak_eval: a copy or near copy of a dev or test text (--exclude; never off): a generated text that
  copies test material would leak it into training;
- copy_train: a copy or near copy of a pool text (the pool is the training split);
- duplicate: a copy or near copy of a unit kept before it.
"Near copy": at least --near of the unit's word 5-grams (lower-cased) occur in one single other text.
Kept units go to --out (classify: JSONL {"id", "text"}; ner: CoNLL, one token a line, no tag), and
OUT.report.json beside it says what was asked, kept and dropped by reason (with examples), tokens,
seconds, and diversity (distinct 1- and 2-grams over the kept units' first 40 words, and over as many
pool units').
Requests go through llm.py: cached, retried, concurrent; a run killed at any moment (kill -9) is
resumed by the same command, which sends only what is missing.
"""
import json
import os
import random
import re
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass

from cli import DataError, above, at_least, opt, parse_config, run_main, stop_in_one_line
from data import atomic_write, open_text, read_conll, read_jsonl, sample_indices, write_conll, write_jsonl
from llm import LLMConfig, ask, chat_request, completion_request, http_report
from rawtext import split_sentences
from task import of as task_of
from textfilter import NearCopies, distinct, drop_reason, words_of

UNIT = {"classify": "article", "ner": "sentence"}

# The chat prompt; the task file (task.py; tasks/bbc.json for classify, tasks/conll2003.json for ner by default)
# fills the writer, the domain and what a text is about.
SYSTEM = "You are {writer}."
CHAT = """Here are {n} {unit}s from the same {domain} source:

{shown}

Write one new {unit} about a different {subject}, in the same style. Reply with the {unit} only."""


@dataclass
class GenConfig(LLMConfig):  # the endpoint, model, key, retries, concurrency and cache flags come from llm.py
    task: str = opt("classify", "classify: whole texts (JSONL pool) | ner: sentences (CoNLL or raw-text pool)",
                    choices=["classify", "ner"])
    task_file: str = opt("", "task file (task.py) of --task's kind: the domain and words of the chat prompt; default "
                             "tasks/bbc.json (classify) or tasks/conll2003.json (ner)")
    input: str = opt("runs/bbc/train.jsonl", "the pool of real unlabelled texts the examples are drawn from")
    pool_format: str = opt(None, "jsonl | conll | text; default jsonl (classify), conll (ner)", type=str,
                           choices=["jsonl", "conll", "text"])
    text_field: str = opt("text", "jsonl: the field holding the text")
    n: int = opt(100, "requests to send (texts to ask for)", type=at_least(1))
    out: str = opt("runs/gen/generated.jsonl", "kept texts; OUT.report.json goes beside it")
    exclude: str = opt(None, "comma-separated dev and test files no unit may copy; default: valid and test beside "
                             "--input (classify), data/conll2003/{valid,test}.txt (ner)", type=str)
    form: str = opt("chat", "chat: instruct models | completion: base models continue a real text's opening",
                    choices=["chat", "completion"])
    shots: int = opt(3, "real examples shown per request", type=at_least(1))
    example_words: int = opt(120, "each example is cut to its first this many words", type=at_least(5))
    seed: int = opt(0, "seed of the examples drawn for each request (and sent as the request's seed)")
    temperature: float = opt(0.8, "sampling temperature", type=at_least(0.0, float))
    max_tokens: int = opt(None, "reply length limit; default 320 (classify), 80 (ner)", type=at_least(1))
    min_words: int = opt(None, "shorter units are dropped; default 40 (classify), 5 (ner)", type=at_least(1))
    max_words: int = opt(None, "longer units are dropped; default 1000 (classify), 60 (ner)", type=at_least(1))
    near: float = opt(0.5, "a unit sharing this fraction of its word 5-grams with one other text is a near copy",
                      type=above(0))


# ---------------------------------------------------------------------------------------------
# Texts in, prompts out

def read_texts(path, fmt, text_field="text"):
    """The texts of a pool or exclude file: JSONL (text_field), CoNLL (each sentence's tokens joined) or raw
    text (each sentence of it)."""
    if fmt == "jsonl":
        out = []
        for i, r in enumerate(read_jsonl(path), 1):
            if not isinstance(r.get(text_field), str):
                raise DataError(f"{path}: record {i} has no text in field {text_field!r}")
            out.append(r[text_field])
        return out
    if fmt == "conll":
        return [" ".join(cols[0] for cols in sent) for sent in read_conll(path, columns=True)]
    with open_text(path) as f:  # names the file and line of a byte that is not UTF-8
        return [" ".join(words) for words in split_sentences(f.read())]


def format_of(path):
    return "jsonl" if path.endswith(".jsonl") else "conll"


def cut(text, n):
    words = text.split()
    return " ".join(words[:n]) + (" …" if len(words) > n else "")


def build_request(cfg, pool, i):
    """(endpoint, payload, opening) of request i: its examples are drawn with a generator seeded by (seed, i)."""
    rng = random.Random(f"{cfg.seed}-{i}")
    picks = rng.sample(range(len(pool)), min(len(pool), cfg.shots + 1))
    examples, other = [cut(pool[j], cfg.example_words) for j in picks[:cfg.shots]], pool[picks[-1]]
    unit = UNIT[cfg.task]
    sampling = dict(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=cfg.seed * 1_000_003 + i)
    if cfg.form == "completion":
        label = unit.capitalize()
        opening = " ".join(other.split()[:6 if cfg.task == "classify" else 2])
        prompt = "".join(f"{label}: {e}\n\n" for e in examples) + f"{label}: {opening}"
        stop = ["\n\n", f"{label}:"] if cfg.task == "classify" else ["\n"]
        return (*completion_request(cfg, prompt, stop=stop, **sampling), opening)
    shown = "\n\n".join(f"{unit.capitalize()} {n}: {e}" for n, e in enumerate(examples, 1))
    task = task_of(cfg, cfg.task)
    request = CHAT.format(n=len(examples), unit=unit, domain=task.domain, shown=shown, subject=task.word("subject"))
    messages = [{"role": "system", "content": SYSTEM.format(writer=task.word("writer"))},
                {"role": "user", "content": request}]
    return (*chat_request(cfg, messages, **sampling), "")


PREAMBLE_RE = re.compile(r"^(?:[^.!?:\n]{0,60}\b(?:here is|here's|sure|new|article|sentence|story)\b[^.!?:\n]{0,40}:|"
                         r"(?:article|sentence)(?: \d+)?:)\s*", re.I)


def units_of(cfg, reply, opening):
    """The units a reply gives: its text (classify) or its tokenized sentences (ner), without a
    "Here is ...:" preamble or quotes around it."""
    text = (opening + " " + reply if opening else reply).strip()
    for _ in range(2):  # "The article is: Article 1: ..." has two
        text = PREAMBLE_RE.sub("", text).strip().strip('"').strip()
    if cfg.task == "classify":
        return [text]
    return [" ".join(words) for words in split_sentences(text)]


def generate(cfg):
    """Ask, filter, write --out and OUT.report.json; returns the report."""
    t0 = time.time()
    fmt = cfg.pool_format or ("jsonl" if cfg.task == "classify" else "conll")
    pool = read_texts(cfg.input, fmt, cfg.text_field)
    if not pool:
        raise DataError(f"no texts in {cfg.input}")
    if not cfg.exclude:
        raise DataError("--exclude: name the dev and test files; generated text is always checked against them")
    exclude_paths = cfg.exclude.split(",")
    evals = [t for p in exclude_paths for t in read_texts(p, format_of(p), cfg.text_field)]
    requests = [build_request(cfg, pool, i) for i in range(cfg.n)]
    replies, failures, stats = ask(cfg, [(e, p) for e, p, _ in requests], lambda r: bool(r["content"].strip()),
                                   desc="generate", unit="text")

    held_out, train_idx, kept_idx = NearCopies(), NearCopies(), NearCopies()
    for j, t in enumerate(evals):
        held_out.add(j, words_of(t))
    pool_units = pool if cfg.task == "classify" else [s for t in pool for s in units_of(cfg, t, "")]
    for j, t in enumerate(pool_units):
        train_idx.add(j, words_of(t))
    kept, dropped, examples = [], Counter(), {}
    for i, reply in enumerate(replies):
        if reply is None:
            continue
        for unit in units_of(cfg, reply["content"], requests[i][2]):
            w = words_of(unit)
            reason = drop_reason(w, cfg.min_words, cfg.max_words, cfg.near,
                                 [("leak_eval", held_out), ("copy_train", train_idx), ("duplicate", kept_idx)])
            if reason:
                dropped[reason] += 1
                examples.setdefault(reason, [])
                if len(examples[reason]) < 3:
                    examples[reason].append({"request": i, "text": unit[:300]})
            else:
                kept_idx.add(len(kept), w)
                kept.append({"id": f"gen-{cfg.seed}-{i}-{len(kept)}", "text": unit, "request": i})
    os.makedirs(os.path.dirname(cfg.out) or ".", exist_ok=True)
    if cfg.task == "classify":
        write_jsonl(cfg.out, [{"id": k["id"], "text": k["text"]} for k in kept])
    else:
        write_conll(cfg.out, [[(w,) for w in k["text"].split()] for k in kept])
    sample = [pool_units[j] for j in sample_indices(len(pool_units), max(1, len(kept)), cfg.seed)]
    texts = [k["text"] for k in kept]
    report = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
        "requests": cfg.n,
        "replies": sum(r is not None for r in replies),
        "failed": {str(i): why for i, why in sorted(failures.items())},
        "units": len(kept) + sum(dropped.values()),
        "kept": len(kept),
        "dropped": dict(dropped),
        "dropped_examples": examples,
        **http_report(stats),  # of this run
        # cached replies too
        "completion_tokens_total": sum(r["usage"].get("completion_tokens", 0) for r in replies if r),
        "seconds": round(time.time() - t0, 1),
        "mean_words": round(statistics.mean(len(words_of(t)) for t in texts), 1) if texts else None,
        "distinct_1": distinct(texts, 1), "distinct_2": distinct(texts, 2),
        "pool_distinct_1": distinct(sample, 1), "pool_distinct_2": distinct(sample, 2),
        "pool_mean_words": round(statistics.mean(len(words_of(t)) for t in sample), 1),
    }
    atomic_write(report_path(cfg.out), json.dumps(report, indent=1) + "\n")
    return report


def report_path(out):
    return os.path.splitext(out)[0] + ".report.json"


def parse_generate(argv):
    return generate_defaults(parse_config(GenConfig, argv, description="generate: an LLM writes new in-domain texts"))


def generate_defaults(cfg):
    """The defaults that depend on the task: reply length, word limits and the held-out files."""
    ner = cfg.task == "ner"
    cfg.max_tokens = cfg.max_tokens or (80 if ner else 320)
    cfg.min_words = cfg.min_words or (5 if ner else 40)
    cfg.max_words = cfg.max_words or (60 if ner else 1000)
    if not cfg.exclude:
        d = os.path.dirname(cfg.input)
        cfg.exclude = ("data/conll2003/valid.txt,data/conll2003/test.txt" if ner
                       else f"{os.path.join(d, 'valid.jsonl')},{os.path.join(d, 'test.jsonl')}")
    return cfg


def run(cfg):
    """Generate, and say in one line what came of it."""
    report = generate(generate_defaults(cfg))
    print(f"{cfg.out}: {report['kept']} {UNIT[cfg.task]}s kept of {report['units']} from {report['replies']}/"
          f"{report['requests']} replies; dropped {report['dropped']}; distinct-2 {report['distinct_2']} (pool "
          f"{report['pool_distinct_2']}); {report['completion_tokens']:,} tokens written in "
          f"{report['seconds']:.0f} s")
    return 0


@stop_in_one_line
def main(argv=None):
    return run(parse_config(GenConfig, argv, description=__doc__.strip().split("\n\n")[0]))


if __name__ == "__main__":
    run_main(main)
