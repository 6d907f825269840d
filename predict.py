"""
The one path from words to labels: word pieces, batches, the forward pass, decoding. train.py scores
its dev and test sets through it, and annotate.py, gendist.py, evokd.py and bench.py label through it,
so a model predicts here exactly what train.py scored for it. As a script it labels new data with a
trained model folder: BIO tags per word (a token classifier) or a label per text (a sequence
classifier); the folder says which. `--soft` adds the probability distributions that train.py learns
from as soft labels (a teacher's labels for a student).

    echo "Angela Merkel met Airbus in Toulouse." | python predict.py --model_dir out/default/model --format text
    python predict.py --model_dir out/context64/model --input data/conll2003/test.txt --context 64 --out runs/p.conll
    python predict.py --model_dir out/default/model --input data/conll2003/test.txt --out runs/pred.conll
    python predict.py --model_dir out/default/model --input data/conll2003/train.txt --soft --out runs/teacher.conll
    python predict.py --model_dir out/bbc/model --input runs/bbc/test.jsonl --soft --out runs/bbc_teacher.jsonl
    python predict.py --model_dir out/default/model --input data/conll2003/test.txt --runtime onnx --int8 1 >p.conll

Words to pieces (`encode`): the `tokenizers` package splits each word; the first piece of a word carries
its label, the other pieces and [CLS] / [SEP] carry -100. A sentence longer than max_len pieces is cut at
word boundaries into consecutive windows, each its own example, so no word is lost. A text
(`encode_texts`) keeps its first max_len - 2 pieces: a document says first what it is about.

Context (`--context N`, FLERT: Schweter & Akbik 2020): a sentence is read with up to N pieces of the sentences before
it and N of those after it in the same document, never across a document boundary (`-DOCSTART-` lines in CoNLL, blank
lines in text, an article in BBC; data.py, rawtext.py), as [CLS] left sentence right [SEP]. The context carries -100:
it is neither trained on nor scored, and no word's first piece is in it. It only fills the room the sentence leaves
in max_len (`context_pieces`): the sentence is never cut for it, and a sentence cut into windows (which fill them)
gets none, nor does a document of one sentence. N = 0 is the encoding without context, bit for bit. A model learns
with the N it is trained with (train.py --context), which train.py writes into its config.json; this script reads
with that N unless --context asks for another (a line on standard error then says so), and with it gives train.py's
predictions. Examples grow by up to 2N pieces, and batches are sorted by that length, so a
forward pass holds fewer sentences within --max_tokens.

Batches (`sorted_batches`): sorted by length, at most `batch_size` examples and `max_tokens` word pieces
(padding included), so short sentences go in big batches and long ones in small. The forward pass runs
under `inference`: eval mode, no autograd, bf16 where the hardware computes it natively (fp32 elsewhere).

Runtimes (`--runtime`): torch, the default, runs model.py's model as train.py scores it; onnx runs its export in
ONNX Runtime (serve.py; pip install onnx onnxruntime), fp32 or with --int8 1 int8, on the CPU. The first use
writes model.onnx (and model.int8.onnx) beside the weights and later uses reuse it while the weights and
config.json are unchanged (their hash is in the file); every step after the forward pass is this file's, so fp32
ONNX gives the tags of `--runtime torch --bf16 0`.

Decoding: a word's scores are its first piece's log-probabilities; `viterbi` (the default) picks the most
probable sequence among valid BIO ones (no I-X after O or after another type), `argmax` each word alone.

Input formats (`--format`; default conll for a token classifier, jsonl for a sequence classifier):
- text: raw text, cut into sentences and CoNLL-2003-style tokens by rawtext.py (as annotate.py cuts BBC
  articles), a blank line ending a document; a byte-order mark and invisible characters are dropped; for a
  sequence classifier each non-blank line is one text;
- conll: one token a line, the token in the first column; every column of the input is kept;
- jsonl: one object a line with the text in --text_field; every field is kept.
Output (`--out`, default standard output): for NER, CoNLL lines `<input columns> [distribution]
predicted` with the prediction always last, so `read_conll(out)` reads it and `read_conll(out,
with_probs=True)` the distributions (the soft-label column: `LABEL=p|LABEL=p|...`); for classification,
JSONL with "label" the prediction (an input "label" moves to "gold") and, with --soft, "probs". With --context,
the CoNLL output marks each document with a `-DOCSTART-` line. With both
scripts' default batch sizes the predictions are train.py's (in bf16 a near tie can flip with the padding
of the batch a sentence falls in).
"""
import json
import os
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from tqdm import tqdm

from cli import DataError, at_least, opt, parse_config, run_main
from data import BLANK_RE, conll_text, format_probs, jsonl_text, read_conll, read_jsonl, write_conll, write_jsonl
from model import BertForTokenClassification, check_model_dir, from_pretrained, linear_weights_as, load_tokenizer
from rawtext import read_text, split_documents
from serve import require_onnxruntime, serving_model

BATCH_SIZE, MAX_TOKENS = 128, 2048  # an inference batch: at most this many examples and word pieces, padding included


# ---------------------------------------------------------------------------------------------
# Words -> word pieces. The first piece of each word carries the word's label, the rest -100.

def soft_vector(dist, label2id):
    """A {label: probability} mapping as a vector over the model's labels (labels it lacks get 0)."""
    v = np.zeros(len(label2id), dtype=np.float32)
    for label, p in dist.items():
        if label in label2id:
            v[label2id[label]] = p
    return v / v.sum() if v.sum() > 0 else None


def encode(sentences, tokenizer, label2id, max_len, soft=None, context=0, docs=None, scored=None):
    """One example per window: a sentence whose pieces do not fit in max_len is cut into
    consecutive windows at word boundaries, so no word is lost from training or scoring.
    `soft`, if given, holds per sentence None or one {label: probability} per word.
    context > 0 and docs (each sentence's document id): a sentence that fits one window is read with up to `context`
    pieces of its document's sentences before it and as many after it (context_pieces), which carry -100.
    scored: the indices of the sentences that become examples (default: all); the others only lend context."""
    cls, sep, unk = (tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[UNK]"))
    room = max_len - 2
    encodings = tokenizer.encode_batch([words for words, _ in sentences], is_pretokenized=True,
                                       add_special_tokens=False)
    pieces_of = []
    for (words, _), enc in zip(sentences, encodings):
        pieces = [[] for _ in words]
        for piece, wi in zip(enc.ids, enc.word_ids):
            pieces[wi].append(piece)
        pieces_of.append([p[:room] or [unk] for p in pieces])  # a word the normaliser erases still gets a slot
    flat = [[p for word in pieces for p in word] for pieces in pieces_of] if context and docs is not None else None
    examples = []
    for si in range(len(sentences)) if scored is None else scored:
        (words, tags), pieces = sentences[si], pieces_of[si]
        dists = soft[si] if soft else None
        windows, start = [], 0
        while start < len(words):
            end, n = start, 0
            while end < len(words) and n + len(pieces[end]) <= room:
                n += len(pieces[end])
                end += 1
            windows.append((start, end, n))
            start = end
        for start, end, n in windows:
            # a sentence cut into windows already fills them: only a whole one takes context
            left, right = context_pieces(flat, docs, si, context, room - n) if flat and len(windows) == 1 else ([], [])
            ids, labels, starts = [cls] + left, [-100] * (1 + len(left)), []
            for wi in range(start, end):
                starts.append(len(ids))
                ids += pieces[wi]
                # a label the training data never had (in dev or test) is scored, never trained on
                labels += [label2id.get(tags[wi], -100)] + [-100] * (len(pieces[wi]) - 1)
            examples.append({"ids": ids + right + [sep], "labels": labels + [-100] * (len(right) + 1),
                             "starts": starts, "sent": si, "first_word": start,
                             "soft": [soft_vector(d, label2id) for d in dists[start:end]] if dists else None})
    return examples


def context_pieces(flat, docs, si, context, spare):
    """(left, right): the last pieces of the sentences before sentence si and the first of those after it, in its
    document only (docs[j] == docs[si], neighbours in list order), up to `context` each side (FLERT, Schweter &
    Akbik 2020: the same on both sides). They share the `spare` room of the window: each side gets at least half of
    it if it has that much, and what one side leaves unused goes to the other; the sentence is never cut for them."""
    def side(step):
        out, j = [], si + step
        while len(out) < context and 0 <= j < len(flat) and docs[j] == docs[si]:
            out = flat[j] + out if step < 0 else out + flat[j]
            j += step
        return out[len(out) - min(context, len(out)):] if step < 0 else out[:context]
    left, right = side(-1), side(1)
    k = min(len(left), max(spare // 2, spare - len(right)))
    r = min(len(right), spare - k)
    return left[len(left) - k:], right[:r]


def encode_texts(records, tokenizer, label2id, max_len):
    """One example per (text, label, probs) record: [CLS] + its first max_len - 2 pieces + [SEP]. The beginning
    is kept because a news article (like most documents) says what it is about first: title, then the lead."""
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    encodings = tokenizer.encode_batch([text for text, _, _ in records], add_special_tokens=False)
    return [{"ids": [cls] + enc.ids[:max_len - 2] + [sep], "label": label2id.get(label, -100),
             "soft": soft_vector(probs, label2id) if probs else None}
            for (text, label, probs), enc in zip(records, encodings)]


def collate(examples, device):
    """Padded ids, attention mask and labels: (B, T) per word piece, or (B,) for a label per text."""
    T = max(len(e["ids"]) for e in examples)
    ids = torch.zeros(len(examples), T, dtype=torch.long)
    mask = torch.zeros(len(examples), T, dtype=torch.long)
    per_text = "label" in examples[0]
    labels = torch.full((len(examples),) if per_text else (len(examples), T), -100, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["ids"])
        ids[i, :n], mask[i, :n] = torch.tensor(e["ids"]), 1
        if per_text:
            labels[i] = e["label"]
        else:
            labels[i, :n] = torch.tensor(e["labels"])
    return ids.to(device), mask.to(device), labels.to(device)


# ---------------------------------------------------------------------------------------------
# Batches and precision

def sorted_batches(examples, batch_size, max_tokens=None):
    """Batches of example indices, shortest first: similar lengths share a batch, so little is padding.
    With max_tokens a batch also stops before its padded size (sentences x the longest) would pass it,
    so short sentences go in big batches and long ones in small (a batch holds at least one)."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["ids"]))
    batches, batch = [], []
    for i in order:
        if batch and (len(batch) == batch_size
                      or max_tokens and (len(batch) + 1) * len(examples[i]["ids"]) > max_tokens):
            batches.append(batch)
            batch = []
        batch.append(i)
    return batches + [batch] if batch else batches


def bf16_supported(device):
    """Whether the hardware computes in bfloat16 natively: a CUDA GPU that says so, or a CPU with AVX-512 BF16 or
    AMX. Elsewhere bf16 matrix multiplies are emulated: measured 60x slower than fp32 on an AVX2 CPU."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def autocast(device, bf16):
    """bf16 autocast if asked for and native on this hardware; fp32 otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 and bf16_supported(device) else nullcontext()


@contextmanager
def inference(model, device, bf16=True):
    """What every evaluation and prediction runs under: eval mode, no autograd, bf16 autocast where it is native,
    and then the Linear weights cast to bf16 once for the whole pass (model.linear_weights_as); the model's mode
    (train or eval) as it was, after."""
    was_training = model.training
    model.eval()
    cast = bf16 and bf16_supported(device)
    try:
        with torch.inference_mode(), autocast(device, cast), \
                (linear_weights_as(model, torch.bfloat16) if cast else nullcontext()):
            yield
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------------------
# Decoding: the most probable valid BIO sequence

def bio_transitions(labels):
    """allowed[i, j]: may label j follow label i? I-X only continues B-X or I-X; a window may not start with I-X."""
    allowed = np.ones((len(labels), len(labels)), dtype=bool)
    for j, b in enumerate(labels):
        if b.startswith("I-"):
            allowed[:, j] = [a in (f"B-{b[2:]}", b) for a in labels]
    start = np.array([not l.startswith("I-") for l in labels])
    return allowed, start


def viterbi(logprobs, allowed):
    """The most probable label sequence among those that are valid BIO (per-word scores, hard constraints)."""
    allowed, start = allowed
    penalty = np.where(allowed, 0.0, -np.inf)  # (from, to)
    score = np.where(start, logprobs[0], -np.inf)
    back = []
    for lp in logprobs[1:]:
        cand = score[:, None] + penalty  # (from, to)
        back.append(cand.argmax(0))
        score = cand.max(0) + lp
    path = [int(score.argmax())]
    for b in reversed(back):
        path.append(int(b[path[-1]]))
    return path[::-1]


# ---------------------------------------------------------------------------------------------
# Words -> labels

def predict(model, sentences, examples, device, decodes=("viterbi",), with_probs=False, progress=False,
            batch_size=BATCH_SIZE, max_tokens=MAX_TOKENS, bf16=True):
    """Tags for every word of every sentence (examples: encode(sentences, ...)): one list of sentences per
    decoding in `decodes` (viterbi, argmax), all from one forward pass; with_probs adds each word's label
    distribution."""
    id2label = model.config.id2label
    allowed = bio_transitions([id2label[i] for i in range(len(id2label))])
    preds = {d: [["O"] * len(words) for words, _ in sentences] for d in decodes}
    probs = [[None] * len(words) for words, _ in sentences]
    with inference(model, device, bf16):
        for idx in tqdm(sorted_batches(examples, batch_size, max_tokens), disable=not progress, desc="predict",
                        leave=False):
            batch = [examples[i] for i in idx]
            ids, mask, _ = collate(batch, device)
            logprobs = model(ids, mask)[0].float().log_softmax(-1).cpu().numpy()  # (B, T, labels)
            for e, lp in zip(batch, logprobs):
                word_lp = lp[e["starts"]]  # (words, labels): a word's prediction is its first piece's
                for d in preds:  # each decoding once, even if named twice
                    best = viterbi(word_lp, allowed) if d == "viterbi" else word_lp.argmax(-1)
                    for k, label in enumerate(best):
                        preds[d][e["sent"]][e["first_word"] + k] = id2label[int(label)]
                if with_probs:
                    for k, p in enumerate(np.exp(word_lp)):
                        probs[e["sent"]][e["first_word"] + k] = p
    out = [preds[d] for d in decodes]
    return out + [probs] if with_probs else out


def predict_texts(model, examples, device, progress=False, batch_size=BATCH_SIZE, max_tokens=MAX_TOKENS, bf16=True):
    """The most probable label of every text (examples: encode_texts(...)), and its distribution over the labels
    (texts, C)."""
    probs = np.zeros((len(examples), model.config.num_labels), dtype=np.float32)
    with inference(model, device, bf16):
        for idx in tqdm(sorted_batches(examples, batch_size, max_tokens), disable=not progress, desc="predict",
                        leave=False):
            ids, mask, _ = collate([examples[i] for i in idx], device)
            probs[idx] = model(ids, mask)[0].float().softmax(-1).cpu().numpy()
    return [model.config.id2label[int(i)] for i in probs.argmax(-1)], probs


def sentence_embeddings(model, tokenizer, sentences, device, max_len=128):
    """One unit vector per sentence (a list of words): the mean of the encoder's last hidden states over
    its real word pieces ([CLS] and [SEP] included, padding not), as sentence-transformers pools MiniLM.
    A sentence longer than one window is embedded by its first window. Returns (sentences, H) float32."""
    examples = [e for e in encode([(words, ["O"] * len(words)) for words in sentences], tokenizer, {}, max_len)
                if e["first_word"] == 0]
    out = np.zeros((len(sentences), model.config.hidden_size), dtype=np.float32)
    with inference(model, device):
        for idx in sorted_batches(examples, BATCH_SIZE, MAX_TOKENS):
            ids, mask, _ = collate([examples[i] for i in idx], device)
            h = model.bert(ids, mask).float()  # (B, T, H)
            m = mask[..., None].float()
            out[[examples[i]["sent"] for i in idx]] = ((h * m).sum(1) / m.sum(1)).cpu().numpy()
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------------------------------
# A model folder labels rows of data (this script, annotate.py --labeller, gendist.py, evokd.py)

def label_tokens(model, tokenizer, rows, device, soft=False, progress=False, max_len=128, context=0, docs=None,
                 scored=None, **batching):
    """rows: sentences as lists of column lists, the token first. Returns them with [probs] and the prediction
    appended. context, docs, scored: encode's (the rows returned are the scored ones, in that order).
    batching: predict()'s decodes, batch_size, max_tokens, bf16."""
    sentences = [([cols[0] for cols in sent], ["O"] * len(sent)) for sent in rows]  # tags unused
    examples = encode(sentences, tokenizer, {}, max_len, context=context, docs=docs, scored=scored)
    preds, probs = predict(model, sentences, examples, device, with_probs=True, progress=progress, **batching)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return [[(*cols, *([format_probs(p, labels)] if soft else []), y)
             for cols, y, p in zip(rows[i], preds[i], probs[i])]
            for i in (range(len(rows)) if scored is None else scored)]


def label_texts(model, tokenizer, records, device, text_field="text", soft=False, progress=False, max_len=128,
                **batching):
    """records: dicts with the text in text_field. Returns copies with "label" (and "probs") set."""
    examples = encode_texts([(r[text_field], None, None) for r in records], tokenizer, {}, max_len)
    preds, probs = predict_texts(model, examples, device, progress=progress, **batching)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    out = []
    for r, pred, p in zip(records, preds, probs):
        r = dict(r)
        if "label" in r:
            r["gold"] = r.pop("label")
        r["label"] = pred
        if soft:
            r["probs"] = {label: round(float(x), 6) for label, x in zip(labels, p)}
        out.append(r)
    return out


def check_labeller(model_dir):
    """A --labeller folder (annotate.py, evokd.py) refused in one line, before any work, where from_pretrained
    could not load it (model.check_model_dir)."""
    try:
        check_model_dir(model_dir)
    except DataError as e:
        why = str(e).removeprefix(f"{model_dir}: ")
        raise DataError(f"--labeller {model_dir}: not a model folder: {why}; train one with train.py") from None


def reading_context(model_dir, asked):
    """The --context N the NER model in model_dir reads with: `asked`, or where it is None the N the model was
    trained with (the `context` train.py writes into its config.json; 0 where there is none). Asked for another N than
    it learnt with, it reads so, and a line on standard error says so: its predictions are then not train.py's."""
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        trained = json.load(f).get("context") or 0
    if asked is None:
        return trained
    if asked != trained:
        print(f"note: {model_dir} was trained with --context {trained}; it reads with --context {asked} here",
              file=sys.stderr)
    return asked


def tag_words(model_dir, sentences, max_len=128, progress=False, int8=False, runtime="torch", context=None, docs=None,
              scored=None):
    """A token classifier folder's BIO tags for sentences given as word lists, on the CPU (the labeller of
    annotate.py --labeller and evokd.py; int8 and runtime: as predict.py --int8 1 --runtime onnx tags them).
    context, docs, scored: encode's (the tags returned are the scored sentences'); context None: the model's own N
    (reading_context)."""
    if not sentences:
        return []
    model, tokenizer = from_pretrained(model_dir, verbose=False), load_tokenizer(model_dir)
    if not isinstance(model, BertForTokenClassification):
        raise DataError(f"{model_dir} is a sequence classifier; labelling words needs a token classifier (NER)")
    context = reading_context(model_dir, context)
    model = serving_model(model, model_dir, runtime, int8)
    rows = label_tokens(model, tokenizer, [[[w] for w in words] for words in sentences], torch.device("cpu"),
                        progress=progress, max_len=max_len, context=context, docs=docs, scored=scored,
                        bf16=not int8 and runtime == "torch")
    return [[row[-1] for row in sent] for sent in rows]


# ---------------------------------------------------------------------------------------------
# Command line

@dataclass
class Config:
    model_dir: str = opt(None, "a folder train.py wrote (out_dir/model), or any BERT classifier folder", type=str,
                         required=True)
    input: str = opt("-", "the file to label; - reads standard input")
    out: str = opt("-", "where to write the labelled copy; - writes standard output")
    format: str = opt(None, "input format; default conll (NER) or jsonl (classification)", type=str,
                      choices=["text", "conll", "jsonl"])
    soft: bool = opt(False, "also write each word's / text's distribution over the labels")
    text_field: str = opt("text", "jsonl: the field holding the text")
    decode: str = opt("viterbi", "NER: the best valid BIO sequence, or each word on its own",
                      choices=["viterbi", "argmax"])
    max_len: int = opt(128, "word pieces per window (NER) or per text ([CLS] and [SEP] included)", type=at_least(3))
    context: int = opt(None, "NER: read each sentence with up to N word pieces of its document's sentences before it "
                             "and N after it (documents: -DOCSTART- lines in CoNLL, blank lines in text); 0: alone. "
                             "Default (None): the N the model was trained with (train.py --context, kept in its "
                             "config.json; 0 for a model trained before it was kept)", type=at_least(0))
    batch_size: int = opt(BATCH_SIZE, "at most this many windows or texts per forward pass", type=at_least(1))
    max_tokens: int = opt(MAX_TOKENS, "and at most this many word pieces, padding included (train.py's --eval_tokens)",
                          type=at_least(1))
    bf16: int = opt(1, "bfloat16 autocast where the hardware computes it natively (fp32 elsewhere)", choices=[0, 1])
    int8: int = opt(0, "1: inference on the CPU with the Linear layers' weights in int8 (torch: PyTorch's dynamic "
                       "quantization, a scale per row; onnx: ONNX Runtime's)", choices=[0, 1])
    runtime: str = opt("torch", "torch: model.py's model | onnx: its ONNX export in ONNX Runtime, on the CPU, made "
                                "beside the weights on first use (pip install onnx onnxruntime)",
                       choices=["torch", "onnx"])
    device: str = opt("auto", "auto: cuda if available (the CPU with --int8 1)", choices=["auto", "cpu", "cuda"])
    progress: int = opt(1, "a tqdm bar on standard error for long inputs", choices=[0, 1])


def read_input(cfg, token_model):
    """NER: (sentences as lists of column lists, each one's document id); classification: (dicts holding the text
    in cfg.text_field, None)."""
    where = "standard input" if cfg.input == "-" else cfg.input
    if token_model:
        if cfg.format == "text":
            sentences, docs = split_documents(read_text(cfg.input))
            rows = [[[w] for w in sent] for sent in sentences]
        elif cfg.format == "conll":
            rows, docs = read_conll(cfg.input, columns=True, docs=True)
        else:
            raise DataError(f"{cfg.model_dir} is a token classifier (NER): use --format conll or text, "
                            f"not {cfg.format}")
        if not rows:
            raise DataError(f"{where}: no sentences")
        return rows, docs
    if cfg.context:
        raise DataError(f"{cfg.model_dir} is a sequence classifier: --context is for NER (a text is read whole)")
    if cfg.format == "text":
        records = [{cfg.text_field: line.strip()} for line in read_text(cfg.input).splitlines()
                   if not BLANK_RE.fullmatch(line)]
    elif cfg.format == "jsonl":
        records = read_jsonl(cfg.input)
        for i, r in enumerate(records, 1):
            if not isinstance(r.get(cfg.text_field), str):
                raise DataError(f"{where}: record {i} has no text in field {cfg.text_field!r}")
    else:
        raise DataError(f"{cfg.model_dir} is a sequence classifier: use --format jsonl or text, not {cfg.format}")
    if not records:
        raise DataError(f"{where}: no texts")
    return records, None


def main(argv=None):
    cfg = parse_config(Config, argv, description=__doc__.split("\n\n")[0])
    if cfg.int8 and cfg.device == "cuda":
        raise SystemExit("error: --int8 1 runs on the CPU (PyTorch's int8 kernels are CPU kernels): drop --device cuda")
    if cfg.runtime == "onnx" and cfg.device == "cuda":
        raise SystemExit("error: --runtime onnx runs on the CPU (ONNX Runtime's CPU provider): drop --device cuda")
    if cfg.runtime == "onnx":
        require_onnxruntime()  # before any work: one line saying what to install
    cpu_only = cfg.int8 or cfg.runtime == "onnx"
    gpu = cfg.device in ("auto", "cuda") and not cpu_only and torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    check_model_dir(cfg.model_dir)
    model = from_pretrained(cfg.model_dir, verbose=False).to(device)
    token_model = isinstance(model, BertForTokenClassification)
    model = serving_model(model, cfg.model_dir, cfg.runtime, bool(cfg.int8))
    tokenizer = load_tokenizer(cfg.model_dir)
    cfg.format = cfg.format or ("conll" if token_model else "jsonl")
    data, docs = read_input(cfg, token_model)
    progress = bool(cfg.progress) and len(data) >= 1000
    batching = dict(batch_size=cfg.batch_size, max_tokens=cfg.max_tokens, bf16=bool(cfg.bf16) and not cpu_only)
    if token_model:
        cfg.context = reading_context(cfg.model_dir, cfg.context)
        rows = label_tokens(model, tokenizer, data, device, soft=cfg.soft, progress=progress, max_len=cfg.max_len,
                            context=cfg.context, docs=docs, decodes=(cfg.decode,), **batching)
        # with context the documents shaped the labels: the labelled copy marks them (-DOCSTART-), so a model
        # trained on it with --context reads the same documents
        marks = docs if cfg.context else None
        text, write = partial(conll_text, docs=marks), partial(write_conll, docs=marks)
    else:
        rows = label_texts(model, tokenizer, data, device, text_field=cfg.text_field, soft=cfg.soft, progress=progress,
                           max_len=cfg.max_len, **batching)
        text, write = jsonl_text, write_jsonl
    if cfg.out == "-":
        sys.stdout.write(text(rows))
    else:
        write(cfg.out, rows)
        print(f"labelled {len(rows)} {'sentences' if token_model else 'texts'} -> {cfg.out}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
