"""SIGTERM (a cluster's preemption) and Ctrl-C keep the work: a training run finishes its step, saves, says how to
resume in one line and exits 143 / 130, and resuming ends bit-identical to a run never stopped; data preparation
and predict.py leave nothing partial."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

import run_pretrain
from src.files import checkpoint as checkpoint_module
from src.files.checkpoint import read_checkpoint, write_checkpoint
from src.files.run_files import LOCK_NAME, checkpoints_in
from src.preemption import Stopped, deferred, handling_signals
from tests.helpers import DATA, ROOT
from tests.test_run_ownership import dropout_run_config, pretrain_flags

pytestmark = pytest.mark.slow

STOPPED_LINE = re.compile(r"^run_pretrain\.py: stopped by (SIGTERM|SIGINT)\b.* at step (\d+): saved (\S+); resume with "
                          r"--load_checkpoint_path (\S+)$")


def last_line(stderr: str) -> str:
    """The last text on stderr, past a progress bar's carriage returns."""
    return [part for part in stderr.replace("\r", "\n").splitlines() if part.strip()][-1].strip()


def metric_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def signal_at_step(command: list[str], metrics: Path, step: int, signum: int) -> subprocess.CompletedProcess:
    """Run command, send signum once metrics holds `step` more lines than at the start, wait for the end."""
    start = metric_lines(metrics)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while process.poll() is None and metric_lines(metrics) < start + step:
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_sigterm_and_ctrl_c_save_the_step_and_the_resumed_run_ends_bit_identical(tmp_path, wiki_records):
    config = dropout_run_config(tmp_path)
    steps = ["--train_steps", "24", "--save_checkpoint_steps", "100"]  # no periodic checkpoint: only the stop saves
    whole = run_pretrain.main(pretrain_flags(wiki_records, config, tmp_path / "whole", *steps))
    stopped = tmp_path / "stopped"
    command = [sys.executable, str(ROOT / "run_pretrain.py"), *pretrain_flags(wiki_records, config, stopped, *steps)]
    resume: list[str] = []
    for signum, after in ((signal.SIGTERM, 5), (signal.SIGINT, 6)):
        result = signal_at_step([*command, *resume], stopped / "metrics.jsonl", after, signum)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        match = STOPPED_LINE.match(lines[0])
        assert match, lines[0]
        # Ctrl-C between steps is SIGINT (130); during a step MindSpore's runtime re-sends it as SIGTERM (143).
        assert result.returncode == {"SIGTERM": 143, "SIGINT": 130}[match[1]], (result.returncode, lines[0])
        saved = Path(match[3])
        assert saved == checkpoints_in(stopped / "ckpt_0", "checkpoint_bert")[-1]
        assert saved.name.endswith(f"_{match[2]}.ckpt") and int(match[2]) == metric_lines(stopped / "metrics.jsonl")
        assert Path(match[4]) == stopped / "ckpt_0"
        assert not list(stopped.rglob(LOCK_NAME)) and not list(stopped.rglob(".*partial*"))
        resume = ["--load_checkpoint_path", match[4]]
    final = run_pretrain.main(pretrain_flags(wiki_records, config, stopped, *steps, *resume))
    assert final.name == whole.name == "checkpoint_bert-1_24.ckpt"
    expected, got = read_checkpoint(whole), read_checkpoint(final)
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    steps_logged = [json.loads(line)["step"] for line in (stopped / "metrics.jsonl").read_text().splitlines()]
    assert steps_logged == list(range(1, 25))


def test_finetuning_stopped_by_sigterm_names_its_resume_flag(tmp_path, sentiment):
    from tests.helpers import TINY, first_reviews_as_records, model_yaml
    records = first_reviews_as_records(sentiment, tmp_path, 400)
    command = [sys.executable, str(ROOT / "run_classifier.py"), "--do_train", "true", "--epoch_num", "3",
               "--num_class", "2", "--device_target", "CPU", "--train_data_file_path", str(records),
               "--config", TINY, "--bert_network", str(model_yaml(tmp_path, 4000, 32)),
               "--save_finetune_checkpoint_path", str(tmp_path / "ckpt"), "--output_dir", str(tmp_path)]
    result = signal_at_step(command, tmp_path / "metrics.jsonl", 3, signal.SIGTERM)
    assert result.returncode == 143, result.stderr
    line = result.stderr.strip()
    assert re.fullmatch(r"run_classifier\.py: stopped by SIGTERM.* at step \d+: saved \S+classifier-1_\d+\.ckpt; "
                        r"resume with --load_finetune_checkpoint_path \S+", line), line
    saved = read_checkpoint(checkpoints_in(tmp_path / "ckpt", "classifier")[-1])
    assert int(saved["consumed_batches"]) == metric_lines(tmp_path / "metrics.jsonl")


def test_data_preparation_stopped_leaves_no_staging_and_no_output(tmp_path, wiki_text_dir, wiki_vocab):
    output = tmp_path / "records"
    command = [sys.executable, str(ROOT / "tools" / "create_pretraining_data.py"), "--input_file",
               ",".join(str(p) for p in sorted(wiki_text_dir.glob("*.txt"))), "--output_dir", str(output),
               "--vocab_file", str(wiki_vocab), "--max_seq_length", "64", "--dupe_factor", "5",
               "--docs_per_shard", "3", "--processes", "2"]
    for signum, status in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while process.poll() is None and not any(tmp_path.glob(".records.partial-*/part-*")):
            time.sleep(0.02)  # stopped once the first shard is written
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == status, stderr
        assert stderr.strip().splitlines()[-1] == (f"create_pretraining_data.py: stopped by "
                                                   f"{signal.Signals(signum).name}"
                                                   f": nothing was written to {output}; run the command again")
        assert sorted(p.name for p in tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def test_predict_stopped_writes_no_partial_output(tmp_path, sentiment_classifier):
    directory, _ = sentiment_classifier
    reviews = (DATA / "sentiment_zh_2400.txt").read_text(encoding="utf-8").splitlines()
    (tmp_path / "in.txt").write_text("\n".join(line.split("\t")[1] for line in reviews * 4) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    process = subprocess.Popen([sys.executable, str(ROOT / "predict.py"), "--load_finetune_checkpoint_path",
                                str(directory / "ckpt"), "--input_file", str(tmp_path / "in.txt"), "--output_file",
                                str(output), "--device_target", "CPU"], stderr=subprocess.PIPE, text=True)
    while process.poll() is None and not list(tmp_path.glob(".out.jsonl*")):
        time.sleep(0.02)  # stopped while it writes
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143 and re.fullmatch(r"predict\.py: stopped by SIGTERM.*", last_line(stderr)), stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_a_first_signal_in_a_training_loop_is_recorded_and_a_second_stops_at_once():
    with handling_signals() as handler:
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            assert handler.received == signal.SIGTERM  # recorded, the loop goes on to its step boundary
            with pytest.raises(Stopped) as second:
                os.kill(os.getpid(), signal.SIGINT)
            assert second.value.exit_status == 130
        with pytest.raises(Stopped):  # outside a training loop: at once
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or not isinstance(signal.getsignal(signal.SIGTERM),
                                                                               type(handler))


def test_a_checkpoint_write_interrupted_leaves_the_last_one_intact_and_no_partial_file(tmp_path, monkeypatch):
    params = {"w": np.arange(6, dtype=np.float32)}
    good = write_checkpoint(params, tmp_path / "run-1_1.ckpt")
    real_save = ms.save_checkpoint

    def save_then_stop(save_obj, path, **kwargs):
        real_save(save_obj, path, **kwargs)
        Path(path).with_suffix(".tmp").write_bytes(b"half")  # as MindSpore's own staging file would be
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(checkpoint_module.ms, "save_checkpoint", save_then_stop)
    with pytest.raises(Stopped):
        write_checkpoint({"w": np.ones(6, np.float32)}, tmp_path / "run-1_2.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-1_1.ckpt"]
    np.testing.assert_array_equal(read_checkpoint(good)["w"], params["w"])
