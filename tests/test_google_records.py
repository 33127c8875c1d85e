"""Records from Google's create_pretraining_data.py (bert-tensorflow, run by tests/google_bert.py) against those of
tools/create_pretraining_data.py, on the same shipped text and settings: Google's records load into run_pretrain.py
and pretrain_eval.py unchanged; with the corpus in one shard and the same seed ours writes Google's records, every
column of every record in Google's order; sharded (random next sentences drawn within a shard) and with whole-word
masking the instance statistics agree within sampling error.

Google's algorithm (ours follows it) draws the target length once per document, so instances of one document are
not independent: with this text's ~100 articles the mean length moves by several tokens from seed to seed. The
sampling error is therefore the cluster-robust one, with each instance traced to its article (the 8 tokens at the
middle of segment A, masked ones restored, looked up among the articles' 8-grams).

bert-tensorflow 1.0.4, the last release, predates --do_whole_word_mask, so our whole-word run is held to Google's
plain run on everything whole-word masking leaves alone (lengths, segments, next-sentence share, the masked share
and its 80/10/10 split), and a word is masked whole or not at all.
"""
from dataclasses import dataclass

import numpy as np
import pytest

import pretrain_eval
import run_pretrain
from src.data.corpus import read_documents
from src.data.records import iter_tfrecord
from src.data.tokenization import FullTokenizer, load_vocab
from tests import google_bert
from tests.helpers import write_run_config
from tools import create_pretraining_data

pytestmark = [pytest.mark.slow, pytest.mark.reference]

SETTINGS = {"max_seq_length": "128", "max_predictions_per_seq": "20", "masked_lm_prob": "0.15",
            "short_seq_prob": "0.1", "dupe_factor": "2", "random_seed": "12345"}


@pytest.fixture(scope="module")
def google_records(wiki_text_dir, wiki_vocab, tmp_path_factory):
    output = tmp_path_factory.mktemp("google_records")
    google_bert.run("create_pretraining_data",
                    f"--input_file={','.join(map(str, sorted(wiki_text_dir.glob('*.txt'))))}",
                    f"--output_file={output / 'google.tfrecord'}", f"--vocab_file={wiki_vocab}", "--do_lower_case=True",
                    *(f"--{name}={value}" for name, value in SETTINGS.items()))
    return output


def our_records(wiki_text_dir, wiki_vocab, output, whole_word=False, docs_per_shard=5000, random_draws="google"):
    flags = [item for name, value in SETTINGS.items() for item in (f"--{name}", value)]
    create_pretraining_data.main(["--input_file", ",".join(map(str, sorted(wiki_text_dir.glob("*.txt")))),
                                  "--output_dir", str(output), "--vocab_file", str(wiki_vocab), "--processes", "1",
                                  "--do_whole_word_mask", str(whole_word).lower(), "--docs_per_shard",
                                  str(docs_per_shard), "--random_draws", random_draws, *flags])
    return output


def test_one_shard_gives_googles_instances_in_googles_order(google_records, wiki_text_dir, wiki_vocab, tmp_path):
    """Same text, vocab, settings and seed: Google's algorithm, random draws included, is followed exactly; every
    column of every record is Google's, in Google's order. (The files' bytes differ only in the order of a record's
    features: protobuf's default map order changes from process to process; ours are sorted.)"""
    ours = sorted(our_records(wiki_text_dir, wiki_vocab, tmp_path).glob("*.tfrecord"))
    assert len(ours) == 1
    google = list(iter_tfrecord(google_records / "google.tfrecord"))
    mine = list(iter_tfrecord(ours[0]))
    assert len(mine) == len(google) > 10000
    for index, (record, reference) in enumerate(zip(mine, google)):
        assert record.keys() == reference.keys(), index
        for name, value in reference.items():
            assert value.dtype == record[name].dtype and np.array_equal(value, record[name]), (index, name)


@pytest.fixture(scope="module")
def article_of(wiki_text_dir, wiki_vocab):
    """8 token ids -> the index of the article they come from (-1: found in none or in several)."""
    tokenizer = FullTokenizer(wiki_vocab)
    owner: dict[tuple, int] = {}
    documents = [doc for path in sorted(wiki_text_dir.glob("*.txt")) for doc in read_documents(path)]
    for index, document in enumerate(documents):
        ids = [i for sentence in tokenizer.tokenize_batch(document) for i in tokenizer.convert_tokens_to_ids(sentence)]
        for start in range(len(ids) - 7):
            key = tuple(ids[start:start + 8])
            owner[key] = index if owner.get(key, index) == index else -1
    return owner


@dataclass
class Statistics:
    """Per-instance figures of a record set."""
    lengths: np.ndarray          # real tokens, [CLS] and [SEP]s included
    segment_a: np.ndarray        # tokens of segment A
    segment_b: np.ndarray
    masked: np.ndarray           # predictions
    as_mask: np.ndarray          # predictions whose input is [MASK]
    as_original: np.ndarray      # ... the original token
    random_next: np.ndarray      # next_sentence_labels (1: B is a random segment)
    article: np.ndarray          # the article segment A comes from (the sampling cluster)
    masked_in_b: np.ndarray      # predictions in segment B
    split_words: int             # words masked in part only (a "##" piece masked and the piece before not, or
                                 # the reverse)


def statistics(directory, vocab, article_of) -> Statistics:
    words = load_vocab(vocab)
    mask_id, special = words["[MASK]"], [words["[CLS]"], words["[SEP]"]]
    pad_id = words["[PAD]"]
    continues = np.array([word.startswith("##") for word in words])
    rows, split_words = [], 0
    for path in sorted(directory.glob("*tfrecord*")):
        for record in iter_tfrecord(path):
            mask, segments = record["input_mask"] == 1, record["segment_ids"]
            weights = record["masked_lm_weights"] > 0
            positions, originals = record["masked_lm_positions"][weights], record["masked_lm_ids"][weights]
            inputs = record["input_ids"][positions]
            restored = record["input_ids"].copy()
            restored[positions] = originals
            segment_a = restored[1:(mask & (segments == 0)).sum() - 1]
            segment_b = restored[len(segment_a) + 2:mask.sum() - 1]
            assert restored[0] == special[0] and restored[len(segment_a) + 1] == restored[mask.sum() - 1] == special[1]
            assert not np.isin(np.concatenate([segment_a, segment_b]), [*special, pad_id]).any(), record
            masked = np.zeros(len(restored), bool)
            masked[positions] = True
            joined = continues[restored[1:]] & ~np.isin(restored[:-1], special)  # a piece and the one before it
            split_words += int((joined & (masked[1:] != masked[:-1])).sum())
            middle = max(0, len(segment_a) // 2 - 4)
            rows.append((mask.sum(), len(segment_a), (mask & (segments == 1)).sum() - 1,
                         weights.sum(), (inputs == mask_id).sum(), (inputs == originals).sum(),
                         record["next_sentence_labels"][0], article_of.get(tuple(segment_a[middle:middle + 8]), -1),
                         (segments[positions] == 1).sum()))
    lengths, a, b, masked, as_mask, as_original, random_next, article, in_b = map(np.array, zip(*rows))
    found = Statistics(lengths, a, b, masked, as_mask, as_original, random_next, article, in_b, split_words)
    assert (found.article >= 0).mean() > 0.95  # nearly every instance traced to its article
    return found


def cluster_error(values: np.ndarray, clusters: np.ndarray) -> float:
    """Standard error of the mean of values sampled in clusters (sandwich estimator; untraced rows alone)."""
    clusters = np.where(clusters >= 0, clusters, -1 - np.arange(len(clusters)))
    _, inverse = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inverse, weights=values - values.mean())
    return float(np.sqrt((sums ** 2).sum()) / len(values))


def assert_same_mean(ours, google, what, ours_clusters, google_clusters, sigmas=4.0):
    """Means within `sigmas` standard errors of their difference (the two runs draw independently)."""
    ours, google = np.asarray(ours, float), np.asarray(google, float)
    error = np.hypot(cluster_error(ours, ours_clusters), cluster_error(google, google_clusters))
    assert abs(ours.mean() - google.mean()) < sigmas * error + 1e-9, (what, ours.mean(), google.mean(), error)


@pytest.mark.parametrize("whole_word, docs_per_shard, random_draws", [
    (False, 20, "google"), (True, 5000, "google"), (False, 20, "numpy"), (False, 5000, "numpy"), (True, 20, "numpy")],
    ids=["sharded", "whole_word", "numpy_sharded", "numpy", "numpy_whole_word"])
def test_instance_statistics_match_googles(google_records, wiki_text_dir, wiki_vocab, article_of, tmp_path,
                                           whole_word, docs_per_shard, random_draws):
    """Also for --random_draws numpy, whose instances are other draws from the same distributions."""
    google = statistics(google_records, wiki_vocab, article_of)
    ours = statistics(our_records(wiki_text_dir, wiki_vocab, tmp_path, whole_word, docs_per_shard, random_draws),
                      wiki_vocab, article_of)
    if docs_per_shard < 100:
        assert len(list(tmp_path.glob("*.tfrecord"))) > 3

    def assert_same(what, ours_values, google_values):
        assert_same_mean(ours_values, google_values, what, ours.article, google.article)

    # The count itself varies with the seed by several percent on this text (ours 13,150 and 13,521 at seeds 1 and 2,
    # Google's 13,874 at 12345): a gross check only.
    assert abs(len(ours.lengths) / len(google.lengths) - 1) < 0.15, (len(ours.lengths), len(google.lengths))
    assert_same("sequence length", ours.lengths, google.lengths)
    for cut in (32, 64, 96, 128):  # the length distribution at four points
        assert_same(f"share of lengths under {cut}", ours.lengths < cut, google.lengths < cut)
    assert_same("segment A length", ours.segment_a, google.segment_a)
    assert_same("segment B length", ours.segment_b, google.segment_b)
    assert_same("random-next share", ours.random_next, google.random_next)
    assert_same("masked tokens", ours.masked, google.masked)
    for name in ("as_mask", "as_original"):  # 80% [MASK], 10% kept (10% random: the rest)
        assert_same(name, getattr(ours, name) / ours.masked, getattr(google, name) / google.masked)
    assert abs((ours.as_mask.sum() / ours.masked.sum()) - 0.8) < 0.02
    assert abs((ours.as_original.sum() / ours.masked.sum()) - 0.1) < 0.02
    assert_same("share of predictions in segment B", ours.masked_in_b / ours.masked, google.masked_in_b / google.masked)
    if whole_word:
        assert ours.split_words == 0 and google.split_words > 1000  # Google's plain masking splits words
    if not whole_word:  # Google's count: round(15% of the tokens, [CLS] and [SEP]s included), 1 to 20
        assert np.array_equal(ours.masked, np.clip(np.round(ours.lengths * 0.15), 1, 20))
        assert np.array_equal(google.masked, np.clip(np.round(google.lengths * 0.15), 1, 20))


def test_googles_records_train_and_evaluate_unchanged(google_records, wiki_vocab, tmp_path):
    config = write_run_config(tmp_path, vocab_size=len(load_vocab(wiki_vocab)), seq_length=128, batch_size=32)
    output = tmp_path / "out"
    run_pretrain.main(["--data_dir", str(google_records), "--config", str(config), "--device_target", "CPU",
                       "--save_checkpoint_path", str(output), "--output_dir", str(output), "--train_steps", "3"])
    result = pretrain_eval.main(["--data_dir", str(google_records), "--load_checkpoint_path", str(output / "ckpt_0"),
                                 "--config", str(config), "--device_target", "CPU"])
    assert result.masked_tokens > 100 and 0 <= result.mlm_accuracy <= 1
