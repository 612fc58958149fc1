"""The dock widget against the demo portal, over the real protocols.

Requests are counted per user action (``portal.graphql.requests``); nothing here asserts a
duration. Waiting is on the widget's signals, which is also what makes stale results
visible: a layer that arrives after the wait for the last selection is caught by a check.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from qtpy.QtCore import QModelIndex, Qt
from qtpy.QtWidgets import QAbstractItemView

from napari_cryoet_portal._qt.annotation_panel import AnnotationPanel, annotation_rows
from napari_cryoet_portal._qt.portal_widget import PortalWidget
from napari_cryoet_portal._qt.tree_model import NODE_ROLE, NodeKind, PortalTreeModel
from napari_cryoet_portal._qt.workers import TaskRunner
from napari_cryoet_portal.data.storage import read_bytes
from napari_cryoet_portal.demo import content
from napari_cryoet_portal.layers import METADATA_KEY
from napari_cryoet_portal.loading import preselected_files
from napari_cryoet_portal.portal.records import DatasetSummary, Page, RunSummary

OPEN_TIMEOUT = 30_000  # ms; generous for a loaded CI machine, never asserted


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer(show=False)


@pytest.fixture
def widget(viewer, portal, qtbot):
    """The widget docked in a hidden viewer, not yet connected."""
    w = PortalWidget(viewer)
    viewer.window.add_dock_widget(w, name="CryoET Data Portal")
    yield w
    w.cancel()
    assert TaskRunner.wait_for_threads(30_000)
    qtbot.wait(10)  # let queued results reach the (cancelled) tasks


@pytest.fixture
def connected(widget, portal, qtbot):
    with qtbot.waitSignal(widget.datasetsLoaded):
        widget.connect_to_portal(portal.api_url)
    portal.graphql.reset_log()
    return widget


def operations(portal) -> list[str | None]:
    return [r.operation_name for r in portal.graphql.requests]


def expand(w: PortalWidget, qtbot, node) -> None:
    with qtbot.waitSignal(w.runsLoaded, check_params_cb=lambda i: i == node.record.id):
        w.tree.expand(w.index_of(node))


def scroll_until(qtbot, scroll, done) -> None:
    """Scroll as a user does, again whenever rows have arrived, until ``done()``."""

    def attempt() -> bool:
        if not done():
            scroll()
        return done()

    qtbot.waitUntil(attempt, timeout=OPEN_TIMEOUT)


def showcase_run(w: PortalWidget, qtbot):
    dataset = w.model.dataset(content.SHOWCASE_DATASET_ID)
    if not dataset.children:
        expand(w, qtbot, dataset)
    return next(n for n in dataset.children if n.record.name == content.SHOWCASE_RUN_NAME)


def open_run(w: PortalWidget, qtbot, node) -> None:
    with qtbot.waitSignal(
        w.openFinished, timeout=OPEN_TIMEOUT, check_params_cb=lambda i: i == node.record.id
    ):
        w.select(node)


def plugin_layers(viewer):
    return [layer for layer in viewer.layers if METADATA_KEY in layer.metadata]


def world_points(layer) -> np.ndarray:
    return np.asarray(layer.data) * np.asarray(layer.scale) + np.asarray(layer.translate)


def world_extent(image):
    level0 = image.data[0] if image.multiscale else image.data
    scale, translate = np.asarray(image.scale), np.asarray(image.translate)
    return translate - scale / 2, translate + (np.asarray(level0.shape) - 0.5) * scale


def ngff_scales(tomogram) -> list[tuple[float, ...]]:
    attrs = json.loads(read_bytes(tomogram.s3_omezarr_dir.rstrip("/") + "/.zattrs"))
    datasets = attrs["multiscales"][0]["datasets"]
    return [tuple(d["coordinateTransformations"][0]["scale"]) for d in datasets]


def ndjson_lines(url: str) -> int:
    return sum(1 for line in read_bytes(url).splitlines() if line.strip())


# --- the tree model on its own ----------------------------------------------------------------


def _dataset(i: int, runs: int) -> DatasetSummary:
    return DatasetSummary(i, f"Dataset {i}", "Homo sapiens", runs, None, "2024-01-01")


def test_tree_model_pages_behind_a_placeholder(qtmodeltester):
    model = PortalTreeModel()
    requested = []
    model.fetchRequested.connect(requested.append)
    model.reset(connected=True)
    model.fetchMore(QModelIndex())
    model.fetchMore(QModelIndex())  # already loading: no second request
    assert requested == [model.root]
    model.add_datasets(Page((_dataset(1, 3), _dataset(2, 0)), total=3, offset=0, limit=2))
    assert model.rowCount() == 3  # two datasets + "Load more… (2 of 3)"
    assert model.index(2, 0).data() == "Load more… (2 of 3)"
    # only a node's first page comes through canFetchMore (Qt's view would page on and on)
    assert not model.canFetchMore(QModelIndex())
    first = model.index(0, 0)
    assert model.hasChildren(first) and model.canFetchMore(first)
    assert not model.hasChildren(model.index(1, 0))  # a dataset without runs
    model.fetchMore(first)
    dataset = model.node(first)
    assert requested[-1] is dataset and model.index(0, 0, first).data() == "Loading…"
    runs = tuple(RunSummary(10 + i, f"TS_{i}", 1, 1, 2) for i in range(3))
    model.add_runs(dataset, Page(runs, total=3, offset=0, limit=100))
    assert model.rowCount(first) == 3 and not model.canFetchMore(first)
    model.fetchMore(QModelIndex())  # not from a view's eager fetching…
    assert requested[-1] is dataset
    model.request_more(model.root)  # …but when the placeholder is reached
    assert requested[-1] is model.root
    model.add_datasets(Page((_dataset(3, 1),), total=3, offset=2, limit=2))
    assert model.rowCount() == 3
    # Qt's model tester walks (and eagerly fetches) everything, so it comes last
    qtmodeltester.check(model)
    model.show_search_results([_dataset(3, 1), _dataset(1, 3)])
    assert [model.index(r, 0).data() for r in range(2)] == ["Dataset 3", "Dataset 1"]
    assert model.rowCount(model.index(1, 0)) == 3  # the runs loaded before are kept
    model.clear_search()
    assert model.rowCount() == 3


def test_manifest_contributes_the_widget():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-cryoet-portal")
    (widget,) = manifest.contributions.widgets
    assert widget.display_name == "CryoET Data Portal"
    (command,) = [c for c in manifest.contributions.commands if c.id == widget.command]
    assert command.python_name == "napari_cryoet_portal._qt.portal_widget:PortalWidget"


# --- browsing ---------------------------------------------------------------------------------


def test_connect_lists_datasets_in_one_request(widget, portal, qtbot):
    portal.graphql.reset_log()
    with qtbot.waitSignal(widget.datasetsLoaded):
        widget.connect_to_portal(portal.api_url)
    assert operations(portal) == ["DatasetsPage"]
    datasets = portal.tables["Dataset"]
    assert widget.model.rowCount() == len(datasets)
    node = widget.model.dataset(content.BIG_DATASET_ID)
    name, details, ident = widget.model.texts(node)
    row = next(d for d in datasets if d["id"] == content.BIG_DATASET_ID)
    assert name == row["title"] and ident == str(row["id"])
    assert row["organismName"] in details and f"{content.BIG_DATASET_RUNS} runs" in details
    assert not widget.busy


@pytest.mark.parametrize(
    "size, dataset_id, runs, page",
    [
        ("small", content.BIG_DATASET_ID, content.BIG_DATASET_RUNS, 60),
        pytest.param(
            "large", content.HUGE_DATASET_ID, content.HUGE_DATASET_RUNS, 100, marks=pytest.mark.large
        ),
    ],
)
def test_runs_page_in_as_the_user_scrolls(viewer, request, qtbot, size, dataset_id, runs, page):
    """Expanding costs one request; later pages come only when scrolled to (a shown view)."""
    portal = request.getfixturevalue("portal" if size == "small" else "large")
    w = PortalWidget(viewer, page_size=page)
    qtbot.addWidget(w)
    w.resize(500, 700)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitSignal(w.datasetsLoaded):
        w.connect_to_portal(portal.api_url)
    # the user scrolls down the datasets to it (again and again, as rows arrive)
    scroll_until(qtbot, w.tree.scrollToBottom, lambda: w.model.dataset(dataset_id) is not None)
    dataset = w.model.dataset(dataset_id)
    portal.graphql.reset_log()
    w.tree.scrollTo(w.index_of(dataset))
    expand(w, qtbot, dataset)
    assert len(dataset.children) == page
    qtbot.wait(100)  # the placeholder is far below: nothing more is fetched
    assert operations(portal) == ["RunsPage"]

    def to_last_row() -> None:  # the user scrolls down to the "Load more…" row
        parent = w.index_of(dataset)
        last = parent.model().index(parent.model().rowCount(parent) - 1, 0, parent)
        w.tree.scrollTo(last, QAbstractItemView.ScrollHint.PositionAtBottom)

    scroll_until(qtbot, to_last_row, lambda: not dataset.has_more)
    names = [n.record.name for n in dataset.children]
    expected = [r["name"] for r in portal.tables["Run"] if r["datasetId"] == dataset_id]
    assert sorted(names) == sorted(expected) and len(names) == runs
    # one request per page (a dataset page too, if the datasets' "Load more…" came into view)
    runs_pages = [op for op in operations(portal) if op != "DatasetsPage"]
    assert runs_pages == ["RunsPage"] * math.ceil(runs / page)
    assert w.model.rowCount(w.model.index_of(dataset)) == runs  # no placeholder
    w.cancel()
    assert TaskRunner.wait_for_threads(30_000)


def test_search_filters_at_once_then_asks_the_server_once(connected, portal, qtbot):
    w = connected
    organism = next(d for d in portal.tables["Dataset"] if d["id"] == content.BIG_DATASET_ID)["organismName"]
    with qtbot.waitSignal(w.datasetsLoaded, timeout=5000):
        qtbot.keyClicks(w.search_edit, organism)
        # the local filter is instant: before the debounced request, only matching rows remain
        visible = [w.proxy.index(r, 0).data() for r in range(w.proxy.rowCount())]
        assert 0 < len(visible) < w.model.rowCount() or len(portal.tables["Dataset"]) == 1
    assert operations(portal) == ["SearchDatasets"]  # one request for all the keystrokes
    assert w.model.searching
    assert content.BIG_DATASET_ID in {n.record.id for n in w.model.root.children}
    # the server matches what the rows do not show (annotated objects): those rows stay
    portal.graphql.reset_log()
    with qtbot.waitSignal(w.datasetsLoaded, timeout=5000):
        w.search_edit.setText("proteasome")
    found = {n.record.id for n in w.model.root.children}
    assert content.SHOWCASE_DATASET_ID in found
    assert w.proxy.rowCount() == len(found)
    with qtbot.waitSignal(w.datasetsLoaded, timeout=5000):
        w.search_edit.clear()
    assert not w.model.searching and w.model.rowCount() == len(portal.tables["Dataset"])
    assert operations(portal) == ["SearchDatasets"]  # clearing costs nothing


def test_metadata_is_fetched_when_shown_and_cached(connected, portal, qtbot):
    w = connected
    dataset = w.model.dataset(content.SHOWCASE_DATASET_ID)
    w.select(dataset)
    qtbot.wait(50)
    assert operations(portal) == []  # the metadata tab is hidden: nothing fetched
    with qtbot.waitSignal(w.metadataShown, check_params_cb=lambda k, i: (k, i) == ("dataset", dataset.record.id)):
        w.tabs.setCurrentWidget(w.metadata)
    assert operations(portal) == ["DatasetMetadata"]
    keys = [w.metadata.tree.topLevelItem(i).text(0) for i in range(w.metadata.tree.topLevelItemCount())]
    assert "title" in keys and "authors" in keys
    w.metadata.filter.setText("ORGANISM")
    shown = [
        w.metadata.tree.topLevelItem(i).text(0)
        for i in range(w.metadata.tree.topLevelItemCount())
        if not w.metadata.tree.topLevelItem(i).isHidden()
    ]
    assert shown and all("organism" in k.lower() for k in shown)
    other = w.model.dataset(content.BIG_DATASET_ID)
    with qtbot.waitSignal(w.metadataShown):
        w.select(other)
    with qtbot.waitSignal(w.metadataShown):
        w.select(dataset)  # cached: no request
    assert operations(portal) == ["DatasetMetadata", "DatasetMetadata"]


# --- opening ----------------------------------------------------------------------------------


def test_selecting_a_run_opens_image_then_annotations(connected, viewer, portal, qtbot):
    w = connected
    run = showcase_run(w, qtbot)
    inserted = []
    viewer.layers.events.inserted.connect(lambda e: inserted.append(e.value))
    portal.graphql.reset_log()
    open_run(w, qtbot, run)
    assert operations(portal) == ["RunDetail"]
    detail = run.detail
    tomogram = detail.default_tomogram()

    image = inserted[0]
    assert image.multiscale and len(image.data) == 3
    scales = ngff_scales(tomogram)
    assert tuple(image.scale) == pytest.approx(scales[0])
    assert image.metadata[METADATA_KEY]["tomogram_id"] == tomogram.id
    low, high = world_extent(image)

    preselected = preselected_files(detail, tomogram)
    by_file = {}
    for layer in inserted[1:]:
        by_file.setdefault(layer.metadata[METADATA_KEY]["annotation_file_id"], []).append(layer)
    assert set(by_file) == {f.id for f in preselected}
    for f in preselected:
        layers = by_file[f.id]
        assert all(layer.metadata[METADATA_KEY]["run_id"] == run.record.id for layer in layers)
        if f.shape_type in ("Point", "OrientedPoint", "InstanceSegmentation"):
            points = layers[0]
            assert len(points.data) == ndjson_lines(f.s3_path)
            world = world_points(points)
            assert np.all(world >= low) and np.all(world <= high), f.shape_type
        if f.shape_type == "OrientedPoint":
            assert [type(layer).__name__ for layer in layers] == ["Points", "Vectors"]
            assert len(layers[1].data) == len(layers[0].data)
            assert {"r00", "r22"} <= set(layers[0].features.columns)
    # the particles the opened slice cuts are drawn: napari draws points only within the
    # slice's thickness, which the widget set to a particle's diameter
    points = [layer for layer in inserted if type(layer).__name__ == "Points"]
    diameter = max(float(np.max(layer.size)) * layer.scale[0] for layer in points)
    assert viewer.dims.thickness[0] == pytest.approx(diameter)
    assert sum(len(layer._view_indices) for layer in points) > 0
    # the panel lists every file of the run, preselected ones checked
    assert w.annotations.files.topLevelItemCount() == len(detail.annotation_files())
    assert all(w.annotations.is_checked(f.id) for f in preselected)
    # the default tomogram's key photo shows in the panel
    qtbot.waitUntil(lambda: w.annotations.preview.pixmap() is not None and not w.annotations.preview.pixmap().isNull())
    # expanding the selected run costs nothing: its detail is the tree's children
    portal.graphql.reset_log()
    w.tree.expand(w.index_of(run))
    assert [c.kind for c in run.children].count(NodeKind.TOMOGRAM) == len(detail.tomograms)
    assert operations(portal) == []


def test_annotation_at_another_spacing_lines_up(connected, viewer, portal, qtbot):
    """The community picks are at 16 Å, the tomogram at 10 Å: checking them loads them in Å."""
    w = connected
    run = showcase_run(w, qtbot)
    open_run(w, qtbot, run)
    detail = run.detail
    tomogram = detail.default_tomogram()
    coarse = next(
        f for f in detail.annotation_files()
        if f.shape_type == "Point" and detail.voxel_spacing_of(f) == content.SHOWCASE_COARSE_SPACING
    )
    fine = next(
        f for f in preselected_files(detail, tomogram)
        if f.shape_type == "Point"
        and detail.annotation(f.annotation_id).object_id == detail.annotation(coarse.annotation_id).object_id
    )
    assert not w.annotations.is_checked(coarse.id)
    with qtbot.waitSignal(w.layersChanged, timeout=OPEN_TIMEOUT):
        w.set_annotation_checked(coarse.id, True)
    (layer,) = w.layers.get(("file", coarse.id))
    assert tuple(layer.scale) == (content.SHOWCASE_COARSE_SPACING,) * 3
    assert len(layer.data) == ndjson_lines(coarse.s3_path)
    image = w.layers.get("image")[0]
    low, high = world_extent(image)
    world = world_points(layer)
    assert np.all(world >= low) and np.all(world <= high)
    fine_world = world_points(w.layers.get(("file", fine.id))[0])
    nearest = np.linalg.norm(world[:, None] - fine_world[None], axis=2).min(axis=1)
    assert np.all(nearest <= content.SHOWCASE_COARSE_SPACING)
    # unchecking removes exactly its layers
    with qtbot.waitSignal(w.layersChanged):
        w.set_annotation_checked(coarse.id, False)
    assert layer not in viewer.layers and w.layers.get(("file", fine.id))


def test_the_view_sharpens_in_the_background(connected, viewer, portal, qtbot):
    """The first slice is the coarse preview; the fetched chunks replace it, exactly."""
    from napari_cryoet_portal.data.progressive import ProgressiveLevel
    from napari_cryoet_portal.data.pyramid import open_pyramid

    w = connected
    run = showcase_run(w, qtbot)
    open_run(w, qtbot, run)
    (image,) = w.layers.get("image")
    # every level, the coarsest too (its middle plane was read with the pyramid)
    assert all(isinstance(level, ProgressiveLevel) for level in image.data)
    masks = [layer for layer in plugin_layers(viewer) if type(layer).__name__ == "Labels"]
    assert masks and all(isinstance(m.data[0], ProgressiveLevel) for m in masks)
    fetchers = w.layers.fetchers()
    assert len(fetchers) == 1 + len(masks)
    qtbot.waitUntil(lambda: all(f.idle for f in fetchers), timeout=OPEN_TIMEOUT)
    qtbot.wait(50)  # the refreshes queued on the main thread
    assert not any(f.errors for f in fetchers)
    # what napari shows is the real level, not the preview: the plane itself, even though
    # the z slice was thickened for the particles
    assert viewer.dims.thickness[0] > 0 and image.projection_mode == "none"
    level = image.data_level
    assert level < len(image.data) - 1  # a progressive level is on screen
    real = np.asarray(open_pyramid(image.metadata[METADATA_KEY]["url"]).levels[level])
    shown = np.asarray(image._slice.image.raw)
    z = int(round((viewer.dims.point[0] - image.translate[0]) / image.scale[0] / image.downsample_factors[level][0]))
    corners = image.corner_pixels
    expected = real[z, corners[0, 1] : corners[1, 1] + 1, corners[0, 2] : corners[1, 2] + 1]
    np.testing.assert_array_equal(shown, expected)


def test_pinning_a_level_shows_that_level_alone(connected, viewer, portal, qtbot):
    w = connected
    run = showcase_run(w, qtbot)
    open_run(w, qtbot, run)
    tomogram = run.detail.default_tomogram()
    scales = ngff_scales(tomogram)
    annotations = [layer for layer in plugin_layers(viewer) if layer not in w.layers.get("image")]
    portal.graphql.reset_log()
    with qtbot.waitSignal(w.layersChanged, timeout=OPEN_TIMEOUT):
        w.pin_level(2)
    (image,) = w.layers.get("image")
    assert not image.multiscale and image.data.ndim == 3
    assert tuple(image.scale) == pytest.approx(scales[2])
    assert w.annotations.level.currentData() == 2
    with qtbot.waitSignal(w.layersChanged, timeout=OPEN_TIMEOUT):
        w.pin_level(None)
    (image,) = w.layers.get("image")
    assert image.multiscale and len(image.data) == 3
    assert all(layer in viewer.layers for layer in annotations)  # only the image was swapped
    assert operations(portal) == []


def test_rapid_reselection_leaves_only_the_last_run(connected, viewer, portal, qtbot):
    w = connected
    user_layer = viewer.add_points(np.zeros((1, 3)), name="mine")
    dataset = w.model.dataset(content.BIG_DATASET_ID)
    expand(w, qtbot, dataset)
    runs = dataset.children[:50]
    selected = {"run": None}
    stale = []

    def on_insert(event):
        run_id = event.value.metadata.get(METADATA_KEY, {}).get("run_id")
        if run_id is not None and run_id != selected["run"]:
            stale.append(event.value.name)

    viewer.layers.events.inserted.connect(on_insert)
    for i, node in enumerate(runs[:-1]):
        selected["run"] = node.record.id
        w.select(node)
        if i % 7 == 3:
            qtbot.wait(15)  # let some answers arrive while newer selections follow
    selected["run"] = runs[-1].record.id
    open_run(w, qtbot, runs[-1])
    qtbot.wait(300)  # anything still in flight would land now
    assert TaskRunner.wait_for_threads(30_000)
    qtbot.wait(50)
    assert stale == []
    ours = plugin_layers(viewer)
    assert ours and {layer.metadata[METADATA_KEY]["run_id"] for layer in ours} == {runs[-1].record.id}
    assert user_layer in viewer.layers
    # opening another run replaces the plugin's layers and still leaves the user's alone
    open_run(w, qtbot, showcase_run(w, qtbot))
    assert {layer.metadata[METADATA_KEY]["run_name"] for layer in plugin_layers(viewer)} == {
        content.SHOWCASE_RUN_NAME
    }
    assert user_layer in viewer.layers


def test_cancel_drops_work_in_flight(connected, viewer, portal, qtbot):
    w = connected
    run = showcase_run(w, qtbot)
    w.select(run)
    assert w.busy
    w.cancel()
    assert not w.busy and not w.cancel_button.isEnabled()
    assert TaskRunner.wait_for_threads(30_000)
    qtbot.wait(50)
    assert plugin_layers(viewer) == []
    open_run(w, qtbot, run)  # and the same run opens afterwards
    assert plugin_layers(viewer)


def test_server_down_is_reported_and_recovered(connected, portal, qtbot):
    w = connected
    dataset = w.model.dataset(content.SHOWCASE_DATASET_ID)
    index = w.index_of(dataset)
    portal.graphql.stop()
    try:
        with qtbot.waitSignal(w.errorOccurred, timeout=OPEN_TIMEOUT) as error:
            w.tree.expand(index)
        assert "runs of dataset" in error.args[0] and "cannot reach" in error.args[0]
        assert error.args[0] in w.status.text() or w.status.text().startswith(error.args[0][:20])
        assert not w.busy and dataset.failed and not dataset.children
        assert w.model.rowCount() == len(portal.tables["Dataset"])  # the tree is still there
    finally:
        portal.graphql.start()
    portal.graphql.reset_log()
    with qtbot.waitSignal(w.runsLoaded):
        w.tree.collapse(index)
        w.tree.expand(index)  # the user tries again
    assert operations(portal) == ["RunsPage"]
    with qtbot.waitSignal(w.datasetsLoaded):
        w.connect_to_portal()
    assert w.model.rowCount() == len(portal.tables["Dataset"])


def test_unsupported_files_are_listed_but_disabled(connected, qtbot):
    from dataclasses import replace

    w = connected
    run = showcase_run(w, qtbot)
    with qtbot.waitSignal(w.runDetailLoaded):
        w.tree.expand(w.index_of(run))
    detail = run.detail
    annotation = detail.annotations[0]
    odd = replace(annotation.files[0], id=-1, format="mrc", is_visualization_default=True)
    detail = replace(detail, annotations=(replace(annotation, files=(*annotation.files, odd)), *detail.annotations[1:]))
    tomogram = detail.default_tomogram()
    rows = annotation_rows(detail, tomogram, preselected_files(detail, tomogram))
    panel = AnnotationPanel()
    qtbot.addWidget(panel)
    panel.set_rows(rows)
    item = panel.files.topLevelItem([r.file.id for r in rows].index(-1))
    assert item.isDisabled() and item.text(1) == "not supported yet"
    assert item.checkState(0) == Qt.CheckState.Unchecked  # never loaded
    assert odd not in preselected_files(detail, tomogram)


def test_results_after_the_runner_is_deleted_are_dropped(qtbot):
    """A widget closed while a request is in flight: its result reaches nobody, nothing crashes."""
    import threading

    from qtpy.QtWidgets import QWidget

    owner = QWidget()
    runner = TaskRunner(owner)
    release, got = threading.Event(), []
    runner.submit(
        "slow", release.wait, 10, label="waiting", on_result=got.append, on_error=got.append
    )
    owner.deleteLater()
    qtbot.waitUntil(lambda: _gone(runner))
    release.set()
    assert TaskRunner.wait_for_threads(10_000)
    qtbot.wait(50)  # the queued result is delivered, and dropped
    assert got == []


def _gone(obj) -> bool:
    try:
        obj.objectName()
    except RuntimeError:
        return True
    return False


def test_keyboard_opens_the_run_the_user_stops_on(connected, viewer, portal, qtbot):
    """Arrow keys move through the tree; passing runs costs nothing, the last one opens."""
    w = connected
    w.show()
    qtbot.waitExposed(w)
    dataset = w.model.dataset(content.BIG_DATASET_ID)
    index = w.index_of(dataset)
    w.tree.setFocus()
    w.tree.setCurrentIndex(index)
    with qtbot.waitSignal(w.runsLoaded):
        qtbot.keyClick(w.tree, Qt.Key.Key_Right)  # expands, as a click on the arrow does
    portal.graphql.reset_log()
    for _ in range(6):
        qtbot.keyClick(w.tree, Qt.Key.Key_Down)
    target = w.tree.currentIndex().data(NODE_ROLE)
    assert target is dataset.children[5]
    with qtbot.waitSignal(
        w.openFinished, timeout=OPEN_TIMEOUT, check_params_cb=lambda i: i == target.record.id
    ):
        pass
    assert operations(portal) == ["RunDetail"]
    assert {layer.metadata[METADATA_KEY]["run_id"] for layer in plugin_layers(viewer)} == {target.record.id}


def test_broken_files_are_reported_and_the_widget_goes_on(connected, viewer, portal, qtbot):
    """Malformed metadata and a malformed ndjson file: a message in the widget and a napari
    notification for each, the rest of the run still opens, and all is well once fixed."""
    from napari.utils.notifications import notification_manager

    w = connected
    run = showcase_run(w, qtbot)
    open_run(w, qtbot, run)
    detail = run.detail
    tomogram = detail.default_tomogram()
    points = next(f for f in preselected_files(detail, tomogram) if f.shape_type == "Point")
    broken = {
        tomogram.s3_omezarr_dir.rstrip("/") + "/.zattrs": b'{"multiscales": [',
        points.s3_path: b'{"type": "point", "location": {"x": 1, "y": 2, "z": 3}}\n{"type": "point", "loc',
    }
    original = {url: read_bytes(url) for url in broken}
    other = w.model.dataset(content.BIG_DATASET_ID)
    expand(w, qtbot, other)
    notes, errors = [], []
    notification_manager.notification_ready.connect(notes.append)
    w.errorOccurred.connect(errors.append)
    try:
        for url, data in broken.items():
            portal.s3.put_object(content.BUCKET, url.split(content.BUCKET + "/", 1)[1], data)
        open_run(w, qtbot, other.children[0])  # elsewhere, then back: opened afresh
        open_run(w, qtbot, run)
        assert any(f"tomogram {tomogram.id}" in e and "JSON" in e for e in errors), errors
        assert any(f"annotation file {points.id}" in e and "line 2" in e for e in errors), errors
        assert {str(n.message) for n in notes} >= set(errors)
        assert "failed" in w.annotations.file_state(points.id)
        # what could be read is shown: the other preselected annotations
        shown = {layer.metadata[METADATA_KEY].get("annotation_file_id") for layer in plugin_layers(viewer)}
        assert shown and points.id not in shown and None not in shown
    finally:
        for url, data in original.items():
            portal.s3.put_object(content.BUCKET, url.split(content.BUCKET + "/", 1)[1], data)
        notification_manager.notification_ready.disconnect(notes.append)
    open_run(w, qtbot, other.children[0])
    open_run(w, qtbot, run)  # fixed: everything opens again
    kinds = {layer.metadata[METADATA_KEY]["kind"] for layer in plugin_layers(viewer)}
    assert "tomogram" in kinds
    assert w.layers.get(("file", points.id))


def test_replacing_layers_leaves_the_heap_unfrozen(connected, viewer, portal, qtbot):
    """Layers are removed with the heap frozen (napari collects garbage once per removed
    layer); afterwards nothing stays frozen, so the old layers' cycles can be collected, and
    a heap frozen by someone else stays as they left it."""
    import gc

    w = connected
    run = showcase_run(w, qtbot)
    open_run(w, qtbot, run)
    assert plugin_layers(viewer)
    w.layers.clear()
    assert gc.get_freeze_count() == 0
    assert not plugin_layers(viewer)
    gc.freeze()
    try:
        w.layers.clear()
        assert gc.get_freeze_count() > 0  # still frozen: not ours to thaw
    finally:
        gc.unfreeze()


# --- which tomogram, which annotations line up -------------------------------------------------


def test_the_panel_says_why_this_tomogram_and_marks_other_alignments(connected, viewer, portal, qtbot):
    from dataclasses import replace

    from napari_cryoet_portal._qt.annotation_panel import NOT_ALIGNED

    w = connected
    run = showcase_run(w, qtbot)
    open_run(w, qtbot, run)
    assert "Default: visualization default" in w.annotations.title.text()
    detail = run.detail
    tomogram = detail.default_tomogram()
    # every file of the showcase shares its alignment: all "yes", at both voxel spacings
    column = AnnotationPanel._COLUMNS.index("Aligned")
    items = [w.annotations.files.topLevelItem(i) for i in range(w.annotations.files.topLevelItemCount())]
    assert {item.text(column) for item in items} == {"yes"}
    # a file of another alignment is listed as not aligned, never preselected, still loadable
    annotation = detail.annotations[0]
    stray = replace(annotation.files[0], id=-2, alignment_id=(tomogram.alignment_id or 0) + 1000)
    detail = replace(detail, annotations=(replace(annotation, files=(*annotation.files, stray)), *detail.annotations[1:]))
    preselected = preselected_files(detail, tomogram)
    assert stray.is_visualization_default and stray not in preselected
    rows = annotation_rows(detail, tomogram, preselected)
    panel = AnnotationPanel()
    qtbot.addWidget(panel)
    panel.set_rows(rows)
    item = panel.files.topLevelItem([r.file.id for r in rows].index(-2))
    assert item.text(column) == NOT_ALIGNED and "may require transformation" in item.toolTip(column)
    assert item.checkState(0) == Qt.CheckState.Unchecked and not item.isDisabled()


def test_without_flags_the_tomogram_closest_to_10_angstrom_opens(connected, viewer, portal, qtbot, monkeypatch):
    """No tomogram flagged visualization default or portal standard: the one nearest the
    portal's 10 Å viewing resolution opens, and the panel says so."""
    w = connected
    dataset = w.model.dataset(content.SHOWCASE_DATASET_ID)
    expand(w, qtbot, dataset)
    run = next(n for n in dataset.children if n.record.name == content.SHOWCASE_RUN_NAME)
    for row in portal.tables["Tomogram"]:
        if row["runId"] == run.record.id:
            monkeypatch.setitem(row, "isVisualizationDefault", False)
            monkeypatch.setitem(row, "isPortalStandard", False)
    open_run(w, qtbot, run)
    (image,) = w.layers.get("image")
    opened = next(t for t in run.detail.tomograms if t.id == image.metadata[METADATA_KEY]["tomogram_id"])
    assert opened.voxel_spacing == content.SHOWCASE_FINE_SPACING
    assert "closest to 10 Å" in w.annotations.title.text()


def test_the_curators_contrast_range_is_the_images(connected, viewer, portal, qtbot, monkeypatch):
    w = connected
    dataset = w.model.dataset(content.SHOWCASE_DATASET_ID)
    expand(w, qtbot, dataset)
    run = next(n for n in dataset.children if n.record.name == content.SHOWCASE_RUN_NAME)
    row = next(t for t in portal.tables["Tomogram"] if t["runId"] == run.record.id and t["isVisualizationDefault"])
    state = {"layers": [{"type": "image", "name": "TS_001", "shaderControls": {"normalized": {"range": [-0.5, 0.25]}}}]}
    monkeypatch.setitem(row, "neuroglancerConfig", json.dumps(state))
    open_run(w, qtbot, run)
    (image,) = w.layers.get("image")
    assert tuple(image.contrast_limits) == pytest.approx((-0.5, 0.25))
    assert image.metadata[METADATA_KEY]["contrast_limits_source"] == "neuroglancer config"


def _demo_run(w: PortalWidget, qtbot, dataset_id: int, name: str):
    dataset = w.model.dataset(dataset_id)
    expand(w, qtbot, dataset)
    return next(n for n in dataset.children if n.record.name == name)


def test_a_run_without_a_default_opens_at_10_angstrom_with_its_finer_annotations(connected, viewer, qtbot):
    """10010/TS_105_5: no flags; the 10.012 Å tomogram opens with every annotation, all at
    4.99 Å, checked and shown."""
    w = connected
    run = _demo_run(w, qtbot, content.ML_DATASET_ID, content.ML_RUN_NAME)
    errors = []
    w.errorOccurred.connect(errors.append)
    open_run(w, qtbot, run)
    assert errors == []
    (image,) = w.layers.get("image")
    assert image.scale[0] == pytest.approx(content.ML_COARSE_SPACING)
    assert "closest to 10 Å" in w.annotations.title.text()
    detail = run.detail
    files = [f for f in detail.annotation_files() if f.format in ("ndjson", "zarr")]
    assert files
    for f in files:
        assert w.annotations.is_checked(f.id) and w.annotations.file_state(f.id).startswith("shown")
        (layer, *_) = w.layers.get(("file", f.id))
        assert layer.scale[0] == pytest.approx(content.ML_FINE_SPACING)


def test_a_legacy_run_opens_every_layer(connected, viewer, qtbot):
    """10011/TS_LEGACY: a unit-less store, a float mask, a mask missing a level and a mesh
    scene all open in the widget as in scripts."""
    w = connected
    run = _demo_run(w, qtbot, content.LEGACY_DATASET_ID, content.LEGACY_RUN_NAME)
    errors = []
    w.errorOccurred.connect(errors.append)
    open_run(w, qtbot, run)
    assert errors == []
    (image,) = w.layers.get("image")
    assert tuple(image.scale) == pytest.approx((content.LEGACY_SPACING,) * 3)
    kinds = {}
    for f in preselected_files(run.detail, run.detail.default_tomogram()):
        assert w.annotations.file_state(f.id).startswith("shown"), w.annotations.file_state(f.id)
        for layer in w.layers.get(("file", f.id)):
            kinds.setdefault(type(layer).__name__, []).append(layer)
    assert sorted(kinds) == ["Labels", "Points", "Surface"]
    assert all(np.issubdtype(layer.data[0].dtype, np.integer) for layer in kinds["Labels"])


def test_streaming_shows_progress_and_cancel_stops_it(connected, viewer, portal, qtbot):
    """Fetching voxels over a slow link enables Cancel and shows progress in napari's
    activity dock; a pinned level keeps streaming (its pyramid's fetcher lives on); Cancel
    drops what is waiting."""
    from napari_cryoet_portal.data.progressive import fetchers_in
    from napari_cryoet_portal.demo.link import Link

    w = connected
    states: list[bool] = []
    shown_by = w.layers.on_fetching

    def record(fetching: bool) -> None:
        states.append(fetching)
        shown_by(fetching)

    w.layers.on_fetching = record
    run = showcase_run(w, qtbot)
    open_run(w, qtbot, run)
    fetchers = w.layers.fetchers()
    qtbot.waitUntil(lambda: all(f.idle for f in fetchers), timeout=OPEN_TIMEOUT)
    portal.s3.link = Link(mbps=2.0, latency_s=0.05)  # ~0.6 s for a level-0 plane's blocks
    try:
        with qtbot.waitSignal(w.layersChanged, timeout=OPEN_TIMEOUT):
            w.pin_level(0)
        (image,) = w.layers.get("image")
        (fetcher,) = fetchers_in(image.data)
        assert fetcher in fetchers  # the same pyramid's fetcher as before the pin
        qtbot.waitUntil(lambda: True in states, timeout=OPEN_TIMEOUT)
        assert w.cancel_button.isEnabled()
        qtbot.waitUntil(lambda: fetcher.idle, timeout=OPEN_TIMEOUT)
        qtbot.waitUntil(lambda: states[-1] is False, timeout=OPEN_TIMEOUT)
    finally:
        portal.s3.link = None
    assert not fetcher.errors and not w.cancel_button.isEnabled()
    assert np.asarray(image._slice.image.raw).any()
    # Cancel drops what is waiting to be fetched
    fetcher.settle_s = 10.0  # the next request waits long enough to be cancelled
    step = viewer.dims.current_step[0]
    viewer.dims.set_current_step(0, (step + viewer.dims.nsteps[0] // 2) % viewer.dims.nsteps[0])
    qtbot.wait(50)
    assert not fetcher.idle
    w.cancel()
    qtbot.waitUntil(lambda: fetcher.idle, timeout=OPEN_TIMEOUT)
