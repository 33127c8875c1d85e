"""Using a finetuned model: predict.py on raw text agrees with the finetuning scripts' own evaluation of the same
checkpoints (labels, CLUENER entities, SQuAD answers), offsets map back to exactly the text; export.py's MindIR and
ONNX files give the checkpoint graph's outputs on real inputs; bad input ends in one line."""
import json
import re
import shutil

import numpy as np
import pytest

import export
import predict
from src.data.tokenization import FullTokenizer
from src.serve.backends import MindIRBackend, MindSporeBackend, OnnxBackend
from src.serve.pipelines import cluener_label, token_offsets, windows
from src.tasks.squad import best_answers, convert_examples_to_features, question_on_text
from src.tasks.task_card import run_card_of
from src.tasks.task_files import TextExample, classification_features
from tests.helpers import NER_SEQ, TINY, first_reviews_as_records, model_yaml

pytestmark = pytest.mark.slow


def expect_exit(match, call):
    with pytest.raises(SystemExit) as error:
        call()
    message = str(error.value.code)
    assert "\n" not in message and match in message, message


def run_predict(capsys, *flags):
    """predict.py's standard output, its lines as JSON unless told otherwise, and its summary line."""
    capsys.readouterr()
    predict.main(list(map(str, flags)))
    captured = capsys.readouterr()
    return captured.out, captured.err.strip().splitlines()[-1]


def test_classifier_labels_on_raw_text_agree_with_run_classifier_eval(capsys, sentiment, sentiment_classifier):
    """The 400 held-out reviews as text: predict.py's labels score exactly the accuracy run_classifier.py's
    evaluation of the same checkpoint reported, and each line's probabilities are a distribution."""
    directory, _ = sentiment
    run_dir, result = sentiment_classifier
    out, summary = run_predict(capsys, "--load_finetune_checkpoint_path", run_dir / "ckpt", "--input_format",
                               "label_text", "--input_file", directory / "dev.txt")
    rows = [json.loads(line) for line in out.splitlines()]
    gold = [line.split("\t")[0] for line in (directory / "dev.txt").read_text(encoding="utf-8").splitlines()]
    assert [row["line"] for row in rows] == list(range(1, 401))
    assert np.mean([row["label"] == label for row, label in zip(rows, gold)]) == pytest.approx(result["accuracy"])
    assert all(abs(sum(row["probabilities"].values()) - 1) < 1e-5 for row in rows)
    assert "400 texts" in summary and "truncated" in summary  # some reviews are longer than 64 tokens


def test_exported_classifier_mindir_and_onnx_match_the_checkpoint_on_real_reviews(tmp_path, capsys, sentiment,
                                                                                   sentiment_classifier):
    directory, _ = sentiment
    run_dir, _ = sentiment_classifier
    checkpoint = next((run_dir / "ckpt").glob("classifier-*.ckpt"))
    card, vocab, config = run_card_of(checkpoint).read()
    tokenizer = FullTokenizer(vocab, card.do_lower_case)
    texts = [line.split("\t")[1] for line in (directory / "dev.txt").read_text(encoding="utf-8").splitlines()[:20]]
    features = [classification_features(TextExample(text, None, "", ""), tokenizer, 0, card.max_seq_length)
                for text in texts]
    inputs = [np.stack([f[name] for f in features]) for name in ("input_ids", "input_mask", "segment_ids")]
    expected = MindSporeBackend(card, config, checkpoint)(*inputs)[0]

    export.main(["--ckpt_file", str(run_dir / "ckpt"), "--file_name", str(tmp_path / "dynamic"), "--file_format",
                 "MINDIR", "--batch_size", "0"])
    export.main(["--ckpt_file", str(run_dir / "ckpt"), "--file_name", str(tmp_path / "fixed"), "--file_format",
                 "ONNX", "--batch_size", "8"])
    np.testing.assert_allclose(MindIRBackend(tmp_path / "dynamic.mindir")(*inputs)[0], expected, atol=1e-4)
    np.testing.assert_allclose(OnnxBackend(tmp_path / "fixed.onnx")(*inputs)[0], expected, atol=1e-4)  # 20 = 8+8+4

    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    outputs = {}
    for backend, model_file in (("mindspore", ""), ("mindir", tmp_path / "dynamic.mindir"),
                                ("onnx", tmp_path / "fixed.onnx")):
        out, _ = run_predict(capsys, "--load_finetune_checkpoint_path", run_dir / "ckpt", "--input_file",
                             tmp_path / "in.txt", "--backend", backend, "--model_file", model_file)
        outputs[backend] = [json.loads(line) for line in out.splitlines()]
    for backend in ("mindir", "onnx"):
        assert [r["label"] for r in outputs[backend]] == [r["label"] for r in outputs["mindspore"]]
        np.testing.assert_allclose([r["probability"] for r in outputs[backend]],
                                   [r["probability"] for r in outputs["mindspore"]], atol=1e-4)
    expect_exit(f"{tmp_path / 'fixed.onnx'} exists: pass --overwrite true",
                lambda: export.main(["--ckpt_file", str(run_dir / "ckpt"), "--file_name", str(tmp_path / "fixed"),
                                     "--file_format", "ONNX"]))


def test_ner_entities_on_raw_text_match_run_ner_and_map_back_to_the_text(tmp_path, capsys, peoples_daily_ner,
                                                                          crf_tagger):
    """The held-out People's Daily sentences as raw text (CLUENER json): predict.py's CRF decoding on the host
    gives run_ner.py's CLUENER submission for every sentence that fits the model (run_ner.py cuts longer ones;
    predict.py reads them in windows), and every entity's offsets give its text. The ONNX export gives the same
    entities (here written as CLUENER submission lines)."""
    directory, _ = peoples_daily_ner
    run_dir, _, clue_dir, _ = crf_tagger
    flags = ["--load_finetune_checkpoint_path", run_dir, "--input_format", "cluener_json", "--input_file",
             directory / "dev.json"]
    out, summary = run_predict(capsys, *flags)
    rows = [json.loads(line) for line in out.splitlines()]
    texts = [json.loads(line)["text"] for line in open(directory / "dev.json", encoding="utf-8")]
    submitted = [json.loads(line)["label"] for line in open(clue_dir / "cluener_predict.json", encoding="utf-8")]
    fits = [i for i, text in enumerate(texts) if len(text) <= NER_SEQ - 2]
    assert len(fits) > 200 and len(fits) < len(texts)  # 240 of the 500
    assert [cluener_label(rows[i]["entities"]) for i in fits] == [submitted[i] for i in fits]
    assert f"{len(texts) - len(fits)} longer than max_seq_length, read in overlapping windows" in summary
    entities = [entity for row in rows for entity in row["entities"]]
    assert len(entities) > 300
    for row, text in zip(rows, texts):
        assert row["text"] == text
        for entity in row["entities"]:
            assert text[entity["start"]:entity["end"]] == entity["text"]
            assert entity["type"] in ("PER", "LOC", "ORG") and 0 < entity["score"] <= 1

    export.main(["--ckpt_file", str(run_dir), "--file_name", str(tmp_path / "ner"), "--file_format", "ONNX",
                 "--batch_size", "16"])
    out, _ = run_predict(capsys, *flags, "--backend", "onnx", "--model_file", tmp_path / "ner.onnx",
                         "--output_format", "cluener")
    assert [json.loads(line) for line in out.splitlines()] == \
        [{"id": index, "label": cluener_label(row["entities"])} for index, row in enumerate(rows)]


def fused_counts(out):
    """The op counts export.py printed for onnxruntime's optimizer: {"Attention": 2, ...}."""
    line = next(line for line in out.splitlines() if "optimizer fused:" in line)
    return {name: int(count) for count, name in re.findall(r"(\d+) (\w+)", line.split("fused:")[1])}


def exports(tmp_path, capsys, run_dir, calibration_file=None):
    """The optimized float32 ONNX file of run_dir and its int8 file (scored on calibration_file when given):
    (fused op counts, optimized export's result, int8 export's result)."""
    flags = ["--ckpt_file", str(run_dir), "--file_format", "ONNX", "--batch_size", "0", "--optimize", "true"]
    capsys.readouterr()
    optimized = export.main([*flags, "--file_name", str(tmp_path / "optimized")])
    counts = fused_counts(capsys.readouterr().out)
    scoring = ["--calibration_file", str(calibration_file)] if calibration_file else []
    int8 = export.main([*flags, "--file_name", str(tmp_path / "int8"), "--quantize", "int8", *scoring])
    return counts, optimized, int8


def predict_each_side(capsys, tmp_path, checkpoint, *flags, sides=("checkpoint", "optimized", "int8")):
    """predict.py's standard output per side: the checkpoint, and the ONNX files exports() wrote in tmp_path."""
    outputs = {}
    for side in sides:
        backend = [] if side == "checkpoint" else ["--backend", "onnx", "--model_file", tmp_path / f"{side}.onnx"]
        outputs[side], _ = run_predict(capsys, "--load_finetune_checkpoint_path", checkpoint, *flags, *backend)
    return outputs


def test_optimized_and_int8_onnx_classifier_on_the_held_out_reviews(tmp_path, capsys, sentiment,
                                                                     sentiment_classifier):
    """The finetuned classifier's optimized graph (fusions counted) gives the checkpoint's labels on the 400
    held-out reviews through predict.py; its int8 file agrees with float32 on at least 97% of them, and the
    accuracies export.py printed for both are the ones predict.py's labels score against the gold labels."""
    directory, _ = sentiment
    run_dir, result = sentiment_classifier
    dev = directory / "dev.txt"
    counts, optimized, int8 = exports(tmp_path, capsys, run_dir / "ckpt", dev)
    assert min(counts[op] for op in ("Attention", "SkipLayerNormalization", "BiasGelu")) > 0, counts
    assert optimized["max_difference"] < 1e-4
    rows = {side: [json.loads(line) for line in out.splitlines()] for side, out in predict_each_side(
        capsys, tmp_path, run_dir / "ckpt", "--input_format", "label_text", "--input_file", dev).items()}
    labels = {name: [row["label"] for row in found] for name, found in rows.items()}
    assert labels["optimized"] == labels["checkpoint"]
    np.testing.assert_allclose([row["probability"] for row in rows["optimized"]],
                               [row["probability"] for row in rows["checkpoint"]], atol=1e-4)
    agreement = np.mean([a == b for a, b in zip(labels["int8"], labels["checkpoint"])])
    assert agreement >= 0.97, agreement
    gold = [line.split("\t")[0] for line in dev.read_text(encoding="utf-8").splitlines()]
    accuracy = {name: float(np.mean([a == b for a, b in zip(found, gold)])) for name, found in labels.items()}
    assert accuracy["checkpoint"] == pytest.approx(result["accuracy"])
    score = int8["int8"]
    assert (score["metric"], score["records"]) == ("accuracy", 400)
    assert score["int8"] == pytest.approx(accuracy["int8"]) and score["float32"] == pytest.approx(
        accuracy["optimized"])
    assert score["difference"] == pytest.approx(accuracy["int8"] - accuracy["optimized"])
    card = json.loads((tmp_path / "int8.onnx.task.json").read_text(encoding="utf-8"))
    assert card["int8"]["difference"] == pytest.approx(score["difference"])


def entity_f1(predicted, gold):
    found = correct = expected = 0
    for mine, theirs in zip(predicted, gold):
        found, correct, expected = found + len(mine), correct + len(mine & theirs), expected + len(theirs)
    return 2 * correct / (found + expected)


def test_optimized_and_int8_onnx_tagger_on_the_held_out_sentences(tmp_path, capsys, peoples_daily_ner, crf_tagger):
    """The CRF tagger's optimized graph gives the checkpoint's entities on the 500 held-out sentences; the entity
    F1 export.py printed for int8 and float32 are the ones predict.py's entities score against the gold spans
    of the CLUENER file (computed here from its label offsets), and int8's entities are nearly float32's."""
    directory, _ = peoples_daily_ner
    run_dir, _, _, _ = crf_tagger
    counts, optimized, int8 = exports(tmp_path, capsys, run_dir, directory / "dev.json")
    assert counts["Attention"] > 0 and counts["SkipLayerNormalization"] > 0, counts
    assert optimized["max_difference"] < 1e-4
    entities = {side: [{(e["type"], e["start"], e["end"]) for e in json.loads(line)["entities"]}
                       for line in out.splitlines()]
                for side, out in predict_each_side(capsys, tmp_path, run_dir, "--input_format", "cluener_json",
                                                   "--input_file", directory / "dev.json").items()}
    assert entities["optimized"] == entities["checkpoint"]
    gold = [{(kind, start, end + 1) for kind, spans in json.loads(line)["label"].items()
             for places in spans.values() for start, end in places}
            for line in (directory / "dev.json").read_text(encoding="utf-8").splitlines()]
    score = int8["int8"]
    assert score["metric"] == "entity F1"
    assert score["float32"] == pytest.approx(entity_f1(entities["optimized"], gold))
    assert score["int8"] == pytest.approx(entity_f1(entities["int8"], gold))
    agreement = entity_f1(entities["int8"], entities["checkpoint"])
    assert agreement >= 0.9, agreement


def test_optimized_and_int8_onnx_squad_model_answers(tmp_path, capsys, squad_model):
    """The SQuAD model's optimized graph gives run_squad.py's answers through predict.py; int8 (not scored:
    export.py says so) is run for its answers, most of which it keeps."""
    model_dir, _ = squad_model
    counts, optimized, int8 = exports(tmp_path, capsys, model_dir / "ckpt")
    assert counts["Attention"] > 0 and optimized["max_difference"] < 1e-4 and "int8" not in int8
    expected = json.loads((model_dir / "predictions.json").read_text())
    answers = {side: json.loads(out) for side, out in predict_each_side(
        capsys, tmp_path, model_dir / "ckpt", "--input_format", "squad_json", "--input_file", model_dir / "squad.json",
        "--output_format", "squad_predictions", sides=("optimized", "int8")).items()}
    assert answers["optimized"] == expected
    same = np.mean([answers["int8"][key] == answer for key, answer in expected.items()])
    assert same >= 0.5, same


def test_squad_answers_equal_run_squad_predictions_with_offsets_into_the_context(capsys, squad_model):
    tmp_path, _ = squad_model
    flags = ["--load_finetune_checkpoint_path", tmp_path / "ckpt", "--input_format", "squad_json", "--input_file",
             tmp_path / "squad.json"]
    out, _ = run_predict(capsys, *flags, "--output_format", "squad_predictions")
    assert json.loads(out) == json.loads((tmp_path / "predictions.json").read_text())
    out, _ = run_predict(capsys, *flags)
    contexts = {qa["id"]: paragraph["context"] for article in json.loads((tmp_path / "squad.json").read_text())["data"]
                for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    for row in map(json.loads, out.splitlines()):
        assert contexts[row["id"]][row["start"]:row["end"]] == row["answer"]

    # JSON lines of {"id", "question", "context"}: the same answers.
    questions = [{"id": qa["id"], "question": qa["question"], "context": paragraph["context"]}
                 for article in json.loads((tmp_path / "squad.json").read_text())["data"][:4]
                 for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    lines_file = tmp_path / "questions.jsonl"
    lines_file.write_text("".join(json.dumps(q) + "\n" for q in questions))
    out, _ = run_predict(capsys, "--load_finetune_checkpoint_path", tmp_path / "ckpt", "--input_file", lines_file)
    expected = json.loads((tmp_path / "predictions.json").read_text())
    assert {row["id"]: row["answer"] for row in map(json.loads, out.splitlines())} == \
        {q["id"]: expected[q["id"]] for q in questions}


def test_answer_offsets_follow_the_context_spacing(tmp_path):
    """An answer across irregular white space: its offsets cover the context's own characters."""
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "capital",
                                                   "of", "france", "is", "paris", ",", "what", "?"]) + "\n")
    tokenizer = FullTokenizer(tmp_path / "vocab.txt")
    context = "  Paris,\t the\n\ncapital   of France"
    example = question_on_text("q", "What is the capital?", context)
    features = convert_examples_to_features([example], tokenizer, 32, 16, 8)
    start, end = np.full(32, -10.0), np.full(32, -10.0)
    tokens = features[0].tokens
    document = tokens.index("[SEP]")  # the context's tokens follow the question's
    start[tokens.index("the", document)], end[tokens.index("france", document)] = 5.0, 5.0
    _, nbest, _ = best_answers([example], features, {features[0].unique_id: (start, end)}, tokenizer)
    first, last = nbest["q"][0]["char_span"]
    assert nbest["q"][0]["text"] == "the capital of France"
    assert context[first:last] == "the\n\ncapital   of France"


def test_tagger_tokens_are_characters_or_white_space_words_of_the_original_text():
    text = " Li Na  won\tin Paris."
    assert [text[a:b] for a, b in token_offsets(text, "character")] == list(text)
    assert [text[a:b] for a, b in token_offsets(text, "word")] == ["Li", "Na", "won", "in", "Paris."]


def test_windows_give_every_token_its_most_central_window():
    for count, size in ((5, 10), (10, 10), (11, 10), (37, 8), (100, 62)):
        spans, best = windows(count, size)
        assert spans[0][0] == 0 and spans[-1][1] == count and all(b - a <= size for a, b in spans)
        for token, window in enumerate(best):
            a, b = spans[window]
            assert a <= token < b
            margin = min(token - a, b - 1 - token)
            assert all(margin >= min(token - s, e - 1 - token) for s, e in spans if s <= token < e)


def test_bad_input_to_predict_and_export_ends_in_one_line(tmp_path, sentiment_classifier, sentiment):
    run_dir, _ = sentiment_classifier
    directory, vocab = sentiment
    checkpoint = next((run_dir / "ckpt").glob("classifier-*.ckpt"))
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(checkpoint, alone)
    (tmp_path / "in.txt").write_text("很好\n", encoding="utf-8")
    (tmp_path / "out.jsonl").write_text("someone's file\n")
    base = ["--input_file", str(tmp_path / "in.txt")]
    expect_exit(f"{alone / 'classifier.task.json'} does not exist",
                lambda: predict.main(["--load_finetune_checkpoint_path", str(alone), *base]))
    expect_exit("--output_file", lambda: predict.main(["--load_finetune_checkpoint_path", str(run_dir / "ckpt"),
                                                       *base, "--output_file", str(tmp_path / "out.jsonl")]))
    assert (tmp_path / "out.jsonl").read_text() == "someone's file\n"
    expect_exit("--backend onnx needs --model_file",
                lambda: predict.main(["--load_finetune_checkpoint_path", str(run_dir / "ckpt"), *base, "--backend",
                                      "onnx"]))
    expect_exit(f"--input_file {tmp_path / 'missing.txt'} does not exist",
                lambda: predict.main(["--load_finetune_checkpoint_path", str(run_dir / "ckpt"), "--input_file",
                                      str(tmp_path / "missing.txt")]))
    (tmp_path / "bad.json").write_text('{"sentence": "好"}\n{"sentence": \n', encoding="utf-8")
    expect_exit(f"{tmp_path / 'bad.json'}:2 is not valid JSON",
                lambda: predict.main(["--load_finetune_checkpoint_path", str(run_dir / "ckpt"), "--input_format",
                                      "clue_json", "--input_file", str(tmp_path / "bad.json")]))
    expect_exit("no finetuning description beside it",
                lambda: export.main(["--ckpt_file", str(checkpoint).replace(str(run_dir / "ckpt"), str(alone)),
                                     "--file_name", str(tmp_path / "x")]))


def test_finetuning_refuses_a_vocab_or_labels_other_than_the_records_were_made_with(tmp_path, sentiment,
                                                                                   chinese_vocab):
    """The records' task card names their vocab and labels: finetuning with another vocab or label file fails
    before training, naming both."""
    import run_classifier
    first_reviews_as_records(sentiment, tmp_path, 40)
    (tmp_path / "swapped.json").write_text('{"pos": 0, "neg": 1}')
    base = ["--do_train", "true", "--num_class", "2", "--device_target", "CPU", "--config", TINY,
            "--bert_network", str(model_yaml(tmp_path, 4000, 32)), "--train_data_file_path",
            str(tmp_path / "train.tfrecord"), "--save_finetune_checkpoint_path", str(tmp_path / "c"),
            "--output_dir", str(tmp_path)]
    expect_exit(f"vocab file {chinese_vocab} is not the vocab {tmp_path / 'train.tfrecord'} was made with",
                lambda: run_classifier.main([*base, "--vocab_file_path", str(chinese_vocab)]))
    expect_exit("gives the labels pos, neg but", lambda: run_classifier.main(
        [*base, "--label2id_file_path", str(tmp_path / "swapped.json")]))
    expect_exit("--num_class 3 does not match the 2 labels", lambda: run_classifier.main(
        [*base[:2], "--num_class", "3", *base[4:]]))
    assert not list(tmp_path.glob("c/*.ckpt"))
