"""Board support: platforms, clocks and the UART harness around an amaranth-nn network.

:data:`BOARDS` maps each ``--board`` name of ``python -m amaranth_nn.build`` to its
:class:`~boards.board.Board`; one small module per board holds the details.
"""

from .arty_a7 import ARTY_A7_35, ARTY_A7_100
from .board import Board
from .icebreaker import ICEBREAKER
from .ulx3s import ULX3S_85F

__all__ = ["Board", "BOARDS", "get_board"]

BOARDS = {board.name: board for board in (ARTY_A7_35, ARTY_A7_100, ICEBREAKER, ULX3S_85F)}


def get_board(name):
    """The :class:`Board` called ``name``.

    Raises
    ------
    ValueError
        If there is no such board; the message lists the known boards.
    """
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown board {name!r}; known boards: "
                         f"{', '.join(BOARDS)}") from None
