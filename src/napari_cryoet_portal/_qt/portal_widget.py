"""The dock widget: browse the portal as a lazy tree, open a run's tomogram and annotations.

Everything that waits on the network or decodes data runs in a worker (:mod:`.workers`);
this module decides *what* to fetch and applies results on the main thread. Opening works
in generations: every open request starts a new one and cancels the work of the previous,
and a result is applied only while its generation is current, so a slow answer for a run
the user has already left can never put layers into the viewer. The previous run's layers
stay until the new run's image (or its failure) arrives, then they are replaced at once;
annotations wait for the image, so the image always comes first.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from napari.components import ViewerModel
from napari.layers import Layer, Points
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QItemSelectionModel, QModelIndex, QSize, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel
from superqt.utils import QSignalDebouncer

from ..data.pyramid import Pyramid
from ..data.storage import DataAccessError, warm_up
from ..layers import METADATA_KEY, LayerData, tomogram_layer
from ..loading import UnsupportedAnnotation, annotation_layers, open_tomogram, preselected_files
from ..portal import PortalClient, PortalError, default_api_url
from ..portal.records import AnnotationFile, DatasetSummary, Page, RunDetail, RunSummary, Tomogram
from .annotation_panel import ALL_LEVELS, AnnotationPanel, annotation_rows
from .metadata_panel import MetadataPanel
from .thumbnails import ThumbnailCache
from .tree_model import NODE_ROLE, Node, NodeKind, PortalFilterProxy, PortalTreeModel
from .tree_view import PortalTreeView
from .viewer_layers import PluginLayers
from .workers import TaskRunner

__all__ = ["PortalWidget"]

logger = logging.getLogger(__name__)

KEYBOARD_OPEN_DELAY_MS = 200
"""Moving through the tree with the keyboard opens the row the user stops on."""

#: failures that are the portal's or the data's, not this plugin's: reported without a traceback
EXPECTED_ERRORS = (PortalError, DataAccessError, LookupError, OSError)

_METADATA_KINDS = {
    NodeKind.DATASET: "dataset",
    NodeKind.RUN: "run",
    NodeKind.TOMOGRAM: "tomogram",
    NodeKind.ANNOTATION: "annotation",
}

_IMAGE = "image"


@dataclass(eq=False)
class _Session:
    """One opened (or opening) tomogram with its annotations: one generation."""

    generation: int
    detail: RunDetail
    tomogram: Tomogram
    #: the pyramid level asked for (None: multiscale) and the one in the viewer
    level: int | None = None
    shown_level: int | None = None
    #: the image was added, or failed: the previous run's layers are gone
    image_settled: bool = False
    #: the canvas has drawn the image (or it failed): annotations may follow
    image_drawn: bool = False
    pyramid: Pyramid | None = None
    #: preselected annotation files, fetched once the image is in (it goes first)
    queued: list[AnnotationFile] = field(default_factory=list)
    #: annotation files being fetched
    loading: set[int] = field(default_factory=set)
    #: annotation layers that arrived before the image, by file id
    held: dict[int, list[LayerData]] = field(default_factory=dict)
    #: openFinished was emitted
    finished: bool = False

    @property
    def run_id(self) -> int:
        return self.detail.run.id

    def file(self, file_id: int) -> AnnotationFile | None:
        return next((f for f in self.detail.annotation_files() if f.id == file_id), None)


class PortalWidget(QWidget):
    """Browse the CryoET Data Portal and open runs in the viewer.

    Signals
    -------
    datasetsLoaded()
        A page of datasets, or search results, is in the tree.
    runsLoaded(int)
        A page of runs of this dataset id is in the tree.
    runDetailLoaded(int)
        This run's tomograms and annotations arrived (one request).
    layersChanged()
        The plugin's layers in the viewer changed (added, replaced, removed).
    openFinished(int)
        Opening this run settled: its image and preselected annotations are in, or failed.
    metadataShown(str, int)
        The metadata panel shows this entity (kind, id).
    errorOccurred(str)
        Something failed; the message is also in the status line and a notification.
    busyChanged(bool)
        Work started (True) or everything finished or was cancelled (False).
    """

    datasetsLoaded = Signal()
    runsLoaded = Signal(int)
    runDetailLoaded = Signal(int)
    layersChanged = Signal()
    openFinished = Signal(int)
    metadataShown = Signal(str, int)
    errorOccurred = Signal(str)
    busyChanged = Signal(bool)

    #: Rows per page of datasets and of a dataset's runs (one request each).
    PAGE_SIZE = 100
    #: Server-side search waits this long after the last keystroke.
    SEARCH_DEBOUNCE_MS = 300
    #: Metadata records kept (entity → fields).
    METADATA_CACHE_SIZE = 128

    def __init__(self, napari_viewer: ViewerModel, *, page_size: int | None = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.page_size = page_size or self.PAGE_SIZE
        self._client: PortalClient | None = None
        self._runner = TaskRunner(self)
        self.thumbnails = ThumbnailCache(self._runner, self)
        self.model = PortalTreeModel(self, icon_for=self.thumbnails.icon)
        self.proxy = PortalFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.layers = PluginLayers(
            napari_viewer, on_fetch_error=self._voxels_failed, on_fetching=self._on_fetching
        )
        self._fetching = False
        self._slab = 0.0  # the z thickness this widget set (see _fit_slab)
        self._open_later = QTimer(self)
        self._open_later.setSingleShot(True)
        self._open_later.setInterval(KEYBOARD_OPEN_DELAY_MS)
        self._open_later.timeout.connect(self._open_current)

        self._details: dict[int, RunDetail] = {}
        self._metadata: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._generation = 0
        self._session: _Session | None = None
        #: (run id, tomogram id or None for the default) last asked for, until it settles
        self._target: tuple[int, int | None] | None = None
        #: (run id, tomogram id, generation) waiting for its run's detail
        self._pending: tuple[int, int | None, int] | None = None
        self._preview_url: str | None = None
        self._message = ""

        self._build_ui()
        self._connect_signals()

    # --- public API -----------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether any fetch or decode is running (thumbnails aside)."""
        return self._runner.busy

    def connect_to_portal(self, url: str | None = None) -> None:
        """(Re)connect to the API at ``url`` (default: the URL field) and list datasets."""
        url = (url or self.url_edit.text()).strip() or default_api_url()
        self.url_edit.setText(url)
        self.cancel()
        self._runner.cancel_all()
        if self._client is not None:
            self._client.close()  # its pooled connections; cancelled work in flight just fails
        self._client = PortalClient(url)
        self._details.clear()
        self._metadata.clear()
        self.thumbnails.clear()
        self.model.reset(connected=True)
        self._say(f"Connecting to {url}…")
        # the storage stack (s3fs/aiobotocore: ~1 s to import) warms up while the user browses
        self._runner.submit("warm-storage", warm_up, label="", on_result=lambda _: None, quiet=True)
        if self.search_edit.text().strip():
            self._search_server()
        else:
            self.model.fetchMore(QModelIndex())

    def open_run(self, run_id: int, tomogram_id: int | None = None) -> None:
        """Open a run's default tomogram (or ``tomogram_id``) and its preselected annotations,
        replacing what the plugin opened before. Costs one request unless the run's detail
        is known already.
        """
        if self._client is None:
            self._fail("Connect to a portal first.")
            return
        detail = self._details.get(run_id)
        if detail is not None and tomogram_id is None:
            tomogram_id = getattr(detail.default_tomogram(), "id", None)
        if self._target == (run_id, tomogram_id):
            return  # the latest request already
        if self._target is None and self._is_open(run_id, tomogram_id):
            return  # settled and shown
        self._generation += 1
        self._target = (run_id, tomogram_id)
        self._runner.cancel_prefix("open:")
        if detail is not None:
            self._pending = None
            self._start_session(detail, tomogram_id, self._generation)
            return
        self._pending = (run_id, tomogram_id, self._generation)
        node = self.model.run(run_id)
        if node is not None and node.loading:
            return  # an expansion is fetching it already
        self._fetch_detail(run_id, key="open:detail")

    def pin_level(self, level: int | None) -> None:
        """Show one pyramid level of the open tomogram, or all (``None``: multiscale)."""
        session = self._session
        if session is None or session.level == level:
            return
        session.level = level
        self._load_image(session)

    def set_annotation_checked(self, file_id: int, checked: bool) -> None:
        """Load (check) or remove (uncheck) an annotation file of the open run."""
        self.annotations.set_checked(file_id, checked)

    def cancel(self) -> None:
        """Stop everything in progress; what is in the viewer stays, late results are dropped."""
        self._runner.cancel_all(include_quiet=False)
        self.layers.cancel_fetches()
        self._pending = None
        self._target = None
        session = self._session
        if session is not None and not session.image_settled:
            self._generation += 1
            self._session = None
            self.annotations.clear("Cancelled.")
        elif session is not None:
            for file_id in list(session.loading) + list(session.held):
                self.annotations.set_file_state(file_id, "cancelled", checked=False)
            session.loading.clear()
            session.held.clear()
            session.finished = True
            if session.level != session.shown_level and session.pyramid is not None:
                session.level = session.shown_level
                self.annotations.set_levels(_level_labels(session.pyramid), session.level)
        self._say("Cancelled.")

    def index_of(self, node: Node) -> QModelIndex:
        """The tree view's index of ``node`` (invalid if not shown)."""
        return self.proxy.mapFromSource(self.model.index_of(node))

    def select(self, node: Node) -> None:
        """Make ``node`` the tree's current row and open it, as a click would."""
        index = self.index_of(node)
        self.tree.scrollTo(index)
        self.tree.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
        )
        self._open_node(index)

    def sizeHint(self) -> QSize:
        return QSize(460, 760)  # room for the tree's three columns and the panel

    # --- UI -------------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.url_edit = QLineEdit(default_api_url(), self)
        self.url_edit.setToolTip("GraphQL endpoint of the portal (CRYOET_PORTAL_API_URL)")
        self.connect_button = QPushButton("Connect", self)
        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText("Search datasets: title, organism, object, run, id…")
        self.search_edit.setClearButtonEnabled(True)
        self._search_debouncer = QSignalDebouncer(self)
        self._search_debouncer.setTimeout(self.SEARCH_DEBOUNCE_MS)

        self.tree = PortalTreeView(self)
        self.tree.setModel(self.proxy)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.resizeSection(1, 150)

        self.annotations = AnnotationPanel(self)
        self.metadata = MetadataPanel(self)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.annotations, "Open")
        self.tabs.addTab(self.metadata, "Metadata")

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.tree)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)  # busy indicator
        self.progress.setMaximumWidth(60)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.status = QElidingLabel(self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)

        top = QHBoxLayout()
        top.addWidget(self.url_edit, 1)
        top.addWidget(self.connect_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress)
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.search_edit)
        layout.addWidget(splitter, 1)
        layout.addLayout(bottom)

    def _connect_signals(self) -> None:
        self.connect_button.clicked.connect(lambda: self.connect_to_portal())
        self.url_edit.returnPressed.connect(lambda: self.connect_to_portal())
        self.search_edit.textChanged.connect(self.proxy.set_text)
        self.search_edit.textChanged.connect(self._search_debouncer.throttle)
        self._search_debouncer.triggered.connect(self._search_server)
        self.model.fetchRequested.connect(self._fetch)
        self.tree.moreRequested.connect(self.model.request_more)
        self.thumbnails.loaded.connect(self.model.thumbnail_loaded)
        self.thumbnails.loaded.connect(self._on_thumbnail)
        self.tree.selectionModel().currentChanged.connect(self._on_current_changed)
        self.tree.clicked.connect(self._open_node)
        self.tabs.currentChanged.connect(lambda _: self._update_metadata())
        self.annotations.fileToggled.connect(self._on_file_toggled)
        self.annotations.levelChosen.connect(
            lambda k: self.pin_level(None if k == ALL_LEVELS else k)
        )
        self.cancel_button.clicked.connect(self.cancel)
        self._runner.busyChanged.connect(self._on_busy)
        self._runner.statusChanged.connect(self._on_status)
        self._runner.failed.connect(self._report)

    # --- browsing -------------------------------------------------------------------------

    def _fetch(self, node: Node) -> None:
        """The tree wants the next page of ``node``'s children: one request."""
        client = self._client
        if client is None:
            self.model.fetch_abandoned(node)
            return
        offset = len(node.children)
        if node.kind is NodeKind.ROOT:
            self._runner.submit(
                "datasets:page",
                client.datasets,
                offset,
                self.page_size,
                label="Loading datasets…",
                on_result=self._datasets_arrived,
                on_error=lambda exc: self._fetch_failed(node, "Could not list datasets", exc),
                on_finish=lambda: self.model.fetch_abandoned(node),
            )
        elif node.kind is NodeKind.DATASET:
            dataset_id = node.record.id
            self._runner.submit(
                f"runs:{dataset_id}",
                client.runs,
                dataset_id,
                offset,
                self.page_size,
                label=f"Loading runs of dataset {dataset_id}…",
                on_result=lambda page: self._runs_arrived(node, page),
                on_error=lambda exc: self._fetch_failed(
                    node, f"Could not list the runs of dataset {dataset_id}", exc
                ),
                on_finish=lambda: self.model.fetch_abandoned(node),
            )
        elif node.kind is NodeKind.RUN:
            self._fetch_detail(node.record.id, key=f"detail:{node.record.id}")

    def _datasets_arrived(self, page: Page[DatasetSummary]) -> None:
        self.model.add_datasets(page)
        shown = len(self.model.root.children)
        self._say(f"{page.total} datasets" + (f" ({shown} loaded)" if shown < page.total else ""))
        self.datasetsLoaded.emit()

    def _runs_arrived(self, node: Node, page: Page[RunSummary]) -> None:
        self.model.add_runs(node, page)
        self._say(f"Dataset {node.record.id}: {len(node.children)} of {page.total} runs loaded")
        self.runsLoaded.emit(node.record.id)

    def _fetch_failed(self, node: Node, what: str, exc: Exception) -> None:
        self.model.fetch_failed(node)
        self._report(what, exc)

    def _fetch_detail(self, run_id: int, *, key: str) -> None:
        assert self._client is not None
        node = self.model.run(run_id)
        if node is not None:
            self.model.mark_loading(node)
        self._runner.submit(
            key,
            self._client.run_detail,
            run_id,
            label=f"Loading run {node.record.name if node else run_id}…",
            on_result=lambda detail: self._detail_arrived(run_id, detail),
            on_error=lambda exc: self._detail_failed(run_id, exc),
            on_finish=(lambda: self.model.fetch_abandoned(node)) if node else None,
        )

    def _detail_arrived(self, run_id: int, detail: RunDetail) -> None:
        self._details[run_id] = detail
        node = self.model.run(run_id)
        if node is not None:
            self.model.set_detail(node, detail)
        self.runDetailLoaded.emit(run_id)
        if self._pending is not None and self._pending[0] == run_id:
            _, tomogram_id, generation = self._pending
            self._pending = None
            self._start_session(detail, tomogram_id, generation)

    def _detail_failed(self, run_id: int, exc: Exception) -> None:
        node = self.model.run(run_id)
        if node is not None:
            self.model.fetch_failed(node)
        self._report(f"Could not load run {node.record.name if node else run_id}", exc)
        if self._pending is not None and self._pending[0] == run_id:
            self._pending = None
            self._target = None
            self.openFinished.emit(run_id)

    def _search_server(self) -> None:
        text = self.search_edit.text().strip()
        client = self._client
        if client is None:
            return
        if not text:
            self._runner.cancel("datasets:search")
            self.model.clear_search()
            self.model.fetchMore(QModelIndex())  # if connected while searching: the first page
            self.datasetsLoaded.emit()
            return
        self._runner.submit(
            "datasets:search",
            client.search_datasets,
            text,
            label=f"Searching “{text}”…",
            on_result=lambda found: self._search_arrived(text, found),
            on_error=lambda exc: self._report(f"Search for “{text}” failed", exc),
        )

    def _search_arrived(self, text: str, found: tuple[DatasetSummary, ...]) -> None:
        if text != self.search_edit.text().strip():
            return  # the user has typed on: a newer search is on its way
        self.model.show_search_results(found)
        self._say(f"{len(found)} datasets match “{text}”")
        self.datasetsLoaded.emit()

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        # arrowing through runs opens the one the user stops on, not every run passed
        self._open_later.start()
        self._update_metadata()

    def _open_current(self) -> None:
        self._open_node(self.tree.currentIndex())

    def _open_node(self, index: QModelIndex) -> None:
        """Open the run or tomogram at ``index`` (a no-op if it is open or opening).

        Called on every click (also on the selected run, so that clicking it again after a
        cancel or a failure retries) and, debounced, when the current row changes by keyboard.
        """
        self._open_later.stop()
        node = index.data(NODE_ROLE)
        if not isinstance(node, Node):
            return
        if node.kind is NodeKind.RUN:
            self.open_run(node.record.id)
        elif node.kind is NodeKind.TOMOGRAM and node.parent is not None:
            self.open_run(node.parent.record.id, node.record.id)

    # --- metadata -------------------------------------------------------------------------

    def _update_metadata(self) -> None:
        """Show the current row's metadata, fetching it only while the panel is visible."""
        if self.tabs.currentWidget() is not self.metadata or self._client is None:
            return
        node = self.tree.currentIndex().data(NODE_ROLE)
        kind = _METADATA_KINDS.get(node.kind) if isinstance(node, Node) else None
        if kind is None:
            self._runner.cancel("metadata")
            self.metadata.show_message("Select a dataset, run, tomogram or annotation.")
            return
        key = (kind, node.record.id)
        title = f"{kind.title()} {node.record.id}: {self.model.texts(node)[0]}"
        cached = self._metadata.get(key)
        if cached is not None:
            self._metadata.move_to_end(key)
            self._show_metadata(key, title, cached)
            return
        self.metadata.show_message(f"Loading {kind} {node.record.id}…")
        self._runner.submit(
            "metadata",
            self._client.metadata,
            kind,
            node.record.id,
            label=f"Loading {kind} metadata…",
            on_result=lambda fields: self._metadata_arrived(key, title, fields),
            on_error=lambda exc: self._metadata_failed(key, exc),
        )

    def _metadata_arrived(self, key: tuple[str, int], title: str, fields: dict[str, Any]) -> None:
        self._metadata[key] = fields
        while len(self._metadata) > self.METADATA_CACHE_SIZE:
            self._metadata.popitem(last=False)
        self._show_metadata(key, title, fields)

    def _show_metadata(self, key: tuple[str, int], title: str, fields: dict[str, Any]) -> None:
        self.metadata.show_metadata(title, fields)
        self.metadataShown.emit(*key)

    def _metadata_failed(self, key: tuple[str, int], exc: Exception) -> None:
        self.metadata.show_message(f"Could not load {key[0]} {key[1]}: {_describe(exc)}")
        self._report(f"Could not load {key[0]} {key[1]} metadata", exc)

    # --- opening --------------------------------------------------------------------------

    def _is_open(self, run_id: int, tomogram_id: int | None) -> bool:
        session = self._session
        if session is None or session.run_id != run_id or not session.image_settled:
            return False
        if tomogram_id is None:
            return session.tomogram is session.detail.default_tomogram()
        return session.tomogram.id == tomogram_id

    def _start_session(self, detail: RunDetail, tomogram_id: int | None, generation: int) -> None:
        if generation != self._generation:
            return
        run = detail.run
        tomogram = (
            detail.default_tomogram()
            if tomogram_id is None
            else next((t for t in detail.tomograms if t.id == tomogram_id), None)
        )
        if tomogram is None:
            self._target = None
            self._session = None
            self.layers.clear()  # the user moved on: the previous run's layers go all the same
            self.layersChanged.emit()
            self.annotations.clear(f"Run {run.name} has no tomogram to open.")
            self._say(f"Run {run.name} has no tomogram.")
            self.openFinished.emit(run.id)
            return
        session = _Session(generation, detail, tomogram)
        self._session = session
        # the previous run's layers go now: napari removes them while the worker fetches
        self.layers.clear()
        self.layersChanged.emit()
        preselected = preselected_files(detail, tomogram)
        self.annotations.set_title(
            f"<b>{run.name}</b> · tomogram {tomogram.id}<br>{tomogram.label}"
            f"<br><i>{_why(detail, tomogram)}</i>"
        )
        self.annotations.set_rows(annotation_rows(detail, tomogram, preselected))
        self.annotations.set_levels([], None)
        self._preview_url = tomogram.thumbnail_url
        self.annotations.set_preview(self.thumbnails.pixmap(tomogram.thumbnail_url))
        session.queued = list(preselected)
        for file in preselected:
            self.annotations.set_file_state(file.id, "waiting for the image…")
        self._load_image(session)

    def _current(self, session: _Session) -> bool:
        return session is self._session and session.generation == self._generation

    def _load_image(self, session: _Session) -> None:
        tomogram, detail = session.tomogram, session.detail
        level = session.level
        if session.pyramid is not None:
            # the pyramid is open: pinning a level needs no request, and keeps the contrast
            image = self.layers.get(_IMAGE)
            limits = tuple(image[0].contrast_limits) if image else None
            work: Callable[[], tuple[LayerData, Pyramid]] = partial(
                _relevel, session.pyramid, tomogram, detail, level, limits
            )
        else:
            work = partial(open_tomogram, detail, tomogram, level=level, progressive=True)
        self._runner.submit(
            "open:image",
            work,
            label=f"Opening {detail.run.name} · tomogram {tomogram.id}…",
            on_result=lambda result: self._image_arrived(session, result),
            on_error=lambda exc: self._image_failed(session, exc),
        )

    def _image_arrived(self, session: _Session, result: tuple[LayerData, Pyramid]) -> None:
        if not self._current(session):
            return
        data, pyramid = result
        first = not session.image_settled
        session.pyramid = pyramid
        session.shown_level = data[1]["metadata"][METADATA_KEY]["level"]
        if first:
            self._settle(session)
            self.layers.add(_IMAGE, [data])
            self.viewer.reset_view()
            self._load_queued(session)
            self._when_drawn(partial(self._image_drawn, session))
        else:
            self.layers.replace(_IMAGE, [data])
        self.annotations.set_levels(_level_labels(pyramid), session.level)
        self._say(f"Opened {session.detail.run.name} · tomogram {session.tomogram.id}")
        self.layersChanged.emit()
        self._maybe_finished(session)

    def _image_failed(self, session: _Session, exc: Exception) -> None:
        if not self._current(session):
            return
        self._report(f"Could not open tomogram {session.tomogram.id}", exc)
        if not session.image_settled:
            self._settle(session)
            session.image_drawn = True
            self._load_queued(session)
            self.layersChanged.emit()
        elif session.pyramid is not None:  # a level change failed: the old level stays
            session.level = session.shown_level
            self.annotations.set_levels(_level_labels(session.pyramid), session.level)
        self._maybe_finished(session)

    def _when_drawn(self, callback: Callable[[], None], fallback_ms: int = 300) -> None:
        """Call ``callback`` once the canvas has drawn its next frame (or after
        ``fallback_ms``, for a hidden viewer that never draws).

        Layers that arrive while the image is being added would otherwise be added in the
        same run of the event loop, before Qt's low-priority paint event, and the image
        would appear only after all of them. napari has no public "frame drawn" event, so
        this reaches for the vispy canvas and falls back to the timer without it.
        """
        done = False

        def once(*_: Any) -> None:
            nonlocal done
            if not done:
                done = True
                QTimer.singleShot(0, callback)

        qt_viewer = getattr(getattr(self.viewer, "window", None), "_qt_viewer", None)
        scene = getattr(getattr(qt_viewer, "canvas", None), "_scene_canvas", None)
        events = getattr(getattr(scene, "events", None), "draw", None)
        if events is not None:

            def on_draw(event: Any) -> None:
                events.disconnect(on_draw)
                once()

            events.connect(on_draw)
        QTimer.singleShot(fallback_ms, once)

    def _image_drawn(self, session: _Session) -> None:
        if self._current(session) and not session.image_drawn:
            session.image_drawn = True
            self._flush(session)
            self.layersChanged.emit()
            self._maybe_finished(session)

    def _voxels_failed(self, layer: Layer, exc: BaseException) -> None:
        """A view's chunks could not be fetched: the layer keeps its coarse preview."""
        self._report(f"Could not fetch voxels of {layer.name} (showing the coarse preview)", exc)

    def _settle(self, session: _Session) -> None:
        """The image is in, or failed: from now on the session's layers may be added."""
        session.image_settled = True

    def _load_queued(self, session: _Session) -> None:
        """The image is in (or failed): fetch the preselected annotations now."""
        queued, session.queued = session.queued, []
        for file in queued:
            self._load_annotation(session, file)

    def _load_annotation(self, session: _Session, file: AnnotationFile) -> None:
        session.loading.add(file.id)
        self.annotations.set_file_state(file.id, "loading…")
        annotation = session.detail.annotation(file.annotation_id)
        what = annotation.object_name if annotation else "annotation"
        self._runner.submit(
            f"open:annotation:{file.id}",
            partial(annotation_layers, progressive=True),
            session.detail,
            file,
            label=f"Loading {what} ({file.shape_type})…",
            on_result=lambda data: self._annotation_arrived(session, file, data),
            on_error=lambda exc: self._annotation_failed(session, file, exc),
            on_finish=lambda: self._annotation_ended(session, file),
        )

    def _annotation_arrived(
        self, session: _Session, file: AnnotationFile, data: list[LayerData]
    ) -> None:
        if not self._current(session):
            return
        if session.image_drawn:
            self._show_annotation(file.id, data)
            self.layersChanged.emit()
        else:
            session.held[file.id] = data
            self.annotations.set_file_state(file.id, "waiting for the image…")

    def _show_annotation(self, file_id: int, data: list[LayerData]) -> None:
        self.layers.remove(("file", file_id))
        added = self.layers.add(("file", file_id), data)
        self._fit_slab(added)
        self.annotations.set_file_state(file_id, _shown_text(data))

    def _fit_slab(self, layers: list[Layer]) -> None:
        """Make the z slice as thick as the largest particle, so that particles the slice cuts
        are drawn (napari draws points only within the slice's thickness, 0 by default).
        A thickness the user chose is left alone; images ignore it (no projection)."""
        sizes = [
            float(np.max(layer.size)) * float(layer.scale[0])
            for layer in layers
            if isinstance(layer, Points) and len(layer.data) and layer.ndim == 3
        ]
        dims = self.viewer.dims
        if not sizes or dims.ndim != 3:
            return
        current = float(dims.thickness[0])
        if current not in (0.0, self._slab):
            return  # the user's
        self._slab = max(sizes) if current == 0.0 else max(current, *sizes)
        dims.thickness = (self._slab, *dims.thickness[1:])

    def _flush(self, session: _Session) -> None:
        held, session.held = session.held, {}
        for file_id, data in held.items():
            self._show_annotation(file_id, data)

    def _annotation_failed(self, session: _Session, file: AnnotationFile, exc: Exception) -> None:
        if not self._current(session):
            return
        if isinstance(exc, UnsupportedAnnotation):
            self.annotations.set_file_state(file.id, "not supported yet", checked=False)
            self._report(f"Annotation file {file.id}", exc, warning=True)
        else:
            self.annotations.set_file_state(file.id, f"failed: {_describe(exc)}", checked=False)
            self._report(f"Could not load annotation file {file.id}", exc)

    def _annotation_ended(self, session: _Session, file: AnnotationFile) -> None:
        session.loading.discard(file.id)
        if self._current(session):
            self._maybe_finished(session)

    def _maybe_finished(self, session: _Session) -> None:
        if (
            session.finished
            or not session.image_drawn
            or session.loading
            or session.queued
            or session.held
        ):
            return
        session.finished = True
        self._target = None
        image = self.layers.get(_IMAGE)
        if image:  # napari made the last annotation active; the tomogram's controls matter more
            self.viewer.layers.selection.active = image[0]
        self.openFinished.emit(session.run_id)

    def _on_file_toggled(self, file_id: int, checked: bool) -> None:
        session = self._session
        file = session.file(file_id) if session else None
        if session is None or file is None:
            return
        queued = next((f for f in session.queued if f.id == file_id), None)
        if checked:
            busy = queued is not None or file_id in session.loading or file_id in session.held
            if not busy and ("file", file_id) not in self.layers:
                self._load_annotation(session, file)
            return
        self._runner.cancel(f"open:annotation:{file_id}")
        if queued is not None:
            session.queued.remove(queued)
        session.held.pop(file_id, None)
        if ("file", file_id) in self.layers:
            self.layers.remove(("file", file_id))
            self.layersChanged.emit()
        self.annotations.set_file_state(file_id, "")

    def _on_thumbnail(self, url: str) -> None:
        if url == self._preview_url:
            self.annotations.set_preview(self.thumbnails.pixmap(url))

    # --- status ---------------------------------------------------------------------------

    def _on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setEnabled(busy or self._fetching)
        self.busyChanged.emit(busy)

    def _on_fetching(self, fetching: bool) -> None:
        """Voxels are streaming (progress in napari's activity dock): Cancel can stop them."""
        self._fetching = fetching
        self.cancel_button.setEnabled(fetching or self._runner.busy)

    def _on_status(self, label: str) -> None:
        self.status.setText(label or self._message)

    def _say(self, message: str) -> None:
        self._message = message
        self.status.setStyleSheet("")
        self.status.setText(message)

    def _report(self, what: str, exc: Exception, *, warning: bool = False) -> None:
        """A failure: status line, napari notification, ``errorOccurred``; the widget goes on."""
        if not isinstance(exc, EXPECTED_ERRORS):
            logger.error("%s", what, exc_info=exc)
        self._fail(f"{what}: {_describe(exc)}", warning=warning)

    def _fail(self, message: str, *, warning: bool = False) -> None:
        self._message = message
        self.status.setStyleSheet("color: #e0533d;")
        self.status.setText(message)
        (show_warning if warning else show_error)(message)
        self.errorOccurred.emit(message)


def _relevel(
    pyramid: Pyramid,
    tomogram: Tomogram,
    detail: RunDetail,
    level: int | None,
    limits: tuple[float, float] | None,
) -> tuple[LayerData, Pyramid]:
    return tomogram_layer(pyramid, tomogram, detail.run, level=level, limits=limits), pyramid


def _why(detail: RunDetail, tomogram: Tomogram) -> str:
    """Why this tomogram is the one open: the portal's default (and its reason), or chosen."""
    choice = detail.default_choice()
    if tomogram is choice.tomogram:
        return f"Default: {choice.reason}"
    return "Chosen in the tree"


def _level_labels(pyramid: Pyramid) -> list[str]:
    labels = []
    for k, (shape, scale) in enumerate(zip(pyramid.shapes, pyramid.scales)):
        dims = "×".join(str(n) for n in reversed(shape))
        labels.append(f"Level {k}: {dims} px @ {scale[-1]:g} Å")
    return labels


def _shown_text(data: list[LayerData]) -> str:
    kinds = {layer_type for _, _, layer_type in data}
    if "points" in kinds:
        n = next(len(d) for d, _, t in data if t == "points")
        return f"shown ({n} points)"
    return "shown"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LookupError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, EXPECTED_ERRORS):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"

