"""Pyramid levels that answer at once: what is fetched, else a coarser view, never a wait.

napari slices an image by calling ``np.asarray(level[key])`` on the thread that asks for
the view, which for napari's default (synchronous) slicing is the main thread. On a lazy
remote array that call is a download: one 256³ chunk of a portal tomogram is 64 MB, a plane
at full resolution touches a whole slab of them, and napari would freeze for seconds every
time the user moves the z slider.

A :class:`ProgressiveLevel` stands in for each level. Indexing it is free (it returns a lazy
view); converting a view to an array returns the real voxels when every z-plane it needs is
in memory, and otherwise the same view cut from the finest coarser level that has its
planes (or the nearest plane of the coarsest level fetched so far), while a
:class:`ChunkFetcher` fetches what is missing in the background and then calls
``on_ready`` (the widget refreshes the layer, and the next slice finds the planes). The
coarsest level's plane goes first, so the view is blurry within one small read and sharp
when its own planes land.

What is kept in memory are decoded z-planes of chunks (:class:`PlaneCache`), not whole
chunks: a 2D view of a portal tomogram reads only the blosc blocks holding its plane
(:mod:`.chunks`, ~0.5 MB per chunk instead of 63 MB), so memory follows what is on screen.
Views deeper than a quarter chunk (3D rendering) read whole chunks.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .chunks import ChunkSource, PlaneBlock, chunk_sources
from .pyramid import Pyramid

__all__ = [
    "ChunkFetcher",
    "FetchProgress",
    "PlaneCache",
    "ProgressiveLevel",
    "fetchers_in",
    "first_view_box",
    "progressive_levels",
    "progressive_pyramid",
]

logger = logging.getLogger(__name__)

CACHE_MB_ENV = "NAPARI_CRYOET_PORTAL_CACHE_MB"
DEFAULT_CACHE_MB = 192


def _cache_bytes_from_env() -> int:
    """``NAPARI_CRYOET_PORTAL_CACHE_MB`` as bytes; anything but a positive number → default."""
    text = os.environ.get(CACHE_MB_ENV, "").strip()
    try:
        megabytes = float(text) if text else DEFAULT_CACHE_MB
    except ValueError:
        logger.warning("%s=%r is not a number; using %d MB", CACHE_MB_ENV, text, DEFAULT_CACHE_MB)
        megabytes = DEFAULT_CACHE_MB
    if megabytes <= 0:
        megabytes = DEFAULT_CACHE_MB
    return int(megabytes * (1 << 20))


PlaneKey = tuple[int, int, tuple[int, ...], int]  # (owner, level, chunk grid position, local z)
_owner_ids = itertools.count()


class PlaneCache:
    """Decoded z-planes of chunks, least recently used dropped first, within a byte budget
    shared by every open layer (``NAPARI_CRYOET_PORTAL_CACHE_MB``, default 192 MB: the
    planes of dozens of full-resolution views of a portal tomogram)."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = _cache_bytes_from_env() if max_bytes is None else max_bytes
        self.nbytes = 0
        self._planes: OrderedDict[PlaneKey, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: PlaneKey) -> np.ndarray | None:
        with self._lock:
            plane = self._planes.get(key)
            if plane is not None:
                self._planes.move_to_end(key)
            return plane

    def __contains__(self, key: PlaneKey) -> bool:
        with self._lock:
            return key in self._planes

    def __len__(self) -> int:
        return len(self._planes)

    def put_block(self, owner: int, level: int, pos: tuple[int, ...], block: PlaneBlock, protect: int = 0) -> None:
        """Keep each plane of ``block``; never evict the ``protect`` newest planes (those of
        the view being assembled)."""
        with self._lock:
            for i, plane in enumerate(block.data):
                key = (owner, level, pos, block.z0 + i)
                old = self._planes.pop(key, None)
                if old is not None:
                    self.nbytes -= old.nbytes
                self._planes[key] = plane
                self.nbytes += plane.nbytes
            while self.nbytes > self.max_bytes and len(self._planes) > max(1, protect):
                _, dropped = self._planes.popitem(last=False)
                self.nbytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._planes.clear()
            self.nbytes = 0

    def drop(self, owner: int) -> None:
        """Forget the planes of one owner (a closed layer)."""
        with self._lock:
            for key in [k for k in self._planes if k[0] == owner]:
                self.nbytes -= self._planes.pop(key).nbytes


SHARED_CACHE = PlaneCache()
"""The cache fetchers use unless given another: one memory budget for all open layers."""

_CHUNK_READERS = ThreadPoolExecutor(max_workers=6, thread_name_prefix="cryoet-chunk")
"""Chunk reads in flight at once, all layers together (ranged GETs and decodes)."""

Box = tuple[tuple[int, int], ...]  # per axis [start, stop) in voxels of one level


@dataclass(frozen=True)
class FetchProgress:
    """Where the current fetch stands: chunk parts read of those needed, bytes received."""

    level: int
    done: int
    total: int
    nbytes: int
    finished: bool = False


class _Levels:
    """The shared state of one layer's levels: sources, placement, the plane cache."""

    def __init__(
        self,
        sources: Sequence[ChunkSource],
        scales: Sequence[Sequence[float]],
        translations: Sequence[Sequence[float]],
        cache: PlaneCache,
    ) -> None:
        self.sources = tuple(sources)
        self.scales = tuple(tuple(float(v) for v in s) for s in scales)
        self.translations = tuple(tuple(float(v) for v in t) for t in translations)
        self.cache = cache
        self.owner = next(_owner_ids)
        self.top = len(self.sources) - 1

    def map_index(self, level: int, to: int, axis: int, index: np.ndarray) -> np.ndarray:
        """Voxel indices of ``level`` on ``axis`` → nearest voxel indices of level ``to``."""
        s, t = self.scales[level][axis], self.translations[level][axis]
        cs, ct = self.scales[to][axis], self.translations[to][axis]
        # voxel centres: physical = t + s * i; index at ``to`` = (physical - ct) / cs
        mapped = np.rint((t + s * index - ct) / cs).astype(np.intp)
        return np.clip(mapped, 0, self.sources[to].shape[axis] - 1)

    def grid(self, level: int, box: Box) -> list[tuple[int, ...]]:
        chunks = self.sources[level].chunks
        return list(
            itertools.product(*(range(lo // c, max(lo // c + 1, -(-hi // c))) for (lo, hi), c in zip(box, chunks)))
        )

    def missing(self, level: int, box: Box) -> list[tuple[tuple[int, ...], int, int]]:
        """Chunks with planes of ``box`` not in memory, as (position, local z0, local z1)."""
        out = []
        cz = self.sources[level].chunks[0]
        z_lo, z_hi = box[0]
        for pos in self.grid(level, box):
            base = pos[0] * cz
            z0, z1 = max(z_lo, base) - base, min(z_hi, base + cz) - base
            if any((self.owner, level, pos, z) not in self.cache for z in range(z0, z1)):
                out.append((pos, z0, z1))
        return out

    def gather(self, level: int, index: Sequence[np.ndarray]) -> np.ndarray | None:
        """Voxels at the index arrays (one per axis, sorted) of ``level``, or None if a
        plane is not in memory."""
        source = self.sources[level]
        out = np.empty(tuple(len(i) for i in index), source.dtype)
        cz, cy, cx = source.chunks
        iz, iy, ix = index
        ys = _split_by_chunk(iy, cy)
        xs = _split_by_chunk(ix, cx)
        for oz, z in enumerate(iz.tolist()):
            pz, lz = divmod(z, cz)
            for py, (ysel, ylocal) in ys.items():
                for px, (xsel, xlocal) in xs.items():
                    plane = self.cache.get((self.owner, level, (pz, py, px), lz))
                    if plane is None:
                        return None
                    out[oz, ysel, xsel] = plane[ylocal][:, xlocal]
        return out


def _split_by_chunk(index: np.ndarray, chunk: int) -> dict[int, tuple[slice, slice | np.ndarray]]:
    """Sorted indices grouped by chunk: chunk → (slice of the output, chunk-local indices,
    as a slice when they are evenly spaced: slicing is much cheaper than fancy indexing)."""
    groups: dict[int, tuple[slice, slice | np.ndarray]] = {}
    if len(index) == 0:
        return groups
    which = index // chunk
    edges = np.flatnonzero(np.diff(which)) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [len(index)]))
    for a, b in zip(starts.tolist(), stops.tolist()):
        groups[int(which[a])] = (slice(a, b), _as_slice(index[a:b] - which[a] * chunk))
    return groups


def _as_slice(local: np.ndarray) -> slice | np.ndarray:
    if len(local) == 1:
        return slice(int(local[0]), int(local[0]) + 1)
    steps = np.diff(local)
    if steps[0] > 0 and np.all(steps == steps[0]):
        return slice(int(local[0]), int(local[-1]) + 1, int(steps[0]))
    return local


class ChunkFetcher:
    """Fetches the z-planes of views in the background, newest request first.

    Callbacks run on the fetch thread: ``on_ready`` after planes have landed (the coarse
    plane first, then the requested level's), ``on_error`` when a read failed (the view
    keeps its preview and is asked for again on the next slice), ``on_progress`` with a
    :class:`FetchProgress` as parts arrive.
    """

    def __init__(
        self,
        levels: _Levels,
        *,
        max_pending: int = 1,
        settle_s: float = 0.03,
        on_ready: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[FetchProgress], None] | None = None,
    ) -> None:
        self.levels = levels
        self.on_ready = on_ready
        self.on_error = on_error
        self.on_progress = on_progress
        #: requests kept waiting (the newest ones): a view the user has left is not fetched
        self.max_pending = max_pending
        #: how long a request waits before it is served, so that the views napari passes
        #: through while a layer is added or the camera moves are superseded, not fetched
        self.settle_s = settle_s
        self.errors: list[BaseException] = []
        self._pending: OrderedDict[tuple[int, Box], None] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._running = 0
        self._closed = False
        self._cancelled = 0  # bumped by cancel(): parts of older fetches are dropped
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cryoet-fetch")

    @property
    def id(self) -> int:
        return self.levels.owner

    @property
    def sources(self) -> tuple[ChunkSource, ...]:
        return self.levels.sources

    @property
    def cache(self) -> PlaneCache:
        return self.levels.cache

    @property
    def bytes_read(self) -> int:
        return sum(s.bytes_read for s in self.levels.sources)

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.levels.sources)

    # --- requests ---------------------------------------------------------------------------

    def request(self, level: int, box: Box) -> None:
        """Fetch the planes of ``box`` at ``level`` (if still missing when its turn comes)."""
        with self._lock:
            if self._closed:
                return
            key = (level, tuple(box))
            self._pending.pop(key, None)
            self._pending[key] = None
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)  # the oldest view is no longer wanted
        self._executor.submit(self._work)

    def fetch_now(self, level: int, box: Box) -> None:
        """Fetch ``box`` on the calling thread (a worker's), errors raised."""
        self._fetch_box(level, box, self._cancelled)

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

    def cancel(self) -> None:
        """Drop what is pending; parts still in flight land but nothing more is started."""
        with self._lock:
            self._pending.clear()
            self._cancelled += 1
            self._wake.notify_all()

    def close(self) -> None:
        """Drop pending requests and this layer's planes; later requests are ignored."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._cancelled += 1
            self._wake.notify_all()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.levels.cache.drop(self.levels.owner)

    def _work(self) -> None:
        if self.settle_s:
            time.sleep(self.settle_s)
        with self._lock:
            if self._closed or not self._pending:
                return  # its request was dropped, or served by an earlier turn
            (level, box), _ = self._pending.popitem(last=True)  # newest first
            self._running += 1
            generation = self._cancelled
        try:
            top = self.levels.top
            if level != top:  # the coarse plane first: a blurry view within one small read
                coarse = self._coarse_box(level, box)
                if self.levels.missing(top, coarse):
                    self._fetch_box(top, coarse, generation)
                    self._ready()
            self._fetch_box(level, box, generation)
            self._ready()
        except BaseException as exc:  # noqa: BLE001 - kept for the caller, the view keeps its preview
            logger.warning("fetching voxels failed: %s", exc)
            self.errors.append(exc)
            if self.on_error is not None and not self._closed:
                self.on_error(exc)
        finally:
            with self._lock:
                self._running -= 1
                self._wake.notify_all()

    def _ready(self) -> None:
        if self.on_ready is not None and not self._closed:
            self.on_ready()

    def _coarse_box(self, level: int, box: Box) -> Box:
        top = self.levels.top
        out = []
        for axis, (lo, hi) in enumerate(box):
            ends = self.levels.map_index(level, top, axis, np.array([lo, hi - 1]))
            out.append((int(ends[0]), int(ends[1]) + 1))
        return tuple(out)

    def _fetch_box(self, level: int, box: Box, generation: int) -> None:
        levels = self.levels
        missing = levels.missing(level, box)
        if not missing:
            return
        source = levels.sources[level]
        depth = box[0][1] - box[0][0]
        partial = source.wants_partial(depth)
        protect = len(levels.grid(level, box)) * (depth if partial else source.chunks[0])
        start_bytes = self.bytes_read
        done = 0

        def read(job: tuple[tuple[int, ...], int, int]) -> None:
            if self._cancelled != generation:
                return  # cancelled or closed: don't start more reads
            pos, z0, z1 = job
            block = source.read_planes(pos, z0, z1) if partial else PlaneBlock(0, source.read_chunk(pos))
            if self._cancelled == generation:
                levels.cache.put_block(levels.owner, level, pos, block, protect=protect)

        self._progress(level, 0, len(missing), 0)
        for _ in _CHUNK_READERS.map(read, missing):
            done += 1
            self._progress(level, done, len(missing), self.bytes_read - start_bytes)
        self._progress(level, done, len(missing), self.bytes_read - start_bytes, finished=True)

    def _progress(self, level: int, done: int, total: int, nbytes: int, finished: bool = False) -> None:
        if self.on_progress is not None and not self._closed:
            self.on_progress(FetchProgress(level, done, total, nbytes, finished))


class ProgressiveLevel:
    """One pyramid level as napari sees it: shape and dtype of the real level, reads that
    never wait (see the module docstring)."""

    def __init__(self, fetcher: ChunkFetcher, level: int) -> None:
        source = fetcher.levels.sources[level]
        self.fetcher = fetcher
        self.level = level
        self.shape = tuple(int(n) for n in source.shape)
        self.dtype = np.dtype(source.dtype)
        self.ndim = len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def chunks(self) -> tuple[int, ...]:
        return self.fetcher.levels.sources[self.level].chunks

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> _View:
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

    def __getitem__(self, key: Any) -> _View:
        key = _expand(key if isinstance(key, tuple) else (key,), self.ndim)
        parts = iter(key)
        axes: list[range | int] = []
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

    def _index(self) -> list[np.ndarray]:
        return [np.asarray(a if isinstance(a, range) else [a], dtype=np.intp) for a in self.axes]

    def _read(self) -> np.ndarray:
        base = self.base
        if self.size == 0:
            return np.zeros(self.shape, base.dtype)
        levels = base.fetcher.levels
        index = self._index()
        box = tuple((int(i[0]), int(i[-1]) + 1) for i in index)
        found = levels.gather(base.level, index)
        if found is not None:
            return found.reshape(self.shape)
        base.fetcher.request(base.level, box)
        return self._preview(index).reshape(self.shape)

    def _preview(self, index: list[np.ndarray]) -> np.ndarray:
        """The view cut from the finest coarser level whose planes are in memory, else from
        the coarsest level's nearest plane in z, else zeros."""
        base = self.base
        levels = base.fetcher.levels
        for level in range(base.level + 1, levels.top + 1):
            mapped = [levels.map_index(base.level, level, axis, i) for axis, i in enumerate(index)]
            found = _gather_mapped(levels, level, mapped)
            if found is not None:
                return found
        nearest = _nearest_plane(levels, base.level, index)
        if nearest is not None:
            return nearest
        return np.zeros(tuple(len(i) for i in index), base.dtype)


def _gather_mapped(levels: _Levels, level: int, mapped: list[np.ndarray]) -> np.ndarray | None:
    """``gather`` for index arrays that may repeat (upsampled): gather the unique ones, expand."""
    uniques, inverses = zip(*(np.unique(m, return_inverse=True) for m in mapped))
    found = levels.gather(level, list(uniques))
    if found is None:
        return None
    return found[np.ix_(*inverses)]


def _nearest_plane(levels: _Levels, level: int, index: list[np.ndarray]) -> np.ndarray | None:
    """A single-plane view from the coarsest level's cached plane nearest in z (the user moved
    faster than the coarse planes arrive: something close beats black)."""
    if len(index[0]) != 1:
        return None
    top = levels.top
    mapped = [levels.map_index(level, top, axis, i) for axis, i in enumerate(index)]
    z = int(mapped[0][0])
    depth = levels.sources[top].shape[0]
    for dz in range(1, depth):
        for candidate in (z - dz, z + dz):
            if 0 <= candidate < depth:
                found = _gather_mapped(levels, top, [np.array([candidate]), mapped[1], mapped[2]])
                if found is not None:
                    return found
    return None


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


def progressive_levels(
    sources: Sequence[ChunkSource],
    scales: Sequence[Sequence[float]],
    translations: Sequence[Sequence[float]],
    *,
    cache: PlaneCache | None = None,
    on_ready: Callable[[], None] | None = None,
) -> tuple[list[ProgressiveLevel], ChunkFetcher]:
    """A :class:`ProgressiveLevel` per source, sharing one fetcher. ``scales`` and
    ``translations`` place each level in physical space (for previews across levels)."""
    levels = _Levels(sources, scales, translations, cache if cache is not None else SHARED_CACHE)
    fetcher = ChunkFetcher(levels, on_ready=on_ready)
    return [ProgressiveLevel(fetcher, k) for k in range(len(sources))], fetcher


def first_view_box(levels: _Levels, level: int) -> Box:
    """The plane of ``level`` that napari's first view needs, whole in y and x.

    napari opens a new image at the middle of its world range, snapped down to a step of
    the finest level: level 0's plane ``(depth - 1) // 2``; the coarse level's plane is
    the one a preview of it is cut from."""
    z0 = (levels.sources[0].shape[0] - 1) // 2
    z = int(levels.map_index(0, level, 0, np.array([z0]))[0])
    return ((z, z + 1), *((0, int(n)) for n in levels.sources[level].shape[1:]))


def progressive_pyramid(
    pyramid: Pyramid,
    *,
    cache: PlaneCache | None = None,
    endpoint_url: str | None = None,
) -> Pyramid:
    """``pyramid`` with progressive levels, the coarsest level's middle plane already read
    (one small ranged read: call it in a worker). That plane is also the pyramid's
    ``sample`` (for contrast limits) when the Pyramid type has one.

    Anything but a 3D pyramid of zarr arrays comes back as it is.
    """
    if not pyramid.arrays or len(pyramid.arrays) != len(pyramid.levels) or len(pyramid.shapes[0]) != 3:
        return pyramid
    sources = chunk_sources(pyramid, endpoint_url=endpoint_url)
    levels, fetcher = progressive_levels(sources, pyramid.scales, pyramid.translations, cache=cache)
    top = levels[-1]
    box = first_view_box(fetcher.levels, len(levels) - 1)
    fetcher.fetch_now(len(levels) - 1, box)
    changes: dict[str, Any] = {"levels": tuple(levels)}
    if "sample" in {f.name for f in fields(pyramid)}:
        changes["sample"] = np.asarray(top[box[0][0]])
    return replace(pyramid, **changes)


def fetchers_in(data: Any) -> list[ChunkFetcher]:
    """The fetchers behind layer data (a level or a list of levels), each once."""
    items = data if isinstance(data, (list, tuple)) else [data]
    found: dict[int, ChunkFetcher] = {}
    for level in items:
        if isinstance(level, ProgressiveLevel):
            found.setdefault(id(level.fetcher), level.fetcher)
    return list(found.values())
