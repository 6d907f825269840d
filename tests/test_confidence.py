"""confidence.py and annotate.py --confidence: an entity's confidence from log-probabilities fixed in advance equals a
hand computation; self-consistency over scripted samples; the coverage-quality curve and the calibration on a hand
example; the filter's counts in the report, sentence by sentence and entity by entity."""
import json
import math

import pytest

import annotate as A
import confidence as C
from data import read_conll, write_conll
from scripted_llm import SENTENCES

# " Alice (PER); Paris (LOC)" as tokens, each with the log-probability the endpoint gave it
TOKENS = [(" Alice", -0.1), (" (", -0.05), ("PER", -0.4), (");", -0.01), (" Paris", -0.9), (" (", -0.02),
          ("LOC", -0.3), (")", -0.2)]


def test_an_entitys_confidence_is_its_least_probable_token():
    reply = {"content": "".join(t for t, _ in TOKENS), "logprobs": [list(t) for t in TOKENS]}
    kept = [{"type": "PER", "start": 0, "end": 1, "item": 0}, {"type": "LOC", "start": 5, "end": 6, "item": 1}]
    conf, sentence = C.from_logprobs(reply, [("Alice", "PER"), ("Paris", "LOC")], kept)
    # Alice (PER): " Alice", " (", "PER" -> the least is PER's; Paris (LOC): " Paris", " (", "LOC" -> Paris's
    assert conf == pytest.approx([math.exp(-0.4), math.exp(-0.9)]) and sentence == pytest.approx(math.exp(-0.9))
    assert C.from_logprobs(reply, [("Alice", "PER"), ("Paris", "LOC")], kept[1:])[0] == pytest.approx([math.exp(-0.9)])
    none = {"content": " none", "logprobs": [[" none", -0.7]]}
    assert C.from_logprobs(none, [], []) == ([], pytest.approx(math.exp(-0.7)))  # no entity: as sure as saying so


def test_self_consistency_is_the_share_of_samples_that_agree():
    kept = [{"type": "PER", "start": 0, "end": 1}, {"type": "LOC", "start": 5, "end": 6}]
    # None: unreadable
    samples = [{("PER", 0, 1), ("LOC", 5, 6)}, {("PER", 0, 1)}, {("PER", 0, 1), ("ORG", 5, 6)}, None]
    conf, sentence = C.from_samples(kept, samples)
    assert conf == [0.75, 0.25] and sentence == 0.25
    assert C.from_samples([], [set(), {("PER", 0, 1)}, set(), None]) == ([], 0.5)


def test_the_curve_and_the_calibration_on_a_hand_example():
    items = [  # two sentences: one sure and right, one doubtful with a wrong entity
        {"gold": ["B-PER", "O"], "tags": ["B-PER", "O"], "kept": [{"type": "PER", "start": 0, "end": 1}],
         "conf": [0.95], "sentence_conf": 0.95},
        {"gold": ["O", "B-LOC"], "tags": ["B-ORG", "B-LOC"],
         "kept": [{"type": "ORG", "start": 0, "end": 1}, {"type": "LOC", "start": 1, "end": 2}], "conf": [0.3, 0.85],
         "sentence_conf": 0.3}]
    rows = {r["threshold"]: r for r in C.curve(items, thresholds=(0.0, 0.5))}
    assert rows[0.0]["sentences_kept"] == 1.0 and rows[0.0]["sentence_precision"] == pytest.approx(2 / 3)
    assert rows[0.5]["sentences_kept"] == 0.5 and rows[0.5]["sentence_f1"] == 1.0  # the sure sentence alone
    assert rows[0.5]["entities_kept"] == pytest.approx(2 / 3) and rows[0.5]["entity_f1"] == 1.0  # ORG dropped, LOC kept
    bands = {r["band"]: r for r in C.calibration(items)}
    assert bands["0.3-0.4"]["entities"] == 1 and bands["0.3-0.4"]["precision"] == 0.0
    assert bands["0.8-0.9"]["precision"] == 1.0 and bands["0.9-1.0"]["mean_confidence"] == pytest.approx(0.95)


def sentence_in(body):
    return body["prompt"].rsplit("Sentence: ", 1)[1].split("\nEntities:")[0].split()


@pytest.fixture
def conll(tmp_path):
    path = tmp_path / "in.conll"
    write_conll(path, [[(w, "B-PER" if j == 0 else "O") for j, w in enumerate(s)] for s in SENTENCES[:4]])
    return str(path)


def args(url, conll, tmp_path, *extra):
    return A.parse_args(["--input", conll, "--base_url", url, "--out", str(tmp_path / "out.conll"), "--cache",
                         str(tmp_path / "cache.sqlite"), "--shots", "0", "--prompt", "completion", "--concurrency", "1",
                         "--backoff_base", "0.01", "--timeout", "5", "--progress", "0", *extra])


@pytest.mark.parametrize("rule", ["sentence", "entity"])
def test_log_probability_confidence_end_to_end_and_the_filters_counts(scripted_server, conll, tmp_path, rule):
    """Each reply names the first word (PER, right) and the city (LOC, wrong: gold says O), with log-probabilities fixed
    in advance: the city is the least sure in sentences 0 and 1 (0.2 < 0.5), every token sure in 2 and 3."""
    def reply(n, body):
        words = sentence_in(body)
        i = int(words[-2])  # "... on day I ."
        city = -1.6 if i < 2 else -0.01  # exp(-1.6) = 0.20
        toks = [(f" {words[0]}", -0.01), (" (", -0.01), ("PER", -0.01), (");", -0.01), (f" {words[5]}", city),
                (" (", -0.01), ("LOC", -0.01), (")", -0.01)]
        return {"content": "".join(t for t, _ in toks), "logprobs": toks}
    url, script = scripted_server(reply=reply)
    report = A.run(args(url, conll, tmp_path, "--confidence", "logprobs", "--min_confidence", "0.5", "--filter", rule))
    lines = [json.loads(x) for x in (tmp_path / "out.replies.jsonl").read_text().splitlines()]
    assert [e["confidence"] for e in lines[0]["entities"]] == [pytest.approx(math.exp(-0.01), abs=1e-4),
                                                                pytest.approx(math.exp(-1.6), abs=1e-4)]
    assert [ln["confidence"] for ln in lines] == pytest.approx([math.exp(-1.6)] * 2 + [math.exp(-0.01)] * 2, abs=1e-4)
    c = report["confidence"]
    assert c["method"] == "logprobs" and c["replies_without_logprobs"] == 0
    out = read_conll(tmp_path / "out.conll")
    if rule == "sentence":  # the two doubtful sentences are left out whole
        assert c["sentences_filtered"] == 2 and report["sentences_written"] == 2 and len(out) == 2
    else:  # every sentence stays, the two doubtful cities go
        assert c["entities_filtered"] == 2 and len(out) == 4 and [t[5] for _, t in out] == ["O", "O", "B-LOC", "B-LOC"]
    rows = {r["threshold"]: r for r in c["curve"]}
    assert rows[0.0]["sentence_precision"] == 0.5 and rows[0.5]["entity_precision"] == pytest.approx(4 / 6)
    assert rows[0.5]["sentences_kept"] == 0.5


def test_self_consistency_end_to_end_k_samples_are_k_cached_requests(scripted_server, conll, tmp_path):
    """The greedy reply names the first word; samples with seeds 0, 1, 2 agree, 3 and 4 say none: 3/5 for every
    sentence. A second run sends nothing: the samples are cached requests like any other."""
    def reply(n, body):
        words = sentence_in(body)
        return " none" if body.get("seed", 0) >= 3 else f" {words[0]} (PER)"
    url, script = scripted_server(reply=reply)
    report = A.run(args(url, conll, tmp_path, "--confidence", "samples", "--samples", "5"))
    lines = [json.loads(x) for x in (tmp_path / "out.replies.jsonl").read_text().splitlines()]
    assert [ln["entities"][0]["confidence"] for ln in lines] == [0.6] * 4 and \
        [ln["confidence"] for ln in lines] == [0.6] * 4
    assert report["requests_sent"] == 4 * 6 and report["confidence"]["samples"] == 5
    assert report["span_f1"]["f1"] == 1.0  # the labels are the greedy reply's
    again = A.run(args(url, conll, tmp_path, "--confidence", "samples", "--samples", "5"))
    assert again["requests_sent"] == 0 and again["cache_hits"] == 24 and len(script.log) == 24
