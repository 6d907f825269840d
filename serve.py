"""
A model folder as it is served (`serving_model`): the PyTorch model itself, its copy with int8 Linear weights
(`quantize_int8`, predict.py --int8 1), or its export run by ONNX Runtime: the export, its int8 copy, and a session
that stands in for the PyTorch model in predict.py's one inference path (the same batches, decoding and Viterbi on
the same log-probabilities).

    python predict.py --model_dir out/default/model --input data/conll2003/test.txt --runtime onnx --out runs/pred.conll
    python predict.py --model_dir out/default/model --input data/conll2003/test.txt --runtime onnx --int8 1
    python serve.py --model_dir out/default/model   # dev F1 of each int8 setting (QUANTIZATION), fp32's, PyTorch's

Where and when: the first use writes `model.onnx` beside the weights (torch's exporter, dynamic batch and sequence
axes), and with --int8 1 `model.int8.onnx` from it (ONNX Runtime's dynamic quantization, QUANTIZATION below). Each
file carries in its metadata the hash of the weights and config.json it was made from (and the quantization
settings); a later use loads it while they match and makes it again when they do not, so retraining into the same
folder never serves stale weights. Both are written to a temporary name and renamed, so a reader never sees half
a file.

The exporter: torch.onnx.export's TorchScript-based path (dynamo=False). Its dynamo=True path gives the same logits
too, but needs one more package (onnxscript), exported MiniLM-L6 about three times slower in a trial here and gave a
graph ONNX Runtime ran no faster; PyTorch marks the TorchScript path deprecated but ships it in the torch pinned here.
onnx and onnxruntime are optional, for serving only (pip install onnx onnxruntime): training never needs them.
"""
import hashlib
import json
import os
import warnings
from dataclasses import dataclass

import torch

from cli import DataError, command_line, opt, parse_config, run_main

OPSET = 17
INPUTS = ("input_ids", "attention_mask")
# ONNX Runtime's dynamic int8 quantization (onnxruntime.quantization.quantize_dynamic): weights in int8, each
# batch's activations scaled on the fly. Chosen on CoNLL dev F1 of the default teacher (`python serve.py`, its record
# results/students/ort_int8_settings.json) among a scale per output column of each weight or one per matrix (its
# default), and every operator it quantizes (the embedding tables' Gather too; its default) or the MatMuls alone:
# a scale per column lost the least F1 against fp32 with either choice of operators.
QUANTIZATION = {"per_channel": True, "op_types": None}  # None: quantize_dynamic's own choice of operators
INSTALL = "pip install onnx onnxruntime"


def require_onnxruntime(who="--runtime onnx"):
    """The onnxruntime module, or one line saying what to install."""
    try:
        import onnx  # noqa: F401  (the export's metadata and the int8 copy need it)
        import onnxruntime
    except ImportError as e:
        raise DataError(f"{who} needs the onnx and onnxruntime packages ({e.name} is missing): "
                        f"{INSTALL}") from None
    return onnxruntime


def source_hash(model_dir):
    """sha256 of what the export is made from: config.json and the weights file."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
            if name != "config.json":
                break  # model.read_checkpoint reads model.safetensors where there is one
    return h.hexdigest()


def onnx_paths(model_dir):
    return os.path.join(model_dir, "model.onnx"), os.path.join(model_dir, "model.int8.onnx")


class Logits(torch.nn.Module):
    """forward(input_ids, attention_mask) -> logits alone: the graph the export records."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids, attention_mask)[0]


def stamp(path, props):
    """Write `props` into an ONNX file's metadata, in place (through a temporary file and a rename)."""
    import onnx
    m = onnx.load(path)
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, path + ".tmp")
    os.replace(path + ".tmp", path)


def export(model, path, props):
    """The model's logits as an ONNX graph with dynamic batch and sequence axes, stamped with `props`."""
    from model import BertForTokenClassification
    token = isinstance(model, BertForTokenClassification)  # logits (B, T, labels), else (B, labels)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch", 1: "sequence"} if token else {0: "batch"}}
    ids = torch.full((2, 8), 101, dtype=torch.long)  # any ids: the graph does not depend on their values
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # a padded row, so the mask's path is traced as it runs
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with warnings.catch_warnings():  # the notice that the TorchScript path is deprecated, and tracer warnings
            warnings.simplefilter("ignore")
            torch.onnx.export(Logits(model).eval(), (ids, mask), tmp, input_names=list(INPUTS),
                              output_names=["logits"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        stamp(tmp, props)
        os.replace(tmp, path)
    except OSError as e:
        raise DataError(f"{path}: cannot write the ONNX export: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001  (any exporter failure is one line, not a traceback)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(f"{os.path.dirname(path) or '.'}: the model will not export to ONNX: {first}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def quantize(src, path, props, settings):
    """An int8 copy of the ONNX graph at `src` (ONNX Runtime's dynamic quantization with `settings`)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    tmp = f"{path}.{os.getpid()}.tmp"
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.ERROR)  # its advice to pre-process the graph, meant for static quantization of images
        quantize_dynamic(src, tmp, weight_type=QuantType.QInt8, per_channel=settings["per_channel"],
                         op_types_to_quantize=settings["op_types"])
        stamp(tmp, props)
        os.replace(tmp, path)
    except OSError as e:
        raise DataError(f"{path}: cannot write the int8 ONNX copy: {e.strerror or e}") from None
    finally:
        root.setLevel(level)
        if os.path.exists(tmp):
            os.remove(tmp)


def session(path, props, make, threads=None):
    """An ONNX Runtime session of the file at `path` if its metadata holds `props`; else make() writes it first."""
    ort = require_onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()  # as many threads as PyTorch is given
    opts.inter_op_num_threads = 1
    if os.path.isfile(path):
        try:
            s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            held = s.get_modelmeta().custom_metadata_map
            if all(held.get(k) == v for k, v in props.items()):
                return s
        except Exception:  # noqa: BLE001  (a broken or foreign file is made again)
            pass
    make()
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


class OnnxModel(torch.nn.Module):
    """ONNX Runtime in the PyTorch model's place: forward(input_ids, attention_mask) -> (logits, None), and the same
    config, so predict.py runs it as it runs the model (it has no Linear layers for predict.inference to cast)."""

    def __init__(self, sess, config, path):
        super().__init__()
        self.session, self.config, self.path = sess, config, path

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
        feed = {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
        return torch.from_numpy(self.session.run(None, feed)[0]), None


def onnx_model(model, model_dir, int8=False, settings=None, threads=None):
    """A model folder's PyTorch `model` served by ONNX Runtime: its export beside the weights (made or reused, see
    the top of the file), or its int8 copy with the quantization `settings` (default QUANTIZATION)."""
    require_onnxruntime()
    settings = settings or QUANTIZATION
    fp32, q8 = onnx_paths(model_dir)
    props = {"source_sha256": source_hash(model_dir)}
    sess = session(fp32, props, lambda: export(model.cpu().eval(), fp32, props), threads)
    if int8:
        q_props = {**props, "quantization": json.dumps(settings, sort_keys=True)}
        sess = session(q8, q_props, lambda: quantize(fp32, q8, q_props, settings), threads)
    return OnnxModel(sess, model.config, q8 if int8 else fp32)


def serving_model(model, model_dir, runtime="torch", int8=False):
    """The folder's loaded model as it will predict: itself, its int8 copy (quantize_int8), or with runtime "onnx"
    ONNX Runtime running its export (onnx_model, fp32 or int8), which predict.py's predict() and predict_texts()
    run alike."""
    if runtime == "onnx":
        return onnx_model(model, model_dir, int8=int8)
    return quantize_int8(model) if int8 else model


def quantize_int8(model):
    """A copy of the model for CPU inference with every Linear layer's weights in int8 and its inputs quantized on the
    fly, per batch (PyTorch's dynamic quantization, torch.ao.quantization.quantize_dynamic, run by its fbgemm kernels).
    Each output row of a weight gets its own scale (per_channel_dynamic_qconfig): one scale per matrix, the default,
    lets a few large rows coarsen all the others, and cost the CoNLL students 0.64 F1 on average against 0.21 here.
    PyTorch marks this API as moving to the torchao package; it still ships with torch, so nothing more is installed."""
    import copy
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    with warnings.catch_warnings():  # the notices that the API is moving to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.*", category=UserWarning)
        return quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear: per_channel_dynamic_qconfig},
                                dtype=torch.qint8)


# ---------------------------------------------------------------------------------------------
# Choosing QUANTIZATION: each candidate's dev F1 against fp32's, on a trained NER model

CANDIDATES = [{"per_channel": pc, "op_types": ops} for pc in (False, True) for ops in (None, ["MatMul"])]


@dataclass
class Config:
    model_dir: str = opt(None, "a trained NER model folder (train.py's out_dir/model)", type=str, required=True)
    dev: str = opt("data/conll2003/valid.txt", "the CoNLL file the settings are scored on")
    out: str = opt("results/students/ort_int8_settings.json", "the record: each setting's span F1, and fp32's")


def compare(cfg):
    """Span F1 (%) on --dev of PyTorch (bf16 where native, fp32, int8) and ONNX Runtime fp32 and int8 with each of
    CANDIDATES, all through predict.label_tokens. The model folder is copied first, so the files made for each
    candidate never land beside the weights it names."""
    import shutil
    import tempfile

    from data import atomic_write, read_conll
    from eval import span_f1
    from model import check_model_dir, from_pretrained, load_tokenizer
    from predict import label_tokens
    from runs import provenance
    check_model_dir(cfg.model_dir)
    gold = read_conll(cfg.dev)
    rows = [[[w] for w in words] for words, _ in gold]
    tokenizer = load_tokenizer(cfg.model_dir)

    def f1(model, bf16=False):
        tagged = label_tokens(model, tokenizer, rows, torch.device("cpu"), bf16=bf16)
        return round(100 * span_f1([t for _, t in gold], [[r[-1] for r in sent] for sent in tagged])["f1"], 2)
    model = from_pretrained(cfg.model_dir, verbose=False).eval()
    scores = {"torch": f1(model, bf16=True), "torch-fp32": f1(model), "torch-int8": f1(quantize_int8(model))}
    candidates = [dict(c) for c in CANDIDATES]
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "model")
        shutil.copytree(cfg.model_dir, folder, ignore=shutil.ignore_patterns("*.onnx"))
        scores["ort"] = f1(onnx_model(model, folder))
        for c in candidates:
            c["dev_f1"] = f1(onnx_model(model, folder, int8=True, settings={k: c[k] for k in QUANTIZATION}))
            print(f"ort int8, per_channel {c['per_channel']!s:<5} op_types {c['op_types'] or 'default'}: "
                  f"dev F1 {c['dev_f1']}", flush=True)
    record = {"model_dir": cfg.model_dir, "dev": cfg.dev, "dev_f1": scores, "ort_int8": candidates,
              "record": provenance(command_line("serve.py", cfg), precision="bf16, fp32 and int8")}
    atomic_write(cfg.out, json.dumps(record, indent=1) + "\n")
    print(", ".join(f"{k} {v}" for k, v in scores.items()) + f" -> {cfg.out}")


if __name__ == "__main__":
    run_main(lambda: compare(parse_config(Config, description=__doc__.split("\n\n")[0])))
