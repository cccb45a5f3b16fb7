"""Network spec: construction, save/load round trip, and the exact text of every error."""

import copy
import json
import re

import numpy as np
import pytest

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat, SpecError, golden


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


def mutated(change):
    data = tiny_spec().to_dict()
    del data["checksum"]
    data = copy.deepcopy(data)
    change(data)
    return data


ERRORS = [
    (lambda d: d.update(version=2),
     "spec, field 'version': expected 1, got 2; this amaranth-nn reads version 1 only"),
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
