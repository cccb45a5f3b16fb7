"""Packaging: amaranth_nn imports without torch, and the README's hand-written example runs."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCK_TORCH = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, BlockTorch())
"""


def run_python(code, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)


def test_import_without_torch(tmp_path):
    code = BLOCK_TORCH + """
import importlib, pkgutil
import amaranth_nn
for info in pkgutil.walk_packages(amaranth_nn.__path__, "amaranth_nn."):
    importlib.import_module(info.name)
assert "torch" not in sys.modules
try:
    import torch
except ImportError:
    print("blocked")
"""
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "blocked"


def test_readme_example(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Write a network by hand", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "hand.json").exists()
    assert len(result.stdout.strip().splitlines()) == 5
