"""Lazy public names for package ``__init__`` modules (PEP 562), so imports stay light."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["OPTIONAL_EXTRAS", "lazy_names"]

#: top-level module of an optional dependency -> the bertwatt extra that installs it
OPTIONAL_EXTRAS = {
    "transformers": "hf",
    "torch": "hf",
    "accelerate": "hf",
    "pynvml": "nvml",
    "matplotlib": "plot",
}


def lazy_names(
    package: str, namespace: dict[str, Any], where: Mapping[str, str | tuple[str, str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build a module's ``__getattr__`` and ``__dir__`` from ``name -> module`` (or
    ``name -> (module, attribute)``). A resolved name is cached in ``namespace``.

    A name whose module needs an optional dependency that is missing raises a
    ``ModuleNotFoundError`` (an ImportError) naming the extra to install, e.g.
    ``pip install 'bertwatt[hf]'``, instead of a bare "No module named 'transformers'".
    """

    def getattr_(name: str) -> Any:
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = (target, name) if isinstance(target, str) else target
        try:
            imported = importlib.import_module(module)
        except ModuleNotFoundError as err:
            missing = (err.name or "").partition(".")[0]
            extra = OPTIONAL_EXTRAS.get(missing)
            if extra is None:
                raise
            raise ModuleNotFoundError(
                f"{package}.{name} needs {missing!r}, which is not installed. Fix: "
                f"pip install 'bertwatt[{extra}]'",
                name=err.name,
            ) from err
        value = getattr(imported, attr)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(namespace.get("__all__", where))

    return getattr_, dir_
