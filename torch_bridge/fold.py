"""Folding of ``Linear -> BatchNorm1d`` into one linear layer, in float64.

``W' = gamma * W / sqrt(var + eps)`` and ``b' = gamma * (b - mu) / sqrt(var + eps) + beta``.

The operations are those of :func:`torch.nn.utils.fusion.fuse_linear_bn_weights`, in the same
order (``scale = gamma * rsqrt(var + eps)``, ``W' = W * scale``, ``b' = (b - mu) * scale +
beta``), so for float64 inputs the result is bit for bit the one torch computes. The same
function folds with batch statistics during QAT and with running statistics at export, so the
trained and the exported folded parameters come from one formula.
"""

import torch

from .quant import non_finite

__all__ = ["fold_linear_bn", "fold_modules", "check_bn_statistics", "check_parameters",
           "linear_parameters"]


def fold_linear_bn(weight, bias, mean, var, gamma, beta, eps):
    """Fold a linear layer and batch-norm statistics into ``(W', b')``, in float64.

    Parameters
    ----------
    weight : torch.Tensor, shape (out, in)
    bias : torch.Tensor of shape (out,), or None
    mean, var : torch.Tensor, shape (out,)
        Statistics (running ones in eval mode, batch ones while training).
    gamma, beta : torch.Tensor of shape (out,), or None
        Affine parameters of the batch norm; ``None`` (``affine=False``) means 1 and 0.
    eps : float

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``W'`` of shape (out, in) and ``b'`` of shape (out,), float64. Gradients flow to
        every input that requires them.
    """
    f64 = torch.float64
    weight = weight.to(f64)
    mean, var = mean.to(f64), var.to(f64)
    bias = torch.zeros_like(mean) if bias is None else bias.to(f64)
    gamma = torch.ones_like(mean) if gamma is None else gamma.to(f64)
    beta = torch.zeros_like(mean) if beta is None else beta.to(f64)
    scale = gamma * torch.rsqrt(var + eps)
    return weight * scale.unsqueeze(-1), (bias - mean) * scale + beta


def linear_parameters(linear):
    """``(W, b)`` of an ``nn.Linear`` in float64; a missing bias is zeros.

    Gradients flow to the parameters (use ``torch.no_grad()`` where none are wanted).
    """
    weight = linear.weight.to(torch.float64)
    if linear.bias is None:
        return weight, torch.zeros(linear.out_features, dtype=torch.float64)
    return weight, linear.bias.to(torch.float64)


def check_bn_statistics(bn, where):
    """Raise a ValueError if ``bn``'s running statistics or affine parameters are unusable.

    Parameters
    ----------
    bn : torch.nn.BatchNorm1d
    where : str
        Names the layer in the message, e.g. ``"module 1 (BatchNorm1d)"``.

    Raises
    ------
    ValueError
        If the module tracks no running statistics, or a running mean, running variance,
        weight or bias is NaN or infinite, or a running variance is negative.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{where}: BatchNorm1d has no running statistics "
                         f"(track_running_stats=False); it cannot be folded")
    tensors = [("running_mean", bn.running_mean), ("running_var", bn.running_var)]
    if bn.affine:
        tensors += [("weight", bn.weight), ("bias", bn.bias)]
    for name, tensor in tensors:
        tensor = tensor.detach()
        bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            index = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"{where}: BatchNorm1d {name} is not finite "
                             f"({float(tensor[index])} at feature {index}); retrain or "
                             f"recalibrate the statistics")
    negative = bn.running_var.detach() < 0
    if bool(negative.any()):
        index = int(torch.nonzero(negative)[0, 0])
        raise ValueError(f"{where}: BatchNorm1d running_var is negative "
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


def fold_modules(linear, bn, where="layer"):
    """Fold an ``nn.Linear`` and an ``nn.BatchNorm1d`` (running statistics), in float64.

    Raises
    ------
    ValueError
        If the sizes differ or the statistics are not finite (see
        :func:`check_bn_statistics`).
    """
    if bn.num_features != linear.out_features:
        raise ValueError(f"{where}: BatchNorm1d has {bn.num_features} features, but the "
                         f"Linear before it has {linear.out_features} outputs")
    check_bn_statistics(bn, where)
    with torch.no_grad():
        return fold_linear_bn(linear.weight, linear.bias, bn.running_mean, bn.running_var,
                              bn.weight if bn.affine else None,
                              bn.bias if bn.affine else None, bn.eps)
