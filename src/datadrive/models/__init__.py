"""PyTorch forecasting and planning models.

* baselines: :class:`ConstantVelocity`, :class:`NearestNeighbor`;
* :class:`MlpForecaster`;
* :class:`TransformerForecaster` (agent and map tokens, K modes with
  probabilities, winner-takes-all regression plus mode classification, and a
  planning head);
* :class:`PlanningPolicy`: any trained model as a batched
  ``plan(ego-centric features) -> future trajectory`` policy for the simulator;
* model files (:func:`save_model`, :func:`load_model`): weights with their
  spec, loaded without unpickling code.

Models read :class:`~datadrive.curate.loader.FeatureBatch` es turned into
tensors (:func:`to_tensors`). May import: ``core``, ``compute``, ``curate``
(never ``train``, ``evaluate`` or ``sim``, which use it). torch is the
``[train]`` extra.
"""

from datadrive.models.base import (
    MODELS,
    Forecast,
    Forecaster,
    LossTerms,
    ModelOutput,
    ModelSpec,
    TensorBatch,
    agent_step_features,
    build_model,
    constant_velocity,
    init_linear,
    mlp,
    to_tensors,
    wta_loss,
)
from datadrive.models.baselines import ConstantVelocity, NearestNeighbor
from datadrive.models.io import MODEL_FORMAT, load_model, model_bytes, read_model_file, save_model
from datadrive.models.mlp import MlpForecaster
from datadrive.models.policy import ModelPlanner, Plan, PlanningPolicy, resolve_device
from datadrive.models.transformer import TransformerForecaster

MODELS.update(
    {
        ConstantVelocity.name: ConstantVelocity,
        NearestNeighbor.name: NearestNeighbor,
        MlpForecaster.name: MlpForecaster,
        TransformerForecaster.name: TransformerForecaster,
    }
)

__all__ = [
    "MODELS",
    "MODEL_FORMAT",
    "ConstantVelocity",
    "Forecast",
    "Forecaster",
    "LossTerms",
    "MlpForecaster",
    "ModelOutput",
    "ModelPlanner",
    "ModelSpec",
    "NearestNeighbor",
    "Plan",
    "PlanningPolicy",
    "TensorBatch",
    "TransformerForecaster",
    "agent_step_features",
    "build_model",
    "constant_velocity",
    "init_linear",
    "load_model",
    "mlp",
    "model_bytes",
    "read_model_file",
    "resolve_device",
    "save_model",
    "to_tensors",
    "wta_loss",
]
