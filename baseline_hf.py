"""
Reference only: Hugging Face's BertForTokenClassification fine-tuned on CoNLL-2003 the way its run_ner.py example
does it, scored with this project's span F1: the measurement `python train.py` is set against.

    python baseline_hf.py --seed 0 --out results/training/hf_reference_s0.json

The recipe: the default MiniLM-L6-H384 weights, first-piece labels (the other pieces -100: predict.encode, the words
cut into the same windows as ours), random batches of 32 sentences, torch's AdamW at lr 1e-4 without weight decay,
3 epochs, the learning rate decaying linearly to 0 without warmup, fp32; each word's label is its first piece's
argmax, and the test F1 is that of the last step (run_ner.py keeps no best-dev checkpoint). The loss is the model's
own (the mean over the labelled pieces of a batch). `transformers` is a test and reference dependency only: the
project's code never imports it. The JSON record (`--out`) holds the scores, the time and runs.provenance.
"""
import time
from dataclasses import dataclass

import torch

from cli import at_least, command_line, opt, parse_config, run_main
from data import labels_from, read_conll
from eval import span_f1
from model import default_model_dir, load_tokenizer
from predict import collate, encode, predict
from runs import provenance, write_json


@dataclass
class Config:
    data_dir: str = opt("data/conll2003", "holds train.txt, valid.txt, test.txt")
    seed: int = opt(0, "seed of the head's initialisation and the batch order")
    epochs: int = opt(3, "passes over the training set", type=at_least(1))
    batch_size: int = opt(32, "sentences a step", type=at_least(1))
    lr: float = opt(1e-4, "peak learning rate, decaying linearly to 0")
    max_steps: int = opt(0, "> 0: stop after this many steps (a quick look)", type=at_least(0))
    out: str = opt("", "a JSON record of the scores (with the command, commit and machine) written here")


def main(argv=None):
    cfg = parse_config(Config, argv, description=__doc__.split("\n\n")[0])
    from transformers import BertForTokenClassification  # reference only
    started = time.perf_counter()
    train, dev, test = (read_conll(f"{cfg.data_dir}/{s}.txt") for s in ("train", "valid", "test"))
    labels = labels_from(train)
    label2id = {l: i for i, l in enumerate(labels)}
    tokenizer = load_tokenizer(default_model_dir())
    ex_train, ex_dev, ex_test = (encode(s, tokenizer, label2id, 128) for s in (train, dev, test))
    torch.manual_seed(cfg.seed)
    model = BertForTokenClassification.from_pretrained(default_model_dir(), num_labels=len(labels),
                                                       id2label=dict(enumerate(labels)), label2id=label2id)
    device = torch.device("cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    per_epoch = -(-len(ex_train) // cfg.batch_size)
    total = cfg.max_steps or cfg.epochs * per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))
    g = torch.Generator().manual_seed(cfg.seed)
    step, t0 = 0, time.perf_counter()
    model.train()
    while step < total:
        order = torch.randperm(len(ex_train), generator=g).tolist()
        for i in range(0, len(order), cfg.batch_size):
            ids, mask, gold = collate([ex_train[j] for j in order[i:i + cfg.batch_size]], device)
            model(input_ids=ids, attention_mask=mask, labels=gold).loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == total:
                break
    train_seconds = time.perf_counter() - t0
    scores = {}
    for name, sentences, examples in (("dev", dev, ex_dev), ("test", test, ex_test)):
        pred, = predict(model, sentences, examples, device, decodes=("argmax",), bf16=False)
        scores[name] = span_f1([tags for _, tags in sentences], pred)
    result = {"task": "ner", "dev": scores["dev"], "test": scores["test"], "total_steps": total,
              "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - started,
              "precision": "fp32", "threads": torch.get_num_threads(),
              "record": provenance(command_line("baseline_hf.py", cfg), precision="fp32")}
    print(f"test F1 {100 * scores['test']['f1']:.2f}, dev F1 {100 * scores['dev']['f1']:.2f}; {total} steps in "
          f"{train_seconds:.0f} s of training, {result['wall_seconds']:.0f} s in all")
    if cfg.out:
        write_json(cfg.out, result)


if __name__ == "__main__":
    run_main(main)
