"""Use a finetuned model on raw text: classify sentences, tag entities with character offsets, answer questions.

    # one text a line (TAB between the two texts of a pair) -> JSON lines with label and probabilities
    python predict.py --load_finetune_checkpoint_path finetune_ckpt/ --input_file reviews.txt
    echo "1998年，江泽民在北京会见了克林顿。" | python predict.py --load_finetune_checkpoint_path ner_ckpt/
    # SQuAD json (or JSON lines of {"id", "question", "context"}) -> answers with their offsets in the context
    python predict.py --load_finetune_checkpoint_path squad_ckpt/ --input_format squad_json --input_file dev.json
    # the same on an exported model (export.py): MindIR loaded by MindSpore, or ONNX run by onnxruntime
    python predict.py --load_finetune_checkpoint_path ner_ckpt/ --backend onnx --model_file ner.onnx ...

Everything the model needs besides the text (task, vocab, labels, tokenizer settings, head) is read from the
description the finetuning run wrote beside its checkpoints (src/tasks/task_card.py). Input formats per task:
classification text | label_text | clue_json; ner text | cluener_json; squad jsonl | squad_json. Output: JSON
lines (one per input line, with its "line" number; empty lines are skipped and counted), or --output_format
tsv (classification), cluener (the CLUENER2020 submission lines), squad_predictions (run_squad.py's
predictions.json).

Batches are padded to their longest input, not to max_seq_length: inputs are sorted by length into batches (in
pools of 64 batches) and the outputs written in input order; MindSpore pads to bucket lengths (multiples of
max_seq_length / 8), since it compiles a graph per shape; an ONNX file with dynamic axes takes any length; a file
of fixed shape keeps its length; SQuAD windows stay max_seq_length long (src/serve/pipelines.py).
--batch_size 1 runs each input as soon as it is read (latency mode).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from src.cli import ArgumentParser, check_minimums, run_cli
from src.config import str2bool
from src.data.tokenization import FullTokenizer
from src.files.paths import check_apart
from src.files.run_files import latest_checkpoint, run_prefixes
from src.serve.backends import BACKENDS, crf_weights, open_backend
from src.serve.pipelines import Counts, answer_questions, classify, cluener_label, tag_entities
from src.serve.prediction_files import INPUT_FORMATS, OUTPUT_FORMATS, OutputFile, read_inputs
from src.tasks.task_card import TASKS, run_card_of
from src.train.distributed import compute_type_for_device, setup_device

PREFIXES = {"classification": "classifier", "ner": "ner", "squad": "squad"}  # the finetuning scripts' checkpoints


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load_finetune_checkpoint_path", required=True,
                        help="a finetuned checkpoint, or the directory the finetuning run saved into")
    parser.add_argument("--task", choices=TASKS, default=None,
                        help="default: the task of the checkpoints in the directory")
    parser.add_argument("--input_file", default="-", help="default: standard input")
    parser.add_argument("--input_format", default=None,
                        help="classification: text (default) | label_text | clue_json; ner: text (default) | "
                             "cluener_json; squad: jsonl (default) | squad_json")
    parser.add_argument("--output_file", default="-", help="default: standard output")
    parser.add_argument("--output_format", default="jsonl",
                        help="jsonl; or tsv (classification), cluener (ner), squad_predictions (squad)")
    parser.add_argument("--overwrite", type=str2bool, default=False, help="replace an existing --output_file")
    parser.add_argument("--backend", choices=BACKENDS, default="mindspore",
                        help="mindspore (the checkpoint), mindir or onnx (an export.py file: --model_file)")
    parser.add_argument("--model_file", default="", help="the .mindir or .onnx file for --backend mindir / onnx")
    parser.add_argument("--batch_size", type=int, default=32,
                        help="inputs a batch, sorted by length and padded to the batch's longest; 1: latency mode, "
                             "each input run as soon as it is read")
    parser.add_argument("--device_target", choices=("Ascend", "GPU", "CPU"), default=None)
    parser.add_argument("--device_id", type=int, default=0)
    parser.add_argument("--n_best_size", type=int, default=20, help="squad: as run_squad.py")
    parser.add_argument("--max_answer_length", type=int, default=30, help="squad: as run_squad.py")
    parser.add_argument("--version_2_with_negative", type=str2bool, default=False, help="squad: as run_squad.py")
    parser.add_argument("--null_score_diff_threshold", type=float, default=0.0, help="squad: as run_squad.py")
    return parser.parse_args(argv)


def find_checkpoint(path: str, task: str | None) -> Path:
    """A checkpoint file as given; for a directory, the newest checkpoint of its finetuning runs (of --task)."""
    if Path(path).is_dir() and task is None:
        found = [name for name, prefix in PREFIXES.items() if run_prefixes(Path(path), prefix)]
        if len(found) > 1:
            raise ValueError(f"--load_finetune_checkpoint_path {path} holds checkpoints of {' and '.join(found)}: "
                             f"pass --task")
        task = found[0] if found else "classification"
    return latest_checkpoint(path, PREFIXES[task or "classification"])


def predict(args: argparse.Namespace) -> dict:
    check_minimums(args, batch_size=1)
    checkpoint = find_checkpoint(args.load_finetune_checkpoint_path, args.task)
    card, vocab, config = run_card_of(checkpoint).read()
    if args.task and args.task != card.task:
        raise ValueError(f"checkpoint {checkpoint} is a {card.task} model, not {args.task}: pass --task {card.task}")
    if vocab is None:
        raise FileNotFoundError(f"{run_card_of(checkpoint).vocab_file} does not exist: the run did not know its "
                                f"vocab; copy the vocab.txt the records were made with there")
    input_format = args.input_format or INPUT_FORMATS[card.task][0]
    if args.output_format not in OUTPUT_FORMATS[card.task]:
        raise ValueError(f"--output_format {args.output_format} is not one of {card.task}'s: "
                         f"{', '.join(OUTPUT_FORMATS[card.task])}")
    if args.output_file not in ("", "-"):
        check_apart({"--output_file": args.output_file},
                    {"--input_file": "" if args.input_file == "-" else args.input_file, "the checkpoint": checkpoint})
    inputs = read_inputs(args.input_file, card.task, input_format)
    counts = Counts()
    bar = None
    output = OutputFile(args.output_file, args.overwrite)
    try:  # from here on, whatever stops the program (an error, a signal, a full disk) leaves no partial output
        setup_device(args.device_target, args.device_id)
        backend = open_backend(args.backend, card, compute_type_for_device(config), checkpoint, args.model_file)
        tokenizer = FullTokenizer(vocab, card.do_lower_case)
        bar = tqdm(total=len(inputs.items), unit="text", leave=False,
                   disable=args.input_file == "-" or args.output_file in ("", "-"))  # not between output lines
        if card.task == "classification":
            write_classes(output, inputs, classify(inputs.items, backend, tokenizer, card, args.batch_size, counts),
                          args.output_format, card, bar)
        elif card.task == "ner":
            crf = crf_weights(checkpoint) if card.use_crf else None
            write_entities(output, inputs, tag_entities(inputs.items, backend, tokenizer, card, args.batch_size, counts,
                                                         crf), args.output_format, bar)
        else:
            answers = answer_questions(inputs.items, backend, tokenizer, card, args.batch_size, counts,
                                       args.n_best_size, args.max_answer_length, args.version_2_with_negative,
                                       args.null_score_diff_threshold)
            write_answers(output, inputs, answers, args.output_format, bar)
        output.close()
    except BaseException:
        if bar is not None:
            bar.close()  # cleared before the one line that says why
        output.abandon()
        raise
    bar.close()
    report(args, card.task, counts, inputs.empty_lines, checkpoint)
    return {"texts": counts.texts, "truncated": counts.truncated, "windowed": counts.windowed,
            "empty_lines": len(inputs.empty_lines)}


def write_classes(output: OutputFile, inputs, results, output_format: str, card, bar) -> None:
    if output_format == "tsv":
        output.write("line\t" + ("score" if card.num_class == 1 else "label\tprobability") + "\n")
    for line, (text_a, text_b), result in zip(inputs.lines, inputs.items, results):
        if output_format == "tsv":
            figures = (f"{result['score']:.6f}" if card.num_class == 1
                       else f"{result['label']}\t{result['probability']:.6f}")
            output.write(f"{line}\t{figures}\n")
        else:
            row = {"line": line, "text": text_a, **({"text_b": text_b} if text_b is not None else {}), **result}
            output.write(json.dumps(row, ensure_ascii=False) + "\n")
        bar.update()


def write_entities(output: OutputFile, inputs, results, output_format: str, bar) -> None:
    for index, (line, text, result) in enumerate(zip(inputs.lines, inputs.items, results)):
        if output_format == "cluener":
            row = {"id": index, "label": cluener_label(result["entities"])}
        else:
            row = {"line": line, "text": text, "entities": result["entities"]}
        output.write(json.dumps(row, ensure_ascii=False) + "\n")
        bar.update()


def write_answers(output: OutputFile, inputs, results, output_format: str, bar) -> None:
    if output_format == "squad_predictions":
        output.write(json.dumps({r["id"]: r["answer"] for r in results}, indent=2, ensure_ascii=False) + "\n")
        return
    for line, (_, question, _), result in zip(inputs.lines, inputs.items, results):
        output.write(json.dumps({"line": line, "question": question, **result}, ensure_ascii=False) + "\n")
        bar.update()


def report(args: argparse.Namespace, task: str, counts: Counts, empty_lines: list[int], checkpoint) -> None:
    """A summary on stderr (stdout may carry the predictions)."""
    noun = "question" if task == "squad" else "text"
    notes = [f"{counts.texts} {noun}{'s' if counts.texts != 1 else ''} with {checkpoint.name} on {args.backend}"]
    if counts.truncated:
        notes.append(f"{counts.truncated} longer than max_seq_length, truncated as in training")
    if counts.windowed:
        notes.append(f"{counts.windowed} longer than max_seq_length, read in overlapping windows")
    if empty_lines:
        shown = ", ".join(map(str, empty_lines[:10])) + (", ..." if len(empty_lines) > 10 else "")
        notes.append(f"{len(empty_lines)} empty line{'s' if len(empty_lines) > 1 else ''} skipped ({shown})")
    print("predict.py: " + "; ".join(notes), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict | None:
    try:
        return run_cli("predict.py", lambda arguments: predict(parse_args(arguments)), argv)
    except BrokenPipeError:  # the reader of standard output stopped early (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return None


if __name__ == "__main__":
    main()
