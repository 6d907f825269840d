"""
Fine-tune BERT for NER or text classification with one visible training loop, learning from hard
labels or from a teacher's soft labels, and score it with our span F1 or accuracy / macro-F1.

    python train.py                                   # the default run: NER on CoNLL-2003 in data/conll2003
    python train.py --max_steps 20 --out_dir out/smoke
    python train.py --original o.conll --distilled d.conll --strategy seq-d-o
    python train.py --task classify --data_dir runs/bbc   # train.jsonl, valid.jsonl, test.jsonl: {"text", "label"}
    python train.py --student L2-H192 --distilled soft.conll --strategy distilled   # a small student, soft labels
    python train.py --model_dir T --teacher T --student L2-H384 --student_layers spread   # and T's hidden states
    torchrun --nproc_per_node 2 train.py ...          # the same run on 2 processes (gloo on CPU, nccl on GPU)

Training data comes from one or two sources: original (human) labels O and distilled (LLM or
teacher) labels D. At every step each example of the batch is drawn from D with probability p(t),
t the training progress; `--strategy` picks p (mix.py): original (0), distilled (1), union (D's
share), seq-d-o (1 then 0, the paper's Simple Mix), seq-o-d, or any `--schedule`. Every strategy gets
the same step budget: epochs x ceil((|O| + |D|) / batch_size), so comparisons are fair.

What this file leaves to others, each with its docstring: soft labels (a `LABEL=p|...` column in CoNLL, a "probs"
object in JSONL: data.py) and the losses that learn from them, and with `--teacher` a frozen teacher's hidden states
and attention (distill.py); a smaller `--student L<layers>-H<hidden>` built from --model_dir (student.py); how the two
task kinds read, encode, score and write (kinds.py: NER decodes the most probable valid BIO sequence from each word's
first piece, with `--context N` reading neighbouring sentences of its document; classification the pooled [CLS],
a text longer than --max_len keeping its beginning);
resuming a killed run (checkpoint.py).

Writes into --out_dir:
- metrics.json: "dev" and "test" scores in eval.py's JSON shape (NER: f1, precision, recall, per type; classify:
  accuracy, macro_f1, per class precision / recall / f1 / support, the confusion matrix) of the best-dev checkpoint,
  "test_f1_argmax" (NER: the same weights decoded word by word), "best_step", "total_steps", "history" (one
  {"step", "loss", "dev_f1" or "dev_accuracy"} per evaluation), "train_seconds", "train_tokens_per_s",
  "wall_seconds" (of the last try), "checkpoint_seconds" and "checkpoints" (their cost), "resumed", "precision" (bf16
  or fp32), "record" (the command that gives this run, the code's commit, the machine: runs.provenance),
  "strategy", "schedule", "realised_d_share" (and per step), "world_size", with --teacher "teacher" (the
  layer map, the weights, the --teacher_context it read with) and "loss_terms" (each term's mean over the run),
  "config" (every flag) and "inputs" (the data files and a --teacher's weights by content hash). It is written last,
  atomically: a folder with metrics.json holds a finished run (runs.finished), and the same command run again gives it
  back instead of training it again.
- model/: a Hugging Face folder of the best dev checkpoint (transformers loads it with the same logits).
- test_predictions.conll (token gold predicted) or test_predictions.jsonl ({"text", "gold", "pred"}).
- while it trains, checkpoint/: the same command run again after a kill (even kill -9) or Ctrl-C resumes there and
  ends exactly where the run would have ended (--restart 1 starts over); deleted once metrics.json is written.
A loss that becomes NaN or infinite stops the run, naming the step.
"""
import json
import math
import os
import shutil
import time
from contextlib import closing, nullcontext
from dataclasses import asdict, dataclass, replace

import torch
import torch.distributed as dist
from tqdm import tqdm

from checkpoint import (CHECKPOINT, catch_sigint, finished_run, load_checkpoint, resume_or_start, run_inputs,
                        run_settings, save_checkpoint)
from cli import DataError, command_line, opt, parse_config, run_main
from data import atomic_write
from distill import (Teacher, check_teacher, flag_errors as distill_flag_errors, loss_sum, soft_targets,
                     teacher_reading)
from kinds import TASKS, data_files, load_data
from mix import SCHEDULES, STRATEGIES, MixSampler, step_budget, strategy_schedule
from model import check_model_dir, default_model_dir, from_pretrained, save_pretrained
from predict import BATCH_SIZE, MAX_TOKENS, autocast, bf16_supported, collate
from runs import provenance
from student import make_student, parse_student

@dataclass
class Config:
    # data
    task: str = opt("ner", "ner: a BIO tag per word (CoNLL files) | classify: a label per text (JSONL files)",
                    choices=["ner", "classify"])
    data_dir: str = opt("", "holds train, valid and test (.txt for ner, .jsonl for classify); "
                            "ner default: data/conll2003")
    train_file: str = opt("", "overrides data_dir/train.txt as the original (human) data")
    dev_share: float = opt(0.0, "where data_dir has no valid file: this seeded share of the training data is dev "
                                "(scored against those labels, an LLM's where they are); test is scored only where "
                                "data_dir has a test file")
    original: str = opt("", "same as --train_file")
    distilled: str = opt("", "LLM- or teacher-labelled data, hard or soft labels")
    text_field: str = opt("text", "classify: the JSONL field holding the text")
    label_field: str = opt("label", "classify: the JSONL field holding the label")
    labels: str = opt("", "comma-separated label set, in this order; default: read from the training data (a fixed set "
                          "lets a trained model go on training on data that lacks some labels, keeping its head)")
    strategy: str = opt("original", "how O and D are mixed (mix.py): O alone, D alone, shuffled together, D then O, "
                                    "O then D, or --schedule", choices=list(STRATEGIES))
    schedule: str = opt("", "with --strategy schedule: p(t), the share of D at training progress t",
                        choices=["", *SCHEDULES])
    schedule_args: str = opt("", "the schedule's parameters, e.g. k=10,t0=0.5 (python mix.py lists them)")
    # model
    model_dir: str = opt("", "any Hugging Face BERT folder; default: the MiniLM-L6-H384 weights")
    max_len: int = opt(128, "word pieces per window, [CLS] and [SEP] included; longer sentences are split")
    context: int = opt(0, "ner: read each sentence with up to N word pieces of its document's sentences before it and "
                          "N after it (-DOCSTART- lines; predict.py --context, with the same N, gives this run's "
                          "predictions); 0: each sentence alone")
    dropout: float = opt(-1.0, "-1 keeps the checkpoint's dropout")
    student: str = opt("", "L<layers>-H<hidden>: train a smaller BERT built from model_dir (student.py)")
    student_init: str = opt("pretrained", "pretrained: copied / projected from model_dir | random",
                            choices=["pretrained", "random"])
    student_layers: str = opt("bottom", "the teacher layer each student layer stands for: copied at the teacher's "
                              "width, matched with --teacher. bottom: 0..L-1 | spread: bottom, top and evenly between "
                              "(L2 of 6: 0,5) | a list, e.g. 1,5 (student.student_layers)")
    # distillation, where the data has soft labels
    kd_alpha: float = opt(0.0, "weight of the hard-label cross entropy; 1 - kd_alpha goes to the soft labels")
    kd_temperature: float = opt(2.0, "T of the KL term; the term is scaled by T^2")
    # intermediate distillation: a teacher run on every batch, its hidden states and attention as targets
    teacher: str = opt("", "a model folder run beside the student (same vocabulary): the student's hidden states and "
                           "last-layer attention learn the teacher's, student layer i from teacher layer m(i) "
                           "(--match_layers); the labels term stays cross entropy or --distilled soft labels")
    match_layers: str = opt("", "with --teacher: the teacher layer m(i) each student layer i is matched with: bottom | "
                            "spread | a list, e.g. 0,5 (student.student_layers); '': the --student_layers it was copied "
                            "from")
    hidden_weight: float = opt(1.0, "with --teacher: weight of the hidden-state MSE, a mean per word piece of "
                               "states of unit scale (LayerNorm): 1 puts it on a par with the cross entropy per word")
    attn_weight: float = opt(-1.0, "with --teacher: weight of the attention KL (nats per word piece, as the cross "
                             "entropy); -1: 1 where the student's last layer has the teacher's number of heads, else 0")
    teacher_context: int = opt(-1, "with --teacher: the teacher reads each training sentence with up to N word pieces "
                               "of its document; a student of sentences alone (--context 0) then learns its states on "
                               "the sentence's pieces. -1: the --context the teacher was trained with (the student's "
                               "where the student reads with context)")
    cache_teacher: int = opt(0, "with --teacher, 1: each window's targets are kept in a file in --out_dir the first "
                             "time the teacher reads it and read back in the later epochs, which then run no teacher "
                             "(its states are the same each epoch); the file, GBs for a large set, goes at the end")
    # optimisation
    epochs: float = opt(5.0, "passes over the training data (O and D together) that set the step budget")
    max_steps: int = opt(0, "> 0 overrides the step budget (smoke runs)")
    batch_size: int = opt(32, "sentences per optimizer step, over all processes")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    lr: float = opt(1e-4, "peak learning rate")
    warmup: float = opt(0.1, "fraction of steps of linear warmup")
    weight_decay: float = opt(0.01, "AdamW weight decay, not applied to biases and LayerNorm")
    grad_clip: float = opt(1.0, "largest gradient norm; 0: no clipping")
    seed: int = opt(0, "seed of the model's new weights and of the batches")
    # speed (each can be turned off to compare)
    group_by_length: int = opt(1, "batches of sentences of similar length: less padding", choices=[0, 1])
    bf16: int = opt(1, "bfloat16 autocast where the hardware supports it (fp32 elsewhere)", choices=[0, 1])
    sdpa: int = opt(1, "PyTorch's fused scaled_dot_product_attention", choices=[0, 1])
    fused_adamw: int = opt(1, "PyTorch's fused AdamW step", choices=[0, 1])
    compile: int = opt(0, "torch.compile the model", choices=[0, 1])
    # evaluation and output
    eval_every: int = opt(0, "steps between dev evaluations; 0: once per epoch")
    eval_batch_size: int = opt(BATCH_SIZE, "at most this many sentences (or texts) per forward pass when evaluating")
    eval_tokens: int = opt(MAX_TOKENS, "and at most this many word pieces, padding included: "
                                 "short sentences go in bigger batches")
    decode: str = opt("viterbi", "ner: viterbi: the best valid BIO sequence | argmax: each word on its own",
                      choices=["viterbi", "argmax"])
    out_dir: str = opt("out/default", "where metrics.json, model/ and the test predictions go")
    device: str = opt("auto", "auto: cuda if available, else cpu", choices=["auto", "cpu", "cuda"])
    # checkpoints: the same command run again resumes where a killed or interrupted run stopped
    ckpt_minutes: float = opt(5.0, "a resumable checkpoint (out_dir/checkpoint/) after this many minutes of training, "
                                   "and at every dev evaluation; 0: at evaluations only")
    ckpt_every: int = opt(0, "> 0: a checkpoint every this many steps instead of by time")
    restart: int = opt(0, "1: start over, dropping a checkpoint or a finished run left in out_dir", choices=[0, 1])
    progress: int = opt(1, "tqdm bars; 0: a log line every 5% of the steps instead", choices=[0, 1])


def parse_args(argv=None):
    return parse_config(Config, argv, description=__doc__.split("\n\n")[0])


def check_config(cfg):
    """Refuse settings that cannot train, in one line naming the flag, before anything is loaded."""
    world = processes()
    bad = [(cfg.task not in TASKS, f"--task {cfg.task!r}: expected {' or '.join(TASKS)}"),
           (not 0 <= cfg.dev_share < 1, f"--dev_share {cfg.dev_share:g}: expected a share from 0 up to 1"),
           (cfg.batch_size < 1, f"--batch_size {cfg.batch_size}: expected at least 1"),
           (cfg.grad_accum < 1, f"--grad_accum {cfg.grad_accum}: expected at least 1"),
           (cfg.batch_size % max(1, world * cfg.grad_accum) != 0,  # every process gets as many micro-batches
            f"--batch_size {cfg.batch_size} must be a multiple of --grad_accum {cfg.grad_accum}" if world == 1 else
            f"--batch_size {cfg.batch_size} must be a multiple of processes x --grad_accum = {world * cfg.grad_accum}"),
           (cfg.eval_batch_size < 1, f"--eval_batch_size {cfg.eval_batch_size}: expected at least 1"),
           (cfg.eval_tokens < 1, f"--eval_tokens {cfg.eval_tokens}: expected at least 1"),
           (cfg.max_len < 3, f"--max_len {cfg.max_len}: expected at least 3 ([CLS], one word piece, [SEP])"),
           (cfg.context < 0, f"--context {cfg.context}: expected 0 (each sentence alone) or more word pieces"),
           (cfg.context > 0 and cfg.task != "ner", f"--context {cfg.context}: context is for ner (a text is read "
                                                    "whole)"),
           (not cfg.epochs > 0, f"--epochs {cfg.epochs}: expected more than 0"),
           (cfg.max_steps < 0, f"--max_steps {cfg.max_steps}: expected 0 (the budget) or more"),
           (cfg.eval_every < 0, f"--eval_every {cfg.eval_every}: expected 0 (once per epoch) or more"),
           (not cfg.ckpt_minutes >= 0, f"--ckpt_minutes {cfg.ckpt_minutes}: expected 0 (at evaluations only) or more"),
           (cfg.ckpt_every < 0, f"--ckpt_every {cfg.ckpt_every}: expected 0 (by time) or more"),
           (not cfg.lr > 0, f"--lr {cfg.lr}: expected more than 0"),
           (not 0 <= cfg.warmup < 1, f"--warmup {cfg.warmup}: expected a fraction of the steps in [0, 1)"),
           (not cfg.weight_decay >= 0, f"--weight_decay {cfg.weight_decay}: expected 0 or more"),
           (not cfg.grad_clip >= 0, f"--grad_clip {cfg.grad_clip}: expected 0 (no clipping) or more"),
           (not cfg.dropout < 1, f"--dropout {cfg.dropout}: expected a probability below 1 (or -1: the checkpoint's)"),
           *distill_flag_errors(cfg),  # --kd_*, --student_*, --teacher's weights and layer map
           (cfg.decode not in ("viterbi", "argmax"), f"--decode {cfg.decode!r}: expected viterbi or argmax"),
           (cfg.device not in ("auto", "cpu", "cuda"), f"--device {cfg.device!r}: expected auto, cpu or cuda"),
           (bool(cfg.distilled) and cfg.strategy == "original",
            "--distilled is given but --strategy original ignores it: choose a strategy that uses it"),
           (cfg.task == "classify" and not cfg.data_dir, "--task classify needs --data_dir: a folder with train.jsonl, "
            "valid.jsonl and test.jsonl (python data.py split makes one)")]
    for failed, message in bad:
        if failed:
            raise SystemExit(f"error: {message}")
    try:  # the strategy, schedule and its arguments, with one example of each source given
        strategy_schedule(cfg.strategy, 1, int(bool(cfg.distilled)), cfg.schedule or None, cfg.schedule_args or None)
        if cfg.student:
            parse_student(cfg.student)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


# ---------------------------------------------------------------------------------------------
# The model, optimisation and processes

def build_model(cfg, task, labels, model_dir, device, verbose):
    """The pretrained BERT with a new head for the labels, or a smaller student built from it."""
    overrides = {"sdpa": bool(cfg.sdpa)}
    if cfg.dropout >= 0:
        overrides.update(hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout)
    try:
        model = from_pretrained(model_dir, id2label=dict(enumerate(labels)), head=task.head, verbose=verbose,
                                **overrides)
        if cfg.student:
            model = make_student(model, cfg.student, cfg.student_init, layers=cfg.student_layers)
    except ValueError as e:
        # a checkpoint this code cannot load, or a student it cannot build from it: the user's input
        raise DataError(str(e)) from None
    return model.to(device)


def get_lr(step, total_steps, cfg):
    """Linear warmup to cfg.lr, then linear decay to 0 at total_steps."""
    warmup = int(cfg.warmup * total_steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    return cfg.lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup))


def make_optimizer(model, cfg):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "LayerNorm" in n]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=bool(cfg.fused_adamw) or None)


def processes():
    """How many processes train together: torchrun's WORLD_SIZE, or 1 for a plain `python train.py`."""
    return int(os.environ["WORLD_SIZE"]) if int(os.environ.get("RANK", -1)) != -1 else 1


def setup_distributed(cfg):
    """torchrun sets RANK; a plain `python train.py` runs as rank 0 of 1 with nothing else changed."""
    use_cuda = cfg.device in ("auto", "cuda") and torch.cuda.is_available()
    if int(os.environ.get("RANK", -1)) == -1:
        return 0, 1, torch.device("cuda" if use_cuda else "cpu")
    rank, world, local_rank = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return rank, world, torch.device("cuda", local_rank)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    return rank, world, torch.device("cpu")


def make_sampler(cfg, ex_o, ex_d):
    """(sampler, schedule, total steps, steps between evaluations): the step budget is the same for every strategy;
    the seeded sampler draws each example of a batch from O or D."""
    total_steps, steps_per_epoch = step_budget(len(ex_o), len(ex_d), cfg.epochs, cfg.batch_size)
    total_steps = cfg.max_steps or total_steps
    schedule = strategy_schedule(cfg.strategy, len(ex_o), len(ex_d), cfg.schedule or None, cfg.schedule_args or None)
    sampler = MixSampler([len(e["ids"]) for e in ex_o], [len(e["ids"]) for e in ex_d], schedule,
                         total_steps, cfg.batch_size, torch.Generator().manual_seed(cfg.seed),
                         group_by_length=bool(cfg.group_by_length))
    return sampler, schedule, total_steps, cfg.eval_every or steps_per_epoch


# ---------------------------------------------------------------------------------------------
# The run: set-up in the order it happens, the loop, the outputs

def train(cfg):
    started = time.perf_counter()
    # config: flags, then files and the model folder; a mistake stops the run in one line, before any loading
    check_config(cfg)
    task, paths = TASKS[cfg.task], data_files(cfg)
    model_dir = cfg.model_dir or default_model_dir()
    check_model_dir(model_dir)
    if cfg.teacher:
        check_teacher(cfg, model_dir, want=task.head)
    cfg = replace(cfg, teacher_context=teacher_reading(cfg))  # -1 made the N it stands for, which the record keeps
    rank, world, device = setup_distributed(cfg)
    master, log = rank == 0, (print if rank == 0 else (lambda *a, **k: None))  # the master process alone reports
    ckpt_dir, settings = os.path.join(cfg.out_dir, CHECKPOINT), run_settings(cfg, paths)
    done = None if cfg.restart else finished_run(cfg.out_dir, cfg, settings)
    if done:  # the same command once more: the finished run, not a second training that replaces it
        scores = done["test"] or done["dev"]
        log(f"{cfg.out_dir} holds this run, finished ({'test' if done['test'] else 'dev'} {task.word} "
            f"{100 * scores[task.key]:.2f}): not trained again (--restart 1 trains it again)")
        if world > 1:
            dist.destroy_process_group()
        return done
    saved = None if cfg.restart else load_checkpoint(ckpt_dir, settings)
    torch.manual_seed(cfg.seed)

    # data, model (a student with a teacher beside it), optimizer and sampler; then where the run stands
    labels, ex_o, ex_d, dev, test = load_data(cfg, task, paths, model_dir)
    raw_model = build_model(cfg, task, labels, model_dir, device, verbose=master)
    teacher = Teacher(cfg, raw_model, device, verbose=master) if cfg.teacher else None
    trained = teacher.student if teacher else raw_model  # what the optimizer trains: the student, and W with a teacher
    model = torch.compile(trained, dynamic=True) if cfg.compile else trained
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = make_optimizer(trained, cfg)
    sampler, schedule, total_steps, eval_every = make_sampler(cfg, ex_o, ex_d)
    bf16 = bool(cfg.bf16) and bf16_supported(device)
    log(describe_run(cfg, task, paths, ex_o, ex_d, dev, test, labels, teacher, total_steps, world, device, bf16))
    parts = {"model": raw_model, "optimizer": optimizer, "sampler": sampler, **({"proj": trained.proj} if teacher else {})}
    run = resume_or_start(ckpt_dir, saved, settings, parts, rank=rank, best_dev={task.key: -1.0})
    if saved:
        log(f"resuming from {ckpt_dir} at step {sampler.step} of {total_steps} (--restart 1 starts over)")

    # the loop: one optimizer step per batch the sampler draws
    source, last_ckpt = {"O": ex_o, "D": ex_d}, (sampler.step, run.train_time)  # the newest checkpoint's step, time
    with catch_sigint(world) as stop_asked, closing(teacher) if teacher else nullcontext():  # closing: the cache
        bar = tqdm(total=total_steps, initial=sampler.step, disable=not (master and cfg.progress), dynamic_ncols=True)
        model.train()
        for batch in sampler:
            step = sampler.step - 1
            t0 = time.perf_counter()
            lr = get_lr(step, total_steps, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            examples = [source[s][i] for s, i in batch]
            loss, terms = forward_backward(model, teacher, examples, cfg, run, rank, world, device, len(labels), bf16)
            if not math.isfinite(loss):  # every process sees the same reduced loss, so all stop here
                raise SystemExit(not_finite(cfg, loss, step, total_steps, ckpt_dir))
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            run.train_time += time.perf_counter() - t0
            show_step(bar, cfg, step, total_steps, loss, terms, lr, run.train_tokens * world / run.train_time,
                      master=master)

            # dev evaluation at intervals and at the last step (the best dev state is kept); a checkpoint with each,
            # and between them every --ckpt_minutes of training (or --ckpt_every steps)
            evaluated = (step + 1) % eval_every == 0 or step == total_steps - 1
            new_best = evaluated and master and evaluate(raw_model, task, dev, device, cfg, labels, run, step, loss, bar)
            due = (cfg.ckpt_every > 0 and (step + 1) % cfg.ckpt_every == 0
                   or cfg.ckpt_every == 0 and cfg.ckpt_minutes > 0
                      and run.train_time - last_ckpt[1] >= 60 * cfg.ckpt_minutes)
            stop = stop_asked() and step < total_steps - 1
            if (evaluated or due or stop) and step < total_steps - 1:  # after the last step the run is written out
                save_checkpoint(ckpt_dir, run, parts, world=world, master=master, new_best=new_best)
                last_ckpt = (step + 1, run.train_time)
            if stop:
                bar.close()
                log(f"stopped after step {step + 1} of {total_steps}: checkpoint in {ckpt_dir}; "
                    "run the same command to resume")
                raise SystemExit(130)
        bar.close()

    facts = {"total_steps": total_steps, "world_size": world, "precision": "bf16" if bf16 else "fp32", "resumed":
             bool(saved), "schedule": getattr(schedule, "describe", cfg.schedule), "realised": sampler.realised,
             "has_dev_file": bool(paths[2]), "started": started,
             "inputs": run_inputs(settings)}
    metrics = write_outputs(cfg, task, run, raw_model, model_dir, test, labels, device, teacher, facts) if master else None
    if world > 1:
        dist.destroy_process_group()
    return metrics


def forward_backward(model, teacher, examples, cfg, run, rank, world, device, n_labels, bf16):
    """The forward and backward passes of one optimizer step over the global batch `examples`: this process's share
    of it, in --grad_accum micro-batches. Returns the batch's loss and, with a teacher, its terms (labels, hidden,
    attention); the gradients are left in the model for the optimizer."""
    # The loss is a mean over every labelled word (or text) of the global batch, whatever its split into
    # processes and micro-batches: each piece sums its losses and divides by the global count.
    n_labelled = sum(e["label"] != -100 if "label" in e else sum(l != -100 for l in e["labels"]) for e in examples)
    n_pieces = sum(len(e["ids"]) for e in examples)  # the teacher's terms are means over every real word piece
    mine = examples[rank::world]
    micro = [mine[i::cfg.grad_accum] for i in range(cfg.grad_accum)]
    step_loss = torch.zeros((), device=device)
    step_terms = torch.zeros(3, device=device)  # with a teacher: the labels, hidden and attention terms
    for k, mb in enumerate(micro):
        ids, mask, labels_t = collate(mb, device)
        soft, has_soft = soft_targets(mb, labels_t, n_labels)
        sync = nullcontext() if world == 1 or k == len(micro) - 1 else model.no_sync()
        with sync:
            with autocast(device, bf16):
                # with a teacher, the student's hidden states (through W) and attention too, and the teacher's
                logits, *internals = model(ids, mask)
                targets = teacher.targets(mb, ids, mask) if teacher else None
            loss = loss_sum(logits, labels_t, soft.to(device), has_soft.to(device), cfg)
            loss = loss * world / max(1, n_labelled)  # DDP averages over processes; undo that
            if teacher:  # (hidden, attention): sums over pieces / the global count, as above
                terms = teacher.terms(internals, targets, mask, n_pieces)
                step_terms += torch.cat([loss.detach().view(1) / world, terms.detach()])
                loss = loss + world * teacher.weighted(terms)
            loss.backward()
        step_loss += loss.detach() / world
        run.train_tokens += int(mask.sum())
    if world > 1:  # each process holds its share of the loss; the printed loss is the whole batch's
        dist.all_reduce(step_loss)
        if teacher:
            dist.all_reduce(step_terms)
    terms_now = step_terms.tolist() if teacher else None
    if terms_now:
        run.term_sums = [a + b for a, b in zip(run.term_sums, terms_now)]
    return step_loss.item(), terms_now


def evaluate(model, task, dev, device, cfg, labels, run, step, loss, bar):
    """Score dev, note it in the run's history and keep the weights if they are the best so far (True then)."""
    scores, _, _ = task.score(model, dev, device, cfg, labels)
    run.history.append({"step": step + 1, "loss": loss, f"dev_{task.key}": scores[task.key]})
    bar.write(f"step {step + 1}: loss {loss:.4f}, dev {task.word} {100 * scores[task.key]:.2f}")
    if scores[task.key] <= run.best_dev[task.key]:
        return False
    run.best_dev, run.best_step, run.best_file = scores, step + 1, f"best-{step + 1}.pt"
    run.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return True


def write_outputs(cfg, task, run, model, model_dir, test, labels, device, teacher, facts):
    """The best dev checkpoint, saved and scored on test; metrics.json last: the folder then holds a finished run."""
    model.load_state_dict(run.best_state)
    model.config.context = cfg.context or None  # config.json keeps the N it learnt with: predict.py reads with it
    save_pretrained(model, os.path.join(cfg.out_dir, "model"), model_dir)
    test_scores, extra = None, {}
    if test is not None:
        test_scores, test_preds, extra = task.score(model, test, device, cfg, labels, test=True)
        task.write(cfg.out_dir, test.items, test_preds)
    d_share, world = facts["realised"], facts["world_size"]
    metrics = {
        "task": cfg.task, "dev": run.best_dev, "test": test_scores, **extra,
        "best_step": run.best_step, "total_steps": facts["total_steps"],
        "train_seconds": run.train_time, "train_tokens_per_s": run.train_tokens * world / max(run.train_time, 1e-9),
        "checkpoint_seconds": run.ckpt_time, "checkpoints": run.n_ckpt, "resumed": facts["resumed"],
        "strategy": cfg.strategy, "schedule": facts["schedule"],
        "realised_d_share": sum(d_share) / max(1, len(d_share)), "realised_d_share_per_step": d_share,
        "history": run.history, "world_size": world, "precision": facts["precision"], "config": asdict(cfg),
        "inputs": facts["inputs"],
        "dev_source": "the valid file" if facts["has_dev_file"] else f"a seeded {cfg.dev_share:g} of the training "
                                                                     "data, scored against its own (possibly LLM) labels",
    }
    if teacher:  # what each term contributed: its mean over the steps, before its weight
        metrics["teacher"] = teacher.record()
        metrics["loss_terms"] = dict(zip(("labels", "hidden", "attention"),
                                         (x / facts["total_steps"] for x in run.term_sums)))
    metrics["wall_seconds"] = time.perf_counter() - facts["started"]  # this try of the job: loading, training, scoring
    metrics["record"] = provenance(command_line("train.py", cfg), precision=metrics["precision"])
    atomic_write(os.path.join(cfg.out_dir, "metrics.json"), json.dumps(metrics, indent=1))
    shutil.rmtree(os.path.join(cfg.out_dir, CHECKPOINT), ignore_errors=True)  # finished: metrics.json, model/ are the run
    print(f"best dev {task.word} {100 * run.best_dev[task.key]:.2f} at step {run.best_step}; "
          + (f"test {task.word} {100 * test_scores[task.key]:.2f}"
             + "".join(f", {name} {100 * test_scores[key]:.2f}" for name, key in task.also)
             if test_scores else "no test file, no test score")
          + f"; {run.train_time:.0f} s training, {metrics['train_tokens_per_s']:.0f} tokens/s -> {cfg.out_dir}")
    return metrics


def describe_run(cfg, task, paths, ex_o, ex_d, dev, test, labels, teacher, total_steps, world, device, bf16):
    """What the run will do, before its first step: where dev comes from, the teacher, the data, the steps."""
    lines = []
    if not paths[2]:
        lines.append(f"dev: a seeded {cfg.dev_share:g} of the training data ({len(dev.items)}), scored against its own "
                     "labels (an LLM's, where the training data is the LLM's), not gold")
    if test is None:
        lines.append("no test file: the run ends without a test score")
    if teacher:
        lines.append(teacher.describe())
    n_soft = sum(e["soft"] is not None for e in ex_o + ex_d)
    lines.append(f"{len(ex_o)} original + {len(ex_d)} distilled {task.unit} ({n_soft} with soft labels), "
                 f"{len(labels)} labels, strategy {cfg.strategy}, {total_steps} steps of {cfg.batch_size} "
                 f"on {world} process(es), device {device}"
                 + (f" with {torch.get_num_threads()} threads" if device.type == "cpu" else "")
                 + (", bf16 autocast" if bf16 else ", fp32" + (" (this hardware has no native bf16)" if cfg.bf16 else "")))
    return "\n".join(lines)


def show_step(bar, cfg, step, total_steps, loss, terms, lr, tokens_per_s, master):
    """The bar's line after a step; without a bar (--progress 0), a log line every 5% of the steps."""
    bar.update(1)
    shown = dict(zip(("labels", "hidden", "attn"), (f"{x:.4f}" for x in terms))) if terms else {}
    bar.set_postfix(loss=f"{loss:.4f}", **shown, lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:.0f}")
    if master and not cfg.progress and (step + 1) % max(1, total_steps // 20) == 0:
        print(f"step {step + 1}/{total_steps}: loss {loss:.4f}"
              + (f" ({', '.join(f'{k} {v}' for k, v in shown.items())})" if shown else "")
              + f", lr {lr:.2e}, {tokens_per_s:.0f} tokens/s", flush=True)


def not_finite(cfg, loss, step, total_steps, ckpt_dir):
    return (f"error: the loss became {loss} at step {step + 1} of {total_steps}; nothing after it is saved. Usual "
            f"causes: a learning rate too high for this model (--lr {cfg.lr:g}; a student from random weights or a "
            "bigger batch may need less), --grad_clip 0, or a soft label that is not a distribution (NaN or negative "
            f"probabilities in --distilled). The last checkpoint in {ckpt_dir} is from before it; rerun with a lower "
            "--lr and --restart 1")


def main(argv=None):
    return train(parse_args(argv))


if __name__ == "__main__":
    run_main(main)
