"""The embedded models as shipped: each spec loads, its test set is integers of the input format
in stream order, and the golden model reproduces the reported integer accuracy on it, which
meets the model's targets."""

import json

import numpy as np
import pytest

from amaranth_nn import golden
from amaranth_nn.models import MODEL_DIR, MODELS

#: name: (input shape, test samples, kinds, lowest integer accuracy, most points below float)
EXPECTED = {
    "digits": ((64,), 450, ("dense",) * 3, 0.96, 0.5),
    "mnist1d": ((40, 1), 1000, ("conv", "maxpool") * 3 + ("flatten", "dense"), 0.93, 0.5),
    "digits-conv": ((8, 8, 1), 450, ("conv", "maxpool") * 2 + ("flatten", "dense"), 0.98,
                    None),
}


@pytest.mark.parametrize("name", MODELS)
def test_shipped_model_meets_its_targets(name):
    model = MODELS[name]
    shape, samples, kinds, lowest, most_below = EXPECTED[name]
    spec = model.spec()
    assert (spec.input_shape, spec.kinds, spec.output_size) == (shape, kinds, 10)
    x, y = model.test_set()
    assert x.shape == (samples, spec.input_size) and y.shape == (samples,)
    assert spec.input_format.contains(x)
    report = json.loads((MODEL_DIR / model.spec_file.replace(".json", ".report.json"))
                        .read_text())
    accuracy = float((golden.run(spec, x).argmax(axis=1) == y).mean())
    assert accuracy == report["integer_accuracy"] >= lowest
    if most_below is not None:
        assert 100 * (report["float_accuracy"] - accuracy) <= most_below
    assert report["bits"] == 8
    assert all(layer.weight_format.width == 8 and layer.output_format.width == 8
               for layer in spec.layers if layer.requantizes)
    assert report["qat_eval_equals_integer"] and report["torch_int64_equals_golden"]
    if name != "digits":
        assert report["train_seconds"] + report["data_seconds"] < 120
        assert np.array_equal(spec.metadata["training"]["integer_accuracy"], accuracy)
