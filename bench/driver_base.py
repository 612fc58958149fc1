"""The user story both drivers follow; each plugin's driver fills in how to click."""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable

import numpy as np
from napari.layers import Image
from qtpy.QtCore import QTimer

from probes import Action, Recorder, WaitTimeout

SHOWCASE_DATASET_ID = 10000
#: the link is quiet once no S3/file request has started, sent bytes or ended for this long
QUIET_S = 2.0
#: a request "in flight" that has shown no activity for this long is taken as abandoned
STALE_S = 30.0
#: z positions of the level-0 browse of the portal-sized tomogram
BROWSE_STEPS = 20


class BaseDriver:
    name = "?"
    #: the plugin lists a page at a time: after connect, scroll until everything is listed
    pages_listing = False

    def __init__(self, viewer: Any, rec: Recorder, facts: dict, args: Any) -> None:
        self.viewer = viewer
        self.rec = rec
        self.facts = facts
        self.args = args
        self.control: Any = None  # drive.Control, set by drive.py
        #: called after every action (drive.py keeps a partial result on disk with it)
        self.after_step: Callable[[], None] | None = None
        self.extra: dict[str, Any] = {}
        self._image: Image | None = None

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

    def choose_level0(self, action: Action) -> None:
        """The user asks for full resolution (level 0) of the open tomogram; return at once.
        Raise ``NotImplementedError`` where the plugin has no way to."""
        raise NotImplementedError

    def browse_budget_s(self) -> float | None:
        """Stop the level-0 browse before a step expected to end past this (None: no limit)."""
        return None

    # --- the story ------------------------------------------------------------------------

    def step(self, name: str, fn, *a) -> Action:
        action = self.rec.begin(name)
        try:
            fn(*a, action)
        except WaitTimeout as exc:
            action.timed_out = True
            action.notes["timeout"] = str(exc)
        except NotImplementedError as exc:
            action.notes["not_available"] = str(exc) or "the plugin offers no way to do this"
        except Exception as exc:  # noqa: BLE001 - recorded; the story goes on where it can
            action.notes["failed"] = f"{type(exc).__name__}: {exc}"
            self.extra.setdefault("failures", []).append({"action": name, "error": "".join(traceback.format_exception(exc))})
            traceback.print_exc()
        finally:
            self.rec.end(action)
        if self.after_step is not None:
            self.after_step()
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
        big = f["large_tomogram_run"]
        if large:
            self.step("expand_large", self.expand, big["dataset_id"])
        ts026 = f.get("ts026_run")
        if ts026 and ts026.get("tomogram_id") is not None:
            # the portal-sized tomogram (1000×928×960): open, full resolution, browse there.
            # Before TS_LARGE, so that its memory is measured from a session holding only
            # the showcase's small layers.
            if not large or ts026["dataset_id"] != big["dataset_id"]:
                self.step("expand_ts026", self.expand, ts026["dataset_id"])
            self.ts026_story(ts026)
        elif large:
            self.extra["ts026"] = "absent from this portal: its steps were skipped"
        if large:
            self.step("open_large", self.open, big)
            if not self.args.no_browse:
                self.step("browse_large", self.browse)

    def ts026_story(self, run: dict) -> None:
        def ok(a: Action) -> bool:
            return not a.timed_out and not {"not_available", "failed"} & set(a.notes)

        opened = self.step("open_ts026", self.open, run)
        if not ok(opened) or self._image is None:
            return
        level0 = self.step("level0_ts026", self.level0, run)
        if not ok(level0):
            return
        plane = self.step("plane_ts026", self.plane, run)
        if self.args.no_browse or not ok(plane):
            return
        first_step_s = (plane.marks.get("sharp") or time.monotonic()) - plane.t0
        self.step("browse_ts026", self.browse_level0, run, first_step_s)

    # --- waiting for what the user sees ---------------------------------------------------

    def _until_new_image(self, trigger: Callable[[], None], action: Action, timeout: float,
                         layer_mark: str, frame_mark: str) -> Image:
        """Run ``trigger`` (a click) and wait until a new image layer is loaded and then
        drawn: marks ``layer_mark`` (loaded) and ``frame_mark`` (the first frame drawn with
        it, timed in the draw itself: waiting for "the next draw" after noticing the layer
        would also count whatever the event loop runs in between, e.g. further layers)."""
        before = {id(layer) for layer in self.viewer.layers}

        def new_image() -> Image | None:
            for layer in self.viewer.layers:
                if isinstance(layer, Image) and id(layer) not in before:
                    return layer
            return None

        canvas = self.viewer.window._qt_viewer.canvas._scene_canvas
        frames: list[float] = []

        def on_draw(_event: Any) -> None:
            img = new_image()
            if not frames and img is not None and img.loaded and img.visible:
                frames.append(time.monotonic())

        canvas.events.draw.connect(on_draw, position="last")
        try:
            trigger()
            t = self.rec.wait_until(
                lambda: (img := new_image()) is not None and img.loaded, timeout, self.layer_signals(),
            )
            action.mark(layer_mark, t)
            canvas.update()
            action.mark(frame_mark, self.rec.wait_until(lambda: bool(frames), timeout) and frames[0])
        finally:
            canvas.events.draw.disconnect(on_draw)
        self._before = before
        return new_image()

    def _settle_sharp(self, action: Action, timeout: float) -> None:
        """Every layer loaded, the plugin's fetches done, then the next frame drawn: "sharp"."""
        self.rec.wait_until(lambda: all(layer.loaded for layer in self.viewer.layers), timeout)
        self.rec.wait_until(self.view_sharp, timeout, poll_ms=5)
        action.mark("sharp", self.wait_drawn(timeout))

    def wait_quiet(self, action: Action, timeout: float | None = None) -> None:
        """Wait until no S3/file request has been in flight for ``QUIET_S``; mark "quiet" at
        the moment the link fell silent (the wait itself is not part of it)."""
        if self.control is None:
            return
        state: dict[str, Any] = {}

        def quiet() -> bool:
            a = self.control.activity()
            idle_for = a["now"] - a["last"]
            if a["inflight"] > 0 and idle_for < STALE_S:
                return False
            if idle_for < QUIET_S:
                return False
            state.update(a)
            return True

        self.rec.wait_until(quiet, timeout or self.args.action_timeout, poll_ms=100)
        action.mark("quiet", max(state["last"], action.t0))
        if state.get("inflight"):
            action.notes["quiet_with_stale_requests"] = state["inflight"]

    def wait_drawn(self, timeout: float | None = None) -> float:
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
            return self.rec.wait_until(lambda: state["t"] is not None, timeout or self.args.action_timeout)
        finally:
            canvas.events.draw.disconnect(on_draw)

    # --- actions --------------------------------------------------------------------------

    def open(self, run: dict, action: Action) -> None:
        action.notes["run"] = run
        timeout = self.args.action_timeout
        image = self._until_new_image(lambda: self.click_run(run, action), action, timeout,
                                      "first_image_layer", "first_image")
        before = self._before
        action.notes["first_view"] = view_info(self.viewer, image, run)
        # the first image of both plugins is the coarsest level's middle plane
        top = (run.get("levels") or [None])[-1]
        if top:
            action.notes["need_query"] = {"first": {"tomogram_id": run["tomogram_id"], "level": len(run["levels"]) - 1,
                                                    "z": top["shape"][0] // 2}}
        t = self.rec.wait_until(self.all_layers_in, timeout, self.layer_signals(), poll_ms=5)
        self.rec.wait_until(lambda: all(layer.loaded for layer in self.viewer.layers), timeout)
        action.mark("all_layers", t)
        # the view at the resolution napari chose (this plugin shows a coarse preview first)
        self._settle_sharp(action, timeout)
        self._image = image
        view = view_info(self.viewer, image, run)
        action.notes["sharp_view"] = view
        self._add_need(action, "sharp", run, view)
        self.wait_quiet(action)
        action.notes["layers"] = [
            {"name": layer.name, "type": type(layer).__name__,
             "multiscale": bool(getattr(layer, "multiscale", False)),
             "shape": list(np.shape(layer.data[-1] if getattr(layer, "multiscale", False) else layer.data))
             if isinstance(layer, Image) else None}
            for layer in self.viewer.layers
            if id(layer) not in before
        ]

    def level0(self, run: dict, action: Action) -> None:
        """The user asks for full resolution: the plugin's own way (pin level 0 / "High")."""
        action.notes["run"] = run
        timeout = self.args.level0_timeout
        image = self._until_new_image(lambda: self.choose_level0(action), action, timeout,
                                      "image_layer", "image_drawn")
        self.rec.wait_until(self.all_layers_in, timeout, self.layer_signals(), poll_ms=5)
        self._settle_sharp(action, timeout)
        self._image = image
        view = view_info(self.viewer, image, run)
        action.notes["sharp_view"] = view
        self._add_need(action, "sharp", run, view)
        self.wait_quiet(action, timeout)

    def plane(self, run: dict, action: Action) -> None:
        """At level 0, move to a plane no view has needed yet (another chunk slab than the
        middle one): a full-resolution plane from the network."""
        action.notes["run"] = run
        timeout = self.args.level0_timeout
        depth = self._image.data.shape[0] if not self._image.multiscale else self._image.data[0].shape[0]
        z = depth // 8
        self._go_to_z(z)  # the official plugin reads the plane here, on the main thread
        self._settle_sharp(action, timeout)
        view = view_info(self.viewer, self._image, run)
        action.notes["z"] = z
        action.notes["sharp_view"] = view
        self._add_need(action, "sharp", run, view)
        self.wait_quiet(action, timeout)

    def browse_level0(self, run: dict, first_step_s: float, action: Action) -> None:
        """BROWSE_STEPS z positions across the volume at level 0, each until sharp."""
        action.notes["run"] = run
        timeout = self.args.level0_timeout
        image = self._image
        depth = image.data.shape[0] if not image.multiscale else image.data[0].shape[0]
        positions = [int(round(v)) for v in np.linspace(0, depth - 1, BROWSE_STEPS)]
        budget = self.browse_budget_s()
        steps: list[dict] = []
        last_s = first_step_s
        for z in positions:
            elapsed = time.monotonic() - action.t0
            if budget is not None and elapsed + last_s > budget:
                action.notes["stopped"] = (
                    f"{len(steps)} of {len(positions)} steps within {budget:.0f} s "
                    f"(one level-0 plane took {last_s:.1f} s)"
                )
                break
            t0 = time.monotonic()
            self._go_to_z(z)
            t_set = time.monotonic()
            self.rec.wait_until(lambda: all(layer.loaded for layer in self.viewer.layers), timeout)
            self.rec.wait_until(self.view_sharp, timeout, poll_ms=5)
            t1 = self.wait_drawn(timeout)
            last_s = t1 - t0
            steps.append({"z": z, "t0": t0, "t1": t1, "ms": round(last_s * 1000, 1),
                          "in_set_point_ms": round((t_set - t0) * 1000, 1)})
            self.rec.idle(0.05)
        action.notes["positions"] = positions
        action.notes["steps"] = steps
        action.notes["last_view"] = view_info(self.viewer, image, run)

    def _go_to_z(self, z: int) -> None:
        """Move the z slider to plane ``z`` of the shown image (world coordinates)."""
        image = self._image
        world = float(image.translate[0] + image.scale[0] * z)
        self.viewer.dims.set_point(0, world)

    def _add_need(self, action: Action, label: str, run: dict, view: dict | None) -> None:
        """Ask the portal (after the run) what ``view`` physically needs."""
        query = need_query(run, view)
        if query is not None:
            action.notes.setdefault("need_query", {})[label] = query

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
        action.notes["last_view"] = view_info(viewer, self._image)


def view_info(viewer: Any, layer: Image | None, run: dict | None = None) -> dict | None:
    """What the canvas shows of ``layer``: the level, the z index there and the visible box,
    so that the portal can tell the bytes the view physically needs. ``pyramid_level`` is the
    level of the tomogram's pyramid shown (a single-level layer is matched by its shape)."""
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
        shown = shapes[level]
        pyramid_level = level
        if run and run.get("levels"):
            matches = [k for k, lv in enumerate(run["levels"]) if list(lv["shape"]) == shown]
            pyramid_level = matches[0] if matches else None
        if multiscale:  # napari slices the visible box of the level it chose
            box = [[max(0, int(corners[0][a])), min(shown[a], int(corners[1][a]) + 1)] for a in (1, 2)]
        else:  # and the whole plane of a single-level image
            box = [[0, shown[1]], [0, shown[2]]]
        return {
            "multiscale": multiscale,
            "level": level,
            "pyramid_level": pyramid_level,
            "level_shapes": shapes,
            "dtype": str(arrays[level].dtype),
            "point_at_level": [float(v) for v in point],
            "z": int(min(max(round(float(point[0])), 0), shown[0] - 1)),
            "box_yx": box,
            "corner_pixels": corners,
            "displayed": list(viewer.dims.displayed),
            "scale": [float(v) for v in layer.scale],
        }
    except Exception as exc:  # diagnostics only
        return {"error": repr(exc)}


def need_query(run: dict, view: dict | None) -> dict | None:
    if not view or view.get("pyramid_level") is None or run.get("tomogram_id") is None:
        return None
    (y0, y1), (x0, x1) = view["box_yx"]
    return {"tomogram_id": run["tomogram_id"], "level": view["pyramid_level"], "z": view["z"],
            "y0": y0, "y1": y1, "x0": x0, "x1": x1}
