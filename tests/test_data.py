import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from common import CONLL, DATA, ROOT
from cli import DataError
from data import labels_from, read_conll, read_jsonl, sample_indices, write_conll, write_jsonl

COUNTS = {  # the data README's table: sentences, tokens, B-PER, B-ORG, B-LOC, B-MISC
    "train": (14041, 203621, 6600, 6321, 7140, 3438),
    "valid": (3250, 51362, 1842, 1341, 1837, 922),
    "test": (3453, 46435, 1617, 1661, 1668, 702),
}


@pytest.mark.parametrize("split", COUNTS)
def test_conll2003_counts(split):
    sents = read_conll(os.path.join(CONLL, f"{split}.txt"))
    c = Counter(t for _, tags in sents for t in tags)
    got = (len(sents), sum(len(w) for w, _ in sents), c["B-PER"], c["B-ORG"], c["B-LOC"], c["B-MISC"])
    assert got == COUNTS[split]
    assert all("-DOCSTART-" not in w for w, _ in sents)


def test_labels_come_from_the_data(tmp_path):
    p = tmp_path / "bio.txt"
    p.write_text("aspirin B-DRUG\ncures O\nheadache B-SYMPTOM\npain I-SYMPTOM\n\n")
    sents = read_conll(p)
    assert sents == [(["aspirin", "cures", "headache", "pain"], ["B-DRUG", "O", "B-SYMPTOM", "I-SYMPTOM"])]
    assert labels_from(sents) == ["O", "B-DRUG", "I-DRUG", "B-SYMPTOM", "I-SYMPTOM"]


def test_any_number_of_columns_and_a_chosen_column(tmp_path):
    p = tmp_path / "three.txt"
    p.write_text("-DOCSTART- O\n\nEU B-ORG B-LOC\nrejects O O\n")  # no trailing blank line
    assert read_conll(p) == [(["EU", "rejects"], ["B-LOC", "O"])]
    assert read_conll(p, column=1) == [(["EU", "rejects"], ["B-ORG", "O"])]


@pytest.mark.parametrize("line, why", [("EU B_ORG\n", "tag 'B_ORG'"), ("EU\n", "expected a token and a tag"),
                                       ("EU NNP X-ORG\n", "tag 'X-ORG'"), ("EU NNP B-\n", "tag 'B-'")])
def test_malformed_lines_name_file_and_line(tmp_path, line, why):
    p = tmp_path / "bad.txt"
    p.write_text("Peter B-PER\n\nfine O\n" + line)
    with pytest.raises(DataError) as e:
        read_conll(p)
    assert f"{p}:4:" in str(e.value) and why in str(e.value)


def test_sample_is_seeded_and_in_file_order():
    a = sample_indices(14041, 1000, seed=0)
    assert a == sample_indices(14041, 1000, seed=0) and a != sample_indices(14041, 1000, seed=1)
    assert len(set(a)) == 1000 and a == sorted(a)
    assert sample_indices(5, 10, seed=0) == [0, 1, 2, 3, 4]


def test_sample_cli_writes_gold_of_the_sample(tmp_path):
    out = tmp_path / "o.conll"
    subprocess.run([sys.executable, os.path.join(ROOT, "data.py"), "sample",
                    "--input", os.path.join(CONLL, "valid.txt"), "--limit", "50", "--seed", "3", "--out", str(out)],
                   check=True, capture_output=True)
    full = read_conll(os.path.join(CONLL, "valid.txt"))
    assert read_conll(out) == [full[i] for i in sample_indices(len(full), 50, 3)]


def test_read_jsonl_skips_a_bom_and_invisible_lines(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes('\ufeff{"text": "Zürich", "label": "a"}\n\n  \t\n\u200b\u2060\n\ufeff\n{"x": 1}'.encode("utf-8"))
    assert read_jsonl(p) == [{"text": "Zürich", "label": "a"}, {"x": 1}]
    write_jsonl(tmp_path / "b.jsonl", read_jsonl(p))
    assert (tmp_path / "b.jsonl").read_text(encoding="utf-8") == '{"text": "Zürich", "label": "a"}\n{"x": 1}\n'
    assert not (tmp_path / "b.jsonl.tmp").exists()


def test_read_conll_skips_a_bom_and_reads_invisible_lines_as_blank(tmp_path):
    p = tmp_path / "bom.conll"
    # a byte-order mark first, then lines of zero-width characters where a blank line was meant
    p.write_bytes(("\ufeff-DOCSTART- -X- O O\n\nEU B-ORG\nrejects O\n\u200b\nGerman B-MISC\n\ufeff \u2060\n\n"
                   "Peter B-PER\n").encode("utf-8"))
    assert read_conll(p) == [(["EU", "rejects"], ["B-ORG", "O"]), (["German"], ["B-MISC"]), (["Peter"], ["B-PER"])]
    assert read_conll(p, columns=True) == \
        [[["EU", "B-ORG"], ["rejects", "O"]], [["German", "B-MISC"]], [["Peter", "B-PER"]]]
    p.write_bytes("\ufeffEU B-ORG\n".encode("utf-8"))  # the mark glued to the first token
    assert read_conll(p) == [(["EU"], ["B-ORG"])]


@pytest.mark.parametrize("text", ["", "\n\n", "-DOCSTART- -X- O O\n\n", "\ufeff\n\u200b\n"])
def test_read_conll_refuses_a_file_without_sentences(tmp_path, text):
    p = tmp_path / "none.conll"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=f"^no sentences in {p}$"):
        read_conll(p)


def test_read_conll_refuses_a_file_that_is_not_utf8(tmp_path):
    p = tmp_path / "latin1.conll"
    p.write_bytes("EU B-ORG\nZ\u00fcrich B-LOC\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"^{p}:2: not UTF-8 \(byte 0xfc"):
        read_conll(p)


@pytest.mark.parametrize("line, why", [('[1, 2]', "got an array"), ('"text"', "got a string"), ("3", "got a number"),
                                       ("null", "got null"), ('{"text": "a",}', "invalid JSON"),
                                       ("{'a': 1}", "invalid JSON")])
def test_read_jsonl_names_file_and_line(tmp_path, line, why):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_jsonl(p)
    assert str(e.value).startswith(f"{p}:3: expected a JSON object") and why in str(e.value)


def test_read_jsonl_refuses_a_file_that_is_not_utf8(tmp_path):
    p = tmp_path / "latin1.jsonl"
    p.write_bytes('{"a": 1}\n{"text": "café"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=rf"^{p}:2: not UTF-8 \(byte 0xe9"):
        read_jsonl(p)
    p.write_bytes('{"a": 1}\n'.encode("utf-16"))  # a BOM of UTF-16 is no UTF-8 either
    with pytest.raises(DataError, match=rf"^{p}:1: not UTF-8"):
        read_jsonl(p)


def split_cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "data.py"), "split", *map(str, args)],
                          capture_output=True, text=True)


def read_split(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture
def synthetic(tmp_path):
    """40 'a', 20 'b', 12 'c' distinct texts, plus copies: 3 agreeing, and one text given both labels a and b."""
    recs = [{"id": f"{lab}{i}", "title": f"{lab} title {i}", "text": f"body of {lab} number {i}", "label": lab}
            for lab, n in (("a", 40), ("b", 20), ("c", 12)) for i in range(n)]
    recs += [dict(recs[0], id="copy0"), dict(recs[45], id="copy1", text="body  of b\nnumber 5"),
             dict(recs[0], id="copy2")]
    recs += [{"id": "x1", "title": "same", "text": "twice", "label": "a"},
             {"id": "x2", "title": "same", "text": "twice", "label": "b"}]
    recs.append({"id": "notitle", "text": "only a body", "label": "c"})  # a missing title field is fine
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return p


def test_split_drops_duplicates_and_stratifies(synthetic, tmp_path):
    out = tmp_path / "s0"
    r = split_cli("--input", synthetic, "--out_dir", out, "--seed", "0", "--per_class", "2,5", "--subset_seeds", "0,1")
    assert r.returncode == 0, r.stderr
    assert "input records                      78" in r.stdout
    assert "duplicate copies dropped            3" in r.stdout and "conflicting copies dropped          2" in r.stdout
    parts = {name: read_split(out, f"{name}.jsonl") for name in ("train", "valid", "test")}
    kept = [x for part in parts.values() for x in part]
    assert len(kept) == 73 and len({x["id"] for x in kept}) == 73
    assert not {"copy0", "copy1", "copy2", "x1", "x2"} & {x["id"] for x in kept}
    # title, blank line, text
    assert [x["text"] for x in kept if x["id"] == "a0"] == ["a title 0\n\nbody of a number 0"]
    assert [x for x in kept if x["id"] == "notitle"][0]["text"] == "only a body"
    assert all(list(x) == ["id", "text", "label"] for x in kept)
    # every label's share: 15 % rounded half up, at least one
    counts = {name: Counter(x["label"] for x in part) for name, part in parts.items()}
    assert counts["valid"] == counts["test"] == {"a": 6, "b": 3, "c": 2}
    assert counts["train"] == {"a": 28, "b": 14, "c": 9}
    texts = {name: {" ".join(x["text"].split()) for x in part} for name, part in parts.items()}
    assert not (texts["train"] & texts["valid"] or texts["train"] & texts["test"] or texts["valid"] & texts["test"])
    order = {x["id"]: i for i, x in enumerate(parts["train"])}
    for s in (0, 1):
        small, big = read_split(out, f"train_k2_s{s}.jsonl"), read_split(out, f"train_k5_s{s}.jsonl")
        assert Counter(x["label"] for x in small) == {"a": 2, "b": 2, "c": 2}
        assert Counter(x["label"] for x in big) == {"a": 5, "b": 5, "c": 5}
        assert all(x in big for x in small)  # nested
        assert [order[x["id"]] for x in big] == sorted(order[x["id"]] for x in big)  # in train.jsonl's order
    assert read_split(out, "train_k5_s0.jsonl") != read_split(out, "train_k5_s1.jsonl")


def test_split_is_deterministic_and_the_seed_matters(synthetic, tmp_path):
    files = ["train.jsonl", "valid.jsonl", "test.jsonl", "train_k3_s0.jsonl"]
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert split_cli("--input", synthetic, "--out_dir", tmp_path / name, "--seed", seed, "--per_class", 3,
                         "--subset_seeds", 0).returncode == 0
    same = [(tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files]
    other = [(tmp_path / "a" / f).read_bytes() == (tmp_path / "c" / f).read_bytes() for f in files]
    assert all(same) and not any(other)


@pytest.mark.parametrize("content, why", [
    (None, "missing.jsonl: No such file or directory"),
    (b'{"text": "ok", "label": "a"}\n[1]\n', "x.jsonl:2: expected a JSON object"),
    (b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "a"}\n', "x.jsonl:2: not UTF-8"),
    (b'{"text": "ok", "label": "a"}\n\n{"text": "no label"}\n', "x.jsonl:3: no 'label' field"),
    (b'{"text": "ok", "label": "a"}\n{"title": " ", "label": "a"}\n',
     "x.jsonl:2: no text in any of the fields title, text"),
    (b'{"text": "ok", "label": 1}\n', "x.jsonl:1: field 'label' is 1"),
])
def test_split_refuses_bad_input_in_one_line(tmp_path, content, why):
    p = tmp_path / ("missing.jsonl" if content is None else "x.jsonl")
    if content is not None:
        p.write_bytes(content)
    r = split_cli("--input", p, "--out_dir", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and why in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_split_refuses_more_per_class_than_the_smallest_class(synthetic, tmp_path):
    r = split_cli("--input", synthetic, "--out_dir", tmp_path / "out", "--per_class", "8,10")
    assert r.returncode == 2 and \
        r.stderr == "error: --per_class 10 is more than the smallest class has in train ('c': 9)\n"
    assert not (tmp_path / "out").exists()


def test_split_of_bbc(tmp_path):
    r = split_cli("--input", os.path.join(DATA, "bbc", "bbc.jsonl"), "--out_dir", tmp_path, "--seed", 0,
                  "--per_class", "8,32")
    assert r.returncode == 0, r.stderr
    n_in, n_copies, n_conflicting = (int(r.stdout.split(key)[1].split()[0]) for key in
                                     ("input records", "duplicate copies dropped", "conflicting copies dropped"))
    # the data README's hundred exact duplicates, and 36 articles republished with the same body under a new title
    assert n_in == 2225 and n_copies == 136
    parts = {name: read_split(tmp_path, f"{name}.jsonl") for name in ("train", "valid", "test")}
    assert sum(map(len, parts.values())) == n_in - n_copies - n_conflicting
    texts = [" ".join(x["text"].split()) for part in parts.values() for x in part]
    assert len(set(texts)) == len(texts)
    bodies = [" ".join(x["text"].split("\n\n", 1)[1].split()) for part in parts.values() for x in part]
    assert len(set(bodies)) == len(bodies)
    assert {x["label"] for x in parts["test"]} == {"business", "entertainment", "politics", "sport", "tech"}
    assert all(x["text"].startswith(x["text"].split("\n\n")[0]) for x in parts["test"])
    k8, k32 = read_split(tmp_path, "train_k8_s0.jsonl"), read_split(tmp_path, "train_k32_s0.jsonl")
    assert len(k8) == 40 and len(k32) == 160 and all(x in k32 for x in k8) and all(x in parts["train"] for x in k32)


def test_split_drops_a_text_republished_under_a_new_title_unless_told_not_to(tmp_path):
    recs = [{"title": f"t{i}", "text": f"body {i}", "label": "ab"[i % 2]} for i in range(20)]
    recs.append({"title": "A new title", "text": "body  3", "label": "b"})
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    r = split_cli("--input", p, "--out_dir", tmp_path / "a")
    assert r.returncode == 0 and "duplicate copies dropped            1" in r.stdout, r.stdout + r.stderr
    r = split_cli("--input", p, "--out_dir", tmp_path / "b", "--dedup_fields", "")
    assert r.returncode == 0 and "duplicate copies dropped            0" in r.stdout, r.stdout + r.stderr


def test_docstart_lines_give_document_ids_and_the_same_sentences(tmp_path):
    p = tmp_path / "docs.txt"
    p.write_text("-DOCSTART- -X- -X- O\n\nEU B-ORG\nrejects O\n\nBonn B-LOC\n\n-DOCSTART- -X- -X- O\n\n"
                 "Peter B-PER\n\n-DOCSTART- -X- -X- O\n\n-DOCSTART- -X- -X- O\n\nRome B-LOC\nwins O\n")
    sents, docs = read_conll(p, docs=True)
    assert sents == read_conll(p)
    assert [w for w, _ in sents] == [["EU", "rejects"], ["Bonn"], ["Peter"], ["Rome", "wins"]]
    assert docs == [0, 0, 1, 2]  # an empty document (two marks in a row) takes no id
    rows, row_docs = read_conll(p, columns=True, docs=True)
    assert rows == read_conll(p, columns=True) and row_docs == docs
    (same, soft, soft_docs) = read_conll(p, with_probs=True, docs=True)
    assert same == sents and soft == [None] * 4 and soft_docs == docs
    # written back with its marks, it reads the same
    write_conll(tmp_path / "back.txt", [list(zip(w, t)) for w, t in sents], docs)
    assert read_conll(tmp_path / "back.txt", docs=True) == (sents, docs)
    assert (tmp_path / "back.txt").read_text().count("-DOCSTART- -X- -X- O\n\n") == 3


def test_sentences_before_the_first_mark_are_a_document_and_no_mark_means_each_sentence_alone(tmp_path):
    p = tmp_path / "lead.txt"
    p.write_text("EU B-ORG\n\nBonn B-LOC\n\n-DOCSTART- O\n\nPeter B-PER\n")
    assert read_conll(p, docs=True)[1] == [0, 0, 1]
    p.write_text("EU B-ORG\n\nBonn B-LOC\n\nPeter B-PER\n")
    assert read_conll(p, docs=True)[1] == [0, 1, 2]


def test_conll2003_documents():
    for split, n in (("train", 946), ("valid", 216), ("test", 231)):
        sents, docs = read_conll(os.path.join(CONLL, f"{split}.txt"), docs=True)
        assert len(set(docs)) == n and docs == sorted(docs) and sents == read_conll(os.path.join(CONLL, f"{split}.txt"))
