"""
The one client for the LLM: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, the llama.cpp
server) over raw HTTP, for annotate.py (labels), gendist.py (new texts) and whatever asks an LLM next.

    calls = [chat_request(cfg, messages, temperature=0.0, max_tokens=256) for messages in ...]   # or completion_request
    replies, failures, stats = ask(cfg, calls, readable)

`calls` is a list of (endpoint, payload): endpoint "chat/completions" or "completions", payload the
JSON body (`chat_request` and `completion_request` build them). Each reply comes back as {"content",
"finish_reason", "usage"}, in the order of `calls`; a request that failed on every attempt is None in
`replies` and listed in `failures`; an answer no retry can fix raises Fatal.

HTTP: one requests.Session per thread; a timeout on every call; exponential backoff with jitter on 429,
5xx, timeouts, dropped connections and unreadable bodies, honouring Retry-After; any other 4xx (wrong
model, bad key) stops the run (`stopped` says why, with the server's message) and nothing more is sent.
A request that fails on every attempt is listed in `failures`, never fatal to the run.

Cache and resume: a reply that `readable(reply)` accepts is committed to an sqlite cache (cfg.cache) the
moment it arrives, keyed on the whole request (endpoint and payload: model, messages or prompt, sampling
parameters); an unreadable one is not kept, so the same run again asks exactly those again. A run killed
at any moment (kill -9 included) loses only the requests in flight.

Carrying replies to another machine: `python llm.py export --cache C --out F` writes every reply of a cache as a
JSONL line {"key", "reply"}, without its request (no prompt, no text of the data), and `python llm.py import --cache
C --input F` adds those another cache lacks; the same request has the same key anywhere, so a long run resumed on a
fresh machine sends only what neither had. The results/ folder commits such exports of long labelling runs.

The key comes from $OPENAI_API_KEY (or cfg.api_key_env) and is written to no log, cache or output.
Tokens come from the replies' `usage` and are counted in `stats`.
"""
import email.utils
import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import requests
from tqdm import tqdm

from cli import DataError, Stopped, above, at_least, opt, parse_command, run_main
from data import atomic_write, read_jsonl_numbered

DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"


@dataclass
class LLMConfig:
    """The flags every script that asks an LLM shares (its own Config extends this one)."""
    base_url: str = opt(None, f"API root; default $OPENAI_BASE_URL, else {DEFAULT_BASE_URL}", type=str)
    model: str = opt("smollm2", "model name sent to the endpoint")
    api_key_env: str = opt("OPENAI_API_KEY", "environment variable holding the API key (none sent if unset)")
    concurrency: int = opt(4, "requests in flight at once", type=at_least(1))
    timeout: float = opt(120.0, "seconds to wait for a reply, per attempt", type=above(0))
    max_retries: int = opt(6, "retries per request after the first attempt", type=at_least(0))
    backoff_base: float = opt(1.0, "first retry waits about this many seconds, doubling after each",
                              type=at_least(0.0, float))
    backoff_max: float = opt(60.0, "longest wait between retries (Retry-After is honoured up to 600 s)",
                             type=at_least(0.0, float))
    cache: str = opt("runs/llm_cache.sqlite", "sqlite cache of replies that were read")
    progress: int = opt(1, "tqdm progress bar")

    def __post_init__(self):
        self.base_url = self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


class Fatal(Stopped):
    """An answer no retry can fix (a 4xx other than 429): the run stops, and cli.run_main says why in one line.
    `partial` holds (replies, failures, stats) of what had come back, for a script that reports them before stopping."""

    def __init__(self, message, partial=None):
        super().__init__(message)
        self.partial = partial


class GaveUp(Exception):
    """Every attempt of one request failed."""


class Cancelled(Exception):
    """The run is stopping: the request was not sent."""


class Stats:
    """Counters shared by the worker threads."""

    def __init__(self):
        self.c, self.lock = Counter(), threading.Lock()

    def add(self, key, n=1):
        with self.lock:
            self.c[key] += n


_jitter = random.Random()  # backoff jitter spreads clients apart; it needs no seed


def retry_after(value):
    """Seconds asked for by a Retry-After header (a number or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def post(session, url, payload, headers, cfg, stats, redact, stop):
    """The response body of one request, retried as the module docstring says; `stop` (an Event) cancels it."""
    for attempt in range(cfg.max_retries + 1):
        if stop.is_set():
            raise Cancelled()
        wait = None
        stats.add("requests_sent")
        try:
            r = session.post(url, json=payload, headers=headers, timeout=(min(10.0, cfg.timeout), cfg.timeout))
        except requests.Timeout:
            kind = "timeout"
        except requests.RequestException:  # refused, reset, closed mid-body
            kind = "connection"
        else:
            if r.status_code == 200:
                try:
                    body = r.json()
                    body["choices"][0]
                    return body
                except (ValueError, KeyError, IndexError, TypeError):
                    kind = "bad_response"
            elif r.status_code == 429 or r.status_code >= 500:
                kind, wait = f"http_{r.status_code}", retry_after(r.headers.get("Retry-After"))
            else:
                hint = {401: "check the API key", 403: "check the API key",
                        404: "check --model and --base_url"}.get(r.status_code, "check the request settings")
                stop.set()  # no other thread sends anything more
                raise Fatal(redact(f"{url} answered HTTP {r.status_code} ({hint}): {r.text[:500]}"))
        stats.add(f"fail_{kind}")
        if attempt == cfg.max_retries:
            raise GaveUp(f"{kind} on all {attempt + 1} attempts")
        stats.add("retries")
        backoff = min(cfg.backoff_max, cfg.backoff_base * 2 ** attempt) * (0.5 + _jitter.random())
        time.sleep(min(wait, 600.0) + _jitter.random() * cfg.backoff_base if wait is not None else backoff)


def reply_of(endpoint, body):
    """What a script reads of a response: {"content", "finish_reason", "usage"}, and "logprobs" where they were
    asked for and sent: the reply's tokens as [[token, log-probability], ...], in order."""
    choice = body["choices"][0]
    content = choice.get("text") if endpoint == "completions" else (choice.get("message") or {}).get("content")
    reply = {"content": content or "", "finish_reason": choice.get("finish_reason"), "usage": body.get("usage") or {}}
    lp = choice.get("logprobs")
    if isinstance(lp, dict) and endpoint == "completions" and lp.get("tokens") and lp.get("token_logprobs"):
        reply["logprobs"] = [[t, x] for t, x in zip(lp["tokens"], lp["token_logprobs"])]  # legacy completions shape
    elif isinstance(lp, dict) and isinstance(lp.get("content"), list):
        reply["logprobs"] = [[c.get("token", ""), c.get("logprob")] for c in lp["content"]]  # chat shape
    return reply


def cache_key(endpoint, payload):
    return hashlib.sha256(json.dumps([endpoint, payload], sort_keys=True).encode()).hexdigest()


class Cache:
    """Replies that were read, keyed on the request; each committed on its own, so a kill loses none.
    One connection shared by the worker threads, behind a lock."""

    def __init__(self, path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.db, self.lock = sqlite3.connect(path, timeout=60, check_same_thread=False), threading.Lock()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS replies "
                        "(key TEXT PRIMARY KEY, request TEXT, reply TEXT, created REAL)")
        self.db.commit()

    def get(self, key):
        with self.lock:
            row = self.db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key, request, reply):
        with self.lock, self.db:
            self.db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
                            (key, json.dumps(request), json.dumps(reply), time.time()))

    def export(self, path):
        """Every reply as a JSONL line {"key", "reply"}, without its request: replies that can be committed or carried
        to another machine without the text they were asked about. Returns how many."""
        with self.lock:
            rows = self.db.execute("SELECT key, reply FROM replies ORDER BY created").fetchall()
        atomic_write(path, "".join(json.dumps({"key": k, "reply": json.loads(r)}) + "\n" for k, r in rows))
        return len(rows)

    def merge(self, path):
        """The replies of an exported file that this cache lacks (the same request, on any machine, has the same key:
        a run with the same command then sends only what neither had). Returns how many were added."""
        added = 0
        with self.lock, self.db:
            for lineno, line in read_jsonl_numbered(path):
                if not isinstance(line.get("key"), str) or not isinstance(line.get("reply"), dict):
                    raise DataError(f"{path}:{lineno}: expected {{\"key\": ..., \"reply\": {{...}}}} "
                                    "as llm.py export writes")
                added += self.db.execute("INSERT OR IGNORE INTO replies VALUES (?, NULL, ?, ?)",
                                         (line["key"], json.dumps(line["reply"]), time.time())).rowcount
        return added


def cached_count(cfg, calls):
    """How many of `calls` the cache already answers (without creating a cache that is not there)."""
    if not os.path.exists(cfg.cache):
        return 0
    cache = Cache(cfg.cache)
    return sum(cache.get(cache_key(e, p)) is not None for e, p in calls)


def prompt_text(endpoint, payload):
    """The prompt of a request as a person reads it."""
    if endpoint == "completions":
        return payload["prompt"]
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in payload["messages"])


def chat_request(cfg, messages, **params):
    """(endpoint, payload) of a chat request: cfg's model, the messages, and sampling parameters as given."""
    return "chat/completions", {"model": cfg.model, "messages": messages, **params}


def completion_request(cfg, prompt, **params):
    """(endpoint, payload) of a plain completion request (/v1/completions): cfg's model, the prompt, parameters
    as given."""
    return "completions", {"model": cfg.model, "prompt": prompt, **params}


def ask(cfg, calls, readable=lambda reply: True, desc="llm", unit="req"):
    """The call every script makes: (replies, failures, stats) as run_requests gives them, and Fatal raised (with
    them as its `partial`) when the endpoint refused and the run had to stop."""
    replies, failures, stats, stopped = run_requests(cfg, calls, readable, desc, unit)
    if stopped:
        raise Fatal(f"{stopped} (the replies read so far are cached: fix the setting and run the same command)",
                    (replies, failures, stats))
    return replies, failures, stats


def run_requests(cfg, calls, readable=lambda reply: True, desc="llm", unit="req"):
    """Send every (endpoint, payload) of `calls` not in the cache, `cfg.concurrency` at a time.

    Returns (replies, failures, stats, stopped): replies[i] the reply to calls[i] (None if it failed or
    was never sent), failures {i: "why"} for requests that failed on every attempt, stats a Counter
    (requests_sent, cache_hits, retries, fail_<kind>, unreadable, prompt_tokens and completion_tokens of
    this run's replies), stopped None or the reason a fatal answer stopped the run."""
    key = os.environ.get(cfg.api_key_env, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    def redact(s):
        return s.replace(key, "***") if key else s

    cache, stats, local, stop = Cache(cfg.cache), Stats(), threading.local(), threading.Event()
    keys = [cache_key(e, p) for e, p in calls]
    replies = [cache.get(k) for k in keys]
    failures = {}
    todo = [i for i, r in enumerate(replies) if r is None]
    stats.add("cache_hits", len(calls) - len(todo))

    def call(i):
        if not hasattr(local, "session"):
            local.session = requests.Session()  # one per thread: Session is not documented thread-safe
        endpoint, payload = calls[i]
        reply = reply_of(endpoint, post(local.session, f"{cfg.base_url.rstrip('/')}/{endpoint}", payload, headers,
                                        cfg, stats, redact, stop))
        ok = readable(reply)
        if ok:  # committed here, the moment it arrives: a kill loses only the requests still in flight
            cache.put(keys[i], payload, reply)
        return reply, ok  # an unreadable reply is not kept: a rerun asks again

    stopped = None
    bar = tqdm(total=len(calls), initial=len(calls) - len(todo), unit=unit, disable=not cfg.progress,
               desc=f"{desc} {cfg.model}", dynamic_ncols=True)
    pool = ThreadPoolExecutor(max(1, cfg.concurrency))
    futures = {pool.submit(call, i): i for i in todo}
    try:
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                reply, ok = fut.result()
            except GaveUp as e:
                failures[i] = str(e)
            except Cancelled:
                continue
            else:
                stats.add("prompt_tokens", reply["usage"].get("prompt_tokens", 0))
                stats.add("completion_tokens", reply["usage"].get("completion_tokens", 0))
                replies[i] = reply
                if not ok:
                    stats.add("unreadable")
            bar.update()
            bar.set_postfix(tok_in=stats.c["prompt_tokens"], tok_out=stats.c["completion_tokens"], failed=len(failures),
                            unreadable=stats.c["unreadable"], refresh=False)
    except Fatal as e:
        stopped = str(e)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # requests not yet started are dropped
        bar.close()
    return replies, failures, stats.c, stopped


def http_report(stats):
    """The client's part of a run's report."""
    return {"requests_sent": stats["requests_sent"], "cache_hits": stats["cache_hits"], "retries": stats["retries"],
            "attempt_failures": {k[5:]: v for k, v in sorted(stats.items()) if k.startswith("fail_")},
            # sent by this run
            "prompt_tokens": stats["prompt_tokens"], "completion_tokens": stats["completion_tokens"]}


@dataclass
class ExportConfig:
    cache: str = opt("runs/llm_cache.sqlite", "the sqlite cache to read")
    out: str = opt(None, "JSONL written: one {key, reply} a line, no requests", type=str, required=True)


@dataclass
class ImportConfig:
    cache: str = opt("runs/llm_cache.sqlite", "the sqlite cache to add to (made if missing)")
    input: str = opt(None, "a JSONL that `python llm.py export` wrote", type=str, required=True)


def main(argv=None):
    name, cfg = parse_command({"export": (ExportConfig, "write a cache's replies, without their requests, to a JSONL"),
                               "import": (ImportConfig, "add an exported JSONL's replies to a cache")},
                              argv, description="Carry the LLM cache's replies between machines "
                                                "(the requests stay behind).")
    if name == "export":
        print(f"{Cache(cfg.cache).export(cfg.out)} replies -> {cfg.out}")
    else:
        if not os.path.isfile(cfg.input):
            raise DataError(f"{cfg.input}: no such file")
        print(f"{Cache(cfg.cache).merge(cfg.input)} replies added to {cfg.cache}")


if __name__ == "__main__":
    run_main(main)
