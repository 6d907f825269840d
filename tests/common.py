"""Paths shared by the tests: the project root and the CoNLL-2003 data beside it."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `data -> ../shared/data` in CI; the shared copy itself otherwise
_candidates = [os.environ.get("NER_DATA", ""), os.path.join(ROOT, "data"), os.path.join(ROOT, "..", "shared", "data")]
DATA = next((c for c in _candidates if c and os.path.exists(os.path.join(c, "conll2003", "train.txt"))), None)
assert DATA, f"CoNLL-2003 not found in any of {_candidates}: link it as data/ (see README)"
CONLL = os.path.join(DATA, "conll2003")


def write_tiny_conll(folder, n_train, n_eval, train_name="train.txt", docs=False):
    """The first sentences of each CoNLL-2003 split written into folder (docs: with their -DOCSTART- lines);
    returns the whole train split."""
    from data import read_conll, write_conll
    (train, d_train), (dev, d_dev), (test, d_test) = (read_conll(os.path.join(CONLL, f), docs=True)
                                                      for f in ("train.txt", "valid.txt", "test.txt"))
    for name, sents, ids, n in ((train_name, train, d_train, n_train), ("valid.txt", dev, d_dev, n_eval),
                                ("test.txt", test, d_test, n_eval)):
        write_conll(os.path.join(folder, name), [list(zip(w, t)) for w, t in sents[:n]], ids[:n] if docs else None)
    return train
