"""Arrow rows to JSON-safe Python values (NaN and infinities as null, decimals as floats, bytes as hex)."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pydantic_core
from starlette.responses import Response

from datadrive.service.ops import stage

__all__ = ["json_response", "json_rows", "json_value"]


def json_value(value: Any) -> Any:
    """``value`` with every float made finite-or-None, decimals floats, bytes hex, dates ISO."""
    if isinstance(value, Decimal):  # DuckDB's exact arithmetic (round(), sums of decimals)
        value = float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def json_rows(table: pa.Table, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of ``table`` (the first ``limit``) as JSON-safe dicts."""
    if limit is not None:
        table = table.slice(0, limit)
    return [json_value(r) for r in table.to_pylist()]


def json_response(value: Any, status_code: int = 200) -> Response:
    """``value`` (JSON-safe: :func:`json_value`'s output) as an ``application/json`` response.

    Serialised once, by pydantic-core, and timed as the request's ``encode``
    stage; an endpoint that returns it declares its body with
    ``response_model`` for the OpenAPI document.
    """
    with stage("encode"):
        return Response(pydantic_core.to_json(value), status_code, media_type="application/json")
