"""Did pretraining learn features a task can use? Logistic regression on frozen features, pretrained against random.

    python bench/frozen_feature_probe.py --splits_dir DIR --vocab_file vocab.txt --bert_network model.yaml \
        --checkpoints NAME=ckpt[,NAME=ckpt...] [--sizes 100,500,2000] [--seeds 0,1,2] [--output probe.json]

The splits are tools/split_labeled_text.py's label_text output (train_SIZE_seedSEED.tsv, test.tsv): each text is
encoded once by each encoder, eval mode, sequences of --max_seq_length, and two features are read from it: the
mean over real tokens of the embedding output and of the last layer's output (what `classifier_pooling: mean`
feeds the classification head). For each labeled set a scikit-learn LogisticRegressionCV (standardised features,
C picked by 5-fold cross-validation on the labeled set alone: the same search for every encoder) is fitted and
scored on test.tsv. The encoders are each checkpoint and the same model with random weights (the initializer at
MindSpore seed 0), plus character-bigram TF-IDF for scale.

This separates the two ways a pretrained start can lose to random weights after finetuning: if the probe on
pretrained features beats the probe on random ones, pretraining learned something the task can use and finetuning
fails to keep it; if not, pretraining learned nothing the task needs.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import mindspore as ms
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from src.cli import run_cli  # noqa: E402
from src.config import load_bert_config  # noqa: E402
from src.data.tokenization import FullTokenizer  # noqa: E402
from src.files.checkpoint import load_checkpoint_into  # noqa: E402
from src.model.task_heads import BertForSequenceClassification  # noqa: E402
from src.tasks.task_files import TextExample, classification_features, read_classification  # noqa: E402

BATCH = 64


def encode(examples: list[TextExample], tokenizer: FullTokenizer, max_seq_length: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """The ids and mask finetuning feeds run_classifier.py (classification_features), int32 [examples, seq]."""
    rows = [classification_features(example, tokenizer, 0, max_seq_length) for example in examples]
    return tuple(np.stack([row[key] for row in rows]).astype(np.int32) for key in ("input_ids", "input_mask"))


def mean_features(model: BertForSequenceClassification, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Masked means of the embedding output and of the last layer's output, float32 [texts, hidden] each."""
    embedded, last = [], []
    for start in range(0, len(ids), BATCH):
        batch_ids, batch_mask = ids[start:start + BATCH], mask[start:start + BATCH]
        rows = len(batch_ids)
        if rows < BATCH:  # one shape for every call
            batch_ids = np.pad(batch_ids, ((0, BATCH - rows), (0, 0)))
            batch_mask = np.pad(batch_mask, ((0, BATCH - rows), (0, 0)))
            batch_mask[rows:, 0] = 1
        ids_t, mask_t = ms.Tensor(batch_ids), ms.Tensor(batch_mask)
        segments = ms.Tensor(np.zeros_like(batch_ids))
        weights = batch_mask[:, :, None].astype(np.float32)
        for store, output in ((embedded, model.bert.embeddings(ids_t, segments)),
                              (last, model.bert(ids_t, segments, mask_t)[0])):
            store.append(((output.asnumpy() * weights).sum(1) / weights.sum(1))[:rows])
    return {"embeddings": np.concatenate(embedded), "last_layer": np.concatenate(last)}


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x, test_y: np.ndarray, seed: int) -> float:
    classifier = make_pipeline(StandardScaler(with_mean=not hasattr(train_x, "tocsr")),
                               LogisticRegressionCV(Cs=10, cv=5, scoring="accuracy", max_iter=3000,
                                                    random_state=seed))
    classifier.fit(train_x, train_y)
    return float(np.mean(classifier.predict(test_x) == test_y))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits_dir", type=Path, required=True)
    parser.add_argument("--vocab_file", required=True)
    parser.add_argument("--bert_network", required=True, help="the model YAML the checkpoints were trained with")
    parser.add_argument("--checkpoints", required=True, help="NAME=PATH pairs, comma-separated")
    parser.add_argument("--sizes", default="100,500,2000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--output", type=Path, help="write the table as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")  # 1.10's changed defaults
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    sizes, seeds = [int(s) for s in args.sizes.split(",")], [int(s) for s in args.seeds.split(",")]
    checkpoints = dict(pair.split("=", 1) for pair in args.checkpoints.split(",") if "=" in pair)
    if len(checkpoints) != len(args.checkpoints.split(",")):
        raise ValueError(f"--checkpoints {args.checkpoints!r}: pass NAME=PATH pairs separated by commas")
    needed = [args.splits_dir / "test.tsv", *(args.splits_dir / f"train_{size}_seed{seed}.tsv"
                                              for size in sizes for seed in seeds), *map(Path, checkpoints.values())]
    for path in needed:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: pass tools/split_labeled_text.py's --output_dir as "
                                    "--splits_dir with the --sizes and --seeds it drew, and existing checkpoints")
    tokenizer = FullTokenizer(args.vocab_file)
    config = load_bert_config(args.bert_network).replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

    test_set = read_classification(args.splits_dir / "test.tsv", "label_text")
    train_sets = {(size, seed): read_classification(args.splits_dir / f"train_{size}_seed{seed}.tsv", "label_text")
                  for size in sizes for seed in seeds}
    distinct = {example.text_a: example for examples in [test_set, *train_sets.values()] for example in examples}
    all_texts = sorted(distinct)
    row_of = {text: row for row, text in enumerate(all_texts)}
    ids, mask = encode([distinct[text] for text in all_texts], tokenizer, args.max_seq_length)

    features: dict[str, object] = {}
    for name, path in [("random", None), *checkpoints.items()]:
        ms.set_seed(0)
        model = BertForSequenceClassification(config, 2, "mean")
        if path:
            load_checkpoint_into(model, path, allow_missing=("classifier",))
        model.set_train(False)
        for kind, matrix in mean_features(model, ids, mask).items():
            features[f"{name} {kind}"] = matrix
    features["char-bigram TF-IDF"] = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True,
                                                     min_df=2).fit_transform(all_texts)

    test_rows, test_y = [row_of[e.text_a] for e in test_set], np.array([e.label for e in test_set])
    results = {}
    print(f"probe accuracy on {len(test_set)} held-out texts, mean ± sd over seeds {args.seeds}")
    print("| features | " + " | ".join(f"{size} labels" for size in sizes) + " |")
    print("| --- |" + " --- |" * len(sizes))
    for name, matrix in features.items():
        results[name] = {}
        cells = []
        for size in sizes:
            scores = []
            for seed in seeds:
                examples = train_sets[size, seed]
                scores.append(probe_accuracy(matrix[[row_of[e.text_a] for e in examples]],
                                             np.array([e.label for e in examples]), matrix[test_rows], test_y, seed))
            results[name][size] = scores
            cells.append(f"{np.mean(scores):.3f} ± {np.std(scores):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    if args.output:
        args.output.write_text(json.dumps({"checkpoints": checkpoints, "accuracy": results}, indent=1) + "\n")


if __name__ == "__main__":
    run_cli("frozen_feature_probe.py", main)
