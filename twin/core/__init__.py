"""The contracts every part of CityTwin shares: errors, grids, the city package, the model contract.

Nothing here imports Qt or a concrete model, so agents/ can build on it and run on cluster workers.
"""
