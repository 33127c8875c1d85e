"""Documents -> NSP sentence pairs -> masked-LM instances, with google-research/bert create_pretraining_data.py
semantics (same random draws in the same order for the same seed), plus whole-word masking.

Differences from Google's script, for bounded memory on large corpora: the corpus is cut into chunks of
documents that are processed independently (by several processes), each with its own random generator
seeded from (random_seed, chunk index); the random next segment comes from another document of the chunk.
src/data/numpy_instances.py draws the same distributions in bulk (create_pretraining_data.py --random_draws numpy),
reusing pair_segments.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"
_CJK = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]")


@dataclass
class TrainingInstance:
    tokens: list[str]
    segment_ids: list[int]
    masked_lm_positions: list[int]
    masked_lm_labels: list[str]
    is_random_next: bool


@dataclass(frozen=True)
class MaskingOptions:
    """How instances are cut and masked. next_sentence False: one contiguous segment per record, no NSP pairs
    (contiguous_segments), next_sentence_labels 0."""

    max_seq_length: int = 128
    short_seq_prob: float = 0.1
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    do_whole_word_mask: bool = False
    next_sentence: bool = True


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng: random.Random) -> None:
    """Trim the longer segment, one token at a time from its front or back at random, until the pair fits."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def shuffle_as_random(items: list, rng: random.Random) -> None:
    """rng.shuffle(items) with the same draws and result, without its two Python calls per element (the hot spot of
    instance creation: about 110 candidates an instance). Python's shuffle draws j = randbelow(i + 1) for i from
    the end, randbelow taking getrandbits(bit length) until the value is below the bound."""
    getrandbits = rng.getrandbits
    for i in range(len(items) - 1, 0, -1):
        bound = i + 1
        bits = bound.bit_length()
        j = getrandbits(bits)
        while j >= bound:
            j = getrandbits(bits)
        items[i], items[j] = items[j], items[i]


def create_masked_lm_predictions(tokens: list[str], options: MaskingOptions, vocab_words: Sequence[str],
                                 rng: random.Random, word_starts: Sequence[bool] | None = None
                                 ) -> tuple[list[str], list[int], list[str]]:
    """Choose up to max_predictions_per_seq positions (never [CLS]/[SEP]); replace 80% by [MASK], 10% by a random
    token, keep 10%. With whole-word masking, the pieces of a word are chosen together: a piece continues a word
    if it starts with "##" or word_starts (Chinese segmenter output) says it is not a word start.
    """
    if options.do_whole_word_mask:
        candidates: list[list[int]] = []
        for index, token in enumerate(tokens):
            if token in (CLS, SEP):
                continue
            if candidates and (token.startswith("##") or (word_starts is not None and not word_starts[index])):
                candidates[-1].append(index)
            else:
                candidates.append([index])
    else:  # one position a candidate: the same draws as Google's list of one-element lists
        candidates = [[index] for index, token in enumerate(tokens) if token != CLS and token != SEP]
    shuffle_as_random(candidates, rng)
    output_tokens = list(tokens)
    num_to_predict = min(options.max_predictions_per_seq, max(1, int(round(len(tokens) * options.masked_lm_prob))))
    masked: list[tuple[int, str]] = []
    covered: set[int] = set()
    random_draw, last_word = rng.random, len(vocab_words) - 1
    for index_set in candidates:
        if len(masked) >= num_to_predict:
            break
        if len(masked) + len(index_set) > num_to_predict or any(i in covered for i in index_set):
            continue
        for index in index_set:
            covered.add(index)
            if random_draw() < 0.8:
                replacement = MASK
            elif random_draw() < 0.5:
                replacement = tokens[index]
            else:
                replacement = vocab_words[rng.randint(0, last_word)]
            output_tokens[index] = replacement
            masked.append((index, tokens[index]))
    masked.sort()
    return output_tokens, [index for index, _ in masked], [label for _, label in masked]


SentenceRef = tuple[int, int]  # (document index, sentence index)


def pair_segments(sentence_lengths: Sequence[Sequence[int]], document_index: int, options: MaskingOptions,
                  rng: random.Random) -> Iterator[tuple[list[SentenceRef], list[SentenceRef], bool]]:
    """The NSP pairs of one document, as the sentences of segments A and B, in the pairing of Google's
    create_instances_from_document (and with its draws, in its order: a caller that truncates and masks with the
    same rng before asking for the next pair reproduces Google's stream).

    Segments fill up to a target length (max_seq_length - 3, or a random shorter one with short_seq_prob);
    segment B is the actual continuation or, half of the time, text from a random other document.
    """
    lengths = sentence_lengths[document_index]
    target_seq_length = options.max_seq_length - 3
    if rng.random() < options.short_seq_prob:
        target_seq_length = rng.randint(2, options.max_seq_length - 3)
    current_chunk: list[int] = []  # sentence indices
    current_length = 0
    i = 0
    while i < len(lengths):
        current_chunk.append(i)
        current_length += lengths[i]
        if i == len(lengths) - 1 or current_length >= target_seq_length:
            a_end = rng.randint(1, len(current_chunk) - 1) if len(current_chunk) >= 2 else 1
            segment_a = [(document_index, s) for s in current_chunk[:a_end]]
            if len(current_chunk) == 1 or rng.random() < 0.5:
                target_b_length = target_seq_length - sum(lengths[s] for s in current_chunk[:a_end])
                for _ in range(10):
                    random_document_index = rng.randint(0, len(sentence_lengths) - 1)
                    if random_document_index != document_index:
                        break
                random_lengths = sentence_lengths[random_document_index]
                segment_b, b_length = [], 0
                for j in range(rng.randint(0, len(random_lengths) - 1), len(random_lengths)):
                    segment_b.append((random_document_index, j))
                    b_length += random_lengths[j]
                    if b_length >= target_b_length:
                        break
                i -= len(current_chunk) - a_end  # the unused sentences start the next chunk
                yield segment_a, segment_b, True
            else:
                yield segment_a, [(document_index, s) for s in current_chunk[a_end:]], False
            current_chunk = []
            current_length = 0
        i += 1


def contiguous_segments(cut_points: np.ndarray, length: int, options: MaskingOptions,
                        rng: random.Random) -> list[tuple[int, int]]:
    """Without NSP pairs (options.next_sentence False): one document's `length` tokens laid end to end, cut into
    consecutive windows that fill a record ([CLS] window [SEP]: max_seq_length - 2 tokens) or, with
    short_seq_prob, a random shorter length (2 .. max_seq_length - 2) drawn once for the document as Google draws
    its target length. Each cut moves back to the last word start (cut_points: the sorted token indices where a
    word starts) so no word is split across records, unless one word is longer than the window; the document's
    last window holds what is left. Returns (first token, token count) for each window, in order.
    """
    target_length = options.max_seq_length - 2
    if rng.random() < options.short_seq_prob:
        target_length = rng.randint(2, target_length)
    spans, start = [], 0
    while start < length:
        end = min(start + target_length, length)
        if end < length:
            last = int(np.searchsorted(cut_points, end, side="right")) - 1  # the last word start at or before end
            if last >= 0 and cut_points[last] > start:
                end = int(cut_points[last])
        spans.append((start, end - start))
        start = end
    return spans


def contiguous_instances(all_documents: Sequence[Sequence[list[str]]], document_index: int,
                         options: MaskingOptions, vocab_words: Sequence[str], rng: random.Random,
                         all_word_starts: Sequence[Sequence[list[bool]]] | None = None) -> list[TrainingInstance]:
    """Masked instances without NSP from one document: its contiguous_segments, each [CLS] tokens [SEP] in segment
    0, masked as Google masks a pair, with is_random_next False. A word starts at a piece without "##" (and, with
    all_word_starts, where the Chinese segmenter says so)."""
    tokens = [token for sentence in all_documents[document_index] for token in sentence]
    flags = [flag for sentence in all_word_starts[document_index] for flag in sentence] \
        if all_word_starts is not None else None
    cut_points = np.array([index for index, token in enumerate(tokens)
                           if not token.startswith("##") and (flags is None or flags[index])], np.int64)
    instances = []
    for start, count in contiguous_segments(cut_points, len(tokens), options, rng):
        window = [CLS] + tokens[start:start + count] + [SEP]
        word_starts = [True] + flags[start:start + count] + [True] if flags is not None else None
        window_tokens, positions, labels = create_masked_lm_predictions(window, options, vocab_words, rng, word_starts)
        instances.append(TrainingInstance(window_tokens, [0] * len(window), positions, labels, False))
    return instances


def create_instances_from_document(all_documents: Sequence[Sequence[list[str]]], document_index: int,
                                   options: MaskingOptions, vocab_words: Sequence[str], rng: random.Random,
                                   all_word_starts: Sequence[Sequence[list[bool]]] | None = None,
                                   sentence_lengths: Sequence[Sequence[int]] | None = None
                                   ) -> list[TrainingInstance]:
    """Masked NSP instances from one document (a list of tokenized sentences), as Google's function of the same
    name: pairs, truncation, masking, one pair at a time with the same rng.

    all_word_starts mirrors all_documents with per-token word-start flags, for Chinese whole-word masking.
    Without NSP (options.next_sentence False), contiguous_instances instead.
    """
    if not options.next_sentence:
        return contiguous_instances(all_documents, document_index, options, vocab_words, rng, all_word_starts)
    if sentence_lengths is None:
        sentence_lengths = [[len(sentence) for sentence in document] for document in all_documents]

    def flags(doc_index: int, sentence_index: int) -> list[bool]:
        if all_word_starts is None:
            return [True] * len(all_documents[doc_index][sentence_index])
        return all_word_starts[doc_index][sentence_index]

    instances = []
    for segment_a, segment_b, is_random_next in pair_segments(sentence_lengths, document_index, options, rng):
        pair_a = [pair for d, s in segment_a for pair in zip(all_documents[d][s], flags(d, s))]
        pair_b = [pair for d, s in segment_b for pair in zip(all_documents[d][s], flags(d, s))]
        truncate_seq_pair(pair_a, pair_b, options.max_seq_length - 3, rng)
        if pair_a and pair_b:
            tokens = [CLS] + [t for t, _ in pair_a] + [SEP] + [t for t, _ in pair_b] + [SEP]
            word_starts = [True] + [f for _, f in pair_a] + [True] + [f for _, f in pair_b] + [True]
            segment_ids = [0] * (len(pair_a) + 2) + [1] * (len(pair_b) + 1)
            tokens, positions, labels = create_masked_lm_predictions(
                tokens, options, vocab_words, rng, word_starts if all_word_starts is not None else None)
            instances.append(TrainingInstance(tokens, segment_ids, positions, labels, is_random_next))
    return instances


def shuffled_documents(documents: Sequence, rng: random.Random) -> list[int]:
    """The indices of the non-empty documents in Google's shuffled order."""
    order = [d for d in range(len(documents)) if documents[d]]
    permutation = list(range(len(order)))
    rng.shuffle(permutation)
    return [order[p] for p in permutation]


def create_training_instances(documents: list[list[list[str]]], options: MaskingOptions,
                              vocab_words: Sequence[str], rng: random.Random, dupe_factor: int = 10,
                              word_starts: list[list[list[bool]]] | None = None) -> list[TrainingInstance]:
    """All instances of a set of tokenized documents: dupe_factor passes with different masks, shuffled."""
    order = shuffled_documents(documents, rng)
    documents = [documents[d] for d in order]
    word_starts = [word_starts[d] for d in order] if word_starts is not None else None
    lengths = [[len(sentence) for sentence in document] for document in documents]
    instances = []
    for _ in range(dupe_factor):
        for document_index in range(len(documents)):
            instances.extend(create_instances_from_document(documents, document_index, options, vocab_words, rng,
                                                            word_starts, lengths))
    rng.shuffle(instances)
    return instances


def chinese_word_starts(sentence: str, tokens: list[str], segment: Callable[[str], list[str]]) -> list[bool]:
    """Per-token flags: False where a CJK character continues a word of the segmenter (e.g. jieba.lcut).

    Tokens are matched to the segmenter's words by walking the CJK characters of both in order.
    """
    char_starts = []
    for word in segment(sentence):
        cjk = [c for c in word if _CJK.match(c)]
        char_starts.extend([True] + [False] * (len(cjk) - 1) if cjk else [])
    flags, cursor = [], 0
    for token in tokens:
        if len(token) == 1 and _CJK.match(token) and cursor < len(char_starts):
            flags.append(char_starts[cursor])
            cursor += 1
        else:
            flags.append(True)
    return flags


def instance_to_features(instance: TrainingInstance, vocab: dict[str, int], max_seq_length: int,
                         max_predictions_per_seq: int) -> dict[str, np.ndarray]:
    """Padded arrays in the column layout of Google's TFRecords (padding id 0, mask 0, weight 0)."""
    unk = vocab["[UNK]"]
    input_ids = [vocab.get(t, unk) for t in instance.tokens]
    length = len(input_ids)
    pad = max_seq_length - length
    n_masked = len(instance.masked_lm_positions)
    pad_masked = max_predictions_per_seq - n_masked
    return {
        "input_ids": np.array(input_ids + [0] * pad, np.int64),
        "input_mask": np.array([1] * length + [0] * pad, np.int64),
        "segment_ids": np.array(instance.segment_ids + [0] * pad, np.int64),
        "masked_lm_positions": np.array(instance.masked_lm_positions + [0] * pad_masked, np.int64),
        "masked_lm_ids": np.array([vocab.get(t, unk) for t in instance.masked_lm_labels] + [0] * pad_masked,
                                  np.int64),
        "masked_lm_weights": np.array([1.0] * n_masked + [0.0] * pad_masked, np.float32),
        "next_sentence_labels": np.array([1 if instance.is_random_next else 0], np.int64),
    }
