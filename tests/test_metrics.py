"""Metrics against their official definitions, on fixed inputs checked by hand."""
import pytest

from src.tasks.metrics import classification_score, entity_scores, entity_spans


def test_classification_metrics_on_hand_checked_inputs():
    labels, predictions = [1, 0, 1, 1, 0, 1], [1, 0, 0, 1, 1, 1]
    assert classification_score("accuracy", labels, predictions) == pytest.approx(4 / 6)
    # tp 3, fp 1, fn 1 -> precision 3/4, recall 3/4, F1 3/4
    assert classification_score("f1", labels, predictions) == pytest.approx(0.75)
    # MCC = (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (3*1 - 1*1) / sqrt(4*4*2*2) = 2/8
    assert classification_score("mcc", labels, predictions) == pytest.approx(0.25)
    # ranks 1..4 against 1,3,2,4: d^2 = 0+1+1+0 -> 1 - 6*2/(4*15) = 0.8
    assert classification_score("spearman_correlation", [0.1, 0.2, 0.3, 0.4], [1.0, 3.0, 2.0, 4.0]) == \
        pytest.approx(0.8)
    with pytest.raises(ValueError, match="unknown assessment_method 'auc': use one of accuracy, f1, mcc"):
        classification_score("auc", labels, predictions)


def test_entity_spans_follow_conlleval_chunking():
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 1), ("LOC", 3, 3)}
    assert entity_spans(["I-PER", "I-PER", "B-PER", "I-LOC"]) == {("PER", 0, 1), ("PER", 2, 2), ("LOC", 3, 3)}
    assert entity_spans(["S-ORG", "B-LOC", "E-LOC", "O"]) == {("ORG", 0, 0), ("LOC", 1, 2)}
    assert entity_spans(["O", "O"]) == set()


def test_entity_f1_counts_entities_not_tokens():
    gold = [["B-PER", "I-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG"]]
    predicted = [["B-PER", "I-PER", "O", "O", "B-LOC"], ["B-ORG", "I-ORG"]]
    scores = entity_scores(gold, predicted)
    # gold 3 entities, predicted 3, correct 2 (the PER span is one token short)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["token_accuracy"] == pytest.approx(6 / 7)  # what a token-level "F1" would flatter


def test_entity_scores_equal_seqeval_on_random_tag_sequences():
    """Micro-averaging over sentences as seqeval's classification report does (entities never cross sentences)."""
    import random

    from seqeval.metrics import f1_score, precision_score, recall_score
    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(200)]
    predicted = [[tag if rng.random() < 0.7 else rng.choice(tags) for tag in sentence] for sentence in gold]
    scores = entity_scores(gold, predicted)
    assert scores["precision"] == pytest.approx(precision_score(gold, predicted))
    assert scores["recall"] == pytest.approx(recall_score(gold, predicted))
    assert scores["f1"] == pytest.approx(f1_score(gold, predicted))
