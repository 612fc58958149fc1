"""Downloads from the portal, without Qt or napari: datasets, runs, tomograms (OME-Zarr or
MRC), annotations and annotation files, laid out below a folder as ``aws s3 sync`` would.

    from napari_cryoet_portal.download import download_target
    result = download_target(client, "tomogram", 123, "data/")   # progress=..., cancel=Event()
    print(result.summary()); assert result.complete

:func:`select` asks the API what to fetch (one request), :func:`list_selection` lists it at
the server, :func:`download` fetches it (safe, resumable, concurrent, cancellable); the
snippets and links say the same in other tools' words.
"""

from __future__ import annotations

import os
import threading

from ..portal.client import PortalClient
from .errors import DownloadError, LocalWriteError, RemoteError, RemoteNotFound, RemoteUnreachable
from .progress import Progress, ProgressCallback, ProgressTracker, TerminalProgress
from .s3 import RemoteObject, S3Reader
from .selection import ANNOTATIONS_PATTERN, KINDS, Kind, Remote, Selection, select
from .snippets import (
    AWS_CLI_NOTE,
    DEFAULT_WEB_URL,
    WEB_URL_ENV,
    PortalLinks,
    aws_cli_snippet,
    curl_snippet,
    neuroglancer_url,
    portal_links,
    python_snippet,
    selection_links,
)
from .transfer import (
    DEFAULT_JOBS,
    PART_SUFFIX,
    DownloadResult,
    FileOutcome,
    FileTask,
    Listing,
    download,
    list_selection,
    local_path,
)

__all__ = [
    "ANNOTATIONS_PATTERN",
    "AWS_CLI_NOTE",
    "DEFAULT_JOBS",
    "DEFAULT_WEB_URL",
    "KINDS",
    "PART_SUFFIX",
    "WEB_URL_ENV",
    "DownloadError",
    "DownloadResult",
    "FileOutcome",
    "FileTask",
    "Kind",
    "Listing",
    "LocalWriteError",
    "PortalLinks",
    "Progress",
    "ProgressCallback",
    "ProgressTracker",
    "Remote",
    "RemoteError",
    "RemoteNotFound",
    "RemoteObject",
    "RemoteUnreachable",
    "S3Reader",
    "Selection",
    "TerminalProgress",
    "aws_cli_snippet",
    "curl_snippet",
    "download",
    "download_target",
    "list_selection",
    "local_path",
    "neuroglancer_url",
    "portal_links",
    "python_snippet",
    "select",
    "selection_links",
]


def download_target(
    client: PortalClient,
    kind: Kind,
    id: int,
    dest: str | os.PathLike[str],
    *,
    format: str | None = None,
    annotations_only: bool = False,
    jobs: int = DEFAULT_JOBS,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> DownloadResult:
    """:func:`select` then :func:`download`: what a widget's worker or a script calls."""
    selection = select(client, kind, id, format=format, annotations_only=annotations_only)
    return download(selection, dest, jobs=jobs, progress=progress, cancel=cancel)
