"""The demo portal's GraphQL server, driven by the official client and by hand-written queries."""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from graphql import GraphQLEnumType, GraphQLNonNull, get_named_type

from napari_cryoet_portal.demo.graphql_schema import paginate, portal_schema
from napari_cryoet_portal.demo.graphql_server import GraphQLServer

# --------------------------------------------------------------------------- tables

_DUMMIES = {
    "Int": 1,
    "Float": 1.0,
    "Boolean": False,
    "DateTime": "2024-01-02T00:00:00+00:00",
}


def complete(type_name: str, row: dict[str, Any]) -> dict[str, Any]:
    """Fill the row's missing non-null scalars with type-appropriate dummies, from the SDL."""
    for name, field in portal_schema().type_map[type_name].fields.items():
        named = get_named_type(field.type)
        if name in row or name.startswith("_") or not isinstance(field.type, GraphQLNonNull):
            continue
        if isinstance(named, GraphQLEnumType):
            row[name] = next(iter(named.values))
        elif named.name == "String":
            row[name] = f"{name}-{type_name}-{row['id']}"
        elif named.name in _DUMMIES:
            row[name] = _DUMMIES[named.name]
    return row


def _rows(type_name: str, *rows: dict[str, Any]) -> list[dict[str, Any]]:
    return [complete(type_name, row) for row in rows]


TABLES: dict[str, list[dict[str, Any]]] = {
    "Deposition": _rows("Deposition", {"id": 500, "title": "Demo deposition"}),
    "Dataset": _rows(
        "Dataset",
        {"id": 10000, "depositionId": 500, "title": "Ribosomes in situ",
         "description": "Cryo-ET of human cells", "organismName": "Homo sapiens",
         "sampleType": "cell", "releaseDate": "2023-04-01T00:00:00+00:00"},
        {"id": 10001, "depositionId": 500, "title": "Membranes",
         "description": "Vesicles and ribosomes", "organismName": None, "sampleType": "in_vitro",
         "releaseDate": "2024-05-01T00:00:00+00:00"},
    ),
    "Run": _rows(
        "Run",
        {"id": 1, "datasetId": 10000, "name": "TS_001"},
        {"id": 2, "datasetId": 10000, "name": "TS_002"},
        {"id": 3, "datasetId": 10001, "name": "TS_100"},
    ),
    "TomogramVoxelSpacing": _rows(
        "TomogramVoxelSpacing",
        {"id": 1, "runId": 1, "voxelSpacing": 13.48},
        {"id": 2, "runId": 2, "voxelSpacing": 13.48},
        {"id": 3, "runId": 3, "voxelSpacing": 7.56},
    ),
    "Alignment": _rows("Alignment", {"id": 1, "runId": 1, "alignmentType": "GLOBAL"}),
    "Tomogram": _rows(
        "Tomogram",
        {"id": 1, "runId": 1, "tomogramVoxelSpacingId": 1, "alignmentId": 1, "depositionId": 500,
         "name": "TS_001", "voxelSpacing": 13.48, "processing": "denoised",
         "scale0Dimensions": "960,928,500"},
        {"id": 2, "runId": 2, "tomogramVoxelSpacingId": 2, "depositionId": 500,
         "name": "TS_002", "voxelSpacing": 13.48, "processing": "raw"},
        {"id": 3, "runId": 3, "tomogramVoxelSpacingId": 3, "depositionId": 500,
         "name": "TS_100", "voxelSpacing": 7.56, "processing": "raw"},
    ),
    "Annotation": _rows(
        "Annotation",
        {"id": 1, "runId": 1, "depositionId": 500, "objectName": "cytosolic ribosome",
         "objectCount": 12, "methodType": "manual"},
        {"id": 2, "runId": 1, "depositionId": 500, "objectName": "membrane",
         "objectCount": None, "methodType": "automated"},
        {"id": 3, "runId": 3, "depositionId": 500, "objectName": "Ribosome 80S",
         "objectCount": 3, "methodType": "manual"},
        {"id": 4, "runId": 2, "depositionId": 500, "objectName": "actin",
         "objectCount": 7, "methodType": "hybrid"},
    ),
    "AnnotationShape": _rows(
        "AnnotationShape",
        {"id": 1, "annotationId": 1, "shapeType": "Point"},
        {"id": 2, "annotationId": 2, "shapeType": "SegmentationMask"},
        {"id": 3, "annotationId": 3, "shapeType": "OrientedPoint"},
        {"id": 4, "annotationId": 3, "shapeType": "Point"},
        {"id": 5, "annotationId": 4, "shapeType": "Point"},
    ),
    "AnnotationFile": _rows(
        "AnnotationFile",
        {"id": 1, "annotationShapeId": 1, "tomogramVoxelSpacingId": 1, "alignmentId": 1,
         "format": "ndjson", "isVisualizationDefault": True},
        {"id": 2, "annotationShapeId": 2, "tomogramVoxelSpacingId": 1, "format": "zarr"},
        {"id": 3, "annotationShapeId": 2, "tomogramVoxelSpacingId": 1, "format": "mrc"},
        {"id": 4, "annotationShapeId": 3, "tomogramVoxelSpacingId": 3, "format": "ndjson"},
        {"id": 5, "annotationShapeId": 4, "tomogramVoxelSpacingId": 3, "format": "ndjson"},
        {"id": 6, "annotationShapeId": 5, "tomogramVoxelSpacingId": 2, "format": "ndjson"},
    ),
    "IdentifiedObject": _rows(
        "IdentifiedObject",
        {"id": 1, "runId": 2, "objectId": "GO:0005840", "objectName": "ribosome"},
    ),
}


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


def _table_ids(type_name: str, **equal: Any) -> list[int]:
    return [r["id"] for r in TABLES[type_name] if all(r.get(k) == v for k, v in equal.items())]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def server() -> Iterator[GraphQLServer]:
    with GraphQLServer(TABLES) as running:
        yield running


@pytest.fixture(scope="module")
def official_client(server: GraphQLServer) -> Any:
    from cryoet_data_portal import Client

    return Client(server.url)


def post_raw(url: str, body: bytes) -> tuple[int, Any]:
    """(status, decoded JSON body, or the text of a non-JSON body)."""
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, text = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, text = error.code, error.headers, error.read()
    is_json = headers["Content-Type"] == "application/json"
    return status, json.loads(text) if is_json else text.decode()


def post(server: GraphQLServer, query: str, variables: dict | None = None) -> dict:
    payload = json.dumps({"query": query, "variables": variables}).encode()
    status, body = post_raw(server.url, payload)
    assert status == 200
    return body


def data(server: GraphQLServer, query: str, variables: dict | None = None) -> dict:
    body = post(server, query, variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


def _cursor(index: int) -> str:
    return base64.b64encode(f"arrayconnection:{index}".encode()).decode()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def assert_matches_row(type_name: str, model: Any, row: dict[str, Any]) -> None:
    """Every scalar the client model has equals the table's value (DateTime parsed)."""
    fields = portal_schema().type_map[type_name].fields
    for key, value in row.items():
        attribute = _snake(key)
        if hasattr(type(model), attribute):
            if value is not None and get_named_type(fields[key].type).name == "DateTime":
                value = datetime.fromisoformat(value)
            assert getattr(model, attribute) == value, (key, getattr(model, attribute), value)


# --------------------------------------------------------------------------- official client


def test_client_find_and_get_by_id(official_client: Any) -> None:
    from cryoet_data_portal import Dataset

    datasets = Dataset.find(official_client)
    assert sorted(d.id for d in datasets) == _ids(TABLES["Dataset"])
    rows = {row["id"]: row for row in TABLES["Dataset"]}
    for model in datasets:
        assert_matches_row("Dataset", model, rows[model.id])
    assert Dataset.get_by_id(official_client, 10001).title == "Membranes"
    assert Dataset.get_by_id(official_client, 99999) is None


def test_client_relationship_traversal(official_client: Any) -> None:
    from cryoet_data_portal import Dataset, Run

    runs = Run.find(official_client, [Run.dataset_id == 10000])
    assert sorted(r.id for r in runs) == _table_ids("Run", datasetId=10000)
    dataset = Dataset.get_by_id(official_client, 10000)
    assert sorted(r.name for r in dataset.runs) == ["TS_001", "TS_002"]

    run = Run.get_by_id(official_client, 1)
    (tomogram,) = run.tomograms
    assert_matches_row("Tomogram", tomogram, TABLES["Tomogram"][0])
    assert tomogram.tomogram_voxel_spacing.voxel_spacing == 13.48
    assert tomogram.run.dataset.id == 10000
    annotations = sorted(run.annotations, key=lambda a: a.id)
    assert [a.object_name for a in annotations] == ["cytosolic ribosome", "membrane"]
    assert annotations[1].object_count is None
    shapes = annotations[1].annotation_shapes
    assert [s.shape_type for s in shapes] == ["SegmentationMask"]
    files = shapes[0].annotation_files
    assert sorted(f.format for f in files) == ["mrc", "zarr"]
    for model in files:
        assert_matches_row("AnnotationFile", model, TABLES["AnnotationFile"][model.id - 1])


def test_client_nested_filters(official_client: Any) -> None:
    from cryoet_data_portal import AnnotationFile, AnnotationShape, Dataset, Tomogram

    files = AnnotationFile.find(
        official_client,
        [
            AnnotationFile.annotation_shape.shape_type == "Point",
            AnnotationFile.format._in(["ndjson"]),
        ],
    )
    assert sorted(f.id for f in files) == [1, 5, 6]
    ribo = Dataset.find(official_client, [Dataset.runs.annotations.object_name.ilike("%ribo%")])
    assert sorted(d.id for d in ribo) == [10000, 10001]
    shapes = AnnotationShape.find(
        official_client, [AnnotationShape.annotation.run.dataset.id == 10001]
    )
    assert sorted(s.id for s in shapes) == [3, 4]
    tomograms = Tomogram.find(official_client, [Tomogram.run.name.like("TS_00%")])
    assert [t.id for t in tomograms] == [1, 2]


# --------------------------------------------------------------------------- hand-written queries


def test_limit_offset_paging_with_order_desc(server: GraphQLServer) -> None:
    query = """query($o: Int) {
      runs(orderBy: [{id: desc}], limitOffset: {limit: 2, offset: $o}) { id } }"""
    assert _ids(data(server, query, {"o": 0})["runs"]) == [3, 2]
    assert _ids(data(server, query, {"o": 2})["runs"]) == [1]
    assert _ids(data(server, "{ runs(limitOffset: {limit: 0}) { id } }")["runs"]) == [1, 2, 3]


def test_offset_without_limit_is_an_error(server: GraphQLServer) -> None:
    body = post(server, "{ runs(limitOffset: {offset: 1}) { id } }")
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Cannot use offset without limit"
    assert body["errors"][0]["path"] == ["runs"]


def test_nested_aggregate_counts_per_parent(server: GraphQLServer) -> None:
    query = """{ datasets(orderBy: [{id: asc}]) { id
        runsCount: runsAggregate { aggregate { count } }
        none: runsAggregate(where: {name: {_eq: "nope"}}) { aggregate { count } } } }"""
    rows = data(server, query)["datasets"]
    assert [r["runsCount"]["aggregate"] for r in rows] == [[{"count": 2}], [{"count": 1}]]
    # Like the real server (grouped by the parent key): no matching child, no aggregate row.
    assert [r["none"]["aggregate"] for r in rows] == [[], []]


def test_root_aggregates(server: GraphQLServer) -> None:
    query = """{
      total: datasetsAggregate { aggregate { count } }
      nothing: datasetsAggregate(where: {id: {_eq: 1}}) { aggregate { count } }
      byRun: annotationsAggregate(where: {run: {datasetId: {_eq: 10000}}}) {
        aggregate { count groupBy { run { id } } } }
      byType: annotationsAggregate { aggregate { count groupBy { methodType } } }
      stats: annotationsAggregate { aggregate {
        count(columns: objectCount) distinctTypes: count(columns: methodType, distinct: true)
        sum { objectCount } max { objectName } min { objectCount } } }
    }"""
    result = data(server, query)
    assert result["total"]["aggregate"] == [{"count": 2}]
    assert result["nothing"]["aggregate"] == [{"count": 0}]
    assert result["byRun"]["aggregate"] == [
        {"count": 2, "groupBy": {"run": {"id": 1}}},
        {"count": 1, "groupBy": {"run": {"id": 2}}},
    ]
    by_type = {g["groupBy"]["methodType"]: g["count"] for g in result["byType"]["aggregate"]}
    assert by_type == {"manual": 2, "automated": 1, "hybrid": 1}
    assert result["stats"]["aggregate"] == [{
        "count": 3, "distinctTypes": 3, "sum": {"objectCount": 22},
        "max": {"objectName": "membrane"}, "min": {"objectCount": 3},
    }]


def test_connection_paging(server: GraphQLServer) -> None:
    query = """query($after: String) { datasets(where: {id: {_eq: 10000}}) {
        runs(first: 1, after: $after, orderBy: [{name: asc}]) {
          edges { cursor node { name } } pageInfo { hasNextPage hasPreviousPage endCursor } } } }"""
    first = data(server, query)["datasets"][0]["runs"]
    assert [e["node"]["name"] for e in first["edges"]] == ["TS_001"]
    assert first["edges"][0]["cursor"] == _cursor(0)
    assert first["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": False,
                                 "endCursor": first["edges"][0]["cursor"]}
    second = data(server, query, {"after": first["pageInfo"]["endCursor"]})["datasets"][0]["runs"]
    assert [e["node"]["name"] for e in second["edges"]] == ["TS_002"]
    assert second["pageInfo"]["hasNextPage"] is False
    assert second["pageInfo"]["hasPreviousPage"] is True

    last = data(server, """{ runs(where: {id: {_eq: 1}}) {
      annotations(last: 1) { edges { node { id } } } } }""")
    assert last["runs"][0]["annotations"]["edges"] == [{"node": {"id": 2}}]

    body = post(server, "{ datasets { runs(first: 101) { edges { node { id } } } } }")
    assert body["errors"][0]["message"] == "Argument 'first' cannot be higher than 100."


def test_connection_slicing_matches_strawberry() -> None:
    rows = [{"id": i} for i in range(150)]

    def page(**arguments: Any) -> tuple[list[int], bool, bool]:
        connection = paginate(rows, **arguments)
        info = connection["pageInfo"]
        ids = [edge["node"]["id"] for edge in connection["edges"]]
        return ids, info["hasPreviousPage"], info["hasNextPage"]

    ids, previous, following = page()
    assert (len(ids), ids[-1], previous, following) == (100, 99, False, True)
    assert page(last=2) == ([148, 149], True, False)
    assert page(last=2, before=_cursor(10)) == ([8, 9], True, True)
    assert page(first=3, after=_cursor(147)) == ([148, 149], True, False)


def test_aliased_search(server: GraphQLServer) -> None:
    query = """query($p: String!) {
      byTitle: datasets(where: {title: {_ilike: $p}}) { id }
      byDescription: datasets(where: {description: {_ilike: $p}}) { id }
      byOrganism: datasets(where: {organismName: {_ilike: $p}}) { id }
      byAnnotatedObject: datasets(where: {runs: {annotations: {objectName: {_ilike: $p}}}}) { id }
      byIdentifiedObject: datasets(where: {runs: {identifiedObjects: {objectName: {_ilike: $p}}}}) {
        id }
      byRunName: datasets(where: {runs: {name: {_ilike: $p}}}) { id }
    }"""
    found = {alias: _ids(rows) for alias, rows in data(server, query, {"p": "%ribo%"}).items()}
    assert found == {
        "byTitle": [10000], "byDescription": [10001], "byOrganism": [],
        "byAnnotatedObject": [10000, 10001], "byIdentifiedObject": [10000], "byRunName": [],
    }
    assert _ids(data(server, query, {"p": "%ts\\_1%"})["byRunName"]) == [10001]


def test_nested_to_one_order_by(server: GraphQLServer) -> None:
    query = """{ tomograms(orderBy: [{run: {dataset: {title: asc}}}, {id: desc}]) { id }
      annotationFiles(orderBy: [{annotationShape: {shapeType: asc}}, {format: desc}]) { id } }"""
    result = data(server, query)
    assert _ids(result["tomograms"]) == [3, 2, 1]  # "Membranes" < "Ribosomes in situ"
    assert _ids(result["annotationFiles"]) == [4, 1, 5, 6, 2, 3]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("{id: {_in: [1, 3, 99]}}", [1, 3]),
        ("{id: {_nin: [1, 3]}}", [2, 4]),
        ("{objectCount: {_is_null: true}}", [2]),
        ("{objectCount: {_is_null: false}}", [1, 3, 4]),
        ("{objectCount: {_neq: 12}}", [3, 4]),  # NULL <> 12 is not true
        ("{objectCount: {_nin: [12]}}", [3, 4]),
        ("{objectCount: {_lt: 10}}", [3, 4]),
        ("{objectCount: {_eq: null}}", [2]),  # SQLAlchemy renders == None as IS NULL
        ("{objectName: {_like: \"%ribo%\"}}", [1]),
        ("{objectName: {_ilike: \"%RIBO%\"}}", [1, 3]),
        ("{objectName: {_nilike: \"%ribo%\"}}", [2, 4]),
        ("{objectName: {_like: \"_ctin\"}}", [4]),
        ("{objectName: {_regex: \"^[a-z]+$\"}}", [2, 4]),
        ("{objectName: {_iregex: \"ribosome( 80s)?$\"}}", [1, 3]),
        ("{methodType: {_eq: manual}}", [1, 3]),
        ("{methodType: {_in: [hybrid, automated]}}", [2, 4]),
        ("{annotationShapes: {shapeType: {_eq: OrientedPoint}}}", [3]),
        ("{annotationShapesAggregate: {count: {predicate: {_gt: 1}}}}", [3]),
        (
            "{annotationShapesAggregate: {count: {filter: {shapeType: {_eq: Point}},"
            " predicate: {_eq: 0}}}}",
            [2],
        ),
        ("{run: {dataset: {organismName: {_is_null: true}}}, objectCount: {_gte: 3}}", [3]),
    ],
)
def test_where_comparators(server: GraphQLServer, where: str, expected: list[int]) -> None:
    rows = data(server, f"{{ annotations(where: {where}) {{ id }} }}")["annotations"]
    assert _ids(rows) == expected


def test_filter_depth_limit(server: GraphQLServer) -> None:
    four = "{annotationShape: {annotation: {run: {dataset: {id: {_eq: 10000}}}}}}"
    rows = data(server, f"{{ annotationFiles(where: {four}) {{ id }} }}")["annotationFiles"]
    assert _ids(rows) == [1, 2, 3, 6]
    five = "{annotationShape: {annotation: {run: {dataset: {deposition: {id: {_eq: 500}}}}}}}"
    body = post(server, f"{{ annotationFiles(where: {five}) {{ id }} }}")
    assert body["errors"][0]["message"] == "Max filter depth exceeded"


def test_entity_ids_enums_and_dates(server: GraphQLServer) -> None:
    query = """{ datasets(where: {releaseDate: {_gt: "2024-01-01"}}) { _id sampleType releaseDate
                 deposition { title } } }"""
    (row,) = data(server, query)["datasets"]
    assert base64.b64decode(row["_id"]) == b"Dataset:10001"
    assert row["sampleType"] == "in_vitro"
    assert datetime.fromisoformat(row["releaseDate"]).year == 2024
    assert row["deposition"] == {"title": "Demo deposition"}


# --------------------------------------------------------------------------- HTTP behaviour


def test_invalid_query_answers_errors_with_200(server: GraphQLServer) -> None:
    body = post(server, "{ datasets { noSuchField } }")
    assert "data" not in body
    assert "noSuchField" in body["errors"][0]["message"]
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 14}]
    assert "Syntax Error" in post(server, "{ datasets {")["errors"][0]["message"]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"variables": {}}', b""])
def test_malformed_body_is_400(server: GraphQLServer, body: bytes) -> None:
    status, answer = post_raw(server.url, body)
    assert status == 400
    assert answer["errors"][0]["message"]


def test_get_requests(server: GraphQLServer) -> None:
    url = server.url + "?query=" + urllib.parse.quote("{ runs(where: {id: {_eq: 2}}) { name } }")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert json.load(response) == {"data": {"runs": [{"name": "TS_002"}]}}


def test_other_paths_are_404(server: GraphQLServer) -> None:
    other = server.url.replace("/graphql", "/nowhere")
    assert post_raw(other, b'{"query": "{ runs { id } }"}') == (404, {"detail": "Not Found"})


def test_fail_next_then_recovery(server: GraphQLServer) -> None:
    server.fail_next(2, status=503)
    query = json.dumps({"query": "{ runs { id } }"}).encode()
    assert post_raw(server.url, query) == (503, "503 Service Unavailable (injected failure)")
    assert post_raw(server.url, query)[0] == 503
    assert post_raw(server.url, query) == (200, {"data": {"runs": [{"id": i} for i in (1, 2, 3)]}})


def test_request_log(server: GraphQLServer) -> None:
    server.reset_log()
    data(server, "query Listing { datasets { id } total: datasetsAggregate { aggregate {count} } }")
    data(server, "{ ...F } fragment F on Query { runs { id } }")
    post(server, "{ nope }")
    log = server.requests
    assert [(r.operation_name, r.root_fields, r.status) for r in log] == [
        ("Listing", ("datasets", "datasetsAggregate"), 200),
        (None, ("runs",), 200),
        (None, ("nope",), 200),
    ]
    assert log[0].time <= log[1].time <= log[2].time
    server.reset_log()
    assert server.requests == []


def test_keep_alive(server: GraphQLServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(3):
            connection.request("POST", "/graphql", json.dumps({"query": "{ runs { id } }"}),
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200
            assert response.getheader("Connection") != "close"
            assert json.load(response)["data"]["runs"][0] == {"id": 1}
    finally:
        connection.close()


def test_stop_and_start_on_the_same_port() -> None:
    server = GraphQLServer(TABLES).start()
    try:
        url = server.url
        assert post(server, "{ runs { id } }")["data"]["runs"]
        kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        kept.request("POST", "/graphql", json.dumps({"query": "{ runs { id } }"}))
        kept.getresponse().read()
        server.stop()
        assert not server.running
        with pytest.raises(urllib.error.URLError):
            post(server, "{ runs { id } }")
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            kept.request("POST", "/graphql", json.dumps({"query": "{ runs { id } }"}))
            kept.getresponse()
        server.start()
        assert server.running and server.url == url
        assert post(server, "{ runs { id } }")["data"]["runs"]
    finally:
        server.stop()


def test_latency_option_and_unknown_tables() -> None:
    with GraphQLServer(TABLES, latency_s=0.01) as slow:
        assert slow.latency_s == 0.01
        assert data(slow, "{ runs { id } }")["runs"]
        assert [r.root_fields for r in slow.requests] == [("runs",)]
    with pytest.raises(ValueError, match="Runs"):
        GraphQLServer({"Runs": []})


# --------------------------------------------------------------------------- the generated content


def test_official_client_reads_the_generated_small_portal(portal) -> None:
    """The official client against what the demo really serves: datasets, runs, tomograms,
    annotation files, and the files they point at are where they say."""
    from cryoet_data_portal import AnnotationFile, Client, Dataset, Run, Tomogram

    from napari_cryoet_portal.data.storage import read_bytes
    from napari_cryoet_portal.demo import content

    client = Client(portal.api_url)
    datasets = Dataset.find(client)
    assert sorted(d.id for d in datasets) == sorted(d["id"] for d in portal.tables["Dataset"])
    showcase = Dataset.get_by_id(client, content.SHOWCASE_DATASET_ID)
    runs = Run.find(client, [Run.dataset_id == showcase.id])
    assert content.SHOWCASE_RUN_NAME in {r.name for r in runs}
    run = next(r for r in runs if r.name == content.SHOWCASE_RUN_NAME)
    tomograms = Tomogram.find(client, [Tomogram.run_id == run.id])
    expected = [t for t in portal.tables["Tomogram"] if t["runId"] == run.id]
    assert sorted(t.id for t in tomograms) == sorted(t["id"] for t in expected)
    assert {t.voxel_spacing for t in tomograms} == {
        content.SHOWCASE_FINE_SPACING, content.SHOWCASE_COARSE_SPACING
    }
    files = AnnotationFile.find(client, [AnnotationFile.annotation_shape.annotation.run_id == run.id])
    shapes = {f.annotation_shape.shape_type for f in files}
    assert {"Point", "OrientedPoint", "InstanceSegmentation", "SegmentationMask"} <= shapes
    for f in files:
        if f.format == "ndjson":  # the s3 path the client reports is readable, and is ndjson
            first = read_bytes(f.s3_path).splitlines()[0]
            assert json.loads(first)["type"] in {"point", "orientedPoint", "instancePoint"}
    big = Dataset.get_by_id(client, content.BIG_DATASET_ID)
    assert len(Run.find(client, [Run.dataset_id == big.id])) == content.BIG_DATASET_RUNS
