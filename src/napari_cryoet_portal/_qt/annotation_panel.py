"""What is open: the tomogram's preview and level, and every annotation file with a checkbox.

The rows are computed from a :class:`RunDetail` without Qt (:func:`annotation_rows`); the
widget only shows them and reports the user's choices as signals. Loading is the portal
widget's job: the panel is told what state each file is in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..loading import displayable
from ..portal.records import AnnotationFile, RunDetail, Tomogram
from .thumbnails import scaled

__all__ = ["ALL_LEVELS", "NOT_ALIGNED", "AnnotationPanel", "AnnotationRow", "annotation_rows"]

#: ``levelChosen`` value for "all levels, multiscale"
ALL_LEVELS = -1

PREVIEW_SIZE = 96

NOT_SUPPORTED = "not supported yet"
NOT_ALIGNED = "not aligned"

_ALIGNED_TIP = {
    True: "Same alignment as the open tomogram: placed in Å at its own voxel spacing, it lines up",
    False: (
        "Another alignment than the open tomogram's: the portal says it may require"
        " transformation. It loads in Å at its own voxel spacing, but need not line up."
    ),
}


@dataclass(frozen=True)
class AnnotationRow:
    """One annotation file as the panel lists it."""

    file: AnnotationFile
    object_name: str
    voxel_spacing: float | None
    #: lines up with the open tomogram (same alignment, any voxel spacing)
    aligned: bool
    supported: bool
    preselected: bool


def annotation_rows(
    detail: RunDetail, tomogram: Tomogram, preselected: Iterable[AnnotationFile]
) -> list[AnnotationRow]:
    """Every annotation file of the run, in annotation order."""
    aligned = {f.id for f in detail.files_for(tomogram)}
    chosen = {f.id for f in preselected}
    return [
        AnnotationRow(
            file=f,
            object_name=annotation.object_name,
            voxel_spacing=detail.voxel_spacing_of(f),
            aligned=f.id in aligned,
            supported=displayable(f),
            preselected=f.id in chosen,
        )
        for annotation in detail.annotations
        for f in annotation.files
    ]


class AnnotationPanel(QWidget):
    """The open run: preview, level choice, annotation files.

    Signals
    -------
    fileToggled(int, bool)
        The user checked (True) or unchecked an annotation file (by file id).
    levelChosen(int)
        The user pinned a pyramid level, or chose :data:`ALL_LEVELS`.
    """

    fileToggled = Signal(int, bool)
    levelChosen = Signal(int)

    _COLUMNS = ("Object", "Status", "Shape", "Format", "Voxel spacing", "Aligned")
    _STATUS = 1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preview = QLabel(self)
        self.preview.setFixedSize(PREVIEW_SIZE, PREVIEW_SIZE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel(self)
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.level = QComboBox(self)
        self.level.setToolTip(
            "Multiscale streams the level that fits the view; a pinned level shows only that one"
        )
        self.level.activated.connect(self._on_level)

        self.files = QTreeWidget(self)
        self.files.setRootIsDecorated(False)
        self.files.setUniformRowHeights(True)
        self.files.setHeaderLabels(self._COLUMNS)
        self.files.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.files.itemChanged.connect(self._on_item_changed)
        self._items: dict[int, QTreeWidgetItem] = {}

        form = QFormLayout()
        form.addRow("Level:", self.level)
        info = QVBoxLayout()
        info.addWidget(self.title)
        info.addLayout(form)
        info.addStretch()
        top = QHBoxLayout()
        top.addWidget(self.preview)
        top.addLayout(info, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(QLabel("Annotations:", self))
        layout.addWidget(self.files, 1)
        self.clear("Select a run or a tomogram to open it.")

    # --- what the portal widget calls -----------------------------------------------------

    def clear(self, message: str) -> None:
        self.title.setText(message)
        self.preview.clear()
        self.level.clear()
        self.level.setEnabled(False)
        self._set_rows([])

    def set_title(self, text: str) -> None:
        self.title.setText(text)

    def set_preview(self, pixmap: QPixmap | None) -> None:
        if pixmap is None:
            self.preview.clear()
        else:
            self.preview.setPixmap(scaled(pixmap, PREVIEW_SIZE))

    def set_rows(self, rows: Sequence[AnnotationRow]) -> None:
        self._set_rows(rows)

    def set_levels(self, labels: Sequence[str], current: int | None) -> None:
        """Offer "all levels" plus one entry per pyramid level; select ``current``."""
        self.level.clear()
        self.level.addItem("All levels (multiscale)", ALL_LEVELS)
        for k, label in enumerate(labels):
            self.level.addItem(label, k)
        self.level.setCurrentIndex(0 if current is None else current + 1)
        self.level.setEnabled(bool(labels))

    def set_file_state(self, file_id: int, status: str, *, checked: bool | None = None) -> None:
        item = self._items.get(file_id)
        if item is None:
            return
        self.files.blockSignals(True)
        item.setText(self._STATUS, status)
        item.setToolTip(self._STATUS, status)
        if checked is not None:
            item.setCheckState(0, Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        self.files.blockSignals(False)

    def file_state(self, file_id: int) -> str:
        """The status shown for a file ("", "loading…", "shown (N points)", "failed: …")."""
        item = self._items.get(file_id)
        return item.text(self._STATUS) if item is not None else ""

    def is_checked(self, file_id: int) -> bool:
        item = self._items.get(file_id)
        return item is not None and item.checkState(0) == Qt.CheckState.Checked

    def set_checked(self, file_id: int, checked: bool) -> None:
        """Check or uncheck as the user would (``fileToggled`` is emitted on change)."""
        item = self._items.get(file_id)
        if item is not None and not item.isDisabled():
            item.setCheckState(0, Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    # --- plumbing -------------------------------------------------------------------------

    def _set_rows(self, rows: Sequence[AnnotationRow]) -> None:
        self.files.blockSignals(True)
        self.files.clear()
        self._items = {}
        for row in rows:
            f = row.file
            spacing = f"{row.voxel_spacing:g} Å" if row.voxel_spacing is not None else "—"
            aligned = "yes" if row.aligned else NOT_ALIGNED
            item = QTreeWidgetItem([row.object_name, "", f.shape_type, f.format, spacing, aligned])
            item.setToolTip(5, _ALIGNED_TIP[row.aligned])
            item.setData(0, Qt.ItemDataRole.UserRole, f.id)
            item.setToolTip(0, f"annotation {f.annotation_id}, file {f.id}\n{f.s3_path}")
            if row.supported:
                item.setCheckState(0, Qt.CheckState.Checked if row.preselected else Qt.CheckState.Unchecked)
            else:
                item.setDisabled(True)
                item.setText(self._STATUS, NOT_SUPPORTED)
                item.setToolTip(self._STATUS, f"{f.shape_type} as {f.format}: {NOT_SUPPORTED}")
            self._items[f.id] = item
        self.files.addTopLevelItems(list(self._items.values()))
        self.files.blockSignals(False)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == 0:
            file_id = item.data(0, Qt.ItemDataRole.UserRole)
            self.fileToggled.emit(int(file_id), item.checkState(0) == Qt.CheckState.Checked)

    def _on_level(self, index: int) -> None:
        self.levelChosen.emit(int(self.level.itemData(index)))
