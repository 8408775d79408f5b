"""NGSIM roadway geometry (``boundaries<road>.txt``, ``centerlines<road>.txt``) as map-only Scenarios.

These text files (from sisl/NGSIM.jl, "extracted from the NGSIM CAD files")
describe the road of an NGSIM study area::

    BOUNDARIES                  CENTERLINES
    <count>                     <count>
    BOUNDARY 1                  CENTERLINE
    <points>                    <name>
    x y                         <points>
    ...                         x y ...

Each file is its own unit: a boundaries file holds lane lines only, a
centerlines file lanes only, and nothing in either links one to the other
(no ids in common), so joining them would add no information; both come out
in the same frame, so a user can overlay them. Each becomes a map-only
Scenario (zero tracks, one timestamp; see
:func:`datadrive.sources.base.map_only_scenario`): boundaries ->
``LANE_BOUNDARY`` ``"boundary_<i>"`` (subtype ``"ngsim_boundary"``; they lie
half a lane from the centerlines, so they are lane lines, edges included),
centerlines -> ``LANE_CENTERLINE`` named as in the file (``"centerline1"``,
``"auxilliary"``). There are no relations and no heights (z is NaN).

Units and frame:
    The coordinates are NGSIM's ``Global_X``/``Global_Y``: California State
    Plane coordinates (NAD83) in **US survey feet**, the unit California's
    statutes define for State Plane coordinates (Public Resources Code
    section 8810 ff.; EPSG:2229 "NAD83 / California zone 5 (ftUS)" for US-101
    in Los Angeles, EPSG:2227 zone 3 for I-80 in Emeryville: converted to
    latitude/longitude, the files land on those freeways). They are converted
    to metres with the US survey foot, 1200/3937 m exactly: the international
    foot (0.3048 m) differs by 2 ppm, which moves points 3.8 m at these
    coordinates (about 1.97e6 m east of the zone's false origin, 5.7e5 m north).
    Multiplying by 1200/3937 turns EPSG:2229 coordinates into the same
    projection in metres, EPSG:26945 (zone 3: EPSG:26943), so the frame is
    named ``"state_plane_epsg_26945"`` (``..._26943``); for a roadway this
    module does not know the frame is ``"ngsim_<road>_state_plane_m"``. The
    factor and the CRS are recorded in ``extras``.

Bad input: a wrong first line, counts that are not integers or disagree with
the points that follow, a truncated block, non-numeric or non-finite
coordinates, duplicate centerline names raise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import numpy as np

from datadrive.core.scenario import MapBuilder, MapFeatureKind, Scenario
from datadrive.core.typing import NDArrayFloat
from datadrive.errors import CorruptFileError, EmptyLogError, InvalidValueError, SchemaMismatchError
from datadrive.sources.base import Adapter, file_head, map_only_scenario

__all__ = [
    "METRES_PER_US_SURVEY_FOOT",
    "ROADWAYS",
    "NgsimRoadway",
    "NgsimRoadwayAdapter",
    "parse_ngsim_roadway",
]

METRES_PER_US_SURVEY_FOOT: Final[float] = 1200.0 / 3937.0
"""The US survey foot, the unit of California State Plane coordinates."""


@dataclass(frozen=True)
class NgsimRoadway:
    """What is known about one NGSIM study area's roadway files.

    Attributes:
        location: The road's name.
        source_crs: CRS of the files' coordinates (US survey feet).
        crs: The same projection in metres, the frame datadrive uses.
    """

    location: str
    source_crs: str
    crs: str


ROADWAYS: Final[Mapping[str, NgsimRoadway]] = {
    "101": NgsimRoadway("US-101", "EPSG:2229", "EPSG:26945"),
    "80": NgsimRoadway("I-80", "EPSG:2227", "EPSG:26943"),
}
"""Known roadways by the suffix of their file names (``boundaries101.txt``)."""

_FILE = re.compile(r"(boundaries|centerlines)(.*)\.txt", re.IGNORECASE)
_HEADERS: Final[Mapping[str, str]] = {"BOUNDARIES": "BOUNDARY", "CENTERLINES": "CENTERLINE"}


@dataclass(frozen=True)
class _Polyline:
    name: str
    points_ft: NDArrayFloat  # (N, 2)


def parse_ngsim_roadway(data: bytes, path: Path) -> tuple[str, list[_Polyline]]:
    """The file's kind (``"BOUNDARIES"``/``"CENTERLINES"``) and its polylines, in feet.

    Raises:
        CorruptFileError: not text, a wrong header, a truncated block.
        SchemaMismatchError: a block header that is not ``BOUNDARY i``/``CENTERLINE``.
        InvalidValueError: counts or coordinates that are not numbers, non-finite
            coordinates, duplicate names.
        EmptyLogError: a file that declares no polylines.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CorruptFileError(path, "not an ASCII text file") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or lines[0] not in _HEADERS:
        first = lines[0][:40] if lines else ""
        raise CorruptFileError(path, f"the first line is {first!r}, not BOUNDARIES or CENTERLINES")
    kind = lines[0]
    pos = 1

    def take(what: str) -> str:
        nonlocal pos
        if pos >= len(lines):
            raise CorruptFileError(path, f"the file ends where {what} should be (truncated?)")
        pos += 1
        return lines[pos - 1]

    def count(what: str) -> int:
        raw = take(what)
        try:
            n = int(raw)
        except ValueError:
            raise InvalidValueError(path, f"{what} is {raw[:40]!r}, not an integer (line {pos})") from None
        if n < 0:
            raise InvalidValueError(path, f"{what} is negative (line {pos})")
        return n

    num = count("the number of polylines")
    if num == 0:
        raise EmptyLogError(path, "the file declares no polylines")
    out: list[_Polyline] = []
    for i in range(1, num + 1):
        header = take(f"polyline {i}")
        if kind == "BOUNDARIES":
            if header != f"BOUNDARY {i}":
                raise SchemaMismatchError(path, f"line {pos} is {header[:40]!r}, expected 'BOUNDARY {i}'")
            name = f"boundary_{i}"
        else:
            if header != "CENTERLINE":
                raise SchemaMismatchError(path, f"line {pos} is {header[:40]!r}, expected 'CENTERLINE'")
            name = take(f"the name of centerline {i}")
            if not name:
                raise InvalidValueError(path, f"centerline {i} has an empty name (line {pos})")
        n = count(f"the point count of {name}")
        if pos + n > len(lines):
            raise CorruptFileError(path, f"{name} declares {n} points but the file ends first (truncated?)")
        tokens = " ".join(lines[pos : pos + n]).split()
        if len(tokens) != 2 * n or any(len(line.split()) != 2 for line in lines[pos : pos + n]):
            raise InvalidValueError(path, f"{name}: every point line must hold exactly two numbers")
        try:
            pts = np.asarray(tokens, dtype=np.str_).astype(np.float64).reshape(n, 2)
        except ValueError as exc:
            raise InvalidValueError(path, f"{name}: a coordinate is not a number ({exc})") from None
        if not np.isfinite(pts).all():
            raise InvalidValueError(path, f"{name}: a coordinate is NaN or infinite")
        if n == 0:
            raise InvalidValueError(path, f"{name} has no points")
        pos += n
        out.append(_Polyline(name, pts))
    if pos != len(lines):
        raise CorruptFileError(path, f"line {pos + 1} follows the last declared polyline")
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise InvalidValueError(path, "two centerlines share a name")
    return kind, out


class NgsimRoadwayAdapter(Adapter):
    """Reads NGSIM roadway text files as map-only Scenarios (zero tracks)."""

    name: ClassVar[str] = "ngsim_roadway"
    version: ClassVar[str] = "1"
    unit: ClassVar[Literal["file", "dir"]] = "file"
    licence: ClassVar[str] = "NGSIM: US DOT public data (files from sisl/NGSIM.jl, MIT)"
    download_hint: ClassVar[str] = (
        "https://github.com/sisl/NGSIM.jl/tree/master/data (boundaries*.txt, centerlines*.txt)"
    )

    def claims(self, path: Path) -> bool:
        if _FILE.fullmatch(path.name) is None:
            return False
        return file_head(path, 16).startswith((b"BOUNDARIES", b"CENTERLINES"))

    def _read(self, path: Path) -> Iterator[Scenario]:
        data = path.read_bytes()
        kind, polylines = parse_ngsim_roadway(data, path)
        match = _FILE.fullmatch(path.name)
        road = match.group(2).strip("_-. ") if match else ""
        known = ROADWAYS.get(road)
        builder = MapBuilder()
        feature_kind = (
            MapFeatureKind.LANE_BOUNDARY if kind == "BOUNDARIES" else MapFeatureKind.LANE_CENTERLINE
        )
        subtype = "ngsim_boundary" if kind == "BOUNDARIES" else "ngsim_centerline"
        for p in polylines:
            builder.add(p.name, feature_kind, p.points_ft * METRES_PER_US_SURVEY_FOOT, subtype=subtype)
        if known is not None:
            frame = f"state_plane_{known.crs.replace(':', '_').lower()}"
        else:
            frame = f"ngsim_{road or 'unknown'}_state_plane_m"
        extras: dict[str, Any] = {
            "roadway": road,
            "file_kind": kind.lower(),
            "source_unit": "US survey foot",
            "metres_per_source_unit": METRES_PER_US_SURVEY_FOOT,
            "source_crs": None if known is None else known.source_crs,
            "crs": None if known is None else known.crs,
            "num_polylines": len(polylines),
            "num_points": int(sum(p.points_ft.shape[0] for p in polylines)),
        }
        metadata = self.metadata(
            path,
            hashlib.sha256(data).hexdigest(),
            frame=frame,
            location=None if known is None else known.location,
            extras=extras,
        )
        yield map_only_scenario(f"ngsim_{path.stem}", self.name, builder.build(), metadata)
