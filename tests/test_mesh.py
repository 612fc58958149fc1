"""glb meshes as the portal writes them: trimesh scenes whose placement is in node transforms.

The expected world positions are computed here from the transforms written into the file
(glTF's column-major matrices, TRS composed as T·R·S, parents before children), not by
asking trimesh, so a parser that ignores a node kind fails.
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import trimesh

from napari_cryoet_portal.data.mesh import parse_glb
from napari_cryoet_portal.data.storage import DataAccessError

# a tetrahedron in its own frame (x, y, z)
TETRA = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype="<f4")
TETRA_FACES = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype="<u4")
# a second, different mesh: a triangle
TRI = np.array([[0, 0, 0], [2, 0, 0], [0, 3, 0]], dtype="<f4")
TRI_FACES = np.array([[0, 1, 2]], dtype="<u4")


def glb(nodes: list[dict], roots: list[int], meshes=((TETRA, TETRA_FACES), (TRI, TRI_FACES))) -> bytes:
    """A binary glTF 2.0 file with the given nodes; mesh i is ``meshes[i]``."""
    binary = b""
    views, accessors, gltf_meshes = [], [], []
    for vertices, faces in meshes:
        for array, kind, component in ((faces, "SCALAR", 5125), (vertices, "VEC3", 5126)):
            data = np.ascontiguousarray(array).tobytes()
            views.append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(data)})
            accessor = {
                "bufferView": len(views) - 1,
                "componentType": component,
                "count": int(array.size if kind == "SCALAR" else len(array)),
                "type": kind,
            }
            if kind == "VEC3":
                accessor |= {"min": array.min(0).tolist(), "max": array.max(0).tolist()}
            accessors.append(accessor)
            binary += data + b"\0" * (-len(data) % 4)
        n = len(accessors)
        gltf_meshes.append({"primitives": [{"attributes": {"POSITION": n - 1}, "indices": n - 2, "mode": 4}]})
    gltf = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": roots}],
        "nodes": nodes,
        "meshes": gltf_meshes,
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": views,
        "accessors": accessors,
    }
    text = json.dumps(gltf).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body


def matrix_node(m: np.ndarray, **kw) -> dict:
    return {"matrix": np.asarray(m, float).T.ravel().tolist(), **kw}  # glTF: column-major


def scale_translate(s: float, t) -> np.ndarray:
    m = np.diag([s, s, s, 1.0])
    m[:3, 3] = t
    return m


def trs(t, q_xyzw, s) -> np.ndarray:
    """The matrix of a glTF TRS node: T · R(q) · S."""
    x, y, z, w = q_xyzw
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    m = np.eye(4)
    m[:3, :3] = r * np.asarray(s, float)[None, :]
    m[:3, 3] = t
    return m


def world(vertices: np.ndarray, m: np.ndarray) -> np.ndarray:
    return vertices @ m[:3, :3].T + m[:3, 3]


def as_triangles(vertices: np.ndarray, faces: np.ndarray) -> set[tuple]:
    """Each triangle as a rotation-invariant tuple of rounded corner positions."""
    out = set()
    for f in faces:
        corners = [tuple(np.round(vertices[i].astype(float), 3).tolist()) for i in f]
        k = corners.index(min(corners))
        out.add(tuple(corners[k:] + corners[:k]))
    return out


def expected_triangles(placements: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> set[tuple]:
    """Triangles of ``(vertices, faces, world matrix)`` placements, winding kept as written
    (or reversed where a matrix mirrors, as a renderer would)."""
    out = set()
    for vertices, faces, m in placements:
        f = faces[:, ::-1] if np.linalg.det(m[:3, :3]) < 0 else faces
        out |= as_triangles(world(vertices, m), f.astype(np.int64))
    return out


def test_matrix_node_scale_times_ten_plus_translation():
    m = scale_translate(10.0, (100.0, 200.0, 300.0))
    vertices, faces = parse_glb(glb([matrix_node(m, mesh=0)], [0]))
    assert vertices.dtype == np.float32 and faces.dtype == np.int64 and faces.shape == (4, 3)
    np.testing.assert_allclose(np.sort(vertices, axis=0), np.sort(world(TETRA, m), axis=0))
    assert as_triangles(vertices, faces) == expected_triangles([(TETRA, TETRA_FACES, m)])


def test_trs_node():
    m = trs((5.0, -2.0, 7.0), (0.0, 0.0, np.sin(np.pi / 8), np.cos(np.pi / 8)), (2.0, 3.0, 4.0))
    node = {"translation": [5.0, -2.0, 7.0], "rotation": [0.0, 0.0, np.sin(np.pi / 8), np.cos(np.pi / 8)], "scale": [2.0, 3.0, 4.0], "mesh": 0}
    vertices, faces = parse_glb(glb([node], [0]))
    assert as_triangles(vertices, faces) == expected_triangles([(TETRA, TETRA_FACES, m)])


def test_nested_child_instanced_mesh_and_all_together():
    """A parent (matrix, ×10 + translation) with a child (TRS) holding the triangle; the
    tetrahedron instanced by the parent and by a second root; a node without a mesh."""
    parent = scale_translate(10.0, (100.0, 200.0, 300.0))
    child = trs((1.0, 2.0, 3.0), (0.0, 0.0, 0.0, 1.0), (1.0, 1.0, 1.0))
    grandchild = trs((0.0, 0.0, 1.0), (0.0, np.sin(np.pi / 4), 0.0, np.cos(np.pi / 4)), (1.0, 1.0, 1.0))
    other = scale_translate(2.0, (-50.0, 0.0, 0.0))
    nodes = [
        matrix_node(parent, mesh=0, children=[1]),
        {"translation": [1.0, 2.0, 3.0], "children": [2]},  # no mesh of its own
        {"translation": [0.0, 0.0, 1.0], "rotation": [0.0, np.sin(np.pi / 4), 0.0, np.cos(np.pi / 4)], "mesh": 1},
        matrix_node(other, mesh=0),  # the same mesh again: an instance
    ]
    vertices, faces = parse_glb(glb(nodes, [0, 3]))
    placements = [
        (TETRA, TETRA_FACES, parent),
        (TRI, TRI_FACES, parent @ child @ grandchild),
        (TETRA, TETRA_FACES, other),
    ]
    assert len(faces) == 4 + 1 + 4 and faces.max() < len(vertices)
    assert as_triangles(vertices, faces) == expected_triangles(placements)
    # nothing is left at the raw buffer positions
    assert not np.any(np.all(np.isclose(vertices, TETRA[1]), axis=1))


def test_a_scene_written_by_trimesh_as_the_portal_does():
    """The portal loads a glb as a trimesh Scene, ``apply_scale``s it (which writes node
    matrices, the vertex buffers stay) and exports it."""
    placed = glb([{"translation": [3.0, 4.0, 5.0], "mesh": 0}, {"translation": [0.0, 0.0, 9.0], "mesh": 1}], [0, 1])
    scene = trimesh.load(file_obj=io.BytesIO(placed), file_type="glb", force="scene")
    scene.apply_scale(10.0)
    raw = scene.export(file_type="glb")
    written = json.loads(raw[20 : 20 + struct.unpack_from("<I", raw, 12)[0]])
    assert all("matrix" in node for node in written["nodes"] if "mesh" in node)
    vertices, faces = parse_glb(raw)
    expected = [
        (TETRA, TETRA_FACES, scale_translate(10.0, (30.0, 40.0, 50.0))),
        (TRI, TRI_FACES, scale_translate(10.0, (0.0, 0.0, 90.0))),
    ]
    assert as_triangles(vertices, faces) == expected_triangles(expected)


def test_an_identity_scene_keeps_the_buffer_positions():
    vertices, faces = parse_glb(glb([{"mesh": 1}], [0]))
    np.testing.assert_array_equal(vertices, TRI)
    np.testing.assert_array_equal(faces, TRI_FACES)


@pytest.mark.parametrize(
    "data",
    [b"", b"not a glb at all", b"glTF\x02\x00\x00\x00\x10\x00\x00\x00", b"glTF\x02\x00\x00\x00" + b"\x00" * 50],
)
def test_malformed_files_are_a_clear_error(data):
    with pytest.raises(DataAccessError, match="malformed glb mesh"):
        parse_glb(data)


def test_a_scene_without_triangles_is_a_clear_error():
    with pytest.raises(DataAccessError, match="no triangles"):
        parse_glb(glb([{"name": "empty"}], [0]))
