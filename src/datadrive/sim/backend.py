"""One array namespace for the simulator: numpy on the CPU, torch on a CPU or a GPU.

The simulator's step, the IDM/MOBIL agents and the box geometry are written
once against :class:`Backend`, a small namespace of the array operations they
use (the subset of the Python array-API standard they need, plus ``gather``
along an axis). :class:`NumpyBackend` maps it onto numpy; :class:`TorchBackend`
onto torch on a ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``). torch is
imported only when a torch backend is built, so the numpy path never needs it.

Arrays cross into and out of a backend with :meth:`Backend.asarray` and
:meth:`Backend.to_numpy`; everything in between stays on the backend's device.
Float arrays are float64 on numpy; on torch the dtype is a parameter
(float32 is the GPU default, float64 for bit-for-bit comparisons with numpy).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

__all__ = ["Backend", "NumpyBackend", "TorchBackend", "backend_for"]

Array = Any
"""An array of the backend (``numpy.ndarray`` or ``torch.Tensor``)."""


class Backend(ABC):
    """The array operations the simulator uses, for one array library and device."""

    name: str = "backend"
    device: str = "cpu"
    # the numpy dtype of the backend's floats: static tables are built in it on the host, so that
    # converting them (float64 values rounded once) needs no float64 copy of the whole table
    numpy_float: Any = np.float64

    # ---------------------------------------------------------------- creation and transfer
    @abstractmethod
    def asarray(self, x: Any, dtype: str = "float") -> Array:
        """``x`` (numpy or nested lists) as a backend array; dtype ``float``, ``int``, ``bool``."""

    @abstractmethod
    def to_numpy(self, x: Array) -> np.ndarray[Any, Any]:
        """A backend array as a numpy array (a copy off the GPU)."""

    @abstractmethod
    def zeros(self, shape: tuple[int, ...], dtype: str = "float") -> Array: ...

    @abstractmethod
    def full(self, shape: tuple[int, ...], value: float, dtype: str = "float") -> Array: ...

    @abstractmethod
    def arange(self, n: int, dtype: str = "int") -> Array: ...

    # ---------------------------------------------------------------- elementwise
    @abstractmethod
    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array: ...

    @abstractmethod
    def clip(self, x: Array, lo: Array | float | None, hi: Array | float | None) -> Array: ...

    @abstractmethod
    def maximum(self, a: Array, b: Array | float) -> Array: ...

    @abstractmethod
    def minimum(self, a: Array, b: Array | float) -> Array: ...

    @abstractmethod
    def sin(self, x: Array) -> Array: ...

    @abstractmethod
    def cos(self, x: Array) -> Array: ...

    @abstractmethod
    def atan2(self, y: Array, x: Array) -> Array: ...

    @abstractmethod
    def atan(self, x: Array) -> Array: ...

    @abstractmethod
    def tan(self, x: Array) -> Array: ...

    @abstractmethod
    def sqrt(self, x: Array) -> Array: ...

    @abstractmethod
    def exp(self, x: Array) -> Array: ...

    @abstractmethod
    def abs(self, x: Array) -> Array: ...

    @abstractmethod
    def floor(self, x: Array) -> Array: ...

    @abstractmethod
    def isfinite(self, x: Array) -> Array: ...

    @abstractmethod
    def astype(self, x: Array, dtype: str) -> Array: ...

    def hypot(self, x: Array, y: Array) -> Array:
        return self.sqrt(x * x + y * y)

    def wrap_angle(self, a: Array) -> Array:
        """Angles wrapped into ``[-pi, pi)``."""
        return (a + np.pi) % (2.0 * np.pi) - np.pi

    # ---------------------------------------------------------------- reductions and indexing
    @abstractmethod
    def min(self, x: Array, axis: int) -> Array: ...

    @abstractmethod
    def max(self, x: Array, axis: int) -> Array: ...

    @abstractmethod
    def argmin(self, x: Array, axis: int) -> Array: ...

    @abstractmethod
    def any(self, x: Array, axis: int | None = None) -> Array: ...

    @abstractmethod
    def all(self, x: Array, axis: int | None = None) -> Array: ...

    @abstractmethod
    def sum(self, x: Array, axis: int | None = None) -> Array: ...

    @abstractmethod
    def gather(self, x: Array, index: Array, axis: int) -> Array:
        """``take_along_axis``: ``index`` has ``x``'s rank, values picked along ``axis``."""

    @abstractmethod
    def stack(self, xs: list[Array], axis: int) -> Array: ...

    @abstractmethod
    def concat(self, xs: list[Array], axis: int) -> Array: ...

    @abstractmethod
    def copy(self, x: Array) -> Array: ...

    @abstractmethod
    def random_uniform(self, shape: tuple[int, ...], seed: int) -> Array:
        """Uniform [0, 1) draws from a generator seeded by ``seed`` (same on every device)."""

    @abstractmethod
    def nonzero_flat(self, mask: Array) -> Array:
        """Indices (int) of the True entries of a mask, in its flattened order."""

    @abstractmethod
    def take(self, x: Array, index: Array) -> Array:
        """``x.reshape(-1)[index]``."""

    @abstractmethod
    def take_columns(self, table: Array, index: Array) -> Array:
        """``(F, *index.shape)``: columns ``index`` of an ``(F, n)`` table (one gather for many fields)."""

    @abstractmethod
    def put(self, x: Array, index: Array, values: Array) -> Array:
        """A copy of ``x`` with ``x.reshape(-1)[index] = values``."""

    @abstractmethod
    def smallest_k(self, x: Array, k: int) -> Array:
        """Indices of the ``k`` smallest values along the last axis (in no particular order)."""

    @abstractmethod
    def take_rows(self, x: Array, index: Array) -> Array:
        """``x[index]``: rows of ``x`` along its first axis."""

    @abstractmethod
    def tile_last(self, x: Array, n: int) -> Array:
        """``x`` repeated ``n`` times end to end along its last axis (``numpy.tile``)."""


class NumpyBackend(Backend):
    """numpy on the CPU: float64 by default; float32 on request (half the memory traffic)."""

    name = "numpy"

    def __init__(self, float_dtype: str = "float64") -> None:
        self.numpy_float = np.float32 if float_dtype == "float32" else np.float64
        self._dtypes: dict[str, Any] = {
            "float": np.float32 if float_dtype == "float32" else np.float64,
            "int": np.int64,
            "bool": np.bool_,
        }
        self._bases: dict[tuple[int, ...], np.ndarray[Any, Any]] = {}

    def asarray(self, x: Any, dtype: str = "float") -> Array:
        return np.asarray(x, dtype=self._dtypes[dtype])

    def to_numpy(self, x: Array) -> np.ndarray[Any, Any]:
        out = np.asarray(x)
        return out.astype(np.float64) if out.dtype == np.float32 else out

    def zeros(self, shape: tuple[int, ...], dtype: str = "float") -> Array:
        return np.zeros(shape, dtype=self._dtypes[dtype])

    def full(self, shape: tuple[int, ...], value: float, dtype: str = "float") -> Array:
        return np.full(shape, value, dtype=self._dtypes[dtype])

    def arange(self, n: int, dtype: str = "int") -> Array:
        return np.arange(n, dtype=self._dtypes[dtype])

    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array:
        return np.where(cond, a, b)

    def clip(self, x: Array, lo: Array | float | None, hi: Array | float | None) -> Array:
        return np.clip(x, lo, hi)

    def maximum(self, a: Array, b: Array | float) -> Array:
        return np.maximum(a, b)

    def minimum(self, a: Array, b: Array | float) -> Array:
        return np.minimum(a, b)

    def sin(self, x: Array) -> Array:
        return np.sin(x)

    def cos(self, x: Array) -> Array:
        return np.cos(x)

    def atan2(self, y: Array, x: Array) -> Array:
        return np.arctan2(y, x)

    def atan(self, x: Array) -> Array:
        return np.arctan(x)

    def tan(self, x: Array) -> Array:
        return np.tan(x)

    def sqrt(self, x: Array) -> Array:
        return np.sqrt(x)

    def exp(self, x: Array) -> Array:
        return np.exp(x)

    def abs(self, x: Array) -> Array:
        return np.abs(x)

    def floor(self, x: Array) -> Array:
        return np.floor(x)

    def isfinite(self, x: Array) -> Array:
        return np.isfinite(x)

    def astype(self, x: Array, dtype: str) -> Array:
        return np.asarray(x).astype(self._dtypes[dtype])

    def min(self, x: Array, axis: int) -> Array:
        return np.min(x, axis=axis)

    def max(self, x: Array, axis: int) -> Array:
        return np.max(x, axis=axis)

    def argmin(self, x: Array, axis: int) -> Array:
        return np.argmin(x, axis=axis)

    def any(self, x: Array, axis: int | None = None) -> Array:
        return np.any(x, axis=axis)

    def all(self, x: Array, axis: int | None = None) -> Array:
        return np.all(x, axis=axis)

    def sum(self, x: Array, axis: int | None = None) -> Array:
        return np.sum(x, axis=axis)

    def gather(self, x: Array, index: Array, axis: int) -> Array:
        ax = axis % x.ndim
        if ax == x.ndim - 1 and index.ndim == x.ndim and index.shape[:-1] == x.shape[:-1]:
            # the common case, without take_along_axis's broadcast index arrays: one flat take
            key = x.shape
            base = self._bases.get(key)
            if base is None:  # the row offsets of this shape, kept: the step asks for the same few shapes
                lead = int(np.prod(x.shape[:-1]))
                base = (np.arange(lead, dtype=np.int64) * x.shape[-1]).reshape(*x.shape[:-1], 1)
                if len(self._bases) > 256:
                    self._bases.clear()
                self._bases[key] = base
            return np.take(x.reshape(-1), index + base)
        return np.take_along_axis(x, index, axis=axis)

    def stack(self, xs: list[Array], axis: int) -> Array:
        return np.stack(xs, axis=axis)

    def concat(self, xs: list[Array], axis: int) -> Array:
        return np.concatenate(xs, axis=axis)

    def copy(self, x: Array) -> Array:
        return np.array(x, copy=True)

    def random_uniform(self, shape: tuple[int, ...], seed: int) -> Array:
        return np.random.default_rng(seed).random(shape)

    def nonzero_flat(self, mask: Array) -> Array:
        return np.flatnonzero(mask)

    def take(self, x: Array, index: Array) -> Array:
        return np.take(np.asarray(x).reshape(-1), index)

    def take_columns(self, table: Array, index: Array) -> Array:
        return np.take(table, index, axis=1)

    def put(self, x: Array, index: Array, values: Array) -> Array:
        out = np.array(x, copy=True)
        out.reshape(-1)[index] = values
        return out

    def smallest_k(self, x: Array, k: int) -> Array:
        return np.argpartition(x, k - 1, axis=-1)[..., :k]

    def tile_last(self, x: Array, n: int) -> Array:
        return np.tile(x, (1,) * (x.ndim - 1) + (n,))

    def take_rows(self, x: Array, index: Array) -> Array:
        return np.take(x, index, axis=0)


class TorchBackend(Backend):
    """torch on ``device`` (``"cpu"``, ``"cuda"``, ...); float32 by default, float64 on request.

    Random draws come from numpy's generator and are moved to the device, so a
    seed gives the same draws on every device.
    """

    name = "torch"

    def __init__(self, device: str = "cpu", *, float_dtype: str = "float32") -> None:
        import torch

        self._torch = torch
        self.device = device
        self._dev = torch.device(device)
        self.numpy_float = np.float64 if float_dtype == "float64" else np.float32
        self._dtypes: dict[str, Any] = {
            "float": torch.float64 if float_dtype == "float64" else torch.float32,
            "int": torch.int64,
            "bool": torch.bool,
        }

    def __repr__(self) -> str:
        return f"TorchBackend(device={self.device!r}, float={self._dtypes['float']})"

    def asarray(self, x: Any, dtype: str = "float") -> Array:
        t = self._torch
        if isinstance(x, t.Tensor):
            return x.to(device=self._dev, dtype=self._dtypes[dtype])
        return t.as_tensor(np.asarray(x), dtype=self._dtypes[dtype], device=self._dev)

    def to_numpy(self, x: Array) -> np.ndarray[Any, Any]:
        if isinstance(x, self._torch.Tensor):
            out: np.ndarray[Any, Any] = x.detach().cpu().numpy()
            return out.astype(np.float64) if out.dtype == np.float32 else out
        return np.asarray(x)

    def zeros(self, shape: tuple[int, ...], dtype: str = "float") -> Array:
        return self._torch.zeros(shape, dtype=self._dtypes[dtype], device=self._dev)

    def full(self, shape: tuple[int, ...], value: float, dtype: str = "float") -> Array:
        return self._torch.full(shape, value, dtype=self._dtypes[dtype], device=self._dev)

    def arange(self, n: int, dtype: str = "int") -> Array:
        return self._torch.arange(n, dtype=self._dtypes[dtype], device=self._dev)

    def _t(self, x: Array | float, like: Array) -> Array:
        t = self._torch
        if isinstance(x, t.Tensor):
            return x
        return t.as_tensor(x, dtype=like.dtype if like.is_floating_point() else None, device=self._dev)

    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array:
        t = self._torch
        like = a if isinstance(a, t.Tensor) else b if isinstance(b, t.Tensor) else None
        if like is None:
            return t.where(cond, t.tensor(a, device=self._dev), t.tensor(b, device=self._dev))
        return t.where(cond, self._t(a, like), self._t(b, like))

    def clip(self, x: Array, lo: Array | float | None, hi: Array | float | None) -> Array:
        return self._torch.clamp(x, lo, hi)

    def maximum(self, a: Array, b: Array | float) -> Array:
        return self._torch.maximum(a, self._t(b, a))

    def minimum(self, a: Array, b: Array | float) -> Array:
        return self._torch.minimum(a, self._t(b, a))

    def sin(self, x: Array) -> Array:
        return self._torch.sin(x)

    def cos(self, x: Array) -> Array:
        return self._torch.cos(x)

    def atan2(self, y: Array, x: Array) -> Array:
        return self._torch.atan2(y, x)

    def atan(self, x: Array) -> Array:
        return self._torch.atan(x)

    def tan(self, x: Array) -> Array:
        return self._torch.tan(x)

    def sqrt(self, x: Array) -> Array:
        return self._torch.sqrt(x)

    def exp(self, x: Array) -> Array:
        return self._torch.exp(x)

    def abs(self, x: Array) -> Array:
        return self._torch.abs(x)

    def floor(self, x: Array) -> Array:
        return self._torch.floor(x)

    def isfinite(self, x: Array) -> Array:
        return self._torch.isfinite(x)

    def astype(self, x: Array, dtype: str) -> Array:
        return x.to(self._dtypes[dtype])

    def min(self, x: Array, axis: int) -> Array:
        return self._torch.amin(x, dim=axis)

    def max(self, x: Array, axis: int) -> Array:
        return self._torch.amax(x, dim=axis)

    def argmin(self, x: Array, axis: int) -> Array:
        return self._torch.argmin(x, dim=axis)

    def any(self, x: Array, axis: int | None = None) -> Array:
        return self._torch.any(x) if axis is None else self._torch.any(x, dim=axis)

    def all(self, x: Array, axis: int | None = None) -> Array:
        return self._torch.all(x) if axis is None else self._torch.all(x, dim=axis)

    def sum(self, x: Array, axis: int | None = None) -> Array:
        return self._torch.sum(x) if axis is None else self._torch.sum(x, dim=axis)

    def gather(self, x: Array, index: Array, axis: int) -> Array:
        return self._torch.gather(x, axis, index)

    def stack(self, xs: list[Array], axis: int) -> Array:
        return self._torch.stack(xs, dim=axis)

    def concat(self, xs: list[Array], axis: int) -> Array:
        return self._torch.cat(xs, dim=axis)

    def copy(self, x: Array) -> Array:
        return x.clone()

    def random_uniform(self, shape: tuple[int, ...], seed: int) -> Array:
        return self.asarray(np.random.default_rng(seed).random(shape))

    def nonzero_flat(self, mask: Array) -> Array:
        return self._torch.nonzero(mask.reshape(-1)).reshape(-1)

    def take(self, x: Array, index: Array) -> Array:
        return x.reshape(-1)[index]

    def take_columns(self, table: Array, index: Array) -> Array:
        return self._torch.index_select(table, 1, index.reshape(-1)).reshape(table.shape[0], *index.shape)

    def put(self, x: Array, index: Array, values: Array) -> Array:
        out = x.clone()
        out.view(-1)[index] = values
        return out

    def smallest_k(self, x: Array, k: int) -> Array:
        return self._torch.topk(x, k, dim=-1, largest=False).indices

    def tile_last(self, x: Array, n: int) -> Array:
        return x.repeat(*((1,) * (x.ndim - 1)), n)

    def take_rows(self, x: Array, index: Array) -> Array:
        return self._torch.index_select(x, 0, index)


def backend_for(device: str | None = None, *, float_dtype: str | None = None) -> Backend:
    """``None`` or ``"numpy"``: numpy; ``"cpu"``, ``"cuda"``, ``"cuda:N"``: torch on that device.

    ``float_dtype``: ``"float64"`` or ``"float32"``; default float64 on numpy, float32 on torch.
    """
    if device is None or device == "numpy":
        return NumpyBackend(float_dtype or "float64")
    return TorchBackend(device, float_dtype=float_dtype or "float32")
