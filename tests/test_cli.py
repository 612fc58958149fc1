"""The command line: ``ls`` against the demo portal, and ``serve-demo`` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from napari_cryoet_portal.cli import main


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_json_lists_every_dataset_with_run_counts_in_one_request(portal, capsys):
    code, out, _ = run_cli(capsys, "ls", "--api", portal.api_url, "--json")
    assert code == 0
    listed = json.loads(out)
    run_counts = Counter(r["datasetId"] for r in portal.tables["Run"])
    assert {d["id"]: d["run_count"] for d in listed} == {
        d["id"]: run_counts[d["id"]] for d in portal.tables["Dataset"]
    }
    assert all({"id", "title", "organism", "run_count"} <= set(d) for d in listed)
    assert len(portal.graphql.requests) == 1


def test_ls_dataset_lists_all_runs(portal, capsys):
    dataset_id, n = Counter(r["datasetId"] for r in portal.tables["Run"]).most_common(1)[0]
    code, out, _ = run_cli(capsys, "ls", str(dataset_id), "--api", portal.api_url, "--json")
    assert code == 0
    runs = json.loads(out)
    assert len(runs) == n
    assert all({"id", "name", "tomogram_count", "annotation_count"} <= set(r) for r in runs)


@pytest.mark.large
def test_ls_lists_every_run_of_a_dataset_over_1000_runs(large, capsys):
    from napari_cryoet_portal.demo import content

    code, out, _ = run_cli(capsys, "ls", str(content.HUGE_DATASET_ID), "--api", large.api_url, "--json")
    assert code == 0
    runs = json.loads(out)
    expected = {r["id"] for r in large.tables["Run"] if r["datasetId"] == content.HUGE_DATASET_ID}
    assert len(runs) == len(expected) == content.HUGE_DATASET_RUNS
    assert {r["id"] for r in runs} == expected
    # one request per page of the root `runs` field (connections would stop at 100)
    operations = [r.operation_name for r in large.graphql.requests]
    assert set(operations) == {"RunsPage"} and 1 < len(operations) < content.HUGE_DATASET_RUNS / 50


def test_ls_table_and_search(portal, capsys):
    code, out, _ = run_cli(capsys, "ls", "--api", portal.api_url)
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["ID", "RUN_COUNT", "ORGANISM"]
    assert len(lines) == len(portal.tables["Dataset"])
    title = portal.tables["Dataset"][0]["title"]
    code, out, _ = run_cli(capsys, "ls", "--api", portal.api_url, "--search", title, "--json")
    assert portal.tables["Dataset"][0]["id"] in {d["id"] for d in json.loads(out)}


def test_ls_unreachable_api_is_a_clear_error(capsys):
    code, _, err = run_cli(capsys, "ls", "--api", "http://127.0.0.1:9/graphql")
    assert code == 1
    assert "cannot reach" in err


def test_serve_demo_prints_exports_once_ready_and_stops_on_sigterm(demo_cache, tmp_path):
    env = {**os.environ, "NAPARI_CRYOET_PORTAL_CACHE": str(demo_cache)}
    env.pop("CRYOET_PORTAL_API_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_cryoet_portal", "serve-demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        exports = dict(
            proc.stdout.readline().strip().removeprefix("export ").split("=", 1) for _ in range(2)
        )
        assert set(exports) == {"CRYOET_PORTAL_API_URL", "AWS_ENDPOINT_URL_S3"}
        listing = subprocess.run(
            [sys.executable, "-m", "napari_cryoet_portal", "ls", "--json"],
            env={**env, **exports},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listing.returncode == 0, listing.stderr
        assert len(json.loads(listing.stdout)) >= 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
