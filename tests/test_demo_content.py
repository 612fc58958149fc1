"""The demo portal's synthetic content: tables valid against the portal's SDL, files encoded as
the portal encodes them, annotations on the drawn particles, deterministic, cached."""

from __future__ import annotations

import hashlib
import importlib.resources
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

from napari_cryoet_portal.demo import cache, content

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
    run = next(
        r
        for r in tables["Run"]
        if r["datasetId"] == content.SHOWCASE_DATASET_ID and r["name"] == content.SHOWCASE_RUN_NAME
    )
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
    assert len(datasets) == 4
    for key in ("title", "description", "organismName"):
        assert len({d[key] for d in datasets}) == 4, key
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
    path: Path, dtype: str, spacing: float, shape: tuple[int, int, int]
) -> zarr.Group:
    group = zarr.open_group(str(path), mode="r", zarr_format=2)
    attrs = json.loads((path / ".zattrs").read_text())["multiscales"][0]
    assert attrs["version"] == "0.4" and attrs["name"] == "/"
    assert [a["name"] for a in attrs["axes"]] == ["z", "y", "x"]
    assert {a["unit"] for a in attrs["axes"]} == {"angstrom"}
    for level, ds in enumerate(attrs["datasets"]):
        assert ds["path"] == str(level)
        assert ds["coordinateTransformations"] == [
            {"type": "scale", "scale": [spacing * 2**level] * 3}
        ]
        array = group[str(level)]
        assert array.shape == tuple(n >> level for n in shape)
        assert array.dtype == np.dtype(dtype)
        meta = json.loads((path / str(level) / ".zarray").read_text())
        assert (
            meta["dimension_separator"] == "/"
            and meta["fill_value"] == 0
            and meta["filters"] is None
        )
        assert meta["compressor"] == {
            "id": "blosc",
            "cname": "lz4",
            "clevel": 5,
            "shuffle": 1,
            "blocksize": 0,
        }
    assert len(attrs["datasets"]) == 3
    return group


def test_tomograms_are_portal_ome_zarr(
    small: Path, tables: dict[str, list[dict[str, Any]]]
) -> None:
    for t in tables["Tomogram"]:
        shape = (t["sizeZ"], t["sizeY"], t["sizeX"])
        path = local(small, t["s3OmezarrDir"])
        assert path == local(small, t["httpsOmezarrDir"])
        check_pyramid(path, "<f4", t["voxelSpacing"], shape)
        for level in range(3):
            assert t[f"scale{level}Dimensions"] == ",".join(str(n >> level) for n in shape[::-1])
        assert t["fileSizeOmezarr"] == sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    (t,) = [t for t in showcase(tables)["tomograms"] if t["processing"] == "denoised"]
    path = local(small, t["s3OmezarrDir"])
    assert json.loads((path / "0" / ".zarray").read_text())["chunks"] == [
        256,
        256,
        256,
    ]  # as the portal
    levels = [zarr.open_array(str(path / str(i)), mode="r", zarr_format=2)[:] for i in range(3)]
    z, y, x = (n // 2 for n in levels[0].shape)
    binned = levels[0].reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(levels[1], binned, atol=1e-6)
    assert (
        abs(float(np.median(levels[0]))) < 0.3 and levels[0].min() < -1.0
    )  # dark matter, ~0 background


def test_ome_zarr_reader_reads_a_tomogram(
    small: Path, tables: dict[str, list[dict[str, Any]]]
) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    t = showcase(tables)["tomograms"][0]
    (node,) = list(Reader(parse_url(str(local(small, t["s3OmezarrDir"]))))())
    assert [d.shape for d in node.data] == [(64, 128, 128), (32, 64, 64), (16, 32, 32)]


def test_masks_and_mesh(small: Path, tables: dict[str, list[dict[str, Any]]]) -> None:
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
            blob = path.read_bytes()
            magic, version, length = struct.unpack_from("<III", blob)
            assert (magic, version, length) == (0x46546C67, 2, len(blob))
            json_len, json_type = struct.unpack_from("<II", blob, 12)
            gltf = json.loads(blob[20 : 20 + json_len])
            bin_len, bin_type = struct.unpack_from("<II", blob, 20 + json_len)
            assert json_type == 0x4E4F534A and bin_type == 0x004E4942
            assert bin_len >= gltf["buffers"][0]["byteLength"]
            positions = gltf["accessors"][1]
            assert np.all(np.array(positions["min"]) >= 0) and np.all(
                np.array(positions["max"]) <= 128
            )


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
    (big,) = [t for t in tables["Tomogram"] if t["name"] == content.LARGE_TOMOGRAM_RUN_NAME]
    assert (big["sizeZ"], big["sizeY"], big["sizeX"]) == content.LARGE_TOMOGRAM_SHAPE
