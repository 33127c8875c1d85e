"""The launchers check before they go to the background: their own arguments, the python they would use, and the
entry script's pre-flight checks (--check_only true) run synchronously; a refused launch prints one line, exits
non-zero and starts nothing. Paths with spaces and non-ASCII characters go through."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, write_run_config

SCRIPTS = ROOT / "scripts"


def launch(script: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS / script), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode != 0, result.stdout
    assert result.stderr.strip() == message or message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "background" not in result.stdout


@pytest.mark.parametrize("script, args, message", [
    ("run_distributed_pretrain_for_gpu.sh", ["0", "1", "{records}"],
     "RANK_SIZE '0' is not a whole number of at least 1"),
    ("run_distributed_pretrain_for_gpu.sh", ["2", "one", "{records}"], "EPOCH_SIZE 'one' is not a whole number"),
    ("run_standalone_pretrain_for_gpu.sh", ["gpu0", "1", "{records}"], "DEVICE_ID 'gpu0' is not a device number"),
    ("run_standalone_pretrain_cpu.sh", ["1", "{tmp}/missing"], "DATA_DIR {tmp}/missing does not exist"),
    ("run_distributed_pretrain_ascend.sh", ["{records}", "{tmp}/no_table.json"],
     "RANK_TABLE_FILE {tmp}/no_table.json does not exist"),
])
def test_bad_positional_arguments_are_refused_in_one_line(tmp_path, wiki_records, script, args, message):
    values = {"records": str(wiki_records), "tmp": str(tmp_path)}
    result = launch(script, *(arg.format(**values) for arg in args), cwd=tmp_path)
    refused(result, message.format(**values))
    assert list(tmp_path.iterdir()) == []  # no log, no ms_log, no checkpoint directory


def test_the_entry_scripts_own_checks_run_before_the_background(tmp_path, wiki_records):
    (tmp_path / "elsewhere").mkdir()
    result = launch("run_standalone_pretrain_cpu.sh", "1", str(wiki_records), "--config", "configs/missing.yaml",
                    cwd=tmp_path / "elsewhere")
    refused(result, "run_pretrain.py: config configs/missing.yaml does not exist")
    assert not (tmp_path / "elsewhere" / "pretraining_log.txt").exists()
    result = launch("run_standalone_pretrain_cpu.sh", "1", str(wiki_records), "--output_dir",
                    str(wiki_records / "logs"), cwd=tmp_path / "elsewhere")
    refused(result, f"--output_dir {wiki_records / 'logs'} is inside --data_dir {wiki_records}")
    result = launch("run_classifier.sh", cwd=tmp_path / "elsewhere")  # its settings block left empty
    refused(result, "run_classifier.py: --eval_data_file_path is required with --do_eval true")
    assert not (tmp_path / "elsewhere" / "classifier_log.txt").exists()


def test_a_python_without_mindspore_is_refused(tmp_path, wiki_records):
    project = tmp_path / "project"
    shutil.copytree(SCRIPTS, project / "scripts")  # a clone without .venv
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    env = {"PATH": f"{tmp_path / 'bare' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(project / "scripts" / "run_standalone_pretrain_cpu.sh"), "1",
                             str(wiki_records)], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, **env})
    refused(result, f"{tmp_path / 'bare' / 'bin' / 'python3'} cannot import mindspore: run 'bash "
                    f"{project / 'scripts' / 'setup_env.sh'}'")


@pytest.mark.slow
def test_paths_with_spaces_and_non_ascii_characters_go_through(tmp_path, wiki_records):
    place = tmp_path / "语料 and spaces"
    shutil.copytree(wiki_records, place / "records 2")
    config = write_run_config(place)
    run_dir = place / "run here"
    run_dir.mkdir()
    result = launch("run_standalone_pretrain_cpu.sh", "1", "../records 2", "--config", str(config),
                    "--train_steps", "3", cwd=run_dir)
    assert result.returncode == 0 and "in the background" in result.stdout, result.stderr
    for _ in range(600):
        if (run_dir / "ckpt_0" / "checkpoint_bert-1_3.ckpt").exists():
            break
        time.sleep(0.2)
    assert (run_dir / "ckpt_0" / "checkpoint_bert-1_3.ckpt").exists(), (run_dir / "pretraining_log.txt").read_text()


def test_the_test_command_fast_tier_selects_every_test_not_marked_slow(tmp_path):
    """`run_tests.sh --fast` (its set-up, ruff, then pytest -m "not slow"), collection only: every collected test is
    unmarked by slow, and the slow ones are deselected, not lost."""
    result = subprocess.run(["bash", str(SCRIPTS / "run_tests.sh"), "--fast", "--collect-only"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600, env={**os.environ, "TEST_WORKERS": "0"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "All checks passed!" in result.stdout  # ruff ran first
    summary = result.stdout.strip().splitlines()[-1]
    selected, total, deselected = (int(n) for n in re.match(r"(\d+)/(\d+) tests collected \((\d+) deselected\)",
                                                              summary).groups())
    assert selected + deselected == total and deselected > 0 and selected > 100, summary
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    assert len(ids) == selected and not any("test_pretraining_pays_off.py" in line for line in ids)
