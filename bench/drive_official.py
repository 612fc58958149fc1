"""Drives napari-cryoet-data-portal 0.5.0 (the official plugin) the way a user would.

How that plugin works (read from its 0.5.0 wheel; nothing of it is copied here):
- ``DataPortalWidget`` = ``UriWidget`` (Connect button, read-only ``QLineEdit`` preset to the
  module constant ``GRAPHQL_URI``) + ``ListingWidget`` (a ``QTreeWidget``) + metadata + open.
- Connect runs ``Client(uri)`` in a superqt worker (parses the 199 KB SDL), then the listing
  worker builds another ``Client(uri)`` and runs ``DatasetFilter.load``: one
  ``Dataset.find(client)`` (every dataset, every scalar, no paging), then for EACH dataset
  ``Tomogram.find(client, [Tomogram.run.dataset_id == id])`` (N+1), yielding one tree item per
  dataset with its tomograms as children. Finished = the listing's ``ProgressWidget.finished``.
- There are no run items: a dataset's children are its tomograms, already loaded.
- Clicking a tomogram (``currentItemChanged``) clears the layers and opens it at the "Low"
  resolution: ``napari_ome_zarr`` reads ``https_omezarr_dir`` over HTTP and level 2 is
  materialised with ``np.asarray`` in the worker; then ``AnnotationFile.find`` for points and
  for masks, and per file ``annotation_shape`` / ``annotation`` lookups (one request each).

- Full resolution: its "Resolution" box offers Multi, High (level 0), Mid and Low (default);
  a choice takes effect with its Open button, which clears the layers and opens the tomogram
  and its annotations again. High gives napari level 0 as a lazy dask array, which napari
  slices on the main thread: a plane reads the whole 256³ chunks it crosses.

The URL is set from code: the read-only line edit only blocks typing, so ``setText`` works.
"""

from __future__ import annotations

import os

from qtpy.QtCore import Qt

from driver_base import BaseDriver
from probes import Action, WaitTimeout


class OfficialDriver(BaseDriver):
    name = "napari-cryoet-data-portal 0.5.0"

    def add_widget(self, action: Action) -> None:
        _, self.widget = self.viewer.window.add_plugin_dock_widget(
            "napari-cryoet-data-portal", "CryoET Data Portal"
        )
        self.widget._uri._uri_edit.setText(os.environ["CRYOET_PORTAL_API_URL"])
        self.tree = self.widget._listing.tree
        self.listing_progress = self.widget._listing._progress
        self.rec.wait_until(lambda: self.widget.isVisible(), 10)
        self._filtered_to: int | None = None

    # --- connect: the whole listing (datasets + every dataset's tomograms) ------------------

    def _listing_done(self) -> bool:
        return self._listing_started and self.listing_progress._worker is None

    def connect(self, action: Action) -> None:
        self._listing_started = False
        model = self.tree.model()

        def started() -> None:
            self._listing_started = True

        self.widget._uri.connected.connect(started)
        self.widget._uri._connect_button.click()
        total = self.facts["datasets"]
        try:
            t = self.rec.wait_until(lambda: self.tree.topLevelItemCount() >= 1, self.args.listing_timeout,
                                    (model.rowsInserted,))
            action.mark("first_visible", t)
            remaining = self.args.listing_timeout - (t - action.t0)
            t = self.rec.wait_until(self._listing_done, max(remaining, 1), (self.listing_progress.finished,))
            action.mark("listed", t)
        except WaitTimeout:
            action.timed_out = True
            action.notes["timeout_s"] = self.args.listing_timeout
            self.widget._listing.cancel()
        finally:
            self.widget._uri.connected.disconnect(started)
        action.notes["datasets_listed"] = self.tree.topLevelItemCount()
        action.notes["datasets_total"] = total
        action.notes["tomogram_items"] = sum(
            self.tree.topLevelItem(i).childCount() for i in range(self.tree.topLevelItemCount())
        )

    def _dataset_item(self, dataset_id: int):
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole).id == dataset_id:
                return item
        return None

    def _filter_to(self, dataset_id: int, action: Action) -> None:
        """The listing timed out before this dataset: reconnect listing only this dataset id,
        as a user can (Dataset IDs filter). Timed as a mark of the action, and flagged."""
        uri = self.widget._uri
        uri._disconnect_button.click()
        uri._filter_ids_type.setCurrentIndex(0)  # "Dataset IDs"
        uri._filter_ids_edit.setText(str(dataset_id))
        self._listing_started = False
        uri.connected.connect(lambda *_: setattr(self, "_listing_started", True))
        uri._connect_button.click()
        t = self.rec.wait_until(self._listing_done, self.args.listing_timeout, (self.listing_progress.finished,))
        action.mark("relisted_by_id_filter", t)
        action.notes["relisted_by_id_filter"] = True
        self._filtered_to = dataset_id

    # --- expand: children are tomograms, loaded during the listing ----------------------------

    def expand(self, dataset_id: int, action: Action) -> None:
        item = self._dataset_item(dataset_id)
        if item is None:
            self._filter_to(dataset_id, action)
            item = self._dataset_item(dataset_id)
        self.tree.scrollToItem(item)  # the user scrolls to the row: not timed
        self.rec.restart(action)
        item.setExpanded(True)  # what clicking the row's arrow does
        t = self.rec.wait_until(lambda: item.isExpanded() and item.childCount() > 0, self.args.action_timeout)
        action.mark("first_runs_visible", t)
        action.notes["children"] = item.childCount()
        action.notes["children_are"] = "tomograms"

    # --- open: click the run's tomogram --------------------------------------------------------

    def click_run(self, run: dict, action: Action) -> None:
        item = self._dataset_item(run["dataset_id"])
        if item is None:
            raise RuntimeError(f"dataset {run['dataset_id']} is not listed")
        target = None
        for i in range(item.childCount()):
            child = item.child(i)
            if child.data(0, Qt.ItemDataRole.UserRole).id == run["tomogram_id"]:
                target = child
                break
        if target is None:
            raise RuntimeError(f"tomogram {run['tomogram_id']} not under dataset {run['dataset_id']}")
        self._open_started = False
        self.tree.scrollToItem(target)  # into view first: not timed
        self.rec.restart(action)
        self.tree.setCurrentItem(target)  # what a click does: currentItemChanged → open
        self._open_started = True
        action.notes["resolution"] = self.widget._open.resolution.currentText()

    def all_layers_in(self) -> bool:
        return self._open_started and self.widget._open._progress._worker is None

    def layer_signals(self) -> tuple:
        return (self.viewer.layers.events.inserted, self.widget._open._progress.finished)

    def choose_level0(self, action: Action) -> None:
        opener = self.widget._open
        opener.resolution.setCurrentText("High")
        action.notes["resolution"] = opener.resolution.currentText()
        self._open_started = False
        opener.open.click()  # clears the layers, opens tomogram + annotations at "High"
        self._open_started = True

    def browse_budget_s(self) -> float | None:
        return self.args.official_browse_budget
