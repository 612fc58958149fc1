"""The user story both drivers follow; each plugin's driver fills in how to click."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from napari.layers import Image
from qtpy.QtCore import QTimer

from probes import Action, Recorder, WaitTimeout

SHOWCASE_DATASET_ID = 10000


class BaseDriver:
    name = "?"
    #: the plugin lists a page at a time: after connect, scroll until everything is listed
    pages_listing = False

    def __init__(self, viewer: Any, rec: Recorder, facts: dict, args: Any) -> None:
        self.viewer = viewer
        self.rec = rec
        self.facts = facts
        self.args = args
        self.extra: dict[str, Any] = {}

    # --- what each driver implements ------------------------------------------------------

    def add_widget(self, action: Action) -> None:
        raise NotImplementedError

    def connect(self, action: Action) -> None:
        raise NotImplementedError

    def list_all(self, action: Action) -> None:
        """Scroll the listing to its end (plugins with ``pages_listing``)."""
        raise NotImplementedError

    def expand(self, dataset_id: int, action: Action) -> None:
        raise NotImplementedError

    def click_run(self, run: dict, action: Action) -> None:
        """Click the run (or its tomogram) in the tree; return at once."""
        raise NotImplementedError

    def all_layers_in(self) -> bool:
        """True once the plugin has finished adding the layers of the opened run."""
        raise NotImplementedError

    def view_sharp(self) -> bool:
        """Every voxel on screen is at the level napari chose (no preview left)."""
        return True

    def layer_signals(self) -> tuple:
        return (self.viewer.layers.events.inserted,)

    # --- the story ------------------------------------------------------------------------

    def step(self, name: str, fn, *a) -> Action:
        action = self.rec.begin(name)
        try:
            fn(*a, action)
        except WaitTimeout as exc:
            action.timed_out = True
            action.notes["timeout"] = str(exc)
        finally:
            self.rec.end(action)
        self.rec.idle(0.5)
        return action

    def run_all(self, large: bool) -> None:
        f = self.facts
        self.step("open_widget", self.add_widget)
        self.step("connect", self.connect)
        if self.pages_listing:  # like-for-like with a plugin that lists everything on connect
            self.step("list_all", self.list_all)
        self.step("expand_largest", self.expand, f["largest_dataset"]["id"])
        self.step("open_first_run", self.open, f["first_run_of_largest"])
        if f.get("showcase_run"):
            self.step("expand_showcase", self.expand, SHOWCASE_DATASET_ID)
            self.step("open_showcase", self.open, f["showcase_run"])
        if large:
            big = f["large_tomogram_run"]
            self.step("expand_large", self.expand, big["dataset_id"])
            self.step("open_large", self.open, big)
            if not self.args.no_browse:
                self.step("browse_large", self.browse)

    def open(self, run: dict, action: Action) -> None:
        self._opened_image = None
        action.notes["run"] = run

        def new_image() -> Image | None:
            for layer in self.viewer.layers:
                if isinstance(layer, Image) and id(layer) not in before:
                    return layer
            return None

        self._before = before = {id(layer) for layer in self.viewer.layers}
        # the first frame rendered with the new image in it, timed as the frame is drawn (a
        # callback after vispy's own): waiting for "the next draw" after noticing the layer
        # would also count whatever the event loop runs in between (e.g. further layers)
        canvas = self.viewer.window._qt_viewer.canvas._scene_canvas
        frames: list[float] = []

        def on_draw(_event: Any) -> None:
            img = new_image()
            if not frames and img is not None and img.loaded and img.visible:
                frames.append(time.monotonic())

        canvas.events.draw.connect(on_draw, position="last")
        try:
            self.click_run(run, action)
            timeout = self.args.action_timeout
            t = self.rec.wait_until(
                lambda: (img := new_image()) is not None and img.loaded,
                timeout,
                self.layer_signals(),
            )
            action.mark("first_image_layer", t)
            canvas.update()
            action.mark("first_image", self.rec.wait_until(lambda: bool(frames), timeout) and frames[0])
        finally:
            canvas.events.draw.disconnect(on_draw)
        action.notes["first_view"] = view_info(self.viewer, new_image())
        t = self.rec.wait_until(self.all_layers_in, timeout, self.layer_signals(), poll_ms=5)
        self.rec.wait_until(lambda: all(layer.loaded for layer in self.viewer.layers), timeout)
        action.mark("all_layers", t)
        # the view at the resolution napari chose (this plugin shows a coarse preview first)
        self.rec.wait_until(self.view_sharp, timeout, poll_ms=5)
        action.mark("sharp", self.wait_drawn())
        self._opened_image = new_image()
        action.notes["layers"] = [
            {"name": layer.name, "type": type(layer).__name__,
             "multiscale": bool(getattr(layer, "multiscale", False)),
             "shape": list(np.shape(layer.data[-1] if getattr(layer, "multiscale", False) else layer.data))
             if isinstance(layer, Image) else None}
            for layer in self.viewer.layers
            if id(layer) not in before
        ]

    def wait_drawn(self) -> float:
        """When the canvas next finishes drawing (napari redraws after a layer is added)."""
        canvas = self.viewer.window._qt_viewer.canvas._scene_canvas
        state: dict[str, float | None] = {"t": None}

        def after_draw() -> None:
            if state["t"] is None:
                state["t"] = time.monotonic()

        def on_draw(_event: Any) -> None:
            QTimer.singleShot(0, after_draw)  # runs once this draw has completed

        canvas.events.draw.connect(on_draw)
        canvas.update()
        try:
            return self.rec.wait_until(lambda: state["t"] is not None, self.args.action_timeout)
        finally:
            canvas.events.draw.disconnect(on_draw)

    def browse(self, action: Action) -> None:
        """Step through z across the whole volume, then zoom in 4× and step again."""
        viewer = self.viewer
        rec = self.rec
        dims = viewer.dims
        axis = 0 if dims.ndisplay == 2 else None
        if axis is None:
            return
        nsteps = int(dims.nsteps[axis])
        positions = [int(round(v)) for v in np.linspace(0, nsteps - 1, 16)]

        def settle() -> None:
            rec.wait_until(lambda: all(layer.loaded for layer in viewer.layers), self.args.action_timeout)
            rec.wait_until(self.view_sharp, self.args.action_timeout)
            rec.idle(0.05)

        for z in positions:
            dims.set_current_step(axis, z)
            settle()
        viewer.camera.zoom = viewer.camera.zoom * 4
        settle()
        for z in positions[::2]:
            dims.set_current_step(axis, z)
            settle()
        action.notes["z_positions"] = positions
        action.notes["zoom"] = float(viewer.camera.zoom)
        action.notes["last_view"] = view_info(viewer, self._opened_image)


def view_info(viewer: Any, layer: Image | None) -> dict | None:
    """What the canvas shows of ``layer``: the level, the z index there and the visible box,
    so the report can compute the bytes the view physically needs (its compressed chunks)."""
    if layer is None:
        return None
    try:
        multiscale = bool(layer.multiscale)
        level = int(layer.data_level) if multiscale else 0
        arrays = layer.data if multiscale else [layer.data]
        shapes = [list(np.shape(a)) for a in arrays]
        factors = np.asarray(layer.downsample_factors)[level] if multiscale else np.ones(layer.ndim)
        point = np.asarray(layer.world_to_data(viewer.dims.point)) / factors
        corners = np.asarray(layer.corner_pixels).tolist()
        return {
            "multiscale": multiscale,
            "level": level,
            "level_shapes": shapes,
            "dtype": str(arrays[level].dtype),
            "point_at_level": [float(v) for v in point],
            "corner_pixels": corners,
            "displayed": list(viewer.dims.displayed),
            "scale": [float(v) for v in layer.scale],
        }
    except Exception as exc:  # diagnostics only
        return {"error": repr(exc)}
