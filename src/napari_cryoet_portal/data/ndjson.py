"""Fast, exact, GIL-friendly reader for the CryoET Data Portal's annotation ndjson.

Each line is one JSON object (portal notes §5.3)::

    {"type": "point", "location": {"x": 517.0, "y": 261.0, "z": 469.0}}
    {"type": "orientedPoint", "location": {...}, "xyz_rotation_matrix": [[...], [...], [...]]}
    {"type": "instancePoint", "location": {...}, "instance_id": 7}

Why not ``json.loads`` per line: it builds a dict per line and holds the GIL for the
whole file, which freezes napari while a million-point file loads.

How: the input is cut into blocks of a few MB at newlines.  A block takes the **fast
path** when every line is its first line (the *template*) with only the numbers
changed, which is how the portal writes these files (``json.dumps``, one fixed key
order).  The template is decoded once with ``json.loads`` after replacing each
number by a sentinel, which tells which number is ``location.x``, matrix entry
``[i][j]`` and so on, with ``json``'s own rules (duplicate keys, nesting, any key
order or spacing).  All lines are then checked at once with numpy: the bytes between
numbers must equal the template's byte for byte, and every number must be a valid
JSON number, parsed with integer arithmetic on 8-byte words and converted to float
exactly (see :func:`_scale`).  Anything the fast path cannot prove (a differing line,
a blank line, escapes in the template, an odd number) sends the whole block to the
**slow path**: ``json.loads`` per line, which is the reference behaviour and the only
place errors are raised.  Both paths return identical numbers.

GIL: the fast path is a few dozen numpy calls per block on arrays of at most a few MB,
each of which is short and most of which release the GIL; the slow path is a Python
loop, which the interpreter preempts.  A ``time.sleep(0)`` after each block hands the
GIL to waiting threads.
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

DEFAULT_BLOCK_SIZE = 512 << 10
"""Bytes per block: small enough that no single numpy call runs long, large enough
that per-block overhead is negligible."""

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
    for offset, block in _blocks(data, block_size):
        chunk = _fast_block(block)
        block_counts["slow" if chunk is None else "fast"] += 1
        if chunk is None:
            try:
                chunk = _slow_block(block)
            except AnnotationFormatError as e:  # make its line number count from the file's start
                raise AnnotationFormatError(e.line_no + data.count(b"\n", 0, offset), e.line, e.reason) from None
            time.sleep(0)  # hand the GIL to any waiting thread; the fast path releases it in numpy
        chunks.append(chunk)
    return _merge(chunks)


# --------------------------------------------------------------------------- blocks

_WHITESPACE = b" \t\r\n"


def _blocks(data: bytes | bytearray, block_size: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, block)``; blocks end at a newline, except the last, and
    exclude leading and trailing whitespace."""
    start, end = 0, len(data)
    while end > start and data[end - 1] in _WHITESPACE:
        end -= 1
    while start < end and data[start] in _WHITESPACE:
        start += 1
    while start < end:
        cut = data.find(b"\n", start + block_size, end) if start + block_size < end else -1
        stop = end if cut < 0 else cut + 1
        yield start, bytes(data[start:stop])
        start = stop


@dataclass
class _Chunk:
    kinds: set[str]
    zyx: np.ndarray
    rotations: np.ndarray | None
    instance_ids: np.ndarray | None


def _merge(chunks: list[_Chunk]) -> AnnotationPoints:
    """Concatenate chunks block by block (short copies rather than one long one)."""
    kinds = set().union(*(c.kinds for c in chunks))
    kind = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "")
    n = sum(len(c.zyx) for c in chunks)

    def gather(field: str, shape: tuple[int, ...], dtype: type) -> np.ndarray | None:
        parts = [getattr(c, field) for c in chunks]
        if any(p is None for p in parts):
            return None
        out = np.empty((n, *shape), dtype)
        at = 0
        for p in parts:
            out[at : at + len(p)] = p
            at += len(p)
        return out

    return AnnotationPoints(
        zyx=gather("zyx", (3,), np.float64),
        rotations=gather("rotations", (3, 3), np.float64),
        instance_ids=gather("instance_ids", (), np.int64),
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
    return _Chunk(
        kinds,
        np.array(zyx, np.float64).reshape(-1, 3),
        None if None in rotations else np.array(rotations, np.float64).reshape(-1, 3, 3),
        None if None in ids else np.array(ids, np.int64),
    )


# ----------------------------------------------------------------------- fast path

# Outside strings, a JSON number is a maximal run of these bytes starting with - or a digit.
_TOKEN = re.compile(rb'"[^"\\\n]*"|-?[0-9][0-9.eE+-]*')
_SENTINEL = 10**12
_PAD = 32  # zero bytes around a block so that 24-byte reads never leave the buffer


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


def _fast_block(block: bytes) -> _Chunk | None:
    """Parse a block whose lines all match its first line; ``None`` if not provable."""
    first_nl = block.find(b"\n")
    if first_nl < 0 or not block.endswith(b"\n"):  # the file's last line has no newline
        block += b"\r\n" if first_nl > 0 and block[first_nl - 1] == 0x0D else b"\n"
        first_nl = block.find(b"\n")
    tpl = _template(block[: first_nl + 1])
    if tpl is None:
        return None
    buf = np.zeros(len(block) + 2 * _PAD, np.uint8)
    buf[_PAD:-_PAD] = np.frombuffer(block, np.uint8)
    words = _Words(buf)

    newlines = np.flatnonzero(buf == 0x0A)
    line_starts = np.concatenate(([_PAD], newlines[:-1] + 1))
    n_lines, n_numbers = len(newlines), len(tpl.glue) - 1

    # Walk all lines at once, number by number: a number ends at the first byte of the
    # glue that follows it (a byte no number contains); the glue has a fixed length.
    starts = np.empty((n_lines, n_numbers), np.int64)
    lengths = np.empty((n_lines, n_numbers), np.int64)
    heads = np.empty((n_lines, n_numbers), np.uint64)
    at = line_starts + len(tpl.glue[0])
    for k in range(n_numbers):
        np.minimum(at, len(buf) - 24, out=at)  # a mismatching line may run off the end
        window = words.read24(at)
        n = _find_byte(window, tpl.glue[k + 1][0])
        starts[:, k], lengths[:, k], heads[:, k] = at, n, window[:, 0]
        at = at + n + len(tpl.glue[k + 1])
    if not np.array_equal(at, newlines + 1) or not _glue_matches(words, tpl.glue, line_starts, starts + lengths):
        return None

    parsed = _parse_numbers(words, starts.ravel(), lengths.ravel(), heads.ravel())
    if parsed is None:
        return None
    values, is_int = (a.reshape(n_lines, n_numbers) for a in parsed)
    zyx = values[:, tpl.xyz[::-1]]
    rotations = None if tpl.rotation is None else values[:, tpl.rotation].reshape(-1, 3, 3)
    ids = None
    if tpl.instance_id is not None:
        id_values = values[:, tpl.instance_id]
        if not (is_int[:, tpl.instance_id].all() and (np.abs(id_values) < 2**53).all()):
            return None  # let the slow path check or convert large integers exactly
        ids = id_values.astype(np.int64)
    return _Chunk({tpl.kind}, zyx, rotations, ids)


class _Words:
    """Unaligned little-endian reads from a byte buffer: an 8-byte word, or three of
    them (24 bytes), starting at any offset."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        self.u64 = np.ndarray((len(buf) - 7,), "<u8", buf, strides=(1,))
        self.v24 = np.ndarray((len(buf) - 23,), "V24", buf, strides=(1,))

    def read24(self, at: np.ndarray) -> np.ndarray:
        return self.v24[at].view("<u8").reshape(-1, 3)


def _glue_matches(words: _Words, glue: list[bytes], line_starts: np.ndarray, ends: np.ndarray) -> bool:
    """Do the bytes around the numbers equal the template's glue, on every line?"""
    columns, offsets, expected, masks = [], [], [], []
    for j, g in enumerate(glue):
        for off in range(0, len(g), 8):
            piece = g[off : off + 8]
            columns.append(j)
            offsets.append(off)
            expected.append(int.from_bytes(piece, "little"))
            masks.append((1 << (8 * len(piece))) - 1)
    offsets, expected, masks = np.array(offsets), np.array(expected, np.uint64), np.array(masks, np.uint64)
    glue_starts = np.column_stack((line_starts, ends))  # glue j starts after number j-1
    step = max(1, _CHUNK // len(columns))
    for a in range(0, len(glue_starts), step):
        got = words.u64[glue_starts[a : a + step, columns] + offsets]
        if ((got ^ expected) & masks).any():
            return False
    return True


# ------------------------------------------------------- vectorised number parsing
# A "word" holds 8 bytes of text, the first byte in the low bits (little-endian).

_U = np.uint64
_ONES, _HIGH = _U(0x0101010101010101), _U(0x8080808080808080)
_ASCII0, _SIXES, _HIGH_NIBBLES = _U(0x3030303030303030), _U(0x0606060606060606), _U(0xF0F0F0F0F0F0F0F0)
_POW10 = np.array([10**k if k <= 19 else 0 for k in range(25)], np.uint64)
_FRAC_COUNTS = np.array([[min(max(f - s, 0), 8) for s in (16, 8, 0)] for f in range(25)], np.uint64)
"""Number of fraction digits in each of the tail's three words, by fraction length."""
_CHUNK = 4096  # array elements per pass: larger temporaries cost page faults on every allocation


def _lowest_byte(mask: np.ndarray) -> np.ndarray:
    """Index of the lowest nonzero byte of each word (0-7), or 8 if the word is 0."""
    return np.bitwise_count((mask & -mask) - _U(1)) >> np.uint8(3)


def _first_non_digit(w: np.ndarray) -> np.ndarray:
    """Index of the first byte of each word that is not an ASCII digit, or 8.
    (A carry may spoil the flags of later bytes, never of the first non-digit.)"""
    x = w ^ _ASCII0
    return _lowest_byte((x | (x + _SIXES)) & _HIGH_NIBBLES)


def _find_byte(window: np.ndarray, byte: int) -> np.ndarray:
    """Index of the first ``byte`` in each 24-byte window (rows of 3 words), or 24."""
    x = window ^ _U(byte * 0x0101010101010101)
    c = _lowest_byte((x - _ONES) & ~x & _HIGH)  # strlen's test: exact for the first zero byte
    c0, c1, c2 = c[:, 0], c[:, 1], c[:, 2]
    return (c0 + (c0 == 8) * (c1 + (c1 == 8) * c2)).astype(np.int64)


def _digit_values(w: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value of the last ``count`` (0-8) bytes of each word read as decimal digits,
    and whether they all are digits."""
    keep = _U(0xFFFFFFFFFFFFFFFF) << ((_U(8) - count) << _U(3))  # numpy gives 0 for a shift by 64
    d = (w ^ _ASCII0) & keep  # digit values, 0 in the bytes not kept
    valid = ((d | (d + _SIXES)) & _HIGH_NIBBLES) == 0
    d = d * _U(10) + (d >> _U(8))  # SWAR: pairs, then groups of four, then all eight
    mask = _U(0x000000FF000000FF)
    value = ((d & mask) * _U(100 + (1000000 << 32)) + ((d >> _U(16)) & mask) * _U(1 + (10000 << 32))) >> _U(32)
    return value, valid


def _mantissa(head: np.ndarray, tail: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, ...]:
    """Parse ``-?int(.frac)?`` tokens of ``n`` bytes given their first 8 bytes
    (``head``) and their last 24 bytes (``tail``, three words, right-aligned).

    Returns ``(negative, digits, exponent, is_int, ok)`` with value
    ``(-1)**negative * digits * 10**exponent``; ``ok`` is False where the token is not
    of that form or has more than 7 integer or 19 significant digits.
    """
    negative = (head & _U(0xFF)) == _U(0x2D)
    sign = negative.astype(np.uint64)
    p1 = _first_non_digit(head ^ (sign * _U(0x1D))).astype(np.uint64)  # '-' -> '0'; end of integer digits
    m = p1 - sign  # integer digits
    int_part = _digit_values(head << ((_U(8) - p1) << _U(3)), m)[0]  # they are digits by definition of p1
    f = n - p1.astype(np.int64) - 1  # fraction digits, if a '.' follows the integer digits
    fi = np.minimum(np.maximum(f, 0), 24)
    frac_words, frac_valid = _digit_values(tail, _FRAC_COUNTS.take(fi, axis=0))  # the tail's last f bytes
    frac = frac_words[:, 0] * _U(10**16) + frac_words[:, 1] * _U(10**8) + frac_words[:, 2]

    is_int = f == -1
    after_int = (head >> (p1 << _U(3))) & _U(0xFF)
    leading_zero = (m >= 2) & (((head >> (sign << _U(3))) & _U(0xFF)) == _U(0x30))
    decimal_ok = (
        (after_int == _U(0x2E))
        & (f >= 1)
        & (f <= 19)
        & frac_valid[:, 0]
        & frac_valid[:, 1]
        & frac_valid[:, 2]
        & ((int_part == 0) | (m + fi.astype(np.uint64) <= 19))  # fits in 64 bits
    )
    ok = (p1 < 8) & (m >= 1) & ~leading_zero & (is_int | decimal_ok)
    digits = np.where(is_int, int_part, int_part * _POW10.take(fi) + frac)
    return negative, digits, np.where(is_int, 0, -f), is_int, ok


def _exponent_form(words: _Words, start: np.ndarray, n: np.ndarray, head: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, ...]:
    """Parse tokens with an exponent (``6.123233995736766e-17``, ``3e2``): the exponent
    digits are the trailing digits (``last`` holds the token's last 8 bytes), before
    them an optional sign and an e or E, and before that a mantissa.  Returns
    ``(digits, exponent, ok)``."""
    t = _first_non_digit(last.byteswap()).astype(np.uint64)  # number of trailing digits
    tc = np.minimum(t, _U(7))
    c = (last >> ((_U(7) - tc) << _U(3))) & _U(0xFF)
    k = tc + ((c == _U(0x2B)) | (c == _U(0x2D)))  # bytes after the e
    e = (last >> ((_U(7) - np.minimum(k, _U(7))) << _U(3))) & _U(0xFF)
    is_exp = (t >= 1) & (k <= 7) & ((e | _U(0x20)) == _U(0x65))
    exp_value = _digit_values(last, tc)[0].astype(np.int64)
    mant_n = n - 1 - k.astype(np.int64)
    _, digits, exponent, _, ok = _mantissa(head, words.read24(start + mant_n - 24), mant_n)
    return digits, exponent + np.where(c == _U(0x2D), -exp_value, exp_value), is_exp & ok


def _parse_numbers(words: _Words, start: np.ndarray, n: np.ndarray, head: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact float64 values of the JSON number tokens ``[start, start + n)`` and
    whether each is an integer token; ``None`` if any token is not a JSON number."""
    values, is_int, ok = np.empty(len(start)), np.empty(len(start), bool), np.empty(len(start), bool)
    last = np.empty(len(start), np.uint64)
    for a in range(0, len(start), _CHUNK):
        part = slice(a, a + _CHUNK)
        tail = words.read24(start[part] + n[part] - 24)
        negative, digits, exponent, is_int[part], ok[part] = _mantissa(head[part], tail, n[part])
        values[part], exact = _scale(digits, exponent)
        ok[part] &= exact
        np.negative(values[part], out=values[part], where=negative & ~(is_int[part] & (digits == 0)))  # -0 is int 0
        last[part] = tail[:, 2]

    retry = np.flatnonzero(~ok)
    if len(retry):  # exponent forms, then anything else (long integers, huge exponents)
        digits, exponent, exp_ok = _exponent_form(words, start[retry], n[retry], head[retry], last[retry])
        exp_values, exact = _scale(digits, exponent)
        negative = (head[retry] & _U(0xFF)) == _U(0x2D)
        values[retry] = np.where(negative, -exp_values, exp_values)
        is_int[retry] = False
        ok[retry] = exp_ok & exact
    for i in np.flatnonzero(~ok):  # exact scalar parse of the rare leftovers
        token = words.buf[start[i] : start[i] + n[i]].tobytes()
        try:
            value = json.loads(token)
        except ValueError:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        try:
            values[i] = value
        except OverflowError:
            return None
        is_int[i] = isinstance(value, int)
    return values, is_int


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
