"""Padding: its share of the tokens processed, the energy it cost, and the concrete remedy.

A batch is as long as its longest sequence (dynamic padding) or as ``max_length`` (padding to max
length); every position is computed, padding included. The energy attributed to padding is
``padding tokens x J per token processed`` of training. It approximates in two directions: costs
that do not depend on the number of tokens (optimizer step, framework overhead) are spread over
tokens, which overstates padding; the attention scores, whose cost grows with the square of the
padded length, are averaged, which understates it. For BERT-base-sized models the part
proportional to tokens dominates (Kaplan et al., 2020, section 2.1: forward cost per token
``2N + 2 n_layer n_ctx d_model``). The padding comparison example measures the real difference.
"""

from __future__ import annotations

import math

from bertwatt.integrations.report import PaddingReport
from bertwatt.integrations.tokens import LengthStats, WorkCounts

__all__ = ["LARGE_PADDING_SHARE", "padding_report"]

#: A padding share at or above this is "large": the report then lists remedies.
LARGE_PADDING_SHARE = 0.2

_DEFAULT_GROUPING = (
    "a length-grouped sampler (batches of examples of similar length, e.g. transformers' "
    "LengthGroupedSampler)"
)


def _round_up(n: int, multiple: int = 8) -> int:
    return int(math.ceil(n / multiple) * multiple)


def padding_report(
    counts: WorkCounts,
    lengths: LengthStats,
    *,
    j_per_token_padded: float | None,
    train_energy_j: float | None,
    grouped_by_length: bool | None = None,
    grouping_hint: str | None = None,
) -> PaddingReport | None:
    """The padding analysis of training, or None when no tokens were counted.

    Args:
        counts: training counts.
        lengths: non-padding lengths per example and padded lengths per batch.
        j_per_token_padded: training energy per token processed.
        train_energy_j: energy of the train phase.
        grouped_by_length: whether batches were already grouped by length (None: unknown).
        grouping_hint: the exact setting to recommend for grouping by length.
    """
    share = counts.padding_share
    if share is None:  # nothing counted, or padding unknown (no attention mask, no pad id)
        return None
    padding = counts.tokens_padding
    energy = padding * j_per_token_padded if j_per_token_padded is not None else None
    energy_share = energy / train_energy_j if energy is not None and train_energy_j else None
    p50, p90, p99 = (lengths.quantile(q) for q in (0.5, 0.9, 0.99))
    longest = max(lengths.lengths) if lengths.lengths else None
    padded = lengths.padded_lengths
    padded_max = max(padded) if padded else None
    fixed = next(iter(padded)) if len(padded) == 1 else None
    large = share >= LARGE_PADDING_SHARE
    remedies = _remedies(lengths, p50, p99, padded_max, fixed, grouped_by_length, grouping_hint)
    if not large:
        remedies = []
    basis = (
        "padding tokens x J per token processed in training (linear attribution: fixed per-step "
        "costs are spread over tokens, attention's quadratic cost in padded length is averaged)"
    )
    return PaddingReport(
        share=share,
        tokens_padding=padding,
        energy_j=energy,
        energy_share=energy_share,
        basis=basis,
        large=large,
        length_p50=p50,
        length_p90=p90,
        length_p99=p99,
        length_max=longest,
        padded_length_max=padded_max,
        fixed_padded_length=fixed,
        length_histogram=dict(sorted(lengths.lengths.items())),
        remedies=remedies,
    )


def _remedies(
    lengths: LengthStats,
    p50: int | None,
    p99: int | None,
    padded_max: int | None,
    fixed: int | None,
    grouped_by_length: bool | None,
    grouping_hint: str | None,
) -> list[str]:
    """Remedies that follow from the cause of the padding.

    - every batch padded to one length (padding to ``max_length``): pad per batch. Grouping by
      length does not help while batches are padded to a fixed length, so it is not offered;
    - batches padded to their longest example (dynamic padding) but not grouped: group by length;
    - a few long examples setting their batches' length: cap ``max_length``;
    - dynamic padding, grouped, lengths bounded: what is left is the spread within batches.
    """
    if p99 is None:
        return []
    target = _round_up(p99)
    batches = sum(lengths.padded_lengths.values())
    out: list[str] = []
    if fixed is not None and (batches >= 2 or lengths.overpadded_batches):
        at_limit = lengths.lengths.get(fixed, 0)
        cut = (
            f"; {at_limit:,} of {lengths.examples:,} examples reach {fixed} tokens, so they "
            "were probably truncated there"
            if at_limit
            else ""
        )
        out.append(
            f"every batch was padded to the same {fixed} tokens (fixed-length padding, "
            f"padding='max_length') while the median example has {p50} real tokens{cut}: pad "
            "each batch only to its longest example (pad per batch: tokenize with padding=False "
            "and pass data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8))"
        )
        if fixed > target:
            out.append(
                f"if a fixed shape is required (TPU, static-shape compilation), use "
                f"max_length={target}: it keeps 99% of examples whole (truncating the longest 1%)"
            )
        return out
    if grouped_by_length is False or grouped_by_length is None:
        out.append(
            "group examples of similar length into the same batch: "
            + (grouping_hint or _DEFAULT_GROUPING)
        )
    if padded_max is not None and padded_max > _round_up(math.ceil(1.25 * p99)):
        out.append(
            f"a few long examples set the length of their batches (longest batch "
            f"{padded_max} tokens, 99% of examples <= {p99}): max_length={target} with "
            "truncation=True keeps 99% of examples whole"
        )
    if not out:
        out.append(
            "batches are padded per batch, grouped by length and lengths are bounded: the padding "
            "left comes from length differences within a batch; smaller batches pad less"
        )
    return out
