"""Immutable records of what the portal returns, decoupled from GraphQL field names.

Everything above the portal package (data access, layers, widgets, CLI) speaks these types,
so a schema change touches ``client.py`` alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

XYZ = tuple[int, int, int]

#: Å; the portal's standard viewing resolution (tomograms are binned to about 10 Å for viewing)
STANDARD_VIEWING_SPACING = 10.0


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a longer list, with the total the server counted."""

    items: tuple[T, ...]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total

    @property
    def next_offset(self) -> int:
        return self.offset + len(self.items)


@dataclass(frozen=True)
class DatasetSummary:
    """A row of the dataset list."""

    id: int
    title: str
    organism_name: str | None
    run_count: int
    thumbnail_url: str | None
    release_date: str | None


@dataclass(frozen=True)
class RunSummary:
    """A row of a dataset's run list."""

    id: int
    name: str
    dataset_id: int
    tomogram_count: int
    annotation_count: int


@dataclass(frozen=True)
class Run:
    id: int
    name: str
    dataset_id: int
    s3_prefix: str
    https_prefix: str


@dataclass(frozen=True)
class VoxelSpacing:
    id: int
    voxel_spacing: float
    s3_prefix: str
    https_prefix: str


@dataclass(frozen=True)
class NeuroglancerLayer:
    """One layer of a tomogram's Neuroglancer state: what the curators chose to show."""

    name: str
    type: str
    #: the layer's data URL (``precomputed://…``, ``zarr://…``), "" when absent
    source: str
    #: ``#rrggbb`` (segmentation ``segmentDefaultColor`` or the shader's colour control)
    color: str | None
    visible: bool

    @property
    def source_key(self) -> str:
        """The source's last path component, e.g. ``100-cytosolic_ribosome-1.0_point``."""
        return self.source.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class NeuroglancerConfig:
    """The parts of a tomogram's ``neuroglancerConfig`` (the portal's viewer state) a napari
    view uses: the image's display range and the annotation layers' colours."""

    #: the image layer's ``shaderControls.normalized.range``
    contrast_limits: tuple[float, float] | None = None
    #: every layer but the image
    annotation_layers: tuple[NeuroglancerLayer, ...] = ()

    def layer_for(self, annotation: Annotation, file: AnnotationFile) -> NeuroglancerLayer | None:
        """The Neuroglancer layer showing ``file``: matched by the precomputed source the portal
        names ``{n}-{object}-{version}_{shape}``, else by the layer name ``{n} {object} {kind}``."""
        stem = _annotation_stem(annotation.s3_metadata_path or annotation.https_metadata_path)
        if stem is None:
            return None
        shapes = _NG_SHAPE_NAMES.get(file.shape_type, (file.shape_type.lower(),))
        keys = {f"{stem}_{shape}" for shape in shapes}
        number = stem.split("-", 1)[0]
        kind = _NG_LAYER_KINDS.get(file.shape_type)
        name = f"{int(number)} {annotation.object_name} {kind}".lower() if kind else None
        by_name = None
        for layer in self.annotation_layers:
            if layer.source_key in keys:
                return layer
            if by_name is None and name is not None and layer.name.strip().lower() == name:
                by_name = layer
        return by_name

    def color_for(self, annotation: Annotation, file: AnnotationFile) -> str | None:
        layer = self.layer_for(annotation, file)
        return layer.color if layer is not None else None


# the portal's precompute folders are named after the metadata's shape (``TriangularMesh``,
# which the API calls ``Mesh``); its layer names end in a kind
_NG_SHAPE_NAMES = {"Mesh": ("mesh", "triangularmesh"), "TriangularMesh": ("triangularmesh", "mesh")}
_NG_LAYER_KINDS = {
    "Point": "point",
    "OrientedPoint": "orientedpoint",
    "InstanceSegmentation": "point",
    "SegmentationMask": "segmentation",
    "Mesh": "mesh",
    "TriangularMesh": "mesh",
}


def _annotation_stem(metadata_path: str | None) -> str | None:
    """``…/Annotations/100/ribosome-1.0.json`` (v2 layout) or
    ``…/Annotations/100-ribosome-1.0.json`` (v1) → ``100-ribosome-1.0``: the name the portal's
    viewer config gives the annotation."""
    if not metadata_path:
        return None
    parts = metadata_path.rstrip("/").split("/")
    stem = parts[-1].removesuffix(".json")
    if re.match(r"\d+-", stem):
        return stem
    if len(parts) >= 2 and parts[-2].isdigit():
        return f"{parts[-2]}-{stem}"
    return None


@dataclass(frozen=True)
class Tomogram:
    """A reconstruction of a run at one voxel spacing (Å), with its files."""

    id: int
    name: str | None
    run_id: int | None
    voxel_spacing_id: int | None
    alignment_id: int | None
    voxel_spacing: float
    size_xyz: XYZ
    #: shape of each pyramid level as (x, y, z), from the API (no S3 round trip needed)
    level_dimensions_xyz: tuple[XYZ, ...]
    offset_xyz: XYZ
    processing: str | None
    reconstruction_method: str | None
    reconstruction_software: str | None
    ctf_corrected: bool | None
    is_visualization_default: bool
    is_portal_standard: bool
    is_author_submitted: bool
    s3_omezarr_dir: str | None
    https_omezarr_dir: str | None
    file_size_omezarr: float | None
    s3_mrc_file: str | None
    https_mrc_file: str | None
    file_size_mrc: float | None
    key_photo_url: str | None
    thumbnail_url: str | None
    deposition_id: int | None = None
    #: the portal's viewer state for this tomogram (visualization defaults have one)
    neuroglancer_config: NeuroglancerConfig | None = None
    #: the same state as the API sent it (JSON text): what the portal's Neuroglancer link encodes
    neuroglancer_config_json: str | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        """What a person calls it: voxel spacing and processing, e.g. ``13.48 Å denoised``."""
        parts = [f"{self.voxel_spacing:g} Å", self.processing or "", self.reconstruction_method or ""]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class AnnotationFile:
    """One file of an annotation shape: where it is and which tomogram frame it is in."""

    id: int
    format: str
    s3_path: str
    https_path: str
    file_size: float | None
    is_visualization_default: bool
    source: str | None
    voxel_spacing_id: int | None
    alignment_id: int | None
    shape_type: str
    shape_id: int
    annotation_id: int


@dataclass(frozen=True)
class Annotation:
    """An annotated object in a run, with every file of every shape it was published as."""

    id: int
    object_name: str
    object_id: str
    object_description: str | None
    object_state: str | None
    object_count: int | None
    annotation_method: str | None
    method_type: str | None
    ground_truth_status: bool | None
    is_curator_recommended: bool | None
    annotation_software: str | None
    s3_metadata_path: str | None
    https_metadata_path: str | None
    files: tuple[AnnotationFile, ...] = ()

    @property
    def shape_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.shape_type for f in self.files))


@dataclass(frozen=True)
class DefaultTomogram:
    """Which tomogram opens first, and why."""

    tomogram: Tomogram | None
    #: e.g. "visualization default", "portal standard", "voxel spacing closest to 10 Å"
    reason: str


@dataclass(frozen=True)
class RunDetail:
    """Everything needed to show one run: its voxel spacings, tomograms and annotations."""

    run: Run
    voxel_spacings: tuple[VoxelSpacing, ...]
    tomograms: tuple[Tomogram, ...]
    annotations: tuple[Annotation, ...]
    _spacing_by_id: dict[int, float] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._spacing_by_id.update({v.id: v.voxel_spacing for v in self.voxel_spacings})

    def default_choice(self) -> DefaultTomogram:
        """The portal's choice and why: the curators' visualization default, else the portal
        standard, else the tomogram whose voxel spacing is closest to 10 Å (the portal's
        viewing resolution; ties go to the first in the API's order)."""
        for flag, reason in (
            ("is_visualization_default", "visualization default"),
            ("is_portal_standard", "portal standard"),
        ):
            for tomogram in self.tomograms:
                if getattr(tomogram, flag):
                    return DefaultTomogram(tomogram, reason)
        if not self.tomograms:
            return DefaultTomogram(None, "the run has no tomogram")
        closest = min(
            self.tomograms, key=lambda t: abs(t.voxel_spacing - STANDARD_VIEWING_SPACING)
        )
        return DefaultTomogram(
            closest,
            f"voxel spacing closest to {STANDARD_VIEWING_SPACING:g} Å"
            " (none is flagged visualization default or portal standard)",
        )

    def default_tomogram(self) -> Tomogram | None:
        """See :meth:`default_choice`."""
        return self.default_choice().tomogram

    def annotation_files(self) -> tuple[AnnotationFile, ...]:
        return tuple(f for a in self.annotations for f in a.files)

    def is_aligned(self, file: AnnotationFile, tomogram: Tomogram) -> bool:
        """Does ``file`` line up with ``tomogram``? Same alignment, whatever the voxel spacing
        (the portal's viewer rule: each is placed in Å at its own spacing). Files of another
        alignment "may require transformation". Without alignment ids (older records), the
        file must be at the tomogram's voxel spacing."""
        if file.alignment_id is not None and tomogram.alignment_id is not None:
            return file.alignment_id == tomogram.alignment_id
        return (
            file.alignment_id == tomogram.alignment_id
            and file.voxel_spacing_id == tomogram.voxel_spacing_id
        )

    def files_for(self, tomogram: Tomogram) -> tuple[AnnotationFile, ...]:
        """Annotation files that line up with ``tomogram`` (:meth:`is_aligned`), at any
        voxel spacing. (The official client's ``download_all_annotations`` also requires the
        same voxel spacing, which leaves a 10 Å tomogram without its 5 Å annotations.)"""
        return tuple(f for f in self.annotation_files() if self.is_aligned(f, tomogram))

    def curated_color(self, file: AnnotationFile) -> str | None:
        """The colour the curators gave ``file``'s layer in a tomogram's viewer config."""
        annotation = self.annotation(file.annotation_id)
        if annotation is None:
            return None
        for tomogram in self.tomograms:
            config = tomogram.neuroglancer_config
            color = config.color_for(annotation, file) if config is not None else None
            if color:
                return color
        return None

    def voxel_spacing_of(self, file: AnnotationFile) -> float | None:
        """The voxel spacing (Å) an annotation file's coordinates are in."""
        if file.voxel_spacing_id is None:
            return None
        return self._spacing_by_id.get(file.voxel_spacing_id)

    def annotation(self, annotation_id: int) -> Annotation | None:
        return next((a for a in self.annotations if a.id == annotation_id), None)


@dataclass(frozen=True)
class DatasetLocation:
    """Where a dataset's files are, for downloads."""

    id: int
    title: str
    s3_prefix: str
    https_prefix: str
    #: bytes of every file below the prefix, as the API reports it
    file_size: float | None = None
