"""A plain HTTP server for the portal's ``https*`` URLs (thumbnails, metadata, files).

The real portal serves the bucket at https://files.cryoetdataportal.cziscience.com; the demo
serves the same tree from disk on 127.0.0.1, keep-alive, with a request log.
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["FileServer"]


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the server keeps its own log
        pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.server.log.append((self.command, self.path, int(code) if str(code).isdigit() else 0))  # type: ignore[attr-defined]


class FileServer:
    """Serves ``root`` read-only over HTTP on ``host:port`` (0 = any free port)."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root)
        self.host = host
        self.port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FileServer:
        handler = functools.partial(_Handler, directory=str(self.root))
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self._httpd.log = []  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="demo-files", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
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
    def requests(self) -> list[tuple[str, str, int]]:
        return list(self._httpd.log) if self._httpd else []  # type: ignore[attr-defined]
