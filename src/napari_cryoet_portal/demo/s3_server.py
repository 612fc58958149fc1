"""A public, read-only S3 bucket on 127.0.0.1: moto's server, loaded from a directory tree.

Objects go straight into moto's in-process backend (no HTTP PUT per file), so even the large
demo bucket loads quickly; clients then read it over the real S3 protocol, unsigned, exactly
as they read ``s3://cryoet-data-portal-public``. Every request is logged with the bytes it
returned, so tests and benchmarks can count round trips and traffic.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from werkzeug.serving import BaseWSGIServer, make_server

__all__ = ["S3Request", "S3Server"]

# moto evaluates bucket policies for unsigned requests and maps HEAD to s3:HeadObject (real S3
# does not), so the public-read policy names it explicitly.
_PUBLIC_READ_ACTIONS = ["s3:GetObject", "s3:HeadObject", "s3:ListBucket", "s3:GetBucketLocation"]
_ACCOUNT_ID = "123456789012"
_REGION = "us-west-2"


@dataclass(frozen=True)
class S3Request:
    method: str
    path: str
    status: int
    nbytes: int
    time: float


class S3Server:
    """moto in server mode on ``host:port`` (0 = any free port), with a request log."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
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

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self.host, self.port, self._logging(app), threaded=True, request_handler=QuietHandler
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

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        """Replace one object (fault injection: malformed metadata or ndjson)."""
        self._backend().put_object(bucket, key, data, disable_notification=True)

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
                )
            )


def _files(root: Path) -> Iterable[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in sorted(names):
            yield Path(dirpath) / name
