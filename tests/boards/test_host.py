"""The host client CLI over the simulated board, and its error handling."""

import re

import numpy as np
import pytest

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat
from amaranth_nn.host import BoardClient, BoardError, format_summary, main
from amaranth_nn.link import SimulatedLink


def _spec(seed=2):
    rng = np.random.default_rng(seed)
    layer = Layer("fc", rng.integers(-20, 20, (3, 5)), rng.integers(-200, 200, 3),
                  QFormat(6, 5), QFormat(24, 9), QFormat(8, 3), Activation.identity())
    return NetworkSpec(QFormat(8, 4), [layer], name="small")


def test_cli_sim_default_model(capsys):
    """``python -m amaranth_nn.host --port sim``: the default model and its test set."""
    assert main(["--port", "sim", "--count", "2", "--divisor", "4"]) == 0
    out = capsys.readouterr().out
    assert "exact vs golden    2/2" in out
    assert "argmax vs golden   2/2" in out
    assert "accuracy (labels)" in out
    assert "board counters     frames_ok 4, crc_errors 0" in out  # INFO, 2 samples, STATUS


def test_cli_sim_model_and_inputs(tmp_path, capsys):
    spec = _spec()
    spec.save(tmp_path / "small.json")
    x = np.array([[1, 2, 3, 4, 5], [-128, 127, 0, -1, 1], [7, -7, 7, -7, 7]])
    np.savez(tmp_path / "x.npz", x=x, y=np.array([0, 1, 2]))
    argv = ["--port", "sim", "--model", str(tmp_path / "small.json"), "--inputs",
            str(tmp_path / "x.npz"), "--pe", "3", "--simd", "5", "--divisor", "4"]
    assert main(argv) == 0
    assert "exact vs golden    3/3" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--count", "0"], "--count must be a positive integer, not 0"),
    (["--retries", "-1"], "--retries must be a non-negative integer, not -1"),
    (["--baud", "0"], "--baud must be a positive integer, not 0"),
    (["--divisor", "2"], "Divisor must be at least 4 clocks per bit, not 2"),
    (["--model", "MODEL", "--inputs", "LABELS"],
     "Labels 'y' in 'LABELS' must be 5 integers, one per sample, not an array of shape (2,) "
     "and type int64"),
    (["--model", "MODEL", "--inputs", "FLOATS"],
     "Inputs must be integers of the input format Q(8, 4), not float64; use "
     "spec.quantize_input() for real values"),
    (["--model", "MODEL"],
     "--inputs is required with --model (the test set belongs to the default model)"),
    (["--pe", "1"], "--pe and --simd go together: give one value per layer for each"),
    (["--fault-rate", "1.5"], "--fault-rate must be a probability from 0 to 1, not 1.5"),
    (["--fault-rate", "nan"], "--fault-rate must be a probability from 0 to 1, not nan"),
    (["--fault-seed", "3"], "--fault-seed needs --fault-rate"),
    (["--fault-rate", "0.1", "--fault-seed", "-1"],
     "--fault-seed must be a non-negative integer, not -1"),
])
def test_cli_errors(argv, message, tmp_path, capsys):
    _spec().save(tmp_path / "m.json")
    np.savez(tmp_path / "labels.npz", x=np.zeros((5, 5), dtype=np.int64),
             y=np.zeros(2, dtype=np.int64))
    np.save(tmp_path / "floats.npy", np.full((2, 5), 0.5))
    names = {"MODEL": tmp_path / "m.json", "LABELS": tmp_path / "labels.npz",
             "FLOATS": tmp_path / "floats.npy"}
    argv = [str(names.get(a, a)) for a in argv]
    message = message.replace("LABELS", str(names["LABELS"]))
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "sim"] + argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {message}"


def test_cli_sim_through_a_fault_mix(tmp_path, capsys):
    """``--fault-rate`` and ``--fault-seed``: faults on both directions, every answer exact."""
    spec = _spec()
    spec.save(tmp_path / "small.json")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(-128, 128, (8, 5)))
    argv = ["--port", "sim", "--model", str(tmp_path / "small.json"), "--inputs",
            str(tmp_path / "x.npy"), "--divisor", "4", "--fault-rate", "0.3", "--fault-seed",
            "3", "--retries", "6"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "exact vs golden    8/8" in out and "argmax vs golden   8/8" in out
    faults = re.search(r"^faults injected    (\d+) of \d+ requests \(.*\); (\d+) of \d+ "
                       r"replies \(.*\)$", out, re.M)
    assert faults and int(faults[1]) >= 1 and int(faults[2]) >= 1, out
    retried = int(re.search(r"^retries            (\d+) ", out, re.M)[1])
    assert 1 <= retried <= int(faults[1]) + int(faults[2])


def test_serial_port_that_does_not_exist(tmp_path, capsys):
    """The real pyserial on a missing device: one line, no traceback."""
    port = str(tmp_path / "ttyNOPE")
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", port, "--count", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"could not open port {port}" in err
    assert len(err.splitlines()) == 1


def test_wrong_model_is_detected():
    board_spec, host_spec = _spec(2), _spec(3)
    link = SimulatedLink(board_spec, divisor=4)
    with pytest.raises(BoardError, match=r"^The board runs a different model: fingerprint 0x"):
        BoardClient(link, host_spec).check_model()


def test_silent_board_times_out():
    """A link on which nothing answers: bounded retries, then a clear error."""

    class DeadLink:
        time = 0.0
        byte_time = 1e-4

        def write(self, data):
            pass

        def read(self, size, timeout):
            self.time += timeout
            return b""

        def reply_timeout(self, request_size, reply_size):
            return 0.01

    client = BoardClient(DeadLink(), _spec(), retries=2)
    with pytest.raises(BoardError, match=r"^No reply from the board after 3 attempts \(NAKs "
                                         r"none, 3 timeouts\)"):
        client.info()


def test_format_summary():
    text = format_summary({"samples": 2, "exact": 1, "argmax_ok": 2, "mismatches": [1],
                           "seconds": 2.0, "retried": 0, "timeouts": 0, "naks": {}},
                          {"frames_ok": 3})
    assert "exact vs golden    1/2" in text and "MISMATCHES at      [1]" in text
