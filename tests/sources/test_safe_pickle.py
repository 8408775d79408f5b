"""The restricted unpickler: plain data comes back equal, hostile pickles run nothing.

Every hostile payload here is built so that plain ``pickle.loads`` would
create a marker file (the "live" controls prove it, in a child process); the
restricted loader must refuse it with :class:`UnsafePickleError` and the marker
must not exist afterwards.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import copyreg
import functools
import io
import os
import pickle
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.testing._private.utils as np_testing_utils
import pytest
from fuzzing import INNER_FUZZ, mutations
from hypothesis import given, seed, settings

from datadrive.errors import CorruptFileError, InputError, UnsafePickleError
from datadrive.sources.safe_pickle import ALLOWED_GLOBALS, safe_load, safe_loads

SAMPLE_PICKLES = [
    "scenarionet_nuscenes/sd_nuscenes_v1.0-mini_scene-0061.pkl",
    "scenarionet_nuscenes/sd_nuscenes_v1.0-mini_scene-0757.pkl",
    "scenarionet_waymo/sd_waymo_v1.2_eb4b91b10ca94ff2.pkl",
    "av2_scenario_mining/refav_gt_3bffdcff-c3a7-38b6-a0f2-64196d130958.pkl",
    "av2_scenario_mining/refav_predictions_3bffdcff-c3a7-38b6-a0f2-64196d130958.pkl",
]


def deep_equal(a: Any, b: Any) -> bool:
    """Equality of nested plain data, arrays by dtype, shape and value."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        )
    if isinstance(a, dict):
        same_factory = getattr(a, "default_factory", None) is getattr(b, "default_factory", None)
        return same_factory and list(a) == list(b) and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | np.floating) and np.isnan(a):
        return bool(np.isnan(b))
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and bool(a == b)
    return bool(a == b)


# --------------------------------------------------------------------------- plain data round trips


@pytest.mark.parametrize("name", SAMPLE_PICKLES, ids=lambda n: n.split("/")[-1])
def test_samples_load_equal_to_plain_pickle(samples: Path, name: str) -> None:
    path = samples / name
    with path.open("rb") as fh:
        trusted = pickle.load(fh)  # the samples are trusted; this is the reference
    assert deep_equal(safe_load(path), trusted)


def test_sample_uses_numpy_1_spellings(samples: Path) -> None:
    """The nuScenes samples were written by numpy 1.x: numpy.core.multiarray._reconstruct."""
    data = (samples / "scenarionet_nuscenes" / "sd_nuscenes_v1.0-mini_scene-0757.pkl").read_bytes()
    assert b"numpy.core.multiarray" in data
    assert isinstance(safe_loads(data)["tracks"]["ego"]["state"]["position"], np.ndarray)


def plain_objects() -> list[Any]:
    rng = np.random.default_rng(0)
    return [
        {"a": 1, "b": [1.5, None, True, "x", b"y"], (1, 2): frozenset({3}), "s": {1, 2}},
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.asfortranarray(rng.normal(size=(3, 5)).astype(np.float32)),
        np.arange(6, dtype=">i4"),
        np.array(["ab", "c"]),
        np.array([b"ab", b"c"]),
        np.array([True, False]),
        np.array([1 + 2j], dtype=np.complex64),
        np.array(["2020-01-01T00:00:00.000000001"], dtype="M8[ns]"),
        np.array([5], dtype="m8[ms]"),
        np.zeros((0, 3)),
        np.array(3.5),
        np.float32(1.25),
        np.int64(-7),
        np.datetime64("2021-09-16", "D"),
        collections.OrderedDict(b=1, a=2),
        collections.defaultdict(int, {"x": 3}),
        collections.defaultdict(list),
        bytearray(b"\x00\x01"),
        1 + 2j,
        [np.ones(3), np.ones(3)],
    ]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5], ids=lambda p: f"protocol{p}")
@pytest.mark.parametrize("index", range(len(plain_objects())), ids=lambda i: f"obj{i}")
def test_plain_data_round_trips(protocol: int, index: int) -> None:
    payload = pickle.dumps(plain_objects()[index], protocol=protocol)
    # The reference is what plain pickle makes of our own (trusted) bytes: numpy
    # itself returns a big-endian array as a native one, for instance.
    assert deep_equal(safe_loads(payload), pickle.loads(payload))


def test_shared_array_stays_shared() -> None:
    a = np.ones(3)
    out = safe_loads(pickle.dumps([a, a], protocol=4))
    assert out[0] is out[1]


def test_numpy_1_spelling_in_protocol_2() -> None:
    data = pickle.dumps(np.arange(3.0), protocol=2).replace(
        b"numpy._core.multiarray", b"numpy.core.multiarray"
    )
    assert deep_equal(safe_loads(data), np.arange(3.0))


def test_allow_list_is_exactly_the_documented_one() -> None:
    builtin_names = {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray"}
    builtin_names |= {"int", "float", "bool", "complex"}
    expected = {("builtins", n) for n in builtin_names}
    expected |= {("collections", "OrderedDict"), ("collections", "defaultdict"), ("_codecs", "encode")}
    expected |= {("numpy", "ndarray"), ("numpy", "dtype")}
    for prefix in ("numpy._core", "numpy.core"):
        expected |= {(f"{prefix}.multiarray", "_reconstruct"), (f"{prefix}.multiarray", "scalar")}
        expected |= {(f"{prefix}.numeric", "_frombuffer")}
    assert expected == ALLOWED_GLOBALS


def test_builtin_float64_descriptor_is_never_modified() -> None:
    """numpy.dtype is always called with copy=True, so BUILD never touches numpy's shared descriptor."""
    payload = dumps(Call(np.dtype, ("f8", False, False), (3, ">", None, None, None, -1, -1, 0)))
    out = safe_loads(payload)
    assert out == np.dtype(">f8")
    assert np.dtype("f8").isnative
    assert np.zeros(1).dtype.isnative


# --------------------------------------------------------------------------- hostile pickles


class Call:
    """Pickles as ``func(*args)`` (REDUCE), then ``BUILD state`` when a state is given."""

    def __init__(self, func: Any, args: tuple[Any, ...], state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __call__(self, *args: Any) -> Any:  # the pickler insists that a reduce function is callable
        raise NotImplementedError


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Call):
            return (obj.func, obj.args) if obj.state is None else (obj.func, obj.args, obj.state)
        return NotImplemented


def dumps(obj: Any, protocol: int = 4) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _os_system(m: Path) -> bytes:
    return dumps(Call(os.system, (f"touch '{m}'",)))


def _protocol0_posix_system(m: Path) -> bytes:
    return b"cposix\nsystem\n(S'touch " + str(m).encode() + b"'\ntR."


def _eval(m: Path) -> bytes:
    return dumps(Call(builtins.eval, (touch_code(m),)))


def _exec(m: Path) -> bytes:
    return dumps(Call(builtins.exec, (touch_code(m),)))


def _getattr_import(m: Path) -> bytes:
    # getattr(__import__('os'), 'system')('touch m'), in protocol 0 text with Python 2 names
    return (
        b"c__builtin__\ngetattr\n(c__builtin__\n__import__\n(S'os'\ntRS'system'\ntR(S'touch "
        + str(m).encode()
        + b"'\ntR."
    )


def _import_only(m: Path) -> bytes:
    return dumps(Call(builtins.__import__, ("os",)))


def _subprocess(m: Path) -> bytes:
    return dumps(Call(subprocess.check_call, (["touch", str(m)],)))


def _functools_partial(m: Path) -> bytes:
    return dumps(Call(Call(functools.partial, (builtins.exec, touch_code(m))), ()))


def _numpy_runstring(m: Path) -> bytes:
    # numpy itself holds a function that runs source code: a module prefix proves nothing.
    return dumps(Call(np_testing_utils.runstring, (touch_code(m), {})))


def _numpy_dotted_attribute(m: Path) -> bytes:
    # protocol 4 resolves dotted names: numpy + "testing._private.utils.runstring"
    call = pickle.SHORT_BINUNICODE + bytes([5]) + b"numpy"
    name = b"testing._private.utils.runstring"
    call += pickle.SHORT_BINUNICODE + bytes([len(name)]) + name + pickle.STACK_GLOBAL
    code = touch_code(m).encode()
    args = pickle.BINUNICODE + struct.pack("<I", len(code)) + code + pickle.EMPTY_DICT + pickle.TUPLE2
    return pickle.PROTO + bytes([4]) + call + args + pickle.REDUCE + pickle.STOP


def _defaultdict_unsafe_factory(m: Path) -> bytes:
    return dumps(collections.defaultdict(os.system))  # type: ignore[arg-type]


def _copyreg_reconstructor(m: Path) -> bytes:
    return dumps(Call(copyreg._reconstructor, (object, object, None)))  # type: ignore[attr-defined]


HOSTILE: dict[str, tuple[Callable[[Path], bytes], bool]] = {
    # name: (payload builder, whether plain pickle.loads creates the marker)
    "os.system": (_os_system, True),
    "posix.system protocol 0": (_protocol0_posix_system, True),
    "builtins.eval": (_eval, True),
    "builtins.exec": (_exec, True),
    "getattr(__import__)": (_getattr_import, True),
    "builtins.__import__": (_import_only, False),
    "subprocess.check_call": (_subprocess, True),
    "functools.partial": (_functools_partial, True),
    "numpy runstring": (_numpy_runstring, True),
    "numpy dotted name": (_numpy_dotted_attribute, True),
    "defaultdict(os.system)": (_defaultdict_unsafe_factory, False),
    "copyreg._reconstructor": (_copyreg_reconstructor, False),
}


@pytest.mark.parametrize("name", [n for n, (_, live) in HOSTILE.items() if live], ids=str)
def test_live_control_plain_pickle_runs_the_payload(tmp_path: Path, name: str) -> None:
    """Proves the payloads are real: plain pickle.loads, in a child process, creates the marker."""
    marker = tmp_path / "marker"
    payload = HOSTILE[name][0](marker)
    code = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
    subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, timeout=60)
    assert marker.exists()


@pytest.mark.parametrize("name", list(HOSTILE), ids=str)
def test_hostile_global_is_refused_and_nothing_runs(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "hostile.pkl"
    path.write_bytes(HOSTILE[name][0](marker))
    with pytest.raises(UnsafePickleError, match="refused global") as info:
        safe_load(path)
    assert info.value.path == str(path)
    assert not marker.exists()


def test_refusal_names_the_global(tmp_path: Path) -> None:
    with pytest.raises(UnsafePickleError, match=r"posix\.system"):
        safe_loads(_os_system(tmp_path / "m"), path="x.pkl")


def _reconstruct() -> Any:
    return np.arange(1).__reduce__()[0]


HOSTILE_USE_OF_ALLOWED: dict[str, Callable[[], bytes]] = {
    "object dtype": lambda: dumps(Call(np.dtype, ("O8", False, True))),
    "structured dtype spec": lambda: dumps(Call(np.dtype, ([("a", "f8")],))),
    "dtype with forged flags": lambda: dumps(
        Call(np.dtype, ("V8", False, True), (3, "|", None, None, None, 8, 1, 0x3F))
    ),
    "dtype state with fields": lambda: dumps(
        Call(np.dtype, ("V16", False, True), (3, "|", None, ("a",), {"a": (np.dtype("f8"), 0)}, 16, 1, 16))
    ),
    "dtype of non-str spec": lambda: dumps(Call(np.dtype, (int,))),
    "_reconstruct of dict": lambda: dumps(Call(_reconstruct(), (dict, (0,), b"b"))),
    "_reconstruct with a shape": lambda: dumps(Call(_reconstruct(), (np.ndarray, (10**9,), b"b"))),
    "object array payload": lambda: dumps(
        Call(_reconstruct(), (np.ndarray, (0,), b"b"), (1, (2,), np.dtype("f8"), False, [1, 2]))
    ),
    "zero-size dtype, huge shape": lambda: dumps(
        Call(_reconstruct(), (np.ndarray, (0,), b"b"), (1, (10**12,), np.dtype("V0"), False, b""))
    ),
    "array of a dtype not made here": lambda: dumps(
        Call(_reconstruct(), (np.ndarray, (0,), b"b"), (1, (1,), Call(dict, ()), False, b"\0" * 8))
    ),
    "numpy.ndarray called directly": lambda: dumps(Call(np.ndarray, ((2,), "f8", b"\0" * 16))),
    "BUILD on a dict": lambda: dumps(Call(dict, (), {"__class__": 1})),
    "BUILD twice on an array": lambda: _build_twice(),
    "bytes size bomb": lambda: dumps(Call(bytes, (10**12,))),
    "bytearray size bomb": lambda: dumps(Call(bytearray, (10**12,))),
    "defaultdict factory is a numpy reconstructor": lambda: dumps(
        Call(collections.defaultdict, (_reconstruct(),))
    ),
    "defaultdict factory is numpy.dtype": lambda: dumps(Call(collections.defaultdict, (np.dtype,))),
    "str with an arbitrary codec": lambda: dumps(Call(str, (b"x", "rot13"))),
    "_codecs.encode with another codec": lambda: dumps(Call(__import__("codecs").encode, ("x", "rot13"))),
    "call of a non-callable": lambda: dumps(Call(Call(dict, ()), ())),
    "NEWOBJ": lambda: b"\x80\x02cbuiltins\ndict\n)\x81.",
    "persistent id (BINPERSID)": lambda: b"\x80\x04K\x01Q.",
    "persistent id (PERSID)": lambda: b"P1\n.",
    "INST": lambda: b"(ibuiltins\ndict\n.",
    "BUILD setattr on a type": lambda: b"cbuiltins\nint\n(N}S'real'\nI1\nstb.",
}


def _build_twice() -> bytes:
    # A second BUILD on the same (memoised) array would re-set its data unchecked.
    first = pickle.dumps(np.arange(2.0), protocol=2)
    body = first[:-1]  # drop STOP: the array is on the stack
    state = pickle.dumps((1, (1,), np.dtype("f8"), False, b"\0" * 8), protocol=2)[2:-1]
    return body + state + pickle.BUILD + pickle.STOP


@pytest.mark.parametrize("name", list(HOSTILE_USE_OF_ALLOWED), ids=str)
def test_hostile_use_of_allowed_globals_is_refused(name: str) -> None:
    with pytest.raises(UnsafePickleError):
        safe_loads(HOSTILE_USE_OF_ALLOWED[name]())


def test_ext_opcode_goes_nowhere(tmp_path: Path) -> None:
    """An EXT code registered for os.system is refused even when copyreg knows it."""
    marker = tmp_path / "marker"
    copyreg.add_extension("posix", "system", 0xF1)
    try:
        payload = dumps(Call(os.system, (f"touch '{marker}'",)), protocol=2)
        assert pickle.EXT1 in payload
        with pytest.raises(UnsafePickleError, match="EXT"):
            safe_loads(payload)
    finally:
        copyreg.remove_extension("posix", "system", 0xF1)
    assert not marker.exists()


def test_copy_bomb_is_refused_quickly() -> None:
    """10,000 copies of a 100,000-element list through the memo: 10^9 copies from 0.5 MB."""
    big = list(range(100_000))
    payload = dumps([Call(tuple, (big,)) for _ in range(10_000)])
    assert len(payload) < 1_000_000
    start = time.perf_counter()
    with pytest.raises(UnsafePickleError, match="copy bomb"):
        safe_loads(payload)
    assert time.perf_counter() - start < 10


def test_huge_memo_index_costs_nothing() -> None:
    """LONG_BINPUT 0xFFFFFFF0: the C unpickler would size its memo to that index."""
    payload = b"\x80\x04N" + pickle.LONG_BINPUT + struct.pack("<I", 0xFFFFFFF0) + pickle.STOP
    assert safe_loads(payload) is None


# --------------------------------------------------------------------------- corrupt input


def test_truncated_sample_is_corrupt(samples: Path) -> None:
    data = (samples / "scenarionet_waymo" / "sd_waymo_v1.2_eb4b91b10ca94ff2.pkl").read_bytes()
    with pytest.raises(CorruptFileError, match=r"truncated|not a valid pickle"):
        safe_loads(data[: len(data) // 2], path="half.pkl")


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world\n", b"\x80\x04", b"\x80\x09N.", b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7fN"],
    ids=["empty", "text", "proto-only", "future-protocol", "huge-frame"],
)
def test_not_a_pickle_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptFileError):
        safe_loads(data, path="bad.pkl")


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        safe_load(tmp_path)  # a folder


FUZZ = settings(INNER_FUZZ, max_examples=60, deadline=5000)


def test_fuzz_small_pickles_raise_only_input_errors() -> None:
    payload = pickle.dumps(plain_objects(), protocol=4)

    @seed(20261124)
    @FUZZ
    @given(data=mutations(payload))
    def check(data: bytes) -> None:
        with contextlib.suppress(InputError):
            safe_loads(data)

    check()


def test_fuzz_sample_pickle_raises_only_input_errors(samples: Path) -> None:
    data = (samples / "scenarionet_nuscenes" / "sd_nuscenes_v1.0-mini_scene-0757.pkl").read_bytes()

    @seed(20261126)
    @settings(FUZZ, max_examples=25)
    @given(mutated=mutations(data))
    def check(mutated: bytes) -> None:
        with contextlib.suppress(InputError):
            safe_loads(mutated)

    check()


# --------------------------------------------------------------------------- the point fast path and frames


def test_every_sample_pickle_loads_equal_to_plain_pickle(samples: Path) -> None:
    """Every pickle under the samples (the points' fast path on real files), not only the listed ones."""
    paths = sorted(samples.rglob("*.pkl"))
    assert len(paths) >= len(SAMPLE_PICKLES)
    for path in paths:
        with path.open("rb") as fh:
            trusted = pickle.load(fh)
        assert deep_equal(safe_load(path), trusted), path


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_points_equal_plain_pickle_at_every_protocol(protocol: int) -> None:
    """Float triples (taken in one step), near misses beside them, a point shared through the memo."""
    shared = (1.5, -2.25, float("inf"))
    obj: dict[str, Any] = {
        "polyline": [(float(i), -float(i) / 3, 1e300 * i) for i in range(50)],
        "shared": [shared, shared],
        "near": [(1.0, 2.0, 3), (1.0, 2.0), (1.0, 2.0, 3.0, 4.0), (1.0, "x", 3.0), [1.0, 2.0, 3.0]],
        "nan": (float("nan"), 0.0, -0.0),
        "last": (7.0, 8.0, 9.0),
    }
    obj["again"] = [obj["polyline"][10], obj["polyline"][49]]  # fetched from the memo after their run
    data = pickle.dumps(obj, protocol=protocol)
    out = safe_loads(data)
    assert deep_equal(out, pickle.loads(data))
    assert out["shared"][0] is out["shared"][1]  # memoised once, fetched again: one object as in pickle
    assert out["again"][0] is out["polyline"][10]
    assert out["again"][1] is out["polyline"][49]
    assert struct.pack(">d", out["nan"][2]) == struct.pack(">d", -0.0)  # the sign of zero survives
    tail = pickle.dumps((1.0, 2.0, 3.0), protocol=protocol)  # a point at the very end of the bytes
    assert safe_loads(tail) == (1.0, 2.0, 3.0)


def test_truncated_point_is_a_corrupt_file() -> None:
    data = pickle.dumps([(1.0, 2.0, 3.0)] * 3, protocol=4)
    cut = data.index(b"G", data.index(b"G") + 1) + 4  # inside the second float of the first point
    with pytest.raises(CorruptFileError):
        safe_loads(data[:cut])


def test_frame_past_the_end_is_a_corrupt_file() -> None:
    data = bytearray(pickle.dumps({"a": list(range(100))}, protocol=4))
    assert data[2] == pickle.FRAME[0]
    data[3:11] = struct.pack("<Q", len(data) * 2)
    with pytest.raises(CorruptFileError, match="frame"):
        safe_loads(bytes(data))


def test_unpickler_reads_a_stream_that_cannot_seek() -> None:
    """Without the bytes in memory, points and frames go the stdlib's way; the result is the same."""
    from datadrive.sources.safe_pickle import RestrictedUnpickler

    class Stream(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buf: Any) -> int:
            return self._inner.readinto(buf)

    obj = {"points": [(float(i), 1.0, -2.5) for i in range(20)], "ints": list(range(300))}
    data = pickle.dumps(obj, protocol=5)
    unpickler = RestrictedUnpickler(io.BufferedReader(Stream(data)), path="stream", work_budget=1 << 22)
    assert unpickler.load() == obj
