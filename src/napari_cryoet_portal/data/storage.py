"""Where bytes come from: ``s3://`` (anonymous by default), ``http(s)://`` or local paths.

One place decides the fsspec options, so pyramids, annotation files and (later) downloads
reach the same endpoint the same way. The S3 endpoint follows botocore: an explicit
``endpoint_url`` wins, else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` from the
environment (that is how the demo portal's moto server is reached), else AWS itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import fsspec

__all__ = [
    "DataAccessError",
    "PORTAL_REGION",
    "read_bytes",
    "storage_options",
    "to_fsspec_url",
    "warm_up",
]

#: Region of the portal's public bucket, so anonymous clients skip a redirect round trip.
PORTAL_REGION = "us-west-2"


class DataAccessError(Exception):
    """A file could not be read or is not what it claims to be. The message says which."""


def to_fsspec_url(url: str | os.PathLike[str]) -> str:
    """Local paths become ``file://`` URLs; remote URLs pass through."""
    text = os.fspath(url)
    if "://" in text:
        return text
    return Path(text).expanduser().resolve().as_uri()


def storage_options(
    url: str, *, endpoint_url: str | None = None, anon: bool = True
) -> dict[str, Any]:
    """fsspec options for ``url``: anonymous S3 with one GET per object, nothing for others.

    ``max_concurrency=1``: s3fs otherwise sends a HEAD before every whole-object GET to plan a
    split download, doubling the round trips for every 256³ chunk.
    """
    if not url.startswith("s3://"):
        return {}
    options: dict[str, Any] = {"anon": anon, "max_concurrency": 1}
    client_kwargs: dict[str, Any] = {}
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
        "AWS_ENDPOINT_URL"
    )
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    if not endpoint and not os.environ.get("AWS_DEFAULT_REGION"):
        client_kwargs["region_name"] = PORTAL_REGION
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    return options


def read_bytes(
    url: str | os.PathLike[str], *, endpoint_url: str | None = None, anon: bool = True
) -> bytes:
    """The whole object at ``url`` in one request; missing or unreadable → DataAccessError."""
    url = to_fsspec_url(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options(url, endpoint_url=endpoint_url, anon=anon))
        return fs.cat_file(path)
    except FileNotFoundError as exc:
        raise DataAccessError(f"not found: {url}") from exc
    except PermissionError as exc:
        raise DataAccessError(f"access denied: {url}") from exc
    except OSError as exc:
        raise DataAccessError(f"cannot read {url}: {exc}") from exc


def warm_up(url: str = "s3://cryoet-data-portal-public/", *, endpoint_url: str | None = None) -> None:
    """Import the storage stack and build the (instance-cached) file system for ``url``.

    ``import s3fs`` pulls in aiobotocore (0.6–1.5 s) and the first client costs more: done
    in the background when the user connects, the first open doesn't pay for it. No request
    is sent.
    """
    url = to_fsspec_url(url)
    fs, _ = fsspec.core.url_to_fs(url, **storage_options(url, endpoint_url=endpoint_url))
    connect = getattr(fs, "connect", None)
    if callable(connect):
        connect()
