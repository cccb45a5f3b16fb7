"""The embedded models, by name: each a network spec and its held-out test set.

:data:`MODELS` maps the names that ``--model`` accepts to :class:`EmbeddedModel` entries;
:data:`DEFAULT_MODEL` (``"digits"``) is the one the command lines use without ``--model``.
A test set is an ``.npz`` file with ``x`` (inputs as integers of the spec's input format, each
sample flattened in stream order) and ``y`` (their labels), as ``python -m torch_bridge.train``
writes it next to the spec.

- ``digits``: an MLP 64 -> 32 -> 16 -> 10 trained on scikit-learn's 8x8 digits;
- ``mnist1d``: a Conv1d network (three conv, BatchNorm, ReLU and max-pool blocks of 16
  channels, then a dense layer) trained on MNIST-1D, sequences of length 40;
- ``digits-conv``: a Conv2d network (two conv blocks of 8 and 16 channels) on the 8x8 digits
  as images.

Each has ``NAME.json``, ``NAME_test.npz`` and the training report ``NAME.report.json``, all
written by its ``command``. Each runs in the golden model (``amaranth_nn.golden``) and, bit
for bit, in the simulated hardware (``simulate``), the export and the simulated board
(``host --port sim``).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..spec import NetworkSpec

__all__ = ["MODEL_DIR", "EmbeddedModel", "MODELS", "DEFAULT_MODEL", "default_spec",
           "default_test_set"]

MODEL_DIR = Path(__file__).parent


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped in :data:`MODEL_DIR`.

    Members
    -------
    name : str
        What ``--model`` accepts.
    spec_file, test_file : str
        The spec JSON and the test set ``.npz``, in :data:`MODEL_DIR`.
    command : str
        The command that writes both files.
    """

    name: str
    spec_file: str
    test_file: str
    command: str

    def file(self, name):
        """The path of the model's file ``name`` in :data:`MODEL_DIR`.

        Raises
        ------
        FileNotFoundError
            If it is missing; the message says how to regenerate it.
        """
        path = MODEL_DIR / name
        if not path.is_file():
            raise FileNotFoundError(f"The file {path} of the embedded model '{self.name}' is "
                                    f"missing; regenerate it with '{self.command}'")
        return path

    def spec(self):
        """The model as a :class:`~amaranth_nn.spec.NetworkSpec`.

        Raises
        ------
        FileNotFoundError
            If the spec file is missing (the message says how to regenerate it).
        """
        return NetworkSpec.load(self.file(self.spec_file))

    def test_set(self):
        """The held-out test set: ``(x, y)``, int64 inputs and labels.

        Raises
        ------
        FileNotFoundError
            If the test set file is missing.
        """
        with np.load(self.file(self.test_file)) as data:
            return data["x"].astype(np.int64), data["y"].astype(np.int64)


#: The embedded models by name; adding one is adding its line.
MODELS = {model.name: model for model in [
    EmbeddedModel("digits", "digits.json", "digits_test.npz",
                  "python -m torch_bridge.train_digits --bits 8 "
                  "--out amaranth_nn/models/digits.json"),
    EmbeddedModel("mnist1d", "mnist1d.json", "mnist1d_test.npz",
                  "python -m torch_bridge.train --dataset mnist1d --bits 8 "
                  "--out amaranth_nn/models/mnist1d.json"),
    EmbeddedModel("digits-conv", "digits-conv.json", "digits-conv_test.npz",
                  "python -m torch_bridge.train --dataset digits-conv --bits 8 "
                  "--out amaranth_nn/models/digits-conv.json"),
]}

#: The model of every command line without ``--model``.
DEFAULT_MODEL = "digits"


def default_spec():
    """The default embedded model (:data:`DEFAULT_MODEL`) as a NetworkSpec."""
    return MODELS[DEFAULT_MODEL].spec()


def default_test_set():
    """Held-out test inputs of the default model: ``(x, y)``, integer inputs and labels."""
    return MODELS[DEFAULT_MODEL].test_set()
