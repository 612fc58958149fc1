"""napari with the portal widget on the demo portal: ``napari-cryoet-portal demo``.

With ``screenshot`` it also drives the widget as a user would (connect, expand the showcase
dataset, select the showcase run), waits for the image and its annotations, saves a picture
of the whole window and exits: the README's picture, and a smoke test of the whole stack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication

from ..demo.portal import DemoPortal
from .portal_widget import PortalWidget

__all__ = ["run_demo"]

#: How long the scripted screenshot may wait for each step, in seconds.
STEP_TIMEOUT = 60.0
#: Big enough for the tree, the panel and the canvas side by side.
WINDOW_SIZE = (1500, 950)


def run_demo(
    portal: DemoPortal | None = None,
    *,
    size: str = "small",
    screenshot: Path | None = None,
    run_name: str | None = None,
) -> int:
    """Start napari with the widget connected to ``portal`` (started here if not given).

    Returns the exit status: 0, or 1 when the scripted screenshot could not be taken.
    """
    import napari

    from ..demo import content

    own_portal = portal is None
    if portal is None:
        portal = DemoPortal(size)
        portal.start()
        portal.wait_ready()
    try:
        with portal.applied_environment():
            viewer = napari.Viewer(title="napari · CryoET Data Portal (demo)")
            viewer.window.resize(*WINDOW_SIZE)
            widget = PortalWidget(viewer)
            viewer.window.add_dock_widget(widget, name="CryoET Data Portal", area="right")
            widget.connect_to_portal(portal.api_url)
            if screenshot is None:
                napari.run()
                return 0
            try:
                _open_showcase(
                    widget, content.SHOWCASE_DATASET_ID, run_name or content.SHOWCASE_RUN_NAME
                )
                _wait_until(lambda: not widget.busy)
                viewer.screenshot(str(screenshot), canvas_only=False, flash=False)
            except TimeoutError as exc:
                print(f"error: {exc}")
                return 1
            finally:
                viewer.close()
            return 0
    finally:
        if own_portal:
            portal.stop()


def _open_showcase(widget: PortalWidget, dataset_id: int, run_name: str) -> None:
    """Expand the dataset, page through its runs to ``run_name`` and select it."""
    model = widget.model
    _wait_until(lambda: model.dataset(dataset_id) is not None or not model.root.has_more, "datasets")
    dataset = model.dataset(dataset_id)
    if dataset is None:
        raise TimeoutError(f"the portal has no dataset {dataset_id}")
    widget.select(dataset)
    widget.tree.expand(widget.index_of(dataset))
    run = None
    while run is None:
        _wait_until(lambda: not dataset.loading and bool(dataset.children), "runs")
        run = next((n for n in dataset.children if n.record.name == run_name), None)
        if run is None:
            if not dataset.has_more:
                raise TimeoutError(f"dataset {dataset_id} has no run {run_name}")
            model.fetchMore(model.index_of(dataset))
    opened: list[int] = []
    widget.openFinished.connect(opened.append)
    widget.select(run)
    widget.tree.expand(widget.index_of(run))
    _wait_until(lambda: run.record.id in opened, f"run {run_name} to open")


def _wait_until(condition: Callable[[], bool], what: str = "the widget") -> None:
    """Run the event loop until ``condition()`` holds (checked every 20 ms) or time runs out."""
    deadline = time.monotonic() + STEP_TIMEOUT
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: (condition() or time.monotonic() > deadline) and loop.quit())
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        timer.start()
        loop.exec()
        timer.stop()
    QApplication.processEvents()
