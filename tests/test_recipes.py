"""The budget-pretraining recipes (docs/pretraining.md#budget-recipes), each off by default: records without NSP
pairs and the MLM-only loss, masking rates up to 0.4, dropout off in pretraining, warmup + linear or cosine
cooldown, a budget in minutes; and the default records byte for byte as before them."""
from __future__ import annotations

import hashlib
import math
import types

import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor

import run_pretrain
from src.config import BertConfig, OptimizerSettings, RunConfig, load_run_config
from src.data.corpus import read_documents
from src.data.records import iter_tfrecord
from src.data.tokenization import FullTokenizer
from src.model.kernels.dropout import seed_dropout
from src.model.pretraining import BertForPreTraining, BertNetworkWithLoss
from src.train import loop
from src.train.optim import WarmupCooldownLR, WarmupPolynomialDecayLR, create_optimizer
from tests.helpers import SMALL, make_batch, write_run_config
from tools import create_pretraining_data

SEQ = 64
COLUMNS = {"input_ids", "input_mask", "segment_ids", "next_sentence_labels", "masked_lm_positions", "masked_lm_ids",
           "masked_lm_weights"}


def make_records(text_file, vocab, output, *flags: str):
    create_pretraining_data.main(["--input_file", str(text_file), "--output_dir", str(output), "--vocab_file",
                                  str(vocab), "--max_seq_length", str(SEQ), "--dupe_factor", "1", "--processes", "1",
                                  "--docs_per_shard", "6", *flags])
    return output


def read_rows(directory) -> list[dict[str, np.ndarray]]:
    return [row for path in sorted(directory.glob("part-*.tfrecord")) for row in iter_tfrecord(path)]


def records_sha256(directory) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.glob("part-*")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def mlm_records(tmp_path_factory, wiki_text_dir, wiki_vocab):
    """Records without NSP pairs from the sample's 17-article third file, short_seq_prob 0, by both draw modes."""
    output = tmp_path_factory.mktemp("mlm_records")
    return {draws: make_records(wiki_text_dir / "wiki_0002.txt", wiki_vocab, output / draws, "--next_sentence",
                                "false", "--short_seq_prob", "0", "--random_draws", draws)
            for draws in ("google", "numpy")}


# Records of wiki_0002.txt (seq 64, 10 predictions, dupe 1, shards of 6 articles, seed 12345) made by the code before
# the recipes existed (the working tree of 81d9ce1 with its uncommitted restructuring), default flags otherwise.
GOLDEN_VOCAB = "c73cad3a32d144d357c6f59a7df9c81572928e481caddf1abfc769f8d76fdd4b"
GOLDEN_RECORDS = {  # (--random_draws, --do_whole_word_mask) -> sha256 of the shards' names and bytes
    ("google", "false"): "58a98af3fa7490016e1725975719a890b1337cd320f3be9360e1914d939918a8",
    ("numpy", "false"): "1808c26adf9373e95479bf3f0279eb6d13a9e45abbf5b6e7a1ba89d0cf5e7f20",
    ("google", "true"): "a84aff5164ab8d4011986b3cca8e1e912cf3a3a385ea14ed02c14e4d6045aacf",
    ("numpy", "true"): "9730e75dc3e5fd2294b46e9b4ac112234d5f70ac0dcf5db59867f90cd313e643",
}


@pytest.mark.parametrize("random_draws, whole_words", list(GOLDEN_RECORDS))
def test_default_records_are_byte_identical_to_those_before_the_recipes(tmp_path, wiki_text_dir, wiki_vocab,
                                                                        random_draws, whole_words):
    assert hashlib.sha256(wiki_vocab.read_bytes()).hexdigest() == GOLDEN_VOCAB, "the test vocab itself changed"
    output = make_records(wiki_text_dir / "wiki_0002.txt", wiki_vocab, tmp_path / "records",
                          "--max_predictions_per_seq", "10", "--random_draws", random_draws, "--do_whole_word_mask",
                          whole_words)
    assert records_sha256(output) == GOLDEN_RECORDS[random_draws, whole_words]


def test_max_predictions_per_seq_stays_20_by_default_at_the_default_rate(tmp_path, wiki_text_dir, wiki_vocab):
    text = wiki_text_dir / "wiki_0002.txt"
    default = make_records(text, wiki_vocab, tmp_path / "default")
    twenty = make_records(text, wiki_vocab, tmp_path / "twenty", "--max_predictions_per_seq", "20")
    assert records_sha256(default) == records_sha256(twenty)


@pytest.mark.parametrize("random_draws", ["google", "numpy"])
def test_records_without_nsp_tile_each_document_with_contiguous_full_segments(mlm_records, wiki_text_dir,
                                                                              wiki_vocab, random_draws):
    import json
    directory = mlm_records[random_draws]
    assert json.loads((directory / "manifest.json").read_text())["settings"]["next_sentence"] is False
    rows = read_rows(directory)
    assert set(rows[0]) == COLUMNS and rows[0]["masked_lm_positions"].shape == (20,)
    tokenizer = FullTokenizer(str(wiki_vocab), True)
    cls, sep = tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]
    continues = np.array([token.startswith("##") for token in tokenizer.vocab])
    windows: dict[tuple, int] = {}
    for row in rows:
        assert row["next_sentence_labels"].tolist() == [0] and not row["segment_ids"].any()
        length = int(row["input_mask"].sum())
        ids = row["input_ids"].copy()
        masked = row["masked_lm_weights"] > 0
        ids[row["masked_lm_positions"][masked]] = row["masked_lm_ids"][masked]  # the text before masking
        assert ids[0] == cls and ids[length - 1] == sep and sep not in ids[1:length - 1]
        window = tuple(ids[1:length - 1].tolist())
        windows[window] = windows.get(window, 0) + 1
    full = 0
    for document in read_documents(wiki_text_dir / "wiki_0002.txt"):
        tokens = [i for sentence in tokenizer.ids_batch(document) for i in sentence]
        start = 0
        while start < len(tokens):  # the document is its windows, in order, each used once
            count = next(n for n in range(min(SEQ - 2, len(tokens) - start), 0, -1)
                         if windows.get(tuple(tokens[start:start + n]), 0))
            windows[tuple(tokens[start:start + count])] -= 1
            end = start + count
            if end < len(tokens):  # not the document's last: full, or cut back to the start of a word it would split
                assert not continues[tokens[end]] and continues[tokens[end + 1:start + SEQ - 1]].all()
                full += count == SEQ - 2
            start = end
    assert not any(windows.values())
    assert full / len(rows) == pytest.approx(0.71, abs=0.02)  # the rest are cut back by a word or end a document


@pytest.mark.parametrize("next_sentence", ["true", "false"])
@pytest.mark.parametrize("random_draws", ["google", "numpy"])
def test_masking_rate_04_masks_40_percent_of_tokens_in_whole_words(tmp_path, wiki_text_dir, wiki_vocab,
                                                                  random_draws, next_sentence):
    output = make_records(wiki_text_dir / "wiki_0002.txt", wiki_vocab, tmp_path / "records", "--masked_lm_prob",
                          "0.4", "--do_whole_word_mask", "true", "--random_draws", random_draws, "--next_sentence",
                          next_sentence)
    rows = read_rows(output)
    assert rows[0]["masked_lm_positions"].shape == (26,)  # max_predictions_per_seq follows: round(64 * 0.4)
    lengths = np.array([row["input_mask"].sum() for row in rows])
    masked = np.array([row["masked_lm_weights"].sum() for row in rows])
    specials = 3 if next_sentence == "true" else 2  # [CLS] A [SEP] B [SEP], or [CLS] A [SEP]
    assert (masked / lengths).mean() == pytest.approx(0.40, abs=0.01)
    assert (masked / (lengths - specials)).mean() == pytest.approx(0.42, abs=0.015)  # of the candidates
    vocab = FullTokenizer(str(wiki_vocab), True).vocab
    continues = np.array([token.startswith("##") for token in vocab])
    special = {vocab["[CLS]"], vocab["[SEP]"]}
    split = kept = as_mask = total = 0
    for row, length in zip(rows, lengths):
        chosen = row["masked_lm_positions"][row["masked_lm_weights"] > 0]
        original = row["input_ids"].copy()
        original[chosen] = row["masked_lm_ids"][:len(chosen)]
        words: list[list[int]] = []  # Google's candidates: a "##" piece continues the word before [SEP] too
        for position in (p for p in range(length) if original[p] not in special):
            if words and continues[original[position]]:
                words[-1].append(position)
            else:
                words.append([position])
        split += sum(0 < len(set(word) & set(chosen.tolist())) < len(word) for word in words)
        kept += (row["input_ids"][chosen] == original[chosen]).sum()
        as_mask += (row["input_ids"][chosen] == vocab["[MASK]"]).sum()
        total += len(chosen)
    assert split == 0
    assert as_mask / total == pytest.approx(0.8, abs=0.015)
    assert kept / total == pytest.approx(0.1, abs=0.015)  # 10% kept (plus the few random draws of the same token)


def restored_windows(directory) -> list[tuple[int, ...]]:
    """The text of each record without NSP pairs, masked tokens put back, [CLS] and [SEP] left out, sorted."""
    windows = []
    for row in read_rows(directory):
        ids, masked = row["input_ids"].copy(), row["masked_lm_weights"] > 0
        ids[row["masked_lm_positions"][masked]] = row["masked_lm_ids"][masked]
        windows.append(tuple(ids[1:int(row["input_mask"].sum()) - 1].tolist()))
    return sorted(windows)


def test_records_without_nsp_cut_at_chinese_words_alike_in_both_draw_modes(tmp_path, chinese_text_file,
                                                                           chinese_vocab):
    """With jieba's word starts (whole-word masking of Chinese words), both draw modes cut the same windows."""
    head = tmp_path / "head.txt"
    head.write_text("\n\n".join("\n".join(doc) for doc in list(read_documents(chinese_text_file))[:60]) + "\n",
                    encoding="utf-8")
    flags = ["--next_sentence", "false", "--short_seq_prob", "0", "--do_whole_word_mask", "true",
             "--docs_per_shard", "60"]
    windows = {draws: restored_windows(make_records(head, chinese_vocab, tmp_path / draws, *flags, "--random_draws",
                                                    draws, "--chinese_word_segmentation", "true"))
               for draws in ("google", "numpy")}
    assert windows["google"] == windows["numpy"] and len(windows["google"]) > 100
    # without jieba every character starts a word, so no cut moves back: longer windows
    characters = restored_windows(make_records(head, chinese_vocab, tmp_path / "characters", *flags))
    assert np.mean([len(w) for w in characters]) > np.mean([len(w) for w in windows["google"]])
    assert np.mean([len(w) for w in characters]) > np.mean([len(w) for w in windows["google"]])


def test_records_without_nsp_read_back_equal_from_tfrecord_and_mindrecord(mlm_records, tmp_path, wiki_text_dir,
                                                                          wiki_vocab):
    mind = make_records(wiki_text_dir / "wiki_0002.txt", wiki_vocab, tmp_path / "mind", "--next_sentence", "false",
                        "--short_seq_prob", "0", "--random_draws", "numpy", "--dataset_format", "mindrecord")
    from_tf = read_rows(mlm_records["numpy"])
    from_mind = list(ms.dataset.MindDataset(sorted(str(p) for p in mind.glob("part-*.mindrecord")),
                                            columns_list=sorted(COLUMNS), shuffle=False)
                     .create_dict_iterator(num_epochs=1, output_numpy=True))
    assert len(from_tf) == len(from_mind) > 2000
    for got_tf, got_mind in zip(from_tf, from_mind):
        for name in COLUMNS:
            np.testing.assert_array_equal(got_tf[name], got_mind[name], err_msg=name)


@pytest.mark.parametrize("flags, message", [
    (["--masked_lm_prob", "0.5"], "--masked_lm_prob 0.5 is out of range: pass a share in (0, 0.4]"),
    (["--masked_lm_prob", "0.4", "--max_predictions_per_seq", "20"],
     "--max_predictions_per_seq 20 would cap --masked_lm_prob 0.4 at 20 of 64 tokens: pass at least 26"),
    (["--next_sentence", "maybe"], None),
])
def test_record_settings_out_of_range_are_refused_in_one_line(tmp_path, flags, message):
    argv = ["--input_file", "x", "--output_dir", str(tmp_path), "--vocab_file", "v", "--max_seq_length", str(SEQ),
            *flags]
    if message is None:
        with pytest.raises(SystemExit):  # argparse: expected true or false
            create_pretraining_data.parse_args(argv)
        return
    with pytest.raises(ValueError) as error:
        create_pretraining_data.check_settings(create_pretraining_data.parse_args(argv))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def small_batch() -> dict[str, np.ndarray]:
    return make_batch(seed=3, batch=4, seq=16, vocab=SMALL["vocab_size"], lengths=[16, 12, 9, 16], n_masked=3)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_mlm_objective_is_the_mlm_term_of_the_full_loss_and_trains_no_nsp_head():
    config = BertConfig(seq_length=16, **SMALL)
    full, mlm_only, heads = BertNetworkWithLoss(config), BertNetworkWithLoss(config, "mlm"), BertForPreTraining(config)
    for other in (mlm_only, heads):
        ms.load_param_into_net(other, {p.name: Parameter(Tensor(p.asnumpy()), p.name) for p in full.get_parameters()})
    batch = {name: Tensor(value) for name, value in small_batch().items()}
    inputs = [batch[name] for name in ("input_ids", "input_mask", "token_type_ids", "next_sentence_labels",
                                       "masked_lm_positions", "masked_lm_ids", "masked_lm_weights")]
    mlm_logits, nsp_logits = heads(*inputs[:3], inputs[4])
    nll = -np.take_along_axis(log_softmax(mlm_logits.asnumpy()), small_batch()["masked_lm_ids"].reshape(-1, 1), 1)
    weights = small_batch()["masked_lm_weights"].reshape(-1, 1)
    mlm_term = (nll * weights).sum() / (weights.sum() + 1e-5)
    nsp_term = -np.take_along_axis(log_softmax(nsp_logits.asnumpy()),
                                   small_batch()["next_sentence_labels"].reshape(-1, 1), 1).mean()
    assert float(mlm_only(*inputs).asnumpy()) == pytest.approx(mlm_term, rel=1e-5)
    assert float(full(*inputs).asnumpy()) == pytest.approx(mlm_term + nsp_term, rel=1e-5)
    frozen = {p.name for p in mlm_only.get_parameters()} - {p.name for p in mlm_only.trainable_params()}
    assert frozen == {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "cls.seq_relationship.weight",
                      "cls.seq_relationship.bias"}
    assert len(full.trainable_params()) == len(list(full.get_parameters()))


def outputs_at_steps(config: BertConfig, steps: tuple[int, int]) -> list[np.ndarray]:
    """The MLM logits of one network in train mode, with its dropout counter at each of steps."""
    ms.set_seed(1)
    network = BertForPreTraining(config)
    network.set_train(True)
    counter = Parameter(Tensor(0, ms.int32), name="dropout_step", requires_grad=False)
    seed_dropout(network, counter, seed=7)
    batch = {name: Tensor(value) for name, value in small_batch().items()}
    outputs = []
    for step in steps:
        counter.set_data(Tensor(step, ms.int32))
        mlm, _ = network(batch["input_ids"], batch["input_mask"], batch["token_type_ids"],
                         batch["masked_lm_positions"])
        outputs.append(mlm.asnumpy())
    return outputs


def test_dropout_false_gives_identical_outputs_in_train_mode_and_leaves_the_model_config(tmp_path):
    model = BertConfig(seq_length=16, **{**SMALL, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1})
    run = load_run_config(write_run_config(tmp_path, dropout=False))
    assert run.dropout is False and RunConfig().dropout is True
    off = run.model_config(model)
    assert (off.hidden_dropout_prob, off.attention_probs_dropout_prob) == (0.0, 0.0)
    assert RunConfig().model_config(model) is model  # a finetuning config leaves the model's dropout
    first, second = outputs_at_steps(off, (0, 1))
    np.testing.assert_array_equal(first, second)
    first, second = outputs_at_steps(model, (0, 1))
    assert not np.allclose(first, second)  # the control: with dropout, another step draws other masks


def schedule_at(schedule, steps: list[int]) -> list[float]:
    return [float(schedule(Tensor(step, ms.int32)).asnumpy()) for step in steps]


STEPS = [0, 5, 10, 32, 55, 100, 130]  # warmup 10, decay over 100 steps, and past the end


def test_linear_and_cosine_cooldowns_follow_their_formulas():
    peak, end, warmup, total = 1e-3, 1e-5, 10, 100

    def expected(step: int, cosine: bool) -> float:
        if step < warmup:
            return peak * step / warmup
        p = min(step - warmup, total - warmup) / (total - warmup)
        return end + (peak - end) * ((1 + math.cos(math.pi * p)) / 2 if cosine else 1 - p)

    for shape in ("linear", "cosine"):
        got = schedule_at(WarmupCooldownLR(peak, end, warmup, total, shape), STEPS)
        assert got == pytest.approx([expected(step, shape == "cosine") for step in STEPS], rel=1e-5, abs=1e-9)
    linear = schedule_at(WarmupCooldownLR(peak, 0.0, warmup, total, "linear"), [10, 55, 100])
    assert linear == pytest.approx([1e-3, 5e-4, 0.0], abs=1e-9)  # peak after warmup, half way, zero at the end
    cosine = schedule_at(WarmupCooldownLR(peak, 0.0, 0, total, "cosine"), [0, 50, 100])
    assert cosine == pytest.approx([1e-3, 5e-4, 0.0], abs=1e-9)


def test_polynomial_stays_the_default_schedule():
    assert RunConfig().lr_schedule == "polynomial"
    settings = OptimizerSettings(learning_rate=1e-3, end_learning_rate=0.0, power=2.0, warmup_steps=10)
    optimizer = create_optimizer("Lamb", settings, BertForPreTraining(BertConfig(seq_length=16, **SMALL))
                                 .trainable_params(), decay_steps=100)
    assert isinstance(optimizer.learning_rate, WarmupPolynomialDecayLR)
    assert schedule_at(optimizer.learning_rate, [5, 55]) == pytest.approx([5e-4, 1e-3 * (1 - 0.55) ** 2], rel=1e-5)


@pytest.mark.parametrize("settings, message", [
    ({"objective": "nsp"}, "objective 'nsp' is not one of mlm_nsp, mlm"),
    ({"lr_schedule": "step"}, "lr_schedule 'step' is not one of polynomial, linear, cosine"),
    ({"dropout": "off"}, "dropout 'off' is not true or false"),
])
def test_run_config_recipes_out_of_range_are_refused_in_one_line(tmp_path, settings, message):
    with pytest.raises(ValueError) as error:
        load_run_config(write_run_config(tmp_path, **settings))
    assert str(error.value).endswith(message) and "\n" not in str(error.value)


def pretrain_args(records, run_config, tmp_path, *flags: str):
    return run_pretrain.parse_args(["--device_target", "CPU", "--data_dir", str(records), "--config", str(run_config),
                                    "--output_dir", str(tmp_path / "out"), "--save_checkpoint_path",
                                    str(tmp_path / "ckpt"), "--enable_save_ckpt", "false", *flags])


def test_nsp_loss_on_records_without_nsp_pairs_is_refused_before_the_first_step(mlm_records, tmp_path):
    config = write_run_config(tmp_path)  # objective mlm_nsp, the default
    with pytest.raises(ValueError) as error:
        run_pretrain.run(pretrain_args(mlm_records["numpy"], config, tmp_path, "--train_steps", "2"))
    assert str(error.value) == (f"{mlm_records['numpy']} holds records made without NSP pairs "
                                f"(create_pretraining_data.py --next_sentence false, says its manifest.json) but run "
                                f"config {config} trains the NSP term: set objective: mlm in {config}, or re-create "
                                f"the records with --next_sentence true")


@pytest.mark.parametrize("flags", [["--train_minutes", "-1"], ["--train_minutes", "5", "--train_steps", "100"]])
def test_train_minutes_out_of_range_is_refused_in_one_line(mlm_records, tmp_path, flags):
    with pytest.raises(ValueError, match=r"^--train_minutes .* is out of range: pass minutes above 0 \(0: off\), "
                                         r"without --train_steps$"):
        run_pretrain.run(pretrain_args(mlm_records["numpy"], write_run_config(tmp_path), tmp_path, *flags))


class Ticks:
    """A clock that reads `first` at its first call (the compiling step), then `step` seconds more at each."""

    def __init__(self, first: float, step: float) -> None:
        self.now, self.first, self.step, self.calls = 0.0, first, step, 0

    def __call__(self) -> float:
        self.now += self.first if self.calls == 0 else self.step
        self.calls += 1
        return self.now


def test_step_time_is_measured_after_compilation():
    class Constant(ms.nn.Cell):
        def construct(self, x):
            return x.sum()

    dataset = ms.dataset.NumpySlicesDataset({"x": np.ones((12, 2), np.float32)}, shuffle=False).batch(1)
    seconds = loop.measure_seconds_per_step(Constant(), dataset, skipped=2, timed=8, clock=Ticks(30.0, 0.25))
    assert seconds == pytest.approx(0.25)  # the 30 s of the first step are left out
    assert loop.steps_in_minutes(2, 0.25) == 480 and loop.steps_in_minutes(2, 0.7) == 171
    assert loop.steps_in_minutes(2, 0.25, multiple=100) == 400


def test_train_minutes_sets_the_run_and_its_schedule_from_the_measured_step_time(mlm_records, tmp_path,
                                                                                monkeypatch):
    """run_pretrain.py --train_minutes 0.5 with a step time of 0.25 s: the probe's 10 steps (2 compiling) give
    0.25 s, so the run trains 120 steps and its linear schedule reaches 0 at step 120. fit is replaced by one
    that reads a batch and ticks the callbacks (a clock read per step): no step is computed."""
    runs = []

    def ticking_fit(train_cell, dataset, steps, callbacks, data_sink, sink_steps=1):
        runs.append((train_cell, steps))
        next(dataset.create_tuple_iterator(num_epochs=1))  # the pipeline builds: the probe's left it a tree
        for step in range(1, steps + 1):
            context = types.SimpleNamespace(original_args=lambda step=step: types.SimpleNamespace(cur_step_num=step))
            for callback in callbacks:
                if isinstance(callback, loop.StepClock):
                    callback.on_train_step_end(context)

    monkeypatch.setattr(loop, "fit", ticking_fit)
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=Ticks(20.0, 0.25)))
    config = write_run_config(tmp_path, objective="mlm", lr_schedule="linear")
    run_pretrain.run(pretrain_args(mlm_records["numpy"], config, tmp_path, "--train_minutes", "0.5"))
    (probe, probe_steps), (run, steps) = runs
    assert (probe_steps, steps) == (10, 120) and probe is not run
    assert run.optimizer.learning_rate.cooldown_steps == 120 - 30  # pretrain_tiny.yaml: warmup 30
    assert schedule_at(run.optimizer.learning_rate, [30, 120]) == pytest.approx([1e-2, 0.0], abs=1e-9)
