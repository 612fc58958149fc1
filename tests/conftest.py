"""Shared fixtures: the demo portal (real HTTP GraphQL, moto S3, file server) on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# napari's image layers need a GL context: pytest-xvfb provides a virtual X display, and the
# offscreen platform (which some shells export) has no GL. Tests always run on xcb.
if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
    del os.environ["QT_QPA_PLATFORM"]

# Tests count requests at the demo servers: bytes cached on disk by an earlier test (or run)
# would hide them. Tests of the byte cache give their readers a cache of their own.
os.environ["NAPARI_CRYOET_PORTAL_BYTE_CACHE_MB"] = "0"


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory) -> Path:
    """Generated demo content, shared by the session (or NAPARI_CRYOET_PORTAL_CACHE to reuse)."""
    env = os.environ.get("NAPARI_CRYOET_PORTAL_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("demo-cache")


@pytest.fixture(scope="session")
def demo_portal(demo_cache):
    """The small demo portal, started once per session; its env points clients at it."""
    from napari_cryoet_portal.demo.portal import DemoPortal

    portal = DemoPortal("small", cache_root=demo_cache)
    portal.start()
    portal.wait_ready()
    saved = {k: os.environ.get(k) for k in portal.environment()}
    os.environ.update(portal.environment())
    yield portal
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    portal.stop()


@pytest.fixture(scope="session")
def large_portal(demo_cache):
    """The large demo portal (200 datasets, 5000 runs, one dataset of 1200): built once per
    machine (~40 s, ~1.6 GB, cached), then up in about a second. Clients are pointed at it
    explicitly; the environment stays the small portal's."""
    from napari_cryoet_portal.demo.portal import DemoPortal

    portal = DemoPortal("large", cache_root=demo_cache)
    portal.start()
    portal.wait_ready()
    yield portal
    portal.stop()


@pytest.fixture
def large(large_portal):
    """The large portal with empty request logs."""
    large_portal.graphql.reset_log()
    large_portal.s3.reset_log()
    return large_portal


@pytest.fixture
def portal(demo_portal):
    """The session's demo portal with empty request logs."""
    demo_portal.graphql.reset_log()
    demo_portal.s3.reset_log()
    demo_portal.files.reset_log()
    return demo_portal


@pytest.fixture
def client(portal):
    from napari_cryoet_portal.portal import PortalClient

    with PortalClient(portal.api_url) as c:
        yield c
