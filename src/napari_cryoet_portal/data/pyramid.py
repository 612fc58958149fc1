"""OME-Zarr multiscale images (tomograms, masks) as lazy dask arrays, one per level.

Scales come from the NGFF metadata, never from assumed 2× factors. Opening costs one request
for ``.zattrs`` plus one per level for ``.zarray``, sent concurrently; voxels are fetched only
when a view asks for them (one GET per 256³ chunk).

Every pyramid comes out with axes z, y, x and, where it can be known, scales in Å. The
portal's stores have not always looked like today's: before 2024-03 the axes had no unit and
the scales were 1/2/4 (the voxel spacing is then the API's), test and legacy stores declare
x, y, z, masks were float32, and a level the metadata lists may be missing.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from dataclasses import dataclass, field, replace
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

__all__ = ["ANGSTROM", "Pyramid", "as_labels", "open_pyramid", "parse_multiscales"]

ANGSTROM = "angstrom"

#: length units NGFF allows (UDUNITS names) that a store may use, in Å
_UNIT_IN_ANGSTROM = {
    "angstrom": 1.0,
    "picometer": 1e-2,
    "nanometer": 10.0,
    "micrometer": 1e4,
    "millimeter": 1e7,
    "centimeter": 1e8,
    "meter": 1e10,
}

_ZYX = ("z", "y", "x")


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
    #: per axis; None when neither the store nor a voxel spacing says (then scales are pixels)
    units: tuple[str | None, ...]
    attrs: dict[str, Any]
    #: what ``levels`` are read from, chunk by chunk (data.progressive): the zarr arrays, or
    #: the levels themselves where they are transposed or cast
    arrays: tuple[Any, ...] = ()
    #: level paths the metadata lists whose ``.zarray`` is missing: opened without them
    missing_levels: tuple[str, ...] = ()
    #: the store's axis order when it is not z, y, x (the levels are transposed to z, y, x)
    stored_axes: tuple[str, ...] = ()
    #: "metadata" (the store's units), or "voxel spacing": a store without units, scaled by
    #: the API's voxel spacing × each level's NGFF scale ratio to the full resolution
    scale_source: str = "metadata"
    #: the stored dtype, when the levels are cast (float masks as integer labels)
    stored_dtype: np.dtype | None = None
    #: voxels of the first view at the finest level read so far; set by data.progressive
    sample: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def dtype(self) -> np.dtype:
        return self.levels[0].dtype

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(level.shape for level in self.levels)

    @property
    def nbytes(self) -> int:
        return int(self.levels[0].nbytes)

    @property
    def in_angstrom(self) -> bool:
        return all(u == ANGSTROM for u in self.units)


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
        axes = tuple(
            str(a["name"] if isinstance(a, dict) else a).strip().lower() for a in ms["axes"]
        )
        units = tuple((a.get("unit") or None) if isinstance(a, dict) else None for a in ms["axes"])
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
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
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


def _zyx_order(axes: tuple[str, ...], url: str) -> tuple[int, ...]:
    """The transpose that makes the stored axes z, y, x; refused for anything else."""
    if sorted(axes) != sorted(_ZYX):
        raise DataAccessError(
            f"{url}: axes {', '.join(axes) or '(none)'} are not z, y, x in some order;"
            " only 3D volumes can be shown"
        )
    return tuple(axes.index(name) for name in _ZYX)


def _physical(
    levels: list[_Level], units: tuple[str | None, ...], voxel_spacing: float | None
) -> tuple[list[_Level], tuple[str | None, ...], str]:
    """Levels with scales and translations in Å where that can be known, the units, and
    where the scales came from (see :attr:`Pyramid.scale_source`)."""
    factors = [_UNIT_IN_ANGSTROM.get(str(u).lower()) if u else None for u in units]
    if all(f is not None for f in factors):
        converted = [
            _Level(
                lv.path,
                tuple(s * f for s, f in zip(lv.scale, factors)),
                tuple(t * f for t, f in zip(lv.translation, factors)),
            )
            for lv in levels
        ]
        return converted, (ANGSTROM,) * len(units), "metadata"
    if any(units) or voxel_spacing is None or not voxel_spacing > 0:
        # other units, or nothing to scale by: as the store says, never called Å
        return levels, tuple(u or None for u in units), "metadata"
    # no units (pre-2024 portal stores: scales 1, 2, 4): the voxel spacing is the API's, each
    # level keeps its NGFF scale ratio to the full resolution (the first declared level)
    base = levels[0].scale
    if not all(b > 0 and math.isfinite(b) for b in base):
        raise DataAccessError(f"level {levels[0].path!r} has a scale of {base}")
    converted = [
        _Level(
            lv.path,
            tuple(voxel_spacing * s / b for s, b in zip(lv.scale, base)),
            tuple(voxel_spacing * t / b for t, b in zip(lv.translation, base)),
        )
        for lv in levels
    ]
    return converted, (ANGSTROM,) * len(units), "voxel spacing"


def open_pyramid(
    url: str | os.PathLike[str],
    *,
    endpoint_url: str | None = None,
    anon: bool = True,
    voxel_spacing: float | None = None,
) -> Pyramid:
    """Open the OME-Zarr image at ``url`` (``s3://``, ``http(s)://`` or a local path).

    ``voxel_spacing`` (Å, the API's) scales a store whose axes have no unit; a store with
    units keeps its own scales (converted to Å).
    """
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
        return _open_zarr_v3(store, url, voxel_spacing)
    levels, axes, units = parse_multiscales(zattrs)
    order = _zyx_order(axes, url)
    metas = _get_json(store, [f"{level.path}/.zarray" for level in levels], url)
    arrays: list[Any] = []
    for level, meta in zip(levels, metas):
        if meta is None:
            arrays.append(None)
            continue
        try:
            metadata = ArrayV2Metadata.from_dict({**meta, "attributes": {}})
        except (KeyError, TypeError, ValueError) as exc:
            raise DataAccessError(f"malformed .zarray for level {level.path!r} of {url}: {exc}") from exc
        arrays.append(Array(AsyncArray(metadata, StorePath(store, level.path))))
    return _pyramid(url, arrays, levels, axes, units, zattrs, order, voxel_spacing)


def _open_zarr_v3(store: FsspecStore, url: str, voxel_spacing: float | None) -> Pyramid:
    """NGFF 0.5 (zarr v3) images; the portal writes v2, but local mirrors may not."""
    try:
        group = zarr.open_group(store, mode="r", zarr_format=3)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataAccessError(f"not an OME-Zarr image (no .zattrs or zarr.json): {url}") from exc
    attrs = dict(group.attrs)
    levels, axes, units = parse_multiscales(attrs)
    order = _zyx_order(axes, url)
    arrays: list[Any] = []
    for level in levels:
        try:
            arrays.append(zarr.open_array(store, path=level.path, mode="r", zarr_format=3))
        except (FileNotFoundError, KeyError):
            arrays.append(None)
    return _pyramid(url, arrays, levels, axes, units, attrs, order, voxel_spacing)


def _pyramid(
    url: str,
    arrays: list[Any],
    levels: list[_Level],
    axes: tuple[str, ...],
    units: tuple[str | None, ...],
    attrs: dict[str, Any],
    order: tuple[int, ...],
    voxel_spacing: float | None,
) -> Pyramid:
    """Levels that exist, in Å where known, transposed to z, y, x."""
    levels, units, scale_source = _physical(levels, units, voxel_spacing)
    missing = tuple(level.path for level, array in zip(levels, arrays) if array is None)
    present = [(level, array) for level, array in zip(levels, arrays) if array is not None]
    if not present:
        listed = ", ".join(lv.path for lv in levels)
        raise DataAccessError(f"no level of {url} has array metadata (listed: {listed})")
    if arrays[0] is None:
        # the full resolution is missing: the remaining levels keep their place on its grid
        # (the half-voxel shift layers.level_transform would add relative to level 0)
        base = levels[0].scale
        present = [
            (lv if any(lv.translation) else replace(
                lv, translation=tuple((s - b) / 2 for s, b in zip(lv.scale, base))
            ), array)
            for lv, array in present
        ]
    for level, array in present:
        if array.ndim != len(axes):
            raise DataAccessError(
                f"level {level.path!r} of {url} has {array.ndim} dimensions, metadata says {len(axes)}"
            )
    transposed = order != tuple(range(len(order)))
    dask_levels = [da.from_zarr(array) for _, array in present]
    if transposed:
        dask_levels = [level.transpose(order) for level in dask_levels]
    return Pyramid(
        url=url,
        levels=tuple(dask_levels),
        scales=tuple(_permute(level.scale, order) for level, _ in present),
        translations=tuple(_permute(level.translation, order) for level, _ in present),
        axes=_permute(axes, order),
        units=_permute(units, order),
        attrs=attrs,
        # transposed levels are read through dask (whole chunks), not the stored arrays
        arrays=tuple(dask_levels) if transposed else tuple(array for _, array in present),
        missing_levels=missing,
        stored_axes=axes if transposed else (),
        scale_source=scale_source,
    )


def _permute(values: tuple, order: tuple[int, ...]) -> tuple:
    return tuple(values[i] for i in order)


def _to_labels(block: np.ndarray) -> np.ndarray:
    return np.rint(np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.int32)


def as_labels(pyramid: Pyramid) -> Pyramid:
    """``pyramid`` with integer voxels, as napari's Labels requires: float masks (the portal's
    before 2024-03) are rounded to int32; integer pyramids come back as they are."""
    if not np.issubdtype(pyramid.dtype, np.floating):
        return pyramid
    levels = tuple(level.map_blocks(_to_labels, dtype=np.int32) for level in pyramid.levels)
    # read through the cast levels (whole chunks), so progressive reads are labels too
    return replace(pyramid, levels=levels, arrays=levels, stored_dtype=pyramid.dtype)


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
