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
            ``source`` and ``tenant``), ``"expression"`` or ``"events"``
            (mining; recorded for the mining layer to evaluate).
        text: The query text (for ``events``: the event types, comma-separated).
    """

    kind: str
    text: str

    @classmethod
    def sql(cls, text: str) -> DatasetQuery:
        return cls("sql", text)

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "text": self.text}


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
                query=DatasetQuery(doc["query"]["kind"], doc["query"]["text"]),
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
            )
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
    """The scenarios rows (tenant, source, scenario_id, group column) for the selected keys."""
    import pyarrow.dataset as pads

    ids = sorted({k[2] for k in keys})
    columns = ["tenant", "source", "scenario_id", group_by]
    try:
        table = snap.table(
            "scenarios",
            columns=columns,
            filter=pads.field("scenario_id").isin(ids) & pads.field("telemetry_id").is_null(),
        )
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"cannot split by {group_by!r}: {exc}") from exc
    return table


def create_dataset(
    lake: Lake,
    name: str,
    region: str,
    query: DatasetQuery,
    *,
    split: SplitSpec = DEFAULT_SPLIT,
    code: Mapping[str, Any] | None = None,
    as_of: int | None = None,
    now: datetime | None = None,
) -> DatasetManifest:
    """Run ``query`` on ``region``, split what it selects by log, store it as the next version of ``name``.

    Args:
        lake: The lake, as the principal who builds the dataset.
        name: The dataset's name.
        region: Where it is built (and stays).
        query: What selects the scenarios (``sql`` here; mining queries are
            resolved to SQL-able ids by the mining layer).
        split: Fractions, group column, seed.
        code: Versions to record (``git_commit``, tagger versions); the
            datadrive version is always recorded.
        as_of: A lake version (the latest by default).
        now: The creation time (tests pin it).

    Raises:
        EmptyDatasetError: if the query selects no scenario.
        DatasetError: if the query does not return ``scenario_id``.
        ResidencyError: if the principal may not read the region (audited).
    """
    import datadrive

    ref = DatasetRef.parse(name)
    if query.kind != "sql":
        raise DatasetError(
            f"{query.kind} queries are resolved by the mining layer; give create_dataset the SQL it selected"
        )
    snap = lake.snapshot(region, as_of)
    result = snap.sql(query.text).table
    if "scenario_id" not in result.column_names:
        raise DatasetError(
            "the query must return a scenario_id column "
            f"(it returned: {', '.join(result.column_names) or 'none'})"
        )
    ids = [x for x in result.column("scenario_id").to_pylist() if x is not None]
    if not ids:
        raise EmptyDatasetError(
            f"the query matched no scenario in {region} at lake version {snap.version}: {query.text}"
        )
    want_source = set(result.column("source").to_pylist()) if "source" in result.column_names else None
    want_tenant = set(result.column("tenant").to_pylist()) if "tenant" in result.column_names else None
    rows = _snapshot_rows(snap, [(None, None, i) for i in ids], split.group_by).to_pydict()
    selected = [
        (t, s, i, str(g))
        for t, s, i, g in zip(
            rows["tenant"], rows["source"], rows["scenario_id"], rows[split.group_by], strict=True
        )
        if (want_source is None or s in want_source) and (want_tenant is None or t in want_tenant)
    ]
    if not selected:
        raise EmptyDatasetError(
            f"the query's scenario ids match no scenario in {region} at lake version {snap.version} "
            "(telemetry-only rows are not scenarios)"
        )
    selected.sort()
    groups = [f"{s}:{g}" for _, s, _, g in selected]  # a group never spans sources
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
        code={"datadrive": datadrive.__version__, **(code or {})},
        created_by=lake.principal.name,
        created_at=(now or datetime.now(UTC)).isoformat(),
        tenants=tuple(t for t, _, _, _ in selected),
        sources=tuple(s for _, s, _, _ in selected),
        scenario_ids=tuple(i for _, _, i, _ in selected),
        groups=tuple(groups),
        splits=tuple(splits),
    )
    lake.put_derived(region, _KIND, f"{ref.name}/v{version:04d}.json", manifest.to_json(), derived_from=snap)
    return manifest


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
