"""Runs shaped like the real portal's, through `loading`: annotations at another voxel spacing
than the tomogram (dataset 10445's TS_105_5), pre-2024 stores (no units, scales 1/2/4, float
masks, x,y,z axes, a level missing), mesh scenes with node transforms, the curators' contrast.

The stores, ndjson and glb files here are written by the tests (zarr, numcodecs, hand-made
glTF) in the shapes the portal's writers produce; the records are built by hand.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import zarr
from numcodecs import Blosc

from napari_cryoet_portal.layers import METADATA_KEY
from napari_cryoet_portal.loading import (
    annotation_layers,
    open_tomogram,
    preselected_files,
)
from napari_cryoet_portal.portal.client import neuroglancer_config
from napari_cryoet_portal.portal.records import (
    Annotation,
    AnnotationFile,
    Run,
    RunDetail,
    Tomogram,
    VoxelSpacing,
)

LEGACY_SPACING = 13.48
SHAPE = (16, 24, 32)  # z, y, x at LEGACY_SPACING


# --- writers ----------------------------------------------------------------------------------


def write_store(path, levels, *, axes="zyx", unit="angstrom", scales=None, dtype=None):
    """A zarr v2 / NGFF 0.4 store as the portal writes one (blosc lz4, '/' keys)."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for k, data in enumerate(levels):
        data = data.astype(dtype or data.dtype)
        array = group.create_array(
            str(k),
            shape=data.shape,
            chunks=tuple(min(8, n) for n in data.shape),
            dtype=data.dtype,
            compressors=Blosc(cname="lz4", clevel=5, shuffle=1),
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        array[:] = data
        scale = scales[k] if scales else [2.0**k] * 3
        datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    axes_meta = [{"name": n, "type": "space", **({"unit": unit} if unit else {})} for n in axes]
    (path / ".zattrs").write_text(
        json.dumps({"multiscales": [{"version": "0.4", "axes": axes_meta, "datasets": datasets}]})
    )
    return str(path)


def pyramid_of(data, n=3):
    levels = [data]
    for _ in range(n - 1):
        levels.append(levels[-1][::2, ::2, ::2].copy())
    return levels


def write_points(path, zyx) -> str:
    lines = [json.dumps({"type": "point", "location": {"x": x, "y": y, "z": z}}) for z, y, x in zyx]
    path.write_text("\n".join(lines))  # as the portal: no trailing newline
    return str(path)


# --- records --------------------------------------------------------------------------------

_TOMOGRAM = Tomogram(
    id=0, name="TS", run_id=1, voxel_spacing_id=None, alignment_id=1, voxel_spacing=0.0,
    size_xyz=(0, 0, 0), level_dimensions_xyz=(), offset_xyz=(0, 0, 0), processing="raw",
    reconstruction_method="WBP", reconstruction_software="IMOD", ctf_corrected=None,
    is_visualization_default=False, is_portal_standard=False, is_author_submitted=False,
    s3_omezarr_dir=None, https_omezarr_dir=None, file_size_omezarr=None, s3_mrc_file=None,
    https_mrc_file=None, file_size_mrc=None, key_photo_url=None, thumbnail_url=None,
)


def tomogram(id, spacing, store, *, spacing_id, alignment=1, **kw) -> Tomogram:
    return replace(
        _TOMOGRAM, id=id, voxel_spacing=spacing, voxel_spacing_id=spacing_id,
        alignment_id=alignment, s3_omezarr_dir=store, **kw,
    )


def annotation(id, name, files, metadata_path=None) -> Annotation:
    return Annotation(
        id=id, object_name=name, object_id=f"GO:{id:07d}", object_description=None,
        object_state=None, object_count=None, annotation_method=None, method_type=None,
        ground_truth_status=None, is_curator_recommended=None, annotation_software=None,
        s3_metadata_path=metadata_path or f"s3://b/Annotations/{id}/{name}-1.0.json",
        https_metadata_path=None,
        files=tuple(replace(f, annotation_id=id) for f in files),
    )


def afile(id, shape, fmt, path, spacing_id, *, alignment=1, default=True) -> AnnotationFile:
    return AnnotationFile(
        id=id, format=fmt, s3_path=path, https_path=path, file_size=None,
        is_visualization_default=default, source="dataset_author", voxel_spacing_id=spacing_id,
        alignment_id=alignment, shape_type=shape, shape_id=id, annotation_id=0,
    )


def run_detail(spacings: dict[int, float], tomograms, annotations) -> RunDetail:
    return RunDetail(
        run=Run(1, "TS_LEGACY", 10011, "s3://b/", "https://b/"),
        voxel_spacings=tuple(VoxelSpacing(i, v, "", "") for i, v in spacings.items()),
        tomograms=tuple(tomograms),
        annotations=tuple(annotations),
    )


def world_extent(layer):
    """(low, high) corners in Å of a layer's level 0, voxel edges."""
    data, kwargs, _ = layer
    level0 = data[0] if isinstance(data, list) else data
    scale = np.asarray(kwargs["scale"])
    translate = np.asarray(kwargs.get("translate", (0, 0, 0)))
    return translate - scale / 2, translate + (np.asarray(level0.shape) - 0.5) * scale


def world_points(layer):
    data, kwargs, _ = layer
    return np.asarray(data) * np.asarray(kwargs["scale"]) + np.asarray(kwargs.get("translate", (0, 0, 0)))


@pytest.fixture
def volume():
    return np.random.default_rng(7).normal(size=SHAPE).astype("f4")


# --- annotations across voxel spacings --------------------------------------------------------


def test_annotations_at_5_angstrom_open_on_the_10_angstrom_tomogram(tmp_path):
    """TS_105_5: tomograms at 10.012 Å (raw, denoised) and 4.99 Å, none flagged; every
    annotation at 4.99 Å; one alignment. The 10 Å tomogram opens, with the annotations."""
    fine_shape = (32, 48, 64)
    coarse_shape = tuple(n // 2 for n in fine_shape)
    rng = np.random.default_rng(3)
    ten = write_store(tmp_path / "ten.zarr", pyramid_of(rng.normal(size=coarse_shape).astype("f4")), scales=[[10.012 * 2**k] * 3 for k in range(3)])
    five = write_store(tmp_path / "five.zarr", pyramid_of(rng.normal(size=fine_shape).astype("f4")), scales=[[4.99 * 2**k] * 3 for k in range(3)])
    corners = np.array([[0, 0, 0], [31, 47, 63], [10, 20, 30]], float)  # voxels at 4.99 Å
    points = afile(21, "Point", "ndjson", write_points(tmp_path / "p.ndjson", corners), 2)
    other = afile(22, "Point", "ndjson", write_points(tmp_path / "q.ndjson", corners), 1, alignment=9)
    raw, denoised, fine = (
        tomogram(1, 10.012, ten, spacing_id=1),
        tomogram(2, 10.012, ten, spacing_id=1, processing="denoised"),
        tomogram(3, 4.99, five, spacing_id=2),
    )
    detail = run_detail({1: 10.012, 2: 4.99}, [fine, raw, denoised], [annotation(5, "ribosome", [points, other])])
    choice = detail.default_choice()
    assert choice.tomogram is raw and "closest to 10" in choice.reason
    # aligned files at the other spacing are preselected; another alignment is not
    assert [f.id for f in preselected_files(detail, raw)] == [21]
    image, _ = open_tomogram(detail, raw)
    (layer,) = annotation_layers(detail, detail.annotation(5).files[0])
    assert tuple(layer[1]["scale"]) == (4.99,) * 3
    w = world_points(layer)
    np.testing.assert_allclose(w[1], corners[1] * 4.99)  # the far corner, in Å
    low, high = world_extent(image)
    assert np.all(w >= low) and np.all(w <= high)


# --- pre-2024 stores --------------------------------------------------------------------------


@pytest.fixture
def legacy(tmp_path, volume):
    """TS_LEGACY at 13.48 Å: a unit-less 1/2/4 tomogram, another stored x,y,z, a float32
    mask, a mask whose level 2 has no .zarray, points at 13.48 Å."""
    old = write_store(tmp_path / "old.zarr", pyramid_of(volume), unit=None)
    xyz = write_store(tmp_path / "xyz.zarr", [lv.transpose(2, 1, 0).copy() for lv in pyramid_of(volume)], axes="xyz", unit=None)
    mask = np.zeros(SHAPE, "f4")
    mask[4:12, 6:18, 8:24] = 1.0
    float_mask = write_store(tmp_path / "float.zarr", pyramid_of(mask), unit=None)
    gapped = write_store(tmp_path / "gapped.zarr", pyramid_of(mask), dtype="i1")
    (tmp_path / "gapped.zarr" / "2" / ".zarray").unlink()
    far = np.array(SHAPE, float) - 1
    points = write_points(tmp_path / "points.ndjson", np.array([[0, 0, 0], far]))
    files = {
        "float": afile(31, "SegmentationMask", "zarr", float_mask, 1),
        "gapped": afile(32, "SegmentationMask", "zarr", gapped, 1),
        "points": afile(33, "Point", "ndjson", points, 1),
    }
    detail = run_detail(
        {1: LEGACY_SPACING},
        [tomogram(1, LEGACY_SPACING, old, spacing_id=1), tomogram(2, LEGACY_SPACING, xyz, spacing_id=1)],
        [annotation(7, "membrane", [files["float"], files["gapped"]]), annotation(8, "ribosome", [files["points"]])],
    )
    return detail, {k: detail.annotation_files()[i] for i, k in enumerate(files)}


def test_unitless_store_is_scaled_by_the_api_spacing_and_lines_up_with_points(legacy):
    detail, files = legacy
    image, pyramid = open_tomogram(detail, detail.tomograms[0])
    data, kwargs, _ = image
    assert pyramid.scale_source == "voxel spacing"
    assert tuple(kwargs["scale"]) == (LEGACY_SPACING,) * 3
    assert kwargs["units"] == ("angstrom",) * 3
    assert pyramid.scales[2] == pytest.approx((4 * LEGACY_SPACING,) * 3)
    (points,) = annotation_layers(detail, files["points"])
    w = world_points(points)
    # the image's first and last voxel centres are where the points at voxels 0 and n-1 are
    np.testing.assert_allclose(w[0], np.asarray(kwargs["translate"]))
    np.testing.assert_allclose(w[1], np.asarray(kwargs["translate"]) + (np.array(SHAPE) - 1) * LEGACY_SPACING)


def test_store_with_x_y_z_axes_shows_as_z_y_x(legacy, volume):
    detail, _ = legacy
    (data, kwargs, _), pyramid = open_tomogram(detail, detail.tomograms[1])
    assert kwargs["axis_labels"] == ("z", "y", "x") and pyramid.stored_axes == ("x", "y", "z")
    np.testing.assert_array_equal(np.asarray(data[0]), volume)
    np.testing.assert_array_equal(np.asarray(data[2]), volume[::4, ::4, ::4])


def test_float_mask_becomes_a_labels_layer_napari_accepts(legacy):
    from napari.layers import Labels

    detail, files = legacy
    (layer,) = annotation_layers(detail, files["float"])
    data, kwargs, kind = layer
    assert kind == "labels" and all(np.issubdtype(level.dtype, np.integer) for level in data)
    assert tuple(kwargs["scale"]) == (LEGACY_SPACING,) * 3
    labels = Labels(data, **{k: v for k, v in kwargs.items() if k != "metadata"})
    assert labels.multiscale and set(np.unique(np.asarray(data[0]))) == {0, 1}
    # progressive levels (what the widget shows) are integer too
    (layer,) = annotation_layers(detail, files["float"], progressive=True)
    assert all(np.issubdtype(level.dtype, np.integer) for level in layer[0])


def test_mask_with_a_missing_level_opens_with_the_others(legacy):
    detail, files = legacy
    (layer,) = annotation_layers(detail, files["gapped"])
    data, kwargs, kind = layer
    assert kind == "labels" and len(data) == 2
    assert data[0].shape == SHAPE


# --- meshes -----------------------------------------------------------------------------------


def test_scene_mesh_lands_at_its_node_transforms_in_angstrom(tmp_path):
    from test_mesh import TETRA, TETRA_FACES, glb, matrix_node, scale_translate, world

    m = scale_translate(10.0, (1.0, 2.0, 3.0))  # voxels at the annotation's spacing, x y z
    path = tmp_path / "mesh.glb"
    path.write_bytes(glb([matrix_node(m, mesh=0)], [0]))
    mesh = afile(41, "Mesh", "glb", str(path), 1)
    detail = run_detail({1: LEGACY_SPACING}, [], [annotation(9, "vesicle", [mesh])])
    ((vertices_zyx, faces, _), kwargs, kind) = annotation_layers(detail, detail.annotation_files()[0])[0]
    assert kind == "surface" and tuple(kwargs["scale"]) == (LEGACY_SPACING,) * 3
    expected_zyx = world(TETRA.astype(float), m)[:, ::-1]
    np.testing.assert_allclose(np.sort(vertices_zyx, axis=0), np.sort(expected_zyx, axis=0), rtol=1e-6)


# --- contrast and colours from the curators' viewer state --------------------------------------


def test_contrast_comes_from_the_neuroglancer_config_else_percentiles(legacy, volume):
    detail, files = legacy
    plain = detail.tomograms[0]
    (_, kwargs, _), pyramid = open_tomogram(detail, plain)
    coarse = np.asarray(pyramid.levels[-1])
    assert kwargs["contrast_limits"] == pytest.approx(tuple(np.percentile(coarse, (0.5, 99.5))))
    assert kwargs["metadata"][METADATA_KEY]["contrast_limits_source"] == "percentiles of the coarsest level"
    # progressive: the sample data.progressive read for the first view
    (_, kwargs, _), pyramid = open_tomogram(detail, plain, progressive=True)
    assert pyramid.sample is not None
    assert kwargs["contrast_limits"] == pytest.approx(tuple(np.percentile(pyramid.sample, (0.5, 99.5))))
    state = {
        "layers": [
            {"type": "image", "name": "TS", "shaderControls": {"normalized": {"range": [-0.25, 0.75]}}},
            {"type": "annotation", "name": "8 ribosome point", "source": "precomputed://x/8-ribosome-1.0_point",
             "shader": '#uicontrol vec3 color color(default="#123456")'},
        ]
    }
    curated = replace(plain, neuroglancer_config=neuroglancer_config(json.dumps(state)))
    detail = replace(detail, tomograms=(curated, *detail.tomograms[1:]))
    (_, kwargs, _), _ = open_tomogram(detail, curated)
    assert kwargs["contrast_limits"] == (-0.25, 0.75)
    assert kwargs["metadata"][METADATA_KEY]["contrast_limits_source"] == "neuroglancer config"
    (points,) = annotation_layers(detail, files["points"])
    assert points[1]["face_color"] == "#123456"


# --- the demo portal's runs shaped like these (10010/TS_105_5, 10011/TS_LEGACY, showcase) -----


def named_run(client, dataset_id: int, name: str) -> RunDetail:
    run = next(r for r in client.all_runs(dataset_id) if r.name == name)
    return client.run_detail(run.id)


def sample_at(image_layer, world_zyx: np.ndarray) -> np.ndarray:
    """The image's level-0 voxels at Å positions (nearest voxel)."""
    data, kwargs, _ = image_layer
    level0 = np.asarray(data[0] if isinstance(data, list) else data)
    index = np.rint((world_zyx - np.asarray(kwargs["translate"])) / np.asarray(kwargs["scale"]))
    index = np.clip(index.astype(int), 0, np.array(level0.shape) - 1)
    return level0[tuple(index.T)]


def test_demo_10010_annotations_at_4_99_open_on_the_10_angstrom_tomogram(portal, client):
    from napari_cryoet_portal.demo import content
    from napari_cryoet_portal.loading import open_run

    detail = named_run(client, content.ML_DATASET_ID, content.ML_RUN_NAME)
    choice = detail.default_choice()
    assert choice.tomogram.voxel_spacing == content.ML_COARSE_SPACING
    assert "closest to 10" in choice.reason
    displayable_files = [f for f in detail.annotation_files() if f.format in ("ndjson", "zarr")]
    assert {detail.voxel_spacing_of(f) for f in displayable_files} == {content.ML_FINE_SPACING}
    layers = open_run(detail.run.id, client=client)
    image, annotations = layers[0], layers[1:]
    assert image[1]["metadata"][METADATA_KEY]["tomogram_id"] == choice.tomogram.id
    assert {kw["metadata"][METADATA_KEY]["annotation_file_id"] for _, kw, _ in annotations} == {
        f.id for f in displayable_files
    }
    low, high = world_extent(image)
    for data, kwargs, kind in annotations:
        if kind == "points":
            assert tuple(kwargs["scale"]) == (content.ML_FINE_SPACING,) * 3
            w = world_points((data, kwargs, kind))
            assert np.all(w >= low) and np.all(w <= high)
            # the particles are where the points say: dark (negative contrast) in the 10 Å
            # voxels at those Å positions, against a tomogram of mean about 0
            assert sample_at(image, w).mean() < -0.5
        if kind == "labels":
            mask_low, mask_high = world_extent((data, kwargs, kind))
            np.testing.assert_allclose(mask_low, low, atol=content.ML_COARSE_SPACING)
            np.testing.assert_allclose(mask_high, high, atol=content.ML_COARSE_SPACING)


def gltf_world_vertices(raw: bytes) -> np.ndarray:
    """Every mesh instance's POSITIONs through its node chain (matrix, or T·R·S with a
    normalised quaternion), read from the file without trimesh."""
    import struct

    json_len = struct.unpack_from("<I", raw, 12)[0]
    gltf = json.loads(raw[20 : 20 + json_len])
    bin_len = struct.unpack_from("<I", raw, 20 + json_len)[0]
    binary = raw[28 + json_len : 28 + json_len + bin_len]

    def positions(index: int) -> np.ndarray:
        accessor = gltf["accessors"][index]
        view = gltf["bufferViews"][accessor["bufferView"]]
        start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
        return np.frombuffer(binary, "<f4", 3 * accessor["count"], start).reshape(-1, 3)

    def local(node: dict) -> np.ndarray:
        if "matrix" in node:
            return np.asarray(node["matrix"], float).reshape(4, 4).T
        x, y, z, w = np.asarray(node.get("rotation", (0, 0, 0, 1)), float)
        x, y, z, w = np.array([x, y, z, w]) / np.linalg.norm([x, y, z, w])
        r = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        m = np.eye(4)
        m[:3, :3] = r * np.asarray(node.get("scale", (1, 1, 1)), float)
        m[:3, 3] = node.get("translation", (0, 0, 0))
        return m

    out = []

    def visit(i: int, parent: np.ndarray) -> None:
        node = gltf["nodes"][i]
        m = parent @ local(node)
        if "mesh" in node:
            for primitive in gltf["meshes"][node["mesh"]]["primitives"]:
                v = positions(primitive["attributes"]["POSITION"]).astype(float)
                out.append(v @ m[:3, :3].T + m[:3, 3])
        for child in node.get("children", ()):
            visit(child, m)

    for root in gltf["scenes"][gltf.get("scene", 0)]["nodes"]:
        visit(root, np.eye(4))
    return np.concatenate(out)


@pytest.fixture
def legacy_run(portal, client):
    from napari_cryoet_portal.demo import content

    return named_run(client, content.LEGACY_DATASET_ID, content.LEGACY_RUN_NAME)


def test_demo_scene_mesh_vertices_are_the_node_transformed_positions(legacy_run):
    from napari_cryoet_portal.data.storage import read_bytes
    from napari_cryoet_portal.demo import content

    (mesh,) = [f for f in legacy_run.annotation_files() if f.format == "glb"]
    raw = read_bytes(mesh.s3_path)
    written = json.loads(raw[20 : 20 + int.from_bytes(raw[12:16], "little")])
    nodes = written["nodes"]
    assert any("matrix" in n and "children" in n for n in nodes) and any("rotation" in n for n in nodes)
    assert len([n for n in nodes if "mesh" in n]) > len(written["meshes"])  # an instanced mesh
    ((vertices_zyx, faces, _), kwargs, kind) = annotation_layers(legacy_run, mesh)[0]
    assert kind == "surface" and tuple(kwargs["scale"]) == (content.LEGACY_SPACING,) * 3
    expected_zyx = gltf_world_vertices(raw)[:, ::-1]
    assert vertices_zyx.shape == expected_zyx.shape and faces.max() < len(vertices_zyx)
    # the same points (order aside): nearest neighbours both ways within float32 rounding
    d = np.linalg.norm(vertices_zyx[:, None] - expected_zyx[None], axis=2)
    assert d.min(axis=1).max() < 1e-3 and d.min(axis=0).max() < 1e-3
    # and they are the vesicles, inside the tomogram: in Å, within the run's volume
    image, _ = open_tomogram(legacy_run, legacy_run.default_tomogram())
    low, high = world_extent(image)
    w = vertices_zyx * content.LEGACY_SPACING
    assert np.all(w >= low) and np.all(w <= high)


def test_demo_legacy_store_and_its_points_span_the_same_angstrom_extent(legacy_run):
    from napari_cryoet_portal.demo import content
    from napari_cryoet_portal.loading import open_run

    tomogram = legacy_run.default_tomogram()
    layers = open_run(legacy_run.run.id, tomogram_id=tomogram.id, annotations="matching")
    image = layers[0]
    assert image[1]["metadata"][METADATA_KEY]["scale_source"] == "voxel spacing"
    assert tuple(image[1]["scale"]) == pytest.approx((content.LEGACY_SPACING,) * 3)
    assert image[1]["units"] == ("angstrom",) * 3
    low, high = world_extent(image)
    np.testing.assert_allclose(high - low, np.array(content.LEGACY_SHAPE) * content.LEGACY_SPACING)
    kinds = [kind for _, _, kind in layers[1:]]
    assert sorted(kinds) == ["labels", "labels", "points", "surface"]
    for data, kwargs, kind in layers[1:]:
        if kind == "points":
            w = world_points((data, kwargs, kind))
            assert np.all(w >= low) and np.all(w <= high)
            assert sample_at(image, w).mean() < -0.3  # on the particles
        if kind == "labels":
            assert all(np.issubdtype(level.dtype, np.integer) for level in data)
            mask_low, mask_high = world_extent((data, kwargs, kind))
            np.testing.assert_allclose(mask_low, low, atol=1e-6)
            np.testing.assert_allclose(mask_high, high, atol=1e-6)


def test_demo_float_mask_is_a_labels_layer_and_a_missing_level_opens(legacy_run):
    from napari.layers import Labels

    from napari_cryoet_portal.data.pyramid import open_pyramid

    masks = {f.shape_type: f for f in legacy_run.annotation_files() if f.format == "zarr"}
    semantic, instances = masks["SegmentationMask"], masks["InstanceSegmentationMask"]
    assert open_pyramid(semantic.s3_path).dtype == np.float32  # stored float, as before 2024-03
    (layer,) = annotation_layers(legacy_run, semantic)
    labels = Labels(layer[0], **{k: v for k, v in layer[1].items() if k != "metadata"})
    assert labels.multiscale and np.issubdtype(labels.data[0].dtype, np.integer)
    assert set(np.unique(np.asarray(layer[0][-1]))) <= {0, 1}
    gapped = open_pyramid(instances.s3_path)
    assert gapped.missing_levels == ("2",) and len(gapped.levels) == 2
    (layer,) = annotation_layers(legacy_run, instances)
    assert len(layer[0]) == 2 and set(np.unique(np.asarray(layer[0][-1]))) == {0, 1, 2, 3}


def test_demo_store_with_x_y_z_axes_opens_as_z_y_x(legacy_run):
    from napari_cryoet_portal.demo import content

    default = legacy_run.default_tomogram()
    (xyz,) = [t for t in legacy_run.tomograms if t is not default]
    (data, kwargs, _), pyramid = open_tomogram(legacy_run, xyz)
    assert pyramid.stored_axes == ("x", "y", "z") and kwargs["axis_labels"] == ("z", "y", "x")
    assert data[0].shape == content.LEGACY_SHAPE
    # the same scene as the default tomogram (other noise): correlated as stored z, y, x, not
    # with y and x swapped
    (ref, _, _), _ = open_tomogram(legacy_run, default)
    a, b = np.asarray(data[-1]).ravel(), np.asarray(ref[-1])
    same = np.corrcoef(a, b.ravel())[0, 1]
    swapped = np.corrcoef(a, b.transpose(0, 2, 1).ravel())[0, 1]
    assert same > 0.3 and same > swapped + 0.2


def test_demo_showcase_contrast_is_the_neuroglancer_configs_range(portal, client):
    from napari_cryoet_portal.demo import content
    from napari_cryoet_portal.loading import open_run

    detail = named_run(client, content.SHOWCASE_DATASET_ID, content.SHOWCASE_RUN_NAME)
    default = detail.default_tomogram()
    row = next(t for t in portal.tables["Tomogram"] if t["id"] == default.id)
    state = json.loads(row["neuroglancerConfig"])  # as the API sends it
    (image_state,) = [layer for layer in state["layers"] if layer["type"] == "image"]
    expected = tuple(image_state["shaderControls"]["normalized"]["range"])
    image = open_run(detail.run.id, client=client, annotations="none")[0]
    assert image[1]["contrast_limits"] == pytest.approx(expected)
    assert image[1]["metadata"][METADATA_KEY]["contrast_limits_source"] == "neuroglancer config"
