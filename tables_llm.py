"""
The results tables of the LLM's side: how well an LLM labels (annotate.py's report of each run: Phase 1's prompts,
the annotator's speed, the confidence filters, the LLM's topics for BBC and a BERT trained on them alone, an NER task
of new types checked by hand), each rendered from the committed records as tables.py renders the BERT side's (a
function a table, registered under its page marker's name).

    python report.py --list      # each table and the page it is on
"""
from records import cell, f1s, grid, pct1, record, renders, report_rows, seeds_of, versus
from runs import paired, table, vs_base
from tables import CLASSIFY, macro


# ---------------------------------------------------------------------------------------------
# Confidence (annotate.py --confidence: the report JSON of each run; the grid under results/confidence/grid)

def confidence_curve(rule):
    """Span F1 / P / R of what a filter keeps at each threshold, log-probabilities beside self-consistency."""
    lp = record("results/confidence/logprobs_200.report.json")["confidence"]["curve"]
    sa = record("results/confidence/samples_200.report.json")["confidence"]["curve"]
    kept = "sentences_kept" if rule == "sentence" else "entities_kept"

    def four(x):
        return [f"{100 * x[kept]:.1f} %", *(pct1(x[f"{rule}_{k}"]) for k in ("f1", "precision", "recall"))]
    body = [[f"{a['threshold']:.2f}", *four(a), *four(b)] for a, b in zip(lp, sa)]
    what = "kept" if rule == "sentence" else "entities kept"
    return table(["threshold", f"logprobs: {what}", "F1", "P", "R", f"samples: {what}", "F1", "P", "R"], body)


renders("confidence_sentence")(lambda: confidence_curve("sentence"))
renders("confidence_entity")(lambda: confidence_curve("entity"))


@renders("confidence_calibration")
def confidence_calibration():
    lp = record("results/confidence/logprobs_200.report.json")["confidence"]["calibration"]
    sa = record("results/confidence/samples_200.report.json")["confidence"]["calibration"]
    body = [[a["band"], str(a["entities"]), pct1(a["precision"]), str(b["entities"]), pct1(b["precision"])]
            for a, b in zip(lp, sa)]
    return table(["band", "logprobs: entities", "right", "samples: entities", "right"], body)


def predicted(scores):
    """How many entities a scored file holds: true positives (recall x gold) over precision."""
    gold = sum(t["support"] for t in scores["per_type"].values())
    return round(scores["recall"] * gold / scores["precision"]) if scores["precision"] else 0


@renders("confidence_d1000")
def confidence_d1000():
    body = []
    for name, what in (("logprobs_1000", "unfiltered"), ("sentence_0.6_1000", "sentence filter, 0.6"),
                       ("entity_0.6_1000", "entity filter, 0.6")):
        r = record(f"results/confidence/{name}.report.json")
        f = r["span_f1"]
        n = r["sentences_written"]
        body.append([what, f"{n:,}" + ("" if n == r["sentences"] else f" ({100 * n / r['sentences']:.1f} %)"),
                     f"{predicted(f):,}",
                     pct1(f["f1"]), pct1(f["precision"]), pct1(f["recall"])])
    return table(["D of the 1,000 O sentences", "sentences", "entities", "span F1 vs gold", "P", "R"], body)


@renders("confidence_grid")
def confidence_grid():
    body = []
    for d, what in (("unfiltered", "unfiltered"), ("sentence", "sentence filter 0.6"),
                    ("entity", "entity filter 0.6")):
        runs = grid("results/confidence/grid", d)
        base = f1s(runs["original"])
        steps = next(iter(runs["original"].values()))["total_steps"]
        body.append([what, str(steps), cell(base, each=False), cell(f1s(runs["distilled"]), each=False),
                     vs_base(paired(f1s(runs["distilled"]), base)), cell(f1s(runs["seq-d-o"]), each=False),
                     vs_base(paired(f1s(runs["seq-d-o"]), base))])
    return table(["D", "steps", "original", "D alone", "Δ", "Simple Mix (D then O)", "Δ"], body)


# ---------------------------------------------------------------------------------------------
# Annotation (annotate.py's report JSON of each run, copied to results/annotation/)

PHASE1 = [  # (row, report file)
    ("`standard` (chat, JSON, 3 worked examples)", "standard_200"),
    ("`standard --demos knn` (the 3 most similar gold sentences)", "standard_knn_200"),
    ("`cot` (chat, 4 steps + JSON, 2 worked examples)", "cot_200"),
    ("`completion` (8 worked examples)", "completion_200"),
    ("`completion --demos knn` (the 8 most similar gold sentences)", "knn_200"),
]


def phase1_cells(r):
    """An NER labelling run's report (annotate.py): span F1, P and R, F1 by type, what it wrote and kept, tokens."""
    f = r["span_f1_all_input"] if "span_f1_all_input" in r else r["span_f1"]
    n = r["sentences"]
    return [pct1(f["f1"]), pct1(f["precision"]), pct1(f["recall"]),
            *(pct1(f["per_type"].get(t, {}).get("f1", 0.0)) for t in ("PER", "ORG", "LOC", "MISC")),
            f"{r['sentences_written']} / {n}", f"{r['entities_kept']} / {r['entities_proposed']}",
            f"{r['prompt_tokens_total'] / n:.0f}", f"{r['completion_tokens_total'] / n:.1f}"]


@renders("annotation_phase1")
def annotation_phase1():
    return table(["prompt", "F1", "P", "R", "PER", "ORG", "LOC", "MISC", "sentences written",
                  "entities kept / proposed", "prompt tok / sent", "completion tok / sent"],
                 report_rows("results/annotation/{}.report.json", PHASE1, phase1_cells))


@renders("annotation_bench")
def annotation_bench():
    b = record("results/annotation/bench_annotate.json")
    return table(["run", "seconds", "requests sent", "sentences / s"],
                 [[r["run"], f"{r['seconds']:.2f}", str(r["requests_sent"]), f"{r['sentences'] / r['seconds']:,.0f}"]
                  for r in b["rows"]])


# ---------------------------------------------------------------------------------------------
# The LLM labels BBC's topics (annotate.py --task_file tasks/bbc.json; its reports under results/llm_labels/)

LLM_TOPICS = [  # (row, report file)
    ("completion, zero-shot on the definitions", "zero_shot"),
    ("completion, 2 worked examples", "shots2"),
    ("completion, 2 worked examples, confidence >= 0.5", "shots2_min05"),
    ("completion, zero-shot, 400 articles of the training split (the BERT runs below)", "train400"),
]


def topic_cells(r):
    """A classification labelling run's report (annotate.py): accuracy, macro-F1, how many texts it labelled, tokens."""
    c, n = r["classification"], r["texts"]
    return [pct1(c["accuracy"]), pct1(c["macro_f1"]), f"{r['texts_written']} / {n}",
            f"{pct1(c['accuracy'] * r['texts_written'] / n)}", f"{r['prompt_tokens_total'] / n:.0f}"]


@renders("llm_topics")
def llm_topics():
    return table(["prompt", "accuracy", "macro-F1", "texts written / sampled", "right labels, % of the sample",
                  "prompt tok / text"], report_rows("results/llm_labels/{}.report.json", LLM_TOPICS, topic_cells))


@renders("llm_topics_curve")
def llm_topics_curve():
    r = record("results/llm_labels/shots2.report.json")
    return table(["confidence at least", "texts kept", "accuracy", "macro-F1"],
                 [[f"{x['threshold']:g}", pct1(x["texts_kept"]), pct1(x["accuracy"]), pct1(x["macro_f1"])]
                  for x in r["confidence"]["curve"]])


# ---------------------------------------------------------------------------------------------
# The LLM's labels put to use: MiniLM trained on SmolLM2's topics against the same articles' gold topics
# (train.py runs under results/classification/), and an NER task file of new types whose labels were checked by hand
# (annotate.py's reports and the checks under results/llm_labels/)

LLM_STUDENT = [("SmolLM2's zero-shot topics", "minilm_llm"), ("the same articles' gold topics", "minilm_llmtexts_gold")]


@renders("llm_topics_student")
def llm_topics_student():
    """Test accuracy and macro-F1 of each labelling's 3 seeds, and the per-seed difference LLM − gold."""
    texts = record("results/llm_labels/train400.report.json")["texts_written"]
    scores, rows = {}, []
    for row, name in LLM_STUDENT:
        runs = seeds_of(f"{CLASSIFY}/{name}_s{{s}}")
        scores[name] = f1s(runs), macro(runs)
        rows.append([row, str(texts), cell(scores[name][0]), cell(scores[name][1])])
    (llm_acc, llm_f1), (gold_acc, gold_f1) = scores["minilm_llm"], scores["minilm_llmtexts_gold"]
    rows.append(["LLM − gold, paired by seed", "", versus(llm_acc, gold_acc), versus(llm_f1, gold_f1)])
    return table(["MiniLM-L6 trained on", "articles", "test accuracy", "test macro-F1"], rows)


@renders("llm_topics_train_mix")
def llm_topics_train_mix():
    """The articles SmolLM2 gave a topic (the BERT runs' training set), by gold topic: how many, and what it said."""
    c = record("results/llm_labels/train400.report.json")["classification"]["confusion"]  # rows: gold; columns: LLM
    rows = [[gold, str(sum(row)), *map(str, row)] for gold, row in zip(c["labels"], c["matrix"])]
    return table(["gold topic", "articles", *(f"LLM: {t}" for t in c["labels"])], rows)


VERDICTS = ("correct", "wrong type", "wrong span", "not an entity")
NER_NEWS = [("completion (the task file's 3 worked examples)", "ner_news"),
            ("standard (chat, JSON, the same 3 examples)", "ner_news_standard")]


@renders("ner_news_labels")
def ner_news_labels():
    """What the LLM wrote with tasks/example_ner_news.json, by prompt: entities kept by type, and dropped by reason."""
    found = report_rows("results/llm_labels/{}.report.json", NER_NEWS, lambda r: [r])
    types = sorted({t for _, r in found for t in r["entities_by_type"]})
    why = sorted({w for _, r in found for w in r["entities_dropped"]})
    rows = [[row, f"{r['sentences_written']} / {r['sentences']}", f"{r['entities_kept']} / {r['entities_proposed']}",
             f"{r['entities_kept'] / r['sentences']:.2f}", *(str(r["entities_by_type"].get(t, 0)) for t in types),
             *(str(r["entities_dropped"].get(w, 0)) for w in why)] for row, r in found]
    return table(["prompt", "sentences written / sampled", "entities kept / proposed", "kept per sentence", *types,
                  *(f"dropped: {w}" for w in why)], rows)


@renders("ner_news_check")
def ner_news_check():
    """The hand check of a seeded sample of the kept entities: verdicts by type, and precision (correct / checked)."""
    checks = record("results/llm_labels/ner_news_check.json")["checks"]
    rows = []
    for t in [*sorted({c["type"] for c in checks}), "all"]:
        mine = [c for c in checks if t in ("all", c["type"])]
        count = [sum(c["verdict"] == v for c in mine) for v in VERDICTS]
        rows.append([t, str(len(mine)), *map(str, count), pct1(count[0] / len(mine))])
    return table(["type", "checked", *VERDICTS, "precision"], rows)
