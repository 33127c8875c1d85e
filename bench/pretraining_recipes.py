"""Pretraining recipes per minute of compute: the demonstration's tiny NEZHA pretrained under the zoo's
recipe, each budget option alone and all of them together, for the same wall-clock budget, scored by held-out MLM
accuracy against minutes of training.

    python bench/pretraining_recipes.py [--minutes 10] [--recipes zoo,mlm,...] [--points 6] [--output_dir DIR]

Data, as scripts/pretrain_finetune_demo.sh makes it: tools/split_labeled_text.py on People's Daily and the reviews
(their test examples held out), whose pretraining text is split once more: the last --holdout_fraction of each
file's documents is the evaluation text, never trained on (nor seen by the vocab); the rest is the training text,
from which tools/create_vocab.py makes a 6,000-token WordPiece vocab (and the nezha-tiny model.yaml sized to it) and
tools/create_pretraining_data.py the training records (seq 64, whole-word masking with jieba, dupe_factor 2,
--max_predictions_per_seq 10 at 15%, following the rate above it). The evaluation records are the held-out text at
15% masking (dupe_factor 1), one set per record kind: with NSP pairs for the runs that train on NSP records, and
without (--next_sentence false) for the MLM-only runs, so every recipe is scored on the same text, at the same
masking rate, in the format it trained on.

Recipes (docs/pretraining.md#budget-recipes), each a run config derived from configs/pretrain_demo.yaml:
  zoo        MLM + NSP records at 15%, AdamW 1e-3, 150 warmup steps, polynomial decay, dropout on
  mlm        MLM-only records (--next_sentence false), objective: mlm
  mask40     MLM + NSP records at 40% masking
  no_dropout dropout: false (configs/pretrain_demo.yaml as it is: the demonstration's recipe)
  linear     lr_schedule: linear, warmup_proportion: 0.06
  cosine     lr_schedule: cosine, warmup_proportion: 0.06
  all        MLM-only records at 40%, objective: mlm, dropout: false, lr_schedule: linear, warmup_proportion: 0.06

Every recipe runs run_pretrain.py --train_minutes --minutes (so every schedule, the zoo's included, ends at the
budget), one run after another in a child process, never two at once. A short calibration run of the first recipe
(12 steps, no checkpoint) gives the step time from which the checkpoint interval is set, so that each run saves
about 3 checkpoints per --points; after the run, the saved checkpoint nearest each k/points of the run's steps
(k = 1..points, the last step always) is scored with pretrain_eval.py. A point's minutes are the run's
metrics.jsonl seconds_per_step cumulated up to its step, with the first step (graph compilation) and each step
after a checkpoint save (the write) counted at the run's median step time, as --train_minutes leaves compilation and
checkpoint writing out of the budget.

Written to --output_dir: recipes.json (every recipe's points, the settings, the host, the commit), recipes.png (held-
out MLM accuracy against minutes, one curve a recipe), and per recipe its run config, log, metrics and evaluation
JSON. Printed: a table of each recipe's final held-out MLM accuracy and its ratio to the zoo's at the end of the
budget and at half of it (each curve interpolated linearly in minutes). Ratios compare only within one run of this
script (bench/RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BASE_CONFIG = ROOT / "configs" / "pretrain_demo.yaml"
EVAL_MASKING = 0.15
SAVES_PER_POINT = 3
CALIBRATION_STEPS = 12
CALIBRATION_SKIPPED = 2  # compilation and warm-up, not timed


@dataclass(frozen=True)
class Recipe:
    next_sentence: bool  # the records: with NSP pairs, or MLM only
    masked_lm_prob: float
    config: dict = field(default_factory=dict)  # run config keys over configs/pretrain_demo.yaml
    about: str = ""

    @property
    def records(self) -> str:
        return f"{'nsp' if self.next_sentence else 'mlm'}{round(self.masked_lm_prob * 100)}"

    @property
    def eval_records(self) -> str:
        return f"{'nsp' if self.next_sentence else 'mlm'}{round(EVAL_MASKING * 100)}"


COOLDOWN = {"warmup_proportion": 0.06}  # Izsak et al. 2021
ZOO = {"dropout": True}  # configs/pretrain_demo.yaml turns it off, the one option that paid in this bench
RECIPES = {
    "zoo": Recipe(True, 0.15, ZOO, "MLM + NSP, 15%, dropout, polynomial decay"),
    "mlm": Recipe(False, 0.15, {**ZOO, "objective": "mlm"}, "MLM only"),
    "mask40": Recipe(True, 0.4, ZOO, "40% masking"),
    "no_dropout": Recipe(True, 0.15, {"dropout": False}, "dropout off (the demonstration's)"),
    "linear": Recipe(True, 0.15, {**ZOO, "lr_schedule": "linear", **COOLDOWN}, "6% warmup, linear cooldown"),
    "cosine": Recipe(True, 0.15, {**ZOO, "lr_schedule": "cosine", **COOLDOWN}, "6% warmup, cosine cooldown"),
    "all": Recipe(False, 0.4, {"objective": "mlm", "dropout": False, "lr_schedule": "linear", **COOLDOWN},
                  "MLM only, 40%, dropout off, 6% warmup, linear cooldown"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="each recipe's training budget (--train_minutes)")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--points", type=int, default=6, help="checkpoints scored per recipe, evenly spaced")
    parser.add_argument("--holdout_fraction", type=float, default=0.05,
                        help="the last share of each pretraining text's documents, held out for evaluation")
    parser.add_argument("--output_dir", default=str(ROOT / "output" / "bench_pretraining_recipes"))
    parser.add_argument("--reuse_data", choices=("true", "false"), default="true",
                        help="keep the splits, vocab and records of an earlier run made with the same settings")
    parser.add_argument("--keep_checkpoints", choices=("true", "false"), default="false",
                        help="keep every checkpoint (default: only the scored ones)")
    args = parser.parse_args()
    args.recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    unknown = [name for name in args.recipes if name not in RECIPES]
    if unknown or not args.recipes:
        parser.error(f"--recipes: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(RECIPES)}")
    if not args.minutes > 0 or args.points < 1 or not 0 < args.holdout_fraction < 1:
        parser.error("--minutes must be above 0, --points at least 1, --holdout_fraction in (0, 1)")
    return args


def run(command: list[str], log: Path | None = None, echo: re.Pattern | None = None) -> str:
    """Runs command (a child process, GLOG errors only), its output to log; echoes the lines echo matches; returns
    the output. Raises with the output's tail when it fails."""
    # PYTHONPATH: this checkout's src/ and tools/, whichever checkout the environment's editable install names
    env = {**os.environ, "GLOG_v": "3", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    lines = []
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as child:
        for line in child.stdout:
            lines.append(line)
            if echo is not None and echo.search(line):
                print(f"    {line.rstrip()}", flush=True)
    output = "".join(lines)
    if log is not None:
        log.write_text(output, encoding="utf-8")
    if child.returncode:
        raise SystemExit(f"failed ({child.returncode}): {' '.join(command)}\n{''.join(lines[-30:])}")
    return output


def tool(name: str, *flags: str, log: Path | None = None, echo: re.Pattern | None = None) -> str:
    return run([sys.executable, str(ROOT / name), *flags], log, echo)


def split_documents(path: Path, fraction: float, train: Path, heldout: Path) -> tuple[int, int]:
    """Writes the first documents (blank-line separated) of path to train, the last `fraction` to heldout."""
    documents = [block.strip("\n") for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))
                 if block.strip()]
    held = max(1, math.ceil(len(documents) * fraction))
    train.write_text("\n\n".join(documents[:-held]) + "\n", encoding="utf-8")
    heldout.write_text("\n\n".join(documents[-held:]) + "\n", encoding="utf-8")
    return len(documents) - held, held


def records_flags(next_sentence: bool, masked_lm_prob: float) -> list[str]:
    flags = ["--max_seq_length", "64", "--do_whole_word_mask", "true", "--chinese_word_segmentation", "true",
             "--masked_lm_prob", str(masked_lm_prob), "--next_sentence", str(next_sentence).lower()]
    if masked_lm_prob <= 0.15:  # the demonstration's; above 0.15 the tool's default follows the rate
        flags += ["--max_predictions_per_seq", "10"]
    return flags


def prepare_data(args: argparse.Namespace, recipes: list[Recipe], data: Path) -> dict:
    """Splits, held-out text, vocab, and the training and evaluation records the recipes need (reused when made
    earlier with the same settings). Returns the data description."""
    settings = {"holdout_fraction": args.holdout_fraction, "records": sorted({r.records for r in recipes}),
                "eval_records": sorted({r.eval_records for r in recipes})}
    stamp = data / "settings.json"
    if args.reuse_data == "true" and stamp.is_file():
        made = json.loads(stamp.read_text(encoding="utf-8"))
        if made["settings"]["holdout_fraction"] == args.holdout_fraction and \
                set(settings["records"]) <= set(made["settings"]["records"]) and \
                set(settings["eval_records"]) <= set(made["settings"]["eval_records"]):
            print(f"data: reusing {data} (made earlier with the same settings)", flush=True)
            return made
    if data.exists():
        shutil.rmtree(data)
    (data / "text").mkdir(parents=True)
    started = time.perf_counter()
    split = ["--train_sizes", "100,500,2000", "--seeds", "0,1,2", "--overwrite", "true"]
    tool("tools/split_labeled_text.py", "--input_format", "peoples_daily", "--input_file",
         str(ROOT / "data" / "peoples_daily_199801.txt.xz"), "--output_dir", str(data / "ner_splits"),
         "--test_size", "1000", *split)
    tool("tools/split_labeled_text.py", "--input_format", "label_text", "--input_file",
         str(ROOT / "data" / "chinese_reviews.tsv.xz"), "--output_dir", str(data / "sentiment_splits"),
         "--test_size", "2000", *split)
    documents = {}
    train_files, heldout_files = [], []
    for task in ("ner", "sentiment"):
        train, heldout = data / "text" / f"train_{task}.txt", data / "text" / f"heldout_{task}.txt"
        documents[task] = dict(zip(("train", "heldout"), split_documents(
            data / f"{task}_splits" / "pretrain_text.txt", args.holdout_fraction, train, heldout)))
        train_files.append(str(train))
        heldout_files.append(str(heldout))
    tool("tools/create_vocab.py", "--input_file", ",".join(train_files), "--output_dir", str(data / "vocab"),
         "--vocab_size", "6000", "--config", "nezha-tiny", "--overwrite", "true")
    vocab = str(data / "vocab" / "vocab.txt")
    for kind in settings["records"]:
        print(f"data: training records {kind}", flush=True)
        tool("tools/create_pretraining_data.py", "--input_file", ",".join(train_files), "--output_dir",
             str(data / f"records_{kind}"), "--vocab_file", vocab, "--dupe_factor", "2", "--processes", "2",
             "--overwrite", "true", *records_flags(kind.startswith("nsp"), int(kind[3:]) / 100))
    for kind in settings["eval_records"]:
        print(f"data: held-out evaluation records {kind}", flush=True)
        tool("tools/create_pretraining_data.py", "--input_file", ",".join(heldout_files), "--output_dir",
             str(data / f"eval_{kind}"), "--vocab_file", vocab, "--dupe_factor", "1", "--processes", "1",
             "--overwrite", "true", *records_flags(kind.startswith("nsp"), int(kind[3:]) / 100))
    made = {"settings": settings, "documents": documents, "seconds": round(time.perf_counter() - started, 1)}
    stamp.write_text(json.dumps(made, indent=2) + "\n", encoding="utf-8")
    print(f"data: {documents} documents (train / held out) in {made['seconds']:.0f} s", flush=True)
    return made


def write_config(recipe: Recipe, path: Path) -> Path:
    values = yaml.safe_load(BASE_CONFIG.read_text(encoding="utf-8"))
    values.update(recipe.config)
    path.write_text(f"# bench/pretraining_recipes.py: {BASE_CONFIG.relative_to(ROOT)} with {recipe.config}\n"
                    + yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


def read_metrics(directory: Path) -> list[dict]:
    with open(directory / "metrics.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def pretrain_flags(config: Path, model: Path, records: Path, output: Path) -> list[str]:
    return ["--device_target", "CPU", "--config", str(config), "--bert_network", str(model), "--data_dir",
            str(records), "--enable_data_sink", "true", "--output_dir", str(output)]


def calibrate(recipe: Recipe, data: Path, work: Path) -> float:
    """Median seconds a step of recipe after compilation, from a short run without checkpoints."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    config = write_config(recipe, work / "config.yaml")
    tool("run_pretrain.py", *pretrain_flags(config, data / "vocab" / "model.yaml", data / f"records_{recipe.records}",
                                            work), "--train_steps", str(CALIBRATION_STEPS),
         "--enable_save_ckpt", "false", log=work / "stdout.txt")
    times = [row["seconds_per_step"] for row in read_metrics(work)[CALIBRATION_SKIPPED:]]
    return statistics.median(times)


def step_of(checkpoint: Path) -> int:
    return int(re.search(r"_(\d+)\.ckpt$", checkpoint.name).group(1))


def training_minutes(metrics: list[dict], saved_steps: set[int]) -> dict[int, float]:
    """Each step's cumulated training time in minutes: metrics' seconds_per_step, with the first step (graph
    compilation) and each step after a checkpoint save (the write) at the run's median step time."""
    median = statistics.median(row["seconds_per_step"] for row in metrics)
    total, minutes = 0.0, {}
    for index, row in enumerate(metrics):
        seconds = median if index == 0 or row["step"] - 1 in saved_steps else row["seconds_per_step"]
        total += seconds
        minutes[row["step"]] = total / 60.0
    return minutes


def pretrain_and_score(name: str, recipe: Recipe, args: argparse.Namespace, data: Path, save_every: int,
                       work: Path) -> dict:
    if work.exists():
        shutil.rmtree(work)
    (work / "eval").mkdir(parents=True)
    config = write_config(recipe, work / "config.yaml")
    model = data / "vocab" / "model.yaml"
    started = time.perf_counter()
    output = tool("run_pretrain.py", *pretrain_flags(config, model, data / f"records_{recipe.records}", work),
                  "--train_minutes", f"{args.minutes:g}", "--save_checkpoint_steps", str(save_every),
                  "--save_checkpoint_num", "1000000", "--save_checkpoint_path", str(work / "ckpt"),
                  log=work / "stdout.txt", echo=re.compile(r"^--train_minutes|^progress: "))
    run_seconds = time.perf_counter() - started
    found = re.search(r"-> (\d+) steps", output)
    metrics = read_metrics(work)
    total_steps = int(found.group(1)) if found else metrics[-1]["step"]
    checkpoints = {step_of(path): path for path in (work / "ckpt").rglob("*.ckpt")}  # in ckpt/ckpt_0/
    if not checkpoints:
        raise SystemExit(f"{name}: run_pretrain.py wrote no checkpoint in {work / 'ckpt'}")
    minutes = training_minutes(metrics, set(checkpoints))
    chosen = sorted({min(checkpoints, key=lambda step, k=k: abs(step - k * total_steps / args.points))
                     for k in range(1, args.points)} | {max(checkpoints)})
    points = []
    for step in chosen:
        result = work / "eval" / f"step_{step}.json"
        tool("pretrain_eval.py", "--data_dir", str(data / f"eval_{recipe.eval_records}"), "--load_checkpoint_path",
             str(checkpoints[step]), "--config", str(config), "--bert_network", str(model), "--device_target", "CPU",
             "--output_file", str(result))
        figures = json.loads(result.read_text(encoding="utf-8"))
        loss = next(row["loss"] for row in metrics if row["step"] == step)
        points.append({"step": step, "minutes": round(minutes[step], 4),
                       "budget_fraction": round(step / total_steps, 4),
                       "mlm_accuracy": figures["mlm_accuracy"], "train_loss": loss,
                       "most_frequent_token_accuracy": figures["most_frequent_token_accuracy"],
                       "masked_tokens": figures["masked_tokens"]})
        print(f"    step {step:6d} ({minutes[step]:6.2f} min): held-out MLM accuracy {figures['mlm_accuracy']:.4f}",
              flush=True)
    if args.keep_checkpoints == "false":
        for step, path in checkpoints.items():
            if step not in chosen:
                path.unlink()
    return {"about": recipe.about, "records": recipe.records, "eval_records": recipe.eval_records,
            "config": recipe.config, "steps": total_steps, "save_checkpoint_steps": save_every,
            "median_seconds_per_step": statistics.median(row["seconds_per_step"] for row in metrics),
            "run_wall_seconds": round(run_seconds, 1), "points": points}


def accuracy_at(points: list[dict], minutes: float) -> float | None:
    """The curve's MLM accuracy at `minutes`, linear between points (the last point beyond it); None before the
    first point."""
    if not points or minutes < points[0]["minutes"]:
        return None
    for before, after in zip(points, points[1:]):
        if before["minutes"] <= minutes <= after["minutes"]:
            share = (minutes - before["minutes"]) / max(after["minutes"] - before["minutes"], 1e-12)
            return before["mlm_accuracy"] + share * (after["mlm_accuracy"] - before["mlm_accuracy"])
    return points[-1]["mlm_accuracy"]


def host() -> dict:
    text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace") if Path("/proc/cpuinfo").is_file() \
        else ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    flags = set(flags.group(1).split()) if flags else set()
    return {"cpu": model.group(1).strip() if model else platform.processor(),
            "logical_cpus": len(re.findall(r"^processor\s*:", text, re.MULTILINE)) or os.cpu_count(),
            "instruction_sets": [name for name in ("avx2", "avx512f", "amx_tile") if name in flags],
            "python": platform.python_version()}


def commit() -> str:
    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "HEAD") or "unknown"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def plot(results: dict, minutes: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, result in results.items():
        axes.plot([p["minutes"] for p in result["points"]], [p["mlm_accuracy"] for p in result["points"]],
                  marker="o", label=f"{name}: {result['about']}")
    baseline = next(iter(results.values()))["points"][-1]["most_frequent_token_accuracy"]
    axes.axhline(baseline, color="grey", linestyle=":", label="most frequent token")
    axes.set_xlim(0, minutes * 1.02)
    axes.set_xlabel("minutes of training (metrics.jsonl seconds_per_step, cumulated)")
    axes.set_ylabel("held-out MLM accuracy (15% masking)")
    axes.set_title(f"Tiny NEZHA pretraining recipes, {minutes:g}-minute budget each")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    args = parse_args()
    output = Path(args.output_dir).resolve()
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    recipes = {name: RECIPES[name] for name in args.recipes}
    data = output / "data"
    made = prepare_data(args, list(recipes.values()), data)
    first = next(iter(recipes))
    seconds = calibrate(recipes[first], data, output / "calibration")
    expected = 60.0 * args.minutes / seconds
    save_every = max(1, int(expected // (args.points * SAVES_PER_POINT)))
    print(f"calibration ({first}): {seconds:.4f} s a step -> about {expected:.0f} steps in {args.minutes:g} min; "
          f"a checkpoint every {save_every} steps", flush=True)
    results = {}
    for name, recipe in recipes.items():
        print(f"recipe {name}: {recipe.about}; records {recipe.records}, scored on held-out {recipe.eval_records}",
              flush=True)
        results[name] = pretrain_and_score(name, recipe, args, data, save_every, output / "runs" / name)
    summary = {"settings": {"minutes": args.minutes, "points": args.points, "holdout_fraction": args.holdout_fraction,
                            "eval_masked_lm_prob": EVAL_MASKING, "base_config": str(BASE_CONFIG.relative_to(ROOT)),
                            "model": "nezha-tiny, vocab 6000 (tools/create_vocab.py on the training text)",
                            "command": " ".join([Path(sys.executable).name, *sys.argv])},
               "host": host(), "commit": commit(), "data": made, "recipes": results,
               "total_seconds": round(time.perf_counter() - started, 1)}
    zoo = results.get("zoo")
    rows = []
    for name, result in results.items():
        final = result["points"][-1]["mlm_accuracy"]
        end_ratio = half_ratio = None
        if zoo:
            end_ratio = final / zoo["points"][-1]["mlm_accuracy"]
            mine, zoos = (accuracy_at(r["points"], args.minutes / 2) for r in (result, zoo))
            half_ratio = mine / zoos if mine is not None and zoos else None
        result["ratio_to_zoo"] = {"end": end_ratio, "half": half_ratio}
        rows.append((name, result["steps"], result["points"][-1]["minutes"], final, end_ratio, half_ratio))
    (output / "recipes.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plot(results, args.minutes, output / "recipes.png")
    print(f"\n{args.minutes:g} minutes a recipe, {summary['host']['cpu']} ({summary['host']['logical_cpus']} CPUs), "
          f"commit {summary['commit']}; held-out MLM accuracy at 15% masking")
    print(f"  {'recipe':12s} {'steps':>6s} {'minutes':>7s} {'final MLM acc':>13s} {'/ zoo, end':>10s} "
          f"{'/ zoo, half':>11s}")

    def ratio(value: float | None) -> str:
        return f"{value:.3f}" if value is not None else "-"
    for name, steps, minutes, final, end_ratio, half_ratio in rows:
        print(f"  {name:12s} {steps:6d} {minutes:7.2f} {final:13.4f} {ratio(end_ratio):>10s} {ratio(half_ratio):>11s}")
    print(f"wrote {output / 'recipes.json'} and {output / 'recipes.png'} ({summary['total_seconds'] / 60:.1f} min "
          f"in all)")


if __name__ == "__main__":
    main()
