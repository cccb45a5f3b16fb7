"""Conv, pooling, flatten and BatchNorm QAT modules: eval forward == integer model, exactly.

Every module is trained for a few steps (batch statistics, running statistics updated), then
the model is exported and its eval forward compared with the golden model's outputs
(``np.array_equal`` after dequantization) and torch int64 inference with the golden model.
"""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from amaranth_nn import golden
from amaranth_nn.fixedpoint import QFormat
from torch_bridge import infer
from torch_bridge.convert import calibrate, ptq, qat_from_float
from torch_bridge.layout import stream_permutation, to_stream
from torch_bridge.modules import (
    QAvgPool1d,
    QAvgPool2d,
    QBatchNorm1d,
    QBatchNorm2d,
    QBnConv1d,
    QBnConv2d,
    QBnLinear,
    QConv1d,
    QConv1dBn,
    QConv2d,
    QConv2dBn,
    QFlatten,
    QHardtanh,
    QLinear,
    QLinearBn1d,
    QMaxPool1d,
    QMaxPool2d,
    QReLU,
    QuantInput,
)
from torch_bridge.qat_spec import SaturationWarning, to_spec
from torch_bridge.training import train

from .conftest import random_bn


def export_quietly(model):
    with warnings.catch_warnings():
        # Random formats may saturate; the warning itself is tested in test_errors.py.
        warnings.simplefilter("ignore", SaturationWarning)
        return to_spec(model)


def assert_eval_equals_integer(model, spec, x):
    model.eval()
    with torch.no_grad():
        out = model(x)
    x_int = spec.quantize_input(to_stream(x).numpy())
    expected = golden.run(spec, x_int)
    assert out.dtype == torch.float64
    assert np.array_equal(to_stream(out).numpy(), spec.dequantize_output(expected))
    for got, want in zip(infer.run_layers(spec, x_int), golden.run_layers(spec, x_int),
                         strict=True):
        assert np.array_equal(got.numpy(), want)


def trained(model, x, seed=0, steps=3):
    """``model`` after a few steps of training on random labels (batch statistics)."""
    torch.manual_seed(seed)
    y = torch.randint(0, 3, (len(x),))
    head = nn.Sequential(model, QFlatten())
    out_size = int(np.prod(head(x[:2].double()).shape[1:]))
    projection = nn.Linear(out_size, 3).double()
    optimizer = torch.optim.Adam(list(model.parameters()) + list(projection.parameters()), 1e-2)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(projection(head(x)), y)
        loss.backward()
        optimizer.step()
    return model.eval()


Q = dict(input_format=(8, 4), weight_format=(8, 6), output_format=(8, 4))
S = dict(input_format=(8, 4), scale_format=(8, 6), output_format=(8, 4))

# One model per new module, each with the module where it matters.
MODELS = {
    "QConv1d": lambda: [QuantInput((8, 4), shape=(2, 11)),
                        QConv1d(2, 3, 3, stride=2, padding=1, **Q), QReLU()],
    "QConv2d": lambda: [QuantInput((8, 4), shape=(2, 6, 5)),
                        QConv2d(2, 3, (3, 2), stride=(1, 2), padding=(1, 1), **Q),
                        QHardtanh(-1, 2, fmt=(8, 4))],
    "QConv1dBn": lambda: [QuantInput((8, 4), shape=(2, 11)),
                          QConv1dBn(2, 3, 3, padding=2, **Q), QReLU()],
    "QConv2dBn": lambda: [QuantInput((8, 4), shape=(1, 6, 6)),
                          QConv2dBn(1, 3, 3, stride=2, padding=1, bias=False, **Q)],
    "QBnLinear": lambda: [QuantInput((8, 4), shape=(6,)), QBnLinear(6, 4, **Q), QReLU()],
    "QBnLinear after a flatten": lambda: [
        QuantInput((8, 4), shape=(3, 4)), QFlatten(), QBnLinear(12, 4, channels=3, **Q)],
    "QBnConv1d": lambda: [QuantInput((8, 4), shape=(3, 9)), QBnConv1d(3, 4, 3, stride=2, **Q)],
    "QBnConv2d": lambda: [QuantInput((8, 4), shape=(2, 5, 5)), QBnConv2d(2, 3, 2, **Q)],
    "QBatchNorm1d": lambda: [QuantInput((8, 4), shape=(3, 7)), QBatchNorm1d(3, **S), QReLU()],
    "QBatchNorm1d of a vector": lambda: [QuantInput((8, 4), shape=(5,)), QBatchNorm1d(5, **S)],
    "QBatchNorm2d": lambda: [QuantInput((8, 4), shape=(2, 4, 3)), QBatchNorm2d(2, **S)],
    "QMaxPool1d": lambda: [QuantInput((8, 4), shape=(2, 11)), QConv1d(2, 3, 2, **Q),
                           QMaxPool1d(3, 2)],
    "QMaxPool2d": lambda: [QuantInput((8, 4), shape=(1, 7, 6)), QConv2d(1, 2, 2, **Q),
                           QMaxPool2d((2, 3), (2, 1))],
    "QAvgPool1d of its own": lambda: [QuantInput((8, 4), shape=(2, 11)), QConv1d(2, 3, 2, **Q),
                                      QAvgPool1d(4, 3, fmt=(8, 4))],
    "QAvgPool2d of its own": lambda: [QuantInput((8, 4), shape=(1, 6, 6)), QConv2d(1, 2, 1, **Q),
                                      QAvgPool2d(2, 1, fmt=(8, 4))],
    "QAvgPool1d into a conv": lambda: [QuantInput((8, 4), shape=(2, 12)), QAvgPool1d(3, 2),
                                       QConv1d(2, 3, 2, stride=2, input_divisor=3, **Q)],
    "QAvgPool2d into a conv": lambda: [QuantInput((8, 4), shape=(1, 7, 7)),
                                       QAvgPool2d((3, 2), (1, 2)),
                                       QConv2dBn(1, 2, 2, input_divisor=6, **Q)],
    "QAvgPool1d into a dense": lambda: [QuantInput((8, 4), shape=(3, 10)), QConv1d(3, 2, 1, **Q),
                                        QAvgPool1d(10), QFlatten(),
                                        QLinearBn1d(2, 4, input_divisor=10, **Q)],
    "QAvgPool2d into a dense": lambda: [QuantInput((8, 4), shape=(2, 5, 4)),
                                        QAvgPool2d(2, 1), QFlatten(),
                                        QLinear(2 * 4 * 3, 3, input_divisor=4, **Q)],
    "QFlatten": lambda: [QuantInput((8, 4), shape=(2, 3, 4)), QConv2d(2, 3, 1, **Q), QFlatten(),
                         QLinear(36, 4, **Q)],
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("seed", range(3))
def test_each_module_eval_forward_equals_integer_model(name, seed):
    modules = MODELS[name]()
    model = nn.Sequential(*modules)
    x = torch.randn(40, *modules[0].shape, generator=torch.Generator().manual_seed(seed)) * 3
    trained(model, x.double(), seed)
    spec = export_quietly(model)
    assert_eval_equals_integer(model, spec, x)


def _random_conv_qat(rng):
    """A QAT conv network with random formats, kernels, strides, paddings and BN placements."""
    def fmt(width=(4, 10), frac=(-1, 7)):
        return QFormat(int(rng.integers(*width)), int(rng.integers(*frac)))

    x_fmt = fmt()
    length, channels = int(rng.integers(6, 14)), int(rng.integers(1, 4))
    modules, f = [QuantInput(x_fmt, shape=(channels, length))], x_fmt
    for _ in range(int(rng.integers(1, 3))):
        out, kernel = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        padding = int(rng.integers(0, kernel))
        kwargs = dict(input_format=f, weight_format=fmt(), output_format=(o := fmt()),
                      bias_width=int(rng.integers(8, 24)))
        kind = rng.integers(0, 3)
        if kind == 2 and padding == 0:
            layer = QBnConv1d(channels, out, kernel, **kwargs)
        elif kind == 1:
            layer = QConv1dBn(channels, out, kernel, padding=padding, **kwargs)
        else:
            layer = QConv1d(channels, out, kernel, padding=padding, **kwargs)
        modules += [layer, QReLU()]
        length = length + 2 * layer.padding[0] - kernel + 1
        channels, f = out, o
        if length >= 4 and rng.random() < 0.5:
            modules.append(QMaxPool1d(2))
            length //= 2
    modules += [QFlatten(), QLinear(channels * length, 3, input_format=f, weight_format=fmt(),
                                    output_format=fmt(), bias_width=20)]
    return nn.Sequential(*modules)


@pytest.mark.parametrize("seed", range(8))
def test_random_conv_networks_after_training(seed):
    rng = np.random.default_rng(seed)
    model = _random_conv_qat(rng)
    x = torch.randn(64, *model[0].shape, generator=torch.Generator().manual_seed(seed)) * 2
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(seed))
    train(model, x, y, epochs=2, lr=1e-2, seed=seed, batch_size=32, progress=False)
    assert_eval_equals_integer(model, export_quietly(model), x)


def test_conv_eval_forward_beyond_float64_uses_int64_and_stays_exact():
    # 26-bit inputs and 30-bit weights: accumulators near 2**56 units, beyond float64's 2**53.
    fmt = QFormat(26, 0)
    conv = QConv1d(1, 2, 2, padding=1, input_format=fmt, weight_format=QFormat(30, 0),
                   output_format=QFormat(20, -36), bias_width=40).double()
    with torch.no_grad():
        conv.conv.weight.copy_(torch.tensor([[[2.0 ** 29 - 1, -(2.0 ** 29) + 3]],
                                             [[1.0, 2.0 ** 28 + 1]]], dtype=torch.float64))
        conv.conv.bias.copy_(torch.tensor([1.0, 2.0 ** 38], dtype=torch.float64))
    model = nn.Sequential(QuantInput(fmt, shape=(1, 4)), conv)
    w, b = conv.integer_parameters()
    assert conv._bound(w, b) >= 2 ** 53
    x = torch.tensor([[[2.0 ** 25 - 1, -(2.0 ** 25), 12345.0, -999.0]],
                      [[-(2.0 ** 25), 2.0 ** 25 - 1, 1.0, 2.0 ** 25 - 1]]], dtype=torch.float64)
    assert_eval_equals_integer(model, to_spec(model), x)


def test_conv_bn_trains_like_conv_then_batch_norm():
    """With formats fine enough that quantization is negligible, the training forward of
    QConv1dBn is Conv1d -> BatchNorm1d with batch statistics, and the running statistics are
    updated as BatchNorm1d updates them; the same for BN before a conv and BN alone."""
    torch.manual_seed(0)
    fine = dict(input_format=(40, 30), weight_format=(40, 30), output_format=(40, 30),
                bias_width=62)
    x = torch.round(torch.randn(16, 3, 9, dtype=torch.float64) * 2 ** 20) / 2 ** 20
    conv, bn = nn.Conv1d(3, 4, 3, padding=1).double(), nn.BatchNorm1d(4, momentum=0.3).double()
    qat = QConv1dBn(3, 4, 3, padding=1, momentum=0.3, **fine)
    qat.conv.load_state_dict(conv.state_dict())
    assert torch.allclose(qat(x), bn(conv(x)), rtol=0, atol=1e-8)
    assert torch.allclose(qat.bn.running_var.double(), bn.running_var, rtol=1e-6)
    bn_first, conv = nn.BatchNorm1d(3).double(), nn.Conv1d(3, 2, 2).double()
    before = QBnConv1d(3, 2, 2, **fine)
    before.conv.load_state_dict(conv.state_dict())
    assert torch.allclose(before(x), conv(bn_first(x)), rtol=0, atol=1e-8)
    assert torch.allclose(before.bn.running_mean.double(), bn_first.running_mean, rtol=1e-6)
    alone = QBatchNorm1d(3, input_format=(40, 30), scale_format=(40, 30),
                         output_format=(40, 30), bias_width=62)
    assert torch.allclose(alone(x), nn.BatchNorm1d(3).double()(x), rtol=0, atol=1e-8)
    loss = before(x).sum() + qat(x).sum()
    loss.backward()
    assert before.bn.weight.grad is not None and qat.bn.weight.grad is not None


def _bn(n, cls=nn.BatchNorm1d):
    bn = random_bn(n, torch.Generator().manual_seed(n))
    if cls is nn.BatchNorm1d:
        return bn
    two = cls(n)
    two.load_state_dict(bn.state_dict())
    return two.eval()


FLOAT_MODELS = [
    # Every BatchNorm placement: after (folded back), before an unpadded conv (folded forward),
    # before a padded conv (a scale-and-shift layer, with a note), after a ReLU before a
    # Linear (folded forward), alone at the end; ReLU6; a global average pool into a Linear.
    (lambda: nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), _bn(4), nn.ReLU(), nn.MaxPool1d(2),
                           _bn(4), nn.Conv1d(4, 5, 2), nn.ReLU6(), _bn(5),
                           nn.Conv1d(5, 3, 3, padding=1), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                           nn.Linear(3, 4), _bn(4), nn.ReLU(), _bn(4), nn.Linear(4, 2), nn.ReLU(),
                           _bn(2)),
     (2, 12)),
    # BatchNorm2d after a ReLU, before Flatten -> Linear (folded forward through the flatten).
    (lambda: nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), _bn(3, nn.BatchNorm2d),
                           nn.Flatten(), nn.Linear(3 * 6 * 6, 5), nn.Hardtanh(-0.5, 0.5),
                           nn.Dropout(), nn.Linear(5, 3)), (1, 6, 6)),
    # Average pools folded into a conv (overlapping windows) and into a Linear; a pool of its
    # own (power of two) before a max pool.
    (lambda: nn.Sequential(nn.Conv2d(1, 3, 3), nn.AvgPool2d(2, 1), nn.Conv2d(3, 2, 2),
                           nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Identity(),
                           nn.Linear(2, 3)), (1, 7, 7)),
    (lambda: nn.Sequential(nn.Conv1d(1, 2, 1), nn.AvgPool1d(2), nn.MaxPool1d(2), nn.Flatten(),
                           nn.Sequential(nn.Linear(6, 3))), (1, 12)),
]


@pytest.mark.parametrize("case", range(len(FLOAT_MODELS)))
def test_ptq_of_conv_models_equals_its_qat_twin(case):
    make, shape = FLOAT_MODELS[case]
    torch.manual_seed(case)
    model = make().eval()
    x = torch.randn(200, *shape)
    formats = calibrate(model, x, bits=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)
        spec = ptq(model, x, bits=12)
        twin = qat_from_float(model, formats)
    assert_eval_equals_integer(twin, spec, x)
    with torch.no_grad():
        reference = model(x).double().numpy()
    got = spec.dequantize_output(golden.run(spec, spec.quantize_input(to_stream(x).numpy())))
    # 12-bit formats hold the calibrated range: the error is a few output LSBs.
    assert np.abs(got - reference).max() < 40 * spec.output_format.lsb
    if case == 0:
        assert spec.kinds == ("conv", "maxpool", "conv", "scale_shift", "conv", "flatten",
                              "dense", "dense", "scale_shift")
        assert spec.metadata["notes"] == [
            "layer 3 ('scale_shift0'): a BatchNorm before a zero-padded conv stays its own "
            "scale-and-shift layer (the conv pads after the BatchNorm, so folding it forward "
            "would not be exact at the borders)"]


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5)])
def test_flatten_permutes_the_next_dense_columns(shape):
    """A torch model with Flatten -> Linear and its export give the same integers, and the
    exported weight columns are the QAT layer's in stream order."""
    torch.manual_seed(len(shape))
    size = int(np.prod(shape))
    dense = QLinear(size, 4, **Q)
    model = nn.Sequential(QuantInput((8, 4), shape=shape), QFlatten(), dense).eval()
    x = torch.randn(30, *shape) * 3
    spec = export_quietly(model)
    assert spec.kinds == ("flatten", "dense")
    weights, _ = dense.integer_parameters()
    columns = spec.layers[1].weights
    order = stream_permutation(shape)
    assert np.array_equal(columns, weights.numpy()[:, order])
    # Stream element s*C + c is torch element c*S + s.
    channels, positions = shape[0], size // shape[0]
    assert all(order[s * channels + c] == c * positions + s
               for s in range(positions) for c in range(channels))
    assert_eval_equals_integer(model, spec, x)
    # The float twin: torch's Flatten -> Linear, through PTQ, gives the same integers too.
    float_model = nn.Sequential(nn.Flatten(), nn.Linear(size, 4)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)
        assert_eval_equals_integer(qat_from_float(float_model, calibrate(float_model, x)),
                                   ptq(float_model, x), x)
