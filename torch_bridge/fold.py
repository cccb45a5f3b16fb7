"""BatchNorm folding in every placement, in float64: the one place of each formula.

With ``s = gamma / sqrt(var + eps)`` per channel (``gamma`` = 1 and ``beta`` = 0 without
``affine``):

- **after** a Linear or conv layer (:func:`fold_bn_after`): ``W' = s W`` (each output row, or
  output channel), ``b' = s (b - mu) + beta``. The operations are those of
  :func:`torch.nn.utils.fusion.fuse_linear_bn_weights` (``scale = gamma * rsqrt(var + eps)``,
  ``W * scale``, ``(b - mu) * scale + beta``) and of
  :func:`~torch.nn.utils.fusion.fuse_conv_bn_weights` (its bias is
  ``(b - mu) * rsqrt(var + eps) * gamma + beta``), in the same order, so for float64 inputs the
  results are bit for bit the ones torch computes;
- **before** a Linear or conv layer (:func:`fold_bn_before`): with ``t = beta - mu s``,
  ``W' = W diag(s)`` (each input column, or input channel: every kernel position of it) and
  ``b' = b + W t`` (for a conv, ``t`` summed over every kernel position). Exact for a Linear and
  for a conv without padding; a zero-padded conv pads *after* the BN, so the border windows
  would see ``t`` where the real network sees 0: there the BN stays its own layer;
- **alone** (:func:`bn_scale_shift`): ``a = s`` and ``b = beta - mu s``, the scale-and-shift
  layer ``y = a x + b``.

The same functions fold with batch statistics during QAT and with running statistics at export,
so the trained and the exported parameters come from one formula.
"""

import torch

from .quant import non_finite

__all__ = ["fold_bn_after", "fold_linear_bn", "fold_conv_bn", "fold_bn_before",
           "bn_scale_shift", "bn_affine", "weighted_parameters", "linear_parameters",
           "check_bn_statistics", "check_parameters", "fold_modules"]

F64 = torch.float64


def _bn_tensors(mean, var, gamma, beta):
    mean, var = mean.to(F64), var.to(F64)
    gamma = torch.ones_like(mean) if gamma is None else gamma.to(F64)
    beta = torch.zeros_like(mean) if beta is None else beta.to(F64)
    return mean, var, gamma, beta


def fold_bn_after(weight, bias, mean, var, gamma, beta, eps, *, conv=False):
    """Fold a BatchNorm that follows a Linear or conv layer into ``(W', b')``, in float64.

    Parameters
    ----------
    weight : torch.Tensor, shape (out, in) or (out, in, *kernel)
    bias : torch.Tensor of shape (out,), or None
    mean, var : torch.Tensor, shape (out,)
        Statistics (running ones in eval mode, batch ones while training).
    gamma, beta : torch.Tensor of shape (out,), or None
        Affine parameters of the batch norm; ``None`` (``affine=False``) means 1 and 0.
    eps : float
    conv : bool
        Compute the bias in the order of ``fuse_conv_bn_weights`` instead of
        ``fuse_linear_bn_weights``.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``W'`` shaped like ``weight`` and ``b'`` of shape (out,), float64. Gradients flow to
        every input that requires them.
    """
    mean, var, gamma, beta = _bn_tensors(mean, var, gamma, beta)
    weight = weight.to(F64)
    bias = torch.zeros_like(mean) if bias is None else bias.to(F64)
    rsqrt = torch.rsqrt(var + eps)
    scale = gamma * rsqrt
    folded = weight * scale.reshape(-1, *[1] * (weight.dim() - 1))
    if conv:
        return folded, (bias - mean) * rsqrt * gamma + beta
    return folded, (bias - mean) * scale + beta


def fold_linear_bn(weight, bias, mean, var, gamma, beta, eps):
    """:func:`fold_bn_after` for a Linear layer."""
    return fold_bn_after(weight, bias, mean, var, gamma, beta, eps)


def fold_conv_bn(weight, bias, mean, var, gamma, beta, eps):
    """:func:`fold_bn_after` for a conv layer."""
    return fold_bn_after(weight, bias, mean, var, gamma, beta, eps, conv=True)


def bn_scale_shift(mean, var, gamma, beta, eps):
    """The BatchNorm as ``y = a x + b`` per channel: ``(a, b)`` in float64."""
    mean, var, gamma, beta = _bn_tensors(mean, var, gamma, beta)
    scale = gamma * torch.rsqrt(var + eps)
    return scale, beta - mean * scale


def fold_bn_before(weight, bias, mean, var, gamma, beta, eps):
    """Fold a BatchNorm that comes before a Linear or (unpadded) conv layer, in float64.

    Parameters
    ----------
    weight : torch.Tensor, shape (out, channels, *rest)
        The layer's weight with its input channels on axis 1: a Linear's ``(out, in)``, a
        conv's ``(out, in, *kernel)``, or a Linear after a flatten of ``(C, L)`` viewed as
        ``(out, C, L)``.
    bias : torch.Tensor of shape (out,), or None
    mean, var, gamma, beta, eps
        Of the BatchNorm over the ``channels``, as for :func:`fold_bn_after`.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``W' = W diag(s)`` shaped like ``weight``, ``b' = b + W t`` of shape (out,).
    """
    scale, shift = bn_scale_shift(mean, var, gamma, beta, eps)
    weight = weight.to(F64)
    bias = torch.zeros(weight.shape[0], dtype=F64) if bias is None else bias.to(F64)
    axes = [1] * (weight.dim() - 2)
    folded = weight * scale.reshape(1, -1, *axes)
    return folded, bias + (weight * shift.reshape(1, -1, *axes)).flatten(1).sum(dim=1)


def bn_affine(bn):
    """``(gamma, beta)`` of a BatchNorm, or ``(None, None)`` without ``affine``."""
    return (bn.weight, bn.bias) if bn.affine else (None, None)


def weighted_parameters(module):
    """``(W, b)`` of an ``nn.Linear`` or ``nn.ConvNd`` in float64; a missing bias is zeros.

    Gradients flow to the parameters (use ``torch.no_grad()`` where none are wanted).
    """
    weight = module.weight.to(F64)
    if module.bias is None:
        return weight, torch.zeros(weight.shape[0], dtype=F64)
    return weight, module.bias.to(F64)


#: The same, under its name from when only Linear layers were folded.
linear_parameters = weighted_parameters


def check_bn_statistics(bn, where):
    """Raise a ValueError if ``bn``'s running statistics or affine parameters are unusable.

    Parameters
    ----------
    bn : torch.nn.BatchNorm1d or torch.nn.BatchNorm2d
    where : str
        Names the layer in the message, e.g. ``"module 1 (BatchNorm1d)"``.

    Raises
    ------
    ValueError
        If the module tracks no running statistics, or a running mean, running variance,
        weight or bias is NaN or infinite, or a running variance is negative.
    """
    kind = type(bn).__name__
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{where}: {kind} has no running statistics "
                         f"(track_running_stats=False); it cannot be folded")
    tensors = [("running_mean", bn.running_mean), ("running_var", bn.running_var)]
    if bn.affine:
        tensors += [("weight", bn.weight), ("bias", bn.bias)]
    for name, tensor in tensors:
        tensor = tensor.detach()
        bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            index = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"{where}: {kind} {name} is not finite "
                             f"({float(tensor[index])} at feature {index}); retrain or "
                             f"recalibrate the statistics")
    negative = bn.running_var.detach() < 0
    if bool(negative.any()):
        index = int(torch.nonzero(negative)[0, 0])
        raise ValueError(f"{where}: {kind} running_var is negative "
                         f"({float(bn.running_var[index])} at feature {index})")


def check_parameters(module, where, key):
    """Raise a ValueError if a parameter of ``module`` is NaN or infinite.

    Parameters
    ----------
    module : torch.nn.Module
    where : str
        Names the layer, e.g. ``"module 3 (Linear)"``.
    key : str
        The module's name in the model (``"3"``, ``"1.linear"``): the message gives the
        parameter's ``state_dict`` key.

    Raises
    ------
    ValueError
        ``"module 3 (Linear): parameter '3.weight' is not finite (nan at index (1, 2))"``.
    """
    for name, tensor in module.named_parameters():
        found = non_finite(tensor)
        if found is not None:
            value, at = found
            raise ValueError(f"{where}: parameter '{key}.{name}' is not finite ({value}{at}); "
                             f"retrain or repair the model")


def fold_modules(layer, bn, where="layer"):
    """Fold an ``nn.Linear`` or ``nn.ConvNd`` and the BatchNorm after it (running
    statistics), in float64.

    Raises
    ------
    ValueError
        If the sizes differ or the statistics are not finite (see
        :func:`check_bn_statistics`).
    """
    outputs = layer.weight.shape[0]
    if bn.num_features != outputs:
        raise ValueError(f"{where}: {type(bn).__name__} has {bn.num_features} features, but the "
                         f"{type(layer).__name__} before it has {outputs} outputs")
    check_bn_statistics(bn, where)
    with torch.no_grad():
        return fold_bn_after(layer.weight, layer.bias, bn.running_mean, bn.running_var,
                             *bn_affine(bn), bn.eps, conv=not isinstance(layer, torch.nn.Linear))
