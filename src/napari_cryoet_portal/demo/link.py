"""A shaped network link for the demo servers: bandwidth shared by all connections, latency
per request.

On loopback every byte is free, which flatters any client that reads more than it needs.
The real portal sits behind a link of finite bandwidth (100 Mbit/s is a good office or home
connection) and tens of milliseconds per request; :class:`Link` imposes both on the demo's
S3 and file servers, so that benchmarks and byte-counting tests see what a user would.

One token bucket is shared by every connection of every server the link is given to (the
user's connection is one pipe, whatever the number of parallel requests), and each request
waits ``latency_s`` before its first byte.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["Link", "shaped"]

_SLICE = 64 * 1024  # bytes sent per token grab: small enough to interleave connections fairly


class Link:
    """Bandwidth (bits/s, ``None`` = unlimited) and per-request latency (seconds)."""

    def __init__(self, mbps: float | None = None, latency_s: float = 0.0) -> None:
        if mbps is not None and mbps <= 0:
            raise ValueError(f"link bandwidth must be positive, not {mbps} Mbit/s")
        if latency_s < 0:
            raise ValueError(f"link latency must not be negative, not {latency_s} s")
        self.bytes_per_s = None if mbps is None else mbps * 1e6 / 8
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self._next_free = 0.0  # monotonic time at which the pipe is free again

    @property
    def shaping(self) -> bool:
        return self.bytes_per_s is not None or self.latency_s > 0

    def wait_latency(self) -> None:
        if self.latency_s > 0:
            time.sleep(self.latency_s)

    def send(self, nbytes: int) -> None:
        """Block until ``nbytes`` have gone through the shared pipe."""
        if self.bytes_per_s is None or nbytes <= 0:
            return
        delay = self.book(nbytes) - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def book(self, nbytes: int) -> float:
        """Reserve the pipe for ``nbytes`` after what is already booked; returns the
        monotonic time at which they have gone through."""
        assert self.bytes_per_s is not None
        with self._lock:
            start = max(time.monotonic(), self._next_free)
            self._next_free = start + nbytes / self.bytes_per_s
            return self._next_free

    def body(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks`` re-cut into slices, each released when the pipe has carried it."""
        for chunk in chunks:
            view = memoryview(chunk)
            for i in range(0, len(view), _SLICE):
                piece = view[i : i + _SLICE]
                self.send(len(piece))
                yield bytes(piece)


def shaped(app: Callable, link: Link | Callable[[], Link | None] | None) -> Callable:
    """A WSGI app whose responses go through ``link`` (latency before the status line, then
    the body at the link's bandwidth). ``link`` may be a function returning the link in force
    (read per request, so a test can slow a running server down); None or an unshaped link
    passes responses through as they are."""
    current = link if callable(link) else (lambda: link)

    def shaped_app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        now = current()
        if now is None or not now.shaping:
            return app(environ, start_response)
        now.wait_latency()
        body = app(environ, start_response)
        return _ShapedBody(body, now)

    return shaped_app


class _ShapedBody:
    """Keeps the wrapped body's ``close`` (WSGI servers call it) while pacing its bytes."""

    def __init__(self, body: Iterable[bytes], link: Link) -> None:
        self._body = body
        self._link = link

    def __iter__(self) -> Iterator[bytes]:
        return self._link.body(self._body)

    def close(self) -> Any:
        close = getattr(self._body, "close", None)
        return close() if close is not None else None
