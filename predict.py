"""
Label new data with a trained model folder: BIO tags per word (a token classifier) or a label per
text (a sequence classifier); the folder says which it is. `--soft` adds the probability
distributions that train.py learns from as soft labels (a teacher's labels for a student).

    echo "Angela Merkel met Airbus in Toulouse." | python predict.py --model_dir out/default/model --format text
    python predict.py --model_dir out/default/model --input data/conll2003/test.txt --out runs/pred.conll
    python predict.py --model_dir out/default/model --input data/conll2003/train.txt --soft --out runs/teacher.conll
    python predict.py --model_dir out/bbc/model --input runs/bbc/test.jsonl --soft --out runs/bbc_teacher.jsonl

Input formats (`--format`; default conll for a token classifier, jsonl for a sequence classifier):
- text: raw text, cut into sentences and CoNLL-2003-style tokens by data.py (as annotate.py cuts BBC
  articles); a byte-order mark and invisible characters are dropped; for a sequence classifier each
  non-blank line is one text;
- conll: one token a line, the token in the first column; every column of the input is kept;
- jsonl: one object a line with the text in --text_field; every field is kept.
Output (`--out`, default standard output): for NER, CoNLL lines `<input columns> [distribution]
predicted` with the prediction always last, so `read_conll(out)` reads it and `read_conll(out,
with_probs=True)` the distributions; for classification, JSONL with "label" the prediction (an input
"label" moves to "gold") and, with --soft, "probs". Windows, decoding (Viterbi over valid BIO by
default) and sorted bf16 batches are train.py's own (`encode`, `predict`, `predict_texts`), so a model
predicts here exactly what train.py scored for it (with both scripts' default batch sizes: in bf16 a
near tie can flip with the padding of the batch a sentence falls in).
"""
import sys

import numpy as np
import torch

from cli import ArgumentParser, at_least, run_main
from data import (BLANK_RE, INVISIBLE, DataError, conll_text, format_probs, jsonl_text, open_text, read_conll, read_jsonl,
                  split_sentences, write_conll, write_jsonl)
from model import BertForTokenClassification, check_model_dir, from_pretrained, load_tokenizer
from train import Config, collate, encode, encode_texts, eval_batches, inference, predict, predict_texts

def read_text(path):
    """Raw text from a file or '-' (standard input), without byte-order marks or zero-width characters."""
    if path == "-":
        data = sys.stdin.buffer.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            raise DataError(f"standard input:{line}: not UTF-8; send UTF-8") from None
    else:
        with open_text(path) as f:  # names the file and line of a byte that is not UTF-8
            text = f.read()
    return text.translate(dict.fromkeys(map(ord, INVISIBLE)))


def label_tokens(model, tokenizer, rows, cfg, device, soft, progress):
    """rows: sentences as lists of column lists, the token first. Returns them with [probs] and the prediction appended."""
    sentences = [([cols[0] for cols in sent], ["O"] * len(sent)) for sent in rows]  # tags unused
    examples = encode(sentences, tokenizer, {}, cfg.max_len)
    preds, probs = predict(model, sentences, examples, cfg, device, with_probs=True, progress=progress)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return [[(*cols, *([format_probs(p, labels)] if soft else []), y) for cols, y, p in zip(sent, pred, prob)]
            for sent, pred, prob in zip(rows, preds, probs)]


def check_labeller(model_dir):
    """A --labeller folder (annotate.py, evokd.py) refused in one line, before any work, where from_pretrained
    could not load it (model.check_model_dir)."""
    try:
        check_model_dir(model_dir)
    except DataError as e:
        why = str(e).removeprefix(f"{model_dir}: ")
        raise DataError(f"--labeller {model_dir}: not a model folder: {why}; train one with train.py") from None


def tag_words(model_dir, sentences, max_len=128, progress=False):
    """A token classifier folder's BIO tags for sentences given as word lists, on the CPU (the labeller of
    annotate.py --labeller and evokd.py)."""
    if not sentences:
        return []
    model, tokenizer = from_pretrained(model_dir, verbose=False), load_tokenizer(model_dir)
    if not isinstance(model, BertForTokenClassification):
        raise DataError(f"{model_dir} is a sequence classifier; labelling words needs a token classifier (NER)")
    rows = label_tokens(model, tokenizer, [[[w] for w in words] for words in sentences], Config(max_len=max_len),
                        torch.device("cpu"), False, progress)
    return [[row[-1] for row in sent] for sent in rows]


def label_texts(model, tokenizer, records, text_field, cfg, device, soft, progress):
    """records: dicts with the text in text_field. Returns copies with "label" (and "probs") set."""
    examples = encode_texts([(r[text_field], None, None) for r in records], tokenizer, {}, cfg.max_len)
    preds, probs = predict_texts(model, examples, cfg, device, progress=progress)
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


def sentence_embeddings(model, tokenizer, sentences, cfg, device):
    """One unit vector per sentence (a list of words): the mean of the encoder's last hidden states over
    its real word pieces ([CLS] and [SEP] included, padding not), as sentence-transformers pools MiniLM.
    A sentence longer than one window is embedded by its first window. Returns (sentences, H) float32."""
    examples = [e for e in encode([(words, ["O"] * len(words)) for words in sentences], tokenizer, {}, cfg.max_len)
                if e["first_word"] == 0]
    out = np.zeros((len(sentences), model.config.hidden_size), dtype=np.float32)
    with inference(model, cfg, device):
        for idx in eval_batches(examples, cfg):
            ids, mask, _ = collate([examples[i] for i in idx], device)
            h = model.bert(ids, mask).float()  # (B, T, H)
            m = mask[..., None].float()
            out[[examples[i]["sent"] for i in idx]] = ((h * m).sum(1) / m.sum(1)).cpu().numpy()
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def read_input(args, token_model):
    """NER: sentences as lists of column lists; classification: dicts holding the text in args.text_field."""
    where = "standard input" if args.input == "-" else args.input
    if token_model:
        if args.format == "text":
            rows = [[[w] for w in sent] for sent in split_sentences(read_text(args.input))]
        elif args.format == "conll":
            rows = read_conll(args.input, columns=True)
        else:
            raise DataError(f"{args.model_dir} is a token classifier (NER): use --format conll or text, not {args.format}")
        if not rows:
            raise DataError(f"{where}: no sentences")
        return rows
    if args.format == "text":
        records = [{args.text_field: line.strip()} for line in read_text(args.input).splitlines() if not BLANK_RE.fullmatch(line)]
    elif args.format == "jsonl":
        records = read_jsonl(args.input)
        for i, r in enumerate(records, 1):
            if not isinstance(r.get(args.text_field), str):
                raise DataError(f"{where}: record {i} has no text in field {args.text_field!r}")
    else:
        raise DataError(f"{args.model_dir} is a sequence classifier: use --format jsonl or text, not {args.format}")
    if not records:
        raise DataError(f"{where}: no texts")
    return records


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", required=True, help="a folder train.py wrote (out_dir/model), or any BERT classifier folder")
    p.add_argument("--input", default="-", help="the file to label; - reads standard input")
    p.add_argument("--out", default="-", help="where to write the labelled copy; - writes standard output")
    p.add_argument("--format", choices=["text", "conll", "jsonl"], help="input format; default conll (NER) or jsonl (classification)")
    p.add_argument("--soft", action="store_true", help="also write each word's / text's distribution over the labels")
    p.add_argument("--text_field", default="text", help="jsonl: the field holding the text")
    p.add_argument("--decode", default="viterbi", choices=["viterbi", "argmax"], help="NER: the best valid BIO sequence, or each word on its own")
    p.add_argument("--max_len", type=at_least(3), default=128, help="word pieces per window (NER) or per text ([CLS] and [SEP] included)")
    p.add_argument("--batch_size", type=at_least(1), default=Config.eval_batch_size, help="at most this many windows or texts per forward pass")
    p.add_argument("--max_tokens", type=at_least(1), default=Config.eval_tokens,
                   help="and at most this many word pieces, padding included (train.py's --eval_tokens)")
    p.add_argument("--bf16", type=int, default=1, choices=[0, 1], help="bfloat16 autocast where the hardware has it")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda if available")
    p.add_argument("--progress", type=int, default=1, choices=[0, 1], help="a tqdm bar on standard error for long inputs")
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    cfg = Config(max_len=args.max_len, eval_batch_size=args.batch_size, eval_tokens=args.max_tokens, bf16=args.bf16, decode=args.decode)
    check_model_dir(args.model_dir)
    model = from_pretrained(args.model_dir, verbose=False).to(device)
    tokenizer = load_tokenizer(args.model_dir)
    token_model = isinstance(model, BertForTokenClassification)
    args.format = args.format or ("conll" if token_model else "jsonl")
    data = read_input(args, token_model)
    progress = bool(args.progress) and len(data) >= 1000
    if token_model:
        rows = label_tokens(model, tokenizer, data, cfg, device, args.soft, progress)
        text, write = conll_text, write_conll
    else:
        rows = label_texts(model, tokenizer, data, args.text_field, cfg, device, args.soft, progress)
        text, write = jsonl_text, write_jsonl
    if args.out == "-":
        sys.stdout.write(text(rows))
    else:
        write(args.out, rows)
        print(f"labelled {len(rows)} {'sentences' if token_model else 'texts'} -> {args.out}", file=sys.stderr)

if __name__ == "__main__":
    run_main(main)
