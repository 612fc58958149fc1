"""OME-Zarr multiscale images (tomograms, masks) as lazy dask arrays, one per level.

Scales come from the NGFF metadata, never from assumed 2× factors. Opening costs one request
for ``.zattrs`` plus one per level for ``.zarray``, sent concurrently; voxels are fetched only
when a view asks for them (one GET per 256³ chunk).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

import dask.array as da
import numpy as np
import zarr
from zarr.core.array import Array, AsyncArray
from zarr.core.buffer import default_buffer_prototype
from zarr.core.metadata.v2 import ArrayV2Metadata
from zarr.core.sync import sync
from zarr.storage import FsspecStore, StorePath

from .storage import DataAccessError, storage_options, to_fsspec_url

__all__ = ["Pyramid", "open_pyramid", "parse_multiscales"]


@dataclass(frozen=True)
class Pyramid:
    """A multiscale image: level 0 is full resolution; every level is a lazy dask array."""

    url: str
    levels: tuple[da.Array, ...]
    #: per level, per axis: physical size of a voxel, in ``units``
    scales: tuple[tuple[float, ...], ...]
    #: per level, per axis: physical position of voxel 0 (NGFF translation; usually 0)
    translations: tuple[tuple[float, ...], ...]
    axes: tuple[str, ...]
    units: tuple[str | None, ...]
    attrs: dict[str, Any]
    #: the zarr arrays behind ``levels``, for reads that go chunk by chunk (data.progressive)
    arrays: tuple[Any, ...] = ()

    @property
    def dtype(self) -> np.dtype:
        return self.levels[0].dtype

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(level.shape for level in self.levels)

    @property
    def nbytes(self) -> int:
        return int(self.levels[0].nbytes)


@dataclass(frozen=True)
class _Level:
    path: str
    scale: tuple[float, ...]
    translation: tuple[float, ...]


def parse_multiscales(attrs: dict[str, Any]) -> tuple[list[_Level], tuple[str, ...], tuple[str | None, ...]]:
    """Levels, axis names and units from NGFF 0.4 (``multiscales``) or 0.5 (``ome.multiscales``)."""
    try:
        multiscales = attrs.get("multiscales") or attrs["ome"]["multiscales"]
        ms = multiscales[0]
        ndim = len(ms["axes"])
        axes = tuple(a["name"] if isinstance(a, dict) else str(a) for a in ms["axes"])
        units = tuple(a.get("unit") if isinstance(a, dict) else None for a in ms["axes"])
        outer_scale, outer_translation = _transforms(ms.get("coordinateTransformations"), ndim)
        levels = []
        for dataset in ms["datasets"]:
            scale, translation = _transforms(dataset.get("coordinateTransformations"), ndim)
            levels.append(
                _Level(
                    path=str(dataset["path"]),
                    scale=tuple(s * o for s, o in zip(scale, outer_scale)),
                    translation=tuple(
                        t * o + ot for t, o, ot in zip(translation, outer_scale, outer_translation)
                    ),
                )
            )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DataAccessError(f"malformed OME-NGFF multiscales metadata: {exc!r}") from exc
    if not levels:
        raise DataAccessError("OME-NGFF multiscales metadata lists no levels")
    return levels, axes, units


def _transforms(transforms: Sequence[dict[str, Any]] | None, ndim: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    scale = [1.0] * ndim
    translation = [0.0] * ndim
    for t in transforms or ():
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]]
        elif t.get("type") == "translation":
            translation = [float(v) for v in t["translation"]]
    if len(scale) != ndim or len(translation) != ndim:
        raise ValueError(f"transform length does not match {ndim} axes")
    return tuple(scale), tuple(translation)


def open_pyramid(
    url: str | os.PathLike[str],
    *,
    endpoint_url: str | None = None,
    anon: bool = True,
) -> Pyramid:
    """Open the OME-Zarr image at ``url`` (``s3://``, ``http(s)://`` or a local path)."""
    url = to_fsspec_url(url).rstrip("/")
    try:
        store = FsspecStore.from_url(
            url,
            storage_options=storage_options(url, endpoint_url=endpoint_url, anon=anon),
            read_only=True,
        )
    except (OSError, ValueError) as exc:
        raise DataAccessError(f"cannot open {url}: {exc}") from exc

    (zattrs,) = _get_json(store, [".zattrs"], url)
    if zattrs is None:
        return _open_zarr_v3(store, url)
    levels, axes, units = parse_multiscales(zattrs)
    metas = _get_json(store, [f"{level.path}/.zarray" for level in levels], url)
    arrays = []
    for level, meta in zip(levels, metas):
        if meta is None:
            raise DataAccessError(f"level {level.path!r} of {url} has no .zarray")
        try:
            metadata = ArrayV2Metadata.from_dict({**meta, "attributes": {}})
        except (KeyError, TypeError, ValueError) as exc:
            raise DataAccessError(f"malformed .zarray for level {level.path!r} of {url}: {exc}") from exc
        arrays.append(Array(AsyncArray(metadata, StorePath(store, level.path))))
    return _pyramid(url, arrays, levels, axes, units, zattrs)


def _open_zarr_v3(store: FsspecStore, url: str) -> Pyramid:
    """NGFF 0.5 (zarr v3) images; the portal writes v2, but local mirrors may not."""
    try:
        group = zarr.open_group(store, mode="r", zarr_format=3)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataAccessError(f"not an OME-Zarr image (no .zattrs or zarr.json): {url}") from exc
    attrs = dict(group.attrs)
    levels, axes, units = parse_multiscales(attrs)
    arrays = [zarr.open_array(store, path=level.path, mode="r", zarr_format=3) for level in levels]
    return _pyramid(url, arrays, levels, axes, units, attrs)


def _pyramid(url, arrays, levels, axes, units, attrs) -> Pyramid:
    for level, array in zip(levels, arrays):
        if array.ndim != len(axes):
            raise DataAccessError(
                f"level {level.path!r} of {url} has {array.ndim} dimensions, metadata says {len(axes)}"
            )
    return Pyramid(
        url=url,
        levels=tuple(da.from_zarr(a) for a in arrays),
        scales=tuple(level.scale for level in levels),
        translations=tuple(level.translation for level in levels),
        axes=axes,
        units=units,
        attrs=attrs,
        arrays=tuple(arrays),
    )


def _get_json(store: FsspecStore, keys: list[str], url: str) -> list[Any]:
    """Fetch several small JSON documents concurrently (one round trip of latency)."""

    async def fetch_all() -> list[Any]:
        prototype = default_buffer_prototype()
        return await asyncio.gather(*(store.get(k, prototype=prototype) for k in keys))

    try:
        buffers = sync(fetch_all())
    except PermissionError as exc:
        raise DataAccessError(f"access denied: {url}") from exc
    except OSError as exc:
        raise DataAccessError(f"cannot read {url}: {exc}") from exc
    out = []
    for key, buffer in zip(keys, buffers):
        if buffer is None:
            out.append(None)
            continue
        try:
            out.append(json.loads(buffer.to_bytes()))
        except ValueError as exc:
            raise DataAccessError(f"{url}/{key} is not valid JSON: {exc}") from exc
    return out
