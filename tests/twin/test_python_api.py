"""The Python API (``import citytwin``, docs/python_api.md), on the toy model, and the example
notebook docs/examples/citytwin_in_python.ipynb executed in a kernel of this interpreter."""
import json
import sys
from pathlib import Path

import pytest

import citytwin
from tests.factories import write_scenario
from twin.core.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs" / "examples" / "citytwin_in_python.ipynb"


@pytest.mark.slow
def test_load_change_run_and_open(tmp_path, tiny_city):
    import geopandas as gpd
    import xarray as xr

    sc = citytwin.load_scenario(write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 30\n", duration_s=100))
    assert sc.params["walkers"] == 30 and sc.model == "toy"
    faster = sc.with_params(speed_mps=2.0).with_outputs(fields=["max_count"], field_interval_s=20,
                                                        feature_interval_s=20, trajectory_interval_s=10)
    assert faster.params["speed_mps"] == 2.0 and sc.params["speed_mps"] == 1.0  # a copy; the original unchanged
    run = citytwin.run(faster, out=tmp_path / "run", progress=False)
    assert run.kpis.loc["walkers_done", "value"] == 30 and run.kpis.loc["done_by_half.west", "unit"] == "-"
    assert run.timeseries["time_s"].iloc[0] == 0.0
    assert isinstance(run.fields(), xr.Dataset) and run.fields().rio.crs.to_epsg() == 32650
    assert isinstance(run.features(), gpd.GeoDataFrame) and len(run.trajectory_table())
    assert json.loads(run.provenance["parameters"])["speed_mps"] == 2.0
    assert run.raster("max_count").rio.crs.to_epsg() == 32650
    again = citytwin.open_run(tmp_path / "run")
    assert again.summary == run.summary
    slower = citytwin.run(sc, progress=False)  # a temporary folder
    assert slower.summary["kpis"]["mean_time_s"] > run.summary["kpis"]["mean_time_s"]
    with pytest.raises(UserError, match="no trajectories of level 0"):
        run.trajectories(0)  # the toy has no walkable levels


def test_bad_parameters_fail_at_once(tmp_path, tiny_city):
    sc = citytwin.load_scenario(write_scenario(tmp_path, tiny_city, duration_s=60))
    with pytest.raises(UserError, match='did you mean "speed_mps"'):
        sc.with_params(sped_mps=2.0)
    with pytest.raises(UserError, match="not a finished run folder"):
        citytwin.open_run(tmp_path)


@pytest.mark.slow
def test_compare(tmp_path, tiny_city):
    body = ("[parameters]\nwalkers = 20\n\n[[interventions]]\nname = \"fast\"\n[interventions.parameters]\n"
            "speed_mps = 2.0\n")
    sc = citytwin.load_scenario(write_scenario(tmp_path, tiny_city, body, duration_s=100, replications=2))
    cmp = citytwin.compare(sc.with_params(walkers=25), out=tmp_path / "cmp", workers=1, progress=False)
    assert set(cmp.table["variant"]) == {"baseline", "fast"} and len(cmp.runs) == 4
    assert cmp.run("fast", 1).summary["kpis"]["walkers_done"] == 25  # the changed parameter reached every run
    with pytest.raises(UserError, match="no run of variant"):
        cmp.run("slow")


@pytest.mark.slow
def test_the_api_never_imports_qt():
    import subprocess

    code = "import sys, citytwin; print(any(m.startswith(('PySide6', 'app')) for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT).stdout.strip() == "False"


@pytest.mark.slow
def test_example_notebook_runs(tmp_path, monkeypatch):
    """The notebook of docs/python_api.md, executed cell by cell in a kernel of this interpreter."""
    import nbformat
    from ipykernel.kernelspec import install
    from nbclient import NotebookClient

    install(kernel_name="citytwin-test", prefix=str(tmp_path / "kernel"))  # argv: this sys.executable
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "kernel" / "share" / "jupyter"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name="citytwin-test", timeout=600,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "EPSG:32650" in text and "passengers on the platforms" in text and "run_hash" in text
