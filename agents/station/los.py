"""Fruin's walkway levels of service: the one place their thresholds and colours are defined.

Fruin (1971, *Pedestrian planning and design*) grades walkways by the space each person has:
A > 3.25 m², B 2.32–3.25, C 1.39–2.32, D 0.93–1.39, E 0.46–0.93, F < 0.46 m². The station model
grades its densest area with :func:`los_letter` and declares the same bands for the view (its ``FieldStyle``).
"""
from __future__ import annotations

import numpy as np

LOS_LETTERS = ("A", "B", "C", "D", "E", "F")
# lower bound of the space per person (m²) of A..E
LOS_SPACE_M2 = (3.25, 2.32, 1.39, 0.93, 0.46)
# the same bounds as densities (persons/m²): the upper bound of A..E; above the last is F
LOS_DENSITY_PPM2 = tuple(1.0 / s for s in LOS_SPACE_M2)
# A..F: green to dark red (the density shader's ramp at the middle of each band)
LOS_COLOURS = ("#34a14f", "#cdd14d", "#febb45", "#f88238", "#df452b", "#aa1b21")


def los_letter(density: float) -> str:
    """The LOS of a density in persons/m² (A for an empty area)."""
    if density <= 0:
        return "A"
    return LOS_LETTERS[int(np.searchsorted(LOS_DENSITY_PPM2, density, side="left"))]
