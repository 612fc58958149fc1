"""Partial reads against the demo portal's S3 server: what a plane costs in GETs and bytes,
the fallbacks, damaged chunks, and the disk cache serving a reopen.

Counts and bytes are read at the server (its request log), never timed.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_cryoet_portal.data.blosc_frame import HEADER_PROBE_BYTES, BloscFrameError
from napari_cryoet_portal.data.byte_cache import ByteCache, set_default_byte_cache
from napari_cryoet_portal.data.progressive import PlaneCache, fetchers_in
from napari_cryoet_portal.data.pyramid import open_pyramid
from napari_cryoet_portal.data.storage import DataAccessError
from napari_cryoet_portal.demo import content
from napari_cryoet_portal.loading import open_tomogram


@pytest.fixture
def showcase(portal, client):
    run_id = next(
        r["id"]
        for r in portal.tables["Run"]
        if r["name"] == content.SHOWCASE_RUN_NAME and r["datasetId"] == content.SHOWCASE_DATASET_ID
    )
    detail = client.run_detail(run_id)
    return detail, detail.default_tomogram()


def _chunk_gets(portal, level: int) -> list:
    return [
        r
        for r in portal.s3.requests
        if r.method == "GET" and f".zarr/{level}/" in r.path and "/.z" not in r.path
    ]


def _open(detail, tomogram):
    (data, _, _), pyramid = open_tomogram(detail, tomogram, progressive=True)
    (fetcher,) = fetchers_in(data)
    return data, fetcher


def test_a_plane_costs_one_header_and_one_block_per_chunk(portal, showcase):
    detail, tomogram = showcase
    plain = open_pyramid(tomogram.s3_omezarr_dir)
    portal.s3.reset_log()
    data, fetcher = _open(detail, tomogram)
    top = len(data) - 1
    opened = _chunk_gets(portal, top)
    # the open read the coarsest level's middle plane: per chunk of that plane, the header
    # probe and the block(s) holding it, nothing else
    assert opened and all(r.range for r in opened)
    headers = [r for r in opened if r.range == f"bytes=0-{HEADER_PROBE_BYTES - 1}"]
    chunk_size = max(int(plain.arrays[top].metadata.chunks[0]), 1)
    assert len(headers) == len(opened) - len(headers)  # one block GET per header
    level0 = data[0]
    z = level0.shape[0] // 2
    np.asarray(level0[z])
    assert fetcher.wait_idle(30) and not fetcher.errors
    gets = _chunk_gets(portal, 0)
    chunks_in_plane = int(np.prod([-(-n // c) for n, c in zip(level0.shape[1:], level0.chunks[1:])]))
    assert len(gets) == 2 * chunks_in_plane and all(r.status == 206 for r in gets)
    block_bytes = sum(r.nbytes for r in gets if not r.range.startswith("bytes=0-"))
    plane_bytes = int(np.prod(level0.chunks[1:])) * level0.dtype.itemsize
    # noise barely compresses: a block of two planes is about two planes of bytes
    assert block_bytes <= chunks_in_plane * 2.5 * plane_bytes
    assert sum(r.nbytes for r in gets) < 0.05 * chunks_in_plane * chunk_size * plane_bytes
    np.testing.assert_array_equal(np.asarray(level0[z]), np.asarray(plain.levels[0][z]))
    fetcher.close()


def test_deep_views_read_whole_chunks(portal, showcase, monkeypatch):
    from napari_cryoet_portal.data import chunks

    detail, tomogram = showcase
    data, fetcher = _open(detail, tomogram)
    level0 = data[0]
    # a view deeper than this fraction of a chunk reads whole chunks (3D rendering): the
    # showcase is shallower than a quarter of its 256-deep chunks, so lower the bar
    monkeypatch.setattr(chunks, "PARTIAL_MAX_DEPTH_FRACTION", (level0.shape[0] - 1) / level0.chunks[0] / 2)
    portal.s3.reset_log()
    np.asarray(level0[:, :8, :8])  # a column through every plane: whole chunks pay
    assert fetcher.wait_idle(30) and not fetcher.errors
    gets = _chunk_gets(portal, 0)
    assert gets and all(r.range is None for r in gets)
    plain = open_pyramid(tomogram.s3_omezarr_dir)
    np.testing.assert_array_equal(np.asarray(level0[:, :8, :8]), np.asarray(plain.levels[0][:, :8, :8]))
    fetcher.close()


def test_a_damaged_chunk_is_an_error_for_that_view_then_a_retry(portal, showcase):
    detail, tomogram = showcase
    data, fetcher = _open(detail, tomogram)
    errors: list[BaseException] = []
    fetcher.on_error = errors.append
    level0 = data[0]
    z = level0.shape[0] - 1  # the last planes: their block lies at the end of the chunk
    key = content.bucket_key(tomogram.s3_omezarr_dir) + f"/0/{z // level0.chunks[0]}/0/0"
    whole = (portal.content_dir / "bucket" / key).read_bytes()
    expected = np.asarray(open_pyramid(tomogram.s3_omezarr_dir).levels[0][z])
    portal.s3.put_object(content.BUCKET, key, whole[: len(whole) // 2])
    try:
        shown = np.asarray(level0[z])
        assert fetcher.wait_idle(30)
        assert errors and isinstance(errors[-1], (DataAccessError, BloscFrameError)), errors
        # what is on screen is a preview from a coarser level, never the damaged chunk's bytes
        again = np.asarray(level0[z])
        assert fetcher.wait_idle(30)
        assert not np.array_equal(shown, expected) and not np.array_equal(again, expected)
    finally:
        portal.s3.put_object(content.BUCKET, key, whole)
    errors.clear()
    np.asarray(level0[z])  # asked again: fetched again, exact now
    assert fetcher.wait_idle(30) and not errors
    np.testing.assert_array_equal(np.asarray(level0[z]), expected)
    assert shown.shape == expected.shape
    fetcher.close()


def test_the_disk_cache_serves_a_reopen_with_no_requests(portal, showcase, tmp_path):
    detail, tomogram = showcase
    cache = ByteCache(tmp_path / "bytes", 256 << 20)
    set_default_byte_cache(cache)
    try:
        data, fetcher = _open(detail, tomogram)
        z = data[0].shape[0] // 2
        np.asarray(data[0][z])
        assert fetcher.wait_idle(30) and not fetcher.errors
        first = np.asarray(data[0][z])
        fetcher.close()
        portal.s3.reset_log()
        data, fetcher = _open(detail, tomogram)  # a new layer: its planes are not in memory
        np.asarray(data[0][z])
        assert fetcher.wait_idle(30) and not fetcher.errors
        np.testing.assert_array_equal(np.asarray(data[0][z]), first)
        chunk_reads = [r for r in portal.s3.requests if "/.z" not in r.path]
        assert chunk_reads == []  # only the pyramid's metadata went to the server
        fetcher.close()
    finally:
        set_default_byte_cache(None)
        cache.close()


def test_plane_memory_is_bounded_by_the_cache_budget(portal, showcase):
    detail, tomogram = showcase
    (data, _, _), pyramid = open_tomogram(detail, tomogram, progressive=True)
    (fetcher,) = fetchers_in(data)
    level0 = data[0]
    plane_bytes = int(np.prod(level0.chunks[1:])) * level0.dtype.itemsize
    chunks_in_plane = int(np.prod([-(-n // c) for n, c in zip(level0.shape[1:], level0.chunks[1:])]))
    budget = 6 * plane_bytes * chunks_in_plane
    fetcher.levels.cache = cache = PlaneCache(max_bytes=budget)
    for z in range(0, level0.shape[0], 2):
        np.asarray(level0[z])
        assert fetcher.wait_idle(30)
    assert 0 < cache.nbytes <= budget
    fetcher.close()
