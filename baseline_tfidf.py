"""
Reference measurement: TF-IDF with logistic regression on a split written by `data.py split`.

Not part of the project's pipeline: it says how far a bag of words gets on the same test set, so the
distilled BERT has a floor to beat. Word 1-2 grams with sublinear tf, fitted on the training file
only; scikit-learn's logistic regression with its defaults (L2, C=1, lbfgs) and more iterations.
Scores come from eval.py's classification_scores. scikit-learn is a reference-only dependency
(requirements-test.txt), as transformers is for bench.py; the project itself never imports it.

    python data.py split --input data/bbc/bbc.jsonl --out_dir runs/bbc_split --seed 0 --per_class 8,32 \\
        --subset_seeds 0,1,2
    python baseline_tfidf.py --data_dir runs/bbc_split                                   # the whole train.jsonl
    python baseline_tfidf.py --data_dir runs/bbc_split --train_file train_k8_s0.jsonl    # 8 texts per class
"""
import json
import os
import time
from dataclasses import dataclass

from cli import DataError, command_line, opt, parse_config, run_main
from data import read_jsonl_numbered
from runs import provenance, write_json
from eval import classification_scores, format_classification_report


def texts_and_labels(path):
    records = read_jsonl_numbered(path)
    for lineno, r in records:
        if not isinstance(r.get("text"), str) or not isinstance(r.get("label"), str):
            raise DataError(f"{path}:{lineno}: expected a string 'text' and a string 'label'")
    return [r["text"] for _, r in records], [r["label"] for _, r in records]


def fit_and_score(train_path, eval_paths):
    """Fit on train_path; {name: classification_scores} on each evaluation file."""
    x_train, y_train = texts_and_labels(train_path)
    # a bad file stops the run before the fit
    evals = {name: texts_and_labels(path) for name, path in eval_paths.items()}
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    classifier = LogisticRegression(max_iter=2000).fit(vectorizer.fit_transform(x_train), y_train)
    scores = {}
    for name, (x, y) in evals.items():
        scores[name] = classification_scores(y, list(classifier.predict(vectorizer.transform(x))))
    return scores, len(x_train)


@dataclass
class Config:
    data_dir: str = opt(None, "a data.py split folder: train, valid, test.jsonl", type=str, required=True)
    train_file: str = opt("", "training JSONL: a path, or a file name inside --data_dir; none: train.jsonl")
    out: str = opt("", "a JSON record of the scores (with the command, commit and machine) written here")


def main(argv=None):
    args = parse_config(Config, argv,
                        description="TF-IDF + logistic regression accuracy and macro-F1 on a data.py split.")
    train = args.train_file or "train.jsonl"
    if not os.path.exists(train):  # a bare name such as train_k8_s0.jsonl is looked for in --data_dir
        train = os.path.join(args.data_dir, train)
    t0 = time.time()
    scores, n_train = fit_and_score(train, {s: os.path.join(args.data_dir, f"{s}.jsonl") for s in ("valid", "test")})
    print(f"trained on {n_train} texts of {train} in {time.time() - t0:.1f} s; test set:")
    print(format_classification_report(scores["test"]))
    print(f"test accuracy {100 * scores['test']['accuracy']:.2f}, "
          f"test macro-F1 {100 * scores['test']['macro_f1']:.2f}, "
          f"valid accuracy {100 * scores['valid']['accuracy']:.2f}, "
          f"valid macro-F1 {100 * scores['valid']['macro_f1']:.2f}")
    result = {"train_file": train, "n_train": n_train,
              **{f"{s}_{k}": scores[s][k] for s in ("test", "valid") for k in ("accuracy", "macro_f1")}}
    print(json.dumps(result))
    if args.out:
        write_json(args.out, {**result, "task": "classify", "test": scores["test"], "valid": scores["valid"],
                              "record": provenance(command_line("baseline_tfidf.py", args), precision="fp64")})


if __name__ == "__main__":
    run_main(main)
