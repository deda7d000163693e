"""Errors a user can fix: the CLI prints them as one paragraph and exits with code 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input (a file, a key, a feature). The message names it and says how to fix it."""


def nearest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest valid choice, or '' when nothing is close."""
    choices = list(choices)
    # A key written without its unit suffix ("speed_sd" for "speed_sd_mps") is the commonest slip.
    match = [c for c in choices if c.startswith(word + "_")][:1] or difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f' (did you mean "{match[0]}"?)' if match else ""


def finite_number(text, where: str) -> float:
    """``text`` as a finite float, or a UserError that starts with ``where`` and quotes the text."""
    import math

    try:
        v = float(text)
    except (TypeError, ValueError):
        raise UserError(f"{where}: '{text}' is not a number") from None
    if not math.isfinite(v):
        raise UserError(f"{where}: '{text}' is not a finite number")
    return v
