"""predict.encode with --context: windows built by hand for a small document, labels -100 on the context, document
boundaries never crossed, context trimmed to the room the sentence leaves, and context 0 the encoding without it; a
context teacher's windows beside a sentence student's (distill.teacher_views, at_student_pieces) by hand."""
import os

import pytest
import torch

from common import CONLL
from data import labels_from, read_conll
from distill import at_student_pieces, teacher_views
from model import default_model_dir, load_tokenizer
from predict import encode, sorted_batches

L2I = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(default_model_dir())


def pieces(tok, words):
    """Each word's pieces, as encode splits it (the tokenizer on the pre-split word)."""
    return [tok.encode([w], is_pretokenized=True, add_special_tokens=False).ids for w in words]


def flat(tok, words):
    return [p for word in pieces(tok, words) for p in word]


# a document of three sentences, then a document of one; "Schwarzenegger" is several pieces
DOC = [(["Arnold", "Schwarzenegger", "spoke"], ["B-PER", "I-PER", "O"]),
       (["He", "left", "Vienna"], ["O", "O", "B-LOC"]),
       (["Schwarzenegger", "returned"], ["B-PER", "O"]),
       (["London", "called"], ["B-LOC", "O"])]
DOCS = [0, 0, 0, 1]


def test_context_windows_built_by_hand(tok):
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    before = flat(tok, DOC[0][0])
    assert len(before) > 3  # the name is cut into pieces, so the context below starts inside a word
    ex = encode(DOC, tok, L2I, max_len=64, context=3, docs=DOCS)
    assert [e["sent"] for e in ex] == [0, 1, 2, 3]
    middle = ex[1]
    left, right = before[-3:], flat(tok, DOC[2][0])[:3]  # the last 3 pieces before it, the first 3 after it
    own = flat(tok, DOC[1][0])
    assert middle["ids"] == [cls] + left + own + right + [sep]
    assert middle["labels"] == [-100] * 4 + [0, 0, 3] + [-100] * 4  # He left Vienna: one piece each
    assert middle["starts"] == [4, 5, 6] and middle["first_word"] == 0
    # the first sentence: nothing before it, the 3 first pieces of the next one after it
    first = ex[0]
    words = pieces(tok, DOC[0][0])
    assert first["ids"] == [cls] + flat(tok, DOC[0][0]) + own[:3] + [sep]
    assert first["starts"] == [1, 2, 2 + len(words[1])]
    assert [first["labels"][p] for p in first["starts"]] == [1, 2, 0]
    assert sum(label != -100 for label in first["labels"]) == 3  # only the first piece of each own word
    # the last sentence of the document takes nothing from the next document
    last = ex[2]
    assert last["ids"] == [cls] + (before + own)[-3:] + flat(tok, DOC[2][0]) + [sep]
    # a document of one sentence is encoded as without context
    assert ex[3] == encode(DOC[3:], tok, L2I, max_len=64)[0] | {"sent": 3}


def test_context_is_trimmed_to_the_room_the_sentence_leaves(tok):
    own = flat(tok, DOC[1][0])
    before, after = flat(tok, DOC[0][0]), flat(tok, DOC[2][0])
    # room for 4 context pieces: 2 a side
    ex = encode(DOC, tok, L2I, max_len=2 + len(own) + 4, context=8, docs=DOCS)[1]
    assert ex["ids"][1:-1] == before[-2:] + own + after[:2]
    # room for 5, with 1 piece after it: 4 before, 1 after (what one side lacks, the other gets)
    short = [DOC[0], DOC[1], (["Yes"], ["O"])]
    ex = encode(short, tok, L2I, max_len=2 + len(own) + 5, context=8, docs=[0, 0, 0])[1]
    assert ex["ids"][1:-1] == before[-4:] + own + flat(tok, ["Yes"])
    # no room at all: the sentence as it is, never cut
    ex = next(e for e in encode(DOC, tok, L2I, max_len=2 + len(own), context=8, docs=DOCS) if e["sent"] == 1)
    assert ex == encode(DOC[1:2], tok, L2I, max_len=2 + len(own))[0] | {"sent": 1}


def test_a_sentence_cut_into_windows_takes_no_context(tok):
    long = (["Arnold", "Schwarzenegger", "visited", "Johannesburg", "."] * 6, ["B-PER", "I-PER", "O", "B-LOC", "O"] * 6)
    sents = [DOC[0], long, DOC[1]]
    alone = encode(sents, tok, L2I, max_len=16)
    ex = encode(sents, tok, L2I, max_len=16, context=8, docs=[0, 0, 0])
    assert [e for e in ex if e["sent"] == 1] == [e for e in alone if e["sent"] == 1]
    assert len([e for e in ex if e["sent"] == 1]) > 1


def test_a_document_boundary_is_never_crossed(tok):
    """Two documents written in two disjoint words: no example of one holds a piece of the other."""
    a, b = tok.token_to_id("paris"), tok.token_to_id("london")
    sents = [(["paris"] * n, ["B-LOC"] * n) for n in (3, 5, 2)] + [(["london"] * n, ["B-LOC"] * n) for n in (4, 1)]
    docs = ["x", "x", "x", "y", "y"]
    ex = encode(sents, tok, L2I, max_len=32, context=64, docs=docs)
    for e in ex:
        own = a if docs[e["sent"]] == "x" else b
        assert set(e["ids"][1:-1]) == {own}
    assert [len(e["ids"]) - 2 for e in ex] == [10, 10, 10, 5, 5]  # every piece of its document, and no more
    assert [e["starts"][0] for e in ex] == [1, 4, 9, 1, 5]


def test_context_on_conll_dev_stays_in_the_document_and_scores_the_same_pieces(tok):
    sents, docs = read_conll(os.path.join(CONLL, "valid.txt"), docs=True)
    sents, docs = sents[:400], docs[:400]
    l2i = {label: i for i, label in enumerate(labels_from(sents))}
    alone = encode(sents, tok, l2i, max_len=128)
    ex = encode(sents, tok, l2i, max_len=128, context=64, docs=docs)
    assert len(ex) == len(alone) and max(len(e["ids"]) for e in ex) <= 128
    assert sum(map(len, (e["ids"] for e in ex))) > sum(map(len, (e["ids"] for e in alone)))
    first = {i for i in range(len(docs)) if i == 0 or docs[i] != docs[i - 1]}
    last = {i for i in range(len(docs)) if i == len(docs) - 1 or docs[i] != docs[i + 1]}
    for e, e0 in zip(ex, alone):
        assert (e["sent"], e["first_word"], e["soft"]) == (e0["sent"], e0["first_word"], e0["soft"])
        left, n = e["starts"][0] - 1, len(e0["ids"]) - 2
        assert e["ids"][1 + left:1 + left + n] == e0["ids"][1:-1]  # the sentence whole, in its place
        assert e["labels"][1 + left:1 + left + n] == e0["labels"][1:-1]
        assert set(e["labels"][:1 + left] + e["labels"][1 + left + n:]) == {-100}  # the context is not scored
        assert [p - left for p in e["starts"]] == e0["starts"]
        assert left <= 64 and len(e["ids"]) - 2 - n - left <= 64
        if e["sent"] in first:
            assert left == 0
        if e["sent"] in last:
            assert len(e["ids"]) - 2 - n - left == 0


def test_context_0_is_the_encoding_without_context(tok):
    sents, docs = read_conll(os.path.join(CONLL, "valid.txt"), docs=True)
    l2i = {label: i for i, label in enumerate(labels_from(sents))}
    alone = encode(sents, tok, l2i, max_len=128)
    assert encode(sents, tok, l2i, max_len=128, context=0, docs=docs) == alone
    assert encode(sents, tok, l2i, max_len=128, context=64) == alone  # no documents: each sentence alone
    assert sorted_batches(alone, 128, 2048) == sorted_batches(encode(sents, tok, l2i, 128, context=0, docs=docs),
                                                              128, 2048)


def test_scored_sentences_take_context_from_the_others(tok):
    ex = encode(DOC, tok, L2I, max_len=64, context=3, docs=DOCS, scored=[1])
    assert ex == [encode(DOC, tok, L2I, max_len=64, context=3, docs=DOCS)[1]]


# ------------------------------------------------------------------------------------------ a context teacher beside a
# sentence student (train.py --teacher with --teacher_context): the same windows, two readings

def test_teacher_views_place_the_sentence_pieces_of_the_student_in_the_teachers_window(tok):
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    student = encode(DOC, tok, L2I, max_len=64, docs=DOCS)
    viewed = teacher_views(student, encode(DOC, tok, L2I, max_len=64, context=3, docs=DOCS))
    assert [{k: v for k, v in e.items() if k != "teacher"} for e in viewed] == student  # the student's are untouched
    own = flat(tok, DOC[1][0])
    t_ids, pos = viewed[1]["teacher"]  # He left Vienna, read with 3 pieces each side: [CLS] 3 + own + 3 [SEP]
    assert t_ids == [cls] + flat(tok, DOC[0][0])[-3:] + own + flat(tok, DOC[2][0])[:3] + [sep]
    assert pos == [0, 4, 5, 6, 10] and [t_ids[p] for p in pos] == [cls] + own + [sep]
    first_ids, first_pos = viewed[0]["teacher"]  # nothing before the first sentence: it starts where the student's does
    n = len(flat(tok, DOC[0][0]))
    assert first_pos == list(range(n + 1)) + [n + 4] and first_ids[n + 1:n + 4] == own[:3]
    assert viewed[3]["teacher"] == (student[3]["ids"], list(range(len(student[3]["ids"]))))  # a one-sentence document
    with pytest.raises(AssertionError):  # windows of other sentences are refused, not silently misaligned
        teacher_views(student[:2], encode(DOC[1:3], tok, L2I, max_len=64, context=3, docs=DOCS[1:3]))


def test_the_teachers_states_and_attention_at_the_students_pieces_by_hand():
    # one window of the teacher: [CLS] c s1 s2 [SEP] (c a context piece); the student's: [CLS] s1 s2 [SEP] and a pad
    pos = torch.tensor([[0, 2, 3, 4, -1]])
    hidden = [torch.arange(5.0).view(1, 5, 1).expand(1, 5, 2)]  # piece j's state is (j, j)
    att = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.2],
                        [0.5, 0.1, 0.1, 0.1, 0.2],
                        [0.2, 0.4, 0.2, 0.1, 0.1],
                        [0.1, 0.1, 0.2, 0.2, 0.4],
                        [0.2, 0.2, 0.2, 0.2, 0.2]]).view(1, 1, 5, 5)
    (h,), probs = at_student_pieces(hidden, {1: att}, pos)
    assert h[0, :, 0].tolist() == [0, 2, 3, 4, 0]  # the padding's row is masked by the student's own mask
    a = probs[1][0, 0]
    # [CLS]'s query over [CLS], s1, s2, [SEP] (0.1, 0.3, 0.2, 0.2), renormalised over them: 0.8
    assert a[0].tolist() == pytest.approx([0.125, 0.375, 0.25, 0.25, 0.0])
    # s1 (teacher row 2) over the same keys: 0.2, 0.2, 0.1, 0.1 of 0.6
    assert a[1].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 6, 1 / 6, 0.0])
    assert torch.allclose(a[:4].sum(-1), torch.ones(4)) and a[:, 4].abs().max() == 0  # no mass on the pad key
