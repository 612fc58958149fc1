"""Every document the client can send validates against the official portal SDL."""

from __future__ import annotations

import importlib.resources

import graphql
import pytest

from napari_cryoet_portal.portal import queries


@pytest.fixture(scope="module")
def portal_schema() -> graphql.GraphQLSchema:
    sdl = (importlib.resources.files("cryoet_data_portal") / "data/schema.graphql").read_text()
    return graphql.build_schema(sdl)


@pytest.mark.parametrize("name", sorted(queries.ALL_DOCUMENTS))
def test_document_validates_against_official_sdl(portal_schema, name):
    document = graphql.parse(queries.ALL_DOCUMENTS[name])
    errors = graphql.validate(portal_schema, document)
    assert errors == [], [e.message for e in errors]


def test_every_document_is_one_named_operation():
    for name, text in queries.ALL_DOCUMENTS.items():
        operations = [
            d for d in graphql.parse(text).definitions if isinstance(d, graphql.OperationDefinitionNode)
        ]
        assert [op.name.value for op in operations] == [name]


def test_all_documents_lists_every_document_in_the_module():
    sent = {v for k, v in vars(queries).items() if k.isupper() and isinstance(v, str) and "query " in v}
    sent |= set(queries.METADATA.values())
    assert sent <= set(queries.ALL_DOCUMENTS.values())


def test_a_wrong_field_would_fail(portal_schema):
    """The check can fail: a field the SDL lacks is reported."""
    broken = queries.RUNS_PAGE.replace("datasetId\n", "datasetIdentifier\n", 1)
    assert graphql.validate(portal_schema, graphql.parse(broken))
