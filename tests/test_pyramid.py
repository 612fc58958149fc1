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


# --- stores as the portal has written them over the years ----------------------------------


def write_store(
    path,
    levels: list[np.ndarray],
    *,
    axes=("z", "y", "x"),
    units=("angstrom",) * 3,
    scales=None,
    translations=None,
    chunks=(8, 8, 8),
):
    """A zarr v2 NGFF 0.4 store holding ``levels`` as given (stored axis order), metadata
    written by hand: axes without a unit where ``units`` has None."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for k, data in enumerate(levels):
        array = group.create_array(
            str(k),
            shape=data.shape,
            chunks=tuple(min(c, n) for c, n in zip((1,) * (data.ndim - 3) + chunks, data.shape)),
            dtype=data.dtype,
            compressors=Blosc(cname="lz4", clevel=5, shuffle=1),
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        array[:] = data
        transforms = [{"type": "scale", "scale": list(scales[k] if scales else (2.0**k,) * 3)}]
        if translations:
            transforms.append({"type": "translation", "translation": list(translations[k])})
        datasets.append({"path": str(k), "coordinateTransformations": transforms})
    axes_meta = [
        {"name": n, "type": "space", **({"unit": u} if u else {})} for n, u in zip(axes, units)
    ]
    attrs = {"multiscales": [{"version": "0.4", "axes": axes_meta, "datasets": datasets, "name": "/"}]}
    (path / ".zattrs").write_text(json.dumps(attrs))
    return path


def binned(data: np.ndarray, n: int) -> list[np.ndarray]:
    out = [data]
    for _ in range(n - 1):
        out.append(out[-1][::2, ::2, ::2].copy())
    return out


@pytest.fixture
def volume():
    return np.random.default_rng(1).normal(size=(12, 20, 28)).astype("f4")


def test_axes_without_unit_take_the_api_voxel_spacing(tmp_path, volume):
    """Pre-2024 portal stores: no unit, scales 1/2/4; the spacing (Å) is the API's."""
    store = write_store(tmp_path / "old.zarr", binned(volume, 3), units=(None,) * 3)
    p = open_pyramid(store, voxel_spacing=13.48)
    assert p.scales == ((13.48,) * 3, (26.96,) * 3, (53.92,) * 3)
    assert p.units == ("angstrom",) * 3 and p.scale_source == "voxel spacing"
    # without a spacing nothing is called Å: the scales stay the store's, units unknown
    bare = open_pyramid(store)
    assert bare.scales == ((1.0,) * 3, (2.0,) * 3, (4.0,) * 3)
    assert bare.units == (None,) * 3 and not bare.in_angstrom


def test_a_unitless_scale_is_a_ratio_not_a_spacing(tmp_path, volume):
    """The backend's test store says 14.08 without a unit in a 12.3 Å folder: the API wins,
    the ratios between levels stay the metadata's (here not 2×: 3× in z)."""
    scales = [(14.08,) * 3, (42.24, 28.16, 28.16)]
    store = write_store(tmp_path / "t.zarr", [volume, volume[::3, ::2, ::2].copy()], units=(None,) * 3, scales=scales)
    p = open_pyramid(store, voxel_spacing=12.3)
    assert p.scales[0] == pytest.approx((12.3,) * 3)
    assert p.scales[1] == pytest.approx((36.9, 24.6, 24.6))


def test_units_other_than_angstrom_are_converted(tmp_path, volume):
    store = write_store(tmp_path / "nm.zarr", binned(volume, 2), units=("nanometer",) * 3, scales=[(1.348,) * 3, (2.696,) * 3])
    p = open_pyramid(store, voxel_spacing=99.0)  # units present: the API's spacing is not used
    assert p.scales[0] == pytest.approx((13.48,) * 3) and p.scales[1] == pytest.approx((26.96,) * 3)
    assert p.units == ("angstrom",) * 3 and p.scale_source == "metadata"


def test_axes_stored_x_y_z_are_reordered_to_z_y_x(tmp_path, volume):
    stored = [level.transpose(2, 1, 0).copy() for level in binned(volume, 2)]  # x, y, z
    scales = [(3.0, 2.0, 1.0), (6.0, 4.0, 2.0)]  # x, y, z
    store = write_store(tmp_path / "xyz.zarr", stored, axes=("x", "y", "z"), scales=scales)
    p = open_pyramid(store)
    assert p.axes == ("z", "y", "x") and p.stored_axes == ("x", "y", "z")
    assert p.shapes[0] == volume.shape
    assert p.scales == ((1.0, 2.0, 3.0), (2.0, 4.0, 6.0))
    np.testing.assert_array_equal(np.asarray(p.levels[0]), volume)
    np.testing.assert_array_equal(np.asarray(p.levels[1]), volume[::2, ::2, ::2])


def test_reordered_axes_read_progressively_in_z_y_x(tmp_path):
    """What data.progressive reads for a transposed store is the transposed level, also for
    a cube (where the shapes cannot tell the orders apart)."""
    from napari_cryoet_portal.data.progressive import PlaneCache, fetchers_in, progressive_pyramid

    cube = np.random.default_rng(2).normal(size=(16, 16, 16)).astype("f4")
    store = write_store(tmp_path / "xyz.zarr", [c.transpose(2, 1, 0).copy() for c in binned(cube, 2)], axes=("x", "y", "z"))
    p = progressive_pyramid(open_pyramid(store), cache=PlaneCache(1 << 24))
    (fetcher,) = fetchers_in(list(p.levels))
    fetcher.fetch_now(0, ((0, 16), (0, 16), (0, 16)))
    np.testing.assert_array_equal(np.asarray(p.levels[0]), cube)


@pytest.mark.parametrize("axes", [("c", "y", "x"), ("z", "y", "y"), ("t", "z", "y", "x")])
def test_axes_that_are_not_z_y_x_are_refused(tmp_path, volume, axes):
    data = volume if len(axes) == 3 else volume[None]
    store = write_store(tmp_path / "odd.zarr", [data], axes=axes, units=(None,) * len(axes), scales=[(1.0,) * len(axes)])
    with pytest.raises(DataAccessError, match="not z, y, x in some order"):
        open_pyramid(store)


def test_float_masks_become_integer_labels(tmp_path):
    from napari_cryoet_portal.data.pyramid import as_labels

    mask = np.zeros((8, 8, 8), "f4")
    mask[2:5, 3:6, 1:7] = 1.0
    mask[0, 0, 0] = 0.6  # a mean-downsampled voxel rounds to the nearer label
    mask[0, 0, 1] = np.nan
    store = write_store(tmp_path / "m.zarr", binned(mask, 2), units=(None,) * 3)
    p = as_labels(open_pyramid(store, voxel_spacing=10.0))
    assert p.dtype == np.int32 and p.stored_dtype == np.float32
    assert all(np.issubdtype(np.asarray(level).dtype, np.integer) for level in p.levels)
    level0 = np.asarray(p.levels[0])
    expected = np.nan_to_num(mask).round().astype(np.int32)
    np.testing.assert_array_equal(level0, expected)
    # what data.progressive reads is the cast level too
    assert all(np.issubdtype(a.dtype, np.integer) for a in p.arrays)
    # integer masks are left alone
    labels = write_store(tmp_path / "i.zarr", binned(expected.astype("i1"), 2))
    q = open_pyramid(labels)
    assert as_labels(q) is q


def test_a_missing_level_is_dropped_and_noted(tmp_path, volume):
    store = write_store(tmp_path / "t.zarr", binned(volume, 3))
    (store / "2" / ".zarray").unlink()
    p = open_pyramid(store)
    assert p.missing_levels == ("2",)
    assert p.shapes == (volume.shape, volume[::2, ::2, ::2].shape)
    assert p.scales == ((1.0,) * 3, (2.0,) * 3)
    np.testing.assert_array_equal(np.asarray(p.levels[1]), volume[::2, ::2, ::2])


def test_a_missing_full_resolution_opens_with_the_others_in_place(tmp_path, volume):
    """Level 0 missing: level 1 becomes the finest, its voxel centres where they were
    (half a fine voxel in), so annotations at the full resolution still line up."""
    store = write_store(tmp_path / "t.zarr", binned(volume, 3), units=(None,) * 3)
    (store / "0" / ".zarray").unlink()
    p = open_pyramid(store, voxel_spacing=10.0)
    assert p.missing_levels == ("0",)
    assert p.scales == ((20.0,) * 3, (40.0,) * 3)
    assert p.translations == ((5.0,) * 3, (15.0,) * 3)


def test_a_pyramid_without_any_level_is_a_clear_error(tmp_path, volume):
    store = write_store(tmp_path / "t.zarr", binned(volume, 2))
    for k in ("0", "1"):
        (store / k / ".zarray").unlink()
    with pytest.raises(DataAccessError, match="no level"):
        open_pyramid(store)
