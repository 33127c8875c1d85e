"""Every entry point, given bad input, exits non-zero with exactly one line that names the input, prints no
Python traceback or MindSpore C++ stack, and changes or removes no file that was there before.

Each case runs the script as a user would (a subprocess, the environment without GLOG_v), two at a time, each
writing into its own output directory. The inputs are small real records and configs made once for the module
(`kit`); every input file is compared by sha256 before and after all the cases."""
from __future__ import annotations

import collections
import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

from tests.helpers import ROOT, write_run_config

pytestmark = pytest.mark.slow

PYTHON = sys.executable


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[dict], list[str]]  # kit -> script and flags
    expected: Callable[[dict], str]  # kit -> text the one error line must contain (the input it names)


def corrupt_copy(source: Path, target: Path, how: str) -> Path:
    """A directory holding one real shard, damaged: bytes flipped mid-file, or cut short."""
    target.mkdir()
    data = bytearray(sorted(source.glob("part-*.tfrecord"))[0].read_bytes())
    if how == "flip":
        middle = len(data) // 2
        data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    else:
        data = data[:len(data) // 2]
    (target / "damaged.tfrecord").write_bytes(bytes(data))  # not a tool-made shard: no manifest expected
    return target


def records_with(rows_edit, source_row: dict, path: Path, rows: int = 20) -> Path:
    """A TFRecord of copies of a real pretraining row, edited by rows_edit(index, row)."""
    from src.data.records import write_tfrecord
    path.mkdir(parents=True)
    write_tfrecord((rows_edit(i, {k: v.copy() for k, v in source_row.items()}) for i in range(rows)),
                   path / "edited.tfrecord")
    return path


@pytest.fixture(scope="module")
def kit(tmp_path_factory, wiki_records, wiki_vocab) -> dict:
    from src.data.records import read_first_tfrecord
    base = tmp_path_factory.mktemp("kit")
    kit = {"base": base, "records": wiki_records, "vocab": wiki_vocab, "config": write_run_config(base)}
    kit["model"] = base / "model.yaml"
    row = read_first_tfrecord(sorted(wiki_records.glob("*.tfrecord"))[0])
    kit["flipped"] = corrupt_copy(wiki_records, base / "flipped", "flip")
    kit["cut"] = corrupt_copy(wiki_records, base / "cut", "cut")

    def big_id(index, row):
        if index == 7:
            row["input_ids"][3] = 4000  # the model's vocab_size: one past the last id
        return row

    def no_predictions(index, row):
        for name in ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights"):
            row[name] = row[name][:0]
        return row

    kit["big_id"] = records_with(big_id, row, base / "big_id")
    kit["no_predictions"] = records_with(no_predictions, row, base / "no_predictions")
    kit["extra_file"] = base / "extra_file"
    shutil.copytree(wiki_records, kit["extra_file"])
    shutil.copy(sorted(wiki_records.glob("part-*"))[0], kit["extra_file"] / "added.tfrecord")
    kit["no_manifest"] = base / "no_manifest"
    shutil.copytree(wiki_records, kit["no_manifest"])
    (kit["no_manifest"] / "manifest.json").unlink()
    kit["empty_dir"] = base / "empty_dir"
    kit["empty_dir"].mkdir()
    configs = {"empty_model": "", "bad_layers": "num_hidden_layers: -1\n", "short_positions": None,
               "bad_yaml": "batch_size: [8\n", "unknown_field": "batch_sise: 8\n"}
    for name, text in configs.items():
        kit[name] = base / f"{name}.yaml"
        if text is not None:
            kit[name].write_text(text, encoding="utf-8")
    model = yaml.safe_load(kit["model"].read_text())
    kit["short_positions"].write_text(yaml.safe_dump({**model, "max_position_embeddings": 32, "seq_length": 32}))
    kit["a_file"] = base / "a_file.txt"
    kit["a_file"].write_text("not a directory\n")
    kit["gb18030"] = base / "gb18030.txt"
    kit["gb18030"].write_bytes("中文句子。\n第二句。\n".encode("gb18030"))
    kit["garbage_ckpt"] = base / "garbage.ckpt"
    kit["garbage_ckpt"].write_bytes(os.urandom(256))
    kit["empty_file"] = base / "empty.tfrecord"
    kit["empty_file"].write_bytes(b"")
    kit["labels_dup"] = base / "labels_dup.json"
    kit["labels_dup"].write_text('{"O": 0, "B-PER": 1, "I-PER": 1}')
    kit["cluener_overlap"] = base / "cluener.json"
    kit["cluener_overlap"].write_text('{"text": "叶老桂在北京", "label": {"name": {"叶老桂": [[0, 2]]}, '
                                      '"address": {"桂在": [[2, 3]]}}}\n', encoding="utf-8")
    kit["live_locked"] = base / "live_locked"
    kit["live_locked"].mkdir()
    sleeper = subprocess.Popen(["sleep", "600"])
    (kit["live_locked"] / ".run.lock").write_text(f"{sleeper.pid} {os.uname().nodename} 2026-01-01T00:00:00 x\n")
    kit["prefilled"] = base / "prefilled"
    kit["prefilled"].mkdir()
    (kit["prefilled"] / "notes.txt").write_text("a user's file\n")
    yield kit
    sleeper.kill()


def pretrain(kit, *flags):
    return ["run_pretrain.py", "--device_target", "CPU", "--config", str(kit["config"]), "--train_steps", "1",
            "--output_dir", str(kit["out"]), "--save_checkpoint_path", str(kit["out"]), *flags]


def classifier(kit, *flags):
    return ["run_classifier.py", "--device_target", "CPU", "--config", str(kit["config"]),
            "--output_dir", str(kit["out"]), "--save_finetune_checkpoint_path", str(kit["out"]), *flags]


def data(kit, name):
    return ["--data_dir", str(kit[name])]


CASES = [
    # pretraining data
    Case("missing data_dir", lambda k: pretrain(k, "--data_dir", "/nonexistent/records"), lambda k: "/nonexistent"),
    Case("empty data_dir", lambda k: pretrain(k, *data(k, "empty_dir")), lambda k: str(k["empty_dir"])),
    Case("data_dir flag missing", lambda k: pretrain(k), lambda k: "--data_dir"),
    Case("corrupt record mid-file", lambda k: pretrain(k, *data(k, "flipped")), lambda k: "damaged.tfrecord"),
    Case("truncated record file", lambda k: pretrain(k, *data(k, "cut")), lambda k: "damaged.tfrecord"),
    Case("token id past the vocab after the first record", lambda k: pretrain(k, *data(k, "big_id")),
         lambda k: "record 8"),
    Case("records made with max_predictions_per_seq 0", lambda k: pretrain(k, *data(k, "no_predictions")),
         lambda k: "max_predictions_per_seq"),
    Case("records longer than max_position_embeddings",
         lambda k: pretrain(k, *data(k, "records"), "--bert_network", str(k["short_positions"])),
         lambda k: "max_position_embeddings"),
    Case("a file the manifest does not list", lambda k: pretrain(k, *data(k, "extra_file")),
         lambda k: "added.tfrecord"),
    Case("tool-made shards without a manifest", lambda k: pretrain(k, *data(k, "no_manifest")),
         lambda k: str(k["no_manifest"])),
    Case("schema that does not exist",
         lambda k: pretrain(k, *data(k, "records"), "--schema_dir", str(k["base"] / "nope.json")),
         lambda k: "nope.json"),
    # configs and flags
    Case("empty model YAML", lambda k: pretrain(k, *data(k, "records"), "--bert_network", str(k["empty_model"])),
         lambda k: "empty_model.yaml"),
    Case("negative layer count",
         lambda k: pretrain(k, *data(k, "records"), "--bert_network", str(k["bad_layers"])),
         lambda k: "num_hidden_layers"),
    Case("run config that is not YAML", lambda k: [*pretrain(k, *data(k, "records")), "--config", str(k["bad_yaml"])],
         lambda k: "bad_yaml.yaml"),
    Case("run config with an unknown field",
         lambda k: [*pretrain(k, *data(k, "records")), "--config", str(k["unknown_field"])], lambda k: "batch_sise"),
    Case("missing run config", lambda k: [*pretrain(k, *data(k, "records")), "--config", "/nonexistent/run.yaml"],
         lambda k: "/nonexistent/run.yaml"),
    Case("unknown preset", lambda k: pretrain(k, *data(k, "records"), "--bert_network", "huge"), lambda k: "huge"),
    Case("train_steps 0", lambda k: pretrain(k, *data(k, "records"), "--train_steps", "0"), lambda k: "--train_steps"),
    Case("epoch_size 0", lambda k: pretrain(k, *data(k, "records"), "--epoch_size", "0"), lambda k: "--epoch_size"),
    Case("accumulation_steps 0", lambda k: pretrain(k, *data(k, "records"), "--accumulation_steps", "0"),
         lambda k: "--accumulation_steps"),
    Case("save_checkpoint_steps 0", lambda k: pretrain(k, *data(k, "records"), "--save_checkpoint_steps", "0"),
         lambda k: "--save_checkpoint_steps"),
    Case("not a boolean", lambda k: pretrain(k, *data(k, "records"), "--enable_lossscale", "maybe"),
         lambda k: "maybe"),
    Case("unknown flag", lambda k: pretrain(k, *data(k, "records"), "--learning_rate", "1"),
         lambda k: "--learning_rate"),
    Case("GPU on a machine without one", lambda k: pretrain(k, *data(k, "records"), "--device_target", "GPU"),
         lambda k: "GPU"),
    # outputs
    Case("checkpoint path is a file",
         lambda k: pretrain(k, *data(k, "records"), "--save_checkpoint_path", str(k["a_file"])),
         lambda k: "a_file.txt"),
    Case("output_dir is a file", lambda k: pretrain(k, *data(k, "records"), "--output_dir", str(k["a_file"])),
         lambda k: "a_file.txt"),
    Case("directory held by a live run", lambda k: pretrain(k, *data(k, "records"), "--output_dir",
                                                            str(k["live_locked"])),
         lambda k: "live_locked"),
    Case("corrupt checkpoint to resume from",
         lambda k: pretrain(k, *data(k, "records"), "--load_checkpoint_path", str(k["garbage_ckpt"])),
         lambda k: "garbage.ckpt"),
    Case("checkpoint directory without checkpoints",
         lambda k: pretrain(k, *data(k, "records"), "--load_checkpoint_path", str(k["empty_dir"])),
         lambda k: "empty_dir"),
    # evaluation
    Case("pretrain_eval without its checkpoint",
         lambda k: ["pretrain_eval.py", "--device_target", "CPU", "--config", str(k["config"]), *data(k, "records"),
                    "--load_checkpoint_path", "/nonexistent/ckpt_0"], lambda k: "/nonexistent/ckpt_0"),
    Case("pretrain_eval with a corrupt checkpoint",
         lambda k: ["pretrain_eval.py", "--device_target", "CPU", "--config", str(k["config"]), *data(k, "records"),
                    "--load_checkpoint_path", str(k["garbage_ckpt"])], lambda k: "garbage.ckpt"),
    # finetuning
    Case("pretraining records given to run_classifier",
         lambda k: classifier(k, "--do_train", "true", "--train_data_file_path", str(k["records"])),
         lambda k: "label_ids"),
    Case("empty finetuning file",
         lambda k: classifier(k, "--do_train", "true", "--train_data_file_path", str(k["empty_file"])),
         lambda k: "empty.tfrecord"),
    Case("missing finetuning file",
         lambda k: classifier(k, "--do_train", "true", "--train_data_file_path", "/nonexistent/train.tfrecord"),
         lambda k: "/nonexistent/train.tfrecord"),
    Case("eval file checked before training",
         lambda k: classifier(k, "--do_train", "true", "--do_eval", "true", "--train_data_file_path",
                              str(k["records"]), "--eval_data_file_path", "/nonexistent/dev.tfrecord"),
         lambda k: "/nonexistent/dev.tfrecord"),
    Case("nothing to do", lambda k: classifier(k), lambda k: "--do_train"),
    Case("epoch_num 0", lambda k: classifier(k, "--do_train", "true", "--epoch_num", "0"), lambda k: "--epoch_num"),
    Case("label2id with duplicate ids",
         lambda k: ["run_ner.py", "--device_target", "CPU", "--do_eval", "true", "--label2id_file_path",
                    str(k["labels_dup"])], lambda k: "labels_dup.json"),
    Case("SQuAD doc_stride 0",
         lambda k: ["run_squad.py", "--device_target", "CPU", "--do_eval", "true", "--doc_stride", "0"],
         lambda k: "--doc_stride"),
    Case("SQuAD window without room for the document",
         lambda k: ["run_squad.py", "--device_target", "CPU", "--do_eval", "true", "--max_seq_length", "40"],
         lambda k: "--max_seq_length"),
    Case("SQuAD eval file checked before training",
         lambda k: ["run_squad.py", "--device_target", "CPU", "--do_train", "true", "--do_eval", "true",
                    "--train_data_file_path", str(k["records"]), "--vocab_file_path", str(k["vocab"]),
                    "--eval_json_path", "/nonexistent/dev-v1.1.json"], lambda k: "/nonexistent/dev-v1.1.json"),
    # data preparation tools
    Case("records into a non-empty directory",
         lambda k: ["tools/create_pretraining_data.py", "--input_file", str(k["gb18030"]), "--vocab_file",
                    str(k["vocab"]), "--output_dir", str(k["prefilled"])], lambda k: "prefilled"),
    Case("records from non-UTF-8 text",
         lambda k: ["tools/create_pretraining_data.py", "--input_file", str(k["gb18030"]), "--vocab_file",
                    str(k["vocab"]), "--output_dir", str(k["out"] / "new_records")], lambda k: "gb18030.txt"),
    Case("records with a missing vocab",
         lambda k: ["tools/create_pretraining_data.py", "--input_file", str(k["gb18030"]), "--vocab_file",
                    "/nonexistent/vocab.txt", "--output_dir", str(k["out"] / "new_records")],
         lambda k: "/nonexistent/vocab.txt"),
    Case("records without predictions",
         lambda k: ["tools/create_pretraining_data.py", "--input_file", str(k["gb18030"]), "--vocab_file",
                    str(k["vocab"]), "--output_dir", str(k["out"] / "new_records"), "--max_predictions_per_seq",
                    "0"], lambda k: "--max_predictions_per_seq"),
    Case("records from no input", lambda k: ["tools/create_pretraining_data.py", "--input_file", "/nonexistent/*.txt",
                                             "--vocab_file", str(k["vocab"]), "--output_dir", str(k["out"] / "r")],
         lambda k: "/nonexistent/*.txt"),
    Case("vocab from non-UTF-8 text",
         lambda k: ["tools/create_vocab.py", "--input_file", str(k["gb18030"]), "--output_dir", str(k["out"] / "v")],
         lambda k: "gb18030.txt"),
    Case("wiki dump that does not exist",
         lambda k: ["tools/wiki_to_text.py", "--input", "/nonexistent/dump.xml.bz2", "--output_dir",
                    str(k["out"] / "text")], lambda k: "/nonexistent/dump.xml.bz2"),
    Case("wiki text into a non-empty directory",
         lambda k: ["tools/wiki_to_text.py", "--input", str(ROOT / "data" / "enwiki-sample-pages-articles.xml.bz2"),
                    "--output_dir", str(k["prefilled"])], lambda k: "prefilled"),
    Case("convert a missing HF checkpoint",
         lambda k: ["tools/convert_checkpoint.py", "--from", "hf", "--input", "/nonexistent/hf", "--output",
                    str(k["out"] / "x.ckpt")], lambda k: "/nonexistent/hf"),
    Case("convert a corrupt checkpoint",
         lambda k: ["tools/convert_checkpoint.py", "--from", "zoo", "--input", str(k["garbage_ckpt"]), "--config",
                    "tiny", "--output", str(k["out"] / "x.ckpt")], lambda k: "garbage.ckpt"),
    Case("CLUENER spans that overlap",
         lambda k: ["tools/convert_task_data.py", "--task", "ner", "--input_format", "cluener_json", "--input_file",
                    str(k["cluener_overlap"]), "--vocab_file", str(k["vocab"]), "--output_file",
                    str(k["out"] / "ner.tfrecord"), "--create_label2id", "true"], lambda k: "cluener.json:1"),
    Case("predict from a directory without checkpoints",
         lambda k: ["predict.py", "--load_finetune_checkpoint_path", str(k["base"] / "flipped"), "--input_file",
                    str(k["a_file"])], lambda k: "flipped"),
    Case("export a corrupt checkpoint",
         lambda k: ["export.py", "--ckpt_file", str(k["garbage_ckpt"]), "--bert_network", "tiny", "--file_name",
                    str(k["out"] / "model")], lambda k: "garbage.ckpt"),
    Case("loss plot without metrics",
         lambda k: ["tools/plot_loss.py", "--metrics_file", "/nonexistent/metrics.jsonl"],
         lambda k: "/nonexistent/metrics.jsonl"),
    Case("MSRA preprocessing of a missing file",
         lambda k: ["tools/finetune_data_preprocess.py", "--data_dir", "/nonexistent/msra.txt", "--vocab_file",
                    str(k["vocab"]), "--save_path", str(k["out"] / "m.mindrecord"), "--label2id",
                    str(k["labels_dup"])], lambda k: "/nonexistent/msra.txt"),
    Case("rank table of a bad device range",
         lambda k: ["scripts/hccl_tools.py", "--device_num", "[8,0)", "--output_dir", str(k["base"])],
         lambda k: "[8,0)"),
]


def snapshot(*directories: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for directory in directories for p in sorted(directory.rglob("*")) if p.is_file()}


def run_case(index: int, case: Case, kit: dict) -> subprocess.CompletedProcess:
    argv = case.argv({**kit, "out": kit["base"] / f"out-{index}"})
    env = {k: v for k, v in os.environ.items() if k not in ("GLOG_v", "BERT_DEBUG")}
    workdir = kit["base"] / f"cwd-{index}"  # launchers and tools write relative paths here, never into the inputs
    workdir.mkdir()
    return subprocess.run([PYTHON, str(ROOT / argv[0]), *argv[1:]], cwd=workdir, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def outcomes(kit) -> dict:
    """Every case's process, and the input files' digests before and after all of them."""
    before = snapshot(kit["base"], kit["records"])
    with ThreadPoolExecutor(max_workers=2) as pool:  # subprocesses: two at a time use both cores
        results = dict(zip((case.name for case in CASES),
                           pool.map(run_case, range(len(CASES)), CASES, [kit] * len(CASES))))
    return {"results": results, "before": before, "after": snapshot(kit["base"], kit["records"])}


def test_there_are_at_least_forty_cases_across_every_entry_point():
    anywhere = collections.defaultdict(lambda: Path("/k"))
    scripts = {case.argv(anywhere)[0] for case in CASES}
    assert len(CASES) >= 40
    assert {"run_pretrain.py", "pretrain_eval.py", "run_classifier.py", "run_ner.py", "run_squad.py",
            "tools/create_pretraining_data.py", "tools/create_vocab.py", "tools/wiki_to_text.py",
            "tools/convert_checkpoint.py", "tools/convert_task_data.py"} <= scripts


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_ends_in_one_line_naming_it(case, kit, outcomes):
    result = outcomes["results"][case.name]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout[-2000:]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "C++ Call Stack" not in result.stderr
    assert case.expected(kit) in errors[0], errors[0]


def test_no_case_changed_or_removed_an_existing_file(kit, outcomes):
    before, after = outcomes["before"], outcomes["after"]
    assert {str(kit["garbage_ckpt"]), str(kit["a_file"]), str(kit["records"] / "manifest.json")} <= set(before)
    changed = sorted(name for name, digest in before.items() if after.get(name) != digest)
    assert not changed, f"changed or removed: {changed}"


@pytest.mark.parametrize("switch", [["--debug"], []], ids=["flag", "environment"])
def test_debug_shows_the_trace(switch, tmp_path):
    env = {**os.environ, "BERT_DEBUG": "0" if switch else "1"}
    result = subprocess.run([PYTHON, str(ROOT / "tools" / "convert_checkpoint.py"), "--from", "hf", "--input",
                             "/nonexistent/hf", "--output", str(tmp_path / "x.ckpt"), *switch],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "/nonexistent/hf" in result.stderr
