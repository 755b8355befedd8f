"""The offline demo workload: vocabulary, tokenizer, generated sentences, tiny BERT."""

from __future__ import annotations

import statistics

from bertwatt.integrations.demo import encode, sentences, tiny_bert, tokenizer, vocabulary


def test_vocabulary_ids_are_contiguous_and_unique():
    vocab = vocabulary()
    assert sorted(vocab.values()) == list(range(len(vocab)))
    assert list(vocab)[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_every_generated_word_is_a_token():
    tok = tokenizer()
    texts = [t for t, _ in sentences(300, seed=1)]
    ids = tok(texts)["input_ids"]
    assert all(tok.unk_token_id not in x for x in ids)
    assert all(len(x) == len(t.split()) + 2 for x, t in zip(ids, texts, strict=True))


def test_sentences_look_like_sst2_and_are_reproducible():
    data = sentences(2000, seed=0)
    words = [len(t.split()) for t, _ in data]
    assert 16 <= statistics.median(words) <= 18
    assert 17 <= statistics.fmean(words) <= 21
    assert min(words) >= 2 and max(words) <= 60
    assert 0.45 < sum(label for _, label in data) / len(data) < 0.55
    assert sentences(50, seed=0) == data[:50]
    assert sentences(50, seed=1) != data[:50]


def test_encode_pads_to_max_length_or_not():
    tok = tokenizer()
    pairs = sentences(5, seed=2)
    padded = encode(tok, pairs, padding="max_length", max_length=64)
    assert {len(x["input_ids"]) for x in padded} == {64}
    dynamic = encode(tok, pairs)
    assert [len(x["input_ids"]) for x in dynamic] == [len(t.split()) + 2 for t, _ in pairs]
    assert [x["labels"] for x in dynamic] == [label for _, label in pairs]


def test_tiny_bert_is_seeded():
    a = tiny_bert(100, seed=7, layers=1, hidden=16, heads=2, intermediate=32)
    b = tiny_bert(100, seed=7, layers=1, hidden=16, heads=2, intermediate=32)
    assert all((a.state_dict()[k] == b.state_dict()[k]).all() for k in a.state_dict())
    assert a.config.num_hidden_layers == 1 and a.config.pad_token_id == 0
