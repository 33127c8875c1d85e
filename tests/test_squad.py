"""SQuAD v1.1 and v2.0: the official EM / F1, exact mapping of predicted spans back to the text across doc-stride
windows, a model that learns a SQuAD file built from real Wikipedia paragraphs of the shipped dump, questions
without an answer (skipped or trained as [CLS], the null-score threshold, v2.0 scoring), and window settings that
are refused before any work."""
import json
import re
import signal

import mindspore as ms
import numpy as np
import pytest

import run_squad
from src.data.tokenization import FullTokenizer
from src.tasks.squad import (
    SquadExample,
    SquadFeature,
    convert_examples_to_features,
    exact_match_score,
    f1_score,
    read_squad_examples,
    squad_evaluate,
    squad_evaluate_v2,
    write_predictions,
)
from tests.helpers import build_squad_file
from tools import convert_task_data


class Q:
    """A scored question: squad_evaluate and squad_evaluate_v2 read only its id and gold answers."""

    def __init__(self, qas_id, answers):
        self.qas_id, self.answers = qas_id, answers


def test_official_exact_match_and_f1_on_hand_checked_cases():
    # normalisation: case, punctuation and the articles a/an/the do not count
    assert exact_match_score("The Eiffel Tower!", "eiffel tower")
    assert not exact_match_score("Eiffel", "Eiffel Tower")
    # "eiffel" against "eiffel tower": precision 1, recall 1/2 -> F1 2/3
    assert f1_score("Eiffel", "the Eiffel Tower") == pytest.approx(2 / 3)
    assert f1_score("Paris", "London") == 0.0

    questions = [Q("1", ["Denver Broncos", "The Broncos"]), Q("2", ["Santa Clara, California"]), Q("3", ["1950"])]
    scores = squad_evaluate(questions, {"1": "broncos", "2": "Santa Clara", "3": "1950"})
    # q1: EM 1 (matches "The Broncos"); q2: F1 2*(1*2/3)/(1+2/3) = 0.8; q3: 1; unanswered would count 0
    assert scores["exact_match"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 1) / 3)


def test_post_processing_maps_spans_back_to_the_original_text_across_windows(tmp_path, wiki_text_dir, wiki_vocab):
    path = tmp_path / "squad.json"
    build_squad_file(wiki_text_dir, path, questions=40, max_words=150)
    tokenizer = FullTokenizer(wiki_vocab)
    examples = read_squad_examples(path)
    settings = dict(max_seq_length=96, doc_stride=32, max_query_length=24)
    training = convert_examples_to_features(examples, tokenizer, is_training=True, **settings)
    evaluation = convert_examples_to_features(examples, tokenizer, is_training=False, **settings)
    assert len(evaluation) > 2 * len(examples)  # the paragraphs span several windows
    results = {}
    for train_feature, feature in zip(training, evaluation):
        start, end = np.full(96, -10.0), np.full(96, -10.0)
        if train_feature.start_position:  # the answer lies inside this window: point the logits at it
            start[train_feature.start_position] = end[train_feature.end_position] = 10.0
        results[feature.unique_id] = (start, end)
    predictions = write_predictions(examples, evaluation, results, tokenizer, output_dir=tmp_path)
    for example in examples:
        assert predictions[example.qas_id] == example.answers[0]
    nbest = json.loads((tmp_path / "nbest_predictions.json").read_text())
    assert json.loads((tmp_path / "predictions.json").read_text()) == predictions
    assert all(len(entries) >= 1 and entries[0]["probability"] > 0.5 for entries in nbest.values())


@pytest.mark.slow
def test_squad_file_from_wikipedia_paragraphs_trains_to_high_exact_match(squad_model):
    tmp_path, scores = squad_model
    assert scores["exact_match"] >= 80.0, scores
    assert (tmp_path / "predictions.json").is_file() and (tmp_path / "nbest_predictions.json").is_file()


def test_answer_start_that_does_not_match_the_answer_text(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "Paris is the capital of France.", "qas": [
        {"id": "x1", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 3}]}]}]}]}))
    with pytest.raises(ValueError, match=r"bad.json: question x1: answer_start 3 gives 'is is' but the answer text "
                                         r"is 'Paris'; fix answer_start"):
        read_squad_examples(path)


# SQuAD v2.0: questions without an answer.

def test_v2_scoring_of_a_question_without_an_answer():
    # no gold answer: the gold answer is "", so predicting "" is right and any text is wrong
    assert squad_evaluate_v2([Q("n1", [])], {"n1": ""}) == {"exact": 100.0, "f1": 100.0, "total": 1,
                                                            "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 1}
    assert squad_evaluate_v2([Q("n1", [])], {"n1": "Paris"}) == {"exact": 0.0, "f1": 0.0, "total": 1,
                                                                 "NoAns_exact": 0.0, "NoAns_f1": 0.0, "NoAns_total": 1}
    # a question with an answer predicted "" scores 0 (no HasAns-only F1 credit for an empty prediction)
    assert squad_evaluate_v2([Q("a1", ["Paris"])], {"a1": ""}) == {"exact": 0.0, "f1": 0.0, "total": 1,
                                                                   "HasAns_exact": 0.0, "HasAns_f1": 0.0,
                                                                   "HasAns_total": 1}


def test_v2_scoring_of_a_mixed_set_by_hand():
    questions = [Q("a1", ["Denver Broncos", "The Broncos"]), Q("a2", ["Santa Clara, California"]), Q("a3", ["1950"]),
                 Q("n1", []), Q("n2", [])]
    predictions = {"a1": "broncos", "a2": "Santa Clara", "a3": "", "n1": "", "n2": "1950"}
    # per question (EM, F1): a1 (1, 1); a2 (0, 0.8); a3 (0, 0); n1 (1, 1); n2 (0, 0)
    scores = squad_evaluate_v2(questions, predictions)
    assert scores == pytest.approx({"exact": 40.0, "f1": 56.0, "total": 5,  # 2/5; 2.8/5
                                    "HasAns_exact": 100 / 3, "HasAns_f1": 60.0, "HasAns_total": 3,  # 1/3; 1.8/3
                                    "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2})


@pytest.fixture
def paris_vocab(tmp_path):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "paris", "is", "the", "capital", "and", "largest", "city",
             "of", "france", "spain", ".", "?", "what", "which"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return path


def paris_example_and_windows(null_logits, paris_logits):
    """One question on "Paris is the capital", a window per (start, end) logit pair of the null ([CLS]) span and
    of the span "Paris" (every window sees the whole text); all other logits -9."""
    example = SquadExample("q", "What is the capital?", ["Paris", "is", "the", "capital"], ["Paris"])
    tokens = ["[CLS]", "what", "is", "the", "capital", "?", "[SEP]", "paris", "is", "the", "capital", "[SEP]"]
    features = [SquadFeature(unique_id, 0, tokens, {7: 0, 8: 1, 9: 2, 10: 3}, dict.fromkeys(range(7, 11), True),
                             [0] * 12, [1] * 12, [0] * 12) for unique_id in range(len(null_logits))]
    results = {}
    for feature, null, paris in zip(features, null_logits, paris_logits):
        start_logits, end_logits = np.full(12, -9.0), np.full(12, -9.0)
        start_logits[0], end_logits[0] = null
        start_logits[7], end_logits[7] = paris
        results[feature.unique_id] = (start_logits, end_logits)
    return [example], features, results


def test_null_answer_when_null_score_beats_best_span_by_more_than_the_threshold(tmp_path, paris_vocab):
    tokenizer = FullTokenizer(paris_vocab)
    # window 0: null 4 + 4 = 8; window 1: null 1 + 1 = 2, the smallest, so the null score is 2; "Paris": 3 + 2 = 5
    examples, features, results = paris_example_and_windows([(4.0, 4.0), (1.0, 1.0)], [(3.0, 2.0), (3.0, 2.0)])
    # 2 - 5 = -3: above a threshold of -3.5, not above 0 (v1.1 never answers "")
    assert write_predictions(examples, features, results, tokenizer) == {"q": "Paris"}
    assert write_predictions(examples, features, results, tokenizer, version_2_with_negative=True) == {"q": "Paris"}
    assert write_predictions(examples, features, results, tokenizer, output_dir=tmp_path, version_2_with_negative=True,
                             null_score_diff_threshold=-3.5) == {"q": ""}
    assert json.loads((tmp_path / "null_odds.json").read_text()) == {"q": -3.0}
    nbest = json.loads((tmp_path / "nbest_predictions.json").read_text())["q"]
    assert [(entry["text"], entry["start_logit"], entry["end_logit"]) for entry in nbest][:2] == [("Paris", 3.0, 2.0),
                                                                                               ("", 1.0, 1.0)]
    # only window 0: null 8 - 5 = 3 > 0 gives ""; the comparison is strict, so a threshold of 3 keeps "Paris"
    examples, features, results = paris_example_and_windows([(4.0, 4.0)], [(3.0, 2.0)])
    assert write_predictions(examples, features, results, tokenizer, version_2_with_negative=True) == {"q": ""}
    assert write_predictions(examples, features, results, tokenizer, version_2_with_negative=True,
                             null_score_diff_threshold=3.0) == {"q": "Paris"}


def write_v2_file(path):
    """SQuAD v2.0 shaped: an answerable question, an "is_impossible" one, and one without "answers" (a test file)."""
    context = "Paris is the capital and the largest city of France."
    qas = [
        {"id": "a1", "question": "What is the capital of France?", "is_impossible": False,
         "answers": [{"text": "Paris", "answer_start": 0}]},
        {"id": "n1", "question": "What is the capital of Spain?", "is_impossible": True, "answers": [],
         "plausible_answers": [{"text": "Paris", "answer_start": 0}]},
        {"id": "t1", "question": "Which city is the largest?"}]
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "Paris", "paragraphs": [
        {"context": context, "qas": qas}]}]}), encoding="utf-8")
    return path


def test_training_conversion_skips_questions_without_an_answer_unless_v2(tmp_path, paris_vocab, capsys):
    examples = read_squad_examples(write_v2_file(tmp_path / "train-v2.json"))
    tokenizer = FullTokenizer(paris_vocab)
    settings = dict(max_seq_length=16, doc_stride=4, max_query_length=6, is_training=True)
    features = convert_examples_to_features(examples, tokenizer, **settings)
    assert "skipped 2 questions without an answer" in capsys.readouterr().out
    assert {feature.example_index for feature in features} == {0}
    assert features[0].tokens[features[0].start_position] == "paris"
    # v2.0: every window of a question without an answer targets [CLS]
    features = convert_examples_to_features(examples, tokenizer, version_2_with_negative=True, **settings)
    assert "skipped" not in capsys.readouterr().out
    unanswerable = [feature for feature in features if feature.example_index in (1, 2)]
    assert len(unanswerable) >= 4 and all(f.start_position == f.end_position == 0 for f in unanswerable)
    with pytest.raises(ValueError, match=r"^all 2 questions are without an answer, nothing to train on: pass "
                                         r"--version_2_with_negative true"):
        convert_examples_to_features(examples[1:], tokenizer, **settings)


def test_convert_task_data_counts_skipped_questions(tmp_path, paris_vocab, capsys):
    convert_task_data.main(["--task", "squad", "--input_file", str(write_v2_file(tmp_path / "train-v2.json")),
                            "--output_file", str(tmp_path / "train.tfrecord"), "--vocab_file", str(paris_vocab),
                            "--max_seq_length", "32", "--doc_stride", "8", "--max_query_length", "12"])
    out = capsys.readouterr().out
    assert "skipped 2 questions without an answer" in out and "wrote 1 examples" in out


def cls_model(input_ids, input_mask, segment_ids):
    """Stands in for BertForQuestionAnswering: every window points at [CLS] (no answer)."""
    logits = np.full(input_ids.shape, -5.0, np.float32)
    logits[:, 0] = 5.0
    return ms.Tensor(logits), ms.Tensor(logits)


def test_v2_file_is_evaluated_with_v2_scoring(tmp_path, paris_vocab):
    flags = ["--eval_json_path", str(write_v2_file(tmp_path / "dev-v2.json")), "--vocab_file_path", str(paris_vocab),
             "--max_seq_length", "32", "--doc_stride", "8", "--max_query_length", "12", "--output_dir", str(tmp_path)]
    examples = read_squad_examples(tmp_path / "dev-v2.json")
    assert [(e.answers, e.is_impossible) for e in examples] == [(["Paris"], False), ([], True), ([], True)]
    # without the flag no question is answered "", yet the two questions without an answer make it v2.0 scoring
    args = run_squad.parse_args(flags)
    scores, scoring = run_squad.evaluate(args, cls_model, 4, *run_squad.read_eval_inputs(args))
    assert scoring.startswith("SQuAD v2.0 scoring: 2 questions without an answer")
    assert scores["total"] == 3 and scores["HasAns_total"] == 1 and scores["NoAns_exact"] == 0.0
    # with it, [CLS] everywhere answers "" everywhere: the two no-answer questions right, the answerable one wrong
    args = run_squad.parse_args(flags + ["--version_2_with_negative", "true"])
    scores, scoring = run_squad.evaluate(args, cls_model, 4, *run_squad.read_eval_inputs(args))
    assert scoring == "SQuAD v2.0 scoring: --version_2_with_negative true"
    assert scores == pytest.approx({"exact": 200 / 3, "f1": 200 / 3, "total": 3, "HasAns_exact": 0.0,
                                    "HasAns_f1": 0.0, "HasAns_total": 1, "NoAns_exact": 100.0, "NoAns_f1": 100.0,
                                    "NoAns_total": 2})
    assert json.loads((tmp_path / "predictions.json").read_text()) == {"a1": "", "n1": "", "t1": ""}
    assert set(json.loads((tmp_path / "null_odds.json").read_text())) == {"a1", "n1", "t1"}


# Settings that leave no document window used to make the conversion loop forever while its memory grew.

def raises_promptly(call, match):
    """pytest.raises(ValueError), failing after 10 s instead of hanging if the call loops."""
    def give_up(signum, frame):
        raise TimeoutError("no answer within 10 s: the document window loop does not end")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(10)
    try:
        with pytest.raises(ValueError, match=match):
            call()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("settings, message", [
    (dict(doc_stride=0), r"^--doc_stride 0 must be at least 1: pass .*--doc_stride 128$"),
    (dict(max_seq_length=67), r"^--max_seq_length 67 leaves no room for the document after --max_query_length 64 "
                              r"and \[CLS\] \[SEP\] \[SEP\]: pass --max_seq_length 68 or more"),
    (dict(max_query_length=0), r"^--max_query_length 0 must be at least 1"),
])
def test_window_settings_without_room_are_refused_before_any_work(tmp_path, paris_vocab, settings, message):
    examples = read_squad_examples(write_v2_file(tmp_path / "dev-v2.json"))
    long_document = SquadExample("long", "What is the capital?", ["Paris", "is", "the", "capital"] * 500, ["Paris"])
    raises_promptly(lambda: convert_examples_to_features(examples + [long_document], FullTokenizer(paris_vocab),
                                                         **settings), message)


def test_entry_scripts_refuse_bad_squad_flags_before_any_work(tmp_path, paris_vocab):
    # run_squad.py: refused before the run config is read or training starts (no training data is given)
    for flags, message in [(["--doc_stride", "0"], "run_squad.py: --doc_stride 0 must be at least 1"),
                           (["--n_best_size", "0"], "run_squad.py: --n_best_size 0 must be at least 1"),
                           (["--max_answer_length", "0"], "run_squad.py: --max_answer_length 0 must be at least 1"),
                           (["--max_seq_length", "64"], "run_squad.py: --max_seq_length 64 leaves no room")]:
        with pytest.raises(SystemExit, match=re.escape(message)):
            run_squad.main(["--do_train", "true", "--config", str(tmp_path / "missing.yaml"), *flags])
    with pytest.raises(SystemExit, match=re.escape("convert_task_data.py: --doc_stride 0 must be at least 1")):
        convert_task_data.main(["--task", "squad", "--input_file", str(write_v2_file(tmp_path / "train-v2.json")),
                                "--output_file", str(tmp_path / "train.tfrecord"), "--vocab_file", str(paris_vocab),
                                "--doc_stride", "0"])
