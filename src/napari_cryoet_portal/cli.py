"""``napari-cryoet-portal``: the demo portal and a terminal view of the portal.

    napari-cryoet-portal serve-demo [--size small|large]   # prints export lines, runs until ^C
    napari-cryoet-portal ls [DATASET_ID] [--search TEXT] [--api URL] [--json]
    napari-cryoet-portal demo [--size small|large] [--screenshot PATH]
    napari-cryoet-portal download {dataset,run,tomogram,annotation,annotation-file} ID --to DIR
        [--format zarr|mrc] [--annotations-only] [--api URL] [--jobs N] [--snippet aws|curl|python|links]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import signal
import sys
import threading
from dataclasses import asdict
from typing import Any, Sequence

from .portal import PortalClient, PortalError, default_api_url

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except PortalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except LookupError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-cryoet-portal", description="Browse the CryoET Data Portal."
    )
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve-demo", help="run the demo portal on 127.0.0.1 until interrupted")
    serve.add_argument("--size", choices=["small", "large"], default="small")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--api-port", type=int, default=0)
    serve.add_argument("--s3-port", type=int, default=0)
    serve.add_argument("--files-port", type=int, default=0)
    serve.add_argument(
        "--latency-ms", type=float, default=0.0, help="added delay per GraphQL request"
    )
    serve.add_argument(
        "--link-mbps",
        type=float,
        default=None,
        help="bandwidth of the S3 and file servers, shared by all connections (default: unlimited)",
    )
    serve.add_argument(
        "--link-latency-ms",
        type=float,
        default=0.0,
        help="added delay per S3 / file request, before its first byte",
    )
    serve.set_defaults(func=_serve_demo)

    demo = sub.add_parser("demo", help="start the demo portal and napari with the plugin on it")
    demo.add_argument("--size", choices=["small", "large"], default="small")
    demo.add_argument(
        "--screenshot",
        metavar="PATH",
        help="open the showcase run, save a screenshot of the window to PATH and exit",
    )
    demo.set_defaults(func=_demo)

    ls = sub.add_parser("ls", help="list datasets, or the runs of one dataset")
    ls.add_argument("dataset_id", nargs="?", type=int, help="list this dataset's runs")
    ls.add_argument("--search", metavar="TEXT", help="datasets matching TEXT (server-side)")
    ls.add_argument("--api", metavar="URL", help=f"GraphQL endpoint (default: {default_api_url()})")
    ls.add_argument("--json", action="store_true", help="print a JSON list of objects")
    ls.set_defaults(func=_ls)

    _add_download_parser(sub)
    return parser


def _serve_demo(args: argparse.Namespace) -> int:
    from .demo.link import Link
    from .demo.portal import DemoPortal

    print(f"# preparing the {args.size} demo portal…", file=sys.stderr, flush=True)
    try:
        link = Link(args.link_mbps, args.link_latency_ms / 1000.0)
    except ValueError as exc:
        print(f"napari-cryoet-portal: {exc}", file=sys.stderr)
        return 2
    portal = DemoPortal(
        args.size,
        host=args.host,
        api_port=args.api_port,
        s3_port=args.s3_port,
        files_port=args.files_port,
        latency_s=args.latency_ms / 1000.0,
        link=link if link.shaping else None,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with portal:
        portal.wait_ready()
        for key, value in portal.environment().items():
            print(f"export {key}={shlex.quote(value)}", flush=True)
        print(f"# files: {portal.files_url}  (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    with _display():
        from ._qt.demo_app import run_demo

        screenshot = Path(args.screenshot).resolve() if args.screenshot else None
        code = run_demo(size=args.size, screenshot=screenshot)
    if screenshot is not None and code == 0:
        print(f"screenshot saved to {screenshot}")
    return code


class _display:
    """A virtual X display (Xvfb) when there is no screen, so ``demo`` works headless too."""

    def __enter__(self) -> None:
        self._proc: subprocess.Popen | None = None
        if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform != "linux":
            return
        xvfb = shutil.which("Xvfb")
        if xvfb is None:
            raise SystemExit("error: no display and no Xvfb; run scripts/setup.sh or set DISPLAY")
        read, write = os.pipe()
        self._proc = subprocess.Popen(
            [xvfb, "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
            pass_fds=(write,),
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as f:
            number = f.readline().strip()
        os.environ["DISPLAY"] = f":{number}"
        os.environ.pop("QT_QPA_PLATFORM", None)  # offscreen has no GL; xcb on Xvfb has
        print(f"# no display: napari runs on the virtual display :{number} (Xvfb)", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            os.environ.pop("DISPLAY", None)


def _ls(args: argparse.Namespace) -> int:
    with PortalClient(args.api) as client:
        if args.dataset_id is not None:
            rows = [asdict(r) for r in client.all_runs(args.dataset_id)]
            columns = ["id", "name", "tomogram_count", "annotation_count"]
        else:
            found = client.search_datasets(args.search) if args.search else client.all_datasets()
            rows = [_dataset_row(asdict(d)) for d in found]
            columns = ["id", "run_count", "organism", "title"]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    else:
        _print_table(rows, columns)
    return 0


def _dataset_row(d: dict[str, Any]) -> dict[str, Any]:
    d["organism"] = d.pop("organism_name")
    return d


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[("" if r.get(c) is None else str(r[c])) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    print(f"({len(rows)} rows)", file=sys.stderr)


# --- download ---------------------------------------------------------------------------------


def _add_download_parser(sub: Any) -> None:
    from .download import DEFAULT_JOBS, KINDS

    dl = sub.add_parser(
        "download",
        help="download a dataset, run, tomogram or annotation below a folder, as aws s3 sync lays it out",
        description="Download files of the portal to DIR/<bucket key>. Files appear under their "
        "final name only when complete; running the same command again resumes an interrupted "
        "download and skips complete files. Exit status 0 only when everything is complete.",
    )
    dl.add_argument("kind", choices=KINDS)
    dl.add_argument("id", type=int)
    dl.add_argument("--to", metavar="DIR", help="destination folder (required to download)")
    dl.add_argument(
        "--format",
        choices=["zarr", "mrc"],
        help="tomogram: OME-Zarr (default) or MRC; annotations: only files of this format",
    )
    dl.add_argument(
        "--annotations-only", action="store_true", help="dataset or run: only its annotations"
    )
    dl.add_argument("--api", metavar="URL", help=f"GraphQL endpoint (default: {default_api_url()})")
    dl.add_argument(
        "--jobs", type=int, default=DEFAULT_JOBS, metavar="N", help=f"parallel transfers (default {DEFAULT_JOBS})"
    )
    dl.add_argument(
        "--snippet",
        choices=["aws", "curl", "python", "links"],
        help="print how to get the same files with the AWS CLI, cURL or the official Python "
        "client (or the portal's pages), and exit",
    )
    dl.add_argument("--quiet", action="store_true", help="no progress bar")
    dl.set_defaults(func=_download)


def _download(args: argparse.Namespace) -> int:
    from .download import DownloadError, TerminalProgress, download, select

    if args.jobs < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return 2
    if args.to is None and args.snippet is None:
        print("error: --to DIR is required to download (or ask for a --snippet)", file=sys.stderr)
        return 2
    with PortalClient(args.api) as client:
        try:
            selection = select(
                client, args.kind, args.id, format=args.format, annotations_only=args.annotations_only
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        api_url = client.url
    try:
        if args.snippet is not None:
            print(_snippet(selection, args.snippet, args.to or ".", api_url), end="")
            return 0
        bar = TerminalProgress(selection.description, disable=True if args.quiet else None)
        try:
            result = download(selection, args.to, jobs=args.jobs, progress=bar)
        finally:
            bar.close()
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in result.errors:
        print(f"error: {line}", file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    if result.interrupted:
        return 130
    return 0 if result.complete else 1


def _snippet(selection: Any, kind: str, dest: str, api_url: str) -> str:
    from .download import (
        aws_cli_snippet,
        curl_snippet,
        list_selection,
        python_snippet,
        selection_links,
    )

    if kind == "aws":
        return aws_cli_snippet(selection, dest)
    if kind == "curl":
        return curl_snippet(list_selection(selection, dest), dest)
    if kind == "python":
        return python_snippet(selection, dest, api_url=api_url)
    links = selection_links(selection)
    return "".join(
        f"{name}: {url}\n" for name, url in vars(links).items() if url is not None
    )
