"""Progressive levels: reads never wait, the preview is the coarse level, fetched voxels are exact.

Unit tests run on real zarr arrays in memory; the integration test reads a demo tomogram from
moto's S3 and counts the GETs.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zarr

from napari_cryoet_portal.data.progressive import (
    ChunkCache,
    ChunkFetcher,
    ProgressiveLevel,
    fetchers_in,
    progressive_levels,
)
from napari_cryoet_portal.demo import content
from napari_cryoet_portal.loading import open_tomogram


def _zarr(data: np.ndarray, chunks: tuple[int, ...]) -> zarr.Array:
    array = zarr.create_array(store={}, shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[...] = data
    return array


@pytest.fixture
def pyramid():
    """A 2-level pyramid: 24×40×36 float32 in 8³ chunks, and its 2×-binned level."""
    rng = np.random.default_rng(0)
    fine = rng.normal(size=(24, 40, 36)).astype(np.float32)
    coarse = fine[::2, ::2, ::2].copy()
    sources = [_zarr(fine, (8, 8, 8)), _zarr(coarse, (8, 8, 8))]
    return fine, coarse, sources


def _levels(pyramid, **kwargs):
    fine, coarse, sources = pyramid
    return progressive_levels(
        sources, [(1.0,) * 3, (2.0,) * 3], [(0.0,) * 3, (0.0,) * 3], coarse, **kwargs
    )


def test_first_read_is_the_preview_then_the_real_voxels(pyramid):
    fine, coarse, _ = pyramid
    ready = threading.Event()
    levels, fetcher = _levels(pyramid)
    fetcher.on_ready = ready.set
    level = levels[0]
    assert isinstance(level, ProgressiveLevel) and levels[1] is coarse
    assert (level.shape, level.dtype, level.ndim) == (fine.shape, fine.dtype, 3)

    preview = np.asarray(level[5, 3:17, :])
    # nearest neighbour from the coarse level: fine voxel i ↔ coarse voxel round(i / 2)
    iy = np.clip(np.rint(np.arange(3, 17) / 2).astype(int), 0, coarse.shape[1] - 1)
    ix = np.clip(np.rint(np.arange(36) / 2).astype(int), 0, coarse.shape[2] - 1)
    np.testing.assert_array_equal(preview, coarse[int(np.rint(5 / 2))][np.ix_(iy, ix)])
    assert ready.wait(10) and fetcher.wait_idle(10)
    np.testing.assert_array_equal(np.asarray(level[5, 3:17, :]), fine[5, 3:17, :])
    # only the view's chunks were fetched; another plane through them is exact at once
    assert not fetcher.missing(0, fetcher.grid_box(0, [(7, 8), (0, 24), (0, 36)]))
    assert fetcher.missing(0, fetcher.grid_box(0, [(7, 8), (24, 40), (0, 36)]))
    np.testing.assert_array_equal(np.asarray(level[7, 1:24:3]), fine[7, 1:24:3])
    assert fetcher.idle and not fetcher.errors


@pytest.mark.parametrize("seed", range(3))
def test_any_basic_index_matches_numpy_once_fetched(pyramid, seed):
    fine, _, _ = pyramid
    levels, fetcher = _levels(pyramid)
    level = levels[0]
    np.asarray(level[...])  # everything requested
    assert fetcher.wait_idle(10)
    rng = np.random.default_rng(seed)
    for _ in range(200):
        key = []
        for n in fine.shape:
            if rng.random() < 0.3:
                key.append(int(rng.integers(-n, n)))
            else:
                a, b = sorted(int(v) for v in rng.integers(-n - 3, n + 3, size=2))
                key.append(slice(a, b, int(rng.integers(1, 4))))
        key = tuple(key[: int(rng.integers(1, 4))])
        np.testing.assert_array_equal(np.asarray(level[key]), fine[key], err_msg=str(key))
        # views compose like numpy's
        if np.ndim(fine[key]) >= 1 and fine[key].shape[0] > 1:
            np.testing.assert_array_equal(np.asarray(level[key][1:]), fine[key][1:], err_msg=str(key))
    np.testing.assert_array_equal(np.asarray(level[..., 3]), fine[..., 3])
    np.testing.assert_array_equal(np.asarray(level[2, ..., 1:4]), fine[2, ..., 1:4])


def test_bad_indices_are_refused(pyramid):
    level = _levels(pyramid)[0][0]
    with pytest.raises(IndexError):
        level[0, 0, 0, 0]
    with pytest.raises(IndexError):
        level[::-1]
    with pytest.raises(TypeError):
        level[[1, 2]]
    with pytest.raises(IndexError):
        level[99]


def test_only_missing_chunks_are_fetched_and_the_cache_is_bounded(pyramid):
    fine, coarse, sources = pyramid
    reads: list[tuple] = []

    class Counting:  # the zarr array, with its reads recorded
        def __init__(self, array):
            self.array, self.shape, self.dtype, self.chunks = array, array.shape, array.dtype, array.chunks

        def __getitem__(self, key):
            reads.append(key)
            return self.array[key]

    chunk_bytes = 8 * 8 * 8 * 4
    cache = ChunkCache(max_bytes=20 * chunk_bytes)
    levels, fetcher = progressive_levels(
        [Counting(sources[0]), sources[1]], [(1.0,) * 3, (2.0,) * 3], [(0.0,) * 3] * 2, coarse, cache=cache
    )
    level = levels[0]
    np.asarray(level[3])  # z-slab 0: 5 × 5 chunks, one read each
    assert fetcher.wait_idle(10)
    slab_bytes = 8 * 40 * 36 * 4  # the edge chunks are cut at the array's edge
    assert len(reads) == 25 and cache.nbytes == slab_bytes == cache.max_bytes  # grown to hold one view
    np.asarray(level[6, 10:20])
    assert fetcher.wait_idle(10) and len(reads) == 25
    np.asarray(level[12])  # the next slab replaces the least recently used chunks
    assert fetcher.wait_idle(10) and len(reads) == 50
    assert cache.nbytes <= cache.max_bytes
    np.testing.assert_array_equal(np.asarray(level[12]), fine[12])


def test_newest_request_first_and_old_ones_dropped(pyramid):
    fine, coarse, sources = pyramid
    gate, entered = threading.Event(), threading.Event()
    order: list[int] = []

    class Slow:
        def __init__(self, array):
            self.array, self.shape, self.dtype, self.chunks = array, array.shape, array.dtype, array.chunks

        def __getitem__(self, key):
            entered.set()
            gate.wait(10)
            order.append(key[0].start)
            return self.array[key]

    fetcher = ChunkFetcher([Slow(sources[0])], max_pending=2, settle_s=0)
    fetcher.request(0, ((0, 1), (0, 1), (0, 1)))
    assert entered.wait(10)  # the first request is running
    for z0 in (8, 16):
        fetcher.request(0, ((z0 // 8, z0 // 8 + 1), (0, 1), (0, 1)))
    fetcher.request(0, ((0, 1), (1, 2), (0, 1)))  # the newest view
    gate.set()
    assert fetcher.wait_idle(10)
    # the first request was already running; of the rest only the two newest were kept, newest first
    assert order == [0, 0, 16]


def test_a_failed_fetch_reports_and_keeps_the_preview(pyramid):
    fine, coarse, sources = pyramid
    errors: list[BaseException] = []

    class Broken:
        shape, dtype, chunks = sources[0].shape, sources[0].dtype, sources[0].chunks

        def __getitem__(self, key):
            raise OSError("connection reset")

    levels, fetcher = progressive_levels(
        [Broken(), sources[1]], [(1.0,) * 3, (2.0,) * 3], [(0.0,) * 3] * 2, coarse
    )
    fetcher.on_error = errors.append
    first = np.asarray(levels[0][4])
    assert fetcher.wait_idle(10)
    assert [str(e) for e in errors] == ["connection reset"]
    np.testing.assert_array_equal(np.asarray(levels[0][4]), first)


def test_closed_fetcher_ignores_requests(pyramid):
    levels, fetcher = _levels(pyramid)
    fetcher.close()
    np.asarray(levels[0][0])
    assert fetcher.idle and fetchers_in(levels) == [fetcher] and fetchers_in(levels[1]) == []


def test_demo_tomogram_streams_chunk_by_chunk(portal, client):
    run_id = next(
        r["id"]
        for r in portal.tables["Run"]
        if r["name"] == content.SHOWCASE_RUN_NAME and r["datasetId"] == content.SHOWCASE_DATASET_ID
    )
    detail = client.run_detail(run_id)
    tomogram = detail.default_tomogram()
    (data, kwargs, _), pyramid = open_tomogram(detail, tomogram)
    plain = np.asarray(pyramid.levels[0])
    portal.s3.reset_log()
    (data, kwargs, _), progressive = open_tomogram(detail, tomogram, progressive=True)
    level0 = data[0]
    assert isinstance(level0, ProgressiveLevel) and isinstance(data[-1], np.ndarray)
    opened = len(portal.s3.requests)  # .zattrs, .zarray × 3, the coarsest level's chunks
    z = level0.shape[0] // 2
    np.asarray(level0[z])
    (fetcher,) = fetchers_in(data)
    assert fetcher.wait_idle(30) and not fetcher.errors
    chunk_gets = [r for r in portal.s3.requests[opened:] if r.method == "GET"]
    chunk = level0.chunks
    slab = [-(-n // c) for n, c in zip(level0.shape[1:], chunk[1:])]
    assert len(chunk_gets) == slab[0] * slab[1]  # one GET per chunk of the slab, no HEADs
    assert len(portal.s3.requests) - opened == len(chunk_gets)
    np.testing.assert_array_equal(np.asarray(level0[z]), plain[z])
    np.testing.assert_array_equal(np.asarray(level0[z - 1 - (z % chunk[0]) + 1]), plain[z - (z % chunk[0])])
    assert len(portal.s3.requests) - opened == len(chunk_gets)  # same slab: nothing more fetched


def test_fetchers_share_one_cache_and_close_drops_only_their_chunks(pyramid):
    cache = ChunkCache()
    (a_levels, a), (b_levels, b) = _levels(pyramid, cache=cache), _levels(pyramid, cache=cache)
    np.asarray(a_levels[0][0])
    np.asarray(b_levels[0][0])
    assert a.wait_idle(10) and b.wait_idle(10)
    both = cache.nbytes
    assert both > 0 and a.chunk(0, (0, 0, 0)) is not None
    a.close()
    assert cache.nbytes == both / 2 and a.chunk(0, (0, 0, 0)) is None
    assert b.chunk(0, (0, 0, 0)) is not None


def test_a_closed_fetcher_is_idle_even_with_requests_queued(pyramid):
    fine, coarse, sources = pyramid
    gate = threading.Event()

    class Slow:
        shape, dtype, chunks = sources[0].shape, sources[0].dtype, sources[0].chunks

        def __getitem__(self, key):
            gate.wait(10)
            return sources[0][key]

    fetcher = ChunkFetcher([Slow()])
    for z in range(3):
        fetcher.request(0, ((z, z + 1), (0, 1), (0, 1)))
    assert not fetcher.idle
    fetcher.close()
    gate.set()
    assert fetcher.wait_idle(10) and fetcher.idle


def test_views_passed_through_are_not_fetched(pyramid):
    """napari slices several views while a layer is added or the camera moves: only the one
    it settles on is fetched."""
    fine, coarse, sources = pyramid
    reads: list[int] = []

    class Counting:
        shape, dtype, chunks = sources[0].shape, sources[0].dtype, sources[0].chunks

        def __getitem__(self, key):
            reads.append(key[0].start)
            return sources[0][key]

    levels, fetcher = progressive_levels(
        [Counting(), sources[1]], [(1.0,) * 3, (2.0,) * 3], [(0.0,) * 3] * 2, coarse
    )
    for z in (0, 8, 16):  # three views in quick succession
        np.asarray(levels[0][z, :8, :8])
    assert fetcher.wait_idle(10)
    assert reads == [16]
    np.testing.assert_array_equal(np.asarray(levels[0][16, :8, :8]), fine[16, :8, :8])
