"""Pretraining instances from real text have Google's create_pretraining_data statistics, and records written
by tools/create_pretraining_data.py are reproducible and read back unchanged by MindSpore."""
import filecmp
import json
import os
import random
import subprocess
import sys

import mindspore.dataset as ds
import numpy as np
import pytest

from src.data.corpus import read_documents
from src.data.instances import (
    CLS,
    MASK,
    SEP,
    MaskingOptions,
    chinese_word_starts,
    create_training_instances,
    instance_to_features,
    truncate_seq_pair,
)
from src.data.numpy_instances import truncation_counts
from src.data.records import iter_tfrecord
from src.data.tokenization import FullTokenizer
from tests.helpers import ROOT
from tools import create_pretraining_data


def wiki_instances(wiki_text_dir, wiki_vocab, options, dupe_factor=2):
    tokenizer = FullTokenizer(wiki_vocab)
    documents = [tokenizer.tokenize_batch(doc) for path in sorted(wiki_text_dir.glob("*.txt"))
                 for doc in read_documents(path)]
    return create_training_instances(documents, options, list(tokenizer.vocab), random.Random(12345), dupe_factor)


@pytest.fixture(scope="module")
def instances(wiki_text_dir, wiki_vocab):
    return wiki_instances(wiki_text_dir, wiki_vocab, MaskingOptions(max_seq_length=128, max_predictions_per_seq=20))


def test_about_15_percent_of_tokens_are_masked(instances):
    masked = sum(len(i.masked_lm_positions) for i in instances)
    maskable = sum(len(i.tokens) - 3 for i in instances)  # [CLS] and two [SEP] are never masked
    assert 0.14 < masked / maskable < 0.16, masked / maskable


def test_masked_tokens_are_80_percent_mask_10_random_10_kept(instances):
    replaced = [(i.tokens[p], label) for i in instances for p, label in zip(i.masked_lm_positions, i.masked_lm_labels)]
    as_mask = np.mean([token == MASK for token, _ in replaced])
    kept = np.mean([token == label for token, label in replaced])
    assert len(replaced) > 10000
    assert 0.79 < as_mask < 0.81, as_mask
    assert 0.09 < kept < 0.11, kept  # a random replacement that hits the original word adds ~0.1 / vocab
    assert 0.09 < 1 - as_mask - kept < 0.11


def test_next_sentence_labels_are_about_half_random(instances):
    # Google's rule: a coin flip, except that a chunk of a single sentence always takes a random next segment;
    # on this corpus that lifts the share from 0.50 to 0.58.
    random_next = np.mean([i.is_random_next for i in instances])
    assert 0.48 < random_next < 0.62, random_next


def test_special_tokens_are_never_masked_and_lengths_fit(instances):
    for instance in instances:
        assert len(instance.tokens) <= 128
        assert len(instance.masked_lm_positions) <= 20
        assert instance.tokens[0] == CLS and instance.tokens[-1] == SEP
        for position, label in zip(instance.masked_lm_positions, instance.masked_lm_labels):
            assert label not in (CLS, SEP)
            assert position not in (0, len(instance.tokens) - 1)
        assert instance.masked_lm_positions == sorted(instance.masked_lm_positions)
        assert len(instance.segment_ids) == len(instance.tokens)


def test_short_sequences_appear_at_short_seq_prob(instances):
    short = np.mean([len(i.tokens) < 100 for i in instances])
    assert 0.05 < short < 0.35  # 10% are drawn shorter on purpose; document ends make a few more


def test_whole_word_masking_masks_every_piece_of_a_word(wiki_text_dir, wiki_vocab):
    options = MaskingOptions(max_seq_length=128, do_whole_word_mask=True)
    continuations = 0
    for instance in wiki_instances(wiki_text_dir, wiki_vocab, options, dupe_factor=1)[:2000]:
        masked = set(instance.masked_lm_positions)
        for position in range(1, len(instance.tokens)):
            previous = _original(instance, position - 1)
            if _original(instance, position).startswith("##") and previous not in (CLS, SEP):
                continuations += 1  # a piece and the piece before it belong to one word: both masked or neither
                assert (position in masked) == (position - 1 in masked), instance.tokens[position - 3:position + 3]
    assert continuations > 1000


def _original(instance, position):
    if position in instance.masked_lm_positions:
        return instance.masked_lm_labels[instance.masked_lm_positions.index(position)]
    return instance.tokens[position]


def test_chinese_word_starts_follow_the_segmenter():
    tokens = ["中", "国", "人", "民", "is", "##ok", "好"]
    flags = chinese_word_starts("中国人民isok好", tokens, lambda s: ["中国", "人民", "isok", "好"])
    assert flags == [True, False, True, False, True, True, True]


def make_records(tmp_path, name, text_files, vocab, *extra):
    output = tmp_path / name
    create_pretraining_data.main(["--input_file", ",".join(str(f) for f in text_files), "--output_dir", str(output),
                                  "--vocab_file", str(vocab), "--dupe_factor", "1", "--docs_per_shard", "40",
                                  *extra])
    return output


@pytest.mark.slow
@pytest.mark.parametrize("random_draws", ["google", "numpy"])
def test_same_seed_gives_byte_identical_records_whatever_the_process_count(tmp_path, wiki_text_dir, wiki_vocab,
                                                                           random_draws):
    files = sorted(wiki_text_dir.glob("*.txt"))
    draws = ["--random_draws", random_draws]
    one = make_records(tmp_path, "one", files, wiki_vocab, "--processes", "1", *draws)
    two = make_records(tmp_path, "two", files, wiki_vocab, "--processes", "2", *draws)
    other_seed = make_records(tmp_path, "seed", files, wiki_vocab, "--processes", "1", "--random_seed", "1", *draws)
    fresh = tmp_path / "fresh"  # another Python process: protobuf's map order is per process unless made deterministic
    subprocess.run([sys.executable, str(ROOT / "tools" / "create_pretraining_data.py"), "--input_file",
                    ",".join(map(str, files)), "--output_dir", str(fresh), "--vocab_file", str(wiki_vocab),
                    "--dupe_factor", "1", "--docs_per_shard", "40", "--processes", "1", *draws], check=True,
                   capture_output=True, env={**os.environ, "GLOG_v": "3"})
    shards = sorted(p.name for p in one.iterdir())
    assert (len(shards) >= 3
            and shards == sorted(p.name for p in two.iterdir()) == sorted(p.name for p in fresh.iterdir()))
    for other in (two, fresh):
        _, mismatch, errors = filecmp.cmpfiles(one, other, shards, shallow=False)
        assert not mismatch and not errors
    assert not filecmp.cmp(one / "part-00000.tfrecord", other_seed / "part-00000.tfrecord", shallow=False)
    assert json.loads((one / "manifest.json").read_text())["settings"]["random_draws"] == random_draws


def test_truncation_counts_are_those_of_googles_token_by_token_loop():
    """--random_draws numpy removes the tokens truncate_seq_pair would, segment by segment (only the front/back
    split is drawn, Binomial(count, 1/2), as the loop's coin flips sum to)."""
    rng = random.Random(0)
    lengths = [(a, b, limit) for a in range(0, 40) for b in range(0, 40) for limit in (5, 20, 61)]
    expected = []
    for a, b, limit in lengths:
        segment_a, segment_b = list(range(a)), list(range(b))
        truncate_seq_pair(segment_a, segment_b, limit, rng)
        expected.append((a - len(segment_a), b - len(segment_b)))
    a, b, limit = map(np.array, zip(*lengths))
    from_a, from_b = truncation_counts(a, b, limit)
    assert list(zip(from_a.tolist(), from_b.tolist())) == expected


def read_back(dataset):
    return [{name: np.asarray(value) for name, value in row.items()}
            for row in dataset.create_dict_iterator(num_epochs=1, output_numpy=True)]


def test_tfrecord_and_mindrecord_read_back_equal_what_was_written(tmp_path, chinese_text_file, chinese_vocab):
    options = MaskingOptions(max_seq_length=64, max_predictions_per_seq=10)
    tokenizer = FullTokenizer(chinese_vocab)
    documents = [tokenizer.tokenize_batch(doc) for doc in read_documents(chinese_text_file)][:60]
    expected = [instance_to_features(i, tokenizer.vocab, 64, 10)
                for i in create_training_instances(documents, options, list(tokenizer.vocab), random.Random(3), 1)]
    args = ["--max_seq_length", "64", "--max_predictions_per_seq", "10", "--random_seed", "3", "--processes", "1",
            "--docs_per_shard", "60"]
    head = tmp_path / "head.txt"
    head.write_text("\n\n".join("\n".join(doc) for doc in list(read_documents(chinese_text_file))[:60]) + "\n",
                    encoding="utf-8")
    tf_dir = make_records(tmp_path, "tf", [head], chinese_vocab, *args)
    mind_dir = make_records(tmp_path, "mind", [head], chinese_vocab, *args, "--dataset_format", "mindrecord")
    schema = json.loads((tf_dir / "schema.json").read_text())
    assert schema["numRows"] == len(expected) and schema["columns"]["input_ids"]["shape"] == [64]
    columns = list(expected[0])
    from_tf = read_back(ds.TFRecordDataset([str(tf_dir / "part-00000.tfrecord")], str(tf_dir / "schema.json"),
                                           columns_list=columns, shuffle=False))
    from_mind = read_back(ds.MindDataset([str(mind_dir / "part-00000.mindrecord")], columns_list=columns,
                                         shuffle=False))
    assert len(from_tf) == len(from_mind) == len(expected) > 50
    for want, got_tf, got_mind in zip(expected, from_tf, from_mind):
        for name in columns:
            np.testing.assert_array_equal(got_tf[name], want[name], err_msg=name)
            np.testing.assert_array_equal(got_mind[name], want[name], err_msg=name)


def test_numpy_draws_write_the_same_rows_to_tfrecord_and_mindrecord(tmp_path, chinese_text_file, chinese_vocab):
    """--random_draws numpy builds narrow columns (bool, int32); both formats store int64 and float32 rows."""
    args = ["--max_seq_length", "64", "--max_predictions_per_seq", "10", "--random_draws", "numpy",
            "--processes", "1"]
    tf_dir = make_records(tmp_path, "tf", [chinese_text_file], chinese_vocab, *args)
    mind_dir = make_records(tmp_path, "mind", [chinese_text_file], chinese_vocab, *args, "--dataset_format",
                            "mindrecord")
    schema = json.loads((tf_dir / "schema.json").read_text())
    columns = list(schema["columns"])
    from_tf = read_back(ds.TFRecordDataset([str(tf_dir / "part-00000.tfrecord")], str(tf_dir / "schema.json"),
                                           columns_list=columns, shuffle=False))
    from_mind = read_back(ds.MindDataset([str(mind_dir / "part-00000.mindrecord")], columns_list=columns,
                                         shuffle=False))
    assert len(from_tf) == len(from_mind) > 50  # the first shard of each
    for got_tf, got_mind in zip(from_tf, from_mind):
        for name in columns:
            assert got_mind[name].dtype == (np.float32 if name == "masked_lm_weights" else np.int64), name
            np.testing.assert_array_equal(got_tf[name], got_mind[name], err_msg=name)


def test_numpy_draws_mask_chinese_words_whole(tmp_path, chinese_text_file, chinese_vocab):
    """--random_draws numpy with jieba's word starts: masked characters come in runs (words of 2-4 characters),
    so far more masked characters have a masked neighbour than under plain masking of the same text."""
    def masked_neighbour_share(*flags):
        output = make_records(tmp_path, "_".join(flags) or "plain", [chinese_text_file], chinese_vocab,
                              "--max_seq_length", "64", "--max_predictions_per_seq", "10", "--random_draws", "numpy",
                              *flags)
        with_neighbour = total = 0
        for row in iter_tfrecord(output / "part-00000.tfrecord"):
            positions = set(row["masked_lm_positions"][row["masked_lm_weights"] > 0].tolist())
            with_neighbour += sum(p - 1 in positions or p + 1 in positions for p in positions)
            total += len(positions)
        assert total > 1000
        return with_neighbour / total
    whole_words = masked_neighbour_share("--do_whole_word_mask", "true", "--chinese_word_segmentation", "true")
    plain = masked_neighbour_share()
    assert whole_words > 0.6 and plain < 0.4, (whole_words, plain)  # measured 0.81 and 0.30
