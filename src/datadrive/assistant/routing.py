"""Routes, ETAs and points of interest on a :class:`~datadrive.assistant.maps.RoadGraph`.

* :func:`geocode` finds a named place, address, street or point of interest
  (names compared case- and accent-free; exact, then prefix, then all words,
  then a close spelling), or raises :class:`UnknownPlaceError` with the
  nearest names it knows.
* :class:`Router` runs Dijkstra's algorithm (``scipy.sparse.csgraph``) over
  the graph with travel time at the speed limit (``"time"``, the default) or
  length (``"length"``) as the edge weight; between parallel edges the
  cheaper counts. Several stops are routed leg by leg.
* ETAs: the sum over the route's edges of length / speed limit, and, where
  the lake has fleet speeds (:class:`FleetSpeeds`: the median speed that
  vehicles actually drove on an edge, from GNSS fixes matched to it), length
  / fleet speed on those edges.
* :func:`pois_along` lists points of interest of a category within a
  distance of the route, in the order they come along it.

Notation:
    V: number of graph nodes.
    E: number of directed edges.
    K: number of route edges.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from datadrive.assistant.maps import POI_CATEGORIES, Places, RoadGraph, fold, local_xy
from datadrive.core.geodesy import EnuOrigin
from datadrive.core.geometry import PolylineIndex
from datadrive.core.telemetry import Telemetry
from datadrive.core.typing import NDArrayFloat, NDArrayInt
from datadrive.errors import ConfigError, UnknownPlaceError

if TYPE_CHECKING:
    from datadrive.lake import Snapshot

__all__ = [
    "FleetSpeeds",
    "PlaceMatch",
    "PoiHit",
    "Route",
    "Router",
    "fleet_speeds_from_lake",
    "fleet_speeds_from_telemetry",
    "geocode",
    "pois_along",
]

_KIND_RANK = {"address": 0, "place": 1, "street": 2}  # between equally good matches, prefer these
_MIN_WEIGHT = 1e-6  # csgraph reads an explicit zero as "no edge"


@dataclass(frozen=True)
class PlaceMatch:
    """A place found for a query."""

    query: str
    name: str
    kind: str
    index: int
    lat_deg: float
    lon_deg: float
    xy_m: tuple[float, float]
    how: str


def geocode(places: Places, query: str) -> PlaceMatch:
    """The place ``query`` names.

    Raises:
        UnknownPlaceError: if nothing matches, with the closest names known.
    """
    q = fold(query)
    if not q:
        raise UnknownPlaceError("an empty place name")
    folded = places.folded
    exact = [i for i, n in enumerate(folded) if n == q]
    how = "exact name"
    candidates = exact
    if not candidates:
        candidates = [i for i, n in enumerate(folded) if n.startswith(q + " ")]
        how = "name prefix"
    if not candidates:
        words = set(q.split())
        candidates = [i for i, n in enumerate(folded) if words <= set(n.split())]
        how = "all words"
    if not candidates:
        close = difflib.get_close_matches(q, list(set(folded)), n=1, cutoff=0.8)
        candidates = [i for i, n in enumerate(folded) if close and n == close[0]]
        how = "close spelling"
    if not candidates:
        near = difflib.get_close_matches(q, list(set(folded)), n=3, cutoff=0.5)
        hint = ", ".join(places.name[folded.index(n)] for n in near)
        raise UnknownPlaceError(
            f"no place called {query!r} on this map" + (f" (did you mean: {hint}?)" if hint else "")
        )
    best = min(candidates, key=lambda i: (_KIND_RANK.get(places.kind[i], 3), len(folded[i]), i))
    x, y = places.xy_m[best]
    return PlaceMatch(
        query,
        places.name[best],
        places.kind[best],
        best,
        float(places.lat_deg[best]),
        float(places.lon_deg[best]),
        (float(x), float(y)),
        how,
    )


@dataclass(frozen=True)
class FleetSpeeds:
    """Speeds the fleet drove per edge.

    Attributes:
        speed_mps: ``(E,)`` median matched speed, NaN where the edge has too few samples.
        samples: ``(E,)`` number of matched GNSS fixes.
        logs: How many telemetry logs contributed.
    """

    speed_mps: NDArrayFloat
    samples: NDArrayInt
    logs: int


def fleet_speeds_from_telemetry(
    graph: RoadGraph,
    origin: EnuOrigin,
    logs: Sequence[Telemetry],
    *,
    max_match_m: float = 15.0,
    min_samples: int = 3,
    map_crs: str = "WGS-84",
    data_crs: str = "WGS-84",
) -> FleetSpeeds:
    """Median driven speed per edge from the GNSS fixes of telemetry logs.

    A fix (a signal with ``latitude``, ``longitude`` and ``speed`` channels)
    is matched to the nearest edge within ``max_match_m`` whose direction
    agrees with the fix's bearing where the signal has one (within 60
    degrees); an edge needs ``min_samples`` fixes. Fixes published in
    another datum than the map (GCJ-02 fixes on a WGS-84 map) are not
    matched: the datums differ by hundreds of metres in China (``data_crs``
    is the datum the logs' region publishes in).
    """
    num_edges = graph.num_edges
    speeds: list[NDArrayFloat] = []
    edges: list[NDArrayInt] = []
    contributing = 0
    if num_edges == 0 or data_crs != map_crs:
        return FleetSpeeds(np.full(num_edges, np.nan), np.zeros(num_edges, dtype=np.int64), 0)
    pts = np.stack([graph.xy_m[graph.src], graph.xy_m[graph.dst]], axis=1).reshape(-1, 2)
    offsets = np.arange(0, 2 * num_edges + 1, 2, dtype=np.int64)
    index = PolylineIndex(pts, offsets, step_m=5.0)
    for log in logs:
        for sig in log.signals:
            ch = sig.channels
            if not {"latitude", "longitude", "speed"} <= set(ch) or sig.timestamps_ns.shape[0] == 0:
                continue
            lat = sig.values[:, ch.index("latitude")]
            lon = sig.values[:, ch.index("longitude")]
            spd = sig.values[:, ch.index("speed")]
            ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(spd) & (spd >= 0)
            if not ok.any():
                continue
            xy = local_xy(lat[ok], lon[ok], origin)
            proj = index.project(xy, max_distance_m=max_match_m)
            found = proj.found
            if "bearing" in ch:
                bearing = np.deg2rad(sig.values[ok, ch.index("bearing")])
                heading = np.pi / 2 - bearing  # compass bearing -> east-based angle
                diff = np.abs(np.angle(np.exp(1j * (heading - proj.heading_rad))))
                found &= ~np.isfinite(bearing) | (diff < np.deg2rad(60.0)) | (spd[ok] < 1.0)
            if found.any():
                contributing += 1
                speeds.append(spd[ok][found])
                edges.append(proj.feature[found])
    counts = np.zeros(num_edges, dtype=np.int64)
    median = np.full(num_edges, np.nan)
    if edges:
        e = np.concatenate(edges)
        s = np.concatenate(speeds)
        order = np.argsort(e, kind="stable")
        e, s = e[order], s[order]
        uniq, start, cnt = np.unique(e, return_index=True, return_counts=True)
        counts[uniq] = cnt
        for u, a, c in zip(uniq, start, cnt, strict=True):
            if c >= min_samples:
                median[u] = float(np.median(s[a : a + c]))
    return FleetSpeeds(median, counts, contributing)


def fleet_speeds_from_lake(
    snapshot: Snapshot, graph: RoadGraph, origin: EnuOrigin, *, data_crs: str, map_crs: str = "WGS-84"
) -> FleetSpeeds:
    """Fleet speeds from every telemetry log the principal may read in a snapshot (a read: audited)."""
    return fleet_speeds_from_telemetry(
        graph, origin, snapshot.telemetry(), map_crs=map_crs, data_crs=data_crs
    )


@dataclass(frozen=True)
class Route:
    """A route through several stops.

    Attributes:
        stops: The stops, in order (at least two).
        edges: ``(K,)`` edge indices, in driving order.
        leg_starts: ``(L + 1,)`` offsets into ``edges`` of each leg.
        length_m: Total length.
        limit_time_s: Travel time at the speed limits.
        fleet_time_s: Travel time at fleet speeds where known (limits elsewhere).
        fleet_length_m: Length of route edges with fleet speeds.
        weight: ``"time"`` or ``"length"``: what was minimised.
        snap_m: ``(L + 1,)`` distance from each stop to the graph node it starts from.
    """

    stops: tuple[PlaceMatch, ...]
    nodes: NDArrayInt
    edges: NDArrayInt
    leg_starts: NDArrayInt
    length_m: float
    limit_time_s: float
    fleet_time_s: float
    fleet_length_m: float
    weight: str
    snap_m: NDArrayFloat


class Router:
    """Shortest paths on a road graph.

    Args:
        graph: The road graph.
        weight: ``"time"`` (length / speed limit) or ``"length"``.
        fleet: Fleet speeds per edge, for the fleet ETA.
    """

    def __init__(self, graph: RoadGraph, *, weight: str = "time", fleet: FleetSpeeds | None = None) -> None:
        if weight not in ("time", "length"):
            raise ConfigError(f"route weight must be 'time' or 'length', not {weight!r}")
        self.graph = graph
        self.weight = weight
        self.fleet = fleet

    @cached_property
    def edge_weight(self) -> NDArrayFloat:
        """``(E,)`` the weight Dijkstra minimises (what an independent check must use too)."""
        g = self.graph
        w = g.length_m / g.limit_mps if self.weight == "time" else g.length_m.copy()
        out: NDArrayFloat = np.maximum(w, _MIN_WEIGHT)
        return out

    @cached_property
    def _best_edge(self) -> tuple[object, dict[tuple[int, int], int]]:
        from scipy.sparse import csr_matrix

        g = self.graph
        w = self.edge_weight
        best: dict[tuple[int, int], int] = {}
        for e, (s, d) in enumerate(zip(g.src.tolist(), g.dst.tolist(), strict=True)):
            k = (s, d)
            if k not in best or w[e] < w[best[k]]:
                best[k] = e
        ids = np.fromiter(best.values(), dtype=np.int64, count=len(best))
        matrix = csr_matrix((w[ids], (g.src[ids], g.dst[ids])), shape=(g.num_nodes, g.num_nodes))
        return matrix, best

    def shortest(self, source: int, target: int) -> tuple[NDArrayInt, NDArrayInt, float]:
        """Node path, edge path and cost from node ``source`` to node ``target``.

        Raises:
            UnknownPlaceError: if ``target`` cannot be reached from ``source``.
        """
        from scipy.sparse.csgraph import dijkstra

        matrix, best = self._best_edge
        dist, pred = dijkstra(matrix, directed=True, indices=source, return_predecessors=True)
        if not np.isfinite(dist[target]):
            raise UnknownPlaceError("no drivable route connects these places on this map")
        nodes = [target]
        while nodes[-1] != source:
            nodes.append(int(pred[nodes[-1]]))
        nodes.reverse()
        edges = [best[(a, b)] for a, b in itertools.pairwise(nodes)]
        return np.array(nodes, dtype=np.int64), np.array(edges, dtype=np.int64), float(dist[target])

    def route(self, stops: Sequence[PlaceMatch]) -> Route:
        """The route through ``stops`` in order.

        Raises:
            UnknownPlaceError: if two stops are not connected.
        """
        if len(stops) < 2:
            raise UnknownPlaceError("a route needs at least two places")
        g = self.graph
        node_idx, snap = g.nearest_node(np.array([s.xy_m for s in stops]))
        all_nodes: list[NDArrayInt] = [node_idx[:1]]
        all_edges: list[NDArrayInt] = []
        starts = [0]
        for a, b in itertools.pairwise(node_idx):
            if a == b:
                nodes, edges = np.array([a], dtype=np.int64), np.zeros(0, dtype=np.int64)
            else:
                nodes, edges, _ = self.shortest(int(a), int(b))
            all_nodes.append(nodes[1:])
            all_edges.append(edges)
            starts.append(starts[-1] + edges.shape[0])
        edges_all = np.concatenate(all_edges) if all_edges else np.zeros(0, dtype=np.int64)
        length = g.length_m[edges_all]
        limit_t = length / g.limit_mps[edges_all]
        fleet_t = limit_t.copy()
        fleet_len = 0.0
        if self.fleet is not None:
            fs = self.fleet.speed_mps[edges_all]
            has = np.isfinite(fs) & (fs > 0.5)
            fleet_t[has] = length[has] / fs[has]
            fleet_len = float(length[has].sum())
        return Route(
            stops=tuple(stops),
            nodes=np.concatenate(all_nodes),
            edges=edges_all,
            leg_starts=np.array(starts, dtype=np.int64),
            length_m=float(length.sum()),
            limit_time_s=float(limit_t.sum()),
            fleet_time_s=float(fleet_t.sum()),
            fleet_length_m=fleet_len,
            weight=self.weight,
            snap_m=snap,
        )

    def streets(self, route: Route) -> list[tuple[str, float]]:
        """The named streets along a route, in order, with the metres driven on each."""
        out: list[tuple[str, float]] = []
        g = self.graph
        for e in route.edges.tolist():
            name = g.way_names[int(g.way[e])] or "an unnamed road"
            if out and out[-1][0] == name:
                out[-1] = (name, out[-1][1] + float(g.length_m[e]))
            else:
                out.append((name, float(g.length_m[e])))
        return out


@dataclass(frozen=True)
class PoiHit:
    """A point of interest near a route."""

    name: str
    kind: str
    lat_deg: float
    lon_deg: float
    distance_m: float
    along_m: float


def pois_along(
    route: Route, graph: RoadGraph, places: Places, category: str, *, max_distance_m: float = 250.0
) -> list[PoiHit]:
    """Points of interest of ``category`` within ``max_distance_m`` of the route, in route order.

    Raises:
        ConfigError: for an unknown category.
    """
    if category not in POI_CATEGORIES:
        raise ConfigError(f"unknown category {category!r}; known: {', '.join(POI_CATEGORIES)}")
    kinds = POI_CATEGORIES[category]
    idx = np.array([i for i, k in enumerate(places.kind) if k in kinds], dtype=np.int64)
    if idx.shape[0] == 0 or route.nodes.shape[0] == 0:
        return []
    line = graph.xy_m[route.nodes]
    if line.shape[0] == 1:
        line = np.concatenate([line, line])
    poly = PolylineIndex(line, np.array([0, line.shape[0]], dtype=np.int64), step_m=5.0)
    proj = poly.project(places.xy_m[idx], max_distance_m=max_distance_m)
    hits = [
        PoiHit(
            places.name[i],
            places.kind[i],
            float(places.lat_deg[i]),
            float(places.lon_deg[i]),
            float(proj.distance_m[j]),
            float(proj.s_m[j]),
        )
        for j, i in enumerate(idx.tolist())
        if proj.found[j]
    ]
    return sorted(hits, key=lambda h: (h.along_m, h.distance_m, h.name))


def places_xy(places: Places, origin: EnuOrigin) -> NDArrayFloat:
    """``(P, 2)`` local coordinates of places (recomputed, for sources that did not fill them)."""
    return local_xy(places.lat_deg, places.lon_deg, origin)
