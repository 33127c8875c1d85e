"""The MSRA XML release as the model zoo's finetune_data_preprocess.py reads it: element tags for --class_filter,
S_/B_/M_/E_ + TYPE tags, the zoo's label list, GB18030 or UTF-8, and the seed's command unchanged.

data/msra_sample.xml holds the first 100 People's Daily lines in that layout, so the tags the XML reader gives
are checked against the People's Daily reader (an independent path) on the same sentences.
"""
import mindspore.dataset as ds
import numpy as np
import pytest

from src.data.corpus import peoples_daily_words
from src.tasks.metrics import entity_scores, entity_spans
from src.tasks.task_card import read_records_card
from src.tasks.task_files import load_ner_label2id, peoples_daily_bio, read_msra_xml
from tests.helpers import DATA
from tools import finetune_data_preprocess

SAMPLE = DATA / "msra_sample.xml"
ZOO_TYPES = {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION"}


def peoples_daily_sentences(count=100):
    with open(DATA / "peoples_daily_199801_head2500.txt", encoding="utf-8") as handle:
        lines = [line for line in handle if peoples_daily_words(line)][:count]
    return [peoples_daily_bio(line) for line in lines]


def as_bmes(bio_tags):
    """The zoo's tags for the entities a BIO sequence holds (an independent statement of the S/B/M/E rule)."""
    tags = ["O"] * len(bio_tags)
    for entity_type, first, last in entity_spans(bio_tags):
        name = ZOO_TYPES[entity_type]
        if first == last:
            tags[first] = f"S_{name}"
        else:
            tags[first:last + 1] = [f"B_{name}"] + [f"M_{name}"] * (last - first - 1) + [f"E_{name}"]
    return tags


def test_names_are_tagged_as_the_peoples_daily_reader_finds_them():
    examples = read_msra_xml(SAMPLE, {"NAMEX"})
    reference = peoples_daily_sentences()
    assert len(examples) == len(reference) == 100
    for example, (characters, bio_tags) in zip(examples, reference):
        assert example.tokens == characters, example.source
        assert example.tags == as_bmes(bio_tags), example.source
    tags = {tag for example in examples for tag in example.tags}
    assert {"S_PERSON", "B_PERSON", "M_PERSON", "E_PERSON", "B_LOCATION", "M_ORGANIZATION"} <= tags
    assert not any("DATE" in tag for tag in tags)


def test_class_filter_names_element_tags():
    everything, names, dates = (read_msra_xml(SAMPLE, classes) for classes in (None, {"NAMEX"}, {"TIMEX"}))
    first = everything[0]  # 迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）
    assert "".join(first.tokens[12:19]) == "一九九八年新年" and first.tags[12:19] == [
        "B_DATE", "M_DATE", "M_DATE", "M_DATE", "E_DATE", "B_DATE", "E_DATE"]
    assert names[0].tags[12:19] == ["O"] * 7 and dates[0].tags[12:19] == first.tags[12:19]
    for a, n, d in zip(everything, names, dates):
        assert [t if "DATE" not in t else "O" for t in a.tags] == n.tags
        assert [t if "DATE" in t else "O" for t in a.tags] == d.tags


def test_utf8_and_gb18030_files_read_the_same(tmp_path):
    utf8 = tmp_path / "msra_utf8.xml"
    utf8.write_text(SAMPLE.read_text(encoding="gb18030").replace('encoding="GB18030"', 'encoding="UTF-8"'),
                    encoding="utf-8")
    assert SAMPLE.read_bytes() != utf8.read_bytes()
    assert ([(e.tokens, e.tags) for e in read_msra_xml(utf8)]
            == [(e.tokens, e.tags) for e in read_msra_xml(SAMPLE)])


def test_zoo_label_list_stands_for_o_and_bmes_of_each_type():
    label2id = load_ner_label2id(DATA / "msra_labels.txt")
    assert list(label2id)[:6] == ["O", "S_PERSON", "B_PERSON", "M_PERSON", "E_PERSON", "S_LOCATION"]
    assert len(label2id) == 13 and sorted(label2id.values()) == list(range(13))


def test_bmes_tags_score_as_entities():
    gold = [["B_PERSON", "M_PERSON", "E_PERSON", "O", "S_LOCATION"]]
    assert entity_spans(gold[0]) == {("PERSON", 0, 2), ("LOCATION", 4, 4)}
    predicted = [["B_PERSON", "E_PERSON", "O", "O", "S_LOCATION"]]
    assert entity_scores(gold, predicted)["f1"] == pytest.approx(0.5)


def test_the_seeds_msra_command_runs_unchanged(tmp_path, chinese_vocab):
    label2id = load_ner_label2id(DATA / "msra_labels.txt")
    examples = read_msra_xml(SAMPLE, {"NAMEX"})
    for name, begin, end, first in (("train", "0.0", "0.8", 0), ("eval", "0.8", "1.0", 80)):
        save = tmp_path / f"msra_{name}.mindrecord"
        finetune_data_preprocess.main([f"--data_dir={SAMPLE}", f"--vocab_file={chinese_vocab}", f"--save_path={save}",
                                       f"--label2id={DATA / 'msra_labels.txt'}", "--max_seq_len=128",
                                       '--class_filter=NAMEX', f"--split_begin={begin}", f"--split_end={end}"])
        rows = list(ds.MindDataset(str(save), shuffle=False).create_dict_iterator(output_numpy=True))
        assert len(rows) == int(100 * float(end)) - int(100 * float(begin))
        tags = examples[first].tags[:126]
        expected = [0] + [label2id[t] for t in tags] + [0] * (128 - len(tags) - 1)
        np.testing.assert_array_equal(rows[0]["label_ids"], expected)
        assert read_records_card(save).labels == tuple(label2id)


def test_malformed_xml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text('<DOC>\n<SENTENCE><w>北京</w>\n<w><NAMEX TYPE="PERSON">张三</w></SENTENCE>\n</DOC>\n')
    with pytest.raises(ValueError, match=r"bad.xml:3 is not well-formed XML"):
        read_msra_xml(bad)


def test_labelled_word_without_type(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text('<DOC><SENTENCE><w><NAMEX>张三</NAMEX></w></SENTENCE></DOC>')
    with pytest.raises(ValueError, match=r"sentence 1 has a <NAMEX> without a TYPE attribute"):
        read_msra_xml(bad)
