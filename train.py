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

Soft labels: a file may give, per word (CoNLL, a `LABEL=p|LABEL=p|...` column before the tag) or per
text (JSONL, a "probs" object beside "label"), a probability distribution over the labels (data.py
reads and writes both; `python predict.py --soft` makes them). Where an example has one, its loss is
kd_alpha x cross entropy with the hard label + (1 - kd_alpha) x T^2 x KL at temperature T
(`distillation_loss`); elsewhere it is plain cross entropy.

NER: a word's prediction comes from its first word piece; by default the tags of a sentence are the
most probable valid BIO sequence (`--decode viterbi`: no I-X after O or after another type).
Classification: the pooled [CLS] vector; a text longer than --max_len pieces keeps its beginning.

`--student L<layers>-H<hidden>` trains a smaller BERT built from --model_dir (model.py, make_student), from
the teacher layers `--student_layers` names (bottom, spread, or a list).

Intermediate distillation: `--teacher MODEL_DIR` runs a frozen teacher on every micro-batch, and two terms join
the labels term: hidden_weight x the MSE between the student's hidden states (through a learned map W where the
widths differ) and the teacher's, student layer i against teacher layer m(i), and attn_weight x the KL between the
two last matched layers' attention distributions (`hidden_loss`, `attention_loss`). m is --match_layers, by default
the --student_layers each layer was copied from; a student copied from the bottom layers and matched with
`--match_layers spread` learns the teacher's top layer in its own, which the teacher's head (copied too) reads.
metrics.json records the map and each term's mean over the run.

Writes into --out_dir:
- metrics.json: "dev" and "test" scores in eval.py's JSON shape (NER: f1, precision, recall, per type; classify:
  accuracy, macro_f1, per class precision / recall / f1 / support, the confusion matrix) of the best-dev checkpoint,
  "test_f1_argmax" (NER: the same weights decoded word by word), "best_step", "total_steps", "history" (one
  {"step", "loss", "dev_f1" or "dev_accuracy"} per evaluation), "train_seconds", "train_tokens_per_s",
  "wall_seconds" (of the last try), "checkpoint_seconds" and "checkpoints" (their cost), "resumed", "precision" (bf16
  or fp32), "record" (the command that gives this run, the code's commit, the machine: runs.provenance),
  "strategy", "schedule", "realised_d_share" (and per step), "world_size", with --teacher "teacher" (the
  layer map, the weights) and "loss_terms" (each term's mean over the run), and "config" (every flag). It is written
  last, atomically: a folder with metrics.json holds a finished run (runs.finished).
- model/: a Hugging Face folder of the best dev checkpoint (transformers loads it with the same logits).
- test_predictions.conll (token gold predicted) or test_predictions.jsonl ({"text", "gold", "pred"}).

Checkpoints: while it trains, out_dir/checkpoint/ holds the run's resumable state: last.pt (model, optimizer,
the sampler's place and order, every random generator, history and the best dev score so far), best-STEP.pt (the
best dev state) and settings.json (every flag that shapes the result and the data files by content hash). They are
written atomically (to a temporary file, flushed, renamed) after every dev evaluation and every --ckpt_minutes of
training (--ckpt_every N: every N steps), one kept plus the best, by the master process alone. The same command run
again after a kill (even kill -9) or Ctrl-C (which stops at the end of the step, with a checkpoint) resumes from
there and ends exactly where the run would have ended without the interruption (in fp32 on a CPU the weights are the
same bit for bit, tested); a checkpoint of other settings is refused in one line, --restart 1 starts over. The
folder is deleted once metrics.json is written. A loss that becomes NaN or infinite stops the run, naming the step.
"""
import json
import math
import os
import shutil
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from cli import DataError, command_line, opt, parse_config, run_main
from data import atomic_write, labels_from, read_classification, read_conll, write_conll, write_jsonl
from eval import classification_scores, span_f1
from mix import SCHEDULES, STRATEGIES, MixSampler, strategy_schedule
from model import (check_model_dir, default_model_dir, from_pretrained, load_tokenizer, make_student, parse_student,
                   save_pretrained, student_layers)
from predict import (BATCH_SIZE, MAX_TOKENS, autocast, bf16_supported, collate, encode, encode_texts, predict,
                     predict_texts)
from runs import claim, file_hash, provenance, write_json


@dataclass
class Config:
    # data
    task: str = opt("ner", "ner: a BIO tag per word (CoNLL files) | classify: a label per text (JSONL files)",
                    choices=["ner", "classify"])
    data_dir: str = opt("", "holds train, valid and test (.txt for ner, .jsonl for classify); "
                            "ner default: data/conll2003")
    train_file: str = opt("", "overrides data_dir/train.txt as the original (human) data")
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
    dropout: float = opt(-1.0, "-1 keeps the checkpoint's dropout")
    student: str = opt("", "L<layers>-H<hidden>: train a smaller BERT built from model_dir (model.py)")
    student_init: str = opt("pretrained", "pretrained: copied / projected from model_dir | random",
                            choices=["pretrained", "random"])
    student_layers: str = opt("bottom", "the teacher layer each student layer stands for: copied at the teacher's "
                              "width, matched with --teacher. bottom: 0..L-1 | spread: bottom, top and evenly between "
                              "(L2 of 6: 0,5) | a list, e.g. 1,5 (model.student_layers)")
    # distillation, where the data has soft labels
    kd_alpha: float = opt(0.0, "weight of the hard-label cross entropy; 1 - kd_alpha goes to the soft labels")
    kd_temperature: float = opt(2.0, "T of the KL term; the term is scaled by T^2")
    # intermediate distillation: a teacher run on every batch, its hidden states and attention as targets
    teacher: str = opt("", "a model folder run beside the student (same vocabulary): the student's hidden states and "
                           "last-layer attention learn the teacher's, student layer i from teacher layer m(i) "
                           "(--match_layers); the labels term stays cross entropy or --distilled soft labels")
    match_layers: str = opt("", "with --teacher: the teacher layer m(i) each student layer i is matched with: bottom | "
                            "spread | a list, e.g. 0,5 (model.student_layers); '': the --student_layers it was copied "
                            "from")
    hidden_weight: float = opt(1.0, "with --teacher: weight of the hidden-state MSE, a mean per word piece of "
                               "states of unit scale (LayerNorm): 1 puts it on a par with the cross entropy per word")
    attn_weight: float = opt(-1.0, "with --teacher: weight of the attention KL (nats per word piece, as the cross "
                             "entropy); -1: 1 where the student's last layer has the teacher's number of heads, else 0")
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
    restart: int = opt(0, "1: start over, dropping a checkpoint left in out_dir", choices=[0, 1])
    progress: int = opt(1, "tqdm bars; 0: a log line every 5% of the steps instead", choices=[0, 1])


def parse_args(argv=None):
    return parse_config(Config, argv, description=__doc__.split("\n\n")[0])


def check_config(cfg):
    """Refuse settings that cannot train, in one line naming the flag, before anything is loaded."""
    def layers_spec(value):  # model.student_layers' forms: bottom, spread or teacher layer indices
        return value in ("bottom", "spread") or value.replace(",", "").isdigit()
    bad = [(cfg.task not in ("ner", "classify"), f"--task {cfg.task!r}: expected ner or classify"),
           (cfg.batch_size < 1, f"--batch_size {cfg.batch_size}: expected at least 1"),
           (cfg.grad_accum < 1, f"--grad_accum {cfg.grad_accum}: expected at least 1"),
           (cfg.batch_size % max(1, cfg.grad_accum) != 0,
            f"--batch_size {cfg.batch_size} must be a multiple of --grad_accum {cfg.grad_accum}"),
           (cfg.eval_batch_size < 1, f"--eval_batch_size {cfg.eval_batch_size}: expected at least 1"),
           (cfg.eval_tokens < 1, f"--eval_tokens {cfg.eval_tokens}: expected at least 1"),
           (cfg.max_len < 3, f"--max_len {cfg.max_len}: expected at least 3 ([CLS], one word piece, [SEP])"),
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
           (not 0 <= cfg.kd_alpha <= 1, f"--kd_alpha {cfg.kd_alpha}: expected a weight in [0, 1]"),
           (not cfg.kd_temperature > 0, f"--kd_temperature {cfg.kd_temperature}: expected more than 0"),
           (not cfg.hidden_weight >= 0, f"--hidden_weight {cfg.hidden_weight}: expected 0 or more"),
           (not (cfg.attn_weight >= 0 or cfg.attn_weight == -1),
            f"--attn_weight {cfg.attn_weight}: expected 0 or more, or -1 (1 where the heads match)"),
           (not layers_spec(cfg.student_layers),
            f"--student_layers {cfg.student_layers!r}: expected bottom, spread or teacher layer indices, e.g. 1,5"),
           (cfg.student_layers != "bottom" and not (cfg.student or cfg.teacher),
            f"--student_layers {cfg.student_layers} needs --student (layers to copy) or --teacher (layers to match)"),
           (cfg.match_layers != "" and not layers_spec(cfg.match_layers),
            f"--match_layers {cfg.match_layers!r}: expected bottom, spread or teacher layer indices, e.g. 0,5"),
           (bool(cfg.match_layers) and not cfg.teacher, f"--match_layers {cfg.match_layers} needs --teacher"),
           (cfg.decode not in ("viterbi", "argmax"), f"--decode {cfg.decode!r}: expected viterbi or argmax"),
           (cfg.device not in ("auto", "cpu", "cuda"), f"--device {cfg.device!r}: expected auto, cpu or cuda"),
           (cfg.student_init not in ("pretrained", "random"),
            f"--student_init {cfg.student_init!r}: expected pretrained or random"),
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


def data_files(cfg):
    """(original, distilled, dev, test) paths of the run ("" where none is read), refused at once if missing."""
    ext = ".txt" if cfg.task == "ner" else ".jsonl"
    data_dir = cfg.data_dir or "data/conll2003"
    must = f"the folder must hold train{ext}, valid{ext} and test{ext}"
    hint = (f"CoNLL-2003 is not redistributed: see the README's Data section; {must}, or pass --data_dir"
            if not cfg.data_dir else f"--data_dir: {must}")
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: no such data folder ({hint})")
    original = cfg.original or cfg.train_file or os.path.join(data_dir, "train" + ext)
    if cfg.strategy == "distilled" and cfg.distilled:
        original = ""  # D alone: O is not read
    paths = (original, cfg.distilled, os.path.join(data_dir, "valid" + ext), os.path.join(data_dir, "test" + ext))
    for path in paths:
        if path and not os.path.isfile(path):
            own = path in [os.path.join(data_dir, name + ext) for name in ("train", "valid", "test")]
            raise DataError(f"{path}: no such file" + (f" ({hint})" if own else ""))
    return paths


# ---------------------------------------------------------------------------------------------
# The loss: cross entropy with hard labels, KL divergence with a teacher's soft labels

def soft_targets(examples, labels, n_labels):
    """Teacher distributions in the labels' shape plus a label axis, zero where there is none, and a mask
    of where they are: (B, T, C) and (B, T) per word piece (at each word's first piece), (B, C) and (B,) per text."""
    targets = torch.zeros(*labels.shape, n_labels)
    has = torch.zeros(labels.shape, dtype=torch.bool)
    for i, e in enumerate(examples):
        if e["soft"] is None:
            continue
        rows = [((i,), e["soft"])] if "label" in e else [((i, pos), v) for pos, v in zip(e["starts"], e["soft"])]
        for where, v in rows:
            if v is not None:  # None: a distribution over labels the model does not have
                targets[where], has[where] = torch.from_numpy(v), True
    return targets, has


def distillation_loss(logits, teacher_probs, T):
    """Per row: T^2 * KL(p_T || q_T) = T^2 * sum_c p_T[c] * (log p_T[c] - log q_T[c]), where
    q_T = softmax(logits / T) is the student's distribution and p_T = softmax(log p / T) the teacher's,
    both at temperature T (Hinton et al. 2015; p_T is what the teacher's logits / T would give). A T above
    1 flattens both, so the student also learns which wrong labels the teacher finds plausible. The
    gradient of the KL term scales as 1 / T^2; the T^2 factor undoes that, so changing T does not change
    the step size. With T = 1 and a one-hot p it is the cross entropy with that label."""
    log_q = F.log_softmax(logits.float() / T, dim=-1)
    p = F.softmax(torch.log(teacher_probs) / T, dim=-1)  # log 0 = -inf: a zero stays zero
    return T * T * (torch.xlogy(p, p) - p * log_q).sum(-1)


def loss_sum(logits, labels, soft, has_soft, cfg):
    """Summed over the labelled positions (or texts): where a soft label exists,
    kd_alpha * cross entropy + (1 - kd_alpha) * distillation loss; elsewhere cross entropy alone."""
    logits, labels = logits.reshape(-1, logits.size(-1)), labels.reshape(-1)
    ce = F.cross_entropy(logits.float(), labels, ignore_index=-100, reduction="none")
    if not has_soft.any():
        return ce.sum()
    has_soft, soft = has_soft.reshape(-1), soft.reshape(-1, soft.size(-1))
    kd = torch.zeros_like(ce)
    kd[has_soft] = distillation_loss(logits[has_soft], soft[has_soft], cfg.kd_temperature)
    return torch.where(has_soft, cfg.kd_alpha * ce + (1 - cfg.kd_alpha) * kd, ce).sum()


# ---------------------------------------------------------------------------------------------
# Intermediate distillation (--teacher): the teacher runs on every micro-batch; the student's hidden states and
# last-layer attention learn its. The layer map m is --match_layers, or else --student_layers (model.student_layers):
# the embeddings match the embeddings, student layer i matches teacher layer m(i), and the attention of the student's
# last layer matches that of teacher layer m(L - 1) (the teacher's top with spread). Both terms are sums over real
# word pieces, which the loop divides by the count of real pieces in the global batch: a mean per piece that grad
# accumulation and processes leave unchanged, as they leave loss_sum's.

def hidden_loss(student, teacher, mask):
    """Summed over the real word pieces (mask (B, T)): the mean over the matched layers l and the teacher's
    hidden dimension d of
        (W h_s[l] - h_t[m(l)])^2
    student: the student's hidden states, already through W (the learned map to the teacher's width, or none at
    the same width); teacher: the teacher's states they are matched with, in the same order, (B, T, H_t) each.
    A mean over layers rather than TinyBERT's sum, so --hidden_weight means the same for a student of any depth."""
    per_layer = [(s.float() - t.float()).square().mean(-1) for s, t in zip(student, teacher)]  # each (B, T)
    return (torch.stack(per_layer).mean(0) * mask).sum()


def attention_loss(student_probs, teacher_probs, mask):
    """Summed over the real query positions (mask (B, T)): the mean over heads h of
        KL(a_t || a_s) = sum_k a_t[h, k] * (log a_t[h, k] - log a_s[h, k])
    where a[h] (B, n_head, T, T) is a query's distribution over the keys k (MiniLM, Wang et al. 2020).
    KL rather than TinyBERT's MSE on the scores q k^T / sqrt(d): a softmax ignores a constant added to a query's
    scores, so the MSE would punish differences that change nothing, and it depends on the scores' scale; the KL
    compares what each query actually attends to, in nats like the cross entropy, and the padded keys, where both
    distributions are 0 (score -inf), drop out (0 log 0 = 0). It needs as many heads in the two layers."""
    p, q = teacher_probs.float(), student_probs.float()
    has = p > 0  # where the teacher puts mass; elsewhere the term is 0 and log 0 never enters (no 0/0 in the gradient)
    one = torch.ones_like(p)
    kl = torch.where(has, p * (torch.where(has, p, one).log() - torch.where(has, q, one).log()), 0.0)
    return (kl.sum(-1).mean(1) * mask).sum()


def intermediate_loss_sums(student, teacher, mask, layer_map):
    """(hidden, attention) loss sums of a micro-batch; student and teacher: (hidden states, {layer: attention
    probabilities}) as model.Bert.internals gives them (the student's states through W). The attention term is 0
    where the student's were not asked for (a different number of heads)."""
    (s_hidden, s_att), (t_hidden, t_att) = student, teacher
    m = mask.float()
    hidden = hidden_loss(s_hidden, [t_hidden[0]] + [t_hidden[j + 1] for j in layer_map], m)
    last = len(layer_map) - 1
    attention = attention_loss(s_att[last], t_att[layer_map[last]], m) if s_att else torch.zeros_like(hidden)
    return torch.stack([hidden, attention])


class WithMap(nn.Module):
    """The student and W, the learned linear map from its width to the teacher's, as one module: one optimizer, one
    DistributedDataParallel (which averages W's gradients too) and one checkpoint hold both; model/ gets the student
    alone. One W shared by every matched layer, as TinyBERT's: the residual stream of a BERT is one space from the
    embeddings to the top, so one map reads it at every depth, where a map per layer could absorb in each layer what
    the student should learn. At the teacher's width there is no W: the states are compared as they are."""

    def __init__(self, student, teacher_width, attend):
        super().__init__()
        self.student, self.attend = student, attend  # attend: the student layers whose attention is matched
        width = student.config.hidden_size
        self.proj = nn.Linear(width, teacher_width) if width != teacher_width else nn.Identity()

    def forward(self, input_ids, attention_mask):
        logits, hidden, probs = self.student.forward_with_internals(input_ids, attention_mask, self.attend)
        return logits, [self.proj(h) for h in hidden], probs


def check_teacher(cfg, model_dir):
    """Refuse, in one line, a --teacher this run cannot learn from, before any data is read: not a model folder, a
    classifier of the other kind, or another vocabulary than model_dir's (the teacher reads the student's pieces)."""
    try:
        check_model_dir(cfg.teacher)
    except DataError as e:
        raise DataError(f"--teacher {e}") from None
    with open(os.path.join(cfg.teacher, "config.json"), encoding="utf-8") as f:
        architectures = " ".join(json.load(f).get("architectures") or [])
    kind = ("sequence" if "SequenceClassification" in architectures else
            "token" if "TokenClassification" in architectures else None)  # None: a bare encoder, fine for both
    want = "token" if cfg.task == "ner" else "sequence"
    if kind and kind != want:
        raise DataError(f"--teacher {cfg.teacher}: a {kind} classifier, but --task {cfg.task} trains a {want} "
                        f"classifier: give a teacher trained with --task {cfg.task}")
    if load_tokenizer(cfg.teacher).get_vocab() != load_tokenizer(model_dir).get_vocab():
        raise DataError(f"--teacher {cfg.teacher}: its vocabulary is not that of {model_dir}: the teacher must read "
                        "the student's word pieces")


# ---------------------------------------------------------------------------------------------
# Optimisation

def step_budget(n_original, n_distilled, epochs, batch_size):
    """(total steps, steps per epoch): the same for every strategy over the same two sources."""
    per_epoch = math.ceil((n_original + n_distilled) / batch_size)
    return math.ceil(epochs * per_epoch), per_epoch


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


def setup_distributed(cfg):
    """torchrun sets RANK; a plain `python train.py` runs as rank 0 of 1 with nothing else changed."""
    if int(os.environ.get("RANK", -1)) == -1:
        device = torch.device("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
        return 0, 1, device
    rank, world, local_rank = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    use_cuda = cfg.device in ("auto", "cuda") and torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return rank, world, torch.device("cuda", local_rank)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    return rank, world, torch.device("cpu")


def read_split(cfg, path):
    """NER: (sentences, per-sentence soft labels or None); classify: ((text, label, probs) records, None)."""
    if cfg.task == "ner":
        return read_conll(path, with_probs=True)
    return [(r["text"], r["label"], r.get("probs"))
            for r in read_classification(path, (cfg.text_field,), cfg.label_field)], None


def label_list(cfg, items, soft):
    """--labels, or the labels of the training data, hard and soft (a soft label names every label of its
    teacher): NER in labels_from's order, classes sorted."""
    if cfg.labels:
        fixed = cfg.labels.split(",")
        seen = label_list(replace(cfg, labels=""), items, soft)
        unknown = [l for l in seen if l not in fixed]
        if unknown:
            raise DataError(f"--labels {cfg.labels}: the training data has labels it lacks: {', '.join(unknown)}")
        return fixed
    if cfg.task == "ner":
        keys = sorted({k for dists in soft if dists for d in dists for k in d})
        return labels_from(items + [(keys, keys)])
    return sorted({label for _, label, _ in items} | {k for _, _, probs in items for k in (probs or {})})


# ---------------------------------------------------------------------------------------------
# Checkpoints: a killed or interrupted run resumes where it stopped

CHECKPOINT = "checkpoint"  # the folder in out_dir: settings.json, last.pt and the best dev state best-STEP.pt
FREE = {"out_dir", "progress", "ckpt_minutes", "ckpt_every", "restart", "device"}  # may change when a run resumes


def run_settings(cfg, paths):
    """What a resumed run must share with the run it resumes: every flag that shapes the result, and the data files
    (original, distilled, dev, test) by their content."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in FREE}
    settings["data"] = {role: file_hash(p) for role, p in zip(("original", "distilled", "dev", "test"), paths) if p}
    if cfg.teacher:  # by content, as the data: a teacher retrained into the same folder gives other targets
        weights = [os.path.join(cfg.teacher, n) for n in ("model.safetensors", "pytorch_model.bin")]
        settings["teacher_weights"] = file_hash(next(p for p in weights if os.path.exists(p)))
    return settings


def load_checkpoint(folder, settings):
    """The state an earlier try of this run left in `folder` (None if it left none), refused in one line when that
    run had other settings."""
    path = os.path.join(folder, "last.pt")
    if not os.path.exists(path):
        return None
    try:
        claim(folder, settings, free=FREE)
    except DataError as e:
        raise DataError(f"{e}; --restart 1 starts this run over") from None
    return torch.load(path, weights_only=True)


def save_atomic(obj, path):
    """torch.save to a temporary file, flushed to disk, then renamed: a kill during the save leaves the old file
    whole (or none), never a file that looks whole but is not."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(folder, state, best_state):
    """last.pt (the whole training state) and, when the best dev state is new, best-STEP.pt beside it; then every
    other best-*.pt goes. last.pt names its best file, which is written first and deleted only after a newer
    last.pt names another: whenever the process dies, last.pt and its best file agree."""
    if best_state is not None:
        save_atomic(best_state, os.path.join(folder, state["best_file"]))
    save_atomic(state, os.path.join(folder, "last.pt"))
    for name in os.listdir(folder):
        if name.startswith("best-") and name != state["best_file"]:
            os.remove(os.path.join(folder, name))


def gather_rng_states(world):
    """Every process's torch random state (dropout), on the master: [rank 0's, rank 1's, ...]."""
    mine = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    if world == 1:
        return [mine]
    states = [None] * world
    dist.all_gather_object(states, mine)
    return states


def set_rng_state(state):
    torch.set_rng_state(state["cpu"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def catch_sigint(world):
    """Inside, a first Ctrl-C (SIGINT) asks the run to stop at the end of the step (`stop()` says whether it was
    asked, on every process at once under torchrun); a second one interrupts at once, as usual."""
    asked = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        asked.set()
        signal.signal(signal.SIGINT, previous)

    def stop():
        if world == 1:
            return asked.is_set()
        flag = torch.tensor(float(asked.is_set()))
        dist.all_reduce(flag)  # one process saw it: all stop at the same step
        return flag.item() > 0
    main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be installed
    if main_thread:
        signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)


def train(cfg):
    started = time.perf_counter()
    # config: flags, then files and the model folder; a mistake stops the run in one line, before any loading
    check_config(cfg)
    paths = data_files(cfg)
    original_path, distilled_path, dev_path, test_path = paths
    model_dir = cfg.model_dir or default_model_dir()
    check_model_dir(model_dir)
    if cfg.teacher:
        check_teacher(cfg, model_dir)
    rank, world, device = setup_distributed(cfg)
    master = rank == 0
    log = print if master else (lambda *a, **k: None)
    ckpt_dir, settings = os.path.join(cfg.out_dir, CHECKPOINT), run_settings(cfg, paths)
    resume = None if cfg.restart else load_checkpoint(ckpt_dir, settings)
    torch.manual_seed(cfg.seed)
    ner = cfg.task == "ner"

    # data: O and D (hard or soft labels), dev and test, as word-piece examples
    original, soft_o = read_split(cfg, original_path) if original_path else ([], None)
    distilled, soft_d = read_split(cfg, distilled_path) if distilled_path else ([], None)
    dev, _ = read_split(cfg, dev_path)
    test, _ = read_split(cfg, test_path)
    labels = label_list(cfg, original + distilled, (soft_o or []) + (soft_d or []))
    label2id = {l: i for i, l in enumerate(labels)}
    tokenizer = load_tokenizer(model_dir)
    if ner:
        ex_o, ex_d = (encode(original, tokenizer, label2id, cfg.max_len, soft_o),
                      encode(distilled, tokenizer, label2id, cfg.max_len, soft_d))
        ex_dev, ex_test = (encode(s, tokenizer, label2id, cfg.max_len) for s in (dev, test))
        gold_dev, gold_test = ([tags for _, tags in s] for s in (dev, test))
    else:
        ex_o, ex_d, ex_dev, ex_test = (encode_texts(r, tokenizer, label2id, cfg.max_len)
                                       for r in (original, distilled, dev, test))
        gold_dev, gold_test = ([label for _, label, _ in r] for r in (dev, test))
    source = {"O": ex_o, "D": ex_d}
    batching = dict(batch_size=cfg.eval_batch_size, max_tokens=cfg.eval_tokens, bf16=bool(cfg.bf16))

    def evaluate(examples, sentences, gold):
        """(scores, predictions) of a whole split through predict.py: span F1 (NER) or accuracy / macro-F1
        (classify)."""
        if ner:
            preds, = predict(raw_model, sentences, examples, device, decodes=(cfg.decode,), **batching)
            return span_f1(gold, preds), preds
        preds, _ = predict_texts(raw_model, examples, device, **batching)
        return classification_scores(gold, preds, labels=sorted(set(labels) | set(gold))), preds
    key = "f1" if ner else "accuracy"  # what chooses the checkpoint

    # model: the pretrained BERT, or a smaller student built from it
    overrides = {"sdpa": bool(cfg.sdpa)}
    if cfg.dropout >= 0:
        overrides.update(hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout)
    try:
        model = from_pretrained(model_dir, id2label=dict(enumerate(labels)), head="token" if ner else "sequence",
                                verbose=master, **overrides)
        if cfg.student:
            model = make_student(model, cfg.student, cfg.student_init, layers=cfg.student_layers)
    except ValueError as e:
        # a checkpoint this code cannot load, or a student it cannot build from it: the user's input
        raise DataError(str(e)) from None
    model.to(device)
    raw_model = model

    # the teacher, frozen, and what the student learns from it: the layer map m, the attention term, the map W
    teacher, layer_map, attn_weight = None, None, 0.0
    if cfg.teacher:
        with torch.random.fork_rng(devices=[]):  # the student's training draws the same numbers with or without one
            try:
                teacher = from_pretrained(cfg.teacher, verbose=master, sdpa=bool(cfg.sdpa))
                layer_map = student_layers(teacher.config.num_hidden_layers, raw_model.config.num_hidden_layers,
                                           cfg.match_layers or cfg.student_layers)
            except ValueError as e:
                raise DataError(f"--teacher {cfg.teacher}: {e}") from None
            s_heads, t_heads = raw_model.config.num_attention_heads, teacher.config.num_attention_heads
            attn_weight = cfg.attn_weight if cfg.attn_weight >= 0 else float(s_heads == t_heads)
            if attn_weight > 0 and s_heads != t_heads:
                raise DataError(f"--attn_weight {cfg.attn_weight:g}: the attention term needs as many heads in the "
                                f"student as in the teacher ({t_heads}); this student has {s_heads}: "
                                "pass --attn_weight 0")
            attend = (len(layer_map) - 1,) if s_heads == t_heads else ()
            model = WithMap(raw_model, teacher.config.hidden_size, attend).to(device)
        teacher.to(device).eval().requires_grad_(False)
        log(f"teacher {cfg.teacher}: student layer i <- teacher layer m(i): "
            + ", ".join(f"{i} <- {j}" for i, j in enumerate(layer_map))
            + f"; weights: hidden {cfg.hidden_weight:g}, attention {attn_weight:g}"
            + (f", W: {raw_model.config.hidden_size} -> {teacher.config.hidden_size}"
               if isinstance(model.proj, nn.Linear) else ""))
    trained = model  # what the optimizer trains: the student, and W with a teacher
    if cfg.compile:
        model = torch.compile(model, dynamic=True)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)

    # optimizer and schedule: the step budget is the same for every strategy
    optimizer = make_optimizer(trained, cfg)
    total_steps, steps_per_epoch = step_budget(len(ex_o), len(ex_d), cfg.epochs, cfg.batch_size)
    total_steps = cfg.max_steps or total_steps
    eval_every = cfg.eval_every or steps_per_epoch
    schedule = strategy_schedule(cfg.strategy, len(ex_o), len(ex_d), cfg.schedule or None, cfg.schedule_args or None)
    sampler = MixSampler([len(e["ids"]) for e in ex_o], [len(e["ids"]) for e in ex_d], schedule,
                         total_steps, cfg.batch_size, torch.Generator().manual_seed(cfg.seed),
                         group_by_length=bool(cfg.group_by_length))
    if cfg.batch_size % (world * cfg.grad_accum):
        raise SystemExit(f"error: --batch_size {cfg.batch_size} must be a multiple of processes x --grad_accum = "
                         f"{world * cfg.grad_accum}")
    n_soft = sum(e["soft"] is not None for e in ex_o + ex_d)
    bf16 = bool(cfg.bf16) and bf16_supported(device)
    log(f"{len(ex_o)} original + {len(ex_d)} distilled {'windows' if ner else 'texts'} ({n_soft} with soft labels), "
        f"{len(labels)} labels, strategy {cfg.strategy}, {total_steps} steps of {cfg.batch_size} "
        f"on {world} process(es), device {device}"
        + (f" with {torch.get_num_threads()} threads" if device.type == "cpu" else "")
        + (", bf16 autocast" if bf16 else ", fp32" + (" (this hardware has no native bf16)" if cfg.bf16 else "")))

    # where the run stands: from the start, or from the checkpoint of an earlier try of the same command
    history, best_dev, best_state, best_step, best_file = [], {key: -1.0}, None, -1, None
    train_time, train_tokens, ckpt_time, n_ckpt = 0.0, 0, 0.0, 0
    term_sums = [0.0, 0.0, 0.0]  # with a teacher: the labels, hidden and attention terms, summed over the steps
    if resume:
        raw_model.load_state_dict(resume["model"])
        if teacher is not None:
            trained.proj.load_state_dict(resume["proj"])
            term_sums = resume["term_sums"]
        optimizer.load_state_dict(resume["optimizer"])
        sampler.load_state_dict(resume["sampler"])
        set_rng_state(resume["rng"][rank])
        history, best_dev, best_step, best_file = \
            resume["history"], resume["best_dev"], resume["best_step"], resume["best_file"]
        train_time, train_tokens, ckpt_time, n_ckpt = \
            resume["train_time"], resume["train_tokens"], resume["ckpt_time"], resume["n_ckpt"]
        best_state = torch.load(os.path.join(ckpt_dir, best_file), weights_only=True) if best_file else None
        log(f"resuming from {ckpt_dir} at step {sampler.step} of {total_steps} (--restart 1 starts over)")
    elif master:  # a fresh start: whatever an earlier try left is dropped first
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        os.makedirs(ckpt_dir)
        write_json(os.path.join(ckpt_dir, "settings.json"), settings)

    def checkpoint(new_best):
        """Everything the steps after this one depend on, written by the master alone (every process resumes
        from it)."""
        nonlocal ckpt_time, n_ckpt
        rng = gather_rng_states(world)
        if master:
            t0 = time.perf_counter()
            state = {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                     "sampler": sampler.state_dict(), "rng": rng, "history": history, "best_dev": best_dev,
                     "best_step": best_step, "best_file": best_file, "train_time": train_time,
                     "train_tokens": train_tokens, "ckpt_time": ckpt_time, "n_ckpt": n_ckpt + 1}
            if teacher is not None:  # W trains with the student (its moments are in the optimizer's state)
                state.update(proj=trained.proj.state_dict(), term_sums=term_sums)
            save_checkpoint(ckpt_dir, state, best_state if new_best else None)
            ckpt_time, n_ckpt = ckpt_time + time.perf_counter() - t0, n_ckpt + 1
        if world > 1:
            dist.barrier()

    # the loop
    teacher_attend = (layer_map[-1],) if teacher is not None and trained.attend else ()
    with catch_sigint(world) as stop_asked:
        bar = tqdm(total=total_steps, initial=sampler.step, disable=not (master and cfg.progress), dynamic_ncols=True)
        last_ckpt = (sampler.step, train_time)  # the step and training time of the newest checkpoint
        model.train()
        for batch in sampler:
            step = sampler.step - 1
            t0 = time.perf_counter()
            lr = get_lr(step, total_steps, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            examples = [source[s][i] for s, i in batch]
            # The loss is a mean over every labelled word (or text) of the global batch, whatever its split into
            # processes and micro-batches: each piece sums its losses and divides by the global count.
            n_labelled = sum(e["label"] != -100 if "label" in e else sum(l != -100 for l in e["labels"])
                             for e in examples)
            n_pieces = sum(len(e["ids"]) for e in examples)  # the teacher's terms are means over every real word piece
            mine = examples[rank::world]
            micro = [mine[i::cfg.grad_accum] for i in range(cfg.grad_accum)]
            step_loss = torch.zeros((), device=device)
            step_terms = torch.zeros(3, device=device)  # with a teacher: the labels, hidden and attention terms
            for k, mb in enumerate(micro):
                ids, mask, labels_t = collate(mb, device)
                soft, has_soft = soft_targets(mb, labels_t, len(labels))
                sync = nullcontext() if world == 1 or k == len(micro) - 1 else model.no_sync()
                with sync:
                    with autocast(device, bf16):
                        if teacher is None:
                            logits, _ = model(ids, mask)
                        else:  # the student's logits, hidden states (through W) and attention; the frozen teacher's
                            logits, hidden, probs = model(ids, mask)
                            with torch.no_grad():
                                t_hidden, t_probs = teacher.bert.internals(ids, mask, teacher_attend)
                    loss = loss_sum(logits, labels_t, soft.to(device), has_soft.to(device), cfg)
                    loss = loss * world / max(1, n_labelled)  # DDP averages over processes; undo that
                    if teacher is not None:  # (hidden, attention): sums over pieces / the global count, as above
                        terms = intermediate_loss_sums((hidden, probs), (t_hidden, t_probs), mask, layer_map)
                        terms = terms / max(1, n_pieces)
                        step_terms += torch.cat([loss.detach().view(1) / world, terms.detach()])
                        loss = loss + world * (cfg.hidden_weight * terms[0] + attn_weight * terms[1])
                    loss.backward()
                step_loss += loss.detach() / world
                train_tokens += int(mask.sum())
            if world > 1:  # each process holds its share of the loss; the printed loss is the whole batch's
                dist.all_reduce(step_loss)
                if teacher is not None:
                    dist.all_reduce(step_terms)
            step_loss = step_loss.item()
            terms_now = step_terms.tolist() if teacher is not None else None
            if terms_now:
                term_sums = [a + b for a, b in zip(term_sums, terms_now)]
            if not math.isfinite(step_loss):  # every process sees the same reduced loss, so all stop here
                raise SystemExit(f"error: the loss became {step_loss} at step {step + 1} of {total_steps}; "
                                 "nothing after it is saved. Usual causes: a learning rate too high for this model "
                                 f"(--lr {cfg.lr:g}; a student from random weights or a bigger batch may need less), "
                                 "--grad_clip 0, or a soft label that is not a distribution (NaN or negative "
                                 "probabilities in --distilled). The last checkpoint in "
                                 f"{ckpt_dir} is from before it; rerun with a lower --lr and --restart 1")
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            train_time += time.perf_counter() - t0
            bar.update(1)
            shown = dict(zip(("labels", "hidden", "attn"), (f"{x:.4f}" for x in terms_now))) if terms_now else {}
            bar.set_postfix(loss=f"{step_loss:.4f}", **shown, lr=f"{lr:.2e}",
                            tok_s=f"{train_tokens * world / train_time:.0f}")
            if master and not cfg.progress and (step + 1) % max(1, total_steps // 20) == 0:  # logs without a bar
                print(f"step {step + 1}/{total_steps}: loss {step_loss:.4f}"
                      + (f" ({', '.join(f'{k} {v}' for k, v in shown.items())})" if shown else "")
                      + f", lr {lr:.2e}, {train_tokens * world / train_time:.0f} tokens/s", flush=True)

            # dev evaluation at intervals and at the last step (the best dev state is kept); a checkpoint with each,
            # and between them every --ckpt_minutes of training (or --ckpt_every steps)
            new_best, evaluated = False, (step + 1) % eval_every == 0 or step == total_steps - 1
            if evaluated and master:
                scores, _ = evaluate(ex_dev, dev, gold_dev)
                history.append({"step": step + 1, "loss": step_loss, f"dev_{key}": scores[key]})
                bar.write(f"step {step + 1}: loss {step_loss:.4f}, "
                          f"dev {'F1' if ner else 'accuracy'} {100 * scores[key]:.2f}")
                if scores[key] > best_dev[key]:
                    best_dev, best_step, best_file, new_best = scores, step + 1, f"best-{step + 1}.pt", True
                    best_state = {k: v.detach().clone() for k, v in raw_model.state_dict().items()}
            due = (cfg.ckpt_every > 0 and (step + 1) % cfg.ckpt_every == 0
                   or cfg.ckpt_every == 0 and cfg.ckpt_minutes > 0
                      and train_time - last_ckpt[1] >= 60 * cfg.ckpt_minutes)
            stop = stop_asked() and step < total_steps - 1
            if (evaluated or due or stop) and step < total_steps - 1:  # after the last step the run is written out
                checkpoint(new_best)
                last_ckpt = (step + 1, train_time)
            if stop:
                bar.close()
                log(f"stopped after step {step + 1} of {total_steps}: checkpoint in {ckpt_dir}; "
                    "run the same command to resume")
                raise SystemExit(130)
        bar.close()

    # the best dev checkpoint, saved and scored on test
    metrics = None
    if master:
        raw_model.load_state_dict(best_state)
        save_pretrained(raw_model, os.path.join(cfg.out_dir, "model"), model_dir)
        extra = {}
        if ner:
            # the chosen decoding, and argmax beside it: what constrained decoding adds, on the same logits
            test_preds, argmax_preds = predict(raw_model, test, ex_test, device, decodes=(cfg.decode, "argmax"),
                                               **batching)
            test_scores, extra["test_f1_argmax"] = (span_f1(gold_test, test_preds),
                                                    span_f1(gold_test, argmax_preds)["f1"])
            write_conll(os.path.join(cfg.out_dir, "test_predictions.conll"),
                        [list(zip(words, gold, pred)) for (words, gold), pred in zip(test, test_preds)])
        else:
            test_scores, test_preds = evaluate(ex_test, test, gold_test)
            write_jsonl(os.path.join(cfg.out_dir, "test_predictions.jsonl"),
                        [{"text": text, "gold": gold, "pred": pred} for (text, gold, _), pred in zip(test, test_preds)])
        d_share = sampler.realised
        metrics = {
            "task": cfg.task, "dev": best_dev, "test": test_scores, **extra,
            "best_step": best_step, "total_steps": total_steps,
            "train_seconds": train_time, "train_tokens_per_s": train_tokens * world / max(train_time, 1e-9),
            "checkpoint_seconds": ckpt_time, "checkpoints": n_ckpt, "resumed": bool(resume),
            "strategy": cfg.strategy, "schedule": getattr(schedule, "describe", cfg.schedule),
            "realised_d_share": sum(d_share) / max(1, len(d_share)), "realised_d_share_per_step": d_share,
            "history": history, "world_size": world, "precision": "bf16" if bf16 else "fp32", "config": asdict(cfg),
        }
        if teacher is not None:  # what each term contributed: its mean over the steps, before its weight
            metrics["teacher"] = {"layer_map": layer_map, "hidden_weight": cfg.hidden_weight,
                                  "attn_weight": attn_weight,
                                  "attention_layers": [len(layer_map) - 1, *teacher_attend] if teacher_attend else None,
                                  "projection": isinstance(trained.proj, nn.Linear)}
            metrics["loss_terms"] = dict(zip(("labels", "hidden", "attention"), (x / total_steps for x in term_sums)))
        metrics["wall_seconds"] = time.perf_counter() - started  # this try of the job: loading, training, evaluation
        metrics["record"] = provenance(command_line("train.py", cfg), precision=metrics["precision"])
        atomic_write(os.path.join(cfg.out_dir, "metrics.json"), json.dumps(metrics, indent=1))
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # finished: metrics.json and model/ are the run
        what = "F1" if ner else "accuracy"
        log(f"best dev {what} {100 * best_dev[key]:.2f} at step {best_step}; test {what} {100 * test_scores[key]:.2f}"
            + ("" if ner else f", macro-F1 {100 * test_scores['macro_f1']:.2f}")
            + f"; {train_time:.0f} s training, {metrics['train_tokens_per_s']:.0f} tokens/s -> {cfg.out_dir}")
    if world > 1:
        dist.destroy_process_group()
    return metrics


if __name__ == "__main__":
    run_main(lambda: train(parse_args()))
