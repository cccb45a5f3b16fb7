# amaranth: UnusedElaboratable=no
"""The simulate() function, its stream packing and the ``python -m amaranth_nn.simulate`` CLI.

(The first line: a network built only to provoke an error is never used.)
"""

import subprocess
import sys

import numpy as np
import pytest
from specs import random_inputs, random_spec

from amaranth_nn import golden
from amaranth_nn.lanes import pack_beats, unpack_beats
from amaranth_nn.models import MODELS, default_spec
from amaranth_nn.network import Network
from amaranth_nn.simulate import main, run_streams, simulate


def test_pack_unpack_round_trip():
    rng = np.random.default_rng(0)
    x = rng.integers(-8, 8, size=(3, 7))
    words = pack_beats(x, 3, 4)
    assert len(words) == 9
    assert words[0] == sum((int(v) & 15) << (4 * k) for k, v in enumerate(x[0, :3]))
    values, padding = unpack_beats(words, 3, 4, 7)
    assert (values == x).all()
    assert padding.shape == (3, 2) and (padding == 0).all()


def test_simulate_result_fields(tmp_path):
    rng = np.random.default_rng(1)
    spec = random_spec(rng, [6, 4, 3])
    x = random_inputs(rng, spec, 5)
    vcd = tmp_path / "wave.vcd"
    result = simulate(spec, x, [(2, 3), (3, 2)], vcd=vcd, progress=False)
    assert result.exact and result.mismatches == []
    assert (result.outputs == golden.run(spec, x)).all()
    assert (result.expected == result.outputs).all()
    assert result.latency == result.network.latency
    assert result.ii == result.network.ii == 4
    assert result.out_cycles.shape == (5, 1) and result.in_cycles.shape == (5, 2)
    assert result.cycles > 5 * 4
    assert vcd.stat().st_size > 1000
    # A single vector (1-D input) has no II.
    one = simulate(spec, x[0], [(2, 3), (3, 2)], progress=False)
    assert one.ii is None and (one.outputs[0] == golden.run(spec, x[0])).all()


def test_simulate_with_stalls_and_target_ii():
    rng = np.random.default_rng(2)
    spec = random_spec(rng, [9, 5, 4])
    x = random_inputs(rng, spec, 6)
    result = simulate(spec, x, target_ii=8, stalls=(0.5, 0.5), seed=7, progress=False)
    assert result.network.ii <= 8
    assert result.exact


def test_simulate_errors():
    rng = np.random.default_rng(3)
    spec = random_spec(rng, [4, 2], in_width=4)
    with pytest.raises(ValueError, match=r"^Inputs must have shape \(batch, 4\) or \(4,\), "
                                         r"not \(2, 3\)$"):
        simulate(spec, np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match=r"^Input 8 at index \(0, 1\) is outside the input "
                                         r"format Q\(4, -?\d+\), range \[-8, 7\]$"):
        simulate(spec, np.array([[0, 8, 0, 0]]))
    with pytest.raises(ValueError, match=r"^Pass either a network or a folding/target II, "
                                         r"not both$"):
        simulate(spec, np.zeros((1, 4), dtype=int), [(1, 1)], network=Network(spec))
    with pytest.raises(TypeError, match=r"^Spec must be a NetworkSpec, not 'spec.json'$"):
        simulate("spec.json", np.zeros((1, 4), dtype=int))


def test_cli_with_model_and_inputs(tmp_path, capsys):
    rng = np.random.default_rng(4)
    spec = random_spec(rng, [7, 5, 3])
    x = random_inputs(rng, spec, 25)
    spec_path = spec.save(tmp_path / "net.json")
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    code = main(["--model", str(spec_path), "--inputs", str(tmp_path / "x.npy"),
                 "--out", str(out), "--pe", "5,3", "--simd", "7,5", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "mismatches 0: every output equals the golden model" in text
    assert "folding   5x7, 3x5 (pe x simd per layer), 50 multipliers" in text
    net = Network(spec, [(5, 7), (3, 5)])
    assert f"latency   {net.latency} cycles measured, {net.latency} by the formula" in text
    assert "II        1 cycles measured, 1 by the formula" in text
    assert (np.load(out) == golden.run(spec, x)).all()


def test_cli_default_model(capsys):
    code = main(["--limit", "30", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "64 -> 32 -> 16 -> 10" in text
    assert "II        64 cycles measured, 64 by the formula" in text
    assert "accuracy  " in text
    assert "mismatches 0" in text


def test_cli_errors(tmp_path, capsys):
    spec_path = default_spec().save(tmp_path / "net.json")
    assert main(["--model", str(spec_path)]) == 2
    assert capsys.readouterr().err == ("error: --inputs is required with a spec file as --model "
                                       "(only the embedded models come with test inputs)\n")
    assert main(["--pe", "4,2", "--simd", "8,4,2", "--limit", "1"]) == 2
    assert capsys.readouterr().err == "error: --pe has 2 values, but the model has 3 layers\n"
    assert main(["--pe", "4,x,2", "--simd", "8,4,2", "--limit", "1"]) == 2
    assert capsys.readouterr().err == ("error: --pe expects a comma-separated list of positive "
                                       "integers, got 'x' in '4,x,2'\n")
    (tmp_path / "bad.json").write_text("{")
    assert main(["--model", str(tmp_path / "bad.json"), "--inputs", "x.npy"]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.zeros((2, 5), dtype=np.int64))
    assert main(["--inputs", str(tmp_path / "x.npy"), "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"error: --inputs '{tmp_path / 'x.npy'}': Inputs must "
                                       f"have shape (batch, 64) or (64,), not (2, 5)\n")


@pytest.mark.parametrize("name", ["mnist1d", "digits-conv"])
def test_conv_models_with_random_stalls(name):
    """A few test samples of each conv model, source and sink stalling at random: bit for bit
    with the golden model."""
    spec = MODELS[name].spec()
    x, _ = MODELS[name].test_set()
    result = simulate(spec, x[:3], stalls=(0.4, 0.4), seed=3, progress=False)
    assert result.exact and (result.outputs == golden.run(spec, x[:3])).all()
    assert result.in_cycles.shape == (3, result.network.in_beats)
    gaps = np.diff(result.in_cycles.ravel())
    assert gaps.min() >= 1 and gaps.max() > 1  # the source did stall


def test_cli_conv_model_with_its_own_test_set(tmp_path, capsys):
    model = MODELS["digits-conv"]
    out = tmp_path / "y.npy"
    code = main(["--model", "digits-conv", "--inputs", str(model.file(model.test_file)),
                 "--limit", "2", "--out", str(out), "--backend", "pysim", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    net = Network(model.spec())
    assert (f"folding   conv {net.folding[0][0]}x{net.folding[0][1]}, maxpool "
            f"{net.folding[1][0]}, conv ") in text
    assert f"latency   {net.latency} cycles measured, {net.latency} by the formula" in text
    assert f"II        {net.ii} cycles measured, {net.ii} by the formula" in text
    assert "accuracy  " in text and "mismatches 0: every output equals the golden model" in text
    x, _ = model.test_set()
    assert (np.load(out) == golden.run(model.spec(), x[:2])).all()


def test_cli_conv_model_errors(capsys):
    """A conv model given another model's inputs, or --pe/--simd lists of the wrong length:
    one error line each, exit 2."""
    other = MODELS["digits-conv"]
    path = other.file(other.test_file)
    assert main(["--model", "mnist1d", "--inputs", str(path), "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"error: --inputs '{path}': Inputs must have shape (batch, 40) or (40,) (each sample "
        f"its 40x1 input flattened in stream order), not (450, 64)\n")
    assert main(["--model", "digits-conv", "--pe", "1,2", "--simd", "1,2"]) == 2
    assert capsys.readouterr().err == ("error: --pe has 2 values, but the model has 6 "
                                       "layers\n")
    assert main(["--model", "mnist1d", "--pe", "1,1,8,8,2,2,-,1",
                 "--simd", "5,1,5,8,6,2,-"]) == 2
    assert capsys.readouterr().err == ("error: --simd has 7 values, but the model has 8 "
                                       "layers\n")
    assert main(["--model", "mnist1d", "--pe", "1,1,8,8,2,2,2,1",
                 "--simd", "5,1,5,8,6,2,-,2"]) == 2
    assert capsys.readouterr().err == (
        "error: --pe 1,1,8,8,2,2,2,1 --simd 5,1,5,8,6,2,-,2: - is for a flatten layer, in both "
        "lists; layer 6 ('flatten0') is a flatten layer\n")


def test_simulate_argument_errors_come_before_any_hardware():
    """Bad stalls or an empty batch raise before a Network exists (none is left unused)."""
    rng = np.random.default_rng(3)
    spec = random_spec(rng, [4, 2], in_width=4)
    x = np.zeros((1, 4), dtype=int)
    with pytest.raises(ValueError, match=r"^Stall probabilities must be in \[0, 1\), not 2\.0$"):
        simulate(spec, x, stalls=(2, 0))
    with pytest.raises(ValueError, match=r"^Stall probabilities must be in \[0, 1\), not nan$"):
        simulate(spec, x, stalls=(0, float("nan")))
    with pytest.raises(TypeError, match=r"^Stalls must be a pair of probabilities, not 0\.5$"):
        simulate(spec, x, stalls=0.5)
    with pytest.raises(ValueError, match=r"^Inputs must hold at least one vector, not 0$"):
        simulate(spec, np.zeros((0, 4), dtype=int))
    with pytest.raises(TypeError, match=r"^Network must be a Network, not 'net'$"):
        simulate(spec, x, network="net")
    with pytest.raises(ValueError, match=r"^Longest stall must be a positive integer, not 0$"):
        run_streams(None, [], 0, longest_stall=0)


def test_module_entry_point_help():
    done = subprocess.run([sys.executable, "-m", "amaranth_nn.simulate", "--help"],
                          capture_output=True, text=True, check=True)
    assert "--model NAME|SPEC" in done.stdout and "--vcd F" in done.stdout


def test_a_stalled_run_stops_with_an_error(monkeypatch):
    """A run that waits for beats that never come (here: outputs of a second vector that was
    never sent) ends with an error after the idle limit, instead of running forever."""
    monkeypatch.setattr("amaranth_nn.simulate.PYSIM_IDLE_LIMIT", 2000)
    spec = default_spec()
    net = Network(spec)
    x = random_inputs(np.random.default_rng(0), spec, 1)
    words = pack_beats(x, net.plan.in_lanes, spec.input_format.width)
    with pytest.raises(RuntimeError, match=(
            rf"^The design stalled: no stream transfer for 2000 cycles, after {len(words)} of "
            rf"{len(words)} input beats and {net.out_beats} of {2 * net.out_beats} output "
            rf"beats$")):
        run_streams(net, words, 2 * net.out_beats)
