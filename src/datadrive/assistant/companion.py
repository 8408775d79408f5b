"""Travel Companion: routes, ETAs and points of interest, as tool results with evidence.

The companion wraps a :class:`~datadrive.assistant.maps.MapSource` and a
:class:`~datadrive.assistant.routing.Router`. Its two tools return
:class:`~datadrive.assistant.tools.ToolResult` objects like Car Genius's, so
the same number check guards their answers. Coordinates in answers are
published in the region's datum (GCJ-02 where the region's ``publish_crs``
says so, through :mod:`datadrive.lake.geo`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from datadrive.assistant.maps import POI_CATEGORIES, MapSource
from datadrive.assistant.routing import FleetSpeeds, PlaceMatch, Route, Router, geocode, pois_along
from datadrive.assistant.tools import Evidence, Fact, ToolResult
from datadrive.errors import UnknownPlaceError
from datadrive.lake.geo import CoordinatePublisher, Wgs84Publisher

__all__ = ["TravelCompanion"]


class TravelCompanion:
    """Routes and points of interest on one map.

    Args:
        source: The map.
        publisher: The datum coordinates are published in (the region's).
        fleet: Fleet speeds per edge, for the fleet ETA.
        weight: ``"time"`` or ``"length"``.
    """

    def __init__(
        self,
        source: MapSource,
        *,
        publisher: CoordinatePublisher | None = None,
        fleet: FleetSpeeds | None = None,
        weight: str = "time",
    ) -> None:
        self.source = source
        self.publisher = publisher or Wgs84Publisher()
        self.graph = source.road_graph()
        self.places = source.places()
        self.router = Router(self.graph, weight=weight, fleet=fleet)

    def _publish(self, lat: float, lon: float) -> tuple[float, float]:
        la, lo = self.publisher.publish(np.array([lat]), np.array([lon]))
        return float(la[0]), float(lo[0])

    def locate(self, names: Sequence[str]) -> list[PlaceMatch]:
        """The places named, in order.

        Raises:
            UnknownPlaceError: naming the first place not found.
        """
        return [geocode(self.places, n) for n in names]

    def route(self, names: Sequence[str]) -> tuple[ToolResult, Route]:
        """The route through the named places, with its ETAs.

        Raises:
            UnknownPlaceError: if a place is unknown or two are not connected.
        """
        if len(names) < 2:
            raise UnknownPlaceError(
                'say where from and where to ("route from Kauppatori '
                "to Hakaniemi\"), or several stops with 'via'"
            )
        stops = self.locate(names)
        route = self.router.route(stops)
        facts: dict[str, Fact] = {
            "length": Fact(route.length_m, "m"),
            "limit_time": Fact(route.limit_time_s, "s"),
            "fleet_time": Fact(route.fleet_time_s, "s"),
            "fleet_length": Fact(route.fleet_length_m, "m"),
            "fleet_share": Fact(
                route.fleet_length_m / route.length_m if route.length_m > 0 else 0.0, "ratio"
            ),
            "stops": Fact(len(stops), "count"),
        }
        items = []
        for i, s in enumerate(stops):
            lat, lon = self._publish(s.lat_deg, s.lon_deg)
            items.append(
                {
                    "name": Fact(s.name),
                    "kind": Fact(s.kind),
                    "lat": Fact(lat, "deg"),
                    "lon": Fact(lon, "deg"),
                    "snap": Fact(float(route.snap_m[i]), "m"),
                }
            )
        legs = []
        for a, b in zip(route.leg_starts[:-1], route.leg_starts[1:], strict=True):
            e = route.edges[a:b]
            length = float(self.graph.length_m[e].sum())
            legs.append(Fact(length, "m"))
        for i, leg in enumerate(legs):
            items[i + 1]["leg_length"] = leg
        streets = self.router.streets(route)
        ev = [
            Evidence(
                f"{self.source.name}: {route.edges.shape[0]} road segments, Dijkstra on "
                f"{'travel time at the speed limits' if route.weight == 'time' else 'length'}",
                "map",
                0.0,
                route.limit_time_s,
                int(route.edges.shape[0]),
            )
        ]
        if route.fleet_length_m > 0:
            ev.append(
                Evidence(
                    "fleet speeds from the lake (median of matched GNSS fixes per road segment)",
                    "fleet",
                    0.0,
                    route.fleet_time_s,
                    int(np.count_nonzero(np.isfinite(self.router.fleet.speed_mps[route.edges])))
                    if self.router.fleet
                    else 0,
                )
            )
        result = ToolResult(
            "route",
            {"places": list(names), "weight": route.weight},
            True,
            facts,
            tuple(ev),
            message="via " + ", ".join(name for name, _ in streets[:8]),
            items=tuple(items),
        )
        return result, route

    def pois(self, names: Sequence[str], category: str, *, max_distance_m: float = 250.0) -> ToolResult:
        """Points of interest of ``category`` along the route through ``names`` (or near one place)."""
        if len(names) >= 2:
            _, route = self.route(names)
        elif len(names) == 1:
            stop = self.locate(names)[0]
            node, _ = self.graph.nearest_node(np.array([stop.xy_m]))
            route = Route(
                (stop, stop),
                node,
                np.zeros(0, dtype=np.int64),
                np.array([0, 0]),
                0.0,
                0.0,
                0.0,
                0.0,
                "time",
                np.zeros(2),
            )
        else:
            raise UnknownPlaceError(
                'say which route or place to search along ("charging on the way from A to B")'
            )
        hits = pois_along(route, self.graph, self.places, category, max_distance_m=max_distance_m)
        items = []
        for h in hits:
            lat, lon = self._publish(h.lat_deg, h.lon_deg)
            items.append(
                {
                    "name": Fact(h.name),
                    "kind": Fact(h.kind),
                    "lat": Fact(lat, "deg"),
                    "lon": Fact(lon, "deg"),
                    "distance": Fact(h.distance_m, "m"),
                    "along": Fact(h.along_m, "m"),
                }
            )
        facts = {
            "count": Fact(len(hits), "count"),
            "max_distance": Fact(max_distance_m, "m"),
            "route_length": Fact(route.length_m, "m"),
        }
        ev = (
            Evidence(
                f"{self.source.name}: amenity in {sorted(POI_CATEGORIES[category])} "
                f"within {max_distance_m:g} m of the route",
                "map",
                0.0,
                0.0,
                len(hits),
            ),
        )
        return ToolResult(
            "pois", {"places": list(names), "category": category}, True, facts, ev, items=tuple(items)
        )

    def render_route(self, r: ToolResult) -> str:
        stops = [str(i["name"].value) for i in r.items]
        length = float(r.fact("length"))
        t_lim = float(r.fact("limit_time"))
        text = (
            f"Route {' → '.join(stops)}: {length / 1000:.2f} km, "
            f"{r.message}. ETA at the speed limits: {t_lim / 60:.1f} min."
        )
        share = float(r.fact("fleet_share"))
        if share > 0:
            text += (
                f" ETA from the speeds the fleet drove: {float(r.fact('fleet_time')) / 60:.1f} min "
                f"(fleet speeds cover {share * 100:.0f}% of the route; speed limits elsewhere)."
            )
        else:
            text += " The lake has no fleet speeds on this route."
        crs = self.publisher.crs
        text += (
            "\nStops ("
            + crs
            + "):\n"
            + "\n".join(
                f"- {i['name'].value} ({i['kind'].value}) at "
                f"{float(i['lat'].value or 0.0):.5f}, {float(i['lon'].value or 0.0):.5f}"
                + (f", leg {float(i['leg_length'].value or 0.0) / 1000:.2f} km" if "leg_length" in i else "")
                for i in r.items
            )
        )
        text += "\nEvidence:\n" + "\n".join(f"- {e.what}" for e in r.evidence)
        return text

    def render_pois(self, r: ToolResult) -> str:
        category = r.args["category"]
        n = int(r.fact("count"))
        where = "along the route" if len(r.args["places"]) >= 2 else f"near {r.args['places'][0]}"
        maxd = float(r.fact("max_distance"))
        if n == 0:
            return (
                f"No {category} places within {maxd:.0f} m {where} on this map."
                + f"\nEvidence:\n- {r.evidence[0].what}"
            )
        crs = self.publisher.crs
        lines = [
            f"- {i['name'].value} ({i['kind'].value}), "
            f"{float(i['distance'].value or 0.0):.0f} m off the route"
            + (
                f", {float(i['along'].value or 0.0) / 1000:.2f} km along it"
                if len(r.args["places"]) >= 2
                else ""
            )
            + f", at {float(i['lat'].value or 0.0):.5f}, {float(i['lon'].value or 0.0):.5f}"
            for i in r.items[:10]
        ]
        more = " (the first 10 listed)" if n > 10 else ""
        return (
            f"{n} {category} places within {maxd:.0f} m {where}{more}, coordinates in {crs}:\n"
            + "\n".join(lines)
            + f"\nEvidence:\n- {r.evidence[0].what}"
        )
