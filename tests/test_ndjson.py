"""The annotation ndjson parser against ``json.loads`` per line, the reference.

Every comparison is bit for bit (``-0.0`` is not ``0.0``), on both paths: the numpy fast
path (lines that match their block's first line with only the numbers changed) and the
``json.loads`` slow path.  ``block_counts`` shows which path ran.

Decided behaviour (also in ``AnnotationPoints``' docstring):

- Lines of different types may be mixed in one file: every line's location is kept,
  ``kind`` is ``"mixed"``, and rotations / instance ids are returned only if every line
  has them.
- An ``orientedPoint`` line must have a 3x3 ``xyz_rotation_matrix`` and an
  ``instancePoint`` line an integer ``instance_id``; other keys are ignored.
- Numbers are what ``json.loads`` makes of them (``-0`` is the integer 0, so ``0.0``;
  ``1e400`` is ``inf``; ``NaN`` and ``Infinity`` are accepted, as ``json`` does).
- Blank lines, surrounding whitespace and CRLF line ends are accepted; line numbers in
  errors are 1-based and count every line of the file, blank ones too.
"""

from __future__ import annotations

import io
import json
import math
import random

import numpy as np
import pytest

from napari_cryoet_portal.data import ndjson
from napari_cryoet_portal.data.ndjson import (
    AnnotationFormatError,
    block_counts,
    parse_ndjson,
    read_ndjson,
)
from napari_cryoet_portal.demo.volumes import random_rotations

# --------------------------------------------------------------------------- reference


def reference(data: bytes) -> dict:
    """What the file holds, by ``json.loads`` per non-blank line."""
    objs = [json.loads(line) for line in data.split(b"\n") if line.strip()]
    zyx = np.array([[float(o["location"][a]) for a in "zyx"] for o in objs], np.float64).reshape(-1, 3)
    if all("xyz_rotation_matrix" in o for o in objs):
        rotations = np.array([o["xyz_rotation_matrix"] for o in objs], np.float64).reshape(-1, 3, 3)
    else:
        rotations = None
    ids = np.array([o["instance_id"] for o in objs], np.int64) if all("instance_id" in o for o in objs) else None
    kinds = {o.get("type", "") for o in objs}
    kind = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "")
    return {"zyx": zyx, "rotations": rotations, "instance_ids": ids, "kind": kind}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def check(data: bytes, **kw) -> ndjson.AnnotationPoints:
    """Parse ``data`` and assert it equals the reference bit for bit."""
    got = parse_ndjson(data, **kw)
    want = reference(data)
    assert got.kind == want["kind"]
    assert got.zyx.shape == want["zyx"].shape
    bad = np.flatnonzero(~(got.zyx.view(np.uint64) == want["zyx"].view(np.uint64)).all(axis=1))
    assert not len(bad), f"first wrong line {bad[0] + 1}: {got.zyx[bad[0]]!r} != {want['zyx'][bad[0]]!r}"
    for field in ("rotations", "instance_ids"):
        g, w = getattr(got, field), want[field]
        if w is None or len(w) == 0:
            assert g is None or len(g) == 0, field
        else:
            assert g is not None and same_bits(g, w), field
    return got


def counting(fn, *args, **kw):
    """Call fn and return (result, {"fast": blocks, "slow": blocks}) for that call."""
    before = dict(block_counts)
    result = fn(*args, **kw)
    return result, {k: block_counts[k] - before.get(k, 0) for k in ("fast", "slow")}


# ------------------------------------------------------------------ portal-like files


def portal_lines(kind: str, n: int, seed: int = 0, *, digits: int | None = 2) -> list[str]:
    """Lines as the portal writes them: ``json.dumps`` of a dict per point."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0, 1000, (n, 3))
    if digits is not None:
        xyz = np.round(xyz, digits)
    rotations = random_rotations(rng, n)
    lines = []
    for i, (x, y, z) in enumerate(xyz.tolist()):
        row: dict = {"type": kind, "location": {"x": x, "y": y, "z": z}}
        if kind == "orientedPoint":
            row["xyz_rotation_matrix"] = rotations[i].tolist()
        if kind == "instancePoint":
            row["instance_id"] = int(rng.integers(0, 50))
        lines.append(json.dumps(row))
    return lines


def joined(lines: list[str], end: str = "\n") -> bytes:
    return (end.join(lines) + end).encode()


@pytest.mark.parametrize("kind", ["point", "orientedPoint", "instancePoint"])
def test_portal_output_takes_the_fast_path(kind: str) -> None:
    data = joined(portal_lines(kind, 3000, seed=1))
    got, counts = counting(check, data)
    assert counts["slow"] == 0 and counts["fast"] >= 1
    assert got.kind == kind and len(got) == 3000
    assert (got.rotations is not None) == (kind == "orientedPoint")
    assert (got.instance_ids is not None) == (kind == "instancePoint")
    # z, y, x order, rotations exactly as stored (x, y, z axis order)
    first = json.loads(data.split(b"\n")[0])
    assert got.zyx[0].tolist() == [first["location"][a] for a in "zyx"]
    if kind == "orientedPoint":
        assert got.rotations[0].tolist() == first["xyz_rotation_matrix"]


@pytest.mark.parametrize("kind", ["point", "orientedPoint", "instancePoint"])
def test_portal_output_in_many_small_blocks(kind: str) -> None:
    data = joined(portal_lines(kind, 400, seed=2, digits=None))  # full-precision locations too
    _, counts = counting(check, data, block_size=1000)
    assert counts["slow"] == 0 and counts["fast"] > 20


def test_demo_bucket_encoder_output() -> None:
    """The demo portal's own writer (what the loading tests read) takes the fast path."""
    from napari_cryoet_portal.demo.bucket import ndjson_points

    rng = np.random.default_rng(3)
    xyz = rng.uniform(0, 500, (500, 3))
    for data in (
        ndjson_points(xyz),
        ndjson_points(xyz, rotations=random_rotations(rng, 500)),
        ndjson_points(xyz, instance_ids=rng.integers(0, 9, 500).tolist()),
    ):
        _, counts = counting(check, data)
        assert counts == {"fast": 1, "slow": 0}


def test_read_ndjson_from_path_and_file_object(tmp_path) -> None:
    data = joined(portal_lines("orientedPoint", 50, seed=4))
    path = tmp_path / "points.ndjson"
    path.write_bytes(data)
    want = parse_ndjson(data)
    for got in (read_ndjson(path), read_ndjson(str(path)), read_ndjson(io.BytesIO(data))):
        assert same_bits(got.zyx, want.zyx) and same_bits(got.rotations, want.rotations)


# ------------------------------------------------------------------- number formats

# Tokens json.loads reads differently from a naive parse, or that a vectorised parser
# may get wrong: signs, zeros, exponents, many digits, halfway cases, limits.
TRICKY_NUMBERS = [
    "0", "-0", "0.0", "-0.0", "0e0", "-0e0", "-0.0e-5", "1", "-1", "7", "10", "100",
    "517.23", "-517.23", "1e3", "1E-7", "5e+2", "-5E+02", "1e05", "1.5E10", "123.456e-2",
    "0.1", "0.2", "0.30000000000000004", "0.1000000000000000055511151231257827",
    "6.123233995736766e-17", "-6.123233995736766e-17", "0.43032017399540934",
    "-0.3629677818413841", "0.00012345678901234567", "0.0012345678901234567",
    "0.000012345678901234567", "9007199254740992", "9007199254740993", "9007199254740995",
    "9.007199254740993e15", "900719925474099.3e1", "9007199254740993.0",
    "1.00000000000000011102230246251565404236316680908203125",
    "1.00000000000000011102230246251565404236316680908203126",
    "1.0000000000000001", "0.9999999999999999", "2.2250738585072014e-308",
    "2.2250738585072011e-308", "4.9406564584124654e-324", "5e-324", "2.4703282292062327e-324",
    "2.4703282292062328e-324", "1.7976931348623157e308", "1.7976931348623158e308",
    "1e308", "1e-308", "1e22", "1e23", "1e-22", "1e-23", "123456789012345678",
    "1234567890123456789", "12345678901234567890", "123456789012345678901234567890",
    "18446744073709551615", "18446744073709551616", "1234567.1234567", "12345678.5",
    "1e400", "-1e400", "1e-400", "8.98846567431158e307", "3.141592653589793238462643383279",
    "0.5", "2.5e-1", "25e-2", "0.000001", "1e-6", "999999999999999999999e-21",
]


def number_lines(numbers: list[str], kind: str = "orientedPoint") -> list[str]:
    """Lines of the portal's layout with these number tokens in every slot, cycling."""
    per_line = 12 if kind == "orientedPoint" else 3
    numbers = numbers + numbers[: -len(numbers) % per_line or len(numbers)]
    lines = []
    for i in range(0, len(numbers) - per_line + 1, per_line):
        n = numbers[i : i + per_line]
        loc = f'{{"type": "{kind}", "location": {{"x": {n[0]}, "y": {n[1]}, "z": {n[2]}}}'
        if kind == "orientedPoint":
            rows = ", ".join("[" + ", ".join(n[3 + 3 * r : 6 + 3 * r]) + "]" for r in range(3))
            lines.append(loc + f', "xyz_rotation_matrix": [{rows}]}}')
        else:
            lines.append(loc + "}")
    return lines


@pytest.mark.parametrize("rotate", range(12))
def test_tricky_numbers_in_every_slot(rotate: int) -> None:
    numbers = TRICKY_NUMBERS[rotate:] + TRICKY_NUMBERS[:rotate]
    data = joined(number_lines(numbers))
    _, counts = counting(check, data)
    assert counts == {"fast": 1, "slow": 0}  # odd number forms are parsed on the fast path too
    check(data, block_size=64)


def test_negative_zero_and_integer_zero() -> None:
    got = check(joined(number_lines(["-0.0", "-0", "0", "-0e0"], kind="point")[:1]))
    z, y, x = got.zyx[0]
    assert math.copysign(1, x) == -1 and math.copysign(1, y) == 1 and math.copysign(1, z) == 1


def test_nan_and_infinity_like_json() -> None:
    data = b'{"type": "point", "location": {"x": NaN, "y": Infinity, "z": -Infinity}}\n'
    data += b'{"type": "point", "location": {"x": 1, "y": 2, "z": 3}}\n'
    got = parse_ndjson(data)
    assert np.isnan(got.zyx[0, 2]) and got.zyx[0, 1] == math.inf and got.zyx[0, 0] == -math.inf
    assert got.zyx[1].tolist() == [3.0, 2.0, 1.0]
    # a NaN where the template has a number is still a number json accepts
    data = b'{"type": "point", "location": {"x": 1, "y": 2, "z": 3}}\n' * 3
    data += b'{"type": "point", "location": {"x": NaN, "y": 2, "z": 3}}\n'
    assert np.isnan(parse_ndjson(data).zyx[3, 2])


def random_token(rng: random.Random) -> str:
    """A JSON number in one of many spellings."""
    form = rng.randrange(10)
    if form == 0:  # shortest repr of a random double of any magnitude
        value = np.frombuffer(rng.getrandbits(64).to_bytes(8, "little"), np.float64)[0]
        return repr(float(value)) if math.isfinite(value) else "1e300"
    if form == 1:  # a rotation-matrix-like entry
        return repr(rng.uniform(-1, 1))
    if form == 2:  # a location-like value, rounded
        return repr(round(rng.uniform(-5000, 5000), rng.randrange(0, 6)))
    if form == 3:  # %g / %e with random precision
        value = rng.uniform(-1, 1) * 10 ** rng.randrange(-30, 30)
        return f"{value:.{rng.randrange(1, 25)}{rng.choice('geE')}}"
    if form == 4:  # a random digit string with a random point, up to 25 digits
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 26)))
        digits = digits.lstrip("0") or "0"
        if len(digits) > 1 and rng.random() < 0.7:
            cut = rng.randrange(1, len(digits))
            digits = digits[:cut] + "." + digits[cut:]
        return rng.choice(["", "-"]) + digits
    if form == 5:  # 0.000…digits
        return f"{rng.choice(['', '-'])}0.{'0' * rng.randrange(0, 6)}{rng.randrange(1, 10**17)}"
    if form == 6:  # integers, some huge
        return str(rng.randrange(-(10 ** rng.randrange(1, 30)), 10 ** rng.randrange(1, 30)))
    if form == 7:  # mantissa with exponent, all spellings
        mant = f"{rng.randrange(1, 10**rng.randrange(1, 20))}"
        if rng.random() < 0.5 and len(mant) > 1:
            mant = mant[0] + "." + mant[1:]
        exp = f"{rng.choice('eE')}{rng.choice(['', '+', '-'])}{rng.randrange(0, 330):0{rng.randrange(1, 4)}d}"
        return rng.choice(["", "-"]) + mant + exp
    if form == 8:  # halfway-ish: the midpoint of two doubles, rounded to 17-19 digits
        x = rng.uniform(0.5, 1000)
        mid = (x + math.nextafter(x, math.inf)) / 2
        return f"{mid:.{rng.randrange(16, 20)}g}"
    return rng.choice(TRICKY_NUMBERS)


def test_random_numbers_match_json_loads() -> None:
    rng = random.Random(20240611)
    numbers = [random_token(rng) for _ in range(12000)]
    data = joined(number_lines(numbers))
    _, counts = counting(check, data)
    assert counts == {"fast": 1, "slow": 0}
    _, counts = counting(check, data, block_size=3000)
    assert counts["slow"] == 0
    check(joined(number_lines(numbers[:3000], kind="point")), block_size=500)


def test_without_numpy_bitwise_count(monkeypatch) -> None:
    """numpy < 2 (which pyproject allows) has no bitwise_count: the fallback gives the same."""
    rng = np.random.default_rng(15)
    words = rng.integers(0, 2**64, 1000, dtype=np.uint64, endpoint=False)
    words[:10] = [0, 1, 2**63, 2**64 - 1, 0xFF, 0xFF00, 3, 2**32, 2**32 - 1, 12345]
    assert np.array_equal(ndjson._popcount_swar(words), [bin(int(w)).count("1") for w in words])
    monkeypatch.setattr(ndjson, "_popcount", ndjson._popcount_swar)
    _, counts = counting(check, joined(number_lines(TRICKY_NUMBERS * 2) + portal_lines("orientedPoint", 200, seed=16)),
                         block_size=5000)
    assert counts["slow"] == 0


def test_without_long_double(monkeypatch) -> None:
    """Where long double is float64 (Windows, macOS on arm64) the exact conversion works in
    float64 alone and more numbers take the scalar route: same results."""
    monkeypatch.setattr(ndjson, "_WIDE", np.float64)
    monkeypatch.setattr(ndjson, "_WIDE_BITS", 53)
    monkeypatch.setattr(ndjson, "_QMAX", 22)
    monkeypatch.setattr(ndjson, "_POW10_WIDE", np.array([10.0**q for q in range(23)]))
    monkeypatch.setattr(ndjson, "_EXTRA_BITS", 0)
    rng = random.Random(17)
    data = joined(number_lines(TRICKY_NUMBERS + [random_token(rng) for _ in range(3000)])
                  + portal_lines("orientedPoint", 100, seed=18))
    _, counts = counting(check, data)
    assert counts == {"fast": 1, "slow": 0}


# ----------------------------------------------------------------- layout variations


def test_key_order_extra_keys_and_spacing() -> None:
    variants = [
        '{"location": {"z": 3.5, "x": 1.25, "y": -2}, "type": "point"}',
        '{"type":"point","location":{"x":1.25,"y":-2,"z":3.5}}',
        '{ "type" : "point" , "location" : { "x" : 1.25 , "y" : -2 , "z" : 3.5 } }',
        '\t{"type": "point",\t"location": {"x": 1.25, "y": -2, "z": 3.5}}   ',
        '{"type": "point", "score": 0.97, "location": {"x": 1.25, "y": -2, "z": 3.5, "w": 8}, "extra": [1, 2e5, {"a": -3}]}',
        '{"type": "point", "location": {"x": 9, "y": 9, "z": 9}, "location": {"x": 1.25, "y": -2, "z": 3.5}}',
        '{"type": "point", "location": {"x": 7, "x": 1.25, "y": -2, "z": 3.5}}',
        '{"type": "point", "location": {"x": 1.25, "y": -2, "z": 3.5}, "note": "ribosome α – ✓ 😀"}',
        '{"type": "point", "location": {"x": 1.25, "y": -2, "z": 3.5}, "note": "esc\\u00e9\\"q\\" \\\\"}',
        '{"type": "point", "location": {"x": 1.25, "y": -2, "z": 3.5}, "pdb": "4V9D", "rev": "1.0"}',
    ]
    for line in variants:
        for block_size in (ndjson.DEFAULT_BLOCK_SIZE, 10):
            got = check(joined([line] * 5), block_size=block_size)
            assert got.zyx.tolist() == [[3.5, -2.0, 1.25]] * 5, line
        # each layout as the template of a block whose other lines vary the numbers
        lines = [line] + [line.replace("1.25", str(i * 0.1)).replace("3.5", f"{i}e-3") for i in range(30)]
        check(joined(lines))
    # and all layouts mixed in one block
    check(joined(variants * 3))
    check(joined(variants * 3), block_size=100)


def test_unicode_in_other_fields_keeps_the_fast_path() -> None:
    lines = [
        json.dumps({"type": "point", "location": {"x": i + 0.5, "y": 2.0, "z": 3.0}, "who": "Åsa Øberg 日本"},
                   ensure_ascii=False)
        for i in range(100)
    ]
    _, counts = counting(check, joined(lines))
    assert counts == {"fast": 1, "slow": 0}
    check(joined([json.dumps(json.loads(x)) for x in lines]))  # \\u escapes: slow path, same result


@pytest.mark.parametrize("end", ["\n", "\r\n"])
@pytest.mark.parametrize("final", [True, False])
def test_line_ends_and_missing_final_newline(end: str, final: bool) -> None:
    data = joined(portal_lines("orientedPoint", 200, seed=5), end)
    if not final:
        data = data[: -len(end)]
    _, counts = counting(check, data)
    assert counts == {"fast": 1, "slow": 0}
    _, counts = counting(check, data, block_size=2000)
    assert counts["slow"] == 0
    one = data.split(end.encode())[0]
    check(one)  # a single line without a line end


def test_blank_lines_and_surrounding_whitespace() -> None:
    lines = portal_lines("point", 50, seed=6)
    data = ("\n\n  \n" + "\n".join(lines[:20]) + "\n\n\t\n" + "\n".join(lines[20:]) + "\n \n\n").encode()
    got = check(data)
    assert len(got) == 50
    check(data, block_size=300)
    check(data.replace(b"\n", b"\r\n"))


def test_empty_input() -> None:
    for data in (b"", b"\n", b"\n\n  \r\n\t", bytearray()):
        got = parse_ndjson(data)
        assert len(got) == 0 and got.kind == "" and got.zyx.shape == (0, 3)


def test_bytearray_input() -> None:
    data = joined(portal_lines("orientedPoint", 20, seed=7))
    want = parse_ndjson(data)
    got = parse_ndjson(bytearray(data))
    assert same_bits(got.zyx, want.zyx) and same_bits(got.rotations, want.rotations)


def test_lines_leaving_the_template_mid_block_and_across_blocks() -> None:
    point = portal_lines("point", 300, seed=8)
    compact = [json.dumps(json.loads(x), separators=(",", ":")) for x in portal_lines("point", 300, seed=9)]
    reordered = [json.dumps({"location": json.loads(x)["location"], "type": "point"}) for x in point]
    # switches mid-block, every few lines, and at arbitrary places across block boundaries
    mixed = point[:100] + compact[:7] + point[100:150] + reordered[:50] + compact[7:8] + point[150:]
    for block_size in (ndjson.DEFAULT_BLOCK_SIZE, 997, 200, 1):
        got, counts = counting(check, joined(mixed), block_size=block_size)
        assert len(got) == len(mixed)
    # with small blocks, the blocks of one layout still take the fast path
    _, counts = counting(check, joined(point[:100] + compact[:100] + reordered[:100]), block_size=1000)
    assert counts["fast"] >= 10


def test_lines_differing_from_the_template_only_in_glue() -> None:
    """Same length, same numbers' positions, other keys or type: must not be read as the template."""
    template = '{"type": "point", "location": {"x": 1.5, "y": 2.5, "z": 3.5}}'
    swapped = '{"type": "point", "location": {"z": 1.5, "y": 2.5, "x": 3.5}}'
    swapped_yz = '{"type": "point", "location": {"x": 1.5, "z": 2.5, "y": 3.5}}'
    other = '{"type": "other", "location": {"x": 1.5, "y": 2.5, "z": 3.5}}'
    spaced = '{"type": "point", "location": {"x": 1.5, "y":\t2.5, "z": 3.5}}'
    oriented = portal_lines("orientedPoint", 20, seed=14)
    renamed = oriented[5].replace('"xyz_rotation_matrix"', '"zyx_rotation_matrix"')
    for variant, zyx in ((swapped, [1.5, 2.5, 3.5]), (swapped_yz, [2.5, 3.5, 1.5]), (other, [3.5, 2.5, 1.5]),
                         (spaced, [3.5, 2.5, 1.5])):
        got = check(joined([template] * 5 + [variant] + [template] * 3))
        assert got.zyx[5].tolist() == zyx and got.zyx[0].tolist() == [3.5, 2.5, 1.5]
        assert got.kind == ("mixed" if variant == other else "point")
    # a matrix under another name is not a rotation
    with pytest.raises(AnnotationFormatError) as info:
        parse_ndjson(joined(oriented[:5] + [renamed] + oriented[6:]))
    assert info.value.line_no == 6
    got = check(joined(oriented[:5] + [renamed.replace("orientedPoint", "point        ")] + oriented[6:]))
    assert got.kind == "mixed" and got.rotations is None


def test_mixed_kinds_keep_every_location() -> None:
    points = portal_lines("point", 30, seed=10)
    oriented = portal_lines("orientedPoint", 30, seed=11)
    instances = portal_lines("instancePoint", 30, seed=12)
    for lines in (points[:10] + oriented[:10] + points[10:], oriented + instances, instances[:5] + points):
        for block_size in (ndjson.DEFAULT_BLOCK_SIZE, 400):
            got = check(joined(lines), block_size=block_size)
            assert got.kind == "mixed" and len(got) == len(lines)
    # kinds in separate blocks: one fast block each, still mixed, rotations dropped
    data = joined(points + oriented)
    got, counts = counting(check, data, block_size=len(joined(points)) - 1)
    assert counts["slow"] == 0 and got.kind == "mixed" and got.rotations is None
    # a file of orientedPoint lines, one of which also has an instance id: rotations kept
    extra = json.loads(oriented[3])
    extra["instance_id"] = 5
    got = check(joined(oriented[:3] + [json.dumps(extra)] + oriented[4:]))
    assert got.kind == "orientedPoint" and got.rotations is not None and got.instance_ids is None


def test_instance_ids_exact_and_large() -> None:
    lines = [json.dumps({"type": "instancePoint", "location": {"x": 1, "y": 2, "z": 3}, "instance_id": v})
             for v in (0, -0, 1, -1, 2**53 - 1, 2**53, 2**53 + 1, 2**62 + 7, 2**63 - 1, -(2**63), 42)]
    got = check(joined(lines))
    assert got.instance_ids.tolist() == [0, 0, 1, -1, 2**53 - 1, 2**53, 2**53 + 1, 2**62 + 7, 2**63 - 1, -(2**63), 42]
    got = check(joined(lines[:2] * 20))
    assert got.instance_ids.dtype == np.int64


# ----------------------------------------------------------------------- bad files

GOOD = '{"type": "orientedPoint", "location": {"x": 1.5, "y": 2, "z": 3}, "xyz_rotation_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}'
BAD_LINES = {
    "truncated": GOOD[:50],
    "bad JSON": GOOD.replace('"location"', "location"),
    "trailing comma": GOOD[:-1] + ",}",
    "wrong closing bracket": GOOD[:-1] + "]",
    "double comma": GOOD.replace("[1, 0, 0]", "[1,,0, 0]"),
    "colon for comma": GOOD.replace("[0, 1, 0]", "[0: 1, 0]"),
    "two objects": GOOD + " " + GOOD,
    "not an object": "[1, 2, 3]",
    "missing location": '{"type": "point", "where": {"x": 1, "y": 2, "z": 3}}',
    "location not an object": '{"type": "point", "location": [1, 2, 3]}',
    "missing axis": '{"type": "point", "location": {"x": 1, "y": 2}}',
    "string coordinate": GOOD.replace('"x": 1.5', '"x": "1.5"'),
    "null coordinate": GOOD.replace('"y": 2', '"y": null'),
    "boolean coordinate": GOOD.replace('"z": 3', '"z": true'),
    "leading zero": GOOD.replace('"y": 2', '"y": 02'),
    "bare point": GOOD.replace('"x": 1.5', '"x": 1.'),
    "plus sign": GOOD.replace('"x": 1.5', '"x": +1.5'),
    "hex": GOOD.replace('"y": 2', '"y": 0x2'),
    "number too large for a float": GOOD.replace('"y": 2', '"y": ' + "9" * 400),
    "matrix 2x3": GOOD.replace(", [0, 0, 1]]", "]"),
    "matrix 3x2": GOOD.replace("[1, 0, 0]", "[1, 0]"),
    "matrix flat": GOOD.replace("[[1, 0, 0], [0, 1, 0], [0, 0, 1]]", "[1, 0, 0, 0, 1, 0, 0, 0, 1]"),
    "matrix string entry": GOOD.replace("[0, 1, 0]", '[0, "1", 0]'),
    "oriented without matrix": '{"type": "orientedPoint", "location": {"x": 1, "y": 2, "z": 3}}',
    "instance without id": '{"type": "instancePoint", "location": {"x": 1, "y": 2, "z": 3}}',
    "float instance id": '{"type": "instancePoint", "location": {"x": 1, "y": 2, "z": 3}, "instance_id": 7.5}',
    "exponent instance id": '{"type": "instancePoint", "location": {"x": 1, "y": 2, "z": 3}, "instance_id": 1e3}',
    "boolean instance id": '{"type": "instancePoint", "location": {"x": 1, "y": 2, "z": 3}, "instance_id": true}',
    "instance id beyond int64": '{"type": "instancePoint", "location": {"x": 1, "y": 2, "z": 3}, "instance_id": 9223372036854775808}',
    "type not a string": '{"type": 3, "location": {"x": 1, "y": 2, "z": 3}}',
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
@pytest.mark.parametrize("where", ["first", "middle", "last", "late block"])
def test_bad_line_raises_with_its_line_number(name: str, where: str) -> None:
    bad = BAD_LINES[name]
    lines = [GOOD.replace("1.5", str(i + 0.5)) for i in range(60)]
    at = {"first": 0, "middle": 31, "last": 60, "late block": 57}[where]
    lines.insert(at, bad)
    # blank lines count too (leading ones, so that the bad line's block is otherwise fast)
    data = ("\n \n" + "\n".join(lines) + "\n").encode()
    line_no = at + 3
    assert data.split(b"\n")[line_no - 1] == bad.encode()
    for block_size in (ndjson.DEFAULT_BLOCK_SIZE, 700):
        with pytest.raises(AnnotationFormatError) as info:
            parse_ndjson(data, block_size=block_size)
        assert info.value.line_no == line_no, (name, where, block_size, str(info.value))
        assert f"line {line_no}:" in str(info.value)


def test_bad_line_in_a_crlf_portal_file() -> None:
    lines = portal_lines("orientedPoint", 500, seed=13)
    lines[321] = lines[321][:-40]  # truncated, as by an interrupted download
    data = joined(lines, "\r\n")
    for block_size in (ndjson.DEFAULT_BLOCK_SIZE, 5000):
        with pytest.raises(AnnotationFormatError) as info:
            parse_ndjson(data, block_size=block_size)
        assert info.value.line_no == 322
    data = joined(portal_lines("orientedPoint", 500, seed=13), "\r\n")
    with pytest.raises(AnnotationFormatError) as info:
        parse_ndjson(data[: data.rfind(b"[")])  # the file's last line cut short
    assert info.value.line_no == 500


def test_error_is_a_value_error_with_a_snippet() -> None:
    with pytest.raises(ValueError, match=r"line 1: .*location"):
        parse_ndjson(b'{"type": "point", "where": {}}\n')
