"""A reader of OpenStreetMap PBF extracts (``.osm.pbf``), without GDAL or geopandas.

The file is a sequence of blobs, each ``[4-byte big-endian header length]
[BlobHeader][Blob]``; an ``OSMHeader`` blob first, then ``OSMData`` blobs, each
a zlib-compressed (or raw) ``PrimitiveBlock`` of nodes (plain or "dense":
delta-coded ids and coordinates, tags as a flat ``key, value, ..., 0``
list), ways (delta-coded node references) and relations. Coordinates are
``1e-9 * (offset + granularity * value)`` degrees. Relations are skipped: the
road graph and the points of interest need only nodes and ways.

Bad input (a truncated blob, an unknown compression, a block that does not
decode, a way that names a node the file lacks) raises :class:`CorruptFileError`
naming the file.

Notation:
    N: number of nodes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from datadrive.core.typing import NDArrayFloat, NDArrayInt
from datadrive.errors import CorruptFileError, EmptyLogError

__all__ = ["OsmExtract", "OsmWay", "read_osm_pbf"]

_MAX_HEADER = 64 * 1024
_MAX_BLOB = 32 * 1024 * 1024  # the format's own limit


@dataclass(frozen=True)
class OsmWay:
    """One way: its id, node references (OSM ids, in order) and tags."""

    way_id: int
    refs: NDArrayInt
    tags: dict[str, str]


@dataclass(frozen=True)
class OsmExtract:
    """Nodes and ways of one extract.

    Attributes:
        node_ids: ``(N,)`` OSM node ids, sorted.
        lat_deg: ``(N,)`` WGS-84 latitude.
        lon_deg: ``(N,)`` WGS-84 longitude.
        node_tags: Node index -> tags, for tagged nodes only.
        ways: Every way, in file order.
        source: The file it was read from.
    """

    node_ids: NDArrayInt
    lat_deg: NDArrayFloat
    lon_deg: NDArrayFloat
    node_tags: dict[int, dict[str, str]]
    ways: tuple[OsmWay, ...]
    source: str

    def node_index(self, ids: NDArrayInt) -> NDArrayInt:
        """Indices of OSM node ids (``-1`` where the extract lacks the node)."""
        pos = np.searchsorted(self.node_ids, ids)
        pos = np.clip(pos, 0, max(self.node_ids.shape[0] - 1, 0))
        found = self.node_ids.shape[0] > 0
        ok = self.node_ids[pos] == ids if found else np.zeros(ids.shape, dtype=bool)
        out: NDArrayInt = np.where(ok, pos, -1).astype(np.int64)
        return out


def _blobs(path: Path, raw: bytes) -> list[tuple[str, bytes]]:
    from datadrive.assistant.osm_protos import fileformat_pb2

    out: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise CorruptFileError(path, f"truncated blob header length at byte {pos}")
        (hlen,) = struct.unpack(">I", raw[pos : pos + 4])
        pos += 4
        if hlen > _MAX_HEADER or pos + hlen > len(raw):
            raise CorruptFileError(path, f"blob header of {hlen} bytes at byte {pos} is truncated or absurd")
        header = fileformat_pb2.BlobHeader()
        try:
            header.ParseFromString(raw[pos : pos + hlen])
        except DecodeError as exc:
            raise CorruptFileError(path, f"blob header at byte {pos} does not decode ({exc})") from exc
        pos += hlen
        size = header.datasize
        if size < 0 or size > _MAX_BLOB or pos + size > len(raw):
            raise CorruptFileError(path, f"blob of {size} bytes at byte {pos} is truncated or absurd")
        blob = fileformat_pb2.Blob()
        try:
            blob.ParseFromString(raw[pos : pos + size])
        except DecodeError as exc:
            raise CorruptFileError(path, f"blob at byte {pos} does not decode ({exc})") from exc
        pos += size
        kind = blob.WhichOneof("data")
        if kind == "raw":
            data = blob.raw
        elif kind == "zlib_data":
            try:
                data = zlib.decompress(blob.zlib_data)
            except zlib.error as exc:
                raise CorruptFileError(path, f"blob at byte {pos - size} is not valid zlib ({exc})") from exc
        else:
            raise CorruptFileError(path, f"blob compression {kind!r} is not supported (raw and zlib are)")
        out.append((header.type, data))
    return out


def _tags(keys: list[int], vals: list[int], strings: list[str]) -> dict[str, str]:
    return {strings[k]: strings[v] for k, v in zip(keys, vals, strict=False)}


def read_osm_pbf(path: str | Path) -> OsmExtract:
    """Read the nodes and ways of an ``.osm.pbf`` file.

    Raises:
        CorruptFileError: if the file does not decode.
        EmptyLogError: if it has no nodes.
    """
    from datadrive.assistant.osm_protos import osmformat_pb2

    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise CorruptFileError(p, f"cannot read the map ({exc.strerror or exc})") from exc
    id_parts: list[NDArrayInt] = []
    lat_parts: list[NDArrayFloat] = []
    lon_parts: list[NDArrayFloat] = []
    tagged: list[tuple[int, dict[str, str]]] = []  # (osm id, tags)
    ways: list[OsmWay] = []
    seen_header = False
    for kind, data in _blobs(p, raw):
        if kind == "OSMHeader":
            header = osmformat_pb2.HeaderBlock()
            try:
                header.ParseFromString(data)
            except DecodeError as exc:
                raise CorruptFileError(p, f"the OSM header does not decode ({exc})") from exc
            unknown = set(header.required_features) - {"OsmSchema-V0.6", "DenseNodes"}
            if unknown:
                raise CorruptFileError(p, f"needs features this reader lacks: {', '.join(sorted(unknown))}")
            seen_header = True
            continue
        if kind != "OSMData":
            continue  # the format lets readers skip unknown blob types
        block = osmformat_pb2.PrimitiveBlock()
        try:
            block.ParseFromString(data)
        except DecodeError as exc:
            raise CorruptFileError(p, f"a data block does not decode ({exc})") from exc
        strings = [s.decode("utf-8", "replace") for s in block.stringtable.s]
        gran = float(block.granularity)
        lat_off, lon_off = float(block.lat_offset), float(block.lon_offset)
        for group in block.primitivegroup:
            dense = group.dense
            if len(dense.id):
                ids = np.cumsum(np.asarray(dense.id, dtype=np.int64))
                lat = (1e-9 * (lat_off + gran * np.cumsum(np.asarray(dense.lat, dtype=np.int64)))).astype(
                    np.float64
                )
                lon = (1e-9 * (lon_off + gran * np.cumsum(np.asarray(dense.lon, dtype=np.int64)))).astype(
                    np.float64
                )
                if lat.shape != ids.shape or lon.shape != ids.shape:
                    raise CorruptFileError(p, "dense nodes have ids and coordinates of different lengths")
                id_parts.append(ids)
                lat_parts.append(lat)
                lon_parts.append(lon)
                kv = list(dense.keys_vals)
                if kv:
                    i = 0
                    for k in range(ids.shape[0]):
                        tags: dict[str, str] = {}
                        while i < len(kv) and kv[i] != 0:
                            if i + 1 >= len(kv):
                                raise CorruptFileError(p, "dense node tags end in the middle of a pair")
                            tags[strings[kv[i]]] = strings[kv[i + 1]]
                            i += 2
                        i += 1
                        if tags:
                            tagged.append((int(ids[k]), tags))
            for node in group.nodes:
                id_parts.append(np.array([node.id], dtype=np.int64))
                lat_parts.append(np.array([1e-9 * (lat_off + gran * node.lat)]))
                lon_parts.append(np.array([1e-9 * (lon_off + gran * node.lon)]))
                node_tags = _tags(list(node.keys), list(node.vals), strings)
                if node_tags:
                    tagged.append((int(node.id), node_tags))
            for way in group.ways:
                refs = np.cumsum(np.asarray(way.refs, dtype=np.int64))
                ways.append(OsmWay(int(way.id), refs, _tags(list(way.keys), list(way.vals), strings)))
    if not seen_header:
        raise CorruptFileError(p, "no OSMHeader blob: not an OpenStreetMap PBF file")
    if not id_parts:
        raise EmptyLogError(p, "the extract has no nodes")
    ids_all = np.concatenate(id_parts)
    order = np.argsort(ids_all, kind="stable")
    ids_sorted = ids_all[order]
    lat_all = np.concatenate(lat_parts)[order]
    lon_all = np.concatenate(lon_parts)[order]
    extract = OsmExtract(ids_sorted, lat_all, lon_all, {}, tuple(ways), str(p))
    if tagged:
        index = extract.node_index(np.array([t[0] for t in tagged], dtype=np.int64))
        extract.node_tags.update({int(i): tags for i, (_, tags) in zip(index, tagged, strict=True)})
    return extract
