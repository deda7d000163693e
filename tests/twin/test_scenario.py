import pytest

from tests.factories import write_scenario
from twin.core.errors import UserError
from twin.scenario.scenario import load_scenario, parse_set


def test_relative_city_resolves_against_the_scenario_file(tmp_path, tiny_city):
    (tmp_path / "sub").mkdir()
    rel = "../" + tiny_city.name
    import shutil

    shutil.copytree(tiny_city, tmp_path / tiny_city.name)
    sc = load_scenario(write_scenario(tmp_path / "sub", rel))
    assert sc.city_path == (tmp_path / tiny_city.name).resolve()
    assert sc.load_city().name == "Tiny"


def test_variants_layer_parameters(tmp_path, tiny_city):
    sc = load_scenario(write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 10\n\n[[interventions]]\n"
                                      'name = "more"\n[interventions.parameters]\nwalkers = 20\n'))
    assert sc.variants() == ["baseline", "more"]
    assert sc.params_for("baseline")["walkers"] == 10
    assert sc.params_for("more")["walkers"] == 20
    assert sc.params_for("more", {"walkers": 5})["walkers"] == 5
    assert sc.params_for(None)["speed_mps"] == 1.0  # the model's default


@pytest.mark.parametrize("body, message", [
    ('[scenario]\nmodel = "toy"\n', "city"),
    ('[scenario]\nmodel = "toy"\ncity = "x"\nduration = 5\n', 'did you mean "duration_s"'),
    ('[scenario]\nmodel = "toy"\ncity = "x"\nduration_s = "ten"\n', "must be a number"),
    ('[scenario]\nmodel = "toy"\ncity = "x"\nduration_s = 10\nseed = 1.5\n', "whole number"),
    ('[scenario]\nmodel = "toy"\ncity = "x"\nduration_s = 10\n[[interventions]]\nname = "baseline"\n', "reserved"),
    ('[scenario]\nmodel = "toy"\ncity = "x"\nduration_s = 10\n[[interventions]]\nname = "a"\n[[interventions]]\nname = "a"\n', "used twice"),
    ('[scenario\n', "not valid TOML"),
])
def test_bad_scenarios_name_the_key(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(UserError, match=message) as e:
        load_scenario(path)
    assert str(path) in str(e.value)


def test_parse_set_reads_toml_values():
    assert parse_set(["a=1", "b=1.5", "c=true", 'd=["N1", "N2"]', "e=text"]) == {
        "a": 1, "b": 1.5, "c": True, "d": ["N1", "N2"], "e": "text"}
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_set(["novalue"])
