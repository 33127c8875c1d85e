"""SQuAD v1.1 and v2.0: examples, doc-stride features, n-best span post-processing, and the official EM / F1.

Semantics of google-research/bert run_squad.py (read_squad_examples, convert_examples_to_features with the
"max context" rule, write_predictions with get_final_text (here final_text_span) and, for v2.0, the null answer and
its score threshold) and of the official evaluate-v1.1.py and evaluate-v2.0.py.
"""
from __future__ import annotations

import collections
import json
import math
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from src.data.tokenization import FullTokenizer, is_dropped
from src.files.text_input import read_text


@dataclass
class SquadExample:
    qas_id: str
    question_text: str
    doc_tokens: list[str]
    answers: list[str]  # every gold answer text (evaluation takes the best match); empty: no answer
    start_position: int = -1  # word index of the first answer in doc_tokens (training)
    end_position: int = -1
    is_impossible: bool = False  # SQuAD v2.0 "is_impossible", or no answers given: no span to train on
    word_offsets: list[tuple[int, int]] = field(default_factory=list)  # [start, end) of each doc token in context
    context: str = ""


@dataclass
class SquadFeature:
    unique_id: int
    example_index: int
    tokens: list[str]
    token_to_orig_map: dict[int, int]
    token_is_max_context: dict[int, bool]
    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    start_position: int = 0
    end_position: int = 0


def _is_whitespace(c: str) -> bool:
    return c in " \t\r\n" or ord(c) == 0x202F


def split_context(context: str) -> tuple[list[str], list[tuple[int, int]], list[int]]:
    """The white-space separated words of a context, each word's [start, end) in it, and each character's word."""
    doc_tokens, word_offsets, char_to_word, previous_space = [], [], [], True
    for index, c in enumerate(context):
        if _is_whitespace(c):
            previous_space = True
        else:
            if previous_space:
                doc_tokens.append(c)
                word_offsets.append((index, index + 1))
            else:
                doc_tokens[-1] += c
                word_offsets[-1] = (word_offsets[-1][0], index + 1)
            previous_space = False
        char_to_word.append(len(doc_tokens) - 1)
    return doc_tokens, word_offsets, char_to_word


def question_on_text(qas_id: str, question: str, context: str) -> SquadExample:
    """A question to answer from a raw context (predict.py): no gold answer."""
    doc_tokens, word_offsets, _ = split_context(context)
    return SquadExample(qas_id, question, doc_tokens, [], is_impossible=True, word_offsets=word_offsets,
                        context=context)


def read_squad_examples(path: str | Path) -> list[SquadExample]:
    """Every question of a SQuAD v1.1 or v2.0 json file; the first answer's answer_start must point at its text.

    A question marked "is_impossible" or without "answers" is kept (is_impossible set) so that evaluation can
    score it; training conversion decides whether to skip it."""
    path = Path(path)
    text = read_text(path, "SQuAD file", "pass a SQuAD v1.1 or v2.0 json file")
    try:
        data = json.loads(text)["data"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"SQuAD file {path} is not SQuAD v1.1 json (an object with a \"data\" list)") from None
    examples = []
    for article in data:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            doc_tokens, word_offsets, char_to_word = split_context(context)
            for qa in paragraph["qas"]:
                answers = qa.get("answers") or []
                is_impossible = bool(qa.get("is_impossible", False)) or not answers
                start = end = -1
                if not is_impossible:
                    text, offset = answers[0]["text"], answers[0]["answer_start"]
                    if context[offset:offset + len(text)] != text:
                        raise ValueError(f"{path}: question {qa['id']}: answer_start {offset} gives "
                                         f"'{context[offset:offset + len(text)]}' but the answer text is '{text}'; "
                                         f"fix answer_start")
                    start, end = char_to_word[offset], char_to_word[offset + len(text) - 1]
                examples.append(SquadExample(qa["id"], qa["question"], doc_tokens,
                                             [a["text"] for a in answers], start, end, is_impossible, word_offsets,
                                             context))
    if not examples:
        raise ValueError(f"SQuAD file {path} holds no questions")
    return examples


def _improve_answer_span(doc_tokens: list[str], start: int, end: int, tokenizer: FullTokenizer,
                         answer_text: str) -> tuple[int, int]:
    """The sub-token span that matches the tokenized answer exactly, if one lies inside the word span."""
    answer = " ".join(tokenizer.tokenize(answer_text))
    for new_start in range(start, end + 1):
        for new_end in range(end, new_start - 1, -1):
            if " ".join(doc_tokens[new_start:new_end + 1]) == answer:
                return new_start, new_end
    return start, end


def _is_max_context(spans: list[tuple[int, int]], span_index: int, position: int) -> bool:
    """True if this doc span gives the token the most context (min of left and right, plus a length bonus)."""
    best_score, best_index = None, None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, index
    return span_index == best_index


def check_window_settings(max_seq_length: int, doc_stride: int, max_query_length: int) -> None:
    """Reject window settings that leave no document window (conversion would otherwise never end), in one line
    that names the flag, its value and the fix."""
    if max_query_length < 1:
        raise ValueError(f"--max_query_length {max_query_length} must be at least 1: pass the number of question "
                         f"tokens to keep, e.g. --max_query_length 64")
    if doc_stride < 1:
        raise ValueError(f"--doc_stride {doc_stride} must be at least 1: pass the step between document windows, "
                         f"e.g. --doc_stride 128")
    if max_seq_length - max_query_length - 3 < 1:
        raise ValueError(f"--max_seq_length {max_seq_length} leaves no room for the document after "
                         f"--max_query_length {max_query_length} and [CLS] [SEP] [SEP]: pass --max_seq_length "
                         f"{max_query_length + 4} or more, or a smaller --max_query_length")


def check_prediction_settings(n_best_size: int, max_answer_length: int) -> None:
    """Reject post-processing settings under which no answer span can be chosen."""
    if n_best_size < 1:
        raise ValueError(f"--n_best_size {n_best_size} must be at least 1: pass the number of candidate spans to "
                         f"keep, e.g. --n_best_size 20")
    if max_answer_length < 1:
        raise ValueError(f"--max_answer_length {max_answer_length} must be at least 1: pass the longest answer in "
                         f"tokens, e.g. --max_answer_length 30")


def convert_examples_to_features(examples: Sequence[SquadExample], tokenizer: FullTokenizer, max_seq_length: int = 384,
                                 doc_stride: int = 128, max_query_length: int = 64, is_training: bool = False,
                                 version_2_with_negative: bool = False) -> list[SquadFeature]:
    """[CLS] question [SEP] doc window [SEP], windows doc_stride apart; training targets point at [CLS] (0) when
    the answer is not inside a window.

    Training skips questions without an answer (and says how many), unless version_2_with_negative: then, as
    Google's SQuAD v2.0 training, every window of such a question targets [CLS]."""
    check_window_settings(max_seq_length, doc_stride, max_query_length)
    features = []
    unique_id = 1000000000
    skipped = 0
    for example_index, example in enumerate(examples):
        if is_training and example.is_impossible and not version_2_with_negative:
            skipped += 1
            continue
        query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]
        tok_to_orig, orig_to_tok, all_doc_tokens = [], [], []
        for i, token in enumerate(example.doc_tokens):
            orig_to_tok.append(len(all_doc_tokens))
            for sub_token in tokenizer.tokenize(token):
                tok_to_orig.append(i)
                all_doc_tokens.append(sub_token)
        tok_start = tok_end = None
        if is_training and not example.is_impossible:
            tok_start = orig_to_tok[example.start_position]
            tok_end = (orig_to_tok[example.end_position + 1] - 1 if example.end_position < len(example.doc_tokens) - 1
                       else len(all_doc_tokens) - 1)
            tok_start, tok_end = _improve_answer_span(all_doc_tokens, tok_start, tok_end, tokenizer,
                                                      example.answers[0])
        max_doc_tokens = max_seq_length - len(query_tokens) - 3
        spans = []
        # every window but the last is max_doc_tokens long, so they start a fixed step apart (>= 1: a bounded loop)
        for start in range(0, len(all_doc_tokens), min(max_doc_tokens, doc_stride)):
            length = min(len(all_doc_tokens) - start, max_doc_tokens)
            spans.append((start, length))
            if start + length == len(all_doc_tokens):
                break
        for span_index, (span_start, span_length) in enumerate(spans):
            tokens = ["[CLS]", *query_tokens, "[SEP]"]
            segment_ids = [0] * len(tokens)
            token_to_orig_map, token_is_max_context = {}, {}
            for i in range(span_length):
                position = span_start + i
                token_to_orig_map[len(tokens)] = tok_to_orig[position]
                token_is_max_context[len(tokens)] = _is_max_context(spans, span_index, position)
                tokens.append(all_doc_tokens[position])
                segment_ids.append(1)
            tokens.append("[SEP]")
            segment_ids.append(1)
            input_ids = tokenizer.convert_tokens_to_ids(tokens)
            pad = max_seq_length - len(input_ids)
            start_position = end_position = 0
            if tok_start is not None and span_start <= tok_start and tok_end <= span_start + span_length - 1:
                offset = len(query_tokens) + 2
                start_position, end_position = tok_start - span_start + offset, tok_end - span_start + offset
            features.append(SquadFeature(unique_id, example_index, tokens, token_to_orig_map, token_is_max_context,
                                         input_ids + [0] * pad, [1] * len(input_ids) + [0] * pad,
                                         segment_ids + [0] * pad, start_position, end_position))
            unique_id += 1
    if skipped:
        print(f"skipped {skipped} questions without an answer (--version_2_with_negative true trains them as "
              f"no-answer)", flush=True)
        if not features:
            raise ValueError(f"all {skipped} questions are without an answer, nothing to train on: pass "
                             f"--version_2_with_negative true to train them as no-answer")
    return features


def feature_columns(feature: SquadFeature, is_training: bool) -> dict[str, np.ndarray]:
    """The record columns of a feature (training adds start/end_positions, evaluation unique_ids)."""
    columns = {"input_ids": np.array(feature.input_ids, np.int64), "input_mask": np.array(feature.input_mask, np.int64),
               "segment_ids": np.array(feature.segment_ids, np.int64)}
    if is_training:
        columns["start_positions"] = np.array([feature.start_position], np.int64)
        columns["end_positions"] = np.array([feature.end_position], np.int64)
    else:
        columns["unique_ids"] = np.array([feature.unique_id], np.int64)
    return columns


def _best_indexes(logits: np.ndarray, n_best_size: int) -> list[int]:
    return [int(i) for i in np.argsort(-logits, kind="stable")[:n_best_size]]


def _gone(c: str) -> bool:
    """A character the basic tokenization leaves out of its words: white space, or one it drops (NUL, controls)."""
    return c.isspace() or is_dropped(c)


def final_text_span(pred_text: str, orig_text: str, tokenizer: FullTokenizer) -> tuple[int, int]:
    """[start, end) in orig_text of the normalized predicted text projected back onto the original span (its
    case, accents, punctuation).

    As Google's get_final_text: strip spaces from both the original and its basic tokenization, align them
    character by character, and cut the original where the prediction starts and ends; on failure, all of
    orig_text. Unlike Google's, the original is also stripped of the characters the tokenizer drops (NUL, the BOM,
    zero-width spaces and other controls) and of other white space (no-break space), so that a word holding them
    still aligns; and the span never starts or ends on one of them (nor does the fall-back span).
    """
    first = next((i for i, c in enumerate(orig_text) if not _gone(c)), len(orig_text))
    last = next((i for i in range(len(orig_text) - 1, -1, -1) if not _gone(orig_text[i])), first - 1)
    whole = (first, max(first, last + 1))
    tok_text = " ".join(tokenizer.basic_tokenize(orig_text))
    start = tok_text.find(pred_text)
    if start == -1:
        return whole
    end = start + len(pred_text) - 1

    def strip_spaces(text: str) -> tuple[str, dict[int, int]]:
        chars, mapping = [], {}
        for index, c in enumerate(text):
            if not _gone(c):
                mapping[len(chars)] = index
                chars.append(c)
        return "".join(chars), mapping

    orig_ns, orig_map = strip_spaces(orig_text)
    tok_ns, tok_map = strip_spaces(tok_text)
    if len(orig_ns) != len(tok_ns):
        return whole
    tok_to_ns = {tok_index: ns_index for ns_index, tok_index in tok_map.items()}
    if start not in tok_to_ns or end not in tok_to_ns:
        return whole
    return orig_map[tok_to_ns[start]], orig_map[tok_to_ns[end]] + 1


def write_predictions(examples: Sequence[SquadExample], features: Sequence[SquadFeature],
                      results: dict[int, tuple[np.ndarray, np.ndarray]], tokenizer: FullTokenizer,
                      n_best_size: int = 20, max_answer_length: int = 30, output_dir: str | Path | None = None,
                      version_2_with_negative: bool = False, null_score_diff_threshold: float = 0.0) -> dict[str, str]:
    """Best answer text per question (best_answers); with output_dir, also writes predictions.json,
    nbest_predictions.json and, for v2.0, null_odds.json."""
    predictions, nbest_json, null_odds = best_answers(examples, features, results, tokenizer, n_best_size,
                                                      max_answer_length, version_2_with_negative,
                                                      null_score_diff_threshold)
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        nbest_json = {qas_id: [{key: value for key, value in entry.items() if key != "char_span"} for entry in nbest]
                      for qas_id, nbest in nbest_json.items()}
        (output_dir / "predictions.json").write_text(json.dumps(predictions, indent=2, ensure_ascii=False) + "\n")
        (output_dir / "nbest_predictions.json").write_text(json.dumps(nbest_json, indent=2, ensure_ascii=False) + "\n")
        if version_2_with_negative:
            (output_dir / "null_odds.json").write_text(json.dumps(null_odds, indent=2) + "\n")
    return predictions


def best_answers(examples: Sequence[SquadExample], features: Sequence[SquadFeature],
                 results: dict[int, tuple[np.ndarray, np.ndarray]], tokenizer: FullTokenizer, n_best_size: int = 20,
                 max_answer_length: int = 30, version_2_with_negative: bool = False,
                 null_score_diff_threshold: float = 0.0
                 ) -> tuple[dict[str, str], dict[str, list[dict]], dict[str, float]]:
    """Best answer text per question from start/end logits of every window (results by unique_id), the n-best
    list of each (text, logits, probability; "char_span": [start, end) of the text in the context, None for the
    null answer or an example read without offsets) and, for v2.0, each question's null-score difference.

    version_2_with_negative (Google's SQuAD v2.0 rule): the null score of a question is start_logit[0] +
    end_logit[0] of its window where that sum is smallest; "" joins the n-best with it, and the question is
    answered "" when null score - best non-null score > null_score_diff_threshold. Those differences go to
    null_odds.json (the official evaluate-v2.0.py --na-prob-file input). A question with no window at all
    gets "". When no span survives, a nonce "empty" (logits 0) stands in as the best non-null answer."""
    check_prediction_settings(n_best_size, max_answer_length)
    by_example = collections.defaultdict(list)
    for feature in features:
        by_example[feature.example_index].append(feature)
    predictions, nbest_json, null_odds = {}, {}, {}
    for example_index, example in enumerate(examples):
        candidates = []
        null_score, null_start_logit, null_end_logit = math.inf, 0.0, 0.0
        for feature in by_example[example_index]:
            start_logits, end_logits = results[feature.unique_id]
            if version_2_with_negative and float(start_logits[0] + end_logits[0]) < null_score:  # [CLS] span
                null_score, null_start_logit, null_end_logit = (float(start_logits[0] + end_logits[0]),
                                                                float(start_logits[0]), float(end_logits[0]))
            for start in _best_indexes(start_logits, n_best_size):
                for end in _best_indexes(end_logits, n_best_size):
                    if (start not in feature.token_to_orig_map or end not in feature.token_to_orig_map
                            or end < start or end - start + 1 > max_answer_length
                            or not feature.token_is_max_context.get(start, False)):
                        continue
                    candidates.append((float(start_logits[start] + end_logits[end]), float(start_logits[start]),
                                       float(end_logits[end]), feature, start, end))
        if version_2_with_negative:  # the null answer: feature None
            candidates.append((null_start_logit + null_end_logit, null_start_logit, null_end_logit, None, 0, 0))
        candidates.sort(key=lambda c: c[0], reverse=True)
        nbest, seen = [], set()
        for _, start_logit, end_logit, feature, start, end in candidates:
            if len(nbest) >= n_best_size:
                break
            final, char_span = "", None
            if feature is not None:
                pieces = " ".join(feature.tokens[start:end + 1]).replace(" ##", "").replace("##", "")
                pred_text = " ".join(pieces.strip().split())
                first_word, last_word = feature.token_to_orig_map[start], feature.token_to_orig_map[end]
                orig_text = " ".join(example.doc_tokens[first_word:last_word + 1])
                text_start, text_end = final_text_span(pred_text, orig_text, tokenizer)
                final = orig_text[text_start:text_end]
                if final in seen:
                    continue
                char_span = _context_span(example, first_word, text_start, text_end)
            seen.add(final)
            nbest.append({"text": final, "start_logit": start_logit, "end_logit": end_logit, "char_span": char_span})
        if version_2_with_negative and "" not in seen:
            nbest.append({"text": "", "start_logit": null_start_logit, "end_logit": null_end_logit, "char_span": None})
        if not any(entry["text"] for entry in nbest):
            nbest.append({"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "char_span": None})
        scores = np.array([n["start_logit"] + n["end_logit"] for n in nbest])
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        for entry, probability in zip(nbest, probabilities):
            entry["probability"] = float(probability)
        if version_2_with_negative:
            best_non_null = next(entry for entry in nbest if entry["text"])
            score_diff = null_score - best_non_null["start_logit"] - best_non_null["end_logit"]
            null_odds[example.qas_id] = score_diff
            predictions[example.qas_id] = "" if score_diff > null_score_diff_threshold else best_non_null["text"]
        else:
            predictions[example.qas_id] = nbest[0]["text"]
        nbest_json[example.qas_id] = nbest
    return predictions, nbest_json, null_odds


def _context_span(example: SquadExample, first_word: int, text_start: int, text_end: int) -> tuple[int, int] | None:
    """[start, end) in the context of the answer that starts text_start characters into the words from
    first_word joined by single spaces (final_text_span's orig_text)."""
    if not example.word_offsets:
        return None

    def context_offset(offset: int, closing: bool) -> int:
        word = first_word
        while offset > len(example.doc_tokens[word]) or (not closing and offset == len(example.doc_tokens[word])):
            offset -= len(example.doc_tokens[word]) + 1
            word += 1
        return example.word_offsets[word][0] + offset

    return context_offset(text_start, False), context_offset(text_end, True)


# The official SQuAD v1.1 evaluation (evaluate-v1.1.py).

def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, the articles a/an/the, and extra whitespace."""
    text = text.lower()
    text = "".join(c for c in text if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1_score(prediction: str, ground_truth: str) -> float:
    prediction_tokens, truth_tokens = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def squad_evaluate(examples: Iterable[SquadExample], predictions: dict[str, str]) -> dict[str, float]:
    """EM and F1 in percent, the max over each question's gold answers; unanswered questions count 0."""
    exact = f1 = total = 0.0
    for example in examples:
        total += 1
        if example.qas_id not in predictions:
            continue
        prediction = predictions[example.qas_id]
        exact += max(exact_match_score(prediction, truth) for truth in example.answers)
        f1 += max(f1_score(prediction, truth) for truth in example.answers)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


# The official SQuAD v2.0 evaluation (evaluate-v2.0.py, without a no-answer probability file).

def _f1_score_v2(prediction: str, ground_truth: str) -> float:
    """v1.1's F1, except that an empty side (no answer) scores 1 when both are empty and 0 otherwise."""
    if not normalize_answer(prediction) or not normalize_answer(ground_truth):
        return float(normalize_answer(prediction) == normalize_answer(ground_truth))
    return f1_score(prediction, ground_truth)


def squad_evaluate_v2(examples: Iterable[SquadExample], predictions: dict[str, str]) -> dict[str, float]:
    """exact, f1 (percent) and total, then the same over questions with answers (HasAns_*) and without (NoAns_*),
    a group's keys only when it holds questions. A question without a gold answer (answers empty, or none that
    normalizes to text) has the gold answer "", so predicting "" scores 1; a missing prediction scores 0."""
    groups = {"": [], "HasAns_": [], "NoAns_": []}
    for example in examples:
        truths = [truth for truth in example.answers if normalize_answer(truth)] or [""]
        prediction = predictions.get(example.qas_id)
        score = (0.0, 0.0) if prediction is None else (
            max(float(exact_match_score(prediction, truth)) for truth in truths),
            max(_f1_score_v2(prediction, truth) for truth in truths))
        groups[""].append(score)
        groups["HasAns_" if example.answers else "NoAns_"].append(score)
    result = {}
    for prefix, scores in groups.items():
        if scores:
            result[f"{prefix}exact"] = 100.0 * sum(exact for exact, _ in scores) / len(scores)
            result[f"{prefix}f1"] = 100.0 * sum(f1 for _, f1 in scores) / len(scores)
            result[f"{prefix}total"] = len(scores)
    return result
