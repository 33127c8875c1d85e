"""run_pretrain.py end to end on real records: exact resume, and one-line errors on bad input."""
import json
import shutil
import time

import numpy as np
import pytest

import pretrain_eval
import run_pretrain
from src.config import load_bert_config
from src.files.checkpoint import read_checkpoint, write_checkpoint
from src.model.pretraining import BertForPreTraining
from tests.helpers import ROOT, write_run_config
from tools import create_pretraining_data, plot_loss

pytestmark = pytest.mark.slow


def pretrain(tmp_path, records, config, *flags):
    output = tmp_path / "out"
    run_pretrain.main(["--data_dir", str(records), "--config", str(config), "--device_target", "CPU",
                       "--save_checkpoint_path", str(output), "--output_dir", str(output), "--train_steps", "2",
                       *flags])
    return output


def test_a_run_resumed_from_step_k_ends_with_exactly_the_weights_of_an_uninterrupted_run(tmp_path, wiki_records):
    config = write_run_config(tmp_path)
    whole = pretrain(tmp_path / "whole", wiki_records, config, "--train_steps", "6", "--save_checkpoint_steps", "3",
                     "--save_checkpoint_num", "5")
    checkpoints = sorted(p.name for p in (whole / "ckpt_0").iterdir())
    assert checkpoints == ["checkpoint_bert-1_3.ckpt", "checkpoint_bert-1_6.ckpt"]

    # The interrupted run: all that is left of it is its checkpoint at step 3.
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    shutil.copy(whole / "ckpt_0" / "checkpoint_bert-1_3.ckpt", interrupted)
    resumed = pretrain(tmp_path / "resumed", wiki_records, config, "--train_steps", "6", "--save_checkpoint_steps",
                       "3", "--load_checkpoint_path", str(interrupted))
    assert sorted(p.name for p in (resumed / "ckpt_0").iterdir()) == ["checkpoint_bert-1_6.ckpt"]
    expected = read_checkpoint(whole / "ckpt_0" / "checkpoint_bert-1_6.ckpt")
    got = read_checkpoint(resumed / "ckpt_0" / "checkpoint_bert-1_6.ckpt")
    assert set(got) == set(expected)
    assert {"global_step", "loss_scale", "consumed_batches"} <= set(got)
    assert any(name.startswith("lamb_m.") for name in got)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    steps = [line.split("step: ")[1].split(",")[0] for line in (resumed / "train_log.txt").read_text().splitlines()]
    assert steps == ["4", "5", "6"]


def expect_exit(argv_runner, match):
    with pytest.raises(SystemExit) as error:
        argv_runner()
    message = str(error.value.code)
    assert "\n" not in message
    assert match in message, message
    return message


def test_missing_data_dir(tmp_path):
    config = write_run_config(tmp_path)
    expect_exit(lambda: pretrain(tmp_path, tmp_path / "nowhere", config),
                f"data_dir {tmp_path / 'nowhere'} does not exist")


def test_empty_data_dir(tmp_path):
    config = write_run_config(tmp_path)
    (tmp_path / "empty").mkdir()
    expect_exit(lambda: pretrain(tmp_path, tmp_path / "empty", config),
                "holds no tfrecord files: make them with tools/create_pretraining_data.py")


def test_schema_that_does_not_match_the_records(tmp_path, wiki_records):
    config = write_run_config(tmp_path)
    schema = tmp_path / "schema.json"
    values = json.loads((wiki_records / "schema.json").read_text())
    values["columns"]["input_ids"]["shape"] = [128]
    schema.write_text(json.dumps(values))
    message = expect_exit(lambda: pretrain(tmp_path, wiki_records, config, "--schema_dir", str(schema)),
                          f"schema file {schema} gives column input_ids shape [128]")
    assert "have [64]" in message


def test_vocab_larger_than_the_model(tmp_path, wiki_records):
    config = write_run_config(tmp_path, vocab_size=1000)
    expect_exit(lambda: pretrain(tmp_path, wiki_records, config),
                "but the model's vocab_size is 1000")


def test_corrupt_record_file(tmp_path, wiki_records):
    config = write_run_config(tmp_path)
    records = tmp_path / "records"
    shutil.copytree(wiki_records, records)
    (records / "part-00001.tfrecord").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00garbagegarbage")
    expect_exit(lambda: pretrain(tmp_path, records, config),
                f"{records / 'part-00001.tfrecord'} has 22 bytes but manifest.json says")
    (records / "manifest.json").unlink()  # records made elsewhere: the record scan finds it
    (records / "part-00001.tfrecord").rename(records / "other.tfrecord")
    (records / "part-00000.tfrecord").rename(records / "first.tfrecord")
    (records / "part-00002.tfrecord").rename(records / "third.tfrecord")
    expect_exit(lambda: pretrain(tmp_path, records, config),
                f"record file {records / 'other.tfrecord'}, record 1: bad length checksum")


def test_nan_loss_without_loss_scaling_stops_with_one_line_and_keeps_earlier_checkpoints(tmp_path, wiki_records):
    config = write_run_config(tmp_path)
    output = pretrain(tmp_path, wiki_records, config, "--train_steps", "2", "--save_checkpoint_steps", "1",
                      "--save_checkpoint_num", "5")
    kept = sorted((output / "ckpt_0").iterdir())
    poisoned = {p.name: p.asnumpy() for p in BertForPreTraining(load_bert_config(tmp_path / "model.yaml"))
                .get_parameters()}
    poisoned["cls.predictions.bias"][7] = np.nan
    start = write_checkpoint(poisoned, tmp_path / "nan_weights.ckpt")
    expect_exit(lambda: pretrain(tmp_path, wiki_records, config, "--enable_lossscale", "false",
                                       "--load_checkpoint_path", str(start), "--train_steps", "4"),
                "at step 1 without loss scaling (the update was skipped)")
    assert sorted((output / "ckpt_0").iterdir()) == kept


def test_loss_curve_is_drawn_from_the_metrics_file(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "loss": 10.0 - s / 10, "lr": 1e-3}) + "\n" for s in range(1, 60)))
    png = plot_loss.main(["--metrics_file", str(metrics)])
    assert png == tmp_path / "loss.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics.write_text('{"step": 1}\nnot json\n')
    with pytest.raises(SystemExit, match=r"metrics.jsonl line 2 is not JSON"):
        plot_loss.main(["--metrics_file", str(metrics)])


def test_pretraining_on_real_text_lowers_the_loss_and_beats_the_most_frequent_token(tmp_path, wiki_text_dir,
                                                                                    wiki_vocab):
    texts = sorted(wiki_text_dir.glob("*.txt"))
    flags = ["--vocab_file", str(wiki_vocab), "--max_seq_length", "64", "--max_predictions_per_seq", "10",
             "--processes", "1"]
    create_pretraining_data.main(["--input_file", f"{texts[0]},{texts[1]}", "--output_dir", str(tmp_path / "train"),
                                  "--dupe_factor", "2", *flags])
    create_pretraining_data.main(["--input_file", str(texts[2]), "--output_dir", str(tmp_path / "eval"),
                                  "--dupe_factor", "1", "--random_seed", "7", *flags])  # held-out articles
    config = write_run_config(tmp_path, batch_size=16)
    output = pretrain(tmp_path, tmp_path / "train", config, "--train_steps", "500", "--save_checkpoint_steps", "500")
    losses = [json.loads(line)["loss"] for line in (output / "metrics.jsonl").read_text().splitlines()]
    first, last = np.mean(losses[:20]), np.mean(losses[-50:])
    # Measured: 8.93 (mean of the first 20 steps) -> 7.27 (mean of the last 50), MLM + NSP.
    assert last < first - 1.0, (first, last)
    result = pretrain_eval.main(["--data_dir", str(tmp_path / "eval"), "--load_checkpoint_path", str(output / "ckpt_0"),
                                 "--config", str(config), "--device_target", "CPU"])
    # Measured: 0.071 against 0.044 for always predicting the most frequent masked token.
    assert result.mlm_accuracy > result.most_frequent_token_accuracy + 0.01, result
    assert result.masked_tokens > 10000


def test_data_parallel_run_on_two_cpu_ranks_keeps_the_ranks_identical(tmp_path, wiki_records):
    """The distributed launcher with msrun and MindSpore's CPU collective: gradients are averaged, so both
    ranks end with the same weights..."""
    import os
    import socket
    import subprocess
    import sys
    config = write_run_config(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, DEVICE_TARGET="CPU", MASTER_PORT=str(port),
               PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(["bash", str(ROOT / "scripts" / "run_distributed_pretrain_for_gpu.sh"), "2", "1",
                    str(wiki_records), "--config", str(config), "--train_steps", "3", "--save_checkpoint_steps", "3"],
                   cwd=tmp_path, env=env, check=True)
    for _ in range(600):  # the launcher returns at once; msrun runs in the background
        if (tmp_path / "ckpt_1" / "checkpoint_bert-1_3.ckpt").exists() and \
                (tmp_path / "ckpt_0" / "checkpoint_bert-1_3.ckpt").exists():
            break
        time.sleep(0.5)
    log = (tmp_path / "pretraining_log.txt").read_text()
    rank0 = read_checkpoint(tmp_path / "ckpt_0" / "checkpoint_bert-1_3.ckpt")
    rank1 = read_checkpoint(tmp_path / "ckpt_1" / "checkpoint_bert-1_3.ckpt")
    for name in rank0:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=f"{name}\n{log[-2000:]}")
    # ...although each rank trained on its own shard of the records (their losses differ).
    first_losses = [(directory / "train_log.txt").read_text().splitlines()[0].split("(")[1].split(",")[0]
                    for directory in (tmp_path, tmp_path / "rank_1")]
    assert first_losses[0] != first_losses[1], first_losses
