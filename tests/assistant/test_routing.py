"""Routing against an independent graph library, hand-checked ETAs and POIs, GCJ-02, the PBF reader."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datadrive.assistant import Assistant, OsmMapSource, Places, RoadGraph, Router, TravelCompanion, geocode
from datadrive.assistant.maps import bundled_helsinki_pbf, local_xy, parse_maxspeed_kmh
from datadrive.assistant.osm import read_osm_pbf
from datadrive.assistant.routing import fleet_speeds_from_telemetry, pois_along
from datadrive.core.geodesy import EnuOrigin
from datadrive.core.scenario import Provenance, ScenarioMetadata
from datadrive.core.telemetry import Signal, Telemetry
from datadrive.errors import CorruptFileError, EmptyLogError, UnknownPlaceError
from datadrive.lake.geo import Gcj02Publisher


@pytest.fixture(scope="module")
def helsinki() -> OsmMapSource:
    return OsmMapSource()


def _nx_graph(router: Router) -> nx.DiGraph:
    g = router.graph
    graph = nx.DiGraph()
    w = router.edge_weight
    for e, (s, d) in enumerate(zip(g.src.tolist(), g.dst.tolist(), strict=True)):
        if not graph.has_edge(s, d) or w[e] < graph[s][d]["weight"]:
            graph.add_edge(s, d, weight=float(w[e]))
    return graph


@pytest.mark.parametrize("weight", ["time", "length"])
def test_routes_equal_networkx_shortest_paths(helsinki: OsmMapSource, weight: str) -> None:
    router = Router(helsinki.road_graph(), weight=weight)
    graph = _nx_graph(router)
    rng = np.random.default_rng(11)
    nodes = np.array(sorted(graph.nodes))
    checked = 0
    for _ in range(40):
        a, b = (int(x) for x in rng.choice(nodes, 2, replace=False))
        if not nx.has_path(graph, a, b):
            with pytest.raises(UnknownPlaceError):
                router.shortest(a, b)
            continue
        expected = nx.dijkstra_path_length(graph, a, b, weight="weight")
        path_nodes, edges, cost = router.shortest(a, b)
        assert cost == pytest.approx(expected, rel=1e-9)
        assert float(router.edge_weight[edges].sum()) == pytest.approx(expected, rel=1e-9)
        g = router.graph
        assert path_nodes[0] == a
        assert path_nodes[-1] == b
        assert np.array_equal(g.src[edges], path_nodes[:-1])
        assert np.array_equal(g.dst[edges], path_nodes[1:])
        checked += 1
    assert checked >= 20


def test_several_stops_are_the_sum_of_their_legs(helsinki: OsmMapSource) -> None:
    companion = TravelCompanion(helsinki)
    result, route = companion.route(["Kauppatori", "Stockmann", "Hakaniemi"])
    graph = _nx_graph(companion.router)
    stops = companion.locate(["Kauppatori", "Stockmann", "Hakaniemi"])
    node, _ = companion.graph.nearest_node(np.array([s.xy_m for s in stops]))
    legs = [
        nx.dijkstra_path_length(graph, int(a), int(b), weight="weight") for a, b in itertools.pairwise(node)
    ]
    assert route.limit_time_s == pytest.approx(sum(legs), rel=1e-9)
    assert result.fact("stops") == 3
    assert [i["name"].value for i in result.items] == [
        "Kauppatori",
        "Stockmann",
        "Hakaniemi",
    ]


# --------------------------------------------------------------------------- a hand-made map


@dataclass
class LineMap:
    """A hand-made map.

    A -- 500 m, 50 km/h -- B -- 300 m, 30 km/h -- C, two-way; D a dead end only
    reachable from C; a fuel station 20 m north of the middle of B-C.
    """

    name: str = "hand-made test map"
    origin: EnuOrigin = field(default_factory=lambda: EnuOrigin(60.0, 25.0, 0.0))
    lat0: float = 60.0

    def _latlon(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # invert the local frame numerically: small offsets, metres per degree at this latitude
        lat = self.origin.lat_deg + xy[:, 1] / 111_412.0
        lon = self.origin.lon_deg + xy[:, 0] / 55_800.0
        for _ in range(5):
            back = local_xy(lat, lon, self.origin)
            lat = lat + (xy[:, 1] - back[:, 1]) / 111_412.0
            lon = lon + (xy[:, 0] - back[:, 0]) / 55_800.0
        return lat, lon

    def road_graph(self) -> RoadGraph:
        xy = np.array([[0.0, 0.0], [500.0, 0.0], [800.0, 0.0], [800.0, 200.0]])
        lat, lon = self._latlon(xy)
        xy = local_xy(lat, lon, self.origin)
        src = np.array([0, 1, 1, 2, 2], dtype=np.int64)
        dst = np.array([1, 0, 2, 1, 3], dtype=np.int64)
        length = np.hypot(*(xy[dst] - xy[src]).T)
        limit = np.array([50.0, 50.0, 30.0, 30.0, 30.0]) / 3.6
        return RoadGraph(
            lat,
            lon,
            xy,
            np.arange(4),
            src,
            dst,
            length,
            limit,
            np.ones(5, bool),
            np.array([0, 0, 1, 1, 2]),
            np.arange(3),
            ("A street", "B street", "Dead end"),
            ("primary", "residential", "service"),
        )

    def places(self) -> Places:
        xy = np.array([[0.0, 0.0], [800.0, 0.0], [650.0, 20.0], [800.0, 200.0], [100.0, 400.0]])
        lat, lon = self._latlon(xy)
        return Places(
            ("Alpha", "Charlie", "Fuel One", "Delta", "Far Cafe"),
            ("place", "place", "fuel", "place", "cafe"),
            lat,
            lon,
            local_xy(lat, lon, self.origin),
            ("", "", "", "", ""),
        )


def test_hand_checked_eta_and_pois() -> None:
    companion = TravelCompanion(LineMap())
    result, route = companion.route(["Alpha", "Charlie"])
    # 500 m at 50 km/h = 36 s, 300 m at 30 km/h = 36 s
    assert route.length_m == pytest.approx(800.0, abs=0.05)
    assert route.limit_time_s == pytest.approx(72.0, abs=0.01)
    pois = pois_along(route, companion.graph, companion.places, "fuel")
    assert len(pois) == 1
    assert pois[0].name == "Fuel One"
    assert pois[0].distance_m == pytest.approx(20.0, abs=0.05)
    assert pois[0].along_m == pytest.approx(650.0, abs=0.05)
    assert pois_along(route, companion.graph, companion.places, "food") == []  # the cafe is 400 m away
    assert "ETA at the speed limits: 1.2 min" in companion.render_route(result)


def test_fleet_speeds_change_the_fleet_eta() -> None:
    m = LineMap()
    graph = m.road_graph()
    # a vehicle drove A -> B at 10 m/s: fixes every 5 m along A-B, heading east (bearing 90)
    xy = np.stack([np.arange(10.0, 490.0, 5.0), np.zeros(96)], axis=1)
    lat, lon = m._latlon(xy)
    n = lat.shape[0]
    values = np.stack([lat, lon, np.full(n, 10.0), np.full(n, 90.0)], axis=1)
    sig = Signal(
        "gnss/fix",
        "mixed",
        np.arange(n, dtype=np.int64) * 500_000_000,
        values,
        ("latitude", "longitude", "speed", "bearing"),
        ("deg", "deg", "m/s", "deg"),
    )
    log = Telemetry(
        "fleet-1", "test", (sig,), ScenarioMetadata("none", Provenance("x", "0" * 64, "test", "1"))
    )
    fleet = fleet_speeds_from_telemetry(graph, m.origin, [log])
    assert fleet.speed_mps[0] == pytest.approx(10.0)
    assert np.isnan(fleet.speed_mps[1])
    companion = TravelCompanion(m, fleet=fleet)
    result, route = companion.route(["Alpha", "Charlie"])
    assert route.fleet_time_s == pytest.approx(50.0 + 36.0, abs=0.01)  # 500 m at 10 m/s + 300 m at the limit
    assert result.fact("fleet_share") == pytest.approx(500.0 / 800.0, abs=1e-3)
    assert "ETA from the speeds the fleet drove: 1.4 min" in companion.render_route(result)
    gcj = fleet_speeds_from_telemetry(graph, m.origin, [log], data_crs="GCJ-02")
    assert not np.isfinite(gcj.speed_mps).any()  # another datum: never matched


def test_gcj02_publication() -> None:
    @dataclass
    class BeijingMap(LineMap):
        origin: EnuOrigin = field(default_factory=lambda: EnuOrigin(39.915, 116.404, 0.0))

    m = BeijingMap()
    wgs = TravelCompanion(m).route(["Alpha", "Charlie"])[0]
    gcj = TravelCompanion(m, publisher=Gcj02Publisher()).route(["Alpha", "Charlie"])[0]
    lat, lon = float(wgs.items[0]["lat"].value), float(wgs.items[0]["lon"].value)
    exp_lat, exp_lon = Gcj02Publisher().publish(np.array([lat]), np.array([lon]))
    assert float(gcj.items[0]["lat"].value) == pytest.approx(float(exp_lat[0]), abs=1e-12)
    assert float(gcj.items[0]["lon"].value) == pytest.approx(float(exp_lon[0]), abs=1e-12)
    assert abs(float(gcj.items[0]["lon"].value) - lon) * 85_000 > 100  # hundreds of metres apart
    assert "(GCJ-02)" in TravelCompanion(m, publisher=Gcj02Publisher()).render_route(gcj)


def test_unknown_and_unreachable_places(helsinki: OsmMapSource) -> None:
    with pytest.raises(UnknownPlaceError, match="no place called 'Gotham City'"):
        geocode(helsinki.places(), "Gotham City")
    typo = geocode(helsinki.places(), "Kauppatorri")
    assert typo.name == "Kauppatori"
    assert typo.how == "close spelling"
    companion = TravelCompanion(LineMap())
    with pytest.raises(UnknownPlaceError, match="no drivable route"):
        companion.route(["Delta", "Alpha"])  # D is a dead end: nothing leaves it
    a = Assistant(companion=TravelCompanion(helsinki))
    answer = a.ask("route from Gotham City to Hakaniemi")
    assert not answer.answered
    assert answer.text.startswith("I can't plan that: no place called 'Gotham City'")


def test_travel_questions_in_plain_english(helsinki: OsmMapSource) -> None:
    a = Assistant(companion=TravelCompanion(helsinki))
    r = a.ask("how do I get from Kauppatori to Hakaniemi via Stockmann?")
    assert r.answered
    assert r.check.ok
    assert "Kauppatori → Stockmann → Hakaniemi" in r.text
    r = a.ask("any charging stations on the way from Kauppatori to Hakaniemi")
    assert r.intent == "pois"
    assert r.answered
    assert "charging" in r.text
    assert r.check.ok
    r = a.ask("where can I park near Helsinki Cathedral")
    assert r.intent == "pois"
    assert "parking places within 250 m near Helsinki Cathedral" in r.text
    r = a.ask("is there a petrol station along the route from Kauppatori to Hakaniemi")
    assert r.intent == "pois"
    assert r.text.startswith("No fuel places")


def test_maxspeed_tags() -> None:
    assert parse_maxspeed_kmh("30") == 30.0
    assert parse_maxspeed_kmh("20 mph") == pytest.approx(32.18688)
    assert parse_maxspeed_kmh("FI:urban") == 50.0
    assert parse_maxspeed_kmh("none") is None
    assert parse_maxspeed_kmh(None) is None


def test_pbf_reader_against_the_raw_file() -> None:
    ex = read_osm_pbf(bundled_helsinki_pbf())
    assert ex.node_ids.shape[0] > 20_000
    assert len(ex.ways) > 5_000
    assert np.all(np.diff(ex.node_ids) > 0)
    assert ex.lat_deg.min() > 60.16
    assert ex.lat_deg.max() < 60.18
    assert ex.lon_deg.min() > 24.93
    assert ex.lon_deg.max() < 24.96
    # most way references resolve; ways crossing the extract's bounding box keep references to nodes
    # outside it (88 % resolve), which the graph builder drops
    refs = np.concatenate([w.refs for w in ex.ways])
    assert 0.8 < (ex.node_index(refs) >= 0).mean() < 1.0


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cut=st.integers(min_value=0, max_value=685_000), flip=st.integers(min_value=0, max_value=684_000))
def test_a_damaged_pbf_gives_a_clear_error(tmp_path: Path, cut: int, flip: int) -> None:
    raw = bytearray(bundled_helsinki_pbf().read_bytes())
    raw[flip % len(raw)] ^= 0x5A
    path = tmp_path / "damaged.osm.pbf"
    path.write_bytes(bytes(raw[:cut]))
    message = ""
    try:
        read_osm_pbf(path)
    except (CorruptFileError, EmptyLogError) as exc:
        message = str(exc)
    assert not message or str(path) in message
