"""
Every results table of the README and the results pages, rendered from the committed run records: a function a
table, registered under the name a page's marker gives it (`<!-- table: NAME -->`, report.py), each reading only
records (records.py) and returning the markdown table.

    python report.py --list      # each table and the page it is on
    python report.py --check     # every table against its records

A table's rows and columns are written here once; the prose around it on its page interprets them and never retypes
a figure. The sections follow the pages of the BERT side: students and serving, regimens, classification, training,
context; the LLM's labels (annotation, confidence, the LLM's topics) are tables_llm.py's.
"""
import os
import shlex

from records import (MissingRecord, cell, f1s, grid, optional_record, pct2, record, renders, seconds_cell, seeds_cell,
                     seeds_of, versus)
from runs import mean_std, paired, pm, round_ratios, table, vs_base


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


def served_of(pattern, runs, split="test", way="int8", required=False):
    """{seed: F1 in %} of each run served another way, from its <way>.json (students.py: int8 with run --int8 1, onnx
    and onnx-int8 with score): the same checkpoint. `pattern` names the run folders, {s} for the seed, or is
    {seed: folder}. Runs without one are left out, or with `required` missing."""
    out = {}
    for s in runs:
        folder = pattern[s] if isinstance(pattern, dict) else pattern.format(s=s)
        path = os.path.join(folder, f"{way}.json")
        data = record(path) if required else optional_record(path)
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
        test, int8 = f1s(runs), served_of(pattern, runs)
        copied = {s: optional_record(os.path.join(pattern.format(s=s), "copied.json")) for s in runs}
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
    t2, t4, i8 = f1s(r2), f1s(r4), served_of(four, r4)
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
        fp32, int8 = (med.get(n, {}).get("infer_tok_s") for n in ("student", "student-int8"))
        for tok in (fp32, int8):
            row += ["–", "–"] if tok is None else [f"{tok:,.0f}", f"{tok / teacher:.2f}×"]
        rounds = b["rounds"]
        by_round = round_ratios(rounds, "student-int8", "ours")
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
            fp32, int8 = f1s(runs, split), served_of(pattern, runs, split)
            diffs[split] += [int8[s] - fp32[s] for s in int8]
            cells += [", ".join(f"{fp32[s]:.2f}" for s in sorted(runs)),
                      ", ".join(f"{int8[s] - fp32[s]:+.2f}" for s in sorted(int8))]
        body.append([row, seeds_cell(runs), *cells])
    body.append(["all runs: mean change", "", "", pm(mean_std(diffs["test"])[0], signed=True)
                 + f" (from {min(diffs['test']):+.2f} to {max(diffs['test']):+.2f})", "",
                 pm(mean_std(diffs["dev"])[0], signed=True)])
    return table(["row", "seeds", "test F1, fp32", "int8 − fp32", "dev F1, fp32", "int8 − fp32"], body)


def serving_speed(path):
    """One bench.py run of every runtime: inference tokens/s of the teacher and the student, and each against the
    teacher as train.py evaluates it (ours, bf16 where native); the by-round range beside each ratio."""
    b = record(path)
    med, rounds = b["median"], b["rounds"]
    base = med["ours"]["infer_tok_s"]
    body = []
    for model, prefix in (("teacher MiniLM-L6-H384", ""), ("student L2-H384", "student-")):
        for what, name in (("ours, bf16", "ours"), ("ours, fp32", "ours-fp32"), ("ours, int8", "ours-int8"),
                           ("ONNX Runtime, fp32", "ort"), ("ONNX Runtime, int8", "ort-int8")):
            key = name if not prefix else ("student" + name[4:] if name.startswith("ours") else prefix + name)
            if key not in med:
                continue
            by_round = round_ratios(rounds, key, "ours")
            body.append([model, what, f"{med[key]['infer_tok_s']:,.0f}", f"{med[key]['infer_tok_s'] / base:.2f}×",
                         f"{by_round[0]:.2f}× to {by_round[-1]:.2f}×"])
    return table(["model", "runtime", "inference tokens/s", "× the teacher in bf16", "by round"], body)


renders("serving_speed")(lambda: serving_speed("results/students/serving_speed.json"))
renders("serving_speed_2threads")(lambda: serving_speed("results/students/serving_speed_2threads.json"))


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


# ---------------------------------------------------------------------------------------------
# Context (bench.py --context N: what reading each sentence in its document costs in inference)

@renders("context_inference")
def context_inference():
    body = []
    base = None
    for n in (0, 32, 64, 128):
        b = record(f"results/context/bench_infer_c{n}.json")["median"]["ours"]
        base = base or b["infer_words_s"]
        body.append([str(n), f"{b['infer_tok_s']:,.0f}", f"{b['infer_words_s']:,.0f}",
                     f"{b['infer_words_s'] / base:.2f}×"])
    return table(["--context N", "word pieces / s (context included)", "words labelled / s", "× N = 0"], body)


@renders("context_beside")
def context_beside():
    """What a teacher beside the student costs its training (bench.py student-teacher, student-teacher-ctx, and
    -cached where the record has it)."""
    b = record("results/context/bench_beside.json")
    med, words = b["median"], shlex.split(b["command"])
    alone, n = med["student"]["train_tok_s"], words[words.index("--teacher_context") + 1]
    rows = [("student", "the student alone (its labels term only)"),
            ("student-teacher", "beside the teacher, which reads the sentence"),
            ("student-teacher-ctx", f"beside the teacher, which reads the sentence in its document (N = {n})"),
            ("student-teacher-ctx-cached", "beside that teacher's targets read back from file (`--cache_teacher 1`: "
                                           "the epochs after the first)")]
    return table(["the student trains", "machine", "its word pieces / s", "× alone", "peak memory MB"],
                 [[what, cpu_of(b), f"{med[c]['train_tok_s']:,.0f}", f"{med[c]['train_tok_s'] / alone:.2f}×",
                   f"{med[c]['peak_rss_mb']:,.0f}"] for c, what in rows if c in med])


# ---------------------------------------------------------------------------------------------
# Context (train.py --context N on CoNLL-2003, against the default runs: N = 0)

CONTEXT_RUNS = [  # (N, the run folders of that N, {s} for the seed): the grid's rows are these by the CPU each ran on
    (0, ["results/training/default/s{s}", "results/context/xeon/c0_s{s}"]),
    (32, ["results/context/c32_s{s}", "results/context/xeon/c32_s{s}"]),
    (64, ["results/context/c64_s{s}", "results/context/xeon/c64_s{s}"])]
DEFAULT_RUNS = CONTEXT_RUNS[0][1][0]  # today's teacher: python train.py, seeds 0, 1, 2


def cpu_of(m):
    """The CPU a run's record names, short ("Intel(R) Xeon(R) Processor" is "Intel Xeon"), and "without AVX-512 BF16"
    where it lacks it (the same model name comes with and without it)."""
    machine = (m.get("record") or {}).get("machine", {})
    cpu = (machine.get("cpu") or "an unrecorded CPU").replace("(R)", "").replace(" Processor", "").strip()
    return cpu + (" without AVX-512 BF16" if machine.get("avx512_bf16") is False else "")


def context_runs():
    """[(N, CPU, {seed: metrics.json}, {seed: its folder})] of the context sizes with a finished run, one row for each
    CPU their records name (runs pair with N = 0 on their own machine only: their F1 and times differ by machine),
    the CPUs in the order they first appear, N = 0 first on each; N = 0 of the default runs must be there."""
    rows = {}
    for n, patterns in CONTEXT_RUNS:
        for pattern in patterns:
            try:
                runs = seeds_of(pattern)
            except MissingRecord:
                if pattern == DEFAULT_RUNS:
                    raise
                continue
            for s, m in runs.items():
                runs_of, folders = rows.setdefault(cpu_of(m), {}).setdefault(n, ({}, {}))
                if s not in runs_of:  # a seed in two folders of one CPU: the first listed
                    runs_of[s], folders[s] = m, pattern.format(s=s)
    return [(n, cpu, *rows[cpu][n]) for cpu in rows for n in sorted(rows[cpu])]


def context_base(rows, cpu, runs):
    """The N = 0 runs on that CPU of the seeds `runs` has ({} where none)."""
    base = next((r for n, c, r, _ in rows if n == 0 and c == cpu), {})
    return {s: m for s, m in base.items() if s in runs}


@renders("context_grid")
def context_grid():
    rows = context_runs()
    body = []
    for n, cpu, runs, _ in rows:
        test, dev, pairs = f1s(runs), f1s(runs, "dev"), context_base(rows, cpu, runs)
        body.append([str(n), cpu, seeds_cell(runs), cell(test), versus(test, f1s(pairs)) if n and pairs else "–",
                     cell(dev, each=False), versus(dev, f1s(pairs, "dev")) if n and pairs else "–",
                     seconds_cell(m["train_seconds"] for m in runs.values()),
                     f"{mean_std(m['train_tokens_per_s'] for m in runs.values())[0]:,.0f}"])
    return table(["--context N", "machine", "seeds", "test F1", "test F1 vs N = 0, same machine and seeds", "dev F1",
                  "dev F1 vs N = 0", "training time of a run", "training word pieces / s"], body)


@renders("context_types")
def context_types():
    rows = context_runs()
    types = sorted(next(iter(rows[0][2].values()))["test"]["per_type"])

    def by_type(runs, t):
        return {s: 100 * m["test"]["per_type"][t]["f1"] for s, m in runs.items()}
    body = []
    for n, cpu, runs, _ in rows:
        pairs = context_base(rows, cpu, runs)
        body.append([str(n), cpu, seeds_cell(runs), *(
            cell(by_type(runs, t), each=False) + (f" ({versus(by_type(runs, t), by_type(pairs, t))})"
                                                  if n and pairs else "") for t in types)])
    return table(["--context N", "machine", "seeds", *(f"{t} test F1" for t in types)], body)


@renders("context_alone")
def context_alone():
    """A model trained with context, read one sentence at a time (students.py score --context 0, its torch-c0.json and
    int8-c0.json): test F1 against the same model read with its own N, and against the N = 0 model of the same seed
    and machine, in bf16 and in int8. The runs scored so are those whose weights were at hand."""
    rows = context_runs()
    body = []
    for n, cpu, runs, folders in rows:
        alone = served_of(folders, runs, way="torch-c0") if n else {}
        if not alone:
            continue
        own = {s: v for s, v in f1s(runs).items() if s in alone}
        base = context_base(rows, cpu, alone)
        without, base8 = f1s(base), served_of(next(f for m, c, _, f in rows if m == 0 and c == cpu), base)
        alone8 = served_of(folders, runs, way="int8-c0")
        body.append([str(n), cpu, seeds_cell(alone), cell(own, each=False), cell(alone, each=False),
                     versus(alone, own), versus(alone, without) if without else "–",
                     cell(alone8, each=False) if alone8 else "–", versus(alone8, base8) if alone8 and base8 else "–"])
    if not body:
        raise MissingRecord("results/context/c*_s*/torch-c0.json: record missing")
    return table(["trained with --context N", "machine", "seeds", "test F1, read with N", "read alone (--context 0)",
                  "alone − with N, paired", "alone − the N = 0 model, same seed", "int8, read alone",
                  "int8 alone − the N = 0 model in int8"], body)


# each machine's pair of teachers of seed 0: (machine, today's teacher's runs on it, 3 seeds, the students of today's
# teacher of seed 0, those of the context teacher, N = 64, seed 0); a teacher's weights do not leave its machine
CONTEXT_TEACHERS = [("AMD EPYC", DEFAULT_RUNS, "results/students/L2-H384-teacher-s0",
                     "results/students/L2-H384-teacher-ctx64"),
                    ("Intel Xeon", "results/context/xeon/c0_s{s}", "results/students/L2-H384-xeon-teacher-s0",
                     "results/students/L2-H384-xeon-teacher-ctx64")]


@renders("context_students")
def context_students():
    """The same sentence student (students.py run) taught by today's teacher and by the context teacher, one machine
    at a time: each row either folder has runs of, test F1 in fp32 and int8, the context teacher's students paired
    with today's seed by seed, and how far the int8 student is behind today's teacher (its 3 seeds on that machine).
    Fills as runs finish; a machine none of whose students has finished has no rows."""
    body = []
    for machine, teacher_runs, *folders in CONTEXT_TEACHERS:
        base, ctx = (dict((name, (row, pattern, runs)) for row, _, name, pattern, runs in student_runs(folder))
                     for folder in folders)
        if not base and not ctx:
            continue
        teacher = mean_std(f1s(seeds_of(teacher_runs)).values())[0]
        for name in [n for _, _, n in STUDENT_ROWS if n in base or n in ctx]:
            cells, int8s = [], []  # int8s: {seed: int8 test F1} of today's teacher's students, then the context one's
            for runs_of in (base, ctx):
                if name not in runs_of:
                    cells += ["–", "–"]
                    int8s.append({})
                    continue
                _, pattern, runs = runs_of[name]
                int8 = served_of(pattern, runs)
                cells += [f"{cell(f1s(runs), each=False)} ({seeds_cell(runs)})",
                          cell(int8, each=False) if int8 else "–"]
                int8s.append(int8)
            i8_base, i8_ctx = int8s
            row = (base.get(name) or ctx.get(name))[0]
            body.append([row, machine, *cells, versus(i8_ctx, i8_base) if set(i8_ctx) & set(i8_base) else "–",
                         f"{teacher:.2f}",
                         *(f"{teacher - mean_std(i8.values())[0]:.2f}" if i8 else "–" for i8 in (i8_base, i8_ctx))])
    return table(["row", "machine", "today's teacher (seed 0): test F1 (seeds)", "int8",
                  "the context teacher (N = 64, seed 0): test F1 (seeds)", "int8",
                  "int8, context teacher − today's, paired", "today's teacher, 3 seeds, same machine",
                  "int8 behind it: taught by today's", "by the context teacher"], body)


# ---------------------------------------------------------------------------------------------
# Served (students.py score: a finished run's F1 in each runtime and precision it may be served in)

SERVED_MODELS = [("teacher MiniLM-L6-H384, `python train.py --seed S`", "results/training/default/s{s}"),
                 ("student `L2-H384` (`d_hidden`), taught by that teacher's seed 0 ([context.md](context.md))",
                  "results/students/L2-H384-teacher-s0/d_hidden_bottom_match-bottom_s{s}")]


@renders("served_f1")
def served_f1():
    body = []
    for what, pattern in SERVED_MODELS:
        runs = seeds_of(pattern)
        own = f1s(runs)
        cells = []
        for way in ("int8", "onnx", "onnx-int8"):
            got = served_of(pattern, runs, way=way, required=True)
            cells.append(f"{cell(got, each=False)} ({versus(got, own)})")
        body.append([what, seeds_cell(runs), cell(own, each=False), *cells])
    return table(["model", "seeds", "ours, bf16 (as train.py scores it)", "ours, int8", "ONNX Runtime, fp32",
                  "ONNX Runtime, int8"], body)


def versus_rows(v, way):
    """eval.py --versus's counts of one way ("gained", "lost") as {what the other did: {type: n}}."""
    out = {}
    for key, n in v[way].items():
        etype, how = key.split(", ", 1)
        what = "another type" if how.startswith("typed") else "another span" if how == "span" else "nothing"
        out.setdefault(what, {}).setdefault(etype, 0)
        out[what][etype] += n
    return out


@renders("context_fixes")
def context_fixes():
    v = record("results/context/versus_s0.json")
    types = ("PER", "ORG", "LOC", "MISC")
    body = []
    for way, say in (("gained", "right with context, not without: without, the model gave"),
                     ("lost", "right without context, not with: with, the model gave")):
        for what, counts in sorted(versus_rows(v, way).items()):
            body.append([say, what, *(str(counts.get(t, 0)) for t in types), str(sum(counts.values()))])
    w = v["wrong entities"]
    body.append(["wrong entities predicted by one model alone", "", "", "", "", "",
                 f"{w['pred only']} with context, {w['other only']} without"])
    return table(["gold entities", "", *types, "all"], body)


@renders("context_examples")
def context_examples():
    v = record("results/context/versus_s0.json")

    def short(text, n=150):
        return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + " …"
    return table(["", "gold entity", "type", "the other model gave", "the sentence"],
                 [[say, x["entity"], x["gold"], x["instead"], short(x["sentence"])]
                  for way, say in (("gained", "right with context"), ("lost", "right without context"))
                  for x in v["examples"][way]])
