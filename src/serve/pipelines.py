"""Raw text in, task answers out: what predict.py runs on any backend (src/serve/backends.py).

Each pipeline turns text into the same features the training records hold (src/tasks/task_files.py,
src/tasks/squad.py), runs them in batches and maps the outputs back onto the text: a label and its probabilities, entity
spans with character offsets into the text as read (src/files/text_input.py removes only a BOM and the line ends), or an
answer span of the context; neither starts or ends on white space or on a character the tokenizer drops. Text
longer than the model's sequence length is counted: classification truncates it as training did; NER and SQuAD
slide windows over it and keep each token's prediction from the window where it has the most context.

Batches are padded to their longest row, not to max_seq_length (sorted_outputs): the rows of a pool of inputs
are sorted by length into batches, each cut to the length its backend asks for (src/serve/backends.py:
sequence_length; the longest row on onnxruntime with dynamic axes, a bucket length on MindSpore, the file's length
on a fixed-shape file), and the outputs come back in input order. Padding changes no result: the attention mask
keeps every real token from attending to a padded one (NEZHA's relative positions depend only on the distance of
two real tokens), mean pooling averages over the mask, and a tagger's scores are read for the real tokens only;
outputs agree with the padded-to-max run within 3e-6 (measured on random tiny BERT and NEZHA classifiers and
taggers; float rounding of shorter sums). batch_size 1 is the latency mode: each input is run as soon as it is
read, unsorted. SQuAD keeps max_seq_length windows: run_squad.py's n-best search ranks the start and end logits of
every position of a window, padding included (padded positions are never an answer but can take n-best places),
so a shorter window could change which answers are ranked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from src.data.tokenization import FullTokenizer, is_dropped
from src.model.crf import viterbi_decode
from src.serve.backends import Backend, run_rows
from src.tasks.metrics import entity_spans
from src.tasks.squad import best_answers, convert_examples_to_features, question_on_text
from src.tasks.task_card import TaskCard
from src.tasks.task_files import TextExample, classification_features


@dataclass
class Counts:
    """What a pipeline did to fit its inputs, reported after the run."""

    texts: int = 0
    truncated: int = 0   # classification: cut to max_seq_length
    windowed: int = 0    # NER / SQuAD: split into overlapping windows


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for begin in range(0, len(items), size):
        yield items[begin:begin + size]


def _stack(features: Sequence[dict]) -> list[np.ndarray]:
    return [np.stack([f[name] for f in features]) for name in ("input_ids", "input_mask", "segment_ids")]


SORT_POOL_BATCHES = 64  # inputs sorted by length together: this many batches' worth (memory and first-output wait)


def _pools(items: Sequence, batch_size: int) -> Iterator[Sequence]:
    """The inputs in pools of SORT_POOL_BATCHES batches, each sorted within itself; one input a pool with batch
    size 1 (latency mode: nothing waits for the inputs after it)."""
    return _batches(items, 1 if batch_size == 1 else batch_size * SORT_POOL_BATCHES)


def sorted_outputs(rows: Sequence[dict], backend: Backend, batch_size: int, max_seq_length: int
                   ) -> list[list[np.ndarray]]:
    """The backend's outputs for each row (input_ids, input_mask, segment_ids of max_seq_length, the mask's ones
    first), in the rows' order: the rows sorted by length (stable) into batches of batch_size, each batch cut to
    the length the backend asks for its longest row (at least that row's length). A sequence output of a row is
    as long as its batch's length, not max_seq_length: read it up to the row's length."""
    lengths = [int(row["input_mask"].sum()) for row in rows]
    order = sorted(range(len(rows)), key=lengths.__getitem__)
    outputs: list = [None] * len(rows)
    for batch in _batches(order, batch_size):
        length = backend.sequence_length(max(lengths[i] for i in batch), max_seq_length)
        arrays = tuple(array[:, :length] for array in _stack([rows[i] for i in batch]))
        for index, *row_outputs in zip(batch, *run_rows(backend, arrays, batch_size)):
            outputs[index] = row_outputs
    return outputs


def classify(pairs: Sequence[tuple[str, str | None]], backend: Backend, tokenizer: FullTokenizer, card: TaskCard,
             batch_size: int, counts: Counts) -> Iterator[dict]:
    """{"label", "probability", "probabilities": {label: p}} per text (pair); a regression gives {"score"}."""
    for pool in _pools(pairs, batch_size):
        features = []
        for text_a, text_b in pool:
            counts.texts += 1
            length = len(tokenizer.tokenize(text_a)) + (len(tokenizer.tokenize(text_b)) + 1 if text_b else 0) + 2
            counts.truncated += length > card.max_seq_length
            features.append(classification_features(TextExample(text_a, text_b, "", "input"), tokenizer, 0,
                                                    card.max_seq_length))
        for row, in sorted_outputs(features, backend, batch_size, card.max_seq_length):
            if card.num_class == 1:
                yield {"score": float(row.reshape(-1)[0])}
                continue
            probabilities = softmax(row)
            best = int(probabilities.argmax())
            yield {"label": card.labels[best], "probability": float(probabilities[best]),
                   "probabilities": {label: float(p) for label, p in zip(card.labels, probabilities)}}


def token_offsets(text: str, token_unit: str) -> list[tuple[int, int]]:
    """[start, end) of the tagger's tokens in text: every character (as CLUENER and People's Daily records are
    made), or every white-space separated word (as BIO files of words).

    The characters the tokenizer drops (NUL, the BOM, zero-width spaces and the other control and format
    characters: src.data.tokenization.is_dropped) are no token, as Google's tokenizer removes them before anything
    else: the model never sees them and no entity starts or ends on one. A word loses them at its ends, and a word
    of nothing else is no token. White space stays a token of the character tagger (it is [UNK] to the model, as
    in the training records); entities_of keeps it off an entity's ends."""
    if token_unit == "character":
        return [(index, index + 1) for index, character in enumerate(text) if not is_dropped(character)]
    offsets, start = [], None
    for index, character in enumerate(text + " "):
        if character.isspace():
            if start is not None:
                end = index
                while start < end and is_dropped(text[start]):
                    start += 1
                while end > start and is_dropped(text[end - 1]):
                    end -= 1
                if start < end:
                    offsets.append((start, end))
                start = None
        elif start is None:
            start = index
    return offsets


def entities_of(text: str, offsets: Sequence[tuple[int, int]], tags: Sequence[str],
                probabilities: Sequence[float]) -> list[dict]:
    """{"type", "start", "end", "text", "score"} of each entity in the tags of the tokens at offsets (token_offsets)
    of text, in text order: start/end index text (end exclusive), score is the mean probability of the entity's
    tags. White-space tokens at an entity's ends are left out of it (an entity of white space only is none), so an
    entity starts and ends on a character the model read."""
    entities = []
    for entity_type, first, last in sorted(entity_spans(tags), key=lambda span: span[1]):
        while first <= last and text[offsets[first][0]:offsets[first][1]].isspace():
            first += 1
        while last >= first and text[offsets[last][0]:offsets[last][1]].isspace():
            last -= 1
        if first > last:
            continue
        start, end = offsets[first][0], offsets[last][1]
        entities.append({"type": entity_type, "start": start, "end": end, "text": text[start:end],
                         "score": float(np.mean(probabilities[first:last + 1]))})
    return entities


def windows(count: int, size: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Windows [start, end) of at most size tokens, half a window apart, over count tokens; and for each token
    the window where it is farthest from an edge (SQuAD's "max context")."""
    if count <= size:
        return [(0, count)], [0] * count
    stride = max(size // 2, 1)
    spans = []
    for start in range(0, count, stride):
        spans.append((start, min(start + size, count)))
        if start + size >= count:
            break
    best = [max(range(len(spans)), key=lambda w: (min(t - spans[w][0], spans[w][1] - 1 - t)
                                                  if spans[w][0] <= t < spans[w][1] else -1))
            for t in range(count)]
    return spans, best


def tag_entities(texts: Sequence[str], backend: Backend, tokenizer: FullTokenizer, card: TaskCard,
                 batch_size: int, counts: Counts, crf: tuple[np.ndarray, np.ndarray, np.ndarray] | None
                 ) -> Iterator[dict]:
    """{"entities": [{"type", "start", "end", "text", "score"}]} per text; start/end are character offsets into
    the text (end exclusive), score the mean probability of the entity's tags under the tag scores' softmax.

    crf: (transitions, start_transitions, end_transitions) to Viterbi-decode with; None for softmax tagging."""
    id2label = dict(enumerate(card.labels))
    size = card.max_seq_length - 2
    unk = tokenizer.vocab["[UNK]"]
    for pool in _pools(texts, batch_size):
        jobs = []  # (text index, window index, features)
        plans = []
        for text_index, text in enumerate(pool):
            counts.texts += 1
            offsets = token_offsets(text, card.token_unit)
            spans, best = windows(len(offsets), size)
            counts.windowed += len(spans) > 1
            ids = [(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text[a:b])[:1]) or [unk])[0] for a, b in offsets]
            plans.append((offsets, spans, best))
            for window_index, (start, end) in enumerate(spans):
                jobs.append((text_index, window_index, _tagging_row(ids[start:end], tokenizer, card.max_seq_length)))
        decoded: dict[tuple[int, int], tuple[list[int], np.ndarray]] = {}
        scores = sorted_outputs([row for _, _, row in jobs], backend, batch_size, card.max_seq_length)
        for (text_index, window_index, row), (emissions,) in zip(jobs, scores):
            length = int(row["input_mask"].sum())
            emissions = emissions[:length]  # [length, tags]: the batch's padding columns dropped
            path = viterbi_decode(emissions, length, *crf) if crf is not None else emissions.argmax(-1).tolist()
            probabilities = softmax(emissions)[np.arange(length), path]
            decoded[text_index, window_index] = path[1:length - 1], probabilities[1:length - 1]
        for text_index, (text, (offsets, spans, best)) in enumerate(zip(pool, plans)):
            tags, probabilities = [], []
            for token, window_index in enumerate(best):
                path, window_probabilities = decoded[text_index, window_index]
                tags.append(id2label[path[token - spans[window_index][0]]])
                probabilities.append(window_probabilities[token - spans[window_index][0]])
            yield {"entities": entities_of(text, offsets, tags, probabilities)}


def _tagging_row(ids: list[int], tokenizer: FullTokenizer, max_seq_length: int) -> dict[str, np.ndarray]:
    tokens = [tokenizer.vocab["[CLS]"], *ids, tokenizer.vocab["[SEP]"]]
    pad = max_seq_length - len(tokens)
    return {"input_ids": np.array(tokens + [0] * pad, np.int32),
            "input_mask": np.array([1] * len(tokens) + [0] * pad, np.int32),
            "segment_ids": np.zeros(max_seq_length, np.int32)}


def cluener_label(entities: Sequence[dict]) -> dict:
    """CLUENER2020's "label" of entity spans: {type: {entity text: [[start, end]]}}, end inclusive."""
    label: dict = {}
    for entity in entities:
        label.setdefault(entity["type"], {}).setdefault(entity["text"], []).append([entity["start"],
                                                                                    entity["end"] - 1])
    return label


def answer_questions(questions: Sequence[tuple[str, str, str]], backend: Backend, tokenizer: FullTokenizer,
                     card: TaskCard, batch_size: int, counts: Counts, n_best_size: int = 20,
                     max_answer_length: int = 30, version_2_with_negative: bool = False,
                     null_score_diff_threshold: float = 0.0) -> Iterator[dict]:
    """{"id", "answer", "start", "end", "score"} per (id, question, context): the answer as run_squad.py
    predicts it (same windows and n-best post-processing), its [start, end) in the context and its n-best
    probability; "" (start and end null) when SQuAD v2.0 rules it unanswerable."""
    examples = [question_on_text(qas_id, question, context) for qas_id, question, context in questions]
    features = convert_examples_to_features(examples, tokenizer, card.max_seq_length, card.doc_stride,
                                            card.max_query_length, is_training=False)
    windows_per_example = np.bincount([f.example_index for f in features], minlength=len(examples))
    counts.texts += len(examples)
    counts.windowed += int((windows_per_example > 1).sum())
    results = {}
    for batch in _batches(features, batch_size):
        arrays = [np.array([getattr(f, name) for f in batch], np.int32)
                  for name in ("input_ids", "input_mask", "segment_ids")]
        start_logits, end_logits = run_rows(backend, tuple(arrays), batch_size)[:2]  # max_seq_length windows
        for feature, start, end in zip(batch, start_logits, end_logits):
            results[feature.unique_id] = (start, end)
    predictions, nbest, _ = best_answers(examples, features, results, tokenizer, n_best_size, max_answer_length,
                                         version_2_with_negative, null_score_diff_threshold)
    for example in examples:
        answer = predictions[example.qas_id]
        entry = next((e for e in nbest[example.qas_id] if e["text"] == answer), None)
        span = entry["char_span"] if entry and answer else None
        yield {"id": example.qas_id, "answer": answer, "start": span[0] if span else None,
               "end": span[1] if span else None, "score": entry["probability"] if entry else 0.0}


def task_score(scored, backend: Backend, tokenizer: FullTokenizer, card: TaskCard, batch_size: int,
               crf: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[str, float]:
    """(metric, value) of backend on a labelled file (src/serve/prediction_files.read_scored_inputs) through the
    pipeline predict.py runs: classification accuracy of the labels; NER entity F1 (micro, an entity right when
    its type, start and end all are; 0 when neither side has an entity)."""
    counts = Counts()
    if card.task == "classification":
        labels = [row["label"] for row in classify(scored.inputs.items, backend, tokenizer, card, batch_size, counts)]
        return "accuracy", float(np.mean([label == gold for label, gold in zip(labels, scored.gold)]))
    found = correct = expected = 0
    for row, gold in zip(tag_entities(scored.inputs.items, backend, tokenizer, card, batch_size, counts, crf),
                         scored.gold):
        predicted = {(e["type"], e["start"], e["end"]) for e in row["entities"]}
        found, correct, expected = found + len(predicted), correct + len(predicted & gold), expected + len(gold)
    return "entity F1", 2 * correct / (found + expected) if found + expected else 0.0
