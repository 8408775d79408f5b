"""The in-car assistant: one ``ask()`` for Car Genius and the Travel Companion.

An :class:`Assistant` serves one vehicle's data in one region (and/or one
map). ``ask(question)``:

1. offline (the default): the intent parser picks the tools, they run over
   the vehicle's drives (or the map), templates phrase the answer with its
   evidence;
2. with a language model (:mod:`datadrive.assistant.llm`): the model sees
   the question and the tools' JSON schemas, asks for tool calls (run here),
   and writes the answer; a model outside the data's region is refused
   before anything is sent (:meth:`datadrive.lake.Lake.authorize_transfer`,
   audited); a model that fails or answers garbage falls back to the
   offline answer, and says so;
3. either way the number check (:mod:`datadrive.assistant.grounding`) runs
   before the answer is returned: an answer stating a number no tool
   returned is replaced by the offline answer (or a refusal to answer);
4. the turn is stored in the region (:mod:`datadrive.assistant.conversations`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from datadrive.assistant import genius
from datadrive.assistant.companion import TravelCompanion
from datadrive.assistant.conversations import ConversationStore
from datadrive.assistant.ego_events import EVENT_LABELS, chosen_events, ego_events, render_ego_events
from datadrive.assistant.genius import CAPABILITIES, ToolCall, plan, render, run_tool, unanswerable
from datadrive.assistant.grounding import NumberCheck, check_numbers
from datadrive.assistant.intents import Intent, parse_question
from datadrive.assistant.llm import ChatModel, ChatReply
from datadrive.assistant.tools import QUANTITIES, ToolResult
from datadrive.assistant.vehicle import Drive, VehicleLogs
from datadrive.errors import AssistantError, EndpointError, UnknownPlaceError
from datadrive.lake import Lake

__all__ = ["TOOL_SCHEMAS", "Answer", "Assistant"]


@dataclass(frozen=True)
class Answer:
    """One answer.

    Attributes:
        question: As asked.
        text: The answer shown (evidence included).
        intent: What the offline parser made of the question (``unknown`` if nothing).
        answered: Whether a tool answered it (False: "I can't tell ...").
        results: The tool results it rests on.
        backend: ``"offline"``, or ``"model:<name>"``.
        check: The number check's verdict on ``text``.
        notes: What happened on the way (a model that failed, a replaced answer).
        vehicle: The vehicle, if any.
        region: The data's region.
        lake_version: The lake version read.
        latency_s: Time to answer.
    """

    question: str
    text: str
    intent: str
    answered: bool
    results: tuple[ToolResult, ...]
    backend: str
    check: NumberCheck
    notes: tuple[str, ...] = ()
    vehicle: str | None = None
    region: str | None = None
    lake_version: int | None = None
    latency_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "intent": self.intent,
            "answered": self.answered,
            "backend": self.backend,
            "numbers_checked": self.check.ok,
            "numbers": self.check.numbers,
            "notes": list(self.notes),
            "vehicle": self.vehicle,
            "region": self.region,
            "lake_version": self.lake_version,
            "latency_s": round(self.latency_s, 4),
            "tools": [r.to_json() for r in self.results],
        }


_Q = sorted(QUANTITIES)
_TIME = {
    "type": ["number", "string"],
    "description": "seconds into the drive, or a local time of day HH:MM or HH:MM:SS",
}
TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": desc,
            "parameters": {"type": "object", "properties": props, "required": req},
        },
    }
    for name, desc, props, req in (
        (
            "signal_stats",
            "Min, max (with times), mean of a quantity over the drive or a time window.",
            {"quantity": {"type": "string", "enum": _Q}, "start": _TIME, "end": _TIME},
            ["quantity"],
        ),
        (
            "value_at",
            "A quantity's value at a moment.",
            {"quantity": {"type": "string", "enum": _Q}, "time": _TIME},
            ["quantity", "time"],
        ),
        (
            "threshold_time",
            "How long a quantity was above (or below) a threshold given in SI units (speed in m/s).",
            {
                "quantity": {"type": "string", "enum": _Q},
                "threshold": {"type": "number"},
                "above": {"type": "boolean"},
                "start": _TIME,
                "end": _TIME,
            },
            ["quantity", "threshold"],
        ),
        ("distance", "Distance driven over the drive or a window.", {"start": _TIME, "end": _TIME}, []),
        ("trip_summary", "Distance, duration, speeds, stops and harsh events of the drive.", {}, []),
        (
            "harsh_events",
            "Hard braking, hard acceleration and sharp turns "
            "(documented thresholds) in the drive or a window.",
            {
                "kind": {"type": "string", "enum": ["hard_brake", "hard_acceleration", "sharp_turn"]},
                "start": _TIME,
                "end": _TIME,
            },
            [],
        ),
        (
            "braking_near",
            "The strongest braking near a time and what radar and steering showed.",
            {"time": _TIME},
            ["time"],
        ),
        (
            "signal_health",
            "Dropouts, frozen values, out-of-range values, rate anomalies of a signal.",
            {"quantity": {"type": "string", "enum": _Q}},
            ["quantity"],
        ),
        ("can_health", "Raw CAN messages that stopped or changed rate.", {}, []),
        (
            "ego_events",
            "The vehicle's own driving events as the mining layer tagged them in the lake "
            "(hard braking, cut-ins, near misses, ...), with scenario, time window and values.",
            {"kinds": {"type": "array", "items": {"type": "string", "enum": sorted(EVENT_LABELS)}}},
            [],
        ),
        (
            "route",
            "A route through places (names, addresses, points of interest), with ETAs.",
            {"places": {"type": "array", "items": {"type": "string"}}},
            ["places"],
        ),
        (
            "pois",
            "Points of interest (fuel, charging, parking, food) along a route or near a place.",
            {
                "places": {"type": "array", "items": {"type": "string"}},
                "category": {"type": "string", "enum": ["fuel", "charging", "parking", "food"]},
            },
            ["places", "category"],
        ),
    )
]

# the telemetry harsh-event kinds a question names -> the mining event type that stands for each
_TELEMETRY_TO_MINED = {
    "hard_brake": "hard_braking",
    "hard_acceleration": "hard_acceleration",
    "sharp_turn": "high_lateral_acceleration",
}

_SYSTEM = (
    "You are the in-car assistant of a vehicle. Answer only from the tools' results: never state a number, "
    "time or place that a tool did not return. Call tools to get facts, then answer in one or two sentences, "
    "citing the signal and time window. Speeds from tools are "
    "in m/s (you may convert to km/h by multiplying by 3.6). "
    "If no tool can answer, say you can't tell from the vehicle's data."
)


class Assistant:
    """The in-car assistant over one vehicle's drives and/or one map.

    Args:
        logs: The vehicle's drives (from :func:`~datadrive.assistant.vehicle.load_vehicle`), if any.
        companion: The travel companion (a map), if any.
        model: A language model, if any (default: offline only).
        lake: The lake the drives came from: judges and audits sending data to
            ``model``, and stores conversations. Without it no model outside
            this process may see vehicle data, and nothing is stored.
        store: Whether to store conversations (needs ``lake``).
        clock: Source of "now".
    """

    def __init__(
        self,
        logs: VehicleLogs | None = None,
        *,
        companion: TravelCompanion | None = None,
        model: ChatModel | None = None,
        lake: Lake | None = None,
        store: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.logs = logs
        self.companion = companion
        self.model = model
        self.lake = lake
        self._clock = clock
        self._conversations = (
            ConversationStore(
                lake, logs.region, logs.vehicle, [d.telemetry.telemetry_id for d in logs.drives]
            )
            if store and lake is not None and logs is not None
            else None
        )
        if model is not None and logs is not None:
            self._authorize(model)

    def _authorize(self, model: ChatModel) -> None:
        """Refuse (and audit) a model outside the data's region before anything is sent to it."""
        assert self.logs is not None
        if model.region is None:
            return  # runs in this process, in the data's region
        if self.lake is None:
            raise AssistantError(
                f"model {model.name} runs in {model.region}; sending "
                "vehicle data to it needs the lake to judge the transfer"
            )
        self.lake.authorize_transfer(
            self.logs.region,
            model.region,
            f"assistant context (vehicle data) for model endpoint {model.name}",
            kind="raw",
        )

    # ------------------------------------------------------------------ asking

    def ask(
        self, question: str, *, conversation_id: str | None = None, drive: str | int | None = None
    ) -> Answer:
        """Answer one question (see the module doc)."""
        t0 = time.perf_counter()
        intent = parse_question(question)
        notes: list[str] = []
        if self.model is not None:
            try:
                answer = self._ask_model(question, intent, drive, notes)
            except EndpointError as exc:
                notes.append(f"the language model failed ({exc}); answered offline")
                answer = self._ask_offline(question, intent, drive, notes)
        else:
            answer = self._ask_offline(question, intent, drive, notes)
        answer = Answer(**{**answer.__dict__, "latency_s": time.perf_counter() - t0})
        if self._conversations is not None:
            self._conversations.append(
                conversation_id or uuid.uuid4().hex[:16],
                {
                    "question": question,
                    "answer": answer.text,
                    "intent": answer.intent,
                    "backend": answer.backend,
                    "tools": [{"tool": r.tool, "args": r.args} for r in answer.results],
                    "numbers_checked": answer.check.ok,
                    "lake_version": answer.lake_version,
                },
                now=self._clock(),
            )
        return answer

    def _drive(self, intent: Intent, drive: str | int | None) -> Drive:
        assert self.logs is not None
        which = drive if drive is not None else intent.drive
        if isinstance(which, int) and not -len(self.logs.drives) <= which < len(self.logs.drives):
            which = "last"
        return self.logs.drive(which)

    def _result(
        self,
        question: str,
        intent: Intent,
        text: str,
        results: Sequence[ToolResult],
        answered: bool,
        backend: str,
        notes: list[str],
        drive: Drive | None,
        event_clocks: Sequence[datetime] = (),
    ) -> Answer:
        clocks = list(event_clocks)
        if drive is not None:
            times = [
                f.t_s
                for r in results
                for f in list(r.facts.values()) + [x for it in r.items for x in it.values()]
                if f.t_s is not None
            ]
            times += [t for r in results for e in r.evidence for t in (e.t0_s, e.t1_s)]
            times += [0.0, drive.duration_s]
            clocks += [c for c in (drive.clock(t) for t in times) if c is not None]
        qclock = [
            r.seconds for r in (intent.start, intent.end, intent.point) if r is not None and r.kind == "clock"
        ]
        check = check_numbers(
            text, results, question_numbers=intent.numbers, clock_times=clocks, question_clock_s=qclock
        )
        return Answer(
            question,
            text,
            intent.kind,
            answered,
            tuple(results),
            backend,
            check,
            tuple(notes),
            self.logs.vehicle if self.logs else None,
            self.logs.region if self.logs else None,
            self.logs.lake_version if self.logs else None,
        )

    def _ask_offline(
        self, question: str, intent: Intent, drive_sel: str | int | None, notes: list[str]
    ) -> Answer:
        if intent.kind in ("route", "pois"):
            return self._travel(question, intent, notes)
        if intent.kind == "capabilities":
            return self._result(
                question,
                intent,
                "I can answer: " + "; ".join(CAPABILITIES) + ".",
                [],
                True,
                "offline",
                notes,
                None,
            )
        if self.logs is None:
            text = "I have no vehicle data to answer that from (no vehicle selected). " + unanswerable(
                intent, None
            )
            return self._result(question, intent, text, [], False, "offline", notes, None)
        if intent.kind == "ego_events" or (intent.kind == "events" and not self.logs.drives):
            return self._ego_events(question, intent, notes)
        if not self.logs.drives:
            text = (
                f"I can't tell that from this vehicle's data: the lake holds no telemetry of vehicle "
                f"`{self.logs.vehicle}`, only its scenarios. I can tell you about its driving "
                "events as the mining layer tagged them: hard braking, cut-ins, near misses, lane changes, "
                "pedestrians crossing ahead, speeding."
            )
            return self._result(question, intent, text, [], False, "offline", notes, None)
        if intent.kind == "drives":
            lines = [
                f"- `{d.drive_id}` ({d.source}), {genius.when(d, 0.0)}: {d.duration_s:.1f} s"
                for d in self.logs.drives
            ]
            text = (
                f"Vehicle `{self.logs.vehicle}` has {len(self.logs.drives)} "
                f"drives in region {self.logs.region}:\n" + "\n".join(lines)
            )
            return self._result(question, intent, text, [], True, "offline", notes, self.logs.drives[-1])
        drive = self._drive(intent, drive_sel)
        calls, why = plan(intent, drive)
        if not calls:
            if why == "outside":
                c0, c1 = drive.clock(0.0), drive.clock(drive.duration_s)
                span = f"{c0:%H:%M:%S} to {c1:%H:%M:%S}" if c0 and c1 else f"0 to {drive.duration_s:.1f} s"
                text = (
                    f"I can't tell that from this vehicle's data: drive `{drive.drive_id}` "
                    f"ran from {span}, and the time you asked about is outside it."
                )
            elif why:
                text = f"I can't tell that from this vehicle's data: {why}."
            else:
                text = unanswerable(intent, self.logs)
            return self._result(question, intent, text, [], False, "offline", notes, drive)
        results = [run_tool(c, drive) for c in calls]
        text = render(intent, calls, results, drive)
        answered = any(r.ok for r in results)
        if not answered:
            text = text + " " + unanswerable(intent, self.logs)
        answer = self._result(question, intent, text, results, answered, "offline", notes, drive)
        if not answer.check.ok:  # a template bug must never show an unchecked number
            return self._result(
                question,
                intent,
                "I can't give a checked answer to that: the answer's numbers did not match the tool results "
                f"({', '.join(answer.check.ungrounded)}).",
                results,
                False,
                "offline",
                [*notes, "number check failed on the template answer"],
                drive,
            )
        return answer

    def _ego_events(self, question: str, intent: Intent, notes: list[str]) -> Answer:
        """The mining layer's events of the vehicle (see :mod:`~datadrive.assistant.ego_events`)."""
        assert self.logs is not None
        kind = _TELEMETRY_TO_MINED.get(intent.event_kind or "", intent.event_kind)
        result = ego_events(self.logs.events, [kind] if kind else [])
        text = render_ego_events(result, self.logs)
        shown = chosen_events(self.logs.events, [kind] if kind else []) if result.ok else []
        clocks = [e.start_utc for e in shown if e.start_utc is not None]
        return self._result(question, intent, text, [result], result.ok, "offline", notes, None, clocks)

    def _travel(self, question: str, intent: Intent, notes: list[str]) -> Answer:
        if self.companion is None:
            text = "I have no map loaded, so I can't plan routes here. " + unanswerable(intent, self.logs)
            return self._result(question, intent, text, [], False, "offline", notes, None)
        try:
            if intent.kind == "route":
                result, _ = self.companion.route(intent.places)
                text = self.companion.render_route(result)
            else:
                assert intent.category is not None
                result = self.companion.pois(intent.places, intent.category)
                text = self.companion.render_pois(result)
        except UnknownPlaceError as exc:
            return self._result(
                question, intent, f"I can't plan that: {exc}.", [], False, "offline", notes, None
            )
        return self._result(question, intent, text, [result], True, "offline", notes, None)

    # ------------------------------------------------------------------ with a model

    def _tool(self, name: str, args: Mapping[str, Any], drive: Drive | None) -> ToolResult:
        if name in ("route", "pois"):
            if self.companion is None:
                raise AssistantError("no map is loaded")
            places = [str(p) for p in args.get("places", [])]
            if name == "route":
                return self.companion.route(places)[0]
            return self.companion.pois(places, str(args.get("category", "")))
        if name == "ego_events":
            if self.logs is None:
                raise AssistantError("no vehicle data")
            return ego_events(self.logs.events, [str(k) for k in args.get("kinds") or []])
        if drive is None:
            raise AssistantError("no vehicle data")

        def t(value: Any, default: float | None) -> float | None:
            if value is None or value == "":
                return default
            if isinstance(value, int | float):
                return float(value)
            parts = [int(p) for p in str(value).split(":")]
            if len(parts) < 2:
                return float(parts[0])
            from datetime import time as dtime

            clock = datetime.combine(
                datetime(2000, 1, 1).date(), dtime(parts[0] % 24, parts[1], parts[2] if len(parts) > 2 else 0)
            )
            placed = drive.t_of_clock(clock)
            if placed is None:
                raise AssistantError("this drive has no wall-clock time; use seconds into the drive")
            return placed

        window = [t(args.get("start"), None), t(args.get("end"), None), ""]
        quantity = str(args.get("quantity", ""))
        if (
            name in ("signal_stats", "value_at", "threshold_time", "signal_health")
            and quantity not in QUANTITIES
        ):
            raise AssistantError(f"unknown quantity {quantity!r}")
        call = {
            "signal_stats": lambda: ToolCall("signal_stats", {"quantity": quantity, "window": window}),
            "value_at": lambda: ToolCall("value_at", {"quantity": quantity, "t_s": t(args.get("time"), 0.0)}),
            "threshold_time": lambda: ToolCall(
                "threshold_time",
                {
                    "quantity": quantity,
                    "threshold": float(args["threshold"]),
                    "above": bool(args.get("above", True)),
                    "window": window,
                },
            ),
            "distance": lambda: ToolCall("distance", {"window": window}),
            "trip_summary": lambda: ToolCall("trip_summary"),
            "harsh_events": lambda: ToolCall("harsh_events", {"kind": args.get("kind"), "window": window}),
            "braking_near": lambda: ToolCall(
                "braking_near", {"t_s": t(args.get("time"), 0.0), "radius_s": 30.0}
            ),
            "signal_health": lambda: ToolCall("signal_health", {"quantity": quantity}),
            "can_health": lambda: ToolCall("can_health"),
        }.get(name)
        if call is None:
            raise AssistantError(f"no tool called {name!r}")
        return run_tool(call(), drive)

    def _ask_model(
        self, question: str, intent: Intent, drive_sel: str | int | None, notes: list[str]
    ) -> Answer:
        assert self.model is not None
        drive = self._drive(intent, drive_sel) if self.logs is not None and self.logs.drives else None
        context = ""
        if drive is not None:
            c0 = drive.clock(0.0)
            context = f" The drive is `{drive.drive_id}`, {drive.duration_s:.1f} s long" + (
                f", starting at {c0:%H:%M:%S} local time." if c0 else "."
            )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": _SYSTEM + context},
            {"role": "user", "content": question},
        ]
        results: list[ToolResult] = []
        rounds = getattr(getattr(self.model, "config", None), "max_rounds", 4)
        reply: ChatReply | None = None
        if not getattr(self.model, "chooses_tools", True):
            # a small local model only phrases: the offline parser chooses and runs the tools
            offline = self._ask_offline(question, intent, drive_sel, [])
            if not offline.results:
                return offline
            results = list(offline.results)
            messages.append(
                {
                    "role": "user",
                    "content": "Tool results:\n"
                    + json.dumps([r.to_json() for r in results], default=str)[:6000]
                    + "\nAnswer the question in one sentence using only these numbers.",
                }
            )
            rounds = -1
            reply = self.model.complete(messages, [])
        for _ in range(rounds + 1):
            reply = self.model.complete(messages, TOOL_SCHEMAS)
            if not reply.tool_calls:
                break
            messages.append(
                {
                    "role": "assistant",
                    "content": reply.content or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in reply.tool_calls
                    ],
                }
            )
            for c in reply.tool_calls:
                try:
                    r = self._tool(c.name, c.arguments, drive)
                    results.append(r)
                    content = json.dumps(r.to_json(), default=str)
                except (AssistantError, KeyError, ValueError, TypeError) as exc:
                    content = json.dumps({"error": str(exc)})
                messages.append({"role": "tool", "tool_call_id": c.id, "content": content})
        assert reply is not None
        backend = f"model:{self.model.name}"
        if reply.tool_calls or not reply.content.strip():
            raise EndpointError(f"model {self.model.name} gave no final answer")
        answer = self._result(
            question, intent, reply.content.strip(), results, bool(results), backend, notes, drive
        )
        if answer.check.ok and results:
            return answer
        reason = (
            f"stated numbers no tool returned ({', '.join(answer.check.ungrounded)})"
            if not answer.check.ok
            else "called no tool"
        )
        notes.append(f"the model's answer {reason}; replaced by the checked offline answer")
        offline = self._ask_offline(question, intent, drive_sel, notes)
        return Answer(**{**offline.__dict__, "backend": f"offline (model {self.model.name} overruled)"})
