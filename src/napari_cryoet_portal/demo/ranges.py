"""Whole and ranged object reads as WSGI responses, the way S3 and CDNs answer them.

Both demo servers answer ``GET``/``HEAD`` of an object here: ``Range: bytes=a-b`` gives
``206 Partial Content`` with ``Content-Range``, an unsatisfiable range ``416``, otherwise
``200`` with the whole object, always with ``Accept-Ranges``, ``ETag`` and
``Last-Modified``. Bytes are read from where the object lives (a file, moto's spooled
buffer, a generated chunk) at the requested offset: a ranged read of a 63 MB chunk costs
what it returns, as on S3 (moto itself copies the whole object for every GET).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.utils import formatdate

__all__ = ["ObjectBody", "ObjectRequest", "parse_range", "respond", "virtual_body"]

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")
_PIECE = 1 << 20  # read and send in pieces of this size: a 63 MB chunk never sits in memory twice


@dataclass(frozen=True)
class ObjectRequest:
    """One request as the demo servers log it: what was asked, answered and sent, and when
    (``time.monotonic()`` once the last byte went out)."""

    method: str
    path: str
    status: int
    nbytes: int
    time: float
    range: str | None = None  # the request's Range header, if any


@dataclass(frozen=True)
class ObjectBody:
    """An object's size, validators and a reader of ``[start, stop)``."""

    size: int
    etag: str
    last_modified: float  # seconds since the epoch
    read: Callable[[int, int], bytes]
    content_type: str = "binary/octet-stream"


_VIRTUAL_MODIFIED = 1_704_067_200.0  # 2024-01-01: generated objects never change


def virtual_body(key: str, data: bytes) -> ObjectBody:
    """An object made on request: deterministic per key, so its key names its version (no
    MD5 of 63 MB per GET)."""
    etag = f'"{hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()}"'
    return ObjectBody(len(data), etag, _VIRTUAL_MODIFIED, lambda a, b: data[a:b])


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``(start, stop)`` of a single ``bytes=`` range, ``None`` without one (or for forms this
    server answers whole, e.g. several ranges), ``False`` when it cannot be satisfied."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None  # multiple ranges or another unit: RFC 9110 allows answering 200
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            return False
        return max(0, size - n), size
    start = int(first)
    stop = size if not last else min(size, int(last) + 1)
    if start >= size or stop <= start:
        return False
    return start, stop


def respond(
    environ: dict, start_response: Callable, body: ObjectBody, extra_headers: Iterable[tuple[str, str]] = ()
) -> Iterable[bytes]:
    """The response to a ``GET`` or ``HEAD`` of ``body`` (honouring ``Range``)."""
    method = environ.get("REQUEST_METHOD", "GET")
    headers = [
        ("Accept-Ranges", "bytes"),
        ("ETag", body.etag),
        ("Last-Modified", formatdate(body.last_modified, usegmt=True)),
        ("Content-Type", body.content_type),
        *extra_headers,
    ]
    wanted = parse_range(environ.get("HTTP_RANGE"), body.size)
    if wanted is False:
        start_response(
            "416 Requested Range Not Satisfiable",
            [*headers, ("Content-Range", f"bytes */{body.size}"), ("Content-Length", "0")],
        )
        return [b""]
    if wanted is None:
        start, stop, status = 0, body.size, "200 OK"
    else:
        start, stop = wanted
        status = "206 Partial Content"
        headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{body.size}"))
    headers.append(("Content-Length", str(stop - start)))
    start_response(status, headers)
    if method == "HEAD":
        return [b""]
    return _pieces(body, start, stop)


def _pieces(body: ObjectBody, start: int, stop: int) -> Iterator[bytes]:
    for offset in range(start, stop, _PIECE):
        yield body.read(offset, min(stop, offset + _PIECE))
