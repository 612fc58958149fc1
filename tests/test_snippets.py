""""Copy as…" snippets and portal links: the Python snippet runs with the official client
against the demo portal and writes the same bytes as this plugin's downloader; every S3 key
the AWS CLI snippet names exists at the demo S3 server; cURL lines fetch the right bytes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import fsspec
import pytest
import urllib3

from napari_cryoet_portal import cli
from napari_cryoet_portal.data.storage import storage_options
from napari_cryoet_portal.demo.content import BUCKET
from napari_cryoet_portal.download import (
    ANNOTATIONS_PATTERN,
    AWS_CLI_NOTE,
    DEFAULT_WEB_URL,
    WEB_URL_ENV,
    aws_cli_snippet,
    curl_snippet,
    download,
    list_selection,
    neuroglancer_url,
    portal_links,
    python_snippet,
    select,
    selection_links,
)



def table(portal, name: str) -> list[dict]:
    return portal.tables[name]


def tree(dest: Path) -> dict[str, bytes]:
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}


def tomogram_row(portal) -> dict:
    rows = [t for t in table(portal, "Tomogram") if t["s3OmezarrDir"]]
    return max(rows, key=lambda t: t["fileSizeOmezarr"] or 0)


def annotation_with_zarr(portal) -> int:
    shapes = {s["id"]: s["annotationId"] for s in table(portal, "AnnotationShape")}
    return min(shapes[f["annotationShapeId"]] for f in table(portal, "AnnotationFile") if f["format"] == "zarr")


def ndjson_file(portal) -> dict:
    return next(f for f in table(portal, "AnnotationFile") if f["format"] == "ndjson" and f["fileSize"])


def smallest_dataset(portal) -> dict:
    return min(table(portal, "Dataset"), key=lambda d: d["fileSize"] or 0)


def selections(client, portal):
    """One selection of every kind (small ones), with the run whose annotations are few."""
    tomogram = tomogram_row(portal)
    annotation_id = annotation_with_zarr(portal)
    dataset = smallest_dataset(portal)
    run = next(r for r in table(portal, "Run") if r["datasetId"] == dataset["id"])
    return {
        "dataset": select(client, "dataset", dataset["id"]),
        "dataset-annotations": select(client, "dataset", dataset["id"], annotations_only=True),
        "run": select(client, "run", run["id"]),
        "run-annotations": select(client, "run", run["id"], annotations_only=True),
        "tomogram": select(client, "tomogram", tomogram["id"]),
        "annotation": select(client, "annotation", annotation_id),
        "annotation-file": select(client, "annotation-file", ndjson_file(portal)["id"]),
    }


# --- Python with the official client ----------------------------------------------------------


def test_python_snippets_run_with_the_official_client_and_write_our_bytes(portal, client, tmp_path):
    chosen = selections(client, portal)
    script = []
    for name, selection in chosen.items():
        dest = str(tmp_path / "official" / name)
        script.append(python_snippet(selection, dest, api_url=portal.api_url))
    env = {**os.environ, **portal.environment()}
    done = subprocess.run([sys.executable, "-c", "\n".join(script)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    for name, selection in chosen.items():
        ours = download(selection, tmp_path / "ours" / name)
        assert ours.complete, (name, ours.errors)
        official = tree(tmp_path / "official" / name)
        assert official == tree(tmp_path / "ours" / name), name


def test_python_snippet_names_real_classes_and_methods(portal, client):
    import cryoet_data_portal as official

    chosen = selections(client, portal)
    text = python_snippet(chosen["tomogram"], "data")
    assert "client = Client()\n" in text  # the real portal by default
    assert f"Tomogram.get_by_id(client, {chosen['tomogram'].id}).download_omezarr(dest_path=" in text
    for name, method in [
        ("Dataset", "download_everything"),
        ("Run", "download_everything"),
        ("Tomogram", "download_omezarr"),
        ("Tomogram", "download_mrcfile"),
        ("Annotation", "download"),
        ("AnnotationFile", "download"),
    ]:
        assert callable(getattr(getattr(official, name), method))
    assert AWS_CLI_NOTE in python_snippet(chosen["dataset"], "data")


# --- AWS CLI ----------------------------------------------------------------------------------


def aws_commands(text: str) -> list[list[str]]:
    return [shlex.split(line) for line in text.splitlines() if line and not line.startswith("#")]


def test_every_key_the_aws_snippet_names_exists_and_lands_where_we_put_it(portal, client):
    fs = fsspec.filesystem("s3", **storage_options(f"s3://{BUCKET}/"))
    for name, selection in selections(client, portal).items():
        commands = aws_commands(aws_cli_snippet(selection, "DEST"))
        assert len(commands) == len(selection.remotes), name
        for words in commands:
            assert words[:2] == ["aws", "s3"] and "--no-sign-request" in words
            source, target = [w for w in words[3:] if not w.startswith("-")][:2]
            key = source.removeprefix(f"s3://{BUCKET}/")
            assert target == f"DEST/{key}"  # DEST/<bucket key>, as our downloader
            fs.invalidate_cache()
            if words[2] == "sync":
                assert source.endswith("/")
                keys = [k.removeprefix(f"{BUCKET}/") for k in fs.find(source)]
                assert keys, source
                if "--include" in words:
                    assert words[words.index("--exclude") + 1] == "*"
                    pattern = words[words.index("--include") + 1]
                    assert pattern == ANNOTATIONS_PATTERN
                    assert any("/Annotations/" in "/" + k[len(key):] for k in keys)
            else:
                assert words[2] == "cp" and fs.exists(source), source


def test_aws_snippet_text(portal, client):
    chosen = selections(client, portal)
    run = chosen["run-annotations"]
    prefix = run.remotes[0].key
    assert aws_cli_snippet(run, "DEST").splitlines()[1] == (
        f"aws s3 sync --no-sign-request s3://{BUCKET}/{prefix} DEST/{prefix} "
        f"--exclude '*' --include '*/Annotations/*'"
    )
    key = chosen["annotation-file"].remotes[0].key
    assert aws_cli_snippet(chosen["annotation-file"], "my data").splitlines()[1] == (
        f"aws s3 cp --no-sign-request s3://{BUCKET}/{key} 'my data/{key}'"
    )
    assert AWS_CLI_NOTE in aws_cli_snippet(chosen["dataset"], "DEST")


# --- cURL -------------------------------------------------------------------------------------


def test_curl_snippet_one_line_per_file_each_url_serves_that_file(portal, client, tmp_path):
    selection = selections(client, portal)["annotation"]
    listing = list_selection(selection, "DEST")
    lines = aws_commands(curl_snippet(listing, "DEST"))
    assert len(lines) == len(listing.tasks) > 2
    root = portal.content_dir / "bucket"
    for words in lines:
        assert words[0] == "curl" and "--create-dirs" in words and "--fail" in words
        target, url = words[words.index("-o") + 1], words[-1]
        key = target.removeprefix("DEST/")
        assert url == portal.files_url + key
        response = urllib3.request("GET", url)
        assert response.status == 200 and response.data == (root / key).read_bytes()


# --- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["aws", "curl", "python", "links"])
def test_cli_prints_snippets_without_downloading(portal, tmp_path, capsys, kind):
    f = ndjson_file(portal)
    code = cli.main(["download", "annotation-file", str(f["id"]), "--to", str(tmp_path),
                     "--api", portal.api_url, "--snippet", kind])
    out = capsys.readouterr().out
    assert code == 0 and out
    assert list(tmp_path.iterdir()) == []
    if kind == "links":
        assert out.startswith(f"dataset: {DEFAULT_WEB_URL}/datasets/")


# --- links ------------------------------------------------------------------------------------


def test_portal_links_dataset_and_run_pages(monkeypatch):
    monkeypatch.delenv(WEB_URL_ENV, raising=False)
    links = portal_links(dataset_id=10000, run_id=123)
    assert links.dataset == "https://cryoetdataportal.czscience.com/datasets/10000"
    assert links.run == "https://cryoetdataportal.czscience.com/runs/123"
    assert links.neuroglancer is None
    monkeypatch.setenv(WEB_URL_ENV, "http://portal.example/")
    assert portal_links(run_id=5).run == "http://portal.example/runs/5"


def test_neuroglancer_link_encodes_the_tomograms_config_as_the_portal_does(portal, client):
    rows = [t for t in table(portal, "Tomogram") if t.get("neuroglancerConfig")]
    if not rows:
        pytest.skip("this demo content has no neuroglancerConfig")
    row = rows[0]
    selection = select(client, "tomogram", row["id"])

    links = selection_links(selection, web_url="https://web.example")

    assert links.run == f"https://web.example/runs/{row['runId']}"
    base, _, state = links.neuroglancer.partition("#!")
    assert base == f"https://web.example/view/runs/{row['runId']}"
    assert json.loads(unquote(state)) == json.loads(row["neuroglancerConfig"])
    assert not set(state) & set(' "{}[]:,/')  # encodeURIComponent escapes these


def test_neuroglancer_url_is_encode_uri_component():
    assert neuroglancer_url(7, '{"a": [1, "b/c"]}', "https://x") == (
        "https://x/view/runs/7#!%7B%22a%22%3A%20%5B1%2C%20%22b%2Fc%22%5D%7D"
    )
