"""torch_bridge: fixed-point quantization-aware training and export to amaranth-nn specs.

- :mod:`.quant`: fake quantization (round half even, saturate) with a straight-through
  estimator;
- :mod:`.modules`: the QAT modules, whose eval forward is the integer model exactly: the input
  and activations (:mod:`.activations`), dense and conv layers (:mod:`.weighted`), layers that
  train with a BatchNorm folded after or before them or alone (:mod:`.batchnorm`), pooling and
  flatten (:mod:`.pooling`);
- :mod:`.fold`: BatchNorm folding in every placement, in float64;
- :mod:`.layout`: torch's layout against the spec's stream order (flatten, conv weights,
  folded average pools);
- :mod:`.float_model`, :mod:`.calibrate`, :mod:`.convert`: post-training quantization of float
  ``nn.Sequential`` models (stages, formats, the QAT twin);
- :mod:`.qat_spec`: a QAT model to a :class:`~amaranth_nn.spec.NetworkSpec`;
- :mod:`.export`: export of QAT and float models to a spec and ``$readmemh`` files
  (``python -m torch_bridge.export``);
- :mod:`.infer`: integer inference in torch (int64), equal to the golden model;
- :mod:`.datasets`, :mod:`.training`, :mod:`.train`: the embedded models' data, models and
  training (``python -m torch_bridge.train``; :mod:`.train_digits` is its digits command).
"""

import importlib

_MODULES = ["QuantInput", "QLinear", "QLinearBn1d", "QBnLinear", "QConv1d", "QConv1dBn",
            "QBnConv1d", "QConv2d", "QConv2dBn", "QBnConv2d", "QBatchNorm1d", "QBatchNorm2d",
            "QMaxPool1d", "QMaxPool2d", "QAvgPool1d", "QAvgPool2d", "QFlatten", "QReLU",
            "QHardtanh", "QIdentity"]

__all__ = [*_MODULES, "fold_linear_bn", "fold_bn_after", "fold_bn_before", "bn_scale_shift",
           "calibrate", "ptq", "qat_from_float", "to_spec", "write_rom", "SaturationWarning"]

_HOMES = {
    **{name: "modules" for name in _MODULES},
    "fold_linear_bn": "fold", "fold_bn_after": "fold", "fold_bn_before": "fold",
    "bn_scale_shift": "fold", "calibrate": "calibrate", "ptq": "convert",
    "qat_from_float": "convert", "to_spec": "qat_spec", "write_rom": "export",
    "SaturationWarning": "qat_spec",
}


def __getattr__(name):
    # Imported on first use, so that ``python -m torch_bridge.export`` does not find its own
    # module imported already by the package.
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
