"""Run → layer data without Qt: scales in Å from NGFF, annotations aligned, requests counted."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from napari_cryoet_portal.data.storage import read_bytes
from napari_cryoet_portal.layers import METADATA_KEY, level_transform
from napari_cryoet_portal.loading import (
    annotation_layers,
    displayable,
    open_run,
    open_tomogram,
    preselected_files,
)


@pytest.fixture
def showcase(portal, client):
    """The run with the most tomograms (two voxel spacings, raw and denoised)."""
    run_id = Counter(t["runId"] for t in portal.tables["Tomogram"]).most_common(1)[0][0]
    return client.run_detail(run_id)


def world_extent(data_kwargs):
    data, kwargs, _ = data_kwargs
    level0 = data[0] if isinstance(data, list) else data
    scale = np.asarray(kwargs["scale"])
    translate = np.asarray(kwargs.get("translate", (0, 0, 0)))
    low = translate - scale / 2
    high = translate + (np.asarray(level0.shape) - 0.5) * scale
    return low, high


def world_points(layer):
    data, kwargs, _ = layer
    return np.asarray(data) * np.asarray(kwargs["scale"]) + np.asarray(kwargs.get("translate", (0, 0, 0)))


def test_open_run_default_is_one_graphql_request(portal, showcase):
    portal.graphql.reset_log()
    portal.s3.reset_log()
    layers = open_run(showcase.run.id)
    assert len(portal.graphql.requests) == 1
    kinds = [kind for _, _, kind in layers]
    assert kinds[0] == "image"
    image_data, image_kwargs, _ = layers[0]
    assert image_kwargs["multiscale"] and len(image_data) == 3
    default = showcase.default_tomogram()
    attrs = json.loads(read_bytes(default.s3_omezarr_dir.rstrip("/") + "/.zattrs"))
    ngff_scales = [d["coordinateTransformations"][0]["scale"] for d in attrs["multiscales"][0]["datasets"]]
    assert tuple(image_kwargs["scale"]) == tuple(ngff_scales[0])
    assert ngff_scales[0][0] == pytest.approx(default.voxel_spacing)
    assert image_kwargs["units"] == ("angstrom",) * 3
    assert image_kwargs["axis_labels"] == ("z", "y", "x")
    assert image_kwargs["metadata"][METADATA_KEY]["tomogram_id"] == default.id
    # the preselected annotations followed the image
    expected = preselected_files(showcase, default)
    assert expected
    ids = {kw["metadata"][METADATA_KEY].get("annotation_file_id") for _, kw, _ in layers[1:]}
    assert ids == {f.id for f in expected}


def test_pinned_level_scale_and_half_voxel_shift(showcase):
    tomogram = showcase.default_tomogram()
    (data, kwargs, _), pyramid = open_tomogram(showcase, tomogram, level=2)
    assert not kwargs["multiscale"]
    assert data.shape == pyramid.shapes[2]
    assert tuple(kwargs["scale"]) == pyramid.scales[2]
    scale, translate = level_transform(pyramid, 2)
    assert translate == tuple((s - b) / 2 for s, b in zip(pyramid.scales[2], pyramid.scales[0]))


def test_every_displayable_annotation_loads_inside_the_image(portal, showcase):
    """Including the files at another voxel spacing than the tomogram: Å lines them up."""
    tomogram = showcase.default_tomogram()
    image, _ = open_tomogram(showcase, tomogram)
    low, high = world_extent(image)
    files = [f for f in showcase.annotation_files() if displayable(f)]
    shapes = {f.shape_type for f in files}
    assert {"Point", "OrientedPoint", "InstanceSegmentation", "SegmentationMask", "InstanceSegmentationMask"} <= shapes
    assert any(showcase.voxel_spacing_of(f) != tomogram.voxel_spacing for f in files)
    for f in files:
        layers = annotation_layers(showcase, f)
        kinds = [k for _, _, k in layers]
        spacing = showcase.voxel_spacing_of(f)
        if f.shape_type in ("Point", "OrientedPoint", "InstanceSegmentation"):
            lines = [l for l in read_bytes(f.s3_path).splitlines() if l.strip()]
            points = layers[0]
            assert len(points[0]) == len(lines)
            assert tuple(points[1]["scale"]) == (spacing,) * 3
            w = world_points(points)
            assert np.all(w >= low) and np.all(w <= high), f"{f.shape_type} at {spacing} Å outside"
        if f.shape_type == "OrientedPoint":
            assert kinds == ["points", "vectors"]
            vectors = layers[1][0]
            assert vectors.shape == (len(layers[0][0]), 2, 3)
            assert np.allclose(np.linalg.norm(vectors[:, 1], axis=1), vectors[0, 1].dot(vectors[0, 1]) ** 0.5)
            assert {"r00", "r22"} <= set(layers[0][1]["features"])
        if f.shape_type == "InstanceSegmentation":
            ids = layers[0][1]["features"]["instance_id"]
            colors = layers[0][1]["face_color"]
            assert colors.shape == (len(ids), 4) and len(np.unique(ids)) > 1
            for a, b in zip(ids[:-1], ids[1:]):  # one colour per instance, neighbours differ
                assert np.array_equal(colors[ids == a][0], colors[ids == b][0]) == (abs(a - b) % 14 == 0)
        if f.shape_type in ("SegmentationMask", "InstanceSegmentationMask"):
            assert kinds == ["labels"]
            mask_low, mask_high = world_extent(layers[0])
            assert np.allclose(mask_low, low, atol=spacing) and np.allclose(mask_high, high, atol=spacing)
        if f.shape_type == "Mesh":
            assert kinds == ["surface"]


def test_points_at_two_voxel_spacings_coincide_in_angstrom(showcase):
    """The same object annotated at two spacings lands on the same Å positions."""
    by_object: dict[str, list] = {}
    for f in showcase.annotation_files():
        if f.shape_type == "Point" and f.format == "ndjson":
            name = showcase.annotation(f.annotation_id).object_name
            by_object.setdefault(name, []).append(f)
    pairs = [fs for fs in by_object.values() if len({showcase.voxel_spacing_of(f) for f in fs}) > 1]
    assert pairs, "the demo needs one object annotated at two voxel spacings"
    fine, coarse = sorted(pairs[0], key=showcase.voxel_spacing_of)[:2]
    a = world_points(annotation_layers(showcase, fine)[0])
    b = world_points(annotation_layers(showcase, coarse)[0])
    # nearest neighbour of every coarse point among the fine ones: within one coarse voxel
    d = np.linalg.norm(b[:, None, :] - a[None, :, :], axis=2).min(axis=1)
    assert np.all(d <= showcase.voxel_spacing_of(coarse) * 1.0)


def test_image_open_reads_metadata_and_the_coarsest_level_only(portal, showcase):
    """Contrast from the curators' viewer config costs no voxel read; without one, the
    percentiles cost the coarsest level only."""

    def open_and_log(tomogram):
        portal.s3.reset_log()
        open_tomogram(showcase, tomogram)
        paths = [r.path for r in portal.s3.requests]
        assert sum(p.endswith(".zattrs") for p in paths) == 1
        assert sum(p.endswith(".zarray") for p in paths) == 3
        return [p for p in paths if not p.endswith((".zattrs", ".zarray"))]

    default = showcase.default_tomogram()
    assert default.neuroglancer_config.contrast_limits is not None
    assert open_and_log(default) == []
    plain = next(t for t in showcase.tomograms if t.neuroglancer_config is None)
    chunk_reads = open_and_log(plain)
    assert chunk_reads and all("/2/" in p.split(".zarr", 1)[1] for p in chunk_reads)


def test_instance_colours_stay_distinct_beyond_16_instances():
    from napari_cryoet_portal.layers import instance_colors

    ids = np.repeat(np.arange(40), 3)
    colors = instance_colors(ids)
    assert colors.shape == (120, 4)
    per_id = colors[::3]
    assert np.array_equal(colors[1::3], per_id)  # the same instance, the same colour
    assert all(not np.array_equal(a, b) for a, b in zip(per_id[:-1], per_id[1:]))


def test_objects_of_a_run_get_distinct_colours(showcase):
    from napari_cryoet_portal.layers import annotation_color, annotation_colors, object_key

    keys = [object_key(a) for a in showcase.annotations]
    colors = annotation_colors(keys)
    assert len(set(colors.values())) == len(set(keys))  # the demo run has fewer objects than colours
    # a crowd of objects that all hash alike still gets one colour each, the first its own
    crowd = [k for k in (f"go:{i:07d}" for i in range(2000)) if annotation_color(k) == annotation_color("a")][:5]
    spread = annotation_colors(crowd)
    assert len(set(spread.values())) == 5 and spread[min(crowd)] == annotation_color(min(crowd))
    assert annotation_colors(reversed(crowd)) == spread  # whatever the order they come in
    # every annotation layer of the run carries the curators' colour (the default
    # tomogram's viewer config), else its object's
    curated = 0
    for f in showcase.annotation_files():
        if not displayable(f) or f.shape_type != "Point":
            continue
        (points, kwargs, _), *_ = annotation_layers(showcase, f)
        annotation = showcase.annotation(f.annotation_id)
        expected = showcase.curated_color(f) or colors[object_key(annotation)]
        curated += showcase.curated_color(f) is not None
        assert kwargs["face_color"] == expected
    assert curated  # the showcase's config colours its fine points, not the community picks


def _pyramid(levels, units=("angstrom",) * 3, sample=None):
    import dask.array as da

    from napari_cryoet_portal.data.pyramid import Pyramid

    return Pyramid(
        url="memory://",
        levels=tuple(da.from_array(level) for level in levels),
        scales=tuple((2.0**k,) * 3 for k in range(len(levels))),
        translations=((0.0,) * 3,) * len(levels),
        axes=("z", "y", "x"),
        units=units,
        attrs={},
        sample=sample,
    )


def test_contrast_limits_are_percentiles_of_the_sample_else_the_coarsest_level():
    from napari_cryoet_portal.layers import contrast_limits

    rng = np.random.default_rng(0)
    fine = rng.normal(size=(8, 16, 16)).astype("f4")
    coarse = fine[::2, ::2, ::2] * 100  # a coarsest level with another range
    coarse[0, 0, 0] = 1e6  # a hot pixel: percentiles, not min/max
    sample = rng.normal(5.0, 0.5, size=(16, 16)).astype("f4")
    lo, hi = contrast_limits(_pyramid([fine, coarse]))
    assert (lo, hi) == pytest.approx(tuple(np.percentile(coarse, (0.5, 99.5))))
    assert hi < 1e6
    assert contrast_limits(_pyramid([fine, coarse], sample=sample)) == pytest.approx(
        tuple(np.percentile(sample, (0.5, 99.5)))
    )
    flat = np.full((4, 4), 3.0, "f4")
    assert contrast_limits(_pyramid([fine], sample=flat)) == (3.0, 4.0)


def test_a_store_without_units_is_labelled_in_pixels_never_angstrom(showcase):
    from napari_cryoet_portal.layers import tomogram_layer

    tomogram = showcase.default_tomogram()
    volume = np.zeros((4, 4, 4), "f4")
    _, kwargs, _ = tomogram_layer(_pyramid([volume], units=(None,) * 3), tomogram, showcase.run)
    assert kwargs["units"] == ("pixel",) * 3
