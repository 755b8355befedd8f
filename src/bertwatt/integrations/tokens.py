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
batch (DataLoader workers included). A forward call only keeps references to its ``input_ids``
and ``attention_mask`` in a preallocated slot (:meth:`TokenCounter.put`: no shape read, no
allocation, no device work); shapes and reductions (``count_nonzero``, ``ne``) run later, when
the counts are taken (:meth:`TokenCounter.take`: at a step record's closing mark, a log, a mode
change, or once 64 calls are queued), where the meter synchronises the device anyway.

No torch import here: tensors are handled through their methods only.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LengthStats", "TokenCounter", "WorkCounts", "batch_counts"]

#: Forward calls kept by reference before their counts are materialised (bounds the memory held).
_SLOTS = 64
_NONES: list[None] = [None] * _SLOTS


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


@dataclass(slots=True)
class _Rows:
    """Counts of same-shaped forward calls, reduced together."""

    nonpadding: int  # real positions, all calls
    histogram: dict[int, int]  # non-padding length per example -> examples
    overpadded: int  # calls padded beyond their longest example (rounded up to 8)


def _count_rows(sources: list[Any], pad: int | None, length: int) -> _Rows | None:
    """Lengths of same-shaped 2-D masks (non-zero positions) or ids (positions not ``pad``),
    worked out on the tensors' device with a few kernels and two small reads for all of them.
    None when they cannot be stacked (mixed devices, not tensors)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        stacked = torch.stack(sources)
    except Exception:
        return None
    lengths = stacked.count_nonzero(-1) if pad is None else stacked.ne(pad).sum(-1)
    histogram = {k: n for k, n in enumerate(torch.bincount(lengths.flatten()).tolist()) if n}
    over = sum(1 for m in lengths.amax(-1).tolist() if length > -(-m // 8) * 8)
    return _Rows(sum(k * n for k, n in histogram.items()), histogram, over)


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
    return _from_tensors(ids, mask, embeds, pad_token_id)


def _from_tensors(ids: Any, mask: Any, embeds: Any, pad_token_id: int | None) -> _Queued | None:
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
    """Keeps forward calls' inputs by reference and turns them into counts on :meth:`take`.

    Args:
        pad_token_id: used to find padding when a batch has no attention mask.
    """

    def __init__(self, pad_token_id: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.lengths = LengthStats()
        self._ids: list[Any] = [None] * _SLOTS
        self._masks: list[Any] = [None] * _SLOTS
        self._n = 0
        self._open = False
        self._queued: list[_Queued] = []  # calls without ids or mask (inputs_embeds): shapes
        self._done = WorkCounts()
        self.uncounted = 0

    def put(self, ids: Any, mask: Any) -> None:
        """Keep one forward call's ``input_ids`` and ``attention_mask`` (either may be None) by
        reference: the hot path, nothing is read from them until :meth:`take`."""
        n = self._n
        self._ids[n] = ids
        self._masks[n] = mask
        n += 1
        self._n = n
        if n == _SLOTS:
            self._materialise()

    def forward_hook(
        self,
        fallback: Callable[[Any, tuple[Any, ...], dict[str, Any]], None],
        on_error: Callable[[Exception], None],
    ) -> Callable[[Any, tuple[Any, ...], dict[str, Any]], None]:
        """A forward pre-hook (``register_forward_pre_hook(..., with_kwargs=True)``) that keeps
        a training-mode call's keyword ``input_ids``/``attention_mask`` in this counter while it
        is open (:meth:`open`): the hot path, a few attribute reads and two list stores. Every
        other call goes to ``fallback(module, args, kwargs)``; an exception to ``on_error``."""
        counter = self
        ids_slots, mask_slots = self._ids, self._masks

        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            try:
                if counter._open and not args and module.training:
                    ids = kwargs.get("input_ids")
                    mask = kwargs.get("attention_mask")
                    if ids is not None or mask is not None:
                        n = counter._n
                        ids_slots[n] = ids
                        mask_slots[n] = mask
                        n += 1
                        counter._n = n
                        if n == _SLOTS:
                            counter._materialise()
                        return
                fallback(module, args, kwargs)
            except Exception as err:  # counting must never break a forward call
                on_error(err)

        return hook

    def use_pad_token_id(self, pad_token_id: int | None) -> None:
        """Find padding with this id in batches without an attention mask (counted from now)."""
        self.pad_token_id = pad_token_id

    def open(self, is_open: bool) -> None:
        """Let :meth:`forward_hook` keep training calls here (True) or pass them on (False)."""
        self._open = is_open

    def observe(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Queue one forward call's inputs, positional or keyword (cheap: no device work)."""
        ids, mask, embeds = _find_inputs(args, kwargs)
        if ids is not None or mask is not None:
            self.put(ids, mask)
            return
        item = _from_tensors(None, None, embeds, self.pad_token_id)
        if item is None:
            self.uncounted += 1
            return
        self._queued.append(item)
        if len(self._queued) >= _SLOTS:
            self._materialise()

    def _materialise(self) -> None:
        queued = self._queued
        ids_slots, mask_slots = self._ids, self._masks
        pad = self.pad_token_id
        # 2-D masks (or ids with a known pad id) of one shape: counted together, one kernel
        groups: dict[tuple[Any, int | None], list[Any]] = {}
        n = self._n
        for k in range(n):
            ids, mask = ids_slots[k], mask_slots[k]
            try:
                if mask is not None:
                    shape = mask.shape
                    if len(shape) == 2 and (ids is None or ids.shape == shape):
                        groups.setdefault((shape, None), []).append(mask)
                        continue
                elif pad is not None and ids.ndim == 2:
                    groups.setdefault((ids.shape, pad), []).append(ids)
                    continue
            except AttributeError:  # not tensors: the checks below say what they are
                pass
            item = _from_tensors(
                ids if _is_tensor(ids) else None, mask if _is_tensor(mask) else None, None, pad
            )
            if item is None:
                self.uncounted += 1
            else:
                queued.append(item)
        ids_slots[:n] = mask_slots[:n] = _NONES[:n]
        self._n = 0
        for (shape, pad_id), sources in groups.items():
            rows = _count_rows(sources, pad_id, int(shape[1]))
            if rows is None:  # mixed devices, or not tensors: one by one
                for src in sources:
                    ok = _is_tensor(src)
                    item = (
                        _from_tensors(None, src if ok else None, None, None)
                        if pad_id is None
                        else _from_tensors(src if ok else None, None, None, pad_id)
                    )
                    if item is None:
                        self.uncounted += 1
                    else:
                        queued.append(item)
                continue
            self._add_rows(int(shape[0]), int(shape[1]), len(sources), rows)
        done = self._done
        stats = self.lengths
        sizes = stats.batch_examples
        padded_hist = stats.padded_lengths
        hist = stats.lengths
        for q, (nonpadding, values) in zip(queued, [q.reduce() for q in queued], strict=True):
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
        queued.clear()

    def _add_rows(self, examples: int, length: int, calls: int, rows: _Rows) -> None:
        """Count ``calls`` forward calls of ``examples`` x ``length`` inputs."""
        done = self._done
        stats = self.lengths
        done.examples += examples * calls
        done.batches += calls
        done.tokens_padded += examples * length * calls
        done.tokens_nonpadding += rows.nonpadding
        stats.batch_examples[examples] = stats.batch_examples.get(examples, 0) + calls
        stats.padded_lengths[length] = stats.padded_lengths.get(length, 0) + calls
        stats.overpadded_batches += rows.overpadded
        hist = stats.lengths
        for v, n in rows.histogram.items():
            hist[v] = hist.get(v, 0) + n

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
        return self._n > 0 or bool(self._queued) or self._done.batches > 0
