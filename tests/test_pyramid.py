"""OME-Zarr pyramids written by ome-zarr itself, read from disk and over S3 (moto server)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from numcodecs import Blosc
from ome_zarr.format import FormatV04
from ome_zarr.writer import write_multiscales_metadata

from napari_cryoet_portal.data.pyramid import open_pyramid
from napari_cryoet_portal.data.storage import DataAccessError
from napari_cryoet_portal.demo.s3_server import S3Server

SPACING = 7.5
BUCKET = "pyramid-test-bucket"


def write_pyramid(path, shape=(32, 64, 64), chunks=(16, 32, 32), spacing=SPACING, levels=3):
    """A portal-style NGFF 0.4 pyramid (levels "0", "1", "2", '/' chunk keys), via ome-zarr."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=shape).astype("f4")
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for level in range(levels):
        array = group.create_array(
            str(level),
            shape=data.shape,
            chunks=chunks,
            dtype="f4",
            compressors=Blosc(cname="lz4", clevel=5, shuffle=1),
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        array[:] = data
        factor = spacing * 2**level
        datasets.append({"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": [factor] * 3}]})
        data = data[::2, ::2, ::2]
    axes = [{"name": n, "type": "space", "unit": "angstrom"} for n in "zyx"]
    write_multiscales_metadata(group, datasets=datasets, fmt=FormatV04(), axes=axes)
    return rng


@pytest.fixture(scope="module")
def local_pyramid(tmp_path_factory):
    root = tmp_path_factory.mktemp("bucket")
    write_pyramid(root / "t.zarr")
    return root


@pytest.fixture(scope="module")
def s3(local_pyramid):
    with S3Server() as server:
        server.load_tree(BUCKET, local_pyramid)
        yield server


def test_local_pyramid_levels_and_scales_from_metadata(local_pyramid):
    p = open_pyramid(local_pyramid / "t.zarr")
    assert p.shapes == ((32, 64, 64), (16, 32, 32), (8, 16, 16))
    assert p.scales == ((7.5,) * 3, (15.0,) * 3, (30.0,) * 3)
    assert p.axes == ("z", "y", "x")
    assert p.units == ("angstrom",) * 3
    assert p.dtype == np.float32
    stored = zarr.open_array(str(local_pyramid / "t.zarr" / "1"), mode="r", zarr_format=2)
    np.testing.assert_array_equal(np.asarray(p.levels[1]), stored[:])


def test_scales_are_read_not_assumed(tmp_path):
    write_pyramid(tmp_path / "t.zarr", spacing=3.0)
    attrs = json.loads((tmp_path / "t.zarr" / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][1]["coordinateTransformations"] = [
        {"type": "scale", "scale": [6.0, 5.0, 4.0]},
        {"type": "translation", "translation": [1.0, 2.0, 3.0]},
    ]
    (tmp_path / "t.zarr" / ".zattrs").write_text(json.dumps(attrs))
    p = open_pyramid(tmp_path / "t.zarr")
    assert p.scales[1] == (6.0, 5.0, 4.0)
    assert p.translations[1] == (1.0, 2.0, 3.0)


def test_s3_open_costs_one_request_per_metadata_file_and_none_for_voxels(s3):
    s3.reset_log()
    p = open_pyramid(f"s3://{BUCKET}/t.zarr", endpoint_url=s3.endpoint_url)
    paths = sorted(r.path for r in s3.requests)
    assert paths == sorted(
        f"/{BUCKET}/t.zarr/{k}" for k in (".zattrs", "0/.zarray", "1/.zarray", "2/.zarray")
    )
    assert all(r.method == "GET" for r in s3.requests)
    s3.reset_log()
    plane = np.asarray(p.levels[0][5])
    # one z-plane of 16×32×32 chunks in a 64×64 plane: 4 chunks, one GET each, no HEAD
    assert [r.method for r in s3.requests] == ["GET"] * 4
    assert plane.shape == (64, 64)
    s3.reset_log()
    np.asarray(p.levels[2])
    assert len(s3.requests) == 1


def test_s3_endpoint_from_environment(s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint_url)
    p = open_pyramid(f"s3://{BUCKET}/t.zarr")
    assert p.shapes[2] == (8, 16, 16)


def test_missing_image_is_a_clear_error(s3):
    with pytest.raises(DataAccessError, match="not an OME-Zarr image"):
        open_pyramid(f"s3://{BUCKET}/nothing-here.zarr", endpoint_url=s3.endpoint_url)


def test_malformed_metadata_is_a_clear_error(tmp_path):
    write_pyramid(tmp_path / "t.zarr")
    (tmp_path / "t.zarr" / ".zattrs").write_text('{"multiscales": [{"axes": []}]}')
    with pytest.raises(DataAccessError, match="multiscales"):
        open_pyramid(tmp_path / "t.zarr")
    (tmp_path / "t.zarr" / ".zattrs").write_text("{not json")
    with pytest.raises(DataAccessError, match="not valid JSON"):
        open_pyramid(tmp_path / "t.zarr")


def test_missing_chunk_reads_as_fill_value(tmp_path):
    """A missing chunk is zarr's fill value (0), as the portal's sparse masks rely on."""
    write_pyramid(tmp_path / "t.zarr")
    (tmp_path / "t.zarr" / "2" / "0" / "0" / "0").unlink()
    p = open_pyramid(tmp_path / "t.zarr")
    assert not np.asarray(p.levels[2]).any()
