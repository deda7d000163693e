"""Water and the people in it, shared by every model whose people can stand in flood water: the six
flood hazard classes by depth and velocity of the Australian Disaster Resilience Guideline 7-3
(AIDR 2017, "Flood hazard", after Smith et al. 2014), and the speed of people walking in water.

    H1  d <= 0.3 m, v <= 2.0 m/s, d·v <= 0.3 m²/s   generally safe for people, vehicles and buildings
    H2  d <= 0.5,   v <= 2.0,     d·v <= 0.6        unsafe for small vehicles
    H3  d <= 1.2,   v <= 2.0,     d·v <= 0.6        unsafe for vehicles, children and the elderly
    H4  d <= 2.0,   v <= 2.0,     d·v <= 1.0        unsafe for vehicles and people
    H5  d <= 4.0,   v <= 4.0,     d·v <= 4.0        unsafe for all; buildings need special engineering
    H6  beyond                                      unsafe for all; every building vulnerable

Walking in water (``wading_speed_factor``): speed in water / speed in the dry, 1 in the dry, falling
linearly to 0.58 at 0.35 m and held there deeper: Li, Song, Zhang & Bode (2026), "Impacts of water
depth on pedestrian speed, gait, and stability", Acta Polytechnica CTU Proceedings 57, measured
speeds 38.6 % (men) and 44.8 % (women) lower at 0.35 m than in the dry, with smaller further
changes at 0.6 and 0.9 m. Every model whose people walk in water uses this one relation.

Models with people count those standing in water by class (``people_by_hazard``) from the depth
and speed fields a flood model publishes in a coupled run (docs/coupling.md).
"""
from __future__ import annotations

import numpy as np

CLASSES = ("H1", "H2", "H3", "H4", "H5", "H6")
# upper limits of H1..H5: depth (m), speed (m/s), depth x speed (m2/s)
_LIMITS = np.array([(0.3, 2.0, 0.3), (0.5, 2.0, 0.6), (1.2, 2.0, 0.6), (2.0, 2.0, 1.0), (4.0, 4.0, 4.0)])
WET_M = 0.01  # a person stands in water deeper than this
# Li et al. 2026: mean speed 41.7 % lower at 0.35 m of water than in the dry (38.6 % men, 44.8 % women)
WADING_REF_DEPTH_M = 0.35
WADING_FACTOR_AT_REF = 1.0 - 0.417


def wading_speed_factor(depth) -> np.ndarray:
    """Walking speed in water of ``depth`` (m) / speed in the dry (see the module docstring)."""
    d = np.clip(np.nan_to_num(np.asarray(depth, dtype=np.float64)), 0.0, WADING_REF_DEPTH_M)
    return 1.0 - (1.0 - WADING_FACTOR_AT_REF) * d / WADING_REF_DEPTH_M


def hazard_class(depth, speed) -> np.ndarray:
    """1..6 (H1..H6) for each depth (m) and speed (m/s); 0 where dry (depth <= WET_M or NaN)."""
    d = np.nan_to_num(np.asarray(depth, dtype=np.float64))
    v = np.nan_to_num(np.asarray(speed, dtype=np.float64))
    out = np.full(d.shape, 6, np.int8)
    for k in range(len(_LIMITS) - 1, -1, -1):  # the lowest class whose three limits all hold
        dl, vl, dvl = _LIMITS[k]
        out[(d <= dl) & (v <= vl) & (d * v <= dvl)] = k + 1
    out[d <= WET_M] = 0
    return out


def people_by_hazard(depth_field, speed_field, xy: np.ndarray, persons=None) -> dict[str, float]:
    """Persons at ``xy`` ((n, 2) metres; ``persons`` per point, 1 each by default) standing in
    water, by hazard class: ``{"H1": n1, ..., "H6": n6}``."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    w = np.ones(len(xy)) if persons is None else np.asarray(persons, dtype=np.float64)
    d = depth_field.sample(xy[:, 0], xy[:, 1], outside=0.0)
    v = speed_field.sample(xy[:, 0], xy[:, 1], outside=0.0) if speed_field is not None else np.zeros(len(xy))
    c = hazard_class(d, v)
    counts = np.bincount(c, weights=w, minlength=7)
    return {name: float(counts[k + 1]) for k, name in enumerate(CLASSES)}
