import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Real reference data (pedestrian experiments, flood benchmarks, city extracts), copied into the
# repository with its sources and licences (tests/data/README.md).
DATA = ROOT / "tests" / "data"
DEMO_CITY = ROOT / "gis_data" / "demo_city"

# The toy model must be visible to worker processes too, so it is plugged in through the environment.
os.environ["CITYTWIN_MODELS"] = ("toy=tests.toy_model:ToyModel,ishigami=tests.analytic_models:IshigamiModel,"
                                  "mmc_queue=tests.analytic_models:QueueModel,arrivals=tests.analytic_models:ArrivalsModel")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))

from agents import registry  # noqa: E402

registry.MODELS.setdefault("toy", "tests.toy_model:ToyModel")
registry.MODELS.setdefault("ishigami", "tests.analytic_models:IshigamiModel")
registry.MODELS.setdefault("mmc_queue", "tests.analytic_models:QueueModel")
registry.MODELS.setdefault("arrivals", "tests.analytic_models:ArrivalsModel")


@pytest.fixture
def ref_data() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"the reference data is missing (tests/data): expected {DATA}")
    return DATA


@pytest.fixture(scope="session")
def tiny_city(tmp_path_factory):
    """A 200 × 100 m city package with a few buildings, a road and a sloping DEM."""
    from tests.factories import make_tiny_city

    return make_tiny_city(tmp_path_factory.mktemp("tiny_city"))


def pytest_collection_modifyitems(config, items):
    """Everything under tests/app drives Qt: marked ``gui`` (needs a display; `make test-fast` leaves
    it out)."""
    app = ROOT / "tests" / "app"
    for item in items:
        if app in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.gui)
