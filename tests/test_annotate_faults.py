"""annotate.py against the scripted server of tests/scripted_llm.py: what annotate.py does with what the
client (llm.py, tested in test_llm.py) hands it: unreadable replies, requests that failed for good, a
fatal answer, the key, and a run killed with SIGKILL midway. Every test checks that nothing is lost
and nothing is duplicated. The server answers each sentence with its first word as a PER entity, so
the right output is known. Backoff is made tiny with --backoff_base, so the whole file runs in seconds.
"""
import json
import os

import pytest

from common import ROOT
import annotate as A
from data import read_conll, write_conll
from scripted_llm import SENTENCES, kill_midway


@pytest.fixture
def conll(tmp_path):
    """A CoNLL file of the first n SENTENCES with gold (first word PER)."""
    def make(n):
        path = tmp_path / "in.conll"
        write_conll(path, [[(w, "B-PER" if j == 0 else "O") for j, w in enumerate(s)] for s in SENTENCES[:n]])
        return str(path)
    return make


def argv(base_url, inp, tmp_path, *extra):
    return ["--input", inp, "--base_url", base_url, "--out", str(tmp_path / "out.conll"),
            "--cache", str(tmp_path / "cache.sqlite"), "--shots", "0", "--prompt", "standard",
            "--backoff_base", "0.01", "--timeout", "5", "--progress", "0", *extra]


def results(tmp_path):
    report = json.load(open(tmp_path / "out.report.json"))
    return report, read_conll(tmp_path / "out.conll") if (tmp_path / "out.conll").exists() else None


def expected(n):
    return [(s, ["B-PER"] + ["O"] * (len(s) - 1)) for s in SENTENCES[:n]]


def test_unreadable_replies_are_reported_not_written_and_retried_by_a_rerun(scripted_server, conll, tmp_path):
    plan = {(1, 0): ("content", '[{"text": "Bru', "length"), (2, 0): ("content", "", "stop"),
            (3, 0): ("content", "I cannot help with that.", "stop")}
    url, script = scripted_server(plan)
    assert A.main(argv(url, conll(5), tmp_path)) == 0
    report, out = results(tmp_path)
    assert out == [expected(5)[i] for i in (0, 4)]  # never written as all-O
    assert report["failures_by_reason"] == {"truncated": 1, "empty": 1, "no_answer": 1} and \
        report["parse_failures"] == 3
    assert [f["index"] for f in report["failed"]] == [1, 2, 3]
    replies = [json.loads(l) for l in open(tmp_path / "out.replies.jsonl")]
    assert [r["status"] for r in replies] == ["ok", "truncated", "empty", "no_answer", "ok"]
    assert replies[1]["reply"]["content"] == '[{"text": "Bru'  # the raw reply is kept for audit
    # the same command again asks for those three only, and the output is complete and in order
    assert A.main(argv(url, conll(5), tmp_path)) == 0
    report, out = results(tmp_path)
    assert out == expected(5) and report["requests_sent"] == 3 and report["cache_hits"] == 2


def test_gives_up_after_max_retries_and_rerun_completes(scripted_server, conll, tmp_path):
    url, script = scripted_server({(2, a): ("status", 503, []) for a in range(3)})
    assert A.main(argv(url, conll(4), tmp_path, "--max_retries", "2")) == 0
    report, out = results(tmp_path)
    assert out == [expected(4)[i] for i in (0, 1, 3)]
    assert report["failed"][0]["index"] == 2 and report["failed"][0]["reason"] == "gave_up" and script.attempts(2) == 3
    assert A.main(argv(url, conll(4), tmp_path, "--max_retries", "2")) == 0
    report, out = results(tmp_path)
    assert out == expected(4) and report["requests_sent"] == 1


def test_wrong_model_404_stops_the_run_without_retrying(scripted_server, conll, tmp_path, capsys):
    error = {"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error",
                       "code": "model_not_found"}}
    url, script = scripted_server({(n, 0): ("status", 404, [], error) for n in range(6)})
    assert A.main(argv(url, conll(6), tmp_path, "--concurrency", "1", "--model", "gpt-9")) == 2
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "check --model and --base_url" in err and "gpt-9" in err
    assert len(script.log) == 1  # no retry, and nothing more was sent
    report, out = results(tmp_path)
    assert out is None and report["stopped"] and report["requests_sent"] == 1 and report["retries"] == 0


def test_api_key_is_sent_but_written_nowhere(scripted_server, conll, tmp_path, capsys, monkeypatch):
    secret = "sk-test-7f3a9c0e5d1b"
    monkeypatch.setenv("MY_KEY", secret)
    url, script = scripted_server()
    assert A.main(argv(url, conll(3), tmp_path, "--api_key_env", "MY_KEY")) == 0
    assert {auth for *_, auth in script.log} == {f"Bearer {secret}"}
    # an error message that quotes the key back is redacted
    url2, _ = scripted_server({(n, 0): "echo_auth" for n in range(6)})
    assert A.main(argv(url2, conll(6), tmp_path, "--api_key_env", "MY_KEY", "--concurrency", "1")) == 2
    captured = capsys.readouterr()
    assert "HTTP 401" in captured.err and "***" in captured.err
    for text in (captured.out, captured.err):
        assert secret not in text
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_kill_midway_and_resume(scripted_server, conll, tmp_path):
    n, conc = 42, 2
    url, script = scripted_server(delay=0.05)
    args = argv(url, conll(n), tmp_path, "--concurrency", str(conc))
    cached = kill_midway(os.path.join(ROOT, "annotate.py"), args, script, tmp_path / "cache.sqlite")
    assert not (tmp_path / "out.conll").exists()
    sent_before = len(script.log)
    assert 10 <= cached < n and sent_before - cached <= conc  # only the requests in flight were lost
    assert A.main(args) == 0
    report, out = results(tmp_path)
    assert out == expected(n)  # every sentence once, in input order
    assert report["cache_hits"] == cached and report["requests_sent"] == n - cached
    # no sentence whose reply had been stored was asked for again
    asked_again = {s for _, s, a, _, _ in script.log if a > 0}
    assert len(asked_again) <= conc
