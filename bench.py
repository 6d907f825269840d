"""
Training and inference speed of our BERT against Hugging Face's, in one run, on the same machine.

    python bench.py                      # about 10 minutes on 2 CPU cores
    python bench.py --steps 10 --rounds 1 --configs ours,hf-default   # a quick look

Both sides train on the same CoNLL-2003 sentences (same word pieces, first-piece labels), from the
same MiniLM-L6-H384 weights, with the same batch size and thread count. Each configuration runs in
its own process (so peak memory is its own), round after round in turn (so a noisy neighbour hurts
all alike); the median round counts. Configurations:
- hf-default: transformers' BertForTokenClassification, random batches, fp32, torch AdamW
  (what run_ner.py does);
- hf-best: the same with transformers' own LengthGroupedSampler (group_by_length) and bf16 autocast;
  its inference goes through the sentences sorted by length (Trainer.predict keeps file order);
- hf-tokens: transformers' model under our batching, training and inference (what the model alone is worth);
- ours: python train.py's defaults: length-homogeneous batches, bf16 autocast, fused attention
  and fused AdamW; inference as train.py evaluates and predict.py predicts (predict.inference):
  sorted batches of at most --eval_tokens padded word pieces, the Linear weights cast to bf16 once;
- ours-fp32-random: our model under hf-default's conditions (the model alone, no speed work);
- ours-compiled (only when named in --configs): ours under torch.compile(dynamic=True), as
  train.py --compile 1; its start-up shows in the "first step s" column (the compile happens there);
- student (with --student L<n>-H<h>): ours with the smaller student model.py's make_student builds
  (train.py --student), to set its speed against the teacher's (ours) in one run;
- student-teacher, student-teacher-ctx (only when named): the student trained beside a frozen teacher (the MiniLM),
  its hidden states and attention learning the teacher's, as train.py --teacher does (train.forward_backward, the
  bottom layers matched): the teacher reads the student's windows, or with -ctx each sentence with
  --teacher_context N pieces of its document while the student reads it alone (train.py --teacher_context). Tokens
  are the student's; the teacher's context is the work it costs. Inference is the student's own;
- student-teacher-ctx-cached (only when named): the same with the teacher's targets of every sentence on file first
  (train.py --cache_teacher 1), so each timed step reads them back: the epochs after the first;
- ours-int8, student-int8 (only when named in --configs): inference with every Linear layer's weights in int8, a
  scale per row, quantized dynamically by PyTorch's own tooling (predict.py --int8); no training (a quantized model
  does not train);
- ours-fp32, student-fp32 (only when named): ours in fp32, inference only: the precision ONNX Runtime runs in;
- ort, ort-int8, student-ort, student-ort-int8 (only when named; pip install onnx onnxruntime): the same model
  exported to ONNX and run by ONNX Runtime, fp32 and int8 (predict.py --runtime onnx [--int8 1], serve.py), in the
  same batches as ours; inference only. What people deploy a BERT on a CPU with, so the anchor for ours.
bf16 means bf16 autocast where the hardware computes it natively (AVX-512 BF16, AMX, a recent GPU), fp32
elsewhere, for HF's configurations as for ours: on a CPU that only emulates bf16 it is many times slower.
Speed counts real (non-padding) word pieces per second; with --context the context pieces count (they are
work), and "inference words/s" counts the words labelled, the output. The ratio lines set a configuration against
another: the ratio of the medians, and for a student, int8 and ONNX Runtime also the median and range of each round's
own ratio. The last two lines are the ratios of ours to each HF, for inference and for training.

    python bench.py --configs ours --student L2-H192     # student against teacher
    python bench.py --configs ours,student,student-int8 --student L2-H384 --out runs/speed.json   # and as JSON:
        # {"command", "threads", "median": {config: {"train_tok_s", "infer_tok_s", "infer_words_s", "fill",
        #  "peak_rss_mb", "first_step_s"}}, "rounds": {config: [one such dict per round]}, "record": runs.provenance}
    python bench.py --configs ours,ours-fp32,ours-int8,ort,ort-int8,student,student-fp32,student-int8,student-ort,\
student-ort-int8 --student L2-H384 --rounds 3 --steps 5 --out runs/serving.json   # every runtime, teacher and student
    python bench.py --report runs/speed.json             # its ratio lines again, from the JSON
    python bench.py --configs ours --context 64          # each sentence read in its document (predict.py --context)
    python bench.py --configs student,student-teacher,student-teacher-ctx,student-teacher-ctx-cached \
        --student L2-H384 --teacher_context 64
        # what a teacher beside the student costs its training, reading the sentence or its document, or read back
    python bench.py --profile                            # where inference time goes, ours and HF's
    python bench.py --profile --student L2-H384          # and the student's, in fp32 and in int8
"""
import argparse
import atexit
import contextlib
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cli import at_least, opt, parse_config, run_main
from runs import read_json, round_ratios, table

ONNX_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench-onnx-{os.getuid()}")  # the exports, reused

CONFIGS = {  # name: (implementation, batching, bf16)
    "hf-default": ("hf", "random", False),
    "hf-best": ("hf", "hf-grouped", True),
    "hf-tokens": ("hf", "ours-grouped", True),  # HF's model under our batching: what the model alone is worth
    "ours": ("ours", "ours-grouped", True),
    "ours-fp32-random": ("ours", "random", False),
    "ours-compiled": ("ours-compiled", "ours-grouped", True),  # not run unless asked for: --configs ours,ours-compiled
    "student": ("ours-student", "ours-grouped", True),  # added by --student SPEC
    "ours-int8": ("ours-int8", "ours-grouped", False),  # inference only, not run unless asked for
    "student-int8": ("ours-student-int8", "ours-grouped", False),
    "student-teacher": ("ours-student-teacher", "ours-grouped", True),  # not run unless asked for: the teacher beside
    "student-teacher-ctx": ("ours-student-teacher-ctx", "ours-grouped", True),  # reading documents
    "student-teacher-ctx-cached": ("ours-student-teacher-ctx-cached", "ours-grouped", True),  # its targets on file
    "ours-fp32": ("ours-fp32", "ours-grouped", False),  # inference only: ours in fp32, the precision ORT runs in
    "student-fp32": ("ours-student-fp32", "ours-grouped", False),
    "ort": ("ort", "ours-grouped", False),  # ONNX Runtime (predict.py --runtime onnx), inference only
    "ort-int8": ("ort-int8", "ours-grouped", False),
    "student-ort": ("ort-student", "ours-grouped", False),
    "student-ort-int8": ("ort-student-int8", "ours-grouped", False),
}
INFERENCE_ONLY = ("int8", "fp32")  # an impl ending so, or ONNX Runtime's, does not train
# the ratio lines of students, int8 and ONNX Runtime: (configuration, what it is set against)
RATIOS = (("student", "ours"), ("ours-int8", "ours"), ("student-int8", "student"), ("student-int8", "ours"),
          ("ours-fp32", "ort"), ("ours", "ort"), ("ours-int8", "ort-int8"), ("student-fp32", "student-ort"),
          ("student", "student-ort"), ("student-int8", "student-ort-int8"), ("student-ort", "ours"),
          ("student-ort-int8", "ours"), ("student-teacher", "student"), ("student-teacher-ctx", "student-teacher"),
          ("student-teacher-ctx-cached", "student-teacher-ctx"), ("student-teacher-ctx-cached", "student"))
DEFAULT_CONFIGS = ("hf-default", "hf-best", "hf-tokens", "ours", "ours-fp32-random")


def matmul_peak(dtype, n=2048, k=1024, m=1024, reps=20):
    """GFLOP/s of a plain matrix multiply: the ceiling any training step works under."""
    a, b = torch.randn(n, k, dtype=dtype), torch.randn(k, m, dtype=dtype)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n * k * m * reps / (time.perf_counter() - t0) / 1e9


def load_examples(n_sentences, seed, data_dir, split="train", context=0):
    """The seeded sample of a CoNLL split as examples (numbered by their place in the file); with context, each
    sentence read in its document (the sample's sentences take their context from every sentence of the file)."""
    from data import labels_from, read_conll, sample_indices
    from model import default_model_dir, load_tokenizer
    from predict import encode
    sents, docs = read_conll(os.path.join(data_dir, f"{split}.txt"), docs=True)
    chosen = sample_indices(len(sents), n_sentences, seed)
    labels = labels_from([sents[i] for i in chosen])
    label2id, tokenizer = {l: i for i, l in enumerate(labels)}, load_tokenizer(default_model_dir())
    return encode(sents, tokenizer, label2id, 128, context=context, docs=docs, scored=chosen), labels


def batches(examples, batching, batch_size, n, seed):
    """n batches of example indices, batched the way each configuration does it."""
    g = torch.Generator().manual_seed(seed)
    lengths = [len(e["ids"]) for e in examples]
    if batching == "random":
        order = torch.cat([torch.randperm(len(examples), generator=g)
                           for _ in range(1 + n * batch_size // len(examples))])
    elif batching == "hf-grouped":
        from transformers.trainer_pt_utils import LengthGroupedSampler
        order = []
        while len(order) < n * batch_size:
            order += list(LengthGroupedSampler(batch_size, lengths=lengths, generator=g))
    else:
        from mix import Stream
        order = Stream(lengths, batch_size, g).take(n * batch_size)
    order = [int(i) for i in order]
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(n)]


def build(impl, labels, student=""):
    from model import default_model_dir
    from serve import quantize_int8, serving_model
    from student import make_student
    if impl == "hf":
        from transformers import BertForTokenClassification
        model = BertForTokenClassification.from_pretrained(default_model_dir(), num_labels=len(labels))
        return (model, torch.optim.AdamW(model.parameters(), lr=1e-4),
                lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits)
    from model import from_pretrained
    from train import Config, make_optimizer
    model = from_pretrained(default_model_dir(), id2label=dict(enumerate(labels)), verbose=False)
    if "student" in impl:  # as train.py --student does
        model = make_student(model, student)
    if impl.startswith("ort"):  # as predict.py --runtime onnx does: the export written beside the weights
        from model import save_pretrained
        folder = os.path.join(ONNX_DIR, impl.removesuffix("-int8"))
        save_pretrained(model, folder, tokenizer_dir=default_model_dir())
        model = serving_model(model, folder, "onnx", int8=impl.endswith("int8"))
    elif impl.endswith("int8"):  # as predict.py --int8 does
        model = quantize_int8(model)
    if impl.endswith(INFERENCE_ONLY) or impl.startswith("ort"):
        return model, None, lambda ids, mask: model(ids, mask)[0]
    optimizer = make_optimizer(model, Config())
    if impl == "ours-compiled":  # as train.py --compile 1 does
        model = torch.compile(model, dynamic=True)
    return model, optimizer, lambda ids, mask: model(ids, mask)[0]


@contextlib.contextmanager
def inference_hf(model, bf16):
    from predict import bf16_supported
    model.eval()
    with torch.inference_mode(), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and bf16_supported(torch.device("cpu"))):
        yield


def infer(name, model, forward, examples, args):
    """Every sentence once, batched as configuration `name` does it; returns the real word pieces seen (context
    included: it is work) and the words labelled (the output).
    HF as its Trainer.predict does (file order, fixed batches; hf-best sorted by length); ours, hf-tokens
    and the student as train.py evaluates and predict.py predicts (predict.inference, predict.sorted_batches)."""
    from predict import collate, inference, sorted_batches
    impl, batching, bf16 = CONFIGS[name]
    if batching == "ours-grouped":
        infer_batches = sorted_batches(examples, args.eval_batch_size, args.eval_tokens)
    else:
        order = (sorted(range(len(examples)), key=lambda j: len(examples[j]["ids"])) if bf16
                 else list(range(len(examples))))
        infer_batches = [order[b:b + args.eval_batch_size] for b in range(0, len(order), args.eval_batch_size)]
    tokens = 0
    with inference_hf(model, bf16) if impl == "hf" else inference(model, torch.device("cpu"), bf16):
        for idx in infer_batches:
            ids, mask, _ = collate([examples[j] for j in idx], "cpu")
            forward(ids, mask)
            tokens += int(mask.sum())
    return tokens, sum(len(e["starts"]) for e in examples)


def step_beside(teacher, cfg, batch, bf16):
    """A student's training step with its teacher beside it, train.py's own (forward_backward): the labels, hidden
    and attention terms; the gradients are left on the student and its map W (teacher.student)."""
    from checkpoint import RunState
    from train import forward_backward
    forward_backward(teacher.student, teacher, batch, cfg, RunState(best_dev={}), 0, 1, torch.device("cpu"),
                     teacher.student.student.config.num_labels, bf16)


def beside_teacher(impl, student, examples, args, bf16):
    """(the Teacher, its train.py Config, the examples, the optimizer of the student and its map W) of a
    student-teacher configuration: the teacher is the pretrained MiniLM, matched with the student's bottom layers;
    with -ctx it reads each sentence with --teacher_context pieces of its document (distill.teacher_views), the
    student the sentence alone."""
    from distill import Teacher, teacher_views
    from model import default_model_dir
    from predict import autocast, collate
    from train import Config, make_optimizer
    context = args.teacher_context if "-ctx" in impl else 0
    cached = impl.endswith("-cached")
    cfg = Config(teacher=default_model_dir(), teacher_context=context or args.context, context=args.context,
                 cache_teacher=int(cached), out_dir=tempfile.mkdtemp(prefix="bench-cache-"))
    teacher = Teacher(cfg, student, torch.device("cpu"), verbose=False)
    if context:
        examples = teacher_views(examples, load_examples(args.sentences, args.seed, args.data_dir, args.split,
                                                         context)[0])
    if cached:  # every sentence's targets on file, as after the first epoch; the file goes when the process ends
        atexit.register(shutil.rmtree, cfg.out_dir, ignore_errors=True)
        for i in range(0, len(examples), args.batch_size):
            chunk = examples[i:i + args.batch_size]
            ids, mask, _ = collate(chunk, "cpu")
            with autocast(torch.device("cpu"), bf16):
                teacher.targets(chunk, ids, mask)
    return teacher, cfg, examples, make_optimizer(teacher.student, Config())


def run_one(name, args):
    """One configuration in this process: training steps, then inference over the same sentences."""
    from predict import autocast, collate
    impl, batching, bf16 = CONFIGS[name]
    torch.manual_seed(0)
    examples, labels = load_examples(args.sentences, args.seed, args.data_dir, args.split, args.context)
    model, opt, forward = build(impl, labels, args.student)
    teacher, cfg = None, None
    if "teacher" in impl:
        teacher, cfg, examples, opt = beside_teacher(impl, model, examples, args, bf16)
    model.train()
    tokens, padded, seconds, first_step = 0, 0, 0.0, None
    steps = 0 if opt is None else args.warmup + args.steps  # int8, fp32 and ONNX Runtime only infer
    for i, idx in enumerate(batches(examples, batching, args.batch_size, steps, args.seed)):
        t0 = time.perf_counter()
        ids, mask, lab = collate([examples[j] for j in idx], "cpu")
        if teacher:
            step_beside(teacher, cfg, [examples[j] for j in idx], bf16)
        else:
            with autocast(torch.device("cpu"), bf16):
                logits = forward(ids, mask)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), lab.flatten(), ignore_index=-100)
            loss.backward()
        torch.nn.utils.clip_grad_norm_((teacher.student if teacher else model).parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i == 0:
            first_step = time.perf_counter() - t0
        if i >= args.warmup:
            seconds += time.perf_counter() - t0
            tokens += int(mask.sum())
            padded += mask.numel()
    t0 = time.perf_counter()
    inf_tokens, words = infer(name, model, forward, examples, args)
    inf_seconds = time.perf_counter() - t0
    return {"name": name, "train_tok_s": tokens / seconds if seconds else None,
            "fill": tokens / padded if padded else None, "infer_tok_s": inf_tokens / inf_seconds,
            "infer_words_s": words / inf_seconds,
            "first_step_s": first_step, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def profile_inference(args):
    """One inference pass of ours (bf16 and fp32), hf-best, hf-tokens and ONNX Runtime fp32 (and with --student, of the
    student in bf16, fp32 and int8 and in ONNX Runtime) in this one process, under torch.profiler: the wall time of
    each and the share of CPU time of its top operators (ONNX Runtime's run outside PyTorch: its wall time alone)."""
    from torch.profiler import ProfilerActivity, profile
    examples, labels = load_examples(args.sentences, args.seed, args.data_dir, args.split, args.context)
    names = ("ours", "ours-fp32", "hf-best", "hf-tokens", "ort") + (
        ("student", "student-fp32", "student-int8", "student-ort") if args.student else ())
    models = {impl: build(impl, labels, args.student)  # (model, optimizer, forward)
              for impl in dict.fromkeys(CONFIGS[n][0] for n in names)}

    def run(name):
        model, _, forward = models[CONFIGS[name][0]]
        infer(name, model, forward, examples, args)
    for name in names:
        run(name)  # warm up
    for name in names:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            run(name)
            seconds = time.perf_counter() - t0
        ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in ops) or 1
        print(f"{name:<12} {seconds:5.2f} s: "
              + ", ".join(f"{e.key.removeprefix('aten::')} {100 * e.self_cpu_time_total / total:.0f} %"
                          for e in ops[:7]))


@dataclass
class Config:
    configs: str = opt(",".join(DEFAULT_CONFIGS), "comma-separated, from: " + ", ".join(CONFIGS))
    steps: int = opt(40, "timed training steps per round", type=at_least(1))
    warmup: int = opt(5, "untimed steps first", type=at_least(0))
    rounds: int = opt(3, "rounds of every configuration in turn; the median counts", type=at_least(1))
    batch_size: int = opt(32, "sentences per training step", type=at_least(1))
    eval_batch_size: int = opt(128, "sentences per inference batch (at most, for ours)", type=at_least(1))
    eval_tokens: int = opt(2048, "ours: at most this many padded word pieces per inference batch", type=at_least(1))
    sentences: int = opt(2000, "seeded sample of CoNLL-2003 train (or --split)", type=at_least(1))
    split: str = opt("train", "the CoNLL file the sample is drawn from", choices=["train", "valid", "test"])
    context: int = opt(0, "read each sentence with up to N word pieces of its document on each side (predict.py "
                          "--context); context pieces count in tokens/s (they are work), inference words/s counts "
                          "the output", type=at_least(0))
    seed: int = opt(0, "seed of the sample and of the random batches")
    threads: int = opt(torch.get_num_threads(), "torch threads of every configuration", type=at_least(1))
    data_dir: str = opt(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "conll2003"),
                        "a CoNLL folder with train.txt")
    student: str = opt("", "also run a student L<layers>-H<hidden> (model.py) against ours")
    teacher_context: int = opt(64, "student-teacher-ctx: the teacher reads each sentence with up to N word pieces of "
                                   "its document (train.py --teacher_context)", type=at_least(1))
    profile: bool = opt(False, "instead: one inference pass of ours, hf-best and hf-tokens (and --student's, fp32 "
                               "and int8) under torch.profiler, in one process: where the time goes")
    out: str = opt("", "also write the command, every round and the medians to this JSON file (students.py --speed)")
    report: str = opt("", "instead: the student, int8 and ONNX Runtime ratio lines of a JSON that --out wrote, "
                          "without running")
    one: str = opt("", argparse.SUPPRESS)  # internal: run one configuration and print JSON


def student_ratios(med, runs):
    """The ratio lines of students, int8 and ONNX Runtime against what they are set against (RATIOS): the ratio of the
    medians, and each round's own ratio too (the two ran back to back there, so a drift of the machine cancels)."""
    lines = []
    for n, base in RATIOS:
        if {n, base} <= set(med):
            st = med[n]
            train = (f"training {st['train_tok_s'] / med[base]['train_tok_s']:.2f}, "
                     if st["train_tok_s"] and med[base]["train_tok_s"] else "")
            by_round = round_ratios(runs, n, base)
            lines.append(f"ratio {n}/{base}: {train}inference {st['infer_tok_s'] / med[base]['infer_tok_s']:.2f} "
                         f"(by round: median {statistics.median(by_round):.2f}, {by_round[0]:.2f} to "
                         f"{by_round[-1]:.2f})")
    return lines


def report(path):
    """--report: the ratio lines of a JSON that --out wrote, again."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: --report {path}: no such file")
    saved = read_json(path)
    if not isinstance(saved, dict) or "rounds" not in saved:
        raise SystemExit(f"error: --report {path}: not a JSON that bench.py --out wrote")
    print("\n".join([f"command: {saved['command']}", *student_ratios(saved["median"], saved["rounds"])]))


def config_names(args):
    """The configurations to run, checked: each known, a student named where one runs, the data readable."""
    names = args.configs.split(",") + (["student"] if args.student and "student" not in args.configs.split(",") else [])
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"error: --configs: unknown {', '.join(map(repr, unknown))}; known: {', '.join(CONFIGS)}")
    if any(n.startswith("student") for n in names) and not args.student:
        raise SystemExit("error: --configs student needs --student L<layers>-H<hidden>, e.g. L2-H192")
    if any(n.startswith("student-teacher-ctx") for n in names) and args.context:
        raise SystemExit("error: --configs student-teacher-ctx: its student reads sentences alone; leave out --context")
    if any(CONFIGS[n][0].startswith("ort") for n in names):
        from serve import require_onnxruntime
        require_onnxruntime("--configs ort")
    from student import parse_student
    try:
        parse_student(args.student) if args.student else None
    except ValueError as e:
        raise SystemExit(f"error: --student: {e}")
    from data import read_conll
    read_conll(os.path.join(args.data_dir, f"{args.split}.txt"))  # a missing or malformed file stops here, in one line
    return names


def flops_per_token(names, student):
    """Forward + backward FLOP per token over the encoder's matrices, for each configuration (a student's own; None
    beside a teacher)."""
    from model import BertConfig
    from student import parse_student
    c = BertConfig()

    def flop(layers, hidden, inner):
        return 6 * layers * (4 * hidden ** 2 + 2 * hidden * inner)
    flops = {n: flop(c.num_hidden_layers, c.hidden_size, c.intermediate_size) for n in names}
    if student:
        layers, hidden = parse_student(student)
        for n in names:
            if n.startswith("student"):
                flops[n] = flop(layers, hidden, c.intermediate_size if hidden == c.hidden_size else 4 * hidden)
    return {n: None if "teacher" in n else f for n, f in flops.items()}  # the teacher's share is not counted


def run_rounds(names, args):
    """Every configuration in its own process, round after round in turn; {name: [its result per round]}."""
    runs = {n: [] for n in names}
    forwarded = [f"--{k}={getattr(args, k)}"
                 for k in ("steps", "warmup", "batch_size", "eval_batch_size", "eval_tokens", "sentences", "seed",
                           "threads", "data_dir", "student", "split", "context", "teacher_context")]
    for r in range(args.rounds):
        for n in names:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", n, *forwarded],
                                 capture_output=True, text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
            if out.returncode:
                sys.exit(f"{n} failed:\n{out.stderr[-3000:]}")
            runs[n].append(json.loads(out.stdout.strip().splitlines()[-1]))
            x = runs[n][-1]
            print(f"  round {r + 1} {n:<17} {x['train_tok_s'] or 0:7.0f} train tok/s "
                  f"{x['infer_tok_s']:7.0f} infer tok/s", flush=True)
    return runs


def medians(runs):
    def median(rs, k):
        xs = [x[k] for x in rs if x[k] is not None]
        return statistics.median(xs) if xs else None
    return {n: {k: median(rs, k) for k in ("train_tok_s", "fill", "infer_tok_s", "infer_words_s", "peak_rss_mb",
                                          "first_step_s")}
            for n, rs in runs.items()}


def print_table(med, flops, peak, native):
    rows = []
    for n, m in med.items():
        gflops = m["train_tok_s"] * flops[n] / 1e9 if m["train_tok_s"] and flops[n] else None
        fmt = lambda x, f: "–" if x is None else format(x, f)  # noqa: E731
        rows.append([n, fmt(m["train_tok_s"], ",.0f"), fmt(m["fill"] and 100 * m["fill"], ".0f"), fmt(gflops, ".0f"),
                     fmt(gflops and 100 * gflops / peak, ".0f"), fmt(m["infer_tok_s"], ",.0f"),
                     fmt(m["infer_words_s"], ",.0f"), fmt(m["peak_rss_mb"], ",.0f"), fmt(m["first_step_s"], ".1f")])
    print("\n" + table(["configuration", "train tokens/s", "padding fill %", "GFLOP/s",
                        f"% of {'bf16' if native else 'fp32'} peak", "inference tokens/s", "inference words/s",
                        "peak RSS MB",
                        "first step s"], rows), end="")


def print_ratios(med, runs, flops, peak):
    """The ratio lines: compiled against eager, students, int8 and ONNX Runtime, and ours against each HF."""
    if {"ours", "ours-compiled"} <= set(med):
        c = med["ours-compiled"]
        print(f"ratio ours-compiled/ours: training {c['train_tok_s'] / med['ours']['train_tok_s']:.2f}, "
              f"inference {c['infer_tok_s'] / med['ours']['infer_tok_s']:.2f}, first step {c['first_step_s']:.1f} s "
              f"against {med['ours']['first_step_s']:.1f} s")
    print("\n".join(student_ratios(med, runs)))
    if {"ours", "hf-default", "hf-best"} <= set(med):
        o = med["ours"]
        frac = o["train_tok_s"] * flops["ours"] / 1e9 / peak
        same = (f" ours/hf-tokens {o['infer_tok_s'] / med['hf-tokens']['infer_tok_s']:.2f} (same batches)"
                if "hf-tokens" in med else "")
        print(f"inference ratio ours/HF-default {o['infer_tok_s'] / med['hf-default']['infer_tok_s']:.2f} "
              f"ours/HF-best {o['infer_tok_s'] / med['hf-best']['infer_tok_s']:.2f}{same}")
        print(f"training ratio ours/HF-default {o['train_tok_s'] / med['hf-default']['train_tok_s']:.2f} "
              f"ours/HF-best {o['train_tok_s'] / med['hf-best']['train_tok_s']:.2f} "
              f"(ours at {100 * frac:.0f} % of the matmul peak)")


def main(argv=None):
    args = parse_config(Config, argv, description=__doc__.split("\n\n")[0])
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return
    if args.profile:
        return profile_inference(args)
    if args.report:
        return report(args.report)
    names = config_names(args)
    from predict import bf16_supported
    native = bf16_supported(torch.device("cpu"))
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size}, "
          f"{args.steps} timed steps x {args.rounds} rounds; "
          f"bf16 {'native' if native else 'not native here: every configuration runs in fp32'}")
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16) if native else None
    peak = peak16 or peak32  # the peak of the precision the bf16 configurations run in
    print(f"matmul peak: fp32 {peak32:.0f} GFLOP/s" + (f", bf16 {peak16:.0f} GFLOP/s" if peak16 else ""))
    flops = flops_per_token(names, args.student)
    runs = run_rounds(names, args)
    med = medians(runs)
    print_table(med, flops, peak, native)
    command = f"python bench.py {shlex.join(sys.argv[1:] if argv is None else argv)}".rstrip()
    print(f"\ncommand: {command}")
    if args.out:
        from data import atomic_write
        from runs import provenance
        record = {"command": command, "threads": args.threads, "median": med, "rounds": runs,
                  "record": provenance(command, precision="per configuration", threads=args.threads)}
        atomic_write(args.out, json.dumps(record, indent=1) + "\n")
    print_ratios(med, runs, flops, peak)


if __name__ == "__main__":
    run_main(main)
