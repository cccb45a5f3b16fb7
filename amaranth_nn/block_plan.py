"""What every plan of one layer's block checks first: the spec, the index and the layer's kind.

:class:`~amaranth_nn.scale_plan.ScalePlan` and the pooling plans
(:mod:`amaranth_nn.pool_plan`) take ``(spec, index)`` as :class:`~amaranth_nn.plan.DensePlan`
does, and raise the same errors for a bad spec or index; :class:`LanesPlan` is what they share.
"""

from .plan import LayerPlan, check_count
from .spec import check_spec

__all__ = ["layer_at", "where_of", "LanesPlan"]


def where_of(spec, index):
    """``"layer 3 ('pool0')"``: how errors name layer ``index`` of ``spec``."""
    return f"layer {index} ({spec.layers[index].name!r})"


def layer_at(spec, index, kinds):
    """Layer ``index`` of ``spec``, checked to be of one of ``kinds``.

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec or ``index`` is not an integer.
    ValueError
        If ``index`` is out of range, or the layer is of another kind:
        ``"Layer 0 ('dense0') is a dense layer, not a maxpool or avgpool layer"``.
    """
    check_spec(spec)
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"Layer index must be an integer, not {index!r}")
    if not 0 <= index < len(spec.layers):
        raise ValueError(f"Layer index must be from 0 to {len(spec.layers) - 1}, not {index}")
    layer = spec.layers[index]
    if layer.kind not in kinds:
        raise ValueError(f"{where_of(spec, index).capitalize()} is a {layer.kind} layer, not a "
                         f"{' or '.join(kinds)} layer")
    return layer


class LanesPlan(LayerPlan):
    """A block of one layer of :attr:`KINDS` whose lanes in equal its lanes out (pooling,
    scale-and-shift): ``lanes`` channels per beat.

    Parameters
    ----------
    spec : NetworkSpec
    index : int
        Which layer of ``spec``.
    lanes : int
        Channels per beat, 1 to the layer's channels.

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec, or ``index`` or ``lanes`` is not an integer.
    ValueError
        If ``index`` or ``lanes`` is out of range, or the layer is of another kind (the
        message names the layer).
    """

    #: The layer kinds of the block; set by each subclass.
    KINDS = ()

    def __init__(self, spec, index, *, lanes):
        layer = layer_at(spec, index, self.KINDS)
        check_count("Lanes", lanes, layer.input_shape[-1],
                    f"the channels of {where_of(spec, index)}")
        self._spec, self._index, self._layer, self._lanes = spec, index, layer, lanes

    @property
    def kind(self):
        return self._layer.kind

    @property
    def lanes(self):
        return self._lanes

    @property
    def in_lanes(self):
        return self._lanes

    @property
    def out_lanes(self):
        return self._lanes

    @property
    def channels(self):
        """Channels per position, the last axis of the layer's shape."""
        return self._layer.input_shape[-1]
