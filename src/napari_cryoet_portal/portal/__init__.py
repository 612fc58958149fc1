"""Talks to the portal's GraphQL v2 API. Imports neither Qt nor napari."""

from .client import API_URL_ENV, DEFAULT_API_URL, PortalClient, default_api_url
from .errors import (
    PortalConnectionError,
    PortalError,
    PortalGraphQLError,
    PortalHTTPError,
    PortalResponseError,
)
from .records import (
    Annotation,
    AnnotationFile,
    DatasetSummary,
    Page,
    Run,
    RunDetail,
    RunSummary,
    Tomogram,
    VoxelSpacing,
)

__all__ = [
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "Annotation",
    "AnnotationFile",
    "DatasetSummary",
    "Page",
    "PortalClient",
    "PortalConnectionError",
    "PortalError",
    "PortalGraphQLError",
    "PortalHTTPError",
    "PortalResponseError",
    "Run",
    "RunDetail",
    "RunSummary",
    "Tomogram",
    "VoxelSpacing",
    "default_api_url",
]
