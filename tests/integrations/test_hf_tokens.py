"""Token accounting (examples, tokens processed, non-padding tokens) and the padding analysis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertwatt.integrations.padding import padding_report
from bertwatt.integrations.tokens import LengthStats, TokenCounter, WorkCounts, batch_counts

torch = pytest.importorskip("torch")


def padded_batch(lengths: list[int], width: int | None = None) -> dict[str, object]:
    width = width or max(lengths)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return {"input_ids": mask * 7, "attention_mask": mask}


@settings(max_examples=50, deadline=None)
@given(
    batches=st.lists(
        st.tuples(st.lists(st.integers(1, 40), min_size=1, max_size=9), st.integers(0, 24)),
        min_size=1,
        max_size=8,
    )
)
def test_counts_match_the_lengths(batches):
    counter = TokenCounter()
    want = WorkCounts()
    for lengths, extra in batches:
        width = max(lengths) + extra
        counter.observe((), padded_batch(lengths, width))
        want.add(WorkCounts(len(lengths), 1, len(lengths) * width, sum(lengths)))
    got = counter.take()
    assert got == want
    assert counter.take() == WorkCounts()
    assert counter.lengths.examples == sum(len(b[0]) for b in batches)
    assert sum(counter.lengths.padded_lengths.values()) == len(batches)
    assert got.tokens_nonpadding <= got.tokens_padded


def test_without_attention_mask_the_pad_id_finds_padding():
    ids = torch.tensor([[5, 6, 0, 0], [5, 0, 0, 0]])
    counts, lengths = batch_counts({"input_ids": ids}, pad_token_id=0)
    assert (counts.examples, counts.tokens_padded, counts.tokens_nonpadding) == (2, 8, 3)
    assert lengths == [2, 1]
    counts, lengths = batch_counts({"input_ids": ids})
    assert counts.tokens_nonpadding == 8 and lengths == []


def test_positional_inputs_multiple_choice_and_embeddings():
    counter = TokenCounter()
    counter.observe((torch.ones(3, 6, dtype=torch.long),), {})
    choices = torch.ones(2, 4, 5, dtype=torch.long)
    choices[..., 3:] = 0
    counter.observe((), {"input_ids": choices, "attention_mask": choices})
    counter.observe((), {"inputs_embeds": torch.zeros(4, 7, 16)})
    counter.observe((), {"pixel_values": torch.zeros(2, 3)})
    got = counter.take()
    assert got.examples == 3 + 2 + 4
    assert got.tokens_padded == 18 + 40 + 28
    assert got.tokens_nonpadding == 18 + 24 + 28
    assert counter.uncounted == 1


def test_overpadded_batches_reveal_padding_to_max_length():
    counter = TokenCounter()
    counter.observe((), padded_batch([3, 9], 64))
    counter.observe((), padded_batch([5, 12], 16))  # 12 -> 16 is rounding, not overpadding
    counter.take()
    assert counter.lengths.overpadded_batches == 1


def test_length_quantiles():
    stats = LengthStats()
    stats.add_lengths(list(range(1, 101)))
    assert (stats.quantile(0.5), stats.quantile(0.9), stats.quantile(0.99)) == (50, 90, 99)
    assert LengthStats().quantile(0.5) is None


def stats_for(lengths: list[int], widths: list[int], overpadded: int) -> LengthStats:
    s = LengthStats()
    s.add_lengths(lengths)
    for w in widths:
        s.add_padded(w)
    s.overpadded_batches = overpadded
    return s


def test_remedy_for_padding_to_max_length():
    lengths = [10] * 90 + [40] * 10
    stats = stats_for(lengths, [128] * 10, overpadded=10)
    counts = WorkCounts(100, 10, 12800, sum(lengths))
    rep = padding_report(counts, stats, j_per_token_padded=0.01, train_energy_j=128.0)
    assert rep.large and rep.fixed_padded_length == 128
    assert rep.energy_j == pytest.approx((12800 - 1300) * 0.01)
    assert rep.energy_share == pytest.approx(rep.energy_j / 128.0)
    assert "DataCollatorWithPadding" in rep.remedies[0]
    assert "max_length=40" in rep.remedies[1]


def test_remedies_for_dynamic_padding():
    lengths = [5] * 99 + [200]
    stats = stats_for(lengths, [200, 40, 30, 20], overpadded=0)
    counts = WorkCounts(100, 4, 2000, sum(lengths))
    rep = padding_report(counts, stats, j_per_token_padded=None, train_energy_j=None)
    assert rep.energy_j is None and rep.fixed_padded_length is None
    assert any("group_by_length" in r or "LengthGroupedSampler" in r for r in rep.remedies)
    assert any("max_length=8" in r for r in rep.remedies)
    grouped = padding_report(
        counts,
        stats,
        j_per_token_padded=None,
        train_energy_j=None,
        grouped_by_length=True,
        grouping_hint="TrainingArguments(train_sampling_strategy='group_by_length')",
    )
    assert not any("group examples" in r for r in grouped.remedies)


def test_small_padding_share_needs_no_remedy():
    stats = stats_for([10] * 10, [10], overpadded=0)
    rep = padding_report(
        WorkCounts(10, 1, 105, 100), stats, j_per_token_padded=1.0, train_energy_j=105
    )
    assert not rep.large and rep.remedies == []
    assert (
        padding_report(WorkCounts(), LengthStats(), j_per_token_padded=None, train_energy_j=None)
        is None
    )


def test_stacked_counting_equals_one_call_at_a_time_across_slots_dtypes_and_pad_ids():
    """The hook's slots are counted in stacked groups (one per shape; torch.stack promotes mixed
    mask dtypes). 150 calls (the 64 slots fill twice) of several shapes and dtypes, masks and
    pad-id-only batches: the same counts, lengths and histograms as counting each call on its
    own (batch_counts)."""
    gen = torch.Generator().manual_seed(7)
    counter = TokenCounter(pad_token_id=0)
    want = WorkCounts()
    lengths_want: dict[int, int] = {}
    overpadded_want = 0
    for i in range(150):
        width = (16, 24, 40)[i % 3]
        lengths = torch.randint(1, width + 1, (4,), generator=gen).tolist()
        batch = padded_batch(lengths, width)
        if i % 5 == 0:
            batch["attention_mask"] = batch["attention_mask"].bool()  # another dtype, same shape
        if i % 7 == 0:
            del batch["attention_mask"]  # ids only: the pad id (0) finds the padding
        counts, found = batch_counts(batch, pad_token_id=0)
        want.add(counts)
        for v in found:
            lengths_want[v] = lengths_want.get(v, 0) + 1
        overpadded_want += width > -(-max(found) // 8) * 8
        counter.open(True)
        hook = counter.forward_hook(lambda m, a, k: None, lambda err: None)

        class Training:
            training = True

        hook(Training(), (), batch)
    assert counter.take() == want
    assert counter.lengths.lengths == lengths_want
    assert counter.lengths.overpadded_batches == overpadded_want
    assert counter.uncounted == 0
