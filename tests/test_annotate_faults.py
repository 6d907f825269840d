"""annotate.py against a scripted OpenAI-style server on loopback that misbehaves on purpose:
429 with and without Retry-After, 500/503, replies slower than the timeout, dropped connections,
truncated bodies, truncated JSON and empty content, a wrong model (404), a bad key (401), and a
run killed with SIGKILL midway. Every test checks that nothing is lost and nothing is duplicated.

The server answers each sentence with its first word as a PER entity, so the right output is known.
Backoff is made tiny with --backoff_base, so the whole file runs in seconds.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from common import ROOT
import annotate as A
from data import read_conll, write_conll

SENTENCES = [f"{name} met the press in {city} on day {i} ." .split()
             for i, (name, city) in enumerate([("Alice", "Paris"), ("Bruno", "Rome"), ("Chen", "Lima"), ("Dana", "Oslo"),
                                               ("Emil", "Kyiv"), ("Farah", "Doha")] * 7)]  # 42 distinct sentences


class Script:
    """What the server does: `plan[(sentence, attempt)]` is an action, default "ok"; every request is logged."""

    def __init__(self, plan=None, delay=0.0):
        self.plan, self.delay, self.lock = plan or {}, delay, threading.Lock()
        self.log = []  # (time, sentence number or None, attempt, path, Authorization header)

    def attempts(self, s):
        return sum(1 for _, n, _, _, _ in self.log if n == s)


def answer(content, finish_reason="stop"):
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def make_handler(script):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def send(self, status, body, headers=()):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            sentence = body["messages"][-1]["content"].removeprefix("Sentence: ")
            n = next((i for i, w in enumerate(SENTENCES) if " ".join(w) == sentence), None)
            with script.lock:
                attempt = script.attempts(n)
                script.log.append((time.time(), n, attempt, self.path, self.headers.get("Authorization")))
            action = script.plan.get((n, attempt), "ok")
            if script.delay:
                time.sleep(script.delay)
            kind = action[0] if isinstance(action, tuple) else action
            if kind == "ok":
                self.send(200, answer(json.dumps([{"text": sentence.split()[0], "type": "PER"}])))
            elif kind == "status":  # ("status", code, headers, body)
                self.send(action[1], action[3] if len(action) > 3 else {"error": {"message": "scripted"}}, action[2])
            elif kind == "sleep":  # answer, but only after the client has given up
                time.sleep(action[1])
                self.send(200, answer("[]"))
            elif kind == "drop":  # close the connection without a word
                self.close_connection = True
            elif kind == "short_body":  # promise 200 bytes, send 20, close
                self.send_response(200)
                self.send_header("Content-Length", "200")
                self.end_headers()
                self.wfile.write(b'{"choices": [{"mess')
                self.close_connection = True
            elif kind == "bad_json_body":  # a complete response whose body is not JSON
                self.send(200, b'{"choices": [{"message": {"content": "[]"')
            elif kind == "content":  # ("content", text, finish_reason)
                self.send(200, answer(action[1], action[2]))
            elif kind == "echo_auth":  # an error that quotes the key back, as some providers do
                self.send(401, {"error": {"message": f"Incorrect API key provided: {self.headers.get('Authorization')}"}})
    return Handler


@pytest.fixture
def server():
    """start(plan, delay) -> (base_url, script); servers are shut down after the test."""
    servers = []

    def start(plan=None, delay=0.0):
        script = Script(plan, delay)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(script))
        httpd.daemon_threads, httpd.block_on_close = True, False
        httpd.handle_error = lambda *a: None  # a client that hung up is part of the script
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/v1", script

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def conll(tmp_path):
    """A CoNLL file of the first n SENTENCES with gold (first word PER)."""
    def make(n):
        path = tmp_path / "in.conll"
        write_conll(path, [[(w, "B-PER" if j == 0 else "O") for j, w in enumerate(s)] for s in SENTENCES[:n]])
        return str(path)
    return make


def argv(base_url, inp, tmp_path, *extra):
    return ["--input", inp, "--base_url", base_url, "--out", str(tmp_path / "out.conll"), "--cache", str(tmp_path / "cache.sqlite"),
            "--shots", "0", "--prompt", "standard", "--backoff_base", "0.01", "--timeout", "5", "--progress", "0", *extra]


def results(tmp_path):
    report = json.load(open(tmp_path / "out.report.json"))
    return report, read_conll(tmp_path / "out.conll") if (tmp_path / "out.conll").exists() else None


def expected(n):
    return [(s, ["B-PER"] + ["O"] * (len(s) - 1)) for s in SENTENCES[:n]]


def test_429_with_and_without_retry_after(server, conll, tmp_path):
    url, script = server({(0, 0): ("status", 429, [("Retry-After", "1")]), (1, 0): ("status", 429, []),
                          (1, 1): ("status", 429, [])})
    assert A.main(argv(url, conll(4), tmp_path, "--concurrency", "1")) == 0
    report, out = results(tmp_path)
    assert out == expected(4) and report["retries"] == 3 and report["attempt_failures"] == {"http_429": 3}
    times = [t for t, n, _, _, _ in script.log if n == 0]
    assert times[1] - times[0] >= 1.0  # Retry-After: 1 was honoured, though the backoff base is 0.01 s
    times = [t for t, n, _, _, _ in script.log if n == 1]
    assert times[2] - times[0] < 0.5  # no Retry-After: the tiny exponential backoff


def test_5xx_are_retried(server, conll, tmp_path):
    url, script = server({(0, 0): ("status", 500, []), (0, 1): ("status", 503, []), (2, 0): ("status", 502, [])})
    assert A.main(argv(url, conll(4), tmp_path)) == 0
    report, out = results(tmp_path)
    assert out == expected(4) and report["attempt_failures"] == {"http_500": 1, "http_502": 1, "http_503": 1}
    assert report["requests_sent"] == 7 and report["retries"] == 3 and report["sentences_failed"] == 0


def test_reply_slower_than_timeout_is_retried(server, conll, tmp_path):
    url, script = server({(1, 0): ("sleep", 3.0)})
    t0 = time.time()
    assert A.main(argv(url, conll(3), tmp_path, "--timeout", "0.5")) == 0
    report, out = results(tmp_path)
    assert out == expected(3) and report["attempt_failures"] == {"timeout": 1} and script.attempts(1) == 2
    assert time.time() - t0 < 3.0  # the client did not wait for the slow reply


def test_dropped_connection_and_truncated_bodies_are_retried(server, conll, tmp_path):
    url, script = server({(0, 0): "drop", (1, 0): "short_body", (2, 0): "bad_json_body", (2, 1): "drop"})
    assert A.main(argv(url, conll(4), tmp_path)) == 0
    report, out = results(tmp_path)
    assert out == expected(4)
    assert report["attempt_failures"] == {"connection": 3, "bad_response": 1} and report["retries"] == 4


def test_unreadable_replies_are_reported_not_written_and_retried_by_a_rerun(server, conll, tmp_path):
    plan = {(1, 0): ("content", '[{"text": "Bru', "length"), (2, 0): ("content", "", "stop"),
            (3, 0): ("content", "I cannot help with that.", "stop")}
    url, script = server(plan)
    assert A.main(argv(url, conll(5), tmp_path)) == 0
    report, out = results(tmp_path)
    assert out == [expected(5)[i] for i in (0, 4)]  # never written as all-O
    assert report["failures_by_reason"] == {"truncated": 1, "empty": 1, "no_answer": 1} and report["parse_failures"] == 3
    assert [f["index"] for f in report["failed"]] == [1, 2, 3]
    replies = [json.loads(l) for l in open(tmp_path / "out.replies.jsonl")]
    assert [r["status"] for r in replies] == ["ok", "truncated", "empty", "no_answer", "ok"]
    assert replies[1]["reply"]["content"] == '[{"text": "Bru'  # the raw reply is kept for audit
    # the same command again asks for those three only, and the output is complete and in order
    assert A.main(argv(url, conll(5), tmp_path)) == 0
    report, out = results(tmp_path)
    assert out == expected(5) and report["requests_sent"] == 3 and report["cache_hits"] == 2


def test_gives_up_after_max_retries_and_rerun_completes(server, conll, tmp_path):
    url, script = server({(2, a): ("status", 503, []) for a in range(3)})
    assert A.main(argv(url, conll(4), tmp_path, "--max_retries", "2")) == 0
    report, out = results(tmp_path)
    assert out == [expected(4)[i] for i in (0, 1, 3)]
    assert report["failed"][0]["index"] == 2 and report["failed"][0]["reason"] == "gave_up" and script.attempts(2) == 3
    assert A.main(argv(url, conll(4), tmp_path, "--max_retries", "2")) == 0
    report, out = results(tmp_path)
    assert out == expected(4) and report["requests_sent"] == 1


def test_wrong_model_404_stops_the_run_without_retrying(server, conll, tmp_path, capsys):
    error = {"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error", "code": "model_not_found"}}
    url, script = server({(n, 0): ("status", 404, [], error) for n in range(6)})
    assert A.main(argv(url, conll(6), tmp_path, "--concurrency", "1", "--model", "gpt-9")) == 2
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "check --model and --base_url" in err and "gpt-9" in err
    assert len(script.log) == 1  # no retry, and nothing more was sent
    report, out = results(tmp_path)
    assert out is None and report["stopped"] and report["requests_sent"] == 1 and report["retries"] == 0


def test_api_key_is_sent_but_written_nowhere(server, conll, tmp_path, capsys, monkeypatch):
    secret = "sk-test-7f3a9c0e5d1b"
    monkeypatch.setenv("MY_KEY", secret)
    url, script = server()
    assert A.main(argv(url, conll(3), tmp_path, "--api_key_env", "MY_KEY")) == 0
    assert {auth for *_, auth in script.log} == {f"Bearer {secret}"}
    # an error message that quotes the key back is redacted
    url2, _ = server({(n, 0): "echo_auth" for n in range(6)})
    assert A.main(argv(url2, conll(6), tmp_path, "--api_key_env", "MY_KEY", "--concurrency", "1")) == 2
    captured = capsys.readouterr()
    assert "HTTP 401" in captured.err and "***" in captured.err
    for text in (captured.out, captured.err):
        assert secret not in text
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), path


def test_concurrency_keeps_input_order_and_second_run_sends_nothing(server, conll, tmp_path):
    url, script = server(delay=0.02)
    assert A.main(argv(url, conll(30), tmp_path, "--concurrency", "8")) == 0
    report, out = results(tmp_path)
    assert out == expected(30) and report["requests_sent"] == 30
    assert A.main(argv(url, conll(30), tmp_path, "--concurrency", "8")) == 0
    report, again = results(tmp_path)
    assert again == out and report["requests_sent"] == 0 and report["cache_hits"] == 30 and len(script.log) == 30


def test_kill_midway_and_resume(server, conll, tmp_path):
    n, conc = 42, 2
    url, script = server(delay=0.05)
    args = argv(url, conll(n), tmp_path, "--concurrency", str(conc))
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "annotate.py"), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while len(script.log) < 15 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (tmp_path / "out.conll").exists()
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        cached = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
    sent_before = len(script.log)
    assert 10 <= cached < n and sent_before - cached <= conc  # only the requests in flight were lost
    assert A.main(args) == 0
    report, out = results(tmp_path)
    assert out == expected(n)  # every sentence once, in input order
    assert report["cache_hits"] == cached and report["requests_sent"] == n - cached
    # no sentence whose reply had been stored was asked for again
    asked_again = {s for _, s, a, _, _ in script.log if a > 0}
    assert len(asked_again) <= conc
