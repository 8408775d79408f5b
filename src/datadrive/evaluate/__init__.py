"""Open-loop evaluation: the official motion-forecasting metrics, run comparisons, reports.

:mod:`datadrive.evaluate.metrics` computes the Argoverse 2 and Waymo Open
Motion metrics exactly as their devkits define them (``docs/evaluation.md``
gives the formulas and sources). The rest of the layer scores a trained run
on a curated dataset's split, overall and per mined event type, compares two
runs with bootstrap confidence intervals, and writes an HTML report.

May import: ``core``, ``compute``, ``lake``, ``mining``, ``curate``,
``models``, ``train`` and ``viz`` (it sits beside ``sim``, above training).
"""

from datadrive.evaluate.metrics import (
    AV2_MISS_THRESHOLD_M,
    METRICS_VERSION,
    WOMD_CHALLENGE,
    Av2AgentMetrics,
    MeasurementStep,
    WomdConfig,
    WomdObjectMetrics,
    av2_agent_metrics,
    av2_summary,
    womd_object_metrics,
    womd_summary,
)
from datadrive.evaluate.report import write_report
from datadrive.evaluate.runner import (
    HEADLINE_METRICS,
    Comparison,
    EvaluationResult,
    MetricDelta,
    compare_results,
    evaluate_model,
)

__all__ = [
    "AV2_MISS_THRESHOLD_M",
    "HEADLINE_METRICS",
    "METRICS_VERSION",
    "WOMD_CHALLENGE",
    "Av2AgentMetrics",
    "Comparison",
    "EvaluationResult",
    "MeasurementStep",
    "MetricDelta",
    "WomdConfig",
    "WomdObjectMetrics",
    "av2_agent_metrics",
    "av2_summary",
    "compare_results",
    "evaluate_model",
    "womd_object_metrics",
    "womd_summary",
    "write_report",
]
