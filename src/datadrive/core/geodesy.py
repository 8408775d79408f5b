"""WGS84 conversions between geodetic, ECEF, local ENU and UTM coordinates, vectorised.

Telemetry logs give positions as GNSS fixes (latitude, longitude, height) or as
Earth-centred Earth-fixed (ECEF) vectors; scenarios want metres in a local,
flat frame. The local frame here is East-North-Up (ENU) tangent to the WGS84
ellipsoid at an origin, the frame every devkit uses for this (openpilot's
``LocalCoord``, pymap3d's ``ecef2enu``, PROJ's ``topocentric``).

ECEF -> geodetic uses Heikkinen's closed form (Zhu 1993, "Conversion of
Earth-centered Earth-fixed coordinates to geodetic coordinates"), exact to
well below a millimetre for points near the Earth's surface, without
iteration.

UTM (for maps given in latitude/longitude, such as Lanelet2's) is the
transverse Mercator projection by Krüger's series to order 6, the series
GeographicLib and so lanelet2's ``UtmProjector`` evaluate; :func:`utm_local_xy`
is ``UtmProjector(Origin(lat, lon))``: every point in the origin's zone, minus
the origin's own UTM coordinates.

Notation:
    N: number of points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from datadrive.core.typing import NDArrayFloat

__all__ = [
    "WGS84_A_M",
    "WGS84_B_M",
    "WGS84_E2",
    "WGS84_F",
    "EnuOrigin",
    "ecef_to_enu",
    "ecef_to_geodetic",
    "enu_R_ecef",
    "enu_to_ecef",
    "geodetic_to_ecef",
    "utm_local_xy",
    "utm_zone",
]

WGS84_A_M = 6378137.0
"""Semi-major axis."""
WGS84_F = 1.0 / 298.257223563
"""Flattening."""
WGS84_B_M = WGS84_A_M * (1.0 - WGS84_F)
"""Semi-minor axis."""
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
"""First eccentricity squared."""
_EP2 = (WGS84_A_M**2 - WGS84_B_M**2) / WGS84_B_M**2  # second eccentricity squared


def geodetic_to_ecef(lat_deg: NDArrayFloat, lon_deg: NDArrayFloat, alt_m: NDArrayFloat) -> NDArrayFloat:
    """WGS84 geodetic coordinates to ECEF.

    Args:
        lat_deg: ``(N,)`` geodetic latitude in degrees.
        lon_deg: ``(N,)`` longitude in degrees.
        alt_m: ``(N,)`` height above the ellipsoid in metres.

    Returns:
        ``(N, 3)`` ECEF x, y, z in metres.
    """
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    h = np.asarray(alt_m, dtype=np.float64)
    sin_lat = np.sin(lat)
    n = WGS84_A_M / np.sqrt(1.0 - WGS84_E2 * sin_lat**2)  # prime-vertical radius of curvature
    xy = (n + h) * np.cos(lat)
    return np.stack([xy * np.cos(lon), xy * np.sin(lon), (n * (1.0 - WGS84_E2) + h) * sin_lat], axis=-1)


def ecef_to_geodetic(ecef_m: NDArrayFloat) -> tuple[NDArrayFloat, NDArrayFloat, NDArrayFloat]:
    """ECEF to WGS84 geodetic coordinates (Heikkinen's closed form).

    Args:
        ecef_m: ``(N, 3)`` ECEF x, y, z in metres.

    Returns:
        ``(lat_deg, lon_deg, alt_m)``, each ``(N,)``. Non-finite input gives NaN.
    """
    xyz = np.asarray(ecef_m, dtype=np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    a, b, e2 = WGS84_A_M, WGS84_B_M, WGS84_E2
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.hypot(x, y)
        f = 54.0 * b**2 * z**2
        g = p**2 + (1.0 - e2) * z**2 - e2 * (a**2 - b**2)
        c = e2**2 * f * p**2 / g**3
        s = np.cbrt(1.0 + c + np.sqrt(c**2 + 2.0 * c))
        k = s + 1.0 + 1.0 / s
        big_p = f / (3.0 * k**2 * g**2)
        q = np.sqrt(1.0 + 2.0 * e2**2 * big_p)
        under = (
            0.5 * a**2 * (1.0 + 1.0 / q) - big_p * (1.0 - e2) * z**2 / (q * (1.0 + q)) - 0.5 * big_p * p**2
        )
        r0 = -(big_p * e2 * p) / (1.0 + q) + np.sqrt(np.maximum(under, 0.0))
        u = np.sqrt((p - e2 * r0) ** 2 + z**2)
        v = np.sqrt((p - e2 * r0) ** 2 + (1.0 - e2) * z**2)
        z0 = b**2 * z / (a * v)
        alt = u * (1.0 - b**2 / (a * v))
        lat = np.arctan2(z + _EP2 * z0, p)
    lon = np.arctan2(y, x)
    return np.degrees(lat), np.degrees(lon), alt


def enu_R_ecef(lat_deg: float, lon_deg: float) -> NDArrayFloat:  # noqa: N802 (frame naming)
    """The rotation that takes ECEF vectors to the ENU frame at (lat, lon).

    Returns:
        ``(3, 3)``; rows are the east, north and up unit vectors in ECEF.
    """
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    sl, cl, so, co = np.sin(lat), np.cos(lat), np.sin(lon), np.cos(lon)
    return np.array(
        [
            [-so, co, 0.0],
            [-sl * co, -sl * so, cl],
            [cl * co, cl * so, sl],
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class EnuOrigin:
    """The origin of a local ENU frame on the WGS84 ellipsoid.

    Attributes:
        lat_deg: Geodetic latitude.
        lon_deg: Longitude.
        alt_m: Height above the ellipsoid.
    """

    lat_deg: float
    lon_deg: float
    alt_m: float

    @classmethod
    def from_ecef(cls, ecef_m: NDArrayFloat) -> EnuOrigin:
        """The origin at an ECEF point ``(3,)``."""
        lat, lon, alt = ecef_to_geodetic(np.asarray(ecef_m, dtype=np.float64).reshape(1, 3))
        return cls(float(lat[0]), float(lon[0]), float(alt[0]))

    @property
    def ecef_m(self) -> NDArrayFloat:
        """``(3,)`` the origin in ECEF."""
        xyz = geodetic_to_ecef(np.array([self.lat_deg]), np.array([self.lon_deg]), np.array([self.alt_m]))
        return xyz.reshape(3)

    @property
    def frame(self) -> str:
        """A frame name that pins the origin, e.g. ``"enu_wgs84@37.720997700,-122.472305300,33.3700"``."""
        return f"enu_wgs84@{self.lat_deg:.9f},{self.lon_deg:.9f},{self.alt_m:.4f}"


def ecef_to_enu(ecef_m: NDArrayFloat, origin: EnuOrigin) -> NDArrayFloat:
    """ECEF points to the local ENU frame of ``origin``.

    Args:
        ecef_m: ``(N, 3)`` ECEF points in metres.
        origin: The ENU frame's origin.

    Returns:
        ``(N, 3)`` east, north, up in metres.
    """
    delta = np.asarray(ecef_m, dtype=np.float64) - origin.ecef_m
    return delta @ enu_R_ecef(origin.lat_deg, origin.lon_deg).T


def enu_to_ecef(enu_m: NDArrayFloat, origin: EnuOrigin) -> NDArrayFloat:
    """Local ENU points of ``origin`` back to ECEF.

    Args:
        enu_m: ``(N, 3)`` east, north, up in metres.
        origin: The ENU frame's origin.

    Returns:
        ``(N, 3)`` ECEF points in metres.
    """
    return np.asarray(enu_m, dtype=np.float64) @ enu_R_ecef(origin.lat_deg, origin.lon_deg) + origin.ecef_m


# --------------------------------------------------------------------------- UTM

_UTM_K0 = 0.9996  # scale on the central meridian


def _kruger_coefficients() -> tuple[float, float, tuple[float, ...]]:
    n = WGS84_F / (2.0 - WGS84_F)
    n2, n3, n4, n5, n6 = n**2, n**3, n**4, n**5, n**6
    rectifying_radius = WGS84_A_M / (1.0 + n) * (1.0 + n2 / 4.0 + n4 / 64.0 + n6 / 256.0)
    alpha = (
        n / 2 - 2 * n2 / 3 + 5 * n3 / 16 + 41 * n4 / 180 - 127 * n5 / 288 + 7891 * n6 / 37800,
        13 * n2 / 48 - 3 * n3 / 5 + 557 * n4 / 1440 + 281 * n5 / 630 - 1983433 * n6 / 1935360,
        61 * n3 / 240 - 103 * n4 / 140 + 15061 * n5 / 26880 + 167603 * n6 / 181440,
        49561 * n4 / 161280 - 179 * n5 / 168 + 6601661 * n6 / 7257600,
        34729 * n5 / 80640 - 3418889 * n6 / 1995840,
        212378941 * n6 / 319334400,
    )
    return rectifying_radius, math.sqrt(WGS84_E2), alpha


_TM_A, _TM_E, _TM_ALPHA = _kruger_coefficients()


def utm_zone(lat_deg: float, lon_deg: float) -> int:
    """The standard UTM zone of a point (GeographicLib's ``UTMUPS::StandardZone``).

    Includes the Norway (32V) and Svalbard (31X-37X) exceptions.

    Raises:
        ValueError: outside UTM's latitude range [-80, 84).
    """
    if not -80.0 <= lat_deg < 84.0:
        raise ValueError(f"latitude {lat_deg} is outside UTM's range [-80, 84)")
    ilon = math.floor(lon_deg % 360.0)
    if ilon >= 180:
        ilon -= 360
    zone = (ilon + 186) // 6
    band = max(-10, min(9, (math.floor(lat_deg) + 80) // 8 - 10))
    if band == 7 and zone == 31 and ilon >= 3:
        zone = 32
    elif band == 9 and 0 <= ilon < 42:
        zone = 2 * ((ilon + 183) // 12) + 1
    return int(zone)


def _tm_forward(lat_deg: NDArrayFloat, lon_deg: NDArrayFloat, lon0_deg: float) -> NDArrayFloat:
    """``(N, 2)`` transverse Mercator easting/northing (scale 0.9996, no false origin)."""
    lam = np.radians((lon_deg - lon0_deg + 180.0) % 360.0 - 180.0)
    phi = np.radians(lat_deg)
    sin_phi = np.sin(phi)
    tau = np.sinh(np.arctanh(sin_phi) - _TM_E * np.arctanh(_TM_E * sin_phi))
    xi_p = np.arctan2(tau, np.cos(lam))
    eta_p = np.arctanh(np.sin(lam) / np.sqrt(1.0 + tau * tau))
    xi, eta = xi_p.copy(), eta_p.copy()
    for j, a in enumerate(_TM_ALPHA, start=1):
        xi += a * np.sin(2 * j * xi_p) * np.cosh(2 * j * eta_p)
        eta += a * np.cos(2 * j * xi_p) * np.sinh(2 * j * eta_p)
    return np.stack([_UTM_K0 * _TM_A * eta, _UTM_K0 * _TM_A * xi], axis=-1)


def utm_local_xy(
    lat_deg: NDArrayFloat, lon_deg: NDArrayFloat, origin_lat_lon: tuple[float, float]
) -> NDArrayFloat:
    """Lanelet2's ``UtmProjector(Origin(lat, lon))`` for many points.

    Every point is projected in the UTM zone (and hemisphere) of the origin,
    and the origin's own UTM coordinates are subtracted.

    Args:
        lat_deg: ``(N,)`` latitudes in degrees.
        lon_deg: ``(N,)`` longitudes in degrees.
        origin_lat_lon: The projection origin in degrees.

    Returns:
        ``(N, 2)`` x (east) and y (north) in metres from the origin.

    Raises:
        ValueError: the origin is outside UTM's range.
    """
    lat0, lon0 = origin_lat_lon
    zone = utm_zone(lat0, lon0)
    central_meridian = 6.0 * zone - 183.0
    origin = _tm_forward(np.array([lat0]), np.array([lon0]), central_meridian)
    xy: NDArrayFloat = _tm_forward(lat_deg, lon_deg, central_meridian) - origin
    return xy
