"""One OpenMP wait policy for every model in the process: threads wait for work asleep (PASSIVE).

The environment is read once, by the first parallel kernel of the process, so a policy chosen by
each model at its import would depend on which model came first (the app opens a station and then
a flood scenario in one process). Passive threads suit both: on a busy or 2-core machine a spinning
thread takes the core another one needs, and a step ends at a barrier (the station's evening peak,
machine loaded: 4x slower with two spinning threads than with one); the flood's 1-hour storm takes
46 s passive against 43 s with threads spinning up to a few milliseconds (2 cores, quiet), and
55 s against 52-58 s beside a process busy a third of the time. A policy set by the user wins.
Import this module before numba starts its threads.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
