"""Downloads against the demo portal's real S3 server: byte-exact trees laid out as
``aws s3 sync`` lays them out, resume after cancel and after SIGKILL (bytes counted at the
server), faults (truncated object, 404, full disk, refused keys) and the CLI's exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from napari_cryoet_portal import cli
from napari_cryoet_portal.demo.content import BUCKET
from napari_cryoet_portal.download import (
    PART_SUFFIX,
    DownloadError,
    Progress,
    S3Reader,
    download,
    download_target,
    list_selection,
    local_path,
    select,
)

# --- helpers ---------------------------------------------------------------------------------


def bucket_root(portal) -> Path:
    return portal.content_dir / "bucket"


def keys_below(portal, prefix: str, *, annotations_only: bool = False) -> dict[str, bytes]:
    """Every object of the demo bucket below ``prefix``, read from the content on disk."""
    root = bucket_root(portal)
    found = {}
    for path in sorted((root / prefix).rglob("*")):
        if path.is_file():
            key = path.relative_to(root).as_posix()
            if annotations_only and "/Annotations/" not in "/" + key[len(prefix):]:
                continue
            found[key] = path.read_bytes()
    assert found, prefix
    return found


def tree(dest: Path) -> dict[str, bytes]:
    """Every file below ``dest`` by its relative path (``.part`` files included)."""
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}


def assert_tree_is(dest: Path, expected: dict[str, bytes]) -> None:
    got = tree(dest)
    assert sorted(got) == sorted(expected)
    for key, data in expected.items():
        assert got[key] == data, key


def object_gets(portal, prefix: str = "") -> list:
    """GETs of objects (not listings) at the demo S3 server, below ``prefix``."""
    start = f"/{BUCKET}/{prefix}"
    return [r for r in portal.s3.requests if r.method == "GET" and r.path.startswith(start) and r.path != f"/{BUCKET}/"]


def key_of(url: str) -> str:
    return url.split("/", 3)[3]


def table(portal, name: str) -> list[dict]:
    return portal.tables[name]


def tomogram_row(portal) -> dict:
    """The demo's largest small tomogram (several objects, one of a few MB)."""
    rows = [t for t in table(portal, "Tomogram") if t["s3OmezarrDir"]]
    return max(rows, key=lambda t: t["fileSizeOmezarr"] or 0)


def annotation_with_zarr(portal) -> tuple[int, list[dict]]:
    shapes = {s["id"]: s for s in table(portal, "AnnotationShape")}
    by_annotation: dict[int, list[dict]] = {}
    for f in table(portal, "AnnotationFile"):
        by_annotation.setdefault(shapes[f["annotationShapeId"]]["annotationId"], []).append(f)
    for annotation_id, files in sorted(by_annotation.items()):
        if any(f["format"] == "zarr" for f in files):
            return annotation_id, files
    raise AssertionError("the demo has an annotation with a zarr mask")


def ndjson_file(portal) -> dict:
    return next(f for f in table(portal, "AnnotationFile") if f["format"] == "ndjson" and f["fileSize"])


def smallest_dataset(portal) -> dict:
    return min(table(portal, "Dataset"), key=lambda d: d["fileSize"] or 0)


def run_row(portal, run_id: int) -> dict:
    return next(r for r in table(portal, "Run") if r["id"] == run_id)


# --- byte-exact downloads of each kind ------------------------------------------------------


def test_tomogram_omezarr_is_byte_exact_one_get_per_object(portal, client, tmp_path):
    tomogram = tomogram_row(portal)
    prefix = key_of(tomogram["s3OmezarrDir"]) + "/"
    expected = keys_below(portal, prefix)
    seen: list[Progress] = []

    result = download_target(client, "tomogram", tomogram["id"], tmp_path, progress=seen.append)

    assert result.complete, result.errors
    assert_tree_is(tmp_path, expected)
    gets = object_gets(portal, prefix)
    assert sorted(r.path for r in gets) == sorted(f"/{BUCKET}/{k}" for k in expected)
    assert all(r.range is None for r in gets)
    assert result.bytes_fetched == sum(map(len, expected.values())) == sum(r.nbytes for r in gets)
    last = seen[-1]
    assert last.phase == "done"
    assert (last.bytes_done, last.files_done) == (last.bytes_total, last.files_total)
    assert (last.bytes_total, last.files_total) == (result.bytes_fetched, len(expected))
    assert last.eta_s == 0.0


def test_annotation_downloads_every_file_and_its_metadata(portal, client, tmp_path):
    annotation_id, files = annotation_with_zarr(portal)
    annotation = next(a for a in table(portal, "Annotation") if a["id"] == annotation_id)
    expected: dict[str, bytes] = {}
    for f in files:
        if f["format"] == "zarr":
            expected.update(keys_below(portal, key_of(f["s3Path"]) + "/"))
        else:
            key = key_of(f["s3Path"])
            expected[key] = (bucket_root(portal) / key).read_bytes()
    metadata = key_of(annotation["s3MetadataPath"])
    expected[metadata] = (bucket_root(portal) / metadata).read_bytes()

    result = download_target(client, "annotation", annotation_id, tmp_path)

    assert result.complete, result.errors
    assert_tree_is(tmp_path, expected)


def test_annotation_file_is_one_head_and_one_get(portal, client, tmp_path):
    f = ndjson_file(portal)
    key = key_of(f["s3Path"])

    result = download_target(client, "annotation-file", f["id"], tmp_path)

    assert result.complete
    assert_tree_is(tmp_path, {key: (bucket_root(portal) / key).read_bytes()})
    assert [(r.method, r.range) for r in portal.s3.requests] == [("HEAD", None), ("GET", None)]


def test_run_and_its_annotations_only(portal, client, tmp_path):
    tomogram = tomogram_row(portal)
    run = run_row(portal, tomogram["runId"])
    prefix = key_of(run["s3Prefix"])

    whole = download_target(client, "run", run["id"], tmp_path / "all")
    only = download_target(client, "run", run["id"], tmp_path / "annotations", annotations_only=True)

    assert whole.complete and only.complete
    assert_tree_is(tmp_path / "all", keys_below(portal, prefix))
    annotations = keys_below(portal, prefix, annotations_only=True)
    assert_tree_is(tmp_path / "annotations", annotations)
    assert len(annotations) < whole.count("downloaded")


def test_dataset_whole_and_annotations_only(portal, client, tmp_path):
    dataset = smallest_dataset(portal)
    prefix = f"{dataset['id']}/"

    result = download_target(client, "dataset", dataset["id"], tmp_path / "all", jobs=8)
    only = download_target(client, "dataset", dataset["id"], tmp_path / "ann", annotations_only=True)

    assert result.complete and only.complete
    assert_tree_is(tmp_path / "all", keys_below(portal, prefix))
    assert_tree_is(tmp_path / "ann", keys_below(portal, prefix, annotations_only=True))


def test_a_rerun_skips_complete_files_without_fetching(portal, client, tmp_path):
    tomogram = tomogram_row(portal)
    first = download_target(client, "tomogram", tomogram["id"], tmp_path)
    portal.s3.reset_log()

    again = download_target(client, "tomogram", tomogram["id"], tmp_path)

    assert again.complete
    assert again.count("skipped") == first.count("downloaded") and again.bytes_fetched == 0
    assert object_gets(portal, key_of(tomogram["s3OmezarrDir"])) == []


def test_a_part_file_resumes_with_one_ranged_get(portal, client, tmp_path):
    f = ndjson_file(portal)
    key = key_of(f["s3Path"])
    data = (bucket_root(portal) / key).read_bytes()
    part = local_path(tmp_path, key).with_name(Path(key).name + PART_SUFFIX)
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:500])

    result = download_target(client, "annotation-file", f["id"], tmp_path)

    assert result.complete
    assert_tree_is(tmp_path, {key: data})
    (get,) = object_gets(portal)
    assert get.range == "bytes=500-" and get.nbytes == len(data) - 500 == result.bytes_fetched


def test_a_part_older_than_the_object_starts_again(portal, client, tmp_path):
    f = ndjson_file(portal)
    key = key_of(f["s3Path"])
    data = (bucket_root(portal) / key).read_bytes()
    part = local_path(tmp_path, key).with_name(Path(key).name + PART_SUFFIX)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 500)
    os.utime(part, (0, 0))  # written long before the object

    result = download_target(client, "annotation-file", f["id"], tmp_path)

    assert result.complete
    assert_tree_is(tmp_path, {key: data})
    assert [r.range for r in object_gets(portal)] == [None]


# --- cancel and kill --------------------------------------------------------------------------


class CancellingReader(S3Reader):
    """Sets ``cancel`` once the first piece of ``key`` has arrived: mid-file, deterministically."""

    def __init__(self, cancel: threading.Event, key: str) -> None:
        super().__init__()
        self.cancel_event = cancel
        self.key = key

    def open(self, bucket, key, start=0):
        stream = super().open(bucket, key, start)
        if key != self.key:
            return stream
        pieces = stream.pieces

        def cancelling(size):
            for piece in pieces(size):
                yield piece
                self.cancel_event.set()

        stream.pieces = cancelling
        return stream


def test_cancel_leaves_only_complete_files_and_parts_then_resumes(portal, client, tmp_path):
    tomogram = tomogram_row(portal)
    prefix = key_of(tomogram["s3OmezarrDir"]) + "/"
    expected = keys_below(portal, prefix)
    biggest = max(expected, key=lambda k: len(expected[k]))
    assert len(expected[biggest]) > 2 << 20  # several pieces
    selection = select(client, "tomogram", tomogram["id"])
    cancel = threading.Event()

    reader = CancellingReader(cancel, biggest)
    try:
        stopped = download(selection, tmp_path, jobs=1, cancel=cancel, reader=reader)
    finally:
        reader.close()

    assert stopped.cancelled and not stopped.complete
    on_disk = tree(tmp_path)
    parts = {k: v for k, v in on_disk.items() if k.endswith(PART_SUFFIX)}
    assert list(parts) == [biggest + PART_SUFFIX]
    assert 0 < len(parts[biggest + PART_SUFFIX]) < len(expected[biggest])
    for key, data in on_disk.items():  # nothing wrong under a final name
        if not key.endswith(PART_SUFFIX):
            assert data == expected[key]
    kept = sum(map(len, on_disk.values()))
    portal.s3.reset_log()

    resumed = download(selection, tmp_path)

    assert resumed.complete
    assert_tree_is(tmp_path, expected)
    gets = object_gets(portal, prefix)
    assert sum(r.nbytes for r in gets) == resumed.bytes_fetched == sum(map(len, expected.values())) - kept
    assert [r.range for r in gets if r.path.endswith(biggest)] == [f"bytes={len(parts[biggest + PART_SUFFIX])}-"]


@pytest.fixture(scope="module")
def slow_portal(demo_portal, demo_cache):
    """The same content behind an 8 Mbit/s link (the bucket is moto's, shared in-process)."""
    from napari_cryoet_portal.demo.link import Link
    from napari_cryoet_portal.demo.portal import DemoPortal

    slow = DemoPortal("small", cache_root=demo_cache, link=Link(mbps=8))
    slow.start()
    slow.wait_ready()
    yield slow
    slow.stop()


def test_sigkill_mid_file_then_rerun_fetches_only_what_is_missing(portal, slow_portal, tmp_path):
    tomogram = tomogram_row(portal)
    prefix = key_of(tomogram["s3OmezarrDir"]) + "/"
    expected = keys_below(portal, prefix)
    env = {**os.environ, **slow_portal.environment()}
    command = [sys.executable, "-m", "napari_cryoet_portal", "download", "tomogram", str(tomogram["id"]),
               "--to", str(tmp_path), "--jobs", "2", "--quiet"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.stat().st_size >= 256 << 10 for p in tmp_path.rglob("*" + PART_SUFFIX)):
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()

    on_disk = tree(tmp_path)
    parts = {k[: -len(PART_SUFFIX)]: len(v) for k, v in on_disk.items() if k.endswith(PART_SUFFIX)}
    assert parts and any(0 < n < len(expected[k]) for k, n in parts.items())
    for key, data in on_disk.items():  # nothing wrong under a final name
        if not key.endswith(PART_SUFFIX):
            assert data == expected[key], key
    kept = sum(map(len, on_disk.values()))

    rerun = subprocess.run(
        [sys.executable, "-m", "napari_cryoet_portal", "download", "tomogram", str(tomogram["id"]),
         "--to", str(tmp_path), "--api", portal.api_url, "--quiet"],
        env={**os.environ, **portal.environment()}, capture_output=True, text=True, timeout=120,
    )

    assert rerun.returncode == 0, rerun.stderr
    assert_tree_is(tmp_path, expected)
    gets = object_gets(portal, prefix)
    assert sum(r.nbytes for r in gets) == sum(map(len, expected.values())) - kept
    complete_before = {k for k in on_disk if not k.endswith(PART_SUFFIX)}
    assert not any(r.path.removeprefix(f"/{BUCKET}/") in complete_before for r in gets)
    ranges = {r.path.removeprefix(f"/{BUCKET}/"): r.range for r in gets}
    for key, n in parts.items():
        assert ranges[key] == (f"bytes={n}-" if n else None)


def test_ctrl_c_cancels_keeps_parts_and_exits_130(portal, slow_portal, tmp_path):
    tomogram = tomogram_row(portal)
    expected = keys_below(portal, key_of(tomogram["s3OmezarrDir"]) + "/")
    env = {**os.environ, **slow_portal.environment()}
    command = [sys.executable, "-m", "napari_cryoet_portal", "download", "tomogram", str(tomogram["id"]),
               "--to", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.stat().st_size > 0 for p in tmp_path.rglob("*" + PART_SUFFIX)):
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.rstrip().endswith("cancelled: run again to resume") and "Traceback" not in err
    on_disk = tree(tmp_path)
    assert any(k.endswith(PART_SUFFIX) for k in on_disk)
    for key, data in on_disk.items():
        if not key.endswith(PART_SUFFIX):
            assert data == expected[key], key


# --- faults -----------------------------------------------------------------------------------


@pytest.fixture
def restore_objects(portal):
    """Objects changed by a test, put back as they were (in moto and on disk alike)."""
    changed: list[str] = []
    yield changed
    for key in changed:
        portal.s3.put_object(BUCKET, key, (bucket_root(portal) / key).read_bytes())


def test_a_truncated_object_is_reported_nothing_under_its_name(portal, client, tmp_path, restore_objects):
    f = ndjson_file(portal)
    key = key_of(f["s3Path"])
    data = (bucket_root(portal) / key).read_bytes()
    restore_objects.append(key)
    portal.s3.put_object(BUCKET, key, data[: len(data) // 2])

    result = download_target(client, "annotation-file", f["id"], tmp_path)

    assert not result.complete
    assert "size mismatch" in result.errors[0] and str(int(f["fileSize"])) in result.errors[0]
    assert tree(tmp_path) == {}


def test_an_object_that_changes_after_listing_is_reported_nothing_kept(portal, client, tmp_path, restore_objects):
    f = ndjson_file(portal)
    key = key_of(f["s3Path"])
    data = (bucket_root(portal) / key).read_bytes()
    selection = select(client, "annotation-file", f["id"])
    listing = list_selection(selection, tmp_path)
    restore_objects.append(key)
    portal.s3.put_object(BUCKET, key, data + b"{}\n")

    result = download(selection, tmp_path, listing=listing)

    assert not result.complete
    assert result.errors == [
        f"s3://{BUCKET}/{key} changed on the server during the download (now {len(data) + 3} bytes,"
        f" listed {len(data)}); run again"
    ]
    assert tree(tmp_path) == {}


class TruncatingReader(S3Reader):
    """The first body of ``key`` breaks off after ``after`` bytes, as a dropped connection."""

    def __init__(self, key: str, after: int) -> None:
        super().__init__()
        self.key = key
        self.after = after
        self.done = False

    def open(self, bucket, key, start=0):
        stream = super().open(bucket, key, start)
        if key != self.key or self.done:
            return stream
        self.done = True
        pieces = stream.pieces

        def truncated(size):
            yield next(iter(pieces(self.after)))

        stream.pieces = truncated
        return stream


def test_a_body_that_breaks_off_resumes_from_where_it_stopped(portal, client, tmp_path):
    f = ndjson_file(portal)
    key = key_of(f["s3Path"])
    data = (bucket_root(portal) / key).read_bytes()
    selection = select(client, "annotation-file", f["id"])

    reader = TruncatingReader(key, 300)
    try:
        result = download(selection, tmp_path, reader=reader)
    finally:
        reader.close()

    assert result.complete
    assert_tree_is(tmp_path, {key: data})
    assert [r.range for r in object_gets(portal)] == [None, "bytes=300-"]


def test_a_missing_object_is_reported_others_complete(portal, client, tmp_path, restore_objects):
    annotation_id, _files = annotation_with_zarr(portal)
    annotation = next(a for a in table(portal, "Annotation") if a["id"] == annotation_id)
    key = key_of(annotation["s3MetadataPath"])
    restore_objects.append(key)
    portal.s3.delete_object(BUCKET, key)

    result = download_target(client, "annotation", annotation_id, tmp_path)

    assert not result.complete
    assert result.errors == [f"not found on the server: s3://{BUCKET}/{key}"]
    assert not any(k.startswith(key) for k in tree(tmp_path))
    assert result.count("downloaded") == len(tree(tmp_path)) > 0
    assert not any(k.endswith(PART_SUFFIX) for k in tree(tmp_path))


def test_a_full_disk_stops_with_one_line_and_no_final_file(portal, client, tmp_path):
    f = ndjson_file(portal)
    key = key_of(f["s3Path"])
    final = local_path(tmp_path, key)
    final.parent.mkdir(parents=True)
    final.with_name(final.name + PART_SUFFIX).symlink_to("/dev/full")  # every write: ENOSPC

    result = download_target(client, "annotation-file", f["id"], tmp_path)

    assert not result.complete and result.fatal is not None
    assert result.fatal.startswith("no space left on the device while writing ")
    assert "\n" not in result.fatal
    assert not final.exists()


def test_the_cli_says_disk_full_in_one_line(portal, tmp_path, capsys):
    f = ndjson_file(portal)
    final = local_path(tmp_path, key_of(f["s3Path"]))
    final.parent.mkdir(parents=True)
    final.with_name(final.name + PART_SUFFIX).symlink_to("/dev/full")

    code = cli.main(["download", "annotation-file", str(f["id"]), "--to", str(tmp_path), "--api", portal.api_url, "--quiet"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[0].startswith("error: no space left on the device while writing ")
    assert "Traceback" not in err


def test_an_unreachable_s3_endpoint_is_one_clear_error(portal, client, tmp_path):
    selection = select(client, "annotation-file", ndjson_file(portal)["id"])
    reader = S3Reader(endpoint_url="http://127.0.0.1:9", retries=0)
    try:
        with pytest.raises(DownloadError, match=r"^cannot reach the S3 endpoint http://127.0.0.1:9"):
            download(selection, tmp_path, reader=reader)
    finally:
        reader.close()
    assert tree(tmp_path) == {}


def test_a_destination_that_is_a_file_is_one_clear_error(portal, client, tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    f = ndjson_file(portal)
    with pytest.raises(DownloadError, match="not a folder"):
        download_target(client, "annotation-file", f["id"], not_a_folder)

    code = cli.main(["download", "annotation-file", str(f["id"]), "--to", str(not_a_folder), "--api", portal.api_url])

    assert code == 1
    assert capsys.readouterr().err == f"error: not a folder: {not_a_folder}\n"


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/x", "a//b", "a/./b", "C:/x", "a\\..\\x", ""])
def test_keys_that_would_leave_the_destination_are_refused(tmp_path, key):
    with pytest.raises(ValueError, match="outside"):
        local_path(tmp_path, key)


def test_a_listed_key_with_dot_dot_is_refused_nothing_written_outside(portal, client, tmp_path):
    dataset = smallest_dataset(portal)
    evil = f"{dataset['id']}/../../escaped.txt"
    portal.s3.put_object(BUCKET, evil, b"outside")
    dest = tmp_path / "dest"
    try:
        result = download_target(client, "dataset", dataset["id"], dest)
    finally:
        portal.s3.delete_object(BUCKET, evil)

    assert not result.complete
    assert [o.key for o in result.outcomes if o.status == "failed"] == [evil]
    assert "outside" in result.errors[0]
    assert [p for p in tmp_path.rglob("escaped.txt")] == []
    assert result.count("downloaded") == len(keys_below(portal, f"{dataset['id']}/"))


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_exit_zero_when_complete_and_files_in_place(portal, tmp_path, capsys):
    f = ndjson_file(portal)
    key = key_of(f["s3Path"])

    code = cli.main(["download", "annotation-file", str(f["id"]), "--to", str(tmp_path), "--api", portal.api_url])

    assert code == 0
    assert_tree_is(tmp_path, {key: (bucket_root(portal) / key).read_bytes()})
    assert "1 downloaded" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["dataset", "run", "tomogram", "annotation", "annotation-file"])
def test_cli_a_missing_id_is_one_line_and_non_zero(portal, tmp_path, capsys, kind):
    code = cli.main(["download", kind, "999999", "--to", str(tmp_path), "--api", portal.api_url])

    err = capsys.readouterr().err
    assert code != 0
    assert err == f"error: no {kind.replace('-', ' ')} with id 999999\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_an_unreachable_api_is_one_line_and_non_zero(tmp_path, capsys):
    code = cli.main(["download", "run", "1", "--to", str(tmp_path), "--api", "http://127.0.0.1:9/graphql"])

    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("error: cannot reach http://127.0.0.1:9/graphql") and err.count("\n") == 1


def test_cli_mrc_of_a_tomogram_without_one_is_a_clear_error(portal, tmp_path, capsys):
    tomogram = next(t for t in table(portal, "Tomogram") if not t["s3MrcFile"])

    code = cli.main(["download", "tomogram", str(tomogram["id"]), "--format", "mrc", "--to", str(tmp_path),
                     "--api", portal.api_url])

    assert code == 1
    assert capsys.readouterr().err == f"error: tomogram {tomogram['id']} has no MRC file on the portal (try the OME-Zarr)\n"


def test_options_that_do_not_apply_are_refused(portal, client, tmp_path, capsys):
    tomogram = tomogram_row(portal)
    with pytest.raises(ValueError, match="annotations_only"):
        select(client, "tomogram", tomogram["id"], annotations_only=True)
    code = cli.main(["download", "run", str(tomogram["runId"]), "--format", "mrc", "--to", str(tmp_path),
                     "--api", portal.api_url])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: a format applies to a tomogram or annotations")


def test_listing_names_every_file_with_its_https_url(portal, client, tmp_path):
    tomogram = tomogram_row(portal)
    listing = list_selection(select(client, "tomogram", tomogram["id"]), tmp_path)
    expected = keys_below(portal, key_of(tomogram["s3OmezarrDir"]) + "/")

    assert [t.remote.key for t in listing.tasks] == sorted(expected)
    assert listing.total_bytes == sum(map(len, expected.values()))
    assert all(t.https_url == portal.files_url + t.remote.key for t in listing.tasks)
    assert tree(tmp_path) == {}


def test_terminal_progress_draws_bytes_and_files():
    import io

    from napari_cryoet_portal.download import TerminalProgress

    out = io.StringIO()
    bar = TerminalProgress("tomogram 1", file=out, disable=False)
    for done, files, phase in [(0, 0, "listing"), (0, 0, "downloading"), (3 << 20, 1, "downloading"), (4 << 20, 2, "done")]:
        bar(Progress(phase, done, 4 << 20, files, 2, done, 1.0, 0.0))
    text = out.getvalue()
    assert "tomogram 1" in text and "100%" in text and "2/2 files" in text and "4.00M" in text
