"""Sentence splitting for pretraining text in any script: real sentences in 8 languages
(data/multilingual_sentences.json, boundaries read by hand), joined into paragraphs as Wikipedia writes them, are split
back; nothing is dropped."""
import json

import pytest

from src.data.corpus import split_sentences, wikiextractor_documents
from tests.helpers import DATA
from tools import wiki_to_text

LANGUAGES = json.loads((DATA / "multilingual_sentences.json").read_text(encoding="utf-8"))
# Measured with sentencex 1.0.32 (zh: our punctuation rule): 1.00 for en, de, bg, ar, hi, zh; 0.94 fr (a split
# after "janv."); 0.95 ru (no split after "И т. д. и т. п.", which no splitter tried finds).
MINIMUM_F1 = 0.9


def boundaries(pieces):
    """Sentence ends as counts of non-space characters, so white space between sentences does not matter."""
    ends, count = set(), 0
    for piece in pieces[:-1]:
        count += len("".join(piece.split()))
        ends.add(count)
    return ends


def boundary_f1(gold, found):
    gold_ends, found_ends = boundaries(gold), boundaries(found)
    correct = len(gold_ends & found_ends)
    precision = correct / len(found_ends) if found_ends else 1.0
    recall = correct / len(gold_ends) if gold_ends else 1.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@pytest.mark.parametrize("entry", LANGUAGES, ids=[entry["language"] for entry in LANGUAGES])
def test_real_sentences_in_every_script_are_split_back(entry):
    text = entry["joiner"].join(entry["sentences"])
    found = split_sentences(text, entry["language"])
    assert "".join("".join(found).split()) == "".join(text.split())  # no character lost or changed
    assert boundary_f1(entry["sentences"], found) >= MINIMUM_F1, found


def test_chinese_punctuation_rule_is_exact_and_keeps_closing_quotes():
    (chinese,) = [entry for entry in LANGUAGES if entry["language"] == "zh"]
    for sentences in (chinese["sentences"], chinese["hand_made"]):  # hand_made: 他说：“好。” | 好。 | 我们走吧！
        assert split_sentences("".join(sentences), "zh") == sentences


def test_short_sentences_are_kept():
    by_language = {entry["language"]: entry for entry in LANGUAGES}
    for language, short in (("en", "Thanks."), ("de", "Ich muss."), ("ru", "Бычий глаз."), ("zh", "雷猴回归人间。"),
                            ("ar", "كيف حالك ؟")):
        entry = by_language[language]
        assert short in split_sentences(entry["joiner"].join(entry["sentences"]), language)


def test_wikiextractor_documents_keep_headings_and_drop_markup_debris():
    lines = ['<doc id="7" url="https://ru.wikipedia.org/wiki?curid=7" title="Москва">', "Москва",
             "История.", "Москва — столица России. Город основан в 1147 году.", "formula_1", "()", "</doc>"]
    assert list(wikiextractor_documents(lines, "ru")) == [
        ["История.", "Москва — столица России.", "Город основан в 1147 году."]]


def test_dump_language_comes_from_the_header(tmp_path):
    assert wiki_to_text.dump_language(DATA / "enwiki-sample-pages-articles.xml.bz2") == "en"
    dump = tmp_path / "dump.xml"
    dump.write_text("<mediawiki>\n  <siteinfo>\n    <dbname>zh_yuewiki</dbname>\n")
    assert wiki_to_text.dump_language(dump) == "zh-yue"
    dump.write_text("<mediawiki>\n")
    with pytest.raises(SystemExit, match="names no language in its header: pass --language"):
        wiki_to_text.dump_language(dump)


def test_wiki_text_records_the_language_it_was_split_as(wiki_text_dir):
    manifest = json.loads((wiki_text_dir / "manifest.json").read_text())
    assert manifest["settings"]["language"] == "en"
