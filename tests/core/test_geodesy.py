"""WGS84 geodetic/ECEF/ENU conversions agree with PROJ (pyproj) to well under a millimetre."""

from __future__ import annotations

import numpy as np
import pytest

from datadrive.core.geodesy import (
    WGS84_B_M,
    EnuOrigin,
    ecef_to_enu,
    ecef_to_geodetic,
    enu_R_ecef,
    enu_to_ecef,
    geodetic_to_ecef,
)

pyproj = pytest.importorskip("pyproj")  # test-only dependency: the reference implementation

MM = 1e-3
DEG_PER_M = 1.0 / 111_320.0  # a degree of latitude is at least 110.5 km


def random_geodetic(seed: int, n: int = 5000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))  # uniform on the sphere, poles included
    lon = rng.uniform(-180.0, 180.0, n)
    alt = rng.uniform(-1_000.0, 100_000.0, n)
    return lat, lon, alt


def proj_ecef(lat: np.ndarray, lon: np.ndarray, alt: np.ndarray) -> np.ndarray:
    to_ecef = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    x, y, z = to_ecef.transform(lon, lat, alt)
    return np.stack([x, y, z], axis=-1)


@pytest.mark.parametrize("seed", [0, 1], ids=["seed0", "seed1"])
def test_geodetic_to_ecef_matches_proj(seed: int) -> None:
    lat, lon, alt = random_geodetic(seed)
    ours = geodetic_to_ecef(lat, lon, alt)
    assert ours.shape == (lat.shape[0], 3)
    assert np.abs(ours - proj_ecef(lat, lon, alt)).max() < MM


@pytest.mark.parametrize("seed", [2, 3], ids=["seed2", "seed3"])
def test_ecef_to_geodetic_matches_proj(seed: int) -> None:
    lat, lon, alt = random_geodetic(seed)
    ecef = proj_ecef(lat, lon, alt)
    to_geodetic = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
    ref_lon, ref_lat, ref_alt = to_geodetic.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
    our_lat, our_lon, our_alt = ecef_to_geodetic(ecef)
    assert np.abs(our_lat - ref_lat).max() < MM * DEG_PER_M
    # longitude error in metres shrinks with cos(lat); compare as a distance
    lon_err_m = np.abs((our_lon - ref_lon + 180.0) % 360.0 - 180.0) / DEG_PER_M * np.cos(np.radians(ref_lat))
    assert lon_err_m.max() < MM
    assert np.abs(our_alt - ref_alt).max() < MM


def test_ecef_to_geodetic_on_the_axes() -> None:
    pole = np.array([[0.0, 0.0, WGS84_B_M + 10.0], [0.0, 0.0, -WGS84_B_M]])
    lat, lon, alt = ecef_to_geodetic(pole)
    assert lat == pytest.approx([90.0, -90.0])
    assert alt == pytest.approx([10.0, 0.0], abs=MM)
    lat, lon, alt = ecef_to_geodetic(np.array([[6378137.0, 0.0, 0.0], [0.0, -6378147.0, 0.0]]))
    assert lat == pytest.approx([0.0, 0.0], abs=1e-12)
    assert lon == pytest.approx([0.0, -90.0])
    assert alt == pytest.approx([0.0, 10.0], abs=MM)


def test_non_finite_input_gives_nan() -> None:
    lat, _lon, alt = ecef_to_geodetic(np.array([[np.nan, 1.0, 2.0]]))
    assert np.isnan(lat[0])
    assert np.isnan(alt[0])


@pytest.mark.parametrize(
    ("lat0", "lon0", "alt0"),
    [(37.7210, -122.4723, 31.6), (-33.86, 151.21, 5.0), (69.65, 18.96, 100.0), (0.0, 0.0, 0.0)],
    ids=["san-francisco", "sydney", "tromso", "null-island"],
)
def test_ecef_to_enu_matches_proj_topocentric(lat0: float, lon0: float, alt0: float) -> None:
    rng = np.random.default_rng(7)
    n = 2000
    lat = lat0 + rng.uniform(-0.05, 0.05, n)  # a few km around the origin, like a drive
    lon = lon0 + rng.uniform(-0.05, 0.05, n)
    alt = alt0 + rng.uniform(-50.0, 200.0, n)
    ecef = proj_ecef(lat, lon, alt)
    origin = EnuOrigin(lat0, lon0, alt0)
    topo = pyproj.Transformer.from_pipeline(
        f"+proj=topocentric +ellps=WGS84 +lat_0={lat0} +lon_0={lon0} +h_0={alt0}"
    )
    e, n_, u = topo.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
    ours = ecef_to_enu(ecef, origin)
    assert np.abs(ours - np.stack([e, n_, u], axis=-1)).max() < MM
    assert np.abs(enu_to_ecef(ours, origin) - ecef).max() < MM


def test_enu_rotation_is_orthonormal_and_up_is_the_normal() -> None:
    r = enu_R_ecef(48.0, 11.0)
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    # "up" at the origin points along the ellipsoid normal: a point 1 m higher is (0, 0, 1)
    origin = EnuOrigin(48.0, 11.0, 500.0)
    above = geodetic_to_ecef(np.array([48.0]), np.array([11.0]), np.array([501.0]))
    assert ecef_to_enu(above, origin)[0] == pytest.approx([0.0, 0.0, 1.0], abs=1e-9)


def test_origin_round_trips_through_ecef_and_names_its_frame() -> None:
    origin = EnuOrigin(37.721, -122.4723, 31.64)
    again = EnuOrigin.from_ecef(origin.ecef_m)
    assert again.lat_deg == pytest.approx(origin.lat_deg, abs=1e-11)
    assert again.lon_deg == pytest.approx(origin.lon_deg, abs=1e-11)
    assert again.alt_m == pytest.approx(origin.alt_m, abs=MM)
    assert origin.frame.startswith("enu_wgs84@37.721")
    assert "-122.4723" in origin.frame
