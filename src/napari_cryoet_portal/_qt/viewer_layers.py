"""The layers this plugin put into a viewer, so it can replace them and nothing else.

Layers are tracked by identity under a key (``"image"``, an annotation file id): opening
another run removes exactly these, and a layer the user added, or one of ours the user
already deleted, is never touched. Each layer also carries its portal ids in
``layer.metadata["cryoet_portal"]`` (set by :mod:`napari_cryoet_portal.layers`), for
scripts and for the user.

Layers over progressive levels (:mod:`napari_cryoet_portal.data.progressive`) are refreshed
on the main thread whenever their fetcher lands planes, their fetches show as progress (parts
and megabytes) in napari's activity dock, and their fetchers are closed when the layers go.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from napari.components import ViewerModel
from napari.layers import Layer
from superqt.utils import ensure_main_thread

from ..data.progressive import ChunkFetcher, FetchProgress, fetchers_in
from ..layers import LayerData

__all__ = ["PluginLayers"]

_CREATING = object()  # a progress bar being built (see PluginLayers._show_progress)


class PluginLayers:
    """Adds, replaces and removes the plugin's layers in ``viewer``, by key."""

    def __init__(
        self,
        viewer: ViewerModel,
        *,
        on_fetch_error: Callable[[Layer, BaseException], None] | None = None,
        on_fetching: Callable[[bool], None] | None = None,
    ) -> None:
        self._viewer = viewer
        self._layers: dict[Hashable, list[Layer]] = {}
        self._fetchers: dict[int, list[ChunkFetcher]] = {}  # id(layer) → its fetchers
        self._progress: dict[int, Any] = {}  # id(fetcher) → its napari progress bar
        #: called on the main thread when a layer's voxels could not be fetched
        self.on_fetch_error = on_fetch_error
        #: called on the main thread when fetching starts (True) or stops (False)
        self.on_fetching = on_fetching

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
        for layer, (d, _, _) in zip(layers, data):
            fetchers = fetchers_in(d)
            for fetcher in fetchers:
                self._wire(fetcher, layer)
            if fetchers:
                self._fetchers[id(layer)] = fetchers
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
        # a pinned level of the same pyramid shares its fetcher: it must outlive the old layer
        keep = {id(f) for d, _, _ in data for f in fetchers_in(d)}
        self.remove(key, keep=keep)
        return self.add(key, data, index=index)

    def remove(self, key: Hashable, *, keep: Collection[int] = ()) -> None:
        """Remove the layers under ``key`` and close their fetchers (except those in ``keep``,
        by id, which a replacement layer goes on using)."""
        with _quick_removal():
            for layer in self._layers.pop(key, []):
                for fetcher in self._fetchers.pop(id(layer), []):
                    if id(fetcher) in keep:
                        continue
                    fetcher.close()
                    self._end_progress(fetcher)
                if layer in self._viewer.layers:
                    self._viewer.layers.remove(layer)

    def fetchers(self) -> list[ChunkFetcher]:
        """Fetchers of the plugin's layers (to wait for a sharp view, in tests and benchmarks)."""
        return [f for fetchers in self._fetchers.values() for f in fetchers]

    def _wire(self, fetcher: ChunkFetcher, layer: Layer) -> None:
        ref = weakref.ref(layer)

        @ensure_main_thread
        def refresh() -> None:
            target = ref()
            if target is not None and target in self._viewer.layers:
                target.refresh()

        @ensure_main_thread
        def failed(exc: BaseException) -> None:
            target = ref()
            if target is not None and target in self._viewer.layers and self.on_fetch_error:
                self.on_fetch_error(target, exc)

        @ensure_main_thread
        def progressed(state: FetchProgress) -> None:
            target = ref()
            if target is None or target not in self._viewer.layers:
                return
            self._show_progress(fetcher, target.name, state)

        fetcher.on_ready = refresh
        fetcher.on_error = failed
        fetcher.on_progress = progressed

    def cancel_fetches(self) -> None:
        """Stop fetching voxels for every layer (the views stay as they are)."""
        for fetcher in self.fetchers():
            fetcher.cancel()
            self._end_progress(fetcher)

    def _show_progress(self, fetcher: ChunkFetcher, name: str, state: FetchProgress) -> None:
        """One napari progress bar per fetch that has anything to read; gone when done.

        Creating a napari progress bar processes events, so this can be re-entered (the
        same fetch's next states) before the bar exists: a placeholder stands in for it.
        """
        from napari.utils import progress

        bars = self._progress
        if state.finished or state.total == 0:
            self._end_progress(fetcher)
            return
        bar = bars.get(id(fetcher))
        if bar is _CREATING:
            return
        if bar is None:
            bars[id(fetcher)] = _CREATING
            created = progress(total=state.total)
            if bars.get(id(fetcher)) is not _CREATING:  # the fetch ended meanwhile
                created.close()
                return
            bar = bars[id(fetcher)] = created
            if self.on_fetching is not None and sum(b is not _CREATING for b in bars.values()) == 1:
                self.on_fetching(True)
        bar.total = state.total
        bar.n = state.done
        bar.set_description(f"{name}: level {state.level}, {state.nbytes / 1e6:.1f} MB")
        bar.refresh()

    def _end_progress(self, fetcher: ChunkFetcher) -> None:
        bar = self._progress.pop(id(fetcher), None)
        if bar is None or bar is _CREATING:
            return
        bar.close()
        if self.on_fetching is not None and not any(b is not _CREATING for b in self._progress.values()):
            self.on_fetching(False)

    def clear(self) -> None:
        with _quick_removal():
            for key in list(self._layers):
                self.remove(key)


@contextmanager
def _quick_removal() -> Iterator[None]:
    """Remove layers without a full garbage collection per layer.

    napari runs ``gc.collect()`` for every layer it removes (to free GPU memory at once). Over
    the heap of a napari session (hundreds of thousands of objects) each takes 0.1–0.5 s on
    the main thread, so replacing a run of seven layers froze napari for seconds. With the
    heap frozen those collections look at new objects only; the removed layers' reference
    cycles go in Python's next automatic collection instead.
    """
    if gc.get_freeze_count():  # nested, or frozen by someone else: leave it as it is
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
