"""The portal's GraphQL v2 API as a handful of calls, each ONE HTTP request.

The official client is N+1 by design (a query per relationship access, a 0.3–0.9 s schema
parse per instance); this one sends hand-written documents over a pooled connection.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from typing import Any, Iterable, Literal, Mapping

from . import queries
from .records import (
    Annotation,
    AnnotationFile,
    DatasetLocation,
    DatasetSummary,
    NeuroglancerConfig,
    NeuroglancerLayer,
    Page,
    Run,
    RunDetail,
    RunSummary,
    Tomogram,
    VoxelSpacing,
)
from .transport import GraphQLTransport

__all__ = ["DEFAULT_API_URL", "API_URL_ENV", "PortalClient", "default_api_url"]

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://graphql.cryoetdataportal.czscience.com/graphql"
API_URL_ENV = "CRYOET_PORTAL_API_URL"

MetadataKind = Literal["dataset", "run", "tomogram", "annotation"]


def default_api_url() -> str:
    """The API URL to use when none is given: ``$CRYOET_PORTAL_API_URL`` or the real portal."""
    return os.environ.get(API_URL_ENV) or DEFAULT_API_URL


class PortalClient:
    """Thread-safe: one instance can serve every worker of a widget."""

    def __init__(
        self, url: str | None = None, *, transport: GraphQLTransport | None = None, **transport_kw: Any
    ) -> None:
        self.transport = transport or GraphQLTransport(url or default_api_url(), **transport_kw)

    @property
    def url(self) -> str:
        return self.transport.url

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> PortalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- datasets -------------------------------------------------------------------------

    def datasets(self, offset: int = 0, limit: int = 100) -> Page[DatasetSummary]:
        """A page of datasets, newest release first, with the total count."""
        data = self._run(queries.DATASETS_PAGE, {"limit": limit, "offset": offset})
        items = tuple(_dataset_summary(d) for d in data["datasets"])
        return Page(items, _count(data["total"]), offset, limit)

    def all_datasets(self, page_size: int = 500) -> list[DatasetSummary]:
        """Every dataset, one request per page."""
        return _collect(lambda off: self.datasets(off, page_size))

    def datasets_by_id(self, ids: Iterable[int]) -> tuple[DatasetSummary, ...]:
        data = self._run(queries.DATASETS_BY_ID, {"ids": sorted(set(ids))})
        return tuple(_dataset_summary(d) for d in data["datasets"])

    def search_datasets(self, text: str) -> tuple[DatasetSummary, ...]:
        """Datasets whose title, description, organism, annotated or identified object, or a
        run name contains ``text`` (case-insensitive); a whole number also matches dataset,
        deposition, run, tomogram and annotation ids. Newest release first.
        """
        text = text.strip()
        pattern = "%" + _escape_like(text) + "%"
        if text.isdigit() and int(text) < 2**31:
            data = self._run(queries.SEARCH_TEXT_OR_ID, {"pattern": pattern, "id": int(text)})
        else:
            data = self._run(queries.SEARCH_TEXT, {"pattern": pattern})
        found: dict[int, DatasetSummary] = {}
        for rows in data.values():
            for row in rows:
                found.setdefault(row["id"], _dataset_summary(row))
        return tuple(sorted(found.values(), key=lambda d: (d.release_date or "", d.id), reverse=True))

    # --- runs -----------------------------------------------------------------------------

    def runs(self, dataset_id: int, offset: int = 0, limit: int = 100) -> Page[RunSummary]:
        """A page of a dataset's runs by name, with the total. Root field, so no 100-row cap."""
        data = self._run(
            queries.RUNS_PAGE, {"datasetId": dataset_id, "limit": limit, "offset": offset}
        )
        items = tuple(
            RunSummary(
                id=r["id"],
                name=r["name"],
                dataset_id=r["datasetId"],
                tomogram_count=_count(r["tomogramsAggregate"]),
                annotation_count=_count(r["annotationsAggregate"]),
            )
            for r in data["runs"]
        )
        return Page(items, _count(data["total"]), offset, limit)

    def all_runs(self, dataset_id: int, page_size: int = 1000) -> list[RunSummary]:
        """Every run of a dataset, one request per page."""
        return _collect(lambda off: self.runs(dataset_id, off, page_size))

    def run_detail(self, run_id: int) -> RunDetail:
        """Voxel spacings, tomograms, annotations with shapes and files: one request."""
        data = self._run(queries.RUN_DETAIL, {"runId": run_id})
        if not data["runs"]:
            raise LookupError(f"no run with id {run_id}")
        r = data["runs"][0]
        return RunDetail(
            run=Run(r["id"], r["name"], r["datasetId"], r["s3Prefix"], r["httpsPrefix"]),
            voxel_spacings=tuple(
                VoxelSpacing(v["id"], float(v["voxelSpacing"]), v["s3Prefix"], v["httpsPrefix"])
                for v in data["tomogramVoxelSpacings"]
            ),
            tomograms=tuple(_tomogram(t) for t in data["tomograms"]),
            annotations=tuple(_annotation(a) for a in data["annotations"]),
        )

    # --- metadata -------------------------------------------------------------------------

    def metadata(self, kind: MetadataKind, id: int) -> dict[str, Any]:
        """Every field the metadata panel shows for one entity, connections as plain lists."""
        try:
            document = queries.METADATA[kind]
        except KeyError:
            raise ValueError(f"unknown kind {kind!r}; one of {sorted(queries.METADATA)}") from None
        data = self._run(document, {"id": id})
        rows = next(iter(data.values()))
        if not rows:
            raise LookupError(f"no {kind} with id {id}")
        return _flatten(rows[0])

    # --- locations (downloads) ------------------------------------------------------------

    def dataset_location(self, dataset_id: int) -> DatasetLocation:
        """A dataset's S3/HTTPS prefixes and size: one request."""
        rows = self._run(queries.DATASET_LOCATION, {"id": dataset_id})["datasets"]
        if not rows:
            raise LookupError(f"no dataset with id {dataset_id}")
        d = rows[0]
        return DatasetLocation(
            d["id"], d["title"], d["s3Prefix"], d["httpsPrefix"], d.get("fileSize")
        )

    def run(self, run_id: int) -> Run:
        """One run's name, dataset and prefixes: one request."""
        rows = self._run(queries.RUN_LOCATION, {"id": run_id})["runs"]
        if not rows:
            raise LookupError(f"no run with id {run_id}")
        return _run_record(rows[0])

    def tomogram_with_run(self, tomogram_id: int) -> tuple[Tomogram, Run]:
        """A tomogram (files, sizes) and its run: one request."""
        rows = self._run(queries.TOMOGRAM_LOCATION, {"id": tomogram_id})["tomograms"]
        if not rows:
            raise LookupError(f"no tomogram with id {tomogram_id}")
        return _tomogram(rows[0]), _run_record(rows[0]["run"])

    def annotation_with_run(self, annotation_id: int) -> tuple[Annotation, Run]:
        """An annotation with every file of every shape, and its run: one request."""
        rows = self._run(queries.ANNOTATION_LOCATION, {"id": annotation_id})["annotations"]
        if not rows:
            raise LookupError(f"no annotation with id {annotation_id}")
        return _annotation(rows[0]), _run_record(rows[0]["run"])

    def annotation_file_with_run(self, file_id: int) -> tuple[AnnotationFile, Run]:
        """One annotation file and the run it belongs to: one request."""
        rows = self._run(queries.ANNOTATION_FILE_LOCATION, {"id": file_id})["annotationFiles"]
        if not rows:
            raise LookupError(f"no annotation file with id {file_id}")
        f = rows[0]
        shape = f["annotationShape"]
        record = _annotation_file(f, shape, shape["annotationId"])
        return record, _run_record(shape["annotation"]["run"])

    # --- plumbing -------------------------------------------------------------------------

    def _run(self, document: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        return self.transport.execute(document, variables)


def _collect(fetch_page) -> list:
    items: list = []
    page = fetch_page(0)
    items.extend(page.items)
    while page.has_more and page.items:
        page = fetch_page(page.next_offset)
        items.extend(page.items)
    return items


def _count(aggregate: Mapping[str, Any] | None) -> int:
    """``{aggregate: [{count: n}]}`` → n (0 when the server sends nothing)."""
    rows = (aggregate or {}).get("aggregate") or []
    return int(rows[0].get("count") or 0) if rows else 0


def _escape_like(text: str) -> str:
    """Make ``%`` and ``_`` in user text literal inside an ILIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _dataset_summary(d: Mapping[str, Any]) -> DatasetSummary:
    return DatasetSummary(
        id=d["id"],
        title=d["title"],
        organism_name=d.get("organismName"),
        run_count=_count(d.get("runsAggregate")),
        thumbnail_url=d.get("keyPhotoThumbnailUrl"),
        release_date=d.get("releaseDate"),
    )


def _xyz(text: str | None) -> tuple[int, int, int] | None:
    """``"960,928,1000"`` → (960, 928, 1000); None when absent or malformed."""
    if not text:
        return None
    try:
        x, y, z = (int(float(v)) for v in text.split(","))
    except ValueError:
        return None
    return (x, y, z)


def _tomogram(t: Mapping[str, Any]) -> Tomogram:
    size = (int(t["sizeX"]), int(t["sizeY"]), int(t["sizeZ"]))
    levels = tuple(
        dims for key in ("scale0Dimensions", "scale1Dimensions", "scale2Dimensions")
        if (dims := _xyz(t.get(key))) is not None
    )
    return Tomogram(
        id=t["id"],
        name=t.get("name"),
        run_id=t.get("runId"),
        voxel_spacing_id=t.get("tomogramVoxelSpacingId"),
        alignment_id=t.get("alignmentId"),
        voxel_spacing=float(t["voxelSpacing"]),
        size_xyz=size,
        level_dimensions_xyz=levels,
        offset_xyz=(int(t.get("offsetX") or 0), int(t.get("offsetY") or 0), int(t.get("offsetZ") or 0)),
        processing=t.get("processing"),
        reconstruction_method=t.get("reconstructionMethod"),
        reconstruction_software=t.get("reconstructionSoftware"),
        ctf_corrected=t.get("ctfCorrected"),
        is_visualization_default=bool(t.get("isVisualizationDefault")),
        is_portal_standard=bool(t.get("isPortalStandard")),
        is_author_submitted=bool(t.get("isAuthorSubmitted")),
        s3_omezarr_dir=t.get("s3OmezarrDir"),
        https_omezarr_dir=t.get("httpsOmezarrDir"),
        file_size_omezarr=t.get("fileSizeOmezarr"),
        s3_mrc_file=t.get("s3MrcFile"),
        https_mrc_file=t.get("httpsMrcFile"),
        file_size_mrc=t.get("fileSizeMrc"),
        key_photo_url=t.get("keyPhotoUrl"),
        thumbnail_url=t.get("keyPhotoThumbnailUrl"),
        deposition_id=t.get("depositionId"),
        neuroglancer_config=neuroglancer_config(t.get("neuroglancerConfig")),
        neuroglancer_config_json=_json_text(t.get("neuroglancerConfig")),
    )


_SHADER_COLOR = re.compile(r'color\s*\(\s*default\s*=\s*"(#[0-9a-fA-F]{6})"')


def neuroglancer_config(text: str | None) -> NeuroglancerConfig | None:
    """The parts of a ``neuroglancerConfig`` (a JSON string) a napari view uses; None when
    absent or unreadable (a broken viewer state must not keep a run from opening)."""
    if not text:
        return None
    try:
        state = json.loads(text) if isinstance(text, str) else text
        layers = state.get("layers") or []
        if isinstance(layers, dict):  # neuroglancer also writes {name: layer}
            layers = [{"name": k, **v} for k, v in layers.items()]
        limits = None
        annotation_layers = []
        for layer in layers:
            if not isinstance(layer, dict):
                continue
            if layer.get("type") == "image":
                limits = limits or _normalized_range(layer)
                continue
            annotation_layers.append(
                NeuroglancerLayer(
                    name=str(layer.get("name") or ""),
                    type=str(layer.get("type") or ""),
                    source=_source_url(layer.get("source")),
                    color=_layer_color(layer),
                    visible=bool(layer.get("visible", True)),
                )
            )
    except (ValueError, TypeError, AttributeError) as exc:
        logger.warning("ignoring an unreadable neuroglancerConfig: %s", exc)
        return None
    return NeuroglancerConfig(limits, tuple(annotation_layers))


def _normalized_range(layer: Mapping[str, Any]) -> tuple[float, float] | None:
    value = ((layer.get("shaderControls") or {}).get("normalized") or {}).get("range")
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and hi > lo else None


def _source_url(source: Any) -> str:
    """A layer's ``source``: a URL, ``{"url": …}``, or a list of either (the first)."""
    if isinstance(source, list):
        source = source[0] if source else None
    if isinstance(source, dict):
        source = source.get("url")
    return source if isinstance(source, str) else ""


def _layer_color(layer: Mapping[str, Any]) -> str | None:
    for key in ("segmentDefaultColor", "annotationColor"):
        value = layer.get(key)
        if isinstance(value, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            return value.lower()
    match = _SHADER_COLOR.search(str(layer.get("shader") or ""))
    return match.group(1).lower() if match else None


def _annotation_file(f: Mapping[str, Any], shape: Mapping[str, Any], annotation_id: int) -> AnnotationFile:
    """An annotation file row (with its shape's type and id) as a record."""
    return AnnotationFile(
        id=f["id"],
        format=f["format"],
        s3_path=f["s3Path"],
        https_path=f["httpsPath"],
        file_size=f.get("fileSize"),
        is_visualization_default=bool(f.get("isVisualizationDefault")),
        source=f.get("source"),
        voxel_spacing_id=f.get("tomogramVoxelSpacingId"),
        alignment_id=f.get("alignmentId"),
        shape_type=shape["shapeType"],
        shape_id=shape["id"],
        annotation_id=annotation_id,
    )


def _annotation(a: Mapping[str, Any]) -> Annotation:
    files = []
    for shape in _nodes(a.get("annotationShapes")):
        for f in _nodes(shape.get("annotationFiles")):
            files.append(_annotation_file(f, shape, a["id"]))
    return Annotation(
        id=a["id"],
        object_name=a["objectName"],
        object_id=a["objectId"],
        object_description=a.get("objectDescription"),
        object_state=a.get("objectState"),
        object_count=a.get("objectCount"),
        annotation_method=a.get("annotationMethod"),
        method_type=a.get("methodType"),
        ground_truth_status=a.get("groundTruthStatus"),
        is_curator_recommended=a.get("isCuratorRecommended"),
        annotation_software=a.get("annotationSoftware"),
        s3_metadata_path=a.get("s3MetadataPath"),
        https_metadata_path=a.get("httpsMetadataPath"),
        files=tuple(files),
    )


def _nodes(connection: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return [e["node"] for e in (connection or {}).get("edges") or []]


def _flatten(value: Any) -> Any:
    """Connections → lists of nodes, aggregates → counts; for display, not for logic."""
    if isinstance(value, dict):
        if set(value) == {"edges"}:
            return [_flatten(n) for n in _nodes(value)]
        if set(value) == {"aggregate"}:
            return _count(value)
        return {k: _flatten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_flatten(v) for v in value]
    return value


def _run_record(r: Mapping[str, Any]) -> Run:
    return Run(r["id"], r["name"], r["datasetId"], r["s3Prefix"], r["httpsPrefix"])


def _json_text(value: Any) -> str | None:
    """A JSON field as text (the API sends a string; tolerate an object)."""
    if value is None or isinstance(value, str):
        return value or None
    return json.dumps(value)
