# amaranth: UnusedElaboratable=no
"""The build CLI: argument handling, and real builds for every board family (slow)."""

import json

import numpy as np
import pytest

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat
from amaranth_nn.build import build, format_report, main
from amaranth_nn.folding import choose_folding
from amaranth_nn.models import default_spec
from boards import BOARDS, get_board

KNOWN = "arty_a7, arty_a7_100, icebreaker, ulx3s"


def _tiny_spec():
    rng = np.random.default_rng(11)
    l0 = Layer("fc0", rng.integers(-30, 30, (4, 6)), rng.integers(-300, 300, 4), QFormat(6, 5),
               QFormat(24, 9), QFormat(8, 4), Activation.relu())
    l1 = Layer("fc1", rng.integers(-30, 30, (3, 4)), rng.integers(-300, 300, 3), QFormat(6, 5),
               QFormat(24, 9), QFormat(8, 4), Activation.identity())
    return NetworkSpec(QFormat(8, 4), [l0, l1], name="tiny")


def test_board_table():
    assert ", ".join(BOARDS) == KNOWN
    assert get_board("arty_a7").platform.__name__ == "ArtyA7_35Platform"
    assert get_board("arty_a7_100").platform.__name__ == "ArtyA7_100Platform"
    assert get_board("icebreaker").platform.device == "iCE40UP5K"
    assert get_board("ulx3s").platform.device == "LFE5U-85F"
    assert get_board("icebreaker").toolchain_options == {"synth_opts": "-dsp"}


def test_unknown_board(capsys):
    with pytest.raises(ValueError, match=rf"^Unknown board 'nope'; known boards: {KNOWN}$"):
        get_board("nope")
    with pytest.raises(SystemExit) as exit_info:
        main(["--board", "nope"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: Unknown board 'nope'; known boards: {KNOWN}\n"


@pytest.mark.parametrize("argv, message", [
    (["--pe", "1,1,1"], "--pe and --simd go together: give one value per layer for each"),
    (["--pe", "1,1", "--simd", "1,1"], "--pe has 2 values, but the model has 3 layers"),
    (["--pe", "1,x,1", "--simd", "1,1,1"],
     "--pe expects a comma-separated list of positive integers, got 'x' in '1,x,1'"),
    (["--pe", "1,1,1", "--simd", "1,0,1"], "--simd values must be positive integers, not 0"),
    (["--target-ii", "8", "--pe", "1,1,1", "--simd", "1,1,1"],
     "Give either --pe/--simd or --target-ii, not both"),
    (["--target-ii", "0"], "--target-ii must be a positive integer, not 0"),
    (["--baud", "5000000"],
     "Baud rate 5000000 is too fast for the 12 MHz clock of icebreaker (at least 4 clocks "
     "per bit)"),
])
def test_argument_errors(argv, message, capsys, tmp_path):
    if "--baud" in argv:
        argv = argv + ["--board", "icebreaker"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_toolchain_and_build_directory_errors(capsys, tmp_path):
    for argv, message in [
        (["--toolchain", "Nope"], "Unknown toolchain 'Nope' for arty_a7; supported: Vivado, Xray"),
        (["--board", "icebreaker", "--toolchain", "Vivado"],
         "Unknown toolchain 'Vivado' for icebreaker; supported: IceStorm"),
        (["--out", str(tmp_path / "file")], f"Build directory '{tmp_path / 'file'}' is a file"),
    ]:
        (tmp_path / "file").write_text("")
        with pytest.raises(SystemExit) as exit_info:
            main(argv + ([] if "--out" in argv else ["--out", str(tmp_path / "b")]))
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "b").exists()


def test_failing_tool_is_a_one_line_error(capsys, tmp_path, monkeypatch):
    """A tool of the flow that fails (here yosys is /bin/false) ends the build with one line
    naming the flow and the build directory, not a traceback."""
    _tiny_spec().save(tmp_path / "tiny.json")
    monkeypatch.setenv("YOSYS", "false")
    out = tmp_path / "ice"
    with pytest.raises(SystemExit) as exit_info:
        main(["--board", "icebreaker", "--model", str(tmp_path / "tiny.json"), "--out",
              str(out)])
    assert exit_info.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == [f"error: yosys (synthesize) failed with exit status 1; last lines of "
                      f"{out / 'yosys.log'}:"]
    assert not (out / "report.json").exists()


def test_icebreaker_default_folding():
    """The documented folding that makes the default model fit the iCE40UP5K: target II 512,
    ((2, 2), (1, 1), (1, 1)), 6 multipliers for its 8 DSPs."""
    board = get_board("icebreaker")
    folding = choose_folding(default_spec(), board.target_ii)
    assert board.target_ii == 512 and folding == ((2, 2), (1, 1), (1, 1))
    assert sum(pe * simd for pe, simd in folding) == 6 <= board.device.dsp


def test_bad_model_file(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{")
    with pytest.raises(SystemExit):
        main(["--model", str(path), "--out", str(tmp_path)])
    assert "is not valid JSON" in capsys.readouterr().err


def _check_report(report, out, board):
    saved = json.loads((out / "report.json").read_text())
    assert saved == report
    assert report["board"] == board
    for name in report["files"]:
        assert (out / name).exists(), name
    for kind in ("LUT", "DSP", "BRAM"):
        entry = report["utilization"][kind]
        assert entry["used"] is not None and entry["total"] > 0
        assert entry["percent"] == round(100 * entry["used"] / entry["total"], 2)
    assert report["utilization"]["LUT"]["used"] > 0
    assert report["ii_cycles"] >= 1 and report["latency_cycles"] > report["ii_cycles"] - 1
    assert report["inferences_per_s_clock"] == report["clock_mhz"] * 1e6 / report["ii_cycles"]
    assert report["inferences_per_s_uart"] == pytest.approx(
        report["baud"] / 10 / (report["request_bytes"] + report["reply_bytes"]))
    text = format_report(report)
    for label in ("LUT", "FF", "DSP", "BRAM", "Fmax", "II", "latency", "inferences/s (UART)"):
        assert label in text


@pytest.mark.slow
def test_arty_a7_default_model_cli(tmp_path, capsys):
    """The documented command, no options but the build directory: the default model."""
    out = tmp_path / "arty"
    assert main(["--board", "arty_a7", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Vivado is not on PATH" in printed
    for name in ("top.v", "top.xdc", "top.tcl", "build_top.sh"):
        assert (out / name).stat().st_size > 0
    assert "set_property" in (out / "top.xdc").read_text()
    report = json.loads((out / "report.json").read_text())
    _check_report(report, out, "arty_a7")
    assert report["model"] == default_spec().name
    assert report["fmax_mhz"] is None
    # Target: the default model uses at most 50% of the A7-35T's LUTs.
    assert report["utilization"]["LUT"]["percent"] <= 50
    assert report["utilization"]["DSP"]["used"] == report["multipliers"]


@pytest.mark.slow
def test_arty_a7_xray_toolchain(tmp_path):
    """``--toolchain Xray``: the open-flow tree (no Vivado TCL), and yosys for the utilization."""
    out = tmp_path / "xray"
    report = build("arty_a7", _tiny_spec(), toolchain="Xray", out=out)
    _check_report(report, out, "arty_a7")
    assert report["files"] == ["top.v", "top.xdc", "build_top.sh", "synth_xilinx/"]
    assert report["flow"] == "yosys synth_xilinx"


@pytest.mark.slow
def test_ulx3s_bitstream(tmp_path):
    out = tmp_path / "ulx3s"
    report = build("ulx3s", _tiny_spec(), target_ii=8, out=out)
    assert (out / "top.bit").stat().st_size > 100_000
    _check_report(report, out, "ulx3s")
    assert report["fmax_mhz"] > report["clock_mhz"]
    assert report["utilization"]["FF"]["used"] > 0


@pytest.mark.slow
def test_icebreaker_bitstream(tmp_path):
    out = tmp_path / "ice"
    report = build("icebreaker", _tiny_spec(), folding=((1, 2), (1, 1)), out=out)
    assert (out / "top.bin").stat().st_size > 100_000
    _check_report(report, out, "icebreaker")
    assert report["fmax_mhz"] > report["clock_mhz"]
    assert report["folding"] == [[1, 2], [1, 1]]
    assert report["utilization"]["DSP"]["used"] >= 1
