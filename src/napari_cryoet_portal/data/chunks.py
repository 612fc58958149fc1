"""One pyramid level's chunks, read whole or only the z-planes a view needs.

A portal chunk is 256³ voxels, ~63 MB of barely compressible float32, while a 2D view needs
one z-plane of it (256 KiB). The chunk is a blosc1 frame cut into independently compressed
blocks of two planes each (:mod:`.blosc_frame`), so a plane costs one small ranged GET for
the frame's header and block table (kept per chunk) and one ranged GET for its block:
~0.5 MB instead of 63 MB. :class:`ChunkSource` does that for zarr v2 levels compressed with
blosc, and reads whole chunks (one GET each) for everything else: other codecs, memcpyed
frames, filters, Fortran order, or views deep enough that whole chunks cost less.

Every byte read goes through an optional on-disk :class:`~.byte_cache.ByteCache` and is
counted (``bytes_read``, ``requests``), for progress and for tests.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import fsspec
import numpy as np

from . import blosc_frame
from .byte_cache import ByteCache, default_byte_cache
from .storage import DataAccessError, storage_options, to_fsspec_url

__all__ = ["ChunkSource", "PlaneBlock", "chunk_sources"]

logger = logging.getLogger(__name__)

#: a view deeper than this fraction of a chunk reads the whole chunk (one GET, one decode)
PARTIAL_MAX_DEPTH_FRACTION = 0.25
_HEADERS_KEPT = 4096  # chunk headers remembered per source (528 bytes each for 256³ f32)


class PlaneBlock:
    """Decoded z-planes ``[z0, z0 + len(data))`` of one chunk (chunk-local z), full in y, x."""

    __slots__ = ("data", "z0")

    def __init__(self, z0: int, data: np.ndarray) -> None:
        self.z0 = z0
        self.data = data


class ChunkSource:
    """Reads chunks of one zarr array (a pyramid level) at ``url`` (the array's folder).

    ``metadata`` is the array's zarr v2 metadata (``zarr.core.metadata.v2.ArrayV2Metadata``);
    other arrays come in through :meth:`from_array` and read whole chunks through zarr.
    """

    def __init__(
        self,
        url: str,
        metadata: Any,
        *,
        endpoint_url: str | None = None,
        byte_cache: ByteCache | None | bool = True,
    ) -> None:
        self.url = to_fsspec_url(url).rstrip("/")
        self.shape = tuple(int(n) for n in metadata.shape)
        self.chunks = tuple(int(c) for c in metadata.chunks)
        self.dtype = _native_dtype(metadata.dtype)
        self.ndim = len(self.shape)
        self.fill_value = metadata.fill_value
        self.order = getattr(metadata, "order", "C")
        self.separator = getattr(metadata, "dimension_separator", ".") or "."
        self.compressor = metadata.compressor
        self.filters = tuple(metadata.filters or ())
        self._array = None
        options = storage_options(self.url, endpoint_url=endpoint_url)
        self._fs, self._root = fsspec.core.url_to_fs(self.url, **options)
        endpoint = (options.get("client_kwargs") or {}).get("endpoint_url", "")
        #: what cache keys start with: the endpoint makes two portals' objects distinct
        self._cache_prefix = f"{endpoint}|{self.url}"
        if byte_cache is True:
            byte_cache = default_byte_cache()
        self.byte_cache = byte_cache if isinstance(byte_cache, ByteCache) else None
        config = self.compressor.get_config() if self.compressor is not None else None
        self.chunk_nbytes = int(np.prod(self.chunks)) * self.dtype.itemsize
        self.partial = (
            self.ndim == 3
            and not self.filters
            and self.order == "C"
            and blosc_frame.partial_readable(config, self.chunk_nbytes)
        )
        self._headers: OrderedDict[tuple[int, ...], blosc_frame.FrameHeader | None] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes_read = 0  # from the network (cache hits excluded)
        self.requests = 0

    @classmethod
    def from_array(cls, array: Any) -> ChunkSource:
        """A source reading whole chunks of any zarr array by slicing it (zarr v3, local)."""
        self = cls.__new__(cls)
        self.url = ""
        self.shape = tuple(int(n) for n in array.shape)
        chunks = getattr(array, "chunksize", None) or array.chunks  # dask: chunksize
        self.chunks = tuple(int(c) for c in chunks)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.partial = False
        self._array = array
        self.byte_cache = None
        self.chunk_nbytes = int(np.prod(self.chunks)) * self.dtype.itemsize
        self._lock = threading.Lock()
        self.bytes_read = 0
        self.requests = 0
        return self

    # --- geometry -------------------------------------------------------------------------

    def chunk_box(self, pos: tuple[int, ...]) -> tuple[slice, ...]:
        """The voxels of chunk ``pos`` inside the array (edge chunks are cut)."""
        return tuple(
            slice(p * c, min((p + 1) * c, n)) for p, c, n in zip(pos, self.chunks, self.shape)
        )

    def wants_partial(self, depth: int) -> bool:
        """Read ``depth`` planes of a chunk by blocks (True) or the whole chunk (False)?"""
        return self.partial and depth <= max(1, int(self.chunks[0] * PARTIAL_MAX_DEPTH_FRACTION))

    # --- reads ----------------------------------------------------------------------------

    def read_chunk(self, pos: tuple[int, ...]) -> np.ndarray:
        """The whole chunk, cut to the array (edge chunks lose their padding)."""
        box = self.chunk_box(pos)
        if self._array is not None:
            return np.asarray(self._array[box])
        raw = self._get(self._key(pos))
        if raw is None:  # zarr: a chunk never written is all fill value
            full = np.full(self.chunks, self.fill_value or 0, self.dtype)
        else:
            full = self._decode(raw)
        cut = tuple(slice(0, s.stop - s.start) for s in box)
        if all(s.stop == c for s, c in zip(cut, self.chunks)):
            return full
        return full[cut].copy()  # an edge chunk: don't keep its padding alive in the cache

    def read_planes(self, pos: tuple[int, ...], z0: int, z1: int) -> PlaneBlock:
        """Chunk-local planes covering ``[z0, z1)``: only the blosc blocks that hold them
        (plus any further planes those blocks hold whole). Whole chunk when not partial."""
        box = self.chunk_box(pos)
        valid_z = box[0].stop - box[0].start
        if not self.partial:
            return PlaneBlock(0, self.read_chunk(pos))
        header = self._header(pos)
        if header is None:  # not a partially readable frame (memcpyed, blosc2, …)
            return PlaneBlock(0, self.read_chunk(pos))
        plane = self.chunks[1] * self.chunks[2]
        items = header.nbytes // header.typesize
        first_block = header.blocks_for_items(z0 * plane, z1 * plane)
        per_block = header.blocksize // header.typesize
        lo_item = first_block.start * per_block
        hi_item = min(items, first_block.stop * per_block)
        za = -(-lo_item // plane)  # planes held whole by the fetched blocks
        zb = hi_item // plane
        za, zb = min(za, z0), max(zb, z1)  # (always true when blocks hold whole planes)
        spans = header.byte_spans(za * plane, zb * plane)
        key = self._key(pos)
        fetched = [(start, self._get(key, start, stop, expect=stop - start)) for start, stop in spans]
        flat = blosc_frame.decode_items(header, fetched, za * plane, zb * plane, self.dtype)
        planes = flat.reshape(zb - za, self.chunks[1], self.chunks[2])
        zb_valid = min(zb, valid_z)
        planes = planes[: max(0, zb_valid - za), : box[1].stop - box[1].start, : box[2].stop - box[2].start]
        return PlaneBlock(za, planes)

    def _header(self, pos: tuple[int, ...]) -> blosc_frame.FrameHeader | None:
        with self._lock:
            if pos in self._headers:
                self._headers.move_to_end(pos)
                return self._headers[pos]
        key = self._key(pos)
        probe = self._get(key, 0, blosc_frame.HEADER_PROBE_BYTES, short_ok=True)
        header: blosc_frame.FrameHeader | None
        if probe is None:
            header = None  # a missing chunk: read_chunk gives the fill value
        else:
            try:
                need = blosc_frame.frame_header_length(probe)
                if need > len(probe):
                    probe += self._get(key, len(probe), need, expect=need - len(probe)) or b""
                header = blosc_frame.parse_header(probe)
                if header.memcpyed:
                    header = None  # raw bytes: a whole-chunk read is one GET as well
            except blosc_frame.BloscFrameError as exc:
                logger.info("chunk %s of %s read whole: %s", pos, self.url, exc)
                header = None
        with self._lock:
            self._headers[pos] = header
            while len(self._headers) > _HEADERS_KEPT:
                self._headers.popitem(last=False)
        return header

    # --- bytes ----------------------------------------------------------------------------

    def _key(self, pos: tuple[int, ...]) -> str:
        return f"{self._root}/{self.separator.join(str(p) for p in pos)}"

    def _get(
        self,
        path: str,
        start: int | None = None,
        stop: int | None = None,
        *,
        expect: int | None = None,
        short_ok: bool = False,
    ) -> bytes | None:
        """Bytes ``[start, stop)`` of the object (all of it without a range), from the disk
        cache or one GET; None when the object does not exist."""
        cache_key = f"{self._cache_prefix}::{path}"
        cache = self.byte_cache
        if cache is not None:
            cached = cache.get(cache_key, start, stop)
            if cached is not None:
                return cached
        try:
            if start is None:
                data = self._fs.cat_file(path)
            else:  # keywords: s3fs reads a positional third argument as version_id
                data = self._fs.cat_file(path, start=start, end=stop)
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise DataAccessError(f"access denied: {path}") from exc
        except OSError as exc:
            raise DataAccessError(f"cannot read {path}: {exc}") from exc
        with self._lock:
            self.bytes_read += len(data)
            self.requests += 1
        if expect is not None and len(data) != expect and not short_ok:
            raise DataAccessError(
                f"short read of {path} bytes {start}-{stop}: got {len(data)} of {expect}"
            )
        if cache is not None:
            cache.put(cache_key, data, start, stop)
        return data

    def _decode(self, raw: bytes) -> np.ndarray:
        data: Any = raw
        if self.compressor is not None and getattr(self.compressor, "codec_id", "") == "blosc":
            # c-blosc trusts the frame's own length: a truncated object would be decoded from
            # memory past its end (garbage or a crash), so check it first
            declared = int.from_bytes(raw[12:16], "little") if len(raw) >= 16 else -1
            if declared != len(raw):
                raise DataAccessError(
                    f"damaged chunk in {self.url}: {len(raw)} bytes, its header says {declared}"
                )
        try:
            if self.compressor is not None:
                data = self.compressor.decode(data)
            for codec in reversed(self.filters):
                data = codec.decode(data)
            flat = np.frombuffer(data, dtype=self.dtype)
            return flat.reshape(self.chunks, order=self.order)
        except Exception as exc:  # noqa: BLE001 - any codec failure is a damaged chunk
            raise DataAccessError(f"cannot decode a chunk of {self.url}: {exc}") from exc


def _native_dtype(dtype: Any) -> np.dtype:
    to_native = getattr(dtype, "to_native_dtype", None)
    return np.dtype(to_native() if to_native is not None else dtype)


def chunk_sources(pyramid: Any, *, endpoint_url: str | None = None) -> list[ChunkSource]:
    """A source per level of ``pyramid`` (a :class:`~.pyramid.Pyramid` with zarr arrays)."""
    from zarr.core.metadata.v2 import ArrayV2Metadata

    sources = []
    for level, array in zip(pyramid.levels, pyramid.arrays):
        metadata = getattr(array, "metadata", None)
        if tuple(array.shape) != tuple(level.shape):  # stored in another axis order
            sources.append(ChunkSource.from_array(level))
        elif isinstance(metadata, ArrayV2Metadata):
            path = array.store_path.path
            sources.append(
                ChunkSource(f"{pyramid.url}/{path}", metadata, endpoint_url=endpoint_url)
            )
        else:
            sources.append(ChunkSource.from_array(array))
    return sources
