"""
Reading and writing CoNLL-style NER files, and the seeded sample every script shares.

A CoNLL file has one token per line, columns separated by whitespace, the NER tag in the last
column, and a blank line between sentences. `-DOCSTART-` lines are skipped. Any number of
columns works (CoNLL-2003 has four: token, POS, chunk, NER), so another BIO dataset reads
unchanged. Tags must be `O`, `B-TYPE` or `I-TYPE`; anything else is refused with file and line.

    python data.py sample --input data/conll2003/train.txt --limit 1000 --seed 0 --out o.conll
"""
import argparse
import os
import random
import re

TAG_RE = re.compile(r"^(O|[BI]-[^\s]+)$")


class DataError(ValueError):
    """A malformed data file; the message names the file and the line."""


def read_conll(path, column=-1):
    """Read sentences as (words, tags) pairs; `column` picks the tag column (default: the last)."""
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                if words:
                    sentences.append((words, tags))
                    words, tags = [], []
                continue
            if parts[0] == "-DOCSTART-":
                continue
            if len(parts) < 2:
                raise DataError(f"{path}:{lineno}: expected a token and a tag, got {line.strip()!r}")
            try:
                tag = parts[column]
            except IndexError:
                raise DataError(f"{path}:{lineno}: no column {column} in {line.strip()!r}") from None
            if not TAG_RE.match(tag):
                raise DataError(f"{path}:{lineno}: tag {tag!r} is not O, B-TYPE or I-TYPE")
            words.append(parts[0])
            tags.append(tag)
    if words:
        sentences.append((words, tags))
    return sentences


def atomic_write(path, text):
    """Write a whole file or nothing: an interrupted run never leaves half a file under its name."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


def write_conll(path, rows):
    """Write sentences given as lists of per-token column tuples, atomically."""
    atomic_write(path, "".join("".join(" ".join(cols) + "\n" for cols in sentence) + "\n" for sentence in rows))


def labels_from(sentences):
    """The label list of a dataset: O first, then B-/I- of every type seen, types sorted."""
    types = sorted({t[2:] for _, tags in sentences for t in tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in "BI"]


def sample_indices(n, limit, seed):
    """A seeded random subset of range(n), of size min(limit, n), kept in file order."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), limit))


def main():
    p = argparse.ArgumentParser(description="Write the seeded sample of a CoNLL file (gold tags).")
    p.add_argument("cmd", choices=["sample"])
    p.add_argument("--input", required=True)
    p.add_argument("--limit", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    sentences = read_conll(args.input)
    chosen = [sentences[i] for i in sample_indices(len(sentences), args.limit, args.seed)]
    write_conll(args.out, [list(zip(w, t)) for w, t in chosen])
    print(f"wrote {len(chosen)} sentences to {args.out}")


if __name__ == "__main__":
    main()
