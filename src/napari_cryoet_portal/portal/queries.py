"""Every GraphQL document the plugin sends, as data.

Each document is answered in ONE request. ``tests/test_queries_schema.py`` validates all of
them against the SDL shipped in the official ``cryoet-data-portal`` package, so a schema change
upstream fails a test rather than a user's click.

Design rules, from how the v2 API behaves (see docs/design.md):
- lists that can grow past 100 rows use root fields with ``limitOffset`` (nested connections
  are capped at 100 edges by the server);
- counts come from nested ``...Aggregate`` fields in the same request;
- the API has no ``_or``, so a search is one aliased root field per column, merged client-side.
"""

from __future__ import annotations

DATASET_SUMMARY_FRAGMENT = """
fragment DatasetSummary on Dataset {
  id
  title
  organismName
  keyPhotoThumbnailUrl
  releaseDate
  runsAggregate { aggregate { count } }
}
"""

DATASETS_PAGE = (
    """
query DatasetsPage($limit: Int!, $offset: Int!) {
  datasets(
    orderBy: [{releaseDate: desc}, {id: desc}]
    limitOffset: {limit: $limit, offset: $offset}
  ) { ...DatasetSummary }
  total: datasetsAggregate { aggregate { count } }
}
"""
    + DATASET_SUMMARY_FRAGMENT
)

DATASETS_BY_ID = (
    """
query DatasetsById($ids: [Int!]!) {
  datasets(where: {id: {_in: $ids}}, orderBy: [{releaseDate: desc}, {id: desc}]) {
    ...DatasetSummary
  }
}
"""
    + DATASET_SUMMARY_FRAGMENT
)

# Free-text search: one alias per searched column. `SEARCH_TEXT_FIELDS` names the aliases so
# the client can report which columns matched.
SEARCH_TEXT_FIELDS: dict[str, str] = {
    "byTitle": "{title: {_ilike: $pattern}}",
    "byDescription": "{description: {_ilike: $pattern}}",
    "byOrganism": "{organismName: {_ilike: $pattern}}",
    "byAnnotatedObject": "{runs: {annotations: {objectName: {_ilike: $pattern}}}}",
    "byIdentifiedObject": "{runs: {identifiedObjects: {objectName: {_ilike: $pattern}}}}",
    "byRunName": "{runs: {name: {_ilike: $pattern}}}",
}

# Extra aliases when the search text is a whole number: portal ids people paste.
SEARCH_ID_FIELDS: dict[str, str] = {
    "byDatasetId": "{id: {_eq: $id}}",
    "byDepositionId": "{depositionId: {_eq: $id}}",
    "byRunId": "{runs: {id: {_eq: $id}}}",
    "byTomogramId": "{runs: {tomograms: {id: {_eq: $id}}}}",
    "byAnnotationId": "{runs: {annotations: {id: {_eq: $id}}}}",
}


def _search_document(name: str, params: str, fields: dict[str, str]) -> str:
    body = "\n".join(
        f"  {alias}: datasets(where: {where}) {{ ...DatasetSummary }}"
        for alias, where in fields.items()
    )
    return f"query {name}({params}) {{\n{body}\n}}\n" + DATASET_SUMMARY_FRAGMENT


SEARCH_TEXT = _search_document("SearchDatasets", "$pattern: String!", SEARCH_TEXT_FIELDS)
SEARCH_TEXT_OR_ID = _search_document(
    "SearchDatasetsOrId",
    "$pattern: String!, $id: Int!",
    {**SEARCH_TEXT_FIELDS, **SEARCH_ID_FIELDS},
)

RUNS_PAGE = """
query RunsPage($datasetId: Int!, $limit: Int!, $offset: Int!) {
  runs(
    where: {datasetId: {_eq: $datasetId}}
    orderBy: [{name: asc}, {id: asc}]
    limitOffset: {limit: $limit, offset: $offset}
  ) {
    id
    name
    datasetId
    tomogramsAggregate { aggregate { count } }
    annotationsAggregate { aggregate { count } }
  }
  total: runsAggregate(where: {datasetId: {_eq: $datasetId}}) { aggregate { count } }
}
"""

TOMOGRAM_FIELDS = """
  id
  name
  runId
  tomogramVoxelSpacingId
  alignmentId
  depositionId
  voxelSpacing
  sizeX sizeY sizeZ
  scale0Dimensions scale1Dimensions scale2Dimensions
  offsetX offsetY offsetZ
  processing
  reconstructionMethod
  reconstructionSoftware
  ctfCorrected
  isVisualizationDefault
  isPortalStandard
  isAuthorSubmitted
  s3OmezarrDir httpsOmezarrDir fileSizeOmezarr
  s3MrcFile httpsMrcFile fileSizeMrc
  keyPhotoUrl keyPhotoThumbnailUrl
  neuroglancerConfig
"""

ANNOTATION_FILE_FIELDS = """
  id
  format
  s3Path
  httpsPath
  fileSize
  isVisualizationDefault
  source
  tomogramVoxelSpacingId
  alignmentId
"""

# Everything a viewer needs for one run, in one request. Tomograms and annotations come from
# root fields (uncapped); shapes per annotation and files per shape are a handful, far below
# the 100-edge connection cap.
RUN_DETAIL = f"""
query RunDetail($runId: Int!) {{
  runs(where: {{id: {{_eq: $runId}}}}) {{ id name datasetId s3Prefix httpsPrefix }}
  tomogramVoxelSpacings(where: {{runId: {{_eq: $runId}}}}, orderBy: [{{voxelSpacing: asc}}]) {{
    id voxelSpacing s3Prefix httpsPrefix
  }}
  tomograms(
    where: {{runId: {{_eq: $runId}}}}
    orderBy: [{{voxelSpacing: asc}}, {{id: asc}}]
  ) {{ {TOMOGRAM_FIELDS} }}
  annotations(where: {{runId: {{_eq: $runId}}}}, orderBy: [{{id: asc}}]) {{
    id
    objectName
    objectId
    objectDescription
    objectState
    objectCount
    annotationMethod
    methodType
    groundTruthStatus
    isCuratorRecommended
    annotationSoftware
    s3MetadataPath
    httpsMetadataPath
    annotationShapes(first: 100) {{
      edges {{ node {{
        id
        shapeType
        annotationFiles(first: 100) {{ edges {{ node {{ {ANNOTATION_FILE_FIELDS} }} }} }}
      }} }}
    }}
  }}
}}
"""

_AUTHOR_FIELDS = """
  name orcid email affiliationName authorListOrder primaryAuthorStatus correspondingAuthorStatus
"""

METADATA: dict[str, str] = {
    "dataset": f"""
query DatasetMetadata($id: Int!) {{
  datasets(where: {{id: {{_eq: $id}}}}) {{
    id title description depositionId
    organismName organismTaxid tissueName tissueId cellName cellTypeId cellStrainName cellStrainId
    cellComponentName cellComponentId sampleType samplePreparation gridPreparation otherSetup
    assayLabel assayOntologyId developmentStageName developmentStageOntologyId diseaseName diseaseOntologyId
    depositionDate releaseDate lastModifiedDate datasetPublications relatedDatabaseEntries
    s3Prefix httpsPrefix fileSize keyPhotoUrl keyPhotoThumbnailUrl
    deposition {{ id title }}
    authors(first: 100, orderBy: [{{authorListOrder: asc}}]) {{ edges {{ node {{ {_AUTHOR_FIELDS} }} }} }}
    fundingSources(first: 100) {{ edges {{ node {{ fundingAgencyName grantId }} }} }}
    runsAggregate {{ aggregate {{ count }} }}
  }}
}}
""",
    "run": """
query RunMetadata($id: Int!) {
  runs(where: {id: {_eq: $id}}) {
    id name datasetId s3Prefix httpsPrefix
    dataset { id title organismName }
    tomogramsAggregate { aggregate { count } }
    annotationsAggregate { aggregate { count } }
    tiltseries(first: 100) { edges { node {
      id microscopeManufacturer microscopeModel cameraManufacturer cameraModel
      accelerationVoltage tiltMin tiltMax tiltStep tiltAxis totalFlux pixelSpacing tiltSeriesQuality
    } } }
  }
}
""",
    "tomogram": f"""
query TomogramMetadata($id: Int!) {{
  tomograms(where: {{id: {{_eq: $id}}}}) {{
    {TOMOGRAM_FIELDS}
    fiducialAlignmentStatus tomogramVersion processingSoftware
    publications relatedDatabaseEntries depositionDate releaseDate lastModifiedDate
    tomogramVoxelSpacing {{ id voxelSpacing }}
    authors(first: 100, orderBy: [{{authorListOrder: asc}}]) {{ edges {{ node {{ {_AUTHOR_FIELDS} }} }} }}
  }}
}}
""",
    "annotation": f"""
query AnnotationMetadata($id: Int!) {{
  annotations(where: {{id: {{_eq: $id}}}}) {{
    id runId depositionId annotationIngestId
    objectName objectId objectDescription objectState objectCount
    annotationMethod methodType annotationSoftware annotationPublication
    groundTruthStatus groundTruthUsed isCuratorRecommended confidencePrecision confidenceRecall
    s3MetadataPath httpsMetadataPath depositionDate releaseDate lastModifiedDate
    authors(first: 100, orderBy: [{{authorListOrder: asc}}]) {{ edges {{ node {{ {_AUTHOR_FIELDS} }} }} }}
    methodLinks(first: 100) {{ edges {{ node {{ linkType name link }} }} }}
    annotationShapes(first: 100) {{ edges {{ node {{
      shapeType
      annotationFiles(first: 100) {{ edges {{ node {{ {ANNOTATION_FILE_FIELDS} }} }} }}
    }} }} }}
  }}
}}
""",
}

ALL_DOCUMENTS: dict[str, str] = {
    "DatasetsPage": DATASETS_PAGE,
    "DatasetsById": DATASETS_BY_ID,
    "SearchDatasets": SEARCH_TEXT,
    "SearchDatasetsOrId": SEARCH_TEXT_OR_ID,
    "RunsPage": RUNS_PAGE,
    "RunDetail": RUN_DETAIL,
    **{f"{kind.title()}Metadata": doc for kind, doc in METADATA.items()},
}

# --- downloads: where an entity's files are (one request each) ------------------------------

_RUN_LOCATION = "id name datasetId s3Prefix httpsPrefix"

DATASET_LOCATION = """
query DatasetLocation($id: Int!) {
  datasets(where: {id: {_eq: $id}}) { id title s3Prefix httpsPrefix fileSize }
}
"""

RUN_LOCATION = f"""
query RunLocation($id: Int!) {{
  runs(where: {{id: {{_eq: $id}}}}) {{ {_RUN_LOCATION} }}
}}
"""

TOMOGRAM_LOCATION = f"""
query TomogramLocation($id: Int!) {{
  tomograms(where: {{id: {{_eq: $id}}}}) {{
    {TOMOGRAM_FIELDS}
    run {{ {_RUN_LOCATION} }}
  }}
}}
"""

ANNOTATION_LOCATION = f"""
query AnnotationLocation($id: Int!) {{
  annotations(where: {{id: {{_eq: $id}}}}) {{
    id objectName objectId objectDescription objectState objectCount
    annotationMethod methodType groundTruthStatus isCuratorRecommended annotationSoftware
    s3MetadataPath httpsMetadataPath
    run {{ {_RUN_LOCATION} }}
    annotationShapes(first: 100) {{ edges {{ node {{
      id
      shapeType
      annotationFiles(first: 100) {{ edges {{ node {{ {ANNOTATION_FILE_FIELDS} }} }} }}
    }} }} }}
  }}
}}
"""

ANNOTATION_FILE_LOCATION = f"""
query AnnotationFileLocation($id: Int!) {{
  annotationFiles(where: {{id: {{_eq: $id}}}}) {{
    {ANNOTATION_FILE_FIELDS}
    annotationShape {{ id shapeType annotationId annotation {{ run {{ {_RUN_LOCATION} }} }} }}
  }}
}}
"""

ALL_DOCUMENTS.update(
    {
        "DatasetLocation": DATASET_LOCATION,
        "RunLocation": RUN_LOCATION,
        "TomogramLocation": TOMOGRAM_LOCATION,
        "AnnotationLocation": ANNOTATION_LOCATION,
        "AnnotationFileLocation": ANNOTATION_FILE_LOCATION,
    }
)
