"""Conversations: stored in the data's region, pseudonymised, erasable with the vehicle's data.

A conversation about a vehicle is derived from its data, so it lives under
the region's root (``<root>/assistant/conversations/<tenant>/<vehicle>/
<conversation>.jsonl``, through the region's storage: a folder or an object
store), never elsewhere. Each line is one turn: time, the asker's
pseudonym (``HMAC-SHA256(tenant key, name)``, never the name), the
question, the answer, the tools called, the backend, the lake version read,
and the number check's verdict. The vehicle id is already the lake's
pseudonym.

:func:`erase_vehicle_conversations` deletes every conversation about a
vehicle (files removed, not versioned: nothing to vacuum) and audits it;
``datadrive assistant erase`` runs it together with the lake's erasure of
the vehicle's telemetry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pyarrow.fs as pafs

from datadrive.errors import StorageError
from datadrive.lake import Lake

__all__ = ["ConversationStore", "erase_vehicle_conversations"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
    """A file-system-safe form of an id (pseudonyms are hex; telemetry ids may hold '|')."""
    return _SAFE.sub("_", name)[:120] or "_"


class ConversationStore:
    """Conversations of one tenant about one vehicle, in the vehicle's region.

    Args:
        lake: The lake (its principal's tenant key pseudonymises the asker).
        region: The data's region.
        vehicle: The vehicle's (pseudonymised) id.
    """

    def __init__(self, lake: Lake, region: str, vehicle: str) -> None:
        self.lake = lake
        self.region = region
        self.vehicle = vehicle
        self._root = lake.config.region(region).root
        tenant = lake.principal.tenant
        self._key = lake.config.tenant(tenant).key
        self._folder = self._root.path("assistant", "conversations", _safe(tenant), _safe(vehicle))

    def pseudonym(self, name: str) -> str:
        """The asker's pseudonym."""
        return "user-" + hmac.new(self._key, name.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def append(self, conversation_id: str, turn: Mapping[str, Any], *, now: datetime) -> str:
        """Append one turn; returns the conversation's path under the root.

        Raises:
            StorageError: if the region's storage refuses the write.
        """
        fs = self._root.filesystem()
        path = f"{self._folder}/{_safe(conversation_id)}.jsonl"
        record = {"time": now.isoformat(), "user": self.pseudonym(self.lake.principal.name), **turn}
        line = (json.dumps(record, default=str) + "\n").encode()
        try:
            fs.create_dir(self._folder, recursive=True)
            old = b""
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.File:
                with fs.open_input_stream(path) as fh:
                    old = fh.read()
            with fs.open_output_stream(path) as fh:  # object stores have no append: rewrite the file
                fh.write(old + line)
        except OSError as exc:
            raise StorageError(f"cannot store the conversation in region {self.region}: {exc}") from exc
        self.lake.record(
            self.region, "converse", f"assistant conversation about vehicle {self.vehicle}", {"turns": 1}
        )
        return path

    def read(self, conversation_id: str) -> list[dict[str, Any]]:
        """The turns of one conversation (empty if none)."""
        fs = self._root.filesystem()
        path = f"{self._folder}/{_safe(conversation_id)}.jsonl"
        if fs.get_file_info(path).type != pafs.FileType.File:
            return []
        with fs.open_input_stream(path) as fh:
            return [json.loads(line) for line in fh.read().decode().splitlines() if line.strip()]

    def conversations(self) -> list[str]:
        """Ids of the stored conversations about the vehicle."""
        fs = self._root.filesystem()
        if fs.get_file_info(self._folder).type != pafs.FileType.Directory:
            return []
        infos = fs.get_file_info(pafs.FileSelector(self._folder))
        return sorted(i.base_name[: -len(".jsonl")] for i in infos if i.base_name.endswith(".jsonl"))


def erase_vehicle_conversations(lake: Lake, region: str, vehicle: str) -> int:
    """Delete every conversation of the principal's tenant about ``vehicle``; returns how many. Audited."""
    store = ConversationStore(lake, region, vehicle)
    names = store.conversations()
    fs = store._root.filesystem()
    if names:
        try:
            fs.delete_dir(store._folder)
        except OSError as exc:
            raise StorageError(f"cannot erase the conversations in region {region}: {exc}") from exc
    lake.record(
        region, "erase", f"assistant conversations about vehicle {vehicle}", {"conversations": len(names)}
    )
    return len(names)
