"""The demo portal in its own process, with a control endpoint for the benchmark drivers.

    python bench/portal_server.py --size large

The portal runs apart from napari so that its Python servers (GraphQL execution, moto) do not
compete for napari's GIL: like the real portal, it is "remote". Its S3 and file servers go
through one shaped link (``demo.link.Link``: bandwidth shared by every connection, latency per
request) that the drivers set per run. Once ready it prints one JSON line on stdout: the
environment for the plugins, the control URL and facts about the content (largest dataset,
showcase run, the large tomograms). The control endpoint (127.0.0.1) answers:

    GET  /log          every request since the last reset: GraphQL (operation, root fields,
                       arrival), S3 and file server (method, path, status, bytes, Range, end
                       time); times are time.monotonic() of this machine, comparable across
                       processes
    GET  /activity     S3 + file requests in flight and the time of the last start or end
                       (the drivers wait for a quiet link with it)
    GET  /need?tomogram_id=&level=&z=[&y0=&y1=&x0=&x1=]
                       what a 2D view of one tomogram level physically needs: the zarr
                       metadata, and per chunk under the view its blosc header with the block
                       table plus the compressed blocks that hold plane z (chunk-local), read
                       from the objects as served (on disk or generated on request)
    POST /reset        clear the logs
    POST /link?mbps=N&latency_ms=M
                       shape S3 and files (mbps 0 or absent = unlimited) and set the same
                       latency on GraphQL
    POST /latency?ms=N set the GraphQL server's added latency per request only
    POST /stop         shut everything down
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from napari_cryoet_portal.demo.content import BUCKET
from napari_cryoet_portal.demo.link import Link
from napari_cryoet_portal.demo.portal import DemoPortal

#: the run the issue's "portal-sized tomogram" targets name (large portal only)
TS026_DATASET_ID = 10004
TS026_RUN_NAME = "TS_026"
LARGE_RUN_NAME = "TS_LARGE"


class TrackedLink(Link):
    """The demo's link, also counting the S3/file requests in flight.

    ``shaped()`` calls ``wait_latency`` once per request before answering and pipes the body
    through ``body``; both are used here to know when a request starts and when its last byte
    has gone, so that "the link is quiet" covers a long transfer that has not finished (the
    servers log a request only once it has). Always "shaping", so loopback is tracked too;
    without a bandwidth limit the body passes through untouched.
    """

    def __init__(self) -> None:
        super().__init__(None, 0.0)
        self._track = threading.Lock()
        self.inflight = 0
        self.last_activity = time.monotonic()

    @property
    def shaping(self) -> bool:  # noqa: D102 - always wrap, to see every request
        return True

    def set(self, mbps: float | None, latency_s: float) -> None:
        self.bytes_per_s = None if not mbps else mbps * 1e6 / 8
        self.latency_s = max(0.0, latency_s)

    def wait_latency(self) -> None:
        with self._track:
            self.inflight += 1
            self.last_activity = time.monotonic()
        super().wait_latency()

    def body(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        try:
            pieces = chunks if self.bytes_per_s is None else super().body(chunks)
            for piece in pieces:
                self.last_activity = time.monotonic()  # a long transfer is activity too
                yield piece
        finally:
            with self._track:
                self.inflight -= 1
                self.last_activity = time.monotonic()

    def activity(self) -> dict:
        """Requests in flight and when a request last started, sent bytes or ended."""
        with self._track:
            return {"inflight": self.inflight, "last": self.last_activity, "now": time.monotonic()}


def _records(requests: Iterable) -> list[dict]:
    return [
        {"method": r.method, "path": r.path, "status": r.status, "nbytes": r.nbytes, "t": r.time,
         "range": getattr(r, "range", None)}
        for r in requests
    ]


def _facts(portal: DemoPortal) -> dict:
    tables = portal.tables
    runs = tables.get("Run", [])
    per_dataset = Counter(r["datasetId"] for r in runs)
    largest_id, largest_runs = max(per_dataset.items(), key=lambda kv: (kv[1], -kv[0]))
    tomograms = tables.get("Tomogram", [])

    def default_tomogram(run_id: int) -> dict | None:
        mine = [t for t in tomograms if t.get("runId") == run_id]
        mine.sort(key=lambda t: (not t.get("isVisualizationDefault"), t["id"]))
        return mine[0] if mine else None

    def run_fact(run: dict) -> dict:
        tomo = default_tomogram(run["id"])
        fact = {
            "dataset_id": run["datasetId"],
            "run_id": run["id"],
            "run_name": run["name"],
            "tomogram_id": tomo["id"] if tomo else None,
            "tomogram_size_xyz": [tomo["sizeX"], tomo["sizeY"], tomo["sizeZ"]] if tomo else None,
        }
        if tomo and tomo.get("s3OmezarrDir"):
            # the zarr's key in the bucket: S3 log paths are /<bucket>/<key>/…, file-server
            # paths /<key>/… (the https root serves the bucket)
            fact["zarr_key"] = _bucket_key(tomo["s3OmezarrDir"])
            fact["levels"] = _level_shapes(portal, fact["zarr_key"])
        return fact

    def named(dataset_id: int, name: str) -> dict | None:
        return next((r for r in runs if r["name"] == name and r["datasetId"] == dataset_id), None)

    first_of_largest = min((r for r in runs if r["datasetId"] == largest_id), key=lambda r: r["name"])
    showcase = named(10000, "TS_001")
    biggest_tomo = max(tomograms, key=lambda t: t["sizeX"] * t["sizeY"] * t["sizeZ"])
    runs_by_id = {r["id"]: r for r in runs}
    large = next((r for r in runs if r["name"] == LARGE_RUN_NAME), None)
    ts026 = named(TS026_DATASET_ID, TS026_RUN_NAME)
    if large is None:  # the small portal: its biggest tomogram stands in (not opened there)
        large = runs_by_id[biggest_tomo["runId"]]
    return {
        "datasets": len(tables.get("Dataset", [])),
        "runs": len(runs),
        "tomograms": len(tomograms),
        "annotation_files": len(tables.get("AnnotationFile", [])),
        "largest_dataset": {"id": largest_id, "runs": largest_runs},
        "first_run_of_largest": run_fact(first_of_largest),
        "showcase_run": run_fact(showcase) if showcase else None,
        "large_tomogram_run": run_fact(large),
        "ts026_run": run_fact(ts026) if ts026 else None,
    }


def _bucket_key(url: str) -> str:
    """s3://bucket/key/ → key (no trailing slash)."""
    return url.split("://", 1)[1].split("/", 1)[1].rstrip("/")


def _object(portal: DemoPortal, key: str):  # noqa: ANN202 - demo.ranges.ObjectBody | None
    return portal.s3.object_body(BUCKET, key)


def _read(portal: DemoPortal, key: str, start: int = 0, stop: int | None = None) -> bytes | None:
    body = _object(portal, key)
    if body is None:
        return None
    stop = body.size if stop is None else min(stop, body.size)
    return body.read(start, stop) if stop > start else b""


def _level_shapes(portal: DemoPortal, zarr_key: str) -> list[dict]:
    """Each level's shape, chunks and path from the multiscales metadata (zarr v2)."""
    try:
        attrs = json.loads(_read(portal, f"{zarr_key}/.zattrs") or b"{}")
        paths = [d["path"] for d in attrs["multiscales"][0]["datasets"]]
    except (KeyError, IndexError, ValueError):
        paths = ["0", "1", "2"]
    out = []
    for path in paths:
        raw = _read(portal, f"{zarr_key}/{path}/.zarray")
        if raw is None:
            continue
        meta = json.loads(raw)
        out.append({"path": path, "shape": meta["shape"], "chunks": meta["chunks"],
                    "dtype": meta["dtype"], "separator": meta.get("dimension_separator", ".")})
    return out


def _blosc_need(portal: DemoPortal, key: str, items: tuple[int, int]) -> dict | None:
    """Bytes of a blosc1 frame that hold items [a, b): its 16-byte header, its block-offset
    table and the compressed blocks overlapping the items (the whole frame when it is stored
    memcpyed or is not blosc1). Read from the object itself; independent of the plugin's code."""
    body = _object(portal, key)
    if body is None:
        return None
    head = body.read(0, min(16, body.size))
    if len(head) < 16:
        return {"frame_bytes": body.size, "header_bytes": body.size, "block_bytes": 0, "blocks": 0}
    version, _vlz, flags, typesize = head[0], head[1], head[2], head[3]
    nbytes, blocksize, cbytes = struct.unpack("<III", head[4:16])
    if version not in (1, 2, 3, 4) or cbytes != body.size or blocksize <= 0 or typesize <= 0:
        return {"frame_bytes": body.size, "header_bytes": 0, "block_bytes": body.size, "blocks": 1,
                "note": "not a blosc1 frame: read whole"}
    a, b = items[0] * typesize, items[1] * typesize
    if flags & 0x02:  # memcpyed: the items themselves, after the header
        return {"frame_bytes": cbytes, "header_bytes": 16, "block_bytes": b - a, "blocks": 0}
    nblocks = math.ceil(nbytes / blocksize)
    table = struct.unpack(f"<{nblocks}i", body.read(16, 16 + 4 * nblocks))
    # blocks compressed by several threads are stored in the order they finished: a block ends
    # where the next stored one starts
    ordered = sorted(table) + [cbytes]
    ends = {start: ordered[k + 1] for k, start in enumerate(ordered[:-1])}
    first, last = a // blocksize, (b - 1) // blocksize
    block_bytes = 0
    for i in range(first, min(last, nblocks - 1) + 1):
        block_bytes += ends[table[i]] - table[i]
    return {"frame_bytes": cbytes, "header_bytes": 16 + 4 * nblocks, "block_bytes": block_bytes,
            "blocks": min(last, nblocks - 1) - first + 1, "blocksize": blocksize}


def _need(portal: DemoPortal, query: dict[str, list[str]]) -> dict:
    def arg(name: str, default: int | None = None) -> int | None:
        return int(float(query[name][0])) if name in query else default

    tomogram_id = arg("tomogram_id")
    tomo = next((t for t in portal.tables.get("Tomogram", []) if t["id"] == tomogram_id), None)
    if tomo is None:
        return {"error": f"no tomogram {tomogram_id}"}
    zarr_key = _bucket_key(tomo["s3OmezarrDir"])
    levels = _level_shapes(portal, zarr_key)
    level = arg("level", len(levels) - 1)
    if not 0 <= level < len(levels):
        return {"error": f"no level {level}"}
    info = levels[level]
    shape, chunks, sep = info["shape"], info["chunks"], info["separator"]
    z = min(max(arg("z", shape[0] // 2), 0), shape[0] - 1)
    y0, y1 = max(0, arg("y0", 0)), min(shape[1], arg("y1", shape[1]))
    x0, x1 = max(0, arg("x0", 0)), min(shape[2], arg("x1", shape[2]))
    meta_keys = [f"{zarr_key}/.zgroup", f"{zarr_key}/.zattrs"] + [f"{zarr_key}/{d['path']}/.zarray" for d in levels]
    metadata = sum(len(_read(portal, k) or b"") for k in meta_keys)
    pz, lz = divmod(z, chunks[0])
    plane = chunks[1] * chunks[2]
    out = {"tomogram_id": tomogram_id, "level": level, "shape": shape, "chunk_shape": chunks,
           "z": z, "box_yx": [[y0, y1], [x0, x1]], "metadata_bytes": metadata,
           "chunks": 0, "header_bytes": 0, "block_bytes": 0, "whole_chunk_bytes": 0, "missing_chunks": 0}
    for py in range(y0 // chunks[1], max(y0 // chunks[1] + 1, -(-y1 // chunks[1]))):
        for px in range(x0 // chunks[2], max(x0 // chunks[2] + 1, -(-x1 // chunks[2]))):
            key = f"{zarr_key}/{info['path']}/{sep.join(map(str, (pz, py, px)))}"
            found = _blosc_need(portal, key, (lz * plane, (lz + 1) * plane))
            if found is None:
                out["missing_chunks"] += 1
                continue
            out["chunks"] += 1
            out["header_bytes"] += found["header_bytes"]
            out["block_bytes"] += found["block_bytes"]
            out["whole_chunk_bytes"] += found["frame_bytes"]
            out.setdefault("blocksize", found.get("blocksize"))
    out["need_bytes"] = out["metadata_bytes"] + out["header_bytes"] + out["block_bytes"]
    return out


def _roomier_virtual_objects(portal: DemoPortal, disk_gb: float, memory_items: int) -> Any:
    """The content's objects made on request, with room for every chunk of the portal-sized
    tomogram on disk (the demo keeps 1 GB: less than the chunks one browse touches) and a
    level-0 plane's chunks in memory, so that the link, not the demo rendering chunks on 2
    cores, sets the pace. Same objects, same bytes; None when the content has none."""
    current = getattr(portal.s3, "virtual", None)
    if not current:
        return None
    try:
        from napari_cryoet_portal.demo.virtual import VIRTUAL_JSON, VirtualObjects

        spec = json.loads((Path(portal.content_dir) / VIRTUAL_JSON).read_text())
        objects = VirtualObjects(portal.content_dir, spec, memory_items=memory_items,
                                 disk_bytes=int(disk_gb * 2**30))
    except Exception as exc:  # noqa: BLE001 - the demo's own settings then
        print(f"portal_server: keeping the demo's virtual objects ({exc!r})", file=sys.stderr)
        return current
    for server in (portal.s3, portal.files):
        if hasattr(server, "virtual"):
            server.virtual = objects
    return objects


def _warm(objects: Any, zarr_key: str) -> dict:
    """Render every chunk of ``zarr_key`` once, into the on-disk cache (kept across runs)."""
    t0 = time.monotonic()
    keys = [k for k in objects.keys(zarr_key + "/") if not k.rsplit("/", 1)[-1].startswith(".")]
    nbytes = 0
    for key in keys:
        nbytes += len(objects.get(key) or b"")
    return {"objects": len(keys), "bytes": nbytes, "seconds": round(time.monotonic() - t0, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["small", "large"], default="small")
    parser.add_argument("--virtual-disk-gb", type=float, default=6.0,
                        help="on-disk cache for chunks made on request (all of TS_026's: ~4.6 GB)")
    parser.add_argument("--virtual-memory-chunks", type=int, default=20)
    parser.add_argument("--no-warm", action="store_true",
                        help="do not render TS_026's chunks before serving")
    args = parser.parse_args()

    t0 = time.monotonic()
    link = TrackedLink()
    portal = DemoPortal(args.size, link=link)
    objects = _roomier_virtual_objects(portal, args.virtual_disk_gb, args.virtual_memory_chunks)
    portal.start()
    portal.wait_ready()
    facts = _facts(portal)
    warmed = None
    if objects and facts.get("ts026_run") and facts["ts026_run"].get("zarr_key") and not args.no_warm:
        print("portal_server: rendering TS_026's chunks into the demo's cache (first time: minutes)",
              file=sys.stderr, flush=True)
        warmed = _warm(objects, facts["ts026_run"]["zarr_key"])
    startup_s = time.monotonic() - t0
    stop = threading.Event()
    needs: dict[tuple, dict] = {}

    class Control(BaseHTTPRequestHandler):
        def log_message(self, *a):  # noqa: ANN002
            pass

        def _send(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/log":
                offset = time.monotonic() - time.time()  # GraphQL arrival times are time.time()
                graphql = [
                    {"operation": r.operation_name, "root_fields": list(r.root_fields),
                     "status": r.status, "t": r.time + offset}
                    for r in portal.graphql.requests
                ]
                self._send({"graphql": graphql, "s3": _records(portal.s3.requests),
                            "files": _records(portal.files.requests)})
            elif url.path == "/activity":
                self._send(link.activity())
            elif url.path == "/need":
                key = tuple(sorted((k, tuple(v)) for k, v in parse_qs(url.query).items()))
                if key not in needs:  # the same views recur in every run
                    try:
                        needs[key] = _need(portal, parse_qs(url.query))
                    except Exception as exc:  # noqa: BLE001 - reported, not fatal
                        self._send({"error": repr(exc)})
                        return
                self._send(needs[key])
            else:
                self.send_error(404)

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/reset":
                portal.graphql.reset_log()
                portal.s3.reset_log()
                portal.files.reset_log()
            elif url.path == "/link":
                mbps = float(query.get("mbps", ["0"])[0])
                ms = float(query.get("latency_ms", ["0"])[0])
                link.set(mbps or None, ms / 1000.0)
                portal.graphql.latency_s = ms / 1000.0
            elif url.path == "/latency":
                ms = float(query.get("ms", ["0"])[0])
                portal.graphql.latency_s = ms / 1000.0
            elif url.path == "/stop":
                stop.set()
            else:
                self.send_error(404)
                return
            self._send({"ok": True})

    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, daemon=True).start()
    ready = {
        "env": portal.environment(),
        "control_url": f"http://127.0.0.1:{control.server_address[1]}",
        "files_url": portal.files_url,
        "size": args.size,
        "content_dir": str(Path(portal.content_dir)),
        "startup_s": round(startup_s, 2),
        "warmed": warmed,
        "facts": facts,
    }
    print(json.dumps(ready), flush=True)
    try:
        # stop on /stop, or when the parent closes our stdin
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        stop.wait()
    except KeyboardInterrupt:
        pass
    control.shutdown()
    portal.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
