"""The layers this plugin put into a viewer, so it can replace them and nothing else.

Layers are tracked by identity under a key (``"image"``, an annotation file id): opening
another run removes exactly these, and a layer the user added, or one of ours the user
already deleted, is never touched. Each layer also carries its portal ids in
``layer.metadata["cryoet_portal"]`` (set by :mod:`napari_cryoet_portal.layers`), for
scripts and for the user.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from napari.components import ViewerModel
from napari.layers import Layer

from ..layers import LayerData

__all__ = ["PluginLayers"]


class PluginLayers:
    """Adds, replaces and removes the plugin's layers in ``viewer``, by key."""

    def __init__(self, viewer: ViewerModel) -> None:
        self._viewer = viewer
        self._layers: dict[Hashable, list[Layer]] = {}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._layers

    def get(self, key: Hashable) -> list[Layer]:
        """The layers under ``key`` that are still in the viewer."""
        return [layer for layer in self._layers.get(key, []) if layer in self._viewer.layers]

    def all(self) -> list[Layer]:
        """Every plugin layer still in the viewer, in viewer order."""
        ours = {id(layer) for layers in self._layers.values() for layer in layers}
        return [layer for layer in self._viewer.layers if id(layer) in ours]

    def add(self, key: Hashable, data: Sequence[LayerData], *, index: int | None = None) -> list[Layer]:
        """Create layers from layer-data tuples and add them (at ``index``, else on top)."""
        layers = [Layer.create(d, dict(kwargs), layer_type) for d, kwargs, layer_type in data]
        for offset, layer in enumerate(layers):
            if index is None:
                self._viewer.layers.append(layer)
            else:
                self._viewer.layers.insert(index + offset, layer)
        self._layers.setdefault(key, []).extend(layers)
        return layers

    def replace(self, key: Hashable, data: Sequence[LayerData]) -> list[Layer]:
        """Swap the layers under ``key`` for new ones, at the same place in the layer list."""
        old = self.get(key)
        index = self._viewer.layers.index(old[0]) if old else None
        self.remove(key)
        return self.add(key, data, index=index)

    def remove(self, key: Hashable) -> None:
        for layer in self._layers.pop(key, []):
            if layer in self._viewer.layers:
                self._viewer.layers.remove(layer)

    def clear(self) -> None:
        for key in list(self._layers):
            self.remove(key)
