"""A restricted unpickler: numpy arrays and plain containers, nothing that runs code.

Some datasets ship as pickles (ScenarioNet ``ScenarioDescription`` files,
RefAV predictions). ``pickle.load`` of such a file runs whatever callable the
file names, so datadrive never calls it on input: :func:`safe_load` admits
exactly the globals that pickles of plain data need and refuses everything
else **before anything runs**, with an :class:`~datadrive.errors.UnsafePickleError`
naming the file and the refused global.

What is admitted (:data:`ALLOWED_GLOBALS`):

* numpy's own reconstructors: ``numpy._core.multiarray._reconstruct`` and
  ``scalar``, ``numpy._core.numeric._frombuffer`` (protocol 5), ``numpy.ndarray``
  and ``numpy.dtype``, with their numpy 1.x ``numpy.core.*`` spellings
  (resolved here to the numpy 2 objects, never imported by name);
* ``builtins`` dict, list, tuple, set, frozenset, str, bytes, bytearray, int,
  float, bool, complex; ``collections.OrderedDict`` and ``defaultdict``;
* ``_codecs.encode`` with a latin-1 codec, which protocol-2 pickles use for bytes.

Naming an admitted global is not enough to be safe: a pickle can *call* it
with any arguments (REDUCE) and set the state of what comes back (BUILD). So:

* every call goes through a validator for that callable: ``numpy.dtype`` takes
  only a plain type code (no object, structured or sub-array dtypes) and always
  makes a fresh copy; ``_reconstruct`` only ``(ndarray, (0,), b'b')``;
  ``bytes``/``bytearray`` never an integer size; ``defaultdict`` only a plain
  type as its factory; container constructors spend a work budget
  proportional to the file size, so nested copies cannot blow up;
* BUILD is allowed only on an array or dtype this unpickler has just made, and
  only with a state that a plain numpy array or dtype has (the dtype state
  must equal that of the dtype rebuilt from its type code, so forged flags or
  fields are refused); BUILD on anything else (``__dict__``/``setattr``
  tricks) is refused;
* NEWOBJ, INST, OBJ, the EXT opcodes and persistent ids are refused outright:
  plain data never needs them.

The unpickler is the pure-Python ``pickle._Unpickler`` rather than the C
``pickle.Unpickler``: only it lets REDUCE and BUILD be intercepted, and the C
one grows its memo to any index a LONG_BINPUT names (a 4-byte index asks for
tens of GiB), while the pure-Python memo is a dict. It is slower than the C
one: per opcode, a Python call. Two shortcuts keep that in check without
changing what is admitted: opcodes are read straight from the in-memory
bytes (the stdlib reads each through a Python-level frame reader), and a run
of memoised float triples (polyline points, most of a ScenarioNet file's
opcodes) is matched and unpacked in C. On the sample pickles that halves
the load time (0.37 -> 0.19 s; ``pickle.loads``: 0.05 s).
"""

from __future__ import annotations

import _compat_pickle
import codecs
import importlib
import io
import math
import pickle
import re
import struct
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import numpy as np

from datadrive.errors import CorruptFileError, InputError, UnsafePickleError

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "safe_load", "safe_loads"]

_np_multiarray = importlib.import_module("numpy._core.multiarray")
_np_numeric = importlib.import_module("numpy._core.numeric")
_RECONSTRUCT: Callable[..., Any] = _np_multiarray._reconstruct
_SCALAR: Callable[..., Any] = _np_multiarray.scalar
_FROMBUFFER: Callable[..., Any] = _np_numeric._frombuffer

_BUILTINS: dict[str, Any] = {
    t.__name__: t
    for t in (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, bool, complex)
}

_GLOBALS: dict[tuple[str, str], Any] = {
    **{(prefix + ".multiarray", "_reconstruct"): _RECONSTRUCT for prefix in ("numpy._core", "numpy.core")},
    **{(prefix + ".multiarray", "scalar"): _SCALAR for prefix in ("numpy._core", "numpy.core")},
    **{(prefix + ".numeric", "_frombuffer"): _FROMBUFFER for prefix in ("numpy._core", "numpy.core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{("builtins", name): obj for name, obj in _BUILTINS.items()},
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "defaultdict"): defaultdict,
    ("_codecs", "encode"): codecs.encode,
}

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(_GLOBALS)
"""``(module, name)`` pairs a pickle may name; everything else is refused."""

# Type codes numpy writes when it pickles a dtype: kind + item size ("f8", "U5",
# "b1"), and "M8"/"m8" with the unit in the state. "O8" (object) is not here.
_DTYPE_SPEC = re.compile(r"(?:[biufcUSV][0-9]{1,9}|[Mm]8)")
_DATETIME_UNITS = frozenset(
    ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as", "generic"]
)
_ENCODINGS = frozenset({"utf-8", "utf8", "latin1", "latin-1", "ascii"})
_SEQUENCE_ARGS = (list, tuple, set, frozenset, dict, OrderedDict, defaultdict, str, bytes, bytearray)
_DEFAULT_FACTORIES = frozenset({*_BUILTINS.values(), OrderedDict, defaultdict})
_MAX_NDIM = 64
_FRAME_SIZE = struct.Struct("<Q")
_STOP: Any = getattr(pickle, "_Stop")  # noqa: B009  (private: how the stdlib's loop ends at STOP)
_DOUBLE = struct.Struct(">d")
_POINT = struct.Struct(">xdxdxdxx")
"""A memoised point: BINFLOAT x, BINFLOAT y, BINFLOAT z, TUPLE3, MEMOIZE (28 bytes)."""
_POINTS = re.compile(rb"(?:G.{8}G.{8}G.{8}\x87\x94)+", re.DOTALL)
"""A run of memoised points (:data:`_POINT`), protocol 4 and later."""


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickles plain data and numpy arrays; refuses everything else.

    Use :func:`safe_load` or :func:`safe_loads`; they turn every failure into
    an :class:`~datadrive.errors.InputError` naming the file.

    Args:
        file: A binary file object holding the pickle.
        path: The file's name, for error messages.
        work_budget: How many elements container constructors may copy in
            total (guards against quadratic blow-ups through the memo).
    """

    # Set by pickle._Unpickler.load(); declared for the type checker.
    stack: list[Any]
    proto: int
    memo: dict[int, Any]

    def __init__(self, file: BinaryIO, *, path: str, work_budget: int) -> None:
        super().__init__(file)
        self._file: Any = file
        self._data = file.getbuffer() if isinstance(file, io.BytesIO) else None
        self._path = path
        self._budget = work_budget
        # Objects made here and not yet given their state (BUILD), by id; the
        # values keep the objects alive so that ids are not reused.
        self._pending_arrays: dict[int, np.ndarray[Any, Any]] = {}
        self._pending_dtypes: dict[int, tuple[np.dtype[Any], str]] = {}
        self._own_dtypes: dict[int, np.dtype[Any]] = {}

    def load(self) -> Any:
        """The unpickled object: ``pickle._Unpickler.load`` reading straight from the file.

        The stdlib's loop reads every opcode and argument through its
        ``_Unframer`` (a Python-level ``read`` per opcode: a quarter of the
        time on ScenarioNet pickles). Frames only tell a streaming reader how
        much to fetch ahead; the whole pickle is in memory here, so FRAME is
        checked against the bytes left and otherwise skipped (:meth:`_load_frame`).
        """
        file = self._file
        self.read = file.read
        self.readinto = file.readinto
        self.readline = file.readline
        self.metastack: list[list[Any]] = []
        self.stack = []
        self.append = self.stack.append
        self.proto = 0
        read = self.read
        dispatch: Any = self.dispatch
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError
                dispatch[key[0]](self)
        except _STOP as stop:
            return stop.value

    def _load_binfloat(self) -> None:
        """BINFLOAT; a run of points (three BINFLOATs, TUPLE3, MEMOIZE each) is taken in one step.

        Polylines in ScenarioNet pickles are lists of such tuples: most of a
        file's opcodes. A regular expression finds the run's end (only
        complete points of exactly that byte sequence match) and the floats
        are unpacked in C; the stack and memo end up as the stdlib's loop
        leaves them. Anything else goes the stdlib's way, one opcode at a time.
        """
        file, data = self._file, self._data
        if data is None:
            self.append(_DOUBLE.unpack(file.read(8))[0])
            return
        here = file.tell()
        run = _POINTS.match(data, here - 1)
        if run is None:
            self.append(_DOUBLE.unpack(file.read(8))[0])
            return
        points = list(_POINT.iter_unpack(data[here - 1 : run.end()]))
        memo = self.memo
        first = len(memo)
        memo.update(zip(range(first, first + len(points)), points, strict=True))
        self.stack.extend(points)
        file.seek(run.end())

    def _load_frame(self) -> None:
        (size,) = _FRAME_SIZE.unpack(self.read(8))
        if size > self._remaining():
            raise CorruptFileError(
                self._path, f"truncated pickle (a frame of {size} bytes runs past the end of the file)"
            )

    def _remaining(self) -> float:
        """Bytes left after the read position (infinite for a stream that cannot tell: its EOF tells)."""
        file = self._file
        if self._data is not None:
            return float(len(self._data) - file.tell())
        try:
            here = file.tell()
            end = file.seek(0, io.SEEK_END)
            file.seek(here)
        except (AttributeError, OSError):  # io.UnsupportedOperation is an OSError
            return math.inf
        return float(end - here)

    # ----------------------------------------------------------------- refusals

    def refuse(self, what: str) -> NoReturn:
        """Raise :class:`UnsafePickleError` for this file."""
        raise UnsafePickleError(self._path, f"unsafe pickle: {what}")

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if self.proto < 3:  # protocol 0-2 pickles written by Python 3 use Python 2 names
            if key in _compat_pickle.NAME_MAPPING:
                key = _compat_pickle.NAME_MAPPING[key]
            elif module in _compat_pickle.IMPORT_MAPPING:
                key = (_compat_pickle.IMPORT_MAPPING[module], name)
        try:
            return _GLOBALS[key]
        except KeyError:
            self.refuse(
                f"refused global {module}.{name} (only numpy arrays and plain Python containers are allowed)"
            )

    def persistent_load(self, pid: Any) -> NoReturn:
        self.refuse("refused a persistent id (PERSID/BINPERSID)")

    def _refuse_opcode(self, opcode: str) -> NoReturn:
        self.refuse(f"refused opcode {opcode} (plain data never needs it)")

    def spend(self, n: int) -> None:
        """Charge ``n`` copied elements to the work budget."""
        self._budget -= n
        if self._budget < 0:
            self.refuse("the pickle asks for more work than its size justifies (a copy bomb)")

    # ----------------------------------------------------------------- opcodes

    def _load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        try:
            validator = _CALLS.get(func)
        except TypeError:  # unhashable: certainly not an allowed callable
            validator = None
        if validator is None or not isinstance(args, tuple):
            self.refuse(f"refused a call of a {type(func).__name__} object")
        stack[-1] = validator(self, args)

    def _load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        key = id(inst)
        if type(inst) is np.ndarray and self._pending_arrays.get(key) is inst:
            del self._pending_arrays[key]
            self._build_array(inst, state)
        elif isinstance(inst, np.dtype) and self._pending_dtypes.get(key, (None, ""))[0] is inst:
            dtype, spec = self._pending_dtypes.pop(key)
            self._build_dtype(dtype, spec, state)
        else:
            self.refuse(f"refused setting the state (BUILD) of a {type(inst).__name__} object")

    def _load_newobj(self) -> NoReturn:
        self._refuse_opcode("NEWOBJ")

    def _load_newobj_ex(self) -> NoReturn:
        self._refuse_opcode("NEWOBJ_EX")

    def _load_inst(self) -> NoReturn:
        self._refuse_opcode("INST")

    def _load_obj(self) -> NoReturn:
        self._refuse_opcode("OBJ")

    def _load_ext(self) -> NoReturn:
        # copyreg's extension cache is process-wide: an object cached by another
        # unpickler would come back without passing find_class.
        self._refuse_opcode("EXT1/EXT2/EXT4")

    # ----------------------------------------------------------------- numpy

    def own_dtype(self, dtype: Any) -> np.dtype[Any]:
        """``dtype`` if this unpickler made it (so it is plain), else refuse."""
        if not isinstance(dtype, np.dtype) or self._own_dtypes.get(id(dtype)) is not dtype:
            self.refuse(f"refused a {type(dtype).__name__} where a numpy dtype made by this pickle belongs")
        return dtype

    def make_dtype(self, spec: Any, align: Any = False, copy: Any = True) -> np.dtype[Any]:
        if not isinstance(spec, str) or _DTYPE_SPEC.fullmatch(spec) is None:
            self.refuse(
                f"refused numpy dtype {spec!r} (object, structured and sub-array dtypes are not plain data)"
            )
        if type(align) is not bool or type(copy) is not bool:
            self.refuse("refused numpy dtype arguments that are not booleans")
        # Always a fresh copy: BUILD then sets the state of this object, never of
        # numpy's shared builtin descriptor.
        dtype = np.dtype(spec, align=align, copy=True)
        self._pending_dtypes[id(dtype)] = (dtype, spec)
        self._own_dtypes[id(dtype)] = dtype
        return dtype

    def _build_dtype(self, dtype: np.dtype[Any], spec: str, state: Any) -> None:
        expected = _expected_dtype(spec, state)
        if expected is None or expected.__reduce__()[2] != state:
            self.refuse(f"refused numpy dtype state {_short(state)} for {spec!r} (not that of a plain dtype)")
        dtype.__setstate__(state)  # type: ignore[attr-defined]

    def make_array(self, cls: Any, shape: Any, typecode: Any) -> np.ndarray[Any, Any]:
        if cls is not np.ndarray or shape != (0,) or typecode not in (b"b", "b"):
            self.refuse("refused numpy _reconstruct arguments other than (ndarray, (0,), b'b')")
        array: np.ndarray[Any, Any] = _RECONSTRUCT(np.ndarray, (0,), b"b")
        self._pending_arrays[id(array)] = array
        return array

    def _build_array(self, array: np.ndarray[Any, Any], state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            self.refuse(f"refused numpy array state {_short(state)}")
        version, (shape, dtype, is_fortran, rawdata) = (
            (state[0], state[1:]) if len(state) == 5 else (1, state)
        )
        if version != 1:
            self.refuse(f"refused numpy array state version {version!r}")
        dtype = self.own_dtype(dtype)
        if not isinstance(rawdata, bytes | bytearray):
            kind = type(rawdata).__name__
            self.refuse(f"refused numpy array data of type {kind} (object arrays are not plain data)")
        self.check_shape(shape, dtype, len(rawdata))
        if type(is_fortran) is not bool:
            self.refuse("refused numpy array state with a non-boolean order flag")
        self.spend(len(rawdata))
        array.__setstate__((1, shape, dtype, is_fortran, rawdata))  # type: ignore[arg-type]

    def check_shape(self, shape: Any, dtype: np.dtype[Any], num_bytes: int) -> int:
        """The element count of ``shape`` after checking it against the data size."""
        if (
            not isinstance(shape, tuple)
            or len(shape) > _MAX_NDIM
            or not all(type(n) is int and n >= 0 for n in shape)
        ):
            self.refuse(f"refused numpy array shape {_short(shape)}")
        count = math.prod(shape)
        if count and dtype.itemsize == 0:
            self.refuse("refused a non-empty numpy array of a zero-size dtype")
        if count * dtype.itemsize != num_bytes:
            raise CorruptFileError(
                self._path,
                f"numpy array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes, "
                f"the pickle has {num_bytes}",
            )
        return count


dispatch = dict(pickle._Unpickler.dispatch)
dispatch[pickle.FRAME[0]] = RestrictedUnpickler._load_frame  # type: ignore[assignment]
dispatch[pickle.BINFLOAT[0]] = RestrictedUnpickler._load_binfloat  # type: ignore[assignment]
dispatch[pickle.REDUCE[0]] = RestrictedUnpickler._load_reduce  # type: ignore[assignment]
dispatch[pickle.BUILD[0]] = RestrictedUnpickler._load_build  # type: ignore[assignment]
dispatch[pickle.NEWOBJ[0]] = RestrictedUnpickler._load_newobj  # type: ignore[assignment]
dispatch[pickle.NEWOBJ_EX[0]] = RestrictedUnpickler._load_newobj_ex  # type: ignore[assignment]
dispatch[pickle.INST[0]] = RestrictedUnpickler._load_inst  # type: ignore[assignment]
dispatch[pickle.OBJ[0]] = RestrictedUnpickler._load_obj  # type: ignore[assignment]
for _ext in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
    dispatch[_ext[0]] = RestrictedUnpickler._load_ext  # type: ignore[assignment]
RestrictedUnpickler.dispatch = dispatch
del dispatch, _ext


# --------------------------------------------------------------------------- dtype states


def _expected_dtype(spec: str, state: Any) -> np.dtype[Any] | None:
    """The plain dtype whose pickled state ``state`` claims to be, or None."""
    if not isinstance(state, tuple) or len(state) < 8 or state[1] not in ("<", ">", "|", "="):
        return None
    dtype = np.dtype(spec)
    if spec[0] in "Mm":
        meta = state[8] if len(state) > 8 else None
        unit = meta[1] if isinstance(meta, tuple) and len(meta) == 2 else None
        if not (isinstance(unit, tuple) and len(unit) == 4 and isinstance(unit[0], bytes)):
            return None
        name, num = unit[0].decode("ascii", "replace"), unit[1]
        if name not in _DATETIME_UNITS or type(num) is not int or not 1 <= num <= 1_000_000:
            return None
        if name != "generic":
            dtype = np.dtype(f"{spec}[{num}{name}]")
    if state[1] in "<>" and dtype.byteorder != "|":
        dtype = dtype.newbyteorder(state[1])
    return dtype


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# --------------------------------------------------------------------------- call validators

_Validator = Callable[[RestrictedUnpickler, tuple[Any, ...]], Any]


def _sized(u: RestrictedUnpickler, value: Any) -> None:
    if isinstance(value, _SEQUENCE_ARGS):
        u.spend(len(value))


def _container(target: Callable[..., Any]) -> _Validator:
    def call(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
        if len(args) > 1 or (args and type(args[0]) not in _SEQUENCE_ARGS):
            u.refuse(f"refused {target.__name__}() of {_short(args)}")
        if args:
            _sized(u, args[0])
        return target(*args)

    return call


def _scalar_of(target: Callable[..., Any], kinds: tuple[type, ...], *, max_args: int = 1) -> _Validator:
    def call(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
        if len(args) > max_args or not all(type(a) in kinds for a in args):
            u.refuse(f"refused {target.__name__}() of {_short(args)}")
        for a in args:
            _sized(u, a)
        return target(*args)

    return call


def _text_codec(u: RestrictedUnpickler, encoding: Any, errors: Any = "strict") -> None:
    if not isinstance(encoding, str) or encoding.lower() not in _ENCODINGS or errors != "strict":
        u.refuse(f"refused codec {_short(encoding)} (only utf-8, latin-1 and ascii)")


def _bytes_like(target: type) -> _Validator:
    def call(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
        if args and type(args[0]) is str and 2 <= len(args) <= 3:
            _text_codec(u, *args[1:])
        elif len(args) > 1 or (args and type(args[0]) not in (bytes, bytearray, list, tuple)):
            # bytes(10**12) would allocate a terabyte: sizes are never plain data
            u.refuse(f"refused {target.__name__}() of {_short(args)}")
        if args:
            _sized(u, args[0])
        return target(*args)

    return call


def _str(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
    if args and type(args[0]) in (bytes, bytearray) and 2 <= len(args) <= 3:
        _text_codec(u, *args[1:])
    elif len(args) > 1 or (args and type(args[0]) not in (str, int, float, bool)):
        u.refuse(f"refused str() of {_short(args)}")
    if args:
        _sized(u, args[0])
    return str(*args)


def _int(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
    if len(args) == 2 and type(args[0]) in (str, bytes) and type(args[1]) is int:
        _sized(u, args[0])
        return int(args[0], args[1])
    return _scalar_of(int, (int, float, str, bytes, bool))(u, args)


def _defaultdict(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
    if args:
        factory = args[0]
        # The factory is called later, on any missing key: only plain types.
        if factory is not None and (not isinstance(factory, type) or factory not in _DEFAULT_FACTORIES):
            u.refuse(f"refused defaultdict factory {_short(factory)}")
    if len(args) > 2 or (
        len(args) == 2 and type(args[1]) not in (dict, OrderedDict, defaultdict, list, tuple)
    ):
        u.refuse(f"refused defaultdict() of {_short(args)}")
    if len(args) == 2:
        _sized(u, args[1])
    return defaultdict(*args)


def _codecs_encode(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
    if not 1 <= len(args) <= 3 or type(args[0]) is not str:
        u.refuse(f"refused _codecs.encode() of {_short(args)}")
    encoding = args[1] if len(args) > 1 else "utf-8"
    if not isinstance(encoding, str) or encoding.lower() not in ("latin1", "latin-1"):
        u.refuse(f"refused _codecs.encode() with codec {_short(encoding)}")
    if len(args) == 3 and args[2] != "strict":
        u.refuse("refused _codecs.encode() error handler")
    u.spend(len(args[0]))
    return codecs.encode(args[0], "latin-1")


def _ndarray(u: RestrictedUnpickler, args: tuple[Any, ...]) -> NoReturn:
    u.refuse("refused a direct call of numpy.ndarray (only its pickle reconstructor may build arrays)")


def _np_dtype(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
    if not 1 <= len(args) <= 3:
        u.refuse(f"refused numpy.dtype() of {_short(args)}")
    return u.make_dtype(*args)


def _np_reconstruct(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
    if len(args) != 3:
        u.refuse(f"refused numpy _reconstruct() of {_short(args)}")
    return u.make_array(*args)


def _np_scalar(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
    if len(args) != 2:
        u.refuse(f"refused numpy scalar() of {_short(args)}")
    dtype = u.own_dtype(args[0])
    data = args[1]
    if type(data) is not bytes:
        u.refuse(f"refused numpy scalar data of type {type(data).__name__}")
    if len(data) != dtype.itemsize:
        raise CorruptFileError(
            u._path, f"numpy scalar of {dtype} needs {dtype.itemsize} bytes, got {len(data)}"
        )
    return _SCALAR(dtype, data)


def _np_frombuffer(u: RestrictedUnpickler, args: tuple[Any, ...]) -> Any:
    if len(args) != 4:
        u.refuse(f"refused numpy _frombuffer() of {_short(args)}")
    buf, dtype, shape, order = args
    dtype = u.own_dtype(dtype)
    if type(buf) not in (bytes, bytearray):
        u.refuse(f"refused numpy array data of type {type(buf).__name__}")
    if order not in ("C", "F"):
        u.refuse(f"refused numpy array order {_short(order)}")
    u.check_shape(shape, dtype, len(buf))
    u.spend(len(buf))
    return _FROMBUFFER(buf, dtype, shape, order)


_CALLS: dict[Any, _Validator] = {
    dict: _container(dict),
    list: _container(list),
    tuple: _container(tuple),
    set: _container(set),
    frozenset: _container(frozenset),
    OrderedDict: _container(OrderedDict),
    defaultdict: _defaultdict,
    str: _str,
    bytes: _bytes_like(bytes),
    bytearray: _bytes_like(bytearray),
    int: _int,
    float: _scalar_of(float, (int, float, str, bool)),
    bool: _scalar_of(bool, (int, float, str, bool, type(None))),
    complex: _scalar_of(complex, (int, float, complex, str), max_args=2),
    codecs.encode: _codecs_encode,
    np.ndarray: _ndarray,
    np.dtype: _np_dtype,
    _RECONSTRUCT: _np_reconstruct,
    _SCALAR: _np_scalar,
    _FROMBUFFER: _np_frombuffer,
}
assert set(_CALLS) == set(_GLOBALS.values()), "every admitted global needs a call validator"


# --------------------------------------------------------------------------- entry points


def safe_loads(data: bytes, *, path: str | PathLike[str] = "<bytes>") -> Any:
    """Unpickle ``data`` if it holds only plain data and numpy arrays.

    Args:
        data: The pickle's bytes.
        path: Where they came from, for error messages.

    Returns:
        The unpickled object (dicts, lists, numpy arrays, ...).

    Raises:
        UnsafePickleError: the pickle names a global outside
            :data:`ALLOWED_GLOBALS` or uses an allowed one in a way plain
            data never does; nothing it names has run.
        CorruptFileError: the bytes are not a complete, valid pickle.
    """
    name = str(path)
    if not data:
        raise CorruptFileError(name, "empty file, not a pickle")
    unpickler = RestrictedUnpickler(io.BytesIO(data), path=name, work_budget=max(1 << 22, 16 * len(data)))
    try:
        return unpickler.load()
    except InputError:
        raise
    except EOFError as exc:
        raise CorruptFileError(name, "truncated pickle (it ends before its STOP opcode)") from exc
    except Exception as exc:  # untrusted bytes: every other failure is a corrupt pickle
        raise CorruptFileError(
            name, f"not a valid pickle ({type(exc).__name__}: {_short(str(exc))})"
        ) from exc


def safe_load(path: str | PathLike[str]) -> Any:
    """:func:`safe_loads` of a file's bytes.

    Raises:
        InputError: the file cannot be read, or (a subclass) as
            :func:`safe_loads`.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(p, f"cannot read ({exc.strerror or exc})") from exc
    return safe_loads(data, path=p)
