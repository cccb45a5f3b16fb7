"""The host client CLI over the simulated board, and its error handling."""

import re

import numpy as np
import pytest
from specs import mlp_spec

from amaranth_nn import QFormat
from amaranth_nn.host import BoardClient, BoardError, check_samples, format_summary, main
from amaranth_nn.link import ByteLink, SimulatedLink


def _spec(seed=2):
    return mlp_spec([5, 3], seed=seed, weight_format=QFormat(6, 5), bias_width=24,
                    output_format=QFormat(8, 3), weights=20, biases=200, name="small")


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
    (["--divisor", "2"], "--divisor must be an integer of at least 4, not 2"),
    (["--fault-rate", "1.5"], "--fault-rate must be a number in [0, 1], not 1.5"),
    (["--fault-rate", "nan"], "--fault-rate must be a number in [0, 1], not nan"),
    (["--fault-seed", "3"], "--fault-seed needs --fault-rate"),
    (["--fault-rate", "0.1", "--fault-seed", "-1"],
     "--fault-seed must be a non-negative integer, not -1"),
])
def test_cli_errors(argv, message, cli_error):
    """Host's own options; --model, --inputs and the folding options of every command line are
    tested in tests/amaranth_nn/test_cli.py."""
    assert cli_error(main, ["--port", "sim"] + argv) == (2, f"error: {message}")


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


def test_serial_port_that_does_not_exist(tmp_path, cli_error):
    """The real pyserial on a missing device: one line naming the port, no traceback."""
    port = str(tmp_path / "ttyNOPE")
    assert cli_error(main, ["--port", port, "--count", "1"]) == (
        2, f"error: --port '{port}' cannot be opened: No such file or directory")


def test_check_samples_and_client_arguments():
    spec, link = _spec(), ByteLink()  # never used: the arguments are checked first
    with pytest.raises(TypeError, match=r"^Retries must be a non-negative integer, not 1\.5$"):
        BoardClient(link, spec, retries=1.5)
    with pytest.raises(ValueError, match=r"^Retries must be a non-negative integer, not -1$"):
        BoardClient(link, spec, retries=-1)
    client = BoardClient(link, spec)
    with pytest.raises(ValueError, match=r"^Inputs must hold at least one sample, not 0$"):
        check_samples(client, np.zeros((0, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"^Labels must be 1 integers, one per sample, not an "
                                         r"array of shape \(1,\) and type float64$"):
        check_samples(client, np.zeros((1, 5), dtype=np.int64), np.zeros(1))


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
