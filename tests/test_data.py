import os
import subprocess
import sys
from collections import Counter

import pytest

from common import CONLL, ROOT
from data import DataError, labels_from, read_conll, sample_indices

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
    subprocess.run([sys.executable, os.path.join(ROOT, "data.py"), "sample", "--input", os.path.join(CONLL, "valid.txt"),
                    "--limit", "50", "--seed", "3", "--out", str(out)], check=True, capture_output=True)
    full = read_conll(os.path.join(CONLL, "valid.txt"))
    assert read_conll(out) == [full[i] for i in sample_indices(len(full), 50, 3)]
