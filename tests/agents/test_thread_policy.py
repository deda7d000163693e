"""The OpenMP wait policy is one for the process, whichever model is imported first (OpenMP reads it
once, at the first parallel kernel), and a policy the user set is kept."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("first, second", [("agents.station.kernels", "agents.flood.solver"),
                                           ("agents.flood.solver", "agents.station.kernels")])
@pytest.mark.parametrize("user", [None, "ACTIVE"])
def test_one_wait_policy_whatever_the_import_order(first, second, user):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if user:
        env["OMP_WAIT_POLICY"] = user
    code = (f"import os, importlib; importlib.import_module({first!r}); a = os.environ.get('OMP_WAIT_POLICY'); "
            f"importlib.import_module({second!r}); print(a, os.environ.get('OMP_WAIT_POLICY'), "
            "os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    want = user or "PASSIVE"
    assert out == [want, want, "None"]
