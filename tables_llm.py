"""
The results tables of the LLM's side: how well an LLM labels (annotate.py's report of each run: Phase 1's prompts,
the annotator's speed, the confidence filters, the LLM's topics for BBC), each rendered from the committed records as
tables.py renders the BERT side's (a function a table, registered under its page marker's name).

    python report.py --list      # each table and the page it is on
"""
from records import cell, f1s, grid, pct1, record, renders, report_rows
from runs import paired, table, vs_base


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
