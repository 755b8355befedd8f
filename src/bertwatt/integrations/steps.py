"""Per-step energies in bounded memory.

Each record covers one optimizer step, or a block of consecutive steps on long runs: it holds the
two meter marks around it, its duration, energy and token counts. Records are tiled: a record
starts at the mark where the previous one ended (or where training resumed after an evaluation or
checkpoint), so the records telescope and their sum is the energy of every step of training.

Memory stays bounded: when ``capacity`` records exist, neighbours are merged pairwise (energies,
durations and counts add) and from then on one record covers twice as many steps. A run of
``n`` steps therefore keeps at most ``capacity`` records and asks the meter for about
``capacity + capacity/2 * log2(n / capacity)`` marks. Everything is stored in ``array`` columns.

Closing a record stores its two marks and counts only; its energy is read from the meter later
(:meth:`StepLog.resolve`: at a log, a report, a merge, or once :data:`_RESOLVE_EVERY` records
wait), so a record's closing costs the training loop one meter mark and a few appends.
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any

from bertwatt.integrations.tokens import WorkCounts

if TYPE_CHECKING:
    from bertwatt.meter import EnergyMeter

__all__ = ["StepLog"]

#: Records closed without their energy read before :meth:`StepLog.close` resolves them (the meter
#: keeps the most recent 16384 marks, far more than this needs).
_RESOLVE_EVERY = 256


class StepLog:
    """Per-step (or per-block) energies and counts.

    Args:
        capacity: most records kept (an even number >= 2).
    """

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = max(2, capacity - capacity % 2)
        self.stride = 1
        self.first_step = array("q")
        self.steps = array("q")
        self.start_mark = array("q")
        self.end_mark = array("q")
        self.duration_s = array("d")
        self.energy_j = array("d")
        self.resolved = bytearray()
        self.examples = array("q")
        self.tokens_padded = array("q")
        self.tokens_nonpadding = array("q")
        self.merged_unresolved = 0
        self._unresolved_from = 0

    def __len__(self) -> int:
        return len(self.steps)

    # ------------------------------------------------------------ recording
    def close(
        self,
        first_step: int,
        steps: int,
        counts: WorkCounts,
        start_mark: int,
        end_mark: int,
        meter: EnergyMeter,
    ) -> None:
        """Add the record of ``steps`` optimizer steps from ``first_step`` between two meter marks
        (no-op for 0 steps). Its energy is read later, by :meth:`resolve`."""
        if steps <= 0:
            return
        self.first_step.append(first_step)
        self.steps.append(steps)
        self.start_mark.append(start_mark)
        self.end_mark.append(end_mark)
        self.duration_s.append(0.0)
        self.energy_j.append(math.nan)
        self.resolved.append(0)
        self.examples.append(counts.examples)
        self.tokens_padded.append(counts.tokens_padded)
        self.tokens_nonpadding.append(counts.tokens_nonpadding)
        n = len(self.steps)
        if n >= self.capacity:
            self._merge_pairs(meter)
        elif n - self._unresolved_from >= _RESOLVE_EVERY:
            self.resolve(meter)

    # ------------------------------------------------------------ energies
    def resolve(self, meter: EnergyMeter) -> None:
        """Fill in energies whose marks a slow (blocking) backend has resolved since."""
        i = self._unresolved_from
        n = len(self.steps)
        while i < n and self.resolved[i]:
            i += 1
        self._unresolved_from = i
        for k in range(i, n):
            if self.resolved[k]:
                continue
            we = meter.energy_between(self.start_mark[k], self.end_mark[k])
            self.duration_s[k] = we.duration_s
            if we.complete:
                self.energy_j[k] = math.nan if we.energy_j is None else we.energy_j
                self.resolved[k] = 1

    def _merge_pairs(self, meter: EnergyMeter) -> None:
        self.resolve(meter)
        n = len(self.steps) // 2 * 2
        for name in ("steps", "duration_s", "examples", "tokens_padded", "tokens_nonpadding"):
            setattr(self, name, _pair_sums(getattr(self, name), n))
        self.first_step = _pair_firsts(self.first_step, n, 0)
        self.start_mark = _pair_firsts(self.start_mark, n, 0)
        self.end_mark = _pair_firsts(self.end_mark, n, 1)
        energy = array("d")
        resolved = bytearray()
        for k in range(0, n, 2):
            both = self.resolved[k] and self.resolved[k + 1]
            energy.append(self.energy_j[k] + self.energy_j[k + 1])
            resolved.append(1 if both else 0)
            if not both:
                self.merged_unresolved += 1
        energy.extend(self.energy_j[n:])
        resolved.extend(self.resolved[n:])
        self.energy_j, self.resolved = energy, resolved
        self.stride *= 2
        self._unresolved_from = 0

    # ------------------------------------------------------------ totals
    def totals(self) -> tuple[int, float, WorkCounts, int]:
        """Over records with a known energy: (steps, energy_j, counts, records)."""
        steps = records = examples = padded = nonpadding = 0
        energy = 0.0
        for k in range(len(self.steps)):
            e = self.energy_j[k]
            if not self.resolved[k] or e != e:
                continue
            records += 1
            steps += self.steps[k]
            energy += e
            examples += self.examples[k]
            padded += self.tokens_padded[k]
            nonpadding += self.tokens_nonpadding[k]
        counts = WorkCounts(examples=examples, tokens_padded=padded, tokens_nonpadding=nonpadding)
        return steps, energy, counts, records

    def per_step_j(self, *, skip_first: bool = False) -> list[float]:
        """Energy per step of each record with a known energy (J), optionally without the first."""
        out = []
        for k in range(1 if skip_first else 0, len(self.steps)):
            e = self.energy_j[k]
            if self.resolved[k] and e == e and self.steps[k]:
                out.append(e / self.steps[k])
        return out


def _pair_sums(col: array[Any], n: int) -> array[Any]:
    out = array(col.typecode, [col[k] + col[k + 1] for k in range(0, n, 2)])
    out.extend(col[n:])
    return out


def _pair_firsts(col: array[Any], n: int, offset: int) -> array[Any]:
    out = array(col.typecode, [col[k + offset] for k in range(0, n, 2)])
    out.extend(col[n:])
    return out
