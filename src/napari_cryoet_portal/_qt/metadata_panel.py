"""A searchable key/value tree of one portal entity's metadata.

``superqt.QSearchableTreeWidget`` comes close, but filters by case-sensitive regular
expression (a scientist typing "ctf" or "(" gets nothing or an error) and labels list
items by position; here the filter is a plain case-insensitive substring, and list items
such as authors are labelled by their name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from qtpy.QtWidgets import QLabel, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

__all__ = ["MetadataPanel", "metadata_items"]

#: keys that name a list item better than its index
_LABEL_KEYS = ("name", "title", "objectName", "fundingAgencyName", "id")

#: string fields that hold JSON (the API sends the viewer state as one long string): shown as
#: a tree, so that its layers, colours and contrast range can be read
_JSON_KEYS = ("neuroglancerConfig",)


def metadata_items(value: Any) -> list[tuple[str, str, list]]:
    """``(key, text, children)`` triples for a metadata mapping, recursively (no Qt)."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        pairs = [(_list_label(i, v), v) for i, v in enumerate(value)]
    items = []
    for key, v in pairs:
        if key in _JSON_KEYS and isinstance(v, str):
            v = _json_or_text(v)
        if isinstance(v, Mapping | list | tuple):
            items.append((str(key), _summary(v), metadata_items(v)))
        else:
            items.append((str(key), _text(v), []))
    return items


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _list_label(i: int, v: Any) -> str:
    if isinstance(v, Mapping):
        for key in _LABEL_KEYS:
            if v.get(key) not in (None, ""):
                return f"{i + 1}. {v[key]}"
    return str(i + 1)


def _summary(v: Mapping | list | tuple) -> str:
    if isinstance(v, Mapping):
        return ""
    return f"{len(v)} item" if len(v) == 1 else f"{len(v)} items"


def _text(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


class MetadataPanel(QWidget):
    """Shows one entity's metadata (:meth:`show_metadata`) or a message (:meth:`show_message`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(self)
        self.title.setWordWrap(True)
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter keys and values…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(("Key", "Value"))
        self.tree.setUniformRowHeights(True)
        self.tree.setWordWrap(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        self.show_message("Select a dataset, run, tomogram or annotation.")

    def show_metadata(self, title: str, metadata: Mapping[str, Any]) -> None:
        self.title.setText(title)
        self.tree.clear()
        self.tree.addTopLevelItems([_item(*entry) for entry in metadata_items(metadata)])
        self.tree.resizeColumnToContents(0)
        self._apply_filter(self.filter.text())

    def show_message(self, text: str) -> None:
        self.title.setText(text)
        self.tree.clear()

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            _filter(self.tree.topLevelItem(i), needle, False)


def _item(key: str, text: str, children: list) -> QTreeWidgetItem:
    item = QTreeWidgetItem([key, text])
    item.setToolTip(1, text)
    item.addChildren([_item(*child) for child in children])
    return item


def _filter(item: QTreeWidgetItem, needle: str, ancestor_matches: bool) -> bool:
    """Show ``item`` if it, an ancestor or a descendant matches; returns whether shown."""
    matches = ancestor_matches or not needle or any(
        needle in item.text(c).lower() for c in range(item.columnCount())
    )
    shown = matches
    for i in range(item.childCount()):
        shown = _filter(item.child(i), needle, matches) or shown
    item.setHidden(not shown)
    return shown
