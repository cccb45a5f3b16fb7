"""The resource estimate and the fit check: exact where the plan decides (DSP blocks, block RAM
of the ROMs), fitted where the tools do (LUTs, flip-flops; see the slow tests in test_synth)."""

import numpy as np
import pytest
from specs import random_spec

from amaranth_nn.devices import DEVICES, get_device
from amaranth_nn.estimate import (
    FIT_MARGIN,
    block_rams,
    check_fit,
    dsp_blocks,
    estimate,
    fitting_target_ii,
)
from amaranth_nn.folding import plan_network
from amaranth_nn.models import default_spec

XC7, ICE40, ECP5 = DEVICES["xc7a35t"], DEVICES["ice40up5k"], DEVICES["lfe5u-85f"]


@pytest.mark.parametrize("family, a, b, y, blocks", [
    # Measured with yosys synth_xilinx (docs/synthesis.md): 4x3 and 4x4-bit products in LUTs,
    # 6x5 and 25x18 in one DSP48E1, 26x19 in four.
    ("xc7", 4, 3, 7, 0), ("xc7", 4, 4, 8, 0), ("xc7", 6, 5, 11, 1), ("xc7", 25, 18, 43, 1),
    ("xc7", 18, 25, 43, 1), ("xc7", 26, 19, 45, 4),
    # synth_ice40 -dsp: 16x16 per SB_MAC16, products narrower than 11 bits in LUTs.
    ("ice40", 8, 8, 15, 1), ("ice40", 5, 5, 10, 0), ("ice40", 17, 16, 33, 2),
    # The ECP5 target: one MULT18X18D up to 18x18.
    ("ecp5", 2, 2, 3, 1), ("ecp5", 18, 18, 36, 1),
])
def test_dsp_blocks_per_multiplier(family, a, b, y, blocks):
    device = next(d for d in DEVICES.values() if d.family == family)
    assert device.dsp_block.blocks(a, b, y) == blocks


@pytest.mark.parametrize("device, depth, width, blocks", [
    (XC7, 64, 64, 1), (XC7, 64, 32, 0.5), (XC7, 1024, 16, 0.5), (XC7, 4096, 16, 2),
    (ICE40, 1024, 16, 4), (ICE40, 512, 8, 1), (ICE40, 64, 32, 2), (ICE40, 256, 16, 1),
    (ECP5, 512, 36, 1), (ECP5, 2048, 16, 2),
])
def test_block_rams_of_one_memory(device, depth, width, blocks):
    assert block_rams(depth, width, device) == blocks


def test_default_model_exact_counts():
    """DSP blocks and block RAM of the default model, as yosys and nextpnr count them
    (docs/synthesis.md): 44 DSP48E1 and 5 RAMB36 on xc7; on iCE40 at target II 512 six
    SB_MAC16 and 10 SB_RAM40_4K with the board harness."""
    spec = default_spec()
    plan = plan_network(spec)
    on_xc7 = estimate(plan, XC7)
    assert (on_xc7.dsp, on_xc7.bram) == (44, 5)
    assert sum(dsp_blocks(layer, XC7) for layer in plan.layers) == plan.multipliers
    on_ice40 = estimate(plan_network(spec, target_ii=512), ICE40, harness=True)
    assert (on_ice40.dsp, on_ice40.bram, on_ice40.ff) == (6, 10, 0)


def test_narrow_products_take_no_dsp():
    spec = random_spec(np.random.default_rng(1), [8, 4], in_width=4, w_width=4)
    plan = plan_network(spec, [(4, 8)])
    assert estimate(plan, XC7).dsp == 0 < plan.multipliers
    assert estimate(plan, ECP5).dsp == plan.multipliers  # the ECP5 target instantiates them


def test_fit_check_and_suggestion():
    spec = default_spec()
    check = check_fit(plan_network(spec, target_ii=1), XC7)
    assert not check.fits and check.over == ["LUT", "FF", "DSP"]
    assert check.limits["DSP"] == (2720, 90)
    assert check.limits["LUT"][1] == FIT_MARGIN * XC7.lut
    target, fitting = fitting_target_ii(spec, XC7)
    assert target == 32 and fitting.fits and fitting.estimate.dsp == 86 <= XC7.dsp
    # The next smaller power of two does not fit: the suggestion is the smallest.
    assert not check_fit(plan_network(spec, target_ii=16), XC7).fits
    assert fitting_target_ii(spec, ICE40)[0] == 512
    assert check_fit(plan_network(spec), XC7).summary() == (
        f"{estimate(plan_network(spec), XC7, harness=True).as_dict()['LUT']} of 20800 LUT6, "
        f"{estimate(plan_network(spec), XC7, harness=True).as_dict()['FF']} of 41600 FF, "
        f"44 of 90 DSP48E1, 5 of 50 RAMB36E1 on the xc7a35t")


def test_nothing_fits():
    wide = random_spec(np.random.default_rng(2), [40, 40], in_width=16, w_width=16)
    tiny = DEVICES["ice40up5k"].__class__(**{**vars(ICE40), "dsp": 0, "lut": 100})
    assert fitting_target_ii(wide, tiny) is None
    message = check_fit(plan_network(wide), tiny).message()
    assert message.startswith("the design does not fit the ice40up5k: ")
    assert message.endswith(". No folding of this model fits this device.")


def test_errors():
    with pytest.raises(ValueError, match=r"^Device must be one of xc7a35t, xc7a100t, lfe5u-85f, "
                                         r"ice40up5k, not 'xc7z020'$"):
        get_device("xc7z020")
    with pytest.raises(TypeError, match=r"^Plan must be a NetworkPlan, not 3$"):
        check_fit(3, XC7)
    with pytest.raises(TypeError, match=r"^Device must be a Device, not 'xc7a35t'$"):
        check_fit(plan_network(default_spec()), "xc7a35t")
