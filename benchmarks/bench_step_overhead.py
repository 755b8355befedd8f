"""Per-step overhead of the Trainer integration: ``EnergyCallback.on_step_end`` + the forward hook.

Method: a tiny ``BertForSequenceClassification`` (from a ``BertConfig``, offline) is watched by an
``EnergyCallback`` on a real clock with a FakeBackend (one counter, one power channel; every step
record's closing mark is a real edge read handshake with the sampler thread). The Trainer's
events are driven directly with real ``TrainingArguments``/``TrainerState``/``TrainerControl``
objects: per step, the forward pre-hook the callback installed is called once with a batch of
16 x 128 tokens (``input_ids``, ``attention_mask`` with padding, ``labels``), then
``on_step_end``. Each call is timed with ``time.perf_counter_ns``. Between steps the loop spins
for ``--step-ms`` (default 23 ms, the step time of the fine-tune in issue #12) so that step
records close as often as they would in training (a record closes once it covers 10000 x the
cost of one meter mark, at most 2 s). The model is not run: what is timed is only bertwatt's
code. The first 200 steps are discarded (warm-up).

Headline: mean hook + mean ``on_step_end`` per step (means, so that the occasional step that
closes a record with a meter mark is counted at its share). Medians are printed beside.

Target (issue #12): <= 50 us per step in total.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import _common as c

TARGET_US = 50.0


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _work(torch: object, seconds: float) -> object:
    """A stand-in for a training step: torch matrix products (the GIL is released) for about
    ``seconds``, calibrated once."""
    import torch as t

    a = t.randn(128, 128)

    def step(n: int) -> None:
        for _ in range(n):
            a @ a

    n = 1
    while True:
        t0 = time.perf_counter()
        step(n)
        took = time.perf_counter() - t0
        if took > 0.005:
            break
        n *= 2
    per = took / n
    reps = max(1, round(seconds / per))
    return lambda _s: step(reps)


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 1500, quick 300)")
    p.add_argument("--step-ms", type=float, default=23.0, help="time between steps")
    p.add_argument(
        "--between",
        choices=("torch", "sleep", "spin"),
        default="torch",
        help="what fills the time between steps: torch matmuls (GIL released), sleep, or a "
        "pure-Python spin (holds the GIL)",
    )
    args = p.parse_args()
    steps = args.steps or (300 if args.quick else 1500)
    warm = 200
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    c.header("per-step overhead of EnergyCallback (on_step_end + forward hook)")

    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        TrainerCallback,
        TrainerControl,
        TrainerState,
        TrainingArguments,
    )

    from bertwatt.integrations.transformers import EnergyCallback
    from bertwatt.testing import FakeBackend, FakeChannel

    torch.set_num_threads(1)
    config = BertConfig(
        vocab_size=1000,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        pad_token_id=0,
    )
    model = BertForSequenceClassification(config)
    out = tempfile.mkdtemp(prefix="bench-step-")
    targs = TrainingArguments(
        output_dir=out,
        report_to=[],
        max_steps=steps + warm,
        logging_steps=10**9,
        save_strategy="no",
        eval_strategy="no",
    )
    state = TrainerState()
    state.max_steps = steps + warm
    state.global_step = 0
    control = TrainerControl()
    backend = FakeBackend(
        channels=[
            FakeChannel("gpu:0", 250.0, kind="counter"),
            FakeChannel("cpu:package-0", 65.0, kind="power"),
        ]
    )
    callback = EnergyCallback(backends=[backend], output=False)
    callback.on_train_begin(targs, state, control, model=model)
    hook = next(iter(model._forward_pre_hooks.values()))
    ids = torch.randint(1, 1000, (16, 128))
    mask = torch.ones(16, 128, dtype=torch.long)
    for i in range(16):
        mask[i, 64 + 4 * i :] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.zeros(16, dtype=torch.long)}
    null_callback = TrainerCallback()

    def null_hook(module: object, args: object, kwargs: object) -> None:
        return None

    hook_ns: list[int] = []
    step_ns: list[int] = []
    null_ns: list[int] = []
    spin_s = args.step_ms / 1000.0
    pause = {"torch": _work(torch, spin_s), "sleep": time.sleep, "spin": _spin}[args.between]
    for _ in range(warm + steps):
        pause(spin_s)
        t0 = time.perf_counter_ns()
        hook(model, (), batch)
        t1 = time.perf_counter_ns()
        state.global_step += 1
        callback.on_step_end(targs, state, control)
        t2 = time.perf_counter_ns()
        hook_ns.append(t1 - t0)
        step_ns.append(t2 - t1)
        # the floor: a no-op hook and a no-op callback event, timed the same way after a step
        pause(spin_s / 4)
        t0 = time.perf_counter_ns()
        null_hook(model, (), batch)
        null_callback.on_step_end(targs, state, control)
        null_ns.append(time.perf_counter_ns() - t0)
    callback.on_train_end(targs, state, control)
    report = callback.report
    hook_us = [x / 1e3 for x in hook_ns[warm:]]
    step_us = [x / 1e3 for x in step_ns[warm:]]
    total = [a + b for a, b in zip(hook_us, step_us, strict=True)]
    null_us = [x / 1e3 for x in null_ns[warm:]]
    records = report.step_energy.records if report.step_energy is not None else 0
    print(f"steps timed: {steps} (after {warm} warm-up), {args.step_ms:g} ms between steps")
    print(
        f"forward hook  : mean {statistics.mean(hook_us):.1f} us, "
        f"{c.spread(hook_us).text('{:.1f}', ' us')}"
    )
    print(
        f"on_step_end   : mean {statistics.mean(step_us):.1f} us, "
        f"{c.spread(step_us).text('{:.1f}', ' us')}"
    )
    print(
        f"no-op floor   : mean {statistics.mean(null_us):.1f} us, "
        f"{c.spread(null_us).text('{:.1f}', ' us')} (a no-op hook + a no-op on_step_end after "
        "the same work: what any callback costs on this machine, cold caches included)"
    )
    print(f"step records  : {records} for {report.steps} steps (marks at most ~0.01 % of time)")
    mean_total = statistics.mean(total)
    result = c.Result(
        name="step_overhead",
        what="per-step overhead of EnergyCallback: on_step_end + forward hook",
        figure=mean_total,
        unit="us",
        target=TARGET_US,
        passed=mean_total <= TARGET_US,
        spread=c.spread(total).text("{:.1f}", " us"),
        rule="mean per step of hook + on_step_end, real clock, FakeBackend, tiny BERT",
        details={
            "hook_mean_us": statistics.mean(hook_us),
            "hook_median_us": statistics.median(hook_us),
            "on_step_end_mean_us": statistics.mean(step_us),
            "on_step_end_median_us": statistics.median(step_us),
            "step_records": records,
            "steps": report.steps,
            "step_ms": args.step_ms,
            "between": args.between,
            "noop_floor_mean_us": statistics.mean(null_us),
            "noop_floor_median_us": statistics.median(null_us),
        },
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
