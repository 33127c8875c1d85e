"""Model configuration: the BertConfig dataclass and the YAML presets under configs/model/."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"  # the shipped run configs and model presets
PRESET_DIR = CONFIG_DIR / "model"

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
RELATIVE_POSITION_TYPES = ("functional", "learned")
FLOAT_TYPES = ("float32", "float16")


@dataclass(frozen=True)
class BertConfig:
    """Hyper-parameters of BertModel; field names follow the model zoo's BertConfig.

    use_relative_positions switches to NEZHA: no absolute position embedding, and a relative-position term
    added to attention scores and outputs. relative_position_type picks how that term is made:
    "functional" (the NEZHA paper and public NEZHA weights: fixed sinusoids, clipped at max_relative_position=64)
    or "learned" (the MindSpore model zoo's BERT_NEZHA: one trainable table per layer, clipped at 16).
    hidden_act "gelu" is the exact erf GELU (HuggingFace); "gelu_tanh" the tanh approximation that
    Google's TF BERT and the MindSpore model zoo use.
    """

    seq_length: int = 128
    vocab_size: int = 21128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    use_relative_positions: bool = False
    relative_position_type: str = "functional"
    max_relative_position: int = 64
    layer_norm_eps: float = 1e-12
    dtype: str = "float32"
    compute_type: str = "float32"

    def __post_init__(self) -> None:
        for field in ("seq_length", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                      "intermediate_size", "max_position_embeddings", "type_vocab_size", "max_relative_position"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field} {value!r} is out of range: pass a whole number of at least 1")
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0 <= getattr(self, field) < 1:
                raise ValueError(f"{field} {getattr(self, field)} is out of range: pass a probability in [0, 1)")
        if not self.layer_norm_eps > 0 or not self.initializer_range > 0:
            raise ValueError("layer_norm_eps and initializer_range must be positive")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act '{self.hidden_act}' is not one of {', '.join(ACTIVATIONS)}")
        if self.relative_position_type not in RELATIVE_POSITION_TYPES:
            raise ValueError(f"relative_position_type '{self.relative_position_type}' is not one of "
                             f"{', '.join(RELATIVE_POSITION_TYPES)}")
        for field in ("dtype", "compute_type"):
            if getattr(self, field) not in FLOAT_TYPES:
                raise ValueError(f"{field} '{getattr(self, field)}' is not one of {', '.join(FLOAT_TYPES)}")
        if self.seq_length > self.max_position_embeddings:
            raise ValueError(f"seq_length {self.seq_length} exceeds max_position_embeddings "
                             f"{self.max_position_embeddings}")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def replace(self, **changes: Any) -> BertConfig:
        """A copy with some fields changed (e.g. dropout off for evaluation, a vocab size from vocab.txt)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def require_ranges(settings: Any, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
                   probabilities: tuple[str, ...] = ()) -> None:
    """One line for the first numeric field of a settings dataclass that is out of range or not a number."""
    for names, test, wanted in ((positive, lambda v: v > 0, "a number above 0"),
                                (non_negative, lambda v: v >= 0, "a number of at least 0"),
                                (probabilities, lambda v: 0 <= v < 1, "a number in [0, 1)")):
        for name in names:
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not test(value):
                raise ValueError(f"{name} {value!r} is out of range: pass {wanted}")


def str2bool(value: str | bool) -> bool:
    """argparse type for the model zoo's "true"/"false" flags."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{value}'")


def known_presets() -> list[str]:
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def dataclass_from_mapping(cls: type, values: dict[str, Any], source: str) -> Any:
    """Build a dataclass from a YAML mapping, naming the file and the bad key on an unknown field."""
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a mapping of {cls.__name__} fields, got {type(values).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"{source}: unknown {cls.__name__} field(s) {', '.join(unknown)}; "
                         f"known fields are {', '.join(sorted(fields))}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {error}") from None


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping, with one line naming the file when it is empty, unparsable or not a mapping (an empty
    file would otherwise silently mean every default: BERT-base)."""
    try:
        with open(path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ValueError(f"{what} {path}{where} is not valid YAML ({getattr(error, 'problem', None) or error}): "
                         f"fix the file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not UTF-8 text: save it as UTF-8") from None
    if not values:
        raise ValueError(f"{what} {path} is empty: give its fields (see the YAML files in configs/)")
    if not isinstance(values, dict):
        raise ValueError(f"{what} {path} is not a mapping of field: value lines (see the YAML files in configs/)")
    return values


def load_bert_config(name_or_path: str | Path, **overrides: Any) -> BertConfig:
    """Load a preset by name ("tiny", "base", "nezha-base", ...) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown model preset '{name_or_path}': known presets are "
                             f"{', '.join(known_presets())}, or pass the path of a YAML file")
    values = read_yaml(path, "model config")
    return dataclass_from_mapping(BertConfig, {**values, **overrides}, f"model config {path}")


def save_bert_config(config: BertConfig, path: str | Path) -> Path:
    """Write config as a YAML that load_bert_config reads back (kept next to converted checkpoints)."""
    path = Path(path)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class OptimizerSettings:
    """One optimizer's hyper-parameters (a section of the model zoo's pretrain_config.yaml)."""

    learning_rate: float = 3e-4
    end_learning_rate: float = 0.0
    power: float = 2.0
    warmup_steps: int = 10000
    weight_decay: float = 0.01
    eps: float = 1e-8
    beta1: float = 0.9
    beta2: float = 0.999
    momentum: float = 0.9

    def __post_init__(self) -> None:
        require_ranges(self, positive=("power", "eps"),
                       non_negative=("learning_rate", "end_learning_rate", "warmup_steps", "weight_decay"),
                       probabilities=("beta1", "beta2", "momentum"))


@dataclass(frozen=True)
class LossScaleSettings:
    """Dynamic loss scale: divide by factor on overflow, multiply after `window` clean steps."""

    initial: float = 2.0 ** 32
    factor: float = 2.0
    window: int = 1000

    def __post_init__(self) -> None:
        require_ranges(self, positive=("initial", "window"))
        if not self.factor > 1:
            raise ValueError(f"loss_scale factor {self.factor} is out of range: pass a number above 1")


CLASSIFIER_POOLINGS = ("cls", "mean")
OBJECTIVES = ("mlm_nsp", "mlm")  # the pretraining loss: masked LM + next sentence prediction, or masked LM alone
LR_SCHEDULES = ("polynomial", "linear", "cosine")  # after the warmup (src/train/optim.py)


@dataclass(frozen=True)
class RunConfig:
    """What the entry scripts read from --config (configs/pretrain*.yaml, configs/finetune*.yaml): the network
    preset, batch size, optimizer settings, loss scale, clipping, seed.

    warmup_proportion, when set, replaces the optimizer's warmup_steps by that share of the run's updates
    (the model zoo's finetuning uses 10%). classifier_pooling "mean" feeds the classification head the mean of
    the token outputs instead of the [CLS] pooler, which only NSP trains (Sentence-BERT's choice).

    The budget recipes (docs/pretraining.md#budget-recipes), each off by default:
    objective "mlm" (pretraining only) trains without the NSP term; dropout false trains with the model's dropout
    probabilities at 0 (the model YAML keeps them, so a finetuning run whose config leaves dropout on has them);
    lr_schedule "linear" or "cosine" cools the learning rate down from its peak after the warmup to
    end_learning_rate at the run's last step, where "polynomial" is the zoo's decay.
    """

    bert_network: str = "base"
    batch_size: int = 32
    optimizer: str = "Lamb"
    optimizers: dict = dataclasses.field(default_factory=dict)  # name -> OptimizerSettings
    loss_scale: LossScaleSettings = LossScaleSettings()
    clip_norm: float = 1.0
    seed: int = 0
    shuffle_buffer: int = 10000
    warmup_proportion: float | None = None
    classifier_pooling: str = "cls"  # what the classification head reads: "cls" (pooler) or "mean" of the tokens
    objective: str = "mlm_nsp"
    dropout: bool = True
    lr_schedule: str = "polynomial"

    def __post_init__(self) -> None:
        require_ranges(self, positive=("batch_size", "clip_norm", "shuffle_buffer"))
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective '{self.objective}' is not one of {', '.join(OBJECTIVES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule '{self.lr_schedule}' is not one of {', '.join(LR_SCHEDULES)}")
        if not isinstance(self.dropout, bool):
            raise ValueError(f"dropout {self.dropout!r} is not true or false")
        if self.classifier_pooling not in CLASSIFIER_POOLINGS:
            raise ValueError(f"classifier_pooling '{self.classifier_pooling}' is not one of {CLASSIFIER_POOLINGS}")
        if self.warmup_proportion is not None and not 0 <= self.warmup_proportion <= 1:
            raise ValueError(f"warmup_proportion {self.warmup_proportion} is out of range: pass a share in [0, 1]")

    def model_config(self, config: BertConfig) -> BertConfig:
        """The model as this run trains it: dropout off when the run config says dropout: false."""
        return config if self.dropout else config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

    def optimizer_settings(self, total_updates: int) -> OptimizerSettings:
        if self.optimizer not in self.optimizers:
            raise ValueError(f"optimizer '{self.optimizer}' has no settings in the config: "
                             f"add an optimizers.{self.optimizer} section")
        settings = self.optimizers[self.optimizer]
        if self.warmup_proportion is not None:
            settings = dataclasses.replace(settings, warmup_steps=int(total_updates * self.warmup_proportion))
        return settings


def load_run_config(path: str | Path, bert_network: str | None = None) -> RunConfig:
    """The run config YAML; bert_network, when given, replaces the file's (a command-line override)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config {path} does not exist: pass one of the YAML files in configs/")
    values = read_yaml(path, "run config")
    source = str(path)
    optimizers = {name: dataclass_from_mapping(OptimizerSettings, settings, f"{source} optimizers.{name}")
                  for name, settings in (values.pop("optimizers", None) or {}).items()}
    loss_scale = dataclass_from_mapping(LossScaleSettings, values.pop("loss_scale", None) or {},
                                        f"{source} loss_scale")
    if bert_network:
        values["bert_network"] = bert_network
    return dataclass_from_mapping(RunConfig, {**values, "optimizers": optimizers, "loss_scale": loss_scale},
                                  source)
