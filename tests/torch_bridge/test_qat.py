"""QAT eval forward equals the exported integer model exactly, once dequantized."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from amaranth_nn import golden
from amaranth_nn.fixedpoint import QFormat
from torch_bridge import infer
from torch_bridge.convert import calibrate, ptq, qat_from_float
from torch_bridge.export import SaturationWarning, to_spec
from torch_bridge.modules import QHardtanh, QIdentity, QLinear, QLinearBn1d, QReLU, QuantInput
from torch_bridge.train_digits import train

from .conftest import random_float_model


def _random_qat(seed):
    """A QAT MLP with random formats (requantization shifts of both signs)."""
    rng = np.random.default_rng(seed)
    sizes = [int(n) for n in rng.integers(2, 12, size=rng.integers(2, 5))]
    fmt = QFormat(int(rng.integers(4, 10)), int(rng.integers(2, 7)))
    modules = [QuantInput(fmt)]
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        out = QFormat(int(rng.integers(3, 10)), int(rng.integers(-2, 9)))
        kwargs = dict(input_format=fmt, weight_format=QFormat(int(rng.integers(3, 9)),
                                                               int(rng.integers(2, 8))),
                      output_format=out, bias_width=int(rng.integers(8, 24)))
        bn = rng.random() < 0.6
        modules.append(QLinearBn1d(n_in, n_out, **kwargs) if bn
                       else QLinear(n_in, n_out, bias=bool(rng.random() < 0.8), **kwargs))
        kind = rng.integers(0, 3) if index < len(sizes) - 2 else 2
        modules.append([QReLU(), QHardtanh(-0.75, 1.5, fmt=out), QIdentity()][kind])
        fmt = out
    return nn.Sequential(*modules), sizes


def _assert_eval_equals_integer(model, spec, x):
    model.eval()
    with torch.no_grad():
        out = model(x)
    x_int = spec.quantize_input(x.numpy())
    expected = golden.run(spec, x_int)
    assert out.dtype == torch.float64
    assert np.array_equal(out.numpy(), spec.dequantize_output(expected))
    assert np.array_equal(infer.run(spec, x_int).numpy(), expected)


@pytest.mark.parametrize("seed", range(12))
def test_qat_eval_forward_equals_integer_model_after_training(seed):
    torch.manual_seed(seed)
    model, sizes = _random_qat(seed)
    x = torch.randn(96, sizes[0]) * 2
    y = torch.randint(0, sizes[-1], (96,))
    train(model, x, y, epochs=3, lr=1e-2, seed=seed, batch_size=32, progress=False)
    with warnings.catch_warnings():
        # Random formats may saturate; the warning itself is tested in test_errors.py.
        warnings.simplefilter("ignore", SaturationWarning)
        spec = to_spec(model)
    _assert_eval_equals_integer(model, spec, x)


def test_eval_forward_beyond_float64_uses_int64_and_stays_exact():
    # 26-bit inputs and 30-bit weights: accumulators near 2**55 units, beyond the 2**53 where
    # float64 would round; the eval forward switches to int64 and stays exact.
    fmt = QFormat(26, 0)
    dense = QLinear(4, 3, input_format=fmt, weight_format=QFormat(30, 0),
                    output_format=QFormat(20, -34), bias_width=40).double()
    with torch.no_grad():
        dense.linear.weight.copy_(torch.tensor([[2.0 ** 29 - 1, -(2.0 ** 29) + 3, 5.0, 7.0],
                                                [1.0, 2.0, 3.0, 4.0],
                                                [-(2.0 ** 28), 2.0 ** 28 + 1, 1.0, 1.0]],
                                               dtype=torch.float64))
        dense.linear.bias.copy_(torch.tensor([1.0, -3.0, 2.0 ** 38], dtype=torch.float64))
    model = nn.Sequential(QuantInput(fmt), dense)
    assert dense._bound(*dense.integer_parameters()) >= 2 ** 53
    spec = to_spec(model)
    x = torch.tensor([[2.0 ** 25 - 1, -(2.0 ** 25), 12345.0, -999.0],
                      [-(2.0 ** 25), 2.0 ** 25 - 1, 1.0, 0.0],
                      [3.0, 2.0 ** 24 + 7, -5.0, 2.0 ** 25 - 1]], dtype=torch.float64)
    _assert_eval_equals_integer(model, spec, x)


def test_hardtanh_bounds_are_rounded_to_the_output_grid():
    act = QHardtanh(-0.3, 0.8, fmt=QFormat(8, 2))
    assert (act.lo, act.hi) == (-1, 3)
    x = torch.tensor([-1.0, -0.25, 0.5, 0.75, 2.0], dtype=torch.float64)
    assert act(x).tolist() == [-0.25, -0.25, 0.5, 0.75, 0.75]


@pytest.mark.parametrize("seed", range(6))
def test_ptq_equals_its_qat_twin_and_approximates_the_float_model(seed):
    model = random_float_model(seed, sizes=(6, 8, 5, 3))
    x = torch.randn(300, 6)
    formats = calibrate(model, x, bits=12)
    spec = ptq(model, x, bits=12)
    _assert_eval_equals_integer(qat_from_float(model, formats), spec, x)
    with torch.no_grad():
        reference = model(x).double().numpy()
    got = spec.dequantize_output(golden.run(spec, spec.quantize_input(x.numpy())))
    # 12-bit formats hold the calibrated range: the error is a few output LSBs.
    lsb = spec.output_format.lsb
    assert np.abs(got - reference).max() < 16 * lsb


def test_calibration_rule():
    from torch_bridge.convert import frac_for_range
    assert frac_for_range(0.0, 1.0, 8) == 6           # 1.0 * 2**7 = 128 > 127
    assert frac_for_range(0.0, 0.99, 8) == 7          # round(126.72) = 127 fits
    assert frac_for_range(-1.0, 0.5, 8) == 7          # -128 fits
    assert frac_for_range(-1.01, 0.5, 8) == 6
    assert frac_for_range(0.0, 0.0, 4) == 3
    assert frac_for_range(0.0, 16.0, 8) == 2
    assert frac_for_range(0.0, 1e-3, 8) == 16
    model = random_float_model(0, sizes=(3, 4, 2))
    x = torch.tensor([[0.0, 1.0, -0.5], [0.25, 0.0, 0.99]])
    formats = calibrate(model, x, bits=8)
    assert formats["input_format"] == QFormat(8, 6)
    folded_max = max(abs(float(v)) for v in model[0].weight.detach().flatten())
    assert all(f.width == 8 for f in formats["weight_formats"])
    assert formats["weight_formats"][0].max * formats["weight_formats"][0].lsb >= 0.0
    assert folded_max > 0


def test_ptq_of_hardtanh_and_identity_layers():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(5, 4), nn.Hardtanh(-0.5, 0.75), nn.Linear(4, 3),
                          nn.Identity(), nn.Dropout(0.1), nn.Linear(3, 2)).eval()
    x = torch.randn(64, 5)
    spec = ptq(model, x, bits=8, output_format=QFormat(8, 6))
    first = spec.layers[0].activation
    assert (first.kind, first.lo, first.hi) == ("hardtanh", -32, 48)
    assert [layer.activation.kind for layer in spec.layers] == ["hardtanh", "identity",
                                                                "identity"]
    formats = calibrate(model, x, bits=8, output_format=QFormat(8, 6))
    _assert_eval_equals_integer(qat_from_float(model, formats), spec, x)
