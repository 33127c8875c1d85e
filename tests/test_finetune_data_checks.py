"""Bad task data, label files and vocab input fail with one line that names the file and says the fix; the same
text gives the same vocab.txt in every process."""
import json
import os
import subprocess
import sys

import pytest

from src.data.tokenization import SPECIAL_TOKENS, train_vocab
from src.tasks.task_files import load_label2id, read_classification, read_ner
from tests.helpers import DATA, ROOT
from tools import convert_task_data

GB18030_LINE = "neg\t一般般\n".encode("gb18030")
# 一 is d2 bb in GB18030, which UTF-8 happens to read as one character; 般 begins with b0, which it cannot.
GB18030_BAD_BYTE, GB18030_BAD_OFFSET = 0xb0, 6


def one_line_naming(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    return message


def cluener(tmp_path, *rows):
    path = tmp_path / "train.json"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


GOOD_ROW = {"text": "浙商银行企业信贷部叶老桂博士",
            "label": {"company": {"浙商银行": [[0, 3]]}, "name": {"叶老桂": [[9, 11]]}}}


def test_cluener_spans_become_bio_tags_and_an_exact_repeat_counts_once(tmp_path):
    row = {"text": "叶老桂在杭州",
           "label": {"name": {"叶老桂": [[0, 2], [0, 2]]}, "address": {"杭州": [[4, 5]]}}}
    [example] = read_ner(cluener(tmp_path, row), "cluener_json")
    assert example.tags == ["B-name", "I-name", "I-name", "O", "B-address", "I-address"]


def test_cluener_overlapping_spans(tmp_path):
    row = {"text": "浙商银行企业信贷部",
           "label": {"company": {"浙商银行": [[0, 3]]}, "organization": {"银行企业": [[2, 5]]}}}
    path = cluener(tmp_path, GOOD_ROW, row)
    with pytest.raises(ValueError) as error:
        read_ner(path, "cluener_json")
    assert one_line_naming(error, f"{path}:2") == (
        f"{path}:2: organization '银行企业' span [2, 5] overlaps company '浙商银行' span [0, 3]: BIO tags hold one "
        f"entity a character; keep one of the two")


def test_cluener_same_span_under_two_types_overlaps(tmp_path):
    path = cluener(tmp_path, {"text": "杭州",
                              "label": {"address": {"杭州": [[0, 1]]}, "government": {"杭州": [[0, 1]]}}})
    with pytest.raises(ValueError, match="overlaps") as error:
        read_ner(path, "cluener_json")
    one_line_naming(error, f"{path}:1")


def test_cluener_reversed_span(tmp_path):
    path = cluener(tmp_path, {"text": "叶老桂博士", "label": {"name": {"叶老桂": [[2, 0]]}}})
    with pytest.raises(ValueError, match=r"name '叶老桂' span \[2, 0\] is reversed \(end before start\): write it "
                                         r"\[0, 2\]") as error:
        read_ner(path, "cluener_json")
    one_line_naming(error, f"{path}:1")


def test_cluener_empty_span(tmp_path):
    path = cluener(tmp_path, {"text": "叶老桂博士", "label": {"name": {"": [[3, 2]]}}})
    with pytest.raises(ValueError, match=r"span \[3, 2\] is empty: a span covers at least one character") as error:
        read_ner(path, "cluener_json")
    one_line_naming(error, f"{path}:1")


def test_cluener_out_of_range_span(tmp_path):
    path = cluener(tmp_path, {"text": "叶老桂博士", "label": {"name": {"叶老桂": [[3, 5]]}}})
    with pytest.raises(ValueError, match=r"span \[3, 5\] is out of range of the text's 5 characters "
                                         r"\(offsets 0..4\)") as error:
        read_ner(path, "cluener_json")
    one_line_naming(error, f"{path}:1")


def test_cluener_span_that_is_not_two_integers(tmp_path):
    path = cluener(tmp_path, {"text": "叶老桂博士", "label": {"name": {"叶老桂": [[0, "2"]]}}})
    with pytest.raises(ValueError, match=r"span \[0, \"2\"\]; a span is \[start, end\], two integer") as error:
        read_ner(path, "cluener_json")
    one_line_naming(error, f"{path}:1")


def test_label2id_json_duplicate_ids(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"O": 0, "B-PER": 1, "I-PER": 1}')
    with pytest.raises(ValueError) as error:
        load_label2id(path)
    assert one_line_naming(error, path) == (f"label2id file {path}: 'B-PER' and 'I-PER' share id 1; give each label "
                                            f"its own id (0..n-1)")


def test_label2id_json_missing_ids(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"O": 0, "B-PER": 2, "I-PER": 3}')
    with pytest.raises(ValueError) as error:
        load_label2id(path)
    assert one_line_naming(error, path) == (f"label2id file {path}: ids must be exactly 0..2 for its 3 labels "
                                            f"(missing 1; out of range 'I-PER': 3); renumber them")


def test_label2id_json_non_integer_ids(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"O": 0, "B-PER": "1", "I-PER": 2.0}')
    with pytest.raises(ValueError, match=r"the ids of 'B-PER', 'I-PER' are not integers \(\"1\", 2.0\)") as error:
        load_label2id(path)
    one_line_naming(error, path)


def test_label2id_json_label_listed_twice(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"O": 0, "B-PER": 1, "O": 2}')
    with pytest.raises(ValueError, match="lists 'O' more than once") as error:
        load_label2id(path)
    one_line_naming(error, path)


@pytest.mark.parametrize("name, text", [("labels.json", ""), ("labels.json", "{}"), ("labels.txt", "\n \n")])
def test_label2id_empty_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match="is empty|non-empty") as error:
        load_label2id(path)
    one_line_naming(error, path)


def test_label2id_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_label2id(tmp_path / "labels.json")
    one_line_naming(error, tmp_path / "labels.json")


def test_label2id_text_list_numbers_labels_by_line(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("O\nB-PER\nI-PER\n\n")
    assert load_label2id(path) == {"O": 0, "B-PER": 1, "I-PER": 2}


def test_label2id_text_list_duplicate_labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("O\nB-PER\nO\n")
    with pytest.raises(ValueError) as error:
        load_label2id(path)
    assert one_line_naming(error, f"{path}:3") == (f"{path}:3: label 'O' is also on line 1; each label once, remove "
                                                   f"one of them")


def test_label2id_text_list_blank_line_inside(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("O\n\nB-PER\n")
    with pytest.raises(ValueError, match="is blank inside the label list") as error:
        load_label2id(path)
    one_line_naming(error, f"{path}:2")


def test_task_file_not_utf8(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("pos\t很好\n".encode() + GB18030_LINE)
    with pytest.raises(ValueError) as error:
        read_classification(path, "label_text")
    offset = len("pos\t很好\n".encode()) + GB18030_BAD_OFFSET
    assert one_line_naming(error, f"{path}:2") == (
        f"{path}:2 is not UTF-8 text (byte 0x{GB18030_BAD_BYTE:02x} at offset {offset}): convert it with "
        f"iconv -f GB18030 -t UTF-8 (or from its real encoding)")


@pytest.mark.parametrize("read, file_format", [(read_classification, "glue_tsv"), (read_classification, "clue_json"),
                                               (read_ner, "cluener_json"), (read_ner, "bio")])
def test_task_file_not_utf8_in_every_format(tmp_path, read, file_format):
    path = tmp_path / "data.txt"
    path.write_bytes("中文".encode("gb18030") + b"\n")
    with pytest.raises(ValueError, match=r"is not UTF-8 text \(byte 0x") as error:
        read(path, file_format)
    one_line_naming(error, path)


@pytest.mark.parametrize("read, file_format", [(read_classification, "label_text"), (read_classification, "glue_tsv"),
                                               (read_ner, "cluener_json"), (read_ner, "peoples_daily")])
def test_empty_task_file(tmp_path, read, file_format):
    path = tmp_path / "empty.txt"
    path.write_text("")
    with pytest.raises(ValueError, match=f"holds no examples: it is empty or not {file_format}") as error:
        read(path, file_format)
    one_line_naming(error, path)


def test_missing_task_file(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        read_ner(tmp_path / "nope.json", "cluener_json")
    one_line_naming(error, tmp_path / "nope.json")


def test_convert_task_data_exits_with_one_line_on_non_utf8_input(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join([*SPECIAL_TOKENS, "很", "好"]) + "\n", encoding="utf-8")
    path = tmp_path / "train.tsv"
    path.write_bytes(GB18030_LINE)
    with pytest.raises(SystemExit) as error:
        convert_task_data.main(["--task", "classification", "--input_format", "label_text", "--input_file", str(path),
                                "--output_file", str(tmp_path / "x.tfrecord"), "--vocab_file", str(vocab),
                                "--label2id_file", str(tmp_path / "labels.json"), "--create_label2id", "true"])
    message = str(error.value.code)
    assert "\n" not in message and message.startswith(f"convert_task_data.py: {path}:1 is not UTF-8 text"), message


def test_vocab_input_not_utf8(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("今天天气很好\n", encoding="utf-8")
    bad.write_bytes(GB18030_LINE)
    expected = (rf"bad.txt:1 is not UTF-8 text \(byte 0x{GB18030_BAD_BYTE:02x} at offset {GB18030_BAD_OFFSET}\): "
                rf"convert it with iconv -f GB18030 -t UTF-8")
    with pytest.raises(ValueError, match=expected) as error:
        train_vocab([good, bad], tmp_path / "vocab", vocab_size=100)
    one_line_naming(error, bad)


def test_vocab_input_empty_or_missing(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="is empty") as error:
        train_vocab([tmp_path / "empty.txt"], tmp_path / "vocab", vocab_size=100)
    one_line_naming(error, tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="does not exist") as error:
        train_vocab([tmp_path / "nope.txt"], tmp_path / "vocab", vocab_size=100)
    one_line_naming(error, tmp_path / "nope.txt")


TRAIN_VOCAB = "import sys; from src.data.tokenization import train_vocab; train_vocab([sys.argv[1]], sys.argv[2], 2600)"


def test_vocab_is_byte_identical_across_processes(tmp_path):
    """tokenizers numbers "##" pieces in hash-map order (random per process); 2,600 tokens also cuts the merges
    short, where ties between equally frequent merges decide which pieces get in."""
    outputs = []
    for seed in ("1", "2"):
        output = tmp_path / seed
        subprocess.run([sys.executable, "-c", TRAIN_VOCAB, str(DATA / "sentiment_zh_2400.txt"), str(output)],
                       cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed}, check=True, capture_output=True)
        outputs.append((output / "vocab.txt").read_bytes())
    assert outputs[0] == outputs[1]
    tokens = outputs[0].decode("utf-8").splitlines()
    assert len(tokens) == 2600 and tuple(tokens[:5]) == SPECIAL_TOKENS
    first_continuation = next(i for i, token in enumerate(tokens) if token.startswith("##"))
    characters = tokens[5:first_continuation]
    continuations = [token for token in tokens if token.startswith("##") and len(token) == 3]
    assert all(len(token) == 1 for token in characters) and characters == sorted(characters)
    assert tokens[first_continuation:first_continuation + len(continuations)] == sorted(continuations)


def test_create_vocab_on_non_utf8_file_prints_one_line(tmp_path):
    path = tmp_path / "gbk.txt"
    path.write_bytes(GB18030_LINE)
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "create_vocab.py"), "--input_file", str(path),
                             "--output_dir", str(tmp_path / "vocab")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"create_vocab.py: {path}:1 is not UTF-8 text"), result.stderr
