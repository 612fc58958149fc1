"""Safe, resumable, concurrent downloads of a :class:`~.selection.Selection` into a folder.

Every object lands at ``DEST/<its key>``, as ``aws s3 sync`` of the bucket lays it out:

- a file appears under its final name only when complete: bytes go to ``name.part`` in the
  same folder, which is fsynced and renamed (``os.replace``) once its size is the server's;
- a file already there with the server's size, not older than the object, is skipped (the
  ``aws s3 sync`` rule; completed files get the object's date, as the AWS CLI gives them);
- a ``.part`` left by an interrupted run (cancel, Ctrl-C, a kill, a lost connection) resumes
  with one ranged GET from where it stopped, unless the object changed since;
- a bounded number of transfers run at once (``jobs`` threads);
- cancelling (a ``threading.Event``) stops every transfer between two pieces, leaving only
  ``.part`` files behind; a full disk or a permission error stops the download with one line;
- a key that would land outside the destination (``..``, an absolute path) is refused.
"""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from .errors import (
    FATAL_ERRNOS,
    LocalWriteError,
    RemoteError,
    RemoteNotFound,
    RemoteUnreachable,
    local_error_message,
)
from .progress import ProgressCallback, ProgressTracker
from .s3 import ObjectStream, RemoteObject, S3Reader
from .selection import Remote, Selection

__all__ = [
    "DEFAULT_JOBS",
    "PART_SUFFIX",
    "DownloadResult",
    "FileOutcome",
    "FileTask",
    "Listing",
    "download",
    "list_selection",
    "local_path",
]

DEFAULT_JOBS = 4
PART_SUFFIX = ".part"
PIECE = 1 << 20  # bytes read, written and counted at a time: cancel answers within one piece
RETRIES = 3  # a transfer that breaks off resumes from where it stopped this many times

Status = Literal["downloaded", "skipped", "failed", "cancelled"]


@dataclass(frozen=True)
class FileTask:
    """One object to fetch, and where it goes."""

    remote: RemoteObject
    path: Path
    https_url: str | None = None

    @property
    def part_path(self) -> Path:
        return self.path.with_name(self.path.name + PART_SUFFIX)


@dataclass(frozen=True)
class FileOutcome:
    key: str
    path: Path | None
    size: int
    status: Status
    #: bytes this run fetched for it
    fetched: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Listing:
    """A selection listed at the server: the files to fetch and what cannot be fetched."""

    selection: Selection
    dest: Path
    tasks: tuple[FileTask, ...]
    #: objects missing on the server, refused keys, sizes the API and the server disagree on
    problems: tuple[FileOutcome, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(t.remote.size for t in self.tasks)


@dataclass(frozen=True)
class DownloadResult:
    selection: Selection
    dest: Path
    outcomes: tuple[FileOutcome, ...]
    cancelled: bool = False
    #: why the whole download stopped (full disk, permission), if it did
    fatal: str | None = None
    interrupted: bool = field(default=False, repr=False)

    @property
    def complete(self) -> bool:
        """Everything selected is on disk under its final name."""
        return (
            not self.cancelled
            and self.fatal is None
            and bool(self.outcomes)
            and all(o.status in ("downloaded", "skipped") for o in self.outcomes)
        )

    @property
    def bytes_fetched(self) -> int:
        return sum(o.fetched for o in self.outcomes)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def errors(self) -> list[str]:
        lines = [self.fatal] if self.fatal else []
        lines += [o.error for o in self.outcomes if o.status == "failed" and o.error and o.error != self.fatal]
        return lines

    def summary(self) -> str:
        """One line: what happened, and what to do next when it is not complete."""
        parts = [f"{self.count('downloaded')} downloaded", f"{self.count('skipped')} already there"]
        if self.count("failed"):
            parts.append(f"{self.count('failed')} failed")
        if self.count("cancelled"):
            parts.append(f"{self.count('cancelled')} not finished")
        text = f"{self.selection.description}: " + ", ".join(parts) + f" ({_size(self.bytes_fetched)} fetched) in {self.dest}"
        if self.cancelled:
            text += "; cancelled: run again to resume"
        return text


def local_path(dest: Path, key: str) -> Path:
    """``dest/key`` for a bucket key; a key that would leave ``dest`` → ``ValueError``."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or "\x00" in key
        or any(p in ("", ".", "..") for p in parts)
        or (len(parts[0]) >= 2 and parts[0][1] == ":")  # a drive letter
    ):
        raise ValueError(f"refused to write {key!r}: it would land outside {dest}")
    return dest.joinpath(*parts)


def list_selection(
    selection: Selection,
    dest: str | os.PathLike[str],
    *,
    reader: S3Reader | None = None,
    progress: ProgressTracker | None = None,
) -> Listing:
    """List the selection's folders and stat its files at the server (no bytes fetched).

    Raises :class:`~.errors.RemoteUnreachable` when the S3 endpoint cannot be reached.
    """
    dest_dir = Path(dest).expanduser().absolute()
    own = reader is None
    reader = reader or S3Reader()
    tasks: dict[str, FileTask] = {}
    problems: list[FileOutcome] = []
    try:
        for remote in selection.remotes:
            if progress is not None:
                progress.listing(remote.s3_url)
            try:
                objects = _objects(reader, remote)
            except RemoteUnreachable:
                raise
            except RemoteError as exc:  # missing, access denied, …: this remote only
                problems.append(FileOutcome(remote.key, None, remote.size or 0, "failed", error=str(exc)))
                continue
            for obj in objects:
                if obj.key in tasks:
                    continue
                if not remote.folder and remote.size is not None and remote.size != obj.size:
                    problems.append(FileOutcome(obj.key, None, obj.size, "failed", error=(
                        f"size mismatch for {obj.url}: the portal lists {remote.size} bytes, "
                        f"the server has {obj.size}; not downloaded")))
                    continue
                try:
                    path = local_path(dest_dir, obj.key)
                except ValueError as exc:
                    problems.append(FileOutcome(obj.key, None, obj.size, "failed", error=str(exc)))
                    continue
                tasks[obj.key] = FileTask(obj, path, remote.https_for(obj.key))
    finally:
        if own:
            reader.close()
    ordered = tuple(sorted(tasks.values(), key=lambda t: t.remote.key))
    return Listing(selection, dest_dir, ordered, tuple(problems))


def _objects(reader: S3Reader, remote: Remote) -> list[RemoteObject]:
    bucket = remote.bucket
    if not remote.folder:
        return [reader.stat(bucket, remote.key)]
    found = [
        o for o in reader.list(bucket, remote.key)
        if not o.key.endswith("/") and remote.includes(o.key)  # "folder" marker objects
    ]
    if not found:
        what = f" matching {remote.include}" if remote.include else ""
        raise RemoteNotFound(f"nothing{what} found on the server under {remote.s3_url.rstrip('/')}/")
    return found


def download(
    selection: Selection,
    dest: str | os.PathLike[str],
    *,
    jobs: int = DEFAULT_JOBS,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    reader: S3Reader | None = None,
    listing: Listing | None = None,
) -> DownloadResult:
    """Download ``selection`` below ``dest``; see the module docstring for the guarantees.

    Safe to call from a worker thread: ``progress`` is called from the transfer threads (one
    call at a time), ``cancel`` may be set from any thread. Ctrl-C in the calling (main)
    thread cancels too. Problems with single files are in the result (``complete`` is False);
    problems that stop everything before a byte is fetched raise
    :class:`~.errors.DownloadError` (destination not a folder or not writable, not enough
    space, S3 unreachable).
    """
    cancel = cancel if cancel is not None else threading.Event()
    tracker = ProgressTracker(progress)
    dest_dir = _prepare_dest(Path(dest).expanduser().absolute())
    own = reader is None
    reader = reader or S3Reader(max_connections=max(10, jobs + 2))
    try:
        if listing is None:
            listing = list_selection(selection, dest_dir, reader=reader, progress=tracker)
        _check_space(listing)
        run = _Run(reader, tracker, cancel)
        tracker.start(listing.total_bytes, len(listing.tasks))
        outcomes, interrupted = run.all(listing.tasks, jobs)
    finally:
        if own:
            reader.close()
    tracker.finish()
    return DownloadResult(
        selection,
        dest_dir,
        tuple(outcomes) + listing.problems,
        cancelled=cancel.is_set() and run.fatal is None,
        fatal=run.fatal,
        interrupted=interrupted,
    )


class _Cancelled(Exception):
    pass


class _Run:
    """One download's transfers: shared stop flag, first fatal error, progress."""

    def __init__(self, reader: S3Reader, tracker: ProgressTracker, cancel: threading.Event) -> None:
        self.reader = reader
        self.tracker = tracker
        self.cancel = cancel
        self.fatal: str | None = None
        self._fatal_lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        return self.cancel.is_set() or self.fatal is not None

    def all(self, tasks: tuple[FileTask, ...], jobs: int) -> tuple[list[FileOutcome], bool]:
        if not tasks:
            return [], False
        interrupted = False
        pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="portal-download")
        futures: list[Future[FileOutcome]] = [pool.submit(self.fetch, t) for t in tasks]
        try:
            pending = set(futures)
            while pending:  # short waits: Ctrl-C reaches the main thread
                _done, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                if self.stopping:
                    break
        except KeyboardInterrupt:
            interrupted = True
            self.cancel.set()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        outcomes = []
        for task, future in zip(tasks, futures):
            if future.cancelled():
                outcomes.append(FileOutcome(task.remote.key, task.path, task.remote.size, "cancelled"))
            else:
                outcomes.append(future.result())
        return outcomes, interrupted

    def fetch(self, task: FileTask) -> FileOutcome:
        obj = task.remote
        if self.stopping:
            return FileOutcome(obj.key, task.path, obj.size, "cancelled")
        fetched = [0]
        try:
            if _is_complete(task.path, obj):
                self.tracker.file_finished(obj.key, skipped_bytes=obj.size)
                return FileOutcome(obj.key, task.path, obj.size, "skipped")
            self._transfer(task, fetched)
        except _Cancelled:
            return FileOutcome(obj.key, task.path, obj.size, "cancelled", fetched[0])
        except RemoteError as exc:
            self.tracker.unfetched(obj.size)
            return FileOutcome(obj.key, task.path, obj.size, "failed", fetched[0], str(exc))
        except OSError as exc:
            message = local_error_message(exc, _shown(exc, task))
            if exc.errno in FATAL_ERRNOS:
                with self._fatal_lock:
                    self.fatal = self.fatal or message
            self.tracker.unfetched(obj.size)
            return FileOutcome(obj.key, task.path, obj.size, "failed", fetched[0], message)
        self.tracker.file_finished(obj.key)
        return FileOutcome(obj.key, task.path, obj.size, "downloaded", fetched[0])

    def _transfer(self, task: FileTask, fetched: list[int]) -> None:
        """Fill ``task``'s ``.part`` to the object's size, then move it into place;
        ``fetched[0]`` counts the bytes received."""
        obj, part = task.remote, task.part_path
        part.parent.mkdir(parents=True, exist_ok=True)
        offset = _resume_offset(part, obj)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
        with os.fdopen(fd, "wb") as f:
            if os.fstat(f.fileno()).st_size != offset:
                f.truncate(offset)
            f.seek(offset)
            if offset:
                self.tracker.resumed(offset)
            failures = 0
            while offset < obj.size:
                if self.stopping:
                    raise _Cancelled
                try:
                    stream = self.reader.open(obj.bucket, obj.key, offset)
                    try:
                        offset = self._copy(stream, f, obj, offset, fetched)
                    finally:
                        stream.close()
                except RemoteNotFound:
                    raise
                except _Changed:
                    part.unlink(missing_ok=True)  # bytes of another version: never resume them
                    raise
                except RemoteError as exc:
                    failures += 1
                    if failures > RETRIES:
                        raise RemoteError(f"{obj.url}: {exc} (after {RETRIES} retries; run again to resume)") from exc
                    self.cancel.wait(_backoff(failures))
                    continue
                if offset < obj.size:  # the body ended early without an error
                    failures += 1
                    if failures > RETRIES:
                        raise RemoteError(
                            f"truncated body for {obj.url}: received {offset} of {obj.size} bytes"
                            " (the .part is kept: run again to resume)"
                        )
                    self.cancel.wait(_backoff(failures))
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, task.path)
        _set_mtime(task.path, obj.last_modified)
        _fsync_dir(task.path.parent)

    def _copy(
        self, stream: ObjectStream, f: BinaryIO, obj: RemoteObject, offset: int, fetched: list[int]
    ) -> int:
        """Write ``stream``'s pieces from ``offset``; returns the new offset."""
        if stream.total != obj.size:
            raise _Changed(obj, stream.total)
        if stream.start != offset:  # the server sent the whole object: start again
            self.tracker.resumed(stream.start - offset)
            f.seek(stream.start)
            f.truncate(stream.start)
            offset = stream.start
        for piece in stream.pieces(PIECE):
            if offset + len(piece) > obj.size:
                raise RemoteError(f"{obj.url}: the server sent more than its {obj.size} bytes")
            f.write(piece)
            offset += len(piece)
            fetched[0] += len(piece)
            self.tracker.fetched(len(piece))
            if self.stopping:
                raise _Cancelled
        return offset


class _Changed(RemoteError):
    def __init__(self, obj: RemoteObject, size: int) -> None:
        super().__init__(
            f"{obj.url} changed on the server during the download (now {size} bytes, listed "
            f"{obj.size}); run again"
        )


def _backoff(failures: int) -> float:
    """Seconds before retry ``failures`` (0.25, 0.5, 1, … at most 4)."""
    return min(4.0, 0.125 * 2**failures)


def _is_complete(path: Path, obj: RemoteObject) -> bool:
    """Already downloaded: a regular file of the object's size, not older than the object."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    return path.is_file() and st.st_size == obj.size and st.st_mtime >= obj.last_modified


def _resume_offset(part: Path, obj: RemoteObject) -> int:
    """Where a ``.part`` left by an earlier run lets this one start (0: from the beginning)."""
    try:
        st = part.stat()
    except FileNotFoundError:
        return 0
    if st.st_size > obj.size or st.st_mtime < obj.last_modified:
        return 0  # longer than the object, or written before the object last changed
    return st.st_size


def _set_mtime(path: Path, when: float) -> None:
    try:
        os.utime(path, (when, when))
    except OSError:
        pass


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _prepare_dest(dest: Path) -> Path:
    if dest.exists() and not dest.is_dir():
        raise LocalWriteError(f"not a folder: {dest}")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocalWriteError(local_error_message(exc, dest)) from exc
    if not os.access(dest, os.W_OK):
        raise LocalWriteError(f"permission denied: cannot write in {dest}")
    return dest


def _check_space(listing: Listing) -> None:
    """Refuse to start when the bytes still missing cannot fit."""
    needed = 0
    for task in listing.tasks:
        if _is_complete(task.path, task.remote):
            continue
        try:
            have = task.part_path.stat().st_size
        except OSError:
            have = 0
        needed += max(0, task.remote.size - have)
    if not needed:
        return
    try:
        free = shutil.disk_usage(listing.dest).free
    except OSError:
        return
    if needed > free:
        raise LocalWriteError(
            f"not enough space in {listing.dest}: {_size(needed)} still to download, {_size(free)} free"
        )


def _shown(exc: OSError, task: FileTask) -> object:
    return exc.filename or task.part_path


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes} B"

