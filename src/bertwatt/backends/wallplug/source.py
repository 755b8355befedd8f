"""One string for a wall meter, as ``bertwatt run --wallplug SOURCE`` and ``BERTWATT_WALLPLUG``
take it.

==================================================== ===========================================
source                                               meter
==================================================== ===========================================
``shelly+http://192.168.1.50``                       Shelly (``?switch=1``, ``?component=pm1``)
``tasmota+http://192.168.1.51``                      Tasmota
``redfish+https://admin@bmc.example?chassis=1``      Redfish (``auth=session|basic|none``,
                                                     ``verify=0`` or ``verify=/path/ca.pem``)
``ipmi://admin@10.0.0.5`` / ``ipmi:`` (in-band)      IPMI (``interface=``, ``sensor=``, ``mode=``)
``command:my-meter --watts``                         a reader program (shell-like splitting)
``json+http://host/status#watts=meters.0.power``     JSON URL; fields after ``#`` (``watts``,
                                                     ``energy_j``, ``energy_wh``, ``energy_kwh``)
==================================================== ===========================================

Every source also takes ``device=``, ``prefer=``, ``timeout=`` (s), ``poll=`` (s) and
``max_power_w=`` in its query (after ``#`` for ``json+``). A user name may be given as
``user@host``; a **password never** (it would be visible in process lists and shell history):
use ``BERTWATT_WALLPLUG_PASSWORD_FILE`` or ``BERTWATT_WALLPLUG_PASSWORD``.
"""

from __future__ import annotations

import shlex
import urllib.parse
from typing import Any

from bertwatt.errors import ConfigError

__all__ = ["parse_source"]

_COMMON = {"device", "prefer", "timeout", "poll", "max_power_w"}
_PER_KIND = {
    "shelly": {"switch", "component"},
    "tasmota": set(),
    "redfish": {"chassis", "auth", "verify", "update_period"},
    "ipmi": {"interface", "sensor", "mode", "update_period", "cipher"},
    "http_json": {"watts", "energy_j", "energy_wh", "energy_kwh", "verify", "update_period"},
}
_KINDS = "shelly+http://, tasmota+http://, redfish+https://, ipmi://, command:, json+http://"
_ECHO = 120


_NO_PASSWORD = (
    "a password may not be part of the source string (process lists and shell history show "
    "it); set BERTWATT_WALLPLUG_PASSWORD_FILE (or BERTWATT_WALLPLUG_PASSWORD)"
)


def _fail(source: str, why: str) -> ConfigError:
    if why is _NO_PASSWORD:  # never echo a string that holds a password
        return ConfigError(f"wall-plug source: {why}")
    return ConfigError(
        f"wall-plug source {source[:_ECHO]!r}: {why} (expected one of {_KINDS}; "
        "see docs/wallplug.md)"
    )


def _number(source: str, key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _fail(source, f"{key}={text[:40]!r} is not a number") from None


def _options(source: str, kind: str, query: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    allowed = _COMMON | _PER_KIND[kind]
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key in ("password", "pass", "pw", "token"):
            raise _fail(source, _NO_PASSWORD)
        if key not in allowed:
            raise _fail(
                source, f"unknown option {key[:40]!r} (known: {', '.join(sorted(allowed))})"
            )
        if key in out:
            raise _fail(source, f"option {key!r} given twice")
        if key == "timeout":
            out["timeout_s"] = _number(source, key, value)
        elif key == "poll":
            out["poll_interval_s"] = _number(source, key, value)
        elif key == "max_power_w":
            out["max_power_w"] = _number(source, key, value)
        elif key == "update_period":
            out["update_period_s"] = _number(source, key, value)
        elif key == "cipher":
            if not value.isdigit():
                raise _fail(source, f"cipher={value[:40]!r} is not a cipher suite number")
            out["cipher_suite"] = int(value)
        elif key == "switch":
            if not value.isdigit():
                raise _fail(source, f"switch={value[:40]!r} is not a channel number")
            out["switch"] = int(value)
        elif key == "verify":
            low = value.lower()
            if low in ("0", "false", "no", "off"):
                out["verify"] = False
            elif low in ("1", "true", "yes", "on", ""):
                out["verify"] = True
            else:
                out["verify"] = value
        else:
            out[key] = value
    return out


def _split_url(source: str, rest: str) -> tuple[str, str | None, str, str]:
    """(url without user or query, user, query, fragment)."""
    parts = urllib.parse.urlsplit(rest)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(source, "the address must be an http:// or https:// URL with a host")
    if parts.password is not None:
        raise _fail(source, _NO_PASSWORD)
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    try:
        port = parts.port
    except ValueError:
        raise _fail(source, "bad port") from None
    if port:
        netloc = f"{netloc}:{port}"
    url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return url, parts.username, parts.query, parts.fragment


def parse_source(source: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """``(constructor name, args, kwargs)`` for :class:`WallPlugBackend` from a source string.

    Raises:
        ConfigError: the string names no known meter, or holds a password or a bad option.
    """
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"a wall-plug source must be a non-empty string, got {source!r}")
    source = source.strip()
    if any(ord(ch) < 32 for ch in source):
        raise ConfigError("a wall-plug source may not contain control characters")
    head, sep, rest = source.partition(":")
    scheme = head.lower()
    if scheme == "command":
        try:
            argv = shlex.split(rest)
        except ValueError as err:
            raise _fail(source, f"cannot split the command line ({err})") from None
        if not argv:
            raise _fail(source, "no program after 'command:'")
        return "command", (argv,), {}
    if scheme == "ipmi" or source.lower() == "ipmi":
        tail = rest[2:] if rest.startswith("//") else rest
        hostpart, _, query = tail.partition("?")
        kwargs = _options(source, "ipmi", query)
        user = None
        if "@" in hostpart:
            user, _, hostpart = hostpart.rpartition("@")
            if ":" in user:
                raise _fail(source, _NO_PASSWORD)
        host: str | None = hostpart or None
        if host and host.count(":") == 1:
            host, port_text = host.split(":")
            if not port_text.isdigit():
                raise _fail(source, f"bad port {port_text[:20]!r}")
            kwargs["port"] = int(port_text)
        if user:
            kwargs["user"] = urllib.parse.unquote(user)
        if host is None:
            kwargs.setdefault("interface", "open")
        return "ipmi", (host,), kwargs
    if not sep or "+" not in scheme:
        raise _fail(source, "unknown kind of meter")
    kind, _, transport = scheme.partition("+")
    kind = {"json": "http_json", "http_json": "http_json"}.get(kind, kind)
    if kind not in ("shelly", "tasmota", "redfish", "http_json") or transport not in (
        "http",
        "https",
    ):
        raise _fail(source, f"unknown kind of meter {head[:40]!r}")
    url, user, query, fragment = _split_url(source, f"{transport}:{rest}")
    if kind == "http_json":
        kwargs = _options(source, kind, fragment)
        if query:
            url = f"{url}?{query}"
    else:
        if fragment:
            raise _fail(source, "unexpected '#' part (options go after '?')")
        kwargs = _options(source, kind, query)
    if user:
        kwargs["user"] = urllib.parse.unquote(user)
    return kind, (url,), kwargs
