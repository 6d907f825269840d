"""Our span F1 against seqeval, and our accuracy and macro-F1 against scikit-learn, to the last digit."""
import json
import os
import random
import subprocess
import sys
import warnings

import pytest
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2
from sklearn import metrics as skm

from common import CONLL, ROOT
from data import read_conll
from eval import classification_scores, get_entities, span_f1

warnings.filterwarnings("ignore")  # seqeval warns about undefined precision on empty predictions


def seqeval_scores(gold, pred, strict):
    kw = {"mode": "strict", "scheme": IOB2} if strict else {}
    report = classification_report(gold, pred, output_dict=True, zero_division=0, **kw)
    per_type = {t: v for t, v in report.items() if not t.endswith("avg")}
    return f1_score(gold, pred, **kw), report["micro avg"], per_type


def assert_same(gold, pred, strict):
    ours = span_f1(gold, pred, strict=strict)
    f1, micro, per_type = seqeval_scores(gold, pred, strict)
    assert ours["f1"] == pytest.approx(f1, abs=1e-12)
    assert ours["precision"] == pytest.approx(micro["precision"], abs=1e-12)
    assert ours["recall"] == pytest.approx(micro["recall"], abs=1e-12)
    for t, s in per_type.items():
        assert ours["per_type"][t]["f1"] == pytest.approx(s["f1-score"], abs=1e-12), t
        assert ours["per_type"][t]["precision"] == pytest.approx(s["precision"], abs=1e-12), t
        assert ours["per_type"][t]["support"] == s["support"], t


def corrupt(tags, kind, rng):
    """Prediction errors of the kinds a tagger makes."""
    out = list(tags)
    for i, t in enumerate(tags):
        r = rng.random()
        if kind == "drop" and t != "O" and r < 0.2:
            out[i] = "O"
        elif kind == "type" and t != "O" and r < 0.2:
            out[i] = t[:2] + rng.choice(["PER", "ORG", "LOC", "MISC"])
        elif kind == "b_to_i" and t.startswith("B-") and r < 0.3:
            out[i] = "I-" + t[2:]  # same span under conlleval, no span under strict IOB2
        elif kind == "boundary" and t.startswith("B-") and r < 0.3 and i + 1 < len(tags) and tags[i + 1] == "O":
            out[i + 1] = "I-" + t[2:]
        elif kind == "spurious" and t == "O" and r < 0.03:
            out[i] = rng.choice(["B-", "I-"]) + rng.choice(["PER", "ORG", "LOC", "MISC"])
    return out


@pytest.fixture(scope="module")
def conll_test_tags():
    return [tags for _, tags in read_conll(os.path.join(CONLL, "test.txt"))]


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("kind", ["none", "drop", "type", "b_to_i", "boundary", "spurious", "all"])
def test_full_conll_test_set_matches_seqeval(conll_test_tags, kind, strict):
    rng = random.Random(kind)
    kinds = ["drop", "type", "b_to_i", "boundary", "spurious"] if kind == "all" else [kind]
    pred = conll_test_tags
    for k in kinds:
        pred = [corrupt(t, k, rng) for t in pred]
    assert_same(conll_test_tags, pred, strict)


@pytest.mark.parametrize("strict", [False, True])
def test_thousands_of_random_sequences_match_seqeval(strict):
    rng = random.Random(1)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    for _ in range(3000):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 9))] for _ in range(rng.randint(1, 4))]
        pred = [[rng.choice(tags) for _ in g] for g in gold]
        ours = span_f1(gold, pred, strict=strict)["f1"]
        assert ours == pytest.approx(seqeval_scores(gold, pred, strict)[0], abs=1e-12), (gold, pred)


def test_default_and_strict_differ_as_documented():
    gold, pred = [["B-X", "I-X", "O"]], [["I-X", "I-X", "O"]]
    assert span_f1(gold, pred)["f1"] == 1.0
    assert span_f1(gold, pred, strict=True)["f1"] == 0.0
    assert get_entities(["B-PER", "I-LOC", "I-LOC", "O", "I-ORG"]) == [("PER", 0, 1), ("LOC", 1, 3), ("ORG", 4, 5)]
    assert get_entities(["B-PER", "I-LOC", "I-LOC", "O", "I-ORG"], strict=True) == [("PER", 0, 1)]


def test_no_predictions_scores_zero_not_an_error():
    s = span_f1([["B-PER", "O"]], [["O", "O"]])
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)
    assert s["per_type"]["PER"]["support"] == 1


def write(path, sentences):
    with open(path, "w") as f:
        f.write("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n")


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), *args], capture_output=True, text=True)


def test_cli_json_shape_and_values(tmp_path):
    gold = [[("EU", "B-ORG"), ("rejects", "O"), ("German", "B-MISC")], [("Peter", "B-PER"), ("Blackburn", "I-PER")]]
    pred = [[("EU", "B-ORG"), ("rejects", "O"), ("German", "B-LOC")], [("Peter", "B-PER"), ("Blackburn", "I-PER")]]
    write(tmp_path / "g.txt", gold)
    write(tmp_path / "p.txt", pred)
    r = run_cli("--gold", str(tmp_path / "g.txt"), "--pred", str(tmp_path / "p.txt"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"precision", "recall", "f1", "per_type"}
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["per_type"]["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert out["per_type"]["LOC"]["support"] == 0
    assert all(0 <= v["f1"] <= 1 for v in out["per_type"].values())
    text = run_cli("--gold", str(tmp_path / "g.txt"), "--pred", str(tmp_path / "p.txt")).stdout
    assert "overall" in text and "66.67" in text


def test_cli_refuses_different_tokens_naming_the_place(tmp_path):
    write(tmp_path / "g.txt", [[("EU", "B-ORG"), ("rejects", "O")], [("Peter", "B-PER")]])
    write(tmp_path / "p.txt", [[("EU", "B-ORG"), ("reject", "O")], [("Peter", "B-PER")]])
    r = run_cli("--gold", str(tmp_path / "g.txt"), "--pred", str(tmp_path / "p.txt"))
    assert r.returncode != 0 and "sentence 1, token 2" in r.stderr and "'rejects'" in r.stderr
    write(tmp_path / "p.txt", [[("EU", "B-ORG"), ("rejects", "O")]])
    r = run_cli("--gold", str(tmp_path / "g.txt"), "--pred", str(tmp_path / "p.txt"))
    assert r.returncode != 0 and "has 2 sentences" in r.stderr and "p.txt has 1" in r.stderr


def test_summarize_gives_mean_and_sample_std_over_runs(tmp_path):
    for i, f1 in enumerate([0.85, 0.87, 0.89]):
        (tmp_path / f"s{i}").mkdir()
        (tmp_path / f"s{i}" / "metrics.json").write_text(json.dumps(
            {"test": {"f1": f1}, "dev": {"f1": 0.9}, "train_seconds": 100.0 + i, "train_tokens_per_s": 2000.0}))
    r = run_cli("--summarize", *(str(tmp_path / f"s{i}") for i in range(3)))
    assert r.returncode == 0, r.stderr
    assert "3 runs: test F1 87.00 ± 2.00, dev F1 90.00 ± 0.00, training s 101.00 ± 1.00" in r.stdout
    assert "85.00, 87.00, 89.00" in r.stdout


def assert_same_as_sklearn(gold, pred, labels=None):
    ours = classification_scores(gold, pred, labels)
    names = sorted(set(gold) | set(pred)) if labels is None else labels
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(gold, pred), abs=1e-12)
    assert ours["macro_f1"] == pytest.approx(skm.f1_score(gold, pred, labels=labels, average="macro", zero_division=0),
                                             abs=1e-12)
    p, r, f, support = skm.precision_recall_fscore_support(gold, pred, labels=names, zero_division=0)
    assert list(ours["per_class"]) == names
    for i, name in enumerate(names):
        s = ours["per_class"][name]
        assert (s["precision"], s["recall"], s["f1"]) == pytest.approx((p[i], r[i], f[i]), abs=1e-12), name
        assert s["support"] == support[i], name
    assert ours["confusion"] == {"labels": names, "matrix": skm.confusion_matrix(gold, pred, labels=labels).tolist()}


@pytest.mark.filterwarnings("ignore:A single label was found")  # sklearn notes one-label cases; they are meant
def test_thousands_of_random_classifications_match_sklearn():
    rng = random.Random(2)
    for case in range(2000):
        names = rng.sample(["business", "entertainment", "politics", "sport", "tech", "world"], rng.randint(2, 6))
        gold_names = rng.sample(names, rng.randint(1, len(names)))  # some labels only ever predicted,
        pred_names = rng.sample(names, rng.randint(1, len(names)))  # some never predicted
        gold = [rng.choice(gold_names) for _ in range(rng.randint(1, 40))]
        right = rng.random()
        pred = [g if g in pred_names and rng.random() < right else rng.choice(pred_names) for g in gold]
        # every third case also names the labels, the same way scikit-learn takes them: all of them, in another order
        assert_same_as_sklearn(gold, pred, rng.sample(names, len(names)) if case % 3 == 0 else None)


def test_classification_edge_cases():
    s = classification_scores(["a", "a"], ["b", "b"])
    assert (s["accuracy"], s["macro_f1"]) == (0.0, 0.0)
    assert s["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert s["confusion"] == {"labels": ["a", "b"], "matrix": [[0, 2], [0, 0]]}
    assert classification_scores(["x"], ["x"])["macro_f1"] == 1.0
    with pytest.raises(ValueError, match="2 gold labels but 1 predicted"):
        classification_scores(["a", "b"], ["a"])


def write_jsonl_lines(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_cli_classification_over_two_jsonl_files(tmp_path):
    gold = [{"id": i, "text": t, "label": lab} for i, (t, lab) in
            enumerate([("Shares rose", "business"), ("Cup final", "sport"), ("New phone", "tech"),
                       ("Rates held", "business")])]
    pred = [dict(g, label=lab) for g, lab in zip(gold, ["business", "sport", "business", "tech"])]
    write_jsonl_lines(tmp_path / "g.jsonl", gold)
    # no id: texts checked
    write_jsonl_lines(tmp_path / "p.jsonl", [{"text": p["text"], "guess": p["label"]} for p in pred])
    r = run_cli("--gold", str(tmp_path / "g.jsonl"), "--pred", str(tmp_path / "p.jsonl"), "--pred_field", "guess",
                "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out == json.loads(json.dumps(classification_scores([g["label"] for g in gold], [p["label"] for p in pred])))
    assert out["accuracy"] == 0.5 and out["macro_f1"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert out["confusion"] == {"labels": ["business", "sport", "tech"], "matrix": [[1, 0, 1], [0, 1, 0], [1, 0, 0]]}
    text = run_cli("--gold", str(tmp_path / "g.jsonl"), "--pred", str(tmp_path / "p.jsonl"),
                   "--pred_field", "guess").stdout
    assert "macro avg" in text and "50.00" in text and "confusion matrix" in text


def test_cli_refuses_jsonl_files_over_different_texts(tmp_path):
    gold = [{"id": "a", "text": "one", "label": "x"}, {"id": "b", "text": "two", "label": "y"}]
    write_jsonl_lines(tmp_path / "g.jsonl", gold)
    write_jsonl_lines(tmp_path / "p.jsonl", [gold[0], dict(gold[1], text="TWO")])
    r = run_cli("--gold", str(tmp_path / "g.jsonl"), "--pred", str(tmp_path / "p.jsonl"))
    assert r.returncode != 0 and r.stderr.startswith("error: ") and "g.jsonl:2 and" in r.stderr and \
        "p.jsonl:2: different texts" in r.stderr
    write_jsonl_lines(tmp_path / "p.jsonl", [gold[1], gold[0]])
    r = run_cli("--gold", str(tmp_path / "g.jsonl"), "--pred", str(tmp_path / "p.jsonl"))
    assert r.returncode != 0 and "g.jsonl:1 and" in r.stderr and "different ids ('a' and 'b')" in r.stderr
    write_jsonl_lines(tmp_path / "p.jsonl", gold[:1])
    r = run_cli("--gold", str(tmp_path / "g.jsonl"), "--pred", str(tmp_path / "p.jsonl"))
    assert r.returncode != 0 and "g.jsonl has 2 records" in r.stderr and "p.jsonl has 1" in r.stderr
    write_jsonl_lines(tmp_path / "p.jsonl", [gold[0], {"id": "b", "text": "two"}])
    r = run_cli("--gold", str(tmp_path / "g.jsonl"), "--pred", str(tmp_path / "p.jsonl"))
    assert r.returncode != 0 and "p.jsonl:2: field 'label' is 'missing'" in r.stderr
    (tmp_path / "p.jsonl").write_text('{"id": "a", "text": "one", "label": "x"}\nnot json\n')
    r = run_cli("--gold", str(tmp_path / "g.jsonl"), "--pred", str(tmp_path / "p.jsonl"))
    assert r.returncode != 0 and "p.jsonl:2: expected a JSON object" in r.stderr and "Traceback" not in r.stderr


def test_summarize_classification_runs(tmp_path):
    for i, (acc, f1) in enumerate([(0.95, 0.94), (0.96, 0.95), (0.97, 0.96)]):
        (tmp_path / f"s{i}").mkdir()
        (tmp_path / f"s{i}" / "metrics.json").write_text(json.dumps(
            {"task": "classify", "test": {"accuracy": acc, "macro_f1": f1}, "dev": {"accuracy": 0.9, "macro_f1": 0.8},
             "train_seconds": 10.0 + i}))
    r = run_cli("--summarize", *(str(tmp_path / f"s{i}") for i in range(3)))
    assert r.returncode == 0, r.stderr
    assert ("3 runs: test accuracy 96.00 ± 1.00, test macro-F1 95.00 ± 1.00, dev accuracy 90.00 ± 0.00, "
            "dev macro-F1 80.00 ± 0.00, training s 11.00 ± 1.00\n") in r.stdout
    assert "95.00 / 94.00, 96.00 / 95.00, 97.00 / 96.00" in r.stdout
    (tmp_path / "ner").mkdir()
    (tmp_path / "ner" / "metrics.json").write_text(json.dumps({"test": {"f1": 0.8}, "dev": {"f1": 0.8}}))
    r = run_cli("--summarize", str(tmp_path / "s0"), str(tmp_path / "ner"))
    assert r.returncode != 0 and "different tasks (classify, ner)" in r.stderr


def test_summarize_against_gives_paired_differences(tmp_path):
    for name, f1s in (("kd", [0.80, 0.83, 0.81]), ("gold", [0.78, 0.80, 0.82])):
        for i, f1 in enumerate(f1s):
            (tmp_path / f"{name}{i}").mkdir()
            (tmp_path / f"{name}{i}" / "metrics.json").write_text(json.dumps(
                {"test": {"f1": f1}, "dev": {"f1": 0.9}, "train_seconds": 1.0, "train_tokens_per_s": 1.0}))
    r = run_cli("--summarize", *(str(tmp_path / f"kd{i}") for i in range(3)),
                "--against", *(str(tmp_path / f"gold{i}") for i in range(3)))
    assert r.returncode == 0, r.stderr
    assert "paired difference +1.33 ± 2.08 (2/3 better): +2.00, +3.00, -1.00" in r.stdout
    r = run_cli("--summarize", str(tmp_path / "kd0"), "--against", str(tmp_path / "gold0"), str(tmp_path / "gold1"))
    assert r.returncode != 0 and "pair them one to one" in r.stderr and "Traceback" not in r.stderr


def test_versus_sorts_each_gold_entity_one_prediction_gets_and_the_other_does_not(tmp_path, capsys):
    import eval as E
    words = [["Walesa", "met", "Lech", "Walesa", "in", "Gdansk"], ["JAPAN", "GET", "LUCKY", "WIN"]]
    gold = [["B-PER", "O", "B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O", "O", "O"]]
    a = [["B-PER", "O", "B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O", "O", "B-MISC"]]
    b = [["B-ORG", "O", "B-PER", "O", "O", "B-LOC"], ["O", "O", "O", "O"]]
    paths = {}
    for name, tags in (("gold", gold), ("a", a), ("b", b)):
        paths[name] = tmp_path / f"{name}.conll"
        paths[name].write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in zip(ws, ts))
                                           for ws, ts in zip(words, tags)) + "\n")
    E.main(["--gold", str(paths["gold"]), "--pred", str(paths["a"]), "--versus", str(paths["b"]),
            "--out", str(tmp_path / "v.json")])
    v = json.loads((tmp_path / "v.json").read_text())
    # a gets Walesa (b: ORG), Lech Walesa (b: a shorter span) and JAPAN (b: nothing); both get Gdansk
    assert v["gained"] == {"PER, typed ORG": 1, "PER, span": 1, "LOC, missed": 1} and v["lost"] == {}
    assert v["wrong entities"] == {"pred only": 1, "other only": 2}  # a's WIN; b's Walesa (ORG) and Lech
    assert v["examples"]["gained"][0] == {"sentence": "Walesa met Lech Walesa in Gdansk", "entity": "Walesa",
                                          "gold": "PER", "instead": "typed ORG"}
    assert v["record"]["command"].startswith("python eval.py --gold") and "--versus" in v["record"]["command"]
    assert "3 gold entities right in --pred, not in --versus" in capsys.readouterr().out
    swapped = E.versus(read_conll(str(paths["gold"])), read_conll(str(paths["b"])), read_conll(str(paths["a"])))
    assert sum(swapped["lost"].values()) == 3 and swapped["gained"] == {}
    with pytest.raises(SystemExit, match="--versus compares two NER prediction files"):
        E.main(["--gold", str(paths["gold"]), "--pred", str(paths["a"]), "--out", str(tmp_path / "w.json")])
