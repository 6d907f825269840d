"""
What a student learns from a teacher, as losses with their maths beside them: soft labels (KL at temperature T),
and with `train.py --teacher` the teacher's hidden states (MSE) and attention (KL), through a learned projection
where the widths differ. train.py's loop calls these; they are tested against hand computations.

    python -m pytest -q tests/test_distill.py tests/test_intermediate.py

Soft labels: where an example has a teacher's distribution over the labels, its loss is
kd_alpha x cross entropy with the hard label + (1 - kd_alpha) x T^2 x KL at temperature T (`distillation_loss`);
elsewhere it is plain cross entropy (`loss_sum`).

Intermediate distillation (`Teacher`): the teacher runs, frozen, on every micro-batch; the student's hidden states
and last-layer attention learn its. The layer map m is --match_layers, or else --student_layers
(student.student_layers): the embeddings match the embeddings, student layer i matches teacher layer m(i), and the
attention of the student's last layer matches that of teacher layer m(L - 1) (the teacher's top with spread). Both
terms are sums over real word pieces, which the loop divides by the count of real pieces in the global batch: a mean
per piece that grad accumulation and processes leave unchanged, as they leave loss_sum's. The teacher runs up to the
deepest layer matched only: the layers above shape no target.

A teacher that reads documents beside a student that reads sentences (--teacher_context, by default the --context the
teacher was trained with): the teacher reads each training sentence in its document, [CLS] left sentence right
[SEP], the student [CLS] sentence [SEP] (teacher_views pairs the two windows). The targets are the teacher's states at
the sentence's own pieces, and the attention of those pieces over those pieces, renormalised to sum to 1: what the
teacher attends to within the sentence, having read its document (at_student_pieces). Read alone, a model trained
with context is 2 to 3 F1 worse (results/context.md), so its states on a sentence alone would teach that weaker model.

The teacher is frozen, so its targets for a window are the same every epoch: with --cache_teacher 1 they are written
to a file the first time and read back after (TargetCache), and the epochs after the first run the student alone.
"""
import json
import os
from array import array

import torch
import torch.nn as nn
import torch.nn.functional as F

from cli import DataError
from model import check_model_dir, from_pretrained, load_tokenizer
from predict import collate, reading_context
from student import student_layers

# ---------------------------------------------------------------------------------------------
# The labels term: cross entropy with hard labels, KL divergence with a teacher's soft labels


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
# The teacher's terms: hidden states and attention


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


class StudentWithProjection(nn.Module):
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


def flag_errors(cfg):
    """train.py's checks of the flags of students and distillation: (failed, one-line message) pairs, as in its
    check_config, so that a mistake stops the run before anything is loaded."""
    def layers_spec(value):  # student.student_layers' forms: bottom, spread or teacher layer indices
        return value in ("bottom", "spread") or value.replace(",", "").isdigit()
    return [
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
        (cfg.teacher_context < -1, f"--teacher_context {cfg.teacher_context}: expected 0 or more word pieces, or -1 "
                                   "(as the teacher was trained)"),
        (cfg.teacher_context != -1 and not cfg.teacher, f"--teacher_context {cfg.teacher_context} needs --teacher"),
        (cfg.cache_teacher not in (0, 1), f"--cache_teacher {cfg.cache_teacher}: expected 0 or 1"),
        (cfg.cache_teacher and not cfg.teacher, "--cache_teacher 1 needs --teacher"),
        (cfg.teacher_context > 0 and cfg.task != "ner",
         f"--teacher_context {cfg.teacher_context}: context is for ner (a text is read whole)"),
        (cfg.student_init not in ("pretrained", "random"),
         f"--student_init {cfg.student_init!r}: expected pretrained or random")]


def check_teacher(cfg, model_dir, want):
    """Refuse, in one line, a --teacher this run cannot learn from, before any data is read: not a model folder, a
    classifier of the other kind than `want` (token or sequence), or another vocabulary than model_dir's (the teacher
    reads the student's pieces)."""
    try:
        check_model_dir(cfg.teacher)
    except DataError as e:
        raise DataError(f"--teacher {e}") from None
    with open(os.path.join(cfg.teacher, "config.json"), encoding="utf-8") as f:
        architectures = " ".join(json.load(f).get("architectures") or [])
    kind = ("sequence" if "SequenceClassification" in architectures else
            "token" if "TokenClassification" in architectures else None)  # None: a bare encoder, fine for both
    if kind and kind != want:
        raise DataError(f"--teacher {cfg.teacher}: a {kind} classifier, but --task {cfg.task} trains a {want} "
                        f"classifier: give a teacher trained with --task {cfg.task}")
    if load_tokenizer(cfg.teacher).get_vocab() != load_tokenizer(model_dir).get_vocab():
        raise DataError(f"--teacher {cfg.teacher}: its vocabulary is not that of {model_dir}: the teacher must read "
                        "the student's word pieces")


def teacher_reading(cfg):
    """The --context N the teacher of --teacher reads the training sentences with: --teacher_context, or with -1 the
    student's N where the student reads with context, and where it reads sentences alone the N the teacher was
    trained with (its config.json: predict.reading_context). 0 without a teacher."""
    if not cfg.teacher:
        return 0
    if cfg.teacher_context == -1 and cfg.context:
        return cfg.context
    reads = reading_context(cfg.teacher, None if cfg.teacher_context == -1 else cfg.teacher_context)
    if cfg.context and reads != cfg.context:
        raise DataError(f"--teacher_context {reads} with --context {cfg.context}: a student that reads with context "
                        "learns beside a teacher that reads the same windows; only a student of sentences alone "
                        "(--context 0) learns from a teacher that reads more")
    return reads


def teacher_views(examples, teacher_examples):
    """The student's examples, each with "teacher": the same window as the teacher reads it, in its document, and
    where each of the student's pieces sits in it. The student reads [CLS] sentence [SEP], the teacher [CLS] left
    sentence right [SEP] (predict.encode with its --context): the sentence's piece k is at 1 + len(left) + k there,
    [CLS] at 0 and [SEP] last. teacher_examples: encode's of the same sentences, in the same order."""
    out = []
    for s, t in zip(examples, teacher_examples, strict=True):
        assert (s["sent"], s["first_word"]) == (t["sent"], t["first_word"]) and s["starts"][0] == 1, "not one window"
        shift, n = t["starts"][0] - 1, len(s["ids"]) - 2  # len(left); the sentence's pieces
        pos = [0] + [shift + k for k in range(1, n + 1)] + [len(t["ids"]) - 1]
        assert [t["ids"][p] for p in pos] == s["ids"], "the teacher's window does not hold the student's pieces"
        out.append({**s, "teacher": (t["ids"], pos)})
    return out


def at_student_pieces(hidden, probs, pos):
    """The teacher's states (B, T_t, H) and attention (B, heads, T_t, T_t), read with context, at the student's
    pieces: pos (B, T_s) is where each sits in the teacher's window, -1 on the student's padding. The attention of
    each of the sentence's pieces over the sentence's pieces, renormalised to sum to 1: what the teacher attends to
    within the sentence, the only keys the student has (its share of the context is left out). Padding gets 0."""
    real, at = pos >= 0, pos.clamp(min=0)
    B, T = pos.shape
    hidden = [h.gather(1, at[:, :, None].expand(B, T, h.size(-1))) for h in hidden]
    out = {}
    for i, p in probs.items():
        heads = p.size(1)
        rows = p.gather(2, at[:, None, :, None].expand(B, heads, T, p.size(-1)))  # the student's queries
        a = rows.gather(3, at[:, None, None, :].expand(B, heads, T, T)) * real[:, None, None, :]  # and keys
        out[i] = a / a.sum(-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)
    return hidden, out


class TargetCache:
    """--cache_teacher 1: the teacher's targets of each training window, written to a file the first time the window
    is read and read back once every window of a micro-batch has been read before. The teacher is frozen (eval mode,
    no dropout), so a window's targets are the same each epoch and the epochs after the first need no teacher. A
    micro-batch with a window not read before runs the teacher, number for number as without the cache, so the first
    epoch is that run's; after it a window's targets are those of the batch it was first read in, which differ from a
    recomputation only in the last bits (a batch's padding shapes the kernels' sums), as they already differ from
    epoch to epoch without the cache. Keyed by content: the student's pieces and the teacher's window. On disk, not
    in memory: for CoNLL + BBC's 1.5 M word pieces, three states of 384 and one layer's attention, about 9 GB in
    fp32 (CoNLL's training set alone: 1.67 GB); close() removes the file."""

    def __init__(self, path, states, attend):
        self.path, self.states, self.attend, self.at = path, states, attend, {}  # key -> [(offset, shape, dtype)]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.file, self.size = open(path, "w+b"), 0

    @staticmethod
    def key(e):  # as bytes: tuples of ints would hold 36 bytes a piece, hundreds of MB for a large set
        return array("i", e["ids"]).tobytes(), array("i", e["teacher"][0] if "teacher" in e else []).tobytes()

    def put(self, examples, targets):
        """Write each example's share of a micro-batch's targets (hidden, probs): the rows of its own pieces."""
        hidden, probs = targets
        for b, e in enumerate(examples):
            k, n = self.key(e), len(e["ids"])
            if k in self.at:
                continue
            parts = [hidden[i][b, :n] for i in self.states] + [probs[i][b, :, :n, :n] for i in self.attend]
            self.at[k] = []
            for t in parts:
                raw = t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()
                self.file.seek(self.size)
                self.file.write(raw)
                self.at[k].append((self.size, tuple(t.shape), t.dtype))
                self.size += len(raw)

    def get(self, examples, T, n_states, device):
        """The micro-batch's targets as Teacher.targets gives them, padded to T pieces with zeros (the losses never
        read padding), where every example's are on file; else None. hidden[i] is None for a state no term reads."""
        where = [self.at.get(self.key(e)) for e in examples]
        if any(w is None for w in where):
            return None
        n, B = len(self.states), len(examples)
        hidden = [None] * n_states
        for j, i in enumerate(self.states):  # (n, H) each -> (B, T, H)
            out = torch.zeros(B, T, where[0][j][1][-1], dtype=where[0][j][2])
            for b, w in enumerate(where):
                t = self.read(*w[j])
                out[b, :len(t)] = t
            hidden[i] = out.to(device)
        probs = {}
        for j, i in enumerate(self.attend, start=n):  # (heads, n, n) each -> (B, heads, T, T)
            out = torch.zeros(B, where[0][j][1][0], T, T, dtype=where[0][j][2])
            for b, w in enumerate(where):
                t = self.read(*w[j])
                out[b, :, :t.size(1), :t.size(2)] = t
            probs[i] = out.to(device)
        return hidden, probs

    def read(self, offset, shape, dtype):
        self.file.seek(offset)
        return torch.frombuffer(bytearray(self.file.read(torch.Size(shape).numel() * dtype.itemsize)),
                                dtype=dtype).view(shape)

    def close(self):
        self.file.close()
        os.remove(self.path)


class Teacher:
    """The frozen teacher of --teacher and what the student learns from it: the layer map m, the attention term's
    weight, and `student`, the student with its projection W (what the optimizer trains). It runs up to the deepest
    layer matched, reading each sentence with --teacher_context (teacher_reading) of its document: where the student
    reads the sentence alone, the teacher's states on the sentence's pieces are the targets (at_student_pieces).
    With --cache_teacher 1 each window's targets are kept on file (TargetCache) and the teacher runs once a window."""

    def __init__(self, cfg, student, device, verbose=True):
        with torch.random.fork_rng(devices=[]):  # the student's training draws the same numbers with or without one
            try:
                model = from_pretrained(cfg.teacher, verbose=verbose, sdpa=bool(cfg.sdpa))
                self.layer_map = student_layers(model.config.num_hidden_layers, student.config.num_hidden_layers,
                                                cfg.match_layers or cfg.student_layers)
            except ValueError as e:
                raise DataError(f"--teacher {cfg.teacher}: {e}") from None
            s_heads, t_heads = student.config.num_attention_heads, model.config.num_attention_heads
            self.attn_weight = cfg.attn_weight if cfg.attn_weight >= 0 else float(s_heads == t_heads)
            if self.attn_weight > 0 and s_heads != t_heads:
                raise DataError(f"--attn_weight {cfg.attn_weight:g}: the attention term needs as many heads in the "
                                f"student as in the teacher ({t_heads}); this student has {s_heads}: "
                                "pass --attn_weight 0")
            attend = (len(self.layer_map) - 1,) if s_heads == t_heads else ()
            self.student = StudentWithProjection(student, model.config.hidden_size, attend).to(device)
        self.model = model.to(device).eval().requires_grad_(False)
        self.attend = (self.layer_map[-1],) if attend else ()  # the teacher layer whose attention is matched
        self.name, self.hidden_weight, self.reads = cfg.teacher, cfg.hidden_weight, cfg.teacher_context
        self.depth = max(self.layer_map)  # the layers above it shape no target: never run
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        states = sorted({0, *(j + 1 for j in self.layer_map)})  # the embeddings' and the matched layers'
        self.cache = (TargetCache(os.path.join(cfg.out_dir, f"teacher_targets.{rank}.bin"), states, self.attend)
                      if cfg.cache_teacher else None)
        self.read_back = 0  # micro-batches whose targets came from the cache

    def describe(self):
        s_width, t_width = self.student.student.config.hidden_size, self.model.config.hidden_size
        return (f"teacher {self.name}: student layer i <- teacher layer m(i): "
                + ", ".join(f"{i} <- {j}" for i, j in enumerate(self.layer_map))
                + f"; weights: hidden {self.hidden_weight:g}, attention {self.attn_weight:g}"
                + (f", W: {s_width} -> {t_width}" if isinstance(self.student.proj, nn.Linear) else "")
                + (f"; it reads each sentence with --context {self.reads} of its document" if self.reads else "")
                + (f"; its targets kept in {self.cache.path} for the later epochs" if self.cache else ""))

    def targets(self, examples, ids, mask):
        """The teacher's hidden states and matched attention on a micro-batch (examples; ids and mask their
        collate), without gradients: at the student's pieces where the examples carry teacher_views. With the cache,
        read back where every window has been read before, and kept where one is new."""
        got = self.cache and self.cache.get(examples, ids.size(1), self.depth + 2, ids.device)
        self.read_back += bool(got)
        if got:
            return got
        targets = self.run(examples, ids, mask)
        if self.cache:
            self.cache.put(examples, targets)
        return targets

    def run(self, examples, ids, mask):
        with torch.no_grad():
            if "teacher" not in examples[0]:
                return self.model.bert.internals(ids, mask, self.attend, upto=self.depth)
            t_ids, t_mask, _ = collate([{"ids": e["teacher"][0], "label": -100} for e in examples], ids.device)
            pos = torch.full(ids.shape, -1, dtype=torch.long)
            for i, e in enumerate(examples):
                pos[i, :len(e["teacher"][1])] = torch.tensor(e["teacher"][1])
            hidden, probs = self.model.bert.internals(t_ids, t_mask, self.attend, upto=self.depth)
            return at_student_pieces(hidden, probs, pos.to(ids.device))

    def terms(self, student_internals, targets, mask, n_pieces):
        """(hidden, attention): the sums over this micro-batch's pieces / the global batch's count of pieces."""
        return intermediate_loss_sums(student_internals, targets, mask, self.layer_map) / max(1, n_pieces)

    def weighted(self, terms):
        return self.hidden_weight * terms[0] + self.attn_weight * terms[1]

    def close(self):
        """Remove the cache's file, if there is one: it is the run's scratch, not its result."""
        if self.cache:
            self.cache.close()
            self.cache = None

    def record(self):
        """metrics.json's "teacher": the layer map and the weights."""
        return {"layer_map": self.layer_map, "hidden_weight": self.hidden_weight, "attn_weight": self.attn_weight,
                "attention_layers": [len(self.layer_map) - 1, *self.attend] if self.attend else None,
                "projection": isinstance(self.student.proj, nn.Linear),
                **({"context": self.reads} if self.reads else {}),  # the --context it read the sentences with
                **({"read_back": self.read_back} if self.read_back else {})}  # micro-batches the cache answered
