"""Tourist flow: a discrete-event engine of tourist groups over entry points, attractions and
hotels (Numba over numpy arrays). See docs/tourist_flow.md."""
from . import kpis, queueing_theory
from .engine import STATE_FIELDS, TourismEngine
from .inputs import Attractions, Demand, Entries, Hotels, Interventions, one_plus_poisson_pmf

__all__ = ["Attractions", "Demand", "Entries", "Hotels", "Interventions", "STATE_FIELDS", "TourismEngine", "kpis",
           "one_plus_poisson_pmf", "queueing_theory"]
