"""CityTwin's platform: city packages, scenarios, the experiment runner, exports and the CLI (no Qt)."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("citytwin")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+src"
