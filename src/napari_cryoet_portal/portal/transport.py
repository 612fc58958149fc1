"""One pooled HTTP connection to a GraphQL endpoint: timeouts, bounded retries, typed errors.

urllib3 is already in the stack (botocore depends on it); its pool is thread-safe, so one
transport serves every worker thread and keeps connections alive between requests.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

import urllib3

from .errors import (
    PortalConnectionError,
    PortalGraphQLError,
    PortalHTTPError,
    PortalResponseError,
)

__all__ = ["GraphQLTransport"]

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class GraphQLTransport:
    """POSTs GraphQL documents to ``url`` and returns the ``data`` member of the answer.

    Connection errors, 429 and 5xx are retried ``retries`` times with exponential backoff
    (honouring ``Retry-After``); anything else fails at once with a typed exception.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=timeout)
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=8,
            retries=False,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "napari-cryoet-portal",
            },
        )

    def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        """Run one GraphQL request (one HTTP round trip unless retried)."""
        body = json.dumps(
            {"query": query, "variables": dict(variables or {}), "operationName": operation_name}
        ).encode()
        attempt = 0
        while True:
            delay = self._delay(attempt)
            try:
                response = self._pool.request(
                    "POST", self.url, body=body, timeout=self._timeout, redirect=True
                )
            except urllib3.exceptions.HTTPError as exc:
                if attempt >= self.retries:
                    raise PortalConnectionError(
                        f"cannot reach {self.url}: {_reason(exc)}"
                    ) from exc
            else:
                if response.status in _RETRY_STATUSES and attempt < self.retries:
                    delay = max(delay, _retry_after(response))
                else:
                    return _decode(response)
            attempt += 1
            time.sleep(delay)

    def close(self) -> None:
        self._pool.clear()

    def _delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * (2**attempt))


def _decode(response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    """Turn a final HTTP answer into ``data`` or a typed exception."""
    text = response.data.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text) if text else None
    except ValueError:
        payload = None
    if response.status >= 400 and not (isinstance(payload, dict) and "errors" in payload):
        raise PortalHTTPError(response.status, _snippet(text) or response.reason or "")
    if not isinstance(payload, dict):
        raise PortalResponseError(f"expected a JSON object, got: {_snippet(text)!r}")
    errors = payload.get("errors")
    if errors:
        raise PortalGraphQLError([_message(e) for e in errors])
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PortalResponseError("the answer has neither data nor errors")
    return data


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)


def _retry_after(response: urllib3.BaseHTTPResponse) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return min(float(value), 30.0)
    except ValueError:
        return 0.0


def _reason(exc: Exception) -> str:
    """What went wrong, for a person: the socket's own words ("Connection refused") rather
    than urllib3's repr of the connection object, when there is one."""
    reason: BaseException = getattr(exc, "reason", None) or exc
    cause: BaseException | None = reason
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return str(reason)


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
