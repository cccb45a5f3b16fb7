"""The outline every block shares: a stream component that elaborates one plan.

:class:`PlanComponent` checks the plan and builds the ``i``/``o`` streams from it;
:class:`PlannedBlock` adds the primitives (``arch``) of an engine with multipliers.
"""

from amaranth.hdl import signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .targets import check_arch
from .unused import rejecting

__all__ = ["PlanComponent", "PlannedBlock"]


class PlanComponent(wiring.Component):
    """A stream component that elaborates a plan of the class :attr:`PLAN`.

    Parameters
    ----------
    plan
        An instance of the subclass's :attr:`PLAN`.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(in_shape, plan.in_lanes)))``
    o : ``Out(stream.Signature(data.ArrayLayout(out_shape, plan.out_lanes)))``
        The shapes of one element are :meth:`stream_shapes` of the plan.

    Raises
    ------
    TypeError
        If ``plan`` is not a :attr:`PLAN`.
    """

    #: The plan class the component elaborates; set by each subclass.
    PLAN = None

    def __init__(self, plan):
        with rejecting(self):
            if not isinstance(plan, self.PLAN):
                raise TypeError(f"Plan must be a {self.PLAN.__name__}, not {plan!r}")
            self._check_arguments()
        self._plan = plan
        in_shape, out_shape = self.stream_shapes(plan)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(in_shape, plan.in_lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(out_shape, plan.out_lanes))),
        })

    @staticmethod
    def stream_shapes(plan):
        """``(in_shape, out_shape)`` of one element: ``signed(plan.in_width)`` and
        ``signed(plan.out_width)``."""
        return signed(plan.in_width), signed(plan.out_width)

    def _check_arguments(self):
        """Check the subclass's other constructor arguments (inside :func:`rejecting`)."""

    @property
    def plan(self):
        """The plan this component elaborates."""
        return self._plan


class PlannedBlock(PlanComponent):
    """A layer engine: elaborates a plan of the class :attr:`PLAN` with the primitives of an
    ``arch``.

    Parameters
    ----------
    plan
        An instance of the subclass's :attr:`PLAN`.
    arch : str or Target
        Which primitives to build: one of :data:`~amaranth_nn.targets.ARCHES` or a
        :class:`~amaranth_nn.targets.Target`.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(plan.in_width), plan.in_lanes)))``
    o : ``Out(stream.Signature(data.ArrayLayout(signed(plan.out_width), plan.out_lanes)))``

    Raises
    ------
    TypeError
        If ``plan`` is not a :attr:`PLAN` or ``arch`` is neither a name nor a Target.
    ValueError
        If ``arch`` is an unknown name.
    """

    def __init__(self, plan, *, arch="auto"):
        self._arch = arch
        super().__init__(plan)

    def _check_arguments(self):
        self._arch = check_arch(self._arch)

    @property
    def arch(self):
        return self._arch
