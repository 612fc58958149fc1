"""Fetched bytes kept on disk, so that revisits and restarts cost no network.

Portal objects are immutable in practice (a changed tomogram gets a new path), so what was
read once can be served again: chunk headers, the blosc blocks of the planes a view needed,
whole chunks and small files. :class:`ByteCache` wraps ``diskcache`` (SQLite index + files,
thread- and process-safe, least-recently-used eviction under a size limit) and keys entries
by the object's full URL including the endpoint it came from, plus the byte range, so that
two portals (say the demo on a random port and the real one) never mix.

Where: ``NAPARI_CRYOET_PORTAL_BYTE_CACHE`` (a folder) or ``~/.cache/napari-cryoet-portal/bytes``;
how much: ``NAPARI_CRYOET_PORTAL_BYTE_CACHE_MB`` (default 4096; 0 turns it off). Entries
expire after a week, in case a portal object is replaced in place.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["ByteCache", "default_byte_cache", "set_default_byte_cache"]

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "NAPARI_CRYOET_PORTAL_BYTE_CACHE"
CACHE_MB_ENV = "NAPARI_CRYOET_PORTAL_BYTE_CACHE_MB"
DEFAULT_MB = 4096
EXPIRE_S = 7 * 24 * 3600.0


class ByteCache:
    """Byte strings by (URL, start, stop) on disk, with a size limit (bytes)."""

    def __init__(self, directory: str | os.PathLike[str], size_limit: int) -> None:
        import diskcache  # imported here: only readers that cache pay for it

        self.directory = Path(directory)
        self.size_limit = size_limit
        self._cache = diskcache.Cache(
            str(self.directory),
            size_limit=size_limit,
            eviction_policy="least-recently-used",
            cull_limit=16,
        )
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(url: str, start: int | None = None, stop: int | None = None) -> str:
        return f"{url}#{'' if start is None else start}-{'' if stop is None else stop}"

    def get(self, url: str, start: int | None = None, stop: int | None = None) -> bytes | None:
        try:
            value = self._cache.get(self.key(url, start, stop))
        except Exception as exc:  # noqa: BLE001 - a broken cache must never break a read
            logger.warning("byte cache read failed: %s", exc)
            value = None
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        return bytes(value)

    def put(self, url: str, data: bytes, start: int | None = None, stop: int | None = None) -> None:
        if len(data) > self.size_limit // 8:
            return  # one object must not wipe out everything else
        try:
            self._cache.set(self.key(url, start, stop), bytes(data), expire=EXPIRE_S)
        except Exception as exc:  # noqa: BLE001 - a full disk only costs us the cache
            logger.warning("byte cache write failed: %s", exc)

    def __len__(self) -> int:
        return len(self._cache)

    def volume(self) -> int:
        """Bytes on disk."""
        return int(self._cache.volume())

    def clear(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        self._cache.close()

    def __getstate__(self) -> Any:  # pragma: no cover - caches are per process
        raise TypeError("ByteCache is not picklable")


_default: ByteCache | None = None
_default_set = False
_lock = threading.Lock()


def _env_megabytes() -> int:
    text = os.environ.get(CACHE_MB_ENV, "").strip()
    if not text:
        return DEFAULT_MB
    try:
        value = float(text)
    except ValueError:
        logger.warning("%s=%r is not a number of megabytes; using %d", CACHE_MB_ENV, text, DEFAULT_MB)
        return DEFAULT_MB
    return max(0, int(value))


def default_byte_cache() -> ByteCache | None:
    """The process's cache (from the environment), or None when turned off or unusable."""
    global _default, _default_set
    with _lock:
        if not _default_set:
            _default_set = True
            megabytes = _env_megabytes()
            if megabytes > 0:
                folder = os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "napari-cryoet-portal" / "bytes"
                try:
                    _default = ByteCache(folder, megabytes << 20)
                except Exception as exc:  # noqa: BLE001 - e.g. a read-only home: read without it
                    logger.warning("no byte cache at %s: %s", folder, exc)
                    _default = None
        return _default


def set_default_byte_cache(cache: ByteCache | None) -> None:
    """Use ``cache`` from now on (None turns caching off); for tests and embedding apps."""
    global _default, _default_set
    with _lock:
        _default, _default_set = cache, True
