"""The padding sweep of docs/study.md: one tiny fine-tune, four ways of padding, one report each.

The same tiny BERT fine-tunes on the same generated sentences with every example padded to 32,
64 and 128 tokens (``max_length``; 32 truncates the longest sentences) and with dynamic padding
(each batch padded to its longest example), ``--repeats`` times each, offline. Each run is
measured with :func:`bertwatt.measure_finetune` and written to ``OUT/<variant>-<repeat>.json``.
Fit energy against the work done with::

    python examples/padding_sweep.py runs/
    bertwatt fit runs/*.json --phase train

Energy follows the tokens processed (padding included) and the time, not the real tokens.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

#: name -> (padding, max_length)
VARIANTS: dict[str, tuple[Literal["dynamic", "max_length"], int]] = {
    "pad32": ("max_length", 32),
    "pad64": ("max_length", 64),
    "pad128": ("max_length", 128),
    "dynamic": ("dynamic", 128),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="directory for the reports")
    parser.add_argument("--train-examples", type=int, default=1200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.1, help="sampling period (s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))

    from bertwatt.integrations.demo import build_trainer
    from bertwatt.integrations.transformers import measure_finetune

    args.out.mkdir(parents=True, exist_ok=True)
    # Warm up first, so that the first run measured does not carry the process's start-up costs.
    with tempfile.TemporaryDirectory(prefix="bertwatt-sweep-") as tmp:
        build_trainer(tmp, train_examples=32, eval_examples=8, logging_steps=1000).train()
    for repeat in range(args.repeats):
        for name, (padding, max_length) in VARIANTS.items():
            options: dict[str, Any] = {"logging_steps": 1000}
            with tempfile.TemporaryDirectory(prefix="bertwatt-sweep-") as tmp:
                trainer = build_trainer(
                    tmp,
                    train_examples=args.train_examples,
                    eval_examples=64,
                    padding=padding,
                    max_length=max_length,
                    seed=repeat,
                    **options,
                )
                path = args.out / f"{name}-{repeat}.json"
                report = measure_finetune(trainer, output=path, interval_s=args.interval)
            print(
                f"{path}: {report.duration_s:.1f} s, {report.tokens_padded:,} tokens processed, "
                f"{report.tokens_nonpadding:,} non-padding",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
