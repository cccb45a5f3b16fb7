"""The outline every layer engine shares: a stream component that elaborates one plan."""

from amaranth.hdl import signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .targets import check_arch
from .unused import rejecting

__all__ = ["PlannedBlock"]


class PlannedBlock(wiring.Component):
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

    #: The plan class the engine elaborates; set by each subclass.
    PLAN = None

    def __init__(self, plan, *, arch="auto"):
        with rejecting(self):
            if not isinstance(plan, self.PLAN):
                raise TypeError(f"Plan must be a {self.PLAN.__name__}, not {plan!r}")
            self._arch = check_arch(arch)
        self._plan = plan
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(plan.in_width), plan.in_lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(plan.out_width), plan.out_lanes))),
        })

    @property
    def plan(self):
        """The plan this engine elaborates."""
        return self._plan

    @property
    def arch(self):
        return self._arch
