"""Every text input is read by src/files/text_input.py: a leading UTF-8 BOM is dropped, CRLF (and CR-only) line ends are
line ends, nothing else changes; NUL and the other characters Google's tokenizer drops never reach the tagger and
never start or end an entity or an answer; offsets index the text as given; a file that is not UTF-8 or is
missing fails in one line naming it."""
import gzip
import io
import json
import lzma
import re
import sys

import numpy as np
import pytest

import predict
from src.data.corpus import read_documents
from src.data.tokenization import SPECIAL_TOKENS, FullTokenizer, is_dropped, load_vocab, train_vocab
from src.files.text_input import read_text, text_lines
from src.serve.pipelines import Counts, tag_entities, token_offsets
from src.serve.prediction_files import read_inputs
from src.tasks.squad import (
    best_answers,
    convert_examples_to_features,
    final_text_span,
    question_on_text,
    read_squad_examples,
)
from src.tasks.task_card import TaskCard
from src.tasks.task_files import load_label2id, read_classification, read_msra_xml, read_ner
from tests.helpers import DATA, NER_SEQ, PadsToMax
from tools import split_labeled_text

BOM = b"\xef\xbb\xbf"
GB18030_TEXT = "中文".encode("gb18030")  # d6 d0: not UTF-8 at its first byte
NAME = "江泽民"
DROPPED = "\x00\u200b\ufeff"  # NUL, zero-width space, a BOM inside the text: the tokenizer drops all three


def windows_bytes(text: str) -> bytes:
    """text as a Windows editor saves it: a BOM, CRLF line ends."""
    return BOM + text.replace("\n", "\r\n").encode("utf-8")


def lines_of(tmp_path, data: bytes, name="in.txt"):
    path = tmp_path / name
    path.write_bytes(data)
    return list(text_lines(path))


def stdin_of(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="latin-1"))


# The reader.

@pytest.mark.parametrize("data", [BOM + b"a b\nc\n", b"a b\r\nc\r\n", BOM + b"a b\r\nc", b"a b\r\nc\r"])
def test_bom_and_crlf_give_the_lines_of_the_clean_file(tmp_path, data):
    assert lines_of(tmp_path, data) == lines_of(tmp_path, b"a b\nc\n", "clean.txt") == [(1, "a b"), (2, "c")]


def test_only_the_line_end_is_removed(tmp_path):
    """A '\\r' inside a line, NUL, a tab and a BOM that does not start the file stay for the tokenizer."""
    assert lines_of(tmp_path, b"a\rb\x00\tc\r\n" + BOM + b"d \r\n") == [(1, "a\rb\x00\tc"), (2, "\ufeffd ")]


def test_cr_only_line_ends_are_line_ends(tmp_path):
    assert lines_of(tmp_path, b"a\rb\r\rc\r") == [(1, "a"), (2, "b"), (3, ""), (4, "c")]


def test_standard_input_drops_the_bom_and_reads_crlf(monkeypatch):
    stdin_of(monkeypatch, BOM + "好\r\n江\r\n".encode())
    assert list(text_lines("-")) == [(1, "好"), (2, "江")]


def test_not_utf8_names_the_line_and_the_byte_offset_in_the_file(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(BOM + "好\r\n".encode() + GB18030_TEXT)
    with pytest.raises(ValueError) as error:
        list(text_lines(path))
    assert str(error.value) == (f"{path}:2 is not UTF-8 text (byte 0xd6 at offset 8): convert it with iconv -f "
                                f"GB18030 -t UTF-8 (or from its real encoding)")  # 3 BOM + 3 好 + 2 CRLF bytes


def test_not_utf8_standard_input_is_named(monkeypatch):
    stdin_of(monkeypatch, GB18030_TEXT + b"\n")
    with pytest.raises(ValueError, match=r"^standard input:1 is not UTF-8 text \(byte 0xd6 at offset 0\)"):
        list(text_lines("-"))


def test_utf16_file_gets_the_utf16_conversion(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("好\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r":1 is not UTF-8 text \(byte 0xff at offset 0\): convert it with "
                                         r"iconv -f UTF-16 -t UTF-8"):
        list(text_lines(path))


def test_missing_file_is_one_line_with_what_it_is_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        list(text_lines(tmp_path / "nope.txt", "corpus file", "pass text files"))
    assert str(error.value) == f"corpus file {tmp_path / 'nope.txt'} does not exist: pass text files"


@pytest.mark.parametrize("suffix, compress", [(".gz", gzip.compress), (".xz", lzma.compress)])
def test_compressed_files_read_as_the_plain_file(tmp_path, suffix, compress):
    data = windows_bytes("a\nb\n")
    assert lines_of(tmp_path, compress(data), f"in.txt{suffix}") == lines_of(tmp_path, data)


def test_broken_compressed_file_is_one_line(tmp_path):
    path = tmp_path / "in.txt.xz"
    path.write_bytes(lzma.compress(b"a\n" * 1000)[:-20])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is not a readable \.xz file \(.+\): pass it as "
                                         rf"shipped$"):
        list(text_lines(path))


def test_whole_text_drops_the_bom_and_reads_crlf(tmp_path):
    path = tmp_path / "in.json"
    path.write_bytes(windows_bytes('{"a":\n"b"}\n'))
    assert read_text(path) == '{"a":\n"b"}\n'


def test_whole_text_falls_back_to_the_encoding_given(tmp_path):
    path = tmp_path / "in.xml"
    path.write_bytes(b"<a>\r\n" + GB18030_TEXT + b"</a>")
    assert read_text(path, fallback_encoding="gb18030") == "<a>\n中文</a>"
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2 is not UTF-8 text \(byte 0xd6 at offset 5\)"):
        read_text(path)


# Every reader goes through it: a Windows-saved file reads as the clean one.

def test_vocab_with_bom_and_crlf_loads_the_same_ids(tmp_path):
    tokens = "\n".join([*SPECIAL_TOKENS, "好", "##好", "江"]) + "\n"
    (tmp_path / "clean.txt").write_text(tokens, encoding="utf-8")
    (tmp_path / "windows.txt").write_bytes(windows_bytes(tokens))
    assert load_vocab(tmp_path / "windows.txt") == load_vocab(tmp_path / "clean.txt")


def test_vocab_trained_on_bom_and_crlf_text_is_the_clean_texts(tmp_path):
    text = (DATA / "sentiment_zh_2400.txt").read_text(encoding="utf-8")
    (tmp_path / "clean.txt").write_text(text, encoding="utf-8")
    (tmp_path / "windows.txt").write_bytes(windows_bytes(text))
    clean = train_vocab([tmp_path / "clean.txt"], tmp_path / "clean", vocab_size=1500).read_bytes()
    assert train_vocab([tmp_path / "windows.txt"], tmp_path / "windows", vocab_size=1500).read_bytes() == clean


TASK_FILES = {
    ("classification", "glue_tsv"): "sentence\tlabel\n很好\t1\n一般 般\t0\n",
    ("classification", "label_text"): "pos\t很好\nneg\t一般\t般\n",
    ("classification", "clue_json"): '{"sentence": "很好", "label": "1"}\n{"sentence": "一般", "label": "0"}\n',
    ("ner", "cluener_json"): '{"text": "江泽民好", "label": {"name": {"江泽民": [[0, 2]]}}}\n',
    ("ner", "bio"): "江 B-PER\n泽 I-PER\n\n好 O\n",
    ("ner", "peoples_daily"): "江/nr  泽民/nr  好/a\n",
}


@pytest.mark.parametrize("task, file_format", TASK_FILES)
def test_task_file_with_bom_and_crlf_parses_the_same_rows(tmp_path, task, file_format):
    read = read_classification if task == "classification" else read_ner
    path = tmp_path / "data.txt"
    path.write_text(TASK_FILES[task, file_format], encoding="utf-8")
    clean = read(path, file_format)
    path.write_bytes(windows_bytes(TASK_FILES[task, file_format]))
    assert read(path, file_format) == clean


def test_label2id_json_with_bom_and_crlf(tmp_path):
    path = tmp_path / "labels.json"
    path.write_bytes(windows_bytes('{"O": 0,\n "B-PER": 1}\n'))
    assert load_label2id(path) == {"O": 0, "B-PER": 1}


def test_msra_xml_in_utf8_with_bom_and_crlf_reads_as_the_gb18030_release(tmp_path):
    sample = DATA / "msra_sample.xml"  # the release's encoding: GB18030, as it declares
    text = sample.read_text(encoding="gb18030").replace("\r\n", "\n")
    path = tmp_path / "msra.xml"
    path.write_bytes(windows_bytes(text))
    assert [(e.tokens, e.tags) for e in read_msra_xml(path)] == [(e.tokens, e.tags) for e in read_msra_xml(sample)]


def test_corpus_with_bom_and_crlf_gives_the_same_documents(tmp_path):
    text = "第一句。\n第二句。\n\n另一篇。\n"
    (tmp_path / "clean.txt").write_text(text, encoding="utf-8")
    (tmp_path / "windows.txt").write_bytes(windows_bytes(text))
    assert list(read_documents(tmp_path / "windows.txt")) == list(read_documents(tmp_path / "clean.txt")) == [
        ["第一句。", "第二句。"], ["另一篇。"]]


def test_squad_json_with_bom_and_crlf_reads(tmp_path):
    path = tmp_path / "squad.json"
    squad = {"data": [{"paragraphs": [{"context": "Paris is big.", "qas": [
        {"id": "q", "question": "What?", "answers": [{"text": "Paris", "answer_start": 0}]}]}]}]}
    path.write_bytes(windows_bytes(json.dumps(squad, indent=1)))
    assert [(e.qas_id, e.doc_tokens, e.start_position) for e in read_squad_examples(path)] == [
        ("q", ["Paris", "is", "big."], 0)]


def test_split_labeled_text_reads_bom_crlf_and_xz(tmp_path):
    text = "pos\t很好\nneg\t一般\n"
    (tmp_path / "windows.tsv.xz").write_bytes(lzma.compress(windows_bytes(text)))
    (tmp_path / "clean.tsv").write_text(text, encoding="utf-8")
    assert split_labeled_text.read_labeled_text(tmp_path / "windows.tsv.xz") == \
        split_labeled_text.read_labeled_text(tmp_path / "clean.tsv") == {"neg": ["一般"], "pos": ["很好"]}


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_predict_input_with_bom_and_crlf_reads_the_clean_texts(tmp_path, monkeypatch, source):
    text = "江泽民会见\n\n好\n"
    (tmp_path / "clean.txt").write_text(text, encoding="utf-8")
    (tmp_path / "windows.txt").write_bytes(windows_bytes(text))
    if source == "stdin":
        stdin_of(monkeypatch, windows_bytes(text))
    got = read_inputs("-" if source == "stdin" else str(tmp_path / "windows.txt"), "ner", "text")
    clean = read_inputs(str(tmp_path / "clean.txt"), "ner", "text")
    assert (got.items, got.lines, got.empty_lines) == (clean.items, clean.lines, clean.empty_lines) == (
        ["江泽民会见", "好"], [1, 3], [2])


# Tagging maps entities to offsets of the text as given, never on a dropped character or white space. The tagger
# is a stand-in that tags by input id: the name's characters I-PER, [UNK] B-PER (as a model that never saw [UNK]
# at a sentence start tagged the BOM), everything else O; it records what it was given.

class StandInTagger(PadsToMax):
    labels = ("O", "B-PER", "I-PER")

    def __init__(self, tokenizer: FullTokenizer) -> None:
        self.unk = tokenizer.vocab["[UNK]"]
        self.name_ids = tokenizer.convert_tokens_to_ids(list(NAME))
        self.inputs: list[list[int]] = []

    def __call__(self, input_ids, input_mask, segment_ids):
        for ids, mask in zip(input_ids, input_mask):
            self.inputs.append(ids[:int(mask.sum())].tolist())
        scores = np.zeros((*input_ids.shape, 3), np.float32)
        scores[..., 0] = 1.0
        scores[..., 1] = np.where(input_ids == self.unk, 5.0, 0.0)
        scores[..., 2] = np.where(np.isin(input_ids, self.name_ids), 5.0, 0.0)
        return [scores]


@pytest.fixture
def tokenizer(tmp_path):
    vocab = tmp_path / "vocab.txt"
    words = ["paris", "is", "here", "the", "capital", "of", "france", "what", "?"]
    vocab.write_text("\n".join([*SPECIAL_TOKENS, *"会见江泽民在北京。", *words]) + "\n", encoding="utf-8")
    return FullTokenizer(vocab)


def tag(texts, tokenizer, token_unit="character", tagger=None):
    tagger = tagger or StandInTagger(tokenizer)
    card = TaskCard("ner", max_seq_length=16, labels=StandInTagger.labels, token_unit=token_unit)
    return [row["entities"] for row in tag_entities(texts, tagger, tokenizer, card, 8, Counts(), None)]


def spans(entities):
    return [(e["start"], e["end"], e["text"]) for e in entities]


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_bom_at_the_start_of_a_predict_input_is_no_entity(tmp_path, monkeypatch, tokenizer, source):
    data = BOM + "江泽民会见\r\n".encode()
    (tmp_path / "in.txt").write_bytes(data)
    if source == "stdin":
        stdin_of(monkeypatch, data)
    inputs = read_inputs("-" if source == "stdin" else str(tmp_path / "in.txt"), "ner", "text")
    assert [spans(entities) for entities in tag(inputs.items, tokenizer)] == [[(0, 3, NAME)]]


def test_a_bom_inside_the_text_is_no_entity_either(tokenizer):
    assert spans(tag(["\ufeff江泽民会见"], tokenizer)[0]) == [(1, 4, NAME)]


def test_dropped_characters_before_and_inside_an_entity_never_reach_the_tagger(tokenizer):
    tagger = StandInTagger(tokenizer)
    tag(["会见" + DROPPED + "江\x00泽\u200b民\ufeff。", "会见江泽民。"], tokenizer, tagger=tagger)
    assert tagger.inputs[0] == tagger.inputs[1]


def test_entity_with_dropped_characters_before_and_inside_it_spans_the_name_as_given(tokenizer):
    text = "会见" + DROPPED + "江\x00泽\u200b民\ufeff。"
    start = text.index("江")
    assert spans(tag([text], tokenizer)[0]) == [(start, start + 5, "江\x00泽\u200b民")]


def test_white_space_is_never_an_entity_edge(tokenizer):
    """White space is [UNK] to the tagger (as in the training records), which this one tags B-PER: the entity
    after it starts on the name, and an entity of white space alone is none."""
    text = "会见 江泽民\t。 "
    start = text.index("江")
    assert spans(tag([text], tokenizer)[0]) == [(start, start + 3, NAME)]


def test_crlf_file_entity_ends_at_the_end_of_the_line(tmp_path, tokenizer):
    (tmp_path / "in.txt").write_bytes("会见江泽民\r\n北京\r\n".encode())
    inputs = read_inputs(str(tmp_path / "in.txt"), "ner", "text")
    assert [spans(entities) for entities in tag(inputs.items, tokenizer)] == [[(2, 5, NAME)], []]


def test_word_tokens_lose_dropped_characters_at_their_ends():
    text = "\u200bParis\x00 is \ufeff here\x00"
    assert [text[a:b] for a, b in token_offsets(text, "word")] == ["Paris", "is", "here"]


def test_character_tokens_are_every_character_the_tokenizer_keeps():
    text = "a\x00 b\u200bc\r"
    assert [text[a:b] for a, b in token_offsets(text, "character")] == ["a", " ", "b", "c", "\r"]
    assert [c for c in text if is_dropped(c)] == ["\x00", "\u200b"]


# SQuAD answers: never on a dropped character or white space either.

def test_answer_starts_and_ends_on_the_words_not_on_dropped_characters(tokenizer):
    context = "Paris is \u200bthe capital\x00 of France\ufeff here"
    example = question_on_text("q", "What is Paris?", context)
    features = convert_examples_to_features([example], tokenizer, 32, 16, 8)
    start, end = np.full(32, -10.0), np.full(32, -10.0)
    tokens = features[0].tokens
    document = tokens.index("[SEP]")
    start[tokens.index("the", document)], end[tokens.index("france", document)] = 5.0, 5.0
    _, nbest, _ = best_answers([example], features, {features[0].unique_id: (start, end)}, tokenizer)
    first, last = nbest["q"][0]["char_span"]
    assert (nbest["q"][0]["text"], context[first:last]) == ("the capital\x00 of France",) * 2


def test_unaligned_answer_falls_back_to_the_words_without_their_dropped_ends(tokenizer):
    orig = "\u200bParis\x00"
    assert final_text_span("not there", orig, tokenizer) == (1, 6)


# End to end: predict.py with a trained tagger (the shared CRF fixture) on the held-out sentences.

def predict_rows(capsys, run_dir, input_file):
    capsys.readouterr()
    predict.main(["--load_finetune_checkpoint_path", str(run_dir), "--input_file", str(input_file)])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.slow
def test_predict_py_entities_ignore_bom_crlf_and_dropped_characters(tmp_path, capsys, monkeypatch,
                                                                    peoples_daily_ner, crf_tagger):
    directory, _ = peoples_daily_ner
    run_dir = crf_tagger[0]
    texts = [json.loads(line)["text"] for line in open(directory / "dev.json", encoding="utf-8")]
    texts = [text for text in texts if len(text) <= NER_SEQ - 2][:40]
    (tmp_path / "clean.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    clean = predict_rows(capsys, run_dir, tmp_path / "clean.txt")
    tagged = [index for index, row in enumerate(clean) if row["entities"]]
    assert len(tagged) >= 10

    # a Windows-saved file, and the same bytes on standard input: the clean file's rows
    (tmp_path / "windows.txt").write_bytes(windows_bytes("\n".join(texts) + "\n"))
    assert predict_rows(capsys, run_dir, tmp_path / "windows.txt") == clean
    stdin_of(monkeypatch, windows_bytes("\n".join(texts) + "\n"))
    assert predict_rows(capsys, run_dir, "-") == clean

    # NUL, a zero-width space and a BOM right before each text's first entity and inside it: the same entities,
    # at the offsets of the text as given
    changed, moved = [], []
    for row in clean:
        text, entities = row["text"], row["entities"]
        at = entities[0]["start"] if entities else 0
        inside = at + 1 if entities and entities[0]["end"] - at > 1 else None
        new, position = "", []
        for index, character in enumerate(text):
            new += DROPPED if index == at else "\u200b\x00" if index == inside else ""
            position.append(len(new))
            new += character
        position.append(len(new))
        changed.append(new)
        moved.append([(e["type"], position[e["start"]], position[e["end"] - 1] + 1) for e in entities])
    (tmp_path / "dropped.txt").write_text("\n".join(changed) + "\n", encoding="utf-8")
    rows = predict_rows(capsys, run_dir, tmp_path / "dropped.txt")
    assert [[(e["type"], e["start"], e["end"]) for e in row["entities"]] for row in rows] == moved
    for row, text in zip(rows, changed):
        assert row["text"] == text
        for entity in row["entities"]:
            assert entity["text"] == text[entity["start"]:entity["end"]]
            for edge in (entity["text"][0], entity["text"][-1]):
                assert not is_dropped(edge) and not edge.isspace()
    assert [e["score"] for row in rows for e in row["entities"]] == \
        pytest.approx([e["score"] for row in clean for e in row["entities"]])
