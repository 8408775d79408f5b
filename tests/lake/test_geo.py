"""GCJ-02: the WGS-84 -> GCJ-02 transform against published reference pairs.

References:
* wandergis/coordtransform, ``test/app.js`` (and its README): the documented
  example ``wgs84togcj02(116.404, 39.915) -> [116.41024449916938,
  39.91640428150164]``; the same public formulation as ours, so it must agree
  to floating-point precision.
* hujiulong/gcoord, ``test/fixtures/china-cities.json`` (commit fedbaa10):
  WGS84/GCJ02 pairs of Chinese city centres, given to 7 decimals; gcoord's
  own tests compare them to 4-6 decimals. Its WGS-84 side was derived with an
  approximate inverse, so we agree to 1e-5 degrees (about a metre).
* gcoord's ``test/unit/crs/GCJ02.spec.js``: points outside China are returned
  unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

from datadrive.lake import Gcj02Publisher, Wgs84Publisher
from datadrive.lake.geo import out_of_china, publisher_for

# (lon, lat) WGS-84 -> (lon, lat) GCJ-02, from gcoord's china-cities.json
GCOORD_CITIES = {
    "zhumadian": ((114.0164322, 33.0133556), (114.022306, 33.0115324)),
    "shaoyang": ((111.4622119, 27.242124), (111.4677938, 27.2388981)),
    "xingtai": ((114.498916, 37.0700925), (114.5048503, 37.0705911)),
    "nagqu": ((92.0499619, 31.4784436), (92.0512438, 31.4762063)),
    "shenyang": ((123.4253306, 41.8032629), (123.4314787, 41.8057023)),
    "jiuquan": ((98.4937175, 39.7319946), (98.4943595, 39.7328234)),
    "xilinhot": ((116.0414035, 43.9312805), (116.0482308, 43.9334573)),
    "qinzhou": ((108.6503952, 21.9828281), (108.6541485, 21.9799392)),
}


def test_matches_the_coordtransform_reference_exactly() -> None:
    lat, lon = Gcj02Publisher().publish(np.array([39.915]), np.array([116.404]))
    assert lon[0] == pytest.approx(116.41024449916938, abs=1e-9)
    assert lat[0] == pytest.approx(39.91640428150164, abs=1e-9)


@pytest.mark.parametrize(("wgs", "gcj"), list(GCOORD_CITIES.values()), ids=list(GCOORD_CITIES))
def test_matches_gcoord_city_pairs(wgs, gcj) -> None:
    lat, lon = Gcj02Publisher().publish(np.array([wgs[1]]), np.array([wgs[0]]))
    assert lon[0] == pytest.approx(gcj[0], abs=1e-5)
    assert lat[0] == pytest.approx(gcj[1], abs=1e-5)


def test_vectorised_over_many_points() -> None:
    wgs = np.array([v[0] for v in GCOORD_CITIES.values()])
    gcj = np.array([v[1] for v in GCOORD_CITIES.values()])
    lat, lon = Gcj02Publisher().publish(wgs[:, 1], wgs[:, 0])
    np.testing.assert_allclose(lon, gcj[:, 0], atol=1e-5)
    np.testing.assert_allclose(lat, gcj[:, 1], atol=1e-5)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(45.0, 183.0), (37.7209977, -122.4723053), (49.0068, 8.4037), (60.0, 110.0)],
    ids=["gcoord-outside", "san-francisco", "karlsruhe", "north-of-the-box"],
)
def test_points_outside_china_are_unchanged(lat, lon) -> None:
    assert bool(out_of_china(np.array([lat]), np.array([lon]))[0])
    plat, plon = Gcj02Publisher().publish(np.array([lat]), np.array([lon]))
    assert (plat[0], plon[0]) == (lat, lon)


def test_offset_is_hundreds_of_metres_in_china() -> None:
    lat, lon = Gcj02Publisher().publish(np.array([31.2304]), np.array([121.4737]))  # Shanghai
    dx = (lon[0] - 121.4737) * 111_320 * np.cos(np.radians(31.2304))
    dy = (lat[0] - 31.2304) * 110_540
    assert 100 < np.hypot(dx, dy) < 1000


def test_nan_passes_through_and_wgs84_is_identity() -> None:
    lat, lon = Gcj02Publisher().publish(np.array([np.nan, 39.9]), np.array([116.4, np.nan]))
    assert np.isnan(lat[0])
    assert np.isnan(lon[1])
    x = np.array([39.9])
    assert Wgs84Publisher().publish(x, x)[0][0] == 39.9
    assert publisher_for("gcj02").crs == "GCJ-02"
    with pytest.raises(ValueError, match="unknown coordinate system"):
        publisher_for("bd09")


def test_a_china_region_publishes_gnss_in_gcj02_and_others_in_wgs84(make_lake, inputs) -> None:
    import lake_synth

    paths = inputs([1], telemetry=True, latlon=[39.915, 116.404])
    for region in ("cn-north", "eu-central"):
        lake = make_lake(home=region)
        lake.ingest(paths, region, registry=lake_synth.REGISTRY)
        rows = lake.sql(
            "SELECT crs, sample_values FROM signal_samples WHERE signal = 'gnss/fix' AND sample = 0",
            region=region,
        ).table.to_pylist()
        (row,) = rows
        if region == "cn-north":
            assert row["crs"] == "GCJ-02"
            assert row["sample_values"][0] == pytest.approx(39.91640428150164, abs=1e-9)
            assert row["sample_values"][1] == pytest.approx(116.41024449916938, abs=1e-9)
        else:
            assert row["crs"] == "WGS-84"
            assert row["sample_values"][:2] == [39.915, 116.404]
        (tel,) = lake.snapshot(region).telemetry()
        assert tel.metadata.frame.startswith(
            "enu_gcj02@39.916404" if region == "cn-north" else "enu_wgs84@39.915"
        )
