"""
Label new data with a trained model folder: BIO tags per word (a token classifier) or a label per
text (a sequence classifier); the folder says which it is. `--soft` adds the probability
distributions that train.py learns from as soft labels (a teacher's labels for a student).

    python predict.py --model_dir out/default/model --input data/conll2003/test.txt --out runs/pred.conll
    python predict.py --model_dir out/default/model --input data/conll2003/train.txt --soft --out runs/teacher.conll
    python predict.py --model_dir out/bbc/model --input runs/bbc/test.jsonl --soft --out runs/bbc_teacher.jsonl

CoNLL input (NER): the first column is the token and, when there is one, the last is a tag that is
kept; each output line is `token [input tag] [distribution] predicted`, so the prediction is always
the last column and `read_conll(out)` reads it. JSONL input (classification): every object keeps its
fields; "label" becomes the prediction (an input "label" moves to "gold") and "probs" the
distribution. Decoding, windows and batching are train.py's own (`predict`, `predict_texts`).
"""
import argparse
import os
import sys

import torch

from data import DataError, format_probs, read_conll, read_jsonl, write_conll, write_jsonl
from model import from_pretrained, load_tokenizer
from train import Config, encode, encode_texts, predict, predict_texts


def label_conll(model, tokenizer, path, cfg, device, soft):
    """Rows `token [tag] [probs] predicted` for every sentence of a CoNLL file."""
    sentences = read_conll(path)
    examples = encode(sentences, tokenizer, {}, cfg.max_len)
    preds, probs = predict(model, sentences, examples, cfg, device, with_probs=True)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    rows = []
    for (words, tags), pred, prob in zip(sentences, preds, probs):
        rows.append([(w, t, *([format_probs(p, labels)] if soft else []), y) for w, t, y, p in zip(words, tags, pred, prob)])
    return rows


def label_jsonl(model, tokenizer, path, cfg, device, soft, text_field):
    records = read_jsonl(path)
    for i, r in enumerate(records, 1):
        if not isinstance(r.get(text_field), str):
            raise DataError(f"{path}:{i}: no text in field {text_field!r}")
    examples = encode_texts([(r[text_field], None, None) for r in records], tokenizer, {}, cfg.max_len)
    preds, probs = predict_texts(model, examples, cfg, device)
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model_dir", required=True, help="a folder train.py wrote (out_dir/model), or any BERT classifier folder")
    p.add_argument("--input", required=True, help="CoNLL file (token classifier) or JSONL file with one text an object (sequence classifier)")
    p.add_argument("--out", required=True, help="where to write the labelled copy")
    p.add_argument("--soft", action="store_true", help="also write each word's / text's distribution over the labels")
    p.add_argument("--text_field", default="text", help="JSONL: the field holding the text")
    p.add_argument("--decode", default="viterbi", choices=["viterbi", "argmax"], help="NER: the best valid BIO sequence, or each word on its own")
    p.add_argument("--max_len", type=int, default=128, help="word pieces per window (NER) or per text, [CLS] and [SEP] included")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--bf16", type=int, default=1, help="bfloat16 autocast")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    cfg = Config(max_len=args.max_len, eval_batch_size=args.batch_size, bf16=args.bf16, decode=args.decode)
    try:
        model = from_pretrained(args.model_dir, verbose=False).to(device)
        tokenizer = load_tokenizer(args.model_dir)
        if type(model).__name__ == "BertForTokenClassification":
            write_conll(args.out, label_conll(model, tokenizer, args.input, cfg, device, args.soft))
        else:
            write_jsonl(args.out, label_jsonl(model, tokenizer, args.input, cfg, device, args.soft, args.text_field))
    except (DataError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
