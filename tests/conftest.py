"""Fixtures of every test area: a file that cannot be read and a directory that cannot be
written, also for root (who may read and write anything chmod forbids).

Subprocesses that the tests start (``python -c``, ``python -m`` in a temporary directory)
import the tree under test, not another installed copy of the packages: its root goes first on
their ``PYTHONPATH``.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the spec factory, tests/specs.py
ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part])


def _first_refused(candidates, attempt):
    """``(candidate, strerror)`` of the first candidate on which ``attempt`` raises OSError."""
    for candidate in candidates:
        try:
            attempt(candidate)
        except OSError as error:
            return candidate, error.strerror
    pytest.skip("every candidate allows it on this machine")


def _read(path):
    with path.open("rb") as file:
        file.read(1)


def _write_in(directory):
    (directory / "probe").open("xb").close()
    (directory / "probe").unlink()


@pytest.fixture
def unreadable_file(tmp_path):
    """``(path, reason)``: a file whose reading fails, with the error's ``strerror``."""
    path = tmp_path / "secret.npy"
    path.write_bytes(b"\x93NUMPY")
    path.chmod(0)
    yield _first_refused([path, Path("/proc/self/clear_refs")], _read)  # procfs refuses root
    path.chmod(0o600)


@pytest.fixture
def unwritable_dir(tmp_path):
    """``(directory, reason)``: a directory in which no file can be created."""
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o500)
    yield _first_refused([path, Path("/sys")], _write_in)  # sysfs refuses root
    path.chmod(0o700)


@pytest.fixture
def cli_error(capsys):
    """Run a command line's ``main(argv)``; returns ``(status, the one stderr line)``.

    Fails unless stderr holds exactly one line, starting with ``error: ``, and no traceback,
    and nothing was printed on stdout (no work was done).
    """
    def run(main, argv):
        status = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        assert out == "" and "Traceback" not in err
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        return status, lines[0]
    return run


def pytest_configure(config):
    """With ``-n``, xdist's work stealing: a worker that runs out of tests takes some queued on
    the other, instead of idling while that one works through its share of the slow tests."""
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "worksteal"


def _minutes(item):
    """The minutes a test's ``slow`` markers say it takes (``slow(minutes=8)``, the most of
    them); 0 if they say nothing, -1 if it is not slow."""
    return max((marker.kwargs.get("minutes", 0) for marker in item.iter_markers("slow")),
               default=-1)


def pytest_collection_modifyitems(items):
    """Every slow test runs a synthesis or place-and-route tool: mark it ``tools`` too. Slow
    tests run first, the longest first, so that with ``-n 2`` the longest build starts at
    once and the other worker takes the rest meanwhile, instead of it starting last and
    running alone."""
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.tools)
    items.sort(key=lambda item: -_minutes(item))
