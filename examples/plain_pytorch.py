"""Measure a plain PyTorch training loop with ``EnergyMeter`` and phases.

No Trainer here: a hand-written loop fine-tunes the tiny BERT of ``bertwatt.integrations.demo``
(offline, generated data). ``with EnergyMeter() as meter`` measures the whole block;
``meter.phase("train")`` and ``meter.phase("eval")`` split it; the per-example figures are the
phase energies divided by the examples each phase processed.

    python examples/plain_pytorch.py            # about 20 s on 2 CPU cores
    python examples/plain_pytorch.py --quick    # a few seconds (CI)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a reduced run of a few seconds")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: a model this small gains little from more, and spinning "
        "OpenMP threads slow down many times over when anything else runs on a 2-core machine)",
    )
    parser.add_argument("--zone", default=os.environ.get("BERTWATT_ZONE") or None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))

    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    from bertwatt import EnergyMeter
    from bertwatt.integrations.demo import encode, sentences, tiny_bert, tokenizer

    torch.manual_seed(0)
    tok = tokenizer()
    train = encode(tok, sentences(200 if args.quick else 2000, seed=0))
    dev = encode(tok, sentences(64 if args.quick else 400, seed=1))
    collate = DataCollatorWithPadding(tok)

    def loader(examples: Any, batch_size: int, shuffle: bool = False) -> DataLoader[Any]:
        # a list of examples is a map-style data set (__len__ and __getitem__)
        return DataLoader(examples, batch_size=batch_size, shuffle=shuffle, collate_fn=collate)

    train_loader, dev_loader = loader(train, 16, shuffle=True), loader(dev, 64)
    model = tiny_bert(len(tok))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
    epochs = 1 if args.quick else 2
    seen = {"train": 0, "eval": 0}

    with EnergyMeter(carbon=args.zone) as meter:
        for _ in range(epochs):
            with meter.phase("train"):
                model.train()
                for batch in train_loader:
                    loss = model(**batch).loss
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                    seen["train"] += len(batch["labels"])
            with meter.phase("eval"):
                model.eval()
                correct = 0
                with torch.inference_mode():
                    for batch in dev_loader:
                        logits = model(**batch).logits
                        correct += int((logits.argmax(-1) == batch["labels"]).sum())
                        seen["eval"] += len(batch["labels"])
            print(f"dev accuracy: {correct / len(dev):.3f}", file=sys.stderr)

    report = meter.report
    print(report.summary())
    print()
    for name in ("train", "eval"):
        phase = report.phases[name]
        if phase.energy_j is not None and seen[name]:
            print(
                f"{name}: {phase.energy_j:.2f} J over {seen[name]} examples = "
                f"{phase.energy_j / seen[name] * 1e3:.2f} mJ per example "
                f"({'measured' if report.measured else 'ESTIMATED'})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
