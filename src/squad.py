"""SQuAD v1.1: examples, doc-stride features, n-best span post-processing, and the official EM / F1.

Semantics of google-research/bert run_squad.py (read_squad_examples, convert_examples_to_features with the
"max context" rule, write_predictions with get_final_text) and of the official evaluate-v1.1.py.
"""
from __future__ import annotations

import collections
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from src.tokenization import FullTokenizer


@dataclass
class SquadExample:
    qas_id: str
    question_text: str
    doc_tokens: list[str]
    answers: list[str]  # every gold answer text (evaluation takes the best match)
    start_position: int = -1  # word index of the first answer in doc_tokens (training)
    end_position: int = -1


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


def read_squad_examples(path: str | Path) -> list[SquadExample]:
    """Every question of a SQuAD v1.1 json file; the first answer's answer_start must point at its text."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SQuAD file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"SQuAD file {path} is not SQuAD v1.1 json (an object with a \"data\" list)") from None
    examples = []
    for article in data:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            doc_tokens, char_to_word, previous_space = [], [], True
            for c in context:
                if _is_whitespace(c):
                    previous_space = True
                else:
                    if previous_space:
                        doc_tokens.append(c)
                    else:
                        doc_tokens[-1] += c
                    previous_space = False
                char_to_word.append(len(doc_tokens) - 1)
            for qa in paragraph["qas"]:
                answers = qa.get("answers") or []
                start = end = -1
                if answers:
                    text, offset = answers[0]["text"], answers[0]["answer_start"]
                    if context[offset:offset + len(text)] != text:
                        raise ValueError(f"{path}: question {qa['id']}: answer_start {offset} gives "
                                         f"'{context[offset:offset + len(text)]}' but the answer text is '{text}'; "
                                         f"fix answer_start")
                    start, end = char_to_word[offset], char_to_word[offset + len(text) - 1]
                examples.append(SquadExample(qa["id"], qa["question"], doc_tokens,
                                             [a["text"] for a in answers], start, end))
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


def convert_examples_to_features(examples: Sequence[SquadExample], tokenizer: FullTokenizer, max_seq_length: int = 384,
                                 doc_stride: int = 128, max_query_length: int = 64,
                                 is_training: bool = False) -> list[SquadFeature]:
    """[CLS] question [SEP] doc window [SEP], windows doc_stride apart; training targets point at [CLS] (0) when
    the answer is not inside a window."""
    features = []
    unique_id = 1000000000
    for example_index, example in enumerate(examples):
        query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]
        tok_to_orig, orig_to_tok, all_doc_tokens = [], [], []
        for i, token in enumerate(example.doc_tokens):
            orig_to_tok.append(len(all_doc_tokens))
            for sub_token in tokenizer.tokenize(token):
                tok_to_orig.append(i)
                all_doc_tokens.append(sub_token)
        tok_start = tok_end = None
        if is_training:
            tok_start = orig_to_tok[example.start_position]
            tok_end = (orig_to_tok[example.end_position + 1] - 1 if example.end_position < len(example.doc_tokens) - 1
                       else len(all_doc_tokens) - 1)
            tok_start, tok_end = _improve_answer_span(all_doc_tokens, tok_start, tok_end, tokenizer,
                                                      example.answers[0])
        max_doc_tokens = max_seq_length - len(query_tokens) - 3
        spans, start = [], 0
        while start < len(all_doc_tokens):
            length = min(len(all_doc_tokens) - start, max_doc_tokens)
            spans.append((start, length))
            if start + length == len(all_doc_tokens):
                break
            start += min(length, doc_stride)
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
            if is_training and span_start <= tok_start and tok_end <= span_start + span_length - 1:
                offset = len(query_tokens) + 2
                start_position, end_position = tok_start - span_start + offset, tok_end - span_start + offset
            features.append(SquadFeature(unique_id, example_index, tokens, token_to_orig_map, token_is_max_context,
                                         input_ids + [0] * pad, [1] * len(input_ids) + [0] * pad,
                                         segment_ids + [0] * pad, start_position, end_position))
            unique_id += 1
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


def get_final_text(pred_text: str, orig_text: str, tokenizer: FullTokenizer) -> str:
    """Project the normalized predicted text back onto the original span (its case, accents, punctuation).

    As Google's: strip spaces from both the original and its basic tokenization, align them character by
    character, and cut the original where the prediction starts and ends; on failure, return orig_text.
    """
    tok_text = " ".join(tokenizer.basic_tokenize(orig_text))
    start = tok_text.find(pred_text)
    if start == -1:
        return orig_text
    end = start + len(pred_text) - 1

    def strip_spaces(text: str) -> tuple[str, dict[int, int]]:
        chars, mapping = [], {}
        for index, c in enumerate(text):
            if c != " ":
                mapping[len(chars)] = index
                chars.append(c)
        return "".join(chars), mapping

    orig_ns, orig_map = strip_spaces(orig_text)
    tok_ns, tok_map = strip_spaces(tok_text)
    if len(orig_ns) != len(tok_ns):
        return orig_text
    tok_to_ns = {tok_index: ns_index for ns_index, tok_index in tok_map.items()}
    if start not in tok_to_ns or end not in tok_to_ns:
        return orig_text
    return orig_text[orig_map[tok_to_ns[start]]:orig_map[tok_to_ns[end]] + 1]


def write_predictions(examples: Sequence[SquadExample], features: Sequence[SquadFeature],
                      results: dict[int, tuple[np.ndarray, np.ndarray]], tokenizer: FullTokenizer,
                      n_best_size: int = 20, max_answer_length: int = 30,
                      output_dir: str | Path | None = None) -> dict[str, str]:
    """Best answer text per question from start/end logits of every window (results by unique_id); with
    output_dir, also writes predictions.json and nbest_predictions.json."""
    by_example = collections.defaultdict(list)
    for feature in features:
        by_example[feature.example_index].append(feature)
    predictions, nbest_json = {}, {}
    for example_index, example in enumerate(examples):
        candidates = []
        for feature in by_example[example_index]:
            start_logits, end_logits = results[feature.unique_id]
            for start in _best_indexes(start_logits, n_best_size):
                for end in _best_indexes(end_logits, n_best_size):
                    if (start not in feature.token_to_orig_map or end not in feature.token_to_orig_map
                            or end < start or end - start + 1 > max_answer_length
                            or not feature.token_is_max_context.get(start, False)):
                        continue
                    candidates.append((float(start_logits[start] + end_logits[end]), float(start_logits[start]),
                                       float(end_logits[end]), feature, start, end))
        candidates.sort(key=lambda c: c[0], reverse=True)
        nbest, seen = [], set()
        for _, start_logit, end_logit, feature, start, end in candidates:
            if len(nbest) >= n_best_size:
                break
            pieces = " ".join(feature.tokens[start:end + 1]).replace(" ##", "").replace("##", "")
            pred_text = " ".join(pieces.strip().split())
            orig_text = " ".join(example.doc_tokens[feature.token_to_orig_map[start]:feature.token_to_orig_map[end] + 1])
            final = get_final_text(pred_text, orig_text, tokenizer)
            if final in seen:
                continue
            seen.add(final)
            nbest.append({"text": final, "start_logit": start_logit, "end_logit": end_logit})
        if not nbest:
            nbest.append({"text": "empty", "start_logit": 0.0, "end_logit": 0.0})
        scores = np.array([n["start_logit"] + n["end_logit"] for n in nbest])
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        for entry, probability in zip(nbest, probabilities):
            entry["probability"] = float(probability)
        predictions[example.qas_id] = nbest[0]["text"]
        nbest_json[example.qas_id] = nbest
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "predictions.json").write_text(json.dumps(predictions, indent=2, ensure_ascii=False) + "\n")
        (output_dir / "nbest_predictions.json").write_text(json.dumps(nbest_json, indent=2, ensure_ascii=False) + "\n")
    return predictions


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
