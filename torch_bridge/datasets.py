"""The datasets and float models of the embedded models: what ``--dataset`` selects.

=============== ================================================== ============================
name            data                                               float model
=============== ================================================== ============================
``digits``      scikit-learn's 8x8 digits, 1797 images; pixels     MLP 64 -> 32 -> 16 -> 10
                / 16 in [0, 1]; a stratified 25 % test split       (``Linear -> BatchNorm1d ->
                (450 images), seeded                               ReLU`` per hidden layer)
``digits-conv`` the same digits and split, as 1x8x8 images         ``Conv2d 3x3 (pad 1) -> BN ->
                                                                   ReLU -> MaxPool 2`` twice,
                                                                   8 and 16 channels, then
                                                                   ``Flatten -> Linear``
``mnist1d``     MNIST-1D (Greydanus and Kobak, ICML 2024), built   ``Conv1d (pad) -> BN -> ReLU
                locally by ``mnist1d.data.make_dataset`` with its  -> MaxPool 2`` three times
                default arguments (never downloaded): sequences    (kernels 5, 5, 3; 16
                of length 40, 4000 train / 1000 test, as 1x40      channels), then ``Flatten ->
                                                                   Linear`` 80 -> 10
=============== ================================================== ============================

Samples are in torch layout (``(N, 64)``, ``(N, 1, 8, 8)``, ``(N, 1, 40)``); the spec's input
is the same sample in stream order (:mod:`torch_bridge.layout`), which for one channel is the
same numbers in the same order.
"""

from dataclasses import dataclass, field

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

__all__ = ["Dataset", "DATASETS", "load_digits_split", "load_mnist1d", "float_mlp",
           "digits_cnn", "mnist1d_cnn"]


def load_digits_split(test_size=0.25, seed=0):
    """Digits as float32 ``(x_train, x_test, y_train, y_test)``, pixels scaled to [0, 1]."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    return train_test_split(x, data.target.astype(np.int64), test_size=test_size,
                            random_state=seed, stratify=data.target)


def load_mnist1d(test_size=None, seed=None):
    """MNIST-1D built locally with the package's default arguments: ``(x_train, x_test,
    y_train, y_test)``, float32 sequences of shape ``(N, 1, 40)``.

    The split is the package's (4000 / 1000, its own seed 42); ``test_size`` and ``seed`` do
    not change it. ``make_dataset`` seeds numpy's and Python's global random generators.
    """
    # Imported here: the package imports matplotlib, which only this dataset needs.
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    x_train = data["x"].astype(np.float32)[:, None, :]
    x_test = data["x_test"].astype(np.float32)[:, None, :]
    return x_train, x_test, data["y"].astype(np.int64), data["y_test"].astype(np.int64)


def float_mlp(sizes):
    """``Linear -> BatchNorm1d -> ReLU`` per hidden layer, then a ``Linear`` output layer."""
    modules = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        modules.append(nn.Linear(n_in, n_out))
        if index < len(sizes) - 2:
            modules += [nn.BatchNorm1d(n_out), nn.ReLU()]
    return nn.Sequential(*modules)


def _conv_blocks(conv, bn, pool, channels, kernels, in_channels):
    modules = []
    for width, kernel in zip(channels, kernels, strict=True):
        modules += [conv(in_channels, width, kernel, padding=kernel // 2), bn(width), nn.ReLU(),
                    pool(2)]
        in_channels = width
    return modules


def digits_cnn(channels=(8, 16)):
    """The digits-conv model: per entry of ``channels`` a ``Conv2d 3x3 (pad 1) -> BatchNorm2d ->
    ReLU -> MaxPool2d 2`` block, then ``Flatten -> Linear(channels[-1] * 2 * 2, 10)``."""
    size = 8 >> len(channels)
    return nn.Sequential(*_conv_blocks(nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, channels,
                                       [3] * len(channels), 1),
                         nn.Flatten(), nn.Linear(channels[-1] * size * size, 10))


def mnist1d_cnn(channels=(16, 16, 16), kernels=(5, 5, 3)):
    """The MNIST-1D model: per channel count a ``Conv1d (same padding) -> BatchNorm1d -> ReLU ->
    MaxPool1d 2`` block, then ``Flatten -> Linear(channels[-1] * 40 / 2**blocks, 10)``."""
    length = 40 >> len(channels)
    return nn.Sequential(*_conv_blocks(nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, channels,
                                       kernels[:len(channels)], 1),
                         nn.Flatten(), nn.Linear(channels[-1] * length, 10))


@dataclass(frozen=True)
class Dataset:
    """A dataset and the float model trained on it.

    Members
    -------
    name : str
        What ``--dataset`` accepts.
    description : str
        For the report.
    load : callable
        ``load(test_size, seed)`` -> ``(x_train, x_test, y_train, y_test)``.
    model : callable
        ``model(widths)`` -> the float ``nn.Sequential``.
    widths : tuple of int
        The default hidden sizes (MLP) or channels (CNN).
    widths_option : str
        The command-line option that sets them.
    settings : dict
        Default training settings (``epochs``, ``qat_epochs``, ``lr``, ``qat_lr``,
        ``batch_size``; ``qat_lr_below_6_bits``, where given, replaces ``qat_lr`` for formats
        narrower than 6 bits).
    environment : tuple of str
        Extra packages whose versions the report records.
    """

    name: str
    description: str
    load: object
    model: object
    widths: tuple
    widths_option: str
    settings: dict = field(default_factory=dict)
    environment: tuple = ()

    def float_model(self, widths=None):
        """The untrained float model, with ``widths`` (default :attr:`widths`)."""
        return self.model(self.widths if widths is None else tuple(widths))


def _digits_images(test_size, seed):
    x_train, x_test, y_train, y_test = load_digits_split(test_size, seed)
    return x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8), y_train, y_test


#: Every dataset, by name.
DATASETS = {dataset.name: dataset for dataset in [
    Dataset("digits", "sklearn.datasets.load_digits (8x8, 10 classes)", load_digits_split,
            lambda hidden: float_mlp([64, *hidden, 10]), (32, 16), "--hidden",
            {"epochs": 60, "qat_epochs": 100, "lr": 1e-2, "qat_lr": 2e-3, "batch_size": 64}),
    Dataset("digits-conv", "sklearn.datasets.load_digits (8x8 images, 10 classes)",
            _digits_images, digits_cnn, (8, 16), "--channels",
            {"epochs": 40, "qat_epochs": 30, "lr": 1e-2, "qat_lr": 2e-3, "batch_size": 64}),
    Dataset("mnist1d", "MNIST-1D, mnist1d.data.make_dataset(get_dataset_args()) (length 40, "
            "10 classes)", load_mnist1d, mnist1d_cnn, (16, 16, 16), "--channels",
            {"epochs": 40, "qat_epochs": 30, "lr": 1e-2, "qat_lr": 2e-3,
             "qat_lr_below_6_bits": 5e-3, "batch_size": 64}, ("mnist1d",)),
]}
