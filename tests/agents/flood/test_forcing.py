"""Design storms, hyetographs and hydrographs, and the rain and inflow CSV files."""
from __future__ import annotations

import math

import numpy as np
import pytest

from agents.flood.forcing import (IDF, SHANGHAI_2017, SHANGHAI_PEAK_RATIO, Hydrograph, Hyetograph,
                                  chicago_cumulative_mm, chicago_hyetograph, read_inflow_csv, read_rain_csv)
from twin.core.errors import UserError


def test_shanghai_formula_in_both_forms():
    """q = 1600 (1 + 0.846 lg P) / (t + 7)^0.656 L/(s·ha) and i = q / 167 mm/min."""
    for t, p in ((5, 1), (60, 5), (120, 100)):
        q = 1600 * (1 + 0.846 * math.log10(p)) / (t + 7.0) ** 0.656
        assert math.isclose(SHANGHAI_2017.q_l_per_s_ha(t, p), q, rel_tol=1e-12)
        assert math.isclose(SHANGHAI_2017.intensity_mm_per_min(t, p), q / 167.0, rel_tol=1e-12)
    a1 = IDF(1600 / 167, 0.846, 7.0, 0.656)
    assert math.isclose(a1.intensity_mm_per_min(60, 5), SHANGHAI_2017.intensity_mm_per_min(60, 5), rel_tol=1e-12)
    # a 1-hour, 5-year storm in Shanghai: about 51 mm
    depth = SHANGHAI_2017.depth_mm(60, 5)
    print(f"\nShanghai P=5 a, 60 min: {depth:.1f} mm; P=100 a: {SHANGHAI_2017.depth_mm(60, 100):.1f} mm")
    assert 45 < depth < 60


@pytest.mark.parametrize("p, duration, r, step", [(5, 60, SHANGHAI_PEAK_RATIO, 5), (100, 120, 0.3, 1),
                                                  (1, 45, 0.0, 5), (2, 30, 1.0, 7), (20, 180, 0.5, 10)])
def test_chicago_storm_total_equals_idf_intensity_times_duration(p, duration, r, step):
    hy = chicago_hyetograph(SHANGHAI_2017, p, duration, r, step_min=step, start_s=600.0)
    total_mm = hy.total_depth_m * 1000
    assert math.isclose(total_mm, SHANGHAI_2017.intensity_mm_per_min(duration, p) * duration, rel_tol=1e-12)
    assert hy.edges_s[0] == 600.0 and math.isclose(hy.edges_s[-1], 600.0 + duration * 60, rel_tol=1e-15)
    # the peak block is the one holding r·duration
    k = int(np.argmax(hy.intensity_mm_per_h))
    t_peak = 600.0 + r * duration * 60
    assert hy.edges_s[k] <= t_peak <= hy.edges_s[k + 1]


def test_chicago_windows_around_the_peak_hold_the_idf_depth():
    """The Chicago storm's defining property: any window of length t centred on the peak in the
    ratio r : (1 - r) holds the IDF depth of duration t (Keifer & Chu 1957)."""
    r, dur, p = 0.4, 120.0, 10
    for t in (5.0, 20.0, 60.0, 100.0):
        a = r * dur - r * t
        d = chicago_cumulative_mm(SHANGHAI_2017, p, dur, r, [a, a + t])
        assert math.isclose(d[1] - d[0], SHANGHAI_2017.depth_mm(t, p), rel_tol=1e-12)


def test_hyetograph_depth_is_exact_over_any_steps():
    hy = Hyetograph(np.array([10.0, 70.0, 100.0, 400.0]), np.array([36.0, 0.0, 72.0]))
    assert math.isclose(hy.total_depth_m, (36 * 60 + 72 * 300) / 3.6e6, rel_tol=1e-15)
    rng = np.random.default_rng(1)
    t = np.concatenate([[0.0], np.sort(rng.uniform(0, 500, 300)), [500.0]])
    assert math.isclose(sum(hy.depth_between_m(a, b) for a, b in zip(t[:-1], t[1:])), hy.total_depth_m, rel_tol=1e-12)
    assert hy.depth_between_m(70.0, 100.0) == 0.0
    assert math.isclose(hy.depth_between_m(0.0, 40.0), 36 * 30 / 3.6e6, rel_tol=1e-12)


def test_hydrograph_volume_is_exact():
    hg = Hydrograph(np.array([0.0, 100.0, 100.0, 300.0]), np.array([0.0, 2.0, 1.0, 1.0]))  # ramp, step, flat
    assert math.isclose(hg.total_volume_m3, 100.0 + 200.0, rel_tol=1e-15)
    assert math.isclose(hg.volume_between_m3(0, 50), 0.5 * 50 * 1.0, rel_tol=1e-12)
    assert math.isclose(hg.volume_between_m3(50, 150), 0.5 * (1 + 2) * 50 + 50, rel_tol=1e-12)
    assert hg.volume_between_m3(400, 500) == 0.0 and hg.volume_between_m3(-50, 0) == 0.0


def test_ea_benchmark_inflow_file(ref_data):
    """The UK EA test 8A point inflow (start, end, flux): peak 1.25 m³/s."""
    hg = read_inflow_csv(ref_data / "flood" / "ea_test8a_itzi" / "a_point-inflow.csv")
    assert hg.q_m3s.max() == 1.25
    assert math.isclose(hg.volume_between_m3(2220, 2340), 1.25 * 120, rel_tol=1e-12)
    rows = np.loadtxt(ref_data / "flood" / "ea_test8a_itzi" / "a_point-inflow.csv", delimiter=",", skiprows=1)
    t = rows[:, :2].ravel()
    q = np.repeat(rows[:, 2], 2)
    print(f"\nEA 8A inflow: {hg.total_volume_m3:.1f} m³")
    assert math.isclose(hg.total_volume_m3, np.trapezoid(q, t), rel_tol=1e-12)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_rain_csv_layouts(tmp_path):
    a = read_rain_csv(write(tmp_path, "a.csv", "start_s,end_s,intensity_mm_per_h\n0,600,12\n600,1200,30\n"))
    b = read_rain_csv(write(tmp_path, "b.csv", "start_s,end_s,depth_mm\n0,600,2\n600,1200,5\n"))
    c = read_rain_csv(write(tmp_path, "c.csv", "time_s,depth_mm,station\n600,2,X\n1200,5,X\n"))
    for hy in (a, b, c):
        assert np.allclose(hy.edges_s, [0, 600, 1200]) and np.allclose(hy.intensity_mm_per_h, [12, 30])
        assert math.isclose(hy.total_depth_m, 0.007, rel_tol=1e-12)


@pytest.mark.parametrize("text, message", [
    ("time_s,depth_mm\n600,2\n1200,\n1800,1\n", r"line 3, column 'depth_mm': the value is missing"),
    ("time_s,depth_mm\n600,2\n1200,-1\n", r"line 3, column 'depth_mm': -1 is negative"),
    ("time_s,intensity_mm_per_h\n600,2\n1200,heavy\n", r"line 3, column 'intensity_mm_per_h': 'heavy' is not a number"),
    ("time_s,depth_mm\n600,2\n600,3\n", r"line 3, column 'time_s': 600 s does not come after 600 s on line 2"),
    ("start_s,end_s,depth_mm\n0,600,2\n900,1200,3\n", r"line 3: a gap between 600 s .* and 900 s"),
    ("start_s,end_s,depth_mm\n0,600,2\n500,1200,3\n", r"line 3: an overlap"),
    ("time,rain\n1,2\n", r"expected the columns of one of these layouts"),
    ("time_s,depth_mm\n600,nan\n1200,1\n", r"'nan' is not a finite number"),
])
def test_rain_csv_errors_name_file_line_and_column(tmp_path, text, message):
    p = write(tmp_path, "gauge.csv", text)
    with pytest.raises(UserError, match=message) as e:
        read_rain_csv(p)
    assert "gauge.csv" in str(e.value)


def test_missing_rain_file(tmp_path):
    with pytest.raises(UserError, match="rain file not found"):
        read_rain_csv(tmp_path / "nope.csv")


def test_inflow_csv_layouts_and_errors(tmp_path):
    hg = read_inflow_csv(write(tmp_path, "q.csv", "time_s,q_m3s\n0,0\n600,3\n1200,0\n"))
    assert math.isclose(hg.total_volume_m3, 1800.0, rel_tol=1e-15)
    with pytest.raises(UserError, match=r"q.csv, line 3, column 'time_s': 500 s does not come after 600 s"):
        read_inflow_csv(write(tmp_path, "q.csv", "time_s,q_m3s\n600,0\n500,3\n"))
    with pytest.raises(UserError, match=r"line 2, column 'q_m3s': -3 is negative"):
        read_inflow_csv(write(tmp_path, "q.csv", "time_s,q_m3s\n0,-3\n"))
    with pytest.raises(UserError, match=r"line 3: the interval starts at 500 s, before the previous one ends"):
        read_inflow_csv(write(tmp_path, "q.csv", "start_s,end_s,q_m3s\n0,600,1\n500,900,2\n"))
    with pytest.raises(UserError, match="expected the columns"):
        read_inflow_csv(write(tmp_path, "q.csv", "t,q\n0,1\n"))


def test_bad_design_storm_arguments():
    with pytest.raises(UserError, match="peak position"):
        chicago_hyetograph(SHANGHAI_2017, 5, 60, 1.5)
    with pytest.raises(UserError, match="return period"):
        SHANGHAI_2017.intensity_mm_per_min(60, 0)
