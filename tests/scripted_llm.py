"""A scripted OpenAI-style server on loopback that misbehaves on purpose, for what a real server will not
do on demand: 429 with and without Retry-After, 500/503, replies slower than the timeout, dropped
connections, truncated bodies, truncated JSON and empty content, a wrong model (404), a bad key (401).

Each request is one of the numbered SENTENCES (its last message, or its prompt, ends with the sentence);
by default the reply names the sentence's first word as a PER entity, so the right output is known.
`plan[(sentence, attempt)]` overrides a reply; `reply(n, body)` replaces the default one.
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

# 42 distinct sentences
SENTENCES = [f"{name} met the press in {city} on day {i} ." .split()
             for i, (name, city) in enumerate([("Alice", "Paris"), ("Bruno", "Rome"), ("Chen", "Lima"),
                                               ("Dana", "Oslo"), ("Emil", "Kyiv"), ("Farah", "Doha")] * 7)]
TEXTS = [" ".join(s) for s in SENTENCES]


def first_word_per(n, body):
    return json.dumps([{"text": TEXTS[n].split()[0], "type": "PER"}]) if n is not None else "[]"


class Script:
    """What the server does: `plan[(sentence, attempt)]` is an action, default "ok"; every request is logged."""

    def __init__(self, plan=None, delay=0.0, reply=first_word_per):
        self.plan, self.delay, self.reply, self.lock = plan or {}, delay, reply, threading.Lock()
        self.log = []  # (time, sentence number or None, attempt, path, Authorization header)

    def attempts(self, s):
        return sum(1 for _, n, _, _, _ in self.log if n == s)


def answer(content, finish_reason="stop", completion=False):
    """A response in the OpenAI shape; `content` may be {"content": text, "logprobs": [[token, logprob], ...]}, and the
    log-probabilities are sent as the endpoint sends them (legacy completions, or chat's logprobs.content)."""
    tokens = None
    if isinstance(content, dict):
        content, tokens = content["content"], content["logprobs"]
    choice = ({"index": 0, "text": content} if completion
              else {"index": 0, "message": {"role": "assistant", "content": content}})
    if tokens and completion:
        offsets = [sum(len(t) for t, _ in tokens[:i]) for i in range(len(tokens))]
        choice["logprobs"] = {"tokens": [t for t, _ in tokens], "token_logprobs": [x for _, x in tokens],
                              "text_offset": offsets}
    elif tokens:
        choice["logprobs"] = {"content": [{"token": t, "logprob": x} for t, x in tokens]}
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{**choice, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def sentence_of(body):
    """The number of the sentence a request is about: the longest of TEXTS its prompt ends with."""
    text = body["prompt"] if "prompt" in body else body["messages"][-1]["content"]
    found = [i for i, t in enumerate(TEXTS) if text.rstrip().endswith(t)]
    return max(found, key=lambda i: len(TEXTS[i])) if found else None


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
            n, completion = sentence_of(body), "prompt" in body
            with script.lock:
                attempt = script.attempts(n)
                script.log.append((time.time(), n, attempt, self.path, self.headers.get("Authorization")))
            action = script.plan.get((n, attempt), "ok")
            if script.delay:
                time.sleep(script.delay)
            kind = action[0] if isinstance(action, tuple) else action
            if kind == "ok":
                self.send(200, answer(script.reply(n, body), completion=completion))
            elif kind == "status":  # ("status", code, headers, body)
                self.send(action[1], action[3] if len(action) > 3 else {"error": {"message": "scripted"}}, action[2])
            elif kind == "sleep":  # answer, but only after the client has given up
                time.sleep(action[1])
                self.send(200, answer("[]", completion=completion))
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
                self.send(200, answer(action[1], action[2], completion=completion))
            elif kind == "echo_auth":  # an error that quotes the key back, as some providers do
                self.send(401, {"error": {"message": f"Incorrect API key provided: "
                                                    f"{self.headers.get('Authorization')}"}})
    return Handler


def serve(script):
    """Start a server for `script` on a free loopback port: (base_url, httpd)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(script))
    httpd.daemon_threads, httpd.block_on_close = True, False
    httpd.handle_error = lambda *a: None  # a client that hung up is part of the script
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/v1", httpd


def kill_midway(script_path, args, script, cache_path, after=15):
    """Run a script (annotate.py, gendist.py ...) against the scripted server, SIGKILL it once the server
    has seen `after` requests, and return how many replies its cache held at that moment."""
    proc = subprocess.Popen([sys.executable, script_path, *args], cwd=os.path.dirname(script_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while len(script.log) < after and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    with sqlite3.connect(cache_path) as db:
        return db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
