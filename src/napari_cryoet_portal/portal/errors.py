"""Typed failures of the portal API, so callers can tell "server down" from "bad query"."""

from __future__ import annotations


class PortalError(Exception):
    """Base class: anything that went wrong talking to the portal."""


class PortalConnectionError(PortalError):
    """The server could not be reached (refused, DNS, timeout), even after retries."""


class PortalHTTPError(PortalError):
    """The server answered with an HTTP error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class PortalGraphQLError(PortalError):
    """The server executed the request and reported GraphQL errors."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages) or "unknown GraphQL error")
        self.messages = messages


class PortalResponseError(PortalError):
    """The server answered, but not with the JSON shape GraphQL promises."""
