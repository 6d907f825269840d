"""
Every results table of the README and the results pages, rendered from the committed run records; the figures too.

    python report.py              # rewrite each table between its markers (and draw the figures: figures.py)
    python report.py --check      # exit 1 naming the page, table, row and column that differ from the records
    python report.py --list       # each table and its page
    python report.py --no_figures # the tables alone

A table on a page sits between two markers, and only what is between them is rewritten; the prose around a table
stays hand-written and never retypes one of its figures:

    <!-- table: students_recipe -->
    | row | the student learns from | ... |
    <!-- /table -->

Each name is a function in RENDER below that reads records only (metrics.json, runner.json, settings.json, a
pipeline's results.json or report JSON: small files committed under results/, never weights), so the check is fast
and runs in the test suite. A table whose records are missing fails the check with the path it looked for. The
README's experiments table is prose, but every decimal number in it must appear in a rendered table (`--check`
says which does not).

A run's record names the command that made it, the commit, the machine and the precision (runs.provenance); each
page says on which machine its numbers were measured, from these records (`machines` below).
"""
import os
import re
import sys

import figures
from cli import DataError, run_main
from runs import mean_std, paired, pm, read_json, table, vs_base

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = re.compile(r"<!-- table: ([\w.-]+) -->\n(.*?)<!-- /table -->", re.S)


class MissingRecord(DataError):
    """A table's record is not in the repository: the check names the path."""


RENDER = {}


def renders(name):
    def register(fn):
        RENDER[name] = fn
        return fn
    return register


READ = {}  # path -> record, of the page being rendered: what its machines table describes


def record(path):
    """A committed JSON record, path relative to the repository; MissingRecord where it is not there."""
    data = read_json(os.path.join(HERE, path))
    if data is None:
        raise MissingRecord(f"{path}: record missing")
    READ[path] = data
    return data


def machine_of(rec):
    """Where a record says it ran: its runs.provenance, or what an older record implies (train.py ran in fp32 where
    bf16 was asked for only on a CPU without native bf16)."""
    prov = rec.get("record") if isinstance(rec.get("record"), dict) else None
    if prov and prov.get("machine"):
        m = prov["machine"]
        bf16 = "AVX-512 BF16" if m.get("avx512_bf16") else "no native bf16 (AVX2)" if m.get("avx2") else "no bf16"
        return (f"{m.get('cpu') or 'CPU'} ({bf16}), {m.get('threads')} thread(s)"
                + (f", GPU {m['gpu']}" if m.get("gpu") else "")
                + (f", {prov['precision']}" if prov.get("precision") else ""))
    cfg = rec.get("config") if isinstance(rec.get("config"), dict) else {}
    if rec.get("precision") == "fp32" and cfg.get("bf16") == 1:
        return "not recorded: a CPU without native bf16 (bf16 asked, fp32 ran), fp32"
    if rec.get("precision") == "bf16":
        return "not recorded: a CPU with native bf16, bf16"
    return "not recorded"


@renders("machines")
def machines():
    """Every machine the records of this page name, and how many records each."""
    counts = {}
    for path, rec in READ.items():
        if isinstance(rec, dict) and (path.endswith(("/metrics.json", ".report.json")) or "median" in rec
                                      or "record" in rec):
            where = machine_of(rec)
            counts[where] = counts.get(where, 0) + 1
    return table(["machine, as the records say", "records"], [[m, str(n)] for m, n in sorted(counts.items())])


# ---------------------------------------------------------------------------------------------
# The tables: name -> function returning the markdown table (header, separator, rows)

def seeds_of(pattern, seeds=(0, 1, 2)):
    """{seed: metrics.json} of the run folders `pattern.format(s=seed)` that exist."""
    out = {}
    for s in seeds:
        path = os.path.join(pattern.format(s=s), "metrics.json")
        if os.path.exists(os.path.join(HERE, path)):
            out[s] = record(path)
    if not out:
        raise MissingRecord(f"{pattern.format(s='S')}/metrics.json: record missing")
    return out


def f1s(runs, split="test"):
    """{seed: score in %}: span F1 (NER) or accuracy (classification) of each run."""
    key = lambda m: "accuracy" if m.get("task") == "classify" else "f1"  # noqa: E731
    return {s: 100 * m[split][key(m)] for s, m in runs.items()}


def cell(by_seed, digits=2, each=True):
    """'85.94 ± 0.16 (86.13, 85.83, 85.86)': mean ± std over seeds and, with `each`, every seed's value."""
    mean, std = mean_std(by_seed.values())
    text = pm(mean, std, digits=digits)
    if each and len(by_seed) > 1:
        text += " (" + ", ".join(f"{by_seed[s]:.{digits}f}" for s in sorted(by_seed)) + ")"
    return text


def versus(by_seed, base, digits=2):
    """A paired difference as a cell: '+1.57 ± 0.35 (3/3 better)', one seed: '+0.29'."""
    stats = paired(by_seed, base)
    if stats["paired"] == 1:
        return f"{stats['delta_mean']:+.{digits}f}"
    return vs_base(stats, digits)


def seeds_cell(by_seed):
    return ", ".join(str(s) for s in sorted(by_seed))


# ---------------------------------------------------------------------------------------------
# Students (students.py; records under results/students/)

STUDENT_ROWS = [  # (row, what the student learns from, run folder name with {s} for the seed)
    ("`a_gold`", "CoNLL, gold labels", "a_gold_bottom_s{s}"),
    ("`b_soft`", "CoNLL, the teacher's soft labels", "b_soft_bottom_s{s}"),
    ("`b_soft`, layers 0 and 5", "the same, the student cut from the teacher's layers 0 and 5", "b_soft_spread_s{s}"),
    ("`c_transfer`", "+ the BBC transfer set, soft labels", "c_transfer_bottom_s{s}"),
    ("`d_hidden`", "+ hidden states and last-layer attention", "d_hidden_bottom_match-bottom_s{s}"),
    ("`d_hidden`, top matched with top", "the same, its top layer matched with the teacher's top",
     "d_hidden_bottom_match-spread_s{s}"),
]


def int8_of(pattern, runs, split="test"):
    """{seed: F1 in %} of each run's int8.json (students.py --int8 1): the same checkpoint, Linear layers in int8."""
    out = {}
    for s in runs:
        data = read_json(os.path.join(HERE, pattern.format(s=s), "int8.json"))
        if data is not None:
            out[s] = data[split]
    return out


def student_runs(folder):
    """(row, what it learns from, folder name, its pattern, {seed: metrics}) of each row the folder has runs of."""
    for row, what, name in STUDENT_ROWS:
        pattern = f"{folder}/{name}"
        try:
            yield row, what, name, pattern, seeds_of(pattern)
        except MissingRecord:
            continue


def student_table(folder):
    """One students.py folder: each row over its seeds, paired with a_gold, in fp32 and int8."""
    gold = f1s(seeds_of(f"{folder}/a_gold_bottom_s{{s}}"))
    body = []
    for row, what, name, pattern, runs in student_runs(folder):
        m = next(iter(runs.values()))
        if "teacher" in m:
            what += ", layers matched " + ", ".join(f"{i}←{j}" for i, j in enumerate(m["teacher"]["layer_map"]))
        test, int8 = f1s(runs), int8_of(pattern, runs)
        copied = {s: read_json(os.path.join(HERE, pattern.format(s=s), "copied.json")) for s in runs}
        note = " (copied)" if any(copied.values()) else ""
        body.append([row + note, what, seeds_cell(runs), cell(test), "–" if name.startswith("a_gold") else
                     versus(test, gold), cell(int8, each=len(int8) > 1) if int8 else "–",
                     cell(f1s(runs, "dev"), each=False), f"{m['total_steps']:,}"])
    return table(["row", "the student learns from", "seeds", "test F1", "vs a_gold, paired", "test F1, int8",
                  "dev F1", "steps"], body)


renders("students_ablation")(lambda: student_table("results/students/L2-H384"))
renders("students_4ep")(lambda: student_table("results/students/L2-H384-4ep"))


@renders("students_epochs")
def students_epochs():
    """d_hidden with 2 and 4 transfer epochs, seed by seed, in fp32 and int8, against the teacher."""
    two = "results/students/L2-H384/d_hidden_bottom_match-bottom_s{s}"
    four = "results/students/L2-H384-4ep/d_hidden_bottom_match-bottom_s{s}"
    r2, r4 = seeds_of(two), seeds_of(four)
    t2, t4, i8 = f1s(r2), f1s(r4), int8_of(four, r4)
    gold = f1s(seeds_of("results/students/L2-H384/a_gold_bottom_s{s}"))
    teacher = teacher_f1()
    body = [[str(s), f"{t2[s]:.2f}", f"{t4[s]:.2f}", f"{t4[s] - t2[s]:+.2f}", f"{t4[s] - gold[s]:+.2f}",
             f"{f1s(r2, 'dev')[s]:.2f} → {f1s(r4, 'dev')[s]:.2f}", f"{i8[s]:.2f}", f"{teacher - i8[s]:.2f}"]
            for s in sorted(r4)]
    body.append(["mean", cell(t2, each=False), cell(t4, each=False), versus(t4, t2), versus(t4, gold),
                 f"{mean_std(f1s(r2, 'dev').values())[0]:.2f} → {mean_std(f1s(r4, 'dev').values())[0]:.2f}",
                 cell(i8, each=False), f"{teacher - mean_std(i8.values())[0]:.2f}"])
    body.append(["the teacher (fp32, seed 0)", "", f"{teacher:.2f}", "", "", "", "", ""])
    return table(["seed", "test F1, 2 epochs", "4 epochs", "4 − 2, paired", "vs `a_gold`", "dev F1, 2 → 4 epochs",
                  "4 epochs, int8", "behind the teacher, int8"], body)


def teacher_f1():
    """The students' teacher: the default recipe in fp32, seed 0 (its record: results/training/default_fp32_s0)."""
    return f1s(seeds_of("results/training/default_fp32_s{s}", seeds=(0,)))[0]


@renders("students_transfer")
def students_transfer():
    t = record("results/students/transfer.json")
    body = []
    for part, what in (("bbc", "BBC news, every article cut into sentences"),
                       ("conll", "CoNLL-2003 train (its text; the gold is not used)")):
        d = t[part]
        body.append([what, f"{d['sentences']:,}", f"{d['tokens']:,}",
                     *(f"{d['entities'][k]:,}" for k in ("PER", "ORG", "LOC", "MISC"))])
    return table(["part", "sentences", "tokens", "the teacher's entities: PER", "ORG", "LOC", "MISC"], body)


@renders("students_speed")
def students_speed():
    """bench.py's committed runs (--out): inference tokens/s of the teacher and each student, the median round."""
    body = []
    for path in ("results/students/speed.json", "results/students/speed_L3-H384.json"):
        b = record(path)
        med, teacher = b["median"], b["median"]["ours"]["infer_tok_s"]
        student = b["command"].split("--student ")[1].split()[0]
        row = [f"[{os.path.basename(path)}]({path.replace('results/', '')})", f"{len(b['rounds']['ours'])}",
               str(b.get("threads", "–")), f"{teacher:,.0f}"]
        for name in ("student", "student-int8"):
            tok = med.get(name, {}).get("infer_tok_s")
            row += ["–", "–"] if tok is None else [f"{tok:,.0f}", f"{tok / teacher:.2f}×"]
        int8, fp32 = (med.get(n, {}).get("infer_tok_s") for n in ("student-int8", "student"))
        rounds = b["rounds"]
        by_round = sorted(a["infer_tok_s"] / t["infer_tok_s"] for a, t in zip(rounds["student-int8"], rounds["ours"]))
        drift = [r["infer_tok_s"] for r in rounds["ours"]]
        body.append([f"`{student}`", *row, f"{int8 / fp32:.2f}×" if int8 and fp32 else "–",
                     f"{by_round[0]:.2f}× to {by_round[-1]:.2f}×", f"{min(drift):,.0f} to {max(drift):,.0f}"])
    return table(["student", "bench.py run", "rounds", "threads", "teacher tokens/s", "student tokens/s", "× teacher",
                  "int8 student tokens/s", "× teacher", "int8 × fp32 student", "int8 × teacher, by round",
                  "the teacher's rounds, tokens/s"], body)


@renders("students_int8_cost")
def students_int8_cost():
    """What int8 (a scale per weight row) costs each student of the L2-H384 folder, on test and dev."""
    folder = "results/students/L2-H384"
    body, diffs = [], {"test": [], "dev": []}
    for row, _, name, pattern, runs in student_runs(folder):
        cells = []
        for split in ("test", "dev"):
            fp32, int8 = f1s(runs, split), int8_of(pattern, runs, split)
            diffs[split] += [int8[s] - fp32[s] for s in int8]
            cells += [", ".join(f"{fp32[s]:.2f}" for s in sorted(runs)),
                      ", ".join(f"{int8[s] - fp32[s]:+.2f}" for s in sorted(int8))]
        body.append([row, seeds_cell(runs), *cells])
    body.append(["all runs: mean change", "", "", pm(mean_std(diffs["test"])[0], signed=True)
                 + f" (from {min(diffs['test']):+.2f} to {max(diffs['test']):+.2f})", "",
                 pm(mean_std(diffs["dev"])[0], signed=True)])
    return table(["row", "seeds", "test F1, fp32", "int8 − fp32", "dev F1, fp32", "int8 − fp32"], body)


@renders("serving_speed")
def serving_speed():
    """One bench.py run of every runtime: inference tokens/s of the teacher and the student, and each against the
    teacher as train.py evaluates it (ours, bf16 where native); the by-round range beside each ratio."""
    b = record("results/students/serving_speed.json")
    med, rounds = b["median"], b["rounds"]
    base = med["ours"]["infer_tok_s"]
    body = []
    for model, prefix in (("teacher MiniLM-L6-H384", ""), ("student L2-H384", "student-")):
        for what, name in (("ours, bf16", "ours"), ("ours, fp32", "ours-fp32"), ("ours, int8", "ours-int8"),
                           ("ONNX Runtime, fp32", "ort"), ("ONNX Runtime, int8", "ort-int8")):
            key = name if not prefix else ("student" + name[4:] if name.startswith("ours") else prefix + name)
            if key not in med:
                continue
            by_round = sorted(a["infer_tok_s"] / t["infer_tok_s"] for a, t in zip(rounds[key], rounds["ours"]))
            body.append([model, what, f"{med[key]['infer_tok_s']:,.0f}", f"{med[key]['infer_tok_s'] / base:.2f}×",
                         f"{by_round[0]:.2f}× to {by_round[-1]:.2f}×"])
    return table(["model", "runtime", "inference tokens/s", "× the teacher in bf16", "by round"], body)


@renders("ort_int8_settings")
def ort_int8_settings():
    r = record("results/students/ort_int8_settings.json")
    body = [[f"{name}", f"{f1:.2f}"] for name, f1 in (("PyTorch, bf16", r["dev_f1"]["torch"]),
                                                      ("PyTorch, fp32", r["dev_f1"]["torch-fp32"]),
                                                      ("PyTorch, int8 (a scale per row)", r["dev_f1"]["torch-int8"]),
                                                      ("ONNX Runtime, fp32", r["dev_f1"]["ort"]))]
    for q in r["ort_int8"]:
        body.append([f"ONNX Runtime, int8, {'a scale per weight column' if q['per_channel'] else 'one scale per matrix'}"
                     f", {'matrix multiplies only' if q['op_types'] else 'default operators'}", f"{q['dev_f1']:.2f}"])
    return table(["the default run's model (seed 0), served by", "dev F1"], body)


@renders("students_bbc_k8")
def students_bbc_k8():
    folder = "results/students/bbc_k8"
    rows = [("teacher", "MiniLM-L6 on L", "teacher_s{s}"), ("(a)", "L, gold", "a_L_hard_s{s}"),
            ("(b)", "L, soft", "b_L_soft_s{s}"), ("(c)", "L + all U, soft", "c_L+U_soft_s{s}"),
            ("(f)", "(c) + hidden states and attention", "f_L+U_soft_hidden_s{s}")]
    base = f1s(seeds_of(f"{folder}/a_L_hard_s{{s}}"))
    body = []
    for row, what, name in rows:
        acc = f1s(seeds_of(f"{folder}/{name}"))
        body.append([row, what, cell(acc), "" if row in ("teacher", "(a)") else versus(acc, base)])
    return table(["run", "the student learns from", "test accuracy", "vs (a), paired"], body)


# ---------------------------------------------------------------------------------------------
# Regimens (regimens grids: results/regimens/<grid>/results.json names each run's folder)

def grid(folder, d):
    """{regimen: {seed: metrics}} of one D in a grid folder, every run read from its own metrics.json."""
    spec = record(f"{folder}/results.json")
    out = {r: {} for r in spec["regimens"]}
    for row in spec["runs"]:
        if row["d"] == d and row["status"] == "done":
            out[row["regimen"]][row["seed"]] = record(os.path.join(row["run_dir"], "metrics.json"))
    return out


def grid_table(folder, d):
    runs = grid(folder, d)
    base = f1s(runs["original"])
    body = []
    for regimen, by_seed in runs.items():
        test = f1s(by_seed)
        stats = paired(test, base if regimen != "original" else {})
        share = mean_std(m["realised_d_share"] for m in by_seed.values())[0]
        vs = regimen != "original"
        body.append([regimen, pm(stats["mean"], stats["std"]),
                     pm(stats["delta_mean"], stats["delta_std"], signed=True) if vs else "–",
                     f"{stats['better']}/{stats['paired']}" if vs else "–", f"{share:.2f}"])
    return table(["regimen", "test F1", "Δ vs original", "better than original", "D share"], body)


for _grid in ("bbc_total", "bbc_o"):
    for _d in ("strong", "smollm2"):
        renders(f"regimens_{_grid}_{_d}")(lambda g=_grid, d=_d: grid_table(f"results/regimens/{g}", d))


@renders("regimens_vs_simple_mix")
def regimens_vs_simple_mix():
    """Each regimen of the BBC grid paired with Simple Mix (seq-d-o) of the same seed."""
    body = []
    for d, name in (("strong", "strong annotator"), ("smollm2", "SmolLM2")):
        runs = grid("results/regimens/bbc_total", d)
        simple = f1s(runs["seq-d-o"])
        body += [[name, r, versus(f1s(runs[r]), simple)] for r in runs if r not in ("seq-d-o", "original")]
    return table(["D's annotator", "regimen", "test F1 − Simple Mix, paired"], body)


@renders("regimens_verdict")
def regimens_verdict():
    """The BBC grids side by side: D alone, Simple Mix and the best regimen, each paired with original."""
    body = []
    for d, what in (("strong", "new text (BBC), strong annotator"), ("smollm2", "new text (BBC), SmolLM2")):
        for folder, budget in (("bbc_total", "total (D a substitute)"), ("bbc_o", "o (D an addition)")):
            runs = grid(f"results/regimens/{folder}", d)
            base = f1s(runs["original"])
            stats = {r: paired(f1s(v), base) for r, v in runs.items() if r != "original"}
            best = max(stats, key=lambda r: stats[r]["delta_mean"])
            body.append([what, budget, vs_base(stats["distilled"]), vs_base(stats["seq-d-o"]),
                         f"{best} {vs_base(stats[best])}"])
    return table(["D: text, annotator", "budget", "D alone", "Simple Mix (seq-d-o)", "best regimen"], body)


# ---------------------------------------------------------------------------------------------
# Confidence (annotate.py --confidence: the report JSON of each run; the grid under results/confidence/grid)

def pct1(x):
    return "–" if x is None else f"{100 * x:.1f}"


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

def reports(pattern, rows):
    """(row, record) of each (row, name) whose report `pattern.format(name)` is committed; MissingRecord if none is:
    a table of runs that are each optional, but not all."""
    found = []
    for row, name in rows:
        try:
            found.append((row, record(pattern.format(name))))
        except MissingRecord:
            continue
    if not found:
        raise MissingRecord(f"{pattern.format('*')}: record missing")
    return found


PHASE1 = [  # (row, report file)
    ("`standard` (chat, JSON, 3 worked examples)", "standard_200"),
    ("`standard --demos knn` (the 3 most similar gold sentences)", "standard_knn_200"),
    ("`cot` (chat, 4 steps + JSON, 2 worked examples)", "cot_200"),
    ("`completion` (8 worked examples)", "completion_200"),
    ("`completion --demos knn` (the 8 most similar gold sentences)", "knn_200"),
]


@renders("annotation_phase1")
def annotation_phase1():
    body = []
    for row, r in reports("results/annotation/{}.report.json", PHASE1):
        f = r["span_f1_all_input"] if "span_f1_all_input" in r else r["span_f1"]
        n = r["sentences"]
        body.append([row, pct1(f["f1"]), pct1(f["precision"]), pct1(f["recall"]),
                     *(pct1(f["per_type"].get(t, {}).get("f1", 0.0)) for t in ("PER", "ORG", "LOC", "MISC")),
                     f"{r['sentences_written']} / {n}", f"{r['entities_kept']} / {r['entities_proposed']}",
                     f"{r['prompt_tokens_total'] / n:.0f}", f"{r['completion_tokens_total'] / n:.1f}"])
    return table(["prompt", "F1", "P", "R", "PER", "ORG", "LOC", "MISC", "sentences written",
                  "entities kept / proposed", "prompt tok / sent", "completion tok / sent"], body)


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


@renders("llm_topics")
def llm_topics():
    body = []
    for row, r in reports("results/llm_labels/{}.report.json", LLM_TOPICS):
        c, n = r["classification"], r["texts"]
        body.append([row, pct1(c["accuracy"]), pct1(c["macro_f1"]), f"{r['texts_written']} / {n}",
                     f"{pct1(c['accuracy'] * r['texts_written'] / n)}", f"{r['prompt_tokens_total'] / n:.0f}"])
    return table(["prompt", "accuracy", "macro-F1", "texts written / sampled", "right labels, % of the sample",
                  "prompt tok / text"], body)


@renders("llm_topics_curve")
def llm_topics_curve():
    r = record("results/llm_labels/shots2.report.json")
    return table(["confidence at least", "texts kept", "accuracy", "macro-F1"],
                 [[f"{x['threshold']:g}", pct1(x["texts_kept"]), pct1(x["accuracy"]), pct1(x["macro_f1"])]
                  for x in r["confidence"]["curve"]])


# ---------------------------------------------------------------------------------------------
# Classification (BBC; train.py --task classify runs and baseline_tfidf.py --out under results/classification/)

CLASSIFY = "results/classification"
SUBSETS = [("8 per class (40 articles)", "k8"), ("32 per class (160)", "k32"), ("all 1,461", "full")]


def macro(runs):
    return {s: 100 * m["test"]["macro_f1"] for s, m in runs.items()}


def classify_runs(model, subset):
    """{seed: metrics}: MiniLM at k = 8 is gendist.py's teacher (the same command; its records under
    results/students/bbc_k8)."""
    if model == "minilm" and subset == "k8":
        return seeds_of("results/students/bbc_k8/teacher_s{s}")
    return seeds_of(f"{CLASSIFY}/{model}_{subset}_s{{s}}")


@renders("classification")
def classification():
    def acc(by_seed, m=None):
        text = cell(by_seed, each=False)
        return text + (f" ({mean_std(m.values())[0]:.2f})" if m else "")
    rows = []
    tfidf = []
    for _, subset in SUBSETS:
        if subset == "full":
            r = record(f"{CLASSIFY}/tfidf/full.json")
            tfidf.append(f"{100 * r['test']['accuracy']:.2f} ({100 * r['test']['macro_f1']:.2f})")
        else:
            runs = {s: record(f"{CLASSIFY}/tfidf/{subset}_s{s}.json") for s in (0, 1, 2)}
            tfidf.append(acc(f1s(runs), macro(runs)))
    rows.append(["TF-IDF + logistic regression (reference: `baseline_tfidf.py`)", *tfidf])
    minilm, student = {}, {}
    for name, model, out in (("MiniLM-L6-H384 fine-tuned", "minilm", minilm),
                             ("`L2-H192` student, hard labels", "L2-H192", student)):
        cells = []
        for _, subset in SUBSETS:
            try:
                runs = classify_runs(model, subset)
            except MissingRecord:
                cells.append("–")
                continue
            out[subset] = f1s(runs)
            cells.append(acc(out[subset], macro(runs)))
        rows.append([name, *cells])
    rows.append(["student − MiniLM, paired", *(versus(student[k], minilm[k]) if k in student and k in minilm
                                                else "–" for _, k in SUBSETS)])
    return table(["model", *(label for label, _ in SUBSETS)], rows)


# ---------------------------------------------------------------------------------------------
# Training (train.py's default run; records under results/training/)

def seconds_cell(xs):
    """'741 s (737–746)': the mean and the range of some runs' times."""
    xs = list(xs)
    mean = mean_std(xs)[0]
    return f"{mean:,.0f} s" + (f" ({min(xs):,.0f}–{max(xs):,.0f})" if len(xs) > 1 else "")


@renders("training_default")
def training_default():
    rows = [("**ours, default: `python train.py --seed S`** (5 epochs, 10 % warmup, weight decay 0.01, Viterbi "
             "decoding)", "results/training/default/s{s}"),
            ("the same command on a CPU without native bf16, where it trains in fp32 (the students' teacher)",
             "results/training/default_fp32_s{s}")]
    body = []
    for what, pattern in rows:
        runs = seeds_of(pattern)
        body.append([what, seeds_cell(runs), cell(f1s(runs)), cell(f1s(runs, "dev"), each=False),
                     cell({s: 100 * m["test_f1_argmax"] for s, m in runs.items()}, each=False),
                     seconds_cell(m["wall_seconds"] for m in runs.values() if "wall_seconds" in m) if all(
                         "wall_seconds" in m for m in runs.values()) else "not recorded",
                     f"{mean_std(m['train_tokens_per_s'] for m in runs.values())[0]:,.0f}"])
    hf = record("results/training/hf_reference_s0.json")  # baseline_hf.py: run_ner.py's recipe, argmax decoding
    body.insert(0, ["Hugging Face `BertForTokenClassification` as run_ner.py trains it (3 epochs, lr 1e-4, no warmup, "
                    "fp32; `python baseline_hf.py --seed 0`), the reference", "0", pct2(hf["test"]["f1"]),
                    pct2(hf["dev"]["f1"]), pct2(hf["test"]["f1"]), seconds_cell([hf["wall_seconds"]]), "not recorded"])
    return table(["recipe", "seeds", "test F1", "dev F1", "test F1, argmax decoding", "wall time of one run",
                  "training tokens/s"], body)


@renders("training_checkpoints")
def training_checkpoints():
    m = record("results/training/default_ckpt_s0/metrics.json")
    same = record("results/training/default_fp32_s0/metrics.json")
    return table(["run", "checkpoints", "their seconds", "share of training time", "training seconds", "test F1",
                  "dev F1", "test F1 without checkpoints"],
                 [["`python train.py --out_dir runs/default_ckpt` (1 thread)", str(m["checkpoints"]),
                   f"{m['checkpoint_seconds']:.1f}", f"{100 * m['checkpoint_seconds'] / m['train_seconds']:.2f} %",
                   f"{m['train_seconds']:,.0f}", pct2(m["test"]["f1"]), pct2(m["dev"]["f1"]),
                   pct2(same["test"]["f1"])]])


def pct2(x):
    return f"{100 * x:.2f}"


# ---------------------------------------------------------------------------------------------
# Context (bench.py --context N: what reading each sentence in its document costs in inference)

@renders("context_inference")
def context_inference():
    body = []
    base = None
    for n in (0, 64, 128):
        b = record(f"results/context/bench_infer_c{n}.json")["median"]["ours"]
        base = base or b["infer_words_s"]
        body.append([str(n), f"{b['infer_tok_s']:,.0f}", f"{b['infer_words_s']:,.0f}",
                     f"{b['infer_words_s'] / base:.2f}×"])
    return table(["--context N", "word pieces / s (context included)", "words labelled / s", "× N = 0"], body)


# ---------------------------------------------------------------------------------------------
# The LLM's labels put to use: MiniLM trained on SmolLM2's topics against the same articles' gold topics
# (train.py runs under results/classification/), and an NER task file of new types whose labels were checked by hand
# (annotate.py's report and the checks under results/llm_labels/)

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


NER_CHECK = "results/llm_labels/ner_news_check.json"
VERDICTS = ("correct", "wrong type", "wrong span", "not an entity")
NER_NEWS = [("completion (the task file's 3 worked examples)", "ner_news"),
            ("standard (chat, JSON, the same 3 examples)", "ner_news_standard")]


@renders("ner_news_labels")
def ner_news_labels():
    """What the LLM wrote with tasks/example_ner_news.json, by prompt: entities kept by type, and dropped by reason."""
    found = reports("results/llm_labels/{}.report.json", NER_NEWS)
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
    checks = record(NER_CHECK)["checks"]
    rows = []
    for t in [*sorted({c["type"] for c in checks}), "all"]:
        mine = [c for c in checks if t in ("all", c["type"])]
        count = [sum(c["verdict"] == v for c in mine) for v in VERDICTS]
        rows.append([t, str(len(mine)), *map(str, count), pct1(count[0] / len(mine))])
    return table(["type", "checked", *VERDICTS, "precision"], rows)


# ---------------------------------------------------------------------------------------------
# Pages: find the markers, render, compare

def pages():
    """The README and every results page (results/*.md), relative to the repository."""
    return ["README.md", *sorted(os.path.join("results", f) for f in os.listdir(os.path.join(HERE, "results"))
                                 if f.endswith(".md"))]


def rows_of(text):
    """A markdown table's rows as lists of cells (the separator row left out)."""
    out = []
    for line in text.strip().splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()):
            out.append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def first_difference(page, name, held, wanted):
    """One line naming the cell where the page's table differs from the records' (or a row missing / extra)."""
    have, want = rows_of(held), rows_of(wanted)
    header = want[0] if want else []
    for i in range(max(len(have), len(want))):
        if i >= len(have):
            return f"{page}: table {name}: row {want[i][0]!r} missing (the records give it)"
        if i >= len(want):
            return f"{page}: table {name}: row {have[i][0]!r} is not in the records"
        for j in range(max(len(have[i]), len(want[i]))):
            a = have[i][j] if j < len(have[i]) else None
            b = want[i][j] if j < len(want[i]) else None
            if a != b:
                column = header[j] if j < len(header) else f"column {j + 1}"
                where = "header" if i == 0 else f"row {want[i][0]!r}"
                return f"{page}: table {name}: {where}, column {column!r}: the page says {a!r}, the records give {b!r}"
    return f"{page}: table {name}: differs from the records outside its cells (spacing or lines)"


def render_page(page, text):
    """(new text, problems): each marked table rendered anew; problems name unknown tables and missing records. The
    machines table is rendered last, from the records the page's other tables read."""
    problems = []
    READ.clear()

    def one(m):
        name, held = m.group(1), m.group(2)
        if name not in RENDER:
            problems.append(f"{page}: table {name}: no such table in report.py")
            return m.group(0)
        try:
            wanted = RENDER[name]().rstrip("\n") + "\n"
        except MissingRecord as e:
            problems.append(f"{page}: table {name}: {e}")
            return m.group(0)
        if held != wanted:
            problems.append(first_difference(page, name, held, wanted))
        return f"<!-- table: {name} -->\n{wanted}<!-- /table -->"
    text = MARK.sub(lambda m: one(m) if m.group(1) != "machines" else m.group(0), text)
    return MARK.sub(lambda m: one(m) if m.group(1) == "machines" else m.group(0), text), problems


NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*\.\d+")


def experiments_numbers(readme, cells_by_page):
    """The README's experiments table (prose): the decimal numbers of each row that no rendered table of the page
    the row links to (or of the README) holds."""
    start = readme.find("| experiment | headline |")
    if start < 0:
        return ["README.md: the experiments table (| experiment | headline | ...) not found"]
    block = readme[start:readme.find("\n\n", start)]
    out = []
    for row in rows_of(block)[1:]:
        link = re.search(r"\]\((results/[\w.-]+\.md)(#[\w-]*)?\)", row[-1])
        page = link.group(1) if link else None
        held = cells_by_page.get(page, set()) | cells_by_page.get("README.md", set())
        for n in NUMBER.findall(row[1]):
            if n.lstrip("+-−") not in held:
                out.append(f"README.md: experiments table, row {row[0]!r}: {n} is in no rendered table of "
                           f"{page or 'the page it links to'}")
    return out


def numbers_in(text):
    return {n.lstrip("+-−") for n in NUMBER.findall(text)}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--list":
        for page in pages():
            for name in MARK.findall(open(os.path.join(HERE, page), encoding="utf-8").read()):
                print(f"{page}: {name[0]}")
        return 0
    check = argv[:1] == ["--check"]
    if argv and not check and argv != ["--no_figures"]:
        print("usage: python report.py [--check | --list | --no_figures]", file=sys.stderr)
        return 2
    problems, cells = [], {}
    for page in pages():
        path = os.path.join(HERE, page)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new, found = render_page(page, text)
        problems += found
        for m in MARK.finditer(new):
            cells.setdefault(page, set()).update(numbers_in(m.group(2)))
        if not check and new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"{page}: tables rendered")
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        problems += experiments_numbers(f.read(), cells)
    if check:
        for p in problems:
            print(p)
        print(f"report.py --check: {len(problems)} problem(s)" if problems else "report.py --check: every table "
              "matches its records")
        return 1 if problems else 0
    for p in problems:
        if "record missing" in p or "no such table" in p or "rendered table" in p:
            print(p, file=sys.stderr)
    if "--no_figures" not in argv:
        figures.main([])  # the pages' figures, from the same records
    return 0


if __name__ == "__main__":
    run_main(main)
