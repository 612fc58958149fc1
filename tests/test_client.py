"""The core client against the demo portal over HTTP: answers equal what the stand-in holds,
and every call costs the requests it promises (counted at the server)."""

from __future__ import annotations

from collections import Counter

import pytest

from napari_cryoet_portal.portal import (
    PortalClient,
    PortalConnectionError,
    PortalGraphQLError,
    PortalHTTPError,
)


def rows(portal, table):
    return portal.tables[table]


def test_dataset_pages_one_request_each(portal, client):
    datasets = rows(portal, "Dataset")
    run_counts = Counter(r["datasetId"] for r in rows(portal, "Run"))
    page = client.datasets(offset=0, limit=2)
    assert len(portal.graphql.requests) == 1
    assert page.total == len(datasets)
    assert len(page.items) == min(2, len(datasets))
    everything = client.all_datasets(page_size=2)
    pages = -(-len(datasets) // 2)
    assert len(portal.graphql.requests) == 1 + pages
    assert sorted(d.id for d in everything) == sorted(d["id"] for d in datasets)
    by_id = {d["id"]: d for d in datasets}
    for d in everything:
        assert d.title == by_id[d.id]["title"]
        assert d.organism_name == by_id[d.id].get("organismName")
        assert d.run_count == run_counts[d.id]
        assert d.thumbnail_url == by_id[d.id].get("keyPhotoThumbnailUrl")
    # newest release first, ties by id descending
    keys = [(d.release_date, d.id) for d in everything]
    assert keys == sorted(keys, reverse=True)


def test_runs_of_every_dataset_paged_past_the_connection_cap(portal, client):
    runs_by_dataset: dict[int, list[dict]] = {}
    for r in rows(portal, "Run"):
        runs_by_dataset.setdefault(r["datasetId"], []).append(r)
    biggest = max(runs_by_dataset, key=lambda k: len(runs_by_dataset[k]))
    assert len(runs_by_dataset[biggest]) > 100, "the small demo must exceed the 100-edge cap"
    tomo_counts = Counter(t["runId"] for t in rows(portal, "Tomogram"))
    anno_counts = Counter(a["runId"] for a in rows(portal, "Annotation"))
    for dataset_id, expected in runs_by_dataset.items():
        portal.graphql.reset_log()
        got = client.all_runs(dataset_id, page_size=60)
        assert len(portal.graphql.requests) == max(1, -(-len(expected) // 60))
        assert sorted(r.id for r in got) == sorted(r["id"] for r in expected)
        assert [r.name for r in got] == sorted(r.name for r in got)
        for r in got:
            assert r.dataset_id == dataset_id
            assert r.tomogram_count == tomo_counts[r.id]
            assert r.annotation_count == anno_counts[r.id]


def test_run_detail_is_one_request_and_complete(portal, client):
    shapes = {s["id"]: s for s in rows(portal, "AnnotationShape")}
    annotations = {a["id"]: a for a in rows(portal, "Annotation")}
    for run in rows(portal, "Run")[:12]:
        portal.graphql.reset_log()
        detail = client.run_detail(run["id"])
        assert len(portal.graphql.requests) == 1
        assert detail.run.name == run["name"]
        assert sorted(t.id for t in detail.tomograms) == sorted(
            t["id"] for t in rows(portal, "Tomogram") if t["runId"] == run["id"]
        )
        assert sorted(v.id for v in detail.voxel_spacings) == sorted(
            v["id"] for v in rows(portal, "TomogramVoxelSpacing") if v["runId"] == run["id"]
        )
        expected_files = {
            f["id"]: f
            for f in rows(portal, "AnnotationFile")
            if annotations[shapes[f["annotationShapeId"]]["annotationId"]]["runId"] == run["id"]
        }
        files = detail.annotation_files()
        assert sorted(f.id for f in files) == sorted(expected_files)
        for f in files:
            row = expected_files[f.id]
            assert f.s3_path == row["s3Path"]
            assert f.voxel_spacing_id == row["tomogramVoxelSpacingId"]
            assert f.alignment_id == row["alignmentId"]
            assert f.shape_type == shapes[row["annotationShapeId"]]["shapeType"]
        for t in detail.tomograms:
            row = next(r for r in rows(portal, "Tomogram") if r["id"] == t.id)
            assert t.size_xyz == (row["sizeX"], row["sizeY"], row["sizeZ"])
            assert t.s3_omezarr_dir == row["s3OmezarrDir"]
            assert len(t.level_dimensions_xyz) == 3


def test_default_tomogram_and_frame_rule(portal, client):
    """The showcase run has several tomograms; the default is the visualization default, and
    annotation files belong to a tomogram by voxel spacing id AND alignment id."""
    run_id = max(
        Counter(t["runId"] for t in rows(portal, "Tomogram")).items(), key=lambda kv: kv[1]
    )[0]
    detail = client.run_detail(run_id)
    assert len({t.voxel_spacing for t in detail.tomograms}) >= 2
    default = detail.default_tomogram()
    assert default is not None and default.is_visualization_default
    for t in detail.tomograms:
        for f in detail.files_for(t):
            assert (f.voxel_spacing_id, f.alignment_id) == (t.voxel_spacing_id, t.alignment_id)
    in_frame = {f.id for f in detail.files_for(default)}
    assert in_frame and in_frame != {f.id for f in detail.annotation_files()}


@pytest.mark.parametrize(
    "column, pick",
    [
        ("title", lambda p: p.tables["Dataset"][0]["title"].split()[0]),
        ("organism", lambda p: next(d["organismName"] for d in p.tables["Dataset"] if d.get("organismName"))),
        ("object", lambda p: p.tables["Annotation"][0]["objectName"]),
        ("run name", lambda p: p.tables["Run"][-1]["name"]),
        # LIKE wildcards in user text are literal: "_" matches only a real underscore
        ("literal underscore", lambda p: "_"),
    ],
)
def test_search_one_request_matches_server_side_filtering(portal, client, column, pick):
    text = pick(portal)
    found = client.search_datasets(text.upper())
    assert len(portal.graphql.requests) == 1
    needle = text.lower()
    runs = rows(portal, "Run")
    annotations = rows(portal, "Annotation")
    objects = rows(portal, "IdentifiedObject")
    expected = set()
    for d in rows(portal, "Dataset"):
        run_ids = {r["id"] for r in runs if r["datasetId"] == d["id"]}
        if (
            needle in d["title"].lower()
            or needle in (d.get("description") or "").lower()
            or needle in (d.get("organismName") or "").lower()
            or any(needle in r["name"].lower() for r in runs if r["id"] in run_ids)
            or any(needle in a["objectName"].lower() for a in annotations if a["runId"] in run_ids)
            or any(needle in o["objectName"].lower() for o in objects if o["runId"] in run_ids)
        ):
            expected.add(d["id"])
    assert {d.id for d in found} == expected
    assert expected


def test_search_by_ids(portal, client):
    run = rows(portal, "Run")[0]
    assert {d.id for d in client.search_datasets(str(run["datasetId"]))} >= {run["datasetId"]}
    assert run["datasetId"] in {d.id for d in client.search_datasets(str(run["id"]))}
    tomogram = rows(portal, "Tomogram")[0]
    owner = next(r["datasetId"] for r in rows(portal, "Run") if r["id"] == tomogram["runId"])
    assert owner in {d.id for d in client.search_datasets(str(tomogram["id"]))}


def test_search_treats_percent_literally(portal, client):
    """Every dataset would match an unescaped "%"; the escaped one matches only real percents."""
    found = {d.id for d in client.search_datasets("%")}
    assert found < {d["id"] for d in portal.tables["Dataset"]}
    for d in portal.tables["Dataset"]:
        if d["id"] in found:
            assert "%" in d["title"] + (d.get("description") or "") + (d.get("organismName") or "")


@pytest.mark.parametrize("kind, table", [("dataset", "Dataset"), ("run", "Run"), ("tomogram", "Tomogram"), ("annotation", "Annotation")])
def test_metadata_by_id(portal, client, kind, table):
    row = rows(portal, table)[0]
    meta = client.metadata(kind, row["id"])
    assert len(portal.graphql.requests) == 1
    assert meta["id"] == row["id"]
    for key, value in meta.items():
        if key in row and not isinstance(value, (dict, list)):
            assert value == row[key], key


def test_unknown_ids_raise_lookup_error(client):
    with pytest.raises(LookupError):
        client.run_detail(987654321)
    with pytest.raises(LookupError):
        client.metadata("dataset", 987654321)


def test_graphql_errors_are_typed(portal, client):
    with pytest.raises(PortalGraphQLError, match="offset without limit"):
        client.transport.execute("{ datasets(limitOffset: {offset: 3}) { id } }")


def test_retries_5xx_then_succeeds(portal):
    with PortalClient(portal.api_url, backoff=0.01) as client:
        portal.graphql.fail_next(2, status=503)
        page = client.datasets(limit=1)
        assert page.total == len(rows(portal, "Dataset"))
        assert len(portal.graphql.requests) == 3


def test_gives_up_after_bounded_retries(portal):
    with PortalClient(portal.api_url, retries=2, backoff=0.01) as client:
        portal.graphql.fail_next(10, status=502)
        try:
            with pytest.raises(PortalHTTPError) as info:
                client.datasets(limit=1)
            assert info.value.status == 502
            assert len(portal.graphql.requests) == 3
        finally:
            portal.graphql.fail_next(0)


def test_client_errors_are_not_retried(portal):
    with PortalClient(portal.api_url.replace("/graphql", "/nowhere"), backoff=0.01) as client:
        with pytest.raises(PortalHTTPError) as info:
            client.datasets(limit=1)
        assert info.value.status == 404


def test_unreachable_server_is_a_connection_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with PortalClient(f"http://127.0.0.1:{port}/graphql", retries=1, backoff=0.01) as client:
        with pytest.raises(PortalConnectionError, match="cannot reach .*: Connection refused$"):
            client.datasets()


def test_env_var_overrides_default_url(monkeypatch):
    monkeypatch.setenv("CRYOET_PORTAL_API_URL", "http://127.0.0.1:9/graphql")
    assert PortalClient().url == "http://127.0.0.1:9/graphql"
    monkeypatch.delenv("CRYOET_PORTAL_API_URL")
    assert PortalClient().url == "https://graphql.cryoetdataportal.czscience.com/graphql"
    assert PortalClient("http://x/graphql").url == "http://x/graphql"


def test_connections_are_reused(portal, client):
    for _ in range(5):
        client.datasets(limit=1)
    # urllib3 keeps one pooled connection alive to the server across requests
    pool = next(iter(client.transport._pool.pools._container.values()))
    assert pool.num_connections == 1
