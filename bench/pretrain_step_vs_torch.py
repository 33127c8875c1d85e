"""Pretraining step speed of this project's cell against HuggingFace BertForPreTraining in PyTorch eager, in one
process, alternating rounds so machine noise hits both alike. Prints steps/s of each and their ratio.

    python bench/pretrain_step_vs_torch.py [--layers 4 --hidden 256 --seq 128 --batch 16 --rounds 5 --steps 10]

Needs requirements-dev.txt (torch, transformers). Both sides: same shapes, MLM on 20 gathered positions, fp32,
global-norm clipping; ours with Lamb and the dynamic loss scale on, torch with AdamW.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("layers", 4), ("hidden", 256), ("seq", 128), ("batch", 16), ("rounds", 5), ("steps", 10),
                          ("vocab", 8000), ("predictions", 20)):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()

    import mindspore as ms
    import torch
    from transformers import BertConfig as HFConfig, BertForPreTraining as HFPreTraining

    from src.bert_for_pre_training import BertNetworkWithLoss
    from src.config import BertConfig, LossScaleSettings, OptimizerSettings
    from src.optim import create_optimizer
    from src.train_step import TrainOneStepCell

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    shape = dict(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                 num_attention_heads=args.hidden // 64, intermediate_size=4 * args.hidden,
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    rng = np.random.RandomState(0)
    b, s, p = args.batch, args.seq, args.predictions
    batch = dict(input_ids=rng.randint(5, args.vocab, (b, s)), input_mask=np.ones((b, s)), segment_ids=np.zeros((b, s)),
                 next_sentence_labels=rng.randint(0, 2, (b, 1)),
                 masked_lm_positions=np.stack([rng.choice(s, p, replace=False) for _ in range(b)]),
                 masked_lm_ids=rng.randint(5, args.vocab, (b, p)), masked_lm_weights=np.ones((b, p)))

    network = BertNetworkWithLoss(BertConfig(seq_length=s, **shape))
    optimizer = create_optimizer("Lamb", OptimizerSettings(learning_rate=1e-4, warmup_steps=0),
                                 network.trainable_params(), decay_steps=10000)
    cell = TrainOneStepCell(network, optimizer, LossScaleSettings(65536.0, 2, 1000), 1.0)
    cell.set_train()
    ours_inputs = [ms.Tensor(batch[k].astype(np.float32 if k == "masked_lm_weights" else np.int32)) for k in
                   ("input_ids", "input_mask", "segment_ids", "next_sentence_labels", "masked_lm_positions",
                    "masked_lm_ids", "masked_lm_weights")]

    model = HFPreTraining(HFConfig(max_position_embeddings=512, **shape)).train()
    torch_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    t = {k: torch.tensor(v, dtype=torch.float32 if k == "masked_lm_weights" else torch.long) for k, v in batch.items()}

    def ours_step() -> None:
        cell(*ours_inputs)[0].asnumpy()

    def torch_step() -> None:
        sequence_output, pooled = model.bert(t["input_ids"], t["input_mask"], t["segment_ids"], return_dict=False)[:2]
        gathered = sequence_output[torch.arange(b)[:, None], t["masked_lm_positions"]]
        mlm, nsp = model.cls(gathered, pooled)
        nll = torch.nn.functional.cross_entropy(mlm.reshape(-1, args.vocab), t["masked_lm_ids"].reshape(-1),
                                                reduction="none")
        loss = (nll * t["masked_lm_weights"].reshape(-1)).sum() / (t["masked_lm_weights"].sum() + 1e-5) \
            + torch.nn.functional.cross_entropy(nsp, t["next_sentence_labels"].reshape(-1))
        torch_optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        torch_optimizer.step()

    for step in (ours_step, torch_step):  # compile / warm up
        for _ in range(3):
            step()
    rates = {"ours": [], "torch": []}
    for _ in range(args.rounds):
        for name, step in (("ours", ours_step), ("torch", torch_step)):
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps / (time.perf_counter() - start))
    ours, reference = statistics.median(rates["ours"]), statistics.median(rates["torch"])
    print(f"shape {args.layers}x{args.hidden}, seq {s}, batch {b}, {p} predictions, fp32, CPU threads "
          f"{torch.get_num_threads()}")
    print(f"ours (MindSpore graph, Lamb, loss scale): {ours:.2f} steps/s")
    print(f"torch eager (HF BertForPreTraining, AdamW): {reference:.2f} steps/s")
    print(f"ratio ours / torch: {ours / reference:.2f}")


if __name__ == "__main__":
    main()
