"""
EvoKD (Liu et al., LREC-COLING 2024): an LLM studies a small NER student's mistakes and, round after
round, writes new hard and easy sentences for it; the sentences are labelled and the student learns
from them.

    python evokd.py --per_type 1 --rounds 10 --n 8 --out_dir runs/evokd/k1_evokd_s0
    python evokd.py --per_type 1 --rounds 10 --n 8 --variant auggpt --out_dir runs/evokd/k1_auggpt_s0
    python evokd.py --per_type 1 --rounds 10 --n 8 --labeller runs/ner/teacher/model \\
        --out_dir runs/evokd/k1_lab_evokd_s0
    python evokd.py summary runs/evokd/k1_*_s* --out runs/evokd/k1.md --plot runs/evokd/k1.png

Round 0: the seed set, k training sentences of --data_dir/train.txt per entity type (seeded; a sentence
may serve two types), trains the student (MiniLM-L6 by default, --model_dir for another). Then each round:
  1. the student's tags on the newest labelled batch split its sentences into correct and wrong: in round
     1 the seed set, later the sentences of the previous round, tagged when they arrived, before the
     student trained on them (so the errors are real errors, not a training set it has memorised);
  2. analysis: the LLM sees --show correct and --show wrong sentences, with the right entities and the
     student's, and summarises what the student gets wrong (ANALYSIS below);
  3. generation: from that summary, --n sentences the student would get wrong (hard) and --n it would get
     right (easy), one request each, in the task's domain, text only (GENERATE); two requests rather than
     one, because a small LLM keeps one numbered list straight far more often than two in one reply.
     Every sentence passes textfilter.py's filters (empty, degenerate, too_short, too_long, leak_eval: a near
     copy of a dev or test sentence, copy_seed: of a seed sentence the LLM was shown, duplicate: of a
     sentence kept before, in this run); a list still short asks again, up to --gen_tries requests;
  4. labelling, one request per sentence, with annotate.py's prompt (--prompt), parsing and alignment and
     the seed set as its worked examples (generation and labelling are separate calls because one call
     doing both mislabels more); or, with --labeller MODEL_DIR, a trained model folder's tags (predict.py);
     a sentence whose label cannot be read is dropped and counted;
  5. the current student tags the new batch (its accuracy on hard against easy sentences says whether the
     LLM foresaw its errors), then trains --max_steps steps, from where it stopped, on the new batch, the
     seed set and a replay sample of --replay earlier generated sentences (train.py's own loop).
The prompts name the labels, definitions and domain of a task file (--task_file, task.py; CoNLL-2003's by default),
and the seed set's types must be the task's.
Variants at the same number of new sentences (2n a round): evokd; no_easy (2n hard); no_replay (the new
batch alone); auggpt (no analysis: the LLM writes 2n sentences like the seed examples, AugGPT-style,
labelled and trained on the same way). The seed set alone is round 0 of every run.

Writes into --out_dir: config.json; rounds.jsonl, one line a finished round (evokd_summary.round_line): dev_f1,
test_f1 (span F1 on the full dev and test splits), tokens (prompt_tokens, completion_tokens: from `usage`, of every
reply the round used, cached or not), sentences asked / kept / dropped by reason, hard / easy counts and the
student's sentence accuracy on each, the analysis text, seconds; round_RR/ with the new batch (batch.jsonl: words,
tags, the student's tags, hard or easy), train.conll, train.log and train.py's metrics.json and model/. Every LLM
call goes through llm.py and its cache, and a round is only recorded when it is finished: a run killed at any moment
is resumed by the same command from the last finished round, sends no request whose reply was read, and ends as an
unbroken run would (the replies come from the cache, training is seeded). The same command with a larger --rounds
goes on from the last round.

summary: per group of runs (k, labeller, variant; one run a seed), test F1 by round (mean over seeds),
final test F1 mean ± std, the paired differences to auggpt (and, for the ablations, to evokd), the gain
over round 0, the new sentences kept, tokens per point of F1 gained, and the student's accuracy on hard,
easy (and auggpt's) sentences; --plot draws F1 by round (needs matplotlib); --against MODEL_DIR scores
the labels of the new sentences against that model folder's tags of them.
"""
import functools
import os
import random
import re
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields

from cli import DataError, at_least, command_line, opt, parse_command, parse_config, run_main, stop_in_one_line
from data import labels_from, read_conll, read_jsonl, sample_indices, write_conll, write_jsonl
from eval import get_entities
from rawtext import split_sentences
from runs import claim, run_stage
from evokd_summary import SummaryConfig, print_round, round_line, summary
from textfilter import NearCopies, drop_reason, words_of
from llm import LLMConfig, ask, chat_request
from task import of as task_of, or_list

VARIANTS = ["evokd", "no_easy", "no_replay", "auggpt"]

# The task file (task.py; CoNLL-2003's by default) fills the blanks: its domain, its labels, its words.
ANALYSIS_SYSTEM = "You are an expert in named entity recognition: finding the names of {kinds} in {domain} text."
ANALYSIS = """A small named entity recognition model was tested on {domain} sentences. For each sentence you see the \
right entities and the entities the model found.

Sentences the model got right:
{correct}

Sentences the model got wrong:
{wrong}

In a few sentences, summarise the patterns of sentences and names this model gets wrong."""

GENERATE = """Here is what a small named entity recognition model gets wrong:
{analysis}

Example sentences from {source}:
{examples}

Write {n} new sentences from {source}, each with {names}, {which}. Each must read like {line}, not about the model. \
Write one sentence per line, numbered, and nothing else."""
WHICH = {"hard": "that this model would get wrong", "easy": "that this model would get right"}

AUGGPT = """Example sentences from {source}:
{examples}

Write {n} new sentences from {source} like these, each with {names}. Write one sentence per line, numbered, and \
nothing else."""


def blanks(task):
    return {"domain": task.domain, "source": task.word("source"), "names": task.word("names"),
            "line": task.word("line"),
            "kinds": or_list([f"{v['plural']} ({k})" for k, v in task.labels.items()], last="and")}


@dataclass
class EvoConfig(LLMConfig):  # the endpoint, model, key, retries, concurrency and cache flags come from llm.py
    task_file: str = opt("", "NER task file (task.py): the labels, definitions and domain the prompts name; default "
                             "tasks/conll2003.json")
    data_dir: str = opt("data/conll2003", "CoNLL folder: train.txt (the seed set's source), valid.txt and test.txt")
    per_type: int = opt(1, "seed set: k training sentences per entity type", type=at_least(1), aliases=("k",))
    rounds: int = opt(10, "rounds of analysis, generation, labelling and training", type=at_least(0))
    n: int = opt(8, "hard and easy sentences asked for a round (2n new sentences in every variant)", type=at_least(1))
    variant: str = opt("evokd", "evokd | no_easy: 2n hard | no_replay: train on the new batch alone | "
                                "auggpt: 2n sentences like the seed examples, no analysis", choices=VARIANTS)
    replay: int = opt(None, "earlier generated sentences replayed a round, beside the new batch and the seed set; "
                            "default 2n", type=at_least(0))
    labeller: str = opt("", "a trained NER model folder that labels the new sentences (predict.py); default: the LLM")
    prompt: str = opt("completion", "the LLM labeller's prompt (annotate.py)",
                      choices=["standard", "cot", "completion"])
    shots: int = opt(8, "the LLM labeller's worked examples, drawn from the seed set", type=at_least(0))
    show: int = opt(4, "correct and wrong sentences shown in the analysis (each), seed sentences shown in generation",
                    type=at_least(1))
    temperature: float = opt(0.8, "sampling temperature of analysis and generation (labelling uses 0)",
                             type=at_least(0.0, float))
    max_tokens: int = opt(320, "reply length limit of analysis and generation", type=at_least(1))
    gen_tries: int = opt(3, "generation requests a list, at most, until it has n sentences", type=at_least(1))
    min_words: int = opt(5, "a generated sentence with fewer words is dropped", type=at_least(1))
    max_words: int = opt(60, "and one with more", type=at_least(1))
    near: float = opt(0.5, "near copy: this share of a sentence's word 5-grams found in one other sentence")
    seed: int = opt(0, "seed of the seed set, the examples shown, sampling, replay and the student")
    # the student
    model_dir: str = opt("", "the student's starting weights, any BERT folder; default: MiniLM-L6-H384")
    max_steps: int = opt(60, "the student's optimizer steps a round (round 0, on the seed set, too)", type=at_least(1))
    batch_size: int = opt(8, "the student's batch size", type=at_least(1))
    lr: float = opt(1e-4, "the student's peak learning rate a round (linear warmup and decay within each round)")
    max_len: int = opt(128, "word pieces per window")
    dev_size: int = opt(0, "score each round on a fixed sample of this many dev sentences (the same for every seed); "
                           "0: all of them (the test split is always scored whole)", type=at_least(0))
    out_dir: str = opt("runs/evokd/run", "config.json, rounds.jsonl and a folder per round")


# Settings that may change when a run is resumed: how it talks to the server and how long it goes on.
FREE = {"base_url", "api_key_env", "concurrency", "timeout", "max_retries", "backoff_base", "backoff_max", "cache",
        "progress", "rounds", "out_dir"}


def parse_args(argv=None):
    return with_defaults(parse_config(EvoConfig, argv, description=__doc__.split("\n\n")[0]))


def with_defaults(cfg):
    cfg.replay = 2 * cfg.n if cfg.replay is None else cfg.replay
    return cfg


# ---------------------------------------------------------------------------------------------
# The seed set, and sentences shown to the LLM

def seed_set(sentences, k, seed):
    """Indices of k sentences per entity type, in a seeded order: a sentence is taken while one of its types
    has fewer than k, and counts for every type it holds."""
    types = sorted({t[2:] for _, tags in sentences for t in tags if t != "O"})
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    count, chosen = Counter(), []
    for i in order:
        held = {t for t, _, _ in get_entities(sentences[i][1])}
        if any(count[t] < k for t in held):
            chosen.append(i)
            count.update(held)
        if all(count[t] >= k for t in types):
            break
    return chosen


def entities(words, tags):
    """'Name (TYPE); ...' or 'none', as annotate.py's completion prompt writes them."""
    from annotate import completion_answer, worked_example
    return completion_answer(worked_example(words, tags)[1])


def shown(items, with_pred):
    """Numbered sentences with their right entities (and the model's)."""
    lines = []
    for j, it in enumerate(items, 1):
        lines.append(f"{j}. {' '.join(it['words'])}\n   Right: {entities(it['words'], it['tags'])}"
                     + (f"\n   Model: {entities(it['words'], it['pred'])}" if with_pred else ""))
    return "\n".join(lines) or "(none)"


def chat(cfg, content, seed, system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    return chat_request(cfg, messages, temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=seed)


def analysis_request(cfg, batch, rnd):
    """The analysis prompt over the newest batch: up to --show correct and --show wrong sentences, seeded."""
    rng = random.Random(cfg.seed * 7919 + rnd)
    right = [it for it in batch if it["pred"] == it["tags"]]
    wrong = [it for it in batch if it["pred"] != it["tags"]]
    pick = lambda xs: rng.sample(xs, min(cfg.show, len(xs)))  # noqa: E731
    fill = blanks(task_of(cfg, "ner"))
    return chat(cfg, ANALYSIS.format(correct=shown(pick(right), False), wrong=shown(pick(wrong), True), **fill),
                cfg.seed * 1000 + rnd, ANALYSIS_SYSTEM.format(**fill))


def generation_request(cfg, kind, count, analysis, seed_sents, rnd, attempt):
    rng = random.Random(cfg.seed * 104729 + rnd * 10 + attempt)
    examples = "\n".join(" ".join(seed_sents[i][0])
                         for i in rng.sample(range(len(seed_sents)), min(cfg.show, len(seed_sents))))
    fill = blanks(task_of(cfg, "ner"))
    if kind == "similar":
        text = AUGGPT.format(examples=examples, n=count, **fill)
    else:
        text = GENERATE.format(analysis=analysis.strip() or "(no analysis)", examples=examples, n=count,
                               which=WHICH[kind], **fill)
    return chat(cfg, text, cfg.seed * 1000 + rnd * 10 + attempt + (5 if kind == "easy" else 0))


LIST_RE = re.compile(r"^\s*(?:\d+\s*[.):-]|[-*\u2022]|(?:sentence|hard|easy)\s*\d*\s*[.:)-])\s*", re.I)
PREFACE_RE = re.compile(r"^(?:here (?:are|is)|sure|certainly|okay|ok)\b|:\s*$", re.I)


def sentences_of(reply):
    """The sentences of a generation reply, as token lists: a line each, list marks, quotes and a
    "Here are ...:" line dropped; a line holding two sentences gives both."""
    out = []
    for line in reply.splitlines():
        line, before = line.strip(), None
        while line != before:  # "2) Hard 2: ..." has two marks
            line, before = LIST_RE.sub("", line).strip().strip('"\u201c\u201d').strip(), line
        if not line or PREFACE_RE.search(line):
            continue
        out += [s for s in split_sentences(line) if s]
    return out


# ---------------------------------------------------------------------------------------------
# The student and the labeller

def tag(model_dir, sentences, cfg):
    """A trained model folder's BIO tags for token lists (predict.py's path, Viterbi decoding)."""
    from predict import tag_words
    return tag_words(model_dir, sentences, cfg.max_len)


def label_with_llm(cfg, sentences, seed_path):
    """annotate.py's request, parsing and alignment for each sentence: (tags or None, why) per sentence, replies."""
    from annotate import DEFAULT_MAX_TOKENS, Config, align, build_request, draw_shots, parse_reply
    acfg = Config(**{f.name: getattr(cfg, f.name) for f in fields(LLMConfig)}, prompt=cfg.prompt, shots=cfg.shots,
                  max_tokens=DEFAULT_MAX_TOKENS[cfg.prompt], temperature=0.0, examples=seed_path,
                  task_file=cfg.task_file)
    task = task_of(cfg, "ner")
    shots = draw_shots(seed_path, cfg.shots, cfg.seed, exclude={tuple(s) for s in sentences}, task=task)
    calls = [build_request(acfg, words, shots) for words in sentences]

    def readable(reply):
        return parse_reply(cfg.prompt, reply["content"], reply["finish_reason"])[0] is not None

    replies, _, _ = ask(acfg, calls, readable, desc="label", unit="sent")
    out = []
    for words, reply in zip(sentences, replies):
        if reply is None:  # failed on every attempt (llm.py retried it)
            out.append((None, "label_failed"))
            continue
        items, _ = parse_reply(cfg.prompt, reply["content"], reply["finish_reason"])
        out.append((None, "label_unreadable") if items is None else (align(words, items, task=task)[0], None))
    return out, [r for r in replies if r]


def train_student(cfg, rnd, path, init_dir, labels):
    """train.py's loop, a stage (runs.run_stage): --max_steps steps from init_dir on the CoNLL file `path`, scored
    once, at the end, on the dev sample and the whole test split (out_dir/eval); its printing goes to
    round_RR/train.log. A round is finished only once rounds.jsonl records it, so what an unrecorded try of it left
    in its folder is trained again."""
    from train import Config, train
    folder = round_dir(cfg, rnd)
    tcfg = Config(task="ner", data_dir=os.path.join(cfg.out_dir, "eval"), original=path, model_dir=init_dir,
                  labels=",".join(labels), max_steps=cfg.max_steps, eval_every=cfg.max_steps,
                  batch_size=cfg.batch_size, lr=cfg.lr, max_len=cfg.max_len, seed=cfg.seed * 1000 + rnd,
                  out_dir=folder, progress=0)
    if os.path.exists(os.path.join(folder, "metrics.json")):
        os.remove(os.path.join(folder, "metrics.json"))
    return run_stage(folder, functools.partial(train, tcfg), command=command_line("train.py", tcfg), log=True)


# ---------------------------------------------------------------------------------------------
# The loop

def round_dir(cfg, rnd):
    path = os.path.join(cfg.out_dir, f"round_{rnd:02d}")
    os.makedirs(path, exist_ok=True)
    return path


def has_text(reply):
    """An analysis or generation reply is readable if it says anything at all."""
    return bool(reply["content"].strip())


def generate(cfg, rnd, analysis, seed_sents, indexes, kept_idx):
    """The round's new sentences: {kind: [token lists]}, the dropped counts by reason, the replies used, and
    how many sentences the replies held."""
    wanted = {"similar": 2 * cfg.n} if cfg.variant == "auggpt" else \
        {"hard": 2 * cfg.n} if cfg.variant == "no_easy" else {"hard": cfg.n, "easy": cfg.n}
    got, dropped, used, n_sentences = {kind: [] for kind in wanted}, Counter(), [], 0
    for attempt in range(cfg.gen_tries):
        short = [kind for kind in wanted if len(got[kind]) < wanted[kind]]
        if not short:
            break
        calls = [generation_request(cfg, kind, wanted[kind] - len(got[kind]), analysis, seed_sents, rnd, attempt)
                 for kind in short]
        for kind, reply in zip(short, ask(cfg, calls, has_text, desc="generate")[0]):
            if reply is None:
                dropped["request_failed"] += 1
                continue
            used.append(reply)
            for words in sentences_of(reply["content"]):
                n_sentences += 1
                w = words_of(" ".join(words))
                reason = drop_reason(w, cfg.min_words, cfg.max_words, cfg.near, indexes + [("duplicate", kept_idx)])
                if reason is None and len(got[kind]) >= wanted[kind]:
                    reason = "surplus"  # more than the list asked for
                if reason:
                    dropped[reason] += 1
                else:
                    kept_idx.add(" ".join(w), w)
                    got[kind].append(words)
    return got, dropped, used, n_sentences


def prepare(cfg):
    """Check the inputs and write the run's fixed files: out_dir/eval (the dev sample and test split every round is
    scored on) and seed.conll. Returns the student's first weights, the labels, the seed set and the filters' indexes
    of dev, test and seed sentences."""
    if cfg.labeller:
        from predict import check_labeller
        check_labeller(cfg.labeller)
    train_path = os.path.join(cfg.data_dir, "train.txt")
    evals = [os.path.join(cfg.data_dir, f) for f in ("valid.txt", "test.txt")]
    for p in [train_path, *evals]:
        if not os.path.isfile(p):
            raise DataError(f"{p}: no such file (--data_dir needs train.txt, valid.txt and test.txt)")
    os.makedirs(cfg.out_dir, exist_ok=True)
    check_config(cfg)
    from model import default_model_dir
    model_dir = cfg.model_dir or default_model_dir()

    os.makedirs(os.path.join(cfg.out_dir, "eval"), exist_ok=True)  # the dev and test files every round is scored on
    full_dev, test = (read_conll(p) for p in evals)
    dev = [full_dev[i] for i in sample_indices(len(full_dev), cfg.dev_size, 0)] if cfg.dev_size else full_dev
    for name, sents in (("valid.txt", dev), ("test.txt", test)):
        write_conll(os.path.join(cfg.out_dir, "eval", name), [list(zip(w, t)) for w, t in sents])
    train_sents = read_conll(train_path)
    labels = labels_from(train_sents)
    task_of(cfg, "ner").check_labels({t[2:] for t in labels if t != "O"}, train_path)
    seed_sents = [train_sents[i] for i in seed_set(train_sents, cfg.per_type, cfg.seed)]
    write_conll(os.path.join(cfg.out_dir, "seed.conll"), [list(zip(w, t)) for w, t in seed_sents])
    held_out, seed_idx = NearCopies(), NearCopies()
    for j, (words, _) in enumerate(full_dev + test):
        held_out.add(j, words_of(" ".join(words)))
    for j, (words, _) in enumerate(seed_sents):
        seed_idx.add(j, words_of(" ".join(words)))
    return model_dir, labels, seed_sents, [("leak_eval", held_out), ("copy_seed", seed_idx)]


def finished_rounds(cfg, seed_sents, done):
    """From the finished rounds' files: the newest batch (the seed set, tagged by the round-0 student, before round
    1), every earlier generated sentence, and the index of them that the duplicate filter checks."""
    newest = [{"words": w, "tags": t} for w, t in seed_sents]
    newest_pred = tag(os.path.join(round_dir(cfg, 0), "model"), [w for w, _ in seed_sents], cfg) \
        if len(done) == 1 and cfg.rounds >= 1 else None
    earlier, kept_idx = [], NearCopies()
    for r in range(1, len(done)):
        newest = read_jsonl(os.path.join(round_dir(cfg, r), "batch.jsonl"))
        earlier += newest
        for it in newest:
            w = words_of(" ".join(it["words"]))
            kept_idx.add(" ".join(w), w)
    if newest_pred is not None:  # round 1 studies the seed set, tagged by the round-0 student
        for it, p in zip(newest, newest_pred):
            it["pred"] = p
    return newest, earlier, kept_idx


def new_batch(cfg, rnd, newest, seed_sents, indexes, kept_idx):
    """Steps 1-4 of a round: the analysis of the newest batch, generation and labelling. Returns the labelled
    sentences ({"words", "kind", "tags"}), the dropped counts, the replies used, how many sentences the replies held
    and the analysis."""
    used, analysis = [], ""
    if cfg.variant != "auggpt":  # 1-2: the newest batch, split, and the LLM's analysis of it
        (reply,), _, _ = ask(cfg, [analysis_request(cfg, newest, rnd)], has_text, desc="analysis")
        if reply is not None:
            used.append(reply)
            analysis = reply["content"].strip()
    got, dropped, gen_used, n_generated = generate(cfg, rnd, analysis, seed_sents, indexes, kept_idx)  # 3
    used += gen_used
    batch = [{"words": w, "kind": kind} for kind, sents in got.items() for w in sents]
    if cfg.labeller:  # 4
        for it, t in zip(batch, tag(cfg.labeller, [it["words"] for it in batch], cfg)):
            it["tags"] = t
    else:
        labelled, label_used = label_with_llm(cfg, [it["words"] for it in batch],
                                              os.path.join(cfg.out_dir, "seed.conll"))
        used += label_used
        for it, (t, why) in zip(batch, labelled):
            it["tags"] = t
            if why:
                dropped[why] += 1
        batch = [it for it in batch if it["tags"] is not None]
    return batch, dropped, used, n_generated, analysis


def run(cfg):
    t_start = time.time()
    model_dir, labels, seed_sents, indexes = prepare(cfg)
    seed_path = os.path.join(cfg.out_dir, "seed.conll")
    log_path = os.path.join(cfg.out_dir, "rounds.jsonl")
    done = read_jsonl(log_path) if os.path.exists(log_path) else []
    if not done:  # round 0: the seed set alone
        print(f"seed set: {len(seed_sents)} sentences (k = {cfg.per_type} per type); training the student", flush=True)
        t0 = time.time()
        m = train_student(cfg, 0, seed_path, model_dir, labels)
        done.append({"round": 0, "dev_f1": m["dev"]["f1"], "test_f1": m["test"]["f1"], "prompt_tokens": 0,
                     "completion_tokens": 0, "train_sentences": len(seed_sents), "seconds": round(time.time() - t0, 1)})
        write_jsonl(log_path, done)
        print(f"round 0: dev F1 {100 * m['dev']['f1']:.2f}, test F1 {100 * m['test']['f1']:.2f}", flush=True)

    newest, earlier, kept_idx = finished_rounds(cfg, seed_sents, done)
    for rnd in range(len(done), cfg.rounds + 1):
        t0 = time.time()
        student = os.path.join(round_dir(cfg, rnd - 1), "model")
        batch, dropped, used, n_generated, analysis = new_batch(cfg, rnd, newest, seed_sents=seed_sents,
                                                                indexes=indexes, kept_idx=kept_idx)
        # 5: the student before it learns them
        for it, p in zip(batch, tag(student, [it["words"] for it in batch], cfg)):
            it["pred"] = p
        folder = round_dir(cfg, rnd)
        write_jsonl(os.path.join(folder, "batch.jsonl"), batch)
        replay = [] if cfg.variant == "no_replay" else \
            [earlier[i] for i in sample_indices(len(earlier), cfg.replay, cfg.seed * 1000 + rnd)]
        train_items = batch + ([] if cfg.variant == "no_replay"
                               else [{"words": w, "tags": t} for w, t in seed_sents] + replay)
        path = os.path.join(folder, "train.conll")
        write_conll(path, [list(zip(it["words"], it["tags"])) for it in train_items])
        m = train_student(cfg, rnd, path, student, labels) if train_items else None
        if m is None:  # nothing came back this round: the student stays as it was
            shutil.copytree(student, os.path.join(folder, "model"), dirs_exist_ok=True)
        done.append(round_line(rnd, m, done[-1], batch=batch, newest=newest, used=used, n_generated=n_generated,
                               dropped=dropped, train_items=train_items, replay=replay, analysis=analysis,
                               seconds=round(time.time() - t0, 1)))
        write_jsonl(log_path, done)  # atomically: the round is finished only now
        print_round(done[-1])
        earlier += batch
        newest = batch
    print(f"{cfg.out_dir}: {len(done) - 1} rounds; test F1 {100 * done[0]['test_f1']:.2f} (seed set) -> "
          f"{100 * done[-1]['test_f1']:.2f}; {time.time() - t_start:.0f} s this run")
    return done


def check_config(cfg):
    """out_dir's config.json, written once: a resumed run must agree on everything that shapes the result
    (runs.claim)."""
    settings = asdict(cfg)
    if not settings["task_file"]:  # the default task: run folders made before task files existed still resume
        del settings["task_file"]
    claim(cfg.out_dir, settings, name="config.json", free=FREE, renamed={"k": "per_type"})


@stop_in_one_line
def main(argv=None):
    name, cfg = parse_command({"run": (EvoConfig, "the EvoKD loop (the command when none is named)"),
                               "summary": (SummaryConfig, "tables (and a plot) of finished evokd.py runs")},
                              argv, description=__doc__.split("\n\n")[0], default="run")
    if name == "summary":
        return summary(cfg.runs, cfg.out or None, cfg.plot or None, cfg.against or None)
    return run(with_defaults(cfg))


if __name__ == "__main__":
    run_main(main)
