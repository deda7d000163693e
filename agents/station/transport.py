"""Onward transport: queues at metro entrances, bus stops and taxi ranks, served in batches.

Each POI has a vehicle schedule: a departure every ``headway_s`` (first one at a random phase)
taking at most ``capacity`` passengers, first come first served among those who have arrived.

* metro: a train every ``metro_headway_s`` with room for ``metro_capacity`` boarders per entrance
  (the POI's ``capacity`` column overrides it when > 0);
* bus stop: a bus every 3600 / (3600 / ``bus_headway_s`` + ``extra_buses_per_hour``) s with
  ``bus_capacity`` seats (or the POI's ``capacity``);
* taxi rank: ``taxi_rate_per_min`` cars a minute, each taking ``taxi_pax_per_car`` passengers.

All boarding is vectorised over the waiting passengers; the only Python loop is over POIs with a
departure due.
"""
from __future__ import annotations

import numpy as np

from .geometry import Poi

KIND_MODE = {"metro": 1, "bus_stop": 2, "taxi_rank": 3}


class Onward:
    def __init__(self, pois: list[Poi], p: dict, rng: np.random.Generator):
        self.pois = pois
        self._poi_xy = np.array([[q.x, q.y] for q in pois], dtype=float).reshape(-1, 2)
        self._poi_xy.setflags(write=False)
        k = len(pois)
        self.headway = np.zeros(k)
        self.capacity = np.zeros(k, dtype=np.int64)
        for i, q in enumerate(pois):
            if q.kind == "metro":
                h, c = p["metro_headway_s"], p["metro_capacity"]
            elif q.kind == "bus_stop":
                h = 3600.0 / (3600.0 / p["bus_headway_s"] + p["extra_buses_per_hour"])
                c = p["bus_capacity"]
            else:
                h = 60.0 / max(p["taxi_rate_per_min"], 1e-9)
                c = p["taxi_pax_per_car"]
            self.headway[i] = h
            self.capacity[i] = q.capacity if q.capacity > 0 else c
        self.next_dep = rng.uniform(0.0, 1.0, k) * self.headway
        self.boarded_by_poi = np.zeros(k, dtype=np.int64)
        self.departures = np.zeros(k, dtype=np.int64)

    def poi_xy(self) -> np.ndarray:
        return self._poi_xy  # read every trajectory frame: built once (the stops do not move)

    def due(self, t: float) -> np.ndarray:
        return np.flatnonzero(self.next_dep <= t) if len(self.pois) else np.zeros(0, dtype=np.int64)

    def serve(self, t: float, waiting_idx: np.ndarray, waiting_poi: np.ndarray, arrive_t: np.ndarray) -> np.ndarray:
        """Departures due at ``t``: returns the indices (into ``waiting_idx``) that board.

        ``waiting_poi`` and ``arrive_t`` are the POI and arrival time of each waiting passenger.
        """
        boarded = []
        for k in self.due(t):
            sel = np.flatnonzero(waiting_poi == k)
            if len(sel):
                sel = sel[np.argsort(arrive_t[sel], kind="stable")][: self.capacity[k]]
                boarded.append(sel)
                self.boarded_by_poi[k] += len(sel)
            self.departures[k] += 1
            while self.next_dep[k] <= t:
                self.next_dep[k] += self.headway[k]
        if not boarded:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(boarded)
