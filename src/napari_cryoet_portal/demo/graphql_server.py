"""The demo portal's GraphQL endpoint: the portal schema over HTTP, for tests and benchmarks.

``POST /graphql`` (and ``GET /graphql?query=...``) answer like a GraphQL server: HTTP 200 with
``data`` and/or ``errors``; a body that is not a GraphQL request gets HTTP 400. Connections are
kept alive (HTTP/1.1) so clients can pool them. Beyond serving, the server records every
request (to count requests per user action), can add latency (to simulate a remote portal),
can fail the next requests (to test retries), and can stop and start again on the same port
(to test an API outage): stopping also closes the kept-alive connections.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    OperationDefinitionNode,
)

from napari_cryoet_portal.demo.graphql_schema import PortalTables, Row, execute, parse_query


@dataclass(frozen=True)
class RequestRecord:
    """One request to /graphql: what it asked for, how it was answered, when it arrived."""

    operation_name: str | None
    root_fields: tuple[str, ...]
    status: int
    time: float


class _BadRequest(Exception):
    """The body is not a GraphQL request (answered with HTTP 400)."""


class GraphQLServer:
    """The portal's GraphQL API over in-memory tables (see docs/demo-portal.md).

    Use as a context manager or call ``start()``/``stop()``; ``url`` is valid once started
    and stays the same across restarts.
    """

    def __init__(
        self,
        tables: Mapping[str, Iterable[Row]],
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
    ) -> None:
        self.tables = PortalTables(tables)
        self.host = host
        self.port = port
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self._log: list[RequestRecord] = []
        self._failures = 0
        self._failure_status = 503
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/graphql"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> Self:
        """Serve in a background thread; the first start picks the port if it is 0."""
        if self._httpd is None:
            self._httpd = _HTTPServer((self.host, self.port), self)
            self.port = self._httpd.server_address[1]
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"demo-graphql-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections, as a crashed API would; start() again works."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Answer the next ``n`` requests with HTTP ``status`` instead of executing them."""
        with self._lock:
            self._failures, self._failure_status = n, status

    def _answer(self, payload: Mapping[str, Any] | bytes) -> tuple[int, dict | str]:
        """Answer one request (a JSON body, or GET parameters): (HTTP status, JSON or text)."""
        arrived = time.time()
        if self.latency_s:
            time.sleep(self.latency_s)
        with self._lock:
            failing = self._failures > 0
            if failing:
                self._failures -= 1
        if failing:
            # What a proxy in front of the API sends: plain text, not a GraphQL answer.
            status = self._failure_status
            body = f"{status} {HTTPStatus(status).phrase} (injected failure)"
            operation_name, root_fields = None, ()
        else:
            try:
                query, variables, operation_name = _graphql_request(payload)
            except _BadRequest as error:
                status, body = 400, {"errors": [{"message": str(error)}]}
                operation_name, root_fields = None, ()
            else:
                document, errors = parse_query(query)
                root_fields = root_field_names(document, operation_name) if document else ()
                operation_name = operation_name or _operation_name(document)
                if errors:
                    body = {"errors": [error.formatted for error in errors]}
                else:
                    body = execute(self.tables, document, variables, operation_name).formatted
                status = 200
        with self._lock:
            self._log.append(RequestRecord(operation_name, root_fields, status, arrived))
        return status, body


def _graphql_request(payload: Mapping[str, Any] | bytes) -> tuple[str, dict | None, str | None]:
    if isinstance(payload, bytes):
        try:
            payload = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _BadRequest(f"Malformed JSON body: {error}") from None
    if not isinstance(payload, Mapping):
        raise _BadRequest("The body must be a JSON object")
    query, variables = payload.get("query"), payload.get("variables")
    operation_name = payload.get("operationName")
    if not isinstance(query, str):
        raise _BadRequest("No GraphQL query found in the request")
    if variables is not None and not isinstance(variables, Mapping):
        raise _BadRequest("Variables must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise _BadRequest("operationName must be a string")
    return query, variables, operation_name


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


def _operation_name(document: DocumentNode | None) -> str | None:
    operation = _operation(document, None) if document else None
    return operation.name.value if operation and operation.name else None


def root_field_names(document: DocumentNode, operation_name: str | None = None) -> tuple[str, ...]:
    """The root fields an operation queries (names, not aliases; through fragments)."""
    operation = _operation(document, operation_name)
    if operation is None:
        return ()
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }

    def fields(node: Any) -> Iterator[str]:
        for selection in node.selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection.name.value
            elif isinstance(selection, FragmentSpreadNode):
                if selection.name.value in fragments:
                    yield from fields(fragments[selection.name.value])
            else:
                yield from fields(selection)

    return tuple(fields(operation))


class _HTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server that knows its open connections, so stop() can close them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: GraphQLServer) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a connection drops (clients going away, stop()); report the rest."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_NOT_FOUND = {"detail": "Not Found"}  # FastAPI's answer for other paths


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client waits ~40 ms
    # for the delayed ACK before the body arrives.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        if urlsplit(self.path).path != "/graphql":
            self._send(404, _NOT_FOUND)
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self._send(400, {"errors": [{"message": "Invalid Content-Length"}]})
            return
        self._send(*self.server.app._answer(self.rfile.read(length)))

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path != "/graphql":
            self._send(404, _NOT_FOUND)
            return
        params = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if "variables" in params:
            try:
                params["variables"] = json.loads(params["variables"])
            except json.JSONDecodeError:
                self._send(400, {"errors": [{"message": "Malformed variables"}]})
                return
        self._send(*self.server.app._answer(params))

    def _send(self, status: int, body: dict | str) -> None:
        if isinstance(body, str):
            data, content_type = body.encode(), "text/plain; charset=utf-8"
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
            content_type = "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent: the request log is ``GraphQLServer.requests``."""
