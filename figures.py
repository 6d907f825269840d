"""The figures of the results pages, drawn from recorded results only: what the experiment scripts wrote under
results/ (results.json of a grid or an ablation, train.py's metrics.json of a committed run) and nothing else.
A figure whose records are missing is skipped with a line that says which records it needs.

    python figures.py                      # PNG files into results/figures/; needs matplotlib

- schedules.png: the blending schedules p(t) of mix.py, at their default parameters (always drawn);
- regimens_<grid>.png: test F1 of every regimen, mean ± std over seeds, side by side per D file, from each
  results/regimens/<grid>/results.json (regimens.py write_results);
- students.png: a student's test F1 against its inference speed, from results/students/<student>/results.json
  (students.py write_results) and the bench.py --out JSON its --speed named (or --bench);
- learning_<experiment>_<grid>.png: dev score by step of every committed run (a train.py metrics.json with a
  "history" of two evaluations or more) under results/<experiment>/<grid>/;
- confidence.png: the coverage-quality curve (span F1 of the LLM labels kept against the share kept, sentence by
  sentence and entity by entity) and the calibration of each results/confidence/*.report.json (annotate.py
  --confidence on sentences with gold).
"""
import glob
import itertools
import json
import os
from dataclasses import dataclass

import mix
from cli import opt, parse_config, run_main
from runs import mean_std, read_json


@dataclass
class Config:
    results: str = opt("results", "the folder of the committed records")
    out_dir: str = opt("results/figures", "where the PNG files go")
    bench: str = opt("", "a bench.py --out JSON for students.png; default: the one each students run's --speed named")


def read(path):
    """A committed record (runs.read_json, the one reader of JSON records); a missing one is a bug here: the callers
    glob for what exists."""
    data = read_json(path)
    if data is None:
        raise FileNotFoundError(path)
    return data


def regimens(plt, cfg):
    """Test F1 (%) by regimen, mean ± std over seeds, side by side per D file: one figure per regimens.py grid."""
    drawn = []
    for path in sorted(glob.glob(os.path.join(cfg.results, "regimens", "*", "results.json"))):
        r, grid = read(path), os.path.basename(os.path.dirname(path))
        names, width = [d["name"] for d in r["d_files"]], 0.8 / max(1, len(r["d_files"]))
        fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(r["regimens"]), 4))
        for i, d in enumerate(names):
            stats = [r["summary"][d].get(g, {}) for g in r["regimens"]]
            mean = [100 * s["mean"] if s.get("mean") is not None else float("nan") for s in stats]
            std = [100 * (s.get("std") or 0) for s in stats]
            ax.errorbar([x + i * width for x in range(len(stats))], mean, yerr=std, fmt="o", capsize=3, label=d)
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(r["regimens"]))])
        ax.set_xticklabels(r["regimens"], rotation=30, ha="right", fontsize=8)
        ax.set(ylabel="test span F1 (%), mean ± std over seeds", title=f"{grid}: {r['command'][:70]}")
        ax.title.set_fontsize(7)
        ax.legend(fontsize=8)
        drawn.append(save(plt, fig, os.path.join(cfg.out_dir, f"regimens_{grid}.png")))
    return drawn or ["regimens: skipped, no results/regimens/*/results.json yet (regimens.py writes it)"]


def student_rows(results, bench=""):
    """What students.png draws: (folder, its results.json, the medians of its bench.py JSON, [(row, stats)]) for every
    ablation folder with a bench.py JSON, each row once: a row whose runs one folder copied from another (a_gold and
    b_soft, whose settings a folder of other transfer epochs shares) has the same test F1 by seed. And a line for each
    folder left out."""
    kept, lines, seen = [], [], set()
    for path in sorted(glob.glob(os.path.join(results, "students", "*", "results.json")), key=os.path.dirname):
        r = read(path)
        speed = bench or r["config"].get("speed") or ""
        if not os.path.exists(speed):
            lines.append(f"students: {path} left out, no bench.py --out JSON ({speed or 'run without --speed'})")
            continue
        rows = []
        for row, stats in r["rows"].items():
            same = (r["config"]["student"], row, json.dumps(stats["test_by_seed"], sort_keys=True))
            if same not in seen:
                seen.add(same)
                rows.append((row, stats))
        kept.append((os.path.basename(os.path.dirname(path)), r, read(speed)["median"], rows))
    return kept, lines


def students(plt, cfg):
    """Each student's rows (test F1, mean ± std) at the student's inference speed, in int8 too where measured, and the
    teacher where recorded, with the goal's corner drawn dotted: 3x the teacher's speed, 2 F1 below it."""
    kept, lines = student_rows(cfg.results, cfg.bench)
    if not kept:
        return lines + ["students: skipped, no results/students/*/results.json with a bench.py JSON yet"]
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = itertools.cycle(f"C{i}" for i in range(10))
    teacher_drawn = False
    for folder, r, speed, rows in kept:
        for row, stats in rows:
            color = next(colors)
            ax.errorbar(speed["student"]["infer_tok_s"], stats["mean"], yerr=stats["std"] or 0, fmt="o", capsize=3,
                        color=color, label=f"{folder} {row}")
            if "int8_test_by_seed" in stats and "student-int8" in speed:  # students.py --int8 1, bench.py student-int8
                mean, std = mean_std(stats["int8_test_by_seed"].values())
                ax.errorbar(speed["student-int8"]["infer_tok_s"], mean, yerr=std or 0, fmt="s", mfc="none", capsize=3,
                            color=color, label=f"{folder} {row}, int8")
        teacher = os.path.join(os.path.dirname(os.path.normpath(r["config"]["teacher"])), "metrics.json")
        if os.path.exists(teacher) and not teacher_drawn:
            teacher_drawn = True
            f1, tok_s = 100 * read(teacher)["test"]["f1"], speed["ours"]["infer_tok_s"]
            ax.plot(tok_s, f1, "k*", markersize=12, label="teacher")
            ax.axvline(3 * tok_s, color="grey", ls=":", lw=1)  # the goal: at least 3x as fast, within 2 F1
            ax.axhline(f1 - 2, color="grey", ls=":", lw=1)
    ax.set(xscale="log", xlabel="inference tokens/s (bench.py, one run)", ylabel="test span F1 (%)")
    ax.legend(fontsize=7)
    return lines + [save(plt, fig, os.path.join(cfg.out_dir, "students.png"))]


def learning_curves(plt, cfg):
    """Dev score by step of every committed run, one figure per experiment folder (results/regimens/bbc_total)."""
    groups = {}
    for path in sorted(glob.glob(os.path.join(cfg.results, "**", "metrics.json"), recursive=True)):
        history = read(path).get("history") or []
        if len(history) > 1:  # a run scored once has no curve
            rel = os.path.relpath(os.path.dirname(path), cfg.results).split(os.sep)
            groups.setdefault("/".join(rel[:2]), []).append(("/".join(rel[2:]) or rel[-1], history))
    drawn = []
    for folder, runs in groups.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, history in runs:
            key = "dev_f1" if "dev_f1" in history[0] else "dev_accuracy"
            ax.plot([h["step"] for h in history], [100 * h[key] for h in history], marker=".", label=name)
        ax.set(xlabel="step", ylabel=f"dev {key[4:]} (%)", title=f"results/{folder}: {len(runs)} runs")
        if len(runs) <= 12:  # a legend of a whole grid would hide the curves
            ax.legend(fontsize=6)
        drawn.append(save(plt, fig, os.path.join(cfg.out_dir, f"learning_{folder.replace('/', '_')}.png")))
    return drawn or ["learning curves: skipped, no committed metrics.json with a history under results/ yet"]


def confidence_reports(results):
    """(path, its "confidence" record) of each results/confidence/*.report.json with a curve, each curve once: the
    filtered D files of one labelling carry its curve too, and it is named after the unfiltered one."""
    paths = glob.glob(os.path.join(results, "confidence", "*.report.json"))
    reports = [(p, read(p).get("confidence", {})) for p in paths]
    reports = [(p, c) for p, c in reports if "curve" in c]
    reports.sort(key=lambda pc: (pc[1].get("min_confidence", 0) > 0, pc[0]))  # unfiltered first, then by name
    seen, unique = set(), []
    for p, c in reports:
        curve = json.dumps(c["curve"])
        if curve not in seen:
            seen.add(curve)
            unique.append((p, c))
    return unique


def confidence(plt, cfg):
    """Left: span F1 of what each filter keeps against the share it keeps, as the threshold rises. Right: the share of
    entities right against their confidence, band by band (on the diagonal, a confidence of 0.9 is right 90 % of the
    time)."""
    reports = confidence_reports(cfg.results)
    if not reports:
        return ["confidence: skipped, no results/confidence/*.report.json with a curve yet (annotate.py --confidence)"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for path, c in reports:
        name = os.path.basename(path).removesuffix(".report.json")
        for kind, kept, style in (("sentence", "sentences_kept", "o-"), ("entity", "entities_kept", "s--")):
            rows = [r for r in c["curve"] if r[f"{kind}_f1"] is not None]  # None: the threshold kept nothing
            left.plot([100 * r[kept] for r in rows], [100 * r[f"{kind}_f1"] for r in rows], style,
                      label=f"{name}: {kind} filter")
        bands = [b for b in c["calibration"] if b["entities"]]
        right.plot([b["mean_confidence"] for b in bands], [b["precision"] for b in bands], "o-", label=name)
    left.set(xlabel="share kept (%)", ylabel="span F1 of the kept labels (%)", title="coverage against quality")
    right.plot([0, 1], [0, 1], "k:", linewidth=1)
    right.set(xlabel="confidence (mean of the band)", ylabel="share of entities right", title="calibration")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    return [save(plt, fig, os.path.join(cfg.out_dir, "confidence.png"))]


def save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"wrote {path}"


def main(argv=None):
    cfg = parse_config(Config, argv, description=__doc__.split("\n\n")[0])
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: figures.py needs matplotlib (not installed): pip install matplotlib") from None
    os.makedirs(cfg.out_dir, exist_ok=True)
    mix.plot([mix.get_schedule(name) for name in mix.SCHEDULES], os.path.join(cfg.out_dir, "schedules.png"))
    for line in regimens(plt, cfg) + students(plt, cfg) + learning_curves(plt, cfg) + confidence(plt, cfg):
        print(line)
    return 0


if __name__ == "__main__":
    run_main(main)
