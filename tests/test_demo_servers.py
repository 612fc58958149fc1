"""The demo's S3 and file servers answer object reads as S3 and a CDN do: ranges cost what
they return, requests are logged with their Range, and a shaped link paces every byte."""

from __future__ import annotations

import time

import pytest
import urllib3

from napari_cryoet_portal.demo import content
from napari_cryoet_portal.demo.link import Link
from napari_cryoet_portal.demo.ranges import parse_range


def _logged_at_least(server, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(server.requests) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def _a_chunk_key(portal) -> str:
    tomogram = next(t for t in portal.tables["Tomogram"] if t["s3OmezarrDir"])
    return content.bucket_key(tomogram["s3OmezarrDir"]) + "/0/0/0/0"


def test_s3_ranged_gets_return_exactly_the_bytes_asked_for(portal):
    key = _a_chunk_key(portal)
    whole = (portal.content_dir / "bucket" / key).read_bytes()
    url = f"{portal.s3_endpoint_url}/{content.BUCKET}/{key}"
    http = urllib3.PoolManager()
    full = http.request("GET", url)
    assert full.status == 200 and full.data == whole and full.headers["Accept-Ranges"] == "bytes"
    part = http.request("GET", url, headers={"Range": "bytes=16-543"})
    assert part.status == 206 and part.data == whole[16:544]
    assert part.headers["Content-Range"] == f"bytes 16-543/{len(whole)}"
    assert part.headers["ETag"] == full.headers["ETag"]
    tail = http.request("GET", url, headers={"Range": "bytes=-100"})
    assert tail.status == 206 and tail.data == whole[-100:]
    beyond = http.request("GET", url, headers={"Range": f"bytes={len(whole)}-"})
    assert beyond.status == 416
    head = http.request("HEAD", url)
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(whole)
    _logged_at_least(portal.s3, 5)  # a request is logged once its body is done: after the client has it
    logged = [(r.method, r.status, r.nbytes, r.range) for r in portal.s3.requests]
    assert logged == [
        ("GET", 200, len(whole), None),
        ("GET", 206, 528, "bytes=16-543"),
        ("GET", 206, 100, "bytes=-100"),
        ("GET", 416, 0, f"bytes={len(whole)}-"),
        ("HEAD", 200, 0, None),
    ]
    missing = http.request("GET", url + "-missing")
    assert missing.status == 404 and b"NoSuchKey" in missing.data  # moto's own answer


def test_s3_listing_and_replaced_objects_stay_moto_s(portal):
    key = _a_chunk_key(portal)
    http = urllib3.PoolManager()
    listing = http.request("GET", f"{portal.s3_endpoint_url}/{content.BUCKET}?list-type=2&prefix={key}")
    assert listing.status == 200 and key.encode() in listing.data
    original = (portal.content_dir / "bucket" / key).read_bytes()
    portal.s3.put_object(content.BUCKET, key, b"damaged")
    try:
        got = http.request("GET", f"{portal.s3_endpoint_url}/{content.BUCKET}/{key}", headers={"Range": "bytes=0-2"})
        assert got.status == 206 and got.data == b"dam"
    finally:
        portal.s3.put_object(content.BUCKET, key, original)


def test_file_server_ranges_and_confinement(portal):
    key = _a_chunk_key(portal)
    whole = (portal.content_dir / "bucket" / key).read_bytes()
    http = urllib3.PoolManager()
    part = http.request("GET", portal.files_url + key, headers={"Range": "bytes=0-15"})
    assert part.status == 206 and part.data == whole[:16]
    assert http.request("GET", portal.files_url + key).data == whole
    assert http.request("GET", portal.files_url + "../tables.json").status == 404
    assert http.request("GET", portal.files_url + "%2e%2e/tables.json").status == 404
    assert http.request("GET", portal.files_url + "nope").status == 404
    _logged_at_least(portal.files, 5)
    logged = [(r.method, r.status, r.nbytes, r.range) for r in portal.files.requests]
    assert logged[:2] == [("GET", 206, 16, "bytes=0-15"), ("GET", 200, len(whole), None)]


def test_parse_range_forms():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 5)
    assert parse_range("bytes=2-", 10) == (2, 10)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=5-100", 10) == (5, 10)
    assert parse_range("bytes=10-", 10) is False
    assert parse_range("bytes=-0", 10) is False
    assert parse_range("bytes=0-1,4-5", 10) is None  # several ranges: answered whole
    assert parse_range("items=0-1", 10) is None


def test_link_shares_one_pipe_between_connections():
    link = Link(mbps=8.0, latency_s=0.02)  # 1 MB/s
    assert link.bytes_per_s == 1e6 and link.shaping
    first = link.book(100_000)  # 100 ms of pipe
    second = link.book(10_000)  # booked behind the first, whichever connection sends it
    assert second - first == pytest.approx(0.01)
    assert not Link().shaping
    for bad in ({"mbps": 0}, {"mbps": -1}, {"latency_s": -0.1}):
        try:
            Link(**bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


@pytest.mark.large
def test_virtual_chunks_are_served_by_s3_and_files_alike(large):
    from napari_cryoet_portal.demo.virtual import VirtualObjects

    virtual = VirtualObjects.load(large.content_dir)
    key = next(iter(virtual.keys()))
    data = virtual.get(key)
    assert data and not (large.content_dir / "bucket" / key).exists()  # made on request
    http = urllib3.PoolManager()
    s3 = http.request("GET", f"{large.s3_endpoint_url}/{content.BUCKET}/{key}", headers={"Range": "bytes=0-15"})
    files = http.request("GET", large.files_url + key)
    assert s3.status == 206 and s3.data == data[:16]
    assert files.status == 200 and files.data == data
