"""Every Python example in README.md and docs/ runs, as written, in a fresh interpreter.

An example preceded by ``<!-- example: slow -->`` runs the synthesis tools and is marked slow.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(<!-- example: (\w+) -->\n)?```python\n(.*?)```", re.S)


def examples():
    for path in DOCUMENTS:
        text = path.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start(3))
            marks = [pytest.mark.slow] if match.group(2) == "slow" else []
            yield pytest.param(path, match.group(3), id=f"{path.name}:{line}", marks=marks)


def test_there_are_examples():
    assert len(list(examples())) >= 5


@pytest.mark.parametrize("path, code", list(examples()))
def test_example_runs(path, code, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"{path.name}:\n{code}\n{done.stderr}"
