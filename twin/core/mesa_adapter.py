"""The one place CityTwin touches Mesa's internals (pyproject.toml bounds Mesa to the versions this
is tested with: tests/twin/test_model_contract.py).

Mesa 3.4+ builds every model with a default schedule: an event generator that calls the model's
``step`` once per time unit, and ``model.step`` replaced by a wrapper that advances the clock by one
unit. CityTwin keeps Mesa's clock in seconds and steps models itself (``CityModel.advance_to``), so
it switches that schedule off and gives the model back its own ``step``.
"""
from __future__ import annotations

import mesa

from .errors import UserError

__all__ = ["take_over_stepping"]


def take_over_stepping(model: mesa.Model) -> None:
    """Stop Mesa's default once-per-time-unit schedule and restore the model's own ``step``.

    After this, ``model.step()`` runs the subclass's ``step`` and nothing else: it does not move
    ``model.time`` or ``model.steps``, and no Mesa event fires on its own."""
    schedule = getattr(model, "_default_schedule", None)
    user_step = getattr(model, "_user_step", None)
    if schedule is None or user_step is None:
        raise UserError(f"Mesa {mesa.__version__} builds models differently from the versions CityTwin supports "
                        "(no default schedule to switch off); install the Mesa version pinned in pyproject.toml "
                        "(make setup).")
    schedule.stop()
    model.step = user_step
