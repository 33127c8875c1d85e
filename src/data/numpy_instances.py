"""Pretraining instances with numpy's random draws (create_pretraining_data.py --random_draws numpy): the
distributions of Google's script, drawn in bulk for a whole shard instead of one Python draw at a time.

Each step of Google's procedure, and how it is drawn here with the same distribution:
- sentence pairs (NSP): the same code as the Google-exact path (pretraining_data.pair_segments, Python's random);
- truncation: Google removes one token at a time from the longer segment (B on ties), from its front or back at
  random. Which segment loses how many tokens follows from the lengths alone; the count taken from the front is
  Binomial(removed, 1/2);
- masking: Google shuffles the candidate words and takes them in that order, skipping a word that would overflow
  the budget, min(max_predictions_per_seq, max(1, round(masked_lm_prob x length))). Here each word gets a uniform
  key and the words are taken in key order under the same rule, for all instances at once;
- replacement: [MASK] with probability 0.8, the original token 0.1, a uniform vocabulary token 0.1.
Without NSP pairs (next_sentence False) the windows are those of instances.contiguous_segments (Python's
random), with no truncation; masking and replacement as above.
The instances differ from Google's for the same seed; tests/test_google_records.py holds their statistics to
Google's records.
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np

from src.data.instances import CLS, MASK, SEP, MaskingOptions, contiguous_segments, pair_segments, shuffled_documents

Columns = dict[str, np.ndarray]


def truncation_counts(length_a: np.ndarray, length_b: np.ndarray, max_num_tokens: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Tokens that Google's truncate_seq_pair removes from segments A and B: the longer one loses a token until
    the pair fits, B on ties, so once the lengths meet B and A alternate, B first."""
    excess = np.maximum(length_a + length_b - max_num_tokens, 0)
    first = np.minimum(np.abs(length_a - length_b), excess)  # from the longer one, until the lengths meet
    rest = excess - first
    a_longer = length_a > length_b
    return np.where(a_longer, first, 0) + rest // 2, np.where(a_longer, 0, first) + (rest + 1) // 2


def segment_pairs(sentence_lengths: list[list[int]], options: MaskingOptions, rng: random.Random,
                  dupe_factor: int) -> np.ndarray:
    """Google's pairing over dupe_factor passes, one row [start_a, length_a, start_b, length_b, is_random_next]
    a pair: each segment is consecutive sentences of one document, so a span of the documents' tokens laid end
    to end."""
    offsets, position = [], 0  # each sentence's first token, and then the end, in the tokens laid end to end
    for lengths in sentence_lengths:
        document_offsets = []
        for length in lengths:
            document_offsets.append(position)
            position += length
        offsets.append(document_offsets + [position])
    rows = []
    for _ in range(dupe_factor):
        for document_index in range(len(sentence_lengths)):
            for part_a, part_b, is_random_next in pair_segments(sentence_lengths, document_index, options, rng):
                (doc_a, first_a), (doc_b, first_b) = part_a[0], part_b[0]
                start_a, start_b = offsets[doc_a][first_a], offsets[doc_b][first_b]
                rows.append((start_a, offsets[doc_a][part_a[-1][1] + 1] - start_a,
                             start_b, offsets[doc_b][part_b[-1][1] + 1] - start_b, is_random_next))
    return np.array(rows, np.int64).reshape(-1, 5)


def contiguous_rows(document_lengths: Sequence[int], word_start: np.ndarray, options: MaskingOptions,
                    rng: random.Random, dupe_factor: int) -> np.ndarray:
    """Without NSP pairs: each document's windows (instances.contiguous_segments, Python's random) over
    dupe_factor passes, one row [start, length] a window of the documents' tokens laid end to end; word_start
    [tokens] says where a window may begin."""
    offsets = np.concatenate([[0], np.cumsum(document_lengths, dtype=np.int64)])
    cut_points = [np.flatnonzero(word_start[offsets[d]:offsets[d + 1]]) for d in range(len(document_lengths))]
    rows = []
    for _ in range(dupe_factor):
        for document_index, length in enumerate(document_lengths):
            rows.extend((offsets[document_index] + start, count)
                        for start, count in contiguous_segments(cut_points[document_index], length, options, rng))
    return np.array(rows, np.int64).reshape(-1, 2)


def choose_masked(candidates: np.ndarray, word_starts: np.ndarray | None, budget: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """[n, L] bool: the positions Google's masking picks, min(budget, candidates) of them in each row. Without
    word_starts, a uniform random subset of the candidates. With them, whole words: a piece that is not a word
    start continues the last candidate word (as in Google's loop, which skips [CLS]/[SEP] without ending a
    word); words are taken in a uniform random order, and one that would overflow its row's budget is skipped."""
    n, width = candidates.shape
    rows = np.arange(n)[:, None]
    if word_starts is None:  # every word one piece: the budget's smallest uniform keys
        keys = np.where(candidates, rng.random((n, width)), np.inf)
        most = min(int(budget.max(initial=1)), width)
        smallest = np.argpartition(keys, most - 1, axis=1)[:, :most]
        smallest_keys = np.take_along_axis(keys, smallest, axis=1)
        ranked = np.take_along_axis(smallest, np.argsort(smallest_keys, axis=1), axis=1)
        chosen = (np.arange(most) < budget[:, None]) & np.isfinite(np.sort(smallest_keys, axis=1))
        masked = np.zeros((n, width), bool)
        masked[np.broadcast_to(rows, ranked.shape)[chosen], ranked[chosen]] = True
        return masked
    first = np.zeros_like(candidates)
    first[:, 1:] = np.cumsum(candidates, axis=1)[:, :-1] == 0  # no candidate before: a word starts
    starts = candidates & (word_starts | first)
    word = np.cumsum(starts, axis=1) - 1  # each candidate's word number in its row
    words = starts.sum(axis=1)
    sizes = np.bincount((rows * width + np.maximum(word, 0))[candidates], minlength=n * width).reshape(n, width)
    keys = np.where(np.arange(width) < words[:, None], rng.random((n, width)), np.inf)
    order = np.argsort(keys, axis=1)
    ordered_sizes = np.take_along_axis(sizes, order, axis=1)
    taken, count = np.zeros((n, width), bool), np.zeros(n, np.int64)
    for rank in range(width):
        open_rows = count < budget
        if not open_rows.any():
            break
        size = ordered_sizes[:, rank]
        take = open_rows & (size > 0) & (count + size <= budget)
        taken[:, rank] = take
        count += np.where(take, size, 0)
    word_taken = np.zeros((n, width), bool)
    np.put_along_axis(word_taken, order, taken, axis=1)
    return candidates & np.take_along_axis(word_taken, np.maximum(word, 0), axis=1)


def first_positions(masked: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The column numbers of each row's True entries, ascending, in [n, count] (0 past them), and which are real."""
    rows, columns = np.nonzero(masked)  # row-major: ascending columns within a row
    per_row = masked.sum(axis=1)
    slot = np.arange(len(rows)) - (np.cumsum(per_row) - per_row)[rows]
    positions = np.zeros((len(masked), count), np.int64)
    positions[rows, slot] = columns
    return positions, np.arange(count) < per_row[:, None]


def create_instance_columns(sentences: list[list[np.ndarray]], options: MaskingOptions,
                            vocab_words: Sequence[str], rng: random.Random, generator: np.random.Generator,
                            dupe_factor: int = 10, word_starts: list[list[np.ndarray]] | None = None) -> Columns:
    """All instances of a set of documents (sentences as token id arrays) as the padded feature columns of
    pretraining_data.instance_to_features, shuffled; integer columns in the narrowest type that holds them (bool,
    int32), which the record writers store as int64. word_starts (bool arrays beside the ids; Chinese segmenter
    output) and "##" pieces delimit words under whole-word masking. rng draws the pairing, generator the rest."""
    order = shuffled_documents(sentences, rng)
    sentences = [sentences[d] for d in order]
    lengths = [[len(sentence) for sentence in document] for document in sentences]
    # every token id laid end to end, and a [0] so that no shard's array is empty
    ids = np.concatenate([*(s for document in sentences for s in document), [0]], dtype=np.int32)
    token_of = {token: index for index, token in enumerate(vocab_words)}
    continues = np.array([word.startswith("##") for word in vocab_words])
    if options.next_sentence:
        pairs = segment_pairs(lengths, options, rng, dupe_factor)
        start_a, length_a, start_b, length_b, random_next = pairs.T
        from_a, from_b = truncation_counts(length_a, length_b, options.max_seq_length - 3)
        start_a = start_a + generator.binomial(from_a, 0.5)
        start_b = start_b + generator.binomial(from_b, 0.5)
        length_a, length_b = length_a - from_a, length_b - from_b
        kept = np.flatnonzero((length_a > 0) & (length_b > 0))
    else:  # one contiguous segment a record, in segment A; B empty, next_sentence_labels 0
        word_start = ~continues[ids[:-1]]
        if word_starts is not None:
            word_start &= np.concatenate([*(f for d in order for f in word_starts[d]), np.ones(0, bool)])
        start_a, length_a = contiguous_rows([sum(document) for document in lengths], word_start, options, rng,
                                            dupe_factor).T
        start_b, length_b, random_next = (np.zeros_like(start_a) for _ in range(3))
        kept = np.arange(len(start_a))
    kept = kept[generator.permutation(len(kept))]  # the instances in random order, as Google's script shuffles them
    start_a, length_a, start_b, length_b, random_next = (column[kept] for column in
                                                         (start_a, length_a, start_b, length_b, random_next))

    width = options.max_seq_length
    column = np.arange(width)[None, :]
    length_a, length_b = length_a[:, None], length_b[:, None]
    length = length_a + length_b + (3 if options.next_sentence else 2)  # [CLS] A [SEP] B [SEP], or [CLS] A [SEP]
    in_a = (column >= 1) & (column <= length_a)
    in_b = (column >= length_a + 2) & (column < length - 1)
    source = np.where(in_a, start_a[:, None] + column - 1, np.where(in_b, start_b[:, None] + column - length_a - 2, 0))
    tokens = np.where(in_a | in_b, ids[source], 0)
    rows = np.arange(len(tokens))[:, None]
    tokens[:, 0] = token_of[CLS]
    tokens[rows, length_a + 1] = token_of[SEP]
    tokens[rows, length - 1] = token_of[SEP]

    starts = None
    if options.do_whole_word_mask:
        starts = ~continues[tokens]
        if word_starts is not None:
            flags = np.concatenate([*(f for d in order for f in word_starts[d]), [True]])
            starts &= np.where(in_a | in_b, flags[source], True)
    budget = np.minimum(options.max_predictions_per_seq,
                        np.maximum(1, np.rint(length[:, 0] * options.masked_lm_prob).astype(np.int64)))
    masked = choose_masked(in_a | in_b, starts, budget, generator)

    positions, valid = first_positions(masked, options.max_predictions_per_seq)
    labels = np.take_along_axis(tokens, positions, axis=1)
    draw = generator.random(labels.shape)
    replacement = np.where(draw < 0.8, token_of[MASK],
                           np.where(draw < 0.9, labels, generator.integers(0, len(vocab_words), labels.shape)))
    np.put_along_axis(tokens, positions, np.where(valid, replacement, labels), axis=1)

    return {
        "input_ids": tokens,
        "input_mask": column < length,
        "segment_ids": (column >= length_a + 2) & (column < length),
        "masked_lm_positions": np.where(valid, positions, 0),
        "masked_lm_ids": np.where(valid, labels, 0),
        "masked_lm_weights": valid.astype(np.float32),
        "next_sentence_labels": random_next[:, None],
    }
