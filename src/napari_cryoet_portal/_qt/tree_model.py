"""The portal as a lazy tree: datasets → runs → tomograms and annotations.

The model holds what has been fetched and asks for more; it never talks to the network.
When a view wants children it does not have, the model emits ``fetchRequested(node)`` and
the widget answers with :meth:`PortalTreeModel.add_datasets`, :meth:`~PortalTreeModel.add_runs`
or :meth:`~PortalTreeModel.set_detail` (or :meth:`~PortalTreeModel.fetch_failed`).

Paging: a node that has more children than loaded ends with a placeholder row ("Load
more…", "Loading…"). ``canFetchMore`` is true only before a node's first page, because Qt's
tree view calls ``fetchMore`` again after every insert for as long as it is true, which would
page through a 1000-run dataset on a single expand; later pages are asked for with
:meth:`PortalTreeModel.request_more` when the placeholder scrolls into view or is activated
(see :mod:`.tree_view`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum, auto
from typing import Any

from qtpy.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from qtpy.QtGui import QFont, QIcon, QPalette
from qtpy.QtWidgets import QApplication

from ..portal.records import (
    DatasetSummary,
    Page,
    RunDetail,
    RunSummary,
)

__all__ = ["NODE_ROLE", "Node", "NodeKind", "PortalFilterProxy", "PortalTreeModel"]

#: ``index.data(NODE_ROLE)`` is the :class:`Node` behind a row (also through the proxy).
NODE_ROLE = Qt.ItemDataRole.UserRole + 1

_Index = QModelIndex | QPersistentModelIndex


class NodeKind(Enum):
    ROOT = auto()
    DATASET = auto()
    RUN = auto()
    TOMOGRAM = auto()
    ANNOTATION = auto()
    #: the placeholder row at the end of a partly loaded node
    MORE = auto()


class Node:
    """One row. ``total`` is how many children the server has (None: not known yet)."""

    __slots__ = (
        "kind", "record", "parent", "children", "row", "total",
        "loading", "failed", "placeholder", "detail", "server_match", "_more",
    )

    def __init__(self, kind: NodeKind, record: Any = None, parent: Node | None = None, total: int | None = 0) -> None:
        self.kind = kind
        self.record = record
        self.parent = parent
        self.children: list[Node] = []
        self.row = 0
        self.total = total
        self.loading = False
        #: the last fetch of this node's children failed: no automatic retry on scrolling
        self.failed = False
        #: whether the placeholder row is in the model (kept explicitly, so that inserts and
        #: removals can be announced to views in the right order)
        self.placeholder = False
        self.detail: RunDetail | None = None
        #: a dataset the last server-side search returned (the local filter keeps it)
        self.server_match = False
        self._more: Node | None = None

    @property
    def has_more(self) -> bool:
        return self.total is None or len(self.children) < self.total

    @property
    def more(self) -> Node:
        """This node's placeholder row."""
        if self._more is None:
            self._more = Node(NodeKind.MORE, parent=self)
        return self._more

    @property
    def id(self) -> int | None:
        return getattr(self.record, "id", None)

    def __repr__(self) -> str:
        return f"<Node {self.kind.name} {self.id} {len(self.children)}/{self.total}>"


class PortalTreeModel(QAbstractItemModel):
    """Datasets, their runs and each run's tomograms and annotations, loaded on demand.

    Signals
    -------
    fetchRequested(Node)
        The view wants the next page of this node's children (root: datasets, dataset:
        runs, run: its detail). The node is marked loading until answered.
    """

    fetchRequested = Signal(object)

    COLUMNS = ("Name", "Details", "ID")

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        icon_for: Callable[[str], QIcon | None] | None = None,
    ) -> None:
        super().__init__(parent)
        self._icon_for = icon_for
        self._browse = Node(NodeKind.ROOT)
        self._search = Node(NodeKind.ROOT)
        self._root = self._browse
        self._datasets: dict[int, Node] = {}
        self._runs: dict[int, Node] = {}
        self._by_thumbnail: dict[str, list[Node]] = {}

    # --- what the widget calls ------------------------------------------------------------

    def reset(self, *, connected: bool = True) -> None:
        """Forget everything; when ``connected``, the dataset list is to be fetched."""
        self.beginResetModel()
        self._browse = Node(NodeKind.ROOT, total=None if connected else 0)
        self._browse.placeholder = connected
        self._search = Node(NodeKind.ROOT)
        self._root = self._browse
        self._datasets.clear()
        self._runs.clear()
        self._by_thumbnail.clear()
        self.endResetModel()

    @property
    def searching(self) -> bool:
        return self._root is self._search

    def add_datasets(self, page: Page[DatasetSummary]) -> None:
        """Append a page of the dataset list (fetched for the root node)."""
        self._add_page(self._browse, [self._dataset_node(d) for d in page.items], page.total)

    def add_runs(self, node: Node, page: Page[RunSummary]) -> None:
        """Append a page of a dataset's runs."""
        runs = [self._run_node(r, node) for r in page.items]
        self._add_page(node, runs, page.total)

    def set_detail(self, node: Node, detail: RunDetail) -> None:
        """A run's tomograms and annotations arrived: they become its children."""
        node.detail = detail
        if not node.children:
            children = [Node(NodeKind.TOMOGRAM, t, node) for t in detail.tomograms]
            children += [Node(NodeKind.ANNOTATION, a, node) for a in detail.annotations]
            for child in children[: len(detail.tomograms)]:
                self._track_thumbnail(child, child.record.thumbnail_url)
            self._set_placeholder(node, False)
            node.total = len(children)
            self._append(node, children)
        node.loading = node.failed = False

    def fetch_failed(self, node: Node) -> None:
        """The fetch for ``node`` failed or was cancelled: show "Load more…" again."""
        node.loading = False
        node.failed = True
        self._set_placeholder(node, node.has_more)

    def fetch_abandoned(self, node: Node) -> None:
        """The fetch for ``node`` was cancelled: it may be fetched again, automatically too."""
        if node.loading:
            node.loading = False
            self._set_placeholder(node, node.has_more)

    def show_search_results(self, datasets: Iterable[DatasetSummary]) -> None:
        """Replace the dataset list with server-side search results (loaded runs are kept)."""
        self.beginResetModel()
        for node in self._search.children:
            node.server_match = False
        nodes = [self._dataset_node(d) for d in datasets]
        for row, node in enumerate(nodes):
            node.server_match = True
            node.row = row
        self._search = Node(NodeKind.ROOT, total=len(nodes))
        self._search.children = nodes
        self._root = self._search
        self.endResetModel()

    def clear_search(self) -> None:
        """Back to the paged dataset list, as far as it was loaded."""
        if not self.searching:
            return
        self.beginResetModel()
        for node in self._search.children:
            node.server_match = False
        self._root = self._browse
        for row, node in enumerate(self._browse.children):
            node.row = row
        self.endResetModel()

    def thumbnail_loaded(self, url: str) -> None:
        """Repaint the rows that show this thumbnail."""
        for node in self._by_thumbnail.get(url, ()):
            index = self.index_of(node)
            if index.isValid():
                self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    # --- lookups --------------------------------------------------------------------------

    @property
    def root(self) -> Node:
        return self._root

    def node(self, index: _Index) -> Node:
        """The node behind a (source) index; the root for an invalid one."""
        return index.internalPointer() if index.isValid() else self._root

    def dataset(self, dataset_id: int) -> Node | None:
        return self._datasets.get(dataset_id)

    def run(self, run_id: int) -> Node | None:
        return self._runs.get(run_id)

    def index_of(self, node: Node, column: int = 0) -> QModelIndex:
        """The index of ``node`` if it is in the tree as shown (not hidden by a search)."""
        if node.kind is NodeKind.ROOT:
            return QModelIndex()
        parent = node.parent
        if parent is None:  # a dataset: top level, if the current list has it
            siblings = self._root.children
            if node.row < len(siblings) and siblings[node.row] is node:
                return self.createIndex(node.row, column, node)
            return QModelIndex()
        if parent.kind is not NodeKind.ROOT and not self.index_of(parent).isValid():
            return QModelIndex()
        if node.kind is NodeKind.MORE:
            if not parent.placeholder or (parent.kind is NodeKind.ROOT and parent is not self._root):
                return QModelIndex()
            return self.createIndex(len(parent.children), column, node)
        return self.createIndex(node.row, column, node)

    def texts(self, node: Node) -> tuple[str, str, str]:
        """What the columns show for ``node`` (name, details, id)."""
        record = node.record
        match node.kind:
            case NodeKind.DATASET:
                details = " · ".join(x for x in (record.organism_name, _plural(record.run_count, "run")) if x)
                return (record.title, details, str(record.id))
            case NodeKind.RUN:
                details = (
                    f"{_plural(record.tomogram_count, 'tomogram')} · "
                    f"{_plural(record.annotation_count, 'annotation')}"
                )
                return (record.name, details, str(record.id))
            case NodeKind.TOMOGRAM:
                x, y, z = record.size_xyz
                default = " · default" if record.is_visualization_default else ""
                return (f"Tomogram {record.label}", f"{x}×{y}×{z} px{default}", str(record.id))
            case NodeKind.ANNOTATION:
                return (record.object_name, ", ".join(record.shape_types), str(record.id))
            case NodeKind.MORE:
                return (self._placeholder_text(node.parent), "", "")
        return ("", "", "")

    # --- QAbstractItemModel ---------------------------------------------------------------

    def index(self, row: int, column: int, parent: _Index = QModelIndex()) -> QModelIndex:
        if column < 0 or column >= len(self.COLUMNS) or row < 0:
            return QModelIndex()
        node = self.node(parent)
        if row < len(node.children):
            return self.createIndex(row, column, node.children[row])
        if row == len(node.children) and node.placeholder:
            return self.createIndex(row, column, node.more)
        return QModelIndex()

    def parent(self, index: _Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        parent = index.internalPointer().parent
        if parent is None or parent.kind is NodeKind.ROOT:
            return QModelIndex()
        return self.createIndex(parent.row, 0, parent)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        if parent.column() > 0:
            return 0
        node = self.node(parent)
        return len(node.children) + int(node.placeholder)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        return len(self.COLUMNS)

    def hasChildren(self, parent: _Index = QModelIndex()) -> bool:
        return self.rowCount(parent) > 0

    def canFetchMore(self, parent: _Index) -> bool:
        node = self.node(parent)
        return node.kind is not NodeKind.MORE and node.has_more and not node.loading and not node.children

    def fetchMore(self, parent: _Index) -> None:
        if self.canFetchMore(parent):
            self.request_more(self.node(parent))

    def request_more(self, node: Node) -> None:
        """Fetch the next page of ``node``'s children, if it has more and none is loading.

        Views call this when a node's placeholder row comes into view or is activated.
        """
        if node.kind is NodeKind.MORE or node.loading or not node.has_more:
            return
        if node.kind is NodeKind.ROOT and node is not self._browse:
            return
        self.mark_loading(node)
        self.fetchRequested.emit(node)

    def mark_loading(self, node: Node) -> None:
        """A fetch of ``node``'s children started (here, or by the widget for a selected run)."""
        node.loading = True
        node.failed = False
        self._set_placeholder(node, True)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.internalPointer().kind in (NodeKind.TOMOGRAM, NodeKind.ANNOTATION, NodeKind.MORE):
            flags |= Qt.ItemFlag.ItemNeverHasChildren
        return flags

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node: Node = index.internalPointer()
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.texts(node)[column]
        if role == NODE_ROLE:
            return node
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(node)
        if role == Qt.ItemDataRole.DecorationRole and column == 0 and self._icon_for is not None:
            url = getattr(node.record, "thumbnail_url", None)
            return self._icon_for(url) if url else None
        if node.kind is NodeKind.MORE:
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setItalic(True)
                return font
            if role == Qt.ItemDataRole.ForegroundRole:
                return QApplication.palette().brush(QPalette.ColorRole.PlaceholderText)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    # --- plumbing -------------------------------------------------------------------------

    def _dataset_node(self, summary: DatasetSummary) -> Node:
        node = self._datasets.get(summary.id)
        if node is None:
            node = self._datasets[summary.id] = Node(NodeKind.DATASET, summary, None, summary.run_count)
            node.placeholder = node.has_more
            self._track_thumbnail(node, summary.thumbnail_url)
        return node

    def _run_node(self, summary: RunSummary, dataset: Node) -> Node:
        node = Node(NodeKind.RUN, summary, dataset, summary.tomogram_count + summary.annotation_count)
        node.placeholder = node.has_more
        self._runs[summary.id] = node
        return node

    def _track_thumbnail(self, node: Node, url: str | None) -> None:
        if url:
            self._by_thumbnail.setdefault(url, []).append(node)

    def _add_page(self, node: Node, children: list[Node], total: int) -> None:
        known = {c.id for c in node.children}  # a list that changed between two pages
        new = [c for c in children if c.id not in known]
        self._append(node, new)  # still loading: views that ask during the insert wait
        node.loading = node.failed = False
        # an empty page ends the list whatever the total says: no endless "load more"
        node.total = total if new else len(node.children)
        self._set_placeholder(node, node.has_more)

    def _append(self, node: Node, children: list[Node]) -> None:
        if not children:
            return
        parent = self.index_of(node)
        if node.kind is not NodeKind.ROOT and not parent.isValid():
            node.children.extend(children)  # not shown now (searched away): no one to tell
            self._renumber(node)
            return
        first = len(node.children)
        if node.kind is NodeKind.ROOT and node is not self._root:
            node.children.extend(children)
            return
        self.beginInsertRows(parent, first, first + len(children) - 1)
        node.children.extend(children)
        self._renumber(node, first)
        self.endInsertRows()

    @staticmethod
    def _renumber(node: Node, first: int = 0) -> None:
        for row in range(first, len(node.children)):
            node.children[row].row = row

    def _set_placeholder(self, node: Node, on: bool) -> None:
        shown = node.kind is NodeKind.ROOT and node is self._root or (
            node.kind is not NodeKind.ROOT and self.index_of(node).isValid()
        )
        parent = self.index_of(node)
        row = len(node.children)
        if node.placeholder == on:
            if on and shown:
                index = self.index(row, 0, parent)
                self.dataChanged.emit(index, index.siblingAtColumn(len(self.COLUMNS) - 1))
            return
        if not shown:
            node.placeholder = on
        elif on:
            self.beginInsertRows(parent, row, row)
            node.placeholder = True
            self.endInsertRows()
        else:
            self.beginRemoveRows(parent, row, row)
            node.placeholder = False
            self.endRemoveRows()

    def _placeholder_text(self, node: Node) -> str:
        if node.loading:
            return "Loading…"
        if node.kind is NodeKind.RUN:
            return "Show tomograms and annotations"
        if node.total is None or not node.children:
            return "Load…"
        return f"Load more… ({len(node.children)} of {node.total})"

    def _tooltip(self, node: Node) -> str | None:
        record = node.record
        match node.kind:
            case NodeKind.DATASET:
                return f"Dataset {record.id}: {record.title}\nReleased {record.release_date or 'unknown'}"
            case NodeKind.RUN:
                return f"Run {record.name} (id {record.id}): select to open its default tomogram"
            case NodeKind.TOMOGRAM:
                return (
                    f"Tomogram {record.id}: {record.label}\n"
                    f"{record.reconstruction_software or ''} · select to open"
                )
            case NodeKind.ANNOTATION:
                return record.object_description or record.object_name
            case NodeKind.MORE:
                return "Scroll here, double-click or press Enter to load more"
        return None


class PortalFilterProxy(QSortFilterProxyModel):
    """Instant, case-insensitive filter over the rows already loaded.

    A row is kept if any column contains the text, or the server's search returned it;
    the ancestors of a kept row and the children of a kept row stay too.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._needle = ""
        self.setRecursiveFilteringEnabled(True)
        self.setAutoAcceptChildRows(True)

    def set_text(self, text: str) -> None:
        self._needle = text.strip().lower()
        self.setFilterFixedString(self._needle)  # refilters

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        if not self._needle:
            return True
        model = self.sourceModel()
        assert isinstance(model, PortalTreeModel)
        node = model.node(model.index(source_row, 0, source_parent))
        if node.kind is NodeKind.MORE:
            return node.parent is not None and node.parent.kind is NodeKind.ROOT
        if node.server_match:
            return True
        return any(self._needle in text.lower() for text in model.texts(node))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
