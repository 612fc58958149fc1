"""Partial reads of zarr v2 chunks compressed as blosc1 frames: fetch only the blocks a z-plane needs.

A portal chunk (256³ float32, zarr's default ``Blosc(lz4, clevel 5, SHUFFLE)``) is ~63 MB of
nearly incompressible noise, yet one z-plane of it lives in a single ~0.5 MB block. A blosc1
frame says where each block is, so a caller can fetch the header (``HEADER_PROBE_BYTES``), ask
:meth:`FrameHeader.byte_spans` which ranges hold the elements it wants, fetch only those and
decode them with :func:`decode_items`, ~128× fewer bytes than the whole chunk.

Frame layout (c-blosc 1.x, version byte 2), little-endian::

    0  version u8   1 versionlz u8   2 flags u8   3 typesize u8
    4  nbytes i32   8 blocksize i32  12 cbytes i32
    16 int32 start offset of each of the nblocks = ceil(nbytes / blocksize) blocks
       (absent when flags & 0x02, "memcpyed": the raw bytes follow the header)
       then the blocks, in any order (several compressor threads append them as they finish).

Decoding uses ``blosc_getitem`` from the c-blosc 1.21 that numcodecs bundles (an exported but
undocumented symbol, loaded through ctypes). It runs on a stack-local context with its own
scratch buffers and touches no global state (c-blosc ``blosc/blosc.c``; the shuffle dispatch
is set up by ``pthread_once``), so it is called from several threads at once without a lock;
ctypes releases the GIL for the call. If the symbol cannot be found, :func:`partial_readable`
says False and callers read whole chunks.

Only version 2 (blosc1) is understood; blosc2 chunks (versions 3–5) and anything else raise
:class:`BloscFrameError` so the caller falls back to whole chunks. No Qt, no napari, no I/O.
"""

from __future__ import annotations

import bisect
import ctypes
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "HEADER_PROBE_BYTES",
    "MIN_PARTIAL_CHUNK_BYTES",
    "BloscFrameError",
    "FrameHeader",
    "decode_items",
    "frame_header_length",
    "parse_header",
    "partial_readable",
]

#: What a caller fetches first, range [0, 4096): the 16-byte header plus the offset table of up
#: to 1020 blocks (a 256³ float32 portal chunk has 128), so one request usually suffices.
HEADER_PROBE_BYTES: int = 4096

#: Smaller chunks are cheaper to fetch whole than in two round trips (header, then blocks).
MIN_PARTIAL_CHUNK_BYTES: int = 1 << 20

_HEADER = struct.Struct("<BBBBiii")
_HEADER_SIZE = 16
_BLOSC1_VERSION = 2
_FLAG_MEMCPYED = 0x02


class BloscFrameError(ValueError):
    """The bytes are not a (complete enough) blosc1 frame, or decoding them failed.

    A ValueError so callers that already fall back on bad data catch it; the message says what
    is wrong (which version, how many bytes are needed, which block is missing).
    """


@dataclass(frozen=True)
class FrameHeader:
    """A parsed blosc1 frame header and block-offset table: where every block of a chunk lives.

    Element indices are in units of ``typesize`` bytes (the chunk dtype's itemsize for frames
    written by numcodecs), C order, as in the decompressed chunk.
    """

    version: int
    versionlz: int
    flags: int
    typesize: int
    nbytes: int
    blocksize: int
    cbytes: int
    #: start offset of each block in the frame, in block order (empty when memcpyed)
    starts: tuple[int, ...]
    # the distinct starts in ascending order, to find where each block ends (blocks may be
    # stored out of order, so block j does not end at starts[j + 1])
    _sorted_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sorted_starts", tuple(sorted(set(self.starts))))

    @property
    def memcpyed(self) -> bool:
        """True when the frame holds the raw bytes after the header (no table, no compression)."""
        return bool(self.flags & _FLAG_MEMCPYED)

    @property
    def nblocks(self) -> int:
        """Number of blocks the chunk is cut into, the last one possibly partial."""
        return _nblocks(self.nbytes, self.blocksize)

    @property
    def nitems(self) -> int:
        """Number of ``typesize`` elements in the decompressed chunk."""
        return self.nbytes // self.typesize

    @property
    def header_bytes(self) -> int:
        """How many leading bytes of the frame :func:`parse_header` needs (header + table)."""
        return _HEADER_SIZE if self.memcpyed else _HEADER_SIZE + 4 * self.nblocks

    def block_span(self, j: int) -> tuple[int, int]:
        """[start, stop) byte range of block ``j`` in the frame.

        Blocks can be stored in any order, so a block ends at the next higher start in the table
        (or at ``cbytes``), not at ``starts[j + 1]``. For memcpyed frames it is the block's raw
        bytes after the 16-byte header.
        """
        if not 0 <= j < self.nblocks:
            raise IndexError(f"block {j} out of range: the frame has {self.nblocks} blocks")
        if self.memcpyed:
            lo = _HEADER_SIZE + j * self.blocksize
            return lo, min(lo + self.blocksize, _HEADER_SIZE + self.nbytes)
        start = self.starts[j]
        k = bisect.bisect_right(self._sorted_starts, start)
        stop = self._sorted_starts[k] if k < len(self._sorted_starts) else self.cbytes
        return start, stop

    def blocks_for_items(self, start: int, stop: int) -> range:
        """Indices of the blocks holding elements [start, stop) (empty if start == stop)."""
        self._check_items(start, stop)
        if start == stop:
            return range(0)
        first = start * self.typesize // self.blocksize
        last = (stop * self.typesize - 1) // self.blocksize
        return range(first, last + 1)

    def byte_spans(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Frame byte ranges to fetch to decode elements [start, stop), sorted and coalesced.

        The header and table are not included (the caller has them already). For memcpyed
        frames this is the elements' raw bytes; otherwise the spans of the blocks holding them,
        with adjacent spans merged so each becomes one ranged request.
        """
        self._check_items(start, stop)
        if start == stop:
            return []
        if self.memcpyed:
            return [(_HEADER_SIZE + start * self.typesize, _HEADER_SIZE + stop * self.typesize)]
        return _coalesce(self.block_span(j) for j in self.blocks_for_items(start, stop))

    def pack(self) -> bytes:
        """The header and table as bytes, to rebuild a frame around fetched blocks."""
        head = _HEADER.pack(
            self.version, self.versionlz, self.flags, self.typesize,
            self.nbytes, self.blocksize, self.cbytes,
        )
        if self.memcpyed:
            return head
        return head + np.asarray(self.starts, dtype="<i4").tobytes()

    def _check_items(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self.nitems:
            raise IndexError(
                f"elements [{start}, {stop}) out of range: the chunk has {self.nitems}"
            )


def _nblocks(nbytes: int, blocksize: int) -> int:
    return -(-nbytes // blocksize) if blocksize > 0 else 0


def _coalesce(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort [start, stop) ranges and merge those that touch or overlap."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _unpack_fixed(prefix: bytes) -> tuple[int, ...]:
    """The seven header fields, validated; raises for anything that is not a blosc1 frame."""
    if len(prefix) < _HEADER_SIZE:
        raise BloscFrameError(
            f"need at least {_HEADER_SIZE} bytes for a blosc header, got {len(prefix)}"
        )
    fields = _HEADER.unpack_from(prefix, 0)
    version, _versionlz, flags, typesize, nbytes, blocksize, cbytes = fields
    if version != _BLOSC1_VERSION:
        if 3 <= version <= 5:
            what = f"a blosc2 chunk (version {version})"
        elif prefix[:2] == b"\x1f\x8b":
            what = "a gzip stream"
        elif prefix[:4] == b"\x28\xb5\x2f\xfd":
            what = "a zstd frame"
        else:
            what = f"version byte {version}"
        raise BloscFrameError(f"not a blosc1 frame (version 2): {what}")
    if typesize <= 0:
        raise BloscFrameError(f"corrupt blosc1 header: typesize {typesize}")
    if nbytes < 0 or cbytes < _HEADER_SIZE:
        raise BloscFrameError(f"corrupt blosc1 header: nbytes {nbytes}, cbytes {cbytes}")
    if nbytes > 0 and blocksize <= 0:
        raise BloscFrameError(f"corrupt blosc1 header: blocksize {blocksize}")
    if flags & _FLAG_MEMCPYED:
        if cbytes != nbytes + _HEADER_SIZE:
            raise BloscFrameError(
                f"corrupt memcpyed blosc1 frame: cbytes {cbytes} != nbytes {nbytes} + 16"
            )
    elif _HEADER_SIZE + 4 * _nblocks(nbytes, blocksize) > cbytes:
        raise BloscFrameError(
            f"corrupt blosc1 header: {_nblocks(nbytes, blocksize)} blocks do not fit "
            f"in cbytes {cbytes}"
        )
    return fields


def frame_header_length(prefix: bytes) -> int:
    """How many leading bytes the full header + offset table needs, from the first >= 16 bytes.

    Lets a caller whose first probe was too short fetch exactly the rest of the table. Raises
    :class:`BloscFrameError` for anything but a blosc1 frame (blosc2, gzip, zstd, garbage).
    """
    _version, _vlz, flags, _ts, nbytes, blocksize, _cbytes = _unpack_fixed(bytes(prefix[:16]))
    if flags & _FLAG_MEMCPYED:
        return _HEADER_SIZE
    return _HEADER_SIZE + 4 * _nblocks(nbytes, blocksize)


def parse_header(prefix: bytes) -> FrameHeader:
    """Parse a frame's header and offset table from its first ``header_bytes`` (or more) bytes.

    Raises :class:`BloscFrameError` when the prefix is too short (saying how many bytes are
    needed), is not blosc1, or has block offsets outside the frame.
    """
    need = frame_header_length(prefix)
    if len(prefix) < need:
        raise BloscFrameError(
            f"blosc1 header and offset table need {need} bytes, got {len(prefix)}"
        )
    version, versionlz, flags, typesize, nbytes, blocksize, cbytes = _unpack_fixed(prefix)
    if flags & _FLAG_MEMCPYED:
        starts: tuple[int, ...] = ()
    else:
        nblocks = _nblocks(nbytes, blocksize)
        table = np.frombuffer(prefix, dtype="<i4", count=nblocks, offset=_HEADER_SIZE)
        # every block begins with a 4-byte compressed length, after the table, inside the frame
        bad = np.flatnonzero((table < need) | (table > cbytes - 4))
        if bad.size:
            j = int(bad[0])
            raise BloscFrameError(
                f"corrupt blosc1 offset table: block {j} starts at {int(table[j])}, outside "
                f"[{need}, {cbytes - 4}]"
            )
        starts = tuple(int(s) for s in table)
    return FrameHeader(version, versionlz, flags, typesize, nbytes, blocksize, cbytes, starts)


# -- decoding --------------------------------------------------------------------------------

_getitem_lock = threading.Lock()
_getitem_loaded = False
_getitem: Any = None


def _blosc_getitem() -> Any:
    """c-blosc's ``blosc_getitem`` from numcodecs' extension module, or None; loaded once."""
    global _getitem, _getitem_loaded
    if _getitem_loaded:
        return _getitem
    with _getitem_lock:
        if not _getitem_loaded:
            try:
                import numcodecs.blosc

                fn = ctypes.CDLL(numcodecs.blosc.__file__).blosc_getitem
                fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
                fn.restype = ctypes.c_int
                _getitem = fn
            except (ImportError, OSError, AttributeError):
                _getitem = None
            _getitem_loaded = True
    return _getitem


def partial_readable(compressor: Mapping[str, Any] | None, chunk_nbytes: int) -> bool:
    """Whether chunks with this zarr v2 compressor config are worth reading in parts.

    True for ``{"id": "blosc", ...}`` (any cname, shuffle, blocksize) on chunks of at least
    ``MIN_PARTIAL_CHUNK_BYTES`` decompressed bytes, provided ``blosc_getitem`` could be loaded
    from numcodecs (False if not, so callers read whole chunks). False for no compressor or
    any other codec (zstd, gzip, ...). The caller must still check that the array has no
    ``filters`` and C order, and must fall back on :class:`BloscFrameError` (e.g. a chunk that
    turns out to be a blosc2 frame).
    """
    if not isinstance(compressor, Mapping) or compressor.get("id") != "blosc":
        return False
    if chunk_nbytes < MIN_PARTIAL_CHUNK_BYTES:
        return False
    return _blosc_getitem() is not None


def _assemble(
    buf: np.ndarray,
    base: int,
    frame_size: int,
    spans: Mapping[tuple[int, int], bytes] | Iterable[tuple[int, bytes]],
    needed: list[tuple[int, int]],
) -> None:
    """Copy fetched spans (at frame offsets) into ``buf``, which holds frame bytes from ``base``.

    Raises if a span lies outside the frame, or if any byte of ``needed`` was not supplied: a
    short read would otherwise be decoded as zeros.
    """
    limit = base + len(buf)
    pairs = spans.items() if isinstance(spans, Mapping) else spans
    got: list[tuple[int, int]] = []
    for key, data in pairs:
        offset = int(key[0]) if isinstance(key, tuple) else int(key)
        view = memoryview(data).cast("B")
        if offset < 0 or offset + len(view) > frame_size:
            raise BloscFrameError(
                f"span [{offset}, {offset + len(view)}) lies outside the frame of "
                f"{frame_size} bytes"
            )
        lo, hi = max(offset, base), min(offset + len(view), limit)
        if lo < hi:
            buf[lo - base : hi - base] = np.frombuffer(view, np.uint8, hi - lo, lo - offset)
            got.append((lo, hi))
    have = _coalesce(got)
    for lo, hi in needed:
        k = bisect.bisect_right(have, (lo, float("inf"))) - 1
        if k < 0 or have[k][1] < hi:
            raise BloscFrameError(f"bytes [{lo}, {hi}) of the frame were not supplied")


def decode_items(
    header: FrameHeader,
    spans: Mapping[tuple[int, int], bytes] | Iterable[tuple[int, bytes]],
    start: int,
    stop: int,
    dtype: Any,
) -> np.ndarray:
    """Decode elements [start, stop) of the chunk from only the fetched byte spans.

    ``spans`` maps ``(start, stop)`` frame ranges (as returned by :meth:`FrameHeader.byte_spans`)
    to their bytes, or is a list of ``(offset, bytes)`` pairs. Returns a new 1-D array of
    ``dtype`` (whose itemsize must equal the frame's typesize), bit-exact equal to
    ``numcodecs.Blosc().decode(whole_frame)`` viewed as ``dtype``, sliced ``[start:stop]``.

    Raises :class:`BloscFrameError` when a needed span is missing or short, or blosc reports an
    error (a block's recorded lengths do not match). Corruption inside a block's payload that
    still decodes to the right length (always so for streams stored raw, the usual case for
    noise) is not detectable here: blosc1 has no checksums.
    """
    dt = np.dtype(dtype)
    if dt.itemsize != header.typesize:
        raise BloscFrameError(
            f"dtype {dt} has itemsize {dt.itemsize}, the frame's typesize is {header.typesize}"
        )
    needed = header.byte_spans(start, stop)
    n = stop - start
    if n == 0:
        return np.empty(0, dtype=dt)
    if header.memcpyed:
        (lo, hi), = needed
        raw = np.empty(hi - lo, dtype=np.uint8)
        _assemble(raw, lo, header.cbytes, spans, needed)
        return raw.view(dt)
    fn = _blosc_getitem()
    if fn is None:
        raise BloscFrameError("blosc_getitem is not available from numcodecs")
    # calloc'd: the pages of blocks that are not copied in are never touched, cost no memory
    frame = np.zeros(header.cbytes, dtype=np.uint8)
    _assemble(frame, 0, header.cbytes, spans, needed)
    head = header.pack()
    frame[: len(head)] = np.frombuffer(head, dtype=np.uint8)
    out = np.empty(n, dtype=dt)
    # start/stop were range-checked by byte_spans: c-blosc would print and leak on bad bounds
    written = fn(frame.ctypes.data, start, n, out.ctypes.data)
    if written != n * header.typesize:
        raise BloscFrameError(
            f"blosc_getitem failed for elements [{start}, {stop}) (returned {written}): "
            "corrupt or mismatched block data"
        )
    return out
