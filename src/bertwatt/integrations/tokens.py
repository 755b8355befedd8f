"""Token accounting: examples, tokens processed (with padding) and non-padding tokens per forward.

What is counted, for every forward call of the watched model:

- **examples**: the batch dimension (``shape[0]``) of ``input_ids`` (else ``attention_mask``, else
  ``inputs_embeds``);
- **tokens processed** (``tokens_padded``): every position the model computed on, padding
  included: ``input_ids.numel()`` (``batch x sequence length``; ``batch x choices x length`` for
  multiple choice);
- **non-padding tokens**: the positions ``attention_mask`` marks as real (non-zero). Without an
  attention mask, ``input_ids != pad_token_id`` when the pad id is known. With neither, padding
  is unknown: the batch's positions count as non-padding (an upper bound) and as
  ``tokens_unknown``, and the padding share is None (unknown), never 0 %.

The counts come from the tensors the model actually receives, so they are right whatever the
collator did (dynamic padding, padding to ``max_length``, packing) and whatever process built the
batch (DataLoader workers included). Forward calls are queued and turned into integers only
when a step ends (:meth:`TokenCounter.take`), where the meter synchronises the device
anyway, so counting adds no extra GPU synchronisation to the training loop. A forward call only
records shapes and a reference to the mask (or ids); the reductions (``ne``, ``sum``) run at the
step end too, so the forward hook costs a few µs.

No torch import here: tensors are handled through their methods only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LengthStats", "TokenCounter", "WorkCounts", "batch_counts"]

#: Queued batches after which counts are materialised even without a step end (bounds memory).
_MAX_PENDING = 64


@dataclass(slots=True)
class WorkCounts:
    """Examples, batches and tokens of some work (a step, a phase, a run).

    Attributes:
        examples: examples (sequences) processed.
        batches: forward calls counted.
        tokens_padded: token positions processed, padding included.
        tokens_nonpadding: token positions that were real text (an upper bound when
            ``tokens_unknown`` > 0).
        tokens_unknown: token positions of batches with neither an attention mask nor a known
            pad id: whether they were padding is unknown (they count as non-padding).
    """

    examples: int = 0
    batches: int = 0
    tokens_padded: int = 0
    tokens_nonpadding: int = 0
    tokens_unknown: int = 0

    def add(self, other: WorkCounts) -> None:
        """Add ``other`` into this one."""
        self.examples += other.examples
        self.batches += other.batches
        self.tokens_padded += other.tokens_padded
        self.tokens_nonpadding += other.tokens_nonpadding
        self.tokens_unknown += other.tokens_unknown

    @property
    def tokens_padding(self) -> int:
        """Padding positions processed."""
        return max(0, self.tokens_padded - self.tokens_nonpadding)

    @property
    def padding_share(self) -> float | None:
        """Padding positions / positions processed (None when nothing was processed, or when
        some positions' padding is unknown)."""
        if self.tokens_padded <= 0 or self.tokens_unknown > 0:
            return None
        return self.tokens_padding / self.tokens_padded


@dataclass(slots=True)
class LengthStats:
    """Distribution of non-padding lengths per example and of padded lengths per batch.

    Attributes:
        lengths: histogram, non-padding length -> number of examples.
        padded_lengths: histogram, padded sequence length of a batch -> number of batches.
        overpadded_batches: batches padded beyond their longest example (rounded up to a
            multiple of 8): the signature of padding to a fixed length.
        batch_examples: histogram, examples in one forward call -> number of calls.
    """

    lengths: dict[int, int] = field(default_factory=dict)
    padded_lengths: dict[int, int] = field(default_factory=dict)
    overpadded_batches: int = 0
    batch_examples: dict[int, int] = field(default_factory=dict)

    def add_lengths(self, values: list[int]) -> None:
        """Count these per-example lengths."""
        h = self.lengths
        for v in values:
            h[v] = h.get(v, 0) + 1

    def add_padded(self, length: int) -> None:
        """Count one batch padded to ``length``."""
        self.padded_lengths[length] = self.padded_lengths.get(length, 0) + 1

    def quantile(self, q: float) -> int | None:
        """The ``q`` quantile (0..1) of per-example non-padding lengths, or None without data."""
        return _quantile(self.lengths, q)

    @property
    def examples(self) -> int:
        """Examples with a known length."""
        return sum(self.lengths.values())


def _quantile(hist: Mapping[int, int], q: float) -> int | None:
    n = sum(hist.values())
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return value
    return max(hist)  # pragma: no cover - unreachable


def _is_tensor(x: object) -> bool:
    return hasattr(x, "shape") and hasattr(x, "numel") and hasattr(x, "ndim")


def _find_inputs(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    ids = kwargs.get("input_ids")
    if ids is None and args and _is_tensor(args[0]):
        ids = args[0]
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1 and _is_tensor(args[1]):
        mask = args[1]
    embeds = kwargs.get("inputs_embeds")
    return (
        ids if _is_tensor(ids) else None,
        mask if _is_tensor(mask) else None,
        embeds if _is_tensor(embeds) else None,
    )


@dataclass(slots=True)
class _Queued:
    examples: int
    tokens_padded: int
    padded_length: int | None
    source: Any  # the attention mask or input ids to reduce at take time; None: no reduction
    pad: int | None  # None: ``source`` is a mask (non-zero = real); else the pad id in ids
    unknown: bool = False  # no attention mask and no pad id: padding unknown

    def reduce(self) -> tuple[int, list[int] | None]:
        """``(non-padding tokens, per-example lengths or None)``: reads device values."""
        src = self.source
        if src is None:
            return self.tokens_padded, None
        if src.ndim == 2:
            if self.pad is None:  # one kernel: non-zero mask positions per row
                lengths = src.count_nonzero(-1).tolist()
            else:
                lengths = src.ne(self.pad).sum(-1).tolist()
            return int(sum(lengths)), [int(v) for v in lengths]
        real = src.ne(0) if self.pad is None else src.ne(self.pad)
        return int(real.sum().item()), None


def batch_counts(
    inputs: Mapping[str, Any], *, pad_token_id: int | None = None
) -> tuple[WorkCounts, list[int]]:
    """Count one batch now (synchronously): ``(counts, per-example non-padding lengths)``.

    ``inputs`` is what the model is called with (``input_ids``, ``attention_mask``, ...). Used for
    plain loops and inference; the Trainer path queues the same computation (:class:`TokenCounter`).
    """
    q = _queue_item((), inputs, pad_token_id)
    if q is None:
        return WorkCounts(), []
    nonpadding, lengths = q.reduce()
    return (
        WorkCounts(
            examples=q.examples,
            batches=1,
            tokens_padded=q.tokens_padded,
            tokens_nonpadding=nonpadding,
            tokens_unknown=q.tokens_padded if q.unknown else 0,
        ),
        lengths or [],
    )


def _queue_item(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], pad_token_id: int | None
) -> _Queued | None:
    """Shapes now (no device work); the reduction is left for :meth:`_Queued.reduce`."""
    ids, mask, embeds = _find_inputs(args, kwargs)
    shaped = ids if ids is not None else mask
    if shaped is None:
        if embeds is None or embeds.ndim < 2:
            return None
        n = int(embeds.shape[0])
        tokens = n * int(embeds.shape[1])
        return _Queued(n, tokens, int(embeds.shape[1]), None, None, True)
    shape = shaped.shape
    if not shape:
        return None
    examples = int(shape[0])
    padded = int(shaped.numel())
    seq = int(shape[-1]) if len(shape) >= 2 else None
    if mask is not None and (mask is shaped or mask.shape == shape):
        return _Queued(examples, padded, seq, mask, None)
    if ids is not None and pad_token_id is not None:
        return _Queued(examples, padded, seq, ids, pad_token_id)
    return _Queued(examples, padded, seq, None, None, True)


class TokenCounter:
    """Queues the counts of forward calls and turns them into integers on :meth:`take`.

    Args:
        pad_token_id: used to find padding when a batch has no attention mask.
    """

    def __init__(self, pad_token_id: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.lengths = LengthStats()
        self._queued: list[_Queued] = []
        self._done = WorkCounts()
        self.uncounted = 0

    def observe(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Queue one forward call's inputs (cheap: shapes now, reductions left on the device)."""
        item = _queue_item(args, kwargs, self.pad_token_id)
        if item is None:
            self.uncounted += 1
            return
        self._queued.append(item)
        if len(self._queued) >= _MAX_PENDING:
            self._materialise()

    def _materialise(self) -> None:
        done = self._done
        stats = self.lengths
        sizes = stats.batch_examples
        padded_hist = stats.padded_lengths
        hist = stats.lengths
        for q in self._queued:
            nonpadding, values = q.reduce()
            done.examples += q.examples
            done.batches += 1
            done.tokens_padded += q.tokens_padded
            done.tokens_nonpadding += nonpadding
            if q.unknown:
                done.tokens_unknown += q.tokens_padded
            sizes[q.examples] = sizes.get(q.examples, 0) + 1
            pad_to = q.padded_length
            if pad_to is not None:
                padded_hist[pad_to] = padded_hist.get(pad_to, 0) + 1
            if values:
                for v in values:
                    hist[v] = hist.get(v, 0) + 1
                if pad_to is not None and pad_to > -(-max(values) // 8) * 8:
                    stats.overpadded_batches += 1
        self._queued.clear()

    def add_counts(self, counts: WorkCounts, lengths: list[int]) -> None:
        """Add counts made elsewhere (explicit counts, synchronously counted batches)."""
        self._done.add(counts)
        if lengths:
            self.lengths.add_lengths(lengths)

    def take(self) -> WorkCounts:
        """Counts observed since the last take (reads queued device values: a sync point)."""
        self._materialise()
        out, self._done = self._done, WorkCounts()
        return out

    @property
    def pending(self) -> bool:
        """True when forward calls were observed since the last :meth:`take`."""
        return bool(self._queued) or self._done.batches > 0
