"""A plain HTTP server for the portal's ``https*`` URLs (thumbnails, metadata, files).

The real portal serves the bucket at https://files.cryoetdataportal.cziscience.com (a CDN:
keep-alive, ranged reads); the demo serves the same tree from disk on 127.0.0.1, with
``Range`` support, an optional shaped link and a request log.
"""

from __future__ import annotations

import mimetypes
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .link import Link, shaped
from .ranges import ObjectBody, ObjectRequest, respond, virtual_body

__all__ = ["FileServer"]


class _QuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a CDN

    def log_request(self, *args: Any, **kwargs: Any) -> None:  # the server keeps its own log
        pass


class FileServer:
    """Serves ``root`` read-only over HTTP on ``host:port`` (0 = any free port)."""

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        link: Link | None = None,
        virtual: Any = None,
    ) -> None:
        """``link`` (changeable while running) shapes the responses; ``virtual`` answers keys
        that are not files (``get(key) -> bytes | None``: objects made on request)."""
        self.root = Path(root).resolve()
        self.virtual = virtual
        self.host = host
        self.port = port
        self.link = link
        self._log: list[ObjectRequest] = []
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FileServer:
        app = shaped(self._app, lambda: self.link)
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-files", daemon=True
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

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The root URL, with a trailing slash."""
        return f"http://{self.host}:{self.port}/"

    @property
    def requests(self) -> list[ObjectRequest]:
        with self._lock:
            return list(self._log)

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = unquote(environ.get("PATH_INFO", "/"))
        status: list[int] = [0]

        def capture(line: str, headers: list, exc_info: Any = None) -> Callable:
            status[0] = int(line.split()[0])
            return start_response(line, headers, exc_info)

        if method not in ("GET", "HEAD"):
            capture("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Length", "0")])
            body: Iterable[bytes] = [b""]
        else:
            file = self._file(path)
            made = self._virtual(path) if file is None else None
            if made is not None:
                body = respond(environ, capture, made)
            elif file is None:
                message = b"not found\n"
                capture("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(message)))])
                body = [message] if method == "GET" else [b""]
            else:
                body = respond(environ, capture, _file_body(file))
        return self._logged(body, environ, status)

    def _logged(self, body: Iterable[bytes], environ: dict, status: list[int]) -> Iterable[bytes]:
        """``body``, logging the request with the bytes sent once it has gone out."""
        nbytes = 0
        try:
            for piece in body:
                nbytes += len(piece)
                yield piece
        finally:
            record = ObjectRequest(
                environ.get("REQUEST_METHOD", ""),
                environ.get("PATH_INFO", "/"),
                status[0],
                nbytes,
                time.monotonic(),
                environ.get("HTTP_RANGE"),
            )
            with self._lock:
                self._log.append(record)

    def _virtual(self, path: str) -> ObjectBody | None:
        if self.virtual is None:
            return None
        key = path.lstrip("/")
        data = self.virtual.get(key)
        if data is None:
            return None
        return virtual_body(key, data)

    def _file(self, path: str) -> Path | None:
        """The file ``path`` names under the root; never anything outside it."""
        candidate = (self.root / path.lstrip("/")).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            return None
        return candidate if candidate.is_file() else None


def _file_body(path: Path) -> ObjectBody:
    stat = path.stat()

    def read(start: int, stop: int) -> bytes:
        with open(path, "rb") as f:
            f.seek(start)
            return f.read(stop - start)

    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    etag = f'"{stat.st_ino:x}-{stat.st_size:x}-{int(stat.st_mtime):x}"'
    return ObjectBody(stat.st_size, etag, stat.st_mtime, read, content_type)
