"""Adding an intervention to a scenario file as text (twin.scenario.intervention_file)."""
import tomllib

import pytest

from tests.factories import write_scenario
from twin.core.errors import UserError
from twin.scenario.intervention_file import add_intervention
from twin.scenario.scenario import load_scenario


def test_an_intervention_is_appended_and_the_file_keeps_its_lines(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, "# the planners' notes\n[parameters]\nwalkers = 40\n")
    before = sc.read_text()
    add_intervention(sc, "faster", {"speed_mps": 1.5})
    text = sc.read_text()
    assert text.startswith(before.rstrip("\n")) and "# the planners' notes" in text
    assert tomllib.loads(text)["interventions"] == [{"name": "faster", "parameters": {"speed_mps": 1.5}}]
    assert load_scenario(sc).params_for("faster")["speed_mps"] == 1.5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no trial file left


@pytest.mark.parametrize("name, params, message", [
    ("faster", {"speed_mps": 2.0}, "already an intervention named 'faster'"),
    ("new", {}, "changes no parameter"),
    ("new", {"no_such_parameter": 1}, "no_such_parameter"),
    ("new", {"speed_mps": "fast"}, "must be a number"),
])
def test_a_wrong_intervention_leaves_the_file_as_it_was(tmp_path, tiny_city, name, params, message):
    sc = write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 40\n")
    add_intervention(sc, "faster", {"speed_mps": 1.5})
    before = sc.read_text()
    with pytest.raises(UserError, match=message) as e:
        add_intervention(sc, name, params)
    assert str(sc) in str(e.value) and ".toml." not in str(e.value).replace(str(sc), "")
    assert sc.read_text() == before
