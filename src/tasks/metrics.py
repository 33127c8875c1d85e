"""Task metrics: classification through sklearn / scipy; NER at the entity level, as seqeval (conlleval) counts.

Entity-level F1 counts an entity right only when its type and both boundaries match. The model zoo's NER "F1"
counted tokens, which inflates the figure; `token_accuracy` is reported beside it under its own name.
Entity chunking is seqeval's default (conlleval) mode; the counts are kept here so the script can print them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import spearmanr
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

ASSESSMENT_METHODS = ("accuracy", "f1", "mcc", "spearman_correlation")


def classification_score(method: str, labels: Sequence, predictions: Sequence) -> float:
    """accuracy; f1 (binary for two classes, macro otherwise); mcc; spearman_correlation (regression scores)."""
    if method == "accuracy":
        return float(accuracy_score(labels, predictions))
    if method == "f1":
        average = "binary" if len(set(labels) | set(predictions)) <= 2 else "macro"
        return float(f1_score(labels, predictions, average=average))
    if method == "mcc":
        return float(matthews_corrcoef(labels, predictions))
    if method == "spearman_correlation":
        return float(spearmanr(labels, predictions).statistic)
    raise ValueError(f"unknown assessment_method '{method}': use one of {', '.join(ASSESSMENT_METHODS)}")


def entity_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """(type, first, last) of every entity in a BIO / BIOES tag sequence, or the model zoo's S_/B_/M_/E_ tags,
    chunked as conlleval does (seqeval)."""
    return set(get_entities([_hyphen_form(tag) for tag in tags]))


def _hyphen_form(tag: str) -> str:
    """B_PERSON -> B-PERSON, M_PERSON -> I-PERSON (the zoo's BMES tags in the form seqeval reads)."""
    if len(tag) > 2 and tag[1] == "_" and tag[0] in "BMES":
        return f"{'I' if tag[0] == 'M' else tag[0]}-{tag[2:]}"
    return tag


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 over sentences, and token accuracy (labelled as such)."""
    gold_spans = {(i, *s) for i, tags in enumerate(gold) for s in entity_spans(tags)}
    predicted_spans = {(i, *s) for i, tags in enumerate(predicted) for s in entity_spans(tags)}
    correct = len(gold_spans & predicted_spans)
    precision = correct / len(predicted_spans) if predicted_spans else 0.0
    recall = correct / len(gold_spans) if gold_spans else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    tokens = np.concatenate([np.array(g) == np.array(p) for g, p in zip(gold, predicted)]) if gold else np.array([])
    return {"precision": precision, "recall": recall, "f1": f1, "gold_entities": len(gold_spans),
            "predicted_entities": len(predicted_spans), "token_accuracy": float(tokens.mean()) if tokens.size else 0.0}
