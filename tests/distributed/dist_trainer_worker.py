"""A torchrun worker: a tiny BERT fine-tuned by the Trainer under DDP (gloo, CPU) with
EnergyCallback, every rank on a fake NVML of 2 GPUs (100 W, 250 W). Not a test module.

BW_OUT: the Trainer's output_dir. Rank 0 writes BW_OUT/rank0-logs.json (its log history).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from bertwatt import EnergyCallback
from bertwatt.distributed import node_identity
from bertwatt.integrations.demo import build_trainer
from bertwatt.testing import FakeGPU, FakeNVML


def main() -> int:
    torch.set_num_threads(1)
    out = os.environ["BW_OUT"]
    node = node_identity()
    fake = FakeNVML(
        [
            FakeGPU("NVIDIA A100", uuid=f"GPU-{node}-0", power_w=100.0),
            FakeGPU("NVIDIA H100", uuid=f"GPU-{node}-1", power_w=250.0),
        ]
    )
    with fake.install():
        callback = EnergyCallback(interval_s=0.05, gather_timeout_s=60)
        trainer = build_trainer(
            out,
            train_examples=64,
            eval_examples=16,
            callbacks=[callback],
            model_options={"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64},
            per_device_train_batch_size=8,
            logging_steps=2,
            ddp_backend="gloo",
        )
        trainer.train()
    if int(os.environ.get("RANK", "0")) == 0:
        with open(os.path.join(out, "rank0-logs.json"), "w") as fh:
            json.dump(
                {"log_history": trainer.state.log_history, "job": callback.job_report is not None},
                fh,
            )
    elif callback.job_report is not None:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
