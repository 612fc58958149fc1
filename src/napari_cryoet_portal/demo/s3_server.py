"""A public, read-only S3 bucket on 127.0.0.1: moto's server, loaded from a directory tree.

Objects go straight into moto's in-process backend (no HTTP PUT per file), so even the large
demo bucket loads quickly; clients then read it over the real S3 protocol, unsigned, exactly
as they read ``s3://cryoet-data-portal-public``. Every request is logged with the bytes it
returned and its ``Range``, so tests and benchmarks can count round trips and traffic.

Two things moto lacks are added in front of it, for object reads only (``GET``/``HEAD`` of a
key; everything else is moto's): ranged reads that cost what they return (moto copies the
whole object per GET, 70 ms for a 63 MB chunk on loopback, which real S3 does not), and
*virtual* objects generated on request (:mod:`.virtual`: a portal-sized tomogram whose 3.5 GB
of chunks never exist on disk). A :class:`~.link.Link` shapes every response.
"""

from __future__ import annotations

import calendar
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, unquote

from werkzeug.serving import BaseWSGIServer, make_server

from .link import Link, shaped
from .ranges import ObjectBody, ObjectRequest, respond, virtual_body

__all__ = ["S3Request", "S3Server"]

# moto evaluates bucket policies for unsigned requests and maps HEAD to s3:HeadObject (real S3
# does not), so the public-read policy names it explicitly.
_PUBLIC_READ_ACTIONS = ["s3:GetObject", "s3:HeadObject", "s3:ListBucket", "s3:GetBucketLocation"]
_ACCOUNT_ID = "123456789012"
_REGION = "us-west-2"


S3Request = ObjectRequest  # the S3 server's log records (same fields as the file server's)


class S3Server:
    """moto in server mode on ``host:port`` (0 = any free port), with a request log."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        link: Link | None = None,
        virtual: Any = None,
    ) -> None:
        self.host = host
        self.port = port
        self.link = link
        #: objects generated on request (``get(key) -> bytes | None``), e.g. demo.virtual
        self.virtual = virtual
        self._virtual_gone: set[str] = set()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[S3Request] = []
        self._missing: set[str] = set()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> S3Server:
        # Imported here: moto is a demo-only dependency and slow to import.
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:  # the log is ours
                pass

        moto_app = DomainDispatcherApplication(create_backend_app)
        app = self._logging(shaped(self._object_reads(moto_app), lambda: self.link))
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=QuietHandler
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-s3", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- content --------------------------------------------------------------------------

    def load_tree(self, bucket: str, root: Path) -> int:
        """Create ``bucket`` (public-read) holding every file below ``root``; returns the count."""
        backend = self._backend()
        if bucket not in backend.buckets:
            backend.create_bucket(bucket, _REGION)
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "PublicRead",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": _PUBLIC_READ_ACTIONS,
                        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                    }
                ],
            }
            backend.put_bucket_policy(bucket, json.dumps(policy).encode())
        count = 0
        for path in _files(root):
            key = path.relative_to(root).as_posix()
            backend.put_object(bucket, key, path.read_bytes(), disable_notification=True)
            count += 1
        return count

    def clear_bucket(self, bucket: str) -> None:
        """Remove every object of ``bucket`` (before loading other content into it)."""
        backend = self._backend()
        for key in list(backend.buckets[bucket].keys.keys()):
            backend.delete_object(bucket, key)

    def delete_object(self, bucket: str, key: str) -> None:
        """Remove one object (fault injection: a missing chunk or file)."""
        self._backend().delete_object(bucket, key)
        self._virtual_gone.add(key)

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        """Replace one object (fault injection: malformed metadata or ndjson)."""
        self._backend().put_object(bucket, key, data, disable_notification=True)

    # --- object reads ---------------------------------------------------------------------

    def object_body(self, bucket: str, key: str) -> ObjectBody | None:
        """What a GET of ``bucket/key`` reads: moto's object, else a virtual one, else None."""
        stored = self._backend().buckets.get(bucket)
        fake = stored.keys.get(key) if stored is not None else None
        if fake is not None and not getattr(fake, "is_delete_marker", False) and hasattr(fake, "_value_buffer"):
            return _moto_body(fake)
        if self.virtual is not None and key not in self._virtual_gone:
            data = self.virtual.get(key)
            if data is not None:
                return virtual_body(key, data)
        return None

    def _object_reads(self, moto_app: Callable) -> Callable:
        """GET/HEAD of an object answered from its bytes at the asked offset; the rest to moto."""

        def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
            target = _object_target(environ)
            if target is not None:
                body = self.object_body(*target)
                if body is not None:
                    return respond(environ, start_response, body, [("x-amz-request-id", "demo")])
            return moto_app(environ, start_response)

        return app

    @staticmethod
    def _backend() -> Any:
        from moto.s3.models import s3_backends

        return s3_backends[_ACCOUNT_ID]["aws"]

    # --- request log ----------------------------------------------------------------------

    @property
    def requests(self) -> list[S3Request]:
        with self._lock:
            return list(self._requests)

    def reset_log(self) -> None:
        with self._lock:
            self._requests.clear()

    def _logging(self, app: Callable) -> Callable:
        def logged(environ: dict, start_response: Callable) -> Iterable[bytes]:
            status_box: list[int] = [0]

            def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
                status_box[0] = int(status.split()[0])
                return start_response(status, headers, exc_info)

            body = app(environ, capture)
            return _Counted(body, self, environ, status_box)

        return logged

    def _record(self, request: S3Request) -> None:
        with self._lock:
            self._requests.append(request)


class _Counted:
    """Wraps a WSGI body to log the request once the bytes have been sent."""

    def __init__(self, body: Iterable[bytes], server: S3Server, environ: dict, status: list[int]) -> None:
        self._body = body
        self._server = server
        self._environ = environ
        self._status = status

    def __iter__(self):
        nbytes = 0
        try:
            for chunk in self._body:
                nbytes += len(chunk)
                yield chunk
        finally:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
            self._server._record(
                S3Request(
                    self._environ.get("REQUEST_METHOD", ""),
                    self._environ.get("PATH_INFO", ""),
                    self._status[0],
                    nbytes,
                    time.monotonic(),
                    self._environ.get("HTTP_RANGE"),
                )
            )


def _object_target(environ: dict) -> tuple[str, str] | None:
    """``(bucket, key)`` of a plain path-style GetObject/HeadObject request, else None."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return None
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if set(query) - {"x-id"}:
        return None  # versions, tagging, acl, listings, …: moto's business
    path = unquote(environ.get("PATH_INFO", ""))
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        return None
    return bucket, key


def _moto_body(fake: Any) -> ObjectBody:
    """Read moto's spooled object buffer at an offset, under the object's lock."""

    def read(start: int, stop: int) -> bytes:
        with fake.lock:
            fake._value_buffer.seek(start)
            return fake._value_buffer.read(stop - start)

    with fake.lock:  # moto computes the ETag from the buffer without its lock
        etag = fake.etag
    modified = calendar.timegm(fake.last_modified.utctimetuple())  # moto's time is naive UTC
    return ObjectBody(fake.size, etag, modified, read)





def _files(root: Path) -> Iterable[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in sorted(names):
            yield Path(dirpath) / name
