"""What can go wrong in a download, as one-line messages (never a traceback for the user)."""

from __future__ import annotations

import errno

__all__ = [
    "DownloadError",
    "LocalWriteError",
    "RemoteError",
    "RemoteNotFound",
    "RemoteUnreachable",
    "local_error_message",
]


class DownloadError(Exception):
    """A download cannot go on at all (e.g. the destination is full); the message says why."""


class LocalWriteError(DownloadError):
    """Writing below the destination failed in a way retrying will not fix (full, read-only)."""


class RemoteError(Exception):
    """The server refused or failed one object; other objects may still work."""


class RemoteNotFound(RemoteError):
    """The object (or every object below a prefix) is not on the server."""


class RemoteUnreachable(DownloadError, RemoteError):
    """The storage endpoint cannot be reached at all."""


#: local errors that stop the whole download: every other file would fail the same way
FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


def local_error_message(exc: OSError, path: object) -> str:
    """``OSError`` while writing ``path`` → one line a person can act on."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device while writing {path} (free some space, then run again to resume)"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied: cannot write {path}"
    if code == errno.EROFS:
        return f"read-only file system: cannot write {path}"
    if code == errno.ENOTDIR:
        return f"not a folder: {exc.filename or path}"
    reason = exc.strerror or str(exc)
    return f"cannot write {path}: {reason}"
