"""evokd.py: the loop's bookkeeping against a scripted server (replies fixed in advance, so every count is
known), the variants, a trained model as the labeller, kill -9 and resume, one real round with SmolLM2, and
the summary's arithmetic."""
import json
import os
import subprocess
import sys

import pytest

import evokd as E
from common import CONLL, ROOT, write_tiny_conll
from data import read_conll, read_jsonl
from scripted_llm import kill_midway

ANALYSIS = "The model misses organisations and names of places that follow 'in'."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("evokd_data")
    train = write_tiny_conll(str(d), n_train=300, n_eval=30)
    seed_words = [train[i][0] for i in E.seed_set(train[:300], 1, 0)]
    test = read_conll(str(d / "test.txt"))
    return {"dir": d, "copy": " ".join(max(seed_words, key=len)),  # a seed sentence the LLM was shown
            "leak": " ".join(next(w for w, _ in test if 8 <= len(w) <= 30))}  # a test sentence


def scripted(tiny, asked):
    """Replies by kind of request; `asked` collects the kinds in the order they came."""
    def reply(n, body):
        if "prompt" in body:  # labelling: annotate.py's completion prompt; the first word is a person
            asked.append("label")
            sentence = body["prompt"].rsplit("Sentence: ", 1)[1].split("\nEntities:")[0]
            return f" {sentence.split()[0]} (PER)"
        messages, s = body["messages"], body["seed"]
        if messages[0]["role"] == "system":
            asked.append("analysis")
            return ANALYSIS
        text = messages[-1]["content"]
        # every 5-gram holds a word of this request's own (its seed): no near copies across rounds
        if "would get wrong" in text:
            asked.append("hard")
            return ("Here are the sentences:\n"
                    f"1. Ana{s} Brown of Corp{s} visited Town{s} on day {s} to discuss trade .\n"
                    f"2. Too short .\n3. {tiny['leak']}\n4. \"Bruno{s} Rossi of Fiat{s} met Chen{s} Li in Rome{s} .\"")
        if "would get right" in text:
            asked.append("easy")
            return (f"1. Dana{s} Smith said the weather in Oslo{s} was fine on day {s} .\n"
                    # the hard list's first
                    f"2. Ana{s - 5} Brown of Corp{s - 5} visited Town{s - 5} on day {s - 5} to discuss trade .\n"
                    f"3. {tiny['copy']}\n4. Emil{s} Novak thanked the fans in Kyiv{s} after the match {s} .\n"
                    f"5. Farah{s} Haddad opened a school in Doha{s} with the mayor {s} .")
        asked.append("similar")
        return "\n".join(f"{i}. Person{i}x{s} Jones of Club{i}x{s} played in Leeds{s} on day {s} ."
                         for i in range(1, 5))
    return reply


def args(url, tiny, out, *extra):
    return ["--data_dir", str(tiny["dir"]), "--k", "1", "--rounds", "2", "--n", "2", "--max_steps", "2",
            "--batch_size", "4", "--base_url", url, "--cache", str(out / "cache.sqlite"), "--out_dir", str(out),
            "--progress", "0", "--backoff_base", "0.01", "--timeout", "10",
            "--concurrency", "1", *extra]  # one at a time: the order is known


def rounds(out):
    return read_jsonl(os.path.join(out, "rounds.jsonl"))


def batch(out, r):
    return read_jsonl(os.path.join(out, f"round_{r:02d}", "batch.jsonl"))


def test_seed_set_has_k_sentences_per_type_and_follows_the_seed():
    train = read_conll(os.path.join(CONLL, "train.txt"))
    for k in (1, 5):
        chosen = E.seed_set(train, k, 0)
        held = [{t for t, _, _ in E.get_entities(train[i][1])} for i in chosen]
        for t in ("PER", "ORG", "LOC", "MISC"):
            assert sum(t in h for h in held) >= k
        assert len(chosen) <= 4 * k and len(set(chosen)) == len(chosen)
        assert all(any(sum(t in h for h in held[:j]) < k for t in held[j]) for j in range(len(held)))  # each was needed
    assert E.seed_set(train, 1, 0) == E.seed_set(train, 1, 0) != E.seed_set(train, 1, 1)


def test_sentences_of_a_reply():
    reply = ('Sure! Here are 3 sentences:\n\n1. "Angela Merkel met Airbus in Toulouse."\n'
             '2) Hard 2: Shares fell. Then they rose.\n'
             '- Sentence 3: The UN met in Geneva .\n\nThese sentences are tricky:')
    assert [" ".join(s) for s in E.sentences_of(reply)] == [
        "Angela Merkel met Airbus in Toulouse .", "Shares fell .", "Then they rose .", "The UN met in Geneva ."]


@pytest.mark.slow
def test_the_loop_keeps_its_books(scripted_server, tiny, tmp_path, capsys):
    asked = []
    url, script = scripted_server(reply=scripted(tiny, asked))
    out = tmp_path / "run"
    log = E.main(args(url, tiny, out))
    assert [r["round"] for r in log] == [0, 1, 2] == [r["round"] for r in rounds(out)]
    seed = read_conll(str(out / "seed.conll"))
    assert asked == ["analysis", "hard", "easy"] + ["label"] * 4 + ["analysis", "hard", "easy"] + ["label"] * 4
    for r in (1, 2):
        line, b = log[r], batch(out, r)
        # hard: 4 lines, one too short and one a test sentence; easy: 5 lines, one a copy of the hard list's
        # first, one of a seed sentence, one more than asked for
        assert line["generated"] == 9 and line["kept"] == 4 and (line["hard"], line["easy"]) == (2, 2)
        assert line["dropped"] == {"too_short": 1, "leak_eval": 1, "duplicate": 1, "copy_seed": 1, "surplus": 1}
        assert [it["words"][0].rstrip("0123456789") for it in b] == ["Ana", "Bruno", "Dana", "Emil"] and \
            [it["kind"] for it in b] == ["hard"] * 2 + ["easy"] * 2
        # the scripted labeller's answer
        assert all(it["tags"] == ["B-PER"] + ["O"] * (len(it["words"]) - 1) for it in b)
        # 10 + 5 a reply
        assert line["requests"] == 7 and (line["prompt_tokens"], line["completion_tokens"]) == (70, 35)
        assert line["analysis"] == ANALYSIS
        assert line["hard_acc"] == sum(it["pred"] == it["tags"] for it in b[:2]) / 2
        assert line["easy_acc"] == sum(it["pred"] == it["tags"] for it in b[2:]) / 2
        assert 0 <= line["test_f1"] <= 1 and 0 <= line["dev_f1"] <= 1
    # round 1 studies the seed set; round 2 the batch of round 1, as the student tagged it before learning it
    assert sum(log[1]["studied"].values()) == len(seed)
    assert log[2]["studied"] == {"correct": sum(it["pred"] == it["tags"] for it in batch(out, 1)),
                                 "wrong": sum(it["pred"] != it["tags"] for it in batch(out, 1))}
    # training: the new batch, the seed set, and the replay of earlier generated sentences (2n = 4 at most)
    assert (log[1]["replayed"], log[2]["replayed"]) == (0, 4)
    assert log[1]["train_sentences"] == 4 + len(seed) and log[2]["train_sentences"] == 4 + len(seed) + 4
    assert len(read_conll(str(out / "round_02" / "train.conll"))) == log[2]["train_sentences"]
    assert json.load(open(out / "round_02" / "metrics.json"))["test"]["f1"] == log[2]["test_f1"]
    printed = capsys.readouterr().out
    assert "round 2: dev F1" in printed and "hard 2 / easy 2" in printed and "analysis: The model misses" in printed

    # the summary scores the LLM's labels against a model folder's tags of the same sentences
    from eval import span_f1
    model = str(out / "round_00" / "model")
    items = batch(out, 1) + batch(out, 2)
    want = span_f1(E.tag(model, [it["words"] for it in items], E.parse_args([])), [it["tags"] for it in items])
    assert f"| k=1 LLM labeller evokd | 8 | {100 * want['f1']:.1f} | {100 * want['precision']:.1f} |" in \
        E.summary([str(out)], against=model)

    # the same command again does nothing; two more rounds go on from the last one, asking only for those
    n_sent = len(script.log)
    assert E.main(args(url, tiny, out)) == log and len(script.log) == n_sent
    longer = E.main(args(url, tiny, out, "--rounds", "3"))
    assert longer[:3] == log and len(longer) == 4 and len(script.log) == n_sent + 7
    # other settings in the same folder are refused
    with pytest.raises(E.DataError, match="other settings"):
        E.main(args(url, tiny, out, "--n", "3"))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["auggpt", "no_easy", "no_replay"])
def test_variants_ask_and_train_as_documented(scripted_server, tiny, tmp_path, variant):
    asked = []
    url, _ = scripted_server(reply=scripted(tiny, asked))
    out = tmp_path / variant
    log = E.main(args(url, tiny, out, "--variant", variant))
    seed = read_conll(str(out / "seed.conll"))
    if variant == "auggpt":  # no analysis; 2n sentences like the seed examples
        assert "analysis" not in asked and asked.count("similar") == 2
        assert all(r["similar"] == 4 and r["analysis"] == "" for r in log[1:])
    if variant == "no_easy":  # 2n hard: the list asks again until it has 4 (each reply gives 2)
        assert "easy" not in asked and asked.count("hard") == 4 and \
            all(r["hard"] == 4 and r["easy"] == 0 for r in log[1:])
    if variant == "no_replay":  # the new batch alone
        assert [r["train_sentences"] for r in log[1:]] == [4, 4] and all(r["replayed"] == 0 for r in log[1:])
    else:
        assert log[2]["train_sentences"] == 4 + len(seed) + 4


@pytest.mark.slow
def test_a_trained_model_labels_instead_of_the_llm(scripted_server, tiny, tmp_path):
    asked = []
    url, _ = scripted_server(reply=scripted(tiny, asked))
    first = tmp_path / "first"
    E.main(args(url, tiny, first, "--rounds", "0"))
    labeller = str(first / "round_00" / "model")
    out = tmp_path / "labelled"
    log = E.main(args(url, tiny, out, "--rounds", "1", "--labeller", labeller))
    b = batch(out, 1)
    assert "label" not in asked and log[1]["kept"] == 4 and log[1]["requests"] == 3
    assert [it["tags"] for it in b] == E.tag(labeller, [it["words"] for it in b], E.parse_args([]))


@pytest.mark.slow
def test_killed_mid_round_resumes_and_ends_as_an_unbroken_run(scripted_server, tiny, tmp_path, monkeypatch):
    """kill -9 during round 2, then the same command: the finished round is kept, no reply that was read is
    asked for again, and every number of the log is the unbroken run's."""
    asked = []
    url, script = scripted_server(delay=0.05, reply=scripted(tiny, asked))
    whole = tmp_path / "whole"
    cmd = [sys.executable, os.path.join(ROOT, "evokd.py")]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # every run with the same threads: the same sums, the same numbers
    subprocess.run(cmd + args(url, tiny, whole), check=True, capture_output=True, timeout=300)
    n_whole = len(script.log)

    broken = tmp_path / "broken"
    cached = kill_midway(os.path.join(ROOT, "evokd.py"), args(url, tiny, broken), script, str(broken / "cache.sqlite"),
                         after=n_whole + 9)  # round 1's 7 requests, then round 2's analysis and hard list
    assert [r["round"] for r in rounds(broken)] == [0, 1]
    before = len(script.log)
    subprocess.run(cmd + args(url, tiny, broken), check=True, capture_output=True, timeout=300)
    assert len(script.log) - before == n_whole - cached  # only what the cache did not hold
    strip = lambda log: [{k: v for k, v in r.items() if k != "seconds"} for r in log]  # noqa: E731
    assert strip(rounds(broken)) == strip(rounds(whole))
    for r in (1, 2):
        assert batch(broken, r) == batch(whole, r)


def test_one_real_round_with_smollm2(llama_server, tiny, tmp_path):
    out = tmp_path / "real"
    log = E.main(args(llama_server, tiny, out, "--rounds", "1", "--model", "smollm2", "--max_tokens", "160",
                      "--timeout", "300"))  # a real model on a busy core: the scripted servers' 10 s is too short
    line = log[1]
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] > 0 and line["analysis"]
    failed = line["dropped"].get("request_failed", 0)
    assert line["generated"] == line["kept"] + sum(line["dropped"].values()) - failed
    assert line["kept"] == len(batch(out, 1)) == line["hard"] + line["easy"] <= 4
    assert all(len(it["tags"]) == len(it["words"]) for it in batch(out, 1))


def test_summary_tables(tmp_path, capsys):
    runs = {("evokd", 0): [0.2, 0.3, 0.4], ("evokd", 1): [0.1, 0.2, 0.5], ("auggpt", 0): [0.2, 0.25, 0.3],
            ("auggpt", 1): [0.1, 0.2, 0.3], ("no_easy", 0): [0.2, 0.3, 0.35], ("no_easy", 1): [0.1, 0.2, 0.45]}
    dirs = []
    for (variant, seed), f1s in runs.items():
        d = tmp_path / f"{variant}_{seed}"
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"k": 1, "labeller": "", "variant": variant, "seed": seed}))
        (d / "rounds.jsonl").write_text("".join(
            json.dumps({"round": i, "test_f1": f, "prompt_tokens": 100 * (i > 0), "completion_tokens": 50 * (i > 0),
                        "kept": 4 * (i > 0),
                        **({"hard": 2, "hard_acc": 0.5, "easy": 2, "easy_acc": 1.0} if variant != "auggpt"
                           else {"similar": 4, "similar_acc": 0.25})}) + "\n"
            for i, f in enumerate(f1s)))
        dirs.append(str(d))
    text = E.summary(dirs + [str(tmp_path / "unfinished")], out=str(tmp_path / "s.md"))
    assert "| k=1 LLM labeller evokd | 2 | 15.00 | 25.00 | 45.00 |" in text
    # final 45 ± 7.07; gain over round 0: 20 and 40 points; paired to auggpt: +10 and +20, both better;
    # 300 tokens / 30 points
    assert "| k=1 LLM labeller evokd | 45.00 ± 7.07 | 30.00 ± 14.14 | 15.00 ± 7.07 (2/2) |  | 8 | 300 | 10 |" in text
    assert ("| k=1 LLM labeller no_easy | 40.00 ± 7.07 | 25.00 ± 14.14 | 10.00 ± 7.07 (2/2) | "
            "-5.00 ± 0.00 (0/2) |") in text  # an ablation
    assert "| k=1 LLM labeller auggpt | 30.00 ± 0.00 | 15.00 ± 7.07 |  |  | 8 | 300 | 20 |" in text
    assert "| k=1 LLM labeller evokd | 50.0% of 8 | 100.0% of 8 |  |" in text  # 2 a round, rounds 1 and 2, two seeds
    assert "| k=1 LLM labeller auggpt |  |  | 25.0% of 16 |" in text
    assert open(tmp_path / "s.md").read() == text
    assert "skipped, no rounds.jsonl" in capsys.readouterr().err


def test_summary_plot(tmp_path):
    pytest.importorskip("matplotlib")  # optional: only --plot needs it
    d = tmp_path / "run"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"k": 5, "labeller": "m", "variant": "evokd", "seed": 0}))
    (d / "rounds.jsonl").write_text("".join(json.dumps({"round": i, "test_f1": 0.1 * i, "prompt_tokens": 1,
                                                        "completion_tokens": 1}) + "\n"
                                            for i in range(3)))
    E.summary([str(d)], plot=str(tmp_path / "f1.png"))
    assert open(tmp_path / "f1.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
