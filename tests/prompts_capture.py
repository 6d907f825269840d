"""The requests today's commands send, built without a server: the default task files must give them byte for byte.

    python tests/prompts_capture.py tests/prompts_today.json     # written once, before task files existed
"""
import json
import os
import sys

from common import CONLL, DATA

TRAIN = os.path.join(CONLL, "train.txt")
BBC = os.path.join(DATA, "bbc", "bbc.jsonl")

ANNOTATE = {  # name: annotate.py's flags
    "standard": ["--limit", "3"],
    "cot": ["--prompt", "cot", "--limit", "3"],
    "completion": ["--prompt", "completion", "--limit", "3"],
    "completion_logprobs": ["--prompt", "completion", "--limit", "2", "--confidence", "logprobs"],
    "standard_logprobs": ["--limit", "2", "--confidence", "logprobs"],
    "completion_zero_shot": ["--prompt", "completion", "--limit", "2", "--shots", "0"],
    "cot_one_shot": ["--prompt", "cot", "--limit", "2", "--shots", "1", "--seed", "3"],
    "bbc_completion": ["--format", "bbc", "--input", BBC, "--limit", "2", "--prompt", "completion"],
}


def annotate_requests(argv):
    import annotate as A
    cfg = A.parse_args(["--input", TRAIN, "--examples", TRAIN, "--model", "m"] + argv)
    records = A.load_records(cfg)
    if hasattr(A, "requests_of"):
        return A.requests_of(cfg, records)[1]
    shots = A.draw_shots(cfg.examples, cfg.shots, cfg.seed, exclude={tuple(r["words"]) for r in records})
    return [A.build_request(cfg, r["words"], shots) for r in records]  # annotate.py before task files


def evokd_requests():
    import evokd as E
    from data import read_conll
    cfg = E.parse_args(["--model", "m"])
    sents = read_conll(TRAIN)[:40]
    seed_sents = [sents[i] for i in E.seed_set(sents, 1, 0)]
    batch = [{"words": w, "tags": t, "pred": t if j % 2 else ["O"] * len(t)} for j, (w, t) in enumerate(sents[:6])]
    out = {"analysis": E.analysis_request(cfg, batch, 1)}
    for kind in ("hard", "easy", "similar"):
        out[f"generate_{kind}"] = E.generation_request(cfg, kind, 3, "It misses names.", seed_sents, 1, 0)
    return out


def gendist_requests():
    import generate as G
    pool = [f"Story {i} about the markets and the Bank of England , said Mr Smith on Tuesday ." for i in range(8)]
    out = {}
    for task in ("classify", "ner"):
        for form in ("chat", "completion"):
            cfg = G.parse_generate(["--task", task, "--form", form, "--model", "m", "--input", TRAIN,
                                    "--exclude", TRAIN])
            out[f"{task}_{form}"] = G.build_request(cfg, pool, 1)
    return out


def capture():
    return {"annotate": {name: annotate_requests(argv) for name, argv in ANNOTATE.items()},
            "evokd": evokd_requests(), "gendist": gendist_requests()}


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(sys.argv[1], "w") as f:
        json.dump(capture(), f, indent=1, ensure_ascii=False)
