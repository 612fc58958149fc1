"""Triangle meshes from binary glTF (``.glb``), the portal's Mesh annotation format.

Only what a viewer needs: the POSITION accessor and triangle indices of every primitive,
concatenated. No external dependency (the format is a JSON chunk plus a binary chunk).
"""

from __future__ import annotations

import json
import struct

import numpy as np

from .storage import DataAccessError

__all__ = ["parse_glb"]

_COMPONENT = {5121: np.uint8, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC3": 3}


def parse_glb(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (N, 3) float32 in the file's x, y, z order, faces (M, 3) int64)."""
    try:
        magic, version, length = struct.unpack_from("<4sII", data, 0)
        if magic != b"glTF" or version != 2:
            raise ValueError("not a binary glTF 2.0 file")
        json_len, json_type = struct.unpack_from("<I4s", data, 12)
        if json_type != b"JSON":
            raise ValueError("first chunk is not JSON")
        gltf = json.loads(data[20 : 20 + json_len])
        offset = 20 + json_len
        bin_len, bin_type = struct.unpack_from("<I4s", data, offset)
        if bin_type != b"BIN\x00":
            raise ValueError("second chunk is not BIN")
        binary = memoryview(data)[offset + 8 : offset + 8 + bin_len]
        vertices, faces = [], []
        base = 0
        for mesh in gltf.get("meshes", []):
            for primitive in mesh.get("primitives", []):
                if primitive.get("mode", 4) != 4:
                    continue  # only triangle lists
                v = _accessor(gltf, binary, primitive["attributes"]["POSITION"]).reshape(-1, 3)
                if "indices" in primitive:
                    f = _accessor(gltf, binary, primitive["indices"]).astype(np.int64).reshape(-1, 3)
                else:
                    f = np.arange(len(v), dtype=np.int64).reshape(-1, 3)
                vertices.append(v.astype(np.float32))
                faces.append(f + base)
                base += len(v)
    except (struct.error, KeyError, IndexError, ValueError, TypeError) as exc:
        raise DataAccessError(f"malformed glb mesh: {exc}") from exc
    if not vertices:
        raise DataAccessError("glb mesh has no triangles")
    return np.concatenate(vertices), np.concatenate(faces)


def _accessor(gltf: dict, binary: memoryview, index: int) -> np.ndarray:
    accessor = gltf["accessors"][index]
    view = gltf["bufferViews"][accessor["bufferView"]]
    dtype = _COMPONENT[accessor["componentType"]]
    width = _WIDTH[accessor["type"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    count = accessor["count"] * width
    stride = view.get("byteStride")
    if stride and stride != width * np.dtype(dtype).itemsize:
        raise ValueError("interleaved buffer views are not supported")
    return np.frombuffer(binary, dtype=dtype, count=count, offset=start)
