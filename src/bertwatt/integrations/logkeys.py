"""The ``energy/*`` keys :class:`~bertwatt.EnergyCallback` adds to the Trainer's logs.

A short default set goes to every log line (and so to TensorBoard, W&B, MLflow, ...); the rest
on request (``EnergyCallback(log_metrics="all")`` or a list of names). Each key is named after
the report field it previews: ``energy/j_per_token_padded`` is ``j_per_token_padded`` of the
report's ``phase_metrics``.

=============================== ================================================= =========
key                             what                                              default
=============================== ================================================= =========
``energy/kwh``                  energy so far (all segments of a resumed run)     yes
``energy/mean_power_w``         this session's mean power                         yes
``energy/j_per_token_padded``   J per token processed in training (padding incl.) yes
``energy/gco2e``                emissions so far (with a carbon intensity)        yes
``energy/predicted_kwh``        the whole run's predicted energy                  yes
``energy/j_per_step``           J per optimizer step                              no
``energy/j_per_example``        J per training example                            no
``energy/j_per_token_nonpadding`` J per non-padding training token                no
``energy/padding_share``        padding tokens / tokens processed in training     no
``energy/predicted_gco2e``      the whole run's predicted emissions               no
=============================== ================================================= =========
"""

from __future__ import annotations

from collections.abc import Iterable

from bertwatt.errors import ConfigError

__all__ = ["ALL_LOG_KEYS", "DEFAULT_LOG_KEYS", "log_keys"]

DEFAULT_LOG_KEYS: tuple[str, ...] = (
    "energy/kwh",
    "energy/mean_power_w",
    "energy/j_per_token_padded",
    "energy/gco2e",
    "energy/predicted_kwh",
)
ALL_LOG_KEYS: tuple[str, ...] = (
    *DEFAULT_LOG_KEYS,
    "energy/j_per_step",
    "energy/j_per_example",
    "energy/j_per_token_nonpadding",
    "energy/padding_share",
    "energy/predicted_gco2e",
)


def log_keys(spec: bool | str | Iterable[str]) -> frozenset[str]:
    """The keys to log for ``log_metrics=spec``: True (default set), False (none), ``"all"``, or
    names (``"j_per_step"`` or ``"energy/j_per_step"``).

    Raises:
        ConfigError: an unknown name, naming the known ones.
    """
    if spec is True:
        return frozenset(DEFAULT_LOG_KEYS)
    if spec is False or spec is None:
        return frozenset()
    if spec == "all":
        return frozenset(ALL_LOG_KEYS)
    if isinstance(spec, str):
        spec = [spec]
    out = set()
    try:
        names = list(spec)
    except TypeError:
        raise ConfigError(
            f"log_metrics must be True, False, 'all' or key names, got {spec!r}"
        ) from None
    for name in names:
        key = name if isinstance(name, str) and name.startswith("energy/") else f"energy/{name}"
        if key not in ALL_LOG_KEYS:
            known = ", ".join(k.removeprefix("energy/") for k in ALL_LOG_KEYS)
            raise ConfigError(f"unknown log_metrics key {name!r}; known: {known}, or 'all'")
        out.add(key)
    return frozenset(out)
