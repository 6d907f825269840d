"""
Generation-Distillation (Melas-Kyriazi, Han & Liang 2020): with few labelled examples, an LLM writes
new unlabelled in-domain text, a teacher fine-tuned on the labelled examples labels it softly, and a
much smaller student learns from those soft labels.

    python gendist.py generate --task classify --input runs/bbc/train.jsonl --n 100 --form completion \\
        --out runs/gen/bbc.jsonl
    python gendist.py generate --task ner --input data/conll2003/train.txt --n 300 --form completion \\
        --out runs/gen/ner.conll
    python gendist.py run --task classify --data_dir runs/bbc --k 8 --generated runs/gen/bbc.jsonl \\
        --out_dir runs/gendist/bbc_k8
    python gendist.py run --task ner --data_dir data/conll2003 --k 1000 --unlabelled data/bbc/bbc.jsonl \\
        --generated runs/gen/ner.conll --out_dir runs/gendist/ner    # the README adds the teacher and step flags

generate: each request shows the LLM `--shots` real texts drawn (seeded, per request) from the pool
--input (labels, if any, are never shown) and asks for a new one: as chat for instruct models (`--form
chat`), or as a plain completion for base models (`--form completion`: the examples one after the
other, then the opening words of another real text to continue). A classify reply is one text; an ner
reply is cut into sentences and tokens by data.py's tokenizer, each sentence a unit. Every unit passes
the filters, in this order, and the first it fails is its reason in the report:
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

run: the pipeline, over --seeds. L: the labelled set (classify: --data_dir/train_k{K}_s{S}.jsonl,
written by `data.py split --per_class`; ner: data.sample_indices' K training sentences with seed S,
the O of the mixing experiments). U: real unlabelled text (classify: the rest of train.jsonl, labels
hidden; ner: the sentences of --unlabelled, a BBC JSONL, --u_size of them, seeded). G: --generated.
The teacher (MiniLM-L6 fine-tuned on L) labels L, U and G; then the student (--student) trains, with
one step budget for all, on
  (a) L, hard labels; (b) L, the teacher's soft labels; (c) L soft + U soft (real in-domain text: the
  ceiling of what generation could give), and L soft + a seeded sample of U as large as G (real text
  against generated text, unit for unit); (d) L soft + G soft (the method); (e) L soft + G with the
  teacher's hard labels (does softness matter?); with --hidden_weight > 0, (f) = (c) with the teacher run beside
  the student, its hidden states as targets too (train.py --teacher: intermediate-layer distillation).
Each run is train.py's own (train.train) in OUT_DIR/<regimen>_s<S>; a run whose metrics.json exists is
not repeated, so the same command resumes. results.md (mean ± std over seeds, paired difference to
(a)) and results.json are written after every run; the command is above the table, with the parameter
counts and the inference speed of teacher and student (speed.json: both over the test set in one
process, in turn, three times, through train.py's inference path).
"""
import json
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass

from cli import DataError, above, at_least, int_list, opt, parse_command, parse_config, run_main, stop_in_one_line
from data import (atomic_write, open_text, read_conll, read_jsonl, sample_indices, split_sentences, write_conll,
                  write_jsonl)
from runs import claim, file_hash, finished, headline, paired, pm, read_runs, table, vs_base
from llm import LLMConfig, ask, chat_request, completion_request, http_report

UNIT = {"classify": "article", "ner": "sentence"}


@dataclass
class GenConfig(LLMConfig):  # the endpoint, model, key, retries, concurrency and cache flags come from llm.py
    task: str = opt("classify", "classify: whole texts (JSONL pool) | ner: sentences (CoNLL or raw-text pool)",
                    choices=["classify", "ner"])
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
    request = (f"Here are {len(examples)} {unit}s from the same news source:\n\n{shown}\n\n"
           f"Write one new {unit} about a different story, in the same style. Reply with the {unit} only.")
    messages = [{"role": "system", "content": "You are a news journalist."}, {"role": "user", "content": request}]
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


# ---------------------------------------------------------------------------------------------
# Filters

WORD_RE = re.compile(r"\w+")


def words_of(text):
    return WORD_RE.findall(text.lower())


def ngrams(words, n):
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def degenerate(words):
    """A phrase repeated over and over: under half of the word 3-grams are distinct."""
    grams = ngrams(words, 3)
    return len(grams) >= 6 and len(set(grams)) < 0.5 * len(grams)


class NearCopies:
    """Texts indexed by their word 5-grams: which indexed text shares the largest fraction of a new one's?"""
    N = 5

    def __init__(self):
        self.postings, self.exact = {}, {}

    def shingles(self, words):
        return set(ngrams(words, self.N)) or {tuple(words)}

    def add(self, doc, words):
        self.exact.setdefault(" ".join(words), doc)
        for g in self.shingles(words):
            self.postings.setdefault(g, []).append(doc)

    def best(self, words):
        """(doc, fraction of this text's 5-grams found in doc), the doc sharing most; (None, 0) if none."""
        if " ".join(words) in self.exact:
            return self.exact[" ".join(words)], 1.0
        grams = self.shingles(words)
        hits = Counter(d for g in grams for d in set(self.postings.get(g, ())))
        if not hits:
            return None, 0.0
        doc, shared = hits.most_common(1)[0]
        return doc, shared / len(grams)


def drop_reason(words, min_words, max_words, near, indexes):
    """The first filter a unit's words fail, or None: empty, degenerate, too_short, too_long, then, for each
    (reason, NearCopies) of `indexes` in order, a copy or near copy (at least `near` of its 5-grams) of one
    indexed text."""
    if not words:
        return "empty"
    if degenerate(words):
        return "degenerate"
    if len(words) < min_words:
        return "too_short"
    if len(words) > max_words:
        return "too_long"
    for reason, index in indexes:
        if index.best(words)[1] >= near:
            return reason
    return None


def distinct(texts, n, cut=40):
    """Distinct n-grams / all n-grams over the texts' words, each text cut to its first `cut` words (longer
    texts repeat more, so the cut keeps generated and real text comparable); 1.0: no n-gram repeats."""
    grams = [g for t in texts for g in ngrams(words_of(t)[:cut], n)]
    return round(len(set(grams)) / len(grams), 4) if grams else None


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


# ---------------------------------------------------------------------------------------------
# The pipeline: teacher on L, its labels on L, U and G, the student's five regimens

REGIMENS = {  # name: what the student trains on, in words
    "a_L_hard": "L, hard labels",
    "b_L_soft": "L, teacher's soft labels",
    "c_L+U_soft": "+ U (real text), soft",
    "c_L+U_G-size_soft": "+ as many U texts as G has, soft",
    "d_L+G_soft": "+ G (generated), soft",
    "e_L+G_hard": "+ G, teacher's hard labels",
}
HIDDEN = {"f_L+U_soft_hidden": "(c), and the teacher's hidden states (train.py --teacher)"}  # with --hidden_weight > 0


@dataclass
class RunConfig:
    task: str = opt("classify", "classify (JSONL splits) | ner (CoNLL)", choices=["classify", "ner"])
    data_dir: str = opt("runs/bbc", "classify: data.py split's folder (train.jsonl, train_kK_sS.jsonl, valid, test) | "
                                    "ner: a CoNLL folder (train.txt, valid.txt, test.txt)")
    k: int = opt(8, "classify: labelled texts per class | ner: labelled training sentences", type=at_least(1))
    unlabelled: str = opt("", "ner: a BBC JSONL whose sentences are U (classify: U is the rest of train.jsonl)")
    u_size: int = opt(2000, "ner: seeded sample of this many U sentences", type=at_least(1))
    generated: str = opt("", "G: gendist.py generate's output; without it (d) and (e) wait, and the same command "
                             "with it adds them")
    seeds: list = opt(lambda: [0, 1, 2], "comma-separated seeds: of L's draw, the teacher and the student",
                      type=int_list)
    student: str = opt("L2-H192", "the student, L<layers>-H<hidden> (model.py)")
    student_lr: float = opt(1e-3, "the student's peak learning rate", type=above(0))
    steps: int = opt(400, "the student's step budget, the same for every regimen", type=at_least(1))
    batch_size: int = opt(8, "student and teacher batch size", type=at_least(1))
    eval_every: int = opt(50, "student: steps between dev evaluations (the best dev checkpoint is scored)",
                          type=at_least(1))
    hidden_weight: float = opt(0.0, "> 0 adds (f): (c) with the teacher run beside the student, its hidden states as "
                                    "targets with this weight (train.py --teacher --hidden_weight)",
                               type=at_least(0.0, float))
    teacher_epochs: float = opt(20, "the teacher's epochs over L", type=above(0))
    teacher_eval_every: int = opt(20, "teacher: steps between dev evaluations", type=at_least(1))
    max_len: int = opt(128, "word pieces per text (classify: its beginning) or window (ner)", type=at_least(3))
    teacher_runtime: str = opt("torch", "the teacher labels through torch or its ONNX export in ONNX Runtime "
                                        "(predict.py --runtime)", choices=["torch", "onnx"])
    out_dir: str = opt("runs/gendist/bbc_k8", "run folders, results.md and results.json")
    progress: int = opt(0, "tqdm bars in the training runs", choices=[0, 1])


def train_cfg(rc, **kw):
    from train import Config
    return Config(task=rc.task, data_dir=rc.data_dir, max_len=rc.max_len, batch_size=rc.batch_size,
                  progress=rc.progress, **kw)


def labelled_path(rc, seed):
    return os.path.join(rc.data_dir, f"train_k{rc.k}_s{seed}.jsonl")


def labelled_set(rc, seed):
    """L for this seed: classify records, or ner sentences."""
    if rc.task == "classify":
        path = labelled_path(rc, seed)
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file "
                            f"(write it with python data.py split ... --per_class {rc.k} --subset_seeds {seed})")
        return read_jsonl(path)
    sents = read_conll(os.path.join(rc.data_dir, "train.txt"))
    return [sents[i] for i in sample_indices(len(sents), rc.k, seed)]


def unlabelled_set(rc, labelled, seed):
    """U: classify records of train.jsonl not in L (labels dropped); ner rows of --unlabelled's sentences."""
    if rc.task == "classify":
        taken = {r["text"] for r in labelled}
        return [{"text": r["text"]} for r in read_jsonl(os.path.join(rc.data_dir, "train.jsonl"))
                if r["text"] not in taken]
    if not rc.unlabelled:
        raise DataError("--unlabelled: ner needs a BBC JSONL (data/bbc/bbc.jsonl) for U")
    sents = [words for r in read_jsonl(rc.unlabelled) for words in split_sentences(r.get("text", ""))]
    return [[[w] for w in sents[i]] for i in sample_indices(len(sents), rc.u_size, seed)]


def generated_set(rc):
    if not os.path.isfile(rc.generated):
        raise DataError(f"{rc.generated}: no such file (write it with python gendist.py generate)")
    if rc.task == "classify":
        return [{"text": r["text"]} for r in read_jsonl(rc.generated)]
    return read_conll(rc.generated, columns=True)


def teacher_labels(rc, model_dir, sets, folder):
    """The teacher's labels as training files in `folder`, for each of `sets` (name: data) whose files are not
    there yet: L -> L_hard (gold) and L_soft (gold, and the teacher's distribution); U -> U_soft; G -> G_soft
    and G_hard (the teacher's most probable label alone). Returns {file name: path}."""
    import torch
    from model import from_pretrained, load_tokenizer
    from predict import label_texts, label_tokens, serving_model
    ext = ".jsonl" if rc.task == "classify" else ".conll"
    names = {"L": ("L_hard", "L_soft"), "U": ("U_soft",), "G": ("G_soft", "G_hard")}
    paths = {f: os.path.join(folder, f + ext) for s in sets for f in names[s]}
    todo = [s for s in sets if not all(os.path.exists(paths[f]) for f in names[s])]
    if not todo:
        return paths
    os.makedirs(folder, exist_ok=True)
    model = serving_model(from_pretrained(model_dir, verbose=False), model_dir, rc.teacher_runtime)
    tok, cpu = load_tokenizer(model_dir), torch.device("cpu")
    for s in todo:
        data = sets[s]
        if rc.task == "classify":
            # the gold label, if any, moves to "gold"
            soft = label_texts(model, tok, data, cpu, soft=True, max_len=rc.max_len)
            files = {"L_hard": data, "L_soft": [{**r, "label": r["gold"]} for r in soft]} if s == "L" else \
                {"U_soft": soft} if s == "U" else \
                {"G_soft": soft, "G_hard": [{k: v for k, v in r.items() if k != "probs"} for r in soft]}
            for name, recs in files.items():
                write_jsonl(paths[name], recs)
        elif s == "L":
            soft = label_tokens(model, tok, [[[w, t] for w, t in zip(*sent)] for sent in data], cpu, soft=True,
                                max_len=rc.max_len)
            write_conll(paths["L_hard"], [list(zip(*sent)) for sent in data])
            # gold stays last
            write_conll(paths["L_soft"], [[(w, probs, gold) for w, gold, probs, _ in sent] for sent in soft])
        else:
            # token, distribution, most probable label
            soft = label_tokens(model, tok, data, cpu, soft=True, max_len=rc.max_len)
            write_conll(paths[names[s][0]], soft)
            if s == "G":
                write_conll(paths["G_hard"], [[(row[0], row[-1]) for row in sent] for sent in soft])
    return paths


def units_in(path, task):
    """The records (JSONL lines) or sentences (CoNLL blocks) of a file, as text."""
    with open(path, encoding="utf-8") as f:
        text = f.read().strip("\n")
    return [u for u in (text.split("\n") if task == "classify" else text.split("\n\n")) if u.strip()]


def subsample(path, n, seed, out, task):
    """A seeded sample of n records or sentences of a file, written once."""
    if not os.path.exists(out):
        units = units_in(path, task)
        atomic_write(out, ("\n" if task == "classify" else "\n\n").join(
            units[i] for i in sample_indices(len(units), n, seed)) + "\n")
    return out


def concat(paths, out, task):
    """One training file of several (JSONL lines, or CoNLL sentences), written once."""
    if not os.path.exists(out):
        atomic_write(out, ("\n" if task == "classify" else "\n\n").join(
            u for p in paths for u in units_in(p, task)) + "\n")
    return out


FREE = {"seeds", "generated", "out_dir", "progress"}  # may change in a folder: more seeds, G added once, the bars


def claim_out_dir(rc):
    """out_dir holds the runs of one set of settings (runs.claim), and of one G: without --generated the runs of
    (d) and (e) wait, the same command with it adds them, and another G is refused (its content hash is kept;
    folders of older versions kept it in generated.hash, which is read the same way)."""
    # a folder from before --teacher_runtime existed holds torch's labels: it resumes under the default
    settings = {k: v for k, v in asdict(rc).items() if k not in FREE and (k, v) != ("teacher_runtime", "torch")}
    claim(rc.out_dir, settings, free=FREE)
    if not rc.generated:
        return None
    digest = file_hash(rc.generated)
    legacy = os.path.join(rc.out_dir, "generated.hash")
    if os.path.exists(legacy):
        with open(legacy) as f:
            if f.read().strip() != digest:
                raise DataError(f"{rc.out_dir} holds runs on another --generated than {rc.generated}: "
                                "choose a new --out_dir")
    else:
        claim(rc.out_dir, {"generated": digest}, name="generated.json")
    return digest


def pipeline(rc, command):
    """Teacher, its labels, and the student's regimens, seed by seed; without --generated, (d) and (e) wait."""
    from train import train
    seeds = rc.seeds
    generated = generated_set(rc) if rc.generated else None
    labelled_by_seed = {seed: labelled_set(rc, seed) for seed in seeds}  # every input is checked before anything trains
    if rc.task == "ner" and not rc.unlabelled:
        raise DataError("--unlabelled: ner needs a BBC JSONL (data/bbc/bbc.jsonl) for U")
    for path in [rc.unlabelled] if rc.task == "ner" else [os.path.join(rc.data_dir, "train.jsonl")]:
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file")
    os.makedirs(rc.out_dir, exist_ok=True)
    claim_out_dir(rc)
    ext = ".jsonl" if rc.task == "classify" else ".conll"
    results, params = {}, None
    for seed in seeds:
        labelled = labelled_by_seed[seed]
        folder = os.path.join(rc.out_dir, "data", f"s{seed}")
        teacher_dir = os.path.join(rc.out_dir, f"teacher_s{seed}")
        if not finished(teacher_dir):
            if rc.task == "classify":
                l_path = labelled_path(rc, seed)
            else:
                l_path = os.path.join(folder, "L.conll")
                os.makedirs(folder, exist_ok=True)
                write_conll(l_path, [list(zip(w, t)) for w, t in labelled])
            train(train_cfg(rc, train_file=l_path, epochs=rc.teacher_epochs, eval_every=rc.teacher_eval_every,
                            seed=seed, out_dir=teacher_dir))
        results[("teacher", seed)] = read_runs([teacher_dir])[0]
        params = params or parameter_line(rc, os.path.join(teacher_dir, "model"))  # once: it loads the teacher
        sets = {"L": labelled, "U": unlabelled_set(rc, labelled, seed), **({"G": generated} if generated else {})}
        paths = teacher_labels(rc, os.path.join(teacher_dir, "model"), sets, folder)
        files = {"a_L_hard": paths["L_hard"], "b_L_soft": paths["L_soft"]}
        if generated:  # U cut to G's size
            paths["U_G-size_soft"] = subsample(paths["U_soft"], len(generated), seed,
                                               os.path.join(folder, f"U{len(generated)}_soft{ext}"), rc.task)
        for name, extra in (("c_L+U_soft", "U_soft"), ("c_L+U_G-size_soft", "U_G-size_soft"),
                            ("d_L+G_soft", "G_soft"), ("e_L+G_hard", "G_hard")):
            if extra in paths:
                files[name] = concat([paths["L_soft"], paths[extra]], os.path.join(folder, name + ext), rc.task)
        if rc.hidden_weight > 0:  # (c) again, the teacher run beside the student: its hidden states as targets too
            files["f_L+U_soft_hidden"] = files["c_L+U_soft"]
        for name, path in files.items():
            run_dir = os.path.join(rc.out_dir, f"{name}_s{seed}")
            teacher = dict(teacher=os.path.join(teacher_dir, "model"), hidden_weight=rc.hidden_weight) \
                if name == "f_L+U_soft_hidden" else {}
            if not finished(run_dir):
                train(train_cfg(rc, train_file=path, student=rc.student, lr=rc.student_lr, max_steps=rc.steps,
                                eval_every=rc.eval_every, seed=seed, out_dir=run_dir, **teacher))
            results[(name, seed)] = read_runs([run_dir])[0]
            write_results(rc, command, seeds, results, params)
    speed_path = os.path.join(rc.out_dir, "speed.json")
    if not os.path.exists(speed_path):
        seed = seeds[0]
        atomic_write(speed_path, json.dumps(inference_speed(rc, os.path.join(rc.out_dir, f"teacher_s{seed}", "model"),
                                                            os.path.join(rc.out_dir, f"b_L_soft_s{seed}", "model")),
                                            indent=1) + "\n")
    return write_results(rc, command, seeds, results, params)


def inference_speed(rc, teacher_dir, student_dir, rounds=3):
    """Teacher and student over the test set in this one process, in turn, `rounds` times (the median counts):
    predictions per second through train.py's own inference path."""
    import torch
    from model import from_pretrained, load_tokenizer
    from predict import encode, encode_texts, predict, predict_texts
    cpu = torch.device("cpu")
    tok = load_tokenizer(teacher_dir)
    if rc.task == "classify":
        test = read_jsonl(os.path.join(rc.data_dir, "test.jsonl"))
        examples = encode_texts([(r["text"], None, None) for r in test], tok, {}, rc.max_len)
    else:
        test = read_conll(os.path.join(rc.data_dir, "test.txt"))
        examples = encode(test, tok, {}, rc.max_len)

    def run(model):
        return predict_texts(model, examples, cpu) if rc.task == "classify" else predict(model, test, examples, cpu)
    models = {"teacher": from_pretrained(teacher_dir, verbose=False),
              "student": from_pretrained(student_dir, verbose=False)}
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, m in models.items():
            t0 = time.perf_counter()
            run(m)
            times[name].append(time.perf_counter() - t0)
    per_s = {name: len(test) / statistics.median(t) for name, t in times.items()}
    return {"items": len(test), "threads": torch.get_num_threads(), "teacher_per_s": per_s["teacher"],
            "student_per_s": per_s["student"], "ratio": per_s["student"] / per_s["teacher"]}


def parameter_line(rc, teacher_dir):
    """The parameter counts outside the embeddings of the teacher in teacher_dir and of its student."""
    from model import count_parameters, from_pretrained, make_student
    teacher = from_pretrained(teacher_dir, verbose=False)
    (_, t_enc), (_, s_enc) = count_parameters(teacher), count_parameters(make_student(teacher, rc.student))
    return (f"Parameters outside the embeddings: teacher {t_enc / 1e6:.2f} M, student {s_enc / 1e6:.2f} M "
            f"({t_enc / s_enc:.1f}x fewer).\n\n")


def write_results(rc, command, seeds, results, params):
    metric = "accuracy" if rc.task == "classify" else "span F1"
    rows, body = {}, []
    base = {s: headline(results[("a_L_hard", s)]) for s in seeds if ("a_L_hard", s) in results}
    shown = ["teacher", *REGIMENS, *(n for n in HIDDEN if any((n, s) in results for s in seeds))]
    for name in shown:
        got = {s: headline(results[(name, s)]) for s in seeds if (name, s) in results}
        stats = paired(got, base if name not in ("teacher", "a_L_hard") else {})
        rows[name] = {"by_seed": got, "mean": stats["mean"], "std": stats["std"], "vs_a_mean": stats["delta_mean"],
                      "vs_a_std": stats["delta_std"]}
        if got:
            what = "MiniLM-L6 teacher, on L" if name == "teacher" else \
                f"student {rc.student}: {REGIMENS.get(name) or HIDDEN[name]}"
            body.append([name, what, pm(stats["mean"], stats["std"]), vs_base(stats), len(got)])
    sizes = params or ""
    speed_path = os.path.join(rc.out_dir, "speed.json")
    if os.path.exists(speed_path):
        with open(speed_path) as f:
            sp = json.load(f)
        sizes += (f"Inference over the {sp['items']} test {'texts' if rc.task == 'classify' else 'sentences'}, "
                  f"both in one process, {sp['threads']} threads: teacher {sp['teacher_per_s']:.0f}/s, "
                  f"student {sp['student_per_s']:.0f}/s ({sp['ratio']:.1f}x).\n\n")
    md = (f"# Generation-Distillation: {rc.task}, k = {rc.k}\n\n```\n{command}\n```\n\n{sizes}"
          f"Test {metric} (%), mean ± std over seeds; the last column but one is the paired difference to (a).\n\n"
          + table(["run", "what", f"test {metric}", "vs (a)", "seeds"], body))
    atomic_write(os.path.join(rc.out_dir, "results.md"), md)
    atomic_write(os.path.join(rc.out_dir, "results.json"),
                 json.dumps({"config": asdict(rc), "command": command, "rows": rows}, indent=1) + "\n")
    return rows


# ---------------------------------------------------------------------------------------------

@stop_in_one_line
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    name, cfg = parse_command({"generate": (GenConfig, "an LLM writes new in-domain texts, filtered"),
                               "run": (RunConfig, "the teacher, its labels and the student's regimens, seed by seed")},
                              argv, description=__doc__.split("\n\n")[0])
    if name == "generate":
        report = generate(generate_defaults(cfg))
        print(f"{cfg.out}: {report['kept']} {UNIT[cfg.task]}s kept of {report['units']} from {report['replies']}/"
              f"{report['requests']} replies; dropped {report['dropped']}; distinct-2 {report['distinct_2']} (pool "
              f"{report['pool_distinct_2']}); {report['completion_tokens']:,} tokens written in "
              f"{report['seconds']:.0f} s")
        return 0
    rows = pipeline(cfg, "python gendist.py " + " ".join(argv))
    print(open(os.path.join(cfg.out_dir, "results.md")).read())
    return 0 if rows else 1


if __name__ == "__main__":
    run_main(main)
