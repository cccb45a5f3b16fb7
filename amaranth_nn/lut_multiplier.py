"""Multipliers built from logic: a shift-and-add of partial products, for parts whose DSP blocks
run out.

A layer whose plan says ``lut_multipliers`` (see
:class:`~amaranth_nn.network_plan.NetworkPlan`) gets its products from :func:`lut_products`
instead of the target's DSP blocks, with the same timing: each product in a register two cycles
after its operands. The synthesis tool sees only additions and selections, so no DSP block is
inferred, on any family.

The product ``x * w`` is the sum over the bits ``w[i]`` of the narrower operand of ``x << i``
(the sign bit of a signed ``w`` weighing ``-2**(n-1)``). The first cycle registers the sums of
pairs of partial products, the second adds those pairs up.
"""

from amaranth.hdl import Mux, Signal, signed

__all__ = ["lut_products", "partial_products"]


def partial_products(x, w):
    """The terms whose sum is ``x * w``: one per bit of ``w``, ``x << i`` where ``w[i]`` is
    set, negated for the sign bit of a signed ``w`` (Amaranth values, exact widths)."""
    terms = []
    top = len(w) - 1
    for i in range(len(w)):
        shifted = x.as_signed() << i if x.shape().signed else x << i
        if w.shape().signed and i == top:
            terms.append(Mux(w[i], -shifted, 0))
        else:
            terms.append(Mux(w[i], shifted, 0))
    return terms


def _product(m, x, w, product, name):
    """``product <= x * w`` two cycles after ``x`` and ``w``: pair sums, then their sum."""
    if len(w) > len(x):
        x, w = w, x
    terms = partial_products(x, w)
    pairs = []
    for n in range(0, len(terms), 2):
        pair_value = terms[n] + terms[n + 1] if n + 1 < len(terms) else terms[n]
        pair = Signal(signed(len(x) + len(w) + 1), name=f"{name}_pair{n // 2}")
        m.d.sync += pair.eq(pair_value)
        pairs.append(pair)
    total = pairs[0]
    for pair in pairs[1:]:
        total = total + pair
    m.d.sync += product.eq(total)


def lut_products(m, plan, xs, ws, name="mult"):
    """``products[p][k] = xs[k] * ws[p][k]`` from logic, in registers two cycles later.

    The arguments and the result are those of :meth:`amaranth_nn.targets.Target.multiply`.
    A pair sum of partial products can exceed the product (the sign bit's term is large), so
    the pair registers are as wide as any product of the operand shapes.
    """
    products = []
    for p, row in enumerate(ws):
        products.append([])
        for k, w in enumerate(row):
            x_op = Signal(plan.x_shape, name=f"{name}_x_{p}_{k}")
            w_op = Signal(plan.w_shape, name=f"{name}_w_{p}_{k}")
            m.d.comb += [x_op.eq(xs[k]), w_op.eq(w)]
            prod = Signal(signed(plan.product_width), name=f"prod_{p}_{k}")
            _product(m, x_op, w_op, prod, f"{name}_{p}_{k}")
            products[p].append(prod)
    return products
