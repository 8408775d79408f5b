"""Array type aliases shared by the whole package.

Shapes are documented where the arrays are used; these aliases only carry the
element type, so that mypy checks dtype mix-ups.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

NDArrayBool = npt.NDArray[np.bool_]
NDArrayFloat = npt.NDArray[np.float64]
NDArrayFloat32 = npt.NDArray[np.float32]
NDArrayInt = npt.NDArray[np.int64]
NDArrayInt8 = npt.NDArray[np.int8]
NDArrayUInt8 = npt.NDArray[np.uint8]
NDArrayStr = npt.NDArray[np.str_]
NDArrayAny = npt.NDArray[Any]

__all__ = [
    "NDArrayAny",
    "NDArrayBool",
    "NDArrayFloat",
    "NDArrayFloat32",
    "NDArrayInt",
    "NDArrayInt8",
    "NDArrayStr",
    "NDArrayUInt8",
]
