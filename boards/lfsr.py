"""Galois linear-feedback shift registers: cycle counters without adders or carry chains.

A ``width``-bit Galois LFSR steps its state ``s`` to ``s * x`` modulo a primitive polynomial
of degree ``width`` over GF(2). From the state 1 it runs through all ``2**width - 1`` nonzero
states before it repeats, so it counts up to that many cycles with ``width`` flip-flops and an
XOR per tap: the state after ``k`` steps is ``x**k`` modulo the polynomial
(:func:`state_after`), and "``k`` cycles have passed" is an equality test against it.
"""

from amaranth.hdl import Cat

__all__ = ["POLYNOMIALS", "lfsr_width", "state_after", "lfsr_next"]

#: A primitive polynomial over GF(2) for each width from 2 to 40, bit ``i`` the coefficient of
#: ``x**i``: a trinomial where one exists, else a pentanomial (the first found, in order of the
#: middle exponents). ``tests/boards/test_lfsr.py`` checks that each is primitive.
POLYNOMIALS = {
    2: 0x7, 3: 0xb, 4: 0x13, 5: 0x25, 6: 0x43, 7: 0x83, 8: 0x187, 9: 0x211, 10: 0x409,
    11: 0x805, 12: 0x1107, 13: 0x2027, 14: 0x5007, 15: 0x8003, 16: 0x1100b, 17: 0x20009,
    18: 0x40081, 19: 0x80027, 20: 0x100009, 21: 0x200005, 22: 0x400003, 23: 0x800021,
    24: 0x1000087, 25: 0x2000009, 26: 0x4000047, 27: 0x8000027, 28: 0x10000009,
    29: 0x20000005, 30: 0x40800007, 31: 0x80000009, 32: 0x100400007, 33: 0x200002001,
    34: 0x408000007, 35: 0x800000005, 36: 0x1000000801, 37: 0x2000000207, 38: 0x400000200b,
    39: 0x8000000011, 40: 0x10800000007,
}


def lfsr_width(steps):
    """The narrowest width whose LFSR counts ``steps`` steps without repeating a state.

    Raises
    ------
    ValueError
        If ``steps`` is negative or needs more than 40 bits.
    """
    if steps < 0:
        raise ValueError(f"Steps must be non-negative, not {steps}")
    for width in POLYNOMIALS:
        if steps < (1 << width) - 1:
            return width
    raise ValueError(f"{steps} steps need an LFSR wider than {max(POLYNOMIALS)} bits")


def _times_x(state, width):
    state <<= 1
    return state ^ POLYNOMIALS[width] if state >> width else state


def _multiply(a, b, width):
    """``a * b`` modulo the polynomial of ``width``, both states."""
    product = 0
    for bit in range(width):
        if b >> bit & 1:
            product ^= a
        a = _times_x(a, width)
    return product


def state_after(width, steps):
    """The state of the ``width``-bit LFSR ``steps`` steps after the state 1: ``x**steps``."""
    result, power = 1, 2
    while steps:
        if steps & 1:
            result = _multiply(result, power, width)
        power = _multiply(power, power, width)
        steps >>= 1
    return result


def lfsr_next(state):
    """The next state of an LFSR held in the Amaranth value ``state`` (its width in
    :data:`POLYNOMIALS`), as an expression: a shift, and an XOR at each tap."""
    width = len(state)
    polynomial = POLYNOMIALS[width]
    top = state[width - 1]
    return Cat(top, *(state[i - 1] ^ top if polynomial >> i & 1 else state[i - 1]
                      for i in range(1, width)))
