"""
How much annotate.py's thread pool buys, and how fast a fully cached re-run is, measured against a
loopback server that answers every request after a fixed delay (a stand-in for a remote API, whose
latency, not our CPU, sets the pace). Nothing here needs a real LLM.

    python bench_annotate.py                      # 200 requests at --concurrency 1 and 8; 1,000 cached
    python bench_annotate.py --delay 0.2 --concurrency 16

Each timing is a whole annotate.run (reading the input, prompts, cache, writing the output files),
with a fresh cache for the uncached runs.
"""
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import annotate
from cli import at_least, command_line, opt, parse_config, run_main
from data import read_conll
from runs import provenance, write_json


def start_server(delay):
    """A loopback OpenAI-style server: every chat request is answered after `delay` seconds with the
    sentence's first word as a PER entity. Returns (base_url, httpd)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            first = body["messages"][-1]["content"].removeprefix("Sentence: ").split()[0]
            time.sleep(delay)
            data = json.dumps({"choices": [{"message": {"role": "assistant",
                                                        "content": json.dumps([{"text": first, "type": "PER"}])},
                                            "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 100, "completion_tokens": 10}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/v1", httpd


def timed_run(base_url, args, workdir, limit, concurrency, cache):
    cfg = annotate.parse_args(["--input", args.input, "--limit", str(limit), "--seed", "0", "--shots", "0",
                               "--base_url", base_url, "--concurrency", str(concurrency), "--cache", cache,
                               "--out", os.path.join(workdir, f"bench_{limit}_{concurrency}.conll"), "--progress", "0"])
    t0 = time.perf_counter()
    report = annotate.run(cfg)
    return time.perf_counter() - t0, report


@dataclass
class Config:
    input: str = opt("data/conll2003/train.txt", "CoNLL file whose sentences are sent")
    delay: float = opt(0.1, "seconds the server takes per request", type=at_least(0.0, float))
    requests: int = opt(200, "sentences annotated in each uncached run", type=at_least(1))
    concurrency: int = opt(8, "requests in flight at once, measured against 1", type=at_least(1))
    cached: int = opt(1000, "sentences in the fully cached re-run", type=at_least(1))
    out: str = opt("", "a JSON record of the timings (with the command, commit and machine) written here")


def main(argv=None):
    args = parse_config(Config, argv, description=__doc__.split("\n\n")[0])
    n = len(read_conll(args.input))  # a missing or malformed file stops here, in one line
    if max(args.requests, args.cached) > n:
        raise SystemExit(f"error: --requests {args.requests} and --cached {args.cached} need that many sentences; "
                         f"{args.input} has {n}")
    base_url, httpd = start_server(args.delay)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for c in (1, args.concurrency):
            secs, rep = timed_run(base_url, args, workdir, args.requests, c, os.path.join(workdir, f"cache_{c}.sqlite"))
            assert rep["requests_sent"] == args.requests and rep["sentences_written"] == args.requests, rep
            rows.append((f"{args.requests} requests, --concurrency {c}", secs, rep["requests_sent"]))
        cache = os.path.join(workdir, "cache_big.sqlite")
        timed_run(base_url, args, workdir, args.cached, args.concurrency, cache)  # fill the cache
        secs, rep = timed_run(base_url, args, workdir, args.cached, args.concurrency, cache)
        assert rep["requests_sent"] == 0 and rep["cache_hits"] == args.cached, rep
        rows.append((f"{args.cached} sentences, fully cached re-run", secs, 0))
    httpd.shutdown()
    print(f"server delay {args.delay * 1000:.0f} ms per request; "
          f"ideal sequential time {args.requests * args.delay:.1f} s\n")
    print("| run | seconds | requests sent | sentences/s |\n|---|---|---|---|")
    for name, secs, sent in rows:
        n = args.cached if "cached" in name else args.requests
        print(f"| {name} | {secs:.2f} | {sent} | {n / secs:,.0f} |")
    print(f"\nspeed-up of --concurrency {args.concurrency} over 1: {rows[0][1] / rows[1][1]:.1f}x")
    if args.out:
        write_json(args.out, {"delay": args.delay, "rows": [{"run": name, "seconds": secs, "requests_sent": sent,
                                                             "sentences": args.cached if "cached" in name
                                                             else args.requests} for name, secs, sent in rows],
                              "record": provenance(command_line("bench_annotate.py", args))})


if __name__ == "__main__":
    run_main(main)
