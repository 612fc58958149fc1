"""Synthetic cryo-ET volumes: a scene described in Å, rendered at any voxel spacing.

The scene is independent of the voxel spacing so that a tomogram at 10 Å and one at 16 Å show
the same field of view, and annotations (points in voxels of *their* spacing) land on the same
particles. Density is dark, as in cryo-ET: matter is negative on a ~zero-mean background.

Voxels are full-precision float32 with white gaussian noise on top of the structure, as raw
reconstructions are: the low mantissa bytes are random, so the portal's blosc-lz4 (byte
shuffle) gains only ~1.07x on them, as on real raw tomograms (~1.06x), not the 2x that smooth
or quantised values would give.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEAFLET_OFFSET = 20.0  # Å from a membrane's midplane to each leaflet
LEAFLET_SIGMA = 8.0  # Å, width of one leaflet's density
MEMBRANE_DENSITY = -0.9
MEMBRANE_HALF_THICKNESS = LEAFLET_OFFSET + LEAFLET_SIGMA  # Å, what the semantic mask covers
Block = tuple[tuple[int, int, int], tuple[int, int, int]]  # (origin, shape) in voxels, zyx


@dataclass(frozen=True)
class Wall:
    """A membrane through the whole slab: x = x0 + amplitude·cos(2πy/period + phase), in Å."""

    x0: float
    amplitude: float
    period: float
    phase: float

    def distance(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Approximate distance (Å) of the (y, x) grid to the surface, broadcastable over z."""
        arg = 2 * np.pi * y[:, None] / self.period + self.phase
        slope = -self.amplitude * 2 * np.pi / self.period * np.sin(arg)
        return (x[None, :] - self.x0 - self.amplitude * np.cos(arg)) / np.sqrt(1 + slope**2)


@dataclass(frozen=True)
class Shell:
    """A spherical vesicle membrane, Å (centre z, y, x)."""

    center: tuple[float, float, float]
    radius: float


@dataclass
class Scene:
    """Everything a tomogram shows, in Å (z, y, x)."""

    extent: tuple[float, float, float]
    seed: int
    walls: list[Wall] = field(default_factory=list)
    shells: list[Shell] = field(default_factory=list)
    centers: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    sigmas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    axes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    elongations: np.ndarray = field(default_factory=lambda: np.zeros(0))
    amplitudes: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def add_particles(
        self,
        centers: np.ndarray,
        sigma: float,
        amplitude: float = -1.5,
        axes: np.ndarray | None = None,
        elongation: float = 1.0,
    ) -> None:
        """Draw gaussian blobs at `centers` (Å, zyx); with `axes` (zyx unit vectors) they are
        stretched along them by `elongation`, so an orientation is visible."""
        n = len(centers)
        axes = np.tile([1.0, 0.0, 0.0], (n, 1)) if axes is None else axes
        self.centers = np.concatenate([self.centers, np.asarray(centers, float).reshape(n, 3)])
        self.sigmas = np.concatenate([self.sigmas, np.full(n, sigma)])
        self.axes = np.concatenate([self.axes, axes])
        self.elongations = np.concatenate([self.elongations, np.full(n, elongation)])
        self.amplitudes = np.concatenate([self.amplitudes, np.full(n, amplitude)])

    def free_points(self, rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
        """`n` points (Å, zyx) at least `radius` away from the borders, membranes and particles
        already in the scene (and from each other): where new particles can go."""
        lo = np.full(3, radius + 5.0)
        hi = np.asarray(self.extent) - lo
        taken = [(c, 2.5 * s * e) for c, s, e in zip(self.centers, self.sigmas, self.elongations)]
        out: list[np.ndarray] = []
        for _ in range(200 * n):
            if len(out) == n:
                break
            p = lo + rng.random(3) * (hi - lo)
            if self._clear(p, radius, taken):
                out.append(p)
                taken.append((p, radius))
        if len(out) < n:
            raise ValueError(f"only {len(out)} of {n} particles fit in the scene")
        return np.array(out)

    def _clear(self, p: np.ndarray, radius: float, taken: list[tuple[np.ndarray, float]]) -> bool:
        gap = radius + MEMBRANE_HALF_THICKNESS
        if any(abs(np.linalg.norm(p - s.center) - s.radius) < gap for s in self.shells):
            return False
        if any(abs(w.distance(p[1:2], p[2:3])[0, 0]) < gap for w in self.walls):
            return False
        return all(np.linalg.norm(p - c) >= radius + r for c, r in taken)


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` uniformly distributed proper rotation matrices (det = +1), from unit quaternions."""
    q = rng.standard_normal((n, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    ).transpose(2, 0, 1)


def filament(
    start: np.ndarray, direction: np.ndarray, n: int, step: float, bend: float
) -> np.ndarray:
    """`n` points (Å, zyx) `step` apart along a gently bending line: a traced filament."""
    d = direction / np.linalg.norm(direction)
    side = np.cross(d, [1.0, 0.0, 0.0])
    side = side / np.linalg.norm(side) if np.linalg.norm(side) > 1e-6 else np.array([0.0, 1.0, 0.0])
    t = np.arange(n) * step
    return start + t[:, None] * d + (bend * np.sin(t / (n * step) * np.pi))[:, None] * side


def icosphere(subdivisions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere triangle mesh (vertices (N, 3), faces (M, 3)) from a subdivided icosahedron."""
    t = (1 + 5**0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t)]
    verts += [(0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4)]
    faces += [(11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8)]
    faces += [(3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    points = [np.array(v, float) / np.linalg.norm(v) for v in verts]
    for _ in range(subdivisions):
        mid: dict[tuple[int, int], int] = {}
        faces = [
            f
            for a, b, c in faces
            for ab, bc, ca in [[_midpoint(points, mid, *e) for e in ((a, b), (b, c), (c, a))]]
            for f in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))
        ]
    return np.array(points), np.array(faces, np.uint32)


def _midpoint(points: list[np.ndarray], mid: dict[tuple[int, int], int], a: int, b: int) -> int:
    """Index of the (new, normalised) vertex halfway between vertices a and b."""
    key = (min(a, b), max(a, b))
    if key not in mid:
        m = points[a] + points[b]
        points.append(m / np.linalg.norm(m))
        mid[key] = len(points) - 1
    return mid[key]


def _coords(spacing: float, block: Block, shift: float = 0.0) -> list[np.ndarray]:
    """Å positions of the block's voxels (voxel i sits at i·spacing, plus `shift`)."""
    origin, shape = block
    return [(o + np.arange(s)) * spacing + shift for o, s in zip(origin, shape)]


def _window(
    center: np.ndarray, reach: float, spacing: float, block: Block, shift: float = 0.0
) -> tuple[slice, ...] | None:
    """The part of `block` (as local slices) within `reach` Å of `center`, or None."""
    origin, shape = block
    c = np.asarray(center) - shift
    lo = np.maximum(np.floor((c - reach) / spacing).astype(int) - np.array(origin), 0)
    hi = np.minimum(np.ceil((c + reach) / spacing).astype(int) + 1 - np.array(origin), shape)
    return None if np.any(hi <= lo) else tuple(slice(a, b) for a, b in zip(lo, hi))


def _bilayer(d: np.ndarray, sigma: float) -> np.ndarray:
    k = -0.5 / sigma**2
    return np.exp(k * (d - LEAFLET_OFFSET) ** 2) + np.exp(k * (d + LEAFLET_OFFSET) ** 2)


def _background(
    scene: Scene, z: np.ndarray, y: np.ndarray, x: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Low-frequency density variation (thickness, ice gradient): a sum of separable terms
    f(z)·g(y, x), returned as (f, g) pairs so that a block costs a few 2D operations per plane."""
    rng = np.random.default_rng([scene.seed, 1])
    terms = []
    for _ in range(2):
        periods = np.asarray(scene.extent) * rng.uniform(0.8, 2.0, 3)
        fz, fy, fx = (
            np.cos(2 * np.pi * c / p + ph).astype(np.float32)
            for c, p, ph in zip((z, y, x), periods, rng.uniform(0, 2 * np.pi, 3))
        )
        terms.append((np.float32(0.15) * fz, fy[:, None] * fx[None, :]))
    return terms


def render(
    scene: Scene, spacing: float, block: Block, noise: float, seed: int, shift: float = 0.0
) -> np.ndarray:
    """The tomogram block (origin, shape) at `spacing` Å: float32, structure + white noise of
    standard deviation `noise`. `shift` (Å) moves the sampling grid (a binned level's voxels
    sit at the centres of the voxels they average).

    Blocks of one volume render independently (noise is seeded by `seed` and the block origin),
    so a large tomogram can be written, or served, chunk by chunk (a 256³ block in ~0.2 s).
    """
    z, y, x = _coords(spacing, block, shift)
    shape = tuple(block[1])
    if noise:
        vol = noise_block(seed, block[0], shape)
        vol *= np.float32(noise)
    else:
        vol = np.zeros(shape, np.float32)
    blur = (spacing / 2) ** 2  # sampling widens thin features at coarse spacings
    sig = np.sqrt(LEAFLET_SIGMA**2 + blur)
    flat = np.zeros(shape[1:], np.float32)  # what does not depend on z: the walls
    for wall in scene.walls:
        flat += (MEMBRANE_DENSITY * _bilayer(wall.distance(y, x), sig)).astype(np.float32)
    terms = _background(scene, z, y, x)
    tmp = np.empty(shape[1:], np.float32)
    for k in range(shape[0]):
        plane = vol[k]
        plane += flat
        for fz, g in terms:
            np.multiply(g, fz[k], out=tmp)
            plane += tmp
    for shell in scene.shells:
        c = np.asarray(shell.center)
        reach = LEAFLET_OFFSET + 4 * sig
        w = _window(c, shell.radius + reach, spacing, block, shift)
        if w is not None:
            d = _radius(c, z[w[0]], y[w[1]], x[w[2]]) - np.float32(shell.radius)
            near = np.nonzero(np.abs(d) < reach)  # the bilayer only: not the whole ball
            sub = vol[w]
            sub[near] += (MEMBRANE_DENSITY * _bilayer(d[near], sig)).astype(np.float32)
    for c, s, a, e, amp in zip(
        scene.centers, scene.sigmas, scene.axes, scene.elongations, scene.amplitudes
    ):
        s = np.sqrt(s**2 + blur)
        w = _window(c, 3.5 * s * e, spacing, block, shift)
        if w is not None:
            vol[w] += (amp * _blob(c, s, a, e, (z[w[0]], y[w[1]], x[w[2]]))).astype(np.float32)
    return vol


def noise_block(seed: int, origin: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Standard white gaussian noise, float32, a pure function of (seed, origin, shape).

    SFC64 is numpy's fastest bit generator: 256³ values in ~0.13 s."""
    rng = np.random.Generator(np.random.SFC64([seed, *(int(o) for o in origin)]))
    return rng.standard_normal(shape, np.float32)


def _radius(c: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Distance (Å, float32) of the grid z ⊗ y ⊗ x to the point c."""
    dz, dy, dx = (((v - o) ** 2).astype(np.float32) for v, o in zip((z, y, x), c))
    return np.sqrt(dz[:, None, None] + dy[None, :, None] + dx[None, None, :])


def _blob(
    c: np.ndarray, sigma: float, axis: np.ndarray, elongation: float, zyx: tuple[np.ndarray, ...]
) -> np.ndarray:
    z, y, x = zyx
    dz, dy, dx = (z - c[0])[:, None, None], (y - c[1])[None, :, None], (x - c[2])[None, None, :]
    q = dz**2 + dy**2 + dx**2
    if elongation != 1.0:
        along = axis[0] * dz + axis[1] * dy + axis[2] * dx
        q = q + along**2 * (1 / elongation**2 - 1)
    return np.exp(-0.5 * q / sigma**2)


def membrane_mask(scene: Scene, spacing: float, shape: tuple[int, int, int]) -> np.ndarray:
    """Semantic mask (int8 0/1) of every membrane: within MEMBRANE_HALF_THICKNESS of a surface."""
    block: Block = ((0, 0, 0), shape)
    z, y, x = _coords(spacing, block)
    mask = np.zeros(shape, bool)
    for wall in scene.walls:
        mask |= (np.abs(wall.distance(y, x)) <= MEMBRANE_HALF_THICKNESS)[None]
    for shell in scene.shells:
        c = np.asarray(shell.center)
        w = _window(c, shell.radius + MEMBRANE_HALF_THICKNESS, spacing, block)
        if w is not None:
            mask[w] |= (
                np.abs(_radius(c, z[w[0]], y[w[1]], x[w[2]]) - shell.radius)
                <= MEMBRANE_HALF_THICKNESS
            )
    return mask.astype(np.int8)


def ball_labels(
    centers: np.ndarray, radii: np.ndarray, spacing: float, shape: tuple[int, int, int]
) -> np.ndarray:
    """Instance mask (uint16): label i+1 on the ball at `centers[i]` (Å, zyx) of `radii[i]`."""
    block: Block = ((0, 0, 0), shape)
    z, y, x = _coords(spacing, block)
    labels = np.zeros(shape, np.uint16)
    for i, (c, r) in enumerate(zip(centers, radii)):
        w = _window(c, r, spacing, block)
        if w is not None:
            labels[w][_radius(c, z[w[0]], y[w[1]], x[w[2]]) <= r] = i + 1
    return labels


def scene_to_json(scene: Scene) -> dict:
    """A scene as plain JSON (for content described, not stored: the virtual tomograms)."""
    return {
        "extent": list(scene.extent),
        "seed": scene.seed,
        "walls": [[w.x0, w.amplitude, w.period, w.phase] for w in scene.walls],
        "shells": [[*s.center, s.radius] for s in scene.shells],
        "centers": scene.centers.tolist(),
        "sigmas": scene.sigmas.tolist(),
        "axes": scene.axes.tolist(),
        "elongations": scene.elongations.tolist(),
        "amplitudes": scene.amplitudes.tolist(),
    }


def scene_from_json(obj: dict) -> Scene:
    """The inverse of scene_to_json (floats round-trip exactly through JSON)."""
    scene = Scene(tuple(obj["extent"]), seed=int(obj["seed"]))  # type: ignore[arg-type]
    scene.walls = [Wall(*w) for w in obj["walls"]]
    scene.shells = [Shell(tuple(s[:3]), s[3]) for s in obj["shells"]]  # type: ignore[arg-type]
    scene.centers = np.array(obj["centers"], float).reshape(-1, 3)
    scene.sigmas = np.array(obj["sigmas"], float)
    scene.axes = np.array(obj["axes"], float).reshape(-1, 3)
    scene.elongations = np.array(obj["elongations"], float)
    scene.amplitudes = np.array(obj["amplitudes"], float)
    return scene
