"""
Worked examples for the prompts of annotate.py (and evokd.py's labeller): the task file's own (task.py), or drawn
from a gold file (CoNLL for NER, JSONL for classification) whose labels must be the task's; the same seeded set for
every request (`--demos random`), or for each request the ones most similar to it (`--demos knn`: cosine of MiniLM
sentence embeddings, the mean of the last hidden states over real word pieces; the gold file's embeddings are cached
beside --cache under the hash of its bytes), as GPT-NER did. With no examples anywhere, none: zero-shot.

    python annotate.py --demos knn --shots 8 --prompt completion --limit 100     # kNN worked examples from CoNLL
"""
import functools
import os
import random

import numpy as np

from data import read_classification, read_conll
from eval import get_entities
from rawtext import tokenize
from runs import file_hash
from task import of as task_of


def worked_example(words, tags):
    """A gold sentence as a worked example: (words, [(entity text, type)])."""
    return words, [(" ".join(words[s:e]), t) for t, s, e in get_entities(tags)]


def examples_path(cfg, task):
    """The gold file worked examples come from: --examples, else the task file's examples_file unless it has
    examples of its own; None: the task file's examples (or none)."""
    return cfg.examples or (None if task.examples else task.examples_file)


def gold_pool(path, task):
    """[(words, worked example)] of every unit of a gold file whose labels are the task's."""
    if task.kind == "ner":
        sents = read_conll(path)
        task.check_labels({t[2:] for _, tags in sents for t in tags if t != "O"}, path)
        return [(words, worked_example(words, tags)) for words, tags in sents]
    recs = read_classification(path)
    task.check_labels({r["label"] for r in recs}, path)
    return [(tokenize(r["text"]), (r["text"], r["label"])) for r in recs]


def unit_words(task, example):
    return example[0] if task.kind == "ner" else tokenize(example[0])


def fixed_shots(cfg, records, task=None):
    """The cfg.shots worked examples every request shows (--demos random): seeded from the gold file, or the task
    file's first ones; never a unit being annotated."""
    exclude = {tuple(r["words"]) for r in records}
    path = examples_path(cfg, task)
    if path is None:
        return [ex for ex in task.examples if tuple(unit_words(task, ex)) not in exclude][:cfg.shots]
    if task.kind == "ner":
        return draw_shots(path, cfg.shots, cfg.seed, exclude, task)
    return draw_texts(path, cfg.shots, cfg.seed, exclude, task)


def draw_shots(path, k, seed, exclude=(), task=None):
    """k worked examples (words, [(text, type)]) drawn with `seed` from a gold CoNLL file: ordinary prose
    (6-30 tokens, not a headline or a results line), one without entities when k >= 3, the others
    chosen to show all the types first; no sentence that is being annotated. With a task, the file's types must
    be the task's."""
    if k <= 0:
        return []
    sents = read_conll(path)
    if task:
        task.check_labels({t[2:] for _, tags in sents for t in tags if t != "O"}, path)
    order = list(range(len(sents)))
    random.Random(seed).shuffle(order)
    exclude = set(exclude)

    def prose(words):
        alpha = [w for w in words if w.isalpha()]
        return 6 <= len(words) <= 30 and len(alpha) >= 4 and sum(w.islower() for w in alpha) >= 0.5 * len(alpha)

    with_ents, without = [], []
    for i in order:
        words, tags = sents[i]
        if tuple(words) not in exclude and prose(words):
            ex = worked_example(words, tags)
            (with_ents if ex[1] else without).append(ex)
    want = k - 1 if k >= 3 and without else k
    chosen, seen = [], set()
    while len(chosen) < want and with_ents:  # first the sentences that show the most types not shown yet
        best = max(with_ents, key=lambda ex: len({t for _, t in ex[1]} - seen))  # the first such, in seeded order
        if not {t for _, t in best[1]} - seen:
            break
        chosen.append(best)
        seen |= {t for _, t in best[1]}
    for ex in with_ents:
        if len(chosen) < want and ex not in chosen:
            chosen.append(ex)
    if want < k:
        chosen.insert(1, without[0])  # not last, so "the last example is empty" is no pattern to copy
    return chosen


def draw_texts(path, k, seed, exclude, task):
    """k (text, label) drawn with `seed` from a gold JSONL file: first one of each label not shown yet, then any, in
    a seeded order (so the last example's label is no pattern to copy); no text that is being annotated."""
    pool = [ex for words, ex in gold_pool(path, task) if tuple(words) not in exclude]
    rng = random.Random(seed)
    rng.shuffle(pool)
    chosen, seen = [], set()
    for ex in pool:
        if len(chosen) < k and ex[1] not in seen:
            chosen.append(ex)
            seen.add(ex[1])
    chosen += [ex for ex in pool if ex not in chosen][:k - len(chosen)]
    rng.shuffle(chosen)
    return chosen


@functools.lru_cache(maxsize=1)
def minilm():
    """The default MiniLM weights and tokenizer, loaded once per process."""
    from model import default_model_dir, from_pretrained, load_tokenizer
    return from_pretrained(default_model_dir(), verbose=False), load_tokenizer(default_model_dir())


def embed(sentences):
    """Unit sentence embeddings (predict.sentence_embeddings) from the default MiniLM weights."""
    import torch
    from predict import sentence_embeddings
    return sentence_embeddings(*minilm(), sentences, torch.device("cpu"))


def example_embeddings(path, cache_dir, units):
    """embed() of every unit (sentence or text, as words) of a gold file, cached in cache_dir under the hash of the
    file's bytes: computed once, computed again when the file changes."""
    cached = os.path.join(cache_dir, f"knn-{file_hash(path)[:16]}.npy")
    if os.path.exists(cached):
        return np.load(cached)
    emb = embed(units)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = cached + ".tmp.npy"
    np.save(tmp, emb)
    os.replace(tmp, cached)  # a kill leaves no half-written cache
    return emb


def knn_shots(cfg, records, task=None):
    """For each record, the cfg.shots worked examples most similar to it (cosine of sentence embeddings), least
    similar first, so the nearest sits just before the unit asked about; never a unit being annotated (so never the
    unit itself), and each distinct one once."""
    task = task or task_of(cfg)
    path = examples_path(cfg, task)
    pool = gold_pool(path, task) if path else [(unit_words(task, ex), ex) for ex in task.examples]
    if cfg.shots <= 0 or not pool:
        return [[] for _ in records]
    emb = example_embeddings(path, os.path.dirname(cfg.cache) or ".", [w for w, _ in pool]) if path else \
        embed([w for w, _ in pool])
    exclude, seen, keep = {tuple(r["words"]) for r in records}, set(), []
    for i, (words, _) in enumerate(pool):
        if tuple(words) not in exclude and tuple(words) not in seen:
            seen.add(tuple(words))
            keep.append(i)
    sims = embed([r["words"] for r in records]) @ emb[keep].T  # (records, candidates)
    k = min(cfg.shots, len(keep))
    out = []
    for row in sims:
        top = np.argpartition(-row, k - 1)[:k]
        # ascending: the most similar last
        out.append([pool[keep[j]][1] for j in top[np.argsort(row[top])]])
    return out
