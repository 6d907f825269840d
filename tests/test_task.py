"""task.py: the task files that drive the prompts; the shipped defaults send today's prompts byte for byte; a bad
task file stops a command in one line naming it."""
import json
import os
import subprocess
import sys

import pytest

import task as T
from cli import DataError
from common import ROOT
from prompts_capture import capture

HERE = os.path.dirname(os.path.abspath(__file__))


def test_the_default_task_files_send_the_prompts_of_before_task_files_byte_for_byte():
    """tests/prompts_today.json holds the requests annotate.py (every prompt form, confidence, zero-shot, BBC),
    evokd.py and gendist.py built before the prompts were filled from task files (tests/prompts_capture.py)."""
    with open(os.path.join(HERE, "prompts_today.json"), encoding="utf-8") as f:
        today = json.load(f)
    now = json.loads(json.dumps(capture(), ensure_ascii=False))
    for part in today:
        for name in today[part]:
            assert now[part][name] == today[part][name], f"{part} {name}"


def test_shipped_task_files_read():
    ner, cls = T.load(None, "ner"), T.load(None, "classify")
    assert ner.names == ["PER", "ORG", "LOC", "MISC"] and ner.examples_file.endswith(os.path.join("conll2003",
                                                                                                   "train.txt"))
    assert cls.kind == "classify" and cls.names == ["business", "entertainment", "politics", "sport", "tech"]
    assert ner.label_of("b-person") == "PER" and ner.label_of("Misc") == "MISC" and ner.label_of("DATE") is None
    assert cls.label_of(" Sport ") == "sport" and cls.label_of("Sports") == "sport" and cls.label_of("sporting") is None


def write(tmp_path, text, name="t.json"):
    path = tmp_path / name
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    return str(path)


GOOD = {"kind": "ner", "domain": "recipes", "labels": {"FOOD": "an ingredient", "TOOL": "a kitchen utensil"},
        "examples": [{"text": "Whisk the eggs in a bowl.", "entities": [["eggs", "FOOD"], ["bowl", "TOOL"]]}]}


def test_a_task_file_of_ones_own(tmp_path):
    t = T.read_task(write(tmp_path, GOOD))
    assert t.names == ["FOOD", "TOOL"] and t.domain == "recipes" and t.examples_file is None
    assert t.examples == [(["Whisk", "the", "eggs", "in", "a", "bowl", "."], [("eggs", "FOOD"), ("bowl", "TOOL")])]
    assert t.labels["FOOD"] == {"definition": "an ingredient", "short": "an ingredient", "plural": "FOOD",
                                "why": "is FOOD"}
    assert t.word("source") == "recipes texts" and t.word("names") == "names of FOOD or TOOL"
    with pytest.raises(DataError, match="a ner task, where a classify task is needed"):
        T.load(write(tmp_path, GOOD, "again.json"), "classify")


@pytest.mark.parametrize("raw, says", [
    ("{not json", "not a task file"),
    ({**GOOD, "kind": "tagging"}, "kind is 'tagging'"),
    ({**GOOD, "labels": {}}, "no labels"),
    ('{"kind": "ner", "domain": "d", "labels": {"FOOD": "a", "FOOD": "b"}}', "appears twice"),
    ({**GOOD, "labels": {"FOOD": "a", "food": "b"}}, "given twice"),
    ({**GOOD, "labels": {"WORK OF ART": "a"}}, "cannot be a BIO type"),
    ({**GOOD, "labels": {"O": "a"}}, "cannot be a BIO type"),
    ({**GOOD, "labels": {"B-FOOD": "a"}}, "cannot be a BIO type"),
    ({"kind": "ner", "domain": "d", "labels": {"NEW-WORD": "a"}}, None),  # letters and hyphens: allowed
    ({**GOOD, "examples": [{"text": "Chop it with a knife.", "entities": [["knife", "KNIFE"]]}]}, "not a label"),
    ({**GOOD, "examples": [{"text": "Chop it.", "entities": [["knife", "TOOL"]]}]}, "not written in its text"),
    ({"kind": "classify", "domain": "d", "labels": {"a": "x"}, "examples": [{"text": "t", "label": "b"}]},
     "not a label"),
    ({**GOOD, "colour": "red"}, "unknown fields colour"),
])
def test_a_bad_task_file_is_refused_in_one_line_naming_it(tmp_path, raw, says):
    path = write(tmp_path, raw)
    if says is None:
        assert T.read_task(path).names == ["NEW-WORD"]
        return
    with pytest.raises(DataError) as e:
        T.read_task(path)
    assert str(e.value).startswith(path) and says in str(e.value) and "\n" not in str(e.value)


def test_the_command_line_says_one_line_for_a_bad_task_file(tmp_path):
    path = write(tmp_path, {**GOOD, "labels": {"FOOD": "a", "food": "b"}})
    for script in (["annotate.py", "--dry_run"], ["task.py"]):
        args = [sys.executable, os.path.join(ROOT, script[0]), *script[1:]]
        args += ["--task_file", path] if script[0] != "task.py" else [path]
        r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and r.stderr.startswith(f"error: {path}")


# ------------------------------------------------------------------------------ annotate.py with a task of one's own

import annotate as A  # noqa: E402
import confidence  # noqa: E402
from replies import align, label_reply  # noqa: E402
from data import write_conll  # noqa: E402


def test_a_type_outside_the_task_is_dropped_and_counted(tmp_path):
    t = T.read_task(write(tmp_path, GOOD))
    words = "Whisk the eggs in a bowl .".split()
    tags, kept, dropped = align(words, [("eggs", "food"), ("bowl", "LOC"), ("Whisk", "B-TOOL")], task=t)
    assert tags == ["B-TOOL", "O", "B-FOOD", "O", "O", "O", "O"] and dropped == {"bad_type": 1}
    assert [e["type"] for e in kept] == ["FOOD", "TOOL"]


def test_any_jsonl_and_plain_text_become_sentences_with_document_and_sentence_ids(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a7", "body": "Ann met Bob. They left."}) + "\n"
                                       + json.dumps({"body": "Rome is old."}) + "\n")
    cfg = A.parse_args(["--format", "jsonl", "--text_field", "body", "--input", str(tmp_path / "in.jsonl")])
    assert [(r["meta"], r["words"]) for r in A.load_records(cfg)] == [
        ({"document": "a7", "sentence": 0}, ["Ann", "met", "Bob", "."]),
        ({"document": "a7", "sentence": 1}, ["They", "left", "."]),
        ({"document": 1, "sentence": 0}, ["Rome", "is", "old", "."])]
    (tmp_path / "in.txt").write_text("Ann met Bob. They left.\nA new line.\n\n\nRome is old.\n")
    cfg = A.parse_args(["--format", "text", "--input", str(tmp_path / "in.txt")])
    assert [(r["meta"]["document"], r["meta"]["sentence"]) for r in A.load_records(cfg)] == \
        [(0, 0), (0, 1), (0, 2), (1, 0)]
    (tmp_path / "in.jsonl").write_text(json.dumps({"body": "x"}) + "\n" + json.dumps({"text": "y"}) + "\n")
    cfg = A.parse_args(["--format", "jsonl", "--text_field", "body", "--input", str(tmp_path / "in.jsonl")])
    with pytest.raises(DataError, match="in.jsonl:2: expected a JSON object with a string 'body'"):
        A.load_records(cfg)


CLASSES = {"kind": "classify", "domain": "news", "labels": {"money": "business", "games": "sport"},
           "examples": [{"text": "Shares rose.", "label": "money"}, {"text": "Chelsea won.", "label": "games"}]}


def test_classify_texts_prompts_and_replies(tmp_path):
    path = write(tmp_path, CLASSES)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i, "text": t, "label": y}) + "\n" for i, (t, y) in
                                               enumerate([("Oil fell.", "money"), ("Arsenal lost.", "games")])))
    cfg = A.parse_args(["--task_file", path, "--format", "jsonl", "--input", str(tmp_path / "in.jsonl"),
                        "--prompt", "completion"])
    records = A.load_records(cfg)
    assert [(r["text"], r["gold"], r["input"]["id"]) for r in records] == [("Oil fell.", "money", 0),
                                                                          ("Arsenal lost.", "games", 1)]
    shots, calls = A.requests_of(cfg, records)
    assert shots[0] == [("Shares rose.", "money"), ("Chelsea won.", "games")]  # the task file's, in its order
    assert calls[0][1]["prompt"] == ("News texts, each with one label. Labels: money (business), games (sport).\n\n"
                                     "Text: Shares rose.\nLabel: money\n\nText: Chelsea won.\nLabel: games\n\n"
                                     "Text: Oil fell.\nLabel:")
    cfg = A.parse_args(["--task_file", path, "--format", "jsonl", "--input", str(tmp_path / "in.jsonl")])
    messages = A.requests_of(cfg, records)[1][1][1]["messages"]
    assert "exactly one of these two labels:\nmoney: business\ngames: sport" in messages[0]["content"]
    assert messages[-1]["content"] == "Text: Arsenal lost." and messages[2]["content"] == "money"
    t = T.read_task(path)
    assert label_reply(" Money.\nText: more", t) == ("money", "ok") and label_reply(" weather", t) == \
        (None, "no_answer") and label_reply("  ", t) == (None, "empty")
    reply = {"content": " games", "logprobs": [(" g", -0.1), ("ames", -0.5), ("\n", -2.0)]}
    assert confidence.label_from_logprobs(reply, "games") == pytest.approx(0.6065, abs=1e-4)
    rows = confidence.label_curve([{"gold": "money", "label": "money", "conf": 0.9},
                                   {"gold": "games", "label": "money", "conf": 0.2}], ["money", "games"])
    assert rows[0]["texts_kept"] == 1 and rows[0]["accuracy"] == 0.5 and rows[-3]["accuracy"] == 1.0


def test_worked_examples_from_a_gold_file_must_have_the_tasks_labels(tmp_path):
    path = write(tmp_path, {**GOOD, "examples": []})
    write_conll(str(tmp_path / "gold.conll"), [[("Eggs", "B-FOOD"), ("in", "O"), ("Paris", "B-LOC")]])
    cfg = A.parse_args(["--task_file", path, "--examples", str(tmp_path / "gold.conll")])
    with pytest.raises(DataError, match=r"gold.conll: labels LOC are not labels of the task"):
        A.requests_of(cfg, [{"words": ["x"], "gold": None}])
    # no examples anywhere: zero-shot on the definitions, never another task's examples
    cfg = A.parse_args(["--task_file", path, "--prompt", "completion"])
    (shots,), ((_, payload),) = A.requests_of(cfg, [{"words": ["Eggs", "."], "gold": None}])
    assert shots == [] and payload["prompt"] == ("Named entities in recipes sentences. Types: FOOD (an ingredient), "
                                                 "TOOL (a kitchen utensil).\n\nSentence: Eggs .\nEntities:")


def test_evokd_prompts_name_the_tasks_types_and_domain(tmp_path):
    import evokd as E
    path = write(tmp_path, {**GOOD, "words": {"source": "cookery books"}})
    cfg = E.parse_args(["--task_file", path, "--model", "m"])
    batch = [{"words": ["Whisk", "eggs", "."], "tags": ["O", "B-FOOD", "O"], "pred": ["O", "O", "O"]}]
    system, user = (m["content"] for m in E.analysis_request(cfg, batch, 1)[1]["messages"])
    assert system == "You are an expert in named entity recognition: finding the names of FOOD (FOOD) and TOOL (TOOL) " \
                     "in recipes text." and "tested on recipes sentences" in user and "Right: eggs (FOOD)" in user
    gen = E.generation_request(cfg, "hard", 2, "misses eggs", [(["Whisk", "eggs", "."], ["O", "B-FOOD", "O"])], 1, 0)
    text = gen[1]["messages"][-1]["content"]
    assert "Example sentences from cookery books:" in text and "each with names of FOOD or TOOL," in text and \
        "Each must read like a sentence of recipes text" in text and "news" not in text


def test_knn_worked_examples_for_texts_come_from_the_task_file_nearest_last(tmp_path):
    path = write(tmp_path, {**CLASSES, "examples": CLASSES["examples"] + [
        {"text": "The bank raised interest rates and the pound rose.", "label": "money"}]})
    cfg = A.parse_args(["--task_file", path, "--format", "text", "--demos", "knn", "--shots", "2",
                        "--cache", str(tmp_path / "c.sqlite")])
    records = [{"words": "Interest rates at the bank went up .".split(), "text": "Interest rates at the bank went up."}]
    (shots,) = A.requests_of(cfg, records)[0]
    assert len(shots) == 2 and shots[-1] == ("The bank raised interest rates and the pound rose.", "money")
