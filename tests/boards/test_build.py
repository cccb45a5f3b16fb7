# amaranth: UnusedElaboratable=no
"""The build CLI: argument handling, and real builds for every board family (slow)."""

import io
import json
import sys
import time

import numpy as np
import pytest
from specs import mlp_spec, stream_spec

from amaranth_nn import QFormat
from amaranth_nn import build as build_module
from amaranth_nn.build import (
    NO_LEGAL_PLACEMENT,
    ROUTING_STARTS,
    _no_legal_placement,
    _over_capacity,
    _routing_too_long,
    _shapes,
    build,
    format_report,
    main,
)
from amaranth_nn.estimate import check_fit, estimate, fitting_target_ii, most_folded, spill_to_logic
from amaranth_nn.folding import choose_folding, plan_network
from amaranth_nn.models import MODELS, default_spec
from amaranth_nn.progress import Progress
from amaranth_nn.toolchain import ToolError
from boards import BOARDS, get_board

KNOWN = "arty_a7, arty_a7_100, icebreaker, ulx3s"


def _tiny_spec():
    return mlp_spec([6, 4, 3], seed=11, weight_format=QFormat(6, 5), bias_width=24, weights=30,
                    biases=300, name="tiny")


def test_board_table():
    assert ", ".join(BOARDS) == KNOWN
    assert get_board("arty_a7").platform.__name__ == "ArtyA7_35Platform"
    assert get_board("arty_a7_100").platform.__name__ == "ArtyA7_100Platform"
    assert get_board("icebreaker").platform.device == "iCE40UP5K"
    assert get_board("ulx3s").platform.device == "LFE5U-85F"
    assert get_board("icebreaker").toolchain_options == {
        "synth_opts": "-dsp", "nextpnr_opts": "--placer-heap-beta 1.0"}


def test_unknown_board(cli_error):
    with pytest.raises(ValueError, match=rf"^Unknown board 'nope'; known boards: {KNOWN}$"):
        get_board("nope")
    assert cli_error(main, ["--board", "nope"]) == (
        2, f"error: --board: Unknown board 'nope'; known boards: {KNOWN}")


@pytest.mark.parametrize("argv, message", [
    (["--pe", "1,1,1"], "--pe and --simd go together: give one value per layer for each"),
    (["--pe", "1,1", "--simd", "1,1"], "--pe has 2 values, but the model has 3 layers"),
    (["--pe", "1,x,1", "--simd", "1,1,1"],
     "--pe expects a comma-separated list of positive integers, got 'x' in '1,x,1'"),
    (["--pe", "1,1,1", "--simd", "1,0,1"], "--simd values must be positive integers, not 0"),
    (["--pe", "1,1,11", "--simd", "1,1,1"],
     "--pe 1,1,11 --simd 1,1,1: Pe must be from 1 to 10 (the out_features of layer 2 "
     "('dense2')), not 11"),
    (["--target-ii", "8", "--pe", "1,1,1", "--simd", "1,1,1"],
     "Give either --pe/--simd or --target-ii, not both"),
    (["--target-ii", "0"], "--target-ii must be a positive integer, not 0"),
    (["--baud", "0"], "--baud must be a positive integer, not 0"),
    (["--baud", "5000000", "--board", "icebreaker"],
     "--baud: Baud rate 5000000 is too fast for the 12 MHz clock of icebreaker (at least 4 "
     "clocks per bit)"),
    (["--toolchain", "Nope"],
     "--toolchain: Unknown toolchain 'Nope' for arty_a7; supported: Vivado, Xray"),
    (["--board", "icebreaker", "--toolchain", "Vivado"],
     "--toolchain: Unknown toolchain 'Vivado' for icebreaker; supported: IceStorm"),
    (["--model", "nope"], "--model 'nope' is neither an embedded model (digits, mnist1d, "
                          "digits-conv) nor an existing spec file"),
])
def test_argument_errors(argv, message, cli_error, tmp_path):
    assert cli_error(main, argv + ["--out", tmp_path / "b"]) == (2, f"error: {message}")
    assert not (tmp_path / "b").exists()


def test_build_directory_is_a_file(cli_error, tmp_path):
    (tmp_path / "file").write_text("")
    assert cli_error(main, ["--out", tmp_path / "file"]) == (
        2, f"error: --out '{tmp_path / 'file'}' is a file, not a directory")


def _estimated(board, target_ii, kind, lut_multipliers=()):
    """The estimate (with the harness) of the default model on ``board`` at ``target_ii``."""
    plan = plan_network(default_spec(), target_ii=target_ii, lut_multipliers=lut_multipliers)
    return estimate(plan, get_board(board).device, harness=True).as_dict()[kind]


@pytest.mark.parametrize("argv, message", [
    (["--board", "arty_a7", "--target-ii", "1"],
     "error: the design does not fit the xc7a35t: 2720 DSP48E1 needed, 90 available; about "
     "{lut} LUT6 estimated, 18720 usable (90% of 20800). --target-ii 32 fits (86 DSP48E1, "
     "about {fit_lut} LUT6)."),
    (["--board", "icebreaker", "--target-ii", "16"],
     "error: the design does not fit the ice40up5k: 170 SB_MAC16 needed, 8 available; 87 "
     "SB_RAM40_4K needed, 30 available; about {lut} logic cells estimated, 4752 usable (90% "
     "of 5280). --target-ii 256 fits (8 SB_MAC16 and LUT multipliers in layers 1, 2, about "
     "{fit_lut} logic cells)."),
])
def test_design_that_does_not_fit_stops_before_any_tool(argv, message, capsys, tmp_path):
    """The issue's examples: found from the plan in well under a second, not after minutes
    in synthesis, with the resource, the need, the capacity and a target II that fits."""
    board, target = argv[1], int(argv[3])
    fit_target, luts = (32, ()) if board == "arty_a7" else (256, (1, 2))
    message = message.format(lut=_estimated(board, target, "LUT"),
                             ff=_estimated(board, target, "FF"),
                             fit_lut=_estimated(board, fit_target, "LUT", luts))
    start = time.monotonic()
    assert main(argv + ["--out", str(tmp_path / "b")]) == 1
    assert time.monotonic() - start < 10
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[-1] == message
    assert lines[1].startswith("estimate: ")
    assert not (tmp_path / "b").exists()


def test_force_goes_past_the_estimate(monkeypatch, tmp_path):
    """--force builds a design the estimate rejects (here until the failing yosys stops it)."""
    monkeypatch.setenv("YOSYS", "false")
    with pytest.raises(ToolError, match=r"^yosys \(synthesize\) failed with exit status 1"):
        build("icebreaker", target_ii=16, out=tmp_path / "b", force=True)
    assert (tmp_path / "b" / "top.il").exists()


def test_finished_build_over_capacity():
    report = {"units": {"LUT": "LUT6", "DSP": "DSP48E1"}, "utilization": {
        "LUT": {"used": 100, "total": 200, "percent": 50.0},
        "DSP": {"used": 120, "total": 90, "percent": 133.33}}}
    assert _over_capacity(report) == "120 DSP48E1 of 90 (133 %)"
    report["utilization"]["DSP"]["used"] = 90
    assert _over_capacity(report) == ""


def test_failing_tool_is_a_one_line_error(capsys, tmp_path, monkeypatch):
    """A tool of the flow that fails (here yosys is /bin/false) ends the build with one line
    naming the tool, the stage and its log, not a traceback."""
    _tiny_spec().save(tmp_path / "tiny.json")
    monkeypatch.setenv("YOSYS", "false")
    out = tmp_path / "ice"
    assert main(["--board", "icebreaker", "--model", str(tmp_path / "tiny.json"), "--out",
                 str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-2:] == [
        "  synthesize (yosys) failed after " + err.split("failed after ")[1].split("\n")[0],
        f"error: yosys (synthesize) failed with exit status 1; its log is {out / 'top.rpt'}"]
    assert not (out / "report.json").exists()


#: nextpnr-ice40 that finds no legal placement unless given a seed, and then routes without
#: end unless given ``--router router2``, and then runs the real one (a design at 89 % of an
#: iCE40UP5K that fails these ways is a slow test's, and which seed fails moves with every
#: change to the design).
_UNPLACEABLE_WITHOUT_A_SEED = """\
import os, subprocess, sys, time
from amaranth_nn.toolchain import find_tool
args = sys.argv[1:]
seed = args[args.index("--seed") + 1] if "--seed" in args else "default"
router = args[args.index("--router") + 1] if "--router" in args else "router1"
with open("runs.txt", "a") as runs:
    runs.write(f"{seed} {router}\\n")
with open(args[args.index("--log") + 1], "w") as log:
    if seed in ("default", "2"):
        log.write("ERROR: Unable to find legal placement for all cells, design is probably at "
                  "utilisation limit.\\n")
        sys.exit(125)
    if router == "router1":
        log.write("Info: Routing..\\n")
        log.flush()
        time.sleep(600)
del os.environ["NEXTPNR_ICE40"]
sys.exit(subprocess.run(find_tool("nextpnr-ice40") + args).returncode)
"""


def test_no_legal_placement_is_read_from_the_log(tmp_path):
    log = tmp_path / "top.tim"
    assert not _no_legal_placement(log)  # no log at all
    log.write_text("Info: Placed 6 cells based on constraints.\nERROR: Max frequency for clock "
                   "'clk': 10.00 MHz (FAIL at 12.00 MHz)\n")
    assert not _no_legal_placement(log)
    for message in NO_LEGAL_PLACEMENT:
        log.write_text(f"Info: at iteration #11\nERROR: {message}\n0 warnings, 1 error\n")
        assert _no_legal_placement(log)


def test_routing_too_long_is_read_from_the_log(tmp_path):
    log = tmp_path / "top.tim"
    log.write_text(f"{ROUTING_STARTS.decode()}\nInfo: 1000 | 21 978\n")  # an earlier run's
    watch = _routing_too_long(log, 0.2)
    assert not log.exists() and watch() is None  # removed: no log yet
    log.write_text("Info: Running main analytical placer\nInfo: at iteration #1\nInfo: Rou")
    assert watch() is None
    time.sleep(0.3)
    assert watch() is None  # still placing
    with open(log, "a") as text:
        text.write("ting..\nInfo: Setting up routing queue.\n")  # the line, split in two
    assert watch() is None  # routing began now
    time.sleep(0.3)
    assert watch() == "router1 still routing after 0.2 s"


def test_icebreaker_picks_target_ii_256_for_the_default_model():
    """No per-board target II: the build's pick for the default model on the iCE40UP5K is the
    smallest power-of-two target II whose estimate fits, 256: ((2, 4), (1, 2), (1, 1)), 11
    multipliers for its 8 DSPs, so the 3 of layers 1 and 2 are built from logic (the
    cheapest layers whose DSPs make room); with DSPs only it would not fit."""
    device = get_board("icebreaker").device
    target, check = fitting_target_ii(default_spec(), device)
    assert target == 256 and check.plan.folding == ((2, 4), (1, 2), (1, 1))
    assert check.plan.lut_multipliers == (1, 2)
    assert check.estimate.dsp == 8
    assert check_fit(plan_network(default_spec(), target_ii=256), device).over == ["DSP"]
    assert not check_fit(spill_to_logic(plan_network(default_spec(), target_ii=128), device),
                         device).fits


@pytest.mark.slow
def test_default_model_on_the_icebreaker_at_ii_256_with_lut_multipliers(tmp_path):
    """The build's pick for the default model on the iCEBreaker, through the real tools: the
    8 SB_MAC16 of layer 0 and layers 1 and 2 in logic, a bitstream that fits, post-route Fmax
    above the 12 MHz board clock, the report naming the layers in logic."""
    out = tmp_path / "ice"
    report = build("icebreaker", out=out)
    assert (out / "top.bin").stat().st_size > 100_000
    _check_report(report, out, "icebreaker")
    assert (report["target_ii"], report["ii_cycles"]) == (256, 256)
    assert report["lut_multipliers"] == [1, 2]
    assert "layers 1, 2 in logic" in format_report(report)
    assert report["utilization"]["DSP"]["used"] == 8
    assert report["utilization"]["LUT"]["used"] <= 5280
    assert report["utilization"]["BRAM"]["used"] == report["utilization"]["BRAM"]["estimate"]
    assert report["fmax_mhz"] > report["clock_mhz"]


def test_bad_model_file(cli_error, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{")
    status, line = cli_error(main, ["--model", path, "--out", tmp_path])
    assert status == 2
    assert line.startswith(f"error: --model: spec file '{path}': is not valid JSON (truncated")


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
    # The estimate the build checked before any tool ran: DSP blocks exact.
    assert report["utilization"]["DSP"]["estimate"] == report["utilization"]["DSP"]["used"]
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
    printed, stages = capsys.readouterr()
    assert "Vivado is not on PATH" in stages
    assert "  synthesize (yosys synth_xilinx) done in " in stages
    assert printed.startswith("board                 Digilent Arty A7-35T")
    for name in ("top.v", "top.xdc", "top.tcl", "build_top.sh"):
        assert (out / name).stat().st_size > 0
    assert "set_property" in (out / "top.xdc").read_text()
    report = json.loads((out / "report.json").read_text())
    _check_report(report, out, "arty_a7")
    assert report["model"] == default_spec().name
    assert report["fmax_mhz"] is None
    # The fastest folding whose estimate fits, confirmed by the tools.
    target, check = fitting_target_ii(default_spec(), get_board("arty_a7").device)
    assert f"folding: --target-ii {target}, the smallest power of two" in stages
    assert report["target_ii"] == target and report["multipliers"] == check.estimate.dsp
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
    # The ECP5's running accumulators, a cycle more per dense layer.
    assert report["running_accumulators"] is True
    assert "running accumulators in the dense layers" in format_report(report)
    restarting = plan_network(_tiny_spec(), target_ii=8)
    assert report["latency_cycles"] == restarting.latency + len(restarting.layers)


@pytest.mark.slow
def test_icebreaker_bitstream(tmp_path, monkeypatch):
    """A bitstream for the iCEBreaker, from a nextpnr that finds no legal placement with its
    default seed nor with ``--seed 2``, and at ``--seed 3`` routes without end: place and
    route runs again with ``--seed 3``, then with router2 once router1 has routed for
    ``ROUTER1_SECONDS`` (1 s here); the stage lines say so, and the report names the seed and
    the router. A nextpnr that fails for another reason is not run again."""
    wrapper = tmp_path / "nextpnr.py"
    wrapper.write_text(_UNPLACEABLE_WITHOUT_A_SEED)
    monkeypatch.setenv("NEXTPNR_ICE40", f"{sys.executable} {wrapper}")
    monkeypatch.setitem(build_module.ROUTER1_SECONDS, "ice40", 1)
    out, stages = tmp_path / "ice", io.StringIO()
    report = build("icebreaker", _tiny_spec(), folding=((1, 2), (1, 1)), out=out,
                   progress=Progress(stages))
    assert (out / "runs.txt").read_text().splitlines() == [
        "default router1", "2 router1", "3 router1", "3 router2"]
    assert "no legal placement with the default seed; trying --seed 2" in stages.getvalue()
    assert "no legal placement with --seed 2; trying --seed 3" in stages.getvalue()
    assert ("router1 still routing after 1 s; placing and routing again with --router router2"
            in stages.getvalue())
    assert report["flow"] == "yosys + nextpnr-ice40 (yowasp), --seed 3, --router router2"
    assert (out / "top.bin").stat().st_size > 100_000
    _check_report(report, out, "icebreaker")
    assert report["fmax_mhz"] > report["clock_mhz"]
    assert report["folding"] == [[1, 2], [1, 1]]
    assert report["utilization"]["DSP"]["used"] >= 1

    monkeypatch.setenv("NEXTPNR_ICE40", "false")
    with pytest.raises(ToolError, match="nextpnr-ice40"):
        build("icebreaker", _tiny_spec(), folding=((1, 2), (1, 1)), out=tmp_path / "ice2",
              progress=Progress(stages))
    assert stages.getvalue().count("trying --seed") == 2


# --- Conv models --------------------------------------------------------------------------------

def test_conv_model_that_does_not_fit_stops_before_any_tool(capsys, tmp_path):
    """MNIST-1D with every engine fully parallel (target II 40) on the Arty A7-35T: the fit
    check stops it in under a second, before anything is written, naming the DSPs and the
    target II that fits."""
    spec = MODELS["mnist1d"].spec()
    check = check_fit(plan_network(spec, target_ii=40), get_board("arty_a7").device)
    need = check.estimate.as_dict()
    target, fitting = fitting_target_ii(spec, get_board("arty_a7").device)
    fits = fitting.estimate.as_dict()
    start = time.monotonic()
    assert main(["--board", "arty_a7", "--model", "mnist1d", "--target-ii", "40", "--out",
                 str(tmp_path / "b")]) == 1
    assert time.monotonic() - start < 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == (
        f"error: the design does not fit the xc7a35t: {need['DSP']} DSP48E1 needed, 90 "
        f"available; about {need['LUT']} LUT6 estimated, 18720 usable (90% of 20800). "
        f"--target-ii {target} fits ({fits['DSP']} DSP48E1, about {fits['LUT']} "
        f"LUT6).")
    assert not (tmp_path / "b").exists()


def test_board_picks_a_folding_that_fits(tmp_path, monkeypatch):
    """Without --target-ii or --pe/--simd, a board build takes the smallest power-of-two target
    II whose estimate fits, and says so in one line (the flow's yosys is /bin/false here: only
    the check and the elaboration run)."""
    monkeypatch.setenv("YOSYS", "false")
    spec = MODELS["mnist1d"].spec()
    device = get_board("ulx3s").device
    target, check = fitting_target_ii(spec, device)
    assert not check_fit(plan_network(spec, target_ii=target // 2), device).fits
    stream = io.StringIO()
    with pytest.raises(ToolError):
        build("ulx3s", spec, out=tmp_path / "b", progress=Progress(stream))
    lines = stream.getvalue().splitlines()
    assert lines[0] == (f"folding: --target-ii {target}, the smallest power of two whose "
                        f"estimate fits the lfe5u-85f")
    assert f"II {check.plan.ii}," in lines[1]


def test_board_steps_back_once_when_the_tools_disagree(tmp_path, monkeypatch):
    """When place and route fails on the folding the build picked, the build steps back once
    to the next target II that fits by the estimate and builds again; when that fails too, the
    tool's error stops it. (nextpnr-ecp5 is /bin/false here, so both attempts fail; yosys is
    real.)"""
    monkeypatch.setenv("NEXTPNR_ECP5", "false")
    spec = mlp_spec([6, 5, 3], seed=2, input_format=QFormat(8, 6))
    device = get_board("ulx3s").device
    first, _ = fitting_target_ii(spec, device)
    second, check = fitting_target_ii(spec, device, above=first)
    assert second > first and check.plan.folding != choose_folding(spec, first)
    stream = io.StringIO()
    with pytest.raises(ToolError, match=r"^nextpnr-ecp5 \(place and route\) failed"):
        build("ulx3s", spec, out=tmp_path / "b", progress=Progress(stream))
    lines = stream.getvalue().splitlines()
    folding_lines = [line for line in lines if line.startswith("folding: ")]
    assert folding_lines == [
        f"folding: --target-ii {first}, the smallest power of two whose estimate fits the "
        f"lfe5u-85f",
        f"folding: the tools disagree with the estimate (place and route failed); stepping "
        f"back to --target-ii {second}"]
    designs = [line for line in lines if line.startswith("Radiona ULX3S")]
    assert len(designs) == 2 and f"II {check.plan.ii}," in designs[1]


def test_a_folding_option_never_steps_back(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ECP5", "false")
    spec = mlp_spec([6, 5, 3], seed=2, input_format=QFormat(8, 6))
    stream = io.StringIO()
    with pytest.raises(ToolError, match=r"^nextpnr-ecp5 \(place and route\) failed"):
        build("ulx3s", spec, target_ii=4, out=tmp_path / "b", progress=Progress(stream))
    assert not [line for line in stream.getvalue().splitlines() if line.startswith("folding")]


def test_report_shapes_of_a_conv_model():
    spec = MODELS["mnist1d"].spec()
    assert _shapes(spec) == [[40, 1], [40, 16], [20, 16], [20, 16], [10, 16], [10, 16],
                             [5, 16], 80, 10]
    assert _shapes(default_spec()) == [64, 32, 16, 10]


def _small_conv_spec():
    """A small 1-D conv model: conv, max pooling, flatten, dense (12 x 1 -> 3)."""
    return stream_spec(np.random.default_rng(5), (12, 1),
                       [("conv", 4, (3,), (1,), (1,)), ("maxpool", (2,)), ("flatten",),
                        ("dense", 3)], name="small-conv")


@pytest.mark.slow
def test_conv_model_board_build(tmp_path):
    """A conv model on the iCEBreaker, the board the build picks a folding for: its default
    target II 512 fits this small model; a bitstream, the DSP and block RAM estimates exact,
    post-route Fmax above the board clock, the report's shapes per position."""
    out = tmp_path / "ice"
    report = build("icebreaker", _small_conv_spec(), out=out)
    assert (out / "top.bin").stat().st_size > 100_000
    _check_report(report, out, "icebreaker")
    assert report["shape"] == [[12, 1], [12, 4], [6, 4], 24, 3]
    assert report["target_ii"] == fitting_target_ii(_small_conv_spec(),
                                                    get_board("icebreaker").device)[0]
    assert report["utilization"]["BRAM"]["used"] == report["utilization"]["BRAM"]["estimate"]
    assert report["fmax_mhz"] > report["clock_mhz"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["digits-conv", pytest.param(
    "mnist1d", marks=pytest.mark.slow(minutes=2))])
def test_conv_models_on_the_icebreaker(tmp_path, model):
    """Both conv models on the iCE40UP5K at the folding the build picks (the smallest
    power-of-two target II whose estimate fits; for MNIST-1D its most folded design): a
    bitstream that fits the device, every DSP block and block RAM as estimated, post-route Fmax
    above the 12 MHz board clock."""
    spec, device = MODELS[model].spec(), get_board("icebreaker").device
    target, check = fitting_target_ii(spec, device)
    back = fitting_target_ii(spec, device, above=target)  # None past the most folded design
    out = tmp_path / "ice"
    report = build("icebreaker", spec, out=out)
    assert (out / "top.bin").stat().st_size > 100_000
    _check_report(report, out, "icebreaker")
    assert report["target_ii"] in (target, back and back[0])  # at most one step back
    assert report["utilization"]["LUT"]["used"] <= 5280
    assert report["utilization"]["BRAM"]["used"] == report["utilization"]["BRAM"]["estimate"]
    assert report["fmax_mhz"] > report["clock_mhz"]


def _wide_conv_spec():
    """MNIST-1D's shape with twice its channels (40 x 1 -> 32 channels in three conv and pool
    pairs -> 10): too large for the iCE40UP5K at any folding."""
    return stream_spec(np.random.default_rng(7), (40, 1),
                       [("conv", 32, (5,), (1,), (2,)), ("maxpool", (2,)),
                        ("conv", 32, (5,), (1,), (2,)), ("maxpool", (2,)),
                        ("conv", 32, (3,), (1,), (1,)), ("maxpool", (2,)), ("flatten",),
                        ("dense", 10)], name="wide-conv")


def test_no_folding_of_a_conv_model_fits_the_icebreaker(capsys, tmp_path):
    """A conv model with no folding that fits the iCE40UP5K: even the most folded design (one
    multiplier per engine) needs more than the device has. A build without a folding option
    says so in about a second, before any tool runs, naming the most folded design's excess."""
    spec = _wide_conv_spec()
    device = get_board("icebreaker").device
    assert fitting_target_ii(spec, device) is None
    check = check_fit(plan_network(spec, most_folded(spec)), device)
    assert check.over
    spec.save(tmp_path / "wide.json")
    start = time.monotonic()
    assert main(["--board", "icebreaker", "--model", str(tmp_path / "wide.json"), "--out",
                 str(tmp_path / "b")]) == 1
    assert time.monotonic() - start < 5
    lines = capsys.readouterr().err.splitlines()
    # The most folded design is the one it reports.
    assert lines[-1] == f"error: {check.message()}"
    assert lines[-1].endswith(". No folding of this model fits this device.")
    assert not (tmp_path / "b").exists()
