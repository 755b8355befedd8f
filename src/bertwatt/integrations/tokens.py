"""Token accounting: examples, tokens processed (with padding) and non-padding tokens per forward.

What is counted, for every forward call of the watched model:

- **examples**: the batch dimension (``shape[0]``) of ``input_ids`` (else ``attention_mask``, else
  ``inputs_embeds``);
- **tokens processed** (``tokens_padded``): every position the model computed on, padding
  included: ``input_ids.numel()`` (``batch x sequence length``; ``batch x choices x length`` for
  multiple choice);
- **non-padding tokens**: the positions ``attention_mask`` marks as real (non-zero). Without an
  attention mask, ``input_ids != pad_token_id`` when the pad id is known, else every position.

The counts come from the tensors the model actually receives, so they are right whatever the
collator did (dynamic padding, padding to ``max_length``, packing) and whatever process built the
batch (DataLoader workers included). Reductions are queued as tensors and turned into integers
only when a step ends (:meth:`TokenCounter.take`), where the meter synchronises the device
anyway, so counting adds no extra GPU synchronisation to the training loop.

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
        tokens_nonpadding: token positions that were real text.
    """

    examples: int = 0
    batches: int = 0
    tokens_padded: int = 0
    tokens_nonpadding: int = 0

    def add(self, other: WorkCounts) -> None:
        """Add ``other`` into this one."""
        self.examples += other.examples
        self.batches += other.batches
        self.tokens_padded += other.tokens_padded
        self.tokens_nonpadding += other.tokens_nonpadding

    @property
    def tokens_padding(self) -> int:
        """Padding positions processed."""
        return max(0, self.tokens_padded - self.tokens_nonpadding)

    @property
    def padding_share(self) -> float | None:
        """Padding positions / positions processed (None when nothing was processed)."""
        if self.tokens_padded <= 0:
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
    nonpadding: Any  # int, or a 0-d tensor not yet read
    lengths: Any  # 1-d tensor of per-example lengths, or None
    padded_length: int | None


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
    lengths = [int(v) for v in q.lengths.tolist()] if q.lengths is not None else []
    return (
        WorkCounts(
            examples=q.examples,
            batches=1,
            tokens_padded=q.tokens_padded,
            tokens_nonpadding=int(q.nonpadding),
        ),
        lengths,
    )


def _queue_item(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], pad_token_id: int | None
) -> _Queued | None:
    ids, mask, embeds = _find_inputs(args, kwargs)
    shaped = ids if ids is not None else mask
    if shaped is None:
        if embeds is None or embeds.ndim < 2:
            return None
        n = int(embeds.shape[0])
        tokens = n * int(embeds.shape[1])
        return _Queued(n, tokens, tokens, None, int(embeds.shape[1]))
    if shaped.ndim == 0:
        return None
    examples = int(shaped.shape[0])
    padded = int(shaped.numel())
    seq = int(shaped.shape[-1]) if shaped.ndim >= 2 else None
    real = None
    if mask is not None and tuple(mask.shape) == tuple(shaped.shape):
        real = mask.ne(0)
    elif ids is not None and pad_token_id is not None:
        real = ids.ne(pad_token_id)
    if real is None:
        return _Queued(examples, padded, padded, None, seq)
    if real.ndim == 2:
        lengths = real.sum(-1)
        return _Queued(examples, padded, lengths.sum(), lengths, seq)
    return _Queued(examples, padded, real.sum(), None, seq)


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
        for q in self._queued:
            done.examples += q.examples
            done.batches += 1
            done.tokens_padded += q.tokens_padded
            done.tokens_nonpadding += int(q.nonpadding)
            sizes = self.lengths.batch_examples
            sizes[q.examples] = sizes.get(q.examples, 0) + 1
            if q.padded_length is not None:
                self.lengths.add_padded(q.padded_length)
            if q.lengths is not None:
                values = [int(v) for v in q.lengths.tolist()]
                self.lengths.add_lengths(values)
                pad_to = q.padded_length
                if values and pad_to is not None and pad_to > -(-max(values) // 8) * 8:
                    self.lengths.overpadded_batches += 1
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
