"""bench/results/*.json → docs/benchmarks.md (tables, targets, reading). No measuring here.

    python bench/report.py [--out docs/benchmarks.md] [--results bench/results]

Every number is the median over the repetitions of one configuration (plugin, portal size,
link), computed per repetition first (a ratio or a growth is taken within one run, then the
median of those); a range (min–max) follows when there are several repetitions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
OUT = ROOT / "docs" / "benchmarks.md"
SIZES = ("small", "large")
PLUGINS = ("ours", "official")
STALL_LIMIT_MS = 50.0
MB = 2**20

# issue #7
FIRST_IMAGE_RATIO = 3.0
FIRST_BYTES_RATIO = 1.5
OPEN_BYTES_MAX = 15 * MB
PLANE_MAX_MS = 2000.0
PLANE_LINK = "100mbit"
RSS_GROWTH_MAX_MB = 300.0

# --------------------------------------------------------------------------- loading


def load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


MACHINE: dict = {}
PLAN: dict = {}
_RUNS: dict[tuple, list[dict]] = {}


def runs(plugin: str, size: str, link: str) -> list[dict]:
    """Every repetition of one configuration (bench/results/<plugin>-<size>-<link>-r<k>.json)."""
    key = (plugin, size, link)
    if key not in _RUNS:
        found = sorted(RESULTS.glob(f"{plugin}-{size}-{link}-r*.json"))
        _RUNS[key] = [r for r in (json.loads(p.read_text()) for p in found) if r.get("actions")]
    return _RUNS[key]


def links() -> list[dict]:
    """The links of the plan (harness), else those found in the results."""
    if PLAN.get("links"):
        return PLAN["links"]
    seen: dict[str, dict] = {}
    for p in sorted(RESULTS.glob("*-r*.json")):
        try:
            link = json.loads(p.read_text()).get("link")
        except ValueError:
            continue
        if link and link["name"] not in seen:
            seen[link["name"]] = link
    return list(seen.values())


def link_names() -> list[str]:
    return [link["name"] for link in links()]


def action(run: dict, name: str) -> dict | None:
    return next((a for a in run.get("actions", []) if a["name"] == name), None)


def get(run: dict, act: str, *path: str) -> Any:
    a: Any = action(run, act)
    for p in path:
        if not isinstance(a, dict):
            return None
        a = a.get(p)
    return a


def mark(run: dict, act: str, m: str) -> float | None:
    return get(run, act, "marks_ms", m)


class Stat:
    """The median of a value over repetitions, with its range."""

    def __init__(self, values: list[float]) -> None:
        self.values = [v for v in values if v is not None]

    @property
    def ok(self) -> bool:
        return bool(self.values)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def text(self, fmt: Callable[[float | None], str]) -> str:
        if not self.values:
            return "—"
        lo, hi = min(self.values), max(self.values)
        if len(self.values) > 1 and fmt(lo) != fmt(hi):
            return f"{fmt(self.median)} ({fmt(lo)}–{fmt(hi)})"
        return fmt(self.median)


def stat(plugin: str, size: str, link: str, fn: Callable[[dict], float | None]) -> Stat:
    values = []
    for run in runs(plugin, size, link):
        try:
            values.append(fn(run))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            values.append(None)
    return Stat(values)


def first_of(plugin: str, size: str, link: str, fn: Callable[[dict], Any]) -> Any:
    """The first repetition's non-None value (notes, texts)."""
    for run in runs(plugin, size, link):
        try:
            v = fn(run)
        except (KeyError, TypeError, ValueError):
            v = None
        if v is not None:
            return v
    return None


# --------------------------------------------------------------------------- formatting


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "—"
    if v >= 10000:
        return f"{v / 1000:.0f} s"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def fmt_bytes(v: float | None) -> str:
    if v is None:
        return "—"
    for unit, div in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if v >= div:
            return f"{v / div:.1f} {unit}"
    return f"{v:.0f} B"


def fmt_mb(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f} MB"


def fmt_n(v: float | None) -> str:
    return "—" if v is None else f"{v:g}"


def fmt_x(v: float | None) -> str:
    if v is None:
        return "—"
    if v == float("inf"):
        return "∞"
    return f"{v:.0f}×" if v >= 10 else f"{v:.1f}×" if v >= 0.95 else f"{v:.2f}×"


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None:
        return None
    if den <= 0:
        return float("inf") if num > 0 else 1.0
    return num / den


def met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def link_text(link: dict) -> str:
    if not link.get("mbps") and not link.get("latency_ms"):
        return "loopback (no shaping)"
    bw = f"{link['mbps']:g} Mbit/s" if link.get("mbps") else "unlimited bandwidth"
    return f"{bw}, {link.get('latency_ms', 0):g} ms per request"


def link_by_name(name: str) -> dict:
    return next((l for l in links() if l["name"] == name), {"name": name})


# --------------------------------------------------------------------------- derived values


def whole_bytes(run: dict, act: str) -> float | None:
    """S3 + HTTP bytes of an action, until the link was quiet (the action waits for 2 s of
    silence, and the next action starts after it)."""
    return get(run, act, "bytes")


def before(run: dict, act: str, m: str, what: str = "bytes") -> float | None:
    return get(run, act, f"before_{m}", what)


def need(run: dict, act: str, label: str, what: str = "need_bytes") -> float | None:
    n = get(run, act, "notes", "need", label)
    if not isinstance(n, dict) or "error" in n:
        return None
    return n.get(what)


def need_open(run: dict, act: str) -> float | None:
    """What a whole open physically needs: the first view's and the sharp view's blocks (with
    the zarr metadata once), plus the other files as read (annotations, thumbnail)."""
    first = need(run, act, "first")
    if first is None:
        return None
    total = first
    sharp = get(run, act, "notes", "need", "sharp")
    first_n = get(run, act, "notes", "need", "first")
    if isinstance(sharp, dict) and "error" not in sharp:
        same = (sharp.get("level"), sharp.get("z")) == (first_n.get("level"), first_n.get("z"))
        if not same:
            total += sharp["header_bytes"] + sharp["block_bytes"]
    other = (get(run, act, "bytes") or 0) - (get(run, act, "tomogram_bytes") or 0)
    return total + other


def plane_need(run: dict, act: str) -> float | None:
    """A new plane: the chunks' headers and the blocks of the plane (metadata already read)."""
    h, b = need(run, act, "sharp", "header_bytes"), need(run, act, "sharp", "block_bytes")
    return None if h is None or b is None else h + b


def plane_floor_ms(run: dict, act: str, link: dict) -> float | None:
    """The time the bytes need on the link, plus two round trips (header, then blocks)."""
    n = plane_need(run, act)
    if n is None or not link.get("mbps"):
        return None
    return n * 8 / (link["mbps"] * 1e6) * 1000 + 2 * (link.get("latency_ms") or 0)


def rss_growth(run: dict, acts: tuple[str, ...], base_act: str) -> float | None:
    start = get(run, base_act, "rss_start_mb")
    peaks = [get(run, a, "rss_peak_mb") for a in acts]
    peaks = [p for p in peaks if p is not None]
    return None if start is None or not peaks else max(peaks) - start


def steps(run: dict, act: str) -> list[dict]:
    return get(run, act, "notes", "steps") or []


def step_ms(run: dict, act: str, how: str) -> float | None:
    ms = [s["ms"] for s in steps(run, act)]
    if not ms:
        return None
    return statistics.median(ms) if how == "median" else max(ms)


def browse_complete(run: dict, act: str) -> bool:
    positions = get(run, act, "notes", "positions") or []
    return bool(positions) and len(steps(run, act)) == len(positions)


def missing_chunks(run: dict, act: str) -> int:
    """404s for chunk keys of the opened tomogram (a chunk the server lacks reads as fill)."""
    zarr_key = (get(run, act, "notes", "run") or {}).get("zarr_key")
    a = action(run, act)
    if not zarr_key or a is None:
        return 0
    t0, t1 = a["t0"], a["t1"] + 0.5
    log = run.get("request_log", {})
    n = 0
    for r in log.get("s3", []) + log.get("files", []):
        if r["status"] == 404 and t0 <= r["t"] <= t1 and zarr_key in r["path"]:
            tail = r["path"].rsplit(zarr_key, 1)[-1].strip("/").split("/", 1)[-1]
            if tail and all(part.isdigit() for part in tail.replace(".", "/").split("/")):
                n += 1
    return n


def problem_lines() -> list[str]:
    """Runs that did not finish, errors, and actions that failed or timed out."""
    out = []
    for size in SIZES:
        for l in link_names():
            for p in PLUGINS + ("napari",):
                found = sorted(RESULTS.glob(f"{p}-{size}-{l}-r*.json"))
                for path in found:
                    try:
                        r = json.loads(path.read_text())
                    except ValueError:
                        continue
                    where = path.stem
                    for e in r.get("errors", []):
                        out.append(f"`{where}`: {e.strip().splitlines()[0][:200]}")
                    for a in r.get("actions", []):
                        notes = a.get("notes") or {}
                        if notes.get("failed"):
                            out.append(f"`{where}` {a['name']}: failed: {notes['failed'][:200]}")
                        elif a.get("timed_out"):
                            out.append(f"`{where}` {a['name']}: timed out ({notes.get('timeout', '')})")
                expected = PLAN.get("repeat")
                if expected and p in PLAN.get("plugins", []) and size in PLAN.get("sizes", []) \
                        and any(x.get("name") == l for x in PLAN.get("links", [])) and len(found) < expected:
                    out.append(f"`{p}-{size}-{l}`: {len(found)} of {expected} repetitions have a result")
    return out


def missing_chunk_lines(size: str) -> list[str]:
    out = []
    for p in PLUGINS:
        for l in link_names():
            acts: dict[str, int] = {}
            for r in runs(p, size, l):
                for a in r["actions"]:
                    n = missing_chunks(r, a["name"])
                    if n:
                        acts[a["name"]] = max(acts.get(a["name"], 0), n)
            if acts:
                name = "this plugin" if p == "ours" else "official"
                out.append(f"{name} over {l}: " + ", ".join(f"{k} ({v})" for k, v in acts.items()))
    return out


def stand_in(size: str) -> str | None:
    for p in PLUGINS:
        for link in link_names():
            v = first_of(p, size, link, lambda r: (r["facts"].get("ts026_run") or {}).get("stand_in_for"))
            if v:
                name = first_of(p, size, link, lambda r: r["facts"]["ts026_run"]["run_name"])
                return f"run {name} stood in for TS_026 (smoke test: `--ts026-from`)"
    return None


# --------------------------------------------------------------------------- the document


class Doc:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        if not rows:
            self.lines += ["(no results)", ""]
            return
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.lines.append("| " + " | ".join(row) + " |")
        self.lines.append("")


def need_stat(size: str, link: str, fn: Callable[[dict], float | None]) -> Stat:
    """A physical need (the same views in both plugins' runs): from this plugin's runs, else
    the official plugin's."""
    found = stat("ours", size, link, fn)
    return found if found.ok else stat("official", size, link, fn)


def pair(size: str, link: str, fn: Callable[[dict], float | None]) -> tuple[Stat, Stat]:
    return stat("ours", size, link, fn), stat("official", size, link, fn)


def row(label: str, link: str, o: Stat, x: Stat, fmt: Callable, ratio_text: str = "", note: str = "") -> list[str]:
    return [label, link, o.text(fmt), x.text(fmt), ratio_text, note]


def ratio_stat(size: str, link: str, fn: Callable[[dict], float | None], inverse: bool = True) -> Stat:
    """official ÷ ours per repetition pair (repetition k of each), then the median."""
    o, x = runs("ours", size, link), runs("official", size, link)
    values = []
    for ro, rx in zip(o, x):
        try:
            values.append(ratio(fn(rx), fn(ro)) if inverse else ratio(fn(ro), fn(rx)))
        except (KeyError, TypeError):
            values.append(None)
    return Stat(values)


def main() -> int:
    global RESULTS, MACHINE, PLAN
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--results", default=str(RESULTS), help="the folder of the results")
    args = parser.parse_args()
    out = Path(args.out)
    RESULTS = Path(args.results)
    MACHINE = load("machine.json")
    PLAN = MACHINE.get("plan", {})

    any_run = next((r[0] for r in (runs(p, s, l) for p in PLUGINS for s in SIZES for l in link_names()) if r), {})
    versions = dict(any_run.get("versions", {}))
    for s in SIZES:
        for l in link_names():
            for r in runs("official", s, l)[:1]:
                versions = {**r.get("versions", {}), **versions}
    command = MACHINE.get("command", "bash bench/run.sh")
    d = Doc()
    d("# Benchmarks: napari-cryoet-portal vs napari-cryoet-data-portal 0.5.0", "")
    d("Generated by `bench/report.py` from `bench/results/*.json`; every number below comes from the run "
      "recorded there, made by:", "")
    d("```", command, "```", "")
    reps = PLAN.get("repeat")
    if PLAN:
        d(f"Portal sizes: {', '.join(PLAN.get('sizes', []))}; links: "
          f"{'; '.join(l['name'] + ' = ' + link_text(l) for l in PLAN.get('links', []))}; plugins: "
          f"{', '.join(PLAN.get('plugins', []))}; {reps} repetition(s) of each, interleaved; medians, "
          "with the range over the repetitions in brackets.", "")
    d("`bench/run.sh` creates or updates `bench/.venv` (uv, pinned by `constraints.txt` + "
      "`bench/constraints-extra.txt`; the official plugin is installed there only), then runs "
      "`bench/harness.py` under `xvfb-run` and this report. See `bench/README.md` for what is "
      "measured and how; `bash bench/run.sh --help` for the options.", "")

    # --- machine -------------------------------------------------------------------------
    d("## Machine and versions", "")
    rows = [
        ["CPU", f"{MACHINE.get('cpu', '?')}, {MACHINE.get('cpus', '?')} cores"],
        ["Memory", f"{MACHINE.get('memory_gb', '?')} GB"],
        ["OS", MACHINE.get("platform", "?")],
        ["Display", f"Xvfb, {MACHINE.get('gl_renderer') or 'Mesa llvmpipe (software GL)'}"],
        ["Run", MACHINE.get("date", "?")],
        ["Load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in MACHINE.get("load_average", []))],
    ]
    for name in ("python", "napari", "PyQt6", "PyQt6-Qt6", "vispy", "numpy", "zarr", "dask", "s3fs", "ome-zarr",
                 "napari-cryoet-portal", "napari-cryoet-data-portal", "cryoet-data-portal", "napari-ome-zarr", "gql", "moto"):
        if versions.get(name):
            rows.append([name, versions[name]])
    d.table(["", ""], rows)

    # --- portal --------------------------------------------------------------------------
    portal_facts = {s: load(f"portal-{s}.json").get("facts", {}) for s in SIZES}
    d("## The demo portal and the links", "")
    d("The portal runs in its own process (`bench/portal_server.py`), as a remote portal would: "
      "GraphQL (the official SDL executed over the demo tables), S3 (moto) and an HTTP file server on "
      "127.0.0.1. Its S3 and file servers go through one shaped link (`demo.link.Link`): the bandwidth "
      "is shared by every connection of both (one user's line) and each request waits the latency "
      "before its first byte; GraphQL requests wait the same latency. Both plugins start cold: this "
      "plugin's on-disk byte cache is off in the benchmark (`NAPARI_CRYOET_PORTAL_BYTE_CACHE_MB=0`).", "")
    rows = []
    for s in SIZES:
        f = portal_facts[s]
        if not f:
            continue

        def shape(fact: dict | None) -> str:
            if not fact or not fact.get("tomogram_size_xyz"):
                return "—"
            return f"{fact['run_name']} {'×'.join(map(str, fact['tomogram_size_xyz'][::-1]))}"

        rows.append([s, str(f["datasets"]), str(f["runs"]), str(f["tomograms"]),
                     f"{f['largest_dataset']['id']} ({f['largest_dataset']['runs']} runs)",
                     shape(f.get("large_tomogram_run")), shape(f.get("ts026_run"))])
    d.table(["size", "datasets", "runs", "tomograms", "largest dataset", "large tomogram (z×y×x)",
             "portal-sized tomogram (z×y×x)"], rows)
    d.table(["link", "S3 + files", "GraphQL latency"],
            [[l["name"], link_text(l), f"{l.get('latency_ms', 0):g} ms"] for l in links()])

    # --- issue #7 ------------------------------------------------------------------------
    d("## Issue #7: targets on the large portal", "")
    note = stand_in("large")
    if note:
        d(f"**Not TS_026:** {note}.", "")
    d("*Ratio* = official ÷ ours for times and bytes (higher is better for this plugin); ours ÷ need "
      "for the physical limits. *Need* = what the view physically needs, computed by the portal from "
      "the objects it serves: the zarr metadata, and per chunk under the view its blosc header and "
      "block table plus the compressed blocks holding the plane. The first image of both plugins is "
      "the coarsest level's middle plane.", "")
    rows = issue7_rows()
    broken = missing_chunk_lines("large")
    if broken:
        d("**Chunks missing on the portal** (answered 404, read as zeros by the plugin: its numbers for "
          "these actions are not comparable): " + "; ".join(broken) + ".", "")
    d.table(["target", "link", "run", "this plugin", "official 0.5.0", "ratio", "met?"], rows)

    problems = problem_lines()
    if problems:
        d("**Errors in this run** (the numbers of these runs stop where they failed):", "")
        d(*[f"- {line}" for line in problems], "")

    # --- results per size ----------------------------------------------------------------
    d("## Results", "")
    d("Times are from the user's click to the moment the result is in the widget or on the canvas "
      "(measured on the main thread). *First image* = the first frame drawn with the new image in it. "
      "*Sharp* = every voxel on screen at the level napari chose (this plugin's fetchers idle) and drawn. "
      "*Quiet* = the last S3/file request of the open ended (nothing followed for 2 s). "
      "*Stall* = the longest gap between ticks of a 10 ms main-thread `QTimer`, minus 10 ms.", "")
    for s in SIZES:
        if not any(runs(p, s, l) for p in PLUGINS for l in link_names()):
            continue
        d(f"### {s} portal", "")
        rows = []
        for l in link_names():
            if runs("ours", s, l) or runs("official", s, l):
                rows += general_rows(s, l)
        d.table(["action / metric", "link", "this plugin", "official 0.5.0", "ratio", "note"], rows)

    # --- TS_026 --------------------------------------------------------------------------
    d("### The portal-sized tomogram (TS_026, large portal)", "")
    if note:
        d(f"**Not TS_026:** {note}.", "")
    rows = []
    for l in link_names():
        rows += ts026_rows("large", l)
    if rows:
        d("After the open (multiscale, as napari chooses), the user asks for full resolution: this "
          "plugin's Level box → \"Level 0\" (the image layer becomes level 0 alone); the official "
          "plugin's Resolution → \"High\" + Open (it clears the layers and opens the tomogram and its "
          "annotations again, level 0 as a lazy dask array that napari slices on the main thread). "
          "Then a plane no view has needed yet (z = depth/8, another chunk slab than the middle), then "
          f"the browse: 20 z positions across the volume, each until sharp. The official plugin's browse "
          f"stops before a step expected to end after {PLAN.get('official_browse_budget_s', 60):g} s.", "")
        if PLAN.get("ours_level0") == "multiscale":
            d("**This run's plugin stayed multiscale** (`--ours-level0 multiscale`): instead of pinning "
              "Level 0, the user zoomed in until napari showed level 0.", "")
        d.table(["action / metric", "link", "this plugin", "official 0.5.0", "ratio", "note"], rows)
    else:
        d("No TS_026 results (the portal lacks the run, or the large portal was not run).", "")

    # --- memory (TS_LARGE) -----------------------------------------------------------------
    d("### Memory while TS_LARGE is open and browsed", "")
    rows = []
    for l in link_names():
        if not (runs("ours", "large", l) or runs("official", "large", l)):
            continue
        for label, fn in (
            ("RSS before opening", lambda r: get(r, "open_large", "rss_start_mb")),
            ("peak RSS while opening", lambda r: get(r, "open_large", "rss_peak_mb")),
            ("peak RSS while browsing", lambda r: get(r, "browse_large", "rss_peak_mb")),
            ("growth (peak − before)", lambda r: rss_growth(r, ("open_large", "browse_large"), "open_large")),
        ):
            o, x = pair("large", l, fn)
            rows.append(row(label, l, o, x, fmt_mb))
        o, x = pair("large", l, lambda r: whole_bytes(r, "browse_large"))
        rows.append(row("bytes fetched while browsing (S3 + HTTP)", l, o, x, fmt_bytes))
        o, x = pair("large", l, lambda r: get(r, "browse_large", "longest_stall_ms"))
        rows.append(row("longest stall while browsing", l, o, x, fmt_ms, "", stall_where("large", l, "browse_large")))
        rows.append(["level shown after zooming in", l,
                     first_of("ours", "large", l, lambda r: level_text(get(r, "browse_large", "notes", "last_view"))) or "—",
                     first_of("official", "large", l, lambda r: level_text(get(r, "browse_large", "notes", "last_view"))) or "—",
                     "", ""])
    if rows:
        d("Browsing = 16 z positions across the volume, then zoom ×4 and 8 more positions, waiting for "
          "every layer to be loaded (and this plugin's fetches done) each time. The official plugin opens "
          "at its default \"Low\" resolution (level 2 read whole into memory), so it has nothing left to "
          "fetch while browsing and shows a 4× coarser image.", "")
        d.table(["metric", "link", "this plugin", "official 0.5.0", "ratio", "note"], rows)
    else:
        d("No large-portal results.", "")

    # --- floor ---------------------------------------------------------------------------
    floor = next((r[0] for r in (runs("napari", s, "loopback") for s in SIZES) if r), {})
    d("### napari alone: the floor under every \"open\" stall", "")
    if floor:
        d("A fresh viewer, no plugin, adding in-memory layers of the showcase run's sizes "
          "(`bench/drive_floor.py`). Any plugin pays this on the main thread when it adds its layers, "
          "so a stall below these numbers is not possible on this machine (software GL):", "")
        d.table(["napari action", "longest stall"], [[a["name"], fmt_ms(a["longest_stall_ms"])] for a in floor["actions"]])
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
    d("## Earlier targets", "")
    d.table(["target", "where", "result", "met?"], earlier_targets(nd))

    # --- reading -------------------------------------------------------------------------
    reading = HERE / "reading.md"
    d("## Reading", "")
    d(reading.read_text().rstrip() if reading.exists() else "(bench/reading.md: not yet written.)", "")

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(d.lines).rstrip() + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- sections


def issue7_rows() -> list[list[str]]:
    size = "large"
    rows: list[list[str]] = []
    opens = (("open_large", "TS_LARGE"), ("open_ts026", "TS_026"))
    present = [l for l in link_names() if runs("ours", size, l) or runs("official", size, l)]
    # 1. first image
    for l in present:
        for act, label in opens + (("open_first_run", "first run of the largest dataset"), ("open_showcase", "TS_001")):
            o, x = pair(size, l, lambda r: mark(r, act, "first_image"))
            if not o.ok and not x.ok:
                continue
            r = ratio_stat(size, l, lambda run: mark(run, act, "first_image"))
            rows.append([f"1. first image on canvas ≥ {FIRST_IMAGE_RATIO:g}× sooner", l, label, o.text(fmt_ms), x.text(fmt_ms),
                         r.text(fmt_x), met(None if r.median is None else r.median >= FIRST_IMAGE_RATIO)])
    # 2. bytes
    for l in present:
        for act, label in opens:
            o, x = pair(size, l, lambda r: before(r, act, "first_image"))
            if not o.ok and not x.ok:
                continue
            n = need_stat(size, l, lambda r: need(r, act, "first"))
            ro = stat("ours", size, l, lambda r: ratio(before(r, act, "first_image"), need(r, act, "first")))
            rx = stat("official", size, l, lambda r: ratio(before(r, act, "first_image"), need(r, act, "first")))
            rows.append([f"2. bytes before the first image ≤ {FIRST_BYTES_RATIO:g}× what its view needs", l,
                         f"{label} (need {n.text(fmt_bytes)})",
                         f"{o.text(fmt_bytes)} = {ro.text(fmt_x)}", f"{x.text(fmt_bytes)} = {rx.text(fmt_x)}",
                         "", met(None if ro.median is None else ro.median <= FIRST_BYTES_RATIO)])
        for act, label in opens:
            o, x = pair(size, l, lambda r: whole_bytes(r, act))
            if not o.ok and not x.ok:
                continue
            n = stat("ours", size, l, lambda r: need_open(r, act))
            ro = stat("ours", size, l, lambda r: ratio(whole_bytes(r, act), need_open(r, act)))
            target = act == "open_large"  # the portal-sized run of the target (TS_026 reported)
            rows.append([f"2. bytes for the whole open, until the link is quiet, ≤ {fmt_bytes(OPEN_BYTES_MAX)}"
                         + ("" if target else " (reported)"), l,
                         f"{label} (need {n.text(fmt_bytes)}: both views + annotations as read)",
                         f"{o.text(fmt_bytes)} = {ro.text(fmt_x)} of need", x.text(fmt_bytes),
                         ratio_stat(size, l, lambda r: whole_bytes(r, act)).text(fmt_x),
                         met(None if not target or o.median is None else o.median <= OPEN_BYTES_MAX)])
    # 3. sharp level-0 plane
    for l in present:
        link = link_by_name(l)
        o, x = pair(size, l, lambda r: mark(r, "plane_ts026", "sharp"))
        if not has_ts026(size, l):
            continue
        floor = need_stat(size, l, lambda r: plane_floor_ms(r, "plane_ts026", link))
        n = need_stat(size, l, lambda r: plane_need(r, "plane_ts026"))
        applies = l == PLANE_LINK
        rows.append([f"3. sharp level-0 plane of TS_026 ≤ {fmt_ms(PLANE_MAX_MS)} at {PLANE_LINK}" + ("" if applies else " (reported)"),
                     l, f"new z at level 0 (need {n.text(fmt_bytes)}" + (f", floor {floor.text(fmt_ms)})" if floor.ok else ")"),
                     ours_or_why(o, size, l, "plane_ts026", fmt_ms), official_or_na(x, size, l, "plane_ts026", fmt_ms),
                     ratio_stat(size, l, lambda r: mark(r, "plane_ts026", "sharp")).text(fmt_x),
                     met(None if not applies or o.median is None else o.median <= PLANE_MAX_MS)])
        ob, xb = pair(size, l, lambda r: whole_bytes(r, "plane_ts026"))
        rows.append(["3. … its bytes", l, f"need {n.text(fmt_bytes)}",
                     f"{ob.text(fmt_bytes)} = {stat('ours', size, l, lambda r: ratio(whole_bytes(r, 'plane_ts026'), plane_need(r, 'plane_ts026'))).text(fmt_x)}",
                     official_or_na(xb, size, l, "plane_ts026", fmt_bytes), "", ""])
    # 4. memory while browsing
    for l in present:
        fn = lambda r: rss_growth(r, ("browse_ts026",), "open_ts026")  # noqa: E731
        o = stat("ours", size, l, fn)
        x = stat("official", size, l, fn)
        if not has_ts026(size, l):
            continue
        x_text = official_or_na(x, size, l, "browse_ts026", fmt_mb)
        partial = first_of("official", size, l, lambda r: get(r, "browse_ts026", "notes", "stopped"))
        if partial:
            x_text = f"n/a: {partial} (over those: {x_text})"
        rows.append([f"4. peak RSS growth browsing TS_026 at level 0 ≤ {RSS_GROWTH_MAX_MB:g} MB", l,
                     "20 z steps, each until sharp; from before the open",
                     ours_or_why(o, size, l, "browse_ts026", fmt_mb), x_text, "",
                     met(None if o.median is None else o.median <= RSS_GROWTH_MAX_MB)])
        so, sx = pair(size, l, lambda r: get(r, "browse_ts026", "longest_stall_ms"))
        rows.append(["4. … longest main-thread stall while browsing", l, "(napari never waits on bytes)",
                     ours_or_why(so, size, l, "browse_ts026", fmt_ms), official_or_na(sx, size, l, "browse_ts026", fmt_ms), "", met(None if so.median is None else so.median <= STALL_LIMIT_MS)])
    return rows


def has_ts026(size: str, link: str) -> bool:
    return any(action(r, "open_ts026") for p in PLUGINS for r in runs(p, size, link))


def or_why(plugin: str, v: Stat, size: str, link: str, act: str, fmt: Callable) -> str:
    """A plugin's value, or why there is none."""
    if v.ok:
        return v.text(fmt)
    why = first_of(plugin, size, link, lambda r: get(r, act, "notes", "not_available"))
    if why:
        return f"n/a: {why}"
    failed = first_of(plugin, size, link, lambda r: get(r, act, "notes", "failed"))
    if failed:
        return f"failed: {failed}"
    if first_of(plugin, size, link, lambda r: get(r, act, "timed_out") or None):
        return "n/a: timed out"
    if runs(plugin, size, link) and not first_of(plugin, size, link, lambda r: action(r, act)):
        return "n/a: not reached (an earlier step failed or timed out)"
    return "—"


def official_or_na(x: Stat, size: str, link: str, act: str, fmt: Callable) -> str:
    return or_why("official", x, size, link, act, fmt)


def ours_or_why(o: Stat, size: str, link: str, act: str, fmt: Callable) -> str:
    return or_why("ours", o, size, link, act, fmt)


def general_rows(size: str, l: str) -> list[list[str]]:
    rows: list[list[str]] = []
    o_runs, x_runs = runs("ours", size, l), runs("official", size, l)

    # connect
    o = stat("ours", size, l, lambda r: mark(r, "connect", "first_visible"))
    x = stat("official", size, l, lambda r: mark(r, "connect", "listed"))
    note = f"official: first dataset after {stat('official', size, l, lambda r: mark(r, 'connect', 'first_visible')).text(fmt_ms)}"
    if first_of("official", size, l, lambda r: get(r, "connect", "timed_out") or None):
        n = first_of("official", size, l, lambda r: get(r, "connect", "notes", "datasets_listed"))
        tot = first_of("official", size, l, lambda r: get(r, "connect", "notes", "datasets_total"))
        limit = first_of("official", size, l, lambda r: get(r, "connect", "notes", "timeout_s"))
        note = f"official timed out: listed {n} of {tot} datasets in {limit:.0f} s"
    rows.append(row("Connect → datasets visible (official: listing finished)", l, o, x, fmt_ms,
                    ratio_stat(size, l, lambda r: mark(r, "connect", "first_visible") if r.get("plugin") == "ours"
                               else mark(r, "connect", "listed")).text(fmt_x), note))
    o, x = pair(size, l, lambda r: get(r, "connect", "graphql_requests"))
    rows.append(row("  GraphQL requests (connect)", l, o, x, fmt_n, ratio_stat(size, l, lambda r: get(r, "connect", "graphql_requests")).text(fmt_x),
                    f"ours: {first_of('ours', size, l, lambda r: get(r, 'connect', 'notes', 'datasets_visible')) or '?'} datasets shown, "
                    f"{first_of('ours', size, l, lambda r: get(r, 'connect', 'notes', 'datasets_total')) or '?'} in total"))
    o, x = pair(size, l, lambda r: get(r, "connect", "longest_stall_ms"))
    rows.append(row("  longest stall (connect)", l, o, x, fmt_ms))

    # expand
    o, x = pair(size, l, lambda r: mark(r, "expand_largest", "first_runs_visible"))
    rows.append(row("Expand largest dataset → first runs visible", l, o, x, fmt_ms,
                    ratio_stat(size, l, lambda r: mark(r, "expand_largest", "first_runs_visible")).text(fmt_x),
                    "official: tomogram items already loaded by its listing"))
    o, x = pair(size, l, lambda r: get(r, "expand_largest", "graphql_requests"))
    rows.append(row("  GraphQL requests (expand)", l, o, x, fmt_n))

    opens = [("open_first_run", "first run of the largest dataset"), ("open_showcase", "TS_001 (every annotation kind)")]
    if size == "large":
        opens.append(("open_large", "TS_LARGE (256×768×768)"))
    for act, label in opens:
        if not any(action(r, act) for r in o_runs + x_runs):
            continue
        rows += open_rows(size, l, act, label)
    return rows


def open_rows(size: str, l: str, act: str, label: str) -> list[list[str]]:
    rows = []
    ms = lambda m: (lambda r: mark(r, act, m))  # noqa: E731
    o, x = pair(size, l, ms("first_image"))
    rows.append(row(f"Open {label} → first image on canvas", l, o, x, fmt_ms, ratio_stat(size, l, ms("first_image")).text(fmt_x),
                    f"ours: {level_text(first_of('ours', size, l, lambda r: get(r, act, 'notes', 'first_view')), 'preview of ')}; "
                    f"official: {level_text(first_of('official', size, l, lambda r: get(r, act, 'notes', 'first_view')))}"))
    o, x = pair(size, l, lambda r: before(r, act, "first_image"))
    n = need_stat(size, l, lambda r: need(r, act, "first"))
    rows.append(row("  bytes before first image (S3 + HTTP)", l, o, x, fmt_bytes, ratio_stat(size, l, lambda r: before(r, act, "first_image")).text(fmt_x),
                    f"the first view (coarsest level, middle plane) needs {n.text(fmt_bytes)}"))
    o, x = pair(size, l, lambda r: before(r, act, "first_image", "requests"))
    rows.append(row("  S3/HTTP requests before first image", l, o, x, fmt_n))
    o, x = pair(size, l, lambda r: before(r, act, "first_image", "graphql_requests"))
    rows.append(row("  GraphQL requests before first image", l, o, x, fmt_n))
    o, x = pair(size, l, ms("all_layers"))
    rows.append(row("  → all annotation layers in", l, o, x, fmt_ms, ratio_stat(size, l, ms("all_layers")).text(fmt_x),
                    f"layers: ours {layer_count('ours', size, l, act)}, official {layer_count('official', size, l, act)}"))
    o, x = pair(size, l, ms("sharp"))
    rows.append(row("  → sharp", l, o, x, fmt_ms, ratio_stat(size, l, ms("sharp")).text(fmt_x),
                    f"ours: {level_text(first_of('ours', size, l, lambda r: get(r, act, 'notes', 'sharp_view')))}; "
                    f"official: {level_text(first_of('official', size, l, lambda r: get(r, act, 'notes', 'sharp_view')))} (it never loads finer)"))
    o, x = pair(size, l, ms("quiet"))
    rows.append(row("  → link quiet", l, o, x, fmt_ms))
    o, x = pair(size, l, lambda r: whole_bytes(r, act))
    n = stat("ours", size, l, lambda r: need_open(r, act))
    rows.append(row("  bytes for the whole open (S3 + HTTP)", l, o, x, fmt_bytes, ratio_stat(size, l, lambda r: whole_bytes(r, act)).text(fmt_x),
                    f"ours' views + annotations need {n.text(fmt_bytes)}" + chunk_note(size, l, act)))
    o, x = pair(size, l, lambda r: get(r, act, "graphql_requests"))
    rows.append(row("  GraphQL requests (whole open)", l, o, x, fmt_n, ratio_stat(size, l, lambda r: get(r, act, "graphql_requests")).text(fmt_x)))
    o, x = pair(size, l, lambda r: get(r, act, "longest_stall_ms"))
    rows.append(row("  longest stall (open)", l, o, x, fmt_ms, "", stall_where(size, l, act)))
    return rows


def chunk_note(size: str, l: str, act: str) -> str:
    missing = max((missing_chunks(r, act) for p in PLUGINS for r in runs(p, size, l)), default=0)
    return f"; **{missing} chunk request(s) answered 404**" if missing else ""


def ts026_rows(size: str, l: str) -> list[list[str]]:
    o_runs, x_runs = runs("ours", size, l), runs("official", size, l)
    if not any(action(r, "open_ts026") for r in o_runs + x_runs):
        return []
    rows = open_rows(size, l, "open_ts026", "TS_026")
    link = link_by_name(l)
    # full resolution
    act = "level0_ts026"
    o, x = pair(size, l, lambda r: mark(r, act, "image_drawn"))
    rows.append(["Full resolution (ours: Level 0; official: High + Open) → image drawn", l,
                 ours_or_why(o, size, l, act, fmt_ms), official_or_na(x, size, l, act, fmt_ms),
                 ratio_stat(size, l, lambda r: mark(r, act, "image_drawn")).text(fmt_x),
                 "official: everything is opened again"])
    o, x = pair(size, l, lambda r: mark(r, act, "sharp"))
    rows.append(["  → sharp", l, ours_or_why(o, size, l, act, fmt_ms), official_or_na(x, size, l, act, fmt_ms),
                 ratio_stat(size, l, lambda r: mark(r, act, "sharp")).text(fmt_x),
                 f"ours: {level_text(first_of('ours', size, l, lambda r: get(r, act, 'notes', 'sharp_view')))}; "
                 f"official: {level_text(first_of('official', size, l, lambda r: get(r, act, 'notes', 'sharp_view')))}"])
    o, x = pair(size, l, lambda r: whole_bytes(r, act))
    rows.append(row("  bytes (S3 + HTTP)", l, o, x, fmt_bytes, ratio_stat(size, l, lambda r: whole_bytes(r, act)).text(fmt_x),
                    f"the level-0 plane needs {need_stat(size, l, lambda r: need(r, act, 'sharp')).text(fmt_bytes)}" + chunk_note(size, l, act)))
    o, x = pair(size, l, lambda r: get(r, act, "longest_stall_ms"))
    rows.append(row("  longest stall", l, o, x, fmt_ms, "", stall_where(size, l, act)))
    # a new plane
    act = "plane_ts026"
    o, x = pair(size, l, lambda r: mark(r, act, "sharp"))
    floor = need_stat(size, l, lambda r: plane_floor_ms(r, act, link))
    rows.append(["Level 0, a plane not seen yet → sharp", l, ours_or_why(o, size, l, act, fmt_ms), official_or_na(x, size, l, act, fmt_ms),
                 ratio_stat(size, l, lambda r: mark(r, act, "sharp")).text(fmt_x),
                 f"floor (bytes at the link's bandwidth + 2 round trips): {floor.text(fmt_ms)}" if floor.ok else ""])
    o, x = pair(size, l, lambda r: whole_bytes(r, act))
    rows.append(row("  bytes (S3 + HTTP)", l, o, x, fmt_bytes, ratio_stat(size, l, lambda r: whole_bytes(r, act)).text(fmt_x),
                    f"needs {need_stat(size, l, lambda r: plane_need(r, act)).text(fmt_bytes)} "
                    f"(whole chunks: {need_stat(size, l, lambda r: need(r, act, 'sharp', 'whole_chunk_bytes')).text(fmt_bytes)})"
                    + chunk_note(size, l, act)))
    o, x = pair(size, l, lambda r: get(r, act, "longest_stall_ms"))
    rows.append(row("  longest stall", l, o, x, fmt_ms, "", stall_where(size, l, act)))
    # browse
    act = "browse_ts026"
    if not any(action(r, act) for r in o_runs + x_runs):
        return rows
    stopped = first_of("official", size, l, lambda r: get(r, act, "notes", "stopped"))
    x_note = f"official: {stopped}" if stopped else ""
    o, x = pair(size, l, lambda r: len(steps(r, act)))
    rows.append(row("Browse at level 0: steps done", l, o, x, fmt_n, "", x_note))
    o, x = pair(size, l, lambda r: step_ms(r, act, "median"))
    rows.append(row("  a step until sharp: median", l, o, x, fmt_ms, ratio_stat(size, l, lambda r: step_ms(r, act, "median")).text(fmt_x)))
    o, x = pair(size, l, lambda r: step_ms(r, act, "max"))
    rows.append(row("  a step until sharp: slowest", l, o, x, fmt_ms))
    o, x = pair(size, l, lambda r: whole_bytes(r, act))
    rows.append(row("  bytes (S3 + HTTP)", l, o, x, fmt_bytes))
    o, x = pair(size, l, lambda r: rss_growth(r, (act,), "open_ts026"))
    rows.append(row("  peak RSS growth (from before the open)", l, o, x, fmt_mb, "",
                    "official: over the steps done" if stopped else ""))
    o, x = pair(size, l, lambda r: rss_growth(r, (act,), act))
    rows.append(row("  peak RSS growth (browse alone)", l, o, x, fmt_mb))
    o, x = pair(size, l, lambda r: rss_growth(r, ("open_ts026", "level0_ts026", "plane_ts026", act), "open_ts026"))
    rows.append(row("  peak RSS growth (open to end of browse)", l, o, x, fmt_mb))
    o, x = pair(size, l, lambda r: get(r, act, "longest_stall_ms"))
    rows.append(row("  longest stall", l, o, x, fmt_ms, "", stall_where(size, l, act)))
    return rows


def level_text(view: dict | None, prefix: str = "") -> str:
    if not view or "level" not in view:
        return "—"
    shape = view["level_shapes"][view["level"]]
    lv = view.get("pyramid_level")
    which = f"level {lv}" if lv is not None else f"level {view['level']} of its own"
    return f"{prefix}{which} ({'×'.join(map(str, shape))})"


def layer_count(plugin: str, size: str, l: str, act: str) -> str:
    layers = first_of(plugin, size, l, lambda r: get(r, act, "notes", "layers"))
    return "—" if layers is None else str(len(layers))


def stall_where(size: str, l: str, act: str) -> str:
    stacks = first_of("ours", size, l, lambda r: get(r, act, "longest_stall_stacks") or None) or []
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
    for r in nd.get("rows", []):
        pps = r.get("points_per_s")
        extra = r.get("peak_extra_mb")
        rows.append([r.get("name", "?"), fmt_ms(r.get("ms")), fmt_ms(r.get("ms_worst")),
                     f"{pps / 1e6:.2f} M" if pps else "—", fmt_ms(r.get("gil_max_ms")),
                     f"+{extra:.0f} MB" if extra is not None else "—", r.get("note", "")])
    if rows:
        d.table(["parser", "time (median)", "worst", "points/s", "longest GIL hold", "peak memory", "note"], rows)
    if nd.get("text"):
        d("```", nd["text"].rstrip(), "```", "")


def earlier_targets(nd: dict) -> list[list[str]]:
    out = []
    for size, need_x in (("small", 10), ("large", 50)):
        for l in link_names():
            if not runs("ours", size, l) or not runs("official", size, l):
                continue
            r = ratio_stat(size, l, lambda run: mark(run, "connect", "first_visible") if run.get("plugin") == "ours"
                           else (mark(run, "connect", "listed")
                                 or (get(run, "connect", "notes", "timeout_s") or 0) * 1000 or None))
            req = stat("ours", size, l, lambda run: get(run, "connect", "graphql_requests"))
            timed_out = first_of("official", size, l, lambda run: get(run, "connect", "timed_out") or None)
            ok = r.median is not None and r.median >= need_x and req.median == 1
            out.append([f"listing ≥{need_x}× faster, one request per page", f"{size}, {l}",
                        f"{r.text(fmt_x)}{' (≥, official timed out)' if timed_out else ''}, {req.text(fmt_n)} request(s)",
                        met(ok if r.ok else None)])
    worst: list[tuple[float, str]] = []
    for size in SIZES:
        for l in link_names():
            for run in runs("ours", size, l):
                for a in run["actions"]:
                    if a["name"] == "open_widget":
                        continue
                    worst.append((a["longest_stall_ms"], f"{a['name']} ({size}, {l})"))
    if worst:
        over = {w[1] for w in worst if w[0] > STALL_LIMIT_MS}
        total = {w[1] for w in worst}
        worst.sort(reverse=True)
        out.append(["no main-thread stall > 50 ms in any action", "every action of this plugin, every repetition",
                    f"{len(over)} of {len(total)} actions over in some repetition; worst {worst[0][0]:.0f} ms in {worst[0][1]}",
                    met(not over)])
    if nd and "error" not in nd:
        for t in nd.get("targets", []):
            out.append([t["target"], t.get("where", "ndjson"), t["result"], met(t["met"])])
    return out


if __name__ == "__main__":
    sys.exit(main())
