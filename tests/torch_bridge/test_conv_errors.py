"""Bad conv, pooling and BatchNorm-placement models and modules get their documented errors."""

import re

import pytest
import torch
from torch import nn

from amaranth_nn.fixedpoint import QFormat
from torch_bridge.convert import calibrate, parse_float, ptq
from torch_bridge.modules import (
    QAvgPool1d,
    QBatchNorm1d,
    QBatchNorm2d,
    QBnLinear,
    QConv1d,
    QConv1dBn,
    QFlatten,
    QLinear,
    QMaxPool1d,
    QMaxPool2d,
    QReLU,
    QuantInput,
)
from torch_bridge.qat_spec import to_spec

from .conftest import random_bn
from .test_errors import ACTIVATION

X1 = torch.randn(16, 1, 10, generator=torch.Generator().manual_seed(0))


def _fails(call, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call()


@pytest.mark.parametrize("model, message", [
    (nn.Sequential(nn.Conv1d(1, 2, 3, groups=1), nn.Conv1d(2, 4, 3, groups=2)),
     "module 1 (Conv1d): groups=2 (only groups=1 is supported yet) is not supported"),
    (nn.Sequential(nn.Conv1d(1, 2, 3, dilation=2)),
     "module 0 (Conv1d): dilation=(2,) (only 1 is supported) is not supported"),
    (nn.Sequential(nn.Conv1d(1, 2, 3, padding=1, padding_mode="reflect")),
     "module 0 (Conv1d): padding_mode='reflect' (only 'zeros' is supported) is not supported"),
    (nn.Sequential(nn.Conv1d(1, 2, 3, padding="same")),
     "module 0 (Conv1d): padding='same' (give the padding as numbers) is not supported"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.MaxPool1d(2, padding=1)),
     "module 1 (MaxPool1d): padding=1 (pooling without padding only) is not supported"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.MaxPool1d(2, ceil_mode=True)),
     "module 1 (MaxPool1d): ceil_mode=True (pooling with floor only) is not supported"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.AdaptiveAvgPool1d(2)),
     "module 1 (AdaptiveAvgPool1d): output_size=2 (only a global average pool, 1) is not "
     "supported"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(0)),
     "module 1 (Flatten): start_dim=0, end_dim=-1 (only the flatten of each sample, 1 and -1) "
     "is not supported"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.AvgPool1d(3)),
     "module 1 (AvgPool1d): an average pool over 3 positions folds only into a Linear or "
     "unpadded conv directly after it (a Flatten between allowed); elsewhere its window must be "
     "a power of two"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.AvgPool1d(3, 1), nn.Conv1d(2, 2, 3, padding=1)),
     "module 1 (AvgPool1d): an average pool over 3 positions folds only into a Linear or "
     "unpadded conv directly after it (a Flatten between allowed); elsewhere its window must be "
     "a power of two"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.Linear(8, 2)),
     "module 1 (Linear): its input has shape (2, 8); a Linear takes a vector: put a Flatten "
     "before it"),
    (nn.Sequential(nn.Conv1d(3, 2, 3)),
     "module 0 (Conv1d): in_channels is 3, but its input has 1 channels"),
    (nn.Sequential(nn.Conv2d(1, 2, 3)),
     "module 0 (Conv2d): it takes inputs of shape (C, H, W), but its input has shape (1, 10)"),
    (nn.Sequential(nn.Conv1d(1, 2, 11)),
     "module 0 (Conv1d): its window does not fit its input of shape (1, 10)"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.MaxPool1d(2), nn.ReLU()),
     f"module 2 (ReLU): {ACTIVATION}"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm2d(2)),
     "module 1 (BatchNorm2d): it takes inputs of shape (C, H, W), but its input has shape "
     "(2, 8)"),
])
def test_bad_float_conv_models(model, message):
    _fails(lambda: parse_float(model.eval(), (1, 10)), message)
    if "its input has" not in message:     # else calibration data of (1, 10) is the error
        _fails(lambda: ptq(model.eval(), X1), message)


def test_float_conv_models_need_an_input_shape():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(16, 2)).eval()
    _fails(lambda: ptq(model, input_format=(8, 4), output_format=(8, 4)),
           "module 0 (Conv1d): the input shape is unknown; pass calibration data (or "
           "input_shape) of the shape the model takes")
    spec = ptq(model, input_format=(8, 4), output_format=(8, 4), input_shape=(1, 10))
    assert spec.input_shape == (10, 1)
    _fails(lambda: calibrate(model, torch.zeros(8, 10)),
           "Calibration data must have shape (batch, 1, L), not (8, 10)")
    _fails(lambda: calibrate(model, torch.zeros(8, 2, 10)),
           "Calibration data must have shape (batch, 1, L), not (8, 2, 10)")


def test_non_finite_conv_batch_norm():
    bn = random_bn(2, torch.Generator().manual_seed(2))
    with torch.no_grad():
        bn.running_var[1] = float("nan")
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), bn).eval()
    _fails(lambda: ptq(model, X1), "module 2 (BatchNorm1d): BatchNorm1d running_var is not "
                                   "finite (nan at feature 1); retrain or recalibrate the "
                                   "statistics")


F8 = dict(weight_format=(8, 6), output_format=(8, 4))
I8 = dict(input_format=(8, 4), **F8)


@pytest.mark.parametrize("modules, message", [
    ([QuantInput((8, 4)), QConv1d(1, 2, 3, **I8)],
     "module 1 (QConv1d): the input shape is unknown; give it to QuantInput (shape=(C, L) or "
     "(C, H, W))"),
    ([QuantInput((8, 4), shape=(1, 10)), QLinear(10, 2, **I8)],
     "module 1 (QLinear): its input has shape (1, 10); a Linear takes a vector: put a QFlatten "
     "before it"),
    ([QuantInput((8, 4), shape=(1, 10)), QConv1d(2, 2, 3, **I8)],
     "module 1 (QConv1d): it takes inputs of shape (C, L) with C = 2, but its input has shape "
     "(1, 10)"),
    ([QuantInput((8, 4), shape=(1, 10)), QAvgPool1d(2), QFlatten(), QLinear(5, 2, **I8)],
     "module 3 (QLinear): its input comes from an average pool over 2 positions (module 1 "
     "(QAvgPool1d)), so it needs input_divisor=2, not 1"),
    ([QuantInput((8, 4)), QLinear(10, 2, input_divisor=2, **I8)],
     "module 1 (QLinear): its input comes from no average pool, so it needs input_divisor=1, "
     "not 2"),
    ([QuantInput((8, 4), shape=(1, 10)), QConv1d(1, 2, 3, **I8), QAvgPool1d(2)],
     "module 2 (QAvgPool1d): an average pool without fmt folds into the dense or conv layer "
     "after it, and none follows"),
    ([QuantInput((8, 4), shape=(1, 10)), QAvgPool1d(2),
      QConv1d(1, 2, 3, padding=1, input_divisor=2, **I8)],
     "module 2 (QConv1d): an average pool folds only into a conv without padding; give the pool "
     "an fmt (a power-of-two window) to keep it as its own layer"),
    ([QuantInput((8, 4), shape=(1, 10)), QAvgPool1d(2),
      QBatchNorm1d(1, input_format=(8, 4), scale_format=(8, 6), output_format=(8, 4))],
     "module 1 (QAvgPool1d): an average pool without fmt folds into the dense or conv layer "
     "after it, not into module 2 (QBatchNorm1d)"),
    ([QuantInput((8, 4), shape=(1, 10)), QAvgPool1d(2, fmt=(8, 3))],
     "module 1 (QAvgPool1d): fmt is Q(8, 3), but its input is in Q(8, 4)"),
    ([QuantInput((8, 4)), QLinear(4, 3, **I8), QuantInput((8, 4))],
     "module 2 (QuantInput): only the first module may be a QuantInput"),
    ([QuantInput((8, 4), shape=(1, 10)), nn.Conv1d(1, 2, 3)],
     "module 1 (Conv1d) is a float module; a QAT model needs QConv1d, QConv1dBn or QBnConv1d "
     "(or convert a float model with torch_bridge.convert.ptq)"),
    ([QuantInput((8, 4), shape=(1, 10)), nn.AdaptiveAvgPool1d(1)],
     "module 1 (AdaptiveAvgPool1d) is a float module; a QAT model needs QAvgPool1d (or convert "
     "a float model with torch_bridge.convert.ptq)"),
    ([QuantInput((8, 4), shape=(1, 10)), QConv1d(1, 4, 1, **I8), QMaxPool2d(2)],
     "module 2 (QMaxPool2d): it pools inputs of shape (C, H, W), but its input has shape "
     "(4, 10)"),
    ([QuantInput((8, 4), shape=(4, 10)),
      QBatchNorm1d(3, input_format=(8, 4), scale_format=(8, 6), output_format=(8, 4))],
     "module 1 (QBatchNorm1d): num_features is 3, but its input has shape (4, 10)"),
    ([QuantInput((8, 4), shape=(1, 10)), QConv1d(1, 2, 3, **I8), QReLU(), QReLU()],
     "module 3 (QReLU): an activation must follow a dense, conv or scale-and-shift layer, and "
     "only one per layer"),
])
def test_bad_qat_conv_models(modules, message):
    _fails(lambda: to_spec(nn.Sequential(*modules)), message)


@pytest.mark.parametrize("make, message", [
    (lambda: QAvgPool1d(3, fmt=(8, 4)),
     "An average pool of its own needs a power-of-two window, not 3 positions; without fmt it "
     "folds into the next dense or conv layer"),
    (lambda: QBnLinear(10, 3, channels=3, **I8),
     "In features (10) must be a multiple of the channels of the BatchNorm (3)"),
    (lambda: QConv1d(1, 2, 3, padding="same", **I8),
     "Padding must be an integer or a tuple of integers (zeros on both sides), not 'same'"),
    (lambda: QuantInput((8, 4), shape=(0, 3)),
     "Input shape must be a tuple of positive integers, not (0, 3)"),
    (lambda: QMaxPool1d(0), "Kernel size must be a positive integer or a tuple of 1, not (0,)"),
    (lambda: QConv1d(2, 2, 3, **I8)(torch.zeros(5, 3, 10)),
     "QConv1d expects inputs of shape (batch, 2, L), not (5, 3, 10)"),
    (lambda: QBatchNorm2d(3, input_format=(8, 4), scale_format=(8, 6), output_format=(8, 4))(
        torch.zeros(5, 3, 10)), "QBatchNorm2d expects inputs of shape (batch, 3, H, W), not "
                                "(5, 3, 10)"),
    (lambda: QBatchNorm1d(3, input_format=(8, 4), scale_format=(8, 6), output_format=(8, 4))(
        torch.zeros(5, 2)), "QBatchNorm1d expects inputs of shape (batch, 3) or (batch, 3, L), "
                            "not (5, 2)"),
    (lambda: QMaxPool1d(2)(torch.zeros(5, 3)),
     "QMaxPool1d expects inputs of shape (batch, C, L), not (5, 3)"),
    (lambda: QuantInput((8, 4), shape=(1, 40))(torch.zeros(5, 40)),
     "QuantInput expects inputs of shape (batch, 1, 40), not (5, 40)"),
    (lambda: QConv1dBn(1, 2, 3, **I8).train()(torch.zeros(1, 1, 10)),
     "QConv1dBn needs more than 1 sample per batch in training (batch statistics), got 1"),
])
def test_module_errors(make, message):
    _fails(make, message)


def test_format_options_are_checked_per_layer():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2)).eval()
    _fails(lambda: calibrate(model, X1, weight_format=[QFormat(8, 6)]),
           "Weight format lists 1 formats, but the model has 2 layers")
