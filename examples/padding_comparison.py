"""Padding to max length vs dynamic padding (and grouping by length): tokens and energy.

The same tiny BERT fine-tunes on the same generated sentences three times, offline:

1. ``max_length``: every example padded to ``--max-length`` tokens when tokenised;
2. ``dynamic``: each batch padded to its longest example (``DataCollatorWithPadding``);
3. ``dynamic+grouped``: dynamic padding with batches of similar lengths
   (``train_sampling_strategy="group_by_length"``).

Each run is measured with :func:`bertwatt.measure_finetune`. The table shows the tokens processed
(padding included), the non-padding tokens (identical in all three: same data), the padding share,
and the training energy, in total and per non-padding token. The model sees the same real tokens
in every run; the difference is computation spent on padding.

    python examples/padding_comparison.py            # about a minute on 2 CPU cores
    python examples/padding_comparison.py --quick    # a few seconds (CI)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any, Literal

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

#: name -> (padding, extra TrainingArguments)
VARIANTS: dict[str, tuple[Literal["dynamic", "max_length"], dict[str, Any]]] = {
    "max_length": ("max_length", {}),
    "dynamic": ("dynamic", {}),
    "dynamic+grouped": ("dynamic", {"train_sampling_strategy": "group_by_length"}),
}


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
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--train-examples", type=int, default=None)
    parser.add_argument("--zone", default=os.environ.get("BERTWATT_ZONE") or None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))

    from bertwatt.integrations.demo import build_trainer
    from bertwatt.integrations.render import format_small_j
    from bertwatt.integrations.transformers import measure_finetune

    n = args.train_examples or (96 if args.quick else 2500)
    # Warm up first (thread pools, allocator, kernel selection), so that the first variant
    # measured does not carry the process's start-up costs.
    with tempfile.TemporaryDirectory(prefix="bertwatt-padding-") as out:
        build_trainer(out, train_examples=32, eval_examples=8, logging_steps=1000).train()
    results = {}
    for name, (padding, options) in VARIANTS.items():
        with tempfile.TemporaryDirectory(prefix="bertwatt-padding-") as out:
            trainer = build_trainer(
                out,
                train_examples=n,
                eval_examples=32 if args.quick else 400,
                padding=padding,
                max_length=args.max_length,
                num_train_epochs=1 if args.quick else 2,
                logging_steps=1000,
                **options,
            )
            report = measure_finetune(trainer, output=False, carbon=args.zone)
        results[name] = report
        print(f"{name}: done in {report.duration_s:.1f} s", file=sys.stderr)

    first = next(iter(results.values()))
    print(f"\nfigures are {first.figures}\n")
    header = (
        f"{'variant':<17} {'tokens processed':>17} {'non-padding':>12} {'padding':>8} "
        f"{'train energy':>13} {'J/non-pad token':>16} {'train time':>11} {'eval loss':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        train = r.phase_metrics["train"]
        loss = r.extra.get("eval_metrics", {}).get("eval_loss")
        print(
            f"{name:<17} {r.tokens_padded:>17,} {r.tokens_nonpadding:>12,} "
            f"{(r.padding_share or 0):>8.1%} {format_small_j(train.energy_j):>13} "
            f"{format_small_j(train.j_per_token_nonpadding):>16} {train.duration_s:>9.2f} s "
            f"{(f'{loss:.4f}' if isinstance(loss, float) else '-'):>10}"
        )
    base = results["max_length"].phase_metrics["train"]
    print()
    for name in ("dynamic", "dynamic+grouped"):
        other = results[name].phase_metrics["train"]
        tokens = results["max_length"].tokens_padded / max(1, results[name].tokens_padded)
        line = f"max_length processed {tokens:.2f}x the tokens of {name}"
        if base.energy_j and other.energy_j:
            line += f" and used {base.energy_j / other.energy_j:.2f}x its training energy"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
