"""The tree view: pages load as the user scrolls to them, not before.

After anything that can bring a "Load more…" row into view (scrolling, resizing, expanding,
rows arriving) the view checks, once per event-loop turn, which placeholder rows are on
screen and asks the model for their next page. Activating a placeholder (double-click,
Enter) asks too, which also retries after a failure. The view only says which node the
user reached (``moreRequested``); the widget hands it to the model.
"""

from __future__ import annotations

from qtpy.QtCore import QAbstractItemModel, QModelIndex, QSize, QTimer, Signal
from qtpy.QtGui import QResizeEvent, QShowEvent
from qtpy.QtWidgets import QAbstractItemView, QTreeView, QWidget

from .tree_model import NODE_ROLE, Node, NodeKind

__all__ = ["PortalTreeView"]

ICON_SIZE = 24


class PortalTreeView(QTreeView):
    """A tree of :class:`~.tree_model.Node` rows (through any proxy) that pages on demand.

    Signals
    -------
    moreRequested(Node)
        The user reached the end of this node's loaded children.
    """

    moreRequested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setUniformRowHeights(True)  # thousands of rows: row heights are not measured
        # per pixel: scrolled to the end, the last row (often "Load more…") is fully in view
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAllColumnsShowFocus(True)
        self.header().setStretchLastSection(False)
        self._check = QTimer(self)
        self._check.setSingleShot(True)
        self._check.setInterval(0)
        self._check.timeout.connect(self._fetch_visible_placeholders)
        self.expanded.connect(self._on_expanded)
        self.activated.connect(self._on_activated)

    def setModel(self, model: QAbstractItemModel | None) -> None:
        super().setModel(model)
        if model is not None:
            model.rowsInserted.connect(self._check.start)
            model.modelReset.connect(self._check.start)
            model.layoutChanged.connect(self._check.start)

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        # here rather than on the scroll bar's valueChanged: rows are at their new places
        super().scrollContentsBy(dx, dy)
        self._schedule_check()

    def updateGeometries(self) -> None:
        # Qt lays rows out lazily, after they arrived: what is on screen may have changed
        super().updateGeometries()
        self._schedule_check()

    def _schedule_check(self) -> None:
        check = getattr(self, "_check", None)  # None while QTreeView's constructor runs
        if check is not None:
            check.start()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._check.start()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._check.start()

    def _on_expanded(self, index: QModelIndex) -> None:
        # Qt fetches on expand only when the view is laid out; a hidden view must be told
        model = self.model()
        if model is not None and model.canFetchMore(index):
            model.fetchMore(index)
        self._check.start()

    def _on_activated(self, index: QModelIndex) -> None:
        node = index.data(NODE_ROLE)
        if isinstance(node, Node) and node.kind is NodeKind.MORE and node.parent is not None:
            self.moreRequested.emit(node.parent)

    def _fetch_visible_placeholders(self) -> None:
        model = self.model()
        if model is None or not self.isVisible():
            return
        bottom = self.viewport().rect().bottom()
        index = self.indexAt(self.viewport().rect().topLeft())
        while index.isValid() and self.visualRect(index).top() <= bottom:
            node = index.data(NODE_ROLE)
            parent = node.parent if isinstance(node, Node) and node.kind is NodeKind.MORE else None
            if parent is not None and not parent.failed and not parent.loading:
                self.moreRequested.emit(parent)
            index = self.indexBelow(index)
