"""Download progress: bytes and files done, with an ETA, for a callback (the widget's progress
bar, the terminal's tqdm bar).

The callback is called from the download's threads, one call at a time (never concurrently),
at most every ``interval`` seconds for bytes and at every finished file; a widget forwards it
to the main thread (a Qt signal), the terminal draws it directly.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal, TextIO

__all__ = ["Progress", "ProgressCallback", "ProgressTracker", "TerminalProgress"]

Phase = Literal["listing", "downloading", "done"]


@dataclass(frozen=True)
class Progress:
    """A snapshot. ``bytes_done`` counts files found complete on disk (skipped) as done;
    ``bytes_fetched`` only what came over the network in this run (the ETA's rate)."""

    phase: Phase
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    bytes_fetched: int
    elapsed_s: float
    #: seconds left at the current rate; None before there is a rate
    eta_s: float | None
    #: the key finished last (or being listed)
    current: str | None = None

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else float(self.phase == "done")


ProgressCallback = Callable[[Progress], None]


class ProgressTracker:
    """Thread-safe counters behind :class:`Progress` snapshots."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback = callback
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()
        self._start = clock()
        self._last_emit = float("-inf")
        self.phase: Phase = "listing"
        self.bytes_total = 0
        self.files_total = 0
        self.bytes_done = 0
        self.files_done = 0
        self.bytes_fetched = 0
        self._current: str | None = None

    def listing(self, what: str) -> None:
        self._current = what
        self._emit(force=True)

    def start(self, bytes_total: int, files_total: int) -> None:
        with self._lock:
            self.phase = "downloading"
            self.bytes_total = bytes_total
            self.files_total = files_total
            self._start = self._clock()
        self._emit(force=True)

    def fetched(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_fetched += nbytes
            self.bytes_done += nbytes
        self._emit()

    def resumed(self, nbytes: int) -> None:
        """Bytes already on disk from an earlier run (a ``.part`` resumed)."""
        with self._lock:
            self.bytes_done += nbytes
        self._emit()

    def file_finished(self, key: str, skipped_bytes: int = 0) -> None:
        with self._lock:
            self.files_done += 1
            self.bytes_done += skipped_bytes
            self._current = key
        self._emit(force=True)

    def unfetched(self, nbytes: int) -> None:
        """A file given up: its bytes will not come (keeps done ≤ total honest)."""
        with self._lock:
            self.bytes_total = max(self.bytes_done, self.bytes_total - nbytes)
        self._emit()

    def finish(self) -> None:
        with self._lock:
            self.phase = "done"
        self._emit(force=True)

    def snapshot(self) -> Progress:
        with self._lock:
            elapsed = self._clock() - self._start
            rate = self.bytes_fetched / elapsed if elapsed > 0 and self.bytes_fetched else 0.0
            left = max(0, self.bytes_total - self.bytes_done)
            eta = (left / rate) if rate > 0 else (0.0 if left == 0 and self.phase != "listing" else None)
            return Progress(
                self.phase,
                self.bytes_done,
                self.bytes_total,
                self.files_done,
                self.files_total,
                self.bytes_fetched,
                elapsed,
                eta,
                self._current,
            )

    def _emit(self, force: bool = False) -> None:
        if self._callback is None:
            return
        now = self._clock()
        if not force and now - self._last_emit < self._interval:
            return
        with self._emit_lock:  # one call at a time, in order
            self._last_emit = now
            self._callback(self.snapshot())


class TerminalProgress:
    """A :data:`ProgressCallback` drawing a tqdm bar (bytes, files, rate, ETA) on ``file``."""

    def __init__(self, description: str = "", *, file: TextIO | None = None, disable: bool | None = None) -> None:
        self._description = description
        self._file = file or sys.stderr
        self._disable = disable
        self._bar = None

    def __call__(self, progress: Progress) -> None:
        if progress.phase == "listing":
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=progress.bytes_total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=self._description,
                file=self._file,
                disable=self._disable,
                dynamic_ncols=True,
            )
        bar = self._bar
        if bar.total != progress.bytes_total:
            bar.total = progress.bytes_total
        bar.update(progress.bytes_done - bar.n)
        bar.set_postfix_str(f"{progress.files_done}/{progress.files_total} files", refresh=False)
        if progress.phase == "done":
            bar.refresh()
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
