"""
The task kinds train.py trains, NER (a BIO tag per word, CoNLL files) and classification (a label per text, JSONL
files), as one table of functions: how a split is read, which labels it has, how it is cut into word pieces, scored
and written, and which score picks the checkpoint. A third kind is one more entry in TASKS (and in --task's choices).
load_data reads a run's files through it.

    python train.py --task ner        # CoNLL folder: train.txt, valid.txt, test.txt
    python train.py --task classify --data_dir runs/bbc   # train.jsonl, valid.jsonl, test.jsonl: {"text", "label"}
"""
import os
import random
from dataclasses import dataclass

from cli import DataError
from data import labels_from, read_classification, read_conll, write_conll, write_jsonl
from distill import teacher_views
from eval import classification_scores, span_f1
from model import load_tokenizer
from predict import encode, encode_texts, predict, predict_texts


@dataclass
class Split:
    items: list  # NER: (words, tags) sentences; classify: (text, label, probs) records
    examples: list  # word-piece examples (predict.encode, predict.encode_texts)
    gold: list  # per sentence its tags; per text its label


def read_texts(cfg, path):
    return [(r["text"], r["label"], r.get("probs"))
            for r in read_classification(path, (cfg.text_field,), cfg.label_field)], None, None


def ner_labels(sentences, soft):  # labels_from's order, with every label a soft label names
    keys = sorted({k for dists in soft if dists for d in dists for k in d})
    return labels_from(sentences + [(keys, keys)])


def text_labels(records, soft):  # sorted, with every label a soft label names
    return sorted({label for _, label, _ in records} | {k for _, _, probs in records for k in (probs or {})})


def score_ner(model, split, device, cfg, labels, test=False):
    """(span F1, predictions, extra): on test also the argmax decoding of the same logits, to show what
    constrained decoding adds."""
    decodes = (cfg.decode, "argmax") if test else (cfg.decode,)
    preds, *argmax = predict(model, split.items, split.examples, device, decodes=decodes, **batching(cfg))
    return span_f1(split.gold, preds), preds, ({"test_f1_argmax": span_f1(split.gold, argmax[0])["f1"]} if test else {})


def score_texts(model, split, device, cfg, labels, test=False):
    """(accuracy / macro-F1, predictions, extra)."""
    preds, _ = predict_texts(model, split.examples, device, **batching(cfg))
    return classification_scores(split.gold, preds, labels=sorted(set(labels) | set(split.gold))), preds, {}


def batching(cfg):
    return dict(batch_size=cfg.eval_batch_size, max_tokens=cfg.eval_tokens, bf16=bool(cfg.bf16))


def write_ner(out_dir, sentences, preds):
    write_conll(os.path.join(out_dir, "test_predictions.conll"),
                [list(zip(words, gold, pred)) for (words, gold), pred in zip(sentences, preds)])


def write_texts(out_dir, records, preds):
    write_jsonl(os.path.join(out_dir, "test_predictions.jsonl"),
                [{"text": text, "gold": gold, "pred": pred} for (text, gold, _), pred in zip(records, preds)])


@dataclass(frozen=True)
class Task:
    ext: str  # of train, valid and test in --data_dir
    head: str  # model.from_pretrained's: a label per word piece, or per text
    read: object  # (cfg, path) -> (items, soft labels or None, each item's document id or None)
    labels: object  # (items, soft labels) -> the labels the training data has
    encode: object  # (items, tokenizer, label2id, max_len, soft labels, context=, docs=) -> examples
    gold: object  # items -> their gold labels
    score: object  # (model, split, device, cfg, labels, test) -> (scores, predictions, extra metrics)
    write: object  # (out_dir, items, predictions): the test predictions
    key: str  # the dev score that chooses the checkpoint
    word: str  # its name in the log
    unit: str  # what an example is
    also: tuple = ()  # (name, key) of more test scores in the last log line
    default_dir: str = ""  # --data_dir when none is given ("": it must be given)
    default_hint: str = ""  # what to do when default_dir is missing


TASKS = {
    "ner": Task(ext=".txt", head="token", read=lambda cfg, path: read_conll(path, with_probs=True, docs=True),
                labels=ner_labels, encode=encode, gold=lambda sentences: [tags for _, tags in sentences],
                score=score_ner, write=write_ner, key="f1", word="F1", unit="windows", default_dir="data/conll2003",
                default_hint="CoNLL-2003 is not redistributed: see the README's Data section"),
    "classify": Task(ext=".jsonl", head="sequence", read=read_texts, labels=text_labels,
                     # a text is read whole (its beginning): --context is NER's
                     encode=lambda records, tok, label2id, max_len, soft, **_: encode_texts(records, tok, label2id,
                                                                                            max_len),
                     gold=lambda records: [label for _, label, _ in records], score=score_texts, write=write_texts,
                     key="accuracy", word="accuracy", unit="texts", also=(("macro-F1", "macro_f1"),)),
}


def data_files(cfg):
    """(original, distilled, dev, test) paths of the run ("" where none is read), refused at once if missing. With no
    valid file, --dev_share takes dev from the training data (""); with no test file there is no test score ("")."""
    task = TASKS[cfg.task]
    ext, data_dir = task.ext, cfg.data_dir or task.default_dir
    must = f"the folder must hold train{ext}, valid{ext} and test{ext} (no valid: --dev_share; no test: no score)"
    hint = f"{task.default_hint}; {must}, or pass --data_dir" if not cfg.data_dir else f"--data_dir: {must}"
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: no such data folder ({hint})")
    original = cfg.original or cfg.train_file or os.path.join(data_dir, "train" + ext)
    if cfg.strategy == "distilled" and cfg.distilled:
        original = ""  # D alone: O is not read
    dev, test = (os.path.join(data_dir, name + ext) for name in ("valid", "test"))
    if not os.path.isfile(dev):
        if not cfg.dev_share:
            raise DataError(f"{dev}: no such file ({hint}); without gold dev labels, --dev_share 0.1 takes a seeded "
                            "tenth of the training data as dev")
        dev = ""
    test = test if os.path.isfile(test) else ""
    paths = (original, cfg.distilled, dev, test)
    for path in paths:
        if path and not os.path.isfile(path):
            own = path == os.path.join(data_dir, "train" + ext)
            raise DataError(f"{path}: no such file" + (f" ({hint})" if own else ""))
    return paths


def dev_from_training(cfg, items, soft, docs):
    """--dev_share: a seeded share of the training items (O, or D where O is not read) as dev, the rest to train on:
    ((items, soft, docs) kept, (items, None, docs) of dev). Dev is then scored against these labels, the LLM's where
    the training data is the LLM's."""
    order = list(range(len(items)))
    random.Random(cfg.seed).shuffle(order)
    n_dev = max(1, round(cfg.dev_share * len(items)))
    if n_dev >= len(items):
        raise DataError(f"--dev_share {cfg.dev_share:g}: leaves nothing to train on ({len(items)} training items)")
    dev, keep = sorted(order[:n_dev]), sorted(order[n_dev:])
    pick = lambda xs, idx: None if xs is None else [xs[i] for i in idx]  # noqa: E731
    return (pick(items, keep), pick(soft, keep), pick(docs, keep)), (pick(items, dev), None, pick(docs, dev))


def load_data(cfg, task, paths, model_dir):
    """(labels, O's examples, D's examples, dev, test): every file read (hard or soft labels) and cut into word
    pieces with model_dir's tokenizer."""
    original_path, distilled_path, dev_path, test_path = paths
    original, soft_o, docs_o = task.read(cfg, original_path) if original_path else ([], None, None)
    distilled, soft_d, docs_d = task.read(cfg, distilled_path) if distilled_path else ([], None, None)
    if dev_path:
        dev = task.read(cfg, dev_path)
    elif original:
        (original, soft_o, docs_o), dev = dev_from_training(cfg, original, soft_o, docs_o)
    else:
        (distilled, soft_d, docs_d), dev = dev_from_training(cfg, distilled, soft_d, docs_d)
    test = task.read(cfg, test_path) if test_path else None
    labels = label_list(cfg, task, original + distilled, (soft_o or []) + (soft_d or []))
    label2id, tokenizer = {l: i for i, l in enumerate(labels)}, load_tokenizer(model_dir)

    def encoded(items, soft, docs, context=cfg.context):  # --context: each sentence read in its document
        return task.encode(items, tokenizer, label2id, cfg.max_len, soft, context=context, docs=docs)

    def to_train(items, soft, docs):  # with a teacher that reads more than the student: its windows beside (distill)
        examples = encoded(items, soft, docs)
        if cfg.teacher and cfg.teacher_context != cfg.context and examples:
            examples = teacher_views(examples, encoded(items, None, docs, cfg.teacher_context))
        return examples
    dev, test = (None if split is None else Split(split[0], encoded(split[0], None, split[2]), task.gold(split[0]))
                 for split in (dev, test))
    return labels, to_train(original, soft_o, docs_o), to_train(distilled, soft_d, docs_d), dev, test


def label_list(cfg, task, items, soft):
    """--labels, or the labels of the training data, hard and soft (a soft label names every label of its
    teacher): NER in labels_from's order, classes sorted."""
    seen = task.labels(items, soft)
    if not cfg.labels:
        return seen
    fixed = cfg.labels.split(",")
    unknown = [l for l in seen if l not in fixed]
    if unknown:
        raise DataError(f"--labels {cfg.labels}: the training data has labels it lacks: {', '.join(unknown)}")
    return fixed
