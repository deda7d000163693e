"""Parameter kinds for real forcing data: lists of numbers, files, time series (twin/core/params.py)."""
import json

import numpy as np
import pytest

from tests.factories import write_scenario
from twin.cli import main
from twin.core.errors import UserError
from twin.core.params import FilePath, Numbers, Param, Series, TimeSeries
from twin.scenario.scenario import load_scenario

SERIES = Param("profile", "-", [], "a profile", TimeSeries, 0.0, 100.0)


def test_numbers_are_checked_one_by_one():
    p = Param("levels", "m", [], "levels", Numbers, 0.0, 10.0)
    assert p.coerce([1, 2.5], "here") == [1.0, 2.5] and p.coerce(3, "here") == [3.0]
    with pytest.raises(UserError, match="out of range"):
        p.coerce([1, 12], "here")
    with pytest.raises(UserError, match="must be a number"):
        p.coerce([1, "x"], "here")


def test_inline_series_and_its_values():
    s = SERIES.coerce([[0, 10.0], [3600, 25.0], [7200, 0.0]], "here")
    assert isinstance(s, Series) and s.source == "inline"
    np.testing.assert_array_equal(s.at([0, 1800, 3600, 9000]), [10.0, 10.0, 25.0, 0.0])
    assert s.at(1800, "linear") == pytest.approx(17.5)
    assert s.plain() == [[0.0, 10.0], [3600.0, 25.0], [7200.0, 0.0]]


@pytest.mark.parametrize("value, message", [
    ([[0, 1], [0, 2]], "increase strictly"),
    ([[0, 1], [10, float("nan")]], "finite"),
    ([[0, 1], [10, -1]], "out of range"),
    ([[-5, 1]], "times are seconds >= 0"),
    ([[0, 1, 2]], "pairs of"),
    (5, "must be a time series"),
])
def test_bad_series_name_the_entry(value, message):
    with pytest.raises(UserError, match=message):
        SERIES.coerce(value, "scenario.toml [parameters]")


def test_series_from_csv_with_header_relative_to_the_scenario(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.csv").write_text("t_s,factor\n0,1.0\n600,2.0\n", encoding="utf-8")
    s = SERIES.coerce("data/p.csv", "here", tmp_path)
    assert s.t == (0.0, 600.0) and s.v == (1.0, 2.0) and s.source == str((tmp_path / "data" / "p.csv").resolve())
    (tmp_path / "bad.csv").write_text("t_s,factor\n0,1.0\n600,lots\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 3"):
        SERIES.coerce("bad.csv", "here", tmp_path)
    with pytest.raises(UserError, match="no such file"):
        SERIES.coerce("missing.csv", "here", tmp_path)


@pytest.mark.slow
def test_file_parameter_must_exist_and_is_hashed_into_the_run(tmp_path, tiny_city):
    p = Param("start_file", "-", "", "starts", FilePath, suffixes=(".csv",))
    with pytest.raises(UserError, match="no such file"):
        p.coerce("nope.csv", "here", tmp_path)
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(UserError, match=r"must be a \.csv file"):
        p.coerce("x.txt", "here", tmp_path)
    starts = tmp_path / "starts.csv"
    starts.write_text("500010,3400020\n500050,3400080\n", encoding="utf-8")
    body = ('[parameters]\nwalkers = 20\nstart_file = "starts.csv"\nspeed_profile = "profile.csv"\n'
            'stepping = "adaptive"\n')
    (tmp_path / "profile.csv").write_text("0,1.0\n30,2.0\n", encoding="utf-8")
    sc = write_scenario(tmp_path, tiny_city, body, duration_s=60)
    assert load_scenario(sc).params_for()["start_file"] == str(starts.resolve())
    out = tmp_path / "r1"
    assert main(["run", str(sc), "--out", str(out), "--quiet"]) == 0
    bundle = json.loads((out / "bundle.json").read_text())
    assert set(bundle["input_files"]) == {"start_file", "speed_profile"}
    assert len(bundle["input_files"]["start_file"]["sha256"]) == 64
    # a changed input file is a different run
    starts.write_text("500020,3400020\n500050,3400080\n", encoding="utf-8")
    assert main(["run", str(sc), "--out", str(tmp_path / "r2"), "--quiet"]) == 0
    assert json.loads((tmp_path / "r2" / "bundle.json").read_text())["hash"] != bundle["hash"]


def test_a_parameter_the_chosen_mode_ignores_is_warned_about(tmp_path, tiny_city, capsys):
    """rain_mm_per_h with rain = "design_storm" does nothing: the warning says which setting uses it
    (declared on the parameter: ``Param.used_when``), in the baseline and in an intervention."""
    body = ('[parameters]\nrain = "design_storm"\nrain_mm_per_h = 80\n\n[[interventions]]\nname = "gauge"\n'
            '[interventions.parameters]\nrain = "uniform"\nstorm_duration_min = 30\n')
    sc = load_scenario(write_scenario(tmp_path, tiny_city, body, model="flood"))
    warnings = sc.ignored_settings()
    assert len(warnings) == 2, warnings
    assert '"rain_mm_per_h" is set but rain = "design_storm" does not use it; it is used with rain = "uniform"' \
        in warnings[0]
    assert 'intervention "gauge"' in warnings[1] and '"storm_duration_min"' in warnings[1] \
        and 'rain = "design_storm"' in warnings[1]
    # the CLI prints them before it runs, and still runs
    assert main(["run", str(sc.path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count(" is set but ") == 2 and "rain_mm_per_h" in err  # (besides the model's warnings on its inputs)
    clean = load_scenario(write_scenario(tmp_path, tiny_city, '[parameters]\nrain = "uniform"\nrain_mm_per_h = 80\n',
                                         model="flood", name="clean"))
    assert clean.ignored_settings() == []
