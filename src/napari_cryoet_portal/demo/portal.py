"""The demo portal: GraphQL API, S3 bucket and file server on 127.0.0.1, from cached content.

    with DemoPortal("small") as portal:
        client = PortalClient(portal.api_url)
        ...

Only URLs differ from the real portal: the API executes the official SDL, the bucket speaks
S3 (unsigned reads) and the ``https*`` URLs are plain HTTP. Tests, the CLI's ``serve-demo``
and ``demo`` commands, and the benchmarks all start it through this class.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..data.byte_cache import CACHE_DIR_ENV
from ..portal.client import API_URL_ENV
from .cache import ensure_content
from .content import BUCKET, HTTPS_ROOT
from .file_server import FileServer
from .graphql_server import GraphQLServer
from .link import Link
from .s3_server import S3Server

__all__ = ["DemoPortal", "S3_ENDPOINT_ENV"]

S3_ENDPOINT_ENV = "AWS_ENDPOINT_URL_S3"

# The bucket lives in moto's process-global backend; remember what it was loaded from so two
# portals of the same content in one process share it, and a different size reloads it.
_loaded_content: dict[str, Path] = {}


class DemoPortal:
    """Starts the three servers; ports are chosen by the OS unless given."""

    def __init__(
        self,
        size: str = "small",
        *,
        host: str = "127.0.0.1",
        api_port: int = 0,
        s3_port: int = 0,
        files_port: int = 0,
        latency_s: float = 0.0,
        link: Link | None = None,
        cache_root: Path | None = None,
    ) -> None:
        """``latency_s`` delays each GraphQL request; ``link`` shapes the S3 and file servers
        (bandwidth shared by all their connections, latency per request)."""
        self.size = size
        self.content_dir = ensure_content(size, cache_root)
        self.link = link
        virtual = _virtual_objects(self.content_dir)
        self.s3 = S3Server(host, s3_port, link=link, virtual=virtual)
        self.files = FileServer(
            self.content_dir / "bucket", host, files_port, link=link, virtual=virtual
        )
        self._host = host
        self._api_port = api_port
        self._latency_s = latency_s
        self.graphql: GraphQLServer | None = None
        self.tables: dict[str, list[dict[str, Any]]] = {}

    def start(self) -> DemoPortal:
        self.s3.start()
        self.files.start()
        _load_bucket(self.s3, self.content_dir)
        raw = json.loads((self.content_dir / "tables.json").read_text())
        self.tables = _materialize(raw, HTTPS_ROOT, self.files.url)
        self.graphql = GraphQLServer(
            self.tables, host=self._host, port=self._api_port, latency_s=self._latency_s
        )
        self.graphql.start()
        return self

    def stop(self) -> None:
        if self.graphql is not None:
            self.graphql.stop()
        self.files.stop()
        self.s3.stop()

    def __enter__(self) -> DemoPortal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once all three servers answer real requests (or raise TimeoutError)."""
        import time

        import urllib3

        from ..portal.transport import GraphQLTransport

        deadline = time.monotonic() + timeout
        probes = [
            lambda: GraphQLTransport(self.api_url, retries=0, timeout=5).execute("{ __typename }"),
            lambda: urllib3.request("GET", f"{self.s3_endpoint_url}/{BUCKET}?max-keys=1", timeout=5),
            lambda: urllib3.request("GET", self.files_url, timeout=5),
        ]
        for probe in probes:
            while True:
                try:
                    probe()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the demo portal did not come up") from None
                    time.sleep(0.05)

    @property
    def api_url(self) -> str:
        assert self.graphql is not None, "start() the portal first"
        return self.graphql.url

    @property
    def s3_endpoint_url(self) -> str:
        return self.s3.endpoint_url

    @property
    def files_url(self) -> str:
        return self.files.url

    def environment(self) -> dict[str, str]:
        """The variables that point the plugin (and boto/s3fs) at this portal, and its byte
        cache at a folder of this content (the demo's URLs are the same for every content
        version: bytes cached from another one must never be served)."""
        return {
            API_URL_ENV: self.api_url,
            S3_ENDPOINT_ENV: self.s3_endpoint_url,
            CACHE_DIR_ENV: str(self.content_dir / "byte-cache"),
        }

    @contextmanager
    def applied_environment(self) -> Iterator[dict[str, str]]:
        """Set :meth:`environment` in ``os.environ`` for the duration of the block."""
        env = self.environment()
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _virtual_objects(content_dir: Path) -> Any:
    """The content's objects made on request (a portal-sized tomogram's chunks), if any."""
    try:
        from .virtual import VirtualObjects
    except ImportError:  # content generators without virtual objects
        return None
    return VirtualObjects.load(content_dir)


def _load_bucket(s3: S3Server, content_dir: Path) -> None:
    if _loaded_content.get(BUCKET) == content_dir:
        return
    if BUCKET in _loaded_content:
        s3.clear_bucket(BUCKET)
    s3.load_tree(BUCKET, content_dir / "bucket")
    _loaded_content[BUCKET] = content_dir


def _materialize(value: Any, placeholder: str, root: str) -> Any:
    """Replace the placeholder https root in every string of the tables with the real one."""
    if isinstance(value, str):
        return root + value[len(placeholder):] if value.startswith(placeholder) else value
    if isinstance(value, dict):
        return {k: _materialize(v, placeholder, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_materialize(v, placeholder, root) for v in value]
    return value
