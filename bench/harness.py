"""Runs every benchmark and writes bench/results/*.json, then docs/benchmarks.md.

    python bench/harness.py [--sizes small,large] [--links loopback,100mbit]
                            [--plugins ours,official] [--repeat 3]
                            [--listing-timeout 300] [--skip-ndjson] [--no-report]

A link is ``loopback`` (no shaping), ``<N>mbit`` (N Mbit/s shared by all S3 and file
connections, 20 ms per request) or ``<N>mbit+<M>ms`` / ``loopback+<M>ms``; GraphQL gets the
same latency per request. For each size: one demo portal process (bench/portal_server.py),
then for each repetition, link and plugin one fresh napari process (bench/drive.py) with a hard
timeout. Then the ndjson benchmark (bench/bench_ndjson.py) and the report (bench/report.py).
Must run with a display (bench/run.sh wraps it in xvfb-run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


DEFAULT_LATENCY_MS = 20.0


def parse_link(spec: str) -> dict:
    """``loopback`` | ``<N>mbit`` (20 ms per request) | ``<N>mbit+<M>ms`` | ``loopback+<M>ms``."""
    spec = spec.strip()
    m = re.fullmatch(r"(loopback|(\d+(?:\.\d+)?)mbit)(?:\+(\d+(?:\.\d+)?)ms)?", spec)
    if m is None:
        raise SystemExit(f"unknown link {spec!r}: loopback, 100mbit, 100mbit+50ms, loopback+20ms")
    mbps = float(m.group(2)) if m.group(2) else None
    if m.group(3) is not None:
        latency = float(m.group(3))
    else:
        latency = 0.0 if mbps is None else DEFAULT_LATENCY_MS
    return {"name": spec, "mbps": mbps, "latency_ms": latency}


def start_portal(size: str) -> tuple[subprocess.Popen, dict, Path]:
    log(f"starting the {size} demo portal (first run generates its content: minutes for large)")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "portal_server.py"), "--size", size],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the {size} demo portal did not start (exit code {proc.wait()})")
    ready = json.loads(line)
    path = RESULTS / f"portal-{size}.json"
    path.write_text(json.dumps(ready, indent=1))
    log(f"portal up in {ready['startup_s']} s: {ready['facts']['datasets']} datasets, "
        f"{ready['facts']['runs']} runs" + (f"; TS_026's chunks rendered: {ready['warmed']}" if ready.get("warmed") else ""))
    return proc, ready, path


def stop_portal(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()  # the server stops when its stdin closes
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def result_path(plugin: str, size: str, link: str, rep: int) -> Path:
    return RESULTS / f"{plugin}-{size}-{link}-r{rep}.json"


def run_driver(plugin: str, size: str, link: dict, portal_json: Path, args, rep: int = 1) -> dict:
    out = result_path(plugin, size, link["name"], rep)
    if out.exists():
        out.unlink()
    cmd = [
        sys.executable, str(HERE / "drive.py"), "--plugin", plugin, "--portal", str(portal_json),
        "--link-name", link["name"], "--link-mbps", str(link["mbps"] or 0),
        "--link-latency-ms", str(link["latency_ms"]), "--out", str(out),
        "--listing-timeout", str(args.listing_timeout), "--action-timeout", str(args.action_timeout),
        "--level0-timeout", str(args.level0_timeout),
        "--official-browse-budget", str(args.official_browse_budget),
    ]
    if args.no_browse:
        cmd.append("--no-browse")
    if args.ts026_from:
        cmd += ["--ts026-from", args.ts026_from]
    cmd += ["--ours-level0", args.ours_level0]
    # Generous bound: listing cap + every other action's cap; the driver enforces the real ones.
    hard = (args.listing_timeout * 2 + args.action_timeout * 10 + args.level0_timeout * 3
            + args.official_browse_budget + 600)
    log(f"{plugin} on {size} over {link['name']}, repetition {rep} …")
    t0 = time.monotonic()
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # imports should cost what they cost a user
    # cold: no bytes from an earlier run (the official plugin has no such cache)
    env["NAPARI_CRYOET_PORTAL_BYTE_CACHE_MB"] = "0"
    try:
        proc = subprocess.run(cmd, timeout=hard, env=env, capture_output=True, text=True)
        stderr = proc.stderr
    except subprocess.TimeoutExpired as exc:
        stderr = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        log(f"  killed after {hard:.0f} s")
    out.with_suffix(".log").write_text(stderr or "")
    if not out.exists():  # hung or died: keep what it measured, with the portal's log
        from drive import Control, finish_partial

        try:
            log_ = Control(json.loads(portal_json.read_text())["control_url"]).log()
            tail = (stderr or "").strip().splitlines()[-40:]
            if finish_partial(out, log_, "the driver did not finish (hung or died); its log ends:\n" + "\n".join(tail)):
                log(f"  kept its partial result ({len(tail)} lines of its log in the errors)")
        except Exception as exc:  # noqa: BLE001 - no partial result then
            log(f"  no partial result: {exc!r}")
    if out.exists():
        result = json.loads(out.read_text())
        log(f"  done in {time.monotonic() - t0:.0f} s" + (f", {len(result['errors'])} error(s)" if result["errors"] else ""))
        return result
    log(f"  no result (see {out.with_suffix('.log')})")
    return {}


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    try:
        gl = subprocess.run(["glxinfo", "-B"], capture_output=True, text=True, timeout=10).stdout
        info["gl_renderer"] = next((l.split(":", 1)[1].strip() for l in gl.splitlines() if "renderer string" in l), None)
    except (OSError, subprocess.SubprocessError):
        pass
    info["load_average"] = os.getloadavg()
    return info


def run_ndjson() -> dict:
    """bench/bench_ndjson.py (its own file, its own functions) in a subprocess; it writes
    bench/results/ndjson.json itself (each of its measurements runs in a fresh process)."""
    script = HERE / "bench_ndjson.py"
    if not script.exists():
        return {"error": "bench/bench_ndjson.py not found"}
    out = RESULTS / "ndjson.json"
    out.unlink(missing_ok=True)  # a failed run must not leave an old result behind
    log("ndjson benchmark …")
    proc = subprocess.run(
        [sys.executable, str(script), "--out", str(out)],
        capture_output=True, text=True, timeout=3600,
    )
    (RESULTS / "ndjson.log").write_text(proc.stdout + proc.stderr)
    if out.exists():
        return json.loads(out.read_text())
    error = {"error": f"bench_ndjson.py exit {proc.returncode}", "tail": (proc.stdout + proc.stderr)[-2000:]}
    out.write_text(json.dumps(error))  # report.py says why the section is missing
    return error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--links", default="loopback,100mbit",
                        help="loopback, <N>mbit (20 ms per request), <N>mbit+<M>ms, loopback+<M>ms")
    parser.add_argument("--plugins", default="ours,official")
    parser.add_argument("--listing-timeout", type=float, default=300.0)
    parser.add_argument("--action-timeout", type=float, default=180.0)
    parser.add_argument("--level0-timeout", type=float, default=600.0,
                        help="cap of each level-0 action (the official plugin reads whole chunks on napari's main thread)")
    parser.add_argument("--official-browse-budget", type=float, default=60.0,
                        help="the official plugin's level-0 browse stops before a step expected to end past this (s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (the report shows medians)")
    parser.add_argument("--no-browse", action="store_true", help="skip the browse actions (quicker look)")
    parser.add_argument("--ours-level0", choices=["pin", "multiscale"], default="pin",
                        help="how this plugin's user gets full resolution: pin Level 0 in the widget "
                             "(default), or stay multiscale and zoom in until napari shows level 0")
    parser.add_argument("--ts026-from", default=None,
                        help="smoke tests only: where TS_026 is absent, run its steps on this run "
                             "of the portal's facts (e.g. first_run_of_largest)")
    parser.add_argument("--skip-ndjson", action="store_true")
    parser.add_argument("--skip-floor", action="store_true", help="skip the napari-alone run")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("DISPLAY"):
        raise SystemExit("no DISPLAY: run through bench/run.sh (xvfb-run)")
    sizes = [s for s in args.sizes.split(",") if s]
    links = [parse_link(x) for x in args.links.split(",") if x]
    plugins = [p for p in args.plugins.split(",") if p]

    info = machine()
    info["command"] = "bash bench/run.sh" + ("" if len(sys.argv) < 2 else " " + shlex.join(sys.argv[1:]))
    info["plan"] = {"sizes": sizes, "links": links, "plugins": plugins, "repeat": args.repeat,
                    "browse": not args.no_browse, "official_browse_budget_s": args.official_browse_budget,
                    "ours_level0": args.ours_level0}
    (RESULTS / "machine.json").write_text(json.dumps(info, indent=1))
    for size in sizes:
        for link in links:
            for plugin in plugins:
                for old in RESULTS.glob(f"{plugin}-{size}-{link['name']}-r*"):
                    old.unlink()  # a configuration's results all come from this run
    for size in sizes:
        proc, ready, portal_json = start_portal(size)
        try:
            if size == sizes[0] and not args.skip_floor:
                run_driver("napari", size, parse_link("loopback"), portal_json, args)
            # repetitions interleave the configurations, so slow spells of a busy machine
            # spread over all of them instead of hitting one
            for rep in range(1, args.repeat + 1):
                for link in links:
                    for plugin in plugins:
                        run_driver(plugin, size, link, portal_json, args, rep)
        finally:
            stop_portal(proc)
    if not args.skip_ndjson:
        run_ndjson()
    if not args.no_report:
        subprocess.run([sys.executable, str(HERE / "report.py")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
