"""annotate.py: reading replies, aligning entities to tokens, BBC sentences, prompts, and an
end-to-end run against a real small LLM (SmolLM2-135M behind llama.cpp's server).

The replies below are the kinds SmolLM2-135M-Instruct really gives: invalid types, "entities" that
are the whole sentence, broken JSON, names repeated, reasoning before the answer.
"""
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from common import CONLL, ROOT
import annotate as A
from data import read_conll, sample_indices, write_conll
from eval import get_entities, span_f1
from llm import cache_key

TRAIN = os.path.join(CONLL, "train.txt")

WORDS = "EU rejects German call to boycott British lamb .".split()


# ------------------------------------------------------------------------------ finding the answer

def test_plain_json_list():
    items, status = A.parse_reply("standard", '[{"text": "EU", "type": "ORG"}, {"text": "German", "type": "MISC"}]')
    assert status == "ok" and items == [{"text": "EU", "type": "ORG"}, {"text": "German", "type": "MISC"}]


def test_json_in_code_fence_with_text_around():
    reply = 'Sure! Here are the entities:\n```json\n[{"text": "EU", "type": "ORG"}]\n```\nHope this helps.'
    assert A.parse_reply("standard", reply) == ([{"text": "EU", "type": "ORG"}], "ok")


def test_empty_list_is_an_answer_and_empty_reply_is_not():
    assert A.parse_reply("standard", "[]") == ([], "ok")
    assert A.parse_reply("standard", "") == (None, "empty")
    assert A.parse_reply("standard", "   \n") == (None, "empty")
    assert A.parse_reply("standard", "There are no named entities in this sentence.") == (None, "no_answer")


def test_cot_answer_after_reasoning_wins_over_lists_in_the_reasoning():
    reply = ('1. Context: trade.\n2. Candidates: ["EU", "German", "British"]\n3. Types: EU is ORG.\n'
             '4. Justification: EU names an organisation.\nAnswer: [{"text": "EU", "type": "ORG"}]')
    assert A.parse_reply("cot", reply) == ([{"text": "EU", "type": "ORG"}], "ok")


def test_cot_cut_off_in_the_reasoning_is_truncated_not_an_answer():
    reply = '1. Context: trade.\n2. Candidates: ["EU", "German"]\n3. Types: EU is'
    assert A.parse_reply("cot", reply, finish_reason="length") == (None, "truncated")
    # finished without an "Answer:" line: the last list is taken
    assert A.parse_reply("cot", '2. Candidates: x\n[{"text": "EU", "type": "ORG"}]', "stop")[0] == \
        [{"text": "EU", "type": "ORG"}]


def test_broken_json_is_repaired_from_its_complete_objects():
    truncated = '[{"text": "EU", "type": "ORG"}, {"text": "German", "type": "MISC"}, {"text": "Brit'
    items, status = A.parse_reply("standard", truncated, finish_reason="length")
    assert status == "repaired" and [i["text"] for i in items] == ["EU", "German"]
    single_quotes = "[{'text': 'EU', 'type': 'ORG'}, {'text': 'British', 'type': 'MISC'},]"
    items, status = A.parse_reply("standard", single_quotes)
    assert status == "repaired" and items == [{"text": "EU", "type": "ORG"}, {"text": "British", "type": "MISC"}]
    # nothing complete to repair
    assert A.parse_reply("standard", '[{"text": "EU", "ty', finish_reason="length") == (None, "truncated")
    assert A.parse_reply("standard", '[{"text": "EU", "ty', finish_reason="stop") == (None, "no_answer")


def test_other_answer_shapes():
    assert A.parse_reply("standard", '{"entities": [{"text": "EU", "type": "ORG"}]}')[0] == \
        [{"text": "EU", "type": "ORG"}]
    assert A.parse_reply("standard", '{"EU": "ORG", "German": "MISC"}')[0] == [("EU", "ORG"), ("German", "MISC")]
    assert A.parse_reply("standard", '{"ORG": ["EU"], "MISC": ["German", "British"]}')[0] == [
        ("EU", "ORG"), ("German", "MISC"), ("British", "MISC")]


def test_completion_lines_as_the_small_model_writes_them():
    assert A.parse_reply("completion", " Malaysia (LOC); Indonesia (MALA)") == \
        ([("Malaysia", "LOC"), ("Indonesia", "MALA")], "ok")
    assert A.parse_reply("completion", " none") == ([], "ok")
    assert A.parse_reply("completion", " 7. Sebastian Lindholm (FIN)")[0] == [("7. Sebastian Lindholm", "FIN")]
    # malformed item
    assert A.parse_reply("completion", " EU rejects German call") == (["EU rejects German call"], "ok")
    assert A.parse_reply("completion", "") == (None, "empty")


# ------------------------------------------------------------------------------ alignment

def ents(*pairs):
    return [{"text": t, "type": y} for t, y in pairs]


def test_align_basic_and_exact_tokens():
    tags, kept, dropped = A.align(WORDS, ents(("EU", "ORG"), ("German", "MISC"), ("British", "MISC")))
    assert tags == ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]
    assert len(tags) == len(WORDS) and len(kept) == 3 and not dropped


def test_repeated_name_maps_to_occurrences_in_order():
    words = "Smith beat Jones , then Smith lost to Jones again .".split()
    tags, kept, _ = A.align(words, ents(("Smith", "PER"), ("Jones", "PER"), ("Smith", "PER"), ("Jones", "PER")))
    assert [k["start"] for k in kept] == [0, 2, 5, 8]
    # listed once: only the first occurrence is labelled
    tags, kept, _ = A.align(words, ents(("Smith", "PER")))
    assert tags[0] == "B-PER" and tags[5] == "O"
    # listed more often than it occurs: the extra one overlaps, nothing is relabelled
    tags, kept, dropped = A.align("Smith won .".split(), ents(("Smith", "PER"), ("Smith", "PER")))
    assert tags == ["B-PER", "O", "O"] and dropped == {"overlap": 1}


def test_case_insensitive_after_exact_and_out_of_order_lists():
    tags, _, _ = A.align(WORDS, ents(("eu", "ORG")))
    assert tags[0] == "B-ORG"
    tags, _, dropped = A.align(WORDS, ents(("British", "MISC"), ("EU", "ORG")))  # listed out of order
    assert tags[0] == "B-ORG" and tags[6] == "B-MISC" and not dropped
    words = "the eu and the EU".split()
    assert A.align(words, ents(("EU", "ORG")))[0] == ["O", "O", "O", "O", "B-ORG"]  # exact beats case-insensitive


def test_invalid_types_and_hallucinations_are_dropped_and_counted():
    items = ents(("EU", "ORGANIZATION"), ("German", "NATIONALITY"), ("lamb", "FOOD"), ("France", "LOC"),
                 ("Brit", "MISC"))
    tags, kept, dropped = A.align(WORDS, items + ["just a string", {"text": "British"}])
    assert tags[0] == "B-ORG"  # ORGANIZATION is the full name of ORG
    assert [k["text"] for k in kept] == ["EU"]
    assert dropped == {"bad_type": 2, "not_found": 2, "malformed": 2}


def test_sentence_long_entity_is_dropped():
    words = "Japan began the defence of their Asian Cup title with a lucky 2-1 win against Syria .".split()
    tags, kept, dropped = A.align(words, ents((" ".join(words), "MISC"), ("Syria", "LOC")))
    assert dropped == {"too_long": 1} and tags[-2] == "B-LOC" and tags.count("O") == len(words) - 1


def test_spacing_punctuation_and_multiword():
    words = ["Germany", "'s", "Foreign", "Minister", "Klaus", "Kinkel", "(", "AP", ")", "."]
    tags, kept, _ = A.align(words, ents(("Germany's", "LOC"), ("Klaus  Kinkel", "PER"), ("(AP)", "ORG")))
    assert tags == ["B-LOC", "I-LOC", "O", "O", "B-PER", "I-PER", "O", "B-ORG", "O", "O"]
    # an entity of punctuation only is never placed
    assert A.align(words, ents(("(", "ORG")))[2] == {"not_found": 1}


def test_align_output_is_always_valid_bio():
    items = ents(("EU rejects", "ORG"), ("rejects German", "MISC"), ("German call", "LOC"), ("lamb .", "MISC"))
    tags, kept, dropped = A.align(WORDS, items)
    assert len(tags) == len(WORDS)
    assert sum(1 for _ in get_entities(tags)) == len(kept)
    assert all(t == "O" or t[:2] in ("B-", "I-") for t in tags)


# ------------------------------------------------------------------------------ BBC sentences (rawtext.py tokenizes them)

def test_bbc_records_keep_article_and_sentence(tmp_path):
    path = tmp_path / "bbc.jsonl"
    arts = [{"id": "business/001", "text": "One sentence here. Another one.\n\nThird."},
            {"id": "tech/002", "text": "Only one."}]
    path.write_text("".join(json.dumps(a) + "\n" for a in arts))
    cfg = A.parse_args(["--format", "bbc", "--input", str(path)])
    recs = A.load_records(cfg)
    assert [(r["meta"]["article"], r["meta"]["sentence"], r["words"]) for r in recs] == [
        ("business/001", 0, ["One", "sentence", "here", "."]), ("business/001", 1, ["Another", "one", "."]),
        ("business/001", 2, ["Third", "."]), ("tech/002", 0, ["Only", "one", "."])]
    assert all(r["gold"] is None for r in recs)


@pytest.mark.slow
def test_a_model_folder_labels_instead_of_the_llm(tmp_path):
    """--labeller: the model's tags (predict.py's) in the same files an LLM run writes: CoNLL with gold scored,
    BBC with article and sentence kept in the replies file; no request is sent (no server here at all)."""
    from common import write_tiny_conll
    from predict import tag_words
    from train import Config, train
    write_tiny_conll(str(tmp_path), n_train=120, n_eval=40)
    train(Config(data_dir=str(tmp_path), out_dir=str(tmp_path / "m"), max_steps=20, lr=3e-4, batch_size=8, progress=0))
    model = str(tmp_path / "m" / "model")
    base = ["--labeller", model, "--base_url", "http://127.0.0.1:9/v1", "--progress", "0"]
    report = A.run(A.parse_args(["--input", str(tmp_path / "test.txt"), "--limit", "30", "--seed", "1",
                                 "--out", str(tmp_path / "t.conll"), *base]))
    gold = [read_conll(str(tmp_path / "test.txt"))[i] for i in sample_indices(40, 30, 1)]
    labelled = read_conll(str(tmp_path / "t.conll"))
    assert [w for w, _ in labelled] == [w for w, _ in gold] and read_conll(str(tmp_path / "t.conll"), column=1) == gold
    assert [t for _, t in labelled] == tag_words(model, [w for w, _ in gold])
    assert report["span_f1"] == span_f1([t for _, t in gold], [t for _, t in labelled]) and \
        report["sentences_written"] == 30
    assert "labelled by" in A.summary(report, "t.conll")

    arts = [{"id": "world/001", "text": "Angela Merkel met Airbus in Toulouse. Then she flew to Berlin."},
            {"id": "sport/002", "text": "Arsenal won."}]
    (tmp_path / "bbc.jsonl").write_text("".join(json.dumps(a) + "\n" for a in arts))
    A.run(A.parse_args(["--format", "bbc", "--input", str(tmp_path / "bbc.jsonl"), "--out", str(tmp_path / "b.conll"),
                        *base]))
    rows = read_conll(str(tmp_path / "b.conll"), columns=True)
    assert [len(r[0]) for r in rows] == [2, 2, 2]  # token, model's tag
    lines = [json.loads(x) for x in open(tmp_path / "b.replies.jsonl")]
    assert [(x["article"], x["sentence"], x["out_sentence"]) for x in lines] == \
        [("world/001", 0, 0), ("world/001", 1, 1), ("sport/002", 0, 2)]
    assert all(x["status"] == "model" for x in lines)

    # --context: the sampled sentences read in their documents, the sentences left out of the sample lending context
    sents = read_conll(str(tmp_path / "test.txt"))
    docs = [i // 6 for i in range(len(sents))]
    write_conll(str(tmp_path / "docs.txt"), [list(zip(w, t)) for w, t in sents], docs)
    A.run(A.parse_args(["--input", str(tmp_path / "docs.txt"), "--limit", "30", "--seed", "1", "--context", "16",
                        "--out", str(tmp_path / "c.conll"), *base]))
    want = tag_words(model, [w for w, _ in sents], context=16, docs=docs, scored=sample_indices(40, 30, 1))
    assert [t for _, t in read_conll(str(tmp_path / "c.conll"))] == want


# ------------------------------------------------------------------------------ sample, prompts, dry run

def test_limit_is_the_same_sample_as_data_py(tmp_path):
    out = tmp_path / "gold.conll"
    subprocess.run([sys.executable, os.path.join(ROOT, "data.py"), "sample", "--input", TRAIN, "--limit", "25",
                    "--seed", "3", "--out", str(out)], check=True, capture_output=True)
    recs = A.load_records(A.parse_args(["--input", TRAIN, "--limit", "25", "--seed", "3"]))
    assert [(r["words"], r["gold"]) for r in recs] == read_conll(out)


def test_shots_are_seeded_cover_the_types_and_exclude_the_input():
    shots = A.draw_shots(TRAIN, 8, seed=0)
    assert shots == A.draw_shots(TRAIN, 8, seed=0) and shots != A.draw_shots(TRAIN, 8, seed=1)
    assert len(shots) == 8 and sum(not e for _, e in shots) == 1  # one example without entities
    assert {t for _, e in shots for _, t in e} == {"PER", "ORG", "LOC", "MISC"}
    first = tuple(shots[0][0])
    assert first not in {tuple(w) for w, _ in A.draw_shots(TRAIN, 8, seed=0, exclude={first})}


def test_knn_demos_are_the_nearest_never_the_sentence_and_cached_by_file(tmp_path, monkeypatch):
    sents = read_conll(TRAIN)[:300]
    query = next(s for s in sents[50:] if len(get_entities(s[1])) >= 2 and len(s[0]) >= 8)
    planted = (list(query[0]), list(query[1]))
    planted[0][-2] = "yesterday" if planted[0][-2] != "yesterday" else "today"  # one word changed, its tag kept
    examples = tmp_path / "examples.conll"
    write_conll(examples, [list(zip(w, t)) for w, t in sents + [planted]])
    cfg = A.parse_args(["--examples", str(examples), "--demos", "knn", "--shots", "4",
                        "--cache", str(tmp_path / "c.sqlite")])
    records = [{"words": query[0]}, {"words": sents[0][0]}]
    shots = A.knn_shots(cfg, records)
    assert [len(s) for s in shots] == [4, 4]
    # nearest, last
    assert shots[0][-1] == (planted[0], [(" ".join(planted[0][s:e]), t) for t, s, e in get_entities(planted[1])])
    # a sentence being annotated is never a demo
    assert all(w not in (query[0], sents[0][0]) for s in shots for w, _ in s)
    assert len(list(tmp_path.glob("knn-*.npy"))) == 1
    calls = []
    import shots as S  # where the worked examples are chosen
    embed = S.embed
    monkeypatch.setattr(S, "embed", lambda s: calls.append(len(s)) or embed(s))
    # the examples came from the cache, only the queries were embedded
    assert A.knn_shots(cfg, records) == shots and calls == [2]
    # the file changed: its embeddings are computed again
    write_conll(examples, [list(zip(w, t)) for w, t in sents[:200] + [planted]])
    assert A.knn_shots(cfg, records)[0][-1][0] == planted[0] and calls == [2, 201, 2]
    assert len(list(tmp_path.glob("knn-*.npy"))) == 2


def test_prompt_forms():
    shots = A.draw_shots(TRAIN, 3, seed=0)
    for form, endpoint in (("standard", "chat/completions"), ("cot", "chat/completions"),
                           ("completion", "completions")):
        cfg = A.parse_args(["--prompt", form, "--model", "m"])
        ep, payload = A.build_request(cfg, WORDS, shots)
        assert ep == endpoint and payload["model"] == "m" and payload["max_tokens"] == A.DEFAULT_MAX_TOKENS[form]
        text = A.prompt_text(ep, payload)
        assert text.rstrip().endswith("EU rejects German call to boycott British lamb ."
                                      + ("\nEntities:" if form == "completion" else ""))
        assert " ".join(shots[0][0]) in text
    assert "Answer:" in A.prompt_text(*A.build_request(A.parse_args(["--prompt", "cot"]), WORDS, shots))
    # the key depends on the request only, and changes with any sampling parameter
    cfg = A.parse_args([])
    k1 = cache_key(*A.build_request(cfg, WORDS, shots))
    assert k1 == cache_key(*A.build_request(cfg, WORDS, shots))
    cfg.temperature = 0.7
    assert k1 != cache_key(*A.build_request(cfg, WORDS, shots))


def test_dry_run_sends_nothing(tmp_path, capsys):
    code = A.main(["--input", TRAIN, "--limit", "20", "--prompt", "completion", "--dry_run",
                   "--base_url", "http://127.0.0.1:9/v1", "--cache", str(tmp_path / "c.sqlite"),
                   "--out", str(tmp_path / "o.conll")])
    out = capsys.readouterr().out
    assert code == 0 and "Sentence:" in out and "20 sentences, 0 cached, 20 to send" in out and \
        "prompt tokens about" in out
    assert not (tmp_path / "o.conll").exists()


# ------------------------------------------------------------------------------ a real LLM, end to end

def check_report_agrees_with_files(report, out, replies_path, n_input):
    llm, gold = read_conll(out), read_conll(out, column=1)
    lines = [json.loads(l) for l in open(replies_path)]
    assert len(lines) == n_input and report["sentences"] == n_input
    assert report["sentences_written"] == len(llm) == n_input - report["sentences_failed"]
    assert [l["out_sentence"] for l in lines if l["out_sentence"] is not None] == list(range(len(llm)))
    assert report["entities_kept"] == sum(len(get_entities(t)) for _, t in llm) == \
        sum(len(l.get("entities", [])) for l in lines)
    assert report["entities_proposed"] == report["entities_kept"] + sum(report["entities_dropped"].values())
    assert report["entities_by_type"] == dict(sorted(Counter(e[0] for _, t in llm for e in get_entities(t)).items()))
    assert report["prompt_tokens_total"] == sum(l["reply"]["usage"]["prompt_tokens"] for l in lines if "reply" in l)
    assert report["span_f1"] == span_f1([t for _, t in gold], [t for _, t in llm])
    assert report["parse_failures"] == len([f for f in report["failed"] if f["reason"] != "gave_up"])


@pytest.mark.parametrize("form", ["completion", "standard"])
def test_end_to_end_with_smollm2(llama_server, tmp_path, form):
    n = 4
    out, cache = tmp_path / "llm.conll", tmp_path / "cache.sqlite"
    args = ["--input", TRAIN, "--limit", str(n), "--seed", "1", "--examples", TRAIN, "--prompt", form,
            "--base_url", llama_server, "--out", str(out), "--cache", str(cache), "--concurrency", "2",
            "--max_tokens", "48", "--progress", "0"]
    assert A.main(args) == 0
    report = json.load(open(tmp_path / "llm.report.json"))
    replies = tmp_path / "llm.replies.jsonl"
    check_report_agrees_with_files(report, out, replies, n)
    assert report["requests_sent"] == n + report["retries"] and report["cache_hits"] == 0
    assert report["prompt_tokens"] > 0 and report["completion_tokens"] > 0
    # the gold column is the gold of the very sentences sampled
    sents = read_conll(TRAIN)
    want = [sents[i] for i in sample_indices(len(sents), n, 1)]
    written = {l["index"] for l in map(json.loads, open(replies)) if l["out_sentence"] is not None}
    assert read_conll(out, column=1) == \
        [s for s, l in zip(want, map(json.loads, open(replies))) if l["index"] in written]
    # a second run asks again only for the replies that could not be read (never cached)
    before = out.read_text()
    assert A.main(args) == 0
    again = json.load(open(tmp_path / "llm.report.json"))
    assert again["requests_sent"] == report["parse_failures"] and again["cache_hits"] == n - report["parse_failures"]
    if report["parse_failures"] == 0:
        assert again["requests_sent"] == 0 and out.read_text() == before
