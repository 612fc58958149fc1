"""The demo portal's synthetic content: tables valid against the portal's SDL, files encoded as
the portal encodes them (noise-like voxels, 256³ padded chunks, stores of other eras), annotations
on the drawn particles, objects made on request, deterministic, cached."""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import struct
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLScalarType, build_schema, get_named_type
from numcodecs import Blosc

from napari_cryoet_portal.demo import bucket as enc
from napari_cryoet_portal.demo import cache, content, virtual
from napari_cryoet_portal.demo.volumes import Scene, Shell, icosphere, scene_to_json

FOREIGN_KEYS = {
    "datasetId": "Dataset",
    "depositionId": "Deposition",
    "runId": "Run",
    "tiltseriesId": "Tiltseries",
    "alignmentId": "Alignment",
    "tomogramVoxelSpacingId": "TomogramVoxelSpacing",
    "tomogramId": "Tomogram",
    "annotationId": "Annotation",
    "annotationShapeId": "AnnotationShape",
}
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "Int": (int,),
    "Float": (float,),
    "Boolean": (bool,),
    "String": (str,),
    "ID": (str,),
}
DTYPES = {"Tomogram": "<f4", "SegmentationMask": "|i1", "InstanceSegmentationMask": "<u2"}
COMPRESSOR = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}
CHUNK = [256, 256, 256]
PORTAL_TOMOGRAM_KEY = "10004/TS_026/Reconstructions/VoxelSpacing13.480/Tomograms/100/TS_026.zarr"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cache.ensure_content("small", tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def tables(small: Path) -> dict[str, list[dict[str, Any]]]:
    return json.loads((small / "tables.json").read_text())


@pytest.fixture(scope="module")
def by_id(tables: dict[str, list[dict[str, Any]]]) -> dict[str, dict[int, dict[str, Any]]]:
    return {t: {r["id"]: r for r in rows} for t, rows in tables.items()}


def local(small: Path, url: str) -> Path:
    return small / "bucket" / content.bucket_key(url)


def showcase(tables: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The showcase run and its tomograms / annotation files, by role."""
    return run_parts(tables, content.SHOWCASE_DATASET_ID, content.SHOWCASE_RUN_NAME)


def run_parts(tables: dict[str, list[dict[str, Any]]], dataset_id: int, name: str) -> dict:
    """A run and its spacings (by value), tomograms and annotation files (with shape type and
    annotation)."""
    run = next(r for r in tables["Run"] if r["datasetId"] == dataset_id and r["name"] == name)
    spacings = {
        s["voxelSpacing"]: s for s in tables["TomogramVoxelSpacing"] if s["runId"] == run["id"]
    }
    tomograms = [t for t in tables["Tomogram"] if t["runId"] == run["id"]]
    annotations = {a["id"]: a for a in tables["Annotation"] if a["runId"] == run["id"]}
    shapes = {s["id"]: s for s in tables["AnnotationShape"] if s["annotationId"] in annotations}
    files = []
    for f in tables["AnnotationFile"]:
        if f["annotationShapeId"] in shapes:
            shape = shapes[f["annotationShapeId"]]
            files.append(
                {
                    **f,
                    "shapeType": shape["shapeType"],
                    "annotation": annotations[shape["annotationId"]],
                }
            )
    return {"run": run, "spacings": spacings, "tomograms": tomograms, "files": files}


def read_points(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def zyx(points: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[p["location"][a] for a in "zyx"] for p in points])


def level_bytes(path: Path) -> tuple[int, int]:
    """(raw bytes the level's .zarray declares: shape × itemsize, bytes of its chunk objects)."""
    meta = json.loads((path / ".zarray").read_text())
    declared = int(np.prod(meta["shape"])) * np.dtype(meta["dtype"]).itemsize
    stored = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name[0] != ".")
    return declared, stored


def decoded(path: Path) -> np.ndarray:
    """A chunk object decoded to its full (padded) chunk."""
    meta = json.loads((path.parents[2] / ".zarray").read_text())
    raw = Blosc().decode(path.read_bytes())
    return np.frombuffer(raw, meta["dtype"]).reshape(meta["chunks"])


def unpadded_ratio(level: Path) -> float:
    """How well the level's voxels compress with the portal's codec, padding aside: the array
    re-encoded as one chunk of its own shape."""
    data = zarr.open_array(str(level), mode="r", zarr_format=2)[:]
    return data.nbytes / len(enc.encode_chunk(np.ascontiguousarray(data)))


# ---------------------------------------------------------------- tables


def test_rows_are_valid_against_the_portal_sdl(tables: dict[str, list[dict[str, Any]]]) -> None:
    sdl = (importlib.resources.files("cryoet_data_portal") / "data/schema.graphql").read_text()
    schema = build_schema(sdl)
    assert set(tables) == set(content.TYPES)
    for type_name, rows in tables.items():
        assert rows, type_name
        fields = {
            name: f.type
            for name, f in schema.type_map[type_name].fields.items()  # type: ignore[attr-defined]
            if isinstance(get_named_type(f.type), (GraphQLScalarType, GraphQLEnumType))
        }
        required = {name for name, t in fields.items() if isinstance(t, GraphQLNonNull)}
        for row in rows:
            assert set(row) <= set(fields), (type_name, set(row) - set(fields))
            missing = {name for name in required if row.get(name) is None}
            assert not missing, (type_name, row["id"], missing)
            for name, value in row.items():
                if value is None:
                    continue
                named = get_named_type(fields[name])
                where = (type_name, row["id"], name, value)
                if isinstance(named, GraphQLEnumType):
                    assert value in named.values, where
                elif named.name == "DateTime":
                    assert datetime.fromisoformat(value).tzinfo is not None, where
                else:
                    assert isinstance(value, PYTHON_TYPES[named.name]), where
                    assert named.name == "Boolean" or not isinstance(value, bool), where


def test_ids_unique_and_foreign_keys_resolve(
    tables: dict[str, list[dict[str, Any]]], by_id: dict
) -> None:
    for type_name, rows in tables.items():
        assert len(by_id[type_name]) == len(rows), f"duplicate ids in {type_name}"
        for row in rows:
            for key, target in FOREIGN_KEYS.items():
                if row.get(key) is not None:
                    assert row[key] in by_id[target], (type_name, row["id"], key, row[key])
    assert min(by_id["Dataset"]) == 10000 and min(by_id["Deposition"]) == 10300
    # the plugin matches annotation files to tomograms by voxel spacing AND alignment, in one run
    for f in tables["AnnotationFile"]:
        annotation = by_id["Annotation"][
            by_id["AnnotationShape"][f["annotationShapeId"]]["annotationId"]
        ]
        assert (
            by_id["TomogramVoxelSpacing"][f["tomogramVoxelSpacingId"]]["runId"]
            == annotation["runId"]
        )
        assert by_id["Alignment"][f["alignmentId"]]["runId"] == annotation["runId"]
        assert annotation["tomogramVoxelSpacingId"] == f["tomogramVoxelSpacingId"]
        assert any(
            t["tomogramVoxelSpacingId"] == f["tomogramVoxelSpacingId"]
            and t["alignmentId"] == f["alignmentId"]
            for t in tables["Tomogram"]
        )
    for t in tables["Tomogram"]:
        assert t["name"] == by_id["Run"][t["runId"]]["name"]
        assert (
            by_id["TomogramVoxelSpacing"][t["tomogramVoxelSpacingId"]]["voxelSpacing"]
            == t["voxelSpacing"]
        )


def test_every_url_exists_in_the_bucket(
    small: Path, tables: dict[str, list[dict[str, Any]]]
) -> None:
    urls = [
        v
        for rows in tables.values()
        for row in rows
        for v in row.values()
        if isinstance(v, str) and v.startswith((content.S3_ROOT, content.HTTPS_ROOT))
    ]
    assert len(urls) > 1000
    missing = [u for u in urls if not local(small, u).exists()]
    assert not missing, missing[:5]
    for ds in tables["Dataset"]:
        assert ds["s3Prefix"] == f"{content.S3_ROOT}{ds['id']}/"
        total = sum(
            p.stat().st_size for p in local(small, ds["s3Prefix"]).rglob("*") if p.is_file()
        )
        assert ds["fileSize"] == total


def test_small_has_the_promised_shape(tables: dict[str, list[dict[str, Any]]]) -> None:
    datasets = tables["Dataset"]
    assert len(datasets) == 6
    for key in ("title", "description"):
        assert len({d[key] for d in datasets}) == 6, key
    organisms = [d["organismName"] for d in datasets if d["organismName"] is not None]
    assert len(set(organisms)) == len(organisms) == 5  # the protein phantom has none
    runs = Counter(r["datasetId"] for r in tables["Run"])
    assert runs[content.BIG_DATASET_ID] == content.BIG_DATASET_RUNS > 100
    assert {r["runId"] for r in tables["Tomogram"]} == {r["id"] for r in tables["Run"]}
    assert (
        len({r["runId"] for r in tables["Alignment"]})
        == len(tables["Alignment"])
        == len(tables["Run"])
    )
    assert any(o["objectName"] == "ATP synthase" for o in tables["IdentifiedObject"])


@pytest.mark.parametrize(
    ("where", "pattern", "expected"),
    [
        ("title", "pyrenoid", {10001}),
        ("description", "minimal bacterium", {10002}),
        ("organismName", "coronavirus", {10003}),
        ("annotation", "spike", {10003}),
        ("annotation", "ribosome", {10000, 10002}),
        ("identified", "ATP synthase", {10000}),
        ("run", "mpn_", {10002}),
        ("title", "phantom", {content.ML_DATASET_ID}),
        ("run", "ts_105", {content.ML_DATASET_ID}),
        ("annotation", "fatty acid", {content.LEGACY_DATASET_ID}),
    ],
)
def test_search_terms_hit_distinct_datasets(
    tables: dict, by_id: dict, where: str, pattern: str, expected: set[int]
) -> None:
    def run_dataset(run_id: int) -> int:
        return by_id["Run"][run_id]["datasetId"]

    p = pattern.lower()
    if where == "annotation":
        hits = {
            run_dataset(a["runId"]) for a in tables["Annotation"] if p in a["objectName"].lower()
        }
    elif where == "identified":
        hits = {
            run_dataset(o["runId"])
            for o in tables["IdentifiedObject"]
            if p in o["objectName"].lower()
        }
    elif where == "run":
        hits = {r["datasetId"] for r in tables["Run"] if p in r["name"].lower()}
    else:
        hits = {d["id"] for d in tables["Dataset"] if p in (d[where] or "").lower()}
    assert hits == expected


def test_showcase(tables: dict[str, list[dict[str, Any]]]) -> None:
    s = showcase(tables)
    fine = s["spacings"][content.SHOWCASE_FINE_SPACING]
    coarse = s["spacings"][content.SHOWCASE_COARSE_SPACING]
    assert len(s["spacings"]) == 2
    at_fine = {
        t["processing"]: t for t in s["tomograms"] if t["tomogramVoxelSpacingId"] == fine["id"]
    }
    assert set(at_fine) == {"raw", "denoised"}
    assert (
        at_fine["denoised"]["isVisualizationDefault"]
        and not at_fine["raw"]["isVisualizationDefault"]
    )
    (at_coarse,) = [t for t in s["tomograms"] if t["tomogramVoxelSpacingId"] == coarse["id"]]

    def extent(t: dict[str, Any]) -> list[float]:
        return [t[f"size{a}"] * t["voxelSpacing"] for a in "XYZ"]

    assert extent(at_coarse) == pytest.approx(extent(at_fine["raw"]))
    assert (at_fine["raw"]["sizeZ"], at_fine["raw"]["sizeY"], at_fine["raw"]["sizeX"]) == (
        64,
        128,
        128,
    )
    assert {f["shapeType"] for f in s["files"]} == {
        "Point",
        "OrientedPoint",
        "InstanceSegmentation",
        "SegmentationMask",
        "InstanceSegmentationMask",
        "Mesh",
    }
    assert {f["isVisualizationDefault"] for f in s["files"]} == {True, False}
    assert any(f["tomogramVoxelSpacingId"] == coarse["id"] for f in s["files"])
    assert (
        len({t["alignmentId"] for t in s["tomograms"]} | {f["alignmentId"] for f in s["files"]})
        == 1
    )
    for f in s["files"]:
        assert f["annotation"]["objectId"].startswith(("GO:", "UniProtKB:"))


# ---------------------------------------------------------------- files


def check_pyramid(
    path: Path,
    dtype: str,
    spacing: float,
    shape: tuple[int, int, int],
    *,
    axes: str = "zyx",
    unit: str | None = "angstrom",
    relative: bool = False,
    levels: int = 3,
) -> zarr.Group:
    """An OME-Zarr store as the portal writes it (zarr-python 2 + ome-zarr 0.9; `axes`, `unit`
    and `relative` scales as the portal wrote them at other times); `shape` is z, y, x."""
    group = zarr.open_group(str(path), mode="r", zarr_format=2)
    attrs = json.loads((path / ".zattrs").read_text())["multiscales"][0]
    assert attrs["version"] == "0.4" and attrs["name"] == "/"
    assert "metadata" not in attrs  # ome-zarr's write_multiscale adds none for the portal
    assert [a["name"] for a in attrs["axes"]] == list(axes)
    assert [a.get("unit") for a in attrs["axes"]] == [unit] * 3
    stored = shape[::-1] if axes == "xyz" else shape
    assert len(attrs["datasets"]) == 3
    for level, ds in enumerate(attrs["datasets"]):
        assert ds["path"] == str(level)
        scale = float(2**level) if relative else spacing * 2**level
        assert ds["coordinateTransformations"] == [{"type": "scale", "scale": [scale] * 3}]
        if level >= levels:
            assert not (path / str(level)).exists()
            continue
        array = group[str(level)]
        assert array.shape == tuple(n >> level for n in stored)
        assert array.dtype == np.dtype(dtype)
        text = (path / str(level) / ".zarray").read_text()
        meta = json.loads(text)
        assert text == json.dumps(meta, indent=4, sort_keys=True, separators=(",", ": "))
        assert meta["chunks"] == CHUNK  # as the portal, also for arrays smaller than a chunk
        assert meta["dimension_separator"] == "/" and meta["filters"] is None
        assert meta["fill_value"] == 0 and isinstance(meta["fill_value"], float) == (dtype == "<f4")
        assert meta["compressor"] == COMPRESSOR
    return group


def is_legacy(by_id: dict, run_id: int) -> bool:
    return by_id["Run"][run_id]["datasetId"] == content.LEGACY_DATASET_ID


def test_tomograms_are_portal_ome_zarr(
    small: Path, tables: dict[str, list[dict[str, Any]]], by_id: dict
) -> None:
    for t in tables["Tomogram"]:
        shape = (t["sizeZ"], t["sizeY"], t["sizeX"])
        path = local(small, t["s3OmezarrDir"])
        assert path == local(small, t["httpsOmezarrDir"])
        if not is_legacy(by_id, t["runId"]):  # (10011's stores: test_legacy_dataset)
            check_pyramid(path, "<f4", t["voxelSpacing"], shape)
        for level in range(3):
            assert t[f"scale{level}Dimensions"] == ",".join(str(n >> level) for n in shape[::-1])
        assert t["fileSizeOmezarr"] == sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    (t,) = [t for t in showcase(tables)["tomograms"] if t["processing"] == "denoised"]
    path = local(small, t["s3OmezarrDir"])
    levels = [zarr.open_array(str(path / str(i)), mode="r", zarr_format=2)[:] for i in range(3)]
    z, y, x = (n // 2 for n in levels[0].shape)
    binned = levels[0].reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(levels[1], binned, atol=1e-6)
    assert (
        abs(float(np.median(levels[0]))) < 0.3 and levels[0].min() < -1.0
    )  # dark matter, ~0 background


def test_every_zarr_is_chunked_as_the_portal_chunks(small: Path) -> None:
    """Every level of every store (tomograms and masks): 256³ chunks, edge chunks padded to the
    full chunk (the blosc header's size is a full chunk's), one object per grid cell."""
    levels = [p.parent for p in (small / "bucket").rglob(".zarray")]
    assert len(levels) > 500
    for level in levels:
        meta = json.loads((level / ".zarray").read_text())
        assert meta["chunks"] == CHUNK and meta["compressor"] == COMPRESSOR, level
        chunk_bytes = 256**3 * np.dtype(meta["dtype"]).itemsize
        grid = {
            "/".join(map(str, i)) for i in enc.chunk_grid(meta["shape"], meta["chunks"])
        }
        objects = {
            str(p.relative_to(level)) for p in level.rglob("*") if p.is_file() and p.name[0] != "."
        }
        assert objects == grid, level
        for name in objects:
            header = (level / name).read_bytes()[:16]
            version, _, flags, typesize, nbytes = struct.unpack_from("<BBBBI", header)
            assert (version, typesize, nbytes) == (2, np.dtype(meta["dtype"]).itemsize, chunk_bytes)
    # what lies beyond the array in an edge chunk is the fill value
    t = showcase(tables_of(small))["tomograms"][0]
    path = local(small, t["s3OmezarrDir"])
    chunk = decoded(path / "0" / "0" / "0" / "0")
    z, y, x = t["sizeZ"], t["sizeY"], t["sizeX"]
    assert chunk.shape == (256, 256, 256) and np.all(chunk[:z, :y, :x] != 0)
    assert not chunk[z:].any() and not chunk[:, y:].any() and not chunk[:, :, x:].any()
    # blocks stored out of order, as blosc's compressor threads leave them in the portal's
    frame = (path / "0" / "0" / "0" / "0").read_bytes()
    nbytes, blocksize = struct.unpack_from("<II", frame, 4)
    starts = np.frombuffer(frame, "<i4", -(-nbytes // blocksize), 16)
    assert np.any(np.diff(starts) < 0) and len(set(starts.tolist())) == len(starts)


def tables_of(small: Path) -> dict[str, list[dict[str, Any]]]:
    return json.loads((small / "tables.json").read_text())


def test_raw_tomograms_are_noise_like(small: Path, tables: dict, by_id: dict) -> None:
    """Real raw tomograms compress ~1.06x with the portal's codec; smooth or quantised demo
    voxels (~2x) would make every download look cheaper than it is."""
    checked = Counter()
    for t in tables["Tomogram"]:
        if by_id["Run"][t["runId"]]["datasetId"] == content.BIG_DATASET_ID and t["id"] % 7:
            continue  # the bulk runs share a few templates: a sample suffices
        level = local(small, t["s3OmezarrDir"]) / "0"
        if t["processing"] == "raw":
            declared, stored = level_bytes(level)
            assert declared / stored <= 1.1, (t["id"], declared / stored)
        limit = 1.1 if t["processing"] == "raw" else 1.3
        assert unpadded_ratio(level) <= limit, (t["id"], t["processing"])
        checked[t["processing"]] += 1
    assert checked["raw"] > 10 and checked["denoised"] > 3
    # a full-size level: the ratio is the voxels' own, not the padding's
    (fine,) = [
        t
        for t in tables["Tomogram"]
        if t["voxelSpacing"] == content.ML_FINE_SPACING
    ]
    declared, stored = level_bytes(local(small, fine["s3OmezarrDir"]) / "0")
    assert 1.0 < declared / stored <= 1.1


def test_ome_zarr_reader_reads_a_tomogram(
    small: Path, tables: dict[str, list[dict[str, Any]]]
) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    t = showcase(tables)["tomograms"][0]
    (node,) = list(Reader(parse_url(str(local(small, t["s3OmezarrDir"]))))())
    assert [d.shape for d in node.data] == [(64, 128, 128), (32, 64, 64), (16, 32, 32)]


def test_masks_and_mesh(small: Path, tables: dict[str, list[dict[str, Any]]]) -> None:
    trimesh = pytest.importorskip("trimesh")
    s = showcase(tables)
    spacing = {v["id"]: v["voxelSpacing"] for v in s["spacings"].values()}
    fine_shape = (64, 128, 128)
    for f in s["files"]:
        path = local(small, f["s3Path"])
        if f["format"] == "zarr":
            group = check_pyramid(
                path, DTYPES[f["shapeType"]], spacing[f["tomogramVoxelSpacingId"]], fine_shape
            )
            data = group["0"][:]
            if f["shapeType"] == "SegmentationMask":
                assert set(np.unique(data)) == {0, 1}
                assert set(np.unique(group["2"][:])) == {0, 1}
            else:
                colors = json.loads((path / ".zattrs").read_text())["image-label"]["colors"]
                labels = set(np.unique(data)) - {0}
                assert labels == {c["label-value"] for c in colors}
                assert len(labels) == f["annotation"]["objectCount"]
        elif f["format"] == "glb":
            # ingestion names mesh files after its shape, TriangularMesh (the API says Mesh)
            assert path.name.endswith("_triangularmesh.glb")
            blob = path.read_bytes()
            magic, version, length = struct.unpack_from("<III", blob)
            assert (magic, version, length) == (0x46546C67, 2, len(blob))
            scene = trimesh.load(io.BytesIO(blob), file_type="glb", force="scene", process=False)
            vertices = np.asarray(scene.to_mesh().vertices)
            assert len(vertices) == 2 * 162  # two vesicles, x, y, z voxels at the fine spacing
            assert vertices.min() >= 0 and vertices.max() <= 128


def test_ndjson_points_lie_inside_their_volume(small: Path, tables: dict, by_id: dict) -> None:
    kinds = {
        "Point": "point",
        "OrientedPoint": "orientedPoint",
        "InstanceSegmentation": "instancePoint",
    }
    tomo_shape = {
        (t["tomogramVoxelSpacingId"], t["alignmentId"]): (t["sizeZ"], t["sizeY"], t["sizeX"])
        for t in tables["Tomogram"]
    }
    for f in tables["AnnotationFile"]:
        if f["format"] != "ndjson":
            continue
        shape_row = by_id["AnnotationShape"][f["annotationShapeId"]]
        points = read_points(local(small, f["s3Path"]))
        assert {p["type"] for p in points} == {kinds[shape_row["shapeType"]]}
        coords = zyx(points)
        shape = tomo_shape[(f["tomogramVoxelSpacingId"], f["alignmentId"])]
        assert np.all(coords >= 0) and np.all(coords <= np.array(shape) - 1), f["s3Path"]
        count = by_id["Annotation"][shape_row["annotationId"]]["objectCount"]
        if shape_row["shapeType"] == "InstanceSegmentation":
            assert len({p["instance_id"] for p in points}) == count > 1
        else:
            assert len(points) == count
        for p in points:
            if "xyz_rotation_matrix" in p:
                r = np.array(p["xyz_rotation_matrix"])
                np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
                assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-5)


def test_points_sit_on_the_drawn_particles_at_both_spacings(small: Path, tables: dict) -> None:
    s = showcase(tables)
    points = defaultdict(list)
    for f in s["files"]:
        if f["format"] == "ndjson":
            spacing = next(
                v["voxelSpacing"]
                for v in s["spacings"].values()
                if v["id"] == f["tomogramVoxelSpacingId"]
            )
            points[(f["annotation"]["objectName"], spacing)].append(
                zyx(read_points(local(small, f["s3Path"])))
            )
    fine = points[("cytosolic ribosome", content.SHOWCASE_FINE_SPACING)][0]
    coarse = points[("cytosolic ribosome", content.SHOWCASE_COARSE_SPACING)][0]
    fine_a, coarse_a = (
        fine * content.SHOWCASE_FINE_SPACING,
        coarse * content.SHOWCASE_COARSE_SPACING,
    )
    nearest = np.linalg.norm(coarse_a[:, None] - fine_a[None], axis=-1).min(axis=1)
    assert np.all(nearest < 0.1)  # same particles in Å, though voxel indices differ
    assert not np.allclose(coarse, fine[: len(coarse)])
    for t in s["tomograms"]:
        vol = zarr.open_array(local(small, t["s3OmezarrDir"]) / "0", mode="r", zarr_format=2)[:]
        pts = fine_a if t["voxelSpacing"] == content.SHOWCASE_FINE_SPACING else coarse_a
        idx = np.round(pts / t["voxelSpacing"]).astype(int)
        at_particles = vol[tuple(idx.T)]
        assert np.median(at_particles) < np.median(vol) - 0.7, (t["processing"], t["voxelSpacing"])


def test_metadata_json_matches_rows(small: Path, tables: dict, by_id: dict) -> None:
    bucket = small / "bucket"
    for ds in tables["Dataset"]:
        meta = json.loads((bucket / str(ds["id"]) / "dataset_metadata.json").read_text())
        assert (meta["dataset_identifier"], meta["dataset_title"]) == (ds["id"], ds["title"])
        assert (bucket / meta["key_photos"]["thumbnail"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for run in tables["Run"][:20]:
        meta = json.loads((local(small, run["s3Prefix"]) / "run_metadata.json").read_text())
        assert meta["run_name"] == run["name"]
    files_of = defaultdict(set)
    for f in tables["AnnotationFile"]:
        files_of[by_id["AnnotationShape"][f["annotationShapeId"]]["annotationId"]].add(
            f["s3Path"].removeprefix(content.S3_ROOT)
        )
    for a in tables["Annotation"]:
        meta = json.loads(local(small, a["s3MetadataPath"]).read_text())
        assert meta["annotation_object"]["id"] == a["objectId"]
        assert {f["path"] for f in meta["files"]} == files_of[a["id"]]
    for t in showcase(tables)["tomograms"]:
        meta = json.loads(
            (local(small, t["s3OmezarrDir"]).parent / "tomogram_metadata.json").read_text()
        )
        assert meta["omezarr_dir"] == t["s3OmezarrDir"].removeprefix(content.S3_ROOT)
        assert meta["scales"][1] == dict(
            zip("zyx", (t["sizeZ"] // 2, t["sizeY"] // 2, t["sizeX"] // 2))
        )


def particle_contrast(vol: np.ndarray, points_vox: np.ndarray) -> float:
    """How much darker the volume is at the (rounded) points than overall (median)."""
    idx = np.round(points_vox).astype(int)
    assert np.all(idx >= 0) and np.all(idx < np.array(vol.shape))
    return float(np.median(vol) - np.median(vol[tuple(idx.T)]))


def test_showcase_default_tomogram_has_a_neuroglancer_config(small: Path, tables: dict) -> None:
    s = showcase(tables)
    configured = [t for t in s["tomograms"] if t["neuroglancerConfig"]]
    assert [t["isVisualizationDefault"] for t in configured] == [True]
    assert sum(1 for t in tables["Tomogram"] if t["neuroglancerConfig"]) == 1  # others: null
    (t,) = configured
    config = json.loads(t["neuroglancerConfig"])  # a JSON string, as the API returns it
    metres = t["voxelSpacing"] * 1e-10
    assert config["dimensions"] == {a: [pytest.approx(metres), "m"] for a in "xyz"}
    image, *annotations = config["layers"]
    assert image["type"] == "image" and image["name"] == content.SHOWCASE_RUN_NAME
    assert image["source"]["url"] == "zarr://" + t["httpsOmezarrDir"]
    lo, hi = image["shaderControls"]["normalized"]["range"]
    vol = zarr.open_array(local(small, t["s3OmezarrDir"]) / "0", mode="r", zarr_format=2)[:]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(vol, [0.5, 99.5])), rel=1e-6)
    assert np.mean(vol < lo) == pytest.approx(0.005, abs=1e-3) and lo < 0 < hi
    window = image["shaderControls"]["normalized"]["window"]
    assert window[0] < lo and window[1] > hi
    # a layer per file of the tomogram's spacing the portal can show (no instance masks; the
    # 16 Å community picks are at another spacing), named "{n} {object} {kind}"
    names = {a["name"]: a for a in annotations}
    assert set(names) == {
        "100 cytosolic ribosome point",
        "101 26S proteasome orientedpoint",
        "102 actin filament point",
        "103 membrane segmentation",
        "104 vesicle mesh",
    }
    sources = {a["source"]["url"].rsplit("/", 1)[-1] for a in annotations}
    assert "104-vesicle-1.0_triangularmesh" in sources
    assert "100-cytosolic_ribosome-1.0_point" in sources
    colors = [a["segmentDefaultColor"] for a in annotations if a["type"] == "segmentation"]
    for a in annotations:
        if a["type"] == "annotation" and 'color(default="' in a["shader"]:
            colors.append(a["shader"].split('color(default="')[1][:7])
    assert len(colors) == len(set(colors)) == 4  # instance points take their colours per instance
    defaults = {f["annotation"]["objectName"]: f["isVisualizationDefault"] for f in s["files"]}
    assert names["100 cytosolic ribosome point"]["visible"] is True
    assert names["104 vesicle mesh"]["visible"] == defaults["vesicle"]
    meta = json.loads(
        (local(small, t["s3OmezarrDir"]).parent / "tomogram_metadata.json").read_text()
    )
    assert (small / "bucket" / meta["neuroglancer_config_path"]).read_text() == t[
        "neuroglancerConfig"
    ]


def test_ml_dataset_like_10445(small: Path, tables: dict, by_id: dict) -> None:
    s = run_parts(tables, content.ML_DATASET_ID, content.ML_RUN_NAME)
    assert set(s["spacings"]) == {10.012, 4.99}
    coarse, fine = s["spacings"][10.012], s["spacings"][4.99]
    by_spacing = defaultdict(list)
    for t in s["tomograms"]:
        by_spacing[t["voxelSpacing"]].append(t)
        assert not t["isVisualizationDefault"] and not t["isPortalStandard"]
        assert t["neuroglancerConfig"] is None
    assert sorted(t["processing"] for t in by_spacing[10.012]) == ["denoised", "raw"]
    assert {t["reconstructionMethod"] for t in by_spacing[10.012]} == {"WBP"}
    assert len(by_spacing[4.99]) == 1
    shapes = {t["voxelSpacing"]: (t["sizeZ"], t["sizeY"], t["sizeX"]) for t in s["tomograms"]}
    assert shapes == {10.012: (64, 128, 128), 4.99: (128, 256, 256)}
    assert {f["shapeType"] for f in s["files"]} == {"Point", "OrientedPoint", "SegmentationMask"}
    assert {f["tomogramVoxelSpacingId"] for f in s["files"]} == {fine["id"]}
    assert {a["tomogramVoxelSpacingId"] for a in (f["annotation"] for f in s["files"])} == {
        fine["id"]
    }
    alignments = {r["id"] for r in tables["Alignment"] if r["runId"] == s["run"]["id"]}
    assert len(alignments) == 1
    assert {t["alignmentId"] for t in s["tomograms"]} | {f["alignmentId"] for f in s["files"]} == (
        alignments
    )
    assert coarse["id"] not in {f["tomogramVoxelSpacingId"] for f in tables["AnnotationFile"]}
    # particles are where the 4.99 Å annotations say, in Å, in every tomogram
    for f in s["files"]:
        if f["format"] != "ndjson":
            continue
        angstrom = zyx(read_points(local(small, f["s3Path"]))) * 4.99
        for t in s["tomograms"]:
            level = local(small, t["s3OmezarrDir"]) / "0"
            vol = zarr.open_array(str(level), mode="r", zarr_format=2)[:]
            floor = 0.5 if t["processing"] != "raw" or t["voxelSpacing"] > 5 else 0.3
            contrast = particle_contrast(vol, angstrom / t["voxelSpacing"])
            assert contrast > floor, (f["shapeType"], t["voxelSpacing"], t["processing"])
    (mask,) = [f for f in s["files"] if f["format"] == "zarr"]
    check_pyramid(local(small, mask["s3Path"]), "|i1", 4.99, (128, 256, 256))


def test_legacy_dataset_stores(small: Path, tables: dict) -> None:
    s = run_parts(tables, content.LEGACY_DATASET_ID, content.LEGACY_RUN_NAME)
    assert set(s["spacings"]) == {13.48}
    shape = content.LEGACY_SHAPE
    (old,) = [t for t in s["tomograms"] if t["processing"] == "raw"]
    (xyz,) = [t for t in s["tomograms"] if t["processing"] == "filtered"]
    assert old["isVisualizationDefault"] and not xyz["isVisualizationDefault"]
    assert old["depositionDate"] < "2024-03-06"  # when the portal's axes got a unit
    # (a) before 2024-03-06: axes without unit, scales 1, 2, 4
    check_pyramid(local(small, old["s3OmezarrDir"]), "<f4", 13.48, shape, unit=None, relative=True)
    # (c) stored x, y, z: axes listed x, y, z, the array transposed, Å scales without a unit
    xyz_path = local(small, xyz["s3OmezarrDir"])
    check_pyramid(xyz_path, "<f4", 13.48, shape, axes="xyz", unit=None)
    a = zarr.open_array(str(local(small, old["s3OmezarrDir"]) / "0"), mode="r", zarr_format=2)[:]
    b = zarr.open_array(str(xyz_path / "0"), mode="r", zarr_format=2)[:]
    assert b.shape == shape[::-1]
    files = {f["shapeType"]: f for f in s["files"]}
    points = zyx(read_points(local(small, files["Point"]["s3Path"])))  # voxels at 13.48 Å
    # the points and the tomograms span the same Å frame: particles under the points in both
    assert particle_contrast(a, points) > 0.7
    assert particle_contrast(b.transpose(2, 1, 0), points) > 0.7
    extent = np.array(shape) * 13.48
    assert np.all(points * 13.48 > 0) and np.all(points * 13.48 < extent)
    # (b) a semantic mask from before 2024-03-19: float32 0.0/1.0 (axes already in Å)
    assert "2024-03-06" < files["SegmentationMask"]["annotation"]["depositionDate"] < "2024-03-19"
    mask = check_pyramid(local(small, files["SegmentationMask"]["s3Path"]), "<f4", 13.48, shape)
    for level in "012":
        assert set(np.unique(mask[level][:]).tolist()) == {0.0, 1.0}
    # (d) an instance mask whose .zattrs lists a level "2" that has no .zarray (nor chunks)
    gapped = local(small, files["InstanceSegmentationMask"]["s3Path"])
    check_pyramid(gapped, "<u2", 13.48, shape, levels=2)
    assert not (gapped / "2" / ".zarray").exists()
    labels = zarr.open_array(str(gapped / "0"), mode="r", zarr_format=2)[:]
    assert set(np.unique(labels).tolist()) == {0, 1, 2, 3}
    # (e) the mesh: API shape Mesh, ingestion's file name and metadata shape TriangularMesh
    mesh = files["Mesh"]
    assert (mesh["format"], local(small, mesh["s3Path"]).name) == (
        "glb",
        "vesicle-1.0_triangularmesh.glb",
    )
    meta = json.loads(local(small, mesh["annotation"]["s3MetadataPath"]).read_text())
    assert {f["shape"] for f in meta["files"]} == {"InstanceSegmentationMask", "TriangularMesh"}
    assert all(f["isVisualizationDefault"] for f in s["files"])


def test_legacy_mesh_is_a_scene_with_node_transforms(small: Path, tables: dict) -> None:
    """The glb as trimesh writes a Scene after apply_scale: the vertex buffers in one unit, the
    placement in the nodes (a ×10 group matrix with a translation, nested children instancing
    one mesh with different matrices, a TRS node). World space: voxels x, y, z at 13.48 Å."""
    trimesh = pytest.importorskip("trimesh")
    s = run_parts(tables, content.LEGACY_DATASET_ID, content.LEGACY_RUN_NAME)
    (mesh,) = [f for f in s["files"] if f["shapeType"] == "Mesh"]
    blob = local(small, mesh["s3Path"]).read_bytes()
    (json_len,) = struct.unpack_from("<I", blob, 12)
    gltf = json.loads(blob[20 : 20 + json_len])
    nodes = gltf["nodes"]
    group = next(n for n in nodes if "children" in n and "matrix" in n)
    m = np.array(group["matrix"]).reshape(4, 4).T  # glTF matrices are column-major
    np.testing.assert_allclose(np.diag(m)[:3], [10, 10, 10])
    assert np.any(m[:3, 3] != 0)
    children = [nodes[i] for i in group["children"]]
    assert [c["mesh"] for c in children] == [0, 0]  # one mesh, instanced twice
    assert children[0]["matrix"] != children[1]["matrix"]
    trs = [n for n in nodes if "rotation" in n]
    assert len(trs) == 1 and {"translation", "scale"} <= set(trs[0]) and "matrix" not in trs[0]
    # every vertex where the vesicles are: the drawn shells, in voxels x, y, z
    scene = trimesh.load(io.BytesIO(blob), file_type="glb", force="scene", process=False)
    world = np.asarray(scene.to_mesh().vertices)
    shells, _ = content._legacy_scene()
    unit2, _ = icosphere(2)
    unit1, _ = icosphere(1)
    rotation = content.quaternion_matrix(content.LEGACY_MESH_ROTATION)
    expected = np.concatenate(
        [
            np.asarray(sh.center)[::-1] / 13.48 + sh.radius / 13.48 * unit
            for sh, unit in zip(shells.shells, (unit2, unit2, unit1 @ rotation.T))
        ]
    )
    assert world.shape == expected.shape == (2 * 162 + 42, 3)
    distances = np.linalg.norm(world[:, None] - expected[None], axis=-1)
    assert distances.min(axis=0).max() < 1e-4 and distances.min(axis=1).max() < 1e-4
    # and those are the vesicles of the instance mask
    (labels_file,) = [f for f in s["files"] if f["shapeType"] == "InstanceSegmentationMask"]
    path = local(small, labels_file["s3Path"]) / "0"
    labels = zarr.open_array(str(path), mode="r", zarr_format=2)[:]
    for label, sh in enumerate(shells.shells, start=1):
        centroid = np.argwhere(labels == label).mean(axis=0)  # z, y, x voxels
        np.testing.assert_allclose(centroid * 13.48, sh.center, atol=13.48)


# ---------------------------------------------------------------- determinism and cache


def digest(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    sample = files[::37] + [p for p in files if content.SHOWCASE_RUN_NAME in p.parts]
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sample
    } | {
        "": hashlib.sha256("\n".join(str(p.relative_to(root)) for p in files).encode()).hexdigest()
    }


def test_generation_is_deterministic(small: Path, tmp_path: Path) -> None:
    content.generate("small", tmp_path)
    assert (tmp_path / "tables.json").read_bytes() == (small / "tables.json").read_bytes()
    assert digest(tmp_path) == digest(small)


def test_ensure_content_reuses_the_cache(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(size: str, out: Path) -> None:
        raise AssertionError("regenerated")

    monkeypatch.setattr(content, "generate", fail)
    assert cache.ensure_content("small", small.parent) == small
    assert small.name == f"small-v{content.GENERATOR_VERSION}"


def test_interrupted_generation_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def interrupted(size: str, out: Path) -> None:
        calls.append(out)
        (out / "tables.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(content, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.ensure_content("small", tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the final directory nor the temporary one

    def quick(size: str, out: Path) -> None:
        calls.append(out)
        (out / "COMPLETE").write_text("done")

    monkeypatch.setattr(content, "generate", quick)
    final = cache.content_dir("small", tmp_path)
    final.mkdir()
    (final / "tables.json").write_text("{}")  # a stale, incomplete directory is replaced
    assert cache.ensure_content("small", tmp_path) == final
    assert cache.ensure_content("small", tmp_path) == final
    assert (
        len(calls) == 2 and (final / "COMPLETE").is_file() and not (final / "tables.json").exists()
    )
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_default_cache_root_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    assert cache.content_dir("large") == tmp_path / f"large-v{content.GENERATOR_VERSION}"
    monkeypatch.delenv(cache.ENV_VAR)
    assert "napari-cryoet-portal" in str(cache.default_cache_root())
    with pytest.raises(ValueError):
        cache.ensure_content("medium", tmp_path)


@pytest.fixture(scope="module")
def large_content(demo_cache: Path) -> Path:
    return cache.ensure_content("large", demo_cache)


@pytest.mark.large
def test_large_counts(large_portal) -> None:
    tables = large_portal.tables
    runs = Counter(r["datasetId"] for r in tables["Run"])
    assert len(tables["Dataset"]) == content.LARGE_DATASETS
    assert sum(runs.values()) == content.LARGE_RUNS
    assert max(runs.values()) == runs[content.HUGE_DATASET_ID] == content.HUGE_DATASET_RUNS
    run_ids = {r["id"] for r in tables["Run"]}
    assert (
        {r["runId"] for r in tables["Tomogram"]}
        == run_ids
        == {r["runId"] for r in tables["Annotation"]}
    )
    big = [t for t in tables["Tomogram"] if t["name"] == content.LARGE_TOMOGRAM_RUN_NAME]
    assert len(big) == 2
    assert (big[0]["sizeZ"], big[0]["sizeY"], big[0]["sizeX"]) == content.LARGE_TOMOGRAM_SHAPE
    assert {t["voxelSpacing"] for t in big} == {13.48, 26.96}
    # the first run of the largest dataset (what a benchmark opens) has two tomograms
    huge = [r for r in tables["Run"] if r["datasetId"] == content.HUGE_DATASET_ID]
    first = min(huge, key=lambda r: r["name"])
    assert sum(t["runId"] == first["id"] for t in tables["Tomogram"]) == 2


@pytest.mark.large
def test_large_portal_sized_tomogram_is_made_on_request(large_content: Path) -> None:
    tables = json.loads((large_content / "tables.json").read_text())
    (run,) = [
        r
        for r in tables["Run"]
        if (r["datasetId"], r["name"])
        == (content.LARGE_TOMOGRAM_DATASET_ID, content.PORTAL_TOMOGRAM_RUN_NAME)
    ]
    (t,) = [t for t in tables["Tomogram"] if t["runId"] == run["id"]]
    assert (t["sizeZ"], t["sizeY"], t["sizeX"]) == (1000, 928, 960)
    assert (t["voxelSpacing"], t["isVisualizationDefault"]) == (13.48, True)
    dims = [t[f"scale{i}Dimensions"] for i in range(3)]
    assert dims == ["960,928,1000", "480,464,500", "240,232,250"]
    assert t["s3OmezarrDir"] == content.S3_ROOT + PORTAL_TOMOGRAM_KEY
    path = local(large_content, t["s3OmezarrDir"])
    check_pyramid(path, "<f4", 13.48, (1000, 928, 960))  # metadata stored, no chunk objects
    files = sorted(p.name for p in path.rglob("*") if p.is_file())
    assert files == [".zarray"] * 3 + [".zattrs", ".zgroup"]
    objects = virtual.VirtualObjects.load(large_content)
    keys = list(objects.keys(PORTAL_TOMOGRAM_KEY + "/"))
    assert len(keys) == 4 * 4 * 4 + 2 * 2 * 2 + 1
    stored = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert t["fileSizeOmezarr"] == stored + sum(objects.size(k) for k in keys)
    # an interior chunk: full, noise-like; the corner chunk: padded with 0 beyond the array
    inner = objects.get(PORTAL_TOMOGRAM_KEY + "/0/1/2/1")
    again = virtual.VirtualObjects.load(large_content, disk_bytes=0)
    assert again.get(PORTAL_TOMOGRAM_KEY + "/0/1/2/1") == inner  # same bytes every time
    chunk = np.frombuffer(Blosc().decode(inner), "<f4").reshape(256, 256, 256)
    assert chunk.nbytes / len(inner) <= 1.1 and np.all(chunk != 0)
    corner = objects.get(PORTAL_TOMOGRAM_KEY + "/0/3/3/3")
    chunk = np.frombuffer(Blosc().decode(corner), "<f4").reshape(256, 256, 256)
    z, y, x = 1000 - 768, 928 - 768, 960 - 768
    assert np.all(chunk[:z, :y, :x] != 0)
    assert not chunk[z:].any() and not chunk[:, y:].any() and not chunk[:, :, x:].any()
    assert objects.get(PORTAL_TOMOGRAM_KEY + "/0/4/0/0") is None
    coarsest = np.frombuffer(Blosc().decode(objects.get(PORTAL_TOMOGRAM_KEY + "/2/0/0/0")), "<f4")
    assert coarsest.reshape(256, 256, 256)[:250, :232, :240].std() < chunk[:z, :y, :x].std() / 3
    assert not (large_content / "bucket" / PORTAL_TOMOGRAM_KEY / "0" / "0").exists()
    spacing = t["tomogramVoxelSpacingId"]
    points = [f for f in tables["AnnotationFile"] if f["tomogramVoxelSpacingId"] == spacing]
    assert [f["format"] for f in points] == ["ndjson"]


@pytest.mark.large
def test_large_bulk_runs_chunks_are_virtual_templates(large_content: Path) -> None:
    tables = json.loads((large_content / "tables.json").read_text())
    objects = virtual.VirtualObjects.load(large_content)
    huge = {r["id"] for r in tables["Run"] if r["datasetId"] == content.HUGE_DATASET_ID}
    tomograms = [t for t in tables["Tomogram"] if t["runId"] in huge]
    assert len(tomograms) > content.HUGE_DATASET_RUNS
    for t in tomograms[:50]:
        key = content.bucket_key(t["s3OmezarrDir"])
        chunks = list(objects.keys(key + "/"))
        assert [k.removeprefix(key) for k in chunks] == ["/0/0/0/0", "/1/0/0/0", "/2/0/0/0"]
        chunk = np.frombuffer(Blosc().decode(objects.get(chunks[0])), "<f4")
        assert chunk.size == 256**3  # padded as the portal pads
        store = local(large_content, t["s3OmezarrDir"])
        on_disk = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
        assert t["fileSizeOmezarr"] == on_disk + sum(objects.size(k) for k in chunks)


# ---------------------------------------------------------------- virtual objects


def small_virtual(root: Path, **kw: Any) -> virtual.VirtualObjects:
    """A content directory with one generated level (300×40×270: 2×1×2 chunks, edges padded)
    and one templated store, as content.generate writes them."""
    scene = Scene((3000.0, 400.0, 2700.0), seed=3)
    scene.shells.append(Shell((1500.0, 200.0, 1350.0), 150.0))
    array = virtual.GeneratedArray(
        key="1/R/T.zarr/0",
        shape=(300, 40, 270),
        chunks=(256, 256, 256),
        dtype="<f4",
        scene="s",
        spacing=10.0,
        shift=0.0,
        noise=0.6,
        seed=11,
    )
    grid = enc.chunk_grid(array.shape, array.chunks)
    sizes = [len(virtual.chunk_bytes(array, scene, i)) for i in grid]
    (root / "virtual" / "t" / "0" / "0" / "0").mkdir(parents=True, exist_ok=True)
    (root / "virtual" / "t" / "0" / "0" / "0" / "0").write_bytes(b"template chunk")
    spec = {
        "version": virtual.FORMAT_VERSION,
        "scenes": {"s": scene_to_json(scene)},
        "arrays": [{**array.to_json(), "sizes": sizes}],
        "templates": {"t": {"0/0/0/0": ["virtual/t/0/0/0/0", 14]}},
        "templated": {"2/B/T.zarr": "t", "2/A/T.zarr": "t"},
    }
    (root / virtual.VIRTUAL_JSON).write_text(json.dumps(spec))
    return virtual.VirtualObjects.load(root, **kw) if kw else virtual.VirtualObjects.load(root)


def test_virtual_objects_are_portal_chunks_made_on_request(tmp_path: Path) -> None:
    objects = small_virtual(tmp_path)
    key = "1/R/T.zarr/0/0/0/1"
    data = objects.get(key)
    assert data is not None and objects.size(key) == len(data)
    chunk = np.frombuffer(Blosc().decode(data), "<f4").reshape(256, 256, 256)
    # an edge chunk: the array's part (z 0-255, y 0-39, x 256-269) rendered, the rest 0
    assert np.all(chunk[:, :40, :14] != 0)
    assert not chunk[:, 40:].any() and not chunk[:, :, 14:].any()
    assert 0.5 < float(chunk[:, :40, :14].std()) < 0.8  # noise-like
    # deterministic: another reader, without any cache, makes the same bytes
    fresh = tmp_path / "fresh"
    again = small_virtual(fresh, disk_bytes=0)
    assert again.get(key) == data
    assert (tmp_path / virtual.CACHE_DIR / key).read_bytes() == data  # kept on disk
    assert not (fresh / virtual.CACHE_DIR).exists()
    # keys, sorted as S3 lists them; misses are None
    assert list(objects.keys()) == sorted(objects.keys())
    assert list(objects.keys("1/")) == [f"1/R/T.zarr/0/{z}/0/{x}" for z in (0, 1) for x in (0, 1)]
    assert len(objects) == 4 + 2
    misses = ("1/R/T.zarr/0/2/0/0", "1/R/T.zarr/0/0/1/0", "1/R/T.zarr/0/01/0/0")
    for miss in (*misses, "1/R/T.zarr/.zattrs", "nope"):
        assert objects.get(miss) is None and objects.size(miss) is None
    # templated stores: one object, many keys
    template = objects.get("2/A/T.zarr/0/0/0/0")
    assert template == objects.get("2/B/T.zarr/0/0/0/0") == b"template chunk"
    assert list(objects.keys("2/")) == ["2/A/T.zarr/0/0/0/0", "2/B/T.zarr/0/0/0/0"]
    assert objects.size("2/B/T.zarr/0/0/0/0") == 14
    # a content directory without virtual objects has none
    assert not virtual.VirtualObjects.load(tmp_path / "none") and objects


def test_virtual_objects_memory_and_disk_caches(tmp_path: Path) -> None:
    objects = small_virtual(tmp_path, memory_items=1, disk_bytes=12_000_000)
    keys = list(objects.keys("1/"))
    sizes = {k: objects.size(k) for k in keys}  # known without making the chunks
    assert not (tmp_path / virtual.CACHE_DIR).exists()
    assert sizes[keys[0]] > 10_000_000 and sum(sizes.values()) > 12_000_000
    for k in keys:
        assert len(objects.get(k)) == sizes[k]
    disk = tmp_path / virtual.CACHE_DIR
    cached = {str(p.relative_to(disk)) for p in disk.rglob("*") if p.is_file()}
    assert cached == set(keys[1:])  # capped: the oldest went
    assert objects.get(keys[0]) is not None  # made again
    reread = small_virtual(tmp_path, disk_bytes=12_000_000)
    assert reread.get(keys[-1]) == objects.get(keys[-1])  # from disk
    # a concurrent burst generates each chunk once and hands every caller the same bytes
    from concurrent.futures import ThreadPoolExecutor

    burst = small_virtual(tmp_path / "burst", disk_bytes=0)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(burst.get, [keys[0]] * 4))
    assert len({id(r) for r in results}) == 1
