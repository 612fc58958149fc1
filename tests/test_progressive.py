"""Progressive levels: reads never wait, the preview is a coarser level, fetched voxels are exact.

Unit tests run on real zarr arrays (in memory, and zarr v2 blosc stores on disk for partial
reads); the integration tests read demo tomograms from the demo S3 server and count GETs and
bytes there.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zarr

from napari_cryoet_portal.data.chunks import ChunkSource
from napari_cryoet_portal.data.progressive import (
    PlaneCache,
    ProgressiveLevel,
    first_view_box,
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


def _levels(pyramid, arrays=None, **kwargs):
    fine, coarse, sources = pyramid
    arrays = arrays or sources
    return progressive_levels(
        [ChunkSource.from_array(a) for a in arrays],
        [(1.0,) * 3, (2.0,) * 3],
        [(0.0,) * 3, (0.0,) * 3],
        **kwargs,
    )


class _Wrapped:
    """A zarr array whose chunk reads can be counted, slowed down or broken."""

    def __init__(self, array, on_read=None):
        self.array, self.shape, self.dtype, self.chunks = array, array.shape, array.dtype, array.chunks
        self.on_read = on_read

    def __getitem__(self, key):
        if self.on_read is not None:
            self.on_read(key)
        return self.array[key]


def test_first_read_is_a_preview_then_the_coarse_plane_then_the_real_voxels(pyramid):
    fine, coarse, _ = pyramid
    levels, fetcher = _levels(pyramid)
    level = levels[0]
    assert isinstance(level, ProgressiveLevel) and isinstance(levels[1], ProgressiveLevel)
    assert (level.shape, level.dtype, level.ndim) == (fine.shape, fine.dtype, 3)
    # nothing in memory yet: zeros, never a wait
    np.testing.assert_array_equal(np.asarray(level[5, 3:17, :]), np.zeros((14, 36), np.float32))
    assert fetcher.wait_idle(10) and not fetcher.errors
    np.testing.assert_array_equal(np.asarray(level[5, 3:17, :]), fine[5, 3:17, :])
    # the coarse plane came first: another fine plane it covers is previewed from it
    fetcher.settle_s = 5  # keep the next request from landing while we look
    preview = np.asarray(level[9, 3:17, :])  # in the next chunk of z; coarse plane 4
    iy = np.clip(np.rint(np.arange(3, 17) / 2).astype(int), 0, coarse.shape[1] - 1)
    ix = np.clip(np.rint(np.arange(36) / 2).astype(int), 0, coarse.shape[2] - 1)
    np.testing.assert_array_equal(preview, coarse[4][np.ix_(iy, ix)])
    fetcher.close()


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
    plane_bytes = 8 * 8 * 4
    cache = PlaneCache(max_bytes=100 * plane_bytes)
    levels, fetcher = _levels(pyramid, [_Wrapped(sources[0], reads.append), sources[1]], cache=cache)
    level = levels[0]
    np.asarray(level[3])  # z-slab 0: 5 × 5 chunks, one read each (whole chunks: in-memory zarr)
    assert fetcher.wait_idle(10)
    assert len(reads) == 25
    np.asarray(level[6, 10:20])
    assert fetcher.wait_idle(10) and len(reads) == 25  # same chunks' planes: in memory
    np.asarray(level[12])  # the next slab replaces the least recently used planes
    assert fetcher.wait_idle(10) and len(reads) == 50
    assert cache.nbytes <= max(cache.max_bytes, 8 * 40 * 36 * 4)
    np.testing.assert_array_equal(np.asarray(level[12]), fine[12])


def test_newest_request_first_and_old_ones_dropped(pyramid):
    fine, coarse, sources = pyramid
    gate, entered = threading.Event(), threading.Event()
    order: list[int] = []

    def slow(key):
        entered.set()
        gate.wait(10)
        order.append(key[0].start)

    (level, _), fetcher = _levels(pyramid, [_Wrapped(sources[0], slow), sources[1]])
    fetcher.max_pending, fetcher.settle_s = 2, 0
    fetcher.request(0, ((0, 1), (0, 1), (0, 1)))
    assert entered.wait(10)  # the first request is running
    for z0 in (8, 16):
        fetcher.request(0, ((z0, z0 + 1), (0, 1), (0, 1)))
    fetcher.request(0, ((0, 1), (8, 9), (0, 1)))  # the newest view
    gate.set()
    assert fetcher.wait_idle(10)
    # the first request was already running; of the rest only the two newest were kept, newest first
    assert order == [0, 0, 16]


def test_a_failed_fetch_reports_and_keeps_the_preview(pyramid):
    fine, coarse, sources = pyramid
    errors: list[BaseException] = []

    def broken(key):
        raise OSError("connection reset")

    levels, fetcher = _levels(pyramid, [_Wrapped(sources[0], broken), sources[1]])
    fetcher.on_error = errors.append
    np.asarray(levels[0][4])
    assert fetcher.wait_idle(10)
    assert [str(e) for e in errors] == ["connection reset"]
    # the coarse plane did land: the view is its preview, not stale or wrong voxels
    first = np.asarray(levels[0][4])
    assert fetcher.wait_idle(10)
    iy = np.clip(np.rint(np.arange(40) / 2).astype(int), 0, coarse.shape[1] - 1)
    ix = np.clip(np.rint(np.arange(36) / 2).astype(int), 0, coarse.shape[2] - 1)
    np.testing.assert_array_equal(first, coarse[2][np.ix_(iy, ix)])


def test_closed_fetcher_ignores_requests(pyramid):
    levels, fetcher = _levels(pyramid)
    fetcher.close()
    np.asarray(levels[0][0])
    assert fetcher.idle and fetchers_in(levels) == [fetcher] and fetchers_in(np.zeros(3)) == []


def test_fetchers_share_one_cache_and_close_drops_only_their_planes(pyramid):
    cache = PlaneCache()
    (a_levels, a), (b_levels, b) = _levels(pyramid, cache=cache), _levels(pyramid, cache=cache)
    np.asarray(a_levels[0][0])
    np.asarray(b_levels[0][0])
    assert a.wait_idle(10) and b.wait_idle(10)
    both = cache.nbytes
    assert both > 0 and (a.id, 0, (0, 0, 0), 0) in cache
    a.close()
    assert cache.nbytes == both / 2 and (a.id, 0, (0, 0, 0), 0) not in cache
    assert (b.id, 0, (0, 0, 0), 0) in cache


def test_a_closed_fetcher_is_idle_even_with_requests_queued(pyramid):
    fine, coarse, sources = pyramid
    gate = threading.Event()
    (level, _), fetcher = _levels(pyramid, [_Wrapped(sources[0], lambda key: gate.wait(10)), sources[1]])
    for z in range(3):
        fetcher.request(0, ((z * 8, z * 8 + 1), (0, 1), (0, 1)))
    assert not fetcher.idle
    fetcher.close()
    gate.set()
    assert fetcher.wait_idle(10) and fetcher.idle


def test_views_passed_through_are_not_fetched(pyramid):
    """napari slices several views while a layer is added or the camera moves: only the one
    it settles on is fetched."""
    fine, coarse, sources = pyramid
    reads: list[int] = []
    levels, fetcher = _levels(pyramid, [_Wrapped(sources[0], lambda key: reads.append(key[0].start)), sources[1]])
    for z in (0, 8, 16):  # three views in quick succession
        np.asarray(levels[0][z, :8, :8])
    assert fetcher.wait_idle(10)
    assert reads == [16]
    np.testing.assert_array_equal(np.asarray(levels[0][16, :8, :8]), fine[16, :8, :8])


def test_demo_tomogram_opens_from_one_coarse_plane(portal, client):
    run_id = next(
        r["id"]
        for r in portal.tables["Run"]
        if r["name"] == content.SHOWCASE_RUN_NAME and r["datasetId"] == content.SHOWCASE_DATASET_ID
    )
    detail = client.run_detail(run_id)
    tomogram = detail.default_tomogram()
    (data, kwargs, _), pyramid = open_tomogram(detail, tomogram)
    plain = [np.asarray(level) for level in pyramid.levels]
    portal.s3.reset_log()
    (data, kwargs, _), progressive = open_tomogram(detail, tomogram, progressive=True)
    assert all(isinstance(level, ProgressiveLevel) for level in data)
    (fetcher,) = fetchers_in(data)
    assert fetcher.idle
    top = data[-1]
    ((z, _), *_) = first_view_box(fetcher.levels, len(data) - 1)  # what napari shows first
    np.testing.assert_array_equal(np.asarray(top[z]), plain[-1][z])  # read by the open
    level0 = data[0]
    z0 = level0.shape[0] // 2
    np.asarray(level0[z0])
    assert fetcher.wait_idle(30) and not fetcher.errors
    np.testing.assert_array_equal(np.asarray(level0[z0]), plain[0][z0])
    before = len(portal.s3.requests)
    np.testing.assert_array_equal(np.asarray(level0[z0 ^ 1]), plain[0][z0 ^ 1])  # same blosc block
    assert len(portal.s3.requests) == before
