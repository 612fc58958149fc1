"""Drives this plugin's dock widget (``PortalWidget``) the way a user would.

- Connect: the Connect button; datasets are visible when the first page is in the tree
  (``datasetsLoaded``). Then, for a like-for-like row with the official plugin's complete
  listing, the tree is scrolled to the end until every dataset is listed (``list_all``).
- Expand: ``QTreeView.expand`` on the dataset row (Qt asks the model → one runs page).
- Open: make the run's row current, as a click does (``PortalWidget.select``); done when
  ``openFinished(run_id)`` has been emitted.
- Full resolution: pick "Level 0" in the widget's Level box (its ``activated`` signal, as a
  click on the entry); the image layer is swapped for level 0 alone. With
  ``--ours-level0 multiscale`` the layer stays multiscale instead and the user zooms in until
  napari shows level 0 (nothing to do when it already does at "fit to view").
- Sharp: every fetcher of the plugin's layers is idle (``PluginLayers.fetchers()``).
"""

from __future__ import annotations

from driver_base import BaseDriver, view_info
from probes import Action


class OursDriver(BaseDriver):
    name = "napari-cryoet-portal"
    pages_listing = True

    def add_widget(self, action: Action) -> None:
        import os

        _, self.widget = self.viewer.window.add_plugin_dock_widget(
            "napari-cryoet-portal", "CryoET Data Portal"
        )
        self.widget.url_edit.setText(os.environ["CRYOET_PORTAL_API_URL"])
        self.model = self.widget.model
        self.tree = self.widget.tree
        self._finished: set[int] = set()
        self.widget.openFinished.connect(self._finished.add)
        self.rec.wait_until(lambda: self.widget.isVisible(), 10)

    def connect(self, action: Action) -> None:
        self.widget.connect_button.click()
        t = self.rec.wait_until(
            lambda: len(self.model.root.children) > 0, self.args.listing_timeout,
            (self.widget.datasetsLoaded,),
        )
        action.mark("first_visible", t)
        action.notes["datasets_visible"] = len(self.model.root.children)
        action.notes["datasets_total"] = self.model.root.total

    def _load_more_datasets(self) -> None:
        """Scroll to the bottom: the "Load more…" row comes into view → the next page."""
        root = self.model.root
        n = len(root.children)
        self.tree.scrollToBottom()
        self.rec.wait_until(lambda: len(root.children) > n, self.args.listing_timeout,
                            (self.widget.datasetsLoaded,))

    def list_all(self, action: Action) -> None:
        root = self.model.root
        pages = 1
        while root.has_more:
            self._load_more_datasets()
            pages += 1
        action.mark("listed")
        action.notes["datasets"] = len(root.children)
        action.notes["pages"] = pages
        self.tree.scrollToTop()

    def expand(self, dataset_id: int, action: Action) -> None:
        while self.model.dataset(dataset_id) is None and self.model.root.has_more:
            self._load_more_datasets()
        node = self.model.dataset(dataset_id)
        index = self.widget.index_of(node)
        self.tree.scrollTo(index)  # the user scrolls to the row: not timed
        self.rec.restart(action)
        self.tree.expand(index)  # what clicking the row's arrow does
        t = self.rec.wait_until(lambda: len(node.children) > 0, self.args.action_timeout,
                                (self.widget.runsLoaded,))
        action.mark("first_runs_visible", t)
        action.notes["children"] = len(node.children)
        action.notes["children_total"] = node.total
        action.notes["children_are"] = "runs"

    def click_run(self, run: dict, action: Action) -> None:
        node = self.model.run(run["run_id"])
        if node is None:
            raise RuntimeError(f"run {run['run_id']} is not in the tree")
        self._finished.discard(run["run_id"])
        self._run_id = run["run_id"]
        self.tree.scrollTo(self.widget.index_of(node))  # into view first: not timed
        self.rec.restart(action)
        self.widget.select(node)  # what a click does: the row becomes current

    def all_layers_in(self) -> bool:
        return self._run_id in self._finished

    def view_sharp(self) -> bool:
        fetchers = self.widget.layers.fetchers()
        closed = [f for f in fetchers if getattr(f, "_closed", False)]
        if closed:  # it ignores requests: idle forever, the view never gets its voxels
            raise RuntimeError(f"{len(closed)} fetcher(s) of the plugin's layers are closed: "
                               "the view can never get sharp")
        return all(fetcher.idle for fetcher in fetchers)

    def layer_signals(self) -> tuple:
        return (self.viewer.layers.events.inserted, self.widget.layersChanged, self.widget.openFinished)

    def level0(self, run: dict, action: Action) -> None:
        if getattr(self.args, "ours_level0", "pin") != "multiscale":
            return super().level0(run, action)
        action.notes["run"] = run
        action.notes["how"] = "multiscale: zoom in until napari shows level 0"
        image = self._image
        zooms = 0
        while image.multiscale and image.data_level != 0 and zooms < 6:
            self.viewer.camera.zoom = self.viewer.camera.zoom * 2
            zooms += 1
            self.rec.idle(0.2)  # napari picks the level when it next draws
            self.rec.wait_until(lambda: image.loaded, self.args.level0_timeout)
        action.notes["zoom_doublings"] = zooms
        timeout = self.args.level0_timeout
        self._settle_sharp(action, timeout)
        view = view_info(self.viewer, image, run)
        action.notes["sharp_view"] = view
        self._add_need(action, "sharp", run, view)
        self.wait_quiet(action, timeout)

    def choose_level0(self, action: Action) -> None:
        box = self.widget.annotations.level
        index = box.findData(0)
        if index < 0 or not box.isEnabled():
            raise RuntimeError("the Level box offers no level 0")
        action.notes["level_entry"] = box.itemText(index)
        box.setCurrentIndex(index)
        box.activated.emit(index)  # what choosing the entry with the mouse emits
