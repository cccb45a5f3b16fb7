"""The resource estimate and the fit check: exact where the plan decides (DSP blocks, block RAM
of the ROMs), fitted where the tools do (LUTs, flip-flops; see the slow tests in test_synth)."""

import numpy as np
import pytest
from specs import random_spec, stream_spec

from amaranth_nn.devices import DEVICES, get_device
from amaranth_nn.estimate import (
    FIT_MARGIN,
    block_parts,
    block_ram_bounds,
    block_rams,
    check_fit,
    dsp_blocks,
    estimate,
    fitting_target_ii,
    most_folded,
    plan_for_device,
)
from amaranth_nn.folding import choose_folding, plan_network
from amaranth_nn.models import MODELS, default_spec
from amaranth_nn.network_plan import NetworkPlan

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


def test_block_ram_bounds_of_any_packing():
    """Two 64 x 72 ROMs read every cycle need two RAMB36 by their reads (72 bits a block) but
    only a quarter of one by their bits; an iCE40 256 x 16 memory fills its block both ways."""
    assert block_ram_bounds([(64, 72), (64, 72)], XC7) == (2.0, 0.25)
    assert block_ram_bounds([(1024, 36)], XC7) == (0.5, 1.0)
    assert block_ram_bounds([(256, 16)], ICE40) == (1.0, 1.0)
    assert block_ram_bounds([(512, 36), (1024, 9)], ECP5) == (45 / 36, 1.5)
    assert block_ram_bounds([], ECP5) == (0, 0)


def test_default_model_exact_counts():
    """DSP blocks and block RAM of the default model, as yosys and nextpnr count them
    (docs/synthesis.md): 44 DSP48E1 and 5 RAMB36 on xc7; on iCE40 at target II 512 six
    SB_MAC16 and 11 SB_RAM40_4K with the board harness (its reply memory is one)."""
    spec = default_spec()
    plan = plan_network(spec)
    on_xc7 = estimate(plan, XC7)
    assert (on_xc7.dsp, on_xc7.bram) == (44, 5)
    assert sum(dsp_blocks(layer, XC7) for layer in plan.layers) == plan.multipliers
    on_ice40 = estimate(plan_network(spec, target_ii=512), ICE40, harness=True)
    assert (on_ice40.dsp, on_ice40.bram, on_ice40.ff) == (6, 11, 0)


def test_narrow_products_take_no_dsp():
    spec = random_spec(np.random.default_rng(1), [8, 4], in_width=4, w_width=4)
    plan = plan_network(spec, [(4, 8)])
    assert estimate(plan, XC7).dsp == 0 < plan.multipliers
    assert estimate(plan, ECP5).dsp == plan.multipliers  # the ECP5 target instantiates them


def test_fit_check_and_suggestion():
    spec = default_spec()
    check = check_fit(plan_network(spec, target_ii=1), XC7)
    # 2720 multipliers: LUTs and DSPs over; the flip-flops fit (no weight or input bit of a
    # DSP48E1 is a fabric flip-flop).
    assert not check.fits and check.over == ["LUT", "DSP"]
    assert check.limits["DSP"] == (2720, 90)
    assert check.limits["LUT"][1] == FIT_MARGIN * XC7.lut
    target, fitting = fitting_target_ii(spec, XC7)
    assert target == 32 and fitting.fits and fitting.estimate.dsp == 86 <= XC7.dsp
    # The next smaller power of two does not fit: the suggestion is the smallest.
    assert not check_fit(plan_network(spec, target_ii=16), XC7).fits
    assert fitting_target_ii(spec, ICE40)[0] == 256
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


# --- Every block kind: the conv models, pooling and scale-and-shift ----------------------------

def _model(name):
    return MODELS[name].spec()


def _ram_blocks(depth, width, device, bank=False):
    """Whether yosys puts a RAM into block RAM, as measured in the conv models' builds and on
    single RAMs: on iCE40 (no LUT RAM) above 72 bits and 4 words (8 x 8, 9 x 8 and 4 x 24 are
    flip-flops, 12 x 8, 9 x 24 and 5 x 16 a block); xc7 from 512 words (256 x 8 is LUT RAM,
    2048 x 8 a RAMB18); ECP5 never under 2048 bits (the ECP5 target asks for LUT RAM), a line
    buffer ``bank`` from there, another RAM when it takes more than 24 TRELLIS_DPR16X4 of
    16 x 4 per DP16KD (64 x 64: 64 of them for 2 DP16KD, a block; 64 x 48: 48 for 2, LUT RAM)."""
    if device.family == "ice40":
        return depth * width > 72 and depth > 4
    if device.family == "xc7":
        return depth >= 512
    if depth * width < 2048:
        return False
    cells = -(-depth // 16) * -(-width // 4)
    return bank or cells > 24 * block_rams(depth, width, device)


def _queue_memories(plan):
    """``(depth, width)`` of the memory of every output queue (``SyncFIFOBuffered`` keeps one
    entry in a register): window generators, dense engines, reducers, converters."""
    queues = []
    for block in plan.layers:
        window = getattr(block, "window", None)
        if window is not None:
            queues.append((window.fifo_depth - 1, window.out_lanes * window.shape.width))
        dense = getattr(block, "dense", block)
        if hasattr(dense, "weight_rom_shape"):
            queues.append((dense.fifo_depth - 1, dense.pe * dense.out_width))
        reducer = getattr(block, "reducer", None)
        if reducer is not None:
            queues.append((reducer.fifo_depth - 1, reducer.lanes * reducer.width))
    return queues


def _converter_queue_memories(plan):
    """``(depth, width)`` of the memory of every width converter's output queue."""
    return [(c.fifo_depth - 1, c.out_lanes * c.width) for c in plan.converters if c is not None]


def _memories(plan, device):
    """``(depth, width)`` of every memory of ``plan`` that goes to block RAM, derived here from
    the plans: the line buffer banks, a pooling reducer's partials (in a RAM from 9 words and
    73 bits), the engines' input buffers and the output queues (on iCE40 a block's queue of 5
    words and 64 bits or more)
    (:func:`_ram_blocks`; a dense layer's input buffer on iCE40 always, as the MLP estimate
    counts it), and the weight and bias ROMs of at least 2048 bits (on iCE40 also of 128 words
    or more; never on ECP5, whose target builds ROMs from LUTs)."""
    memories = []
    for block in plan.layers:
        window = getattr(block, "window", None)
        if window is not None:
            depth, width = window.line_buffer_shape
            if _ram_blocks(depth, width, device, bank=True):
                memories += [(depth, width)] * window.banks
        reducer = getattr(block, "reducer", None)
        if reducer is not None:
            groups, bits = reducer.beats_per_position, reducer.lanes * reducer.partial_width
            if groups >= 9 and groups * bits >= 73 and _ram_blocks(groups, bits, device,
                                                                   bank=True):
                memories.append((groups, bits))
        dense = getattr(block, "dense", block)
        if hasattr(dense, "weight_rom_shape"):
            roms = [dense.weight_rom_shape] * dense.pe + [dense.bias_rom_shape]
            memories += [(d, w) for d, w in roms if device.family != "ecp5" and (
                d * w >= 2048 or (device.family == "ice40" and d >= 128))]
            if _ram_blocks(*dense.input_buffer_shape, device) or (
                    device.family == "ice40" and dense is block):
                memories.append(dense.input_buffer_shape)
    # A block's queue memory on iCE40: block RAM from 5 words and 64 bits (the target asks).
    memories += [(d, w) for d, w in _queue_memories(plan)
                 if (d > 4 and d * w >= 64 if device.family == "ice40" else
                     _ram_blocks(d, w, device))]
    memories += [(d, w) for d, w in _converter_queue_memories(plan) if _ram_blocks(d, w, device)]
    return memories


@pytest.mark.parametrize("name", ["mnist1d", "digits-conv"])
@pytest.mark.parametrize("device", [XC7, ICE40, ECP5], ids=lambda d: d.family)
def test_conv_models_exact_counts(name, device):
    """DSP blocks: one per multiplier of every dense and conv engine (8-bit operands, 15- to
    16-bit products: one DSP48E1, SB_MAC16 or MULT18X18D each); block RAM: the memories of
    :func:`_memories`, each by the cheapest aspect ratio."""
    spec = _model(name)
    plan = plan_network(spec)
    result = estimate(plan, device)
    assert plan.multipliers == sum(pe * simd for (pe, simd), layer
                                   in zip(plan.folding, spec.layers, strict=True)
                                   if layer.kind in ("dense", "conv"))
    assert result.dsp == plan.multipliers
    assert result.bram == sum(block_rams(d, w, device) for d, w in _memories(plan, device))


def test_conv_model_block_ram_by_hand():
    """The MNIST-1D model at its default folding, worked out by hand: six window generators of
    8, 1, 8, 8, 8 and 2 banks of 2, 128, 32, 16, 16 and 64 words of 8 bits (a 1-D line buffer
    holds a few positions). On xc7 no bank is block RAM (LUT RAM below 256 words); conv2's two
    64 x 48 weight ROMs take a RAMB36 each and the dense layer's 400 x 16 weight ROM a RAMB18:
    2.5 RAMB36 in all (``python -m amaranth_nn.build --board arty_a7 --model mnist1d``: 1
    RAMB18E1 and 2 RAMB36E1)."""
    plan = plan_network(_model("mnist1d"))
    shapes = [(b.window.banks, b.window.line_buffer_shape) for b in plan.layers
              if hasattr(b, "window")]
    assert shapes == [(8, (2, 8)), (1, (128, 8)), (8, (32, 8)), (8, (16, 8)), (8, (16, 8)),
                      (2, (64, 8))]
    assert estimate(plan, XC7).bram == 2 * 1 + 0.5
    # ECP5: every bank under 2048 bits is LUT RAM, and so is the dense layer's 128 x 14 input
    # buffer.
    assert estimate(plan, ECP5).bram == 0
    # iCE40: a bank of more than 72 bits is a 4-kbit block: 0 (2 x 8), 1, 8, 8, 8 and 2 x 1.
    banks = sum(n * block_rams(d, w, ICE40) for n, (d, w) in shapes if d * w > 72)
    assert banks == 1 + 8 + 8 + 8 + 2


def test_estimate_of_every_block_kind():
    """A stream of every kind (conv, max and average pooling, scale-and-shift, flatten, dense):
    each block is estimated, its DSPs exactly (conv and dense 4-bit weights times 8-bit inputs
    are 12-bit products: one DSP48E1 each; scale-and-shift one per lane)."""
    rng = np.random.default_rng(3)
    spec = stream_spec(rng, (12, 2), [("conv", 4, (3,), (1,), (1,)), ("maxpool", (2,)),
                                      ("scale_shift",), ("avgpool", (2,)), ("flatten",),
                                      ("dense", 5)])
    plan = plan_network(spec, [(2, 3), (2, 2), (4, 4), (1, 1), None, (1, 4)])
    for device in (XC7, ECP5, ICE40):
        result = estimate(plan, device)
        parts = [name for block in plan.layers for name, _ in block_parts(block, device)]
        assert parts == ["window", "dense", "window", "reducer", "scale", "window", "reducer",
                         "dense"]
        assert result.lut > 0
        assert sum(dsp_blocks(block, device) for block in plan.layers) == result.dsp
    assert estimate(plan, XC7).dsp == 2 * 3 + 4 + 1 * 4
    with pytest.raises(TypeError, match=r"^Block must be a DensePlan, ConvPlan, PoolPlan or "
                                        r"ScalePlan, not 3$"):
        block_parts(3, XC7)


def test_fitting_target_ii_of_conv_models():
    """The search runs up to the most folded design's II (one multiplier per engine: 25600
    cycles for MNIST-1D, whose conv1 takes 20 x 16 x 80 cycles), not in x out features."""
    spec = _model("mnist1d")
    assert NetworkPlan(spec, most_folded(spec)).ii == 20 * 16 * 80
    target, check = fitting_target_ii(spec, XC7)
    assert check.fits and target == 512
    assert not check_fit(plan_network(spec, target_ii=target // 2), XC7).fits
    assert fitting_target_ii(_model("digits-conv"), ECP5)[1].fits


def test_conv_model_that_does_not_fit():
    """The fit check's message for a conv model, pinned: MNIST-1D at target II 40 (932
    multipliers, one position per cycle) on the Arty A7-35T, pointed to target II 512."""
    spec = _model("mnist1d")
    plan = plan_network(spec, target_ii=40)
    assert plan.multipliers == 932
    check = check_fit(plan, XC7)
    lut = check.estimate.as_dict()["LUT"]
    fitting = check_fit(plan_network(spec, target_ii=512), XC7).estimate.as_dict()
    assert check.over == ["LUT", "DSP"]
    assert check.message() == (
        f"the design does not fit the xc7a35t: 932 DSP48E1 needed, 90 available; about {lut} "
        f"LUT6 estimated, 18720 usable (90% of 20800). --target-ii 512 fits (80 DSP48E1, about "
        f"{fitting['LUT']} LUT6).")


def test_conv_models_on_the_ice40up5k():
    """Both conv models fit the iCE40UP5K. MNIST-1D only at its most folded design (4
    multipliers, 28 block RAMs as in its board build, the window generators' output queues
    among them; 4732 logic cells estimated, 4688 in its board build), which the fit check finds
    for it; the 8x8 digits conv model at a less folded one."""
    spec = _model("mnist1d")
    plan = NetworkPlan(spec, most_folded(spec))
    check = check_fit(plan, ICE40)
    assert (plan.multipliers, check.estimate.dsp, check.estimate.bram) == (4, 4, 28)
    assert check.fits
    target, found = fitting_target_ii(spec, ICE40)
    assert found.plan.folding == plan.folding and found.plan.ii <= target
    # The next power of two down is a less folded design, which does not fit.
    less = NetworkPlan(spec, choose_folding(spec, target // 2))
    assert less.folding != plan.folding and not check_fit(less, ICE40).fits
    spec = _model("digits-conv")
    target, check = fitting_target_ii(spec, ICE40)
    assert check.fits and check.plan.ii <= target
    assert check.estimate.dsp == check.plan.multipliers <= ICE40.dsp
    assert check.plan.folding != most_folded(spec)


@pytest.mark.parametrize("device, running", [("xc7a35t", False), ("lfe5u-85f", True),
                                             ("ice40up5k", False)])
def test_plan_for_device_takes_its_accumulators(device, running):
    """A build's plan has the device's running accumulators (ECP5 only): in the dense layers,
    one cycle more latency each; the conv engines restart."""
    spec = MODELS["mnist1d"].spec()
    folding = choose_folding(spec, 1280)
    plan = plan_for_device(NetworkPlan(spec, folding), DEVICES[device], harness=False)
    assert plan.running_accumulators is running
    kinds = {block.index: spec.layers[block.index].kind for block in plan.layers}
    assert [block.running_accumulators for block in plan.layers if kinds[block.index] == "dense"
            ] == [running]
    assert not any(block.running_accumulators for block in plan.layers
                   if kinds[block.index] == "conv")
    assert plan.latency == NetworkPlan(spec, folding).latency + running
