"""Pyramid levels that answer at once: what is fetched, else the coarse level, never a wait.

napari slices an image by calling ``np.asarray(level[key])`` on the thread that asks for
the view, which for napari's default (synchronous) slicing is the main thread. On a lazy
remote array that call is a download: one 256³ chunk of a portal tomogram is 64 MB, a plane
at full resolution touches a whole slab of them, and napari would freeze for seconds every
time the user moves the z slider.

A :class:`ProgressiveLevel` stands in for one level. Indexing it is free (it returns a lazy
view); converting a view to an array returns the real voxels when every chunk they need is
in memory, and otherwise a nearest-neighbour preview cut from the coarsest level, which is
in memory from the start, while a :class:`ChunkFetcher` downloads the missing chunks in
the background and then calls ``on_ready`` (the widget refreshes the layer, and the
second slice finds everything cached). So the first image is on screen as soon as the
coarsest level is read, and the view sharpens when its chunks land.

Fetches are whole chunks, kept decoded in a least-recently-used cache with a byte budget,
so moving through z inside a slab costs nothing; a newer view's request goes before older
ones, and requests nobody is waiting for any more are dropped.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np

from .pyramid import Pyramid

__all__ = [
    "ChunkCache",
    "ChunkFetcher",
    "ProgressiveLevel",
    "fetchers_in",
    "progressive_levels",
    "progressive_pyramid",
]

logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = int(os.environ.get("NAPARI_CRYOET_PORTAL_CACHE_MB", "1024")) << 20
"""Decoded chunks kept in memory, all layers together (``NAPARI_CRYOET_PORTAL_CACHE_MB``,
default 1 GB): one full-resolution slab of a typical portal tomogram."""

ChunkKey = tuple[int, int, tuple[int, ...]]  # (fetcher, level, chunk grid position)
_fetcher_ids = itertools.count()


class ChunkCache:
    """Decoded chunks by (fetcher, level, grid position), least recently used dropped first.

    A view that needs more than ``max_bytes`` raises it to that much: its chunks must all
    be in memory at once to be shown.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._chunks: OrderedDict[ChunkKey, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: ChunkKey) -> np.ndarray | None:
        with self._lock:
            chunk = self._chunks.get(key)
            if chunk is not None:
                self._chunks.move_to_end(key)
            return chunk

    def __contains__(self, key: ChunkKey) -> bool:
        with self._lock:
            return key in self._chunks

    def put(self, key: ChunkKey, chunk: np.ndarray) -> None:
        with self._lock:
            old = self._chunks.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._chunks[key] = chunk
            self.nbytes += chunk.nbytes
            while self.nbytes > self.max_bytes and len(self._chunks) > 1:
                _, dropped = self._chunks.popitem(last=False)
                self.nbytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self.nbytes = 0

    def drop(self, owner: int) -> None:
        """Forget the chunks of one fetcher."""
        with self._lock:
            for key in [k for k in self._chunks if k[0] == owner]:
                self.nbytes -= self._chunks.pop(key).nbytes


_CHUNK_READERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cryoet-chunk")
"""Chunk reads in flight at once, all layers together (each one GET and one decode)."""

SHARED_CACHE = ChunkCache()
"""The cache fetchers use unless given another: one memory budget for all open layers."""


class ChunkFetcher:
    """Downloads whole chunks of pyramid levels in the background, newest request first.

    ``sources[level]`` is anything sliceable to a numpy array with a ``chunks`` attribute
    (a zarr array; slicing a chunk-aligned box of it fetches its chunks concurrently).
    ``on_ready`` is called from the fetch thread after each request has landed.
    """

    def __init__(
        self,
        sources: Sequence[Any],
        *,
        cache: ChunkCache | None = None,
        max_pending: int = 1,
        settle_s: float = 0.03,
        on_ready: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.sources = tuple(sources)
        self.cache = cache if cache is not None else SHARED_CACHE
        self.id = next(_fetcher_ids)
        #: called from the fetch thread when a request has landed / failed
        self.on_ready = on_ready
        self.on_error = on_error
        #: requests kept waiting (the newest ones): a view the user has left is not fetched
        self.max_pending = max_pending
        #: how long a request waits before it is served, so that the views napari passes
        #: through while a layer is added or the camera moves are superseded, not fetched
        self.settle_s = settle_s
        self.errors: list[BaseException] = []
        self._pending: OrderedDict[tuple[int, tuple[tuple[int, int], ...]], None] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._running = 0
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cryoet-chunks")

    # --- geometry ---------------------------------------------------------------------------

    def chunk_shape(self, level: int) -> tuple[int, ...]:
        return tuple(int(c) for c in self.sources[level].chunks)

    def grid_box(self, level: int, box: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
        """The chunk-grid box (first, last + 1 per axis) covering voxel box ``box``."""
        return tuple(
            (lo // c, max(lo // c + 1, -(-hi // c)))
            for (lo, hi), c in zip(box, self.chunk_shape(level))
        )

    def missing(self, level: int, grid: Sequence[tuple[int, int]]) -> list[tuple[int, ...]]:
        return [
            pos
            for pos in itertools.product(*(range(a, b) for a, b in grid))
            if (self.id, level, pos) not in self.cache
        ]

    def chunk(self, level: int, pos: tuple[int, ...]) -> np.ndarray | None:
        return self.cache.get((self.id, level, pos))

    # --- requests ---------------------------------------------------------------------------

    def request(self, level: int, grid: tuple[tuple[int, int], ...]) -> None:
        """Fetch the chunks of ``grid`` (if still missing when its turn comes)."""
        with self._lock:
            if self._closed:
                return
            key = (level, grid)
            self._pending.pop(key, None)
            self._pending[key] = None
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)  # the oldest view is no longer wanted
        self._executor.submit(self._work)

    @property
    def idle(self) -> bool:
        """No request pending or running (the view is as sharp as it will get)."""
        with self._lock:
            return self._idle()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._lock:
            return self._wake.wait_for(self._idle, timeout)

    def _idle(self) -> bool:
        return not self._pending and self._running == 0

    def close(self) -> None:
        """Drop pending requests and this fetcher's chunks; later requests are ignored."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._wake.notify_all()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.cache.drop(self.id)

    def _work(self) -> None:
        if self.settle_s:
            time.sleep(self.settle_s)
        with self._lock:
            if self._closed or not self._pending:
                return  # its request was dropped, or served by an earlier turn
            (level, grid), _ = self._pending.popitem(last=True)  # newest first
            self._running += 1
        try:
            self._fetch(level, grid)
            if self.on_ready is not None and not self._closed:
                self.on_ready()
        except BaseException as exc:  # noqa: BLE001 - kept for the caller, the view keeps its preview
            logger.warning("fetching chunks failed: %s", exc)
            self.errors.append(exc)
            if self.on_error is not None and not self._closed:
                self.on_error(exc)
        finally:
            with self._lock:
                self._running -= 1
                self._wake.notify_all()

    def _fetch(self, level: int, grid: tuple[tuple[int, int], ...]) -> None:
        missing = self.missing(level, grid)
        if not missing:
            return
        source = self.sources[level]
        chunks = self.chunk_shape(level)
        view = tuple(
            slice(a * c, min(b * c, n)) for (a, b), c, n in zip(grid, chunks, source.shape)
        )
        needed = int(np.prod([b.stop - b.start for b in view])) * np.dtype(source.dtype).itemsize
        if needed > self.cache.max_bytes:  # the view needs more than the budget: it gets it
            logger.info("chunk cache grows to %d MB for one view", needed >> 20)
            self.cache.max_bytes = needed

        def read(pos: tuple[int, ...]) -> None:
            box = tuple(slice(p * c, min((p + 1) * c, n)) for p, c, n in zip(pos, chunks, source.shape))
            self.cache.put((self.id, level, pos), np.asarray(source[box]))

        # chunk by chunk, a few at a time: each is decoded straight into the array the cache
        # keeps (one box around them all would hold every chunk twice while it is cut up)
        for _ in _CHUNK_READERS.map(read, missing):
            pass


class ProgressiveLevel:
    """One pyramid level as napari sees it: shape and dtype of the real level, reads that
    never wait (see the module docstring)."""

    def __init__(
        self,
        fetcher: ChunkFetcher,
        level: int,
        preview: np.ndarray,
        to_preview: Sequence[tuple[float, float]],
    ) -> None:
        """``to_preview[d] = (a, b)`` maps a voxel index ``i`` of this level on axis ``d`` to
        the preview's index ``round(a * i + b)`` (both grids in physical space)."""
        source = fetcher.sources[level]
        self.fetcher = fetcher
        self.level = level
        self.shape = tuple(int(n) for n in source.shape)
        self.dtype = np.dtype(source.dtype)
        self.ndim = len(self.shape)
        self.preview = preview
        self.to_preview = tuple(to_preview)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def chunks(self) -> tuple[int, ...]:
        return self.fetcher.chunk_shape(self.level)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> "_View":
        return _View(self, tuple(range(n) for n in self.shape))[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self[...].__array__(dtype)

    def __repr__(self) -> str:
        return f"ProgressiveLevel(level={self.level}, shape={self.shape}, dtype={self.dtype})"


class _View:
    """A box of a :class:`ProgressiveLevel` (per axis a ``range``, or an ``int`` for an axis
    indexed away); materialised only by ``np.asarray``."""

    def __init__(self, base: ProgressiveLevel, axes: tuple[range | int, ...]) -> None:
        self.base = base
        self.axes = axes
        self.shape = tuple(len(a) for a in axes if isinstance(a, range))
        self.ndim = len(self.shape)
        self.dtype = base.dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, key: Any) -> "_View":
        key = _expand(key if isinstance(key, tuple) else (key,), self.ndim)
        parts = iter(key)
        axes = []
        for axis in self.axes:
            if isinstance(axis, int):
                axes.append(axis)
                continue
            k = next(parts)
            if isinstance(k, slice):
                if k.step is not None and k.step < 0:
                    raise IndexError("negative steps are not supported")
                axes.append(axis[k])
            else:
                axes.append(axis[int(k)])
        return _View(self.base, tuple(axes))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._read()
        return out if dtype is None else out.astype(dtype, copy=False)

    def _read(self) -> np.ndarray:
        base = self.base
        fetcher = base.fetcher
        if self.size == 0:
            return np.zeros(self.shape, base.dtype)
        box = [(a, a + 1) if isinstance(a, int) else (min(a[0], a[-1]), max(a[0], a[-1]) + 1) for a in self.axes]
        grid = fetcher.grid_box(base.level, box)
        if fetcher.missing(base.level, grid):
            fetcher.request(base.level, grid)
            return self._preview()
        assembled = self._assemble(grid)
        if assembled is None:  # evicted between the check and the read: ask again
            fetcher.request(base.level, grid)
            return self._preview()
        return assembled

    def _assemble(self, grid: tuple[tuple[int, int], ...]) -> np.ndarray | None:
        base = self.base
        chunks = base.fetcher.chunk_shape(base.level)
        out = np.empty(self.shape, base.dtype)
        for pos in itertools.product(*(range(a, b) for a, b in grid)):
            chunk = base.fetcher.chunk(base.level, pos)
            if chunk is None:
                return None
            src, dst = [], []
            for axis, p, c in zip(self.axes, pos, chunks):
                lo, hi = p * c, (p + 1) * c
                if isinstance(axis, int):
                    src.append(axis - lo)
                    continue
                first, stop = _positions_in(axis, lo, hi)
                if first >= stop:
                    break
                values = axis[first:stop]
                src.append(slice(values[0] - lo, values[-1] - lo + 1, axis.step))
                dst.append(slice(first, stop))
            else:
                out[tuple(dst)] = chunk[tuple(src)]
        return out

    def _preview(self) -> np.ndarray:
        base = self.base
        index = []
        for axis, (a, b), n in zip(self.axes, base.to_preview, base.preview.shape):
            values = np.asarray(axis if isinstance(axis, range) else [axis])
            mapped = np.clip(np.rint(a * values + b).astype(np.intp), 0, n - 1)
            index.append(mapped if isinstance(axis, range) else mapped[:1])
        out = base.preview[np.ix_(*index)]
        return out.reshape(self.shape).astype(base.dtype, copy=False)


def _expand(key: tuple, ndim: int) -> tuple:
    """Replace ``...`` and pad with full slices so that ``key`` has one entry per axis."""
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices: {len(key)} for {ndim} dimensions")
    for k in key:
        if k is None or not isinstance(k, (slice, int, np.integer)):
            raise TypeError(f"only ints and slices index a progressive level, not {k!r}")
    return key + (slice(None),) * (ndim - len(key))


def _positions_in(axis: range, lo: int, hi: int) -> tuple[int, int]:
    """Positions ``p`` (a slice ``first:stop``) of ``axis`` whose values lie in [lo, hi)."""
    start, step = axis.start, axis.step  # step > 0: views never hold descending ranges
    first = max(0, -(-(lo - start) // step))
    stop = max(0, -(-(hi - start) // step))
    n = len(axis)
    return min(first, n), min(stop, n)


def progressive_levels(
    sources: Sequence[Any],
    scales: Sequence[Sequence[float]],
    translations: Sequence[Sequence[float]],
    coarsest: np.ndarray,
    *,
    cache: ChunkCache | None = None,
    on_ready: Callable[[], None] | None = None,
) -> tuple[list[Any], ChunkFetcher]:
    """Levels for napari: every level but the coarsest wrapped, the coarsest as the array
    ``coarsest`` (already read). ``scales``/``translations`` place each level in physical
    space (for the previews); they must be those the layer is displayed with."""
    fetcher = ChunkFetcher(sources, cache=cache, on_ready=on_ready)
    top = len(sources) - 1
    levels: list[Any] = []
    for level in range(top):
        to_preview = [
            (s / cs, (t - ct) / cs)
            for s, t, cs, ct in zip(scales[level], translations[level], scales[top], translations[top])
        ]
        levels.append(ProgressiveLevel(fetcher, level, coarsest, to_preview))
    levels.append(coarsest)
    return levels, fetcher


def progressive_pyramid(pyramid: Pyramid, *, cache: ChunkCache | None = None) -> Pyramid:
    """``pyramid`` with progressive levels (reads the coarsest level now: call it in a worker).

    A pyramid with one level, or without zarr arrays behind it, comes back as it is.
    """
    if len(pyramid.levels) < 2 or len(pyramid.arrays) != len(pyramid.levels):
        return pyramid
    coarsest = np.asarray(pyramid.levels[-1])
    levels, _ = progressive_levels(
        pyramid.arrays, pyramid.scales, pyramid.translations, coarsest, cache=cache
    )
    return replace(pyramid, levels=tuple(levels))


def fetchers_in(data: Any) -> list[ChunkFetcher]:
    """The fetchers behind layer data (a level or a list of levels), each once."""
    levels = data if isinstance(data, (list, tuple)) else [data]
    found: dict[int, ChunkFetcher] = {}
    for level in levels:
        if isinstance(level, ProgressiveLevel):
            found.setdefault(id(level.fetcher), level.fetcher)
    return list(found.values())
