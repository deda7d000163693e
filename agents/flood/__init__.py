"""Urban flood engine: local-inertial shallow water on a raster (Numba), forcing, impacts.

Phase 1 of the flood model: the engine only, plain Python + Numba over numpy arrays. The model
class that puts it in a city (evacuation, scenarios, interventions) builds on ``FloodSolver``.
"""
