"""Each model's footprint outside its folder, the tests and the docs is its registry line alone
(scripts/model_footprint.py), and the script would notice a platform line that knows a model."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import model_footprint  # noqa: E402


@pytest.mark.slow
def test_each_model_is_its_registry_line_alone(capsys):
    assert model_footprint.main([]) == 0
    out = capsys.readouterr().out
    blocks = [line for line in out.splitlines() if not line.startswith("  ")]
    assert len(blocks) == 3 and all(": 1 line(s) outside" in b for b in blocks), out
    assert out.count("agents/registry.py:") == 3


def test_the_script_notices_platform_lines_that_know_a_model(tmp_path):
    from agents.registry import get_model

    package, words, layers = model_footprint.model_words(get_model("station_dispersal"))
    assert package == "agents.station" and {"station_dispersal", "gates", "sources", "metro", "station"} <= words
    code = tmp_path / "platform.py"
    code.write_text('"""Docstrings name gates freely."""\n'
                    "from agents.station.los import los_letter\n"  # 2: imports the model
                    "def f(city):\n"
                    "    g = city.gates\n"  # 4: reads its layer as an attribute
                    '    n = city.layer("sources")  # 5: names its layer\n'
                    '    s = "sources"  # not a model word: the import\'s files\n'
                    '    # "metro" in a comment\n'
                    '    return "metro"\n'  # 8: names its POI kind
                    'def g(n):\n'
                    '    raise ValueError(f"{n}: e.g. --set desired_speed_mps=1.2")\n'  # 10: a parameter, in a message
                    '    raise ValueError("a pedestrian density of 2 persons per m2")\n')  # prose, not code
    assert model_footprint.footprint(code, package, words, layers) == [2, 4, 5, 8, 10]
