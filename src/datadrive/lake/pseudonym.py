"""Pseudonyms for vehicle and person identifiers, keyed per tenant.

At ingest, every identifier of a vehicle or a person is replaced by
``HMAC-SHA256(tenant key, identifier)``, shortened and given a readable
prefix. The same identifier always maps to the same pseudonym within a
tenant, so joins and "all logs of this vehicle" still work; without the key
(kept in the tenant's key file, never in the lake) the mapping cannot be
inverted, even for small id spaces such as ``veh-1 .. veh-100``.

What is an identifier (:data:`DEFAULT_RULES`, :data:`IDENTIFIER_KEYS`; the
table in ``docs/lake.md`` lists them):

* values under identifier keys in ``metadata.extras`` (``dongle_id``,
  ``vehicle_name``, ``host``, ``vin``, ``driver_id``, ...), for every source;
* per-source patterns for identifiers embedded in names: nuPlan's vehicle
  name in log names (``2021.09.16.14.14.03_veh-45_00441_00502``),
  comma2k19's dongle id in route names, Lyft's ``host-a101``.

Every identifier found is replaced wherever it appears: scenario and
telemetry ids, track ids, the source path, the member, and any string in
``extras``. Nothing else changes, so a lake read equals the pseudonymised
record exactly.

Rules match **case-insensitively**, and an identifier's pseudonym is that
of its lower-case form (``B0C9D2329AD1606B`` and ``b0c9d2329ad1606b`` are
one vehicle). **Paths** (the source path, the member, the input path) are
scrubbed with the rules of *every* source, not only the record's: a
comma2k19 dongle id in the folder of a nuPlan database is still a dongle id.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from datadrive.core.scenario import Scenario, ScenarioMetadata
from datadrive.core.telemetry import Telemetry

__all__ = ["DEFAULT_RULES", "IDENTIFIER_KEYS", "IdentifierRule", "Pseudonymizer"]


@dataclass(frozen=True)
class IdentifierRule:
    """An identifier embedded in names of one family of sources.

    Attributes:
        name: What it is, for the docs.
        kind: ``"vehicle"`` or ``"person"``.
        sources: ``fnmatch`` patterns of source (adapter) names it applies to.
        pattern: Regular expression; each match is one identifier.
        prefix: Prefix of the pseudonym (keeps names readable).
        digits: Hex digits of the HMAC kept after the prefix.
        example: A raw example, for the docs.
    """

    name: str
    kind: str
    sources: tuple[str, ...]
    pattern: str
    prefix: str
    digits: int
    example: str


DEFAULT_RULES: tuple[IdentifierRule, ...] = (
    IdentifierRule(
        name="nuPlan vehicle name (in log names and paths)",
        kind="vehicle",
        sources=("nuplan*",),
        pattern=r"(?<![0-9a-z])veh-\d+",
        prefix="veh-",
        digits=12,
        example="2021.09.16.14.14.03_veh-45_00441_00502",
    ),
    IdentifierRule(
        name="comma2k19 dongle id (in route names and paths)",
        kind="vehicle",
        sources=("comma2k19*",),
        pattern=r"(?<![0-9a-fA-F])[0-9a-f]{16}(?![0-9a-fA-F])",
        prefix="",
        digits=16,
        example="b0c9d2329ad1606b|2018-08-02--08-34-47--40",
    ),
    IdentifierRule(
        name="Lyft Level 5 host (vehicle) name",
        kind="vehicle",
        sources=("lyft*",),
        pattern=r"(?<![0-9a-z])host-[0-9a-z]+",
        prefix="host-",
        digits=12,
        example="host-a101",
    ),
)
"""Identifiers embedded in names, per source family."""

IDENTIFIER_KEYS: frozenset[str] = frozenset(
    {
        "dongle_id",
        "vehicle_name",
        "vehicle_id",
        "vin",
        "host",
        "driver",
        "driver_id",
        "driver_name",
        "operator_id",
        "person_id",
        "user_id",
        "license_plate",
    }
)
"""Keys of ``metadata.extras`` (at any depth) whose string values identify a vehicle or a person."""


@dataclass(frozen=True)
class Pseudonymizer:
    """Replaces identifiers with keyed pseudonyms.

    Attributes:
        key: The tenant's secret HMAC key.
        rules: Identifiers embedded in names.
        identifier_keys: ``extras`` keys whose values are identifiers.
    """

    key: bytes = field(repr=False)
    rules: tuple[IdentifierRule, ...] = DEFAULT_RULES
    identifier_keys: frozenset[str] = IDENTIFIER_KEYS

    def pseudonym(self, value: str, rule: IdentifierRule | None = None) -> str:
        """The pseudonym of one identifier (``pid-<hex>`` when no rule names it).

        Identifiers named by a rule are case-insensitive: their lower-case
        form is what is keyed.
        """
        canonical = value.lower() if rule is not None else value
        digest = hmac.new(self.key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
        if rule is None:
            return "pid-" + digest[:16]
        return rule.prefix + digest[: rule.digits]

    def scrubber(self, source: str, extras: Mapping[str, Any], *, path: bool = False) -> Callable[[str], str]:
        """A function replacing every identifier of a record of ``source`` in a string.

        Args:
            source: The record's source name (selects the rules).
            extras: The record's raw ``extras`` (their identifier values are
                replaced wherever they appear).
            path: The strings are file paths: every rule applies, whatever
                the source (a folder may be named after any vehicle).
        """
        return self._scrubber(source, self._literals(extras), path=path)

    def _literals(self, extras: Mapping[str, Any]) -> list[str]:
        """The identifier values of ``extras`` replaced wherever they appear, longest first."""
        values = {v for v in _identifier_values(extras, self.identifier_keys) if len(v) >= _MIN_LITERAL}
        return sorted(values, key=len, reverse=True)

    def _scrubber(self, source: str, literals: Sequence[str], *, path: bool = False) -> Callable[[str], str]:
        rules = [r for r in self.rules if path or any(fnmatch.fnmatchcase(source, p) for p in r.sources)]
        parts = [f"(?P<r{i}>{r.pattern})" for i, r in enumerate(rules)]
        if literals:
            parts.insert(0, "(?P<lit>" + "|".join(re.escape(v) for v in literals) + ")")
        if not parts:
            return _identity
        regex = re.compile("|".join(parts), re.IGNORECASE)

        def replace(m: re.Match[str]) -> str:
            text = m.group(0)
            for i, r in enumerate(rules):
                if m.group(f"r{i}") is not None:
                    return self.pseudonym(text, r)
            # a literal from extras: use the rule it matches, if any, so both paths agree
            for r in rules:
                if re.fullmatch(r.pattern, text, re.IGNORECASE):
                    return self.pseudonym(text, r)
            return self.pseudonym(text)

        def scrub(s: str) -> str:
            return regex.sub(replace, s) if s else s

        return scrub

    def scenario(self, s: Scenario) -> Scenario:
        """``s`` with every identifier replaced."""
        literals = self._literals(s.metadata.extras)
        return self._scenario(s, self._scrubber(s.source, literals), literals)

    def telemetry(self, t: Telemetry) -> Telemetry:
        """``t`` (and its ego scenario) with every identifier replaced."""
        scrub = self.scrubber(t.source, t.metadata.extras)
        return dataclasses.replace(
            t,
            telemetry_id=scrub(t.telemetry_id),
            metadata=self._metadata(t.metadata, scrub, self.scrubber(t.source, t.metadata.extras, path=True)),
            ego=None
            if t.ego is None
            else self._scenario(t.ego, scrub, self._literals(t.ego.metadata.extras)),
        )

    def text(self, source: str, value: str) -> str:
        """``value`` (a path) with every identifier replaced (every source's rules, any case)."""
        return self.scrubber(source, {}, path=True)(value)

    def _scenario(self, s: Scenario, scrub: Callable[[str], str], literals: Sequence[str]) -> Scenario:
        """``s`` with ``scrub`` applied; ``literals``: its own extras' identifier values (for its paths)."""
        before = s.tracks.track_ids.tolist()
        ids = [scrub(t) for t in before]
        tracks = s.tracks
        if ids != before:
            tracks = dataclasses.replace(tracks, track_ids=np.asarray(ids, dtype=np.str_).reshape(-1))
        scrub_path = self._scrubber(s.source, literals, path=True)
        return dataclasses.replace(
            s,
            scenario_id=scrub(s.scenario_id),
            tracks=tracks,
            metadata=self._metadata(s.metadata, scrub, scrub_path),
        )

    def _metadata(
        self, md: ScenarioMetadata, scrub: Callable[[str], str], scrub_path: Callable[[str], str]
    ) -> ScenarioMetadata:
        pv = md.provenance
        provenance = dataclasses.replace(
            pv, source_path=scrub_path(pv.source_path), member=scrub_path(pv.member)
        )
        extras = _map_strings(json.loads(json.dumps(dict(md.extras))), scrub)
        return dataclasses.replace(md, provenance=provenance, extras=MappingProxyType(extras))


_MIN_LITERAL = 3
"""Identifier values shorter than this are replaced where they stand, not inside other strings."""


_LEAVES = frozenset({str, int, float, bool, type(None)})


def _identity(s: str) -> str:
    return s


def _identifier_values(obj: Any, keys: frozenset[str]) -> list[str]:
    out: list[str] = []
    if type(obj) in _LEAVES:  # most values: no ABC check
        return out
    if isinstance(obj, dict | Mapping):
        for k, v in obj.items():
            if k in keys and isinstance(v, str) and v:
                out.append(v)
            elif k in keys and isinstance(v, list):
                out.extend(x for x in v if isinstance(x, str) and x)
            else:
                out.extend(_identifier_values(v, keys))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_identifier_values(v, keys))
    return out


def _map_strings(obj: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_strings(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_strings(v, fn) for v in obj]
    return obj
