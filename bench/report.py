"""bench/results/*.json → docs/benchmarks.md (tables, targets, reading). No measuring here.

    python bench/report.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
OUT = ROOT / "docs" / "benchmarks.md"
SIZES = ("small", "large")
LATENCIES = (0, 100)
STALL_LIMIT_MS = 50.0


# --------------------------------------------------------------------------- loading


def load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


_CACHE: dict[tuple, dict] = {}


def runs(plugin: str, size: str, latency: int) -> list[dict]:
    """Every repetition of one configuration (bench/results/<plugin>-<size>-<lat>ms-r<k>.json)."""
    found = sorted(RESULTS.glob(f"{plugin}-{size}-{latency}ms-r*.json"))
    return [json.loads(p.read_text()) for p in found]


def result(plugin: str, size: str, latency: int) -> dict:
    """The repetitions merged: every number is the median over the repetitions that have it;
    anything else comes from the first. ``marks_range`` keeps each mark's min and max."""
    key = (plugin, size, latency)
    if key not in _CACHE:
        reps = [r for r in runs(plugin, size, latency) if r.get("actions")]
        _CACHE[key] = merge_runs(reps) if reps else {}
    return _CACHE[key]


def merge_runs(reps: list[dict]) -> dict:
    out = dict(reps[0])
    out["repetitions"] = len(reps)
    out["errors"] = [e for r in reps for e in r.get("errors", [])]
    actions = []
    for first in reps[0]["actions"]:
        same = [a for r in reps for a in r["actions"] if a["name"] == first["name"]]
        merged = _merge_values(same)
        merged["marks_range"] = {
            m: [min(v), max(v)]
            for m in first["marks_ms"]
            if (v := [a["marks_ms"][m] for a in same if a["marks_ms"].get(m) is not None])
        }
        merged["timed_out"] = any(a.get("timed_out") for a in same)
        merged["repetitions"] = len(same)
        actions.append(merged)
    out["actions"] = actions
    return out


def _merge_values(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, bool) or first is None:
        return first
    if isinstance(first, (int, float)):
        nums = sorted(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
        if not nums:
            return first
        mid = len(nums) // 2
        return nums[mid] if len(nums) % 2 else (nums[mid - 1] + nums[mid]) / 2
    if isinstance(first, dict):
        keys = list(first)
        for v in values[1:]:
            if isinstance(v, dict):
                keys += [k for k in v if k not in keys]
        return {k: _merge_values([v[k] for v in values if isinstance(v, dict) and k in v]) for k in keys}
    return first


def action(res: dict, name: str) -> dict | None:
    for a in res.get("actions", []):
        if a["name"] == name:
            return a
    return None


def mark(res: dict, act: str, m: str) -> float | None:
    a = action(res, act)
    return None if a is None else a["marks_ms"].get(m)


def field(res: dict, act: str, *path: str) -> Any:
    a = action(res, act)
    for p in path:
        if a is None:
            return None
        a = a.get(p) if isinstance(a, dict) else None
    return a


# --------------------------------------------------------------------------- formatting


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "—"
    if v >= 10000:
        return f"{v / 1000:.0f} s"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def fmt_mark(res: dict, act: str, m: str, value: float | None = None) -> str:
    """A mark's median, with its range over the repetitions when there are several."""
    a = action(res, act)
    v = value if value is not None else mark(res, act, m)
    if v is None or a is None:
        return fmt_ms(v)
    lo_hi = a.get("marks_range", {}).get(m)
    if a.get("repetitions", 1) > 1 and lo_hi and lo_hi[0] != lo_hi[1]:
        return f"{fmt_ms(v)} ({fmt_ms(lo_hi[0])}–{fmt_ms(lo_hi[1])})"
    return fmt_ms(v)


def fmt_n(v: Any) -> str:
    return "—" if v is None else str(v)


def fmt_bytes(v: float | None) -> str:
    if v is None:
        return "—"
    for unit, div in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if v >= div:
            return f"{v / div:.1f} {unit}"
    return f"{v:.0f} B"


def ratio(official: float | None, ours: float | None) -> str:
    if official is None or ours is None:
        return "—"
    if ours <= 0:
        return "∞" if official > 0 else "="
    r = official / ours
    return f"{r:.0f}×" if r >= 10 else f"{r:.1f}×"


def ratio_value(official: float | None, ours: float | None) -> float | None:
    if official is None or ours is None:
        return None
    if ours <= 0:
        return math.inf if official > 0 else 1.0
    return official / ours


# --------------------------------------------------------------------------- physical limits


def chunk_bytes_for_view(content_dir: Path, tables: dict, tomogram_id: int, view: dict | None) -> dict | None:
    """Compressed bytes of the chunks the first view needs (at the level napari shows), and
    of the OME-Zarr metadata. Computed from the bucket on disk; zarr v2, '/' separator."""
    if not view or "level" not in view:
        return None
    tomo = next((t for t in tables.get("Tomogram", []) if t["id"] == tomogram_id), None)
    if tomo is None:
        return None
    key = tomo["s3OmezarrDir"].split("://", 1)[1].split("/", 1)[1]
    root = content_dir / "bucket" / key
    level = view["level"]
    zarray = json.loads((root / str(level) / ".zarray").read_text())
    chunks, shape = zarray["chunks"], zarray["shape"]
    displayed = set(view["displayed"])
    ranges = []
    for axis in range(len(shape)):
        if axis in displayed:
            lo, hi = view["corner_pixels"][0][axis], view["corner_pixels"][1][axis]
            lo, hi = max(0, int(lo)), min(shape[axis] - 1, int(math.ceil(hi)))
        else:
            lo = hi = min(shape[axis] - 1, max(0, int(round(view["point_at_level"][axis]))))
        ranges.append(range(lo // chunks[axis], hi // chunks[axis] + 1))
    total = 0
    count = 0
    import itertools

    for idx in itertools.product(*ranges):
        path = root / str(level) / "/".join(map(str, idx))
        if path.exists():
            total += path.stat().st_size
            count += 1
    meta = sum((root / p).stat().st_size for p in (".zattrs", ".zgroup", f"{level}/.zarray") if (root / p).exists())
    whole_level = sum(p.stat().st_size for p in (root / str(level)).rglob("*") if p.is_file() and p.name != ".zarray")
    return {"level": level, "chunks": count, "chunk_bytes": total, "metadata_bytes": meta,
            "whole_level_bytes": whole_level}


def whole_level_bytes(content_dir: Path, tables: dict, tomogram_id: int, level: int) -> int | None:
    tomo = next((t for t in tables.get("Tomogram", []) if t["id"] == tomogram_id), None)
    if tomo is None:
        return None
    key = tomo["s3OmezarrDir"].split("://", 1)[1].split("/", 1)[1]
    root = content_dir / "bucket" / key / str(level)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != ".zarray")


# --------------------------------------------------------------------------- the document


class Doc:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.lines.append("| " + " | ".join(row) + " |")
        self.lines.append("")


def main() -> int:
    machine = load("machine.json")
    any_result = next((r for r in (result(p, s, l) for p in ("ours", "official") for s in SIZES for l in LATENCIES) if r), {})
    versions = any_result.get("versions", {})
    official_versions = next((r.get("versions", {}) for r in (result("official", s, l) for s in SIZES for l in LATENCIES) if r), {})
    d = Doc()
    d("# Benchmarks: napari-cryoet-portal vs napari-cryoet-data-portal 0.5.0", "")
    d("Generated by `bench/report.py` from `bench/results/*.json`; every number below comes from the run "
      "recorded there. Regenerate everything with one command:", "")
    d("```", "bash bench/run.sh", "```", "")
    d("`bench/run.sh` creates or updates `bench/.venv` (uv, pinned by `constraints.txt` + "
      "`bench/constraints-extra.txt`; the official plugin is installed there only), then runs "
      "`bench/harness.py` under `xvfb-run` and this report. Options pass through, e.g. "
      "`bash bench/run.sh --sizes small --latencies 0`. See `bench/README.md` for what is measured and how.", "")

    # --- machine -------------------------------------------------------------------------
    d("## Machine and versions", "")
    rows = [
        ["CPU", f"{machine.get('cpu', '?')}, {machine.get('cpus', '?')} cores"],
        ["Memory", f"{machine.get('memory_gb', '?')} GB"],
        ["OS", machine.get("platform", "?")],
        ["Display", f"Xvfb, {machine.get('gl_renderer') or 'Mesa llvmpipe (software GL)'}"],
        ["Run", machine.get("date", "?")],
        ["Load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in machine.get("load_average", []))],
    ]
    for name in ("python", "napari", "PyQt6", "PyQt6-Qt6", "vispy", "numpy", "zarr", "dask", "s3fs", "ome-zarr",
                 "napari-cryoet-portal", "napari-cryoet-data-portal", "cryoet-data-portal", "napari-ome-zarr", "gql", "moto"):
        v = versions.get(name) or official_versions.get(name)
        if v:
            rows.append([name, v])
    d.table(["", ""], rows)

    portal_facts = {s: load(f"portal-{s}.json").get("facts", {}) for s in SIZES}
    d("## The demo portal", "")
    d("The portal runs in its own process (`bench/portal_server.py`), as a remote portal would: "
      "GraphQL (the official SDL executed over the demo tables), S3 (moto) and an HTTP file server on "
      "127.0.0.1. Latency is added per GraphQL request by the server (it sleeps before answering); "
      "S3 and HTTP have none.", "")
    rows = []
    for s in SIZES:
        f = portal_facts[s]
        if not f:
            continue
        rows.append([s, str(f["datasets"]), str(f["runs"]), str(f["tomograms"]),
                     f"{f['largest_dataset']['id']} ({f['largest_dataset']['runs']} runs)",
                     f"{f['large_tomogram_run']['run_name']} {'×'.join(map(str, f['large_tomogram_run']['tomogram_size_xyz'][::-1]))} (z×y×x)"])
    d.table(["size", "datasets", "runs", "tomograms", "largest dataset", "largest tomogram"], rows)

    # --- main tables ---------------------------------------------------------------------
    d("## Results", "")
    d("Times are from the user's click to the moment the result is in the widget or on the canvas "
      "(measured on the main thread). *Ratio* = official ÷ ours (higher is better for this plugin). "
      "*Stall* = the longest gap between ticks of a 10 ms main-thread `QTimer`, minus 10 ms.", "")
    for s in SIZES:
        if not any(result(p, s, l) for p in ("ours", "official") for l in LATENCIES):
            continue
        d(f"### {s} portal", "")
        rows = []
        for lat in LATENCIES:
            o, x = result("ours", s, lat), result("official", s, lat)
            if not o and not x:
                continue
            rows += rows_for(s, lat, o, x)
        d.table(["action / metric", "latency", "this plugin", "official 0.5.0", "ratio", "note"], rows)

    # --- memory --------------------------------------------------------------------------
    d("### Memory while the large tomogram is open and browsed", "")
    rows = []
    for lat in LATENCIES:
        o, x = result("ours", "large", lat), result("official", "large", lat)
        if not o and not x:
            continue
        for label, fn in (
            ("RSS before opening", lambda r: field(r, "open_large", "rss_start_mb")),
            ("peak RSS while opening", lambda r: field(r, "open_large", "rss_peak_mb")),
            ("peak RSS while browsing", lambda r: field(r, "browse_large", "rss_peak_mb")),
            ("growth (peak − before)", growth),
        ):
            a, b = fn(o), fn(x)
            rows.append([label, f"{lat} ms", mb(a), mb(b), ratio(b, a) if "growth" in label else "", ""])
        rows.append(["bytes fetched while browsing (S3 + HTTP)", f"{lat} ms",
                     fmt_bytes(traffic(o, "browse_large")), fmt_bytes(traffic(x, "browse_large")), "", ""])
        rows.append(["level shown after zooming in", f"{lat} ms",
                     level_text(field(o, "browse_large", "notes", "last_view")),
                     level_text(field(x, "browse_large", "notes", "last_view")), "", ""])
    if rows:
        d("Browsing = 16 z positions across the volume, then zoom ×4 and 8 more positions, waiting for "
          "every layer to be loaded each time. The official plugin opens at its default \"Low\" "
          "resolution (level 2 read whole into memory), so it has nothing left to fetch while browsing "
          "and shows a 4× coarser image; this plugin streams the multiscale pyramid.", "")
        d.table(["metric", "latency", "this plugin", "official 0.5.0", "ratio", ""], rows)
    else:
        d("No large-portal results.", "")

    # --- floor ---------------------------------------------------------------------------
    floor = next((r for r in (result("napari", s, 0) for s in SIZES) if r), {})
    d("### napari alone: the floor under every \"open\" stall", "")
    if floor:
        d("A fresh viewer, no plugin, adding in-memory layers of the showcase run's sizes "
          "(`bench/drive_floor.py`). Any plugin pays this on the main thread when it adds its layers, "
          "so a stall below these numbers is not possible on this machine (software GL on 2 cores):", "")
        rows = [[a["name"], fmt_ms(a["longest_stall_ms"])] for a in floor["actions"]]
        d.table(["napari action", "longest stall"], rows)
    else:
        d("Not measured in this run.", "")

    # --- ndjson --------------------------------------------------------------------------
    d("## ndjson parsing (1,000,000 points)", "")
    nd = load("ndjson.json")
    if nd and "error" not in nd:
        ndjson_section(d, nd)
    else:
        d(f"Not available in this run: {nd.get('error', 'bench/results/ndjson.json missing')}.", "")

    # --- targets -------------------------------------------------------------------------
    d("## Targets", "")
    d.table(["target", "where", "result", "met?"], targets(nd))

    # --- reading -------------------------------------------------------------------------
    reading = (HERE / "reading.md")
    d("## Reading", "")
    if reading.exists():
        d(reading.read_text().rstrip(), "")
    else:
        d("(bench/reading.md: the hand-written reading of these numbers, not yet written.)", "")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(d.lines).rstrip() + "\n")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


def mb(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f} MB"


def growth(r: dict) -> float | None:
    start = field(r, "open_large", "rss_start_mb")
    peaks = [field(r, a, "rss_peak_mb") for a in ("open_large", "browse_large")]
    peaks = [p for p in peaks if p is not None]
    return None if start is None or not peaks else max(peaks) - start


def traffic(r: dict, act: str) -> float | None:
    a = action(r, act)
    return None if a is None else a["s3_bytes"] + a["http_bytes"]


def level_text(view: dict | None) -> str:
    if not view or "level" not in view:
        return "—"
    shape = view["level_shapes"][view["level"]]
    return f"level {view['level']} ({'×'.join(map(str, shape))})"


def _content(size: str) -> tuple[Path | None, dict]:
    portal = load(f"portal-{size}.json")
    if not portal:
        return None, {}
    cdir = Path(portal["content_dir"])
    try:
        return cdir, json.loads((cdir / "tables.json").read_text())
    except OSError:
        return cdir, {}


def rows_for(size: str, lat: int, o: dict, x: dict) -> list[list[str]]:
    L = f"{lat} ms"
    rows: list[list[str]] = []

    # connect
    ours_vis = mark(o, "connect", "first_visible")
    off_listed = mark(x, "connect", "listed")
    off_first = mark(x, "connect", "first_visible")
    note = ""
    if field(x, "connect", "timed_out"):
        n = field(x, "connect", "notes", "datasets_listed")
        tot = field(x, "connect", "notes", "datasets_total")
        limit = field(x, "connect", "notes", "timeout_s")
        note = f"official timed out: listed {n} of {tot} datasets in {limit:.0f} s"
        if n:
            off_listed = None
            note += f" (≈{limit * tot / n:.0f} s extrapolated)"
    rows.append(["Connect → datasets visible (official: listing finished)", L, fmt_mark(o, "connect", "first_visible"),
                 fmt_mark(x, "connect", "listed") if off_listed is not None else "—",
                 ratio(off_listed, ours_vis), note or f"official: first dataset after {fmt_ms(off_first)}"])
    rows.append(["  GraphQL requests (connect)", L, fmt_n(field(o, "connect", "graphql_requests")),
                 fmt_n(field(x, "connect", "graphql_requests")),
                 ratio(field(x, "connect", "graphql_requests"), field(o, "connect", "graphql_requests")),
                 f"ours: {field(o, 'connect', 'notes', 'datasets_visible') or '?'} datasets shown, "
                 f"{field(o, 'connect', 'notes', 'datasets_total') or '?'} in total"])
    rows.append(["  longest stall (connect)", L, fmt_ms(field(o, "connect", "longest_stall_ms")),
                 fmt_ms(field(x, "connect", "longest_stall_ms")), "", ""])

    # expand
    rows.append(["Expand largest dataset → first runs visible", L, fmt_mark(o, "expand_largest", "first_runs_visible"),
                 fmt_mark(x, "expand_largest", "first_runs_visible"),
                 ratio(mark(x, "expand_largest", "first_runs_visible"), mark(o, "expand_largest", "first_runs_visible")),
                 "official: tomogram items already loaded by its listing" +
                 (" (re-listed by id filter after timeout)" if field(x, "expand_largest", "notes", "relisted_by_id_filter") else "")])
    rows.append(["  GraphQL requests / longest stall", L,
                 f"{fmt_n(field(o, 'expand_largest', 'graphql_requests'))} / {fmt_ms(field(o, 'expand_largest', 'longest_stall_ms'))}",
                 f"{fmt_n(field(x, 'expand_largest', 'graphql_requests'))} / {fmt_ms(field(x, 'expand_largest', 'longest_stall_ms'))}",
                 "", ""])

    cdir, tables = _content(size)
    opens = [("open_first_run", "first run of the largest dataset"), ("open_showcase", "TS_001 (every annotation kind)")]
    if size == "large":
        opens.append(("open_large", "the large tomogram"))
    for act, label in opens:
        if action(o, act) is None and action(x, act) is None:
            continue
        run = field(o, act, "notes", "run") or field(x, act, "notes", "run") or {}
        fo, fx = mark(o, act, "first_image"), mark(x, act, "first_image")
        rows.append([f"Open {label} → first image on canvas", L, fmt_mark(o, act, "first_image"), fmt_mark(x, act, "first_image"), ratio(fx, fo),
                     view_note(o, x, act)])
        rows.append(["  → view sharp (every voxel on screen at the level napari chose)", L, fmt_mark(o, act, "sharp"),
                     fmt_mark(x, act, "sharp"), ratio(mark(x, act, "sharp"), mark(o, act, "sharp")),
                     "ours: the coarse preview replaced by the real voxels; official: its level-2 image (it never loads finer)"])
        bo, bx = field(o, act, "before_first_image") or {}, field(x, act, "before_first_image") or {}
        rows.append(["  GraphQL requests before first image", L, fmt_n(bo.get("graphql_requests")),
                     fmt_n(bx.get("graphql_requests")), "", ""])
        req_o = (bo.get("s3_requests") or 0) + (bo.get("http_requests") or 0) if bo else None
        req_x = (bx.get("s3_requests") or 0) + (bx.get("http_requests") or 0) if bx else None
        by_o = (bo.get("s3_bytes") or 0) + (bo.get("http_bytes") or 0) if bo else None
        by_x = (bx.get("s3_bytes") or 0) + (bx.get("http_bytes") or 0) if bx else None
        rows.append(["  S3/HTTP requests before first image", L, fmt_n(req_o), fmt_n(req_x), ratio(req_x, req_o), ""])
        limit = ""
        if cdir and run.get("tomogram_id"):
            level2 = whole_level_bytes(cdir, tables, run["tomogram_id"], 2)
            if level2 is not None:
                limit = f"the first image of both is level 2, whole: {fmt_bytes(level2)} of chunks"
            need = chunk_bytes_for_view(cdir, tables, run["tomogram_id"], field(o, act, "notes", "first_view"))
            if need:
                limit += (f"; ours' sharp view (level {need['level']}) needs "
                          f"{need['chunks']} chunk(s) = {fmt_bytes(need['chunk_bytes'])}")
        rows.append(["  bytes before first image", L, fmt_bytes(by_o), fmt_bytes(by_x), ratio(by_x, by_o), limit])
        ao, ax = mark(o, act, "all_layers"), mark(x, act, "all_layers")
        rows.append(["  → all annotation layers in", L, fmt_mark(o, act, "all_layers"), fmt_mark(x, act, "all_layers"), ratio(ax, ao),
                     f"layers: ours {layer_count(o, act)}, official {layer_count(x, act)}"])
        rows.append(["  GraphQL requests (whole open)", L, fmt_n(field(o, act, "graphql_requests")),
                     fmt_n(field(x, act, "graphql_requests")),
                     ratio(field(x, act, "graphql_requests"), field(o, act, "graphql_requests")), ""])
        rows.append(["  longest stall (open)", L, fmt_ms(field(o, act, "longest_stall_ms")),
                     fmt_ms(field(x, act, "longest_stall_ms")), "", stall_where(o, act)])
    if size == "large" and (action(o, "browse_large") or action(x, "browse_large")):
        rows.append(["Browse the large tomogram: longest stall", L, fmt_ms(field(o, "browse_large", "longest_stall_ms")),
                     fmt_ms(field(x, "browse_large", "longest_stall_ms")), "", stall_where(o, "browse_large")])
    return rows


def view_note(o: dict, x: dict, act: str) -> str:
    vo, vx = field(o, act, "notes", "first_view"), field(x, act, "notes", "first_view")
    return (f"ours: level 2 upsampled as the preview of {level_text(vo)}; "
            f"official: {level_text(vx)} of its level-2 array")


def layer_count(r: dict, act: str) -> str:
    layers = field(r, act, "notes", "layers")
    return "—" if layers is None else str(len(layers))


def stall_where(r: dict, act: str) -> str:
    stacks = field(r, act, "longest_stall_stacks") or []
    if not stacks:
        return ""
    frames = [f for f in stacks[0]["stack"] if "napari_cryoet_portal" in f]
    where = frames[-1] if frames else stacks[0]["stack"][-1]
    return f"ours' longest: `{where.split(' ')[-1]}` ({where.split(' ')[0].rsplit('/', 1)[-1]})"


def ndjson_section(d: Doc, nd: dict) -> None:
    """bench/bench_ndjson.py's result: one row per parser (median and worst of its runs)."""
    if nd.get("lines"):
        d(f"{nd['lines']:,} orientedPoint lines as the portal writes them ({nd.get('input_mb', 0):.0f} MB), "
          "parsed from memory in a worker thread while another thread measures how long the parser "
          "holds the GIL; each run in a fresh process. Outputs identical bit for bit: "
          f"{'yes' if nd.get('identical') else '**no**'}.", "")
    rows = []
    for row in nd.get("rows", []):
        pps = row.get("points_per_s")
        extra = row.get("peak_extra_mb")
        rows.append([row.get("name", "?"), fmt_ms(row.get("ms")), fmt_ms(row.get("ms_worst")),
                     f"{pps / 1e6:.2f} M" if pps else "—", fmt_ms(row.get("gil_max_ms")),
                     f"+{extra:.0f} MB" if extra is not None else "—", row.get("note", "")])
    if rows:
        d.table(["parser", "time (median)", "worst", "points/s", "longest GIL hold", "peak memory", "note"], rows)
    if nd.get("text"):
        d("```", nd["text"].rstrip(), "```", "")


def targets(nd: dict) -> list[list[str]]:
    out = []
    for size, need in (("small", 10), ("large", 50)):
        for lat in LATENCIES:
            o, x = result("ours", size, lat), result("official", size, lat)
            if not o or not x:
                continue
            vis, listed = mark(o, "connect", "first_visible"), mark(x, "connect", "listed")
            timed_out = field(x, "connect", "timed_out")
            if listed is None and timed_out:
                listed = field(x, "connect", "notes", "timeout_s") * 1000
            r = ratio_value(listed, vis)
            req = field(o, "connect", "graphql_requests")
            ok = r is not None and r >= need and req == 1
            out.append([f"listing ≥{need}× faster, one request per page", f"{size}, {lat} ms",
                        f"{r:.0f}×{' (≥, official timed out)' if timed_out else ''}, {req} request(s)" if r else "—",
                        "yes" if ok else "**no**"])
    for size in SIZES:
        for lat in LATENCIES:
            o, x = result("ours", size, lat), result("official", size, lat)
            if not o or not x:
                continue
            for act in ("open_first_run", "open_showcase", "open_large"):
                if action(o, act) is None:
                    continue
                r = ratio_value(mark(x, act, "first_image"), mark(o, act, "first_image"))
                g = (field(o, act, "before_first_image") or {}).get("graphql_requests")
                ok = r is not None and r >= 3 and g is not None and g <= 2
                out.append(["first image ≥3× faster, ≤2 GraphQL before it", f"{size}, {lat} ms, {act}",
                            f"{r:.1f}×, {g} request(s)" if r is not None else "—", "yes" if ok else "**no**"])
    worst: list[tuple[float, str]] = []
    for size in SIZES:
        for lat in LATENCIES:
            o = result("ours", size, lat)
            for a in o.get("actions", []):
                if a["name"] == "open_widget":
                    continue
                worst.append((a["longest_stall_ms"], f"{a['name']} ({size}, {lat} ms)"))
    if worst:
        over = [w for w in worst if w[0] > STALL_LIMIT_MS]
        worst.sort(reverse=True)
        out.append(["no main-thread stall > 50 ms in any action", "every action of this plugin",
                    f"{len(over)} of {len(worst)} actions over; worst {worst[0][0]:.0f} ms in {worst[0][1]}",
                    "yes" if not over else "**no**"])
    if nd and "error" not in nd:
        for t in nd.get("targets", []):
            out.append([t["target"], t.get("where", "ndjson"), t["result"], "yes" if t["met"] else "**no**"])
    return out


if __name__ == "__main__":
    sys.exit(main())
