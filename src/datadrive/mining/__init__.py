"""Scenario mining: per-state features, event taggers, a query language, natural-language search.

This layer finds the moments that matter in the lake. It computes per-state
kinematics and map context (:mod:`~datadrive.mining.kinematics`,
:mod:`~datadrive.mining.map_context`), tags events (hard braking, cut-ins,
near misses, ...; :mod:`~datadrive.mining.events`), evaluates composable
queries over tracks (:mod:`~datadrive.mining.query`,
:mod:`~datadrive.mining.vocabulary`, :mod:`~datadrive.mining.engine`),
turns plain-English descriptions into queries
(:mod:`~datadrive.mining.describe`, optionally :mod:`~datadrive.mining.llm`),
writes RefAV submissions (:mod:`~datadrive.mining.refav`), renders hits
(:mod:`~datadrive.mining.render`) and runs all of it over lake snapshots
(:mod:`~datadrive.mining.api`).
Other layers call :func:`tag_lake` (bring a region's mining tables up to
date) and :func:`select_scenarios` (pick scenarios by a query and/or
events, with provenance and event types for balancing). ``docs/mining.md`` is the user guide, with
runnable examples.

It may import :mod:`datadrive.lake`, :mod:`datadrive.sources`,
:mod:`datadrive.viz`, :mod:`datadrive.compute` and :mod:`datadrive.core`
(and :mod:`datadrive.errors`); nothing above it (curate, models, sim, ...).

>>> from datadrive.mining import parse, q
>>> str(q.car & q.stopped) == str(parse("car and stopped"))
True
"""

from datadrive.mining.api import FULL_SCAN_LIMIT, MiningRun, mine_snapshot, scenario_keys
from datadrive.mining.context import FeatureConfig, ScenarioContext
from datadrive.mining.describe import Translation, describe
from datadrive.mining.engine import Selection, evaluate
from datadrive.mining.events import (
    EVENT_TYPES,
    TAGGER_VERSION,
    Event,
    EventType,
    TaggerConfig,
    TagReport,
    events_in_window,
    tag_scenario,
    tagger_version,
)
from datadrive.mining.index import IndexReport, current_events, index_region
from datadrive.mining.kinematics import Kinematics, KinematicsConfig, compute_kinematics
from datadrive.mining.llm import EndpointConfig, translate_remote
from datadrive.mining.map_context import MapContext, MapContextConfig, compute_map_context
from datadrive.mining.query import And, Call, Expr, Name, Not, Number, Or, Text, parse, q, to_text
from datadrive.mining.refav import refav_frames, write_refav
from datadrive.mining.render import render_hits
from datadrive.mining.results import Hit, ResultSet, mine, select
from datadrive.mining.selection import ScenarioSelection, scenario_events, select_scenarios, tag_lake
from datadrive.mining.vocabulary import CATEGORIES, PREDICATES, Bound, bind, compile_query

__all__ = [
    "CATEGORIES",
    "EVENT_TYPES",
    "FULL_SCAN_LIMIT",
    "PREDICATES",
    "TAGGER_VERSION",
    "And",
    "Bound",
    "Call",
    "EndpointConfig",
    "Event",
    "EventType",
    "Expr",
    "FeatureConfig",
    "Hit",
    "IndexReport",
    "Kinematics",
    "KinematicsConfig",
    "MapContext",
    "MapContextConfig",
    "MiningRun",
    "Name",
    "Not",
    "Number",
    "Or",
    "ResultSet",
    "ScenarioContext",
    "ScenarioSelection",
    "Selection",
    "TagReport",
    "TaggerConfig",
    "Text",
    "Translation",
    "bind",
    "compile_query",
    "compute_kinematics",
    "compute_map_context",
    "current_events",
    "describe",
    "evaluate",
    "events_in_window",
    "index_region",
    "mine",
    "mine_snapshot",
    "parse",
    "q",
    "refav_frames",
    "render_hits",
    "scenario_events",
    "scenario_keys",
    "select",
    "select_scenarios",
    "tag_lake",
    "tag_scenario",
    "tagger_version",
    "to_text",
    "translate_remote",
    "write_refav",
]
