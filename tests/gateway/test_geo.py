"""GCJ-02 <-> WGS-84 against the reference transform (eviltransform) and its
published test vector: within 1 m everywhere in China, the identity outside."""
from __future__ import annotations

import math
import random

import eviltransform

from adapters.channels.geo import gcj02_to_wgs84, wgs84_to_gcj02


def metres(a, b):
    return math.hypot((a[0] - b[0]) * 111_320, (a[1] - b[1]) * 111_320 * math.cos(math.radians(a[0])))


def test_the_reference_vector_from_shanghai_maps_within_a_metre_both_ways():
    wgs, gcj = (31.1774276, 121.5272106), (31.175304, 121.531542)  # eviltransform/python/test.py
    assert metres(wgs84_to_gcj02(*wgs), gcj) < 1.0
    assert metres(gcj02_to_wgs84(*gcj), wgs) < 1.0
    assert 400 < metres(wgs, gcj) < 550  # the shift is real: about 475 m there


def test_random_points_in_china_agree_with_the_reference_and_round_trip_exactly():
    rng = random.Random(14)
    for _ in range(2000):
        lat, lon = rng.uniform(18.2, 53.5), rng.uniform(73.7, 134.7)
        assert metres(wgs84_to_gcj02(lat, lon), eviltransform.wgs2gcj(lat, lon)) < 1.0
        assert metres(gcj02_to_wgs84(lat, lon), eviltransform.gcj2wgs_exact(lat, lon)) < 1.0
        assert metres(gcj02_to_wgs84(*wgs84_to_gcj02(lat, lon)), (lat, lon)) < 0.01


def test_outside_china_nothing_is_shifted():
    for point in ((52.531, 13.384), (33.7401, -84.3502), (-33.86, 151.2)):
        assert wgs84_to_gcj02(*point) == point and gcj02_to_wgs84(*point) == point
