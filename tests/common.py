"""Paths shared by the tests: the project root and the CoNLL-2003 data beside it."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `data -> ../shared/data` in CI; the shared copy itself otherwise
_candidates = [os.environ.get("NER_DATA", ""), os.path.join(ROOT, "data"), os.path.join(ROOT, "..", "shared", "data")]
DATA = next((c for c in _candidates if c and os.path.exists(os.path.join(c, "conll2003", "train.txt"))), None)
assert DATA, f"CoNLL-2003 not found in any of {_candidates}: link it as data/ (see README)"
CONLL = os.path.join(DATA, "conll2003")
