"""
Distilling the NER teacher into a small, fast student: the three levers that close the gap (a transfer set of
text the student has no labels for, a student that starts from the teacher's own layers, intermediate-layer
distillation), each measured by an ablation over seeds.

    python students.py transfer --teacher runs/ner/teacher/model --out_dir runs/students/transfer
    python students.py run --teacher runs/ner/teacher/model --transfer runs/students/transfer --student L2-H384 \\
        --int8 1 --out_dir runs/students/L2-H384
    python students.py score --runs runs/students/L2-H384/d_hidden_bottom_match-bottom_s0,results/training/default/s0

transfer: the transfer set. Every BBC article (data/bbc/bbc.jsonl) cut into sentences and CoNLL-2003 tokens by
rawtext.py's splitter, as annotate.py and predict.py cut raw text; exact duplicates dropped; every sentence that
copies or near-copies a CoNLL dev or test sentence dropped with textfilter.py's leak filter (at least half of its word
5-grams in one held-out sentence), so nothing of what the student is scored on leaks into what it learns from.
The teacher labels it, and CoNLL's training text, softly (predict.label_tokens: each word's distribution over the
labels, and its most probable tag last): bbc_soft.conll and conll_soft.conll. A teacher trained with --context N
reads each sentence in its document (its BBC article, its CoNLL document; predict.py --context) unless --context
says otherwise, and the files then mark the documents. It prints, and writes to transfer.json, the sizes and the
teacher's labels on each part (entities by type, tags).

run: the ablation, each row one train.py run per seed in OUT_DIR/<row>_<layers kept>_s<S> (d_hidden:
<row>_<layers kept>_match-<layers matched>_s<S>), the student built from the teacher (--model_dir = the teacher: its
embeddings, head and --student_layers layers):
  a_gold        the student on CoNLL's gold labels (cross entropy);
  b_soft        on the teacher's soft labels of the same CoNLL text (KL at T, kd_alpha 0);
  c_transfer    on the teacher's soft labels of CoNLL and the BBC transfer set;
  d_hidden      c, and the teacher run beside it: hidden states and last-layer attention (train.py --teacher); a
                teacher trained with --context reads each sentence in its document there (train.py --teacher_context).
Which teacher layers the student keeps (bottom, or spread from bottom to top as DistilBERT does) is chosen first,
on dev: b_soft with each of --layer_choices on the first seed; the one with the better dev F1 builds every row.
Which teacher layers d_hidden matches the student's with is chosen the same way, d_hidden with each of
--match_choices on the first seed: a student copied from the bottom layers and matched with them has its top layer
pulled toward the teacher's layer L - 1, while the head it carries was trained on the teacher's top layer; matched
with spread, its top learns the teacher's top (last to last, as TinyBERT and MiniLM match).
With --context N every row's student reads its sentences in their documents too (train.py --context), on a transfer
set written with --context. Row a and the --full_rows (d by default; c and d where d's terms may not pay) run on
every seed of --seeds, the others on --ablation_seeds (fewer, where the machine's time demands it: the table marks
them). results.md holds the table (test F1 mean ± std, paired differences to a_gold, dev F1, steps, the loss terms),
the command above it and, with --speed (a JSON that `python bench.py ... --out` wrote), the inference speed of
teacher and student from that one bench.py run; with --int8 1, each run's test F1 with its Linear layers in int8 too
(what a deployed student scores: predict.py --int8 1). results.json holds {"config", "command", "layers",
"dev_by_layers", "match", "dev_by_match", "rows" {row: {"test_by_seed", "mean", "std", "vs_gold" (paired
differences), with --int8 1 "int8_dev_by_seed" and "int8_test_by_seed"}}}. A finished run (its metrics.json, its
int8.json) is never repeated, and OUT_DIR is claimed for one set of settings (runs.claim), so the same command
resumes.

score: finished runs (students or teachers: any train.py NER out_dir) served each way of --served, their dev and
test F1 as predict.py tags them: int8 (--int8 1), onnx (--runtime onnx) and onnx-int8 (--runtime onnx --int8 1),
each measured once and kept in the run's <way>.json with its record (command, commit, machine). With --context N
every run is read with that N instead of the one it was trained with (kept in <way>-c<N>.json), and --served may
name torch, train.py's own path: `score --runs results/context/c32_s1 --served torch,int8 --context 0` is a model
trained with context served one sentence at a time.
"""
import functools
import json
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass

from cli import DataError, above, at_least, command_line, int_list, opt, parse_command, run_main
from data import atomic_write, read_conll, read_jsonl, write_conll
from eval import get_entities
from rawtext import text_documents
from runs import (claim, file_hash, finished, headline, mean_std, paired, pm, provenance, read_json, run_stage,
                  table, vs_base)
from textfilter import NearCopies, drop_reason, words_of

ROWS = {  # name: what the student learns from
    "a_gold": "CoNLL, gold labels",
    "b_soft": "CoNLL, the teacher's soft labels",
    "c_transfer": "+ the BBC transfer set, soft labels",
    "d_hidden": "+ the teacher's hidden states and attention (--teacher)",
}


# ---------------------------------------------------------------------------------------------
# The transfer set

@dataclass
class TransferConfig:
    teacher: str = opt(None, "the NER teacher's model folder (train.py's out_dir/model)", type=str, required=True)
    bbc: str = opt("data/bbc/bbc.jsonl", "BBC articles, one JSON object a line with its text in 'text'")
    data_dir: str = opt("data/conll2003", "CoNLL-2003: train.txt is labelled softly too; valid.txt and test.txt "
                                          "are kept out")
    near: float = opt(0.5, "a sentence with this share of its word 5-grams in one dev or test sentence is a near copy",
                      type=above(0))
    context: int = opt(None, "the teacher reads each sentence in its document: up to N word pieces of the sentences "
                             "before and after it in its BBC article or CoNLL document (predict.py --context); 0: "
                             "alone; default (None): the N the teacher was trained with", type=at_least(0))
    out_dir: str = opt("runs/students/transfer", "bbc_soft.conll, conll_soft.conll and transfer.json")
    runtime: str = opt("torch", "the teacher labels through torch or its ONNX export in ONNX Runtime (predict.py "
                                "--runtime)", choices=["torch", "onnx"])


def bbc_sentences(bbc_path, held_out_paths, near):
    """The BBC transfer sentences (token lists), each one's article (its line's index among the articles, the
    document its context comes from: the article's sentences that are kept) and the counts of what was dropped:
    exact duplicates, and copies or near copies of a held-out (dev or test) sentence, textfilter.py's leak filter."""
    held_out = NearCopies()
    for path in held_out_paths:
        for j, (words, _) in enumerate(read_conll(path)):
            held_out.add(f"{path}:{j}", words_of(" ".join(words)))
    seen, kept, docs, dropped = set(), [], [], Counter()
    for words, doc in zip(*text_documents(article.get("text") or "" for article in read_jsonl(bbc_path))):
        key = tuple(words)
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        why = drop_reason(words_of(" ".join(words)), 1, 10 ** 9, near, [("leak_eval", held_out)])
        if why:
            dropped[why] += 1  # leak_eval, or empty: punctuation alone
        else:
            kept.append(words)
            docs.append(doc)
    return kept, docs, dropped


def label_counts(rows):
    """The teacher's labels on a labelled set (rows: token columns, the prediction last): entities by type and tags."""
    tags = [[cols[-1] for cols in sent] for sent in rows]
    entities = Counter(etype for t in tags for etype, _, _ in get_entities(t))
    return {"sentences": len(rows), "tokens": sum(map(len, tags)), "entities": dict(sorted(entities.items())),
            "tags": dict(sorted(Counter(x for t in tags for x in t).items()))}


def transfer(cfg):
    import torch
    from model import from_pretrained, load_tokenizer
    from predict import check_labeller, label_tokens, reading_context
    from serve import serving_model
    check_labeller(cfg.teacher)
    cfg.context = reading_context(cfg.teacher, cfg.context)
    held_out = [os.path.join(cfg.data_dir, f) for f in ("valid.txt", "test.txt")]
    sentences, bbc_docs, dropped = bbc_sentences(cfg.bbc, held_out, cfg.near)
    conll, conll_docs = read_conll(os.path.join(cfg.data_dir, "train.txt"), columns=True, docs=True)
    model = serving_model(from_pretrained(cfg.teacher, verbose=False), cfg.teacher, cfg.runtime)
    tokenizer = load_tokenizer(cfg.teacher)
    os.makedirs(cfg.out_dir, exist_ok=True)
    report = ({"teacher": cfg.teacher, "runtime": cfg.runtime, "bbc_dropped": dict(dropped)}
              | ({"context": cfg.context} if cfg.context else {}))
    for name, rows, docs in (("bbc", [[[w] for w in words] for words in sentences], bbc_docs),
                             ("conll", conll, conll_docs)):
        labelled = label_tokens(model, tokenizer, rows, torch.device("cpu"), soft=True, progress=True,
                                context=cfg.context, docs=docs)
        # with context, the files mark their documents (-DOCSTART-), so a student may read them with context too
        write_conll(os.path.join(cfg.out_dir, f"{name}_soft.conll"), labelled, docs if cfg.context else None)
        report[name] = label_counts(labelled)
    atomic_write(os.path.join(cfg.out_dir, "transfer.json"), json.dumps(report, indent=1) + "\n")
    for name in ("bbc", "conll"):
        r = report[name]
        print(f"{name}: {r['sentences']:,} sentences, {r['tokens']:,} tokens; the teacher's entities: "
              + ", ".join(f"{t} {n:,}" for t, n in r["entities"].items()))
    print("BBC sentences dropped: " + ", ".join(f"{k} {v:,}" for k, v in sorted(dropped.items()))
          + f" -> {cfg.out_dir}")
    return report


# ---------------------------------------------------------------------------------------------
# The ablation

@dataclass
class RunConfig:
    teacher: str = opt(None, "the NER teacher's model folder: the student is built from it and, in d_hidden, "
                             "runs beside it", type=str, required=True)
    transfer: str = opt("runs/students/transfer", "students.py transfer's folder")
    data_dir: str = opt("data/conll2003", "CoNLL-2003: train.txt (gold), valid.txt (choice of checkpoint), test.txt")
    student: str = opt("L2-H384", "the student, L<layers>-H<hidden> (student.py)")
    layer_choices: str = opt("bottom,spread", "the teacher layers a student may keep, compared on dev "
                                              "(b_soft, first seed)")
    match_choices: str = opt("bottom,spread", "the teacher layers d_hidden may match the student's with (train.py "
                                              "--match_layers), compared on dev (d_hidden, first seed)")
    seeds: list = opt(lambda: [0, 1, 2], "comma-separated seeds of a_gold and the --full_rows", type=int_list)
    ablation_seeds: list = opt(lambda: [0], "comma-separated seeds of the other rows", type=int_list)
    full_rows: str = opt("d_hidden", "comma-separated rows run on every seed of --seeds, as a_gold is: the recipes "
                                     "the goal is judged on")
    lr: float = opt(1e-4, "the student's peak learning rate", type=above(0))
    epochs: float = opt(5.0, "epochs over CoNLL's 14,041 sentences (a_gold, b_soft)", type=above(0))
    transfer_epochs: float = opt(4.0, "epochs over CoNLL and the transfer set together (c_transfer, d_hidden); "
                                      "4 beat 2 on every seed measured", type=above(0))
    kd_temperature: float = opt(2.0, "T of the soft labels' KL")
    hidden_weight: float = opt(1.0, "d_hidden: weight of the hidden-state term (train.py --hidden_weight)",
                               type=at_least(0.0, float))
    attn_weight: float = opt(-1.0, "d_hidden: weight of the attention term (train.py --attn_weight; "
                                   "-1: 1 where the heads match)")
    cache_teacher: int = opt(0, "d_hidden, 1: the teacher's targets of each sentence kept on file the first time and "
                                "read back in the later epochs, which run no teacher (train.py --cache_teacher 1: "
                                "GBs of disk in each run's folder while it runs)", choices=[0, 1])
    max_steps: int = opt(0, "> 0: this many steps for every run (smoke runs)", type=at_least(0))
    context: int = opt(0, "the student too reads each sentence with up to N word pieces of its document on each side "
                          "(train.py --context; the transfer set must mark its documents: students.py transfer "
                          "--context); 0: the student reads sentences alone, whatever its teacher read",
                       type=at_least(0))
    speed: str = opt("", "a JSON that `python bench.py --configs ours,student[,student-int8] --student S --out FILE` "
                         "wrote")
    int8: int = opt(0, "1: also each run's dev and test F1 with its Linear layers in int8 (predict.py --int8 1), "
                       "measured once and kept in the run's int8.json", choices=[0, 1])
    out_dir: str = opt("runs/students/L2-H384", "a folder per run, results.md and results.json")
    progress: int = opt(0, "tqdm bars in the training runs", choices=[0, 1])


# what may change in a folder: more seeds, which row gets them all, the speed file, and the teacher's cache (its
# targets read back are the same to the last bits; each run's record keeps whether it read them)
FREE = {"seeds", "ablation_seeds", "full_rows", "speed", "int8", "out_dir", "progress", "cache_teacher"}


def train_config(rc, row, seed, layers, out_dir, match=""):
    """The train.py run of one row and seed; match: d_hidden's --match_layers."""
    from train import Config
    soft = {name: os.path.join(rc.transfer, f"{name}_soft.conll") for name in ("conll", "bbc")}
    common = dict(data_dir=rc.data_dir, model_dir=rc.teacher, student=rc.student, student_layers=layers, lr=rc.lr,
                  kd_temperature=rc.kd_temperature, max_steps=rc.max_steps, seed=seed, out_dir=out_dir,
                  progress=rc.progress, context=rc.context)
    if row == "a_gold":
        return Config(**common, epochs=rc.epochs)
    if row == "b_soft":
        return Config(**common, epochs=rc.epochs, distilled=soft["conll"], strategy="distilled")
    both = os.path.join(rc.transfer, "conll+bbc_soft.conll")
    teacher = (dict(teacher=rc.teacher, hidden_weight=rc.hidden_weight, attn_weight=rc.attn_weight,
                    match_layers=match, cache_teacher=rc.cache_teacher)
               if row == "d_hidden" else {})
    return Config(**common, epochs=rc.transfer_epochs, distilled=both, strategy="distilled", **teacher)


# How a finished run may be served, each measured once and kept in run_dir/<name>.json: (predict.py's --runtime,
# --int8). "torch" is train.py's own path (PyTorch, bf16 where native): worth measuring only read with another
# --context than the run's (score --context), as the others are measured by default.
SERVED = {"int8": ("torch", True), "onnx": ("onnx", False), "onnx-int8": ("onnx", True), "torch": ("torch", False)}
SERVED_BY_DEFAULT = "int8,onnx,onnx-int8"


def served_scores(run_dir, data_dir, context=0, served="int8", command=None, name=None):
    """A finished run's dev and test span F1 (%) served as SERVED[served] names, as predict.py tags (with --context
    `context`, the run's own unless the caller asks otherwise); kept in run_dir/<name or served>.json, a record like
    metrics.json (with `command`, its provenance, and the context read with), so a resumed command does not measure
    it again."""
    import torch
    from eval import span_f1
    from predict import bf16_supported, tag_words
    path = os.path.join(run_dir, f"{name or served}.json")
    held = read_json(path)
    if held is None:
        if not os.path.isdir(os.path.join(run_dir, "model")):
            raise DataError(f"{run_dir}: no model folder to serve (weights stay on the machine that trained them)")
        runtime, int8 = SERVED[served]
        held = {"context": context} if context else {}
        # a file at a time, as predict.py reads it: int8 scales each batch's inputs on the fly, so sentences batched
        # with another file's could tag differently
        for split, file in (("dev", "valid.txt"), ("test", "test.txt")):
            gold, docs = read_conll(os.path.join(data_dir, file), docs=True)
            tags = tag_words(os.path.join(run_dir, "model"), [words for words, _ in gold], int8=int8, runtime=runtime,
                             context=context, docs=docs)
            held[split] = 100 * span_f1([t for _, t in gold], tags)["f1"]
        if command:
            bf16 = runtime == "torch" and not int8 and bf16_supported(torch.device("cpu"))
            held["record"] = provenance(command, precision="int8" if int8 else "bf16" if bf16 else "fp32")
        atomic_write(path, json.dumps(held, indent=1) + "\n")
    return held


@dataclass
class ScoreConfig:
    runs: str = opt(None, "finished NER runs (train.py's out_dir, with metrics.json and model/), comma-separated",
                    type=str, required=True)
    data_dir: str = opt("data/conll2003", "valid.txt and test.txt, scored as train.py scored them")
    served: str = opt(SERVED_BY_DEFAULT, f"the ways to serve each run, comma-separated, of {', '.join(SERVED)} (torch: "
                                         "train.py's own, bf16 where native; with --context)")
    context: int = opt(None, "read every run with this --context N instead of the N it was trained with (0: each "
                             "sentence alone, as a sentence-level server would; predict.py --context); kept apart, in "
                             "<way>-c<N>.json", type=at_least(0))


def score(cfg, command):
    """Each run's dev and test F1 served in each way of --served, beside train.py's own (metrics.json)."""
    ways = [w for w in cfg.served.split(",") if w]
    for way in ways:
        if way not in SERVED:
            raise DataError(f"--served {way}: expected any of {', '.join(SERVED)}")
    if "torch" in ways and cfg.context is None:
        raise DataError("--served torch is train.py's own way, already in metrics.json: give it with --context N")
    body = []
    for run_dir in [r for r in cfg.runs.split(",") if r]:
        metrics = read_json(os.path.join(run_dir, "metrics.json"))
        if metrics is None:
            raise DataError(f"{run_dir}: no metrics.json (not a finished train.py run)")
        if metrics.get("task", "ner") != "ner" or not metrics.get("test"):
            raise DataError(f"{run_dir}: not an NER run with a test score (score serves CoNLL taggers)")
        own = metrics["config"].get("context", 0)
        context = own if cfg.context is None else cfg.context
        names = {w: w if context == own else f"{w}-c{context}" for w in ways}
        got = {w: served_scores(run_dir, cfg.data_dir, context=context, served=w, command=command, name=names[w])
               for w in ways}
        body.append([run_dir, f"{100 * metrics['test']['f1']:.2f} ({metrics['precision']}, --context {own})",
                     *(f"{got[w]['test']:.2f}" for w in ways)])
    read = "" if cfg.context is None else f", read with --context {cfg.context}"
    print(table(["run", "test F1, as trained", *(w + read for w in ways)], body))


def check_inputs(rc):
    from predict import check_labeller
    check_labeller(rc.teacher)
    for path in [os.path.join(rc.transfer, f) for f in ("conll_soft.conll", "bbc_soft.conll")] + \
            [os.path.join(rc.data_dir, f) for f in ("train.txt", "valid.txt", "test.txt")]:
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file"
                            + (" (python students.py transfer writes it)" if rc.transfer in path else ""))
    if rc.speed and not os.path.isfile(rc.speed):
        raise DataError(f"--speed {rc.speed}: no such file (python bench.py ... --out writes it)")


def run(rc, command):
    from student import parse_student
    from train import train
    try:
        parse_student(rc.student)
    except ValueError as e:
        raise DataError(str(e)) from None
    full_rows = [r for r in rc.full_rows.split(",") if r]
    if any(r not in ROWS for r in full_rows):
        raise DataError(f"--full_rows {rc.full_rows}: expected rows among {', '.join(ROWS)}")

    def seeds_of(row):
        return rc.seeds if row == "a_gold" or row in full_rows else rc.ablation_seeds

    check_inputs(rc)
    settings = {k: v for k, v in asdict(rc).items() if k not in FREE and (k != "context" or v)}  # 0: as before it
    settings["transfer_files"] = {f: file_hash(os.path.join(rc.transfer, f))
                                  for f in ("conll_soft.conll", "bbc_soft.conll")}
    claim(rc.out_dir, settings, free=FREE)
    both = os.path.join(rc.transfer, "conll+bbc_soft.conll")
    if not os.path.exists(both):  # one training file of both parts, written once
        with open(os.path.join(rc.transfer, "conll_soft.conll"), encoding="utf-8") as a, \
                open(os.path.join(rc.transfer, "bbc_soft.conll"), encoding="utf-8") as b:
            atomic_write(both, a.read().rstrip("\n") + "\n\n" + b.read())

    def one(row, seed, layers, match=""):
        out = os.path.join(rc.out_dir, f"{row}_{layers}" + (f"_match-{match}" if match else "") + f"_s{seed}")
        if not finished(out):
            print(f"{row} ({layers} layers" + (f", matched with {match}" if match else "") + f"), seed {seed} -> {out}",
                  flush=True)
        cfg = train_config(rc, row, seed, layers, out, match)
        metrics = run_stage(out, functools.partial(train, cfg), command=command_line("train.py", cfg))
        return {**metrics, "int8": served_scores(out, rc.data_dir, rc.context)} if rc.int8 else metrics

    def on_dev(row, choices, args):  # each choice's dev F1 (the row on its first seed), and the better choice
        dev_f1 = {c: one(row, seeds_of(row)[0], *args(c))["dev"]["f1"] for c in choices.split(",") if c}
        return dev_f1, max(dev_f1, key=dev_f1.get)

    dev, layers = on_dev("b_soft", rc.layer_choices, lambda c: (c,))  # which teacher layers the student keeps
    results, dev_match, match = {}, {}, ""
    for row in ROWS:
        if row == "d_hidden":  # which teacher layers it matches them with
            dev_match, match = on_dev(row, rc.match_choices, lambda c: (layers, c))
        for seed in seeds_of(row):
            results[(row, seed)] = one(row, seed, layers, match if row == "d_hidden" else "")
            write_results(rc, command, layers, dev, results, match, dev_match)
    return write_results(rc, command, layers, dev, results, match, dev_match)


def write_results(rc, command, layers, dev, results, match="", dev_match=None):
    base = {s: headline(m) for (row, s), m in results.items() if row == "a_gold"}
    body, rows = [], {}
    for row, what in ROWS.items():
        runs_ = {s: m for (r, s), m in results.items() if r == row}
        if not runs_:
            continue
        test = {s: headline(m) for s, m in runs_.items()}
        stats = paired(test, base if row != "a_gold" else {})
        dev_f1 = pm(*mean_std(100 * m["dev"]["f1"] for m in runs_.values()))
        terms = next(iter(runs_.values())).get("loss_terms")
        steps = next(iter(runs_.values()))["total_steps"]
        rows[row] = {"test_by_seed": test, "mean": stats["mean"], "std": stats["std"], "vs_gold": stats["diffs"]}
        int8 = []
        if rc.int8:  # mean ± std in int8, and its paired difference to the same runs in fp32
            rows[row].update({f"int8_{split}_by_seed": {s: m["int8"][split] for s, m in runs_.items()}
                              for split in ("dev", "test")})
            q = paired(rows[row]["int8_test_by_seed"], test)
            int8 = [f"{pm(q['mean'], q['std'] if len(test) > 1 else None)} ({q['delta_mean']:+.2f})"]
        body.append([row, what,
                     pm(stats["mean"], stats["std"]) + ("" if len(test) > 1 else f" (seed {next(iter(test))} only)"),
                     vs_base(stats), *int8, dev_f1, steps,
                     ", ".join(f"{k} {v:.3f}" for k, v in terms.items()) if terms else "–"])
    speed = ""
    if rc.speed:
        s = read_json(rc.speed)
        ours, student = s["median"]["ours"], s["median"]["student"]
        quantized = s["median"].get("student-int8")
        speed = (f"Inference in one bench.py run ({s['command']}): teacher {ours['infer_tok_s']:,.0f} tokens/s, "
                 f"student {student['infer_tok_s']:,.0f} tokens/s ({student['infer_tok_s'] / ours['infer_tok_s']:.2f}x)"
                 + (f", the student in int8 {quantized['infer_tok_s']:,.0f} tokens/s "
                    f"({quantized['infer_tok_s'] / ours['infer_tok_s']:.2f}x)" if quantized else "") + ".\n\n")
    teacher = read_json(os.path.join(os.path.dirname(os.path.normpath(rc.teacher)), "metrics.json"))

    def chosen(what, row, dev_f1, choice):  # a choice made on dev, as a sentence
        seed = next(iter(s for (r, s) in results if r == row), "?")
        return (f"{what}, chosen on dev with {row} (seed {seed}): "
                + ", ".join(f"{c} {100 * f:.2f}" for c, f in dev_f1.items()) + f" -> **{choice}**.\n\n")
    md = (f"# Distilling the NER teacher into {rc.student}\n\n```\n{command}\n```\n\n"
          + (f"Teacher: test F1 {headline(teacher):.2f} (`{rc.teacher}`).\n\n" if teacher else "")
          + chosen("Layers kept", "b_soft", dev, layers)
          + (chosen("Layers d_hidden matches them with", "d_hidden", dev_match, match) if dev_match else "") + speed
          + "Test span F1 (%), mean ± std over seeds; vs a_gold: paired difference (seeds better); "
          + ("int8: the same runs with their Linear layers in int8 (predict.py --int8 1), and the mean change; "
             if rc.int8 else "")
          + "loss terms: the mean of each over the run, before its weight.\n\n"
          + table(["row", "the student learns from", "test F1", "vs a_gold", *(["test F1, int8"] if rc.int8 else []),
                   "dev F1", "steps", "loss terms"], body))
    atomic_write(os.path.join(rc.out_dir, "results.md"), md)
    atomic_write(os.path.join(rc.out_dir, "results.json"),
                 json.dumps({"config": asdict(rc), "command": command, "layers": layers, "dev_by_layers": dev,
                             "match": match or None, "dev_by_match": dev_match or None, "rows": rows}, indent=1)
                 + "\n")
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    name, cfg = parse_command({"transfer": (TransferConfig, "the transfer set: BBC sentences and CoNLL's text, "
                                                            "labelled softly by the teacher"),
                               "run": (RunConfig, "the ablation: gold, soft labels, + transfer set, + hidden states"),
                               "score": (ScoreConfig, "finished runs' F1 served in int8 and by ONNX Runtime, or read "
                                                      "with another --context")},
                              argv, description=__doc__.split("\n\n")[0])
    if name == "transfer":
        transfer(cfg)
        return 0
    if name == "score":
        score(cfg, "python students.py " + " ".join(argv))
        return 0
    run(cfg, "python students.py " + " ".join(argv))
    print(open(os.path.join(cfg.out_dir, "results.md"), encoding="utf-8").read())
    return 0


if __name__ == "__main__":
    run_main(main)
