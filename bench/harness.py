"""Runs every benchmark and writes bench/results/*.json, then docs/benchmarks.md.

    python bench/harness.py [--sizes small,large] [--latencies 0,100] [--plugins ours,official]
                            [--listing-timeout 300] [--skip-ndjson] [--no-report]

For each size: one demo portal process (bench/portal_server.py), then for each latency and
plugin one fresh napari process (bench/drive.py) with a hard timeout. Then the ndjson
benchmark (bench/bench_ndjson.py) and the report (bench/report.py). Must run with a display
(bench/run.sh wraps it in xvfb-run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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
        f"{ready['facts']['runs']} runs")
    return proc, ready, path


def stop_portal(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()  # the server stops when its stdin closes
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_driver(plugin: str, size: str, latency: float, portal_json: Path, args, rep: int = 1) -> dict:
    out = RESULTS / f"{plugin}-{size}-{int(latency)}ms-r{rep}.json"
    if out.exists():
        out.unlink()
    cmd = [
        sys.executable, str(HERE / "drive.py"), "--plugin", plugin, "--portal", str(portal_json),
        "--latency-ms", str(latency), "--out", str(out),
        "--listing-timeout", str(args.listing_timeout), "--action-timeout", str(args.action_timeout),
    ]
    # Generous bound: listing cap + every other action's cap; the driver enforces the real ones.
    hard = args.listing_timeout * 2 + args.action_timeout * 8 + 120
    log(f"{plugin} on {size} at {latency:g} ms, repetition {rep} …")
    t0 = time.monotonic()
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # imports should cost what they cost a user
    try:
        proc = subprocess.run(cmd, timeout=hard, env=env, capture_output=True, text=True)
        stderr = proc.stderr
    except subprocess.TimeoutExpired as exc:
        stderr = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        log(f"  killed after {hard:.0f} s")
    out.with_suffix(".log").write_text(stderr or "")
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
    parser.add_argument("--latencies", default="0,100")
    parser.add_argument("--plugins", default="ours,official")
    parser.add_argument("--listing-timeout", type=float, default=300.0)
    parser.add_argument("--action-timeout", type=float, default=180.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (the report shows medians)")
    parser.add_argument("--skip-ndjson", action="store_true")
    parser.add_argument("--skip-floor", action="store_true", help="skip the napari-alone run")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("DISPLAY"):
        raise SystemExit("no DISPLAY: run through bench/run.sh (xvfb-run)")

    (RESULTS / "machine.json").write_text(json.dumps(machine(), indent=1))
    for size in args.sizes.split(","):
        proc, ready, portal_json = start_portal(size)
        try:
            if size == args.sizes.split(",")[0] and not args.skip_floor:
                run_driver("napari", size, 0.0, portal_json, args)
            for latency in (float(x) for x in args.latencies.split(",")):
                for plugin in args.plugins.split(","):
                    for old in RESULTS.glob(f"{plugin}-{size}-{int(latency)}ms-r*"):
                        old.unlink()  # a configuration's results all come from this run
            # repetitions interleave the configurations, so slow spells of a busy machine
            # spread over all of them instead of hitting one
            for rep in range(1, args.repeat + 1):
                for latency in (float(x) for x in args.latencies.split(",")):
                    for plugin in args.plugins.split(","):
                        run_driver(plugin, size, latency, portal_json, args, rep)
        finally:
            stop_portal(proc)
    if not args.skip_ndjson:
        run_ndjson()
    if not args.no_report:
        subprocess.run([sys.executable, str(HERE / "report.py")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
