"""Publishing geographic coordinates: WGS-84 as recorded, or GCJ-02 in China.

China requires maps and positions published there to use GCJ-02, the
"offset" datum of the national surveying authority. It is a publication
format, not a privacy control: the offset is deterministic and, to within a
metre, reversible. datadrive keeps the conversion behind one small interface,
:class:`CoordinatePublisher`, so a licensed provider's converter can replace
the built-in one without touching the lake.

The built-in :class:`Gcj02Publisher` is the widely published public
formulation of the WGS-84 -> GCJ-02 transform (Krasovsky 1940 ellipsoid,
``a = 6378245 m``, ``e^2 = 0.00669342162296594323``): for a point inside
China's bounding box (longitude 72.004-137.8347 E, latitude
0.8293-55.8271 N) it adds an offset of typically 100-700 m computed from
polynomial and sine series in ``(lon - 105, lat - 35)``; outside that box
coordinates are returned unchanged. ``tests/lake/test_geo.py`` checks it
against published reference pairs: exactly (1e-9 degrees) against the
coordtransform library's documented example, and to 1e-5 degrees (about a
metre) against the 8 Chinese city centres of gcoord's fixture, whose WGS-84
side was itself derived by an approximate inverse.

Notation:
    N: number of points.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from datadrive.core.typing import NDArrayBool, NDArrayFloat

__all__ = [
    "CoordinatePublisher",
    "Gcj02Publisher",
    "Wgs84Publisher",
    "out_of_china",
    "publisher_for",
]

_A_M = 6378245.0
_EE = 0.00669342162296594323


class CoordinatePublisher(Protocol):
    """Turns recorded WGS-84 latitude/longitude into the published datum."""

    crs: str
    """Name recorded beside published coordinates (``"WGS-84"``, ``"GCJ-02"``)."""

    def publish(self, lat_deg: NDArrayFloat, lon_deg: NDArrayFloat) -> tuple[NDArrayFloat, NDArrayFloat]:
        """Published ``(lat, lon)`` of WGS-84 points.

        Args:
            lat_deg: ``(N,)`` WGS-84 latitude in degrees (NaN passes through).
            lon_deg: ``(N,)`` WGS-84 longitude in degrees.

        Returns:
            ``(N,)`` latitude and ``(N,)`` longitude in the published datum.
        """
        ...


class Wgs84Publisher:
    """Publishes coordinates as recorded."""

    crs = "WGS-84"

    def publish(self, lat_deg: NDArrayFloat, lon_deg: NDArrayFloat) -> tuple[NDArrayFloat, NDArrayFloat]:
        return np.asarray(lat_deg, dtype=np.float64), np.asarray(lon_deg, dtype=np.float64)


def out_of_china(lat_deg: NDArrayFloat, lon_deg: NDArrayFloat) -> NDArrayBool:
    """``(N,)`` True where a point lies outside the box in which GCJ-02 differs from WGS-84."""
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    out: NDArrayBool = (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)
    return out


def _offset_lat(x: NDArrayFloat, y: NDArrayFloat) -> NDArrayFloat:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _offset_lon(x: NDArrayFloat, y: NDArrayFloat) -> NDArrayFloat:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


class Gcj02Publisher:
    """The public WGS-84 -> GCJ-02 transform (see the module docstring)."""

    crs = "GCJ-02"

    def publish(self, lat_deg: NDArrayFloat, lon_deg: NDArrayFloat) -> tuple[NDArrayFloat, NDArrayFloat]:
        lat = np.asarray(lat_deg, dtype=np.float64)
        lon = np.asarray(lon_deg, dtype=np.float64)
        x, y = lon - 105.0, lat - 35.0
        dlat = _offset_lat(x, y)
        dlon = _offset_lon(x, y)
        rad_lat = lat / 180.0 * np.pi
        magic = 1.0 - _EE * np.sin(rad_lat) ** 2
        sqrt_magic = np.sqrt(magic)
        dlat = (dlat * 180.0) / ((_A_M * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
        dlon = (dlon * 180.0) / (_A_M / sqrt_magic * np.cos(rad_lat) * np.pi)
        keep = out_of_china(lat, lon) | ~np.isfinite(lat) | ~np.isfinite(lon)
        return np.where(keep, lat, lat + dlat), np.where(keep, lon, lon + dlon)


def publisher_for(crs: str) -> CoordinatePublisher:
    """The built-in publisher for a region's ``publish_crs`` (``"wgs84"`` or ``"gcj02"``).

    Raises:
        ValueError: for any other name.
    """
    if crs == "wgs84":
        return Wgs84Publisher()
    if crs == "gcj02":
        return Gcj02Publisher()
    raise ValueError(f"unknown coordinate system {crs!r}")
