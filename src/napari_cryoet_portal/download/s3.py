"""Anonymous S3 for downloads: list a prefix, stat a key, stream a key from an offset.

botocore's synchronous client (thread-safe, the library s3fs wraps asynchronously), pointed
at the endpoint :func:`~napari_cryoet_portal.data.storage.storage_options` decides (the real
bucket's region, or ``AWS_ENDPOINT_URL_S3`` for the demo portal). One GET per object, or one
ranged GET (``bytes=N-``) to resume; bodies are read in pieces, never held whole.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from typing import Any, Iterator, Protocol
from urllib.parse import urlparse

from ..data.storage import storage_options
from .errors import RemoteError, RemoteNotFound, RemoteUnreachable

__all__ = ["ObjectStream", "RemoteObject", "S3Reader", "parse_s3_url"]


@dataclass(frozen=True)
class RemoteObject:
    """One object as the server describes it."""

    bucket: str
    key: str
    size: int
    #: seconds since the epoch (a ``.part`` older than this is from another version)
    last_modified: float

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class ObjectStream(Protocol):
    """A response body: pieces of bytes from ``start``; ``total`` is the object's size."""

    start: int
    total: int

    def pieces(self, size: int) -> Iterator[bytes]: ...

    def close(self) -> None: ...


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")``."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URL: {url!r}")
    return parsed.netloc, parsed.path.lstrip("/")


class S3Reader:
    """Unsigned reads of public buckets; safe to share between threads."""

    def __init__(
        self, *, endpoint_url: str | None = None, max_connections: int = 10, retries: int = 4
    ) -> None:
        import botocore.session
        from botocore import UNSIGNED
        from botocore.config import Config

        client_kwargs = storage_options("s3://", endpoint_url=endpoint_url).get("client_kwargs", {})
        config = Config(
            signature_version=UNSIGNED,
            max_pool_connections=max_connections,
            retries={"max_attempts": retries + 1, "mode": "standard"},
            connect_timeout=15,
            read_timeout=60,
        )
        session = botocore.session.get_session()
        self._client = session.create_client("s3", config=config, **client_kwargs)
        self.endpoint_url = self._client.meta.endpoint_url

    def list(self, bucket: str, prefix: str) -> Iterator[RemoteObject]:
        """Every object whose key starts with ``prefix`` (paged: 1000 keys per request)."""
        paginator = self._client.get_paginator("list_objects_v2")
        with _translated(f"s3://{bucket}/{prefix}", self.endpoint_url):
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents") or ():
                    yield RemoteObject(
                        bucket, item["Key"], int(item["Size"]), _epoch(item["LastModified"])
                    )

    def stat(self, bucket: str, key: str) -> RemoteObject:
        """Size and date of one object (a HEAD); missing → :class:`RemoteNotFound`."""
        with _translated(f"s3://{bucket}/{key}", self.endpoint_url):
            head = self._client.head_object(Bucket=bucket, Key=key)
        return RemoteObject(bucket, key, int(head["ContentLength"]), _epoch(head["LastModified"]))

    def open(self, bucket: str, key: str, start: int = 0) -> ObjectStream:
        """The object's bytes from ``start`` (a ranged GET when ``start > 0``)."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if start > 0:
            kwargs["Range"] = f"bytes={start}-"
        with _translated(f"s3://{bucket}/{key}", self.endpoint_url):
            response = self._client.get_object(**kwargs)
        return _BotoStream(response)

    def close(self) -> None:
        self._client.close()


class _BotoStream:
    def __init__(self, response: dict[str, Any]) -> None:
        self._body = response["Body"]
        length = int(response.get("ContentLength") or 0)
        content_range = response.get("ContentRange")
        if content_range:  # "bytes a-b/total"
            span, _, total = content_range.partition(" ")[2].partition("/")
            self.start = int(span.split("-")[0])
            self.total = int(total)
        else:  # a whole object (a server may ignore Range: start again from 0)
            self.start = 0
            self.total = length

    def pieces(self, size: int) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        try:
            while True:
                piece = self._body.read(size)
                if not piece:
                    return
                yield piece
        except (BotoCoreError, HTTPError, OSError) as exc:
            raise RemoteError(f"connection lost: {exc}") from exc

    def close(self) -> None:
        try:
            self._body.close()
        except Exception:  # closing a broken connection must not mask the real error
            pass


class _translated:
    """botocore exceptions → :mod:`.errors` (one line each)."""

    def __init__(self, url: str, endpoint: str) -> None:
        self.url = url
        self.endpoint = endpoint

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError as BotoConnectionError,
            EndpointConnectionError,
        )

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound") or status == 404:
                raise RemoteNotFound(f"not found on the server: {self.url}") from exc
            if code in ("AccessDenied", "403") or status == 403:
                raise RemoteError(f"access denied by the server: {self.url}") from exc
            raise RemoteError(f"{self.url}: {code or status} {error.get('Message', '')}".strip()) from exc
        if isinstance(exc, (EndpointConnectionError, BotoConnectionError)):
            raise RemoteUnreachable(f"cannot reach the S3 endpoint {self.endpoint}: {exc}") from exc
        if isinstance(exc, BotoCoreError):
            raise RemoteError(f"{self.url}: {exc}") from exc
        return False


def _epoch(value: Any) -> float:
    """botocore's datetime (UTC) → seconds since the epoch."""
    return float(calendar.timegm(value.utctimetuple()))
