"""No tool overwrites what it did not write, and outputs never land in inputs: each refusal is one line before any
work, and no existing file changes."""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

import run_pretrain
from src.files.paths import check_apart
from tests.helpers import convert, write_run_config
from tools import create_pretraining_data, create_vocab


def snapshot(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def refusal(main, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    message = str(stop.value.code)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("outputs", [
    lambda records: ["--output_dir", str(records / "logs")],
    lambda records: ["--save_checkpoint_path", str(records)],
    lambda records: ["--output_dir", str(records)],
])
def test_pretraining_outputs_inside_the_records_are_refused_before_the_first_step(tmp_path, wiki_records, outputs):
    records = tmp_path / "records"
    shutil.copytree(wiki_records, records)
    before = snapshot(records)
    flags = ["--data_dir", str(records), "--config", str(write_run_config(tmp_path)), "--device_target", "CPU",
             "--train_steps", "2", *outputs(records)]
    message = refusal(run_pretrain.main, flags)
    assert message.startswith("run_pretrain.py: --") and f"is inside --data_dir {records}" in message, message
    assert snapshot(records) == before


def test_create_vocab_refuses_a_directory_that_holds_a_vocab_and_replaces_it_only_when_told(tmp_path, wiki_text_dir):
    output = tmp_path / "vocab"
    output.mkdir()
    (output / "vocab.txt").write_text("[PAD]\n[UNK]\n", encoding="utf-8")
    (output / "model.yaml").write_text("the model the records were made for\n", encoding="utf-8")
    before = snapshot(output)
    flags = ["--input_file", str(wiki_text_dir / "wiki_0002.txt"), "--output_dir", str(output), "--vocab_size", "300",
             "--config", "tiny"]
    assert refusal(create_vocab.main, flags) == (f"create_vocab.py: --output_dir {output} is not empty: pass "
                                                 f"--overwrite true to replace it, or another --output_dir")
    assert snapshot(output) == before
    create_vocab.main([*flags, "--overwrite", "true"])
    assert sorted(p.name for p in output.iterdir()) == ["manifest.json", "model.yaml", "vocab.txt"]
    assert len((output / "vocab.txt").read_text(encoding="utf-8").splitlines()) == 300
    assert "vocab_size: 300" in (output / "model.yaml").read_text(encoding="utf-8")


def test_tools_refuse_an_output_that_holds_their_inputs(tmp_path, wiki_text_dir, wiki_vocab):
    text = tmp_path / "text"
    shutil.copytree(wiki_text_dir, text)
    before = snapshot(text)
    message = refusal(create_vocab.main, ["--input_file", f"{text}/*.txt", "--output_dir", str(text),
                                          "--overwrite", "true"])
    # the copied text directory has its manifest: a file in it protects the whole directory, which the line names
    assert re.fullmatch(rf"create_vocab\.py: --output_dir {text} is inside {text}, the tool-made directory of "
                        rf"--input_file \(wiki_000\d\.txt\) {text}/wiki_000\d\.txt: outputs there would change the "
                        rf"input; pass an --output_dir outside it", message), message
    message = refusal(create_pretraining_data.main, ["--input_file", str(text / "wiki_0002.txt"), "--output_dir",
                                                     str(text), "--vocab_file", str(wiki_vocab), "--overwrite", "true"])
    assert f"--output_dir {text} is inside {text}, the tool-made directory of --input_file" in message, message
    assert snapshot(text) == before


def test_task_records_and_predictions_are_never_written_over_their_input(tmp_path, sentiment):
    directory, vocab = sentiment
    source = tmp_path / "train.txt"
    shutil.copy(directory / "train.txt", source)
    before = source.read_bytes()
    with pytest.raises(SystemExit) as stop:
        convert("--task", "classification", "--input_format", "label_text", "--input_file", str(source),
                "--output_file", str(source), "--vocab_file", str(vocab), "--label2id_file", str(tmp_path / "l.json"),
                "--create_label2id", "true")
    assert str(stop.value.code) == (f"convert_task_data.py: --output_file {source} is inside --input_file {source}: "
                                    f"outputs there would change the input; pass an --output_file outside it")
    assert source.read_bytes() == before


def test_paths_are_compared_resolved(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    with pytest.raises(ValueError, match="is inside --data_dir"):
        check_apart({"--output_dir": tmp_path / "link" / "logs"}, {"--data_dir": tmp_path / "data"})
    check_apart({"--output_dir": tmp_path}, {"--data_dir": tmp_path / "data"})  # records inside the run directory
    with pytest.raises(ValueError, match="which this tool replaces as a whole"):
        check_apart({"--output_dir": tmp_path}, {"--input": tmp_path / "data"}, replaces=True)
    check_apart({"--output_dir": ""}, {"--data_dir": tmp_path})  # an unset flag is no path


@pytest.mark.slow
def test_pretrain_eval_prints_the_majority_next_sentence_baseline_beside_the_most_frequent_token(
        tmp_path, wiki_records, capsys):
    import pretrain_eval
    config = write_run_config(tmp_path)
    run_pretrain.main(["--data_dir", str(wiki_records), "--config", str(config), "--device_target", "CPU",
                       "--train_steps", "2", "--save_checkpoint_path", str(tmp_path), "--output_dir", str(tmp_path)])
    result = pretrain_eval.main(["--data_dir", str(wiki_records), "--load_checkpoint_path", str(tmp_path / "ckpt_0"),
                                 "--config", str(config), "--device_target", "CPU"])
    from tfrecord.reader import tfrecord_loader
    labels = [int(row["next_sentence_labels"][0]) for path in sorted(wiki_records.glob("*.tfrecord"))
              for row in tfrecord_loader(str(path), None)]
    share = sum(labels) / len(labels)
    assert abs(result.majority_nsp_accuracy - max(share, 1 - share)) < 0.01, (result, share)
    assert f"(majority label: {result.majority_nsp_accuracy:.4f})" in capsys.readouterr().out
