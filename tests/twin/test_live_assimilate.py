"""``citytwin live --assimilate`` (docs/assimilation.md, "In live mode"): the live twin keeps a filtered
ensemble beside its run; readings from a feed correct it, the forecasts start from it and are scored as
``assimilated``, and the estimates, updates and residuals are written as the twin goes."""
from __future__ import annotations

import pandas as pd
import pytest

from tests.factories import make_toy_twin_experiment
from twin.cli import main
from twin.live.follow import LiveFolder
from twin.live.synth import replay

TRUTH = 1.3  # the hidden walkers' speed; the scenario plans the toy's default (1.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_toy_twin_experiment(tmp_path_factory.mktemp("live_assim"), TRUTH)
    drop = world["dir"] / "drop"
    drop.mkdir()
    replay(world["record"], f"folder:{drop}", 0)
    return {**world, "drop": drop}


def _live(world, out, *extra):
    return main(["live", str(world["scenario"]), "--feed", f"folder:{world['drop']}", "--out", str(out),
                 "--members", "6", "--forecast-interval-s", "20", "--horizon-s", "20", "--stop-when-silent-s", "10",
                 *extra])


def test_live_assimilation_estimates_the_hidden_speed_and_its_forecasts_beat_the_plain_twin(world, tmp_path):
    assert _live(world, tmp_path / "off") == 0
    assert _live(world, tmp_path / "pf", "--assimilate", "pf", "--estimate", "speed_mps=0.6..1.6") == 0
    params = pd.read_csv(tmp_path / "pf" / "parameters.csv")
    prior, final = params.iloc[0], params.iloc[-1]
    assert prior.time_s == 0 and final.time_s > 40
    assert abs(final["mean"] - TRUTH) < abs(prior["mean"] - TRUTH)
    updates = pd.read_csv(tmp_path / "pf" / "updates.csv")
    assert len(updates) >= 8 and (updates.used > 0).all()
    res = pd.read_csv(tmp_path / "pf" / "residuals.csv")
    assert set(res.sensor) == {"E1", "E2"}
    skill = {k: pd.read_csv(tmp_path / k / "skill.csv") for k in ("off", "pf")}
    assert set(skill["off"].method) == {"open_loop"} and set(skill["pf"].method) == {"assimilated"}

    def rmse(s):
        s = s[s.kpi == "sensor.E2"]
        return float((s.rmse ** 2).mean() ** 0.5)

    assert rmse(skill["pf"]) < rmse(skill["off"])  # the counters' forecasts from the corrected ensemble are better
    # what a viewer following the folder shows: the latest estimate with its band
    snap = LiveFolder(tmp_path / "pf").read()
    (est,) = snap.estimates
    assert est["parameter"] == "speed_mps" and est["mean"] == pytest.approx(final["mean"])
    assert snap.estimates_text().startswith("speed_mps ") and "p10-p90" in snap.estimates_text()
    assert LiveFolder(tmp_path / "off").read().estimates == []


def test_live_enkf_runs_its_members_again_over_the_lag(world, tmp_path):
    """--rerun-lag-s in live mode: the filter's members are run again after each update, and the
    estimate still ends closer to the hidden speed than the prior. --spread-floor and --update-every-s
    reach the live filter too: the parameter's band stays open; the updates come every 20 s."""
    params = {}
    for name, extra in (("plain", ()), ("rerun", ("--rerun-lag-s", "10")),
                        ("floor", ("--rerun-lag-s", "10", "--spread-floor", "0.15")),
                        ("every", ("--rerun-lag-s", "10", "--update-every-s", "20"))):
        assert _live(world, tmp_path / name, "--assimilate", "enkf", "--estimate", "speed_mps=0.6..1.6", *extra) == 0
        params[name] = pd.read_csv(tmp_path / name / "parameters.csv")
    prior, final = params["rerun"].iloc[0], params["rerun"].iloc[-1]
    assert final.time_s > 40 and abs(final["mean"] - TRUTH) < abs(prior["mean"] - TRUTH)
    # the same readings and draws; only the members run again differ (their states, so their next updates)
    assert params["plain"].iloc[0]["mean"] == prior["mean"]
    assert not params["plain"]["mean"].equals(params["rerun"]["mean"])
    floor = params["floor"]
    band = (floor.p90 - floor.p10)[floor.time_s > 0]  # six members, clipped at 1.6: below 2.56 × 0.15
    assert band.min() > 1.4 * (final.p90 - final.p10)  # without the floor it keeps narrowing
    every = params["every"]  # --update-every-s 20: an update from the window's mean readings every 20 s
    assert every.time_s.iloc[-1] > 40 and (every.time_s % 20 == 0).all()
    assert abs(every["mean"].iloc[-1] - TRUTH) < abs(every["mean"].iloc[0] - TRUTH)


def test_a_stopped_live_filter_resumes_with_its_members_and_estimates(world, tmp_path, capsys):
    """A live twin stopped and started again with the same command goes on with its filter as saved
    (members, estimates, tables), not from the prior: the estimates equal those of a twin never stopped."""
    args = ("--assimilate", "pf", "--estimate", "speed_mps=0.6..1.6")
    assert _live(world, tmp_path / "whole", *args) == 0
    assert _live(world, tmp_path / "parts", *args, "--until", "30") == 0
    assert (tmp_path / "parts" / "filter.zip").is_file()
    capsys.readouterr()
    assert _live(world, tmp_path / "parts", *args, "--members", "5") == 2
    assert "--members: 6 then, 5 now" in capsys.readouterr().err
    assert _live(world, tmp_path / "parts", *args) == 0
    assert "assimilation: the filter resumed at t = 30 s" in capsys.readouterr().out
    whole, parts = (pd.read_csv(tmp_path / k / "parameters.csv") for k in ("whole", "parts"))
    assert parts.time_s.max() == whole.time_s.max() > 40
    pd.testing.assert_frame_equal(parts, whole)


def test_live_assimilation_refuses_bad_input(world, tmp_path, capsys):
    assert _live(world, tmp_path / "a", "--estimate", "speed_mps=0.6..1.6") == 2
    assert "--assimilate" in capsys.readouterr().err
    assert _live(world, tmp_path / "b", "--assimilate", "pf", "--members", "1") == 2
    assert "at least 2 members" in capsys.readouterr().err
    assert _live(world, tmp_path / "c", "--assimilate", "pf", "--rerun-lag-s", "30") == 2
    err = capsys.readouterr().err
    assert "--rerun-lag-s 30" in err and "--assimilate enkf" in err
    assert _live(world, tmp_path / "d", "--assimilate", "pf", "--spread-floor", "0.02") == 2
    err = capsys.readouterr().err
    assert "--spread-floor 0.02" in err and "--assimilate enkf" in err
    assert _live(world, tmp_path / "e", "--assimilate", "enkf", "--spread-floor", "-1") == 2
    assert "--spread-floor -1" in capsys.readouterr().err
    assert _live(world, tmp_path / "f", "--update-every-s", "20") == 2
    err = capsys.readouterr().err
    assert "--update-every-s 20" in err and "--assimilate" in err
    # a hole in a --set value is for `citytwin assimilate`: the live run itself needs the number
    assert _live(world, tmp_path / "g", "--assimilate", "pf", "--set", 'speed_profile=[[0, 1.0], [10, "{late}"]]',
                 "--estimate", "late=0.5..2") == 2
    err = capsys.readouterr().err
    assert '--set speed_profile: "{late}"' in err and "citytwin assimilate" in err
