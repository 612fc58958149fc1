"""Blocking calls (HTTP, S3, decoding) in worker threads, results back on the main thread.

Every task has a *key*. Submitting a task under a key that is still running cancels the
older one, and cancelling a task means its result is dropped the moment it arrives: that
is the generation counter that keeps a slow answer for an old selection from ever reaching
the viewer. A cancelled task ends for the UI at once (busy clears, ``on_finish`` runs); its
thread finishes in the background, since a request in flight cannot be interrupted.

The tasks run on a pool of their own: they mostly wait on the network, and Qt's global pool
has only as many threads as cores, which napari and other plugins share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from qtpy.QtCore import QObject, QThreadPool, Signal
from superqt.utils import FunctionWorker, create_worker

__all__ = ["Task", "TaskRunner"]

R = TypeVar("R")

#: I/O-bound tasks: enough threads for a page, a detail, an image and a few annotation files
#: at once, without flooding the portal.
MAX_THREADS = 8


@dataclass(eq=False)
class Task(Generic[R]):
    """A handle on one submitted call."""

    key: str
    label: str
    quiet: bool
    on_result: Callable[[R], None]
    on_error: Callable[[Exception], None] | None
    on_finish: Callable[[], None] | None
    cancelled: bool = False
    ended: bool = False
    worker: FunctionWorker | None = field(default=None, repr=False)


class _Skipped:
    """Returned by a task that was cancelled before its thread started it."""


_SKIPPED = _Skipped()


class TaskRunner(QObject):
    """Runs callables in worker threads and delivers their outcome on the main thread.

    Signals
    -------
    busyChanged(bool)
        Whether any non-quiet task is running.
    statusChanged(str)
        The label of the newest running non-quiet task ("" when idle).
    failed(str, object)
        A task without its own ``on_error`` raised: its label and the exception.
    """

    busyChanged = Signal(bool)
    statusChanged = Signal(str)
    failed = Signal(str, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = _io_pool()
        self._tasks: dict[str, Task[Any]] = {}
        self._running: list[Task[Any]] = []
        # workers stay referenced until their thread is done, cancelled or not
        self._workers: set[FunctionWorker] = set()
        self._busy = False
        self._status = ""

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(
        self,
        key: str,
        fn: Callable[..., R],
        *args: Any,
        label: str,
        on_result: Callable[[R], None],
        on_error: Callable[[Exception], None] | None = None,
        on_finish: Callable[[], None] | None = None,
        quiet: bool = False,
    ) -> Task[R]:
        """Run ``fn(*args)`` in a worker thread; a running task with the same key is cancelled.

        ``on_result``/``on_error`` run on the main thread unless the task was cancelled;
        ``on_finish`` runs exactly once in any case, after them or when cancelled. Quiet
        tasks (thumbnails) neither make the runner busy nor show in the status.
        """
        if key in self._tasks:
            self._cancel(self._tasks[key])
        task: Task[R] = Task(key, label, quiet, on_result, on_error, on_finish)
        worker = create_worker(_call, task, fn, args, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda result: self._returned(task, result))
        worker.errored.connect(lambda exc: self._errored(task, exc))
        worker.finished.connect(lambda: self._workers.discard(worker))
        self._workers.add(worker)
        task.worker = worker
        self._tasks[key] = task
        self._running.append(task)
        self._changed()
        self._pool.start(worker)
        return task

    def cancel(self, key: str) -> None:
        """Cancel the task running under ``key``, if any."""
        task = self._tasks.get(key)
        if task is not None:
            self._cancel(task)
            self._changed()

    def cancel_prefix(self, prefix: str) -> None:
        """Cancel every running task whose key starts with ``prefix``."""
        for task in [t for k, t in self._tasks.items() if k.startswith(prefix)]:
            self._cancel(task)
        self._changed()

    def cancel_all(self, *, include_quiet: bool = True) -> None:
        for task in [t for t in self._tasks.values() if include_quiet or not t.quiet]:
            self._cancel(task)
        self._changed()

    @staticmethod
    def wait_for_threads(msecs: int) -> bool:
        """Block until every portal worker thread is done (tests, shutdown); True if so."""
        return _io_pool().waitForDone(msecs)

    # --- plumbing -------------------------------------------------------------------------

    def _cancel(self, task: Task[Any]) -> None:
        task.cancelled = True
        if task.worker is not None:
            task.worker.quit()
        self._end(task)

    def _returned(self, task: Task[R], result: R | _Skipped) -> None:
        if task.ended or _deleted(self):  # cancelled, or the UI is gone: it is done with it
            return
        if not isinstance(result, _Skipped):
            task.on_result(result)
        self._end(task)
        self._changed()

    def _errored(self, task: Task[Any], exc: Exception) -> None:
        if task.ended or _deleted(self):
            return
        if task.on_error is not None:
            task.on_error(exc)
        else:
            self.failed.emit(task.label, exc)
        self._end(task)
        self._changed()

    def _end(self, task: Task[Any]) -> None:
        if task.ended:
            return
        task.ended = True
        task.worker = None
        if self._tasks.get(task.key) is task:
            del self._tasks[task.key]
        self._running.remove(task)
        if task.on_finish is not None:
            task.on_finish()

    def _changed(self) -> None:
        running = [t for t in self._running if not t.quiet]
        status = running[-1].label if running else ""
        if status != self._status:
            self._status = status
            self.statusChanged.emit(status)
        if bool(running) != self._busy:
            self._busy = bool(running)
            self.busyChanged.emit(self._busy)


_POOL: QThreadPool | None = None


def _io_pool() -> QThreadPool:
    """One pool for every widget: not owned by a widget, since a QThreadPool's destructor
    waits for its threads, and closing a widget must not wait for a request in flight."""
    global _POOL
    if _POOL is None:
        _POOL = QThreadPool()
        _POOL.setMaxThreadCount(MAX_THREADS)
    return _POOL


def _deleted(obj: QObject) -> bool:
    """Has Qt deleted ``obj`` (its owner widget closed)? Results that arrive after that must
    not reach it. (A slot on ``destroyed`` would run while PyQt tears the object down, and
    crashed; a deleted wrapper raising RuntimeError is the same in PyQt and PySide.)"""
    try:
        obj.objectName()
    except RuntimeError:
        return True
    return False


def _call(task: Task[R], fn: Callable[..., R], args: tuple[Any, ...]) -> R | _Skipped:
    """The worker body: skip work that was cancelled while it waited for a thread."""
    if task.cancelled:
        return _SKIPPED
    return fn(*args)
