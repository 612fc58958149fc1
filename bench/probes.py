"""What the drivers measure inside the napari process: main-thread stalls, RSS, timed actions.

- ``StallProbe``: a 10 ms ``QTimer`` (precise) on the main thread records when it fires. The
  longest stall of an action is the longest gap between consecutive ticks inside the action's
  window, minus the 10 ms period: how long napari could not repaint or react to input.
- ``RssSampler``: a daemon thread reads the process RSS every 50 ms (``psutil``).
- ``Recorder``: times actions with ``time.monotonic()`` (the same clock as the demo portal's
  request logs, in another process), keeps named marks and waits without blocking the event
  loop (``wait_until`` spins a ``QEventLoop``, so the probe keeps ticking while we wait).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable

import psutil
from qtpy.QtCore import QEventLoop, QObject, Qt, QTimer

__all__ = ["Action", "Recorder", "RssSampler", "StallProbe", "WaitTimeout"]


class StallProbe(QObject):
    """Records the firing times of a precise QTimer on the main thread.

    A watchdog thread also samples the main thread's Python stack whenever no tick has come
    for ``sample_after_s``, so each long stall can be traced to the code that caused it.
    """

    def __init__(self, interval_ms: int = 10, sample_after_s: float = 0.1) -> None:
        super().__init__()
        self.interval_s = interval_ms / 1000.0
        self.sample_after_s = sample_after_s
        self.ticks = array("d")
        self.samples: list[tuple[float, list[str]]] = []  # (time, innermost-last frames)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._main_ident = threading.get_ident()
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="stall-watchdog", daemon=True)

    def start(self) -> None:
        self.ticks.append(time.monotonic())
        self._timer.start()
        self._watchdog.start()

    def stop(self) -> None:
        self._timer.stop()
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            if not self.ticks or time.monotonic() - self.ticks[-1] < self.sample_after_s:
                continue
            frame = sys._current_frames().get(self._main_ident)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)
            lines = [f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno} {f.name}" for f in stack]
            self.samples.append((time.monotonic(), lines[-60:]))

    def stacks_between(self, t0: float, t1: float) -> list[tuple[int, list[str]]]:
        """The distinct main-thread stacks sampled in [t0, t1], most frequent first."""
        counts: dict[tuple[str, ...], int] = {}
        for t, lines in self.samples:
            if t0 <= t <= t1:
                key = tuple(lines)
                counts[key] = counts.get(key, 0) + 1
        return sorted(((n, list(k)) for k, n in counts.items()), reverse=True)

    def _tick(self) -> None:
        self.ticks.append(time.monotonic())

    def stalls(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """[(stall seconds, when it ended)] for the window [t0, t1] (main-thread instants),
        longest first: each gap between ticks minus the timer period."""
        points = [t0] + [t for t in self.ticks if t0 < t < t1] + [t1]
        gaps = [(b - a - self.interval_s, b) for a, b in zip(points, points[1:])]
        return sorted((g for g in gaps if g[0] > 0), reverse=True)

    def longest_stall(self, t0: float, t1: float) -> tuple[float, float]:
        found = self.stalls(t0, t1)
        return found[0] if found else (0.0, t0)


class RssSampler:
    """Samples the resident set size of this process every ``period_s`` in a daemon thread."""

    def __init__(self, period_s: float = 0.05) -> None:
        self.period_s = period_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def now(self) -> int:
        return self._proc.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self._proc.memory_info().rss))
            self._stop.wait(self.period_s)

    def peak(self, t0: float, t1: float) -> int:
        """The highest sample in [t0, t1], or the last one before t1 if none falls inside."""
        samples = list(self.samples)
        inside = [rss for t, rss in samples if t0 <= t <= t1]
        if inside:
            return max(inside)
        before = [rss for t, rss in samples if t <= t1]
        return before[-1] if before else self.now()


class WaitTimeout(Exception):
    pass


@dataclass
class Action:
    name: str
    t0: float
    marks: dict[str, float] = field(default_factory=dict)
    t1: float | None = None
    timed_out: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    def mark(self, name: str, when: float | None = None) -> float:
        self.marks[name] = when if when is not None else time.monotonic()
        return self.marks[name]

    def ms(self, name: str) -> float | None:
        t = self.marks.get(name)
        return None if t is None else round((t - self.t0) * 1000, 1)


class Recorder:
    """Times the user actions of one driver run."""

    def __init__(self, probe: StallProbe, rss: RssSampler) -> None:
        self.probe = probe
        self.rss = rss
        self.actions: list[Action] = []

    def begin(self, name: str) -> Action:
        action = Action(name, time.monotonic())
        self.actions.append(action)
        return action

    def restart(self, action: Action) -> None:
        """Start the clock again: what came before (scrolling a row into view) is not timed."""
        self.idle(0.3)
        action.t0 = time.monotonic()

    def end(self, action: Action) -> None:
        action.t1 = time.monotonic()

    def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout_s: float,
        signals: tuple = (),
        poll_ms: int = 5,
    ) -> float:
        """Run the event loop until ``predicate()``; returns the monotonic time it became true.

        The predicate is checked from the event loop only: on a ``poll_ms`` timer, and on the
        next loop turn after any emission of ``signals`` (a signal can fire in the middle of
        a long main-thread operation, e.g. inside ``viewer.add_layer``; what it announces is
        on screen only once that operation has returned). Raises WaitTimeout after
        ``timeout_s``.
        """
        if predicate():
            return time.monotonic()
        loop = QEventLoop()
        state: dict[str, Any] = {"done": None, "error": None}

        def check(*_: Any) -> None:
            if state["done"] is not None or state["error"] is not None:
                return
            try:
                ready = predicate()
            except Exception as exc:  # noqa: BLE001 - raised again below, outside Qt's slot
                state["error"] = exc
                loop.quit()
                return
            if ready:
                state["done"] = time.monotonic()
                loop.quit()

        poll = QTimer()
        poll.setTimerType(Qt.TimerType.PreciseTimer)
        poll.setInterval(poll_ms)
        poll.timeout.connect(check)
        deadline = QTimer()
        deadline.setSingleShot(True)
        deadline.setInterval(int(timeout_s * 1000))
        deadline.timeout.connect(loop.quit)
        connected = []
        def soon(*_: Any) -> None:
            QTimer.singleShot(0, check)

        for signal in signals:
            signal.connect(soon)
            connected.append(signal)
        poll.start()
        deadline.start()
        try:
            loop.exec()
        finally:
            poll.stop()
            deadline.stop()
            for signal in connected:
                try:
                    signal.disconnect(soon)
                except (TypeError, RuntimeError):
                    pass
        if state["error"] is not None:
            raise state["error"]
        if state["done"] is None:
            raise WaitTimeout(f"not done after {timeout_s:.0f} s")
        return state["done"]

    def idle(self, seconds: float) -> None:
        """Let the event loop run (and background work settle) for ``seconds``."""
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def summary(self, action: Action) -> dict[str, Any]:
        t1 = action.t1 if action.t1 is not None else time.monotonic()
        stall, stall_at = self.probe.longest_stall(action.t0, t1)
        return {
            "name": action.name,
            "t0": action.t0,
            "t1": t1,
            "duration_ms": round((t1 - action.t0) * 1000, 1),
            "marks_ms": {k: action.ms(k) for k in action.marks},
            "marks_abs": dict(action.marks),
            "timed_out": action.timed_out,
            "longest_stall_ms": round(stall * 1000, 1),
            "longest_stall_at_ms": round((stall_at - action.t0) * 1000, 1),
            "stalls_over_50ms": [
                [round(s * 1000, 1), round((at - action.t0) * 1000, 1)]
                for s, at in self.probe.stalls(action.t0, t1) if s > 0.05
            ][:10],
            "longest_stall_stacks": [
                {"samples": n, "stack": stack}
                for n, stack in self.probe.stacks_between(stall_at - stall - self.probe.interval_s, stall_at)[:3]
            ],
            "rss_start_mb": _mb(self._rss_at(action.t0)),
            "rss_peak_mb": _mb(self.rss.peak(action.t0, t1)),
            "notes": action.notes,
        }

    def _rss_at(self, t: float) -> int:
        before = [rss for ts, rss in self.rss.samples if ts <= t]
        return before[-1] if before else self.rss.now()


def _mb(n: int) -> float:
    return round(n / 2**20, 1)
