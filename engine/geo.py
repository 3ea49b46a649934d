"""Distances on the earth, vectorised."""
from __future__ import annotations

import numpy as np

EARTH_KM = 6371.0088


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance; arguments broadcast like numpy arrays."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def local_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Equirectangular distance: within a city (tens of km) it is within 0.1%
    of the great circle and several times cheaper over orders x nodes."""
    k = np.pi / 180 * EARTH_KM
    mid = np.radians((np.mean(lat1) + np.mean(lat2)) / 2)
    dy = (lat2 - lat1) * k
    dx = (lon2 - lon1) * k * np.cos(mid)
    return np.sqrt(dx * dx + dy * dy)
