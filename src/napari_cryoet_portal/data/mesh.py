"""Triangle meshes from binary glTF (``.glb``), the portal's Mesh annotation format.

The portal writes meshes with trimesh, and for glb sources what it writes is a scene whose
scale and placement live in the node transforms (``Scene.apply_scale`` writes node matrices,
the vertex buffers stay as they were). So the vertices only mean something after every node
transform is applied: matrices and translation/rotation/scale, down nested nodes, once per
instance of a mesh. trimesh reads the file and bakes those transforms; this module returns
the world-space triangles.
"""

from __future__ import annotations

import io

import numpy as np

from .storage import DataAccessError

__all__ = ["parse_glb"]


def parse_glb(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (N, 3) float32 in the file's x, y, z order with every node transform applied,
    faces (M, 3) int64): all triangle meshes of the file's scene, concatenated."""
    import trimesh  # a heavy import, needed only when a mesh is opened

    try:
        scene = trimesh.load(
            file_obj=io.BytesIO(data), file_type="glb", force="scene", process=False
        )
        mesh = scene.to_mesh()  # a copy of each instance at its world transform, concatenated
        vertices = np.asarray(mesh.vertices, dtype=np.float32)
        faces = np.asarray(mesh.faces, dtype=np.int64)
    except Exception as exc:  # noqa: BLE001 - any failure of the parser is a malformed file
        raise DataAccessError(f"malformed glb mesh: {type(exc).__name__}: {exc}") from exc
    if not len(faces):
        raise DataAccessError("glb mesh has no triangles")
    if not np.isfinite(vertices).all():
        raise DataAccessError("glb mesh has non-finite vertices")
    return vertices, faces.reshape(-1, 3)
