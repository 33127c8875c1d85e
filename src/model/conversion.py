"""Parameter-name mappings between this project and HuggingFace, Google TF BERT and the MindSpore model zoo.

All functions work on {name: numpy array} dictionaries; reading and writing files is tools/convert_checkpoint.py's.
Our names are HuggingFace's BertForPreTraining names, so the HuggingFace mapping is nearly the identity.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from src.config import BertConfig

Params = dict[str, np.ndarray]

# ---------------------------------------------------------------- HuggingFace

# The decoder weight is the word-embedding table and the decoder bias is cls.predictions.bias (tied in HF).
HF_TIED = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
                  "relu": "relu"}


def hf_to_ms(hf: Mapping[str, np.ndarray]) -> Params:
    """HuggingFace BERT / NEZHA state dict (any head, with or without the `bert.` prefix) -> our names."""
    params: Params = {}
    for name, value in hf.items():
        if name in HF_TIED or name.endswith("position_ids") or name.endswith("positions_encoding"):
            continue
        name = re.sub(r"^nezha\.", "bert.", name)
        if name.startswith(("embeddings.", "encoder.", "pooler.")):
            name = "bert." + name
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name))
        params[name] = np.asarray(value)
    return params


def ms_to_hf(params: Mapping[str, np.ndarray], config: BertConfig) -> Params:
    """Our parameters -> a HuggingFace BertForPreTraining / NezhaForPreTraining state dict (tied keys omitted)."""
    if config.use_relative_positions and config.relative_position_type == "learned":
        raise ValueError("HuggingFace has no model with learned relative positions (the model zoo's NEZHA); "
                         "keep this checkpoint in MindSpore format")
    prefix = "nezha." if config.use_relative_positions else "bert."
    return {re.sub(r"^bert\.", prefix, name): np.asarray(value) for name, value in params.items()}


# The fields that set parameter shapes: without them the model would silently be BERT-base's shape.
HF_SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def config_from_hf_json(hf_config: Mapping[str, Any], source: str, tanh_gelu: bool = False) -> BertConfig:
    """Our BertConfig from a HuggingFace config.json or a Google bert_config.json.

    tanh_gelu: Google's TF BERT names its tanh-approximated GELU "gelu"; pass True for its bert_config.json.
    """
    act = hf_config.get("hidden_act", "gelu")
    if not isinstance(act, str) or act not in HF_ACTIVATIONS:
        raise ValueError(f"{source}: hidden_act {act!r} is not supported; supported: {', '.join(HF_ACTIVATIONS)}")
    missing = [field for field in HF_SHAPE_FIELDS if field not in hf_config]
    if missing:
        raise ValueError(f"{source} lacks {', '.join(missing)}: a BERT config.json gives the model's shape; add "
                         f"{'it' if len(missing) == 1 else 'them'}, or pass --config PRESET_OR_YAML")
    is_nezha = hf_config.get("model_type") == "nezha" or "max_relative_position" in hf_config
    fields = (*HF_SHAPE_FIELDS, "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
              "type_vocab_size", "initializer_range", "layer_norm_eps")
    values = {field: hf_config[field] for field in fields if field in hf_config}
    values["hidden_act"] = "gelu_tanh" if tanh_gelu and act == "gelu" else HF_ACTIVATIONS[act]
    max_positions = values.get("max_position_embeddings", 512)
    values["seq_length"] = min(128, max_positions) if isinstance(max_positions, int) else 128
    if is_nezha:
        values.update(use_relative_positions=True, relative_position_type="functional",
                      max_relative_position=hf_config.get("max_relative_position", 64))
    try:
        return BertConfig(**values)
    except (TypeError, ValueError) as error:  # a field of the wrong type or out of range
        raise ValueError(f"{source}: {error}; fix it, or pass --config PRESET_OR_YAML") from None


def hf_json_from_config(config: BertConfig) -> dict[str, Any]:
    """A HuggingFace config.json for BertForPreTraining or NezhaForPreTraining."""
    nezha = config.use_relative_positions
    hf_config = {
        "architectures": ["NezhaForPreTraining" if nezha else "BertForPreTraining"],
        "model_type": "nezha" if nezha else "bert",
        "hidden_act": {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}[config.hidden_act],
    }
    for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                  "type_vocab_size", "initializer_range", "layer_norm_eps"):
        hf_config[field] = getattr(config, field)
    if nezha:
        hf_config["max_relative_position"] = config.max_relative_position
    return hf_config


# ---------------------------------------------------------------- Google TensorFlow BERT

TF_SPECIAL = {
    "cls.predictions.bias": "cls/predictions/output_bias",
    "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",  # [2, hidden], used transposed
    "cls.seq_relationship.bias": "cls/seq_relationship/output_bias",
}
TF_SPECIAL_INVERSE = {tf: ours for ours, tf in TF_SPECIAL.items()}


def ms_name_to_tf(name: str) -> tuple[str, bool]:
    """Our name -> (TF variable name, whether the array is transposed: TF kernels are [in, out])."""
    if name in TF_SPECIAL:
        return TF_SPECIAL[name], False
    path = re.sub(r"\.layer\.(\d+)\.", r".layer_\1.", name)
    owner, leaf = path.rsplit(".", 1)
    if owner.endswith("_embeddings"):
        return owner.replace(".", "/"), False
    if owner.endswith("LayerNorm"):
        return f"{owner}.{'gamma' if leaf == 'weight' else 'beta'}".replace(".", "/"), False
    return f"{owner}.{'kernel' if leaf == 'weight' else leaf}".replace(".", "/"), leaf == "weight"


def tf_name_to_ms(tf_name: str) -> tuple[str, bool] | None:
    """TF variable name -> (our name, transposed), or None for optimizer and training state."""
    if tf_name in TF_SPECIAL_INVERSE:
        return TF_SPECIAL_INVERSE[tf_name], False
    if not tf_name.startswith(("bert/", "cls/")) or re.search(r"adam_[mv]|/Momentum|global_step", tf_name):
        return None
    path = re.sub(r"/layer_(\d+)/", r"/layer/\1/", tf_name).replace("/", ".")
    if path.endswith("_embeddings"):
        return path + ".weight", False
    owner, leaf = path.rsplit(".", 1)
    leaf = {"gamma": "weight", "beta": "bias", "kernel": "weight"}.get(leaf, leaf)
    return f"{owner}.{leaf}", path.endswith(".kernel")


def tf_to_ms(tf: Mapping[str, np.ndarray]) -> Params:
    params: Params = {}
    for tf_name, value in tf.items():
        mapped = tf_name_to_ms(tf_name)
        if mapped is not None:
            name, transposed = mapped
            params[name] = np.ascontiguousarray(np.asarray(value).T if transposed else np.asarray(value))
    return params


def ms_to_tf(params: Mapping[str, np.ndarray]) -> Params:
    tf: Params = {}
    for name, value in params.items():
        tf_name, transposed = ms_name_to_tf(name)
        tf[tf_name] = np.ascontiguousarray(value.T if transposed else value)
    return tf


# ---------------------------------------------------------------- MindSpore model zoo (models/official/nlp/Bert)

_ZOO_LAYER = "bert.bert.bert_encoder.layers.{i}."
# (our name or prefix, zoo name or prefix); a prefix ends in "."; LayerNorm leaves are weight/bias here,
# gamma/beta there. The first zoo spelling of an entry is the one written; later ones are older zoo releases.
ZOO_RULES: tuple[tuple[str, str], ...] = (
    ("bert.embeddings.word_embeddings.weight", "bert.bert.bert_embedding_lookup.embedding_table"),
    ("bert.embeddings.token_type_embeddings.weight",
     "bert.bert.bert_embedding_postprocessor.token_type_embedding.embedding_table"),
    ("bert.embeddings.token_type_embeddings.weight", "bert.bert.bert_embedding_postprocessor.embedding_table"),
    ("bert.embeddings.position_embeddings.weight",
     "bert.bert.bert_embedding_postprocessor.full_position_embedding.embedding_table"),
    ("bert.embeddings.position_embeddings.weight", "bert.bert.bert_embedding_postprocessor.full_position_embeddings"),
    ("bert.embeddings.LayerNorm.", "bert.bert.bert_embedding_postprocessor.layernorm."),
    ("bert.encoder.layer.{i}.attention.self.query.", _ZOO_LAYER + "attention.attention.query_layer."),
    ("bert.encoder.layer.{i}.attention.self.key.", _ZOO_LAYER + "attention.attention.key_layer."),
    ("bert.encoder.layer.{i}.attention.self.value.", _ZOO_LAYER + "attention.attention.value_layer."),
    ("bert.encoder.layer.{i}.attention.self.relative_positions.weight",
     _ZOO_LAYER + "attention.attention._generate_relative_positions_embeddings.embeddings_table"),
    ("bert.encoder.layer.{i}.attention.output.dense.", _ZOO_LAYER + "attention.output.dense."),
    ("bert.encoder.layer.{i}.attention.output.LayerNorm.", _ZOO_LAYER + "attention.output.layernorm."),
    ("bert.encoder.layer.{i}.intermediate.dense.", _ZOO_LAYER + "intermediate."),
    ("bert.encoder.layer.{i}.output.dense.", _ZOO_LAYER + "output.dense."),
    ("bert.encoder.layer.{i}.output.LayerNorm.", _ZOO_LAYER + "output.layernorm."),
    ("bert.pooler.dense.", "bert.bert.dense."),
    ("cls.predictions.transform.dense.", "bert.cls1.dense."),
    ("cls.predictions.transform.LayerNorm.", "bert.cls1.layernorm."),
    ("cls.predictions.bias", "bert.cls1.output_bias"),
    ("cls.seq_relationship.", "bert.cls2.dense."),
)


def _rule_regex(template: str) -> re.Pattern[str]:
    pattern = re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)")
    return re.compile(pattern + (r"(?P<leaf>\w+)$" if template.endswith(".") else "$"))


def _rename(name: str, source_side: int) -> str | None:
    """Map a name across ZOO_RULES from side 0 (ours) or 1 (zoo) to the other side; None if no rule fits."""
    for rule in ZOO_RULES:
        match = _rule_regex(rule[source_side]).match(name)
        if not match:
            continue
        target = rule[1 - source_side].replace("{i}", match.groupdict().get("i") or "")
        leaf = match.groupdict().get("leaf")
        if leaf is None:
            return target
        if "LayerNorm" in rule[0]:
            leaf = ({"weight": "gamma", "bias": "beta"} if source_side == 0
                    else {"gamma": "weight", "beta": "bias"})[leaf]
        return target + leaf
    return None


def zoo_to_ms(zoo: Mapping[str, np.ndarray]) -> tuple[Params, list[str]]:
    """Model-zoo checkpoint -> (our parameters, the zoo entries left out: optimizer state, task heads)."""
    params: Params = {}
    skipped = []
    for name, value in zoo.items():
        ours = _rename(name, 1)
        if ours is None:
            skipped.append(name)
        else:
            params[ours] = np.asarray(value)
    return params, skipped


def ms_to_zoo(params: Mapping[str, np.ndarray]) -> Params:
    zoo: Params = {}
    for name, value in params.items():
        zoo_name = _rename(name, 0)
        if zoo_name is None:
            raise ValueError(f"parameter '{name}' has no counterpart in the model zoo's BERT")
        zoo[zoo_name] = np.asarray(value)
    return zoo
