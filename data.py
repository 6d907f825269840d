"""
Reading and writing CoNLL-style NER files and JSONL text-classification files, the seeded sample
every script shares, and the seeded train / valid / test split of a classification dataset.

A CoNLL file has one token per line, columns separated by whitespace, the NER tag in the last
column, and a blank line between sentences. Any number of
columns works (CoNLL-2003 has four: token, POS, chunk, NER), so another BIO dataset reads
unchanged. `-DOCSTART-` lines are no sentence, and mark where a document begins: `read_conll(path, docs=True)`
also gives each sentence's document id (0, 1, ... in file order), which context encoding (predict.py --context)
never crosses. A file without any `-DOCSTART-` line says nothing of its documents, so each of its sentences is a
document of its own (a sample of sentences drawn from many documents borrows nothing from its neighbours).
Tags must be `O`, `B-TYPE` or `I-TYPE`; anything else is refused with file and line.
A byte-order mark at the start is ignored, and a line of nothing but invisible characters (byte-order
marks, zero-width spaces) is the blank line it looks like, so it ends a sentence. A file that is not
UTF-8, or holds no sentence at all, is refused by name.

Soft labels (a teacher's, for distillation): in CoNLL, a column just before the tag holding the word's distribution
over every label of the teacher, `LABEL=p|LABEL=p|...` with 4 significant digits (B-PER=0.9812|O=0.0121|...);
in JSONL, a "probs" object {label: p} beside "label". The hard label stays where readers look for it (the last
column; "label"), so every hard-label reader works unchanged. `read_conll(path, with_probs=True)` reads them.

A JSONL file has one JSON object a line (UTF-8, a byte-order mark at the start is ignored); blank
(or invisible) lines are skipped, anything else that is not an object is refused with file and line,
and so is a file without any object.

`split` reads such a file, builds each text from `--text_fields` (joined by a blank line), drops
duplicate texts (exact after collapsing whitespace, of the whole text or of any `--dedup_fields` alone,
so an article republished under a new title counts; the first copy is kept, and every copy of a text
that carries two labels is dropped), then cuts each label's records, shuffled with the seed, into
train / valid / test. `--per_class 8,32` also writes nested few-shot subsets of train.jsonl:
train_k8_s0.jsonl is inside train_k32_s0.jsonl, one set per subset seed.

    python data.py sample --input data/conll2003/train.txt --limit 1000 --seed 0 --out o.conll
    python data.py split --input data/bbc/bbc.jsonl --out_dir runs/bbc_split --seed 0 --per_class 8,32 \\
        --subset_seeds 0,1,2
"""
import argparse
import json
import os
import random
import re
from contextlib import contextmanager
from dataclasses import dataclass

from cli import DataError, at_least, int_list, opt, parse_command, run_main

TAG_RE = re.compile(r"^(O|[BI]-[^\s]+)$")
INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"  # byte-order mark and zero-width characters
# a line of nothing but whitespace and invisible characters counts as blank
BLANK_RE = re.compile(rf"[\s{INVISIBLE}]*")


@contextmanager
def open_text(path):
    """A UTF-8 text file open for reading, a byte-order mark at its start dropped; a byte that is not
    UTF-8 is refused with the file and the line (DataError)."""
    with open(path, encoding="utf-8-sig") as f:
        try:
            yield f
        except UnicodeDecodeError:
            raise DataError(_not_utf8(path)) from None


DOCSTART = "-DOCSTART-"


def read_conll(path, column=-1, with_probs=False, columns=False, docs=False):
    """Read sentences as (words, tags) pairs; `column` picks the tag column (default: the last).
    with_probs: (sentences, soft) where soft[i] is None, or sentence i's {label: probability} per word
    (the soft-label column just before the tag; see format_probs).
    columns: each sentence as its lines' lists of columns, unchecked (text to label may have no tags).
    docs: one more list after the others, each sentence's document id (the module docstring says how)."""
    sentences, soft, words, tags, dists = [], [], [], [], []
    marks, doc_ids, at = 0, [], 0  # -DOCSTART- lines seen; each sentence's count of them where it starts
    if columns:
        rows = []
        with open_text(path) as f:
            for line in f:
                parts = [] if BLANK_RE.fullmatch(line) else line.split()
                if parts and parts[0] == DOCSTART:
                    marks += 1
                elif parts:
                    at = at if rows else marks
                    rows.append(parts)
                elif rows:
                    sentences.append(rows)
                    doc_ids.append(at)
                    rows = []
        if rows:
            sentences.append(rows)
            doc_ids.append(at)
        return (sentences, documents(doc_ids, marks)) if docs else sentences

    def end_sentence(where):  # the sentence read so far is complete
        nonlocal words, tags, dists
        if dists and len(dists) != len(words):
            raise DataError(where)
        sentences.append((words, tags))
        soft.append(dists or None)
        doc_ids.append(at)
        words, tags, dists = [], [], []
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = [] if BLANK_RE.fullmatch(line) else line.split()
            if not parts:
                if words:
                    end_sentence(f"{path}:{lineno - 1}: a sentence with soft labels on some words only")
                continue
            if parts[0] == DOCSTART:
                marks += 1
                continue
            if len(parts) < 2:
                raise DataError(f"{path}:{lineno}: expected a token and a tag, got {line.strip()!r}")
            try:
                tag = parts[column]
            except IndexError:
                raise DataError(f"{path}:{lineno}: no column {column} in {line.strip()!r}") from None
            if not TAG_RE.match(tag):
                raise DataError(f"{path}:{lineno}: tag {tag!r} is not O, B-TYPE or I-TYPE")
            at = at if words else marks
            words.append(parts[0])
            tags.append(tag)
            if with_probs and len(parts) >= 3 and PROBS_RE.match(parts[-2]):
                dists.append(parse_probs(parts[-2], f"{path}:{lineno}"))
    if words:
        end_sentence(f"{path}: the last sentence has soft labels on some words only")
    if not sentences:
        raise DataError(f"no sentences in {path}")
    out = (sentences, soft) if with_probs else (sentences,)
    out += (documents(doc_ids, marks),) if docs else ()
    return out if len(out) > 1 else sentences


def documents(marks_before, marks):
    """Document ids 0, 1, ... from each sentence's count of -DOCSTART- lines before it; without any such line,
    each sentence is a document of its own."""
    if not marks:
        return list(range(len(marks_before)))
    ids = {m: i for i, m in enumerate(sorted(set(marks_before)))}
    return [ids[m] for m in marks_before]


# ---------------------------------------------------------------------------------------------
# Soft labels: a probability distribution over the labels, per word (CoNLL) or per text (JSONL).
# CoNLL: a column `LABEL=p|LABEL=p|...` just before the tag, every label of the model listed (so the
# distribution says which labels exist); the tag stays last and is the most probable label, so every
# reader of hard tags (eval.py, mix.py, read_conll) works unchanged. JSONL: "probs": {label: p} beside
# "label". `python predict.py --soft` writes both.

PROBS_RE = re.compile(r"^[^=|\s]+=[0-9.eE+-]+(\|[^=|\s]+=[0-9.eE+-]+)*$")


def format_probs(probs, labels):
    """'O=0.981|B-PER=0.0012|...': 4 significant digits, enough for any temperature in use."""
    return "|".join(f"{label}={float(p):.4g}" for label, p in zip(labels, probs))


def parse_probs(text, where):
    """{label: probability} from format_probs' text; refuses negative or all-zero values."""
    dist = {}
    for item in text.split("|"):
        label, _, p = item.partition("=")
        try:
            dist[label] = float(p)
        except ValueError:
            raise DataError(f"{where}: probability {p!r} of {label!r} is not a number") from None
    return check_probs(dist, where)


def check_probs(dist, where):
    """A soft label must be probabilities (0..1) that do not all vanish; train.py normalises the sum."""
    if any(not 0.0 <= p <= 1.0 + 1e-6 for p in dist.values()) or sum(dist.values()) <= 0:
        raise DataError(f"{where}: soft label {dist!r} is not a probability distribution")
    return dist


def atomic_write(path, content):
    """Write a whole file or nothing: to a temporary file, flushed to disk, then renamed, so a kill (or a crash of the
    machine) leaves the old file whole, or none, never one that looks whole but is not. content: text (UTF-8),
    bytes, or a function that writes into the open binary file (torch.save)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") if isinstance(content, str) else open(tmp, "wb") as f:
        if callable(content):
            content(f)
        else:
            f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def conll_text(rows, docs=None):
    """Sentences given as lists of per-token column tuples, as CoNLL text; with docs (each sentence's document id),
    a `-DOCSTART- -X- -X- O` line, as CoNLL-2003 writes it, where each document begins."""
    marks = [docs is not None and (i == 0 or docs[i] != docs[i - 1]) for i in range(len(rows))]
    return "".join(f"{DOCSTART} -X- -X- O\n\n" * mark + "".join(" ".join(cols) + "\n" for cols in sentence) + "\n"
                   for sentence, mark in zip(rows, marks))


def write_conll(path, rows, docs=None):
    """Write sentences given as lists of per-token column tuples (and document marks), atomically."""
    atomic_write(path, conll_text(rows, docs))


def labels_from(sentences):
    """The label list of a dataset: O first, then B-/I- of every type seen, types sorted."""
    types = sorted({t[2:] for _, tags in sentences for t in tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in "BI"]


def sample_indices(n, limit, seed):
    """A seeded random subset of range(n), of size min(limit, n), kept in file order."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), limit))


def _json_kind(value):
    return {list: "an array", str: "a string", bool: "true/false", type(None): "null"}.get(type(value), "a number")


def _not_utf8(path):
    """The message for a file that does not decode as UTF-8, with the first bad line (read again as bytes)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):  # no UTF-8 character contains the byte of a newline
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return (f"{path}:{lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line); "
                        "save it as UTF-8")
    return f"{path}: not UTF-8; save it as UTF-8"


def read_jsonl_numbered(path):
    """(line number, object) for each non-blank line of a JSONL file; see read_jsonl."""
    records = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if BLANK_RE.fullmatch(line):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: expected a JSON object, got invalid JSON "
                                f"({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object {{...}}, got {_json_kind(obj)}")
            records.append((lineno, obj))
    if not records:
        raise DataError(f"no records in {path}")
    return records


def read_jsonl(path):
    """One dict per non-blank line; a line that is not a JSON object raises DataError with file and line."""
    return [obj for _, obj in read_jsonl_numbered(path)]


def jsonl_text(records):
    """One JSON object a line, non-ASCII kept as it is."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write_jsonl(path, records):
    """JSONL, written atomically."""
    atomic_write(path, jsonl_text(records))


def read_classification(path, text_fields=("text",), label_field="label"):
    """Records {"id"?, "text", "label", "probs"?} of a JSONL file; the text joins the non-empty text_fields with
    a blank line. "probs", a soft label {label: probability}, is kept where present; without a label field,
    its most probable label is the label."""
    out = []
    for lineno, rec in read_jsonl_numbered(path):
        probs = rec.get("probs")
        if probs is not None:
            if not isinstance(probs, dict) or not probs or not all(isinstance(p, (int, float)) for p in probs.values()):
                raise DataError(f"{path}:{lineno}: field 'probs' is {probs!r}, "
                                f"expected an object {{label: probability}}")
            probs = check_probs({k: float(v) for k, v in probs.items()}, f"{path}:{lineno}")
            rec.setdefault(label_field, max(probs, key=probs.get))
        if label_field not in rec:
            raise DataError(f"{path}:{lineno}: no {label_field!r} field (expected the record's label)")
        label = rec[label_field]
        if not isinstance(label, str) or not label.strip():
            raise DataError(f"{path}:{lineno}: field {label_field!r} is {label!r}, expected a non-empty label string")
        parts = []
        for field in text_fields:
            value = rec.get(field)
            if value is not None and not isinstance(value, str):
                raise DataError(f"{path}:{lineno}: field {field!r} is {_json_kind(value)}, expected a string")
            if value and value.strip():
                parts.append(value)
        if not parts:
            raise DataError(f"{path}:{lineno}: no text in any of the fields {', '.join(text_fields)}")
        out.append(({"id": rec["id"]} if "id" in rec else {}) | {"text": "\n\n".join(parts), "label": label}
                   | ({"probs": probs} if probs is not None else {}))
    return out


def drop_duplicates(records, extra_keys=None):
    """Keep the first copy of each text (exact after collapsing whitespace) and no copy of a text with two labels.
    extra_keys[i], if given, are further strings of record i (say its body without the title): records sharing
    any of them are copies too, so an article republished under a new title does not land in two splits.

    Returns (kept records, number of extra copies dropped, number of records dropped for conflicting labels)."""
    parent = list(range(len(records)))  # union-find: records linked by any shared key form one group

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    first = {}
    for i, r in enumerate(records):
        for key in [r["text"], *(extra_keys[i] if extra_keys else [])]:
            key = " ".join(key.split())
            if key:
                j = first.setdefault(key, i)
                parent[max(root(i), root(j))] = min(root(i), root(j))
    groups = {}
    for i in range(len(records)):
        groups.setdefault(root(i), []).append(i)
    keep, n_copies, n_conflicting = [], 0, 0
    for idx in groups.values():
        if len({records[i]["label"] for i in idx}) > 1:
            n_conflicting += len(idx)  # which label is right is unknown, so neither copy is trusted
        else:
            keep.append(idx[0])
            n_copies += len(idx) - 1
    return [records[i] for i in sorted(keep)], n_copies, n_conflicting


def _share(n, fraction):
    """Records of a class of n that a split of this fraction gets: rounded half up, at least one if fraction > 0."""
    return max(1, int(n * fraction + 0.5 + 1e-9)) if fraction > 0 else 0


def stratified_split(labels, seed, valid=0.15, test=0.15):
    """Indices (train, valid, test), each in input order: every label's indices shuffled and cut by the fractions."""
    by_label = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    rng = random.Random(seed)
    train, dev, held = [], [], []
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        n_valid, n_test = _share(len(idx), valid), _share(len(idx), test)
        if n_valid + n_test >= len(idx):
            raise DataError(f"label {label!r} has {len(idx)} records: too few to give train, valid and test a share")
        dev += idx[:n_valid]
        held += idx[n_valid:n_valid + n_test]
        train += idx[n_valid + n_test:]
    return sorted(train), sorted(dev), sorted(held)


def per_class_subsets(labels, ks, seed):
    """{k: indices} with k of each label, in input order; each label is shuffled once, so smaller sets nest in
    larger."""
    by_label = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    smallest = min(by_label, key=lambda label: (len(by_label[label]), label))
    if max(ks) > len(by_label[smallest]):
        raise DataError(f"--per_class {max(ks)} is more than the smallest class has in train "
                        f"({smallest!r}: {len(by_label[smallest])})")
    rng = random.Random(seed)
    for label in sorted(by_label):
        rng.shuffle(by_label[label])
    return {k: sorted(i for label in by_label for i in by_label[label][:k]) for k in ks}


def split_main(args):
    records = read_classification(args.input, args.text_fields, args.label_field)
    raw = read_jsonl(args.input) if args.dedup_fields else []  # the same records, in the same order, every field
    extra = [[r.get(f) or "" for f in args.dedup_fields] for r in raw] if raw else None
    kept, n_copies, n_conflicting = drop_duplicates(records, extra)
    if not kept:
        raise DataError(f"{args.input}: no records left after dropping duplicates")
    train, dev, test = (
        [kept[i] for i in idx]
        for idx in stratified_split([r["label"] for r in kept], args.seed, args.valid, args.test))
    train_labels = [r["label"] for r in train]
    subsets = ({s: per_class_subsets(train_labels, args.per_class, s) for s in args.subset_seeds}
               if args.per_class else {})
    os.makedirs(args.out_dir, exist_ok=True)
    for name, part in (("train", train), ("valid", dev), ("test", test)):
        write_jsonl(os.path.join(args.out_dir, f"{name}.jsonl"), part)
    for s, by_k in subsets.items():
        for k, idx in by_k.items():
            write_jsonl(os.path.join(args.out_dir, f"train_k{k}_s{s}.jsonl"), [train[i] for i in idx])

    labels = sorted({r["label"] for r in kept})
    w = max(len("total"), *map(len, labels))
    lines = [f"{'input records':<30}{len(records):>7}", f"{'duplicate copies dropped':<30}{n_copies:>7}",
             f"{'conflicting copies dropped':<30}{n_conflicting:>7}", f"{'kept':<30}{len(kept):>7}", "",
             f"{'label':<{w}}{'train':>8}{'valid':>8}{'test':>8}{'total':>8}"]
    for label in labels + [None]:
        counts = [sum(label in (None, r["label"]) for r in part) for part in (train, dev, test)]
        lines.append(f"{label or 'total':<{w}}" + "".join(f"{c:>8}" for c in counts + [sum(counts)]))
    print("\n".join(lines))
    print(f"wrote train.jsonl, valid.jsonl, test.jsonl to {args.out_dir} (seed {args.seed})")
    for s in subsets:
        print("wrote " + ", ".join(f"train_k{k}_s{s}.jsonl" for k in args.per_class)
              + f" ({', '.join(map(str, args.per_class))} per class, subset seed {s})")


def fraction(text):
    """An argparse type: a fraction in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


@dataclass
class SampleConfig:
    input: str = opt(None, "CoNLL file to sample sentences from", type=str, required=True)
    limit: int = opt(None, "sentences in the sample (all of them if the file has fewer)", type=at_least(1),
                     required=True)
    seed: int = opt(0, "seed of the sample (annotate.py --seed takes the same one)")
    out: str = opt(None, "CoNLL file written: token and gold tag of each chosen sentence, in file order", type=str,
                   required=True)


@dataclass
class SplitConfig:
    input: str = opt(None, "JSONL, one object a line with the label and text fields", type=str, required=True)
    out_dir: str = opt(None, "where train.jsonl, valid.jsonl, test.jsonl (and subsets) go", type=str, required=True)
    seed: int = opt(0, "seed of the train/valid/test shuffle")
    valid: float = opt(0.15, "fraction of each label for valid.jsonl", type=fraction)
    test: float = opt(0.15, "fraction of each label for test.jsonl", type=fraction)
    per_class: list = opt(None, "e.g. 8,32: also write train_kK_sS.jsonl, K per class, nested", type=int_list)
    subset_seeds: list = opt(None, "seeds S of the per-class subsets (default: --seed)", type=int_list)
    text_fields: str = opt("title,text", "fields joined, blank line between, into the text")
    label_field: str = opt("label", "field holding each record's label")
    dedup_fields: str = opt("text", "texts that share any of these fields alone are duplicates too (BBC republished "
                                    "some articles under a new title); empty: only whole texts")


def main(argv=None):
    name, args = parse_command({"sample": (SampleConfig, "write the seeded sample of a CoNLL file (gold tags)"),
                                "split": (SplitConfig, "deduplicated, stratified train/valid/test split of a JSONL "
                                                       "classification file")},
                               argv, description="Seeded samples and splits of data files.")
    if name == "split":
        if args.valid + args.test >= 1:
            raise SystemExit(f"error: --valid {args.valid} and --test {args.test} leave nothing for train")
        if args.per_class and min(args.per_class) < 1:
            raise SystemExit(f"error: --per_class needs sizes of at least 1, got {args.per_class}")
        args.text_fields = [f for f in args.text_fields.split(",") if f]
        args.dedup_fields = [f for f in args.dedup_fields.split(",") if f]
        args.subset_seeds = args.subset_seeds or [args.seed]
        return split_main(args)
    sentences = read_conll(args.input)
    chosen = [sentences[i] for i in sample_indices(len(sentences), args.limit, args.seed)]
    write_conll(args.out, [list(zip(w, t)) for w, t in chosen])
    print(f"wrote {len(chosen)} sentences to {args.out}")


if __name__ == "__main__":
    run_main(main)
