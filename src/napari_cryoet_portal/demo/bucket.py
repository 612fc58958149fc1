"""Encoders for the demo bucket: every file is written exactly as the portal's ingestion does.

OME-Zarr v2 / NGFF 0.4 pyramids are written directly with numcodecs (no zarr round trip), plus
annotation ndjson, key-photo PNGs, binary glTF meshes and the metadata JSON files (the inverse
of the mapping the portal's importers apply from those files to API rows).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numcodecs import Blosc
from PIL import Image

from .volumes import Block

PORTAL_CHUNK = 256  # the portal's chunk edge, even when the array is smaller (edge chunks padded)
COMPRESSOR = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}
LEVELS = 3
Reduce = Literal["mean", "binary", "nearest"]
DTYPES: dict[Reduce, np.dtype] = {
    "mean": np.dtype("<f4"),  # tomograms
    "binary": np.dtype("|i1"),  # semantic masks
    "nearest": np.dtype("<u2"),  # instance masks
}
Source = np.ndarray | Callable[[Block], np.ndarray]

_codec = Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE, blocksize=0)


class Bucket:
    """Objects at their S3 keys under `root` (or in memory if root is None, to be copied later);
    remembers each object's size so the tables can report file sizes without a stat."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.sizes: dict[str, int] = {}
        self.objects: dict[str, bytes] = {}
        self._folders = {""}  # key prefixes known to exist: one mkdir per new folder, no stats
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, data: bytes) -> int:
        self.sizes[key] = len(data)
        if self.root is None:
            self.objects[key] = data
            return len(data)
        folder = key.rpartition("/")[0]
        if folder not in self._folders:
            self._make_folders(folder)
        with open(os.path.join(self.root, key), "wb") as f:
            f.write(data)
        return len(data)

    def _make_folders(self, folder: str) -> None:
        missing = []
        while folder not in self._folders:
            missing.append(folder)
            folder = folder.rpartition("/")[0]
        for folder in reversed(missing):  # parents first, so a plain mkdir suffices
            with contextlib.suppress(FileExistsError):
                os.mkdir(os.path.join(self.root, folder))  # type: ignore[arg-type]
            self._folders.add(folder)

    def put_json(self, key: str, obj: Any) -> int:
        return self.put(key, json.dumps(obj).encode())

    def put_all(self, prefix: str, objects: dict[str, bytes]) -> int:
        """Copy pre-encoded objects (from an in-memory Bucket) under `prefix`; total bytes."""
        return sum(self.put(prefix + k, v) for k, v in objects.items())


# ---------------------------------------------------------------- OME-Zarr


def write_ome_zarr(
    bucket: Bucket,
    key: str,
    source: Source,
    shape: tuple[int, int, int],
    voxel_spacing: float,
    reduce: Reduce,
    chunk: int | None = PORTAL_CHUNK,
    labels: Sequence[int] = (),
) -> int:
    """Write a 3-level pyramid (2× binning in z, y, x per level) at `key` (no trailing slash).

    `source` is the level-0 array, or a function rendering level-0 blocks so that large volumes
    never sit in memory at full resolution. `chunk=None` makes each level a single chunk of its
    own shape (legal, unpadded; cheap for tiny volumes). `labels` marks an instance mask
    (NGFF image-label). Returns the bytes written.
    """
    if any(n % 2 ** (LEVELS - 1) for n in shape):
        raise ValueError(f"shape {shape} must be divisible by {2 ** (LEVELS - 1)}")
    dtype = DTYPES[reduce]
    total = bucket.put_json(f"{key}/.zgroup", {"zarr_format": 2})
    total += bucket.put_json(f"{key}/.zattrs", ngff_attrs(voxel_spacing, labels))
    level_shape: tuple[int, ...] = shape
    for i in range(LEVELS):
        half = tuple(n // 2 for n in level_shape)
        binned = np.empty(half, dtype) if i < LEVELS - 1 else None
        total += _write_array(
            bucket, f"{key}/{i}", source, level_shape, dtype, chunk, binned, reduce
        )
        if binned is not None:
            source, level_shape = binned, half
    return total


def ngff_attrs(voxel_spacing: float, labels: Sequence[int] = ()) -> dict[str, Any]:
    """The `.zattrs` ome-zarr 0.4 writes for the portal: z, y, x in Å, scale doubling per level."""
    axes = [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]
    datasets = [
        {
            "coordinateTransformations": [{"scale": [voxel_spacing * 2**i] * 3, "type": "scale"}],
            "path": str(i),
        }
        for i in range(LEVELS)
    ]
    attrs: dict[str, Any] = {
        "multiscales": [{"axes": axes, "datasets": datasets, "name": "/", "version": "0.4"}]
    }
    if labels:
        attrs["image-label"] = {
            "colors": [{"label-value": int(n)} for n in labels],
            "version": "0.4",
        }
    return attrs


def _write_array(
    bucket: Bucket,
    key: str,
    source: Source,
    shape: tuple[int, ...],
    dtype: np.dtype,
    chunk: int | None,
    binned: np.ndarray | None,
    reduce: Reduce,
) -> int:
    """Write one level's `.zarray` and chunks; fill `binned` with the next level meanwhile."""
    chunks = tuple(shape) if chunk is None else (chunk,) * 3
    zarray = {
        "chunks": list(chunks),
        "compressor": COMPRESSOR,
        "dimension_separator": "/",
        "dtype": dtype.str,
        "fill_value": 0,
        "filters": None,
        "order": "C",
        "shape": list(shape),
        "zarr_format": 2,
    }
    total = bucket.put_json(f"{key}/.zarray", zarray)
    grid = [range(0, n, c) for n, c in zip(shape, chunks)]
    for z in grid[0]:
        for y in grid[1]:
            for x in grid[2]:
                origin = (z, y, x)
                size = tuple(min(c, n - o) for c, n, o in zip(chunks, shape, origin))
                region = tuple(slice(o, o + s) for o, s in zip(origin, size))
                data = source[region] if isinstance(source, np.ndarray) else source((origin, size))
                data = np.asarray(data, dtype)
                if binned is not None:
                    binned[tuple(slice(o // 2, (o + s) // 2) for o, s in zip(origin, size))] = _bin(
                        data, reduce
                    )
                if (
                    size != chunks
                ):  # zarr v2 stores edge chunks at full size, padded with fill_value
                    padded = np.zeros(chunks, dtype)
                    padded[tuple(slice(0, s) for s in size)] = data
                    data = padded
                total += bucket.put(
                    f"{key}/{z // chunks[0]}/{y // chunks[1]}/{x // chunks[2]}", _codec.encode(data)
                )
    return total


def _bin(a: np.ndarray, reduce: Reduce) -> np.ndarray:
    """One 2× pyramid step as the portal does it (mean; mean then re-binarise; nearest)."""
    if reduce == "nearest":
        return a[::2, ::2, ::2]
    z, y, x = (n // 2 for n in a.shape)
    mean = a.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5), dtype=np.float32)
    return (mean >= 0.5).astype(np.int8) if reduce == "binary" else mean


# ---------------------------------------------------------------- annotation files


def ndjson_points(
    xyz: np.ndarray,
    rotations: np.ndarray | None = None,
    instance_ids: Sequence[int] | None = None,
) -> bytes:
    """Point / orientedPoint / instancePoint lines; `xyz` in voxels at the annotation's spacing."""
    lines = []
    for i, (x, y, z) in enumerate(np.asarray(xyz, float)):
        row: dict[str, Any] = {
            "type": "point",
            "location": {"x": round(x, 3), "y": round(y, 3), "z": round(z, 3)},
        }
        if rotations is not None:
            row["type"] = "orientedPoint"
            row["xyz_rotation_matrix"] = np.round(rotations[i], 6).tolist()
        elif instance_ids is not None:
            row["type"] = "instancePoint"
            row["instance_id"] = int(instance_ids[i])
        lines.append(json.dumps(row))
    return ("\n".join(lines) + "\n").encode()


def glb_mesh(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """A minimal valid binary glTF 2.0 holding one triangle mesh (positions + uint32 indices)."""
    idx = np.ascontiguousarray(faces, "<u4").tobytes()
    pos = np.ascontiguousarray(vertices, "<f4")
    binary = idx + pos.tobytes()
    gltf = {
        "asset": {"version": "2.0", "generator": "napari-cryoet-portal demo"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 1}, "indices": 0, "mode": 4}]}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(idx), "target": 34963},
            {"buffer": 0, "byteOffset": len(idx), "byteLength": pos.nbytes, "target": 34962},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5125, "count": int(faces.size), "type": "SCALAR"},
            {
                "bufferView": 1,
                "componentType": 5126,
                "count": len(pos),
                "type": "VEC3",
                "min": pos.min(axis=0).tolist(),
                "max": pos.max(axis=0).tolist(),
            },
        ],
    }
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    body = (
        struct.pack("<II", len(text), 0x4E4F534A)
        + text
        + struct.pack("<II", len(binary), 0x004E4942)
        + binary
    )
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body


# ---------------------------------------------------------------- key photos


def key_photos(image: np.ndarray) -> tuple[bytes, bytes]:
    """(snapshot, thumbnail) PNGs of a 2D slice, contrast-stretched, long side 512 and 256 px."""
    lo, hi = np.percentile(image, [1, 99])
    grey = np.clip((image - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    return _png(grey, 512), _png(grey, 256)


def _png(grey: np.ndarray, long_side: int) -> bytes:
    im = Image.fromarray(grey)
    factor = long_side / max(grey.shape)
    size = (max(1, round(grey.shape[1] * factor)), max(1, round(grey.shape[0] * factor)))
    im = im.resize(size, Image.Resampling.NEAREST if factor > 1 else Image.Resampling.BOX)
    out = io.BytesIO()
    im.save(out, format="PNG")
    return out.getvalue()


# ---------------------------------------------------------------- metadata JSON (§6)


def _date(iso: str) -> str:
    return iso[:10]


def _dates(row: dict[str, Any]) -> dict[str, str]:
    return {
        "deposition_date": _date(row["depositionDate"]),
        "release_date": _date(row["releaseDate"]),
        "last_modified_date": _date(row["lastModifiedDate"]),
    }


def authors_metadata(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Author rows (any *Author table) as the metadata files list them."""
    out = []
    for a in sorted(rows, key=lambda a: a["authorListOrder"]):
        entry = {
            "name": a["name"],
            "ORCID": a.get("orcid"),
            "email": a.get("email"),
            "affiliation_name": a.get("affiliationName"),
            "primary_author_status": a.get("primaryAuthorStatus"),
            "corresponding_author_status": a.get("correspondingAuthorStatus"),
        }
        out.append({k: v for k, v in entry.items() if v is not None})
    return out


def deposition_metadata(dep: dict[str, Any], key_photos: dict[str, str]) -> dict[str, Any]:
    return {
        "deposition_identifier": dep["id"],
        "deposition_title": dep["title"],
        "deposition_description": dep["description"],
        "deposition_types": ["dataset", "annotation"],
        "dates": _dates(dep),
        "key_photos": key_photos,
    }


def dataset_metadata(
    ds: dict[str, Any],
    authors: Iterable[dict[str, Any]],
    funding: Iterable[dict[str, Any]],
    key_photos: dict[str, str],
) -> dict[str, Any]:
    return {
        "dataset_identifier": ds["id"],
        "dataset_title": ds["title"],
        "dataset_description": ds["description"],
        "deposition_id": ds["depositionId"],
        "organism": {"name": ds["organismName"], "taxonomy_id": ds["organismTaxid"]},
        "tissue": {"name": ds["tissueName"], "id": ds["tissueId"]},
        "cell_type": {"name": ds["cellName"], "id": ds["cellTypeId"]},
        "cell_strain": {"name": ds["cellStrainName"], "id": ds["cellStrainId"]},
        "sample_type": ds["sampleType"],
        "sample_preparation": ds["samplePreparation"],
        "grid_preparation": ds["gridPreparation"],
        "authors": authors_metadata(authors),
        "funding": [
            {"funding_agency_name": f["fundingAgencyName"], "grant_id": f["grantId"]}
            for f in funding
        ],
        "cross_references": {"publications": ds["datasetPublications"]},
        "dates": _dates(ds),
        "key_photos": key_photos,
    }


def run_metadata(run: dict[str, Any], deposition_id: int, last_updated: str) -> dict[str, Any]:
    return {
        "run_name": run["name"],
        "deposition_id": deposition_id,
        "last_updated_at": last_updated,
    }


def alignment_metadata(al: dict[str, Any]) -> dict[str, Any]:
    return {
        "alignment_type": al["alignmentType"],
        "alignment_method": al["alignmentMethod"],
        "volume_dimension": {a: al[f"volume{a.upper()}Dimension"] for a in "xyz"},
        "volume_offset": {a: al[f"volume{a.upper()}Offset"] for a in "xyz"},
        "x_rotation_offset": al["xRotationOffset"],
        "tilt_offset": al["tiltOffset"],
        "affine_transformation_matrix": json.loads(al["affineTransformationMatrix"]),
        "is_portal_standard": al["isPortalStandard"],
        "deposition_id": al["depositionId"],
        "files": [],
    }


def tomogram_metadata(
    tomo: dict[str, Any],
    authors: Iterable[dict[str, Any]],
    paths: dict[str, Any],
) -> dict[str, Any]:
    """`paths`: bucket-relative `omezarr_dir`, `key_photo` {snapshot, thumbnail} and
    `alignment_metadata_path`."""
    scales = [
        dict(zip("xyz", map(int, tomo[f"scale{i}Dimensions"].split(",")))) for i in range(LEVELS)
    ]
    return {
        "run_name": tomo["name"],
        "deposition_id": tomo["depositionId"],
        "voxel_spacing": tomo["voxelSpacing"],
        "size": {"z": tomo["sizeZ"], "y": tomo["sizeY"], "x": tomo["sizeX"]},
        "scales": [{a: s[a] for a in "zyx"} for s in scales],
        "offset": {"x": tomo["offsetX"], "y": tomo["offsetY"], "z": tomo["offsetZ"]},
        "affine_transformation_matrix": np.eye(4, dtype=int).tolist(),
        "omezarr_dir": paths["omezarr_dir"],
        "mrc_file": None,
        "key_photo": paths["key_photo"],
        "reconstruction_method": tomo["reconstructionMethod"],
        "reconstruction_software": tomo["reconstructionSoftware"],
        "processing": tomo["processing"],
        "processing_software": tomo["processingSoftware"],
        "fiducial_alignment_status": tomo["fiducialAlignmentStatus"],
        "ctf_corrected": tomo["ctfCorrected"],
        "tomogram_version": tomo["tomogramVersion"],
        "is_visualization_default": tomo["isVisualizationDefault"],
        "is_standardized": tomo["isPortalStandard"],
        "alignment_metadata_path": paths["alignment_metadata_path"],
        "authors": authors_metadata(authors),
        "dates": _dates(tomo),
    }


def annotation_metadata(
    ann: dict[str, Any],
    authors: Iterable[dict[str, Any]],
    links: Iterable[dict[str, Any]],
    files: list[dict[str, Any]],
    alignment_metadata_path: str,
) -> dict[str, Any]:
    """`files`: [{format, path (bucket-relative), shape, is_visualization_default}]."""
    obj = {
        "id": ann["objectId"],
        "name": ann["objectName"],
        "description": ann["objectDescription"],
    }
    if ann["objectState"]:
        obj["state"] = ann["objectState"]
    return {
        "annotation_ingest_id": ann["annotationIngestId"],
        "annotation_object": obj,
        "version": "1.0",
        "object_count": ann["objectCount"],
        "annotation_method": ann["annotationMethod"],
        "method_type": ann["methodType"],
        "annotation_software": ann["annotationSoftware"],
        "method_links": [
            {"link": m["link"], "link_type": m["linkType"], "custom_name": m["name"]} for m in links
        ],
        "ground_truth_status": ann["groundTruthStatus"],
        "is_curator_recommended": ann["isCuratorRecommended"],
        "confidence": {
            "precision": ann["confidencePrecision"],
            "recall": ann["confidenceRecall"],
            "ground_truth_used": ann["groundTruthUsed"],
        },
        "annotation_publications": ann["annotationPublication"],
        "authors": authors_metadata(authors),
        "dates": _dates(ann),
        "deposition_id": ann["depositionId"],
        "alignment_metadata_path": alignment_metadata_path,
        "files": files,
    }
