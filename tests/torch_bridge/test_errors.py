"""Bad models and inputs get their documented errors and warnings."""

import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from amaranth_nn.fixedpoint import QFormat
from torch_bridge.convert import calibrate, parse_float, ptq
from torch_bridge.export import SaturationWarning, export, to_spec
from torch_bridge.modules import QLinear, QLinearBn1d, QReLU, QuantInput

from .conftest import random_bn, random_float_model

X = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))


def _bn(n):
    return random_bn(n, torch.Generator().manual_seed(n))


SUPPORTED = ("Linear, Conv1d, Conv2d, BatchNorm1d, BatchNorm2d, MaxPool1d, MaxPool2d, AvgPool1d, "
             "AvgPool2d, AdaptiveAvgPool1d(1), AdaptiveAvgPool2d(1), Flatten, ReLU, ReLU6, "
             "Hardtanh, Dropout, Identity")
ACTIVATION = ("an activation must follow a Linear or conv (or its BatchNorm), or a BatchNorm, and "
              "only one per layer; one after a max pool goes before it (they commute)")


@pytest.mark.parametrize("model, message", [
    (nn.Sequential(nn.Linear(4, 3), nn.Sigmoid()),
     f"module 1 (Sigmoid) is not supported; a float model may hold only {SUPPORTED}"),
    (nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.ReLU(), nn.LSTM(3, 3))),
     f"module 2 (LSTM) is not supported; a float model may hold only {SUPPORTED}"),
    (nn.Sequential(nn.Linear(4, 3), nn.BatchNorm2d(3)),
     "module 1 (BatchNorm2d): it takes inputs of shape (C, H, W), but its input has shape (3,)"),
    (nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(6, 2)),
     "module 2 (Linear): in_features is 6, but the previous layer has 5 outputs"),
    (nn.Sequential(nn.Linear(4, 5), _bn(7)),
     "module 1 (BatchNorm1d): BatchNorm1d has 7 features, but the Linear before it has 5 "
     "outputs"),
    (nn.Sequential(nn.Linear(4, 5), nn.ReLU(), _bn(7)),
     "module 2 (BatchNorm1d): BatchNorm1d has 7 features, but its input has 5 channels"),
    (nn.Sequential(nn.ReLU(), nn.Linear(4, 5)), f"module 0 (ReLU): {ACTIVATION}"),
    (nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.ReLU()), f"module 2 (ReLU): {ACTIVATION}"),
    (nn.Sequential(nn.Dropout()), "Model has no layer to export (only Dropout and Identity)"),
])
def test_bad_float_models(model, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_float(model)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        export(model, X)


def test_model_must_be_sequential():
    with pytest.raises(TypeError, match="^Model must be an nn.Sequential, not Linear$"):
        ptq(nn.Linear(4, 3), X)


@pytest.mark.parametrize("field, index, value", [
    ("running_var", 2, float("nan")), ("running_mean", 0, float("inf")),
    ("weight", 1, float("-inf")), ("bias", 2, float("nan")),
])
def test_non_finite_bn_statistics(field, index, value):
    bn = _bn(3)
    with torch.no_grad():
        getattr(bn, field)[index] = value
    model = nn.Sequential(nn.Linear(4, 3), bn, nn.ReLU())
    message = (f"module 1 (BatchNorm1d): BatchNorm1d {field} is not finite ({value} at "
               f"feature {index}); retrain or recalibrate the statistics")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ptq(model, X)
    # The same statistics in a fused QAT layer are caught at export.
    qat = QLinearBn1d(4, 3, input_format=(8, 5), weight_format=(8, 5), output_format=(8, 4))
    qat.bn.load_state_dict(bn.state_dict())
    message = message.replace("module 1 (BatchNorm1d)", "module 1 (QLinearBn1d)")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        to_spec(nn.Sequential(QuantInput((8, 5)), qat))


def test_negative_running_variance():
    bn = _bn(3)
    with torch.no_grad():
        bn.running_var[1] = -0.5
    with pytest.raises(ValueError, match=r"^module 1 \(BatchNorm1d\): BatchNorm1d running_var "
                                         r"is negative \(-0.5 at feature 1\)$"):
        ptq(nn.Sequential(nn.Linear(4, 3), bn), X)


def test_saturation_warning_counts_per_layer():
    model = random_float_model(3, sizes=(4, 5, 3))
    bn = model[1]
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[0, :3] = torch.tensor([5.0, -7.0, 0.1])
        model[0].bias.zero_()
        model[3].weight.fill_(0.01)
        bn.running_mean.zero_(), bn.running_var.fill_(1.0), bn.weight.fill_(1.0)
        bn.bias.zero_()
    bn.eps = 0.0   # W' = W and b' = 0 exactly
    with pytest.warns(SaturationWarning) as record:
        spec = ptq(model, X, weight_format=QFormat(4, 2), output_format=QFormat(8, 4),
                   bias_width=8)
    assert [str(w.message) for w in record] == [
        "layer 0 ('dense0'): 2 of 20 weights saturated in Q(4, 2) "
        "(range [-2, 1.75], folded values in [-7, 5])"]
    assert spec.layers[0].weights[0, :3].tolist() == [7, -8, 0]
    # Biases that do not fit their width are counted too.
    with torch.no_grad():
        model[3].bias.fill_(3.0)
    with pytest.warns(SaturationWarning) as record:
        ptq(model, X, weight_format=QFormat(8, 3), output_format=QFormat(8, 4), bias_width=8)
    assert [str(w.message) for w in record] == [
        "layer 1 ('dense1'): 3 of 3 biases saturated in Q(8, 7) "
        "(range [-1, 0.992188], folded values in [3, 3])"]


def test_calibration_is_needed_for_activation_formats():
    model = random_float_model(0, sizes=(4, 3))
    message = ("Input and output formats need calibration data: pass calibration inputs "
               "(--calibration X.npy) or give every format")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ptq(model)
    # With every format given no calibration is needed.
    spec = ptq(model, input_format=(8, 5), output_format=(8, 4))
    assert spec.layers[0].output_format == QFormat(8, 4)


def test_bad_calibration_data():
    model = random_float_model(0, sizes=(4, 3))
    with pytest.raises(ValueError, match=r"^Calibration data must have shape \(batch, 4\), "
                                         r"not \(8, 5\)$"):
        calibrate(model, np.zeros((8, 5)))
    bad = np.zeros((8, 4))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"^Cannot quantize calibration data: value nan at "
                                         r"index \(3, 1\) is not finite$"):
        calibrate(model, bad)


def _qat(*modules):
    return nn.Sequential(*modules)


F8 = dict(weight_format=(8, 6), output_format=(8, 4))


@pytest.mark.parametrize("model, message", [
    (_qat(QLinear(4, 3, input_format=(8, 4), **F8)),
     "module 0 (QLinear): a QAT model must start with QuantInput (the input format)"),
    (_qat(QuantInput((8, 5)), QLinear(4, 3, input_format=(8, 4), **F8)),
     "module 1 (QLinear): input_format is Q(8, 4), but its input is in Q(8, 5)"),
    (_qat(QuantInput((8, 4)), QLinear(4, 3, input_format=(8, 4), **F8), _bn(3)),
     "module 2 (BatchNorm1d) is a float module; a QAT model needs QLinearBn1d or QConv1dBn "
     "(after the weights), QBnLinear or QBnConv1d (before them) or QBatchNorm1d (alone), which "
     "fold it while training (or convert a float model with torch_bridge.convert.ptq)"),
    (_qat(QuantInput((8, 4)), QLinear(4, 3, input_format=(8, 4), **F8), nn.Linear(3, 2)),
     "module 2 (Linear) is a float module; a QAT model needs QLinear, QLinearBn1d or QBnLinear "
     "(or convert a float model with torch_bridge.convert.ptq)"),
    (_qat(QuantInput((8, 4)), QLinear(4, 3, input_format=(8, 4), **F8),
          QLinear(5, 2, input_format=(8, 4), **F8)),
     "module 2 (QLinear): in_features is 5, but the previous layer has 3 outputs"),
    (_qat(QuantInput((8, 4)), QLinear(4, 3, input_format=(8, 4), **F8), nn.Tanh()),
     "module 2 (Tanh) is not supported; a QAT model may hold only QuantInput, QLinear, "
     "QLinearBn1d, QBnLinear, QConv1d, QConv1dBn, QBnConv1d, QConv2d, QConv2dBn, QBnConv2d, "
     "QBatchNorm1d, QBatchNorm2d, QMaxPool1d, QMaxPool2d, QAvgPool1d, QAvgPool2d, QFlatten, "
     "QReLU, QHardtanh, QIdentity, ReLU, MaxPool1d, MaxPool2d, Flatten, Identity and Dropout"),
    (_qat(QuantInput((8, 4)), QReLU()),
     "module 1 (QReLU): an activation must follow a dense, conv or scale-and-shift layer, and "
     "only one per layer"),
])
def test_bad_qat_models(model, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        to_spec(model)


def test_format_options_are_for_float_models_only():
    model = _qat(QuantInput((8, 4)), QLinear(4, 3, input_format=(8, 4), **F8))
    with pytest.raises(ValueError, match=r"^The model is a QAT model with its formats fixed; "
                                         r"bits, calibration apply to float models only$"):
        export(model, X, bits=4)


def test_module_argument_checks():
    with pytest.raises(ValueError, match=r"^In features must be a positive integer, not 0$"):
        QLinear(0, 3, input_format=(8, 4), **F8)
    with pytest.raises(TypeError, match=r"^Weight format must be a QFormat or a \(width, "
                                        r"frac\) pair, not 8$"):
        QLinear(2, 3, input_format=(8, 4), weight_format=8, output_format=(8, 4))
    dense = QLinear(2, 3, input_format=(8, 4), **F8)
    with pytest.raises(ValueError, match=r"^QLinear expects inputs of shape \(batch, 2\), "
                                         r"not \(5, 3\)$"):
        dense(torch.zeros(5, 3))


def test_clean_export_gives_no_warning():
    model = random_float_model(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ptq(model, torch.randn(50, 6))


def test_non_finite_parameters_at_export():
    """A NaN or inf parameter is reported with the module (index and class) and its
    ``state_dict`` key, in QAT and in float (PTQ) models, nested ones too."""
    dense = QLinear(2, 2, input_format=(8, 4), **F8)
    with torch.no_grad():
        dense.linear.weight[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^module 1 \(QLinear\): parameter '1\.linear\.weight' "
                                         r"is not finite \(nan at index \(1, 0\)\); retrain or "
                                         r"repair the model$"):
        to_spec(_qat(QuantInput((8, 4)), dense))
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(),
                          nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)))
    with torch.no_grad():
        model[2][2].bias[1] = float("-inf")
    message = (r"^module 4 \(Linear\): parameter '2\.2\.bias' is not finite \(-inf at index "
               r"1\); retrain or repair the model$")
    with pytest.raises(ValueError, match=message):
        parse_float(model)
    with pytest.raises(ValueError, match=message):
        ptq(model, torch.zeros(4, 6))


def test_bias_too_wide_names_the_layer_and_width():
    model = random_float_model(0, sizes=(6, 5, 3))
    x = np.random.default_rng(0).normal(size=(20, 6))
    with pytest.raises(ValueError, match=r"^module 0 \(Linear\): its bias needs 64 bits at the "
                                         r"accumulator scale 2\*\*-61 \(input frac 30 \+ weight "
                                         r"frac 31\), more than 62; choose fewer bits or narrower "
                                         r"formats$"):
        calibrate(model, x, bits=33)


def test_non_finite_inputs_in_the_forward():
    with pytest.raises(ValueError, match=r"^Cannot quantize input: value inf at index "
                                         r"\(0, 1\) is not finite$"):
        QuantInput((8, 4))(torch.tensor([[0.0, float("inf")]]))


def test_bad_percentile():
    with pytest.raises(ValueError, match=r"^Percentile must be in \(50, 100\], not 40$"):
        calibrate(random_float_model(0), torch.zeros(3, 6), percentile=40)
    with pytest.raises(TypeError, match=r"^Percentile must be a number in \(50, 100\], not "
                                        r"'99'$"):
        calibrate(random_float_model(0), torch.zeros(3, 6), percentile="99")


def test_wrong_type_is_type_error_out_of_range_is_value_error():
    model, x = random_float_model(0), torch.zeros(3, 6)
    with pytest.raises(TypeError, match=r"^Bits must be an integer from 2 to 62, not 8\.0$"):
        calibrate(model, x, bits=8.0)
    with pytest.raises(ValueError, match=r"^Bits must be an integer from 2 to 62, not 63$"):
        calibrate(model, x, bits=63)
    with pytest.raises(TypeError, match=r"^Out features must be a positive integer, not "
                                        r"'3'$"):
        QLinear(2, "3", input_format=(8, 4), **F8)
