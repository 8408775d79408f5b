"""Model files: a model's weights with everything needed to rebuild and check it.

A model file is a ``torch.save`` of plain data only (strings, numbers,
lists, tensors), loaded with ``weights_only=True``: opening a model file
never runs code from it. It records the model's spec, code version and
horizons, and the feature config it was trained with, so the right inputs
can be rebuilt and a mismatched model is refused.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from datadrive.curate.features import FeatureConfig
from datadrive.errors import CheckpointError
from datadrive.models.base import Forecaster, ModelSpec, build_model

__all__ = ["MODEL_FORMAT", "load_model", "model_bytes", "read_model_file", "save_model"]

MODEL_FORMAT = "datadrive-model/1"


def _document(model: Forecaster, features: FeatureConfig, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "format": MODEL_FORMAT,
        "meta": model.checkpoint_meta(),
        "features": features.as_json(),
        "extra": dict(extra or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def model_bytes(model: Forecaster, features: FeatureConfig, extra: Mapping[str, Any] | None = None) -> bytes:
    """The model file's bytes (for :meth:`datadrive.lake.Lake.put_derived`)."""
    buf = io.BytesIO()
    torch.save(_document(model, features, extra), buf)
    return buf.getvalue()


def save_model(
    path: Path, model: Forecaster, features: FeatureConfig, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write a model file (atomically: a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(model_bytes(model, features, extra))
    tmp.replace(path)
    return path


def read_model_file(source: Path | bytes, where: str | None = None) -> dict[str, Any]:
    """The plain-data document of a model file.

    Raises:
        CheckpointError: if it is not a datadrive model file.
    """
    name = where or (str(source) if isinstance(source, Path) else "model bytes")
    try:
        data = source.read_bytes() if isinstance(source, Path) else source
        doc = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{name}: no such model file") from None
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise CheckpointError(
            f"{name}: not a readable datadrive model file ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
        fmt = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{name}: format {fmt!r}; this datadrive reads {MODEL_FORMAT}")
    return doc


def load_model(
    source: Path | bytes, where: str | None = None
) -> tuple[Forecaster, FeatureConfig, dict[str, Any]]:
    """Rebuild a model from its file.

    Returns:
        The model (eval mode), its feature config, and the file's extra metadata.

    Raises:
        CheckpointError: if the file is not a model file or its weights do not fit the model it names.
    """
    name = where or (str(source) if isinstance(source, Path) else "model bytes")
    doc = read_model_file(source, name)
    meta = doc["meta"]
    features = FeatureConfig.from_json(doc["features"])
    model = build_model(ModelSpec(str(meta["name"]), dict(meta["config"])), features)
    model.check_compatible(meta, name)
    try:
        model.load_state_dict(doc["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{name}: its weights do not fit model {meta['name']!r} ({exc})") from exc
    model.eval()
    return model, features, dict(doc.get("extra", {}))
