"""Convert BERT / NEZHA checkpoints to and from this project's MindSpore .ckpt.

    # HuggingFace directory (config.json + model.safetensors or pytorch_model.bin) -> .ckpt + model YAML
    python tools/convert_checkpoint.py --from hf --input bert-base-chinese/ --output ckpt/bert_base_zh.ckpt
    # Google TF BERT (bert_model.ckpt.* + bert_config.json beside it; needs tensorflow installed)
    python tools/convert_checkpoint.py --from tf --input chinese_L-12_H-768_A-12/bert_model.ckpt --output x.ckpt
    # A checkpoint written by the MindSpore model zoo's BERT / BERT_NEZHA
    python tools/convert_checkpoint.py --from zoo --input checkpoint_bert-40_1000.ckpt --config nezha-zoo --output x.ckpt
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
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.cli import ArgumentParser, run_cli  # noqa: E402
from src.bert_for_pre_training import BertForPreTraining  # noqa: E402
from src.checkpoint import load_into, read_checkpoint, write_checkpoint  # noqa: E402
from src.config import BertConfig, load_bert_config, save_bert_config  # noqa: E402
from src.convert import (config_from_hf_json, hf_json_from_config, hf_to_ms, ms_to_hf, ms_to_tf,  # noqa: E402
                         tf_to_ms, zoo_to_ms)


def read_hf(path: Path) -> tuple[dict[str, np.ndarray], dict | None]:
    """A HuggingFace checkpoint (directory or file) and its config.json if present."""
    directory = path if path.is_dir() else path.parent
    if path.is_dir():
        candidates = [directory / "model.safetensors", directory / "pytorch_model.bin"]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{directory} holds neither model.safetensors nor pytorch_model.bin")
    if not path.is_file():
        raise FileNotFoundError(f"HuggingFace checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file
        tensors = load_file(str(path))
    else:
        try:
            import torch
        except ImportError:
            raise SystemExit(f"{path} is a PyTorch pickle: install torch (pip install torch==2.13.0) "
                             f"or convert the model.safetensors instead") from None
        tensors = {name: value.float().numpy() for name, value in
                   torch.load(str(path), map_location="cpu", weights_only=True).items()}
    config_path = directory / "config.json"
    hf_config = json.loads(config_path.read_text()) if config_path.is_file() else None
    return tensors, hf_config


def import_tensorflow(purpose: str):
    try:
        import tensorflow as tf
    except ImportError:
        raise SystemExit(f"{purpose} needs tensorflow: pip install tensorflow-cpu") from None
    return tf


def read_tf(path: Path) -> tuple[dict[str, np.ndarray], dict | None]:
    tf = import_tensorflow("reading a TensorFlow checkpoint")
    arrays = {name: tf.train.load_variable(str(path), name) for name, _ in tf.train.list_variables(str(path))}
    config_path = path.parent / "bert_config.json"
    return arrays, (json.loads(config_path.read_text()) if config_path.is_file() else None)


def pick_config(args: argparse.Namespace, derived: BertConfig | None) -> BertConfig:
    if args.config:
        return load_bert_config(args.config)
    if derived is None:
        raise SystemExit(f"{args.input}: no config.json/bert_config.json beside it: pass --config PRESET_OR_YAML")
    return derived


def to_mindspore(args: argparse.Namespace) -> None:
    skipped: list[str] = []
    derived = None
    if args.source == "hf":
        tensors, hf_config = read_hf(args.input)
        params = hf_to_ms(tensors)
        derived = config_from_hf_json(hf_config, str(args.input)) if hf_config else None
    elif args.source == "tf":
        tensors, tf_config = read_tf(args.input)
        params = tf_to_ms(tensors)
        derived = config_from_hf_json(tf_config, str(args.input), tanh_gelu=True) if tf_config else None
    else:
        params, skipped = zoo_to_ms(read_checkpoint(args.input))
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


def to_huggingface(args: argparse.Namespace) -> None:
    from safetensors.numpy import save_file
    config = pick_config(args, None)
    network = BertForPreTraining(config)
    load_into(network, read_checkpoint(args.input), f"checkpoint {args.input}")  # validates names and shapes
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
    config = pick_config(args, None)
    if config.use_relative_positions:
        raise SystemExit(f"{args.input}: Google's TF BERT has no relative positions (NEZHA); keep this checkpoint "
                         f"in MindSpore format or export it with --to hf")
    network = BertForPreTraining(config)
    load_into(network, read_checkpoint(args.input), f"checkpoint {args.input}")  # validates names and shapes
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
