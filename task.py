"""
A task file says what a task is: its kind, its labels and what each means, the domain of its texts and, if you
like, worked examples. annotate.py, evokd.py and gendist.py fill the blanks of their prompts from it, and train.py
and predict.py agree with them on the label set. This docstring is the one place its format is written down.

    python task.py tasks/conll2003.json        # check a task file; prints its labels and examples

A task file is one JSON object:

    {"kind": "ner",                            # "ner" (entity spans) or "classify" (one label per text)
     "domain": "news",                         # a word or two that stands before "text" and "sentences"
     "labels": {"PER": "people: first names, surnames, full names",      # NAME: definition, in prompt order
                "ORG": {"definition": "organisations: ...", "short": "organisation", "plural": "organisations",
                        "why": "names an organisation"}},                # or NAME: {definition and extras}
     "examples": [{"text": "Angela Merkel met Macron in Paris .",       # optional worked examples
                   "entities": [["Angela Merkel", "PER"], ["Macron", "PER"], ["Paris", "LOC"]]}],
     "examples_file": "../data/conll2003/train.txt",                     # optional: a gold file to draw them from
     "aliases": {"PERSON": "PER"},                                       # optional: other names a reply may use
     "words": {"rules": "Dates and numbers are not entities."}}          # optional: the phrases listed below

- kind "classify": an example is {"text": ..., "label": NAME}; a label name is any text on one line.
  kind "ner": an example is {"text": ..., "entities": [[entity text as written in the text, NAME], ...]}; a label
  name is a BIO type: letters and hyphens, starting with a letter, not "O" nor "B-..." or "I-..." (it becomes
  B-NAME and I-NAME).
- A label's extras, each defaulting to something made from its name and definition: "short", the gloss the
  completion prompt puts after the name; "plural", the kind of thing it names, in the plural (EvoKD's analysis);
  "why", the reason a worked example's chain of thought gives ("Paris names a place").
- "words", each optional: "rules" (a line the NER prompts add after "copy each entity exactly"), "no_entity" (the
  chain of thought's justification for a sentence without entity), "names" (what EvoKD asks each new sentence
  to hold), "source" (where EvoKD's sentences come from: "the news"), "line" (what each new sentence must read
  like), "writer" (who gendist.py's chat prompt says the LLM is), "subject" (what a new text is about).
- Worked examples come from "examples", or from "examples_file" (a gold CoNLL or JSONL file, relative to the task
  file's folder: `--examples` on the command line names another), whose labels must all be the task's. With
  neither, the prompts are zero-shot on the definitions.
- Case does not matter when a reply names a label: "per", "B-PER" and "Per" are all PER; "aliases" adds names.

A bad file stops the command with one line naming it: not JSON, an unknown kind, no labels, a label named twice
(JSON objects drop repeated keys silently, so the file is read with every key kept), a label name that cannot be a
BIO type, an example whose label is not a label of the task.

Two task files ship, and are the defaults: tasks/conll2003.json (NER: CoNLL-2003's four types, the definitions and
words every prompt of this project used before task files existed) and tasks/bbc.json (classify: BBC's five
topics). Two examples of a task of one's own ship beside them: tasks/example_desks.json (classify: four news desks, the
README's worked example) and tasks/example_ner_news.json (NER: companies, products, money and job titles, measured in
results/llm_labels.md). The README's porting section walks through writing one of your own.
"""
import functools
import json
import os
import re
import sys
from dataclasses import dataclass, field

from cli import DataError, opt, parse_config

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = {"ner": os.path.join(HERE, "tasks", "conll2003.json"), "classify": os.path.join(HERE, "tasks", "bbc.json")}
KINDS = ("ner", "classify")
NER_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z-]*$")
LABEL_EXTRAS = ("definition", "short", "plural", "why")
WORDS = ("rules", "no_entity", "names", "source", "line", "writer", "subject")
NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()


@dataclass
class Task:
    path: str
    kind: str
    domain: str
    labels: dict  # NAME -> {"definition", "short", "plural", "why"}, in the file's order
    examples: list = field(default_factory=list)  # ner: (words, [(text, NAME)]); classify: (text, NAME)
    examples_file: str = None
    aliases: dict = field(default_factory=dict)  # upper-case other name -> NAME
    words: dict = field(default_factory=dict)

    @property
    def names(self):
        return list(self.labels)

    def word(self, key):
        """One of the phrases under "words", or its default made from the labels and the domain."""
        if key in self.words:
            return self.words[key]
        plurals = [self.labels[n]["plural"] for n in self.labels]
        return {"rules": "Words that fit none of the types are not entities.",
                "no_entity": "no word fits any of the types",
                "names": "names of " + or_list(plurals),
                "source": f"{self.domain} texts",
                "line": f"a sentence of {self.domain} text",
                "writer": f"a writer of {self.domain} texts",
                "subject": "subject"}[key]

    def label_of(self, text):
        """The task's label a reply means by `text` (any case, a B-/I- prefix or an alias), or None."""
        t = text.strip().upper()
        if self.kind == "ner":
            t = re.sub(r"^[BI]-", "", t)
        t = self.aliases.get(t, t).upper()
        return next((n for n in self.labels if n.upper() == t), None)

    def check_labels(self, found, where):
        """Refuse a gold file whose labels are not all the task's."""
        extra = sorted(set(found) - set(self.labels))
        if extra:
            raise DataError(f"{where}: labels {', '.join(extra)} are not labels of the task {self.path} "
                            f"({', '.join(self.labels)})")


def number_word(n):
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def or_list(items, last="or"):
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def unique_keys(pairs):
    """object_pairs_hook: a JSON object as a dict, refusing a key written twice (json.load keeps the last)."""
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"the key {k!r} appears twice in one object")
        seen[k] = v
    return seen


def read_task(path):
    """The Task of a task file (see the docstring), or DataError naming the file and what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f, object_pairs_hook=unique_keys)
    except FileNotFoundError:
        raise DataError(f"{path}: no such task file")
    except ValueError as e:  # bad JSON (json.JSONDecodeError is a ValueError) or a repeated key
        raise DataError(f"{path}: not a task file: {e}")
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a task file is a JSON object with kind, domain and labels")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise DataError(f"{path}: kind is {kind!r}, expected one of {', '.join(KINDS)}")
    unknown = sorted(set(raw) - {"kind", "domain", "labels", "examples", "examples_file", "aliases", "words"})
    if unknown:
        raise DataError(f"{path}: unknown fields {', '.join(unknown)} (see task.py for the format)")
    domain = raw.get("domain", "")
    if not isinstance(domain, str) or not domain.strip():
        raise DataError(f"{path}: domain must be a non-empty string, such as \"news\"")
    labels = read_labels(path, kind, raw.get("labels"))
    words = raw.get("words", {})
    if not isinstance(words, dict) or set(words) - set(WORDS) or not all(isinstance(v, str) for v in words.values()):
        raise DataError(f"{path}: words must be an object of strings with keys among {', '.join(WORDS)}")
    aliases = raw.get("aliases", {})
    if not isinstance(aliases, dict) or any(v not in labels for v in aliases.values()):
        raise DataError(f"{path}: aliases must map other names to labels of the task ({', '.join(labels)})")
    examples_file = raw.get("examples_file")
    if examples_file is not None:
        examples_file = os.path.normpath(os.path.join(os.path.dirname(path), examples_file))
    task = Task(path, kind, domain.strip(), labels, examples_file=examples_file, words=words,
                aliases={k.upper(): v for k, v in aliases.items()})
    task.examples = read_examples(task, raw.get("examples", []))
    return task


def read_labels(path, kind, raw):
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: no labels: expected \"labels\": {{NAME: definition, ...}}")
    labels, upper = {}, set()
    for name, value in raw.items():
        if kind == "ner" and (not NER_NAME_RE.match(name) or name.upper() == "O" or re.match(r"[BI]-", name, re.I)):
            raise DataError(f"{path}: label {name!r} cannot be a BIO type: use letters and hyphens, "
                            "starting with a letter, not O, not B- or I-")
        if not name.strip() or "\n" in name:
            raise DataError(f"{path}: label {name!r}: a label name is non-empty text on one line")
        if name.upper() in upper:  # replies are read case-insensitively, so these two could not be told apart
            raise DataError(f"{path}: label {name!r} is given twice (labels are matched ignoring case)")
        upper.add(name.upper())
        value = {"definition": value} if isinstance(value, str) else value
        if not isinstance(value, dict) or not isinstance(value.get("definition"), str) or \
                set(value) - set(LABEL_EXTRAS) or not all(isinstance(v, str) for v in value.values()):
            raise DataError(f"{path}: label {name!r}: expected a definition string, or an object with a "
                            f"\"definition\" and any of {', '.join(LABEL_EXTRAS[1:])}")
        labels[name] = {"definition": value["definition"], "short": value.get("short", value["definition"]),
                        "plural": value.get("plural", name), "why": value.get("why", f"is {name}")}
    return labels


def read_examples(task, raw):
    """Worked examples as the prompts use them: ner (tokens, [(entity text, NAME)]), classify (text, NAME)."""
    from rawtext import tokenize
    if not isinstance(raw, list):
        raise DataError(f"{task.path}: examples must be a list")
    out = []
    for n, ex in enumerate(raw, 1):
        where = f"{task.path}: example {n}"
        if not isinstance(ex, dict) or not isinstance(ex.get("text"), str) or not ex["text"].strip():
            raise DataError(f"{where}: expected an object with a non-empty \"text\"")
        if task.kind == "classify":
            if ex.get("label") not in task.labels:
                raise DataError(f"{where}: label {ex.get('label')!r} is not a label of the task "
                                f"({', '.join(task.labels)})")
            out.append((ex["text"], ex["label"]))
            continue
        ents = ex.get("entities")
        if not isinstance(ents, list) or not all(isinstance(e, list) and len(e) == 2 for e in ents):
            raise DataError(f"{where}: expected \"entities\": [[entity text, label], ...]")
        for text, name in ents:
            if name not in task.labels:
                raise DataError(f"{where}: label {name!r} is not a label of the task ({', '.join(task.labels)})")
            if not isinstance(text, str) or text not in ex["text"]:
                raise DataError(f"{where}: entity {text!r} is not written in its text")
        out.append((tokenize(ex["text"]), [(t, y) for t, y in ents]))
    return out


@functools.lru_cache(maxsize=16)
def read_cached(path, kind, stamp):
    return load(path, kind)


def of(cfg, kind=None):
    """The task of a command's config: its --task_file (read once per process while the file is unchanged), or the
    default of `kind` (CoNLL-2003's without one)."""
    path = getattr(cfg, "task_file", "") or DEFAULT[kind or "ner"]
    st = os.stat(path) if os.path.exists(path) else None
    return read_cached(path, kind, st and (st.st_mtime_ns, st.st_size))


def load(path, kind=None):
    """The task file at `path`, or the default one of `kind`; refuses a file of another kind than `kind`."""
    task = read_task(path or DEFAULT[kind or "ner"])
    if kind and task.kind != kind:
        raise DataError(f"{task.path}: a {task.kind} task, where a {kind} task is needed")
    return task


def train_labels(task):
    """The label set a model of this task is trained with (train.py --labels): for NER the B- and I- tag of every
    type, types sorted, after O (data.labels_from's order); for classify the labels, sorted."""
    if task.kind == "classify":
        return sorted(task.labels)
    return ["O"] + [f"{p}-{t}" for t in sorted(task.labels) for p in "BI"]


@dataclass
class CheckConfig:
    files: list = opt(None, "task files to check; default the two shipped ones", nargs="*", positional=True)


def main(argv=None):
    cfg = parse_config(CheckConfig, argv, description=__doc__.split("\n\n")[0])
    for path in cfg.files or [DEFAULT["ner"], DEFAULT["classify"]]:
        t = read_task(path)
        print(f"{path}: {t.kind}, domain {t.domain!r}, {len(t.labels)} labels ({', '.join(t.labels)}), "
              f"{len(t.examples)} examples" + (f", examples drawn from {t.examples_file}" if t.examples_file else "")
              + f"\n  its models' label set: train.py --labels {','.join(train_labels(t))}")
    return 0


if __name__ == "__main__":
    from cli import run_main
    run_main(main)
