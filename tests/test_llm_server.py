"""llm_server.py: the command line the tests start their llama.cpp server with, and the CPU flags (runs.cpu_info) that
say where it turns repacking off.
The server itself answers in every test that uses the `llama_server` fixture (conftest.py)."""
import llm_server
from cli import parse_config
from runs import cpu_info

FLAGS = "fpu vme avx2 avx512f avx512_bf16"


def test_the_command_carries_every_setting():
    cfg = llm_server.Config(model="m.gguf", model_alias="tiny", host="0.0.0.0", port=9001, n_ctx=512, threads=3,
                            repack="off")
    argv = llm_server.command(cfg)
    assert argv[1].endswith("llm_server.py")
    assert parse_config(llm_server.Config, argv[2:]) == cfg


def test_amx_is_read_from_the_cpu_flags(tmp_path):
    amx, plain = tmp_path / "amx", tmp_path / "plain"
    amx.write_text(f"processor\t: 0\nflags\t\t: {FLAGS} amx_bf16 amx_tile amx_int8\n")
    plain.write_text(f"processor\t: 0\nmodel name\t: has amx_int8 in its name\nflags\t\t: {FLAGS}\n")
    assert "amx_int8" in cpu_info(amx)[1]
    assert "amx_int8" not in cpu_info(plain)[1] and cpu_info(plain)[0] == "has amx_int8 in its name"
    assert cpu_info(tmp_path / "missing") == (None, set())
