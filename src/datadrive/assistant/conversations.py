"""Conversations: stored in the data's region, pseudonymised, erased with the vehicle's data.

A conversation about a vehicle is derived from its data, so it is a derived
artefact of the data's region (``Lake.put_derived``, kind
``conversations``: ``<root>/derived/conversations/<tenant>/<vehicle>/
<conversation>.jsonl``, through the region's storage: a folder or an object
store), never elsewhere. Each line is one turn: time, the asker's
pseudonym (``HMAC-SHA256(tenant key, name)``, never the name), the
question, the answer, the tools called, the backend, the lake version read,
and the number check's verdict. The vehicle id is already the lake's
pseudonym.

Each conversation is stored with the telemetry logs it was about as its
erasure keys (``erase_with``): the lake's own erasure of any of those logs
(``datadrive lake erase --telemetry ...``, ``datadrive assistant erase``)
deletes it, with no knowledge of the assistant.
:func:`erase_vehicle_conversations` deletes a vehicle's conversations alone
(the telemetry stays), audited.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from datadrive.errors import LakeError
from datadrive.lake import ErasureKeys, Lake

__all__ = ["ConversationStore", "erase_vehicle_conversations"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
KIND = "conversations"


def _safe(name: str) -> str:
    """A file-system-safe form of an id (pseudonyms are hex; telemetry ids may hold '|')."""
    return _SAFE.sub("_", name)[:120] or "_"


class ConversationStore:
    """Conversations of one tenant about one vehicle, in the vehicle's region.

    Args:
        lake: The lake (its principal's tenant key pseudonymises the asker).
        region: The data's region.
        vehicle: The vehicle's (pseudonymised) id.
        telemetry_ids: The vehicle's telemetry logs the conversations are
            about: erasing any of them erases the conversations.
    """

    def __init__(self, lake: Lake, region: str, vehicle: str, telemetry_ids: Sequence[str] = ()) -> None:
        self.lake = lake
        self.region = region
        self.vehicle = vehicle
        self.keys = ErasureKeys(telemetry_ids=tuple(telemetry_ids))
        tenant = lake.principal.tenant
        self._key = lake.config.tenant(tenant).key
        self._prefix = f"{_safe(tenant)}/{_safe(vehicle)}/"
        self._text: dict[str, bytes] = {}

    def pseudonym(self, name: str) -> str:
        """The asker's pseudonym."""
        return "user-" + hmac.new(self._key, name.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def _name(self, conversation_id: str) -> str:
        return f"{self._prefix}{_safe(conversation_id)}.jsonl"

    def _raw(self, conversation_id: str) -> bytes:
        try:
            data, _ = self.lake.read_derived(self.region, f"derived/{KIND}/{self._name(conversation_id)}")
        except LakeError as exc:
            if "no artefact" in str(exc):
                return b""
            raise
        return data

    def append(self, conversation_id: str, turn: Mapping[str, Any], *, now: datetime) -> str:
        """Append one turn; returns the conversation's artefact name (``derived/conversations/...``).

        Raises:
            StorageError: if the region's storage refuses the write.
        """
        if conversation_id not in self._text:
            self._text[conversation_id] = self._raw(conversation_id)
        record = {"time": now.isoformat(), "user": self.pseudonym(self.lake.principal.name), **turn}
        text = self._text[conversation_id] + (json.dumps(record, default=str) + "\n").encode()
        obj = self.lake.put_derived(
            self.region, KIND, self._name(conversation_id), text, erase_with=self.keys
        )  # object stores have no append: the file is rewritten
        self._text[conversation_id] = text
        self.lake.record(
            self.region, "converse", f"assistant conversation about vehicle {self.vehicle}", {"turns": 1}
        )
        return obj

    def read(self, conversation_id: str) -> list[dict[str, Any]]:
        """The turns of one conversation (empty if none)."""
        raw = self._raw(conversation_id)
        return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]

    def conversations(self) -> list[str]:
        """Ids of the stored conversations about the vehicle."""
        names = self.lake.list_derived(self.region, KIND, self._prefix)
        return sorted(n.rsplit("/", 1)[-1][: -len(".jsonl")] for n in names if n.endswith(".jsonl"))


def erase_vehicle_conversations(lake: Lake, region: str, vehicle: str) -> int:
    """Delete every conversation of the principal's tenant about ``vehicle`` (the telemetry stays).

    Returns:
        How many were deleted. Each deletion and the whole are audited.
    """
    store = ConversationStore(lake, region, vehicle)
    n = sum(lake.delete_derived(region, f"derived/{KIND}/{store._name(c)}") for c in store.conversations())
    lake.record(region, "erase", f"assistant conversations about vehicle {vehicle}", {"conversations": n})
    return n
