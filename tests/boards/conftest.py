"""Shared setup of the board tests: makes ``board_helpers`` (the tiny network) importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
