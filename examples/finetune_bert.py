"""Fine-tune a small BERT offline and report its energy, per phase and per token.

The default bertwatt job: about a minute on 2 CPU cores, nothing downloaded. A 2-layer BERT
(hidden 128; hidden 64 with --quick) is built from a ``BertConfig``, the tokenizer from a
generated vocabulary, and a sentiment data set of SST-2-like sentences is generated with a seed
(``bertwatt.integrations.demo``). ``Trainer`` fine-tunes it with ``EnergyCallback``, evaluating
after every epoch. The report printed at the end gives the energy per phase, per example, per
token processed (padding included) and per non-padding token, the emissions for a zone, and says
whether each figure was measured (RAPL, NVML) or estimated (the labelled CPU estimate used when
no sensor is readable).

    python examples/finetune_bert.py                 # about a minute
    python examples/finetune_bert.py --zone DE       # emissions for Germany's grid
    python examples/finetune_bert.py --quick         # a few seconds (CI)

Interrupt and resume (the report continues; see docs/huggingface.md, "Resuming a run")::

    python examples/finetune_bert.py --output-dir run --save-steps 50     # Ctrl-C (or kill) it
    python examples/finetune_bert.py --output-dir run --save-steps 50 --resume last
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bertwatt.integrations.report import FinetuneReport

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


#: The full run's model: 2 layers, hidden 128 (about 0.6 M parameters with the demo vocabulary).
MODEL = {"layers": 2, "hidden": 128, "heads": 2, "intermediate": 512}


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
    parser.add_argument(
        "--zone",
        default=os.environ.get("BERTWATT_ZONE", "FR"),
        help="carbon-intensity zone for emissions (default: $BERTWATT_ZONE or FR)",
    )
    parser.add_argument("--pue", type=float, default=None, help="data-centre PUE (default 1.0)")
    parser.add_argument("--output-dir", default=None, help="Trainer output (default: a temp dir)")
    parser.add_argument("--padding", choices=["dynamic", "max_length"], default="dynamic")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--train-examples", type=int, default=None)
    parser.add_argument(
        "--save-steps", type=int, default=None, help="write a Trainer checkpoint every N steps"
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="resume from this checkpoint directory, or 'last' (the newest in --output-dir)",
    )
    args = parser.parse_args(argv)
    if args.resume is not None and args.output_dir is None:
        parser.error(
            "--resume needs --output-dir (where the interrupted run wrote its checkpoints)"
        )

    import torch

    torch.set_num_threads(max(1, args.threads))

    from bertwatt.errors import BertwattError
    from bertwatt.integrations.demo import build_trainer
    from bertwatt.integrations.transformers import EnergyCallback

    carbon = None
    if args.zone:
        try:
            from bertwatt.carbon.intensity import CarbonIntensity

            carbon = CarbonIntensity.zone(args.zone)
        except BertwattError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    train_examples = args.train_examples or (240 if args.quick else 6000)
    epochs = args.epochs or (1 if args.quick else 4)
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="bertwatt-finetune-")

    callback = EnergyCallback(carbon=carbon, pue=args.pue)
    saving = {"save_strategy": "steps", "save_steps": args.save_steps} if args.save_steps else {}
    trainer = build_trainer(
        output_dir,
        train_examples=train_examples,
        eval_examples=80 if args.quick else 600,
        padding=args.padding,
        model_options=None if args.quick else MODEL,
        num_train_epochs=epochs,
        per_device_train_batch_size=16 if args.quick else 32,
        eval_strategy="epoch",
        logging_steps=10 if args.quick else 50,
        **saving,
    )
    callback.attach(trainer)  # right after DefaultFlowCallback: report_to integrations see energy/*
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=True if args.resume == "last" else args.resume)
    elapsed = time.monotonic() - started
    report = callback.report
    print()
    print(report.summary())
    print()
    print(headline(report, args.zone))
    print(f"\n(training took {elapsed:.1f} s; report written to {output_dir}/bertwatt/)")
    return 0


def headline(report: FinetuneReport, zone: str | None) -> str:
    """The few figures people quote, each with where it comes from."""
    from bertwatt.integrations.render import format_small_j
    from bertwatt.report.render import format_energy

    lines = ["Key figures", f"  source: {report.figures}"]
    for name in ("train", "eval"):
        m = report.phase_metrics.get(name)
        if m is None:
            continue
        lines.append(
            f"  {name:<6} {format_energy(m.energy_j):>14} in {m.duration_s:6.1f} s: "
            f"{format_small_j(m.j_per_example)}/example, {format_small_j(m.j_per_token_padded)}"
            f"/token processed, {format_small_j(m.j_per_token_nonpadding)}/non-padding token"
        )
    if report.padding is not None:
        lines.append(f"  padding share in training: {report.padding.share:.1%}")
    c = report.carbon
    if report.emissions_g is not None and c is not None:
        lines.append(
            f"  emissions: {report.emissions_g:.4g} gCO2e for zone {c.zone} "
            f"({c.intensity_g_per_kwh:.0f} g/kWh, {c.year}, {c.source}; PUE {c.pue:g})"
        )
    elif zone:
        lines.append(f"  emissions: not computed ({report.carbon_note})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
