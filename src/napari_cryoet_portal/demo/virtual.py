"""Bucket objects made on request: chunks too many or too big to keep on disk.

A portal-sized tomogram (TS_026 of dataset 10004 in `large`: 1000×928×960 float32, 3.5 GB at
full resolution, ~4.6 GB of padded 256³ chunks over three levels) is described in
`virtual.json` (its scene, level shapes, noise, seeds and every chunk's encoded size) and its
chunks are rendered and blosc-encoded when asked for, deterministically: the same key always
gives the same bytes. Its `.zgroup`, `.zattrs`, `.zarray`s and key photos are ordinary files
of the bucket. The bulk runs of `large` keep their padded 256³ chunks here too, as references
to a few pre-encoded templates (4,800 runs × 3 levels × ~300 KB would be ~4 GB on disk and in
moto's memory).

    objects = VirtualObjects.load(content_dir)   # empty if the content has none
    objects.get(key) -> bytes | None             # None: not a virtual object
    objects.size(key) -> int | None
    objects.keys(prefix) -> sorted keys, for listings

Generated chunks are kept in a small in-memory LRU and in an on-disk cache under
`<content>/virtual-cache/` (written atomically, capped), so a repeat read costs a file read.
"""

from __future__ import annotations

import bisect
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import bucket as enc
from .volumes import Scene, render, scene_from_json

VIRTUAL_JSON = "virtual.json"
TEMPLATE_DIR = "virtual"  # <content>/virtual/<template>/<level>/<z>/<y>/<x>
CACHE_DIR = "virtual-cache"  # <content>/virtual-cache/<bucket key>
FORMAT_VERSION = 1

__all__ = ["VirtualObjects", "GeneratedArray", "chunk_bytes", "VIRTUAL_JSON"]


@dataclass(frozen=True)
class GeneratedArray:
    """One pyramid level whose chunks are rendered on request from a scene.

    The level samples the scene at `spacing` Å per voxel, its voxel i at i·spacing + `shift`
    (a 2× binned level's voxels sit at the centres of the voxels they average), with white
    noise of standard deviation `noise`, seeded by `seed` (a hash of the array's key) and the
    chunk's origin."""

    key: str  # bucket key of the level, ".../TS_026.zarr/0"
    shape: tuple[int, int, int]
    chunks: tuple[int, int, int]
    dtype: str
    scene: str  # name in virtual.json's "scenes"
    spacing: float
    shift: float
    noise: float
    seed: int
    sizes: tuple[int, ...] = ()  # encoded size of every chunk, in chunk_grid order

    @property
    def grid(self) -> tuple[int, int, int]:
        z, y, x = (-(-n // c) for n, c in zip(self.shape, self.chunks))
        return z, y, x

    def index(self, rest: str) -> tuple[int, int, int] | None:
        """The chunk index of a key's tail "z/y/x", or None if it names no chunk of the level."""
        parts = rest.split("/")
        if len(parts) != 3 or not all(p.isdigit() and (p == "0" or p[0] != "0") for p in parts):
            return None
        index = (int(parts[0]), int(parts[1]), int(parts[2]))
        return index if all(i < n for i, n in zip(index, self.grid)) else None

    def flat(self, index: tuple[int, int, int]) -> int:
        _, gy, gx = self.grid
        return (index[0] * gy + index[1]) * gx + index[2]

    def chunk_keys(self) -> list[str]:
        return ["{}/{}/{}/{}".format(self.key, *i) for i in enc.chunk_grid(self.shape, self.chunks)]

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "dtype": self.dtype,
            "scene": self.scene,
            "spacing": self.spacing,
            "shift": self.shift,
            "noise": self.noise,
            "seed": self.seed,
            "sizes": list(self.sizes),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> GeneratedArray:
        return cls(
            key=obj["key"],
            shape=tuple(obj["shape"]),  # type: ignore[arg-type]
            chunks=tuple(obj["chunks"]),  # type: ignore[arg-type]
            dtype=obj["dtype"],
            scene=obj["scene"],
            spacing=float(obj["spacing"]),
            shift=float(obj["shift"]),
            noise=float(obj["noise"]),
            seed=int(obj["seed"]),
            sizes=tuple(obj.get("sizes") or ()),
        )


def chunk_array(array: GeneratedArray, scene: Scene, index: tuple[int, int, int]) -> np.ndarray:
    """The decoded chunk at `index`: rendered where it overlaps the array, 0 beyond (zarr v2
    pads edge chunks with the fill value)."""
    origin = tuple(i * c for i, c in zip(index, array.chunks))
    size = tuple(min(c, n - o) for c, n, o in zip(array.chunks, array.shape, origin))
    block = (origin, size)
    data = render(
        scene, array.spacing, block, array.noise, array.seed, array.shift  # type: ignore[arg-type]
    )
    return enc.padded(data.astype(array.dtype, copy=False), array.chunks)


def chunk_bytes(array: GeneratedArray, scene: Scene, index: tuple[int, int, int]) -> bytes:
    """The encoded chunk object at `index`, as the portal's writer would store it."""
    return enc.encode_chunk(chunk_array(array, scene, index))


class _Flight:
    """A chunk being generated by one thread while others wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.data: bytes | None = None


class VirtualObjects:
    """The content's virtual objects (see the module docstring). Thread-safe."""

    def __init__(
        self,
        content_dir: Path | None = None,
        spec: dict[str, Any] | None = None,
        *,
        memory_items: int = 4,
        disk_bytes: int = 1 << 30,
    ) -> None:
        spec = spec or {}
        self.content_dir = Path(content_dir) if content_dir is not None else None
        self._scenes = {name: scene_from_json(s) for name, s in (spec.get("scenes") or {}).items()}
        self._arrays = {
            a.key: a for a in (GeneratedArray.from_json(o) for o in spec.get("arrays") or ())
        }
        #: template name -> {"L/z/y/x": [bucket-independent file path, size]}
        self._templates: dict[str, dict[str, tuple[str, int]]] = {
            name: {rest: (str(path), int(size)) for rest, (path, size) in objects.items()}
            for name, objects in (spec.get("templates") or {}).items()
        }
        #: zarr key -> template name
        self._templated: dict[str, str] = dict(spec.get("templated") or {})
        self._template_bytes: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_items = memory_items
        self._flights: dict[str, _Flight] = {}
        self._sorted_keys: list[str] | None = None
        self._disk_bytes = disk_bytes
        self._disk: OrderedDict[Path, int] | None = None  # cache files, oldest first

    @classmethod
    def load(cls, content_dir: Path, **options: int) -> VirtualObjects:
        """The virtual objects of a content directory; empty if it has none. `options`:
        `memory_items` (encoded chunks kept in memory, 4) and `disk_bytes` (cap of the on-disk
        cache, 1 GiB; 0: none)."""
        path = Path(content_dir) / VIRTUAL_JSON
        if not path.is_file():
            return cls(content_dir, **options)
        spec = json.loads(path.read_text())
        if spec.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: unknown virtual objects format {spec.get('version')!r}")
        return cls(content_dir, spec, **options)

    def __bool__(self) -> bool:
        return bool(self._arrays or self._templated)

    def __len__(self) -> int:
        return len(self._all_keys())

    # ---- lookups

    def _generated(self, key: str) -> tuple[GeneratedArray, tuple[int, int, int]] | None:
        """The level and chunk index of a key ".../TS_026.zarr/<level>/<z>/<y>/<x>"."""
        parts = key.rsplit("/", 3)
        if len(parts) != 4:
            return None
        array = self._arrays.get(parts[0])
        if array is None:
            return None
        index = array.index("/".join(parts[1:]))
        return None if index is None else (array, index)

    def _template(self, key: str) -> tuple[str, str] | None:
        """The template and its object "<level>/<z>/<y>/<x>" a bulk run's chunk key names."""
        if key.count("/") < 4:
            return None
        prefix, *rest = key.rsplit("/", 4)
        name = self._templated.get(prefix)
        if name is None:
            return None
        tail = "/".join(rest)
        return (name, tail) if tail in self._templates.get(name, {}) else None

    def get(self, key: str) -> bytes | None:
        """The object at bucket key `key`, or None if it is not a virtual object."""
        template = self._template(key)
        if template is not None:
            return self._read_template(*template)
        generated = self._generated(key)
        if generated is None:
            return None
        return self._chunk(key, *generated)

    def size(self, key: str) -> int | None:
        """The byte length of the object at `key` (known without generating it), or None."""
        template = self._template(key)
        if template is not None:
            name, tail = template
            return self._templates[name][tail][1]
        generated = self._generated(key)
        if generated is None:
            return None
        array, index = generated
        if array.sizes:
            return array.sizes[array.flat(index)]
        return len(self._chunk(key, array, index))

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every virtual key starting with `prefix`, in sorted (S3 listing) order."""
        keys = self._all_keys()
        i = bisect.bisect_left(keys, prefix)
        while i < len(keys) and keys[i].startswith(prefix):
            yield keys[i]
            i += 1

    def _all_keys(self) -> list[str]:
        with self._lock:
            if self._sorted_keys is None:
                keys = [k for a in self._arrays.values() for k in a.chunk_keys()]
                for prefix, name in self._templated.items():
                    keys += [f"{prefix}/{tail}" for tail in self._templates.get(name, {})]
                self._sorted_keys = sorted(keys)
            return self._sorted_keys

    # ---- templates

    def _read_template(self, name: str, tail: str) -> bytes:
        with self._lock:
            data = self._template_bytes.get((name, tail))
        if data is None:
            path = Path(self._templates[name][tail][0])
            if not path.is_absolute() and self.content_dir is not None:
                path = self.content_dir / path
            data = path.read_bytes()
            with self._lock:
                self._template_bytes[(name, tail)] = data
        return data

    # ---- generated chunks: memory, then disk, then render

    def _chunk(self, key: str, array: GeneratedArray, index: tuple[int, int, int]) -> bytes:
        while True:
            with self._lock:
                data = self._memory.get(key)
                if data is not None:
                    self._memory.move_to_end(key)
                    return data
                flight = self._flights.get(key)
                owner = flight is None
                if owner:
                    flight = self._flights[key] = _Flight()
            assert flight is not None
            if not owner:
                flight.done.wait()
                if flight.data is not None:
                    return flight.data
                continue  # the owner failed: try ourselves
            try:
                expected = array.sizes[array.flat(index)] if array.sizes else None
                data = self._from_disk(key, expected)
                if data is None:
                    data = chunk_bytes(array, self._scenes[array.scene], index)
                    self._to_disk(key, data)
                flight.data = data
                with self._lock:
                    self._memory[key] = data
                    while len(self._memory) > self._memory_items:
                        self._memory.popitem(last=False)
                return data
            finally:
                with self._lock:
                    self._flights.pop(key, None)
                flight.done.set()

    def _cache_path(self, key: str) -> Path | None:
        if self.content_dir is None or self._disk_bytes <= 0:
            return None
        return self.content_dir / CACHE_DIR / key

    def _from_disk(self, key: str, expected: int | None) -> bytes | None:
        path = self._cache_path(key)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if expected is not None and len(data) != expected:
            return None
        return data

    def _to_disk(self, key: str, data: bytes) -> None:
        """Keep a generated chunk on disk (temporary file + rename: readers never see half a
        chunk), evicting the oldest chunks beyond the cap. A read-only content directory just
        means no disk cache."""
        path = self._cache_path(key)
        if path is None or len(data) > self._disk_bytes:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            return
        with self._lock:
            disk = self._disk_index()
            disk.pop(path, None)
            disk[path] = len(data)
            total = sum(disk.values())
            while total > self._disk_bytes and len(disk) > 1:
                old, size = disk.popitem(last=False)
                total -= size
                old.unlink(missing_ok=True)

    def _disk_index(self) -> OrderedDict[Path, int]:
        """The cached chunk files, oldest first (scanned once; the lock is held)."""
        if self._disk is None:
            root = self.content_dir / CACHE_DIR  # type: ignore[operator]
            found = []
            for p in root.rglob("*") if root.is_dir() else ():
                if p.is_file() and not p.name.startswith(".tmp-"):
                    st = p.stat()
                    found.append((st.st_mtime, p, st.st_size))
            self._disk = OrderedDict((p, size) for _, p, size in sorted(found))
        return self._disk
