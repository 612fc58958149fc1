"""Fast, exact, GIL-friendly reader for the CryoET Data Portal's annotation ndjson.

Each line is one JSON object (portal notes §5.3)::

    {"type": "point", "location": {"x": 517.0, "y": 261.0, "z": 469.0}}
    {"type": "orientedPoint", "location": {...}, "xyz_rotation_matrix": [[...], [...], [...]]}
    {"type": "instancePoint", "location": {...}, "instance_id": 7}

Why not ``json.loads`` per line: it builds a dict per line and holds the GIL for the
whole file, which freezes napari while a million-point file loads.

How: the input is cut into blocks of about 2 MB at newlines.  A block takes the
**fast path** when every line is its first line (the *template*) with only the
numbers changed, which is how the portal writes these files (``json.dumps``, one fixed
key order).  The template is decoded once with ``json.loads`` after replacing each
number by a sentinel, which tells which number is ``location.x``, matrix entry
``[i][j]`` and so on, with ``json``'s own rules (duplicate keys, nesting, any key
order or spacing).  Then numpy walks all lines of the block at once, number by
number: each number ends at the first byte of the glue that follows it, and the bytes
between numbers must equal the template's byte for byte.  Every number must be a
valid JSON number; the common form ``-?int.frac`` is parsed with integer arithmetic
on 8-byte words and converted to float exactly (:func:`_divide`: one division in
80-bit long double, whose double rounding is checked), exponents likewise
(:func:`_parse_rest`); the values whose rounding cannot be proved that way (1 in 700;
most 17-digit ones where long double is float64, as on Windows and macOS/arm64) are
converted from their text by numpy's bytes-to-float cast, which rounds correctly like
``float()`` and ``json``; odd tokens one by one.  Anything the fast path
cannot prove (a differing line, a blank line, escapes in the template, a number
longer than 120 bytes) sends the whole block to the **slow path**: ``json.loads`` per
line, which is the reference behaviour and the only place errors are raised.  Both
paths return identical numbers.

Speed (``bench/bench_ndjson.py``, 1,000,000 portal-written orientedPoint lines on a
2-core Xeon): about 2 s, 5-7x the official plugin's ``ndjson.load`` plus Python loop,
with a tenth of its memory (about 3.5 s where long double is float64).  The time goes
into numpy's elementwise passes (about a hundred per number, a few ns each) and its
per-call overhead, which sets the block size.  Two threads over the blocks were
measured slower (the GIL-held share of each numpy call serialises them), so there is
one.

GIL: the fast path is a few hundred numpy calls per block on arrays of about 10^4
elements, each short and most of which release the GIL; the slow path is a Python
loop, which the interpreter preempts.  A ``time.sleep(0)`` after each block hands the
GIL to waiting threads.  Measured longest hold: a few ms on an idle machine.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

__all__ = [
    "AnnotationFormatError",
    "AnnotationPoints",
    "DEFAULT_BLOCK_SIZE",
    "block_counts",
    "parse_ndjson",
    "read_ndjson",
]

DEFAULT_BLOCK_SIZE = 2 << 20
"""Bytes per block.  Smaller blocks pay numpy's per-call overhead (about 1 us per call,
a few hundred calls per block) on fewer lines; larger ones fall out of the CPU cache.
No single numpy call on a block runs long, whatever the size."""

block_counts: Counter[str] = Counter()
"""Blocks parsed so far by each path (``"fast"``, ``"slow"``), so that tests and
benchmarks can prove the fast path ran."""


class AnnotationFormatError(ValueError):
    """A line is not a valid annotation.  ``line_no`` is 1-based."""

    def __init__(self, line_no: int, line: bytes, reason: str) -> None:
        line = line.strip()
        snippet = line[:80].decode("utf-8", "replace") + ("..." if len(line) > 80 else "")
        super().__init__(f"line {line_no}: {reason}: {snippet!r}")
        self.line_no, self.line, self.reason = line_no, line, reason


@dataclass(frozen=True, eq=False)
class AnnotationPoints:
    """Points of one annotation file, in file order.

    ``zyx``: (N, 3) float64 locations in z, y, x order (voxels at the annotation's
    voxel spacing, as stored).  ``rotations``: (N, 3, 3) float64 with
    ``rotations[n, i, j] == xyz_rotation_matrix[i][j]`` of line n, exactly as stored,
    i.e. still in x, y, z axis order (the caller converts); ``None`` unless every line
    has a matrix.  ``instance_ids``: (N,) int64, ``None`` unless every line has one.
    ``kind``: the ``type`` shared by all lines, ``"mixed"`` if lines differ (a line
    without ``type`` counts as ``""``), ``""`` for an empty file.  An empty file
    gives zero-length arrays.

    Lines of different types may be mixed: every line's location is kept, and
    rotations / instance ids are returned only if every line has them.  An
    ``orientedPoint`` line must have a 3x3 ``xyz_rotation_matrix``, an
    ``instancePoint`` line an integer ``instance_id``; other keys are ignored.
    """

    zyx: np.ndarray
    rotations: np.ndarray | None
    instance_ids: np.ndarray | None
    kind: str

    def __len__(self) -> int:
        return len(self.zyx)


def read_ndjson(source: str | os.PathLike[str] | BinaryIO) -> AnnotationPoints:
    """Read and parse an annotation file from a path or a binary file object."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return parse_ndjson(f.read())
    return parse_ndjson(source.read())


def parse_ndjson(data: bytes | bytearray, *, block_size: int = DEFAULT_BLOCK_SIZE) -> AnnotationPoints:
    """Parse annotation ndjson; raise :class:`AnnotationFormatError` on a bad line.

    Blank lines, leading/trailing whitespace and CRLF line ends are accepted.
    """
    chunks = []
    for start, stop in _blocks(data, block_size):
        chunk = _fast_block(data, start, stop)
        block_counts["slow" if chunk is None else "fast"] += 1
        if chunk is None:
            try:
                chunk = _slow_block(bytes(data[start:stop]))
            except AnnotationFormatError as e:  # make its line number count from the file's start
                raise AnnotationFormatError(e.line_no + data.count(b"\n", 0, start), e.line, e.reason) from None
        chunks.append(chunk)
        time.sleep(0)  # hand the GIL to any waiting thread between blocks
    return _merge(chunks)


# --------------------------------------------------------------------------- blocks

_WHITESPACE = b" \t\r\n"


def _blocks(data: bytes | bytearray, block_size: int) -> Iterator[tuple[int, int]]:
    """Yield ``(start, stop)`` of blocks; they end at a newline, except the last, and
    exclude the data's leading and trailing whitespace."""
    start, end = 0, len(data)
    while end > start and data[end - 1] in _WHITESPACE:
        end -= 1
    while start < end and data[start] in _WHITESPACE:
        start += 1
    while start < end:
        cut = data.find(b"\n", start + block_size, end) if start + block_size < end else -1
        stop = end if cut < 0 else cut + 1
        yield start, stop
        start = stop


@dataclass
class _Chunk:
    """One block's result, kept as columns (file order) until :func:`_merge`."""

    kinds: set[str]
    n: int
    zyx: list[np.ndarray]  # 3 columns: z, y, x
    rotations: list[np.ndarray] | None  # 9 columns, row-major matrix entries
    instance_ids: np.ndarray | None


def _merge(chunks: list[_Chunk]) -> AnnotationPoints:
    """Write the chunks' columns into the result arrays, block by block (short copies
    rather than one long one)."""
    kinds = set().union(*(c.kinds for c in chunks))
    kind = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "")
    total = sum(c.n for c in chunks)

    def gather(field: str, width: int) -> np.ndarray | None:
        parts = [getattr(c, field) for c in chunks]
        if any(p is None for p in parts):
            return None
        out = np.empty((total, width), np.float64)
        at = 0
        for c, columns in zip(chunks, parts):
            for j, column in enumerate(columns):
                out[at : at + c.n, j] = column
            at += c.n
        return out

    zyx = gather("zyx", 3)
    rotations = gather("rotations", 9)
    ids = None
    if all(c.instance_ids is not None for c in chunks):
        ids = np.empty(total, np.int64)
        at = 0
        for c in chunks:
            ids[at : at + c.n] = c.instance_ids
            at += c.n
    return AnnotationPoints(
        zyx=zyx,
        rotations=None if rotations is None else rotations.reshape(total, 3, 3),
        instance_ids=ids,
        kind=kind,
    )


# ----------------------------------------------------------------------- slow path


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is not a number")
    return float(value)


def _fields(obj: object) -> tuple[str, list[float], list[float] | None, int | None]:
    """Validate one decoded line; return (type, [x, y, z], 9 matrix entries or None,
    instance id or None).  Shared by both paths, so they accept the same files."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    kind = obj.get("type", "")
    if not isinstance(kind, str):
        raise ValueError('"type" is not a string')
    location = obj.get("location")
    if not isinstance(location, dict):
        raise ValueError('no "location" object')
    xyz = [_number(location.get(axis), f"location.{axis}") for axis in "xyz"]
    rotation = None
    if "xyz_rotation_matrix" in obj:
        rows = obj["xyz_rotation_matrix"]
        if not (isinstance(rows, list) and len(rows) == 3 and all(isinstance(r, list) and len(r) == 3 for r in rows)):
            raise ValueError('"xyz_rotation_matrix" is not a 3x3 list')
        rotation = [_number(v, "xyz_rotation_matrix entry") for row in rows for v in row]
    instance_id = None
    if "instance_id" in obj:
        instance_id = obj["instance_id"]
        if isinstance(instance_id, bool) or not isinstance(instance_id, int) or not -(2**63) <= instance_id < 2**63:
            raise ValueError('"instance_id" is not a 64-bit integer')
    if kind == "orientedPoint" and rotation is None:
        raise ValueError('orientedPoint without "xyz_rotation_matrix"')
    if kind == "instancePoint" and instance_id is None:
        raise ValueError('instancePoint without "instance_id"')
    return kind, xyz, rotation, instance_id


def _slow_block(block: bytes) -> _Chunk:
    """Reference path: ``json.loads`` per line; the only place errors are raised
    (with line numbers counted from the block's start)."""
    kinds: set[str] = set()
    zyx, rotations, ids = [], [], []
    for i, line in enumerate(block.split(b"\n")):
        if not line.strip():
            continue
        try:
            kind, xyz, rotation, instance_id = _fields(json.loads(line))
        except json.JSONDecodeError as e:
            raise AnnotationFormatError(i + 1, line, f"invalid JSON ({e.msg} at column {e.colno})") from None
        except (ValueError, OverflowError, RecursionError) as e:
            raise AnnotationFormatError(i + 1, line, str(e) or type(e).__name__) from None
        kinds.add(kind)
        zyx.append(xyz[::-1])
        rotations.append(rotation)
        ids.append(instance_id)
    zyx_columns = np.array(zyx, np.float64).reshape(-1, 3).T
    rotation_columns = None if None in rotations else np.array(rotations, np.float64).reshape(-1, 9).T
    return _Chunk(
        kinds,
        len(zyx),
        list(zyx_columns),
        None if rotation_columns is None else list(rotation_columns),
        None if None in ids else np.array(ids, np.int64),
    )


# ----------------------------------------------------------------------- fast path

# Outside strings, a JSON number is a maximal run of these bytes starting with - or a digit.
_TOKEN = re.compile(rb'"[^"\\\n]*"|-?[0-9][0-9.eE+-]*')
_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
_SENTINEL = 10**12
_PAD = 40  # zero bytes around a block, so that reads of up to 24 bytes never leave the buffer


@dataclass(frozen=True)
class _Template:
    """A block's first line, split into glue (the bytes around numbers) and numbers."""

    kind: str
    glue: list[bytes]  # head, the bytes between consecutive numbers, tail (ends with the newline)
    xyz: list[int]  # number index of location.x, .y, .z
    rotation: list[int] | None  # number index of each matrix entry, row-major
    instance_id: int | None


def _template(line: bytes) -> _Template | None:
    if b"\\" in line:  # escapes would defeat the string-skipping regex
        return None
    spans = [m.span() for m in _TOKEN.finditer(line) if line[m.start()] != 0x22]
    if not spans:
        return None
    glue = [line[: spans[0][0]]] + [line[a[1] : b[0]] for a, b in zip(spans, spans[1:])] + [line[spans[-1][1] :]]
    marked = glue[0] + b"".join(b"%d%s" % (_SENTINEL + i, g) for i, g in enumerate(glue[1:]))
    try:
        kind, xyz, rotation, instance_id = _fields(json.loads(marked))
        numbers = xyz + (rotation or []) + ([instance_id] if instance_id is not None else [])
        slots = [int(v) - _SENTINEL for v in numbers]  # NaN/Infinity literals have no sentinel
    except (ValueError, OverflowError, RecursionError):
        return None
    if not all(0 <= s < len(spans) for s in slots):
        return None
    return _Template(
        kind,
        glue,
        slots[:3],
        slots[3:12] if rotation is not None else None,
        slots[-1] if instance_id is not None else None,
    )


def _fast_block(data: bytes | bytearray, start: int, stop: int) -> _Chunk | None:
    """Parse ``data[start:stop]`` if all its lines match its first line (the template)
    with only the numbers changed; ``None`` if that cannot be proved."""
    if sys.byteorder != "little":
        return None
    first_nl = data.find(b"\n", start, stop)
    extra = b""
    if data[stop - 1] != 0x0A:  # the file's last line: give it the first line's line end
        extra = b"\r\n" if first_nl > start and data[first_nl - 1] == 0x0D else b"\n"
    line = bytes(data[start : first_nl + 1]) if first_nl >= 0 else bytes(data[start:stop]) + extra
    tpl = _template(line)
    if tpl is None:
        return None

    size = stop - start
    buf = np.zeros(size + len(extra) + 2 * _PAD, np.uint8)
    buf[_PAD : _PAD + size] = np.frombuffer(data, np.uint8, size, start)
    buf[_PAD + size : _PAD + size + len(extra)] = np.frombuffer(extra, np.uint8)
    v24 = np.ndarray((len(buf) - 23,), "V24", buf, strides=(1,))

    newlines = np.flatnonzero(buf == 0x0A)
    n_lines, n_numbers = len(newlines), len(tpl.glue) - 1
    line_starts = np.empty(n_lines, np.int64)
    line_starts[0] = _PAD
    line_starts[1:] = newlines[:-1] + 1

    # Walk all lines at once, number by number: a number ends at the first byte of the
    # glue that follows it (a byte no number contains); the glue must equal the
    # template's byte for byte.  A glue of up to 3 bytes is read together with the number
    # after it.
    shape = (n_numbers, n_lines)
    starts = np.empty(shape, np.int64)
    lengths = np.empty(shape, np.int64)
    heads = np.empty(shape, np.uint64)  # each number's first 8 bytes
    limit = len(buf) - _PAD
    at = line_starts  # where the glue before number k starts
    for k in range(n_numbers):
        glue, terminator = tpl.glue[k], tpl.glue[k + 1][0]
        np.minimum(at, limit, out=at)  # a mismatching line may run off the end
        g = len(glue)
        if 0 < g <= 3:  # leaves 21 bytes of the read for the number
            window = v24[at].view(np.uint64).reshape(-1, 3)
            low = window[:, 0]
            if ((low ^ _U(int.from_bytes(glue, "little"))) & _U((1 << 8 * g) - 1)).any():
                return None
            at = at + g
            head = (low >> _U(8 * g)) | (window[:, 1] << _U(64 - 8 * g))
            n = _find_byte(window, terminator, skip=g) - g
            far = n >= 24 - g  # the number goes on past the window
        else:
            if not _glue_matches(buf, glue, at):
                return None
            at = at + g
            np.minimum(at, limit, out=at)
            window = v24[at].view(np.uint64).reshape(-1, 3)
            head = window[:, 0]
            n = _find_byte(window, terminator)
            far = n >= 24
        if far.any():
            far = np.flatnonzero(far)
            n[far] = _find_far(v24, at[far], terminator)
        starts[k], heads[k], lengths[k] = at, head, n
        at = at + n
    np.minimum(at, limit, out=at)
    if not (np.array_equal(at + len(tpl.glue[-1]), newlines + 1) and _glue_matches(buf, tpl.glue[-1], at)):
        return None

    values = np.empty(shape, np.float64)
    is_int = np.empty(shape, bool)
    ok = np.empty(shape, bool)  # parsed, exactly
    valid = np.empty(shape, bool)  # of the common form, whether or not provably exact
    for k in range(n_numbers):  # a number's column at once: its tokens tend to look alike
        if lengths[k].max() <= 8:
            _parse_short(heads[k], lengths[k], values[k], ok[k], is_int[k])
            valid[k] = ok[k]
            continue
        for a in range(0, n_lines, _CHUNK):
            part = slice(a, a + _CHUNK)
            tail = v24[starts[k, part] + lengths[k, part] - 24].view(np.uint64).reshape(-1, 3)
            _parse_common(heads[k, part], tail, lengths[k, part], values[k, part], ok[k, part], is_int[k, part],
                          valid[k, part])
    values, is_int, ok = values.reshape(-1), is_int.reshape(-1), ok.reshape(-1)
    starts, lengths = starts.reshape(-1), lengths.reshape(-1)
    retry = np.flatnonzero(~ok)
    if len(retry) and not _parse_rest(buf, starts[retry], lengths[retry], retry, values, is_int,
                                      valid.reshape(-1)[retry]):
        return None
    values, is_int = values.reshape(n_numbers, n_lines), is_int.reshape(n_numbers, n_lines)

    ids = None
    if tpl.instance_id is not None:
        id_values = values[tpl.instance_id]
        if not (is_int[tpl.instance_id].all() and (np.abs(id_values) < 2**53).all()):
            return None  # let the slow path check or convert large integers exactly
        ids = id_values.astype(np.int64)
    return _Chunk(
        {tpl.kind},
        n_lines,
        [values[s] for s in tpl.xyz[::-1]],
        None if tpl.rotation is None else [values[s] for s in tpl.rotation],
        ids,
    )


def _glue_matches(buf: np.ndarray, glue: bytes, at: np.ndarray) -> bool:
    """Does ``glue`` start at each of ``at``?"""
    if not glue:
        return True
    if len(glue) <= 8:
        words = np.ndarray((len(buf) - 7,), "<u8", buf, strides=(1,))[np.minimum(at, len(buf) - 8)]
        words ^= _U(int.from_bytes(glue, "little"))
        words &= _U((1 << 8 * len(glue)) - 1)
        return not words.any()
    view = np.ndarray((len(buf) - len(glue) + 1,), f"V{len(glue)}", buf, strides=(1,))
    got = view[np.minimum(at, len(view) - 1)]  # a read into the zero padding cannot match
    return bool((got.view(np.uint8).reshape(-1, len(glue)) == np.frombuffer(glue, np.uint8)).all())


# ------------------------------------------------------- vectorised number parsing
# A "word" holds 8 bytes of text, the first byte in the low bits (little-endian).

_U = np.uint64
_ONES, _HIGH = _U(0x0101010101010101), _U(0x8080808080808080)
_ASCII0, _SIXES, _HIGH_NIBBLES = _U(0x3030303030303030), _U(0x0606060606060606), _U(0xF0F0F0F0F0F0F0F0)
_ALL = _U(0xFFFFFFFFFFFFFFFF)
_MINUS, _DOT = _U(ord("-") ^ 0x30), _U(ord(".") ^ 0x30)  # as they look after ^ _ASCII0
_POW10 = np.array([10**k if k <= 19 else 0 for k in range(25)], np.uint64)
_MAX_FRAC = 22
_POW10_FLOAT = np.array([10.0**k for k in range(23)])  # exact
_MAX_TOKEN = 120  # bytes: a block with a longer number goes to the slow path
_MAX_TEXT = 40  # bytes: longer numbers are converted one by one
_FRAC_MASKS = np.array(
    [[(1 << 64) - (1 << (8 * (8 - min(max(f - s, 0), 8)))) for f in range(25)] for s in (16, 8, 0)], np.uint64
)
"""``_FRAC_MASKS[w, f]``: mask of word w of the last f bytes of a right-aligned 24-byte tail."""
_CHUNK = 16384  # tokens per pass: larger temporaries fall out of the cache


def _popcount_swar(x: np.ndarray) -> np.ndarray:
    """Set bits of each word, as uint8 (for numpy < 2, which has no ``bitwise_count``)."""
    x = x - ((x >> _U(1)) & _U(0x5555555555555555))
    x = (x & _U(0x3333333333333333)) + ((x >> _U(2)) & _U(0x3333333333333333))
    x = (x + (x >> _U(4))) & _U(0x0F0F0F0F0F0F0F0F)
    return ((x * _U(0x0101010101010101)) >> _U(56)).astype(np.uint8)


_popcount = getattr(np, "bitwise_count", _popcount_swar)


def _lowest_byte(mask: np.ndarray) -> np.ndarray:
    """Index of the lowest nonzero byte of each word (0-7), or 8 if the word is 0."""
    return _popcount((mask & -mask) - _U(1)) >> np.uint8(3)


def _find_byte(window: np.ndarray, byte: int, skip: int = 0) -> np.ndarray:
    """Index of the first ``byte`` in each 24-byte window (rows of 3 words) after its
    first ``skip`` (< 8) bytes, or 24."""
    x = window ^ _U(byte * 0x0101010101010101)
    found = x - _ONES
    found &= ~x
    found &= _HIGH  # strlen's test: exact for the first zero byte
    if skip:
        found[:, 0] &= _U(((1 << 64) - 1) ^ ((1 << 8 * skip) - 1))
    c = _lowest_byte(found)
    c0, c1, c2 = c[:, 0], c[:, 1], c[:, 2]
    return (c0 + (c0 >> 3) * (c1 + (c1 >> 3) * c2)).astype(np.int64)


def _find_far(v24: np.ndarray, at: np.ndarray, byte: int) -> np.ndarray:
    """Index of the first ``byte`` from each of ``at``, looking up to ``_MAX_TOKEN``
    bytes ahead (a longer number makes the line mismatch)."""
    n = np.empty(len(at), np.int64)
    pending = np.arange(len(at))
    offset = 0
    while len(pending) and offset < _MAX_TOKEN:
        m = _find_byte(v24[np.minimum(at[pending] + offset, len(v24) - 1)].view(np.uint64).reshape(-1, 3), byte)
        found = m < 24
        n[pending[found]] = offset + m[found]
        pending = pending[~found]
        offset += 24
    n[pending] = offset
    return n


def _swar(d: np.ndarray) -> np.ndarray:
    """Value of each word's 8 bytes read as decimal digit values (0-9 each, the first
    byte most significant)."""
    d = d * _U(10) + (d >> _U(8))  # pairs, then groups of four, then all eight
    mask = _U(0x000000FF000000FF)
    return ((d & mask) * _U(100 + (1000000 << 32)) + ((d >> _U(16)) & mask) * _U(1 + (10000 << 32))) >> _U(32)


def _parse_common(head: np.ndarray, tail: np.ndarray, n: np.ndarray,
                  out: np.ndarray, ok: np.ndarray, is_int: np.ndarray, valid: np.ndarray) -> None:
    """Parse number tokens of the common form ``-?int(.frac)?`` (up to 7 integer
    digits, 19 significant digits, 22 fraction digits) exactly into ``out``, given each
    token's length ``n``, first 8 bytes (``head``) and last 24 bytes (``tail``, three
    words, right-aligned).  ``ok`` is False where the token has another form (exponent,
    more digits), is not a number, or its value needs a closer look (``valid`` says
    which are of the form); see :func:`_parse_rest`.
    """
    h = head ^ _ASCII0  # digits become their values 0-9
    negative = (h & _U(0xFF)) == _MINUS
    sign = negative.astype(np.uint64)
    h ^= sign * _MINUS  # a leading '-' becomes a 0 digit
    p1 = _lowest_byte(((h + _SIXES) | h) & _HIGH_NIBBLES).astype(np.uint64)  # end of the integer digits
    m = p1 - sign  # integer digits
    dot = ((h >> (p1 << _U(3))) & _U(0xFF)) == _DOT
    leading_zero = (m >= _U(2)) & ((h >> (sign << _U(3))) & _U(0xFF) == _U(0))
    int_part = _swar(h << ((_U(8) - p1) << _U(3)))  # the word's first p1 bytes
    f = n - p1.astype(np.int64) - 1  # fraction digits, if there is a '.'
    fe = np.minimum(np.maximum(f, 0), _MAX_FRAC)
    fe *= dot
    t = tail ^ _ASCII0
    for w in range(3):  # keep the last fe bytes
        t[:, w] &= _FRAC_MASKS[w].take(fe)
    bad = (t + _SIXES) | t
    bad &= _HIGH_NIBBLES
    v = _swar(t)
    frac = v[:, 0] * _U(10**16)
    frac += v[:, 1] * _U(10**8)
    frac += v[:, 2]
    digits = int_part * _POW10[fe]
    digits += frac
    fits = (m + fe.astype(np.uint64) <= _U(19)) | ((int_part == _U(0)) & (v[:, 0] < _U(1844)))
    fraction_ok = (f >= 1) & (f <= _MAX_FRAC) & fits & ((bad[:, 0] | bad[:, 1] | bad[:, 2]) == _U(0))
    good = (p1 < _U(8)) & (m >= _U(1)) & ~leading_zero & np.where(dot, fraction_ok, f == -1)

    exact = _divide(digits, fe, out)
    negative &= dot | (digits != _U(0))  # -0 is the integer 0
    out.view(np.uint64)[:] |= negative.astype(np.uint64) << _U(63)
    np.logical_and(good, exact, out=ok)
    np.copyto(valid, good)
    np.logical_not(dot, out=is_int)


def _parse_short(head: np.ndarray, n: np.ndarray, out: np.ndarray, ok: np.ndarray, is_int: np.ndarray) -> None:
    """:func:`_parse_common` for tokens of at most 8 bytes (``517.23``), which lie in
    ``head`` and have at most 7 digits, so that float64 divides them exactly."""
    h = head ^ _ASCII0  # digits become their values 0-9
    negative = (h & _U(0xFF)) == _MINUS
    sign = negative.astype(np.uint64)
    h ^= sign * _MINUS  # a leading '-' becomes a 0 digit
    p1 = _lowest_byte(((h + _SIXES) | h) & _HIGH_NIBBLES).astype(np.uint64)  # end of the integer digits
    m = p1 - sign
    dot = ((h >> (p1 << _U(3))) & _U(0xFF)) == _DOT
    leading_zero = (m >= _U(2)) & ((h >> (sign << _U(3))) & _U(0xFF) == _U(0))
    int_part = _swar(h << ((_U(8) - p1) << _U(3)))
    f = n - p1.astype(np.int64) - 1
    fe = np.maximum(f, 0)
    fe *= dot
    t = h << ((8 - n.astype(np.uint64)) << _U(3))  # the token right-aligned
    t &= _FRAC_MASKS[2].take(fe)  # its last fe bytes
    bad = (t + _SIXES) | t
    bad &= _HIGH_NIBBLES
    digits = int_part * _POW10.take(fe)
    digits += _swar(t)
    good = (m >= _U(1)) & ~leading_zero & np.where(dot, (f >= 1) & (bad == _U(0)), f == -1)
    np.divide(digits.astype(np.float64), _POW10_FLOAT.take(fe), out=out)
    negative &= dot | (digits != _U(0))  # -0 is the integer 0
    out.view(np.uint64)[:] |= negative.astype(np.uint64) << _U(63)
    np.copyto(ok, good)
    np.logical_not(dot, out=is_int)


def _parse_rest(buf: np.ndarray, start: np.ndarray, n: np.ndarray, where: np.ndarray,
                values: np.ndarray, is_int: np.ndarray, plain: np.ndarray) -> bool:
    """Parse the tokens the common-form parsers left into ``values[where]``; False if
    one is not a JSON number.  ``plain``: of the common form, only not provably exact.

    Exponent forms are parsed like the common form; valid numbers whose value is not
    provably exact that way (about 1 in 700 with an 80-bit long double, most of the
    long ones without) are converted from their text by numpy, as ``float()`` does;
    anything else (long integers, NaN, Infinity, not a number) one by one.
    """
    text = plain.copy()
    scalar = np.flatnonzero(~plain)
    if len(scalar):
        other, s, m = scalar, start[scalar], n[scalar]
        u64 = np.ndarray((len(buf) - 7,), "<u8", buf, strides=(1,))
        head, last = u64[s], u64[s + m - 8]
        digits, exponent, syntax = _exponent_form(buf, s, m, head, last)
        exp_values, exact = _scale(digits, exponent)
        done = syntax & exact
        negative = (head & _U(0xFF)) == _U(0x2D)
        values[where[other[done]]] = np.where(negative, -exp_values, exp_values)[done]
        is_int[where[other[syntax]]] = False
        text[other[syntax & ~exact]] = True
        scalar = other[~syntax]
    if text.any():
        convert = np.flatnonzero(text)
        long = n[convert] > _MAX_TEXT
        scalar = np.concatenate([scalar, convert[long]])
        convert = convert[~long]
        for a in range(0, len(convert), _CHUNK):  # the cast holds the GIL: a few ms at a time
            part = convert[a : a + _CHUNK]
            values[where[part]] = _text_to_float(buf, start[part], n[part])
    for i in scalar:  # exact scalar parse of the rare leftovers
        token = buf[start[i] : start[i] + n[i]].tobytes()
        match = _JSON_NUMBER.match(token)
        try:
            if match is None:  # what json accepts here too: NaN, Infinity, spaces
                value = json.loads(token)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    return False
            elif match.group(1) or match.group(2):
                value = float(token)
            else:
                value = int(token)
            values[where[i]] = value
        except (ValueError, OverflowError):
            return False
        is_int[where[i]] = isinstance(value, int)
    return True


def _text_to_float(buf: np.ndarray, start: np.ndarray, n: np.ndarray) -> np.ndarray:
    """float64 of JSON number tokens (at most ``_MAX_TEXT`` bytes), correctly rounded
    like ``float()``: numpy's bytes-to-float cast."""
    if not len(start):
        return np.empty(0)
    width = int(n.max())
    columns = np.arange(width)
    text = buf[np.minimum(start[:, None] + columns, len(buf) - 1)]
    text[columns >= n[:, None]] = 0
    with np.errstate(all="ignore"):  # 1e400 becomes inf, as float() makes it
        return text.view(f"S{width}").reshape(-1).astype(np.float64)


def _mantissa(head: np.ndarray, tail: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, ...]:
    """Parse ``-?int(.frac)?`` tokens of ``n`` bytes given their first 8 bytes
    (``head``) and their last 24 bytes (``tail``, three words, right-aligned).

    Returns ``(digits, exponent, ok)`` with value ``±digits * 10**exponent``; ``ok`` is
    False where the token is not of that form or has more than 7 integer or 19
    significant digits.
    """
    sign = ((head & _U(0xFF)) == _U(0x2D)).astype(np.uint64)
    h = (head ^ _ASCII0) ^ (sign * _MINUS)  # '-' -> 0 digit
    p1 = _lowest_byte((h | (h + _SIXES)) & _HIGH_NIBBLES).astype(np.uint64)
    m = p1 - sign  # integer digits
    int_part = _swar(h << ((_U(8) - p1) << _U(3)))
    f = n - p1.astype(np.int64) - 1  # fraction digits, if a '.' follows the integer digits
    fi = np.minimum(np.maximum(f, 0), 24)
    t = tail ^ _ASCII0
    for w in range(3):
        t[:, w] &= _FRAC_MASKS[w].take(fi)
    frac_valid = ((t | (t + _SIXES)) & _HIGH_NIBBLES) == _U(0)
    v = _swar(t)
    frac = v[:, 0] * _U(10**16) + v[:, 1] * _U(10**8) + v[:, 2]
    is_int = f == -1
    after_int = (head >> (p1 << _U(3))) & _U(0xFF)
    leading_zero = (m >= _U(2)) & (((h >> (sign << _U(3))) & _U(0xFF)) == _U(0))
    decimal_ok = (
        (after_int == _U(0x2E))
        & (f >= 1)
        & (f <= 19)
        & frac_valid.all(axis=1)
        & ((int_part == _U(0)) | (m + fi.astype(np.uint64) <= _U(19)))  # fits in 64 bits
    )
    ok = (p1 < _U(8)) & (m >= _U(1)) & ~leading_zero & (is_int | decimal_ok)
    digits = np.where(is_int, int_part, int_part * _POW10.take(fi) + frac)
    return digits, np.where(is_int, 0, -f), ok


def _exponent_form(buf: np.ndarray, start: np.ndarray, n: np.ndarray, head: np.ndarray,
                   last: np.ndarray) -> tuple[np.ndarray, ...]:
    """Parse tokens with an exponent (``6.123233995736766e-17``, ``3e2``): the exponent
    digits are the trailing digits (``last`` holds the token's last 8 bytes), before
    them an optional sign and an e or E, and before that a mantissa.  Returns
    ``(digits, exponent, ok)``."""
    t = _lowest_byte(((last.byteswap() ^ _ASCII0) | ((last.byteswap() ^ _ASCII0) + _SIXES)) & _HIGH_NIBBLES)
    t = t.astype(np.uint64)  # number of trailing digits
    tc = np.minimum(t, _U(7))
    c = (last >> ((_U(7) - tc) << _U(3))) & _U(0xFF)
    k = tc + ((c == _U(0x2B)) | (c == _U(0x2D)))  # bytes after the e
    e = (last >> ((_U(7) - np.minimum(k, _U(7))) << _U(3))) & _U(0xFF)
    is_exp = (t >= _U(1)) & (k <= _U(7)) & ((e | _U(0x20)) == _U(0x65))
    exp_value = _swar((last ^ _ASCII0) & (_ALL << ((_U(8) - tc) << _U(3)))).astype(np.int64)
    mant_n = n - 1 - k.astype(np.int64)
    v24 = np.ndarray((len(buf) - 23,), "V24", buf, strides=(1,))
    tail = v24[np.maximum(start + mant_n - 24, 0)].view(np.uint64).reshape(-1, 3)
    digits, exponent, ok = _mantissa(head, tail, mant_n)
    return digits, exponent + np.where(c == _U(0x2D), -exp_value, exp_value), is_exp & ok


# Exact decimal -> binary: digits * 10**q rounds correctly in one operation when both
# operands are exact in the working precision (Clinger's fast path).  With an 80-bit
# or 128-bit long double the result is then rounded again to float64; that double
# rounding is exact unless the long double lies within one unit of a float64 halfway
# point, which the bits below float64 precision reveal (such rare values fall back).
_LD = np.finfo(np.longdouble)
_WIDE = np.longdouble if (sys.byteorder == "little" and _LD.dtype.itemsize == 16 and _LD.nmant in (63, 112)) else np.float64
_WIDE_BITS = np.finfo(_WIDE).nmant + 1
_QMAX = max(q for q in range(60) if 5**q < 2**_WIDE_BITS)
_POW10_WIDE = np.cumprod(np.array([1] + [10] * _QMAX, _WIDE))  # exact: every 10**q <= 10**_QMAX is
_EXTRA_BITS = _WIDE_BITS - 53  # significand bits below float64 precision


def _divide(digits: np.ndarray, q: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[:] = digits / 10**q`` (``0 <= q <= 22``); return where that is provably exact."""
    x = digits.astype(_WIDE)
    x /= _POW10_WIDE.take(q)
    out[:] = x
    if _EXTRA_BITS:
        below = x.view(np.uint64)[::2] & _U((1 << _EXTRA_BITS) - 1)
        below -= _U((1 << (_EXTRA_BITS - 1)) - 1)
        return below > _U(2)  # not within 1 unit of halfway
    return digits < _U(2**53)


def _scale(digits: np.ndarray, exponent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``digits * 10**exponent`` as float64, and where that is provably exact."""
    q = np.abs(exponent)
    ok = (q <= _QMAX) & (digits < _U(min(2**_WIDE_BITS, 2**64 - 1)))
    x = digits.astype(_WIDE)
    power = _POW10_WIDE[np.minimum(q, _QMAX)]
    np.divide(x, power, out=x, where=exponent < 0)
    np.multiply(x, power, out=x, where=exponent > 0)
    if _EXTRA_BITS:
        below = x.view(np.uint64)[::2] & _U((1 << _EXTRA_BITS) - 1)
        ok &= (below - _U((1 << (_EXTRA_BITS - 1)) - 1)) > _U(2)  # not within 1 unit of halfway
    return x.astype(np.float64), ok
