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


def test_default_tomogram_and_alignment_rule(portal, client):
    """The showcase run has several tomograms; the default is the visualization default, and
    annotation files belong to a tomogram by alignment, at any voxel spacing."""
    run_id = max(
        Counter(t["runId"] for t in rows(portal, "Tomogram")).items(), key=lambda kv: kv[1]
    )[0]
    detail = client.run_detail(run_id)
    assert len({t.voxel_spacing for t in detail.tomograms}) >= 2
    choice = detail.default_choice()
    assert choice.tomogram is not None and choice.tomogram.is_visualization_default
    assert choice.reason == "visualization default"
    for t in detail.tomograms:
        for f in detail.files_for(t):
            assert f.alignment_id == t.alignment_id
    aligned = detail.files_for(choice.tomogram)
    # the community picks at the coarse spacing line up with the fine tomogram too
    assert {detail.voxel_spacing_of(f) for f in aligned} == {v.voxel_spacing for v in detail.voxel_spacings}


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


# --- records: which tomogram opens, which files line up, the curators' viewer state ---------


def _tomogram(id, spacing, *, alignment=1, spacing_id=None, vis=False, standard=False, config=None):
    from napari_cryoet_portal.portal.records import Tomogram

    return Tomogram(
        id=id, name="TS", run_id=1, voxel_spacing_id=spacing_id or int(spacing * 1000),
        alignment_id=alignment, voxel_spacing=spacing, size_xyz=(10, 10, 10),
        level_dimensions_xyz=((10, 10, 10),), offset_xyz=(0, 0, 0), processing="raw",
        reconstruction_method="WBP", reconstruction_software="IMOD", ctf_corrected=None,
        is_visualization_default=vis, is_portal_standard=standard, is_author_submitted=False,
        s3_omezarr_dir=None, https_omezarr_dir=None, file_size_omezarr=None, s3_mrc_file=None,
        https_mrc_file=None, file_size_mrc=None, key_photo_url=None, thumbnail_url=None,
        neuroglancer_config=config,
    )


def _file(id, spacing_id, alignment, shape="Point", annotation_id=1, default=True):
    from napari_cryoet_portal.portal.records import AnnotationFile

    return AnnotationFile(
        id=id, format="ndjson", s3_path=f"s3://b/{id}.ndjson", https_path=f"https://b/{id}.ndjson",
        file_size=None, is_visualization_default=default, source="dataset_author",
        voxel_spacing_id=spacing_id, alignment_id=alignment, shape_type=shape, shape_id=id,
        annotation_id=annotation_id,
    )


def _detail(tomograms, files=(), metadata_path="s3://b/10/TS/Reconstructions/VoxelSpacing4.990/Annotations/100/ribosome-1.0.json"):
    from napari_cryoet_portal.portal.records import Annotation, Run, RunDetail, VoxelSpacing

    annotation = Annotation(
        id=1, object_name="cytosolic ribosome", object_id="GO:0022626", object_description=None,
        object_state=None, object_count=None, annotation_method=None, method_type=None,
        ground_truth_status=None, is_curator_recommended=None, annotation_software=None,
        s3_metadata_path=metadata_path, https_metadata_path=None, files=tuple(files),
    )
    spacings = {t.voxel_spacing_id: t.voxel_spacing for t in tomograms}
    return RunDetail(
        run=Run(1, "TS", 10, "s3://b/", "https://b/"),
        voxel_spacings=tuple(VoxelSpacing(i, v, "", "") for i, v in spacings.items()),
        tomograms=tuple(tomograms),
        annotations=(annotation,),
    )


def test_default_tomogram_visualization_default_then_portal_standard_then_closest_to_10():
    fine, ten, coarse = _tomogram(1, 4.99), _tomogram(2, 10.012), _tomogram(3, 13.48)
    choice = _detail([fine, coarse, ten]).default_choice()
    assert choice.tomogram is ten and "closest to 10 Å" in choice.reason
    # closest, not the finest nor the coarsest; ties go to the first in the API's order
    raw, denoised = _tomogram(4, 10.012), _tomogram(5, 10.012)
    assert _detail([_tomogram(6, 6.0), _tomogram(7, 13.5)]).default_tomogram().id == 7
    assert _detail([fine, raw, denoised]).default_tomogram() is raw
    standard = _tomogram(8, 4.99, standard=True)
    assert _detail([ten, standard]).default_choice().reason == "portal standard"
    vis = _tomogram(9, 13.48, vis=True)
    choice = _detail([ten, standard, vis]).default_choice()
    assert choice.tomogram is vis and choice.reason == "visualization default"
    assert _detail([]).default_tomogram() is None


def test_files_line_up_by_alignment_across_voxel_spacings():
    """TS_105_5-like: tomograms at 10.012 and 4.99 Å, every annotation at 4.99 Å, one
    alignment; a file of another alignment is listed but does not line up."""
    ten = _tomogram(1, 10.012, alignment=7)
    fine = _tomogram(2, 4.99, alignment=7)
    at_fine = _file(11, fine.voxel_spacing_id, 7)
    other_alignment = _file(12, ten.voxel_spacing_id, 8)
    detail = _detail([ten, fine], [at_fine, other_alignment])
    assert detail.files_for(ten) == (at_fine,)
    assert detail.files_for(fine) == (at_fine,)
    assert not detail.is_aligned(other_alignment, ten)
    # without alignment ids (older records) only the tomogram's own spacing is trusted
    legacy = _tomogram(3, 10.012, alignment=None)
    same_folder, elsewhere = _file(13, legacy.voxel_spacing_id, None), _file(14, fine.voxel_spacing_id, None)
    assert _detail([legacy, fine], [same_folder, elsewhere]).files_for(legacy) == (same_folder,)


NG_STATE = {
    "dimensions": {"x": [1e-09, "m"], "y": [1e-09, "m"], "z": [1e-09, "m"]},
    "layers": [
        {
            "type": "image",
            "name": "TS",
            "source": {"url": "zarr://https://files.example/10/TS/Tomograms/100/TS.zarr"},
            "shader": "#uicontrol invlerp normalized\nvoid main() { emitGrayscale(normalized()); }\n",
            "shaderControls": {"normalized": {"range": [-3.5, 4.25], "window": [-5.0, 6.0]}},
        },
        {
            "type": "annotation",
            "name": "100 cytosolic ribosome point",
            "source": {"url": "precomputed://https://files.example/NeuroglancerPrecompute/100-ribosome-1.0_point"},
            "shader": '#uicontrol vec3 color color(default="#AB12CD")\nvoid main() { setColor(color); }',
            "visible": True,
        },
        {
            "type": "segmentation",
            "name": "101 membrane segmentation",
            "source": "precomputed://https://files.example/NeuroglancerPrecompute/101-membrane-1.0_segmentationmask",
            "segmentDefaultColor": "#00ff80",
            "visible": False,
        },
    ],
}


def test_neuroglancer_config_gives_contrast_and_curated_colours():
    import json

    from napari_cryoet_portal.portal.client import neuroglancer_config

    config = neuroglancer_config(json.dumps(NG_STATE))
    assert config.contrast_limits == (-3.5, 4.25)
    ribosome, membrane = config.annotation_layers
    assert (ribosome.color, ribosome.visible, ribosome.source_key) == ("#ab12cd", True, "100-ribosome-1.0_point")
    assert (membrane.color, membrane.visible) == ("#00ff80", False)
    # a file's layer: by the precomputed name the portal derives from the metadata path
    # (v2 layout Annotations/100/ribosome-1.0.json, v1 layout Annotations/100-ribosome-1.0.json)
    for path in (
        "s3://b/10/TS/Reconstructions/VoxelSpacing4.990/Annotations/100/ribosome-1.0.json",
        "s3://b/10/TS/Tomograms/VoxelSpacing4.990/Annotations/100-ribosome-1.0.json",
    ):
        detail = _detail([_tomogram(1, 10.0, config=config)], [_file(11, 10000, 1)], path)
        assert detail.curated_color(detail.annotation_files()[0]) == "#ab12cd"
    # another shape of the same annotation has no layer; an unrelated annotation neither
    detail = _detail([_tomogram(1, 10.0, config=config)], [_file(11, 10000, 1, shape="OrientedPoint")])
    assert detail.curated_color(detail.annotation_files()[0]) is None
    other = _detail([_tomogram(1, 10.0, config=config)], [_file(11, 10000, 1)], "s3://b/Annotations/7/actin-1.0.json")
    assert other.curated_color(other.annotation_files()[0]) is None


def test_neuroglancer_config_by_layer_name_when_the_source_differs():
    import json

    from napari_cryoet_portal.portal.client import neuroglancer_config

    state = json.loads(json.dumps(NG_STATE))
    state["layers"][1]["source"] = "precomputed://https://elsewhere/some-other-name"
    config = neuroglancer_config(json.dumps(state))
    detail = _detail([_tomogram(1, 10.0, config=config)], [_file(11, 10000, 1)])
    assert detail.curated_color(detail.annotation_files()[0]) == "#ab12cd"


@pytest.mark.parametrize(
    "text",
    [None, "", "{not json", "[]", '{"layers": 3}', '{"layers": [{"type": "image", "shaderControls": {"normalized": {"range": [5, 1]}}}]}'],
)
def test_a_missing_or_broken_neuroglancer_config_gives_no_contrast(text):
    from napari_cryoet_portal.portal.client import neuroglancer_config

    config = neuroglancer_config(text)
    assert config is None or config.contrast_limits is None


def test_run_detail_carries_the_parsed_neuroglancer_config(portal, client, monkeypatch):
    """Through the GraphQL server: the API's JSON string arrives parsed on the Tomogram."""
    import json

    row = next(t for t in rows(portal, "Tomogram") if t["isVisualizationDefault"])
    monkeypatch.setitem(row, "neuroglancerConfig", json.dumps(NG_STATE))
    detail = client.run_detail(row["runId"])
    assert len(portal.graphql.requests) == 1
    tomogram = next(t for t in detail.tomograms if t.id == row["id"])
    assert tomogram.neuroglancer_config.contrast_limits == (-3.5, 4.25)
    assert all(t.neuroglancer_config is None for t in detail.tomograms if t is not tomogram)
