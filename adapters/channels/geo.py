"""GCJ-02 <-> WGS-84, the shift China's maps apply (Meituan and Ele.me send
GCJ-02; JD says which in `buyerCoordType`).

The forward transform is the published closed form on the Krasovsky
ellipsoid (a = 6378245.0, e^2 = 0.00669342162296594323) with its rough
"inside China" box; outside the box both systems are the same. The inverse
has no closed form: it is iterated, wgs <- wgs - (forward(wgs) - gcj), until
the step is below 1e-9 degrees (about 0.1 mm), which is exact for our
purposes. Tests check it against the reference vectors of eviltransform
(googollee/eviltransform) and round trips within 1 m. The PyPI packages that
do this (eviltransform 0.1.1, prcoords 1.0.2) have not been released since
2018-2019; these forty lines are ours to keep.
"""
from __future__ import annotations

from math import cos, pi, sin, sqrt

A = 6378245.0
EE = 0.00669342162296594323


def outside_china(lat: float, lon: float) -> bool:
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _shift(lat: float, lon: float) -> tuple[float, float]:
    x, y = lon - 105.0, lat - 35.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt(abs(x))
    dlat += (20.0 * sin(6.0 * x * pi) + 20.0 * sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat += (20.0 * sin(y * pi) + 40.0 * sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * sin(y / 12.0 * pi) + 320.0 * sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt(abs(x))
    dlon += (20.0 * sin(6.0 * x * pi) + 20.0 * sin(2.0 * x * pi)) * 2.0 / 3.0
    dlon += (20.0 * sin(x * pi) + 40.0 * sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * sin(x / 12.0 * pi) + 300.0 * sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad = lat / 180.0 * pi
    magic = 1 - EE * sin(rad) ** 2
    dlat = (dlat * 180.0) / ((A * (1 - EE)) / (magic * sqrt(magic)) * pi)
    dlon = (dlon * 180.0) / (A / sqrt(magic) * cos(rad) * pi)
    return dlat, dlon


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    if outside_china(lat, lon):
        return lat, lon
    dlat, dlon = _shift(lat, lon)
    return lat + dlat, lon + dlon


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """The exact inverse (iterated; converges in a handful of steps)."""
    if outside_china(lat, lon):
        return lat, lon
    wlat, wlon = lat, lon
    for _ in range(30):
        glat, glon = wgs84_to_gcj02(wlat, wlon)
        dlat, dlon = glat - lat, glon - lon
        wlat, wlon = wlat - dlat, wlon - dlon
        if abs(dlat) < 1e-9 and abs(dlon) < 1e-9:
            break
    return wlat, wlon
