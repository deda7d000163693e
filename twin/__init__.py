"""CityTwin's platform, no Qt, its layers as folders: ``core`` (the contract models build on), ``gis`` (city
import), ``scenario`` (scenario files, sweeps, preflight), ``view`` (scene, renderer, alerts, video),
``runs`` (runner, compare, branch, replay, exports, reports), then ``session``, ``cli`` and ``api``
(docs/app_architecture.md, "Layers as folders")."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("citytwin")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+src"
