"""generate.py and textfilter.py: the filters, generation against a scripted server (replies fixed in advance, so
every filter's verdict is known) and a real SmolLM2, kill -9 and resume."""
import json
import os
import subprocess
import sys

import pytest

import generate as G
import textfilter as F
from common import DATA, ROOT
from data import read_conll, read_jsonl, write_jsonl
from scripted_llm import kill_midway

POOL = [f"The {w} council in {c} voted on {t} plans for new housing on Tuesday, after months of debate among residents "
        f"and local businesses about traffic and schools." for w, c, t in
        [("city", "Leeds", "budget"), ("town", "Bath", "transport"), ("county", "Kent", "school"),
         ("borough", "Hull", "park"), ("district", "York", "water"), ("parish", "Ely", "road")]]
TEST = ["Shares in the mobile phone maker rose sharply on Monday after it reported record sales in Asia and Europe "
        "during the final quarter of the year."]
VALID = ["The striker scored twice in the second half as the visitors came back from two goals down to win the "
         "cup tie."]
FRESH = ["Scientists in Norway have found a new species of deep sea fish living near volcanic vents, a discovery "
         "they say changes what is known about life in cold water.",
         "A record number of visitors came to the national gallery this summer, drawn by an exhibition of early "
         "photographs from the nineteenth century."]
REPLIES = [FRESH[0],
           "Breaking: " + TEST[0],  # a near copy of a test text
           "the cat sat on the mat " * 12,  # degenerate
           FRESH[0],  # a copy of an earlier reply
           POOL[2].replace("Tuesday", "Friday"),  # a near copy of a pool text
           "Too short to keep.",
           "",  # empty
           "Here is a new article: " + FRESH[1]]  # the preamble goes


def by_seed(n, body):
    return REPLIES[body["seed"] % 1_000_003]


@pytest.fixture
def files(tmp_path):
    for name, texts in (("train.jsonl", POOL), ("valid.jsonl", VALID), ("test.jsonl", TEST)):
        write_jsonl(tmp_path / name, [{"text": t, "label": "x"} for t in texts])
    return tmp_path


def gen_args(url, d, *extra):
    return ["--task", "classify", "--input", str(d / "train.jsonl"), "--out", str(d / "gen.jsonl"),
            "--base_url", url, "--cache", str(d / "cache.sqlite"), "--min_words", "8", "--backoff_base", "0.01",
            "--timeout", "5", "--progress", "0", *extra]


def test_degenerate_and_near_copies():
    assert F.degenerate(F.words_of("buy now " * 10)) and not F.degenerate(F.words_of(FRESH[0]))
    index = F.NearCopies()
    for j, t in enumerate(POOL):
        index.add(j, F.words_of(t))
    assert index.best(F.words_of(POOL[3])) == (3, 1.0)
    doc, share = index.best(F.words_of(POOL[3].replace("Tuesday", "Friday")))
    assert doc == 3 and 0.5 < share < 1.0
    assert index.best(F.words_of(FRESH[1]))[1] == 0.0
    assert F.distinct(["a b a b"], 1) == 0.5 and F.distinct(["a b c"], 2) == 1.0


def test_every_filter_drops_what_it_should_and_counts_it(scripted_server, files):
    url, _ = scripted_server(reply=by_seed)
    assert G.main(gen_args(url, files, "--n", str(len(REPLIES)))) == 0
    assert [r["text"] for r in read_jsonl(files / "gen.jsonl")] == FRESH
    report = json.load(open(files / "gen.report.json"))
    assert report["dropped"] == {"leak_eval": 1, "degenerate": 1, "duplicate": 1, "copy_train": 1, "too_short": 1,
                                 "empty": 1}
    assert report["kept"] == 2 and report["units"] == 8 and report["requests"] == report["replies"] == 8
    assert report["dropped_examples"]["leak_eval"][0]["request"] == 1
    assert report["requests_sent"] == 8 and report["completion_tokens"] == 40 and 0 < report["distinct_2"] <= 1
    # the same command again: every readable reply comes from the cache, only the empty one is asked again
    assert G.main(gen_args(url, files, "--n", str(len(REPLIES)))) == 0
    again = json.load(open(files / "gen.report.json"))
    assert again["requests_sent"] == 1 and again["cache_hits"] == 7 and again["kept"] == 2


def test_each_request_shows_seeded_examples_from_the_pool_and_never_an_eval_text(files):
    cfg = G.parse_generate(["--input", str(files / "train.jsonl"), "--n", "4", "--shots", "2"])
    assert cfg.exclude == f"{files / 'valid.jsonl'},{files / 'test.jsonl'}"
    pool = G.read_texts(cfg.input, "jsonl")
    reqs = [G.build_request(cfg, pool, i) for i in range(4)]
    assert reqs == [G.build_request(cfg, pool, i) for i in range(4)] and reqs[0][1] != reqs[1][1]
    prompt = reqs[0][1]["messages"][-1]["content"]
    assert sum(p[:40] in prompt for p in POOL) == 2 and TEST[0][:40] not in prompt
    cfg = G.parse_generate(["--input", str(files / "train.jsonl"), "--form", "completion"])
    endpoint, payload, opening = G.build_request(cfg, pool, 0)
    assert endpoint == "completions" and payload["prompt"].endswith("Article: " + opening) and len(opening.split()) == 6


def test_a_fault_is_retried_and_a_4xx_stops_in_one_line(scripted_server, files, capsys):
    url, script = scripted_server({(None, 0): ("status", 500, [])}, reply=by_seed)
    assert G.main(gen_args(url, files, "--n", "2", "--concurrency", "1")) == 0
    assert json.load(open(files / "gen.report.json"))["attempt_failures"] == {"http_500": 1}
    url, _ = scripted_server({(None, 0): ("status", 404, [], {"error": {"message": "no such model"}})}, reply=by_seed)
    assert G.main(gen_args(url, files, "--n", "2", "--cache", str(files / "other.sqlite"))) == 2
    assert "HTTP 404" in capsys.readouterr().err


def test_missing_exclude_files_and_an_empty_pool_are_refused(files):
    with pytest.raises(FileNotFoundError):
        G.generate(G.parse_generate(["--input", str(files / "train.jsonl"), "--exclude", str(files / "nowhere.jsonl")]))
    (files / "empty.jsonl").write_text("\n")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "generate.py"),
                        "--input", str(files / "empty.jsonl")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "empty.jsonl" in r.stderr


@pytest.mark.slow
def test_kill_midway_and_resume(scripted_server, files):
    n, conc = 40, 2
    url, script = scripted_server(delay=0.05,
                                  reply=lambda _, body: f"Story number {body['seed']} tells of a "
                                                        f"{body['seed'] % 7} mile walk across the hills of "
                                                        f"{body['seed'] % 11} towns and farms.")
    args = gen_args(url, files, "--n", str(n), "--concurrency", str(conc))
    cached = kill_midway(os.path.join(ROOT, "generate.py"), args, script, files / "cache.sqlite")
    assert not (files / "gen.jsonl").exists()
    assert 10 <= cached < n and len(script.log) - cached <= conc  # only the requests in flight were lost
    assert G.main(args) == 0
    report = json.load(open(files / "gen.report.json"))
    assert report["cache_hits"] == cached and report["requests_sent"] == n - cached and report["replies"] == n
    assert len(read_jsonl(files / "gen.jsonl")) == report["kept"] == n - report["dropped"].get("duplicate", 0)


@pytest.mark.slow
@pytest.mark.parametrize("task,form", [("classify", "chat"), ("ner", "completion")])
def test_smollm2_writes_texts_end_to_end(llama_server, tmp_path, task, form):
    conll = os.path.join(DATA, "conll2003")
    pool = os.path.join(conll, "train.txt") if task == "ner" else str(tmp_path / "train.jsonl")
    if task == "classify":
        write_jsonl(tmp_path / "train.jsonl", [{"text": t} for t in POOL])
        write_jsonl(tmp_path / "valid.jsonl", [{"text": t} for t in VALID])
        write_jsonl(tmp_path / "test.jsonl", [{"text": t} for t in TEST])
    out = tmp_path / ("gen.jsonl" if task == "classify" else "gen.conll")
    args = ["--task", task, "--form", form, "--input", pool, "--n", "3", "--out", str(out),
            "--base_url", llama_server, "--cache", str(tmp_path / "cache.sqlite"), "--max_tokens", "60",
            "--min_words", "3", "--concurrency", "1", "--progress", "0"]
    assert G.main(args) == 0
    report = json.load(open(tmp_path / "gen.report.json"))
    assert report["replies"] == 3 and report["completion_tokens"] > 0 and \
        report["units"] == report["kept"] + sum(report["dropped"].values())
    kept = (read_jsonl(out) if task == "classify" and report["kept"]
            else read_conll(out, columns=True) if report["kept"] else [])
    assert len(kept) == report["kept"]
