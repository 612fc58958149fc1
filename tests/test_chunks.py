"""Chunk sources: z-planes from the blosc blocks that hold them, bit-exact against zarr; the
fallbacks to whole chunks; the on-disk byte cache serving a reopen with no reads."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from numcodecs import GZip

from napari_cryoet_portal.data.byte_cache import ByteCache
from napari_cryoet_portal.data.chunks import ChunkSource, chunk_sources
from napari_cryoet_portal.data.pyramid import open_pyramid
from napari_cryoet_portal.data.storage import DataAccessError

SHAPE = (80, 200, 160)  # edge chunks in every axis
CHUNKS = (64, 128, 128)  # 4 MiB of float32: big enough for partial reads


def _store(path, data, compressor, chunks=CHUNKS):
    """A zarr v2 array on disk, written by zarr itself (the reference for every read)."""
    array = zarr.create_array(
        store=str(path),
        shape=data.shape,
        chunks=chunks,
        dtype=data.dtype,
        zarr_format=2,
        compressors=compressor,
        chunk_key_encoding={"name": "v2", "separator": "/"},
        fill_value=0,
    )
    array[...] = data
    return zarr.open_array(str(path), mode="r")


def _source(path, cache=None) -> ChunkSource:
    array = zarr.open_array(str(path), mode="r")
    return ChunkSource(str(path), array.metadata, byte_cache=cache if cache is not None else False)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(7).standard_normal(SHAPE).astype(np.float32)


@pytest.mark.parametrize(
    "compressor",
    [
        {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
        {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 2, "blocksize": 0},
        {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 0, "blocksize": 0},
    ],
    ids=["lz4-shuffle", "zstd-bitshuffle", "lz4-noshuffle"],
)
def test_planes_are_bit_exact_and_cost_a_fraction_of_the_chunk(tmp_path, noise, compressor):
    from numcodecs import get_codec

    reference = _store(tmp_path / "a.zarr", noise, get_codec(compressor))
    source = _source(tmp_path / "a.zarr")
    whole_chunk = (tmp_path / "a.zarr" / "0" / "0" / "0").stat().st_size
    for pos in [(0, 0, 0), (1, 1, 1), (0, 1, 0)]:
        for z in (0, 1, 7, 15, 16 if pos[0] == 0 else 15):
            block = source.read_planes(pos, z, z + 1)
            box = source.chunk_box(pos)
            assert block.z0 <= z < block.z0 + len(block.data)
            expected = reference[box][block.z0 : block.z0 + len(block.data)]
            assert np.array_equal(block.data.view(np.uint32), np.asarray(expected).view(np.uint32))
    if source.partial and compressor["shuffle"] != 0:
        before = source.bytes_read
        source._headers.clear()
        source.read_planes((0, 0, 0), 30, 31)
        assert source.bytes_read - before < whole_chunk / 4  # header + one block


def test_planes_spanning_blocks_and_the_last_partial_chunk(tmp_path, noise):
    from numcodecs import Blosc

    reference = _store(tmp_path / "b.zarr", noise, Blosc("lz4", 5, Blosc.SHUFFLE))
    source = _source(tmp_path / "b.zarr")
    assert source.partial
    block = source.read_planes((0, 0, 0), 5, 40)
    assert block.z0 <= 5 and block.z0 + len(block.data) >= 40
    np.testing.assert_array_equal(block.data, reference[block.z0 : block.z0 + len(block.data), :128, :128])
    last = source.read_planes((1, 1, 1), 15, 16)  # z 79 of 80: edge chunk cut at the array's end
    assert last.data.shape[1:] == (200 - 128, 160 - 128)
    np.testing.assert_array_equal(last.data, reference[64 + last.z0 : 64 + last.z0 + len(last.data), 128:, 128:])


def test_whole_chunks_where_partial_reads_do_not_apply(tmp_path, noise):
    gz = _store(tmp_path / "gz.zarr", noise, GZip(1))
    source = _source(tmp_path / "gz.zarr")
    assert not source.partial
    block = source.read_planes((0, 0, 0), 3, 4)
    assert block.z0 == 0 and block.data.shape == (64, 128, 128)
    np.testing.assert_array_equal(block.data, gz[:64, :128, :128])
    from numcodecs import Blosc

    small = _store(tmp_path / "small.zarr", noise[:16, :32, :32], Blosc("lz4", 5, Blosc.SHUFFLE), (16, 32, 32))
    assert not _source(tmp_path / "small.zarr").partial  # 64 KiB chunks: one read is cheaper
    assert small.shape == (16, 32, 32)


def test_a_memcpyed_frame_is_read_whole(tmp_path, noise):
    from numcodecs import Blosc

    _store(tmp_path / "raw.zarr", noise, Blosc("lz4", 0, Blosc.NOSHUFFLE))  # clevel 0: stored raw
    source = _source(tmp_path / "raw.zarr")
    block = source.read_planes((0, 0, 0), 3, 4)
    assert block.z0 == 0 and len(block.data) == 64
    np.testing.assert_array_equal(block.data, noise[:64, :128, :128])


def test_a_truncated_chunk_is_an_error_not_wrong_voxels(tmp_path, noise):
    from numcodecs import Blosc

    _store(tmp_path / "t.zarr", noise, Blosc("lz4", 5, Blosc.SHUFFLE))
    key = tmp_path / "t.zarr" / "0" / "0" / "0"
    key.write_bytes(key.read_bytes()[: key.stat().st_size // 2])
    source = _source(tmp_path / "t.zarr")
    with pytest.raises((DataAccessError, ValueError)):
        source.read_planes((0, 0, 0), 60, 61)  # its block lies past the cut
    with pytest.raises(DataAccessError):
        source.read_chunk((0, 0, 0))


def test_a_missing_chunk_is_the_fill_value(tmp_path, noise):
    from numcodecs import Blosc

    _store(tmp_path / "m.zarr", noise, Blosc("lz4", 5, Blosc.SHUFFLE))
    (tmp_path / "m.zarr" / "0" / "0" / "0").unlink()
    block = _source(tmp_path / "m.zarr").read_planes((0, 0, 0), 3, 4)
    assert not block.data.any()


def test_the_byte_cache_serves_a_reopen_without_reads(tmp_path, noise):
    from numcodecs import Blosc

    _store(tmp_path / "c.zarr", noise, Blosc("lz4", 5, Blosc.SHUFFLE))
    cache = ByteCache(tmp_path / "bytes", 64 << 20)
    first = _source(tmp_path / "c.zarr", cache)
    a = first.read_planes((1, 0, 1), 4, 5).data
    b = first.read_chunk((0, 1, 0))
    assert first.requests >= 3 and len(cache) >= 3
    again = _source(tmp_path / "c.zarr", cache)
    np.testing.assert_array_equal(again.read_planes((1, 0, 1), 4, 5).data, a)
    np.testing.assert_array_equal(again.read_chunk((0, 1, 0)), b)
    assert again.requests == 0 and again.bytes_read == 0
    cache.close()


def test_sources_of_a_pyramid_follow_its_levels(tmp_path, noise):
    from numcodecs import Blosc

    root = tmp_path / "p.zarr"
    for k in range(2):
        _store(root / str(k), noise[:: 2**k, :: 2**k, :: 2**k].copy(), Blosc("lz4", 5, Blosc.SHUFFLE))
    (root / ".zgroup").write_text('{"zarr_format": 2}')
    axes = [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]
    datasets = [
        {"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [2.0**k] * 3}]} for k in range(2)
    ]
    import json

    (root / ".zattrs").write_text(json.dumps({"multiscales": [{"version": "0.4", "axes": axes, "datasets": datasets}]}))
    sources = chunk_sources(open_pyramid(root))
    assert [s.shape for s in sources] == [SHAPE, (40, 100, 80)]
    assert sources[0].partial and sources[1].partial  # partial-ness follows the chunk, not the array
