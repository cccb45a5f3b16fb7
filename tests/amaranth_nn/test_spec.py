"""Network spec: construction, save/load round trip, and the exact text of every error.

Version 1 files (dense layers with ``in_features``) keep loading with the same checks and
messages; version 2 adds the layer kinds, each with its input shape.
"""

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat, SpecError, golden
from amaranth_nn.spec import AvgPool, Conv, Flatten, MaxPool, ScaleShift

ROOT = Path(__file__).parents[2]


def tiny_spec():
    layer0 = Layer("d0", [[1, 2, 3], [4, 5, 6]], [7, 8], QFormat(8, 6), QFormat(16, 10),
                   QFormat(8, 4), Activation.relu())
    layer1 = Layer("d1", [[1, -2]], [3], QFormat(8, 6), QFormat(16, 10), QFormat(8, 4),
                   Activation.hardtanh(-8, 8))
    return NetworkSpec(QFormat(8, 4), [layer0, layer1], name="tiny", metadata={"seed": 1})


def test_round_trip(tmp_path):
    spec = tiny_spec()
    path = spec.save(tmp_path / "tiny.json")
    loaded = NetworkSpec.load(path)
    assert loaded.to_dict() == spec.to_dict()
    assert loaded.name == "tiny" and loaded.metadata == {"seed": 1}
    assert loaded.layers[1].activation == Activation.hardtanh(-8, 8)
    x = np.array([[-128, 0, 127], [5, -6, 7]])
    assert golden.run(loaded, x).tolist() == golden.run(spec, x).tolist()
    assert repr(loaded) == "NetworkSpec('tiny', 3 -> 2 -> 1, input Q(8, 4))"


def test_properties():
    spec = tiny_spec()
    assert (spec.input_size, spec.output_size) == (3, 1)
    assert spec.output_format == QFormat(8, 4)
    assert spec.layers[0].shift == 6
    assert spec.input_range_of(0) == (-128, 127)
    assert spec.input_range_of(1) == (0, 127)  # after the ReLU
    # d0 neuron 1: 4, 5, 6 times [-128, 127] plus 8 -> [-1912, 1913]
    assert spec.accumulator_range_of(0) == (-1912, 1913)
    assert spec.accumulator_range_of(1) == (-251, 130)
    assert spec.layers[0].weights.flags.writeable is False


def test_dequantize_and_quantize_input():
    spec = tiny_spec()
    assert spec.quantize_input([0.5, -8.5, 0.03125]).tolist() == [8, -128, 0]
    assert spec.dequantize_output([3, -8]).tolist() == [0.1875, -0.5]


def v1_dict(spec):
    """``spec`` as a version 1 file held it: dense layers with ``in_features``, no kinds."""
    data = copy.deepcopy(spec.to_dict())
    del data["checksum"]
    data["version"] = 1
    for layer in data["layers"]:
        del layer["kind"]
        layer["in_features"] = layer.pop("input_shape")[0]
    return data


def mutated(change):
    data = v1_dict(tiny_spec())
    change(data)
    return data


def test_version_1_files_load_unchanged(tmp_path):
    data = v1_dict(tiny_spec())
    (tmp_path / "v1.json").write_text(json.dumps(data))
    loaded = NetworkSpec.load(tmp_path / "v1.json")
    assert loaded.to_dict() == tiny_spec().to_dict()
    # The shipped digits model is a version 1 file.
    shipped = json.loads((ROOT / "amaranth_nn/models/digits.json").read_text())
    assert shipped["version"] == 1
    spec = NetworkSpec.from_dict(shipped)
    assert [layer.kind for layer in spec.layers] == ["dense"] * 3
    assert spec.to_dict()["version"] == 2
    # Layer.from_dict reads both layouts of a dense layer.
    layer = Layer.from_dict(data["layers"][0])
    assert Layer.from_dict(layer.to_dict()).to_dict() == layer.to_dict()
    assert layer.in_features == 3 and layer.input_shape == (3,)


ERRORS = [
    (lambda d: d.update(version=3),
     "spec, field 'version': expected 1 or 2, got 3; this amaranth-nn reads versions 1 and 2"),
    (lambda d: d.update(format="onnx"),
     "spec, field 'format': expected 'amaranth-nn-spec', got 'onnx'; not a network spec"),
    (lambda d: d.update(extra=1), "spec, field 'extra': unknown field"),
    (lambda d: d.pop("input_format"), "spec, field 'input_format': missing"),
    (lambda d: d.update(input_format={"width": 8}),
     "spec, field 'input_format': expected {\"width\": W, \"frac\": F}, got {'width': 8}"),
    (lambda d: d.update(layers=[]), "spec, field 'layers': must be a non-empty list of layers"),
    (lambda d: d.update(metadata=[]), "spec, field 'metadata': must be an object, not []"),
    (lambda d: d["layers"][1]["weights"][0].pop(),
     "layer 1 ('d1'), field 'weights': expected shape (1, 2), got (1, 1)"),
    (lambda d: d["layers"][0]["weights"][1].pop(),
     "layer 0 ('d0'), field 'weights': expected a 2 x 3 array of integers, "
     "got rows of different lengths"),
    (lambda d: d["layers"][0]["weights"][1].__setitem__(2, 200),
     "layer 0 ('d0'), field 'weights': value 200 at index (1, 2) is outside Q(8, 6), "
     "range [-128, 127] (1 of 6 values out of range)"),
    (lambda d: d["layers"][0]["weights"][1].__setitem__(2, 2.5),
     "layer 0 ('d0'), field 'weights': expected integers, got float values"),
    (lambda d: d["layers"][0]["bias"].__setitem__(0, True),
     "layer 0 ('d0'), field 'bias': expected integers, got bool values"),
    (lambda d: d["layers"][0]["bias"].pop(),
     "layer 0 ('d0'), field 'bias': expected shape (2,), got (1,)"),
    (lambda d: d["layers"][0]["bias"].__setitem__(1, 40000),
     "layer 0 ('d0'), field 'bias': value 40000 at index 1 is outside Q(16, 10), "
     "range [-32768, 32767] (1 of 2 values out of range)"),
    (lambda d: d["layers"][0].pop("bias"), "layer 0, field 'bias': missing"),
    (lambda d: d["layers"][0].update(colour="red"), "layer 0, field 'colour': unknown field"),
    (lambda d: d["layers"][0].update(out_features=0),
     "layer 0 ('d0'), field 'out_features': must be a positive integer, not 0"),
    (lambda d: d["layers"][0].update(activation={"kind": "gelu"}),
     "layer 0 ('d0'), field 'activation': Activation must be one of identity, relu, "
     "hardtanh, not 'gelu'"),
    (lambda d: d["layers"][0].update(weight_format={"width": 1, "frac": 0}),
     "layer 0 ('d0'), field 'weight_format': Width must be an integer from 2 to 62, not 1"),
    (lambda d: d["layers"][1].update(bias_format={"width": 16, "frac": 11}),
     "layer 1 ('d1'), field 'bias_format': frac must be input frac 4 + weight frac 6 = 10, "
     "not 11"),
    (lambda d: d["layers"][1].update(in_features=3, weights=[[1, 2, 3]]),
     "layer 1 ('d1'), field 'in_features': is 3, but the previous layer has 2 outputs"),
    (lambda d: d["layers"][1].update(name="d0"),
     "layer 1 ('d0'), field 'name': is used by an earlier layer"),
    (lambda d: d["layers"][1].update(name=""), "layer 1, field 'name': must be a non-empty string"),
    (lambda d: d["layers"][1].update(activation={"kind": "hardtanh", "lo": -200, "hi": 3}),
     "layer 1 ('d1'), field 'activation': hardtanh bounds [-200, 3] must lie in the output "
     "format Q(8, 4)"),
]


@pytest.mark.parametrize("change, message", ERRORS)
def test_validation_errors(change, message):
    with pytest.raises(SpecError, match=f"^{re.escape(message)}$"):
        NetworkSpec.from_dict(mutated(change))


def test_file_errors(tmp_path):
    text = tiny_spec().save(tmp_path / "good.json").read_text()
    (tmp_path / "cut.json").write_text(text[:100])
    with pytest.raises(SpecError, match="^" + re.escape(
            f"spec file '{tmp_path / 'cut.json'}': is not valid JSON (truncated or "
            f"corrupted?): Expecting value at line 1 column 101")):
        NetworkSpec.load(tmp_path / "cut.json")
    (tmp_path / "flip.json").write_text(text.replace("[[1,2,3]", "[[1,2,4]"))
    with pytest.raises(SpecError, match="^" + re.escape(
            f"spec file '{tmp_path / 'flip.json'}', spec, field 'checksum': does not match "
            f"the contents; the file is corrupted or was edited (delete the 'checksum' field "
            f"to accept an edit)") + "$"):
        NetworkSpec.load(tmp_path / "flip.json")
    data = json.loads(text)
    data["layers"][1]["weights"] = [[1, 2, 3]]
    del data["checksum"]
    (tmp_path / "edit.json").write_text(json.dumps(data))
    with pytest.raises(SpecError, match="^" + re.escape(
            f"spec file '{tmp_path / 'edit.json'}', layer 1 ('d1'), field 'weights': "
            f"expected shape (1, 2), got (1, 3)") + "$"):
        NetworkSpec.load(tmp_path / "edit.json")
    with pytest.raises(SpecError, match="^" + re.escape(
            f"spec file '{tmp_path / 'missing.json'}': cannot be read: No such file or "
            f"directory") + "$"):
        NetworkSpec.load(tmp_path / "missing.json")


def test_hand_edit_without_checksum_loads(tmp_path):
    data = tiny_spec().to_dict()
    del data["checksum"]
    data["layers"][1]["weights"] = [[5, 6]]
    (tmp_path / "edit.json").write_text(json.dumps(data))
    assert NetworkSpec.load(tmp_path / "edit.json").layers[1].weights.tolist() == [[5, 6]]


def test_constructor_errors():
    fmt = QFormat(8, 0)
    with pytest.raises(SpecError, match=re.escape(
            "layer 'a', field 'weights': expected a 2-D array of integers "
            "(out_features x in_features)")):
        Layer("a", [1, 2], [0], fmt, fmt, fmt)
    with pytest.raises(SpecError, match=re.escape(
            "layer 'a', field 'weights': expected at least one row and one column, "
            "got shape (0, 3)")):
        Layer("a", np.zeros((0, 3), int), [], fmt, fmt, fmt)
    with pytest.raises(SpecError, match=re.escape(
            "layer 'a', field 'output_format': must be a QFormat, not (8, 0)")):
        Layer("a", [[1]], [0], fmt, fmt, (8, 0))
    with pytest.raises(SpecError, match=re.escape(
            "spec, field 'layers': must hold at least one layer")):
        NetworkSpec(fmt, [])
    with pytest.raises(SpecError, match=re.escape(
            "spec, field 'input_format': must be a QFormat, not 8")):
        NetworkSpec(8, [Layer("a", [[1]], [0], fmt, fmt, fmt)])


# Version 2: every layer kind.

F8, W8, B16 = QFormat(8, 4), QFormat(8, 6), QFormat(16, 10)


def conv_spec():
    """A 1-D network with one layer of every kind (the 2-D ones are in conv2d_spec)."""
    conv = Conv("c0", (6, 2), np.arange(18).reshape(3, 3, 2) - 9, [1, 2, 3], W8, B16, F8,
                Activation.relu(), stride=1, padding=1)
    return NetworkSpec(F8, [
        conv,
        MaxPool("p0", (6, 3), 2),
        AvgPool("a0", (3, 3), 2, 1),
        ScaleShift("s0", (2, 3), [3, -2, 1], [5, 6, 7], QFormat(6, 4), QFormat(14, 8), F8,
                   Activation.hardtanh(-10, 20)),
        Flatten("f0", (2, 3)),
        Layer("d0", np.arange(24).reshape(4, 6) - 12, [0, 1, 2, 3], W8, B16, F8),
    ], name="kinds")


def conv2d_spec():
    return NetworkSpec(F8, [
        Conv("c0", (5, 4, 2), np.ones((3, 3, 2, 2), int), [0, 0, 0], W8, B16, F8,
             stride=(2, 1), padding=(1, 0)),
        MaxPool("p0", (3, 3, 3), (2, 2), 1),
        Flatten("f0", (2, 2, 3)),
    ])


def test_version_2_round_trip_of_every_kind(tmp_path):
    for spec in (conv_spec(), conv2d_spec()):
        loaded = NetworkSpec.load(spec.save(tmp_path / "net.json"))
        assert loaded.to_dict() == spec.to_dict()
        x = np.arange(-20, 4 * spec.input_size - 20).reshape(4, -1) % 256 - 128
        for got, expected in zip(golden.run_layers(loaded, x), golden.run_layers(spec, x),
                                 strict=True):
            assert got.tolist() == expected.tolist()
    assert repr(conv_spec()) == ("NetworkSpec('kinds', 6x2 -> 6x3 -> 3x3 -> 2x3 -> 2x3 -> 6 "
                                 "-> 4, input Q(8, 4))")
    assert repr(conv2d_spec()) == ("NetworkSpec('network', 5x4x2 -> 3x3x3 -> 2x2x3 -> 12, "
                                   "input Q(8, 4))")


def test_version_2_fields_of_every_kind():
    layers = conv_spec().to_dict()["layers"]
    assert [layer["kind"] for layer in layers] == ["conv", "maxpool", "avgpool", "scale_shift",
                                                   "flatten", "dense"]
    assert {key: value for key, value in layers[0].items() if key not in ("weights", "bias")} == {
        "kind": "conv", "name": "c0", "input_shape": [6, 2], "out_channels": 3, "kernel": [3],
        "stride": [1], "padding": [1], "groups": 1, "weight_format": {"width": 8, "frac": 6},
        "bias_format": {"width": 16, "frac": 10}, "output_format": {"width": 8, "frac": 4},
        "activation": {"kind": "relu"}}
    assert layers[0]["weights"][0] == [[-9, -8], [-7, -6], [-5, -4]]   # (out, kernel, in)
    assert layers[1] == {"kind": "maxpool", "name": "p0", "input_shape": [6, 3], "kernel": [2],
                         "stride": [2]}
    assert layers[2] == {"kind": "avgpool", "name": "a0", "input_shape": [3, 3], "kernel": [2],
                         "stride": [1]}
    assert layers[3] == {"kind": "scale_shift", "name": "s0", "input_shape": [2, 3],
                         "scale_format": {"width": 6, "frac": 4},
                         "bias_format": {"width": 14, "frac": 8},
                         "output_format": {"width": 8, "frac": 4},
                         "activation": {"kind": "hardtanh", "lo": -10, "hi": 20},
                         "scale": [3, -2, 1], "bias": [5, 6, 7]}
    assert layers[4] == {"kind": "flatten", "name": "f0", "input_shape": [2, 3]}
    assert layers[5]["input_shape"] == [6] and "in_features" not in layers[5]


def test_shapes_formats_and_ranges_of_every_kind():
    spec = conv_spec()
    assert spec.kinds == ("conv", "maxpool", "avgpool", "scale_shift", "flatten", "dense")
    assert spec.input_shape == (6, 2) and spec.input_size == 12
    assert [layer.output_shape for layer in spec.layers] == [(6, 3), (3, 3), (2, 3), (2, 3),
                                                             (6,), (4,)]
    conv, pool, avg, scale, _, dense = spec.layers
    assert (conv.kernel, conv.stride, conv.padding, conv.window_size) == ((3,), (1,), (1,), 6)
    assert conv.weight_matrix.shape == (3, 6)
    assert conv.weight_matrix[0].tolist() == [-9, -8, -7, -6, -5, -4]
    assert (pool.stride, pool.padding, avg.shift, avg.rounding) == ((2,), (0,), 1, 1)
    assert spec.output_format_of(1) == spec.output_format_of(2) == F8   # pass the format on
    assert spec.input_range_of(1) == spec.input_range_of(2) == (0, 127)  # after the ReLU
    assert spec.input_range_of(3) == (0, 127)
    assert spec.output_range_of(3) == spec.input_range_of(4) == (-10, 20)   # the hardtanh
    assert spec.accumulator_range_of(2) == (0, 254)
    # Conv: the padding zeros count, so 0 is in the range of what enters each window.
    assert spec.accumulator_range_of(0) == conv.accumulator_range(-128, 127)
    assert spec.accumulator_range_of(3) == (-248, 386)
    assert (scale.shift, dense.shift, dense.in_features) == (4, 6, 6)
    with pytest.raises(ValueError, match=r"^Layer 1 \('p0'\) is a maxpool layer, which has no "
                                         r"accumulator$"):
        spec.accumulator_range_of(1)
    wide = NetworkSpec(F8, [Conv("c", (4, 1), [[[1], [1]]], [0], W8, B16, F8,
                                 Activation.hardtanh(2, 9)),
                            Conv("d", (3, 1), [[[1], [-1]]], [0], W8, B16, F8, padding=1)])
    assert wide.input_range_of(1) == (2, 9)
    assert wide.accumulator_range_of(1) == (-9, 9)       # a padded window holds zeros too


def v2_mutated(change, spec=conv_spec):
    data = spec().to_dict()
    del data["checksum"]
    data = copy.deepcopy(data)
    change(data)
    return data


V2_ERRORS = [
    (lambda d: d["layers"][0].pop("kind"), "layer 0, field 'kind': missing"),
    (lambda d: d["layers"][0].update(kind="lstm"),
     "layer 0, field 'kind': must be one of dense, conv, maxpool, avgpool, flatten, "
     "scale_shift, not 'lstm'"),
    (lambda d: d["layers"][0].pop("groups"), "layer 0, field 'groups': missing"),
    (lambda d: d["layers"][0].update(groups=2),
     "layer 0 ('c0'), field 'groups': must be 1, not 2: grouped and depthwise convolutions "
     "are not supported yet"),
    (lambda d: d["layers"][0].update(input_shape=[6]),
     "layer 0 ('c0'), field 'input_shape': must be (L, C) or (H, W, C) (positions and "
     "channels), not [6]"),
    (lambda d: d["layers"][0].update(input_shape=[6, 0]),
     "layer 0 ('c0'), field 'input_shape': must be a list of positive integers, not [6, 0]"),
    (lambda d: d["layers"][0].update(kernel=[3, 3]),
     "layer 0 ('c0'), field 'kernel': must be a list of 1 positive integers, not [3, 3]"),
    (lambda d: d["layers"][0].update(kernel=[2]),
     "layer 0 ('c0'), field 'weights': expected shape (3, 2, 2), got (3, 3, 2)"),
    (lambda d: d["layers"][0].update(stride=[0]),
     "layer 0 ('c0'), field 'stride': must be a list of 1 positive integers, not [0]"),
    (lambda d: d["layers"][0].update(padding=[-1]),
     "layer 0 ('c0'), field 'padding': must be a list of 1 integers of at least 0, not [-1]"),
    (lambda d: d["layers"][0].update(padding=[3]),
     "layer 0 ('c0'), field 'padding': must be smaller than the kernel in every axis, not [3] "
     "for the kernel [3]"),
    (lambda d: d["layers"][0].update(out_channels=0),
     "layer 0 ('c0'), field 'out_channels': must be a positive integer, not 0"),
    (lambda d: d["layers"][0]["weights"][2][1].__setitem__(0, 300),
     "layer 0 ('c0'), field 'weights': value 300 at index (2, 1, 0) is outside Q(8, 6), range "
     "[-128, 127] (1 of 18 values out of range)"),
    (lambda d: d["layers"][0]["weights"][2][1].__setitem__(0, 1.0),
     "layer 0 ('c0'), field 'weights': expected integers, got float values"),
    (lambda d: d["layers"][1].update(input_shape=[6, 4]),
     "layer 1 ('p0'), field 'input_shape': is [6, 4], but the previous layer outputs [6, 3]"),
    (lambda d: d["layers"][1].update(kernel=[7]),
     "layer 1 ('p0'), field 'kernel': [7] does not fit the input positions [6] with padding "
     "[0]"),
    (lambda d: d["layers"][1].update(padding=[1]), "layer 1, field 'padding': unknown field"),
    (lambda d: d["layers"][2].update(kernel=[3]),
     "layer 2 ('a0'), field 'kernel': [3] has a window of 3 positions, not a power of two; an "
     "average pool that is its own layer sums and shifts (only one before a dense or conv "
     "layer folds into it)"),
    (lambda d: d["layers"][3]["scale"].pop(),
     "layer 3 ('s0'), field 'scale': expected shape (3,), got (2,)"),
    (lambda d: d["layers"][3]["bias"].__setitem__(0, 9000),
     "layer 3 ('s0'), field 'bias': value 9000 at index 0 is outside Q(14, 8), range "
     "[-8192, 8191] (1 of 3 values out of range)"),
    (lambda d: d["layers"][3].update(bias_format={"width": 14, "frac": 9}),
     "layer 3 ('s0'), field 'bias_format': frac must be input frac 4 + scale frac 4 = 8, not 9"),
    (lambda d: d["layers"][3].update(weight_format={"width": 8, "frac": 4}),
     "layer 3, field 'weight_format': unknown field"),
    (lambda d: d["layers"][4].update(input_shape=[3, 2]),
     "layer 4 ('f0'), field 'input_shape': is [3, 2], but the previous layer outputs [2, 3]"),
    (lambda d: d["layers"].pop(4),
     "layer 4 ('d0'), field 'input_shape': is [6], but the previous layer outputs [2, 3]; a "
     "dense layer takes a vector (put a flatten layer before it)"),
    (lambda d: d["layers"][5].update(input_shape=[2, 3]),
     "layer 5 ('d0'), field 'input_shape': must be [N]: a dense layer takes a vector, not "
     "[2, 3]"),
    (lambda d: d["layers"][5].update(in_features=6), "layer 5, field 'in_features': unknown "
                                                     "field"),
    (lambda d: d["layers"][5].update(input_shape=[7]),
     "layer 5 ('d0'), field 'weights': expected shape (4, 7), got (4, 6)"),
    (lambda d: d["layers"][1].update(name="c0"),
     "layer 1 ('c0'), field 'name': is used by an earlier layer"),
]


@pytest.mark.parametrize("change, message", V2_ERRORS)
def test_version_2_validation_errors(change, message):
    with pytest.raises(SpecError, match=f"^{re.escape(message)}$"):
        NetworkSpec.from_dict(v2_mutated(change))


@pytest.mark.parametrize("change, message", [
    (lambda d: d["layers"][0].update(input_shape=[5, 4, 1]),
     "layer 0 ('c0'), field 'weights': expected shape (3, 3, 2, 1), got (3, 3, 2, 2)"),
    (lambda d: d["layers"][0].update(stride=[2]),
     "layer 0 ('c0'), field 'stride': must be a list of 2 positive integers, not [2]"),
    (lambda d: d["layers"][0].update(padding=[1, 2]),
     "layer 0 ('c0'), field 'padding': must be smaller than the kernel in every axis, not "
     "[1, 2] for the kernel [3, 2]"),
    (lambda d: d["layers"][0].update(input_shape=[1, 1, 2]),
     "layer 0 ('c0'), field 'kernel': [3, 2] does not fit the input positions [1, 1] with "
     "padding [1, 0]"),
    (lambda d: d["layers"][1].update(kernel=[2, 3], stride=[1, 1]),
     "layer 2 ('f0'), field 'input_shape': is [2, 2, 3], but the previous layer outputs "
     "[2, 1, 3]"),
])
def test_version_2_validation_errors_2d(change, message):
    with pytest.raises(SpecError, match=f"^{re.escape(message)}$"):
        NetworkSpec.from_dict(v2_mutated(change, conv2d_spec))


def test_version_2_constructor_errors():
    with pytest.raises(SpecError, match=re.escape(
            "layer 'c', field 'weights': expected an array of integers of shape (out_channels, "
            "kernel_length, 2): the last axis is the input's 2 channels, got shape (1, 3, 1)")):
        Conv("c", (5, 2), np.zeros((1, 3, 1), int), [0], W8, B16, F8)
    with pytest.raises(SpecError, match=re.escape(
            "layer 'c', field 'weights': expected an array of integers of shape (out_channels, "
            "kernel_height, kernel_width, 1): the last axis is the input's 1 channels, got "
            "shape (1, 3, 1)")):
        Conv("c", (5, 5, 1), np.zeros((1, 3, 1), int), [0], W8, B16, F8)
    with pytest.raises(SpecError, match=re.escape(
            "layer 'c', field 'groups': must be 1, not 4: grouped and depthwise convolutions "
            "are not supported yet")):
        Conv("c", (5, 4), np.zeros((4, 3, 4), int), [0] * 4, W8, B16, F8, groups=4)
    with pytest.raises(SpecError, match=re.escape(
            "layer 'p', field 'stride': must be a list of 2 positive integers, not [1]")):
        MaxPool("p", (4, 4, 1), 2, (1,))
    with pytest.raises(SpecError, match=re.escape(
            "layer '', field 'name': must be a non-empty string")):
        Flatten("", (4,))
    with pytest.raises(SpecError, match=re.escape(
            "layer 's', field 'scale_format': must be a QFormat, not 8")):
        ScaleShift("s", (4,), [1] * 4, [0] * 4, 8, B16, F8)
    with pytest.raises(SpecError, match=re.escape(
            "layer 1: must be a layer (dense, conv, maxpool, avgpool, flatten, scale_shift), "
            "not 'flatten'")):
        NetworkSpec(F8, [Flatten("f", (4,)), "flatten"])


def test_inputs_of_a_conv_network_are_flattened_streams():
    spec = conv2d_spec()
    with pytest.raises(ValueError, match=re.escape(
            "Inputs must have shape (batch, 40) or (40,) (each sample its 5x4x2 input flattened "
            "in stream order), not (3, 5, 4, 2)")):
        golden.run(spec, np.zeros((3, 5, 4, 2), int))
