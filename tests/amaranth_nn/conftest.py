"""Shared setup of the gateware tests: makes ``nn_helpers`` (random specs, drivers) importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
