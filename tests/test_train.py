"""train.py in smoke mode: tiny data, a few steps, every strategy, and the equivalences the loop promises."""
import itertools
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from common import ROOT, write_tiny_conll
from cli import DataError
from data import read_conll, write_conll
from eval import get_entities, span_f1
from model import BertConfig, BertForTokenClassification, default_model_dir, load_tokenizer
from predict import bio_transitions, encode, sorted_batches, viterbi
from train import Config, get_lr, make_optimizer, train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """200 training, 60 dev and 60 test sentences of CoNLL-2003, and a noisy 'distilled' copy of 120 others."""
    d = tmp_path_factory.mktemp("tiny")
    train_s = write_tiny_conll(str(d), n_train=200, n_eval=60)
    rng = random.Random(0)
    noisy = [(w, [t if t == "O" or rng.random() < 0.7 else "O" for t in tags]) for w, tags in train_s[200:320]]
    write_conll(str(d / "distilled.txt"), [list(zip(w, t)) for w, t in noisy])
    return d


def smoke(tiny, out, **kw):
    defaults = dict(data_dir=str(tiny), out_dir=str(out), max_steps=4, batch_size=8, eval_batch_size=32, progress=0)
    return train(Config(**{**defaults, **kw}))


def test_long_sentences_are_windowed_and_every_word_is_kept():
    tok = load_tokenizer(default_model_dir())
    words = ["Blackburn", "said", "Mr.", "Schwarzenegger", "visited", "Johannesburg", "."] * 9
    tags = ["B-PER", "O", "O", "B-PER", "O", "B-LOC", "O"] * 9
    l2i = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3}
    ex = encode([(words, tags), (["Peter"], ["B-MISC"])], tok, l2i, max_len=16)
    windows = [e for e in ex if e["sent"] == 0]
    assert len(windows) > 1 and all(len(e["ids"]) <= 16 for e in ex)
    covered = [e["first_word"] + k for e in windows for k in range(len(e["starts"]))]
    assert covered == list(range(len(words)))  # each word in exactly one window, in order
    for e in windows:  # the first piece carries the label, the others and [CLS]/[SEP] carry -100
        firsts = [e["labels"][p] for p in e["starts"]]
        assert firsts == [l2i[tags[e["first_word"] + k]] for k in range(len(e["starts"]))]
        assert sum(l != -100 for l in e["labels"]) == len(e["starts"])
    assert ex[-1]["labels"][ex[-1]["starts"][0]] == -100  # a label unseen in training is never trained on


@pytest.mark.parametrize("batch_size,max_tokens", [(4, None), (128, 40), (3, 40), (128, 5)])
def test_sorted_batches_cover_every_example_once_within_both_limits(batch_size, max_tokens):
    rng = random.Random(batch_size)
    examples = [{"ids": [0] * rng.randint(1, 30)} for _ in range(200)]
    batches = sorted_batches(examples, batch_size, max_tokens)
    assert sorted(i for b in batches for i in b) == list(range(200))
    lengths = [len(examples[i]["ids"]) for b in batches for i in b]
    assert lengths == sorted(lengths)  # shortest first
    for b in batches:
        longest = max(len(examples[i]["ids"]) for i in b)
        assert len(b) <= batch_size and (max_tokens is None or len(b) == 1 or len(b) * longest <= max_tokens)
    if max_tokens:  # a batch stops only when the next example would not fit
        for b, nxt in zip(batches, batches[1:]):
            assert len(b) == batch_size or (len(b) + 1) * len(examples[nxt[0]]["ids"]) > max_tokens


LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def is_valid_bio(tags):
    return get_entities(tags) == get_entities(tags, strict=True)  # no I-X that fails to continue an X


def test_viterbi_finds_the_best_valid_sequence_by_brute_force():
    rng = np.random.default_rng(0)
    allowed = bio_transitions(LABELS)
    valid = {n: [seq for seq in itertools.product(range(5), repeat=n) if is_valid_bio([LABELS[i] for i in seq])]
             for n in range(1, 5)}
    for _ in range(300):
        n = int(rng.integers(1, 5))
        lp = np.log(rng.dirichlet(np.ones(5), size=n))
        best = max(valid[n], key=lambda seq: sum(lp[k, i] for k, i in enumerate(seq)))
        assert tuple(viterbi(lp, allowed)) == best


def test_viterbi_keeps_a_valid_argmax_and_repairs_an_invalid_one():
    allowed = bio_transitions(LABELS)
    lp = np.log(np.array([[0.1, 0.7, 0.1, 0.05, 0.05], [0.1, 0.1, 0.6, 0.1, 0.1], [0.8, 0.05, 0.05, 0.05, 0.05]]))
    assert viterbi(lp, allowed) == list(lp.argmax(-1))  # B-LOC I-LOC O is already valid
    # B-LOC I-LOC 0.21 > O O 0.12
    lp = np.log(np.array([[0.6, 0.3, 0.02, 0.03, 0.05], [0.2, 0.05, 0.7, 0.0001, 0.0499]]))
    assert [LABELS[i] for i in viterbi(lp, allowed)] == ["B-LOC", "I-LOC"]  # argmax O I-LOC is not valid BIO


def test_lr_warms_up_then_decays_linearly_to_zero():
    cfg = Config(lr=1e-3, warmup=0.1)
    lrs = [get_lr(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[10] == pytest.approx(1e-3) and lrs[55] == pytest.approx(5e-4) and lrs[99] == pytest.approx(1e-3 / 90)
    assert get_lr(0, 100, Config(lr=1e-3, warmup=0.0)) == pytest.approx(1e-3)


@pytest.mark.slow
def test_default_run_writes_its_outputs_and_is_deterministic(tiny, tmp_path):
    m1 = smoke(tiny, tmp_path / "a", seed=3)
    m2 = smoke(tiny, tmp_path / "b", seed=3)
    assert m1["dev"] == m2["dev"] and m1["test"] == m2["test"]
    on_disk = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert set(on_disk["test"]) == {"precision", "recall", "f1", "per_type"} and on_disk["train_tokens_per_s"] > 0
    assert on_disk["strategy"] == "original" and on_disk["realised_d_share"] == 0.0
    assert 0.0 <= on_disk["test_f1_argmax"] <= 1.0 and on_disk["wall_seconds"] > on_disk["train_seconds"]
    rows = read_conll(str(tmp_path / "a" / "test_predictions.conll"))
    gold = read_conll(str(tiny / "test.txt"))
    assert [w for w, _ in rows] == [w for w, _ in gold]  # every test word got a prediction
    assert read_conll(str(tmp_path / "a" / "test_predictions.conll"), column=1) == gold
    assert span_f1([t for _, t in gold], [t for _, t in rows]) == on_disk["test"]  # the file is what was scored
    import transformers
    hf = transformers.AutoModelForTokenClassification.from_pretrained(str(tmp_path / "a" / "model"))
    assert hf.config.num_labels == 9


@pytest.mark.slow
@pytest.mark.parametrize("strategy, schedule", [("distilled", ""), ("union", ""), ("seq-d-o", ""), ("seq-o-d", ""),
                                                ("schedule", "sigmoid"), ("schedule", "power")])
def test_every_strategy_runs(tiny, tmp_path, strategy, schedule):
    m = smoke(tiny, tmp_path, distilled=str(tiny / "distilled.txt"), strategy=strategy, schedule=schedule,
              max_steps=6, batch_size=4)
    share = m["realised_d_share_per_step"]
    assert len(share) == 6 and m["strategy"] == strategy
    if strategy == "distilled":
        assert share == [1.0] * 6
    if strategy == "seq-d-o":  # D first: 120 of 320 windows -> the switch is at t = 0.375, after step 2
        assert share[:3] == [1.0] * 3 and share[3:] == [0.0] * 3
    if strategy == "seq-o-d":
        assert share[:4] == [0.0] * 4 and share[4:] == [1.0] * 2
    if schedule:
        assert m["schedule"].startswith(schedule)


def test_distilled_data_with_strategy_original_is_refused(tiny, tmp_path):
    with pytest.raises(SystemExit, match="choose a strategy"):
        smoke(tiny, tmp_path, distilled=str(tiny / "distilled.txt"))


def final_weights(folder):
    return load_file(os.path.join(folder, "model", "model.safetensors"))


def assert_same_run(a, b, atol=1e-4):
    """Adam turns float noise in near-zero gradients into ~1e-5 differences after a few steps at lr 1e-3;
    a real mistake (another weighting of the words, a lost micro-batch) moves weights by ~lr."""
    assert_same_weights(final_weights(a), final_weights(b), atol)
    loss = [json.loads((f / "metrics.json").read_text())["history"][-1]["loss"] for f in (a, b)]
    assert loss[0] == pytest.approx(loss[1], rel=1e-5)  # Adam hides a wrong loss scale; the loss does not


def assert_same_weights(a, b, atol):
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < atol, worst


EXACT = dict(max_steps=3, batch_size=8, dropout=0.0, bf16=0, seed=5, lr=1e-3)  # no dropout: ranks draw it apart


@pytest.mark.slow
def test_gradient_accumulation_equals_one_big_batch(tiny, tmp_path):
    smoke(tiny, tmp_path / "one", **EXACT)
    smoke(tiny, tmp_path / "acc", grad_accum=4, **EXACT)
    assert_same_run(tmp_path / "one", tmp_path / "acc")


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_process(tiny, tmp_path):
    smoke(tiny, tmp_path / "single", **EXACT)
    args = [f"--{k}={v}"
            for k, v in dict(data_dir=tiny, out_dir=tmp_path / "ddp", eval_batch_size=32, progress=0, **EXACT).items()]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        os.path.join(ROOT, "train.py"), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 process(es)" in r.stdout and r.stdout.count("test F1") == 1  # only rank 0 prints
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["world_size"] == 2
    assert_same_run(tmp_path / "single", tmp_path / "ddp")


def test_fused_adamw_takes_the_same_steps_as_plain_adamw():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=16, id2label={0: "O", 1: "B-X", 2: "I-X"},
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    models = [BertForTokenClassification(cfg) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    start = models[0].classifier.weight.detach().clone()
    opts = [make_optimizer(m, Config(fused_adamw=f, lr=1e-2)) for m, f in zip(models, (1, 0))]
    ids, mask = torch.randint(0, 50, (4, 10)), torch.ones(4, 10, dtype=torch.long)
    for _ in range(5):
        for m, opt in zip(models, opts):
            m(ids, mask)[0].square().mean().backward()
            opt.step()
            opt.zero_grad()
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert (models[0].classifier.weight - start).abs().max() > 1e-2  # the steps did move the weights


@pytest.mark.slow
def test_fixed_labels_keep_the_head_when_a_model_goes_on_training_on_data_lacking_labels(tiny, tmp_path):
    """--labels: a model trained on data with every label goes on training on data with PER alone, and keeps its
    head (same labels, same order); a label the list lacks is refused, naming it."""
    from data import labels_from
    from model import from_pretrained
    full = labels_from(read_conll(str(tiny / "train.txt")))
    first = smoke(tiny, tmp_path / "a", labels=",".join(full))
    per_only = [(w, [t if t.endswith("PER") else "O" for t in tags])
                for w, tags in read_conll(str(tiny / "train.txt"))[:20]]
    write_conll(str(tmp_path / "per.txt"), [list(zip(w, t)) for w, t in per_only])
    smoke(tiny, tmp_path / "b", original=str(tmp_path / "per.txt"), model_dir=str(tmp_path / "a" / "model"),
          labels=",".join(full))
    before, after = (from_pretrained(str(tmp_path / d / "model"), verbose=False) for d in "ab")
    assert after.config.id2label == dict(enumerate(full)) == before.config.id2label
    assert first["config"]["labels"] == ",".join(full)
    # the head was carried over, then trained: close to the first model's, not a fresh random one
    drift = (after.classifier.weight - before.classifier.weight).abs().max().item()
    assert 0 < drift < 0.05
    with pytest.raises(DataError, match="the training data has labels it lacks: B-LOC"):
        smoke(tiny, tmp_path / "c", labels="O,B-PER,I-PER,B-ORG,I-ORG,B-MISC,I-MISC")


def test_llm_labels_alone_dev_from_a_seeded_share_and_no_test_file(tmp_path, capsys):
    """A folder of training data alone (an LLM's labels, say): --dev_share takes dev from it, seeded, and the run
    ends without a test score; without --dev_share the missing valid file is refused in one line."""
    write_tiny_conll(tmp_path, 40, 0)
    os.remove(tmp_path / "valid.txt")
    os.remove(tmp_path / "test.txt")
    base = dict(data_dir=str(tmp_path), max_steps=2, batch_size=8, progress=0, eval_every=2)
    with pytest.raises(DataError, match=r"valid.txt: no such file .*--dev_share"):
        train(Config(**base, out_dir=str(tmp_path / "none")))
    m = train(Config(**base, dev_share=0.25, out_dir=str(tmp_path / "share")))
    assert m["test"] is None and "seeded 0.25 of the training data" in m["dev_source"]
    out = capsys.readouterr().out
    assert "dev: a seeded 0.25 of the training data (10)" in out and "no test file" in out
    assert not (tmp_path / "share" / "test_predictions.conll").exists()
    with pytest.raises(SystemExit, match="--dev_share 1: expected a share"):
        train(Config(**base, dev_share=1.0, out_dir=str(tmp_path / "all")))
