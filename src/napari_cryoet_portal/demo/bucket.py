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
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numcodecs import Blosc
from PIL import Image

from .volumes import Block

PORTAL_CHUNK = 256  # the portal's chunk edge, even when the array is smaller (edge chunks padded)
# zarr-python 2's default compressor, which the portal's writer leaves in place (keys sorted, as
# zarr writes them)
COMPRESSOR = {"blocksize": 0, "clevel": 5, "cname": "lz4", "id": "blosc", "shuffle": 1}
LEVELS = 3
Reduce = Literal["mean", "binary", "nearest"]
DTYPES: dict[Reduce, np.dtype] = {
    "mean": np.dtype("<f4"),  # tomograms
    "binary": np.dtype("|i1"),  # semantic masks (float32 before 2024-03-19)
    "nearest": np.dtype("<u2"),  # instance masks
}
Source = np.ndarray | Callable[[Block], np.ndarray]

_codec = Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE, blocksize=0)
_encoders: ThreadPoolExecutor | None = None
_encoders_lock = threading.Lock()


def zarr_json(obj: Any) -> bytes:
    """JSON as zarr-python 2 writes `.zarray`, `.zattrs` and `.zgroup`: 4-space indent, keys
    sorted, ASCII."""
    text = json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=True, separators=(",", ": "))
    return text.encode()


def encode_chunk(data: np.ndarray) -> bytes:
    """One chunk, blosc-lz4 with byte shuffle as the portal's chunks, byte for byte the same
    every time, with its blocks stored out of order as the portal's are.

    The portal's writer compresses in zarr's calling thread, where numcodecs uses blosc's
    thread pool: the blocks of a frame land in the order the threads finish them (the offset
    table says where each is). So the same data gives other bytes on every run. Here the
    blocks are laid out again in one fixed, shuffled order (frame_layout): deterministic,
    and a reader that assumes block j ends where block j + 1 starts fails on the demo as on
    the portal.
    """
    return frame_layout(compress(data))


def compress(data: np.ndarray) -> bytes:
    """The chunk as numcodecs compresses it (blocks in whatever order its threads leave them)."""
    return _codec.encode(data)


def frame_layout(frame: bytes) -> bytes:
    """A blosc1 frame with its blocks in the demo's fixed order: pairs of blocks swapped in
    every other pair (0 1 3 2 4 5 7 6 ...), as two compressor threads leave them. The block
    bytes, the offset table's meaning and the frame's length are unchanged; memcpyed frames
    (no offset table) are returned as they are."""
    version, _, flags, _, nbytes, blocksize, cbytes = struct.unpack_from("<BBBBIII", frame)
    if version != 2 or flags & 0x02 or not blocksize:
        return frame
    n = -(-nbytes // blocksize)
    starts = np.frombuffer(frame, "<i4", n, 16).astype(np.int64)
    by_start = np.argsort(starts, kind="stable")
    ends = np.empty(n, np.int64)
    ends[by_start[:-1]] = starts[by_start[1:]]
    ends[by_start[-1]] = cbytes
    order = np.arange(n)
    swap = (np.arange(n) // 2) % 2 == 1
    order[swap] ^= 1  # partner in the pair
    order = order[order < n] if n % 2 == 0 else np.where(order < n, order, np.arange(n))
    first = 16 + 4 * n
    if int(starts.min()) != first or len(set(order.tolist())) != n:
        return frame  # not the layout numcodecs writes: leave it alone
    out = bytearray(len(frame))  # one buffer: chunks are 64 MiB, copies cost page faults
    src = memoryview(frame)
    out[:16] = src[:16]
    new_starts = np.empty(n, "<i4")
    pos = first
    for j in order:
        a, b = int(starts[j]), int(ends[j])
        new_starts[j] = pos
        out[pos : pos + b - a] = src[a:b]
        pos += b - a
    assert pos == cbytes == len(frame)
    out[16:first] = new_starts.tobytes()
    return bytes(out)


def _pool() -> ThreadPoolExecutor:
    global _encoders
    with _encoders_lock:
        if _encoders is None:
            _encoders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="demo-encode")
        return _encoders


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
    *,
    dtype: str | None = None,
    axes: str = "zyx",
    unit: bool = True,
    relative_scales: bool = False,
    missing_levels: Sequence[int] = (),
) -> int:
    """Write a 3-level pyramid (2× binning in z, y, x per level) at `key` (no trailing slash),
    the way the portal's zarr-python 2 + ome-zarr writer stores it: 256³ chunks with the edge
    chunks padded to full size with the fill value, `/` separators, blosc lz4.

    `source` is the level-0 array (z, y, x), or a function rendering level-0 blocks so that
    large volumes never sit in memory at full resolution. `labels` marks an instance mask
    (NGFF image-label). Stores as the portal wrote them at other times: `dtype` (a float32
    mask), `axes="xyz"` (the array stored transposed, axes listed x, y, z), `unit=False` (axes
    without a unit), `relative_scales` (scales 1, 2, 4 instead of Å), `missing_levels` (listed
    in `.zattrs`, but no `.zarray` and no chunks). `chunk=None` makes each level one chunk of
    its own shape (legal zarr, but not what the portal writes). Returns the bytes written.
    """
    if any(n % 2 ** (LEVELS - 1) for n in shape):
        raise ValueError(f"shape {shape} must be divisible by {2 ** (LEVELS - 1)}")
    out_dtype = np.dtype(dtype) if dtype else DTYPES[reduce]
    if axes not in ("zyx", "xyz"):
        raise ValueError(f"axes must be 'zyx' or 'xyz', not {axes!r}")
    if axes == "xyz":  # binning is symmetric: bin the transposed array as it is stored
        if not isinstance(source, np.ndarray):
            raise ValueError("an x, y, z store needs its level-0 array")
        source, shape = np.ascontiguousarray(source.transpose(2, 1, 0)), shape[::-1]
    total = bucket.put(f"{key}/.zgroup", zarr_json({"zarr_format": 2}))
    attrs = ngff_attrs(voxel_spacing, labels, axes=axes, unit=unit, relative=relative_scales)
    total += bucket.put(f"{key}/.zattrs", zarr_json(attrs))
    level_shape: tuple[int, ...] = shape
    for i in range(LEVELS):
        half = tuple(n // 2 for n in level_shape)
        binned = np.empty(half, out_dtype) if i < LEVELS - 1 else None
        write = i not in missing_levels
        total += _write_array(
            bucket, f"{key}/{i}", source, level_shape, out_dtype, chunk, binned, reduce, write
        )
        if binned is not None:
            source, level_shape = binned, half
    return total


def ngff_attrs(
    voxel_spacing: float,
    labels: Sequence[int] = (),
    *,
    axes: str = "zyx",
    unit: bool = True,
    relative: bool = False,
) -> dict[str, Any]:
    """The `.zattrs` ome-zarr 0.9 writes for the portal (`write_multiscale`: no "metadata"
    key, name "/"): z, y, x in Å, scale doubling per level. Before 2024-03-06 the axes had no
    unit and the scales were 1, 2, 4 (ome-zarr's default, shape ratios)."""
    axis_list: list[dict[str, str]] = []
    for a in axes:
        axis = {"name": a, "type": "space"}
        if unit:
            axis["unit"] = "angstrom"
        axis_list.append(axis)
    datasets = [
        {
            "coordinateTransformations": [
                {"scale": [float(2**i) if relative else voxel_spacing * 2**i] * 3, "type": "scale"}
            ],
            "path": str(i),
        }
        for i in range(LEVELS)
    ]
    attrs: dict[str, Any] = {
        "multiscales": [{"axes": axis_list, "datasets": datasets, "name": "/", "version": "0.4"}]
    }
    if labels:
        attrs["image-label"] = {
            "colors": [{"label-value": int(n)} for n in labels],
            "version": "0.4",
        }
    return attrs


def zarray(shape: Sequence[int], dtype: np.dtype, chunks: Sequence[int]) -> dict[str, Any]:
    """A level's `.zarray` as zarr-python 2 writes it (fill value 0.0 for floats, 0 for ints)."""
    dtype = np.dtype(dtype)
    return {
        "chunks": list(chunks),
        "compressor": COMPRESSOR,
        "dimension_separator": "/",
        "dtype": dtype.str,
        "fill_value": 0.0 if dtype.kind == "f" else 0,
        "filters": None,
        "order": "C",
        "shape": list(shape),
        "zarr_format": 2,
    }


def chunk_grid(shape: Sequence[int], chunks: Sequence[int]) -> list[tuple[int, int, int]]:
    """Every chunk index (z, y, x order of the array's axes) of a level, in key order."""
    counts = [-(-n // c) for n, c in zip(shape, chunks)]
    return [(a, b, c) for a in range(counts[0]) for b in range(counts[1]) for c in range(counts[2])]


def padded(data: np.ndarray, chunks: Sequence[int]) -> np.ndarray:
    """An edge chunk at full chunk size, padded with the fill value (0), as zarr v2 stores it."""
    if data.shape == tuple(chunks):
        return data
    full = np.zeros(tuple(chunks), data.dtype)
    full[tuple(slice(0, s) for s in data.shape)] = data
    return full


def _write_array(
    bucket: Bucket,
    key: str,
    source: Source,
    shape: tuple[int, ...],
    dtype: np.dtype,
    chunk: int | None,
    binned: np.ndarray | None,
    reduce: Reduce,
    write: bool = True,
) -> int:
    """Write one level's `.zarray` and chunks (unless not `write`: a level missing from the
    store); fill `binned` with the next level meanwhile. Chunks are encoded two at a time."""
    chunks = tuple(shape) if chunk is None else (chunk,) * 3
    total = bucket.put(f"{key}/.zarray", zarr_json(zarray(shape, dtype, chunks))) if write else 0
    pending: list[tuple[str, Future[bytes]]] = []

    def flush(keep: int) -> int:
        n = 0
        while len(pending) > keep:
            k, f = pending.pop(0)
            n += bucket.put(k, f.result())
        return n

    for index in chunk_grid(shape, chunks):
        origin = tuple(i * c for i, c in zip(index, chunks))
        size = tuple(min(c, n - o) for c, n, o in zip(chunks, shape, origin))
        region = tuple(slice(o, o + s) for o, s in zip(origin, size))
        data = source[region] if isinstance(source, np.ndarray) else source((origin, size))
        if binned is not None:
            binned[tuple(slice(o // 2, (o + s) // 2) for o, s in zip(origin, size))] = _bin(
                data, reduce
            )
        if not write:
            continue
        data = padded(np.ascontiguousarray(data, dtype), chunks)
        pending.append(("{}/{}/{}/{}".format(key, *index), _pool().submit(encode_chunk, data)))
        total += flush(keep=2)
    return total + flush(keep=0)


def _bin(a: np.ndarray, reduce: Reduce) -> np.ndarray:
    """One 2× pyramid step as the portal does it: mean (tomograms); mean, then any non-zero is 1
    (semantic masks, MaskConverter's `data > 0`); every other voxel (instance masks)."""
    if reduce == "nearest":
        return a[::2, ::2, ::2]
    z, y, x = (n // 2 for n in a.shape)
    mean = a.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5), dtype=np.float32)
    return (mean > 0).astype(a.dtype) if reduce == "binary" else mean


# ---------------------------------------------------------------- annotation files


def ndjson_points(
    xyz: np.ndarray,
    rotations: np.ndarray | None = None,
    instance_ids: Sequence[int] | None = None,
) -> bytes:
    """Point / orientedPoint / instancePoint lines; `xyz` in voxels at the annotation's spacing.

    As the portal's converters write them: `json.dumps` per row (full float precision), joined
    by newlines, no newline after the last row."""
    lines = []
    for i, (x, y, z) in enumerate(np.asarray(xyz, float)):
        row: dict[str, Any] = {
            "type": "point",
            "location": {"x": float(x), "y": float(y), "z": float(z)},
        }
        if rotations is not None:
            row["type"] = "orientedPoint"
            row["xyz_rotation_matrix"] = np.asarray(rotations[i], float).tolist()
        elif instance_ids is not None:
            row["type"] = "instancePoint"
            row["instance_id"] = int(instance_ids[i])
        lines.append(json.dumps(row))
    return "\n".join(lines).encode()


def glb_mesh(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """One triangle mesh as trimesh exports a loaded mesh: a "world" root node whose child
    holds the geometry, no transforms (the vertices are where they are)."""
    nodes = [{"name": "world", "children": [1]}, {"name": "geometry_0", "mesh": 0}]
    return glb_scene([(vertices, faces)], nodes)


def glb_scene(meshes: Sequence[tuple[np.ndarray, np.ndarray]], nodes: Sequence[dict]) -> bytes:
    """A binary glTF 2.0 scene laid out as trimesh writes one: per mesh a uint32 index
    accessor then a float32 POSITION accessor, meshes named geometry_i, node 0 the scene root.

    `nodes` are glTF nodes, except that a "matrix" may be given as a 4×4 array (math order; it
    is written column-major as glTF wants). A node may instead carry "translation", "rotation"
    (quaternion x, y, z, w) and "scale" (TRS). Two nodes naming the same mesh instance it.
    """
    binary = b""
    views: list[dict] = []
    accessors: list[dict] = []
    gltf_meshes: list[dict] = []
    for i, (vertices, faces) in enumerate(meshes):
        idx = np.ascontiguousarray(faces, "<u4").reshape(-1)
        pos = np.ascontiguousarray(vertices, "<f4").reshape(-1, 3)
        for data, kind, component in ((idx, "SCALAR", 5125), (pos, "VEC3", 5126)):
            raw = data.tobytes()
            views.append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(raw)})
            binary += raw + b"\0" * (-len(raw) % 4)
            lo, hi = (data.min(axis=0), data.max(axis=0))
            accessors.append(
                {
                    "componentType": component,
                    "type": kind,
                    "bufferView": len(views) - 1,
                    "count": len(data),
                    "max": np.atleast_1d(hi).tolist(),
                    "min": np.atleast_1d(lo).tolist(),
                }
            )
        primitive = {"attributes": {"POSITION": len(accessors) - 1}, "indices": len(accessors) - 2}
        gltf_meshes.append({"name": f"geometry_{i}", "primitives": [{**primitive, "mode": 4}]})
    out_nodes = []
    for node in nodes:
        node = dict(node)
        if "matrix" in node:
            node["matrix"] = np.asarray(node["matrix"], float).T.reshape(-1).tolist()
        for k in ("translation", "rotation", "scale"):
            if k in node:
                node[k] = [float(v) for v in node[k]]
        out_nodes.append(node)
    gltf = {
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "asset": {"version": "2.0", "generator": "https://github.com/mikedh/trimesh"},
        "accessors": accessors,
        "meshes": gltf_meshes,
        "nodes": out_nodes,
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": views,
    }
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
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
    """`paths`: bucket-relative `omezarr_dir`, `key_photo` {snapshot, thumbnail},
    `alignment_metadata_path` and `neuroglancer_config_path` (visualization defaults)."""
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
        "neuroglancer_config_path": paths.get("neuroglancer_config_path"),
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
