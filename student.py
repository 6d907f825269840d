"""
Students: smaller BERTs built from a bigger one (model.py's), the models students.py and train.py --student train.

A student is named L<layers>-H<hidden>. At the teacher's width it keeps the teacher's embeddings, pooler
and head and L of its layers (`student_layers`): by default the BOTTOM ones (for fine-tuning, dropping the
top layers loses least: Sajjad et al., "On the effect of dropping layers of pre-trained transformer
models", 2023), or SPREAD from bottom to top as DistilBERT took every other one; its config records which
(`teacher_layers`, a plain field of config.json that transformers keeps and ignores).
Narrower, no layer can be copied; the word embeddings keep the most they can: the teacher's matrix
E (vocab x H) is projected on its top-h right singular vectors V_h (truncated SVD, E V_h = U_h S_h, the
best rank-h summary of E), position and segment embeddings through the same V_h; the layers, pooler
and head start from random weights, with heads of the teacher's head size and a 4h feed-forward.
init="random" starts everything from random weights (the same shapes).

    python model.py [MODEL_DIR]     # the parameter counts of a BERT folder and of its students (STUDENTS)
"""
import re
from dataclasses import replace

import torch

STUDENTS = {  # the presets `python model.py` prints; any L<n>-H<h> works
    "L3-H384": "the bottom 3 of MiniLM's 6 layers: half the encoder",
    "L2-H384": "its bottom 2 layers: the distilled NER student (students.py)",
    "L1-H384": "MiniLM's first layer alone",
    "L2-H192": "2 layers of width 192, embeddings by truncated SVD: over 10x fewer encoder parameters",
}


def parse_student(spec):
    m = re.fullmatch(r"L(\d+)-H(\d+)", spec)
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise ValueError(f"student {spec!r}: expected L<layers>-H<hidden>, e.g. L2-H192")
    return int(m[1]), int(m[2])


def student_layers(n_teacher, n_student, how="bottom"):
    """The teacher layer m(i) that each student layer i stands for, bottom to top: at the teacher's width the
    student starts as a copy of those layers, and train.py --teacher matches student layer i to teacher layer m(i).
    bottom: m(i) = i.
    spread: m(i) = round(i (n_t - 1) / (L - 1)), halves up: the bottom layer (it reads the embeddings), the top one
      (the head reads it) and evenly between; a single layer is the bottom one. DistilBERT's 6 of 12 are this rule
      ([0, 2, 4, 7, 9, 11]); of MiniLM's 6: L2 -> [0, 5], L3 -> [0, 3, 5], L4 -> [0, 2, 3, 5].
    "i,j,...", or a list: those layers, increasing."""
    if how == "bottom":
        picks = list(range(n_student))
    elif how == "spread":
        picks = [(2 * i * (n_teacher - 1) + n_student - 1) // (2 * (n_student - 1)) if n_student > 1 else 0
                 for i in range(n_student)]
    else:
        try:
            picks = [int(j) for j in how.split(",")] if isinstance(how, str) else [int(j) for j in how]
        except ValueError:
            picks = []
        if len(picks) != n_student or picks != sorted(set(picks)) or picks[0] < 0:
            raise ValueError(f"student layers {how!r}: expected bottom, spread or {n_student} increasing teacher "
                             f"layer indices, e.g. {','.join(map(str, range(n_student)))}")
    if picks[-1] >= n_teacher:
        raise ValueError(f"student layers {how!r}: a student of {n_student} layers needs teacher layers up to "
                         f"{picks[-1]}; the teacher has {n_teacher} (0..{n_teacher - 1})")
    return picks


def make_student(teacher, spec, init="pretrained", layers="bottom"):
    """A smaller model of the teacher's kind (same head, labels, vocabulary) as described above; `layers`:
    which teacher layers a student of the teacher's width copies (student_layers)."""
    n_layers, hidden = parse_student(spec)
    t = teacher.config
    head_size = t.hidden_size // t.num_attention_heads
    if n_layers > t.num_hidden_layers or hidden > t.hidden_size or hidden % head_size:
        raise ValueError(f"student {spec}: needs at most {t.num_hidden_layers} layers, a width of at most "
                         f"{t.hidden_size} and a multiple of the head size {head_size}")
    picks = student_layers(t.num_hidden_layers, n_layers, layers)
    narrow = hidden < t.hidden_size
    cfg = replace(t, num_hidden_layers=n_layers, hidden_size=hidden, num_attention_heads=hidden // head_size,
                  intermediate_size=4 * hidden if narrow else t.intermediate_size, id2label=dict(t.id2label),
                  teacher_layers=None, context=None)
    student = type(teacher)(cfg)
    if init == "random":
        return student
    if init != "pretrained":
        raise ValueError(f"student init {init!r}: expected pretrained or random")
    with torch.no_grad():
        if not narrow:
            own = student.state_dict()
            rename = {f"bert.encoder.layer.{j}.": f"bert.encoder.layer.{i}." for i, j in enumerate(picks)}
            for k, v in teacher.state_dict().items():
                m = re.match(r"bert\.encoder\.layer\.\d+\.", k)
                if m:  # a chosen layer goes to its place in the student; the others are dropped
                    if m[0] not in rename:
                        continue
                    k = rename[m[0]] + k[m.end():]
                own[k].copy_(v)  # and the embeddings, the pooler and the head by their own names
            cfg.teacher_layers = picks
            return student
        E = teacher.bert.embeddings
        V = torch.linalg.svd(E.word_embeddings.weight.float(), full_matrices=False)[2][:hidden].T  # (H, h)
        S = student.bert.embeddings
        for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            getattr(S, name).weight.copy_(getattr(E, name).weight.float() @ V)
    return student
