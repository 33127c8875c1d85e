"""SQuAD v1.1: the official EM / F1, exact mapping of predicted spans back to the text across doc-stride windows,
and a model that learns a SQuAD file built from real Wikipedia paragraphs of the shipped dump."""
import json
import random
import re

import numpy as np
import pytest
import yaml

import run_squad
from src.corpus import read_documents
from src.squad import (convert_examples_to_features, exact_match_score, f1_score, read_squad_examples,
                       squad_evaluate, write_predictions)
from src.tokenization import FullTokenizer
from tests.conftest import ROOT
from tools import convert_task_data


def test_official_exact_match_and_f1_on_hand_checked_cases():
    # normalisation: case, punctuation and the articles a/an/the do not count
    assert exact_match_score("The Eiffel Tower!", "eiffel tower")
    assert not exact_match_score("Eiffel", "Eiffel Tower")
    # "eiffel" against "eiffel tower": precision 1, recall 1/2 -> F1 2/3
    assert f1_score("Eiffel", "the Eiffel Tower") == pytest.approx(2 / 3)
    assert f1_score("Paris", "London") == 0.0

    class Q:
        def __init__(self, qas_id, answers):
            self.qas_id, self.answers = qas_id, answers

    questions = [Q("1", ["Denver Broncos", "The Broncos"]), Q("2", ["Santa Clara, California"]), Q("3", ["1950"])]
    scores = squad_evaluate(questions, {"1": "broncos", "2": "Santa Clara", "3": "1950"})
    # q1: EM 1 (matches "The Broncos"); q2: F1 2*(1*2/3)/(1+2/3) = 0.8; q3: 1; unanswered would count 0
    assert scores["exact_match"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 1) / 3)


def build_squad_file(wiki_text_dir, path, questions, max_words, seed=0):
    """Questions on real paragraphs: the answer is a run of 1-3 words of the paragraph (punctuation and case
    as written); the question quotes the words around it."""
    rng = random.Random(seed)
    paragraphs = []
    for text_file in sorted(wiki_text_dir.glob("*.txt")):
        for document in read_documents(text_file):
            context = " ".join(" ".join(document).split()[:max_words])
            if len(context.split()) >= 40:
                paragraphs.append(context)
    data, count = [], 0
    for index, context in enumerate(paragraphs[:questions]):
        words = list(re.finditer(r"\S+", context))
        first = rng.randrange(3, len(words) - 6)
        last = first + rng.randrange(0, 3)
        answer = context[words[first].start():words[last].end()]
        before = " ".join(w.group() for w in words[first - 3:first])
        after = " ".join(w.group() for w in words[last + 1:last + 4])
        question = f"What comes between '{before}' and '{after}'?"
        data.append({"title": f"p{index}", "paragraphs": [{"context": context, "qas": [
            {"id": f"q{index}", "question": question, "answers": [{"text": answer,
                                                                    "answer_start": words[first].start()}]}]}]})
        count += 1
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return count


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


def test_squad_file_from_wikipedia_paragraphs_trains_to_high_exact_match(tmp_path, wiki_text_dir, wiki_vocab):
    path = tmp_path / "squad.json"
    build_squad_file(wiki_text_dir, path, questions=16, max_words=60)
    convert_task_data.main(["--task", "squad", "--input_file", str(path), "--output_file",
                            str(tmp_path / "train.tfrecord"), "--vocab_file", str(wiki_vocab),
                            "--max_seq_length", "128", "--doc_stride", "64", "--max_query_length", "32"])
    config = yaml.safe_load((ROOT / "configs" / "finetune_tiny.yaml").read_text())
    config.update(batch_size=4, optimizers={"Lamb": {**config["optimizers"]["Lamb"], "learning_rate": 1e-2}})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    from src.config import load_bert_config, save_bert_config
    model = save_bert_config(load_bert_config("tiny", vocab_size=4000, hidden_dropout_prob=0.0,
                                              attention_probs_dropout_prob=0.0), tmp_path / "model.yaml")
    scores = run_squad.main(["--do_train", "true", "--do_eval", "true", "--epoch_num", "40", "--device_target", "CPU",
                             "--train_data_file_path", str(tmp_path / "train.tfrecord"), "--eval_json_path", str(path),
                             "--vocab_file_path", str(wiki_vocab), "--config", str(tmp_path / "run.yaml"),
                             "--bert_network", str(model), "--max_seq_length", "128", "--doc_stride", "64",
                             "--max_query_length", "32", "--save_finetune_checkpoint_path", str(tmp_path / "ckpt"),
                             "--output_dir", str(tmp_path)])
    assert scores["exact_match"] >= 80.0, scores
    assert (tmp_path / "predictions.json").is_file() and (tmp_path / "nbest_predictions.json").is_file()


def test_answer_start_that_does_not_match_the_answer_text(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "Paris is the capital of France.", "qas": [
        {"id": "x1", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 3}]}]}]}]}))
    with pytest.raises(ValueError, match=r"bad.json: question x1: answer_start 3 gives 'is is' but the answer text "
                                         r"is 'Paris'; fix answer_start"):
        read_squad_examples(path)
