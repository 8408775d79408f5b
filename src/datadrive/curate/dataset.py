"""Curated datasets: a query, the lake version it ran on, and the scenarios it selected, split by log.

A dataset is a versioned, in-region artefact (``derived/dataset/<name>/vNNNN.json``
under the region's root, written through :meth:`datadrive.lake.Lake.put_derived`),
so it obeys the region's residency and export rules like every other
derived artefact. It records:

* the query (``sql`` today; mining expressions and event types when the
  mining layer provides them), the lake version it ran on, the code
  versions (datadrive, git commit, taggers);
* every selected scenario (tenant, source, id), its log group and its split.

Splits are made per *log*: every scenario of one group (by default the
lake's ``input_sha256``: one recorded input file or folder, e.g. one nuPlan
log or one INTERACTION recording cut into windows) lands in the same split.
Groups are ordered by a seeded hash and cut at the split fractions of the
scenario count, so the assignment is deterministic and does not move when
unrelated scenarios are added.

>>> query = DatasetQuery.sql("SELECT scenario_id FROM scenarios")  # doctest: +SKIP
>>> ds = create_dataset(lake, "cutins", "cn-north", query)  # doctest: +SKIP
>>> ds.version, ds.counts()  # doctest: +SKIP
(1, {'train': 80, 'val': 10, 'test': 10})
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from datadrive.errors import DatasetError, EmptyDatasetError, LakeError

if TYPE_CHECKING:
    from datadrive.lake import Lake, Snapshot

__all__ = [
    "DATASET_FORMAT",
    "DEFAULT_SPLIT",
    "DatasetDiff",
    "DatasetManifest",
    "DatasetQuery",
    "DatasetRef",
    "SplitSpec",
    "assign_splits",
    "create_dataset",
    "dataset_events",
    "diff_datasets",
    "list_datasets",
    "load_dataset",
]

DATASET_FORMAT = "datadrive-dataset/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_KIND = "dataset"


@dataclass(frozen=True)
class SplitSpec:
    """Split names and their fractions of the scenarios (``80/10/10`` is train/val/test).

    Attributes:
        fractions: Split name -> fraction; they sum to 1.
        group_by: The ``scenarios`` column whose value keeps a log together.
        seed: Seed of the group order.
    """

    fractions: Mapping[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    group_by: str = "input_sha256"
    seed: int = 0

    @classmethod
    def parse(cls, text: str, *, group_by: str = "input_sha256", seed: int = 0) -> SplitSpec:
        """``"80/10/10"`` (train/val/test), ``"90/10"`` (train/val), or ``"train=8,val=1,test=1"``."""
        parts = [p.strip() for p in text.replace(",", "/").split("/") if p.strip()]
        names: list[str]
        values: list[float]
        try:
            if all("=" in p for p in parts):
                names = [p.split("=", 1)[0].strip() for p in parts]
                values = [float(p.split("=", 1)[1]) for p in parts]
            else:
                values = [float(p) for p in parts]
                names = ["train", "val", "test"][: len(values)]
                if len(values) > 3:
                    raise ValueError
        except ValueError:
            raise DatasetError(
                f"--split {text!r}: write fractions like 80/10/10 (train/val/test) or train=8,val=1,test=1"
            ) from None
        total = sum(values)
        if not parts or total <= 0 or any(v < 0 for v in values) or len(set(names)) != len(names):
            raise DatasetError(
                f"--split {text!r}: fractions must be non-negative, named once, with a positive sum"
            )
        return cls({n: v / total for n, v in zip(names, values, strict=True)}, group_by, seed)

    def as_json(self) -> dict[str, Any]:
        return {"fractions": dict(self.fractions), "group_by": self.group_by, "seed": self.seed}


DEFAULT_SPLIT = SplitSpec()


@dataclass(frozen=True)
class DatasetQuery:
    """What selects a dataset's scenarios.

    Attributes:
        kind: ``"sql"`` (a ``SELECT`` returning ``scenario_id``, optionally
            ``source`` and ``tenant``), ``"expression"`` (the mining query
            language), ``"description"`` (plain English, translated offline
            by the mining layer) or ``"events"`` (event types only).
        text: The query text (for ``events``: the event types, comma-separated).
        events: Event types a scenario must have one of, besides ``text``
            (``expression`` and ``description`` queries; mining's events at
            the current tagger version).
    """

    kind: str
    text: str
    events: tuple[str, ...] = ()

    @classmethod
    def sql(cls, text: str) -> DatasetQuery:
        return cls("sql", text)

    @classmethod
    def mining(
        cls, expression: str | None = None, events: Sequence[str] = (), description: str | None = None
    ) -> DatasetQuery:
        """A query the mining layer answers: an expression or a description, and/or event types."""
        if expression is not None and description is not None:
            raise DatasetError("give a query expression or a description, not both")
        if expression is not None:
            return cls("expression", expression, tuple(events))
        if description is not None:
            return cls("description", description, tuple(events))
        if not events:
            raise DatasetError("a mining query needs an expression, a description or event types")
        return cls("events", ",".join(events), tuple(events))

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": self.text}
        if self.events:
            out["events"] = list(self.events)
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DatasetQuery:
        return cls(str(doc["kind"]), str(doc["text"]), tuple(doc.get("events", ())))


@dataclass(frozen=True)
class DatasetRef:
    """``[REGION/]NAME[@vN]``: a dataset by name, optionally its region and version."""

    name: str
    region: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        region: str | None = None
        rest = text
        if "/" in text:
            region, rest = text.split("/", 1)
        name, _, ver = rest.partition("@")
        version: int | None = None
        if ver:
            try:
                version = int(ver.lstrip("v"))
            except ValueError:
                raise DatasetError(
                    f"dataset {text!r}: the version after @ must be a number (NAME@v3)"
                ) from None
        if not _NAME.match(name):
            raise DatasetError(f"dataset name {name!r}: letters, digits, '.', '-' and '_' only")
        return cls(name, region or None, version)

    def __str__(self) -> str:
        out = self.name if self.region is None else f"{self.region}/{self.name}"
        return out if self.version is None else f"{out}@v{self.version}"


@dataclass(frozen=True)
class DatasetManifest:
    """One version of a curated dataset.

    Attributes:
        name: The dataset's name.
        version: Its version (1, 2, ...).
        region: The region it was built in and must stay in.
        tenant: The tenant that built it.
        lake_version: The lake version its query read.
        query: What selected the scenarios.
        split: How they were split.
        code: Versions of what built it (``datadrive``, ``git_commit``, taggers).
        created_by: Who built it.
        created_at: When (ISO 8601, UTC).
        tenants: ``(N,)`` str, each scenario's tenant.
        sources: ``(N,)`` str.
        scenario_ids: ``(N,)`` str.
        groups: ``(N,)`` str, the log group that decided the split.
        splits: ``(N,)`` str, the split of each scenario.
        balance: How the selection was balanced, if it was.
        batches: ``(N,)`` str, each scenario's ingest batch at ``lake_version``
            (where its rows are stored: a cache build reads only those
            files); empty when not recorded (datasets written before).
    """

    name: str
    version: int
    region: str
    tenant: str
    lake_version: int
    query: DatasetQuery
    split: SplitSpec
    code: Mapping[str, Any]
    created_by: str
    created_at: str
    tenants: tuple[str, ...]
    sources: tuple[str, ...]
    scenario_ids: tuple[str, ...]
    groups: tuple[str, ...]
    splits: tuple[str, ...]
    balance: Mapping[str, Any] | None = None
    batches: tuple[str, ...] = ()

    @property
    def ref(self) -> DatasetRef:
        return DatasetRef(self.name, self.region, self.version)

    @property
    def object_name(self) -> str:
        """The artefact's lake name, ``derived/dataset/<name>/vNNNN.json``."""
        return f"derived/{_KIND}/{self.name}/v{self.version:04d}.json"

    def __len__(self) -> int:
        return len(self.scenario_ids)

    def counts(self) -> dict[str, int]:
        """Scenarios per split, in the split spec's order."""
        values, counts = np.unique(np.asarray(self.splits, dtype=np.str_), return_counts=True)
        found = dict(zip(values.tolist(), counts.tolist(), strict=True))
        return {name: int(found.get(name, 0)) for name in self.split.fractions}

    def keys(self, split: str | None = None) -> list[tuple[str, str, str]]:
        """``(tenant, source, scenario_id)`` of every scenario (of one split), in manifest order."""
        if split is not None and split not in self.split.fractions:
            raise DatasetError(
                f"dataset {self.ref} has no split {split!r} (splits: {', '.join(self.split.fractions)})"
            )
        return [
            (t, s, i)
            for t, s, i, sp in zip(self.tenants, self.sources, self.scenario_ids, self.splits, strict=True)
            if split is None or sp == split
        ]

    def ids_digest(self) -> str:
        """SHA-256 of the sorted scenario keys and splits: equal digests, equal datasets."""
        h = hashlib.sha256()
        for row in sorted(zip(self.tenants, self.sources, self.scenario_ids, self.splits, strict=True)):
            h.update("\0".join(row).encode() + b"\n")
        return h.hexdigest()

    def to_json(self) -> bytes:
        doc = {
            "format": DATASET_FORMAT,
            "name": self.name,
            "version": self.version,
            "region": self.region,
            "tenant": self.tenant,
            "lake_version": self.lake_version,
            "query": self.query.as_json(),
            "split": self.split.as_json(),
            "balance": None if self.balance is None else dict(self.balance),
            "code": dict(self.code),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "counts": self.counts(),
            "ids_sha256": self.ids_digest(),
            "scenarios": {
                "tenant": list(self.tenants),
                "source": list(self.sources),
                "scenario_id": list(self.scenario_ids),
                "group": list(self.groups),
                "split": list(self.splits),
                **({"batch": list(self.batches)} if self.batches else {}),
            },
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> DatasetManifest:
        try:
            doc = json.loads(data.decode())
            if doc.get("format") != DATASET_FORMAT:
                raise DatasetError(
                    f"{where}: format {doc.get('format')!r}; this datadrive reads {DATASET_FORMAT}"
                )
            sc = doc["scenarios"]
            split = SplitSpec(
                dict(doc["split"]["fractions"]), doc["split"]["group_by"], int(doc["split"]["seed"])
            )
            out = cls(
                name=doc["name"],
                version=int(doc["version"]),
                region=doc["region"],
                tenant=doc["tenant"],
                lake_version=int(doc["lake_version"]),
                query=DatasetQuery.from_json(doc["query"]),
                split=split,
                code=dict(doc["code"]),
                created_by=doc["created_by"],
                created_at=doc["created_at"],
                tenants=tuple(sc["tenant"]),
                sources=tuple(sc["source"]),
                scenario_ids=tuple(sc["scenario_id"]),
                groups=tuple(sc["group"]),
                splits=tuple(sc["split"]),
                balance=doc.get("balance"),
                batches=tuple(sc.get("batch") or ()),
            )
            if out.batches and len(out.batches) != len(out.scenario_ids):
                raise ValueError("one batch per scenario expected")
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{where}: not a readable dataset manifest ({exc})") from exc
        if out.ids_digest() != doc.get("ids_sha256"):
            raise DatasetError(f"{where}: its scenario list does not match its recorded digest (altered?)")
        return out


def assign_splits(groups: Sequence[str], spec: SplitSpec) -> list[str]:
    """The split of each scenario, whole groups at a time.

    Groups are ordered by ``sha256(seed, group)`` and walked in that order,
    each going to the split whose share of the scenarios is furthest below
    its target fraction (ties: the split listed first). When there are at
    least as many groups as splits with a positive fraction, each such
    split gets at least one group.

    Args:
        groups: ``(N,)`` the group of each scenario.
        spec: Fractions and seed.

    Returns:
        ``(N,)`` split names.
    """
    names = [n for n, f in spec.fractions.items() if f > 0]
    if not names:
        raise DatasetError("every split fraction is zero")
    uniq, inverse, sizes = np.unique(
        np.asarray(groups, dtype=np.str_), return_inverse=True, return_counts=True
    )
    order = sorted(
        range(len(uniq)), key=lambda g: hashlib.sha256(f"{spec.seed}\0{uniq[g]}".encode()).hexdigest()
    )
    target = np.array([spec.fractions[n] for n in names])
    filled = np.zeros(len(names))
    group_split = np.zeros(len(uniq), dtype=np.int64)
    total = float(sizes.sum())
    must_seed = len(uniq) >= len(names)
    for rank, g in enumerate(order):
        if must_seed and rank < len(names):
            # the first groups seed every split, smallest target first, so none stays empty
            choice = int(np.argsort(target, kind="stable")[rank])
        else:
            deficit = target - filled / total
            choice = int(np.argmax(deficit))
        group_split[g] = choice
        filled[choice] += sizes[g]
    return [names[int(group_split[i])] for i in inverse]


def _snapshot_rows(snap: Snapshot, keys: Sequence[tuple[str | None, str | None, str]], group_by: str) -> Any:
    """The scenarios rows (tenant, source, scenario_id, group column, batch) for the selected keys."""
    import pyarrow.dataset as pads

    ids = sorted({k[2] for k in keys})
    columns = list(dict.fromkeys(["tenant", "source", "scenario_id", group_by, "batch_id"]))
    try:
        table = snap.table(
            "scenarios",
            columns=columns,
            filter=pads.field("scenario_id").isin(ids) & pads.field("telemetry_id").is_null(),
        )
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"cannot split by {group_by!r}: {exc}") from exc
    return table


def _batches(found: Sequence[str | None]) -> tuple[str, ...]:
    """The batch ids, or none at all when one is unknown (a cache build then finds them itself)."""
    return () if any(b is None for b in found) else tuple(str(b) for b in found)


def create_dataset(
    lake: Lake,
    name: str,
    region: str,
    query: DatasetQuery,
    *,
    split: SplitSpec = DEFAULT_SPLIT,
    balance_by: str | None = None,
    code: Mapping[str, Any] | None = None,
    as_of: int | None = None,
    now: datetime | None = None,
) -> DatasetManifest:
    """Run ``query`` on ``region``, split what it selects by log, store it as the next version of ``name``.

    Args:
        lake: The lake, as the principal who builds the dataset.
        name: The dataset's name.
        region: Where it is built (and stays).
        query: What selects the scenarios: SQL, or a mining query
            (:meth:`DatasetQuery.mining`: an expression, a description and/or
            event types, answered by :func:`datadrive.mining.select_scenarios`
            on the same pinned snapshot; the tagger version is recorded).
        split: Fractions, group column, seed.
        balance_by: ``"event_type"``: keep as many scenarios of each event
            type as of the rarest one (scenarios without events count as the
            type ``"none"``), chosen by the split's seed; recorded in
            :attr:`DatasetManifest.balance`.
        code: Versions to record (``git_commit``, tagger versions); the
            datadrive version is always recorded.
        as_of: A lake version (the latest by default).
        now: The creation time (tests pin it).

    Raises:
        EmptyDatasetError: if the query selects no scenario.
        DatasetError: if the query does not return ``scenario_id``, or an
            unknown ``balance_by``.
        MiningError: a mining query that does not parse, unknown event types,
            or a region whose scenarios are not all tagged yet.
        ResidencyError: if the principal may not read the region (audited).
    """
    import datadrive

    ref = DatasetRef.parse(name)
    if balance_by not in (None, "event_type"):
        raise DatasetError(f"cannot balance by {balance_by!r}: only by event_type")
    snap = lake.snapshot(region, as_of)
    versions: dict[str, Any] = {"datadrive": datadrive.__version__}
    events_of: Mapping[tuple[str | None, str, str], Sequence[str]] | None = None
    if query.kind == "sql":
        keys = _sql_keys(snap, query)
        if balance_by is not None:
            events_of, versions["tagger_version"] = _mined_events(snap)
    elif query.kind in ("expression", "description", "events"):
        from datadrive.mining import select_scenarios

        pick = select_scenarios(
            snap,
            expression=query.text if query.kind == "expression" else None,
            description=query.text if query.kind == "description" else None,
            events=list(query.events) or None,
            with_events=balance_by is not None,
        )
        if not pick.keys:
            also = (
                f" with events {', '.join(query.events)}" if query.kind != "events" and query.events else ""
            )
            raise EmptyDatasetError(
                f"the {query.kind} query matched no scenario in {region} at lake version {snap.version}: "
                f"{query.text}{also}"
            )
        keys = [(t, s_, i) for t, s_, i in pick.keys]
        # the tagger decides which events exist (and the expression's per-state features come from
        # the same mining version): recorded even for an expression alone
        versions["tagger_version"] = pick.tagger_version or _tagger_version()
        if pick.expression is not None:
            versions["mining_expression"] = pick.expression
        events_of = pick.events_by_scenario if balance_by is not None else None
    else:
        raise DatasetError(f"unknown query kind {query.kind!r} (sql, expression, description, events)")
    rows = _snapshot_rows(snap, keys, split.group_by).to_pydict()
    wanted = {(t, s_, i) for t, s_, i in keys}
    by_id = {i for _, _, i in keys}
    any_key = all(t is None and s_ is None for t, s_, _ in keys)
    selected = [
        (t, s_, i, str(g))
        for t, s_, i, g in zip(
            rows["tenant"], rows["source"], rows["scenario_id"], rows[split.group_by], strict=True
        )
        if (i in by_id if any_key else _key_match(wanted, t, s_, i))
    ]
    if not selected:
        raise EmptyDatasetError(
            f"the query's scenario ids match no scenario in {region} at lake version {snap.version} "
            "(telemetry-only rows are not scenarios)"
        )
    selected.sort()
    batch_of = {
        (t, s_, i): b
        for t, s_, i, b in zip(
            rows["tenant"], rows["source"], rows["scenario_id"], rows["batch_id"], strict=True
        )
    }
    balance: dict[str, Any] | None = None
    if balance_by is not None and events_of is not None:
        selected, balance = _balance_by_event_type(selected, events_of, split.seed)
    groups = [f"{s_}:{g}" for _, s_, _, g in selected]  # a group never spans sources
    splits = assign_splits(groups, split)
    version = _next_version(lake, region, ref.name)
    manifest = DatasetManifest(
        name=ref.name,
        version=version,
        region=region,
        tenant=lake.principal.tenant,
        lake_version=snap.version,
        query=query,
        split=split,
        code={**versions, **(code or {})},
        created_by=lake.principal.name,
        created_at=(now or datetime.now(UTC)).isoformat(),
        tenants=tuple(t for t, _, _, _ in selected),
        sources=tuple(s_ for _, s_, _, _ in selected),
        scenario_ids=tuple(i for _, _, i, _ in selected),
        groups=tuple(groups),
        splits=tuple(splits),
        balance=balance,
        batches=_batches([batch_of.get((t, s_, i)) for t, s_, i, _ in selected]),
    )
    lake.put_derived(region, _KIND, f"{ref.name}/v{version:04d}.json", manifest.to_json(), derived_from=snap)
    return manifest


_Key = tuple[str | None, str | None, str]


def _key_match(wanted: set[_Key], tenant: str | None, source: str | None, sid: str) -> bool:
    """A row matches a key with the same id whose tenant and source are equal or left open (None)."""
    return (
        (tenant, source, sid) in wanted
        or (None, source, sid) in wanted
        or (tenant, None, sid) in wanted
        or (None, None, sid) in wanted
    )


def _sql_keys(snap: Snapshot, query: DatasetQuery) -> list[_Key]:
    """``(tenant, source, scenario_id)`` of the SQL rows (tenant, source None when not returned)."""
    result = snap.sql(query.text).table
    if "scenario_id" not in result.column_names:
        raise DatasetError(
            "the query must return a scenario_id column "
            f"(it returned: {', '.join(result.column_names) or 'none'})"
        )
    n = result.num_rows
    ids = result.column("scenario_id").to_pylist()
    sources = result.column("source").to_pylist() if "source" in result.column_names else [None] * n
    tenants = result.column("tenant").to_pylist() if "tenant" in result.column_names else [None] * n
    keys = [(t, s_, i) for t, s_, i in zip(tenants, sources, ids, strict=True) if i is not None]
    if not keys:
        raise EmptyDatasetError(
            f"the query matched no scenario in {snap.region} at lake version {snap.version}: {query.text}"
        )
    return keys


def _tagger_version() -> str:
    from datadrive.mining import tagger_version

    return tagger_version()


def _mined_events(snap: Snapshot) -> tuple[dict[tuple[str | None, str, str], tuple[str, ...]], str]:
    """Each scenario's event types in the mining events (current tagger version), and that version."""
    from datadrive.mining import scenario_events, tagger_version

    return dict(scenario_events(snap)), tagger_version()


def _balance_by_event_type(
    selected: list[tuple[str, str, str, str]],
    events_of: Mapping[tuple[str | None, str, str], Sequence[str]],
    seed: int,
) -> tuple[list[tuple[str, str, str, str]], dict[str, Any]]:
    """As many scenarios of each event type as of the rarest (``none``: no event), picked by a seeded hash.

    Rarest types are filled first, so a scenario with a rare and a common
    event counts towards the rare one; each scenario is kept once.
    """

    def types_of(row: tuple[str, str, str, str]) -> tuple[str, ...]:
        t, s_, i, _ = row
        return tuple(events_of.get((t, s_, i), ())) or ("none",)

    members: dict[str, list[int]] = {}
    for n, row in enumerate(selected):
        for et in types_of(row):
            members.setdefault(et, []).append(n)
    before = {et: len(v) for et, v in sorted(members.items())}
    cap = min(before.values())
    order = sorted(before, key=lambda et: (before[et], et))

    def rank(n: int) -> str:
        t, s_, i, _ = selected[n]
        return hashlib.sha256(f"{seed}\0{t}\0{s_}\0{i}".encode()).hexdigest()

    kept: set[int] = set()
    after = dict.fromkeys(before, 0)
    for et in order:
        have = sum(1 for n in kept if et in types_of(selected[n]))
        for n in sorted(members[et], key=rank):
            if have >= cap:
                break
            if n not in kept:
                kept.add(n)
                for other in types_of(selected[n]):
                    after[other] += 1
                have += 1
    out = [selected[n] for n in sorted(kept)]
    return out, {"by": "event_type", "cap": cap, "seed": seed, "before": before, "after": after}


def dataset_events(lake: Lake, manifest: DatasetManifest) -> tuple[dict[str, list[str]], str] | None:
    """Scenario key (``tenant/source/id``) -> its mining event types, at the dataset's lake version.

    The events are those of the current tagger version (returned with them);
    ``None`` when the region has no mining tables at that version (nothing
    was tagged), so an evaluation says it has no per-event cut rather than
    reporting every event as absent.
    """
    from datadrive.errors import DatadriveError
    from datadrive.mining import scenario_events, tagger_version

    snap = lake.snapshot(manifest.region, manifest.lake_version)
    try:
        found = scenario_events(snap, require_current=False)
    except DatadriveError:
        return None
    wanted = set(zip(manifest.tenants, manifest.sources, manifest.scenario_ids, strict=True))
    out = {f"{t}/{s_}/{i}": list(ev) for (t, s_, i), ev in found.items() if (t, s_, i) in wanted}
    return out, tagger_version()


def _versions(lake: Lake, region: str, name: str) -> list[int]:
    out = []
    for obj in lake.list_derived(region, _KIND, f"{name}/"):
        m = re.fullmatch(rf"derived/{_KIND}/{re.escape(name)}/v(\d+)\.json", obj)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def _next_version(lake: Lake, region: str, name: str) -> int:
    found = _versions(lake, region, name)
    return (found[-1] + 1) if found else 1


def load_dataset(lake: Lake, ref: DatasetRef | str, region: str) -> DatasetManifest:
    """A dataset version (the latest unless ``ref`` names one) stored in ``region``.

    Raises:
        DatasetError: if there is no such dataset or version.
        ResidencyError: if ``ref`` names another region than ``region`` (the
            dataset cannot be materialised there; audited in both), or the
            principal may not read the region's datasets (audited).
    """
    r = DatasetRef.parse(ref) if isinstance(ref, str) else ref
    if r.region is not None and r.region != region:
        from datadrive.errors import ResidencyError

        exc = ResidencyError(
            f"dataset {r} was built in region {r.region}; it cannot be materialised in {region}: "
            "its scenarios stay in the region where they were recorded"
        )
        for where in (r.region, region):
            if where in lake.config.regions:
                lake.audit_event(
                    where,
                    "materialise",
                    f"derived/{_KIND}/{r.name} -> {region}",
                    outcome="refused",
                    detail={"reason": str(exc), "error": "ResidencyError"},
                )
        raise exc
    versions = _versions(lake, region, r.name)
    if not versions:
        raise DatasetError(f"no dataset {r.name!r} in region {region} (see `datadrive dataset list`)")
    version = versions[-1] if r.version is None else r.version
    if version not in versions:
        raise DatasetError(
            f"dataset {r.name!r} has no version {version} in {region} "
            f"(versions: {', '.join(map(str, versions))})"
        )
    obj = f"derived/{_KIND}/{r.name}/v{version:04d}.json"
    try:
        data, _ = lake.read_derived(region, obj)
    except LakeError:
        raise
    manifest = DatasetManifest.from_json(data, obj)
    if manifest.region != region:
        raise DatasetError(f"{obj} says it belongs to region {manifest.region}, but it is stored in {region}")
    return manifest


def list_datasets(lake: Lake, region: str) -> list[DatasetManifest]:
    """The latest version of every dataset in ``region``, by name."""
    names = sorted(
        {
            obj.split("/")[2]
            for obj in lake.list_derived(region, _KIND)
            if re.fullmatch(rf"derived/{_KIND}/[^/]+/v\d+\.json", obj)
        }
    )
    return [load_dataset(lake, DatasetRef(n), region) for n in names]


@dataclass(frozen=True)
class DatasetDiff:
    """What changed between two dataset versions.

    Attributes:
        a: The first dataset.
        b: The second.
        added: Keys ``(tenant, source, scenario_id)`` in ``b`` only.
        removed: Keys in ``a`` only.
        moved: Keys in both whose split changed, with ``(from, to)``.
        changed: Recorded fields that differ (query, lake version, split, code).
    """

    a: DatasetManifest
    b: DatasetManifest
    added: tuple[tuple[str, str, str], ...]
    removed: tuple[tuple[str, str, str], ...]
    moved: tuple[tuple[tuple[str, str, str], str, str], ...]
    changed: Mapping[str, tuple[Any, Any]]

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.moved)


def diff_datasets(a: DatasetManifest, b: DatasetManifest) -> DatasetDiff:
    """Compare two datasets (two versions of one, or two different ones)."""
    sa = dict(zip(a.keys(), a.splits, strict=True))
    sb = dict(zip(b.keys(), b.splits, strict=True))
    added = tuple(sorted(set(sb) - set(sa)))
    removed = tuple(sorted(set(sa) - set(sb)))
    moved = tuple(sorted((k, sa[k], sb[k]) for k in set(sa) & set(sb) if sa[k] != sb[k]))
    changed: dict[str, tuple[Any, Any]] = {}
    for field_name, va, vb in (
        ("query", a.query.as_json(), b.query.as_json()),
        ("lake_version", a.lake_version, b.lake_version),
        ("split", a.split.as_json(), b.split.as_json()),
        ("code", dict(a.code), dict(b.code)),
        ("region", a.region, b.region),
    ):
        if va != vb:
            changed[field_name] = (va, vb)
    return DatasetDiff(a, b, added, removed, moved, changed)
