"""The in-car assistant: Car Genius, the Travel Companion, region-bound language models, voice.

What it does:

* **Car Genius** (:mod:`~datadrive.assistant.genius`, :mod:`~datadrive.assistant.tools`):
  questions in plain English about one vehicle's drives in the lake,
  answered by tools over its telemetry (signal statistics, harsh events,
  trip summaries, signal and CAN health), each answer citing its evidence;
* **Travel Companion** (:mod:`~datadrive.assistant.companion`,
  :mod:`~datadrive.assistant.maps`, :mod:`~datadrive.assistant.routing`):
  routes, ETAs and points of interest on a real road network (an
  OpenStreetMap extract behind the :class:`MapSource` interface);
* **language models** (:mod:`~datadrive.assistant.llm`): optional; the
  default is the deterministic intent parser (:mod:`~datadrive.assistant.intents`);
  an endpoint outside the data's region is refused and audited; every number
  in an answer is checked against the tool results
  (:mod:`~datadrive.assistant.grounding`);
* **voice** (:mod:`~datadrive.assistant.voice`): a wake word trained by
  datadrive on synthesized speech, offline speech recognition, spoken answers.

Layering: the assistant sits above ``sim``, ``evaluate``, ``train``,
``models``, ``curate``, ``mining`` and ``lake`` in the layers contract and may
import any of them (and ``sources``, ``compute``, ``core``); only ``demo``,
``service`` and ``cli`` may import it. Heavy dependencies (torch,
pocketsphinx, transformers) are imported lazily inside the functions that need them.
"""

from datadrive.assistant.assistant import TOOL_SCHEMAS, Answer, Assistant
from datadrive.assistant.companion import TravelCompanion
from datadrive.assistant.conversations import ConversationStore, erase_vehicle_conversations
from datadrive.assistant.ego_events import EgoEvent, VehicleEvents, load_vehicle_events, scenario_vehicles
from datadrive.assistant.grounding import NumberCheck, check_numbers
from datadrive.assistant.intents import Intent, parse_question
from datadrive.assistant.llm import ChatEndpoint, ChatModel, ChatReply, EndpointConfig
from datadrive.assistant.maps import MapSource, OsmMapSource, Places, RoadGraph
from datadrive.assistant.routing import FleetSpeeds, Route, Router, fleet_speeds_from_telemetry, geocode
from datadrive.assistant.tools import QUANTITIES, ToolResult
from datadrive.assistant.vehicle import Drive, VehicleLogs, list_vehicles, load_vehicle

__all__ = [
    "QUANTITIES",
    "TOOL_SCHEMAS",
    "Answer",
    "Assistant",
    "ChatEndpoint",
    "ChatModel",
    "ChatReply",
    "ConversationStore",
    "Drive",
    "EgoEvent",
    "EndpointConfig",
    "FleetSpeeds",
    "Intent",
    "MapSource",
    "NumberCheck",
    "OsmMapSource",
    "Places",
    "RoadGraph",
    "Route",
    "Router",
    "ToolResult",
    "TravelCompanion",
    "VehicleEvents",
    "VehicleLogs",
    "check_numbers",
    "erase_vehicle_conversations",
    "fleet_speeds_from_telemetry",
    "geocode",
    "list_vehicles",
    "load_vehicle",
    "load_vehicle_events",
    "parse_question",
    "scenario_vehicles",
]
