"""The embedded default model: an MLP trained on scikit-learn's 8x8 digits.

The files are produced by ``python -m torch_bridge.train_digits --bits 8 --out
amaranth_nn/models/digits.json``, which also writes ``digits_test.npz`` (held-out inputs as
integers of the spec's input format, ``x``, and their labels, ``y``) and the training report
``digits.report.json``.
"""

from pathlib import Path

import numpy as np

from ..spec import NetworkSpec

__all__ = ["MODEL_DIR", "DEFAULT_SPEC_PATH", "DEFAULT_TEST_SET_PATH", "default_spec",
           "default_test_set"]

MODEL_DIR = Path(__file__).parent
DEFAULT_SPEC_PATH = MODEL_DIR / "digits.json"
DEFAULT_TEST_SET_PATH = MODEL_DIR / "digits_test.npz"

_REGENERATE = ("regenerate it with 'python -m torch_bridge.train_digits --bits 8 "
               "--out amaranth_nn/models/digits.json'")


def default_spec():
    """The embedded default digits model as a :class:`~amaranth_nn.spec.NetworkSpec`."""
    if not DEFAULT_SPEC_PATH.exists():
        raise FileNotFoundError(f"The embedded default model {DEFAULT_SPEC_PATH} is missing; "
                                f"{_REGENERATE}")
    return NetworkSpec.load(DEFAULT_SPEC_PATH)


def default_test_set():
    """Held-out test inputs of the default model: ``(x, y)``, integer inputs and labels."""
    if not DEFAULT_TEST_SET_PATH.exists():
        raise FileNotFoundError(f"The default model's test set {DEFAULT_TEST_SET_PATH} is "
                                f"missing; {_REGENERATE}")
    with np.load(DEFAULT_TEST_SET_PATH) as data:
        return data["x"].astype(np.int64), data["y"].astype(np.int64)
