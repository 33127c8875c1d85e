"""A run owns its outputs and nothing else: retention, "last checkpoint", locks, atomic data preparation, and
kill -9 at random points (dropout on) resuming bit-identical to an uninterrupted run."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import run_pretrain
from src.config import load_bert_config, save_bert_config
from src.files.checkpoint import read_checkpoint
from src.files.run_files import DirectoryLock, checkpoints_in, latest_checkpoint
from tests.helpers import ROOT, write_run_config

pytestmark = pytest.mark.slow


def pretrain_flags(records: Path, config: Path, output: Path, *flags: str) -> list[str]:
    return ["--data_dir", str(records), "--config", str(config), "--device_target", "CPU",
            "--save_checkpoint_path", str(output), "--output_dir", str(output), *flags]


def logged_steps(metrics: Path) -> list[int]:
    return [json.loads(line)["step"] for line in metrics.read_text().splitlines()]


def test_a_new_run_beside_an_older_one_keeps_the_older_files_and_reports_its_own(tmp_path, wiki_records):
    config = write_run_config(tmp_path)
    output = tmp_path / "out"
    older = run_pretrain.main(pretrain_flags(wiki_records, config, output, "--train_steps", "4"))
    assert older.name == "checkpoint_bert-1_4.ckpt"
    older_bytes, older_log = older.read_bytes(), (output / "train_log.txt").read_text()

    newer = run_pretrain.main(pretrain_flags(wiki_records, config, output, "--train_steps", "2"))
    assert newer.name == "checkpoint_bert_1-1_2.ckpt"  # its own tag: the older run's step 4 is not "its last"
    assert older.read_bytes() == older_bytes and (output / "train_log.txt").read_text() == older_log
    assert logged_steps(output / "metrics_1.jsonl") == [1, 2]
    assert latest_checkpoint(output / "ckpt_0") == newer  # what evaluation of the directory loads
    resumed = run_pretrain.main(pretrain_flags(wiki_records, config, output, "--train_steps", "3",
                                               "--load_checkpoint_path", str(newer)))
    assert resumed.name == "checkpoint_bert_1-1_3.ckpt" and not newer.exists()  # retention of its own files only
    assert older.read_bytes() == older_bytes
    assert logged_steps(output / "metrics_1.jsonl") == [1, 2, 3]
    with pytest.raises(SystemExit, match="at step 3, at or past this run's last step 3: nothing to train"):
        run_pretrain.main(pretrain_flags(wiki_records, config, output, "--train_steps", "3",
                                         "--load_checkpoint_path", str(resumed)))


def test_a_second_run_in_a_held_directory_refuses_and_a_dead_runs_lock_is_taken_over(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        lock = tmp_path / ".run.lock"
        lock.write_text(f"{sleeper.pid} {os.uname().nodename} 2026-01-01T00:00:00 run_pretrain.py\n")
        with pytest.raises(ValueError, match=f"in use by another run \\(pid {sleeper.pid}"):
            DirectoryLock(tmp_path).acquire()
        assert lock.read_text().startswith(str(sleeper.pid))  # the live run's lock is untouched
    finally:
        sleeper.kill()
        sleeper.wait()
    taken = DirectoryLock(tmp_path).acquire()  # the holder is gone: a stale lock
    assert lock.read_text().startswith(f"{os.getpid()} ")
    taken.release()
    assert not lock.exists()


def test_the_launcher_refuses_a_directory_a_live_run_holds_and_keeps_its_log(tmp_path, wiki_records):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / ".run.lock").write_text(f"{sleeper.pid} {os.uname().nodename} 2026-01-01T00:00:00 x\n")
        (tmp_path / "pretraining_log.txt").write_text("the live run's log\n")
        result = subprocess.run(["bash", str(ROOT / "scripts" / "run_standalone_pretrain_cpu.sh"), "1",
                                 str(wiki_records)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result.returncode != 0 and "in use by a run" in result.stderr
    assert (tmp_path / "pretraining_log.txt").read_text() == "the live run's log\n"


def create_records(text: Path, vocab: Path, output: Path, *flags: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "create_pretraining_data.py"), "--input_file", str(text),
            "--vocab_file", str(vocab), "--output_dir", str(output), "--max_seq_length", "64",
            "--max_predictions_per_seq", "10", "--dupe_factor", "2", "--docs_per_shard", "60", "--processes", "2",
            *flags]


def directory_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def kill_after(command: list[str], delay: float) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)  # the tool and its worker processes
    process.wait()


def test_data_preparation_killed_anywhere_leaves_nothing_usable_and_reruns_to_the_same_bytes(
        tmp_path, wiki_text_dir, wiki_vocab):
    text = wiki_text_dir / "wiki_0000.txt"
    whole = tmp_path / "whole"
    subprocess.run(create_records(text, wiki_vocab, whole), check=True, capture_output=True)
    expected = directory_bytes(whole)
    assert {"manifest.json", "schema.json"} <= set(expected)
    manifest = json.loads(expected["manifest.json"])
    assert sum(f["rows"] for f in manifest["files"].values() if "rows" in f) == \
        json.loads(expected["schema.json"])["numRows"]

    rng = random.Random(7)
    target = tmp_path / "killed"
    config = write_run_config(tmp_path)
    for delay in sorted(rng.uniform(0.5, 6.0) for _ in range(2)):
        kill_after(create_records(text, wiki_vocab, target), delay)
        assert not target.exists() or directory_bytes(target) == expected  # all or nothing
        for partial in tmp_path.glob(".killed.partial-*"):  # what the kill left is never trained on
            if list(partial.glob("part-*")):
                with pytest.raises(SystemExit, match="did not finish"):
                    run_pretrain.main(pretrain_flags(partial, config, tmp_path / "o", "--train_steps", "1"))
    if not target.exists():
        subprocess.run(create_records(text, wiki_vocab, target), check=True, capture_output=True)
    assert directory_bytes(target) == expected  # byte-identical for the seed, across separate runs
    assert not list(tmp_path.glob(".killed.partial-*"))  # the killed runs' staging directories are gone

    refused = subprocess.run(create_records(text, wiki_vocab, target), capture_output=True, text=True)
    assert refused.returncode != 0 and "--overwrite true" in refused.stderr
    assert directory_bytes(target) == expected


def test_records_that_differ_from_their_manifest_are_refused(tmp_path, wiki_records):
    import shutil
    copy = tmp_path / "records"
    shutil.copytree(wiki_records, copy)
    shard = sorted(copy.glob("part-*.tfrecord"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])  # a copy cut short
    with pytest.raises(SystemExit, match=f"{shard.name} has .* bytes but manifest.json says"):
        run_pretrain.main(pretrain_flags(copy, write_run_config(tmp_path), tmp_path / "o", "--train_steps", "1"))


def dropout_run_config(directory: Path) -> Path:
    """The tiny preset with its dropout (0.1 on hidden states and attention probabilities)."""
    model = save_bert_config(load_bert_config("tiny", vocab_size=4000, seq_length=64), directory / "model.yaml")
    assert load_bert_config(model).hidden_dropout_prob == 0.1
    config = write_run_config(directory)
    values = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**values, "bert_network": str(model)}))
    return config


def test_pretraining_killed_at_random_points_resumes_bit_identical_with_dropout_on(tmp_path, wiki_records):
    config = dropout_run_config(tmp_path)
    steps = ["--train_steps", "24", "--save_checkpoint_steps", "3", "--save_checkpoint_num", "2"]
    whole = run_pretrain.main(pretrain_flags(wiki_records, config, tmp_path / "whole", *steps))
    killed = tmp_path / "killed"
    command = [sys.executable, str(ROOT / "run_pretrain.py"), *pretrain_flags(wiki_records, config, killed, *steps)]
    rng = random.Random(11)
    for kill_at in sorted(rng.sample(range(4, 20), 2)):  # kill -9 when this step's checkpoint appears, or later
        if checkpoints_in(killed / "ckpt_0", "checkpoint_bert"):
            resume = ["--load_checkpoint_path", str(killed / "ckpt_0")]
        else:
            resume = []
        process = subprocess.Popen([*command, *resume], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and not any(
                int(p.stem.rsplit("_", 1)[1]) >= kill_at for p in checkpoints_in(killed / "ckpt_0", "checkpoint_bert")):
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        left = checkpoints_in(killed / "ckpt_0", "checkpoint_bert")
        assert left and all(read_checkpoint(path) for path in left)  # only whole checkpoints are visible
    stale = killed / "ckpt_0" / ".checkpoint_bert-1_3.999.partial.ckpt"  # as a kill during a write leaves it
    stale.write_bytes(b"half a checkpoint")
    final = run_pretrain.main(pretrain_flags(wiki_records, config, killed, *steps, "--load_checkpoint_path",
                                             str(killed / "ckpt_0")))
    assert final.name == whole.name == "checkpoint_bert-1_24.ckpt" and not stale.exists()
    expected, got = read_checkpoint(whole), read_checkpoint(final)
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    assert logged_steps(killed / "metrics.jsonl") == list(range(1, 25))  # each step once, in order
