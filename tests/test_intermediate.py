"""Intermediate-layer distillation (train.py --teacher): the two losses against hand computations, zero for a student
that is its teacher, the model's hidden states and attention against transformers, the layer rule, and smoke runs:
a spread student trained beside its teacher, exact resume, the same run as without a teacher when the new terms weigh
nothing, grad accumulation, and refusals; a teacher that stops at its deepest matched layer, and one that reads
documents beside a student that reads sentences, and the teacher's targets kept on file for the later epochs."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file

from common import ROOT, write_tiny_conll
from cli import DataError
from data import read_conll, write_conll
from distill import (StudentWithProjection, Teacher, attention_loss, distillation_loss, hidden_loss,
                     intermediate_loss_sums, teacher_views)
from model import BertConfig, BertForTokenClassification, default_model_dir, from_pretrained, load_tokenizer
from predict import collate, encode, label_tokens
from student import make_student, student_layers
from train import Config, train

LABELS = {0: "O", 1: "B-PER", 2: "I-PER"}


# ------------------------------------------------------------------------------------------ the losses by hand

def test_hidden_loss_equals_a_hand_computation():
    # two matched layers, one sentence of 3 pieces, the last one padding: its states must not count
    s = [torch.tensor([[[1., 2.], [3., 4.], [9., 9.]]]), torch.tensor([[[0., 0.], [1., 1.], [5., 5.]]])]
    t = [torch.tensor([[[1., 0.], [0., 4.], [0., 0.]]]), torch.tensor([[[1., 1.], [1., -1.], [0., 0.]]])]
    mask = torch.tensor([[1., 1., 0.]])
    # layer 0: piece 0 (0 + 4) / 2 = 2, piece 1 (9 + 0) / 2 = 4.5
    # layer 1: piece 0 (1 + 1) / 2 = 1, piece 1 (0 + 4) / 2 = 2
    # mean over the layers: 1.5 and 3.25; summed over the real pieces: 4.75
    assert float(hidden_loss(s, t, mask)) == pytest.approx(4.75)
    # and through W at another width, against numpy: W h_s + b, squared error, mean over d and layers, sum over pieces
    rng = np.random.default_rng(0)
    hs, ht = rng.normal(size=(3, 2, 5, 4)), rng.normal(size=(3, 2, 5, 6))  # (layers, B, T, H)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=float)
    proj = torch.nn.Linear(4, 6).double()
    W, b = proj.weight.detach().numpy(), proj.bias.detach().numpy()
    hand = ((((hs @ W.T + b) - ht) ** 2).mean(-1).mean(0) * mask).sum()
    ours = hidden_loss([proj(torch.tensor(h)) for h in hs], list(torch.tensor(ht)), torch.tensor(mask))
    assert ours.item() == pytest.approx(hand, rel=1e-6)  # in float32


def test_attention_loss_equals_a_hand_computation_and_padding_gives_no_nan():
    # one query, one head: teacher (1/2, 1/2, pad), student (1/4, 3/4, pad):
    # KL = 1/2 ln(1/2 / 1/4) + 1/2 ln(1/2 / 3/4) = 1/2 ln(4/3)
    p, q = torch.tensor([0.5, 0.5, 0.0]).view(1, 1, 1, 3), torch.tensor([0.25, 0.75, 0.0]).view(1, 1, 1, 3)
    assert float(attention_loss(q, p, torch.ones(1, 1))) == pytest.approx(0.5 * np.log(4 / 3), rel=1e-6)
    # against numpy: 2 sentences, 3 heads, 4 pieces, the second sentence with 2 real pieces
    rng = np.random.default_rng(1)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=float)
    pt = rng.dirichlet(np.ones(4), size=(2, 3, 4)) * mask[:, None, None, :]
    pt[0, 1, 2] = [0.0, 0.3, 0.7, 0.0]  # a key the teacher ignores: no term
    pt /= pt.sum(-1, keepdims=True)
    scores = torch.tensor(rng.normal(size=(2, 3, 4, 4)), requires_grad=True)
    qs = scores.masked_fill(torch.tensor(mask == 0)[:, None, None, :], float("-inf")).softmax(-1)  # 0 on padded keys
    qn = qs.detach().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(pt > 0, pt * (np.log(pt) - np.log(qn)), 0.0).sum(-1)  # (B, heads, queries)
    hand = (kl.mean(1) * mask).sum()  # mean over heads, sum over the real queries
    ours = attention_loss(qs, torch.tensor(pt), torch.tensor(mask))
    assert ours.item() == pytest.approx(hand, rel=1e-6)  # in float32
    ours.backward()
    assert torch.isfinite(scores.grad).all()  # 0 log 0 on the padded keys gives no 0/0 in the gradient


def small_bert(seed=0, layers=3):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=40, id2label=LABELS)
    return BertForTokenClassification(cfg).eval()


def batch(vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000 if vocab > 2000 else 1, vocab, (3, 17), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    return ids, mask


def test_a_student_that_is_its_teacher_gives_zero_for_every_term():
    model = small_bert()
    ids, mask = batch(300)
    layer_map = student_layers(3, 3, "bottom")
    with torch.no_grad():
        logits, hidden, probs = StudentWithProjection(model, 32, attend=(2,))(ids, mask)  # the student's path in train.py
        teacher = model.bert.internals(ids, mask, attentions=(layer_map[-1],))
        sums = intermediate_loss_sums((hidden, probs), teacher, mask, layer_map)
        assert sums.tolist() == [0.0, 0.0]  # exactly: the same numbers on both sides
        # the logits term, KL of the student's logits against its own softmax, is 0 up to rounding (log of a softmax)
        kd = distillation_loss(logits, logits.softmax(-1), 2.0)
    assert kd.abs().max().item() < 1e-6


# ------------------------------------------------------------------------------------------ the model's internals

@pytest.mark.parametrize("sdpa", [True, False], ids=["fused", "step-by-step"])
def test_hidden_states_and_attentions_equal_transformers(sdpa):
    ours = from_pretrained(default_model_dir(), verbose=False, sdpa=sdpa).eval()
    hf = transformers.BertModel.from_pretrained(default_model_dir(), add_pooling_layer=False,
                                                attn_implementation="eager").eval()  # eager: it returns the attentions
    ids, mask = batch(30522, seed=2)
    with torch.no_grad():
        hidden, probs = ours.bert.internals(ids, mask, attentions=(0, 5))
        ref = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        logits = ours(ids, mask)[0]
    real = mask.bool()
    assert len(hidden) == len(ref.hidden_states) == 7 and set(probs) == {0, 5}
    for a, b in zip(hidden, ref.hidden_states):
        assert (a[real] - b[real]).abs().max().item() < 1e-4
    for i in (0, 5):  # (B, heads, T, T): every real query's distribution over the keys, 0 on padded keys
        a, b = probs[i].transpose(1, 2)[real], ref.attentions[i].transpose(1, 2)[real]  # (real queries, heads, T)
        assert (a - b).abs().max().item() < 1e-5
        assert torch.allclose(a.sum(-1), torch.ones(()), atol=1e-5)
        assert probs[i][1, :, :, 9:].abs().max().item() == 0.0  # sentence 1 has 9 real pieces
    assert torch.equal(ours.classifier(hidden[-1]), logits)  # the last state is what forward classifies


def test_the_spread_rule_keeps_bottom_and_top_and_gives_distilberts_layers():
    assert student_layers(12, 6, "spread") == [0, 2, 4, 7, 9, 11]  # DistilBERT's choice from BERT-base
    assert student_layers(6, 2, "spread") == [0, 5] and student_layers(6, 3, "spread") == [0, 3, 5]
    assert student_layers(6, 1, "spread") == [0] and student_layers(6, 6, "spread") == list(range(6))
    assert student_layers(6, 2, "bottom") == [0, 1] and student_layers(6, 2, "1,4") == [1, 4]
    for bad in ("4,1", "1", "0,6", "a,b", "1,1"):
        with pytest.raises(ValueError, match="student layers"):
            student_layers(6, 2, bad)


# ------------------------------------------------------------------------------------------ runs

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny CoNLL splits, a teacher (MiniLM trained for 3 steps) and its soft labels on the training sentences."""
    d = tmp_path_factory.mktemp("tiny")
    write_tiny_conll(str(d), n_train=80, n_eval=24)
    train(Config(data_dir=str(d), out_dir=str(d / "teacher"), max_steps=3, batch_size=8, eval_batch_size=32, bf16=0,
                 progress=0, lr=1e-3))
    teacher = str(d / "teacher" / "model")
    rows = [list(zip(words, tags)) for words, tags in read_conll(str(d / "train.txt"))]
    model = from_pretrained(teacher, verbose=False)
    soft = label_tokens(model, load_tokenizer(teacher), rows, torch.device("cpu"), soft=True, bf16=False)
    write_conll(str(d / "soft.conll"), soft)
    return d, teacher


def smoke(tiny, out, **kw):
    d, _ = tiny
    defaults = dict(data_dir=str(d), out_dir=str(out), max_steps=3, batch_size=8, eval_batch_size=32, progress=0,
                    bf16=0)
    return train(Config(**{**defaults, **kw}))


@pytest.mark.slow
def test_a_spread_student_learns_from_its_teacher_inside_the_loop(tiny, tmp_path):
    d, teacher = tiny
    m = smoke(tiny, tmp_path, student="L2-H384", student_layers="spread", model_dir=teacher, teacher=teacher,
              distilled=str(d / "soft.conll"), strategy="distilled")
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["teacher"]["layer_map"] == [0, 5] and on_disk["teacher"]["attention_layers"] == [1, 5]
    assert on_disk["teacher"]["attn_weight"] == 1.0 and not on_disk["teacher"]["projection"]
    terms = on_disk["loss_terms"]
    assert set(terms) == {"labels", "hidden", "attention"} and all(0 < v < 100 for v in terms.values()), terms
    assert m["realised_d_share"] == 1.0
    # the saved student is a plain BERT folder: it records its teacher layers and transformers gives the same logits
    folder = str(tmp_path / "model")
    assert json.loads(open(os.path.join(folder, "config.json")).read())["teacher_layers"] == [0, 5]
    ours = from_pretrained(folder, verbose=False).eval()
    hf = transformers.AutoModelForTokenClassification.from_pretrained(folder).eval()
    ids, mask = batch(30522, seed=3)
    with torch.no_grad():
        a, b = ours(ids, mask)[0], hf(input_ids=ids, attention_mask=mask).logits
    assert (a - b)[mask.bool()].abs().max().item() < 1e-4


@pytest.mark.slow
def test_a_bottom_student_matched_top_to_top(tiny, tmp_path):
    """--match_layers decouples the layers matched from the layers copied: bottom 0,1 copied, 0,5 matched, so the
    student's top layer and its attention learn the teacher's top, which the head it carries was trained on."""
    d, teacher = tiny
    m = smoke(tiny, tmp_path, student="L2-H384", student_layers="bottom", match_layers="spread", model_dir=teacher,
              teacher=teacher, distilled=str(d / "soft.conll"), strategy="distilled")
    assert m["teacher"]["layer_map"] == [0, 5] and m["teacher"]["attention_layers"] == [1, 5]
    assert json.loads((tmp_path / "model" / "config.json").read_text())["teacher_layers"] == [0, 1]
    # at the start the student's layer 1 is the teacher's layer 1, so matched with 5 it has much to learn; matched
    # with 1 nothing (dropout aside): the first step's hidden term tells the two maps apart
    same = smoke(tiny, tmp_path / "same", student="L2-H384", model_dir=teacher, teacher=teacher, max_steps=1,
                 dropout=0.0, distilled=str(d / "soft.conll"), strategy="distilled")
    top = smoke(tiny, tmp_path / "top", student="L2-H384", match_layers="0,5", model_dir=teacher, teacher=teacher,
                max_steps=1, dropout=0.0, distilled=str(d / "soft.conll"), strategy="distilled")
    assert same["teacher"]["layer_map"] == [0, 1] and same["loss_terms"]["hidden"] < 1e-6
    assert top["loss_terms"]["hidden"] > 1e-2 and same["loss_terms"]["labels"] == top["loss_terms"]["labels"]


@pytest.mark.slow
def test_a_teacher_whose_terms_weigh_nothing_trains_the_run_without_it(tiny, tmp_path):
    """The teacher path leaves the labels term, the dropout draws and the student's updates exactly as they were."""
    _, teacher = tiny
    kw = dict(student="L2-H384", student_layers="spread", model_dir=teacher, seed=2)
    a = smoke(tiny, tmp_path / "plain", **kw)
    b = smoke(tiny, tmp_path / "teacher", teacher=teacher, hidden_weight=0.0, attn_weight=0.0, **kw)
    assert b["loss_terms"]["attention"] > 0 and b["loss_terms"]["hidden"] > 0  # measured, weighing nothing
    wa, wb = (load_file(str(tmp_path / f / "model" / "model.safetensors")) for f in ("plain", "teacher"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a["history"] == b["history"] and a["test"] == b["test"]


@pytest.mark.slow
def test_with_a_teacher_grad_accumulation_equals_one_big_batch(tiny, tmp_path):
    """The hidden and attention terms are sums divided by the global count of pieces, as the labels term is."""
    _, teacher = tiny
    kw = dict(student="L2-H192", model_dir=teacher, teacher=teacher, dropout=0.0, seed=5, lr=1e-3)  # with W
    one = smoke(tiny, tmp_path / "one", **kw)
    acc = smoke(tiny, tmp_path / "acc", grad_accum=4, **kw)
    assert one["teacher"]["projection"] and one["teacher"]["attention_layers"] is None  # 6 heads against 12
    for k in ("labels", "hidden"):
        assert acc["loss_terms"][k] == pytest.approx(one["loss_terms"][k], rel=1e-5)
    wa, wb = (load_file(str(tmp_path / f / "model" / "model.safetensors")) for f in ("one", "acc"))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4


@pytest.mark.slow
def test_a_bad_teacher_is_refused_in_one_line(tiny, tmp_path):
    d, teacher = tiny
    seq = tmp_path / "seq"
    seq.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (seq / name).write_bytes((d / "teacher" / "model" / name).read_bytes())
    cfg = json.loads((seq / "config.json").read_text())
    (seq / "config.json").write_text(json.dumps({**cfg, "architectures": ["BertForSequenceClassification"]}))
    for folder, why in ((str(seq), "a sequence classifier, but --task ner trains a token classifier"),
                        (str(tmp_path / "nope"), "--teacher .*nope: no such model folder")):
        with pytest.raises(DataError, match=why) as e:
            smoke(tiny, tmp_path / "out", teacher=folder)
        assert "\n" not in str(e.value)
    for bad, why in (("spread", "--match_layers spread needs --teacher"), ("top", "--match_layers 'top': expected")):
        with pytest.raises(SystemExit, match=why):  # a flag's mistake: refused before anything runs
            smoke(tiny, tmp_path / "out", match_layers=bad, **({"teacher": teacher} if bad == "top" else {}))
    with pytest.raises(DataError, match="--attn_weight 1: the attention term needs as many heads .* --attn_weight 0"):
        smoke(tiny, tmp_path / "out", student="L2-H192", model_dir=teacher, teacher=teacher, attn_weight=1.0)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--data_dir", str(d), "--teacher", str(seq)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "a sequence classifier" in r.stderr, r.stderr


@pytest.mark.slow
def test_a_run_with_a_teacher_killed_and_resumed_ends_where_the_whole_run_ends(tiny, tmp_path):
    """W (the map to the teacher's width) and its optimizer moments live in the checkpoint, not in model/."""
    d, teacher = tiny
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def command(out):
        return [sys.executable, os.path.join(ROOT, "train.py"), "--data_dir", str(d), "--out_dir", str(out),
                "--model_dir", teacher, "--teacher", teacher, "--student", "L2-H192", "--student_layers", "spread",
                "--max_steps", "8", "--batch_size", "8", "--eval_every", "4", "--eval_batch_size", "32", "--lr", "1e-3",
                "--bf16", "0", "--ckpt_every", "1", "--progress", "0"]
    r = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    while not (out / "checkpoint" / "last.pt").exists() and proc.poll() is None:  # a step is done and saved
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert not (out / "metrics.json").exists()
    state = torch.load(str(out / "checkpoint" / "last.pt"), weights_only=True)
    assert state["proj"]["weight"].shape == (384, 192) and len(state["term_sums"]) == 3
    r = subprocess.run(command(out), capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0 and "resuming from" in r.stdout, r.stdout + r.stderr
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (tmp_path / "whole", out))
    timing = {"train_seconds", "train_tokens_per_s", "wall_seconds", "checkpoint_seconds", "checkpoints", "resumed",
              "config", "record"}  # config and record name the run's own --out_dir
    assert {k: v for k, v in ma.items() if k not in timing} == {k: v for k, v in mb.items() if k not in timing}
    wa, wb = (load_file(str(f / "model" / "model.safetensors")) for f in (tmp_path / "whole", out))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # bit for bit
    assert not any("proj" in k for k in wa)  # W is not part of the student


# ------------------------------------------------------------------------------------------ a teacher that reads
# documents beside a student that reads sentences (--teacher_context)

def test_the_teacher_stops_at_its_deepest_matched_layer_with_the_same_numbers():
    model = small_bert(layers=4)
    ids, mask = batch(300)
    with torch.no_grad():
        full, full_probs = model.bert.internals(ids, mask, attentions=(1,))
        cut, cut_probs = model.bert.internals(ids, mask, attentions=(1,), upto=1)
    assert len(full) == 5 and len(cut) == 3  # the embeddings, layers 0 and 1
    assert all(torch.equal(a, b) for a, b in zip(cut, full)) and torch.equal(cut_probs[1], full_probs[1])


@pytest.fixture(scope="module")
def context_teacher(tmp_path_factory):
    """Tiny CoNLL splits with their documents and a teacher trained on them with --context 16 (3 steps)."""
    d = tmp_path_factory.mktemp("docs")
    write_tiny_conll(str(d), n_train=80, n_eval=24, docs=True)
    train(Config(data_dir=str(d), out_dir=str(d / "teacher"), max_steps=3, batch_size=8, eval_batch_size=32, bf16=0,
                 progress=0, lr=1e-3, context=16))
    return d, str(d / "teacher" / "model")


def test_a_context_teachers_targets_are_its_own_reading_of_each_window_at_the_students_pieces(context_teacher):
    d, teacher = context_teacher
    tok, l2i = load_tokenizer(teacher), {"O": 0}
    sents, docs = read_conll(str(d / "train.txt"), docs=True)
    student = encode(sents[:12], tok, l2i, 128, docs=docs[:12])
    viewed = teacher_views(student, encode(sents[:12], tok, l2i, 128, context=16, docs=docs[:12]))
    assert any(len(e["teacher"][0]) > len(e["ids"]) for e in viewed)  # some sentences do read context
    cfg = Config(teacher=teacher, teacher_context=16, bf16=0)
    t = Teacher(cfg, from_pretrained(teacher, verbose=False), torch.device("cpu"), verbose=False)
    assert t.attend == (5,) and t.depth == 5 and "--context 16 of its document" in t.describe()
    ids, mask, _ = collate(viewed, torch.device("cpu"))
    hidden, probs = t.targets(viewed, ids, mask)
    for i, e in enumerate(viewed):  # each window alone, unpadded, and its rows and columns picked by hand
        t_ids, pos = e["teacher"]
        with torch.no_grad():
            h1, p1 = t.model.bert.internals(torch.tensor([t_ids]), torch.ones(1, len(t_ids)), (5,))
        n = len(pos)
        for a, b in zip(hidden, h1):
            assert (a[i, :n] - b[0, pos]).abs().max().item() < 1e-5
        own = p1[5][0][:, pos][:, :, pos]
        assert (probs[5][i, :, :n, :n] - own / own.sum(-1, keepdim=True)).abs().max().item() < 1e-5
        assert probs[5][i, :, :, n:].abs().sum().item() == 0.0  # none on the padding


@pytest.mark.slow
def test_a_sentence_student_learns_beside_a_teacher_that_reads_its_documents(context_teacher, tmp_path):
    d, teacher = context_teacher
    kw = dict(data_dir=str(d), max_steps=1, batch_size=8, eval_batch_size=32, progress=0, bf16=0, dropout=0.0,
              student="L2-H384", model_dir=teacher, teacher=teacher)
    own = train(Config(out_dir=str(tmp_path / "own"), **kw))  # -1: as the teacher was trained, with 16
    alone = train(Config(out_dir=str(tmp_path / "alone"), teacher_context=0, **kw))
    assert own["teacher"]["context"] == 16 and own["config"]["teacher_context"] == 16
    assert "context" not in alone["teacher"] and alone["config"]["teacher_context"] == 0
    assert own["loss_terms"]["labels"] == alone["loss_terms"]["labels"]  # the same first step of the student
    # the student is the teacher's bottom layers: reading what it reads, the teacher has nothing to teach at first;
    # reading the documents, its states differ from the student's
    assert alone["loss_terms"]["hidden"] < 1e-9 < 1e-3 < own["loss_terms"]["hidden"]
    # the student with context too: its teacher reads the same windows, and one that reads others is refused
    both = train(Config(out_dir=str(tmp_path / "both"), context=16, **kw))
    assert both["teacher"]["context"] == 16 and both["config"]["context"] == 16
    with pytest.raises(DataError, match="--teacher_context 8 with --context 16: a student that reads with context"):
        train(Config(out_dir=str(tmp_path / "no"), context=16, teacher_context=8, **kw))
    with pytest.raises(SystemExit, match="--teacher_context 8 needs --teacher"):
        train(Config(data_dir=str(d), out_dir=str(tmp_path / "no"), teacher_context=8))


# ------------------------------------------------------------------------------------------ the teacher's targets
# kept on file and read back in the later epochs (--cache_teacher 1)

def test_the_cache_gives_back_each_windows_targets_in_any_batch_and_only_when_it_holds_them_all(context_teacher,
                                                                                               tmp_path):
    d, teacher = context_teacher
    tok, l2i = load_tokenizer(teacher), {"O": 0}
    sents, docs = read_conll(str(d / "train.txt"), docs=True)
    viewed = teacher_views(encode(sents[:12], tok, l2i, 128, docs=docs[:12]),
                           encode(sents[:12], tok, l2i, 128, context=16, docs=docs[:12]))
    cfg = Config(teacher=teacher, teacher_context=16, match_layers="spread", cache_teacher=1, out_dir=str(tmp_path))
    student = make_student(from_pretrained(teacher, verbose=False), "L2-H384")
    t = Teacher(cfg, student, torch.device("cpu"), verbose=False)
    assert t.layer_map == [0, 5] and t.cache.states == [0, 1, 6] and t.attend == (5,)
    first, rest = viewed[:8], viewed[8:]
    ids, mask, _ = collate(first, torch.device("cpu"))
    hidden, probs = t.targets(first, ids, mask)  # read by the teacher, and kept
    assert t.read_back == 0 and os.path.getsize(t.cache.path) > 0
    order = (5, 0, 2)
    again = [first[b] for b in order]  # another batch of the same windows: read back, padded to its own length
    ids2, mask2, _ = collate(again, torch.device("cpu"))
    got_hidden, got_probs = t.targets(again, ids2, mask2)
    assert t.read_back == 1 and [h is None for h in got_hidden] == [False, False, True, True, True, True, False]
    for k, b in enumerate(order):
        n = len(first[b]["ids"])
        for i in (0, 1, 6):
            assert torch.equal(got_hidden[i][k, :n], hidden[i][b, :n]) and got_hidden[i][k, n:].abs().sum() == 0
        assert torch.equal(got_probs[5][k, :, :n, :n], probs[5][b, :, :n, :n])
        assert got_probs[5][k, :, n:].abs().sum() == 0 and got_probs[5][k, :, :, n:].abs().sum() == 0
    T, width, heads = ids2.size(1), hidden[0].size(-1), probs[5].size(1)
    assert got_hidden[0].shape == (3, T, width) and got_probs[5].shape == (3, heads, T, T)
    mixed = [first[1], rest[0]]  # one window it has not read: the teacher reads the batch
    ids3, mask3, _ = collate(mixed, torch.device("cpu"))
    h3, _ = t.targets(mixed, ids3, mask3)
    assert t.read_back == 1 and all(h is not None for h in h3)
    path = t.cache.path
    t.close()
    assert not os.path.exists(path)


@pytest.mark.slow
def test_a_run_with_the_cache_is_the_run_without_it_until_windows_come_back_and_then_runs_no_teacher(context_teacher,
                                                                                                    tmp_path):
    d, teacher = context_teacher
    kw = dict(data_dir=str(d), max_steps=25, eval_every=10, batch_size=8, eval_batch_size=32, progress=0, bf16=0,
              student="L2-H384", model_dir=teacher, teacher=teacher)  # 80 sentences: 10 steps a pass
    plain = train(Config(out_dir=str(tmp_path / "plain"), **kw))
    cached = train(Config(out_dir=str(tmp_path / "cached"), cache_teacher=1, **kw))
    assert cached["teacher"]["read_back"] >= 10 and "read_back" not in plain["teacher"]  # the second pass on
    assert not list((tmp_path / "cached").glob("teacher_targets*"))  # the file went with the run
    a, b = plain["history"], cached["history"]
    assert a[0] == b[0]  # the first pass: the same numbers
    for x, y in zip(a[1:], b[1:]):  # then the targets of a window's first batch: the same to the last bits
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-4)
    assert cached["loss_terms"]["hidden"] == pytest.approx(plain["loss_terms"]["hidden"], rel=1e-4)
