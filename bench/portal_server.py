"""The demo portal in its own process, with a control endpoint for the benchmark drivers.

    python bench/portal_server.py --size large

The portal runs apart from napari so that its Python servers (GraphQL execution, moto) do not
compete for napari's GIL: like the real portal, it is "remote". Once ready it prints one JSON
line on stdout: the environment for the plugins, the control URL and facts about the content
(largest dataset, showcase run, large tomogram). The control endpoint (127.0.0.1) answers:

    GET  /log          every request since the last reset: GraphQL (operation, root fields,
                       arrival), S3 and file server (method, path, status, bytes, end time);
                       times are time.monotonic() of this machine, comparable across processes
    POST /reset        clear the logs
    POST /latency?ms=N set the GraphQL server's added latency per request
    POST /stop         shut everything down
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from napari_cryoet_portal.demo import file_server as _file_server
from napari_cryoet_portal.demo.portal import DemoPortal

# The file server's own log has neither byte counts nor times: record them here.
_FILE_LOG: list[dict] = []
_FILE_LOCK = threading.Lock()


def _patch_file_server_log() -> None:
    def log_request(self, code="-", size="-"):  # noqa: ANN001
        status = int(code) if str(code).isdigit() else 0
        nbytes = 0
        if self.command == "GET" and status == 200:
            try:
                path = self.translate_path(self.path)
                if os.path.isfile(path):
                    nbytes = os.path.getsize(path)
            except OSError:
                pass
        with _FILE_LOCK:
            _FILE_LOG.append(
                {"method": self.command, "path": self.path, "status": status,
                 "nbytes": nbytes, "t": time.monotonic()}
            )

    _file_server._Handler.log_request = log_request


def _facts(portal: DemoPortal) -> dict:
    tables = portal.tables
    runs = tables.get("Run", [])
    per_dataset = Counter(r["datasetId"] for r in runs)
    largest_id, largest_runs = max(per_dataset.items(), key=lambda kv: (kv[1], -kv[0]))
    runs_by_id = {r["id"]: r for r in runs}
    tomograms = tables.get("Tomogram", [])

    def default_tomogram(run_id: int) -> dict | None:
        mine = [t for t in tomograms if t.get("runId") == run_id]
        mine.sort(key=lambda t: (not t.get("isVisualizationDefault"), t["id"]))
        return mine[0] if mine else None

    def run_fact(run: dict) -> dict:
        tomo = default_tomogram(run["id"])
        return {
            "dataset_id": run["datasetId"],
            "run_id": run["id"],
            "run_name": run["name"],
            "tomogram_id": tomo["id"] if tomo else None,
            "tomogram_size_xyz": [tomo["sizeX"], tomo["sizeY"], tomo["sizeZ"]] if tomo else None,
        }

    first_of_largest = min((r for r in runs if r["datasetId"] == largest_id), key=lambda r: r["name"])
    showcase = next((r for r in runs if r["name"] == "TS_001" and r["datasetId"] == 10000), None)
    biggest_tomo = max(tomograms, key=lambda t: t["sizeX"] * t["sizeY"] * t["sizeZ"])
    return {
        "datasets": len(tables.get("Dataset", [])),
        "runs": len(runs),
        "tomograms": len(tomograms),
        "annotation_files": len(tables.get("AnnotationFile", [])),
        "largest_dataset": {"id": largest_id, "runs": largest_runs},
        "first_run_of_largest": run_fact(first_of_largest),
        "showcase_run": run_fact(showcase) if showcase else None,
        "large_tomogram_run": run_fact(runs_by_id[biggest_tomo["runId"]]),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["small", "large"], default="small")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()

    _patch_file_server_log()
    t0 = time.monotonic()
    portal = DemoPortal(args.size, latency_s=args.latency_ms / 1000.0)
    portal.start()
    portal.wait_ready()
    startup_s = time.monotonic() - t0
    stop = threading.Event()

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
            if urlsplit(self.path).path != "/log":
                self.send_error(404)
                return
            offset = time.monotonic() - time.time()  # GraphQL arrival times are time.time()
            graphql = [
                {"operation": r.operation_name, "root_fields": list(r.root_fields),
                 "status": r.status, "t": r.time + offset}
                for r in portal.graphql.requests
            ]
            s3 = [
                {"method": r.method, "path": r.path, "status": r.status, "nbytes": r.nbytes, "t": r.time}
                for r in portal.s3.requests
            ]
            with _FILE_LOCK:
                files = list(_FILE_LOG)
            self._send({"graphql": graphql, "s3": s3, "files": files})

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/reset":
                portal.graphql.reset_log()
                portal.s3.reset_log()
                with _FILE_LOCK:
                    _FILE_LOG.clear()
            elif url.path == "/latency":
                ms = float(parse_qs(url.query).get("ms", ["0"])[0])
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
        "facts": _facts(portal),
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
