"""Convert BERT / NEZHA checkpoints to and from this project's MindSpore .ckpt.

    # HuggingFace directory (config.json + model.safetensors or pytorch_model.bin) -> .ckpt + model YAML
    python tools/convert_checkpoint.py --from hf --input bert-base-chinese/ --output ckpt/bert_base_zh.ckpt
    # Google TF BERT (bert_model.ckpt.* + bert_config.json beside it; needs tensorflow installed)
    python tools/convert_checkpoint.py --from tf --input chinese_L-12_H-768_A-12/bert_model.ckpt --output x.ckpt
    # A checkpoint written by the MindSpore model zoo's BERT / BERT_NEZHA
    python tools/convert_checkpoint.py --from zoo --input checkpoint_bert-40_1000.ckpt --config nezha-zoo \
        --output x.ckpt
    # Back to HuggingFace: a directory loadable by transformers' from_pretrained
    python tools/convert_checkpoint.py --from ms --to hf --input x.ckpt --config base --output hf_dir/
    # Back to Google TF (Google's variable names; bert_config.json beside it; needs tensorflow installed)
    python tools/convert_checkpoint.py --from ms --to tf --input x.ckpt --config base --output tf_dir/bert_model.ckpt

Every conversion to .ckpt is checked by loading the result into the model the config describes, and writes
the config as a YAML next to the checkpoint (pass it as --bert_network to run_pretrain.py and pretrain_eval.py).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from src.cli import ArgumentParser, debug_requested, run_cli
from src.config import BertConfig, load_bert_config, save_bert_config
from src.files.checkpoint import load_into, read_checkpoint, write_checkpoint
from src.model.conversion import (
    config_from_hf_json,
    hf_json_from_config,
    hf_to_ms,
    ms_to_hf,
    ms_to_tf,
    tf_to_ms,
    zoo_to_ms,
)
from src.model.pretraining import BertForPreTraining

SAFE_FORMAT_HINT = ("convert the model's model.safetensors instead (the same weights without code; most HuggingFace "
                    "repositories have one)")


def read_hf(path: Path) -> tuple[dict[str, np.ndarray], Path | None]:
    """A HuggingFace checkpoint (directory or file) and the path of the config.json beside it, if any."""
    directory = path if path.is_dir() else path.parent
    if path.is_dir():
        candidates = [directory / "model.safetensors", directory / "pytorch_model.bin"]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            shards = [name for name in ("model.safetensors.index.json", "pytorch_model.bin.index.json")
                      if (directory / name).is_file()]
            raise FileNotFoundError(
                f"{directory} holds neither model.safetensors nor pytorch_model.bin"
                + (f" but a sharded checkpoint ({shards[0]}): save it as one file with transformers' "
                   f"save_pretrained(..., max_shard_size=\"100GB\") and convert that" if shards else
                   ": pass a HuggingFace model directory or one of those files"))
    if not path.is_file():
        raise FileNotFoundError(f"HuggingFace checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"HuggingFace checkpoint {path} is empty: copy or download it again")
    tensors = read_safetensors(path) if path.suffix == ".safetensors" else read_pytorch_bin(path)
    config_path = directory / "config.json"
    return tensors, config_path if config_path.is_file() else None


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    try:
        return load_file(str(path))
    except SafetensorError as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error}): it is truncated or corrupt; "
                         f"download it again") from None
    except TypeError as error:  # a dtype numpy lacks (bfloat16 without ml_dtypes)
        raise ValueError(f"{path} holds tensors numpy cannot represent ({error}): save the model in float32 "
                         f"(model.float().save_pretrained(...)) and convert that") from None


def read_pytorch_bin(path: Path) -> dict[str, np.ndarray]:
    """A PyTorch state dict, unpickled with weights_only=True: tensors and plain containers only, never code."""
    try:
        import torch
    except ImportError:
        raise SystemExit(f"{path} is a PyTorch pickle: install torch (pip install torch==2.13.0) "
                         f"or convert the model.safetensors instead") from None
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head.startswith(b"PK") and not head.startswith(b"\x80"):
        raise ValueError(f"{path} is not a PyTorch checkpoint (neither the zip archive torch.save writes nor a "
                         f"pickle): pass a pytorch_model.bin or model.safetensors of a HuggingFace model")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing: not our one line
            warnings.simplefilter("ignore")
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)|Unsupported operand (\d+)", str(error))
        detail = ("" if not found else f" (a {found[1]} object)" if found[1] else
                  f" (pickle opcode {found[2]}, which torch's weights-only reader refuses)")
        raise ValueError(f"{path} holds objects other than tensors{detail}: it was not loaded, since unpickling "
                         f"them could run code; {SAFE_FORMAT_HINT}") from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} cannot be read as a PyTorch checkpoint ({reason}): it is truncated or corrupt; "
                         f"download it again, or {SAFE_FORMAT_HINT}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of named tensors: save the "
                         f"model's state_dict() (or use save_pretrained) and convert that")
    others = [name for name, value in state.items() if not isinstance(value, torch.Tensor)]
    if others:
        raise ValueError(f"{path} holds entries that are not tensors ({', '.join(map(str, others[:4]))}"
                         f"{', ...' if len(others) > 4 else ''}): a training checkpoint rather than a state dict? "
                         f"save the model's state_dict() (or use save_pretrained) and convert that")
    return {name: value.float().numpy() if value.is_floating_point() else value.numpy()
            for name, value in state.items()}


def read_config_json(path: Path | None) -> dict | None:
    """config.json / bert_config.json as a dict, with one line naming the file when it is not a JSON object."""
    if path is None or not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text: fix it, or pass --config PRESET_OR_YAML") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg} at line {error.lineno} column {error.colno}): fix "
                         f"it, or pass --config PRESET_OR_YAML") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} holds a JSON {type(values).__name__}, not an object of config fields: fix it, or "
                         f"pass --config PRESET_OR_YAML")
    return values


def import_tensorflow(purpose: str):
    if not debug_requested([]):  # TensorFlow's C++ start-up notes on stderr would precede our one line
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError:
        raise SystemExit(f"{purpose} needs tensorflow: pip install tensorflow-cpu") from None
    return tf


def tf_checkpoint_prefix(path: Path) -> Path:
    """The prefix of a TF checkpoint (bert_model.ckpt of bert_model.ckpt.index / .data-*), also given as one of its
    files or as the directory holding exactly one; one line when there is none."""
    if path.is_dir():
        indexes = sorted(path.glob("*.index"))
        if len(indexes) != 1:
            raise FileNotFoundError(f"{path} holds {'no' if not indexes else len(indexes)} TensorFlow checkpoint"
                                    f"{'s' if len(indexes) > 1 else ''} (*.index): pass the checkpoint prefix, "
                                    f"e.g. {path / 'bert_model.ckpt'}")
        return indexes[0].with_suffix("")
    prefix = Path(re.sub(r"\.(index|data-\d+-of-\d+)$", "", str(path)))
    if not Path(f"{prefix}.index").is_file():
        raise FileNotFoundError(f"TensorFlow checkpoint {prefix} does not exist ({prefix}.index is missing): pass "
                                f"the prefix of its files, e.g. chinese_L-12_H-768_A-12/bert_model.ckpt")
    return prefix


def read_tf(path: Path) -> tuple[dict[str, np.ndarray], Path | None]:
    prefix = tf_checkpoint_prefix(path)
    tf = import_tensorflow("reading a TensorFlow checkpoint")
    try:
        arrays = {name: tf.train.load_variable(str(prefix), name) for name, _ in tf.train.list_variables(str(prefix))}
    except (tf.errors.OpError, ValueError) as error:
        reason = (getattr(error, "message", None) or str(error)).splitlines()[0]
        raise ValueError(f"TensorFlow checkpoint {prefix} cannot be read ({reason}): its .index or .data files are "
                         f"truncated or corrupt; copy them again") from None
    config_path = prefix.parent / "bert_config.json"
    return arrays, config_path if config_path.is_file() else None


def pick_config(args: argparse.Namespace, derived: BertConfig | None) -> BertConfig:
    if args.config:
        return load_bert_config(args.config)
    if derived is None:
        raise SystemExit(f"{args.input}: no config.json/bert_config.json beside it: pass --config PRESET_OR_YAML")
    return derived


def check_output(output: Path, suffix: str = "", directory: bool = False) -> None:
    """--output can be written: a file path (ending in suffix) or a directory, under a writable directory; checked
    before the input is read."""
    if suffix and output.suffix != suffix:
        raise ValueError(f"--output {output} must end in {suffix}: pass e.g. {output.with_suffix(suffix)}")
    if directory and output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} is a file: pass a directory (it is created if missing)")
    if not directory and output.is_dir():
        ending = f" ending in {suffix}" if suffix else ""
        raise ValueError(f"--output {output} is a directory: pass a file path{ending}")
    parent = output if directory else output.parent
    existing = next(p for p in (parent, *parent.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise ValueError(f"--output {output}: {existing} is a file, not a directory: pass a path in a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output {output}: directory {existing} is not writable: pass a path you can write to")


def to_mindspore(args: argparse.Namespace) -> None:
    skipped: list[str] = []
    derived = None
    check_output(args.output, ".ckpt")
    if args.source == "hf":
        tensors, config_path = read_hf(args.input)
        params = hf_to_ms(tensors)
        hf_config = None if args.config else read_config_json(config_path)
        derived = config_from_hf_json(hf_config, str(config_path)) if hf_config is not None else None
    elif args.source == "tf":
        tensors, config_path = read_tf(args.input)
        params = tf_to_ms(tensors)
        tf_config = None if args.config else read_config_json(config_path)
        derived = config_from_hf_json(tf_config, str(config_path), tanh_gelu=True) if tf_config is not None else None
    else:
        params, skipped = zoo_to_ms(read_ms_checkpoint(args.input, "a model zoo"))
    config = pick_config(args, derived)
    network = BertForPreTraining(config)
    unused = load_into(network, params, f"{args.input}", allow_missing=("cls.",) if args.allow_missing_heads else ())
    write_checkpoint(network, args.output)
    yaml_path = save_bert_config(config, args.output.with_suffix(".yaml"))
    print(f"wrote {args.output} ({len(list(network.get_parameters()))} parameters) and its config {yaml_path}")
    if skipped or unused:
        left_out = skipped + unused
        print(f"left out {len(left_out)} entries that are not BertForPreTraining parameters "
              f"(optimizer state, task heads): {', '.join(left_out[:8])}{' ...' if len(left_out) > 8 else ''}")


def read_ms_checkpoint(path: Path, what: str) -> dict[str, np.ndarray]:
    """A MindSpore .ckpt to convert (what: "a pretraining" for --from ms, "a model zoo" for --from zoo)."""
    if path.is_dir():
        found = sorted(path.glob("*.ckpt"))
        raise ValueError(f"--input {path} is a directory: pass {what} checkpoint file"
                         + (f", e.g. {found[-1]}" if found else " (*.ckpt)"))
    params = read_checkpoint(path)
    if what == "a pretraining" and not any(name.startswith("cls.") for name in params) \
            and any(name.startswith("bert.") for name in params):
        heads = sorted({name.split(".")[0] for name in params if not name.startswith("bert.")} & {"classifier",
                                                                                                  "qa_outputs"})
        raise ValueError(f"checkpoint {path} has no pretraining heads (cls.*)"
                         + (f" but a finetuning head ({', '.join(heads)})" if heads else "")
                         + ": --from ms converts pretraining checkpoints (run_pretrain.py's, or converted ones); "
                           "use export.py for a finetuned model")
    return params


def to_huggingface(args: argparse.Namespace) -> None:
    from safetensors.numpy import save_file
    check_output(args.output, directory=True)
    config = pick_config(args, None)
    network = BertForPreTraining(config)
    load_into(network, read_ms_checkpoint(args.input, "a pretraining"), f"checkpoint {args.input}")  # names, shapes
    params = {p.name: p.asnumpy() for p in network.get_parameters()}
    args.output.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in ms_to_hf(params, config).items()},
              str(args.output / "model.safetensors"), metadata={"format": "pt"})
    (args.output / "config.json").write_text(json.dumps(hf_json_from_config(config), indent=2))
    print(f"wrote {args.output}/model.safetensors and config.json")


def to_tensorflow(args: argparse.Namespace) -> None:
    """A checkpoint in Google's layout, written by tf.compat.v1's Saver (name-based, as modeling.py restores it),
    with Google's bert_config.json beside it. Files are written in a scratch directory and moved into place; an
    existing file is never replaced."""
    check_output(args.output)
    config = pick_config(args, None)
    if config.use_relative_positions:
        raise SystemExit(f"{args.input}: Google's TF BERT has no relative positions (NEZHA); keep this checkpoint "
                         f"in MindSpore format or export it with --to hf")
    network = BertForPreTraining(config)
    load_into(network, read_ms_checkpoint(args.input, "a pretraining"), f"checkpoint {args.input}")  # names, shapes
    arrays = ms_to_tf({p.name: p.asnumpy() for p in network.get_parameters()})
    google_config = {key: value for key, value in hf_json_from_config(config).items()
                     if key not in ("architectures", "model_type", "layer_norm_eps")}
    google_config["hidden_act"] = {"gelu_new": "gelu"}.get(google_config["hidden_act"], google_config["hidden_act"])
    names = [f"{args.output.name}.index", f"{args.output.name}.data-00000-of-00001", "bert_config.json"]
    targets = {name: args.output.parent / name for name in names}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing:
        raise SystemExit(f"{', '.join(existing)} already exist: pick another --output (nothing was written)")
    tf = import_tensorflow("writing a TensorFlow checkpoint").compat.v1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.output.parent) as scratch, tf.Graph().as_default():
        variables = {name: tf.get_variable(name, value.shape, tf.as_dtype(value.dtype))
                     for name, value in arrays.items()}
        with tf.Session() as session:
            for name, variable in variables.items():
                variable.load(arrays[name], session)
            tf.train.Saver(variables).save(session, str(Path(scratch) / args.output.name), write_meta_graph=False)
        (Path(scratch) / "bert_config.json").write_text(json.dumps(google_config, indent=2))
        for name, target in targets.items():
            os.replace(Path(scratch) / name, target)
    print(f"wrote {args.output}.index/.data-00000-of-00001 ({len(arrays)} variables) and {targets['bert_config.json']}")
    if config.hidden_act == "gelu":
        print("note: Google's modeling.py computes \"gelu\" with the tanh approximation; this model uses exact GELU "
              "(outputs differ by about 1e-3)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", required=True, choices=("hf", "tf", "zoo", "ms"))
    parser.add_argument("--to", dest="target", default="ms", choices=("ms", "hf", "tf"))
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--config", help="model preset name or YAML (default: from the checkpoint's config.json)")
    parser.add_argument("--allow_missing_heads", action="store_true",
                        help="accept a checkpoint without pretraining heads (e.g. a bare BertModel); "
                             "the heads are then freshly initialised")
    args = parser.parse_args(argv)
    if (args.source == "ms") != (args.target in ("hf", "tf")):
        parser.error("supported conversions: --from hf|tf|zoo [--to ms], and --from ms --to hf|tf")
    return args


def convert(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.target == "hf":
        to_huggingface(args)
    elif args.target == "tf":
        to_tensorflow(args)
    else:
        to_mindspore(args)


def main(argv: list[str] | None = None) -> None:
    return run_cli("convert_checkpoint.py", convert, argv)


if __name__ == "__main__":
    main()
