"""llm.py, the one LLM client, against the scripted server of tests/scripted_llm.py: retries and their
waits, timeouts, dropped connections and broken bodies, giving up, a fatal answer, the key, the cache,
concurrency. Backoff is made tiny, so the whole file runs in seconds."""
import json
import time

import pytest

from llm import DEFAULT_BASE_URL, LLMConfig, cached_count, http_report, run_requests
from scripted_llm import TEXTS


def calls(n, completion=False):
    if completion:
        return [("completions", {"model": "m", "prompt": f"Sentence: {t}", "max_tokens": 8}) for t in TEXTS[:n]]
    return [("chat/completions", {"model": "m", "messages": [{"role": "user", "content": f"Sentence: {t}"}]})
            for t in TEXTS[:n]]


def cfg(url, tmp_path, **kw):
    return LLMConfig(**{"base_url": url, "cache": str(tmp_path / "cache.sqlite"), "backoff_base": 0.01, "timeout": 5,
                        "progress": 0, **kw})


def contents(replies):
    return [json.loads(r["content"])[0]["text"] if r else None for r in replies]


def expected(n):
    return [t.split()[0] for t in TEXTS[:n]]


def test_base_url_comes_from_the_flag_else_the_environment_else_the_local_default(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert LLMConfig().base_url == DEFAULT_BASE_URL
    monkeypatch.setenv("OPENAI_BASE_URL", "http://elsewhere/v1")
    assert LLMConfig().base_url == "http://elsewhere/v1" and LLMConfig(base_url="http://x/v1").base_url == "http://x/v1"


@pytest.mark.parametrize("completion", [False, True])
def test_replies_come_back_in_order_with_their_tokens(scripted_server, tmp_path, completion):
    url, script = scripted_server(delay=0.02)
    replies, failures, stats, stopped = run_requests(cfg(url, tmp_path, concurrency=8), calls(30, completion))
    assert contents(replies) == expected(30) and not failures and stopped is None
    assert {p for _, _, _, p, _ in script.log} == {"/v1/completions" if completion else "/v1/chat/completions"}
    assert http_report(stats) == {"requests_sent": 30, "cache_hits": 0, "retries": 0, "attempt_failures": {},
                                  "prompt_tokens": 300, "completion_tokens": 150}
    replies2, _, stats2, _ = run_requests(cfg(url, tmp_path, concurrency=8), calls(30, completion))
    assert replies2 == replies and stats2["requests_sent"] == 0 and stats2["cache_hits"] == 30 and len(script.log) == 30


def test_429_with_and_without_retry_after(scripted_server, tmp_path):
    url, script = scripted_server({(0, 0): ("status", 429, [("Retry-After", "1")]), (1, 0): ("status", 429, []),
                                   (1, 1): ("status", 429, [])})
    replies, failures, stats, _ = run_requests(cfg(url, tmp_path, concurrency=1), calls(4))
    assert contents(replies) == expected(4) and stats["retries"] == 3 and \
        http_report(stats)["attempt_failures"] == {"http_429": 3}
    times = [t for t, n, _, _, _ in script.log if n == 0]
    assert times[1] - times[0] >= 1.0  # Retry-After: 1 was honoured, though the backoff base is 0.01 s
    times = [t for t, n, _, _, _ in script.log if n == 1]
    assert times[2] - times[0] < 0.5  # no Retry-After: the tiny exponential backoff


def test_5xx_are_retried(scripted_server, tmp_path):
    url, _ = scripted_server({(0, 0): ("status", 500, []), (0, 1): ("status", 503, []), (2, 0): ("status", 502, [])})
    replies, failures, stats, _ = run_requests(cfg(url, tmp_path), calls(4))
    assert contents(replies) == expected(4) and not failures
    assert http_report(stats)["attempt_failures"] == {"http_500": 1, "http_502": 1, "http_503": 1}
    assert stats["requests_sent"] == 7 and stats["retries"] == 3


def test_reply_slower_than_timeout_is_retried(scripted_server, tmp_path):
    url, script = scripted_server({(1, 0): ("sleep", 3.0)})
    t0 = time.time()
    replies, _, stats, _ = run_requests(cfg(url, tmp_path, timeout=0.5), calls(3))
    assert contents(replies) == expected(3) and http_report(stats)["attempt_failures"] == {"timeout": 1} and \
        script.attempts(1) == 2
    assert time.time() - t0 < 3.0  # the client did not wait for the slow reply


def test_dropped_connection_and_truncated_bodies_are_retried(scripted_server, tmp_path):
    url, _ = scripted_server({(0, 0): "drop", (1, 0): "short_body", (2, 0): "bad_json_body", (2, 1): "drop"})
    replies, _, stats, _ = run_requests(cfg(url, tmp_path), calls(4))
    assert contents(replies) == expected(4)
    assert http_report(stats)["attempt_failures"] == {"connection": 3, "bad_response": 1} and stats["retries"] == 4


def test_gives_up_after_max_retries_and_only_that_request_is_asked_again(scripted_server, tmp_path):
    url, script = scripted_server({(2, a): ("status", 503, []) for a in range(3)})
    replies, failures, _, stopped = run_requests(cfg(url, tmp_path, max_retries=2), calls(4))
    assert replies[2] is None and list(failures) == [2] and "http_503 on all 3 attempts" in failures[2] and \
        stopped is None
    assert contents(replies[:2] + replies[3:]) == [expected(4)[i] for i in (0, 1, 3)] and script.attempts(2) == 3
    assert cached_count(cfg(url, tmp_path), calls(4)) == 3
    replies, failures, stats, _ = run_requests(cfg(url, tmp_path, max_retries=2), calls(4))
    assert contents(replies) == expected(4) and not failures and stats["requests_sent"] == 1


def test_an_unreadable_reply_is_returned_but_not_cached(scripted_server, tmp_path):
    url, _ = scripted_server({(1, 0): ("content", "no list here", "stop")})

    def readable(reply):
        return reply["content"].startswith("[")
    replies, _, stats, _ = run_requests(cfg(url, tmp_path), calls(3), readable)
    assert replies[1]["content"] == "no list here" and stats["unreadable"] == 1
    replies, _, stats, _ = run_requests(cfg(url, tmp_path), calls(3), readable)
    assert contents(replies) == expected(3) and stats["requests_sent"] == 1 and stats["cache_hits"] == 2


def test_a_4xx_stops_the_run_at_once_without_retrying(scripted_server, tmp_path):
    error = {"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}}
    url, script = scripted_server({(n, 0): ("status", 404, [], error) for n in range(6)})
    replies, failures, stats, stopped = run_requests(cfg(url, tmp_path, concurrency=1), calls(6))
    assert "HTTP 404" in stopped and "check --model and --base_url" in stopped and "gpt-9" in stopped
    assert len(script.log) == 1 and stats["retries"] == 0 and replies == [None] * 6 and not failures


def test_the_key_is_sent_redacted_from_errors_and_stored_nowhere(scripted_server, tmp_path, monkeypatch):
    secret = "sk-test-7f3a9c0e5d1b"
    monkeypatch.setenv("MY_KEY", secret)
    url, script = scripted_server()
    run_requests(cfg(url, tmp_path, api_key_env="MY_KEY"), calls(3))
    assert {auth for *_, auth in script.log} == {f"Bearer {secret}"}
    url2, _ = scripted_server({(n, 0): "echo_auth" for n in range(6)})
    _, _, _, stopped = run_requests(cfg(url2, tmp_path, api_key_env="MY_KEY", concurrency=1), calls(6))
    assert "HTTP 401" in stopped and "***" in stopped and secret not in stopped
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), path


def test_exported_replies_resume_a_run_on_another_cache_without_their_requests(scripted_server, tmp_path):
    import llm
    url, script = scripted_server()
    first = tmp_path / "a"
    first.mkdir()
    replies, _, _ = llm.ask(cfg(url, first), calls(5))
    assert llm.main(["export", "--cache", str(first / "cache.sqlite"),
                     "--out", str(tmp_path / "replies.jsonl")]) is None
    exported = (tmp_path / "replies.jsonl").read_text()
    assert exported.count("\n") == 5 and "Sentence:" not in exported  # the replies travel, the requests stay behind
    fresh = tmp_path / "b"  # another machine: its own empty cache, the exported file added
    llm.main(["import", "--cache", str(fresh / "cache.sqlite"), "--input", str(tmp_path / "replies.jsonl")])
    again, _, stats = llm.ask(cfg(url, fresh), calls(7))
    assert again[:5] == replies and stats["cache_hits"] == 5 and stats["requests_sent"] == 2 and len(script.log) == 7
    (tmp_path / "bad.jsonl").write_text('{"key": "k"}\n')
    with pytest.raises(llm.DataError, match="bad.jsonl:1"):
        llm.Cache(str(fresh / "cache.sqlite")).merge(str(tmp_path / "bad.jsonl"))
