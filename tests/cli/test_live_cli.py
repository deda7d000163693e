"""`citytwin feed synth|replay` and `citytwin live`: bad input exits 2 with a message naming what to
fix (the entry point in this process; the live twin's runs are in tests/twin/test_live_twin.py)."""
from __future__ import annotations

import pytest

from tests.conftest import DEMO_CITY
from tests.factories import write_scenario
from twin.cli import main


@pytest.fixture
def scenario(tmp_path):
    return write_scenario(tmp_path, DEMO_CITY, '[parameters]\ncell_size_m = 40.0\nrain = "none"\n', model="flood",
                          duration_s=120)


@pytest.mark.parametrize("args, message", [
    (["--feed", "ftp://example.org/x"], "no adapter reads 'ftp' feeds"),
    (["--feed", "folder:/no/such/folder"], "is not a folder"),
    (["--feed", "folder:.", "--members", "-1"], "--members -1: give a positive number"),
    (["--feed", "folder:.", "--start", "yesterday"], "--start yesterday: give an ISO-8601 time"),
    (["--feed", "folder:.", "--clock", "wall"], "--clock wall needs --start"),
])
def test_live_refuses_bad_input(scenario, tmp_path, capsys, args, message):
    assert main(["live", str(scenario), "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("citytwin: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written for bad input


def test_feed_commands_refuse_bad_input(scenario, tmp_path, capsys):
    assert main(["feed", "replay", str(tmp_path / "nothing"), "--to", "folder:."]) == 2
    assert "not a record (record.json is missing)" in capsys.readouterr().err
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "record.json").write_text("{}", encoding="utf-8")
    (tmp_path / "rec" / "messages.jsonl").write_text('{"sensor": "RG1"}\nnot json\n', encoding="utf-8")
    assert main(["feed", "replay", str(tmp_path / "rec"), "--to", "folder:."]) == 2
    assert "messages.jsonl: line 2 is not a JSON message" in capsys.readouterr().err
    (tmp_path / "rec" / "messages.jsonl").write_text('{"sensor": "RG1"}\n', encoding="utf-8")
    assert main(["feed", "replay", str(tmp_path / "rec"), "--to", "ftp://x"]) == 2
    assert "replay plays into mqtt://HOST:PORT[/TOPIC] or folder:PATH" in capsys.readouterr().err
    bare = write_scenario(tmp_path, tmp_path / "nocity", "", model="flood", name="bare")
    assert main(["feed", "synth", str(bare), "--out", str(tmp_path / "o")]) == 2
    assert "citytwin: error:" in capsys.readouterr().err and not (tmp_path / "o").exists()
