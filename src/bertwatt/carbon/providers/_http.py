"""A provider's JSON GET: retries, the providers' wording of failures, redacted errors.

The HTTP itself (a total deadline, a body cap, no redirects, TLS, proxies from the environment,
secrets that never print) is :mod:`bertwatt._http`, shared with the wall meters;
:class:`Secret`, :func:`check_credential` and :func:`redact` are re-exported from it. The base of
the bundled providers (settings, cache, readings) is :mod:`._base`.

:func:`get_json` does one GET with a total deadline, retries timeouts, connection errors, HTTP 429
and 5xx with exponential backoff, refuses redirects (so an auth header cannot follow one to
another host), caps the body size and parses JSON.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from bertwatt._http import (
    Failure,
    Origin,
    Redactor,
    Secret,
    StatusError,
    TransportError,
    body_text,
    check_credential,
    cut,
    env_proxy,
    parse_json,
    parse_origin,
    redact,
    request,
    tls_context,
)
from bertwatt.errors import BertwattError, CarbonDataError

__all__ = [
    "ProviderHTTPError",
    "Secret",
    "check_credential",
    "get_json",
    "redact",
    "redact_error",
]

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_BODY = 1 << 20
_MAX_BACKOFF_S = 30.0
_MAX_ERROR_BODY = 64 << 10  # read this much of an error answer, redact it whole, then cut
_MAX_MESSAGE = 300


def redact_error(err: BaseException, secrets: Iterable[Secret | str]) -> None:
    """Redact a bertwatt error's message, ``where``, ``fix`` and ``args`` in place."""
    redactor = Redactor(secrets)
    if isinstance(err, BertwattError):
        err.message = redactor(err.message)
        if err.where:
            err.where = redactor(err.where)
        if err.fix:
            err.fix = redactor(err.fix)
        err.args = (err.message,)
    else:
        err.args = tuple(redactor(str(a)) for a in err.args)


class ProviderHTTPError(StatusError, CarbonDataError):
    """A live provider answered with an HTTP error status (``status``) or could not be reached.

    ``status`` is None when no HTTP answer came (timeout, refused connection, DNS).
    """


def get_json(
    url: str,
    *,
    provider: str,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
    retries: int,
    backoff_s: float,
    secrets: Iterable[Secret | str] = (),
    sleep: Callable[[float], None] = time.sleep,
    origin: Origin | None = None,
) -> Any:
    """GET ``url`` and return its parsed JSON body.

    Each attempt has a total deadline of ``timeout_s``. Retries (at most ``retries`` times,
    waiting ``backoff_s * 2**k`` seconds, capped at 30 s) on timeouts, connection errors, HTTP 429
    and 5xx. Other HTTP errors, redirects, bodies over 1 MiB and malformed JSON fail at once. The
    ``http_proxy`` / ``https_proxy`` / ``no_proxy`` environment variables apply, as in urllib.
    ``origin`` (the parsed base URL, when the caller has it) saves parsing ``url`` again.

    Raises:
        ProviderHTTPError: the provider could not be reached or answered with an error status.
        CarbonDataError: the body is not JSON.
    """
    secret_list = list(secrets)
    if origin is None:
        origin = parse_origin(url, what="base_url")
    parts = urlsplit(url)
    path = (parts.path or "/")[len(origin.prefix) :] + (f"?{parts.query}" if parts.query else "")
    hdrs = {"Accept": "application/json", "User-Agent": _user_agent(), **(headers or {})}
    where = redact(url, secret_list)
    context = tls_context(True, what=provider) if origin.scheme == "https" else None
    proxy = env_proxy(origin)
    attempt = 0
    while True:
        failure: ProviderHTTPError
        try:
            resp = request(
                origin,
                "GET",
                path,
                timeout_s=timeout_s,
                max_body=_MAX_BODY,
                headers=hdrs,
                context=context,
                proxy=proxy,
                secrets=secret_list,
            )
        except TransportError as err:
            failure = _transport_failure(err, provider, where)
            retry = err.kind != "header"
        else:
            if 200 <= resp.status < 300:  # as urllib: any 2xx is an answer
                return _json_answer(resp.body, resp.complete, resp.redact, provider, where)
            snippet = body_text(resp.body[:_MAX_ERROR_BODY], resp.redact, limit=_MAX_MESSAGE)
            text = f"HTTP {resp.status} {resp.reason}" + (f": {snippet}" if snippet else "")
            failure = ProviderHTTPError(
                cut(text, _MAX_MESSAGE), backend=provider, where=where, status=resp.status
            )
            retry = resp.status in _RETRY_STATUS
        if not retry or attempt >= retries:
            if attempt:
                failure.message += f" (after {attempt + 1} attempts)"
                failure.args = (failure.message,)
            raise failure
        delay = min(_MAX_BACKOFF_S, backoff_s * (2**attempt))
        logger.debug("%s: %s; retrying in %.3g s", provider, failure.message, delay)
        sleep(delay)
        attempt += 1


def _json_answer(body: bytes, complete: bool, redactor: Redactor, provider: str, where: str) -> Any:
    if not complete:
        raise CarbonDataError(
            "answer larger than 1 MiB; refusing to parse it", backend=provider, where=where
        )
    parsed, bad = parse_json(body)
    if bad is not None:
        raise CarbonDataError(
            cut(redactor(f"malformed JSON in the answer ({bad})"), _MAX_MESSAGE),
            backend=provider,
            where=where,
            fix="check base_url points at the provider's API; retry later",
        )
    return parsed


#: How a provider words a request that got no HTTP answer (see TransportError.phrase).
_NO_ANSWER: dict[Failure, tuple[str, str | None]] = {
    "timeout": ("{}", None),
    "connect": ("cannot connect ({})", None),
    "protocol": ("bad HTTP answer ({})", None),
    "tls": (
        "{}",
        "check base_url; the provider's certificate must chain to this machine's CA store "
        "(or to the bundle SSL_CERT_FILE names)",
    ),
    "header": ("{}", "check the token or password for stray characters"),
}


def _transport_failure(err: TransportError, provider: str, where: str) -> ProviderHTTPError:
    """The provider's wording of a request that got no HTTP answer."""
    text, fix = err.phrase(_NO_ANSWER)
    return ProviderHTTPError(cut(text, _MAX_MESSAGE), backend=provider, where=where, fix=fix)


def _user_agent() -> str:
    try:
        from bertwatt._version import __version__
    except ImportError:  # pragma: no cover
        __version__ = "unknown"
    return f"bertwatt/{__version__} (+https://pypi.org/project/bertwatt/)"
