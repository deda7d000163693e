"""One number formatter and one clock formatter (twin.core.formats) for everything a person reads."""
import math

import numpy as np
import pytest

from twin.core.formats import fmt_clock, fmt_number, hms, time_label, time_of_day


@pytest.mark.parametrize("value, text", [
    (150.3, "150"), (1234.4, "1,234"), (-1234.4, "-1,234"), (45.0, "45.0"), (12.34, "12.3"), (3.25, "3.25"),
    (3.2, "3.2"), (5.0, "5"), (0.5, "0.5"), (0.0042, "0.0042"), (0.0, "0"), (7, "7"), (np.int64(12345), "12,345"),
    (np.float32(2.5), "2.5"), (math.nan, "–"), (math.inf, "–"), (None, "–"), (True, "True"), (np.bool_(False), "False"),
    ({"N1": 3, "S1": 0.25}, "N1: 3, S1: 0.25"),
])
def test_numbers_read_one_way(value, text):
    assert fmt_number(value) == text


def test_clock_times():
    assert hms(600) == "0:10:00" and hms(90_061) == "25:01:01"
    assert fmt_clock(600) == "0:10:00  (600 s)"
    assert fmt_clock(600, 43_200) == "12:10:00  (t = 600 s)" and fmt_clock(7200, 82_800) == "01:00:00  (t = 7200 s)"
    assert time_label(600) == "t = 0:10:00  (600 s)" and time_label(600, 21_600) == "06:10:00  (t = 600 s)"
    assert time_of_day(21_600) == "06:00" and time_of_day(86_400 + 3_660) == "01:01"


def test_the_platform_uses_them():
    """The alert text, the report and the CLI summary format a KPI as the tiles do (the report with a
    typographic minus)."""
    from twin.runs import report
    from twin.view import alerts

    assert alerts.fmt is fmt_number and report.clock is fmt_clock
    assert report.fmt_qty(150.3, "-") == "150" and report.fmt_qty(-12.34, "-") == "−12.3"
