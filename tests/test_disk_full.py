"""A full disk loses nothing and leaves nothing: one line naming the file, the space needed and free and, for a
training run, the step and the last good checkpoint (intact); no partial file anywhere. On real small filesystems
(tmpfs, which needs root, as CI has) and by an injected ENOSPC."""
from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

import run_pretrain
from src.disk_space import DiskFull
from src.files import checkpoint as checkpoint_module
from src.files.checkpoint import read_checkpoint, write_checkpoint
from src.files.run_files import checkpoints_in
from tests.helpers import ROOT, write_run_config
from tests.test_run_ownership import pretrain_flags

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    """mount(size_mb) -> a fresh tmpfs of that size, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root); the injected-ENOSPC tests cover the rest")
    mounted = []

    def mount(size_mb: int) -> Path:
        point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(point)], check=True)
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, cwd=cwd, timeout=600)


def last_line(stderr: str) -> str:
    """The last text on stderr, past a progress bar's carriage returns."""
    return [part for part in stderr.replace("\r", "\n").splitlines() if part.strip()][-1].strip()


def partial_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if ".partial" in p.name or p.suffix == ".tmp"]


def test_a_checkpoint_that_does_not_fit_stops_with_one_line_and_the_last_good_one_intact(tmp_path, wiki_records,
                                                                                         small_disk):
    config = write_run_config(tmp_path)
    disk = small_disk(20)  # one checkpoint of the tiny model (11.6 MB) fits, a second beside it does not
    result = run(str(ROOT / "run_pretrain.py"), *pretrain_flags(wiki_records, config, disk, "--train_steps", "20",
                                                                 "--save_checkpoint_steps", "10"))
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and "CRITICAL" not in result.stderr, result.stderr
    assert re.fullmatch(rf"run_pretrain\.py: no space left on device writing {disk}/ckpt_0/checkpoint_bert-1_20\.ckpt "
                        rf"\(needs 11\.\d MB, \d+\.\d MB free\): free space there or write to another place; stopped "
                        rf"at step 20: the last checkpoint {disk}/ckpt_0/checkpoint_bert-1_10\.ckpt is intact; resume "
                        rf"with --load_checkpoint_path {disk}/ckpt_0", line), line
    assert [p.name for p in checkpoints_in(disk / "ckpt_0", "checkpoint_bert")] == ["checkpoint_bert-1_10.ckpt"]
    assert read_checkpoint(disk / "ckpt_0" / "checkpoint_bert-1_10.ckpt")["consumed_batches"] == 10
    assert not partial_files(disk)
    # ...and the run goes on from it elsewhere.
    final = run_pretrain.main(pretrain_flags(wiki_records, config, tmp_path / "elsewhere", "--train_steps", "20",
                                             "--load_checkpoint_path", str(disk / "ckpt_0")))
    assert final.name == "checkpoint_bert-1_20.ckpt"


def test_a_disk_without_room_for_one_checkpoint_is_refused_before_the_first_step(tmp_path, wiki_records, small_disk):
    config = write_run_config(tmp_path)
    disk = small_disk(5)
    result = run(str(ROOT / "run_pretrain.py"), *pretrain_flags(wiki_records, config, disk, "--train_steps", "20"))
    assert result.returncode == 1
    assert re.fullmatch(rf"run_pretrain\.py: the run's checkpoints need 11\.\d MB each but {disk}/ckpt_0 has \d\.\d MB "
                        rf"free: free space there or pass another --save_checkpoint_path", result.stderr.strip())
    assert not (disk / "metrics.jsonl").exists() and not partial_files(disk)


def test_data_preparation_on_a_full_disk_leaves_no_staging_and_no_output(tmp_path, wiki_text_dir, wiki_vocab,
                                                                        small_disk):
    disk = small_disk(1)
    result = run(str(ROOT / "tools" / "create_pretraining_data.py"), "--input_file",
                 ",".join(str(p) for p in sorted(wiki_text_dir.glob("*.txt"))), "--output_dir", str(disk / "records"),
                 "--vocab_file", str(wiki_vocab), "--max_seq_length", "64", "--dupe_factor", "2", "--processes", "1")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"create_pretraining_data\.py: no space left on device writing {disk}/\S+ \([\d.]+ MB free\): "
                        rf"free space there or write to another place; "
                        rf"nothing was written to {disk}/records", line), line
    assert list(disk.iterdir()) == []


def test_predict_output_on_a_full_disk_leaves_no_partial_file(tmp_path, sentiment_classifier, small_disk):
    directory, _ = sentiment_classifier
    disk = small_disk(1)
    (tmp_path / "in.txt").write_text("这部电影很好看。\n" * 20000, encoding="utf-8")
    result = run(str(ROOT / "predict.py"), "--load_finetune_checkpoint_path", str(directory / "ckpt"), "--input_file",
                 str(tmp_path / "in.txt"), "--output_file", str(disk / "out.jsonl"), "--device_target", "CPU")
    assert result.returncode == 1
    assert re.fullmatch(rf"predict\.py: no space left on device writing {disk}/out\.jsonl \(\d\.\d MB free\): free "
                        rf"space there or write to another place; no --output_file was written",
                        last_line(result.stderr)), result.stderr
    assert list(disk.iterdir()) == []


def test_an_injected_enospc_mid_checkpoint_removes_the_partial_file_and_names_the_file(tmp_path, monkeypatch):
    params = {"w": np.arange(1000, dtype=np.float32)}
    good = write_checkpoint(params, tmp_path / "run-1_1.ckpt")
    real_save = checkpoint_module.ms.save_checkpoint

    def save_half(save_obj, path, **kwargs):
        real_save(save_obj, path, **kwargs)
        Path(path).with_suffix(".tmp").write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(path).with_suffix(".tmp")))

    monkeypatch.setattr(checkpoint_module.ms, "save_checkpoint", save_half)
    with pytest.raises(DiskFull) as error:
        write_checkpoint(params, tmp_path / "run-1_2.ckpt")
    assert re.fullmatch(rf"no space left on device writing {tmp_path}/run-1_2\.ckpt "
                        rf"\(needs 0\.0 MB, [\d,.]+ MB free\): "
                        rf"free space there or write to another place", str(error.value)), str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-1_1.ckpt"]
    np.testing.assert_array_equal(read_checkpoint(good)["w"], params["w"])
