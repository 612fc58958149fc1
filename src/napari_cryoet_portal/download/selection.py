"""What to download: an entity of the portal → the S3 objects and folders holding its files.

One API request per selection (:class:`~napari_cryoet_portal.portal.PortalClient`'s
``*_location`` calls); the answer names folders (an OME-Zarr store, a run, a dataset) and
single files, each at its key in the bucket, so that a download lays them out under the
destination exactly as ``aws s3 sync`` of the bucket would. The snippets are built from the
same :class:`Selection`, so what they fetch is what the downloader fetches.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Literal, get_args

from ..portal.client import PortalClient
from ..portal.records import Tomogram
from .s3 import parse_s3_url

__all__ = [
    "ANNOTATIONS_PATTERN",
    "KINDS",
    "Kind",
    "Remote",
    "Selection",
    "select",
]

Kind = Literal["dataset", "run", "tomogram", "annotation", "annotation-file"]
KINDS: tuple[str, ...] = get_args(Kind)

#: the ``aws s3 sync --exclude "*" --include …`` pattern that keeps annotations only
ANNOTATIONS_PATTERN = "*/Annotations/*"


@dataclass(frozen=True)
class Remote:
    """A single object, or every object below a folder (optionally only keys matching
    ``include``, relative to the folder, as the AWS CLI's ``--include`` patterns)."""

    s3_url: str
    https_url: str | None
    folder: bool
    #: bytes as the API reports them (a file's is checked against the server's)
    size: int | None = None
    include: str | None = None

    @property
    def bucket(self) -> str:
        return parse_s3_url(self.s3_url)[0]

    @property
    def key(self) -> str:
        """The object's key, or the folder's prefix ending in ``/``."""
        key = parse_s3_url(self.s3_url)[1]
        return key.rstrip("/") + "/" if self.folder else key

    def includes(self, key: str) -> bool:
        """Is ``key`` (below this folder) part of the selection?"""
        if self.include is None:
            return True
        return fnmatch.fnmatchcase(key[len(self.key):], self.include)

    def https_for(self, key: str) -> str | None:
        """The public HTTPS URL of ``key`` (this remote's or one below its folder)."""
        if not self.https_url:
            return None
        root = self.https_url
        if self.folder:
            root = root.rstrip("/") + "/"
            return root + key[len(self.key):]
        return root if key == self.key else None


@dataclass(frozen=True)
class Selection:
    """One thing a person asked to download, resolved to remotes."""

    kind: Kind
    id: int
    #: what it is, for messages: ``tomogram 12 (TS_026, 13.48 Å denoised, OME-Zarr)``
    description: str
    remotes: tuple[Remote, ...]
    dataset_id: int
    run_id: int | None = None
    format: str | None = None
    annotations_only: bool = False
    #: the tomogram, for its Neuroglancer link
    tomogram: Tomogram | None = None

    @property
    def bucket(self) -> str:
        return self.remotes[0].bucket


def select(
    client: PortalClient,
    kind: Kind,
    id: int,
    *,
    format: str | None = None,
    annotations_only: bool = False,
) -> Selection:
    """Ask the API where ``kind`` ``id``'s files are (one request).

    ``format``: for a tomogram ``"zarr"`` (default) or ``"mrc"``; for annotations, only files
    of that format (the annotation's metadata JSON comes too). ``annotations_only``: for a
    dataset or run, only keys below an ``Annotations/`` folder. A missing id or a format the
    portal does not have → ``LookupError``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    if annotations_only and kind not in ("dataset", "run"):
        raise ValueError("annotations_only applies to a dataset or a run")
    if format is not None and kind in ("dataset", "run"):
        raise ValueError("a format applies to a tomogram or annotations, not a whole dataset or run")
    include = ANNOTATIONS_PATTERN if annotations_only else None
    what = ", annotations only" if annotations_only else ""
    if kind == "dataset":
        location = client.dataset_location(id)
        remote = Remote(location.s3_prefix, location.https_prefix, True, _int(location.file_size), include)
        return Selection(kind, id, f"dataset {id} ({location.title}{what})", (remote,), id,
                         annotations_only=annotations_only)
    if kind == "run":
        run = client.run(id)
        remote = Remote(run.s3_prefix, run.https_prefix, True, None, include)
        return Selection(kind, id, f"run {id} ({run.name}{what})", (remote,), run.dataset_id, id,
                         annotations_only=annotations_only)
    if kind == "tomogram":
        return _tomogram_selection(client, id, format or "zarr")
    if kind == "annotation":
        return _annotation_selection(client, id, format)
    return _annotation_file_selection(client, id, format)


def _tomogram_selection(client: PortalClient, id: int, format: str) -> Selection:
    tomogram, run = client.tomogram_with_run(id)
    name = f"tomogram {id} ({run.name}, {tomogram.label}"
    if format == "zarr":
        if not tomogram.s3_omezarr_dir:
            raise LookupError(f"tomogram {id} has no OME-Zarr store on the portal")
        remote = Remote(tomogram.s3_omezarr_dir, tomogram.https_omezarr_dir, True,
                        _int(tomogram.file_size_omezarr))
        name += ", OME-Zarr)"
    elif format == "mrc":
        if not tomogram.s3_mrc_file:
            raise LookupError(f"tomogram {id} has no MRC file on the portal (try the OME-Zarr)")
        remote = Remote(tomogram.s3_mrc_file, tomogram.https_mrc_file, False, _int(tomogram.file_size_mrc))
        name += ", MRC)"
    else:
        raise ValueError(f"a tomogram comes as 'zarr' or 'mrc', not {format!r}")
    return Selection("tomogram", id, name, (remote,), run.dataset_id, run.id, format,
                     tomogram=tomogram)


def _annotation_selection(client: PortalClient, id: int, format: str | None) -> Selection:
    annotation, run = client.annotation_with_run(id)
    files = [f for f in annotation.files if format is None or f.format == format]
    if not files:
        having = ", ".join(sorted({f.format for f in annotation.files})) or "none"
        raise LookupError(f"annotation {id} has no {format} file (formats: {having})")
    remotes = [Remote(f.s3_path, f.https_path, f.format == "zarr", _int(f.file_size)) for f in files]
    if annotation.s3_metadata_path:
        remotes.append(Remote(annotation.s3_metadata_path, annotation.https_metadata_path, False))
    name = f"annotation {id} ({run.name}, {annotation.object_name})"
    return Selection("annotation", id, name, _unique(remotes), run.dataset_id, run.id, format)


def _annotation_file_selection(client: PortalClient, id: int, format: str | None) -> Selection:
    file, run = client.annotation_file_with_run(id)
    if format is not None and file.format != format:
        raise LookupError(f"annotation file {id} is {file.format}, not {format}")
    remote = Remote(file.s3_path, file.https_path, file.format == "zarr", _int(file.file_size))
    name = f"annotation file {id} ({run.name}, {file.shape_type} {file.format})"
    return Selection("annotation-file", id, name, (remote,), run.dataset_id, run.id, file.format)


def _unique(remotes: list[Remote]) -> tuple[Remote, ...]:
    return tuple({r.s3_url: r for r in remotes}.values())


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
