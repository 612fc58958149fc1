"""From a run to napari layer data, without Qt: what the widget runs in its workers, and
the scripting API.

    from napari_cryoet_portal.loading import open_run
    for data, kwargs, kind in open_run(run_id):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
"""

from __future__ import annotations

from typing import Literal

from .data.mesh import parse_glb
from .data.ndjson import parse_ndjson
from .data.progressive import progressive_pyramid
from .data.pyramid import Pyramid, as_labels, open_pyramid
from .data.storage import DataAccessError, read_bytes
from .layers import (
    LayerData,
    annotation_colors,
    labels_layer,
    object_key,
    points_layers,
    surface_layer,
    tomogram_layer,
)
from .portal.client import PortalClient
from .portal.records import AnnotationFile, RunDetail, Tomogram

__all__ = [
    "UnsupportedAnnotation",
    "annotation_layers",
    "displayable",
    "open_run",
    "open_tomogram",
    "preselected_files",
]

_POINT_SHAPES = {"Point", "OrientedPoint", "InstanceSegmentation"}
_MASK_SHAPES = {"SegmentationMask", "InstanceSegmentationMask"}
_MESH_SHAPES = {"Mesh", "TriangularMesh"}


class UnsupportedAnnotation(DataAccessError):
    """A shape or format this plugin cannot draw (yet); the message says which."""


def displayable(file: AnnotationFile) -> bool:
    """Can this file become a layer? (point ndjson, mask zarr, mesh glb)"""
    fmt = file.format.lower()
    return (
        (file.shape_type in _POINT_SHAPES and fmt == "ndjson")
        or (file.shape_type in _MASK_SHAPES and fmt == "zarr")
        or (file.shape_type in _MESH_SHAPES and fmt == "glb")
    )


def preselected_files(detail: RunDetail, tomogram: Tomogram) -> tuple[AnnotationFile, ...]:
    """What loads with a tomogram: displayable files aligned with it (same alignment, any
    voxel spacing: :meth:`RunDetail.is_aligned`) that the curators marked as visualization
    defaults. Files of another alignment are never preselected: they may need a transform."""
    return tuple(
        f for f in detail.files_for(tomogram) if displayable(f) and f.is_visualization_default
    )


def open_tomogram(
    detail: RunDetail,
    tomogram: Tomogram,
    *,
    level: int | None = None,
    endpoint_url: str | None = None,
    progressive: bool = False,
) -> tuple[LayerData, Pyramid]:
    """The image layer data for ``tomogram``: lazy levels, Å scales (the API's voxel spacing
    for stores without units), the curators' contrast or percentiles of the data.

    ``progressive``: levels that never block the thread napari slices on (see
    :mod:`napari_cryoet_portal.data.progressive`); what the widget uses. Scripts that want
    plain dask arrays leave it off.
    """
    url = tomogram.s3_omezarr_dir or tomogram.https_omezarr_dir
    if not url:
        raise DataAccessError(f"tomogram {tomogram.id} has no OME-Zarr location")
    pyramid = open_pyramid(url, endpoint_url=endpoint_url, voxel_spacing=tomogram.voxel_spacing)
    if progressive:
        pyramid = progressive_pyramid(pyramid)
    return tomogram_layer(pyramid, tomogram, detail.run, level=level), pyramid


def annotation_layers(
    detail: RunDetail,
    file: AnnotationFile,
    *,
    endpoint_url: str | None = None,
    progressive: bool = False,
) -> list[LayerData]:
    """Layers for one annotation file, in Å at the file's own voxel spacing.

    ``progressive``: masks get non-blocking levels, as in :func:`open_tomogram`.
    """
    annotation = detail.annotation(file.annotation_id)
    if annotation is None:
        raise LookupError(f"annotation {file.annotation_id} is not in run {detail.run.id}")
    if not displayable(file):
        raise UnsupportedAnnotation(
            f"{file.shape_type} annotations as {file.format} are not supported yet"
        )
    spacing = detail.voxel_spacing_of(file)
    if spacing is None:
        raise DataAccessError(
            f"annotation file {file.id} names no voxel spacing of run {detail.run.name}"
        )
    # the curators' colour (a tomogram's viewer config), else distinct colours for the
    # objects of the run, whichever of its files are shown
    color = detail.curated_color(file) or annotation_colors(
        object_key(a) for a in detail.annotations
    )[object_key(annotation)]
    if file.shape_type in _MASK_SHAPES:
        pyramid = open_pyramid(file.s3_path, endpoint_url=endpoint_url, voxel_spacing=spacing)
        pyramid = as_labels(pyramid)  # float masks (before 2024-03) as integer labels
        if progressive:
            pyramid = progressive_pyramid(pyramid)
        return [labels_layer(pyramid, detail.run, annotation, file, color=color)]
    raw = read_bytes(file.s3_path, endpoint_url=endpoint_url)
    if file.shape_type in _MESH_SHAPES:
        vertices_xyz, faces = parse_glb(raw)
        zyx = vertices_xyz[:, ::-1].copy()
        return [surface_layer(zyx, faces, detail.run, annotation, file, spacing, color=color)]
    return points_layers(parse_ndjson(raw), detail.run, annotation, file, spacing, color=color)


def _choose(client: PortalClient, run_id: int, tomogram_id: int | None) -> tuple[RunDetail, Tomogram | None]:
    detail = client.run_detail(run_id)
    if tomogram_id is None:
        return detail, detail.default_tomogram()
    for tomogram in detail.tomograms:
        if tomogram.id == tomogram_id:
            return detail, tomogram
    raise LookupError(f"run {run_id} has no tomogram {tomogram_id}")


def open_run(
    run_id: int,
    *,
    tomogram_id: int | None = None,
    annotations: Literal["default", "matching", "none"] = "default",
    level: int | None = None,
    client: PortalClient | None = None,
    endpoint_url: str | None = None,
) -> list[LayerData]:
    """Layer data for a run: its (default or chosen) tomogram, then its annotations.

    ``annotations``: ``"default"`` loads the curators' visualization defaults aligned with the
    tomogram (any voxel spacing, placed in Å), ``"matching"`` every displayable aligned file,
    ``"none"`` nothing. The default tomogram is :meth:`RunDetail.default_choice`'s.
    Costs one GraphQL request plus the S3 reads of what is loaded.
    """
    own_client = client is None
    client = client or PortalClient()
    try:
        detail, tomogram = _choose(client, run_id, tomogram_id)
    finally:
        if own_client:
            client.close()
    layers: list[LayerData] = []
    if tomogram is None:
        return layers
    image, _ = open_tomogram(detail, tomogram, level=level, endpoint_url=endpoint_url)
    layers.append(image)
    if annotations == "none":
        return layers
    files = (
        preselected_files(detail, tomogram)
        if annotations == "default"
        else tuple(f for f in detail.files_for(tomogram) if displayable(f))
    )
    for file in files:
        layers.extend(annotation_layers(detail, file, endpoint_url=endpoint_url))
    return layers
