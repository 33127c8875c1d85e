"""Google's BERT code (the bert-tensorflow package: modeling.py, run_pretraining.py, create_pretraining_data.py,
tokenization.py) run under TensorFlow 2, as the reference the tests and bench/ compare against.

bert-tensorflow 1.0.4 (the last release) already imports tensorflow.compat.v1. What TensorFlow 2 lacks is
tf.contrib, of which modeling.py uses layer_norm (tf_slim's layer_norm is that function, moved out of contrib),
and tf.layers.dense, which Keras 3 no longer provides (its replacement, tf_keras, pulls the full 1.9 GB
tensorflow package beside tensorflow-cpu): `_dense` below makes the same variables (scope/kernel [in, out],
scope/bias) and computes x @ kernel + bias. Nothing of Google's is copied: the shim only supplies those two
names. Each command runs in a process of its own: Google's scripts define absl flags when imported, and
TensorFlow stays out of the MindSpore test process.

    python tests/google_bert.py create_pretraining_data --input_file=... --output_file=...   (Google's flags)
    python tests/google_bert.py tokenize VOCAB TEXT_FILE OUT_JSON LOWER_CASE   (tokens of each line)
    python tests/google_bert.py basic_tokenize TEXT_FILE OUT_JSON   (BasicTokenizer's words of each line,
        {"true": lower-cased, "false": cased})
    python tests/google_bert.py checkpoint OUT_DIR   (a random Google BertModel with pretraining heads: its
        bert_model.ckpt, bert_config.json, inputs.npz and Google's outputs.npz)
    python tests/google_bert.py restore CHECKPOINT INPUTS OUTPUTS   (Google's outputs from a checkpoint: every
        variable of Google's graph must be in it, with its shape)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

SEQ_LENGTH = 16
PREDICTIONS = 4


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """One command of this module in a fresh Python; its stderr tail is the error if it fails."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, __file__, *map(str, args)], capture_output=True, text=True,
                            env=env, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"google_bert.py {args[0]} failed:\n{result.stderr[-3000:]}")
    return result


def import_google_bert():
    """tensorflow.compat.v1 in graph mode, with tf.contrib.layers (tf_slim) and tf.layers.dense supplied."""
    import tensorflow.compat.v1 as tf
    import tf_slim

    def _dense(inputs, units, activation=None, name=None, kernel_initializer=None):
        with tf.variable_scope(name, default_name="dense"):
            kernel = tf.get_variable("kernel", [inputs.shape[-1], units], initializer=kernel_initializer)
            bias = tf.get_variable("bias", [units], initializer=tf.zeros_initializer())
            outputs = tf.tensordot(inputs, kernel, [[inputs.shape.ndims - 1], [0]]) + bias
            return activation(outputs) if activation else outputs

    contrib = types.ModuleType("tensorflow.contrib")
    contrib.layers = tf_slim.layers
    sys.modules["tensorflow.contrib"] = contrib
    tf.layers = types.SimpleNamespace(dense=_dense)
    tf.disable_eager_execution()
    return tf


def create_pretraining_data(flags: list[str]) -> None:
    import_google_bert()
    from absl import app
    from bert import create_pretraining_data as google
    app.run(google.main, argv=[sys.argv[0], *flags])


def google_full_tokenizer(vocab: str, do_lower_case: bool):
    """Google's tokenization.FullTokenizer (in this process: it imports TensorFlow)."""
    import_google_bert()
    from absl import flags
    flags.FLAGS.mark_as_parsed()  # tokenization reads a flag (preserve_unused_tokens, default False)
    from bert.tokenization import FullTokenizer
    return FullTokenizer(vocab, do_lower_case=do_lower_case)


def tokenize(vocab: str, text_file: str, output: str, lower_case: str) -> None:
    tokenizer = google_full_tokenizer(vocab, lower_case == "true")
    with open(text_file, encoding="utf-8") as handle:
        tokens = [tokenizer.tokenize(line.rstrip("\n")) for line in handle]
    Path(output).write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")


def basic_tokenize(text_file: str, output: str) -> None:
    import_google_bert()
    from absl import flags
    flags.FLAGS.mark_as_parsed()  # tokenization reads a flag (preserve_unused_tokens, default False)
    from bert.tokenization import BasicTokenizer
    with open(text_file, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle]
    words = {str(lower).lower(): [BasicTokenizer(do_lower_case=lower).tokenize(line) for line in lines]
             for lower in (True, False)}
    Path(output).write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")


def _pretraining_graph(tf, config):
    """Google's BertModel and its pretraining heads (run_pretraining.py's functions), inference mode."""
    from bert import modeling, run_pretraining
    inputs = {
        "input_ids": tf.placeholder(tf.int32, [None, SEQ_LENGTH]),
        "input_mask": tf.placeholder(tf.int32, [None, SEQ_LENGTH]),
        "token_type_ids": tf.placeholder(tf.int32, [None, SEQ_LENGTH]),
        "masked_lm_positions": tf.placeholder(tf.int32, [None, PREDICTIONS]),
    }
    model = modeling.BertModel(config, is_training=False, input_ids=inputs["input_ids"],
                               input_mask=inputs["input_mask"], token_type_ids=inputs["token_type_ids"])
    batch = tf.shape(inputs["input_ids"])[0]
    _, _, mlm_log_probs = run_pretraining.get_masked_lm_output(
        config, model.get_sequence_output(), model.get_embedding_table(), inputs["masked_lm_positions"],
        tf.zeros([batch, PREDICTIONS], tf.int32), tf.ones([batch, PREDICTIONS]))
    _, _, nsp_log_probs = run_pretraining.get_next_sentence_output(config, model.get_pooled_output(),
                                                                   tf.zeros([batch], tf.int32))
    outputs = {"sequence_output": model.get_sequence_output(), "pooled_output": model.get_pooled_output(),
               "mlm_log_probs": mlm_log_probs, "nsp_log_probs": nsp_log_probs}
    return inputs, outputs


def _feed(inputs: dict, arrays: dict) -> dict:
    return {placeholder: arrays[name] for name, placeholder in inputs.items()}


def checkpoint(out_dir: str) -> None:
    """Every variable random (LayerNorm and biases too, so a misplaced one shows), saved by tf.train.Saver."""
    tf = import_google_bert()
    from bert import modeling
    config = modeling.BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bert_config.json").write_text(config.to_json_string())
    rng = np.random.default_rng(7)
    mask = np.ones((3, SEQ_LENGTH), np.int32)
    mask[1, 11:] = 0
    mask[2, 6:] = 0
    arrays = {"input_ids": rng.integers(0, 120, (3, SEQ_LENGTH)).astype(np.int32) * mask,
              "input_mask": mask,
              "token_type_ids": (np.arange(SEQ_LENGTH)[None, :] >= np.array([[9], [5], [3]])).astype(np.int32) * mask,
              "masked_lm_positions": np.array([[1, 4, 9, 15], [2, 3, 7, 10], [1, 2, 4, 5]], np.int32)}
    inputs, outputs = _pretraining_graph(tf, config)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        for variable in tf.global_variables():
            shape = variable.shape.as_list()
            base = 1.0 if variable.name.endswith("gamma:0") else 0.0
            variable.load(base + rng.normal(0, 0.2, shape).astype(np.float32), session)
        tf.train.Saver().save(session, str(out / "bert_model.ckpt"), write_meta_graph=False)
        np.savez(out / "inputs.npz", **arrays)
        np.savez(out / "outputs.npz", **session.run(outputs, _feed(inputs, arrays)))


def restore(checkpoint_path: str, inputs_file: str, outputs_file: str) -> None:
    tf = import_google_bert()
    from bert import modeling
    config = modeling.BertConfig.from_json_file(str(Path(checkpoint_path).parent / "bert_config.json"))
    arrays = dict(np.load(inputs_file))
    inputs, outputs = _pretraining_graph(tf, config)
    with tf.Session() as session:
        tf.train.Saver().restore(session, checkpoint_path)
        np.savez(outputs_file, **session.run(outputs, _feed(inputs, arrays)))


COMMANDS = {"create_pretraining_data": lambda args: create_pretraining_data(args),
            "tokenize": lambda args: tokenize(*args), "basic_tokenize": lambda args: basic_tokenize(*args),
            "checkpoint": lambda args: checkpoint(*args),
            "restore": lambda args: restore(*args)}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](sys.argv[2:])
