"""`citytwin models NAME`: the text comes from the declarations, for one model or a coupled set."""
import pytest

from twin.core.errors import UserError
from twin.scenario.model_docs import describe_model, list_models


def test_a_coupled_name_describes_the_members_parameters_and_what_they_exchange():
    text = describe_model("flood+station_dispersal")
    assert text.startswith("flood+station_dispersal: ")
    assert "flood.cell_size_m" in text and "station_dispersal.demand_scale" in text  # prefixed, as in a scenario
    hands = text.split("Hands to other models in a coupled run:")[1].split("Takes from")[0]
    takes = text.split("Takes from other models in a coupled run:")[1]
    assert "surface_water__depth" in hands and "surface_water__depth" in takes
    assert "NAME+NAME" in list_models()


def test_an_unknown_member_of_a_coupled_name_is_named():
    with pytest.raises(UserError, match='unknown model "nope"'):
        describe_model("flood+nope")
