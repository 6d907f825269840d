"""
The text filters of every script that takes in text it did not choose (generate.py's LLM texts, evokd.py's generated
sentences, students.py's transfer set): a text's words, a phrase repeated over and over, copies and near copies of
other texts, and the diversity of a set of texts.

A text's words are its runs of letters and digits, lower-cased (`words_of`). A "near copy" of another text shares
at least a given fraction of its word 5-grams with that one text (`NearCopies`, an index of texts by their
5-grams). `drop_reason` applies the filters in a fixed order and names the first a text fails.

    python -m pytest -q tests/test_gendist.py -k filters
"""
import re
from collections import Counter

WORD_RE = re.compile(r"\w+")


def words_of(text):
    return WORD_RE.findall(text.lower())


def ngrams(words, n):
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def degenerate(words):
    """A phrase repeated over and over: under half of the word 3-grams are distinct."""
    grams = ngrams(words, 3)
    return len(grams) >= 6 and len(set(grams)) < 0.5 * len(grams)


class NearCopies:
    """Texts indexed by their word 5-grams: which indexed text shares the largest fraction of a new one's?"""
    N = 5

    def __init__(self):
        self.postings, self.exact = {}, {}

    def shingles(self, words):
        return set(ngrams(words, self.N)) or {tuple(words)}

    def add(self, doc, words):
        self.exact.setdefault(" ".join(words), doc)
        for g in self.shingles(words):
            self.postings.setdefault(g, []).append(doc)

    def best(self, words):
        """(doc, fraction of this text's 5-grams found in doc), the doc sharing most; (None, 0) if none."""
        if " ".join(words) in self.exact:
            return self.exact[" ".join(words)], 1.0
        grams = self.shingles(words)
        hits = Counter(d for g in grams for d in set(self.postings.get(g, ())))
        if not hits:
            return None, 0.0
        doc, shared = hits.most_common(1)[0]
        return doc, shared / len(grams)


def drop_reason(words, min_words, max_words, near, indexes):
    """The first filter a unit's words fail, or None: empty, degenerate, too_short, too_long, then, for each
    (reason, NearCopies) of `indexes` in order, a copy or near copy (at least `near` of its 5-grams) of one
    indexed text."""
    if not words:
        return "empty"
    if degenerate(words):
        return "degenerate"
    if len(words) < min_words:
        return "too_short"
    if len(words) > max_words:
        return "too_long"
    for reason, index in indexes:
        if index.best(words)[1] >= near:
            return reason
    return None


def distinct(texts, n, cut=40):
    """Distinct n-grams / all n-grams over the texts' words, each text cut to its first `cut` words (longer
    texts repeat more, so the cut keeps generated and real text comparable); 1.0: no n-gram repeats."""
    grams = [g for t in texts for g in ngrams(words_of(t)[:cut], n)]
    return round(len(set(grams)) / len(grams), 4) if grams else None
