"""Portal records + arrays → napari layer-data tuples ``(data, kwargs, layer_type)``.

No Qt and no napari import: the widget, the Python API and the readers all build layers
here, so how things line up (scales in Å, offsets, colours, names) is decided once.

World coordinates are ångström, axes z, y, x:
- a tomogram level's voxel ``i`` sits at ``translate + i * scale`` with the NGFF scale in Å;
- annotation points are voxel indices at the annotation's own voxel spacing, so their layer
  gets ``scale = (spacing,) * 3`` and lands on the same Å grid whatever the tomogram's spacing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from .data.ndjson import AnnotationPoints
from .data.pyramid import Pyramid
from .portal.records import AnnotationFile, Annotation, Run, Tomogram

__all__ = [
    "LayerData",
    "METADATA_KEY",
    "annotation_color",
    "annotation_colors",
    "contrast_limits",
    "instance_colors",
    "tomogram_contrast",
    "labels_layer",
    "level_transform",
    "points_layers",
    "tomogram_layer",
]

LayerData = tuple[Any, dict[str, Any], str]

#: layer.metadata[METADATA_KEY] holds the portal ids a layer came from
METADATA_KEY = "cryoet_portal"

_AXES = ("z", "y", "x")
_UNITS = ("angstrom",) * 3

# Distinct, readable on a grey tomogram (Okabe–Ito + a few), indexed by a stable hash.
_PALETTE = (
    "#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7",
    "#ff5e5e", "#7fdbff", "#b10dc9", "#2ecc40", "#ff851b", "#39cccc", "#f012be",
)


def object_key(annotation: Annotation) -> str:
    """What names an annotated object: its ontology id (GO, UniProt…), else its name."""
    return (annotation.object_id or annotation.object_name).strip().lower()


def annotation_color(object_key: str) -> str:
    """One stable colour per annotated object (same object → same colour, every session)."""
    return _PALETTE[_slot(object_key)]


def annotation_colors(object_keys: Iterable[str]) -> dict[str, str]:
    """Colours for the objects of one run: each object's stable colour, unless an object
    before it (in sorted order) has it already; then the next free one, so that objects side
    by side never look alike while the palette lasts."""
    used: set[str] = set()
    colors: dict[str, str] = {}
    n = len(_PALETTE)
    for key in sorted({k.strip().lower() for k in object_keys}):
        start = _slot(key)
        free = (_PALETTE[(start + i) % n] for i in range(n))
        color = next((c for c in free if c not in used), _PALETTE[start])
        used.add(color)
        colors[key] = color
    return colors


def _slot(object_key: str) -> int:
    return zlib.crc32(object_key.strip().lower().encode()) % len(_PALETTE)


def level_transform(pyramid: Pyramid, level: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(scale, translate) that put one pyramid level on level 0's voxel-centre grid.

    The portal writes scale-only NGFF metadata, although a 2×-binned voxel's centre lies half a
    fine voxel further than the fine voxel 0. When the metadata gives no translation, add that
    half-voxel shift; a translation in the metadata is taken as it is.
    """
    scale = pyramid.scales[level]
    translation = pyramid.translations[level]
    if level and not any(translation):
        base = pyramid.scales[0]
        translation = tuple((s - b) / 2 for s, b in zip(scale, base))
    return scale, translation


def _level_data(pyramid: Pyramid, level: int | None) -> tuple[Any, tuple[float, ...], tuple[float, ...]]:
    """(data, scale, translate): every level as a multiscale list, or one level on its own."""
    if level is None:
        return list(pyramid.levels), pyramid.scales[0], pyramid.translations[0]
    scale, translate = level_transform(pyramid, level)
    return pyramid.levels[level], scale, translate


def contrast_limits(
    pyramid: Pyramid, percentiles: tuple[float, float] = (0.5, 99.5)
) -> tuple[float, float]:
    """Robust display range: percentiles of the voxels of the first view at the finest level
    read so far (``pyramid.sample``, set by data.progressive), else of the coarsest level
    (one small read). Percentiles, not min/max: a few hot pixels or gold beads would
    otherwise squeeze the cell into a few grey values."""
    values = pyramid.sample if pyramid.sample is not None else np.asarray(pyramid.levels[-1])
    values = np.asarray(values)
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values.ravel()
    if finite.size == 0:
        return (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(finite, percentiles))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
        hi = hi if hi > lo else lo + 1.0
    return (lo, hi)


def tomogram_contrast(pyramid: Pyramid, tomogram: Tomogram) -> tuple[tuple[float, float], str]:
    """The display range and where it came from: the curators' (the image layer's range in the
    tomogram's ``neuroglancerConfig``), else :func:`contrast_limits` of the data."""
    config = tomogram.neuroglancer_config
    if config is not None and config.contrast_limits is not None:
        return config.contrast_limits, "neuroglancer config"
    source = "first view" if pyramid.sample is not None else "coarsest level"
    return contrast_limits(pyramid), f"percentiles of the {source}"


def tomogram_layer(
    pyramid: Pyramid,
    tomogram: Tomogram,
    run: Run,
    *,
    level: int | None = None,
    limits: tuple[float, float] | None = None,
) -> LayerData:
    """The tomogram as a multiscale image (``level=None``) or one pinned pyramid level."""
    offset = tuple(o * tomogram.voxel_spacing for o in reversed(tomogram.offset_xyz))
    if not pyramid.in_angstrom:
        offset = (0.0,) * len(offset)  # Å would not add to the pixels of a store without units
    data, scale, translate = _level_data(pyramid, level)
    if limits is None:
        limits, limits_source = tomogram_contrast(pyramid, tomogram)
    else:
        limits_source = "given"
    kwargs = {
        "name": f"{run.name} · tomogram {tomogram.id} ({tomogram.label})",
        "scale": scale,
        "translate": tuple(t + o for t, o in zip(translate, offset)),
        "units": _units(pyramid),
        "axis_labels": pyramid.axes,
        "multiscale": level is None,
        "contrast_limits": limits,
        "colormap": "gray",
        # the plane itself, also when the z slice is thick for the particles (napari's
        # default would average the slab: other voxels than the ones the user asked for)
        "projection_mode": "none",
        "metadata": {
            METADATA_KEY: {
                "kind": "tomogram",
                "dataset_id": run.dataset_id,
                "run_id": run.id,
                "run_name": run.name,
                "tomogram_id": tomogram.id,
                "voxel_spacing": tomogram.voxel_spacing,
                "level": level,
                "url": pyramid.url,
                "contrast_limits_source": limits_source,
                "scale_source": pyramid.scale_source,
                "missing_levels": pyramid.missing_levels,
            }
        },
    }
    return (data, kwargs, "image")


def _units(pyramid: Pyramid) -> tuple[str, ...]:
    """The pyramid's units; "pixel" where neither the store nor the API said (never Å)."""
    return tuple(u or "pixel" for u in pyramid.units)


def _annotation_metadata(run: Run, annotation: Annotation, file: AnnotationFile, spacing: float) -> dict:
    return {
        METADATA_KEY: {
            "kind": "annotation",
            "dataset_id": run.dataset_id,
            "run_id": run.id,
            "run_name": run.name,
            "annotation_id": annotation.id,
            "annotation_file_id": file.id,
            "object_name": annotation.object_name,
            "object_id": annotation.object_id,
            "shape_type": file.shape_type,
            "voxel_spacing": spacing,
            "url": file.s3_path,
        }
    }


def _layer_name(run: Run, annotation: Annotation, file: AnnotationFile) -> str:
    return f"{run.name} · {annotation.object_name} ({file.shape_type})"


def points_layers(
    points: AnnotationPoints,
    run: Run,
    annotation: Annotation,
    file: AnnotationFile,
    spacing: float,
    *,
    size: float | None = None,
    arrow_length: float | None = None,
    color: str | None = None,
) -> list[LayerData]:
    """Points (coloured by instance for InstanceSegmentation), plus orientation vectors.

    ``spacing`` is the voxel spacing (Å) of the annotation file's coordinates. Rotation
    matrices are kept whole in the points' features (``r00`` … ``r22``); the Vectors layer
    draws each particle's rotated z axis, ``R @ (0, 0, 1)`` in the file's x, y, z frame.
    """
    n = len(points.zyx)
    color = color or annotation_color(object_key(annotation))
    size = size if size is not None else _default_point_size(points.zyx)
    scale = (spacing,) * 3
    features: dict[str, np.ndarray] = {}
    if points.instance_ids is not None:
        features["instance_id"] = points.instance_ids
    if points.rotations is not None:
        for i in range(3):
            for j in range(3):
                features[f"r{i}{j}"] = points.rotations[:, i, j]
    kwargs: dict[str, Any] = {
        "name": _layer_name(run, annotation, file),
        "scale": scale,
        "units": _UNITS,
        "axis_labels": _AXES,
        "size": size,
        "border_width": 0,
        # a particle shows where the slice cuts it, as big as the cut (needs a z thickness
        # of about its diameter: see PARTICLE_SLAB)
        "projection_mode": "rescale_spherical",
        "features": features,
        "metadata": _annotation_metadata(run, annotation, file, spacing),
    }
    if points.instance_ids is not None and n:
        kwargs["face_color"] = instance_colors(points.instance_ids)
    else:
        kwargs["face_color"] = color
    layers: list[LayerData] = [(points.zyx, kwargs, "points")]
    if points.rotations is not None:
        length = arrow_length if arrow_length is not None else 1.5 * size
        z_axis_xyz = points.rotations[:, :, 2]
        direction_zyx = z_axis_xyz[:, ::-1] * length
        vectors = np.stack([points.zyx, direction_zyx], axis=1) if n else np.zeros((0, 2, 3))
        layers.append(
            (
                vectors,
                {
                    "name": _layer_name(run, annotation, file) + " orientation",
                    "scale": scale,
                    "units": _UNITS,
                    "axis_labels": _AXES,
                    "edge_color": color,
                    "edge_width": max(1.0, size / 6),
                    "length": 1.0,
                    "projection_mode": "all",
                    "metadata": _annotation_metadata(run, annotation, file, spacing),
                },
                "vectors",
            )
        )
    return layers


def instance_colors(instance_ids: np.ndarray) -> np.ndarray:
    """RGBA per point: neighbouring instance ids never share a colour, however many there are.

    (napari's own colour cycle over a feature turns into a continuous colormap above 16
    distinct integers, where neighbouring ids look alike.)
    """
    palette = np.array([_rgba(c) for c in _PALETTE], dtype=np.float32)
    return palette[np.mod(np.asarray(instance_ids, dtype=np.int64), len(palette))]


def _rgba(hex_color: str) -> tuple[float, float, float, float]:
    h = hex_color.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255, 1.0)


def _default_point_size(zyx: np.ndarray) -> float:
    """About 2% of the annotated extent, at least 4 voxels: visible without hiding neighbours."""
    if len(zyx) < 2:
        return 8.0
    extent = float(np.max(np.ptp(zyx, axis=0)))
    return float(np.clip(extent * 0.02, 4.0, 30.0))


def labels_layer(
    pyramid: Pyramid,
    run: Run,
    annotation: Annotation,
    file: AnnotationFile,
    *,
    level: int | None = None,
    color: str | None = None,
) -> LayerData:
    """A segmentation mask (semantic or instance) as lazy multiscale labels, in Å."""
    data, scale, translate = _level_data(pyramid, level)
    kwargs: dict[str, Any] = {
        "name": _layer_name(run, annotation, file),
        "scale": scale,
        "translate": translate,
        "units": _units(pyramid),
        "axis_labels": pyramid.axes,
        "multiscale": level is None,
        "opacity": 0.5,
        "projection_mode": "none",  # the mask at the plane, whatever the z thickness
        "metadata": _annotation_metadata(run, annotation, file, pyramid.scales[0][0]),
    }
    if file.shape_type == "SegmentationMask":
        color = color or annotation_color(object_key(annotation))
        kwargs["colormap"] = {0: "transparent", 1: color, None: "transparent"}
    return (data, kwargs, "labels")


def surface_layer(
    vertices_zyx: np.ndarray,
    faces: np.ndarray,
    run: Run,
    annotation: Annotation,
    file: AnnotationFile,
    spacing: float,
    *,
    color: str | None = None,
) -> LayerData:
    """A triangle mesh; vertices are in the file's voxel units at ``spacing`` (see data/mesh)."""
    color = color or annotation_color(object_key(annotation))
    values = np.ones(len(vertices_zyx), dtype=np.float32)
    kwargs = {
        "name": _layer_name(run, annotation, file),
        "scale": (spacing,) * 3,
        "units": _UNITS,
        "axis_labels": _AXES,
        "colormap": _single_color_colormap(color),
        "contrast_limits": (0.0, 1.0),
        "opacity": 0.7,
        "metadata": _annotation_metadata(run, annotation, file, spacing),
    }
    return ((vertices_zyx, faces, values), kwargs, "surface")


def _single_color_colormap(color: str) -> dict[str, Any]:
    return {"colors": [color, color], "name": f"portal-{color}"}


