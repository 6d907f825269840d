"""Our BERT against transformers' BertForTokenClassification and BertForSequenceClassification, from the same folders;
students built from a bigger BERT."""
import os
import shutil

import pytest
import torch
import transformers

from model import (BertConfig, BertForSequenceClassification, BertForTokenClassification, count_parameters,
                   default_model_dir, linear_weights_as, from_pretrained, load_tokenizer, save_pretrained)
from student import make_student

LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def batch(vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(min(1000, vocab // 2), vocab, (4, 23), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0  # padded rows: their real positions must not see the padding
    mask[3, 4:] = 0
    return ids, mask


def hf_logits(folder, ids, mask):
    hf = transformers.AutoModelForTokenClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return hf(input_ids=ids, attention_mask=mask).logits


def our_logits(model, ids, mask):
    model.eval()
    with torch.no_grad():
        return model(ids, mask)[0]


def assert_close(a, b, mask):
    real = mask.bool()  # logits at padded positions are meaningless on both sides
    assert (a[real] - b[real]).abs().max().item() < 1e-4


@pytest.fixture(scope="module")
def minilm_with_head(tmp_path_factory):
    """The default MiniLM weights with a random 5-label head, saved by us."""
    torch.manual_seed(0)
    model = from_pretrained(default_model_dir(), id2label=LABELS, verbose=False)
    folder = str(tmp_path_factory.mktemp("minilm"))
    save_pretrained(model, folder, default_model_dir())
    return model, folder


def test_minilm_logits_equal_transformers_and_our_folder_reloads_there(minilm_with_head):
    model, folder = minilm_with_head
    ids, mask = batch(30522)
    ours = our_logits(model, ids, mask)
    assert_close(ours, hf_logits(folder, ids, mask), mask)
    hf_cfg = transformers.AutoConfig.from_pretrained(folder)
    assert hf_cfg.id2label == LABELS and hf_cfg.label2id == {v: k for k, v in LABELS.items()}
    for name in ("tokenizer.json", "vocab.txt"):
        assert os.path.exists(os.path.join(folder, name))
    again = from_pretrained(folder, verbose=False)  # our own folder reloads with its head
    assert_close(our_logits(again, ids, mask), ours, mask)


def test_minilm_backbone_equals_transformers_loaded_from_the_original_folder():
    torch.manual_seed(1)
    ours = from_pretrained(default_model_dir(), id2label=LABELS, verbose=False).eval()
    hf = transformers.BertModel.from_pretrained(default_model_dir(), add_pooling_layer=False).eval()
    ids, mask = batch(30522, seed=1)
    with torch.no_grad():
        a = ours.bert(ids, mask)
        b = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    assert_close(a, b, mask)


def small_hf_folder(tmp_path, as_bin_with_gamma_beta=False):
    cfg = transformers.BertConfig(vocab_size=1200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=96, max_position_embeddings=64, id2label=LABELS,
                                  label2id={v: k for k, v in LABELS.items()})
    torch.manual_seed(2)
    hf = transformers.BertForTokenClassification(cfg).eval()
    for p in hf.parameters():  # random values everywhere, not only the default init
        torch.nn.init.normal_(p, std=0.2)
    folder = str(tmp_path / "small")
    hf.save_pretrained(folder)
    if as_bin_with_gamma_beta:
        sd = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
              for k, v in hf.state_dict().items()}
        os.remove(os.path.join(folder, "model.safetensors"))
        torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
    return hf, folder


@pytest.mark.parametrize("as_bin", [False, True], ids=["safetensors", "bin-gamma-beta"])
def test_small_random_config_from_transformers(tmp_path, as_bin):
    hf, folder = small_hf_folder(tmp_path, as_bin)
    ours = from_pretrained(folder, verbose=False)
    assert ours.config.id2label == LABELS and ours.config.hidden_size == 64
    ids, mask = batch(1200)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits
    assert_close(our_logits(ours, ids, mask), ref, mask)
    # and what we save from it loads back into transformers with the same logits
    save_pretrained(ours, str(tmp_path / "ours"))
    assert_close(hf_logits(str(tmp_path / "ours"), ids, mask), ref, mask)


def test_loading_reports_ignored_keys_and_refuses_bad_shapes(tmp_path, capsys):
    _, folder = small_hf_folder(tmp_path)
    from_pretrained(folder, id2label={0: "O", 1: "B-X", 2: "I-X"})  # other labels: the head is fresh
    out = capsys.readouterr().out
    assert "classifier freshly initialised" in out and "classifier.weight" in out
    cfg_path = os.path.join(folder, "config.json")
    text = open(cfg_path).read()
    with open(cfg_path, "w") as f:
        f.write(text.replace('"intermediate_size": 96', '"intermediate_size": 128'))
    with pytest.raises(ValueError, match=r"intermediate\.dense\.(weight|bias) has shape"):
        from_pretrained(folder, verbose=False)


def test_missing_weights_are_refused(tmp_path):
    hf, folder = small_hf_folder(tmp_path, as_bin_with_gamma_beta=True)
    sd = torch.load(os.path.join(folder, "pytorch_model.bin"))
    del sd["bert.encoder.layer.1.output.dense.weight"]
    torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
    with pytest.raises(ValueError, match="layer.1.output.dense.weight"):
        from_pretrained(folder, verbose=False)


def test_step_by_step_attention_equals_fused_attention():
    torch.manual_seed(3)
    cfg = BertConfig(vocab_size=500, hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=64,
                     id2label=LABELS)
    fused = BertForTokenClassification(cfg)
    plain = BertForTokenClassification(BertConfig(**{**cfg.__dict__, "sdpa": False}))
    plain.load_state_dict(fused.state_dict())
    ids, mask = batch(500)
    assert_close(our_logits(fused, ids, mask), our_logits(plain, ids, mask), mask)


def test_linear_weights_cast_once_give_autocasts_logits_exactly_and_come_back():
    torch.manual_seed(4)
    cfg = BertConfig(vocab_size=500, hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=64,
                     id2label=LABELS)
    model = BertForTokenClassification(cfg).eval()
    ids, mask = batch(500)
    before = {n: (p, p.data_ptr()) for n, p in model.named_parameters()}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(ids, mask)[0]
        with linear_weights_as(model, torch.bfloat16):
            assert model.bert.encoder.layer[0].attention.self.query.weight.dtype == torch.bfloat16
            assert model.bert.embeddings.LayerNorm.weight.dtype == torch.float32  # only the Linear layers
            got = model(ids, mask)[0]
    assert torch.equal(got, expected)  # autocast makes the same cast at every call
    for n, p in model.named_parameters():  # the same Parameter objects, holding their fp32 storage again
        assert before[n][0] is p and before[n][1] == p.data_ptr() and p.dtype == torch.float32


def test_vocab_txt_tokenizer_equals_tokenizer_json(tmp_path):
    src = default_model_dir()
    shutil.copy(os.path.join(src, "vocab.txt"), tmp_path)
    shutil.copy(os.path.join(src, "tokenizer_config.json"), tmp_path)
    words = ["EU", "rejects", "German", "call", "Blackburn", "1996-08-22", "Müller", "S.Korea"]
    a = load_tokenizer(src).encode(words, is_pretokenized=True, add_special_tokens=False)
    b = load_tokenizer(str(tmp_path)).encode(words, is_pretokenized=True, add_special_tokens=False)
    assert a.ids == b.ids and a.word_ids == b.word_ids
    assert len(load_tokenizer(src).encode(["x"] * 600, is_pretokenized=True).ids) >= 600  # never truncated


CLASSES = {0: "business", 1: "politics", 2: "sport"}


def test_sequence_classifier_equals_transformers_and_fills_the_pooler(tmp_path, capsys):
    torch.manual_seed(4)
    ours = from_pretrained(default_model_dir(), id2label=CLASSES, head="sequence")
    assert "pooler from checkpoint" in capsys.readouterr().out  # MiniLM's pooler is used, not ignored
    folder = str(tmp_path / "seq")
    save_pretrained(ours, folder, default_model_dir())
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    ids, mask = batch(30522, seed=4)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits
    got = our_logits(ours, ids, mask)
    assert got.shape == (4, 3) and (got - ref).abs().max().item() < 1e-4
    again = from_pretrained(folder, verbose=False)  # the folder says it is a sequence classifier
    assert isinstance(again, BertForSequenceClassification) and again.config.id2label == CLASSES
    assert (our_logits(again, ids, mask) - got).abs().max().item() < 1e-4


def test_a_sequence_head_on_a_folder_without_pooler_starts_fresh(tmp_path, capsys):
    _, folder = small_hf_folder(tmp_path)  # a token classifier: no pooler weights
    model = from_pretrained(folder, id2label=CLASSES, head="sequence")
    assert "pooler freshly initialised" in capsys.readouterr().out and model.bert.pooler is not None


@pytest.mark.parametrize("head", ["token", "sequence"])
def test_students_have_the_promised_sizes_and_load_in_transformers(tmp_path, head):
    teacher = from_pretrained(default_model_dir(), id2label=CLASSES, head=head, verbose=False)
    _, teacher_encoder = count_parameters(teacher)
    assert round(teacher_encoder / 1e6, 1) == 10.6  # MiniLM-L6-H384 without its embedding tables
    sizes = {}
    for spec in ("L3-H384", "L1-H384", "L2-H192"):
        student = make_student(teacher, spec)
        sizes[spec] = count_parameters(student)[1]
        folder = str(tmp_path / spec)
        save_pretrained(student, folder)
        auto = (transformers.AutoModelForTokenClassification if head == "token"
                else transformers.AutoModelForSequenceClassification)
        hf = auto.from_pretrained(folder).eval()
        ids, mask = batch(30522, seed=5)
        with torch.no_grad():
            ref = hf(input_ids=ids, attention_mask=mask).logits
        diff = our_logits(student, ids, mask) - ref
        # padded positions mean nothing
        assert (diff[mask.bool()] if head == "token" else diff).abs().max().item() < 1e-4
    assert teacher_encoder / sizes["L2-H192"] >= 10 and 1 < teacher_encoder / sizes["L3-H384"] < 10


def test_a_student_of_the_same_width_copies_the_bottom_layers():
    teacher = from_pretrained(default_model_dir(), id2label=LABELS, verbose=False)
    student = make_student(teacher, "L2-H384")
    t, s = teacher.state_dict(), student.state_dict()
    assert set(s) == {k for k in t if not k.startswith(("bert.encoder.layer.2.", "bert.encoder.layer.3.",
                                                        "bert.encoder.layer.4.", "bert.encoder.layer.5."))}
    assert all(torch.equal(s[k], t[k]) for k in s)
    ids, mask = batch(30522, seed=6)
    teacher.eval(), student.eval()
    with torch.no_grad():  # the student is the teacher cut after its second layer
        a = student.bert(ids, mask)
        x = teacher.bert.embeddings(ids, torch.zeros_like(ids))
        for layer in teacher.bert.encoder.layer[:2]:
            x = layer(x, mask.bool()[:, None, None, :])
    assert_close(a, x, mask)


def test_a_spread_student_copies_bottom_and_top_layers_records_them_and_loads_in_transformers(tmp_path):
    teacher = from_pretrained(default_model_dir(), id2label=LABELS, verbose=False)
    student = make_student(teacher, "L2-H384", layers="spread")
    assert student.config.teacher_layers == [0, 5]
    t, s = teacher.state_dict(), student.state_dict()
    for k in s:  # student layer 1 is teacher layer 5; everything else under its own name
        assert torch.equal(s[k], t[k.replace("encoder.layer.1.", "encoder.layer.5.")]), k
    folder = str(tmp_path / "spread")
    save_pretrained(student, folder)
    hf = transformers.AutoModelForTokenClassification.from_pretrained(folder)
    assert hf.config.teacher_layers == [0, 5]  # a plain field of config.json, kept and ignored
    ids, mask = batch(30522, seed=7)
    assert_close(our_logits(student, ids, mask), hf_logits(folder, ids, mask), mask)
    assert from_pretrained(folder, verbose=False).config.teacher_layers == [0, 5]
    assert make_student(teacher, "L2-H384").config.teacher_layers == [0, 1]
    assert make_student(teacher, "L2-H192", layers="spread").config.teacher_layers is None  # narrow: nothing copied


def test_a_narrow_student_projects_the_embeddings_by_truncated_svd():
    teacher = from_pretrained(default_model_dir(), id2label=LABELS, verbose=False)
    student = make_student(teacher, "L2-H192")
    E, W = teacher.bert.embeddings.word_embeddings.weight, student.bert.embeddings.word_embeddings.weight
    U, S, _ = torch.linalg.svd(E, full_matrices=False)
    # E V_h = U_h S_h up to the sign of each singular vector
    assert torch.allclose(W.abs(), (U[:, :192] * S[:192]).abs(), atol=1e-4)
    # the best rank-192 summary of E keeps most of it
    assert (S[:192] ** 2).sum() / (S ** 2).sum() > 0.6
    assert student.config.num_attention_heads == 6 and student.config.intermediate_size == 768
    random = make_student(teacher, "L2-H192", init="random")
    assert not torch.allclose(random.bert.embeddings.word_embeddings.weight.abs(), W.abs(), atol=1e-2)


@pytest.mark.parametrize("spec", ["L7-H384", "L2-H500", "L2-H100", "2x192", "L0-H384"])
def test_impossible_students_are_refused(spec):
    teacher = from_pretrained(default_model_dir(), id2label=LABELS, verbose=False)
    with pytest.raises(ValueError, match="student"):
        make_student(teacher, spec)
