"""Argoverse 2 vector maps (``log_map_archive_*.json``) as :class:`MapFeatures`.

The same JSON format ships with every AV2 motion-forecasting scenario, every
sensor-dataset log (``map/``) and every scenario-mining log. What becomes of it:

* each lane segment -> one ``LANE_CENTERLINE`` feature, id ``str(lane id)``,
  subtype the ``lane_type`` (``VEHICLE``/``BIKE``/``BUS``), ``is_intersection``
  from the file. The centerline is the one av2's
  ``ArgoverseStaticMap.get_lane_segment_centerline`` returns: both boundaries
  resampled to ``NUM_CENTERLINE_INTERP_PTS`` = 10 points by chordal arc length
  (``interp_utils.interp_arc``), then averaged (``compute_midpoint_line``),
  computed here for all lanes at once. A boundary of a single point makes a
  "pivot" centerline with one point per point of the other boundary and no z,
  as in av2. The ``centerline`` key that only motion-forecasting maps carry is
  **not** used (it is a different, denser resampling and is absent from sensor
  maps; one rule for every map keeps features comparable).
* its left and right boundaries -> two ``LANE_BOUNDARY`` features, ids
  ``"<lane id>:left"`` / ``"<lane id>:right"``, subtype the mark type, linked
  from the lane by ``LEFT_BOUNDARY`` / ``RIGHT_BOUNDARY``. A painted line
  shared by two adjacent lanes therefore appears twice, once per lane, as in
  the file.
* successors, predecessors and left/right neighbours -> ``SUCCESSOR``,
  ``PREDECESSOR``, ``LEFT_NEIGHBOR``, ``RIGHT_NEIGHBOR`` relations (those that
  name a lane outside the cropped map are dropped by :class:`MapBuilder`).
* each pedestrian crossing -> a closed ``CROSSWALK`` polygon, id
  ``"crosswalk:<id>"``: ``edge1`` then ``edge2`` reversed, closed on the first
  point, which for AV2's two-point edges is exactly av2's
  ``PedestrianCrossing.polygon`` ``[v0, v1, v3, v2, v0]``.
* each drivable area -> a closed ``DRIVABLE_AREA`` polygon, id
  ``"drivable_area:<id>"`` (the boundary with its first vertex appended, as
  av2's ``DrivableArea.from_dict``).

Where av2's centerline is not finite (a boundary whose first or last segment
has zero length, or a boundary of identical points: av2 divides by zero
there), the resampling skips zero-length segments instead; no sample map has
such a lane.

Notation:
    B: number of lane boundaries (two per lane).
    M: most points on one boundary.
    K: centerline points per lane (``NUM_CENTERLINE_INTERP_PTS``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

import numpy as np

from datadrive.core.scenario import MapBuilder, MapFeatureKind, MapFeatures, MapRelation
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.errors import CorruptFileError, InvalidValueError, SchemaMismatchError, ValidationError

__all__ = [
    "LANE_KEYS",
    "NUM_CENTERLINE_INTERP_PTS",
    "MapFile",
    "lane_centerlines",
    "parse_av2_map",
    "read_av2_map",
]

NUM_CENTERLINE_INTERP_PTS: Final[int] = 10
"""Points per centerline, av2's ``interp_utils.NUM_CENTERLINE_INTERP_PTS``."""

LANE_KEYS: Final[frozenset[str]] = frozenset(
    {
        "id",
        "is_intersection",
        "lane_type",
        "left_lane_boundary",
        "right_lane_boundary",
        "left_lane_mark_type",
        "right_lane_mark_type",
        "predecessors",
        "successors",
        "left_neighbor_id",
        "right_neighbor_id",
    }
)
"""Keys every lane segment must have (what av2's ``LaneSegment.from_dict`` reads)."""

_TOP_KEYS: Final[tuple[str, ...]] = ("lane_segments", "drivable_areas")
_XYZ: Final = itemgetter("x", "y", "z")


class MapFile:
    """The raw bytes of one map file, parsed on demand.

    Readers that also hash the file (provenance) read the bytes once and pass
    them here.

    Args:
        path: The JSON file, named in errors.
        data: Its bytes; read from ``path`` when omitted.
    """

    def __init__(self, path: Path, data: bytes | None = None) -> None:
        self.path = path
        self.data = path.read_bytes() if data is None else data

    def parse(self) -> MapFeatures:
        """The map's features; see :func:`parse_av2_map`."""
        try:
            doc = json.loads(self.data)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise CorruptFileError(self.path, f"map is not valid JSON ({exc})") from exc
        return parse_av2_map(doc, self.path)


def read_av2_map(path: Path) -> MapFeatures:
    """Read one ``log_map_archive_*.json`` file.

    Raises:
        CorruptFileError: the bytes are not JSON.
        SchemaMismatchError: a required key is missing or has the wrong type.
        InvalidValueError: non-finite coordinates, empty polylines, duplicate ids.
    """
    return MapFile(path).parse()


def parse_av2_map(doc: Any, path: Path) -> MapFeatures:
    """Turn a decoded AV2 map document into :class:`MapFeatures`.

    Args:
        doc: The decoded JSON (a dict with ``lane_segments``, ``drivable_areas``
            and optionally ``pedestrian_crossings``).
        path: The file it came from, named in errors.

    Raises:
        SchemaMismatchError: a required key is missing or has the wrong type.
        InvalidValueError: non-finite coordinates, empty polylines, duplicate ids.
    """
    if not isinstance(doc, dict):
        raise SchemaMismatchError(path, f"map JSON is a {type(doc).__name__}, expected an object")
    missing = [k for k in _TOP_KEYS if k not in doc]
    if missing:
        raise SchemaMismatchError(path, f"map JSON lacks the key(s) {', '.join(missing)}")
    lanes = _section(doc, "lane_segments", path)
    areas = _section(doc, "drivable_areas", path)
    crossings = _section(doc, "pedestrian_crossings", path) if "pedestrian_crossings" in doc else []

    try:
        return _build(lanes, crossings, areas, path)
    except ValidationError as exc:
        raise InvalidValueError(path, f"map: {exc}") from exc
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SchemaMismatchError(path, f"map has a malformed entry ({type(exc).__name__}: {exc})") from exc


def _section(doc: Mapping[str, Any], key: str, path: Path) -> list[Any]:
    value = doc[key]
    if not isinstance(value, dict):
        raise SchemaMismatchError(path, f"map key {key!r} is a {type(value).__name__}, expected an object")
    entries = list(value.values())
    for entry in entries:
        if not isinstance(entry, dict):
            raise SchemaMismatchError(path, f"an entry of {key!r} is a {type(entry).__name__}, not an object")
    return entries


def _polylines(raws: list[Any], names: list[str], path: Path) -> list[NDArrayFloat]:
    """Per polyline, ``(N_i, 3)`` float64 from lists of ``{x, y, z}`` dicts, in one numpy call."""
    for raw, name in zip(raws, names, strict=True):
        if not isinstance(raw, list) or not raw:
            raise InvalidValueError(path, f"{name} is not a non-empty list of points")
    try:
        flat = np.array([_XYZ(p) for raw in raws for p in raw], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        for raw, name in zip(raws, names, strict=True):  # find the culprit for the message
            for p in raw:
                if not isinstance(p, dict) or not {"x", "y", "z"} <= p.keys():
                    raise SchemaMismatchError(
                        path, f"{name} has a point that is not an {{x, y, z}} object"
                    ) from None
                try:
                    np.array((p["x"], p["y"], p["z"]), dtype=np.float64)
                except (TypeError, ValueError):
                    raise SchemaMismatchError(
                        path, f"{name} has a point that is not {{x, y, z}} numbers"
                    ) from None
        raise
    if flat.ndim != 2 or flat.shape[1] != 3:
        raise SchemaMismatchError(path, "map points are not {x, y, z} numbers")
    finite = np.isfinite(flat).all(axis=1)
    lengths = np.fromiter((len(r) for r in raws), dtype=np.int64, count=len(raws))
    ends = np.cumsum(lengths)
    if not finite.all():
        bad = int(np.searchsorted(ends, int(np.argmin(finite)), side="right"))
        raise InvalidValueError(path, f"{names[bad]} has a non-finite coordinate")
    return np.split(flat, ends[:-1])


def _opt_id(value: Any, what: str, path: Path) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SchemaMismatchError(path, f"{what} is a {type(value).__name__}, expected an id")
    return str(value)


def _id_list(value: Any, what: str, path: Path) -> list[str]:
    if not isinstance(value, list):
        raise SchemaMismatchError(path, f"{what} is a {type(value).__name__}, expected a list of ids")
    return [_opt_id(v, what, path) or "" for v in value]


def _build(lanes: list[Any], crossings: list[Any], areas: list[Any], path: Path) -> MapFeatures:
    lane_ids: list[str] = []
    raws: list[Any] = []
    names: list[str] = []
    for lane in lanes:
        missing = LANE_KEYS - lane.keys()
        if missing:
            raise SchemaMismatchError(
                path, f"lane segment {lane.get('id', '?')} lacks the key(s) {', '.join(sorted(missing))}"
            )
        lid = _opt_id(lane["id"], "a lane id", path)
        if lid is None:
            raise SchemaMismatchError(path, "a lane segment has a null id")
        lane_ids.append(lid)
        raws += (lane["left_lane_boundary"], lane["right_lane_boundary"])
        names += (f"lane {lid} left boundary", f"lane {lid} right boundary")
    crossing_ids: list[str] = []
    for pc in crossings:
        cid = _opt_id(pc.get("id"), "a pedestrian crossing id", path)
        if cid is None or "edge1" not in pc or "edge2" not in pc:
            raise SchemaMismatchError(path, "a pedestrian crossing lacks id, edge1 or edge2")
        crossing_ids.append(cid)
        raws += (pc["edge1"], pc["edge2"])
        names += (f"crosswalk {cid} edge1", f"crosswalk {cid} edge2")
    area_ids: list[str] = []
    for da in areas:
        did = _opt_id(da.get("id"), "a drivable area id", path)
        if did is None or "area_boundary" not in da:
            raise SchemaMismatchError(path, "a drivable area lacks id or area_boundary")
        area_ids.append(did)
        raws.append(da["area_boundary"])
        names.append(f"drivable area {did}")
    polylines = _polylines(raws, names, path)
    nl, nc = len(lanes), len(crossings)
    bounds = polylines[: 2 * nl]
    edges = polylines[2 * nl : 2 * nl + 2 * nc]
    rings = polylines[2 * nl + 2 * nc :]

    builder = MapBuilder()
    centerlines = lane_centerlines(bounds[0::2], bounds[1::2])
    for lane, lid, centerline in zip(lanes, lane_ids, centerlines, strict=True):
        builder.add(
            lid,
            MapFeatureKind.LANE_CENTERLINE,
            centerline,
            subtype=str(lane["lane_type"]),
            is_intersection=bool(lane["is_intersection"]),
        )
    for i, (lane, lid) in enumerate(zip(lanes, lane_ids, strict=True)):
        for side, relation, pts in (
            ("left", MapRelation.LEFT_BOUNDARY, bounds[2 * i]),
            ("right", MapRelation.RIGHT_BOUNDARY, bounds[2 * i + 1]),
        ):
            bid = f"{lid}:{side}"
            builder.add(bid, MapFeatureKind.LANE_BOUNDARY, pts, subtype=str(lane[f"{side}_lane_mark_type"]))
            builder.relate(lid, relation, bid)
        for succ in _id_list(lane["successors"], f"lane {lid} successors", path):
            builder.relate(lid, MapRelation.SUCCESSOR, succ)
        for pred in _id_list(lane["predecessors"], f"lane {lid} predecessors", path):
            builder.relate(lid, MapRelation.PREDECESSOR, pred)
        left = _opt_id(lane["left_neighbor_id"], f"lane {lid} left_neighbor_id", path)
        if left is not None:
            builder.relate(lid, MapRelation.LEFT_NEIGHBOR, left)
        right = _opt_id(lane["right_neighbor_id"], f"lane {lid} right_neighbor_id", path)
        if right is not None:
            builder.relate(lid, MapRelation.RIGHT_NEIGHBOR, right)
    for i, cid in enumerate(crossing_ids):
        e1, e2 = edges[2 * i], edges[2 * i + 1]
        builder.add(f"crosswalk:{cid}", MapFeatureKind.CROSSWALK, np.concatenate([e1, e2[::-1], e1[:1]]))
    for did, ring in zip(area_ids, rings, strict=True):
        builder.add(f"drivable_area:{did}", MapFeatureKind.DRIVABLE_AREA, np.concatenate([ring, ring[:1]]))
    return builder.build()


# --------------------------------------------------------------------------- centerlines


def lane_centerlines(
    left: list[NDArrayFloat], right: list[NDArrayFloat], num_interp_pts: int = NUM_CENTERLINE_INTERP_PTS
) -> list[NDArrayFloat]:
    """av2's ``compute_midpoint_line`` for many lanes at once.

    Args:
        left: per lane, ``(M_i, 3)`` left boundary points.
        right: per lane, ``(N_i, 3)`` right boundary points.
        num_interp_pts: K, centerline points for the regular case.

    Returns:
        Per lane, the ``(K, 3)`` centerline, or for a lane with a one-point
        boundary av2's pivot centerline of ``(max(M_i, N_i), 2)`` points.
    """
    out: list[NDArrayFloat | None] = [None] * len(left)
    regular: list[int] = []
    for i, (lb, rb) in enumerate(zip(left, right, strict=True)):
        if lb.shape[0] == 1 or rb.shape[0] == 1:  # cul-de-sac: pivot around the single point
            single, arc = (lb, rb) if lb.shape[0] == 1 else (rb, lb)
            out[i] = ((single + arc) / 2.0)[:, :2]
        else:
            regular.append(i)
    if regular:
        polylines = [b for i in regular for b in (left[i], right[i])]
        even = _interp_arc_many(polylines, num_interp_pts)  # (B, K, 3)
        mid = (even[0::2] + even[1::2]) / 2.0
        for j, i in enumerate(regular):
            out[i] = mid[j]
    return [o for o in out if o is not None]


def _interp_arc_many(polylines: list[NDArrayFloat], t: int) -> NDArrayFloat:
    """av2's ``interp_utils.interp_arc(t, points)`` for B polylines of >= 2 points.

    Returns:
        ``(B, t, 3)`` points equally spaced in chordal arc length.
    """
    b = len(polylines)
    n = np.array([p.shape[0] for p in polylines], dtype=np.int64)  # (B,)
    m = int(n.max())
    pts = np.zeros((b, m, 3), dtype=np.float64)
    row = np.repeat(np.arange(b), n)
    col = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    pts[row, col] = np.concatenate(polylines)
    has_seg = np.arange(m - 1)[None, :] < (n - 1)[:, None]  # (B, M-1)

    d = np.diff(pts, axis=1)
    chordlen = np.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2])
    chordlen = np.where(has_seg, chordlen, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = _interp_rows(pts, chordlen, has_seg, n, t)
    bad = ~np.all(np.isfinite(result), axis=(1, 2))
    for i in np.flatnonzero(bad):  # av2 divides by zero here; skip zero-length segments instead
        result[i] = _interp_robust(polylines[i], t)
    return result


def _interp_rows(
    pts: NDArrayFloat, chordlen: NDArrayFloat, has_seg: NDArrayBool, n: NDArrayInt, t: int
) -> NDArrayFloat:
    b = pts.shape[0]
    eq = np.linspace(0, 1, t)  # (t,)
    chordlen = chordlen / chordlen.sum(axis=1, keepdims=True)
    cumarc = np.zeros((b, chordlen.shape[1] + 1), dtype=np.float64)
    np.cumsum(chordlen, axis=1, out=cumarc[:, 1:])
    has_pt = np.concatenate([np.ones((b, 1), dtype=np.bool_), has_seg], axis=1)
    cumarc_m = np.where(has_pt, cumarc, np.inf)
    # np.digitize(eq, cumarc) for increasing bins == number of bins <= eq
    tbins = np.count_nonzero(cumarc_m[:, None, :] <= eq[None, :, None], axis=2)  # (B, t)
    tbins[(tbins <= 0) | (eq <= 0)[None, :]] = 1
    last = np.broadcast_to((n - 1)[:, None], tbins.shape)
    fix = (tbins >= n[:, None]) | (eq >= 1)[None, :]
    tbins[fix] = last[fix]
    rows = np.arange(b)[:, None]
    s = (eq[None, :] - cumarc[rows, tbins - 1]) / chordlen[rows, tbins - 1]
    anchors = pts[rows, tbins - 1]
    offsets = (pts[rows, tbins] - pts[rows, tbins - 1]) * s[..., None]
    result: NDArrayFloat = anchors + offsets
    return result


def _interp_robust(points: NDArrayFloat, t: int) -> NDArrayFloat:
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 0])
    pts = points[keep]
    if pts.shape[0] < 2:
        return np.repeat(pts[:1], t, axis=0)
    n = np.array([pts.shape[0]], dtype=np.int64)
    d = np.diff(pts, axis=0)[None]
    chordlen = np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2)
    has_seg = np.ones_like(chordlen, dtype=np.bool_)
    result: NDArrayFloat = _interp_rows(pts[None], chordlen, has_seg, n, t)[0]
    return result
