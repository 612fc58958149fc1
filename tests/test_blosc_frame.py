"""Partial decoding of blosc1 frames: only the fetched blocks, bit-exact with a whole decode.

Frames are made by numcodecs' Blosc exactly as zarr v2 writes chunks. Results are compared as raw
bits (``.view`` of unsigned ints) so NaN and -0.0 compare exactly. Arrays are generated once per
module; the 256³ (portal-sized) chunks are used for a few cases only.
"""

from __future__ import annotations

import gzip
import struct
import threading
from functools import lru_cache

import numcodecs
import numcodecs.blosc
import numpy as np
import pytest
from numcodecs import Blosc

from napari_cryoet_portal.data import blosc_frame as bf
from napari_cryoet_portal.data.blosc_frame import (
    HEADER_PROBE_BYTES,
    BloscFrameError,
    FrameHeader,
    decode_items,
    frame_header_length,
    parse_header,
    partial_readable,
)

PORTAL_SHAPE = (256, 256, 256)
# odd plane size (255*254 elements), so planes straddle block boundaries and the last block is
# partial; 24 planes keep the cname x shuffle x dtype grid cheap
EDGE_SHAPE = (24, 255, 254)
SHUFFLES = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}


def _noise(shape, seed=0) -> np.ndarray:
    """A raw tomogram stand-in: float32 noise compresses only ~1.06x."""
    a = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    # special values, compared bit for bit
    a.flat[[5, 77_777, a.size - 3]] = [np.nan, -0.0, np.inf]
    return a


def _mask(shape, dtype, seed=0) -> np.ndarray:
    """A segmentation mask: mostly zeros with a few labelled blobs."""
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, dtype=dtype)
    for label in range(1, 6):
        z, y, x = (int(rng.integers(0, s - s // 4)) for s in shape)
        dz, dy, dx = (max(1, s // 5) for s in shape)
        m[z : z + dz, y : y + dy, x : x + dx] = label * 17
    return m


@pytest.fixture(scope="module", autouse=True)
def two_compressor_threads():
    """Compress with two threads, as zarr on a desktop does, so blocks can land out of order."""
    before = numcodecs.blosc.get_nthreads()
    numcodecs.blosc.set_nthreads(2)
    yield
    numcodecs.blosc.set_nthreads(before)


@lru_cache(maxsize=None)
def _array(kind: str, shape: tuple[int, ...]) -> np.ndarray:
    if kind == "f32":
        return _noise(shape)
    return _mask(shape, {"i8": np.int8, "u16": np.uint16}[kind])


@lru_cache(maxsize=None)
def _frame(kind: str, shape: tuple[int, ...], cname: str, shuffle: str, clevel: int = 5) -> bytes:
    codec = Blosc(cname=cname, clevel=clevel, shuffle=SHUFFLES[shuffle], blocksize=0)
    return bytes(codec.encode(_array(kind, shape)))


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(f"u{a.dtype.itemsize}")


def _fetch(frame: bytes, header: FrameHeader, start: int, stop: int) -> dict:
    """What a caller would GET: exactly the ranges byte_spans asks for."""
    return {(lo, hi): frame[lo:hi] for lo, hi in header.byte_spans(start, stop)}


def _check(frame: bytes, arr: np.ndarray, start: int, stop: int) -> FrameHeader:
    header = parse_header(frame[:HEADER_PROBE_BYTES])
    got = decode_items(header, _fetch(frame, header, start, stop), start, stop, arr.dtype)
    assert got.dtype == arr.dtype and got.shape == (stop - start,)
    assert np.array_equal(_bits(got), _bits(arr.ravel()[start:stop]))
    return header


def _plane(shape, z) -> tuple[int, int]:
    n = shape[1] * shape[2]
    return z * n, (z + 1) * n


# -- the portal's chunk ---------------------------------------------------------------------


def test_portal_chunk_layout_read_from_the_header():
    frame = _frame("f32", PORTAL_SHAPE, "lz4", "shuffle")
    assert frame_header_length(frame[:16]) == 16 + 4 * 128
    h = parse_header(frame[:HEADER_PROBE_BYTES])
    assert (h.version, h.typesize, h.nbytes, h.cbytes) == (2, 4, 256**3 * 4, len(frame))
    assert not h.memcpyed and h.flags & 0x01  # byte shuffle
    assert (h.blocksize, h.nblocks, h.header_bytes) == (512 * 1024, 128, 16 + 4 * 128)
    assert h.blocksize // (256 * 256 * 4) == 2  # two z-planes per block, as measured
    assert 1.0 < h.nbytes / h.cbytes < 1.15  # noise barely compresses
    # whatever order two threads stored the blocks in, their spans tile the frame
    spans = sorted(h.block_span(j) for j in range(h.nblocks))
    assert spans[0][0] == h.header_bytes and spans[-1][1] == h.cbytes
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_portal_chunk_planes_bit_exact():
    arr = _array("f32", PORTAL_SHAPE)
    frame = _frame("f32", PORTAL_SHAPE, "lz4", "shuffle")
    h = parse_header(frame[:HEADER_PROBE_BYTES])
    planes_per_block = h.blocksize // (256 * 256 * 4)
    first_of_block = 40 * planes_per_block
    for z in (0, first_of_block, first_of_block + planes_per_block - 1, 255):
        start, stop = _plane(PORTAL_SHAPE, z)
        assert list(h.blocks_for_items(start, stop)) == [z // planes_per_block]
        _check(frame, arr, start, stop)
    # a range of planes over two blocks, and a few elements either side of a block boundary
    start = _plane(PORTAL_SHAPE, first_of_block - 1)[0]
    stop = _plane(PORTAL_SHAPE, first_of_block)[1]
    assert len(h.blocks_for_items(start, stop)) == 2
    _check(frame, arr, start, stop)
    boundary = first_of_block * 256 * 256
    _check(frame, arr, boundary - 3, boundary + 5)
    # numcodecs' whole decode is what partial decodes must equal
    whole = np.frombuffer(Blosc().decode(frame), dtype=np.float32)
    assert np.array_equal(_bits(whole), _bits(arr.ravel()))


def test_one_plane_fetches_about_one_128th_of_the_chunk():
    frame = _frame("f32", PORTAL_SHAPE, "lz4", "shuffle")
    h = parse_header(frame[:HEADER_PROBE_BYTES])
    start, stop = _plane(PORTAL_SHAPE, 99)
    spans = h.byte_spans(start, stop)
    assert spans == [h.block_span(99 // 2)]
    fetched = sum(hi - lo for lo, hi in spans)
    assert 0.9 * h.cbytes / 128 < fetched < 1.1 * h.cbytes / 128
    # plus the header probe: still under 1 % of the chunk
    assert fetched + HEADER_PROBE_BYTES < h.cbytes / 100


@pytest.mark.parametrize(("kind", "blocksize"), [("i8", 128 * 1024), ("u16", 256 * 1024)])
def test_portal_masks(kind, blocksize):
    arr = _array(kind, PORTAL_SHAPE)
    frame = _frame(kind, PORTAL_SHAPE, "lz4", "shuffle")
    h = parse_header(frame[:HEADER_PROBE_BYTES])
    assert (h.typesize, h.blocksize, h.nblocks) == (arr.itemsize, blocksize, 128)
    for z in (0, 3, 128, 255):
        _check(frame, arr, *_plane(PORTAL_SHAPE, z))


# -- the codec grid, on a smaller edge-like chunk -------------------------------------------


@pytest.mark.parametrize("kind", ["f32", "i8", "u16"])
@pytest.mark.parametrize("shuffle", list(SHUFFLES))
@pytest.mark.parametrize("cname", ["lz4", "zstd", "blosclz", "zlib"])
def test_codec_grid_bit_exact(cname, shuffle, kind):
    arr = _array(kind, EDGE_SHAPE)
    frame = _frame(kind, EDGE_SHAPE, cname, shuffle)
    h = parse_header(frame[:HEADER_PROBE_BYTES])
    assert h.nbytes == arr.nbytes and h.typesize == arr.itemsize
    n = arr.size
    per_plane = EDGE_SHAPE[1] * EDGE_SHAPE[2]
    if not h.memcpyed:
        assert h.nbytes % h.blocksize != 0  # the last block is partial
    # planes: first, middle, last; one that straddles a block boundary if blocks are smaller
    # than the whole chunk (which planes do depends on the codec's blocksize, read from h)
    cases = [_plane(EDGE_SHAPE, z) for z in (0, EDGE_SHAPE[0] // 2, EDGE_SHAPE[0] - 1)]
    items_per_block = h.blocksize // h.typesize
    if h.nblocks > 1:
        z = items_per_block // per_plane  # the plane holding the first block boundary
        cases.append(_plane(EDGE_SHAPE, z))
        cases.append((items_per_block - 1, items_per_block + 1))  # 1 element either side
        last = (h.nblocks - 1) * items_per_block
        cases.append((last, n))  # the whole partial last block
        cases.append((n - 1, n))
    cases.append((0, n))
    for start, stop in cases:
        _check(frame, arr, start, stop)


def test_planes_per_block_differ_by_codec_and_dtype():
    """Nothing may assume two planes per block: the blocksize depends on codec and typesize."""
    plane_bytes = {k: EDGE_SHAPE[1] * EDGE_SHAPE[2] * _array(k, EDGE_SHAPE).itemsize
                   for k in ("f32", "u16")}
    sizes = {
        (cname, kind): parse_header(_frame(kind, EDGE_SHAPE, cname, "shuffle")).blocksize
        for cname in ("lz4", "zstd", "zlib")
        for kind in ("f32", "u16")
    }
    ratios = {key: size / plane_bytes[key[1]] for key, size in sizes.items()}
    assert len(set(sizes.values())) > 1
    assert min(ratios.values()) < 2 < max(ratios.values())


# -- memcpyed frames ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cname", "shuffle", "clevel"),
    [("lz4", "noshuffle", 5), ("blosclz", "noshuffle", 5), ("zstd", "shuffle", 0)],
)
def test_memcpyed_frames(cname, shuffle, clevel):
    arr = _array("f32", EDGE_SHAPE)
    frame = _frame("f32", EDGE_SHAPE, cname, shuffle, clevel)
    h = parse_header(frame[:HEADER_PROBE_BYTES])
    assert h.memcpyed and h.flags & 0x02
    assert h.starts == () and h.header_bytes == 16 and frame_header_length(frame) == 16
    assert h.cbytes == h.nbytes + 16 == len(frame)
    n = arr.size
    start, stop = _plane(EDGE_SHAPE, 7)
    assert h.byte_spans(start, stop) == [(16 + 4 * start, 16 + 4 * stop)]
    for start, stop in [_plane(EDGE_SHAPE, 0), (start, stop), _plane(EDGE_SHAPE, 23), (n - 1, n)]:
        _check(frame, arr, start, stop)
    # a caller may have fetched more than asked (here: everything, as (offset, bytes) pairs)
    got = decode_items(h, [(0, frame)], start, stop, np.float32)
    assert np.array_equal(_bits(got), _bits(arr.ravel()[start:stop]))
    assert h.block_span(h.nblocks - 1) == (16 + (h.nblocks - 1) * h.blocksize, h.cbytes)
    with pytest.raises(BloscFrameError, match="not supplied"):
        decode_items(h, {(16 + 4 * start, 16 + 4 * stop - 1): frame[16 + 4 * start : -1]},
                     start, stop, np.float32)


# -- blocks out of order --------------------------------------------------------------------


def _permute_blocks(frame: bytes, order: list[int]) -> bytes:
    """The same frame with its blocks stored in ``order`` (a legal frame: c-blosc's threads
    append blocks as they finish)."""
    h = parse_header(frame)
    body = [frame[slice(*h.block_span(j))] for j in range(h.nblocks)]
    starts = [0] * h.nblocks
    pos = h.header_bytes
    for j in order:
        starts[j] = pos
        pos += len(body[j])
    assert pos == h.cbytes
    table = struct.pack(f"<{h.nblocks}i", *starts)
    return frame[:16] + table + b"".join(body[j] for j in order)


def test_out_of_order_blocks():
    arr = _array("u16", EDGE_SHAPE)
    frame = _frame("u16", EDGE_SHAPE, "lz4", "bitshuffle")
    h0 = parse_header(frame)
    nb = h0.nblocks
    assert nb >= 4
    order = [nb - 1, 1, nb - 2, 0] + list(range(2, nb - 2))  # last block first
    shuffled = _permute_blocks(frame, order)
    assert np.array_equal(np.frombuffer(Blosc().decode(shuffled), np.uint16), arr.ravel())
    h = parse_header(shuffled[:HEADER_PROBE_BYTES])
    assert list(h.starts) != sorted(h.starts)
    for j in range(nb):
        lo, hi = h.block_span(j)
        assert hi - lo == h0.block_span(j)[1] - h0.block_span(j)[0]
        if j != order[-1]:
            assert hi != h.cbytes and hi in h.starts
    assert h.block_span(order[-1])[1] == h.cbytes
    # blocks 0 and 1 sit apart in the file: two spans, sorted; 1 and nb-2 are adjacent: one span
    ipb = h.blocksize // h.typesize
    assert h.byte_spans(ipb - 1, ipb + 1) == sorted([h.block_span(0), h.block_span(1)])
    merged = h.byte_spans(ipb, (nb - 2) * ipb + 1)
    assert (h.block_span(1)[0], h.block_span(nb - 2)[1]) in merged
    for start, stop in [(0, ipb), (ipb - 1, ipb + 1), ((nb - 1) * ipb, arr.size), (0, arr.size)]:
        _check(shuffled, arr, start, stop)


def test_threaded_compression_tables():
    """Whatever order the two threads produced, spans are disjoint and tile the frame."""
    for kind, cname in [("f32", "lz4"), ("f32", "zstd"), ("u16", "zlib")]:
        h = parse_header(_frame(kind, EDGE_SHAPE, cname, "shuffle"))
        spans = sorted(h.block_span(j) for j in range(h.nblocks))
        assert spans[0][0] == h.header_bytes and spans[-1][1] == h.cbytes
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


# -- headers --------------------------------------------------------------------------------


def test_long_table_needs_a_second_read():
    # zstd doesn't split blocks, so c-blosc honours a small forced blocksize (lz4 raises it
    # to 64 KiB): 1519 blocks, a 6 KiB table
    arr = _array("i8", EDGE_SHAPE)
    frame = bytes(Blosc("zstd", 5, Blosc.SHUFFLE, blocksize=1024).encode(arr))
    need = frame_header_length(frame[:16])
    assert need == 16 + 4 * -(-arr.nbytes // 1024) > HEADER_PROBE_BYTES
    with pytest.raises(BloscFrameError, match=f"need {need} bytes"):
        parse_header(frame[:HEADER_PROBE_BYTES])
    h = parse_header(frame[:need])
    assert h.header_bytes == need and h.nblocks == (need - 16) // 4
    start, stop = _plane(EDGE_SHAPE, 11)
    assert h.blocks_for_items(start, stop) == range(start // 1024, (stop - 1) // 1024 + 1)
    spans = h.byte_spans(start, stop)  # as many as the threads left runs of adjacent blocks
    assert sum(hi - lo for lo, hi in spans) == sum(
        hi - lo for lo, hi in map(h.block_span, h.blocks_for_items(start, stop))
    )
    got = decode_items(h, _fetch(frame, h, start, stop), start, stop, np.int8)
    assert np.array_equal(got, arr.ravel()[start:stop])


def test_not_blosc1_is_rejected():
    arr = _array("f32", EDGE_SHAPE)[:2]
    frame = _frame("f32", EDGE_SHAPE, "lz4", "shuffle")
    for version in (1, 3, 4, 5):
        with pytest.raises(BloscFrameError, match="not a blosc1 frame"):
            frame_header_length(bytes([version]) + frame[1:64])
    with pytest.raises(BloscFrameError, match="blosc2"):
        parse_header(b"\x05" + frame[1:HEADER_PROBE_BYTES])
    with pytest.raises(BloscFrameError, match="gzip"):
        frame_header_length(gzip.compress(arr.tobytes()))
    with pytest.raises(BloscFrameError, match="zstd"):
        frame_header_length(bytes(numcodecs.Zstd().encode(arr)))
    with pytest.raises(BloscFrameError, match="at least 16"):
        frame_header_length(frame[:15])


def test_corrupt_headers_are_rejected():
    frame = bytearray(_frame("f32", EDGE_SHAPE, "lz4", "shuffle"))
    bad_start = bytearray(frame)
    struct.pack_into("<i", bad_start, 16 + 4 * 2, len(frame) + 10)
    with pytest.raises(BloscFrameError, match="block 2 starts"):
        parse_header(bytes(bad_start))
    bad_cbytes = bytearray(frame)
    struct.pack_into("<i", bad_cbytes, 12, 20)
    with pytest.raises(BloscFrameError, match="do not fit"):
        parse_header(bytes(bad_cbytes))
    zero_typesize = bytearray(frame)
    zero_typesize[3] = 0
    with pytest.raises(BloscFrameError, match="typesize"):
        frame_header_length(bytes(zero_typesize))


def test_item_ranges_are_checked():
    h = parse_header(_frame("i8", EDGE_SHAPE, "lz4", "shuffle"))
    n = h.nitems
    assert h.blocks_for_items(5, 5) == range(0) and h.byte_spans(5, 5) == []
    assert h.blocks_for_items(0, n) == range(h.nblocks)
    assert decode_items(h, {}, 5, 5, np.int8).shape == (0,)
    for start, stop in [(-1, 3), (3, 2), (0, n + 1)]:
        with pytest.raises(IndexError):
            h.byte_spans(start, stop)
    with pytest.raises(IndexError):
        h.block_span(h.nblocks)


# -- partial_readable -----------------------------------------------------------------------


def test_partial_readable(monkeypatch):
    big = 256**3 * 4
    portal = {"blocksize": 0, "clevel": 5, "cname": "lz4", "id": "blosc", "shuffle": 1}
    assert partial_readable(portal, big)
    assert partial_readable({"id": "blosc", "cname": "zstd", "shuffle": 2}, 2**20)
    assert not partial_readable(portal, 2**20 - 1)
    for other in (None, {"id": "zstd", "level": 1}, {"id": "gzip", "level": 5}, {"id": "lz4"}):
        assert not partial_readable(other, big)
    # without blosc_getitem, callers read whole chunks
    monkeypatch.setattr(bf, "_getitem_loaded", True)
    monkeypatch.setattr(bf, "_getitem", None)
    assert not partial_readable(portal, big)


# -- missing data and corruption ------------------------------------------------------------


def test_missing_or_short_spans_raise():
    arr = _array("f32", EDGE_SHAPE)
    frame = _frame("f32", EDGE_SHAPE, "lz4", "shuffle")
    h = parse_header(frame)
    start, stop = _plane(EDGE_SHAPE, 2)
    spans = h.byte_spans(start, stop)
    (lo, hi), = spans
    with pytest.raises(BloscFrameError, match="not supplied"):
        decode_items(h, {}, start, stop, np.float32)
    with pytest.raises(BloscFrameError, match="not supplied"):  # truncated read
        decode_items(h, {(lo, hi): frame[lo : hi - 1]}, start, stop, np.float32)
    with pytest.raises(BloscFrameError, match="not supplied"):  # the wrong block
        other = h.block_span(h.nblocks - 1)
        decode_items(h, {other: frame[slice(*other)]}, start, stop, np.float32)
    with pytest.raises(BloscFrameError, match="outside the frame"):
        decode_items(h, [(lo, frame[lo:hi] + b"\0" * len(frame))], start, stop, np.float32)
    with pytest.raises(BloscFrameError, match="itemsize"):
        decode_items(h, _fetch(frame, h, start, stop), start, stop, np.float64)
    # the same block in two pieces, as (offset, bytes) pairs, is fine
    mid = (lo + hi) // 2
    got = decode_items(h, [(mid, frame[mid:hi]), (lo, frame[lo:mid])], start, stop, np.float32)
    assert np.array_equal(_bits(got), _bits(arr.ravel()[start:stop]))


def _split_streams(frame: bytes, h: FrameHeader, j: int) -> list[tuple[int, int]]:
    """(offset of the length prefix, compressed length) of each stream of block j."""
    pos, out = h.block_span(j)[0], []
    for _ in range(h.typesize if not h.flags & 0x10 else 1):
        (length,) = struct.unpack_from("<i", frame, pos)
        out.append((pos, length))
        pos += 4 + length
    return out


def test_corruption_what_blosc_detects_and_what_it_cannot():
    """blosc1 has no checksums. blosc_getitem does check each stream's decompressed length, so
    corrupt length prefixes (and most damage to compressible streams) raise. A flipped byte in
    a stream stored raw (most of a noise block) decodes to wrong values without any error: that
    is undetectable at this layer, and decode_items does not claim otherwise."""
    arr = _array("f32", EDGE_SHAPE)
    frame = _frame("f32", EDGE_SHAPE, "lz4", "shuffle")
    h = parse_header(frame)
    items = h.blocksize // h.typesize
    lo, hi = h.block_span(0)
    streams = _split_streams(frame, h, 0)
    assert len(streams) == 4 and streams[-1][0] + 4 + streams[-1][1] == hi

    def decode(block: bytes) -> np.ndarray:
        return decode_items(h, {(lo, hi): block}, 0, items, np.float32)

    # a length prefix made too long or too short: blosc_getitem reports an error
    for wrong in (10**8, streams[-1][1] - 5):
        bad = bytearray(frame[lo:hi])
        struct.pack_into("<i", bad, streams[-1][0] - lo, wrong)
        with pytest.raises(BloscFrameError, match="blosc_getitem failed"):
            decode(bytes(bad))

    # a flipped byte in a raw-stored stream (length == blocksize / typesize): silent garbage
    raw = [(pos, n) for pos, n in streams if n == h.blocksize // h.typesize]
    assert raw, "noise keeps its low mantissa bytes raw"
    pos, n = raw[0]
    bad = bytearray(frame[lo:hi])
    bad[pos - lo + 4 + n // 2] ^= 0xFF
    got = decode(bytes(bad))
    assert np.count_nonzero(_bits(got) != _bits(arr.ravel()[:items])) == 1

    # zlib streams carry an adler32, so a flipped payload byte of a zlib frame is caught
    mask = _array("u16", EDGE_SHAPE)
    zframe = _frame("u16", EDGE_SHAPE, "zlib", "shuffle")
    zh = parse_header(zframe)
    zlo, zhi = zh.block_span(0)
    zbad = bytearray(zframe[zlo:zhi])
    zbad[(zhi - zlo) // 2] ^= 0x5A
    with pytest.raises(BloscFrameError, match="blosc_getitem failed"):
        decode_items(zh, {(zlo, zhi): bytes(zbad)}, 0, 10, np.uint16)
    ok = decode_items(zh, {(zlo, zhi): zframe[zlo:zhi]}, 0, 10, np.uint16)
    assert np.array_equal(ok, mask.ravel()[:10])


# -- concurrency ----------------------------------------------------------------------------


def test_concurrent_decodes_from_several_threads():
    """blosc_getitem keeps no global state (stack context, own scratch), so no lock is taken;
    ctypes drops the GIL, so these calls really overlap."""
    cases = [("f32", "lz4", "shuffle"), ("u16", "zstd", "bitshuffle"), ("i8", "blosclz", "shuffle")]
    work = []
    for kind, cname, shuffle in cases:
        frame = _frame(kind, EDGE_SHAPE, cname, shuffle)
        h = parse_header(frame)
        for z in range(EDGE_SHAPE[0]):
            start, stop = _plane(EDGE_SHAPE, z)
            work.append((h, _fetch(frame, h, start, stop), start, stop, _array(kind, EDGE_SHAPE)))
    mismatches: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run(offset: int) -> None:
        barrier.wait()
        try:
            for i in range(len(work)):
                h, spans, start, stop, arr = work[(i + offset * 7) % len(work)]
                got = decode_items(h, spans, start, stop, arr.dtype)
                if not np.array_equal(_bits(got), _bits(arr.ravel()[start:stop])):
                    mismatches.append(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and mismatches == []
    assert len(work) == 3 * EDGE_SHAPE[0]
