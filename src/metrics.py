"""Task metrics: classification through sklearn / scipy; NER at the entity level, as seqeval (conlleval) counts.

Entity-level F1 counts an entity right only when its type and both boundaries match. The model zoo's NER "F1"
counted tokens, which inflates the figure; `token_accuracy` is reported beside it under its own name.
(seqeval itself is an sdist that does not build in a fresh virtual environment without setuptools-scm, so its
chunking rules -- conlleval's -- are implemented here and tested against hand-checked cases.)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import spearmanr
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


def _split(tag: str) -> tuple[str, str]:
    if tag in ("O", ""):
        return "O", ""
    prefix, _, entity_type = tag.partition("-")
    return prefix, entity_type


def _ends(previous: tuple[str, str], current: tuple[str, str]) -> bool:
    (p, pt), (c, ct) = previous, current
    return (p in ("E", "S") or (p in ("B", "I") and c in ("B", "S", "O")) or (p != "O" and pt != ct))


def _starts(previous: tuple[str, str], current: tuple[str, str]) -> bool:
    (p, pt), (c, ct) = previous, current
    return (c in ("B", "S") or (p in ("E", "S", "O") and c in ("I", "E")) or (c != "O" and pt != ct))


def entity_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """(type, first, last) of every entity in a BIO / BIOES tag sequence, chunked as conlleval does."""
    spans = set()
    start = None
    previous = ("O", "")
    for index, tag in enumerate(list(tags) + ["O"]):
        current = _split(tag)
        if start is not None and _ends(previous, current):
            spans.add((previous[1], start, index - 1))
            start = None
        if current[0] != "O" and _starts(previous, current):
            start = index
        previous = current
    return spans


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
