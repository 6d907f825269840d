"""A task of one's own, end to end, with no code edited: a task file and raw text, labelled by a real SmolLM2
(llama.cpp server), a student trained on the LLM's labels alone (train.py) and run on new text (predict.py); for
entities of types that are not CoNLL's, and for texts classified by a label set of one's own."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import annotate as A
import task as T
from common import ROOT
from data import read_conll, read_jsonl

NER_TASK = {
    "kind": "ner", "domain": "news",
    "labels": {"PERSON": "the name of a person", "COMPANY": "the name of a company or a brand",
               "CITY": "the name of a city or a town"},
    "examples": [{"text": "Tim Cook said Apple will open a store in Milan.",
                  "entities": [["Tim Cook", "PERSON"], ["Apple", "COMPANY"], ["Milan", "CITY"]]},
                 {"text": "Shares fell sharply on Tuesday.", "entities": []},
                 {"text": "Nissan makes cars in Sunderland, said Carlos Ghosn.",
                  "entities": [["Nissan", "COMPANY"], ["Sunderland", "CITY"], ["Carlos Ghosn", "PERSON"]]}]}

RAW = """Angela Merkel visited the Airbus plant in Toulouse. She met the workers there.
Microsoft said Bill Gates would speak in Seattle.

Ryanair cut fares from Dublin. Michael O'Leary welcomed the news.
Shares in Vodafone rose in London on Monday.
"""

CLASSIFY_TASK = {
    "kind": "classify", "domain": "news",
    "labels": {"money": "business, markets, the economy and companies",
               "games": "sport: matches, players and competitions",
               "other": "anything else: politics, culture, technology"},
    "examples": [{"text": "The pound fell against the dollar as markets waited for the bank's rate decision.",
                  "label": "money"},
                 {"text": "Chelsea beat Arsenal 2-1 to go top of the Premiership.", "label": "games"},
                 {"text": "The new film opens in cinemas across the country on Friday.", "label": "other"}]}

TEXTS = ["Profits at the bank rose by 20% as lending grew and shares hit a record.",
         "The striker scored twice as United won the cup final at Wembley.",
         "Ministers will vote on the new education bill next week.",
         "Oil prices climbed after the cartel agreed to cut its output.",
         "The tennis champion withdrew from the open with a shoulder injury.",
         "The band's new album went straight to the top of the charts."]


def run(script, *args):
    r = subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def llm_flags(url, tmp_path):
    return ["--base_url", url, "--cache", tmp_path / "cache.sqlite", "--progress", "0", "--concurrency", "2"]


def tiny_train(data_dir, out_dir, task_path, kind):
    labels = ",".join(T.train_labels(T.load(str(task_path))))
    run("train.py", "--task", kind, "--data_dir", data_dir, "--out_dir", out_dir, "--labels", labels,
        "--max_steps", 3, "--batch_size", 4, "--eval_every", 3, "--progress", 0)
    return os.path.join(out_dir, "model")


@pytest.mark.slow
def test_entities_of_ones_own_types_from_raw_text_to_a_student(llama_server, tmp_path):
    task_path = tmp_path / "task.json"
    task_path.write_text(json.dumps(NER_TASK))
    (tmp_path / "raw.txt").write_text(RAW)
    data = tmp_path / "data"
    data.mkdir()
    run("annotate.py", "--task_file", task_path, "--format", "text", "--input", tmp_path / "raw.txt",
        "--prompt", "completion", "--out", data / "train.txt", *llm_flags(llama_server, tmp_path))
    report = json.load(open(data / "train.report.json"))
    lines = [json.loads(x) for x in open(data / "train.replies.jsonl")]
    # every sentence of the raw text, with its document and sentence number; only the task's types in --out
    assert [(x["document"], x["sentence"]) for x in lines] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    labelled = read_conll(str(data / "train.txt"))
    assert {t[2:] for _, tags in labelled for t in tags if t != "O"} <= set(NER_TASK["labels"])
    assert report["sentences_written"] == len(labelled) == 6 - report["sentences_failed"]
    assert report["entities_proposed"] == report["entities_kept"] + sum(report["entities_dropped"].values())
    assert report["requests_sent"] > 0 and report["task"] == str(task_path)
    # the worked examples came from the task file: the prompt shows them, and no CoNLL type
    cfg = A.parse_args(["--task_file", str(task_path), "--format", "text", "--input", str(tmp_path / "raw.txt"),
                        "--prompt", "completion"])
    records = A.load_records(cfg)
    prompt = A.prompt_text(*A.requests_of(cfg, records)[1][0])
    assert "Tim Cook (PERSON)" in prompt and "(PER)" not in prompt and "COMPANY (the name of a company" in prompt
    for name in ("valid.txt", "test.txt"):  # the LLM's labels are all there is; here they are dev and test too
        shutil.copy(data / "train.txt", data / name)
    model = tiny_train(data, tmp_path / "student", task_path, "ner")
    out = run("predict.py", "--model_dir", model, "--format", "text", "--input", tmp_path / "raw.txt", "--progress", 0)
    tags = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert len(tags) == sum(len(r["words"]) for r in records)
    assert {t[2:] for t in tags if t != "O"} <= set(NER_TASK["labels"])


@pytest.mark.slow
def test_texts_classified_by_ones_own_labels_from_raw_text_to_a_student(llama_server, tmp_path):
    task_path = tmp_path / "task.json"
    task_path.write_text(json.dumps(CLASSIFY_TASK))
    (tmp_path / "raw.txt").write_text("\n".join(TEXTS) + "\n")
    data = tmp_path / "data"
    data.mkdir()
    for confidence in ("none", "logprobs"):
        run("annotate.py", "--task_file", task_path, "--format", "text", "--input", tmp_path / "raw.txt",
            "--prompt", "completion", "--confidence", confidence, "--out", data / "train.jsonl",
            *llm_flags(llama_server, tmp_path))
    report = json.load(open(data / "train.report.json"))
    lines = [json.loads(x) for x in open(data / "train.replies.jsonl")]
    out = read_jsonl(str(data / "train.jsonl"))
    # one label of the task per text written; an unreadable reply recorded and left out, never guessed
    assert all(r["label"] in CLASSIFY_TASK["labels"] for r in out)
    assert [r["text"] for r in out] == [TEXTS[x["index"]] for x in lines if x["out_line"] is not None]
    assert report["texts_written"] == len(out) == len(TEXTS) - report["texts_failed"]
    assert all(x["label"] is None and x["out_line"] is None for x in lines if x["status"] != "ok")
    # the last run asked for log-probabilities: each label written has its confidence
    assert report["confidence"]["method"] == "logprobs" and report["confidence"]["replies_without_logprobs"] == 0
    assert all(0 < r["confidence"] <= 1 for r in out)
    for name in ("valid.jsonl", "test.jsonl"):
        shutil.copy(data / "train.jsonl", data / name)
    model = tiny_train(data, tmp_path / "student", task_path, "classify")
    pred = run("predict.py", "--model_dir", model, "--format", "text", "--input", tmp_path / "raw.txt",
               "--progress", 0)
    assert [json.loads(x)["label"] for x in pred.splitlines()] and \
        all(json.loads(x)["label"] in CLASSIFY_TASK["labels"] for x in pred.splitlines())
