"""Key-photo thumbnails, fetched only when something shows them and kept in a small LRU.

A view asks for an icon while it paints a row, so asking *is* the visibility test: rows
that never scroll into view never cost a download. Bytes are read and decoded to a QImage
in a worker (QImage is safe off the main thread, QPixmap is not); the pixmap is made on the
main thread when the image arrives, and ``loaded(url)`` tells the views to repaint.
"""

from __future__ import annotations

from collections import OrderedDict

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtGui import QIcon, QImage, QPixmap

from ..data.storage import DataAccessError, read_bytes
from .workers import TaskRunner

__all__ = ["ThumbnailCache", "scaled"]

#: Decoded thumbnails kept in memory (a portal thumbnail is ~ 50–200 kB decoded).
CAPACITY = 256
#: Downloads in flight at once; more requests wait, newest first, so that scrolling past
#: rows does not delay the rows the user stopped at.
MAX_IN_FLIGHT = 4
#: Waiting requests beyond this are forgotten (oldest first); a row asks again if repainted.
MAX_WAITING = 64


class ThumbnailCache(QObject):
    """``pixmap(url)``/``icon(url)`` return what is cached and start fetching what is not.

    Signals
    -------
    loaded(str)
        The thumbnail at this URL is now cached.
    """

    loaded = Signal(str)

    def __init__(self, runner: TaskRunner, parent: QObject | None = None, *, capacity: int = CAPACITY) -> None:
        super().__init__(parent)
        self._runner = runner
        self._capacity = capacity
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._icons: dict[str, QIcon] = {}
        self._in_flight: set[str] = set()
        self._waiting: OrderedDict[str, None] = OrderedDict()
        self._failed: set[str] = set()

    def pixmap(self, url: str | None) -> QPixmap | None:
        """The cached thumbnail, or None (and a download is scheduled unless it failed before)."""
        if not url:
            return None
        pixmap = self._pixmaps.get(url)
        if pixmap is not None:
            self._pixmaps.move_to_end(url)
            return pixmap
        self._request(url)
        return None

    def icon(self, url: str | None) -> QIcon | None:
        pixmap = self.pixmap(url)
        if pixmap is None or url is None:
            return None
        icon = self._icons.get(url)
        if icon is None:
            icon = self._icons[url] = QIcon(pixmap)
        return icon

    def clear(self) -> None:
        """Forget everything (a new portal); downloads in flight are dropped."""
        self._waiting.clear()
        self._runner.cancel_prefix("thumbnail:")
        self._pixmaps.clear()
        self._icons.clear()
        self._failed.clear()

    # --- plumbing -------------------------------------------------------------------------

    def _request(self, url: str) -> None:
        if url in self._in_flight or url in self._failed:
            return
        self._waiting[url] = None
        self._waiting.move_to_end(url)
        while len(self._waiting) > MAX_WAITING:
            self._waiting.popitem(last=False)
        self._start_next()

    def _start_next(self) -> None:
        while self._waiting and len(self._in_flight) < MAX_IN_FLIGHT:
            url, _ = self._waiting.popitem(last=True)
            self._in_flight.add(url)
            self._runner.submit(
                f"thumbnail:{url}",
                _download,
                url,
                label="Loading thumbnail",
                quiet=True,
                on_result=lambda image, url=url: self._store(url, image),
                on_error=lambda _exc, url=url: self._failed.add(url),
                on_finish=lambda url=url: self._done(url),
            )

    def _store(self, url: str, image: QImage) -> None:
        self._pixmaps[url] = QPixmap.fromImage(image)
        while len(self._pixmaps) > self._capacity:
            old, _ = self._pixmaps.popitem(last=False)
            self._icons.pop(old, None)
        self.loaded.emit(url)

    def _done(self, url: str) -> None:
        self._in_flight.discard(url)
        self._start_next()


def _download(url: str) -> QImage:
    """Read and decode one image (worker thread)."""
    image = QImage.fromData(read_bytes(url))
    if image.isNull():
        raise DataAccessError(f"not an image: {url}")
    return image


def scaled(pixmap: QPixmap, size: int) -> QPixmap:
    """``pixmap`` fitted into a ``size``×``size`` square, smoothly."""
    return pixmap.scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
