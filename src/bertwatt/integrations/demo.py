"""A small fine-tuning workload that runs offline: tiny BERT, generated vocabulary and data set.

Used by the examples, the tests and anyone checking a setup without downloading anything:

- :func:`vocabulary` / :func:`tokenizer`: a WordPiece vocabulary of real sentiment and movie-review
  words plus generated filler words, every one a whole token (no ``[UNK]``);
- :func:`sentences`: seeded movie-review-like sentences labelled positive/negative. Word counts
  follow a log-normal distribution with median 17 and a long tail (mean about 19 words, 2 to 60),
  close to SST-2, whose sentences average 19 words (Kim, 2014, EMNLP, Table 1). The label is
  learnable from the sentiment words (15% of them point the other way);
- :func:`encode`: tokenised examples, padded per batch later (``"dynamic"``) or to ``max_length``;
- :func:`tiny_bert`: a ``BertForSequenceClassification`` from a ``BertConfig`` (2 layers, hidden
  64 by default), randomly initialised with a seed;
- :func:`build_trainer`: all of the above in a ``Trainer``.

transformers 5 note: ``BertTokenizer(vocab=...)`` takes the vocabulary (a dict or a file path);
``vocab_file=`` is silently ignored there and gives a tokenizer with special tokens only.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from typing import Any, Literal

__all__ = ["build_trainer", "encode", "sentences", "tiny_bert", "tokenizer", "vocabulary"]

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


POSITIVE = _words(
    "good great excellent wonderful moving brilliant charming delightful funny superb "
    "beautiful gripping touching clever fresh engaging warm lovely powerful stunning "
    "masterful witty heartfelt enjoyable memorable inventive tender joyous rich vivid"
)

NEGATIVE = _words(
    "bad awful boring dull terrible tedious weak clumsy bland lifeless flat pointless "
    "annoying messy predictable shallow tiresome stale forgettable hollow dreary "
    "sluggish muddled painful lazy grating empty trite murky"
)

COMMON = _words(
    "the a an this that it its film movie story script director cast actor actress plot "
    "scene scenes ending characters character performance performances music score camera "
    "is was are were be has have had feels seems looks remains becomes and but or so yet "
    "with without of in on at for from by about as than too very quite rather almost "
    "never always often still just more most less much some every each one two first last "
    "its their his her our your who which what when while where how time year life world "
    "love family war city night day man woman people audience viewers fans critics "
    "drama comedy thriller romance documentary animation sequel remake hour minutes"
)

_SYLLABLES = _words("ka lo mi ne su ra ti po ve da fi gu ho ja ke lu ma no pe qi ro sa tu vo wa ze")


def vocabulary(filler_words: int = 600) -> dict[str, int]:
    """Token -> id: special tokens, then every word the generator uses (deterministic)."""
    words = list(SPECIAL) + sorted(set(POSITIVE) | set(NEGATIVE) | set(COMMON))
    fillers = ("".join(p) for p in itertools.product(_SYLLABLES, repeat=2))
    taken = set(words)
    words.extend(itertools.islice((f for f in fillers if f not in taken), filler_words))
    return {w: i for i, w in enumerate(words)}


def _fillers(vocab: dict[str, int]) -> list[str]:
    known = set(SPECIAL) | set(POSITIVE) | set(NEGATIVE) | set(COMMON)
    return [w for w in vocab if w not in known]


def tokenizer(vocab: dict[str, int] | None = None) -> Any:
    """A ``BertTokenizer`` over :func:`vocabulary` (no download)."""
    from transformers import BertTokenizer

    return BertTokenizer(vocab=dict(vocab or vocabulary()))


def sentences(
    n: int,
    *,
    seed: int = 0,
    median_words: float = 17.0,
    sigma: float = 0.5,
    min_words: int = 2,
    max_words: int = 60,
    flip: float = 0.15,
) -> list[tuple[str, int]]:
    """``n`` labelled sentences ``(text, label)``, 1 = positive; reproducible for a ``seed``.

    Word counts are log-normal (``median_words``, ``sigma``) clipped to ``[min_words,
    max_words]``; one sentiment word per ~6 words (at least one) carries the label, each
    pointing the other way with probability ``flip``.
    """
    rng = random.Random(seed)
    fill = _fillers(vocabulary())
    out = []
    for _ in range(n):
        length = round(math.exp(rng.gauss(math.log(median_words), sigma)))
        length = max(min_words, min(max_words, length))
        label = rng.randrange(2)
        n_sent = max(1, length // 6)
        words = []
        for _ in range(length - n_sent):
            words.append(rng.choice(COMMON) if rng.random() < 0.8 else rng.choice(fill))
        for _ in range(n_sent):
            positive = (label == 1) != (rng.random() < flip)
            words.insert(
                rng.randrange(len(words) + 1), rng.choice(POSITIVE if positive else NEGATIVE)
            )
        out.append((" ".join(words), label))
    return out


def encode(
    tok: Any,
    pairs: Sequence[tuple[str, int]],
    *,
    padding: Literal["dynamic", "max_length"] = "dynamic",
    max_length: int = 128,
) -> list[dict[str, Any]]:
    """Tokenised examples (``input_ids``, ``token_type_ids``, ``attention_mask``, ``labels``).

    ``"dynamic"`` leaves them unpadded (a ``DataCollatorWithPadding`` pads each batch to its
    longest example); ``"max_length"`` pads every example to ``max_length`` now.
    """
    if padding not in ("dynamic", "max_length"):
        raise ValueError(f"padding must be 'dynamic' or 'max_length', got {padding!r}")
    enc = tok(
        [t for t, _ in pairs],
        truncation=True,
        max_length=max_length,
        padding="max_length" if padding == "max_length" else False,
    )
    keys = list(enc.keys())
    return [{**{k: enc[k][i] for k in keys}, "labels": label} for i, (_, label) in enumerate(pairs)]


def tiny_bert(
    vocab_size: int,
    *,
    seed: int = 0,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 2,
    intermediate: int = 128,
    max_positions: int = 512,
    num_labels: int = 2,
) -> Any:
    """A randomly initialised ``BertForSequenceClassification`` (seeded)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        pad_token_id=0,
    )
    config.num_labels = num_labels
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def build_trainer(
    output_dir: str,
    *,
    train_examples: int = 2000,
    eval_examples: int = 400,
    padding: Literal["dynamic", "max_length"] = "dynamic",
    max_length: int = 128,
    seed: int = 0,
    callbacks: Sequence[Any] | None = None,
    model_options: dict[str, Any] | None = None,
    **training_args: Any,
) -> Any:
    """A ``Trainer`` fine-tuning :func:`tiny_bert` on :func:`sentences`, entirely offline.

    ``training_args`` go to ``TrainingArguments`` (defaults: 1 epoch, batch 16, lr 5e-4, no
    checkpoints, no reporting, no progress bar, CPU).
    """
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    tok = tokenizer()
    train = encode(
        tok, sentences(train_examples, seed=seed), padding=padding, max_length=max_length
    )
    dev = encode(
        tok, sentences(eval_examples, seed=seed + 1), padding=padding, max_length=max_length
    )
    options: dict[str, Any] = {
        "num_train_epochs": 1,
        "per_device_train_batch_size": 16,
        "per_device_eval_batch_size": 64,
        "learning_rate": 5e-4,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "seed": seed,
        "logging_steps": 20,
    }
    options.update(training_args)
    args = TrainingArguments(output_dir=output_dir, **options)
    model = tiny_bert(len(tok), seed=seed, **(model_options or {}))
    return Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=dev,
        data_collator=DataCollatorWithPadding(tok),
        processing_class=tok,
        callbacks=list(callbacks or []),
    )
