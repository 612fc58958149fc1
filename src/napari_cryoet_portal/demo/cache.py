"""Generated demo content is cached on disk, keyed by size and generator version.

Generation happens in a hidden temporary sibling directory that is renamed into place only once
complete, so an interrupted run never leaves a directory that looks complete, and concurrent
callers each build their own copy and the first rename wins (the others discard theirs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from . import content

ENV_VAR = "NAPARI_CRYOET_PORTAL_CACHE"
APP_NAME = "napari-cryoet-portal"


def default_cache_root() -> Path:
    """$NAPARI_CRYOET_PORTAL_CACHE, else the user cache dir (platformdirs if importable)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        return Path.home() / ".cache" / APP_NAME
    return Path(user_cache_dir(APP_NAME, appauthor=False))


def content_dir(size: str, cache_root: Path | None = None) -> Path:
    """Where the content for `size` at the current GENERATOR_VERSION lives (complete or not)."""
    root = default_cache_root() if cache_root is None else Path(cache_root)
    return root / f"{size}-v{content.GENERATOR_VERSION}"


def ensure_content(size: str, cache_root: Path | None = None) -> Path:
    """The complete content directory for `size` (`tables.json`, `bucket/`, `COMPLETE`),
    generated on first use."""
    if size not in content.SIZES:
        raise ValueError(f"unknown demo portal size {size!r}; expected one of {content.SIZES}")
    final = content_dir(size, cache_root)
    if (final / "COMPLETE").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        content.generate(size, tmp)
        tmp.chmod(0o755)  # mkdtemp's 0700 would follow the directory into place
        _install(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after a successful rename
    return final


def _install(tmp: Path, final: Path) -> None:
    """Atomically rename `tmp` to `final`, unless a concurrent caller got there first. A
    `final` without COMPLETE (not made by us: we only rename complete trees) is moved aside."""
    for _ in range(3):
        try:
            tmp.rename(final)
            return
        except OSError:
            if (final / "COMPLETE").is_file():
                return
            stale = Path(
                tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".stale", dir=final.parent)
            )
            with contextlib.suppress(FileNotFoundError):
                final.rename(stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
    raise OSError(f"could not install demo content at {final}")
