"""Data parallelism on CPU processes: run_pretrain.py on 1 process against 2 (msrun, MindSpore's CPU collective)
at the same global batch, as a user launches them.

    python bench/data_parallel_scaling.py [--layers 4 --hidden 256 --seq 128 --global_batch 16 --steps 30]

Both runs train the same model on the same records (the shipped Wikipedia sample, seq --seq) for --steps steps;
the step time is the median of metrics.jsonl's seconds_per_step after the first 5 steps (compilation and warm-up)
of rank 0. Printed: both step times, the speed-up (1-process time / 2-process time) and the efficiency (speed-up
/ 2). On one machine the two processes share its cores, so this measures the collective's and the launcher's
overhead more than scaling; across machines each rank would have its own.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("layers", 4), ("hidden", 256), ("seq", 128), ("global_batch", 16), ("steps", 30)):
        parser.add_argument(f"--{name}", type=int, default=default)
    return parser.parse_args()


def run_config(directory: Path, args: argparse.Namespace, vocab_size: int, batch_size: int) -> Path:
    from src.config import load_bert_config, save_bert_config
    model = save_bert_config(load_bert_config("base", vocab_size=vocab_size, num_hidden_layers=args.layers,
                                              hidden_size=args.hidden, num_attention_heads=max(args.hidden // 64, 1),
                                              intermediate_size=4 * args.hidden, seq_length=args.seq,
                                              compute_type="float32"), directory / f"model_{batch_size}.yaml")
    values = yaml.safe_load((ROOT / "configs" / "pretrain_tiny.yaml").read_text())
    values.update(bert_network=str(model), batch_size=batch_size)
    path = directory / f"run_{batch_size}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def step_seconds(metrics: Path) -> float:
    times = [json.loads(line)["seconds_per_step"] for line in metrics.read_text().splitlines()]
    return statistics.median(times[5:])


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from bench.input_pipeline import make_records
    python = Path(sys.executable)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        records, _, vocab_size = make_records(scratch, args.seq)
        flags = ["--train_steps", str(args.steps), "--save_checkpoint_steps", str(args.steps)]

        one = scratch / "one"
        subprocess.run([str(python), str(ROOT / "run_pretrain.py"), "--device_target", "CPU", "--data_dir",
                        str(records), "--config", str(run_config(scratch, args, vocab_size, args.global_batch)),
                        "--save_checkpoint_path", str(one), "--output_dir", str(one), *flags],
                       check=True, capture_output=True, env={**os.environ, "GLOG_v": "3"})

        two = scratch / "two"
        two.mkdir()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "GLOG_v": "3", "DEVICE_TARGET": "CPU", "MASTER_PORT": str(port),
               "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"}
        subprocess.run(["bash", str(ROOT / "scripts" / "run_distributed_pretrain_for_gpu.sh"), "2", "1", str(records),
                        "--config", str(run_config(scratch, args, vocab_size, args.global_batch // 2)), *flags],
                       cwd=two, env=env, check=True, capture_output=True)
        last = f"checkpoint_bert-1_{args.steps}.ckpt"
        for _ in range(3600):  # the launcher returns at once; msrun runs in the background
            if all((two / f"ckpt_{rank}" / last).exists() for rank in (0, 1)):
                break
            time.sleep(0.5)
        else:
            sys.exit(f"the 2-process run did not finish: see {two / 'pretraining_log.txt'}")
        single, double = step_seconds(one / "metrics.jsonl"), step_seconds(two / "metrics.jsonl")
    speedup = single / double
    print(f"{args.layers} x {args.hidden}, seq {args.seq}, global batch {args.global_batch}, {args.steps} steps, "
          f"fp32, {os.cpu_count()} CPU cores")
    print(f"  1 process, batch {args.global_batch}:            {single:.3f} s/step")
    print(f"  2 processes (msrun), batch {args.global_batch // 2} each: {double:.3f} s/step")
    print(f"  speed-up {speedup:.2f}, efficiency {speedup / 2:.2f}")


if __name__ == "__main__":
    main()
