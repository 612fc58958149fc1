"""Immutable records of what the portal returns, decoupled from GraphQL field names.

Everything above the portal package (data access, layers, widgets, CLI) speaks these types,
so a schema change touches ``client.py`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

XYZ = tuple[int, int, int]


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
class RunDetail:
    """Everything needed to show one run: its voxel spacings, tomograms and annotations."""

    run: Run
    voxel_spacings: tuple[VoxelSpacing, ...]
    tomograms: tuple[Tomogram, ...]
    annotations: tuple[Annotation, ...]
    _spacing_by_id: dict[int, float] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._spacing_by_id.update({v.id: v.voxel_spacing for v in self.voxel_spacings})

    def default_tomogram(self) -> Tomogram | None:
        """The portal's choice: visualization default, else portal standard, else the first."""
        for flag in ("is_visualization_default", "is_portal_standard"):
            for tomogram in self.tomograms:
                if getattr(tomogram, flag):
                    return tomogram
        return self.tomograms[0] if self.tomograms else None

    def annotation_files(self) -> tuple[AnnotationFile, ...]:
        return tuple(f for a in self.annotations for f in a.files)

    def files_for(self, tomogram: Tomogram) -> tuple[AnnotationFile, ...]:
        """Annotation files in the tomogram's frame: same voxel spacing id and alignment id.

        This is the official client's rule (``Tomogram.download_all_annotations``).
        """
        return tuple(
            f
            for f in self.annotation_files()
            if f.voxel_spacing_id == tomogram.voxel_spacing_id
            and f.alignment_id == tomogram.alignment_id
        )

    def voxel_spacing_of(self, file: AnnotationFile) -> float | None:
        """The voxel spacing (Å) an annotation file's coordinates are in."""
        if file.voxel_spacing_id is None:
            return None
        return self._spacing_by_id.get(file.voxel_spacing_id)

    def annotation(self, annotation_id: int) -> Annotation | None:
        return next((a for a in self.annotations if a.id == annotation_id), None)
