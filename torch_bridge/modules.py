"""The QAT modules, in one place: each mirrors a spec layer, and a model of them in eval mode
computes exactly what its exported integer model computes.

Build a network as an ``nn.Sequential``::

    QuantInput(Q(8, 5), shape=(1, 40)),
    QConv1dBn(1, 16, 5, padding=2, input_format=Q(8, 5), weight_format=Q(8, 6),
              output_format=Q(8, 4)),
    QReLU(),
    QMaxPool1d(2),
    QFlatten(),
    QLinear(16 * 20, 10, input_format=Q(8, 4), weight_format=Q(8, 6), output_format=Q(8, 3)),

- input and activations (:mod:`torch_bridge.activations`): ``QuantInput``, ``QReLU``,
  ``QHardtanh``, ``QIdentity``;
- weights (:mod:`torch_bridge.weighted`): ``QLinear``, ``QConv1d``, ``QConv2d``;
- with a BatchNorm folded while training (:mod:`torch_bridge.batchnorm`): after the weights
  ``QLinearBn1d``, ``QConv1dBn``, ``QConv2dBn``; before them ``QBnLinear``, ``QBnConv1d``,
  ``QBnConv2d``; alone, the scale-and-shift layer, ``QBatchNorm1d``, ``QBatchNorm2d``;
- pooling and flatten (:mod:`torch_bridge.pooling`): ``QMaxPool1d``, ``QMaxPool2d``,
  ``QAvgPool1d``, ``QAvgPool2d``, ``QFlatten``.

Outputs are float64 tensors holding ``q * 2**-F`` exactly, in torch's layout.
"""

from .activations import QHardtanh, QIdentity, QReLU, QuantInput
from .batchnorm import (
    QBatchNorm1d,
    QBatchNorm2d,
    QBnConv1d,
    QBnConv2d,
    QBnLinear,
    QConv1dBn,
    QConv2dBn,
    QLinearBn1d,
    TrainsBatchNorm,
)
from .pooling import QAvgPool1d, QAvgPool2d, QFlatten, QMaxPool1d, QMaxPool2d
from .weighted import QConv1d, QConv2d, QLinear, QWeighted, default_bias_width

__all__ = ["QuantInput", "QReLU", "QHardtanh", "QIdentity", "QLinear", "QConv1d", "QConv2d",
           "QLinearBn1d", "QConv1dBn", "QConv2dBn", "QBnLinear", "QBnConv1d", "QBnConv2d",
           "QBatchNorm1d", "QBatchNorm2d", "QMaxPool1d", "QMaxPool2d", "QAvgPool1d",
           "QAvgPool2d", "QFlatten", "QWeighted", "TrainsBatchNorm", "default_bias_width"]
