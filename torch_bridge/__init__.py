"""torch_bridge: fixed-point quantization-aware training and export to amaranth-nn specs.

- :mod:`.quant`: fake quantization (round half even, saturate) with a straight-through
  estimator;
- :mod:`.modules`: QAT modules (``QuantInput``, ``QLinear``, ``QLinearBn1d``, ``QReLU``,
  ``QHardtanh``, ``QIdentity``) whose eval forward is the integer model exactly;
- :mod:`.fold`: Linear+BatchNorm1d folding in float64;
- :mod:`.convert`: post-training quantization of float ``nn.Sequential`` models;
- :mod:`.qat_spec`: a QAT model to a :class:`~amaranth_nn.spec.NetworkSpec`;
- :mod:`.export`: export of QAT and float models to a spec and ``$readmemh`` files
  (``python -m torch_bridge.export``);
- :mod:`.infer`: integer inference in torch (int64), equal to the golden model;
- :mod:`.train_digits`: the digits example that produces the default model
  (``python -m torch_bridge.train_digits``).
"""

import importlib

__all__ = [
    "QuantInput", "QLinear", "QLinearBn1d", "QReLU", "QHardtanh", "QIdentity",
    "fold_linear_bn", "calibrate", "ptq", "qat_from_float", "to_spec", "write_rom",
    "SaturationWarning",
]

_HOMES = {
    "QuantInput": "modules", "QLinear": "modules", "QLinearBn1d": "modules",
    "QReLU": "modules", "QHardtanh": "modules", "QIdentity": "modules",
    "fold_linear_bn": "fold", "calibrate": "convert", "ptq": "convert",
    "qat_from_float": "convert", "to_spec": "qat_spec", "write_rom": "export",
    "SaturationWarning": "qat_spec",
}


def __getattr__(name):
    # Imported on first use, so that ``python -m torch_bridge.export`` does not find its own
    # module imported already by the package.
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
