"""
Generation-Distillation (Melas-Kyriazi, Han & Liang 2020): with few labelled examples, an LLM writes
new unlabelled in-domain text, a teacher fine-tuned on the labelled examples labels it softly, and a
much smaller student learns from those soft labels.

    python generate.py --task classify --input runs/bbc/train.jsonl --n 100 --form completion --out runs/gen/bbc.jsonl
    python generate.py --task ner --input data/conll2003/train.txt --n 300 --form completion --out runs/gen/ner.conll
    python gendist.py run --task classify --data_dir runs/bbc --per_class 8 --generated runs/gen/bbc.jsonl \\
        --out_dir runs/gendist/bbc_k8
    python gendist.py run --task ner --data_dir data/conll2003 --per_class 1000 --unlabelled data/bbc/bbc.jsonl \\
        --generated runs/gen/ner.conll --out_dir runs/gendist/ner    # the README adds the teacher and step flags

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
Each run is a stage of train.py's own (runs.run_stage) in OUT_DIR/<regimen>_s<S>; a run whose metrics.json
exists is not repeated, so the same command resumes. results.md (mean ± std over seeds, paired difference to
(a)) and results.json are written after every run; the command is above the table, with the parameter
counts of teacher and student (their speed: `python bench.py`).
"""
import functools
import json
import os
import sys
from dataclasses import asdict, dataclass

import generate
from cli import (DataError, above, at_least, command_line, int_list, opt, parse_command, run_main,
                 stop_in_one_line)
from data import atomic_write, read_conll, read_jsonl, sample_indices, write_conll, write_jsonl
from rawtext import split_sentences
from runs import claim, file_hash, finished, headline, paired, pm, run_stage, table, vs_base

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
    per_class: int = opt(8, "classify: labelled texts per class | ner: labelled training sentences", type=at_least(1),
                         aliases=("k",))
    unlabelled: str = opt("", "ner: a BBC JSONL whose sentences are U (classify: U is the rest of train.jsonl)")
    u_size: int = opt(2000, "ner: seeded sample of this many U sentences", type=at_least(1))
    generated: str = opt("", "G: generate.py's output; without it (d) and (e) wait, and the same command "
                             "with it adds them")
    seeds: list = opt(lambda: [0, 1, 2], "comma-separated seeds: of L's draw, the teacher and the student",
                      type=int_list)
    student: str = opt("L2-H192", "the student, L<layers>-H<hidden> (student.py)")
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
    return os.path.join(rc.data_dir, f"train_k{rc.per_class}_s{seed}.jsonl")


def labelled_set(rc, seed):
    """L for this seed: classify records, or ner sentences."""
    if rc.task == "classify":
        path = labelled_path(rc, seed)
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file "
                            f"(write it with python data.py split ... --per_class {rc.per_class} "
                            f"--subset_seeds {seed})")
        return read_jsonl(path)
    sents = read_conll(os.path.join(rc.data_dir, "train.txt"))
    return [sents[i] for i in sample_indices(len(sents), rc.per_class, seed)]


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
        raise DataError(f"{rc.generated}: no such file (write it with python generate.py)")
    if rc.task == "classify":
        return [{"text": r["text"]} for r in read_jsonl(rc.generated)]
    return read_conll(rc.generated, columns=True)


def teacher_labels(rc, model_dir, sets, folder):
    """The teacher's labels as training files in `folder`, for each of `sets` (name: data) whose files are not
    there yet: L -> L_hard (gold) and L_soft (gold, and the teacher's distribution); U -> U_soft; G -> G_soft
    and G_hard (the teacher's most probable label alone). Returns {file name: path}."""
    import torch
    from model import from_pretrained, load_tokenizer
    from predict import label_texts, label_tokens
    from serve import serving_model
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
    """out_dir holds the runs of one set of settings (runs.claim; a folder claimed before --k was named --per_class
    holds it as k), and of one G: without --generated the runs of (d) and (e) wait, the same command with it adds
    them, and another G is refused (its content hash is kept)."""
    # a folder from before --teacher_runtime existed holds torch's labels: it resumes under the default
    settings = {k: v for k, v in asdict(rc).items() if k not in FREE and (k, v) != ("teacher_runtime", "torch")}
    claim(rc.out_dir, settings, free=FREE, renamed={"k": "per_class"})
    if not rc.generated:
        return None
    digest = file_hash(rc.generated)
    claim(rc.out_dir, {"generated": digest}, name="generated.json")
    return digest


def check_inputs(rc):
    """G and L of every seed, read before anything trains (a missing file stops the run now, not after hours)."""
    generated = generated_set(rc) if rc.generated else None
    labelled_by_seed = {seed: labelled_set(rc, seed) for seed in rc.seeds}
    if rc.task == "ner" and not rc.unlabelled:
        raise DataError("--unlabelled: ner needs a BBC JSONL (data/bbc/bbc.jsonl) for U")
    for path in [rc.unlabelled] if rc.task == "ner" else [os.path.join(rc.data_dir, "train.jsonl")]:
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file")
    return generated, labelled_by_seed


def train_teacher(rc, seed, labelled, folder, teacher_dir):
    """The teacher of this seed, fine-tuned on L (a stage: skipped once finished); returns its metrics."""
    from train import train
    if rc.task == "classify":
        l_path = labelled_path(rc, seed)
    else:
        l_path = os.path.join(folder, "L.conll")
        if not finished(teacher_dir):
            os.makedirs(folder, exist_ok=True)
            write_conll(l_path, [list(zip(w, t)) for w, t in labelled])
    cfg = train_cfg(rc, train_file=l_path, epochs=rc.teacher_epochs, eval_every=rc.teacher_eval_every, seed=seed,
                    out_dir=teacher_dir)
    return run_stage(teacher_dir, functools.partial(train, cfg), command=command_line("train.py", cfg))


def student_files(rc, paths, generated, seed, folder):
    """{regimen: its training file}: the teacher's labels of L, U and G put together, each file written once."""
    ext = ".jsonl" if rc.task == "classify" else ".conll"
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
    return files


def pipeline(rc, command):
    """Teacher, its labels, and the student's regimens, seed by seed; without --generated, (d) and (e) wait."""
    from train import train
    generated, labelled_by_seed = check_inputs(rc)
    os.makedirs(rc.out_dir, exist_ok=True)
    claim_out_dir(rc)
    results, params = {}, None
    for seed in rc.seeds:
        labelled = labelled_by_seed[seed]
        folder = os.path.join(rc.out_dir, "data", f"s{seed}")
        teacher_dir = os.path.join(rc.out_dir, f"teacher_s{seed}")
        results[("teacher", seed)] = train_teacher(rc, seed, labelled, folder, teacher_dir)
        params = params or parameter_line(rc, os.path.join(teacher_dir, "model"))  # once: it loads the teacher
        sets = {"L": labelled, "U": unlabelled_set(rc, labelled, seed), **({"G": generated} if generated else {})}
        paths = teacher_labels(rc, os.path.join(teacher_dir, "model"), sets, folder)
        for name, path in student_files(rc, paths, generated, seed, folder).items():
            run_dir = os.path.join(rc.out_dir, f"{name}_s{seed}")
            teacher = dict(teacher=os.path.join(teacher_dir, "model"), hidden_weight=rc.hidden_weight) \
                if name == "f_L+U_soft_hidden" else {}
            cfg = train_cfg(rc, train_file=path, student=rc.student, lr=rc.student_lr, max_steps=rc.steps,
                            eval_every=rc.eval_every, seed=seed, out_dir=run_dir, **teacher)
            results[(name, seed)] = run_stage(run_dir, functools.partial(train, cfg),
                                              command=command_line("train.py", cfg))
            write_results(rc, command, rc.seeds, results, params)
    return write_results(rc, command, rc.seeds, results, params)


def parameter_line(rc, teacher_dir):
    """The parameter counts outside the embeddings of the teacher in teacher_dir and of its student."""
    from model import count_parameters, from_pretrained
    from student import make_student
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
    md = (f"# Generation-Distillation: {rc.task}, k = {rc.per_class}\n\n```\n{command}\n```\n\n{sizes}"
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
    name, cfg = parse_command({"generate": (generate.GenConfig, "an LLM writes new in-domain texts, filtered "
                                                                "(generate.py)"),
                               "run": (RunConfig, "the teacher, its labels and the student's regimens, seed by seed")},
                              argv, description=__doc__.split("\n\n")[0])
    if name == "generate":
        return generate.run(cfg)
    rows = pipeline(cfg, "python gendist.py " + " ".join(argv))
    print(open(os.path.join(cfg.out_dir, "results.md")).read())
    return 0 if rows else 1


if __name__ == "__main__":
    run_main(main)
