"""napari alone, no plugin: what adding layers costs the main thread on this machine.

Both plugins must add their layers on the main thread, so napari's own cost of creating an
Image / Points / Labels layer (vispy visuals, GL programs on llvmpipe) is a floor under the
"longest stall" of an open action that no plugin can go below. Same data sizes as the demo's
showcase run (TS_001: 64×128×128 float32, a few dozen points, an int8 mask).
"""

from __future__ import annotations

import numpy as np

from driver_base import BaseDriver
from probes import Action


class FloorDriver(BaseDriver):
    name = "napari alone"

    def run_all(self, large: bool) -> None:
        rng = np.random.default_rng(0)
        image = rng.standard_normal((64, 128, 128)).astype(np.float32)
        points = rng.uniform(0, 64, (40, 3))
        labels = (rng.uniform(size=(64, 128, 128)) > 0.7).astype(np.int8)
        self.step("add_image_first", self._add, lambda: self.viewer.add_image(image, name="image"))
        self.step("add_points", self._add, lambda: self.viewer.add_points(points, name="points"))
        self.step("add_labels", self._add, lambda: self.viewer.add_labels(labels, name="labels"))
        self.step("add_image_second", self._add, lambda: self.viewer.add_image(image * 2, name="image 2"))
        self.step("clear_layers", self._add, self.viewer.layers.clear)

    def _add(self, fn, action: Action) -> None:
        fn()
        t = self.rec.wait_until(lambda: all(layer.loaded for layer in self.viewer.layers), 60)
        action.mark("done", t)
        self.rec.idle(0.2)  # the first draw after the insert happens on the next loop turns
