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
    assert cls.label_of(" Sport ") == "sport" and cls.label_of("sports") is None


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
