"""One benchmark run: one plugin, one portal size, one link, in a fresh napari process.

    python bench/drive.py --plugin ours|official --portal READY.json --link-name 100mbit \
        --link-mbps 100 --link-latency-ms 20 --out X.json

The portal (bench/portal_server.py) runs in another process; READY.json is the line it printed.
The driver sets the portal's link (S3 + files: bandwidth and latency per request; GraphQL: the
same latency), opens a real napari window (Xvfb) with the plugin's dock widget and performs
what a user does, waiting on the event loop (never blocking it) until each result is on screen:

    connect            Connect → datasets visible (ours: first page; official: listing finished)
    expand_largest     expand the dataset with the most runs → its first children visible
    open_first_run     click that dataset's first run → first image → all annotation layers
                       → sharp → the link quiet (no S3/file request for 2 s)
    open_showcase      the same for TS_001 of dataset 10000 (annotations of every kind)
    (large portal)
    open_ts026         TS_026 of dataset 10004, the portal-sized tomogram (1000×928×960)
    level0_ts026       full resolution: ours pins "Level 0"; official "High" + Open
    plane_ts026        at level 0, move to a plane no view has needed yet → sharp
    browse_ts026       20 z positions at level 0, each until sharp (RSS, stalls)
    open_large         TS_LARGE (256×768×768), then browse it (z steps, zoom)

Every action records marks (ms from the click), the longest main-thread stall, RSS, and the
portal's GraphQL / S3 / file-server requests that arrived during it (attributed by time);
after the story, the portal says what the views physically needed (``/need``).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import sys
import time
import traceback
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


class Control:
    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str, timeout: float = 30) -> Any:
        req = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self._call("POST", "/reset")

    def link(self, mbps: float | None, latency_ms: float) -> None:
        self._call("POST", f"/link?mbps={mbps or 0}&latency_ms={latency_ms}")

    def activity(self) -> dict:
        return self._call("GET", "/activity")

    def need(self, query: dict) -> dict:
        # the portal reads chunk headers, generating chunks made on request: can take a while
        return self._call("GET", "/need?" + urllib.parse.urlencode(query), timeout=600)

    def log(self) -> dict:
        return self._call("GET", "/log")


def _in(window: tuple[float, float], t: float) -> bool:
    return window[0] <= t < window[1]


def attribute(actions: list[dict], log: dict) -> None:
    """Add request counts to each action: those that arrived between its start and the next
    action's start (so background work an action triggers is charged to it), and those before
    each of its marks (``before_first_image``, ``before_quiet``, …)."""
    for i, action in enumerate(actions):
        end = actions[i + 1]["t0"] if i + 1 < len(actions) else float("inf")
        window = (action["t0"], end)
        gql = [r for r in log["graphql"] if _in(window, r["t"])]
        s3 = [r for r in log["s3"] if _in(window, r["t"])]
        files = [r for r in log["files"] if _in(window, r["t"])]
        zarr_key = ((action.get("notes") or {}).get("run") or {}).get("zarr_key")
        action.update(_stats(gql, s3, files, zarr_key))
        action["graphql_root_fields"] = _count_fields(gql)
        for mark, t in action["marks_abs"].items():
            before = (action["t0"], t + 1e-9)
            action[f"before_{mark}"] = _stats(
                [r for r in gql if _in(before, r["t"])],
                [r for r in s3 if _in(before, r["t"])],
                [r for r in files if _in(before, r["t"])],
                zarr_key,
            )
        for step in (action.get("notes") or {}).get("steps", []):
            if "t0" in step:  # a browse step: its requests from its start to the next's
                nxt = next((s["t0"] for s in action["notes"]["steps"] if s["t0"] > step["t0"]), end)
                w = (step["t0"], nxt)
                st = _stats([], [r for r in s3 if _in(w, r["t"])], [r for r in files if _in(w, r["t"])], zarr_key)
                step["bytes"], step["requests"] = st["bytes"], st["requests"]


def _stats(gql: list[dict], s3: list[dict], files: list[dict], zarr_key: str | None) -> dict:
    """Counts and bytes of a set of requests; ``tomogram_bytes`` are those under the opened
    tomogram's zarr (S3 paths are /<bucket>/<key>, file-server paths /<key>)."""
    objects = s3 + files

    def in_zarr(r: dict) -> bool:
        if not zarr_key:
            return False
        path = r["path"].lstrip("/")
        return path.startswith(zarr_key + "/") or path.split("/", 1)[-1].startswith(zarr_key + "/")

    return {
        "graphql_requests": len(gql),
        "s3_requests": len(s3),
        "s3_bytes": sum(r["nbytes"] for r in s3),
        "http_requests": len(files),
        "http_bytes": sum(r["nbytes"] for r in files),
        "requests": len(objects),
        "bytes": sum(r["nbytes"] for r in objects),
        "ranged_requests": sum(1 for r in objects if r.get("range")),
        "not_found": sum(1 for r in objects if r["status"] == 404),
        "failed": sum(1 for r in objects if r["status"] >= 400 and r["status"] != 404),
        "tomogram_bytes": sum(r["nbytes"] for r in objects if in_zarr(r)),
        "tomogram_requests": sum(1 for r in objects if in_zarr(r)),
    }


def partial_path(out: str | Path) -> Path:
    """Where a run keeps what it has measured so far (not a result: no request log yet)."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def finish_partial(out: str | Path, log: dict, why: str) -> dict | None:
    """A run that hung or died: its partial result, with the portal's request log attributed,
    written as its result (flagged ``partial``, with ``why`` among its errors)."""
    partial = partial_path(out)
    if not partial.exists():
        return None
    result = json.loads(partial.read_text())
    attribute(result["actions"], log)
    result["request_log"] = log
    result["errors"] = list(result.get("errors", [])) + [why]
    Path(out).write_text(json.dumps(result, indent=1))
    partial.unlink()
    return result


def _count_fields(records: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        key = "+".join(r["root_fields"]) or "?"
        out[key] = out.get(key, 0) + 1
    return out


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in (
        "napari", "PyQt6", "PyQt6-Qt6", "vispy", "numpy", "zarr", "dask", "s3fs", "fsspec",
        "ome-zarr", "napari-ome-zarr", "cryoet-data-portal", "gql", "napari-cryoet-portal",
        "napari-cryoet-data-portal", "moto",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def warm_up(viewer, rec) -> None:
    """Add and remove one layer of each kind the plugins create, so napari's one-off costs
    (GL programs compiled on first draw, lazy imports) are not charged to whichever plugin
    opens a run first. bench/drive_floor.py measures those costs on their own."""
    import numpy as np

    rng = np.random.default_rng(1)
    vol = rng.standard_normal((8, 32, 32)).astype(np.float32)
    viewer.add_image(vol, name="warm image")
    viewer.add_image([vol, vol[::2, ::2, ::2]], multiscale=True, name="warm pyramid")
    viewer.add_points(rng.uniform(0, 8, (5, 3)), name="warm points")
    viewer.add_vectors(np.zeros((2, 2, 3)), name="warm vectors")
    viewer.add_labels(np.zeros((8, 32, 32), np.int8), name="warm labels")
    viewer.add_labels(np.zeros((8, 32, 32), np.uint16), name="warm labels 16")
    viewer.add_surface((rng.uniform(0, 8, (4, 3)), np.array([[0, 1, 2], [1, 2, 3]])), name="warm surface")
    rec.idle(1.5)
    viewer.layers.clear()
    rec.idle(0.5)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plugin", choices=["ours", "official", "napari"], required=True)
    parser.add_argument("--portal", required=True, help="JSON file: the portal server's ready line")
    parser.add_argument("--link-name", default="loopback")
    parser.add_argument("--link-mbps", type=float, default=0.0, help="0: unlimited")
    parser.add_argument("--link-latency-ms", type=float, default=0.0,
                        help="per S3/file request, and per GraphQL request")
    parser.add_argument("--out", required=True)
    parser.add_argument("--listing-timeout", type=float, default=300.0)
    parser.add_argument("--action-timeout", type=float, default=180.0)
    parser.add_argument("--level0-timeout", type=float, default=600.0,
                        help="for the level-0 actions (the official plugin reads whole chunks)")
    parser.add_argument("--official-browse-budget", type=float, default=60.0)
    parser.add_argument("--no-browse", action="store_true")
    parser.add_argument("--ours-level0", choices=["pin", "multiscale"], default="pin")
    parser.add_argument("--hang-timeout", type=float, default=900.0,
                        help="the main thread not back in the event loop for this long: dump every "
                             "thread's stack and exit (a deadlock holds the GIL: nothing else can act)")
    parser.add_argument("--ts026-from", default=None,
                        help="smoke tests: run the TS_026 steps on another run of the facts "
                             "(e.g. first_run_of_largest on the small portal)")
    args = parser.parse_args()

    ready = json.loads(Path(args.portal).read_text())
    os.environ.update(ready["env"])
    control = Control(ready["control_url"])
    control.link(args.link_mbps or None, args.link_latency_ms)
    facts = ready["facts"]
    if args.ts026_from and not facts.get("ts026_run"):
        facts["ts026_run"] = dict(facts[args.ts026_from], stand_in_for="TS_026")

    result: dict[str, Any] = {
        "plugin": args.plugin,
        "size": ready["size"],
        "link": {"name": args.link_name, "mbps": args.link_mbps or None, "latency_ms": args.link_latency_ms},
        "byte_cache_mb": os.environ.get("NAPARI_CRYOET_PORTAL_BYTE_CACHE_MB"),
        "facts": facts,
        "versions": versions(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_at_start": os.getloadavg(),
        "actions": [],
        "errors": [],
    }

    import napari
    from qtpy.QtCore import QTimer

    from probes import Recorder, RssSampler, StallProbe

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 900)
    probe = StallProbe(10)
    rss = RssSampler(0.05)
    rss.start()
    probe.start()
    rec = Recorder(probe, rss)
    rec.idle(1.0)  # let the window settle before anything is timed

    if args.plugin != "napari":
        t = time.monotonic()
        warm_up(viewer, rec)
        result["warm_up_s"] = round(time.monotonic() - t, 2)

    if args.plugin == "ours":
        from drive_ours import OursDriver as Driver
    elif args.plugin == "official":
        from drive_official import OfficialDriver as Driver
    else:
        from drive_floor import FloorDriver as Driver
    driver = Driver(viewer, rec, facts, args)
    driver.control = control
    partial = partial_path(args.out)

    def keep_partial() -> None:
        """What has been measured so far, in case the process hangs or dies later."""
        done = [rec.summary(a) for a in rec.actions]
        partial.write_text(json.dumps({**result, "actions": done, "extra": driver.extra, "partial": True}))

    driver.after_step = keep_partial
    # A deadlock that holds the GIL (Qt mutex vs a slot proxy deleted in a worker thread) stops
    # every Python thread: only faulthandler's C thread can still report and end the process.
    # It is re-armed from the event loop every second.
    faulthandler.dump_traceback_later(args.hang_timeout, exit=True)
    rearm = QTimer()
    rearm.timeout.connect(lambda: faulthandler.dump_traceback_later(args.hang_timeout, exit=True))
    rearm.start(1000)

    control.reset()
    try:
        driver.run_all(large=ready["size"] == "large")
    except Exception as exc:  # keep what was measured; the report shows the error
        result["errors"].append("".join(traceback.format_exception(exc)))
        traceback.print_exc()
    rec.idle(0.5)
    rearm.stop()
    faulthandler.cancel_dump_traceback_later()
    probe.stop()
    rss.stop()
    log = control.log()
    for a in rec.actions:  # what the views physically needed (the portal reads its objects)
        for label, query in a.notes.get("need_query", {}).items():
            try:
                a.notes.setdefault("need", {})[label] = control.need(query)
            except Exception as exc:  # noqa: BLE001 - the report says it is missing
                a.notes.setdefault("need", {})[label] = {"error": repr(exc)}

    actions = [rec.summary(a) for a in rec.actions]
    attribute(actions, log)
    result["actions"] = actions
    result["request_log"] = log
    result["extra"] = driver.extra
    result["load_average_at_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    partial.unlink(missing_ok=True)
    print(f"wrote {args.out}", file=sys.stderr)
    # napari's own teardown can be slow or noisy under Xvfb; the results are written.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
