"""BERT / NEZHA pretraining (masked LM + next sentence prediction), flags as the MindSpore model zoo's.

    python run_pretrain.py --data_dir records/ --config configs/pretrain.yaml --device_target GPU

--train_minutes M (instead of --train_steps / --epoch_size) sets the run's length, and so its learning-rate
schedule, from a time budget, as Izsak et al. (2021) do: after the checks, a probe train cell around the network
(the run's optimizer, loss scale, accumulation, sinking) trains 2 steps, which compile the graphs and are not timed,
then 8 timed steps on the run's first batches (each count rounded up to whole sinks and accumulation windows);
seconds_per_step = (clock at the end of the last step - clock at the end of step 2) / 8, and the run trains
floor(60 * M / seconds_per_step) steps (rounded down to whole sinks), with warmup and cooldown over them. The
probe's weight changes are undone and the run starts at step 1 from the same weights, with its own compilation
(not counted in M, nor are the record checks before it, nor the log and checkpoint writing). The step count is
printed; a resumed run passes it as --train_steps (a resume refuses --train_minutes: its schedule is fixed).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import mindspore as ms

from src.cli import ArgumentParser, check_minimums, run_cli
from src.config import load_bert_config, load_run_config, str2bool
from src.data.datasets import RecordSource, check_records, record_batches
from src.files.paths import check_apart
from src.files.staging import read_manifest
from src.model.pretraining import BertNetworkWithLoss
from src.train.distributed import compute_type_for_device, setup_device
from src.train.loop import CheckpointPolicy, sinks, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description="BERT / NEZHA pretraining")
    parser.add_argument("--distribute", type=str2bool, default=False, help="data-parallel run: true|false")
    parser.add_argument("--epoch_size", type=int, default=1)
    parser.add_argument("--device_num", type=int, default=1, help="taken from the collective when distributed")
    parser.add_argument("--device_id", type=int, default=0)
    parser.add_argument("--device_target", choices=("Ascend", "GPU", "CPU"), default=None,
                        help="default: the best device present (Ascend, then GPU, then CPU)")
    parser.add_argument("--enable_save_ckpt", type=str2bool, default=True)
    parser.add_argument("--enable_lossscale", type=str2bool, default=True)
    parser.add_argument("--do_shuffle", type=str2bool, default=True)
    parser.add_argument("--enable_data_sink", type=str2bool, default=True)
    parser.add_argument("--data_sink_steps", type=int, default=1)
    parser.add_argument("--accumulation_steps", type=int, default=1)
    parser.add_argument("--save_checkpoint_path", default="", help="default: ./ckpt_{rank}")
    parser.add_argument("--load_checkpoint_path", default="",
                        help="a checkpoint of this script to resume from, or a directory of them (newest is "
                             "used), or weights (converted) to start from")
    parser.add_argument("--save_checkpoint_steps", type=int, default=1000)
    parser.add_argument("--save_checkpoint_num", type=int, default=1)
    parser.add_argument("--train_steps", type=int, default=-1, help="stop after this many steps (-1: epochs)")
    parser.add_argument("--train_minutes", type=float, default=0,
                        help="train as many steps as fit in M minutes, measured at the start (see the module "
                             "docstring); the schedule ends there. 0: off")
    parser.add_argument("--data_dir", default="")
    parser.add_argument("--schema_dir", default="", help="schema json of TFRecords (optional)")
    parser.add_argument("--dataset_format", choices=("tfrecord", "mindrecord"), default="tfrecord")
    parser.add_argument("--config", default=str(Path(__file__).parent / "configs" / "pretrain.yaml"),
                        help="run config YAML: network preset, batch size, optimizer")
    parser.add_argument("--bert_network", default="",
                        help="model preset or YAML, overriding the config's bert_network")
    parser.add_argument("--output_dir", default=".", help="where train_log.txt and metrics.jsonl go")
    parser.add_argument("--check_only", type=str2bool, default=False,
                        help="check flags, config, records, checkpoint and output places as the run would (for "
                             "--device_num ranks when distributed, without joining a collective), then exit "
                             "without training; the launchers run this before going to the background")
    return parser.parse_args(argv)


def check_objective_fits_records(objective: str, data_dir: str, config: str) -> None:
    """Refuses the NSP term on records whose manifest says they hold no NSP pairs (next_sentence_labels all 0)."""
    manifest = read_manifest(data_dir) if Path(data_dir).is_dir() else None
    if objective == "mlm_nsp" and manifest and manifest.get("settings", {}).get("next_sentence") is False:
        raise ValueError(f"{data_dir} holds records made without NSP pairs (create_pretraining_data.py "
                         f"--next_sentence false, says its manifest.json) but run config {config} trains the NSP "
                         f"term: set objective: mlm in {config}, or re-create the records with --next_sentence true")


def run(args: argparse.Namespace) -> Path | None:
    """Pretrain; returns the last checkpoint written (None when saving is off)."""
    if not args.data_dir:
        raise ValueError("--data_dir is required: the directory of pretraining records "
                         "(tools/create_pretraining_data.py makes them)")
    check_minimums(args, epoch_size=1, accumulation_steps=1, save_checkpoint_steps=1, save_checkpoint_num=1,
                   data_sink_steps=1)
    if args.train_steps == 0 or args.train_steps < -1:
        raise ValueError(f"--train_steps {args.train_steps} is out of range: pass at least 1, or -1 to train "
                         f"--epoch_size epochs")
    if not 0 <= args.train_minutes < float("inf") or (args.train_minutes and args.train_steps != -1):
        raise ValueError(f"--train_minutes {args.train_minutes} is out of range: pass minutes above 0 (0: off), "
                         f"without --train_steps")
    if args.train_minutes and args.distribute:
        raise ValueError("--train_minutes is for one device: data-parallel ranks would each measure their own step "
                         "count; pass --train_steps (a one-device run with --train_minutes prints one)")
    save_dir = Path(args.save_checkpoint_path or ".")
    check_apart({"--output_dir": args.output_dir, "--save_checkpoint_path": save_dir},
                {"--data_dir": args.data_dir, "--schema_dir": args.schema_dir})
    run_config = load_run_config(args.config, bert_network=args.bert_network or None)
    check_objective_fits_records(run_config.objective, args.data_dir, args.config)
    bert_config = run_config.model_config(load_bert_config(run_config.bert_network))
    if args.check_only and args.distribute:  # the launcher's check: rank 0 of --device_num, no collective
        check_minimums(args, device_num=1)
        (rank, _), device_num = setup_device(args.device_target, args.device_id), args.device_num
    else:
        rank, device_num = setup_device(args.device_target, args.device_id, args.distribute)
    ms.set_seed(run_config.seed)
    ms.dataset.config.set_seed(run_config.seed)
    bert_config = compute_type_for_device(bert_config)
    network = BertNetworkWithLoss(bert_config, run_config.objective)
    source = RecordSource(args.data_dir, args.dataset_format, args.schema_dir or None)
    check_records(source, model=bert_config)
    batches = record_batches(source, batch_size=run_config.batch_size, shuffle=args.do_shuffle,
                             shuffle_buffer=run_config.shuffle_buffer, device_num=device_num, rank=rank)
    total_steps = args.train_steps if args.train_steps > 0 else args.epoch_size * batches.per_epoch
    if args.train_steps <= 0 and sinks(args.enable_data_sink) and total_steps > args.data_sink_steps:
        # As the zoo does: whole sinks of data_sink_steps batches; the last partial sink is not trained.
        total_steps -= total_steps % args.data_sink_steps

    checkpoints = CheckpointPolicy(save_dir / f"ckpt_{rank}",
                                   args.save_checkpoint_steps, args.save_checkpoint_num) \
        if args.enable_save_ckpt else None
    # Rank 0 logs to output_dir, the others beside it, so the files of parallel ranks never interleave.
    output_dir = Path(args.output_dir) if rank == 0 else Path(args.output_dir) / f"rank_{rank}"
    return train(network, run_config, batches, total_steps=total_steps, output_dir=output_dir,
                 checkpoints=checkpoints, resume_from=args.load_checkpoint_path,
                 accumulation_steps=args.accumulation_steps, loss_scaling=args.enable_lossscale,
                 data_sink=args.enable_data_sink, sink_steps=args.data_sink_steps, devices=device_num,
                 data_source=f"data_dir {args.data_dir}", check_only=args.check_only,
                 minutes=args.train_minutes or None)


def pretrain(argv: list[str]) -> Path | None:
    checkpoint = run(parse_args(argv))
    if checkpoint:
        print(f"last checkpoint: {checkpoint}")
    return checkpoint


def main(argv: list[str] | None = None) -> Path | None:
    return run_cli("run_pretrain.py", pretrain, argv)


if __name__ == "__main__":
    main()
