"""The pipelined fixed-point dense engine, and the stream blocks a network is made of.

:class:`DenseLayer` computes one layer of a :class:`~amaranth_nn.spec.NetworkSpec` with ``pe``
output neurons in parallel, each taking ``simd`` inputs per cycle (a matrix-vector unit).
:class:`WidthConverter` regroups a vector's elements from one number of lanes per beat to
another; :class:`~amaranth_nn.network.Network` inserts it where a layer's ``pe`` differs from
the next layer's ``simd``.

Both blocks are free-running pipelines: no stall signal fans out to the datapath registers.
The dense engine issues one weight word per cycle whenever its input is present and its output
FIFO has room for the result (credit counting), so backpressure never reaches the multipliers.
"""

from amaranth import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .fixedpoint import signed_width
from .spec import NetworkSpec

__all__ = ["DenseLayer", "WidthConverter", "ceil_div", "BLOCK_ROM_BITS", "ARCHES"]

#: Architectures the primitives can be built for:
#:
#: - ``"generic"``: multipliers are ``x * w`` between registers, for the synthesis tool to map
#:   to DSP48E1 / MULT18X18D / SB_MAC16; ROMs of :data:`BLOCK_ROM_BITS` or more ask for block
#:   RAM.
#: - ``"ecp5"``: multipliers are ``MULT18X18D`` instances with their input and output registers
#:   enabled, and ROMs are LUT logic. nextpnr times yosys' inferred MULT18X18D as combinational
#:   between fabric registers and DP16KD block RAM with a 5.8 ns clock-to-output, which limits
#:   a design to about 110-150 MHz; this style reaches 200 MHz and more.
#: - ``"auto"``: ``"ecp5"`` when elaborated for a platform whose ``family`` is ``"ecp5"``,
#:   ``"generic"`` otherwise (including simulation).
ARCHES = ("auto", "generic", "ecp5")

#: ROMs of at least this many bits ask for block RAM (``rom_style = "block"``); smaller ones are
#: left to the synthesis tool, which puts them into LUTs.
BLOCK_ROM_BITS = 2048

#: Cycles from a memory address to its data in a register. For ``"ecp5"``: an address
#: register (a plain copy, so that yosys has no adder to fold into the LUT ROM), the ROM or LUT
#: RAM between two flip-flops, and one more register so that placement can put the data
#: register next to the ROM and the next one next to the DSP. For ``"generic"``: a synchronous
#: read and two data registers (block RAM can absorb one as its output register).
_MEMORY_STAGES = 3

#: Pipeline registers of the width converter's read side: (bank, beat) numbers, the beat's
#: lanes of both banks, the bank's lanes.
_CONVERTER_STAGES = 3

#: FIFO read latency of :class:`~amaranth.lib.fifo.SyncFIFOBuffered`: an entry written at cycle
#: ``t`` can be read at cycle ``t + 2``.
_FIFO_LATENCY = 2


def ceil_div(a, b):
    """``ceil(a / b)`` for positive integers."""
    return -(-a // b)


def _check_count(name, value, limit, what):
    """Validate ``pe``/``simd``-style arguments: an integer from 1 to ``limit``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value > limit:
        raise ValueError(f"{name} must be at most {limit} ({what}), not {value}")


def _operand_shape(lo, hi):
    """Smallest shape holding every integer in ``[lo, hi]``: unsigned when ``lo >= 0``."""
    if lo >= 0:
        return unsigned(max(1, int(hi).bit_length()))
    return signed(signed_width(lo, hi))


#: When true, :func:`_ecp5_multiplier` builds a behavioural model of the registered MULT18X18D
#: (input registers, signed 18x18 product, output register) instead of the instance, so that
#: the tests can simulate everything else of the ``"ecp5"`` architecture (LUT ROMs, register
#: placement, operand extension, product slicing). Never set outside tests.
_MODEL_ECP5_PRIMITIVES = False


def _ecp5_multiplier(m, a, b, product, name):
    """``product <= a * b`` two cycles later, in a MULT18X18D with input and output registers.

    ``a`` and ``b`` are signed values of at most 18 bits (sign-extended here to 18).
    """
    a18, b18, p36 = Signal(signed(18)), Signal(signed(18)), Signal(signed(36))
    m.d.comb += [a18.eq(a), b18.eq(b), product.eq(p36)]
    if _MODEL_ECP5_PRIMITIVES:
        a_reg = Signal(signed(18), name=f"{name}_a")
        b_reg = Signal(signed(18), name=f"{name}_b")
        m.d.sync += [a_reg.eq(a18), b_reg.eq(b18), p36.eq(a_reg * b_reg)]
        return
    ports = {}
    for n in range(18):
        ports[f"i_A{n}"] = a18[n]
        ports[f"i_B{n}"] = b18[n]
        ports[f"i_C{n}"] = Const(0, 1)
    for n in range(36):
        ports[f"o_P{n}"] = p36[n]
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE", p_GSR="DISABLED",
        p_RESETMODE="SYNC", p_CLK0_DIV="ENABLED", p_SOURCEB_MODE="B_SHIFT",
        p_MULT_BYPASS="DISABLED", p_CAS_MATCH_REG="FALSE", p_HIGHSPEED_CLK="NONE",
        i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1),
        i_SOURCEB=Const(0, 1), i_CLK0=ClockSignal(), i_CE0=Const(1, 1), i_RST0=Const(0, 1),
        **ports)


def _read(m, memory, addr, arch, name):
    """Read ``memory`` at ``addr``; the data is in a register :data:`_MEMORY_STAGES` cycles later.

    For ``"generic"`` the read is a synchronous read port, which block RAM needs. For ``"ecp5"``
    it is an asynchronous port followed by registers, so that yosys keeps the register on the
    data (LUT RAM between two flip-flops) instead of moving it to the address.
    """
    if arch == "ecp5":
        port = memory.read_port(domain="comb")
        m.d.comb += port.addr.eq(_delay(m, addr, 1, f"{name}_addr"))
    else:
        port = memory.read_port(domain="sync")
        m.d.comb += port.addr.eq(addr)
    return _delay(m, port.data, _MEMORY_STAGES - 1, name)


def _delay(m, value, cycles, name, init=0):
    """``value`` through ``cycles`` registers (the first one with reset value ``init``)."""
    for n in range(cycles):
        stage = Signal(len(value), name=f"{name}_{n}", init=init if n == 0 else 0)
        m.d.sync += stage.eq(value)
        value = stage
    return value


def _rom_read(m, words, width, addr, arch, name, copy=0):
    """Read a ROM of ``words`` at ``addr``; the data is in a register :data:`_MEMORY_STAGES`
    cycles later.

    For ``"generic"`` the ROM is a :class:`Memory` (block RAM when large). For ``"ecp5"`` it is
    a tree of multiplexers between constants, which yosys reduces to LUT logic of the address
    bits: nextpnr times ECP5 block RAM with a 5.8 ns clock-to-output, and yosys has no
    distributed ROM mapping for ECP5 (its inferred LUT ROMs go through a subtractor).

    The ``"ecp5"`` ROM has its own address register, whose reset value is ``copy`` (modulo the
    depth): ROMs read at the same address with different ``copy`` numbers get separate address
    registers (yosys merges identical flip-flops), which divides the address fanout. The
    address during reset does not matter, as no valid token is in the pipeline then.
    """
    if arch != "ecp5":
        memory = _rom(words, width)
        m.submodules[name] = memory
        return _read(m, memory, addr, arch, f"{name}_data")
    addr = _delay(m, addr, 1, f"{name}_addr", init=copy % (1 << len(addr)))
    level = [Const(word, width) for word in words]
    bit = 0
    while len(level) > 1:
        level = [Mux(addr[bit], level[n + 1], level[n]) if n + 1 < len(level) else level[n]
                 for n in range(0, len(level), 2)]
        bit += 1
    return _delay(m, level[0], _MEMORY_STAGES - 1, f"{name}_data")


def _signed_bits(shape):
    """Bits of the signed shape that holds every value of ``shape``."""
    return shape.width + (0 if shape.signed else 1)


def _rom(words, width):
    """A read-only :class:`Memory` holding ``words`` (non-negative ints of ``width`` bits)."""
    if len(words) * width >= BLOCK_ROM_BITS:
        attrs = {"rom_style": "block"}
    else:
        attrs = None
    return Memory(shape=unsigned(width), depth=len(words), init=words, attrs=attrs)


class _PingPong:
    """Control of a two-bank vector buffer: a writer fills one bank while a reader uses the other.

    A vector is ``beats`` beats. The writer writes beat ``w_beat`` of its vector into bank
    ``w_bank``; the reader works on bank ``r_bank`` and pulses ``r_done`` in the cycle it is
    finished with its vector. ``used1`` and ``used2`` tell whether one or two vectors have been
    started by the writer and not finished by the reader. :meth:`written` tells the reader
    whether a beat of its vector has arrived, so that it can start before the whole vector is
    in (streaming). All flags are registers, computed from the next state, to keep the logic
    between flip-flops shallow.
    """

    def __init__(self, beats):
        self.beats = beats
        self.w_beat = Signal(range(beats))
        self.w_bank = Signal()
        self.r_bank = Signal()
        self.used1 = Signal()
        self.used2 = Signal()
        self.differ = Signal()  # w_bank != r_bank
        self.w_ready = Signal(init=1)
        self.w_en = Signal()    # driven by the owner: a beat is written in this cycle
        self.r_done = Signal()  # driven by the owner: the reader finishes its vector

    @property
    def w_addr(self):
        """Buffer address of the beat being written: ``Cat(w_beat, w_bank)``."""
        return Cat(self.w_beat, self.w_bank)

    def r_addr(self, beat):
        """Buffer address of ``beat`` of the reader's vector."""
        return Cat(beat, self.r_bank)

    @property
    def depth(self):
        """Words a buffer memory addressed by :attr:`w_addr` needs."""
        return 2 << len(self.w_beat)

    def written(self, beat):
        """Whether ``beat`` of the reader's vector has been written (a value, or an int)."""
        if isinstance(beat, int) and beat == 0:
            beat_in = self.w_beat != 0
        else:
            beat_in = self.w_beat > beat
        return self.used2 | (self.used1 & (self.differ | beat_in))

    def ahead(self, m, go, last, done):
        """A registered :meth:`written` for a reader that issues its vector's beats in order.

        The reader is at ``beat`` and moves on when ``go``; ``last`` (beat ``beats - 1``) and
        ``done`` (the reader's last pass over the vector) are its registered flags, and the
        owner drives ``r_done = go & last & done``. Returns ``written(beat)`` as the OR of two
        flip-flops, so that the reader's issue condition is one LUT of registers.

        It is bit 0 of a thermometer ``t[k] | x[k] = written(beat + k)``: the beats of a vector
        are written in order and the reader never passes the writer, so a write into the
        reader's vector sets the first zero bit, a step shifts the bits down, a new pass over
        the same vector sets every bit, and a new vector takes the count of its beats written so
        far. ``x`` holds what the previous cycle's write set and ``t`` the rest, so that
        ``w_en``, which comes from the upstream block, only feeds ``x``.
        """
        beats = self.beats
        t = [Signal(name=f"ahead_{k}") for k in range(beats)]
        x = [Signal(name=f"ahead_w{k}") for k in range(beats)]
        have = [t[k] | x[k] for k in range(beats)]
        # A write goes into the reader's vector when the writer is on the reader's bank (with
        # two vectors buffered and the writer there, it is blocked).
        same = ~self.differ
        full = self.used2 & ~self.differ
        for k in range(beats):
            below = have[k - 1] if k else Const(1)
            above = have[k + 1] if k + 1 < beats else Const(0)
            # Without this cycle's write: stay, step down, new pass, or the next vector (when
            # the reader finishes this one, the writer is on the next vector with w_beat beats
            # written, or finished it, or has not started it and w_beat is 0).
            m.d.sync += [
                t[k].eq(Mux(go, Mux(last, Mux(done, full | (self.w_beat > k), 1), above),
                            have[k])),
                x[k].eq(self.w_en & Mux(go, Mux(last, done & (self.w_beat == k),
                                                same & have[k]), same & below)),
            ]
        return have[0]

    def elaborate(self, m):
        wrap = self.w_en & (self.w_beat == self.beats - 1)
        start = self.w_en & (self.w_beat == 0)
        more = start & ~self.r_done
        fewer = ~start & self.r_done
        used0 = ~self.used1 & ~self.used2
        w_beat_next = Signal.like(self.w_beat)
        used2_next = Signal()
        m.d.comb += [
            w_beat_next.eq(Mux(self.w_en, Mux(wrap, 0, self.w_beat + 1), self.w_beat)),
            used2_next.eq(Mux(more, ~used0, Mux(fewer, 0, self.used2))),
        ]
        # w_ready is a register too, so that the upstream block sees a flip-flop.
        m.d.sync += [
            self.w_beat.eq(w_beat_next),
            self.w_bank.eq(self.w_bank ^ wrap),
            self.r_bank.eq(self.r_bank ^ self.r_done),
            self.differ.eq(self.differ ^ wrap ^ self.r_done),
            self.used1.eq(Mux(more, used0, Mux(fewer, self.used2, self.used1))),
            self.used2.eq(used2_next),
            self.w_ready.eq((w_beat_next != 0) | ~used2_next),
        ]


class _CreditQueue:
    """An output FIFO that a free-running pipeline writes into without ever overflowing.

    The pipeline reserves a slot (``take``) when it starts the work for one output beat, and
    only while ``ok`` says a slot is free; the result arrives some cycles later on ``w_en`` /
    ``w_data``. The sink's ``ready`` drives only the FIFO; the credit of a popped beat returns
    a cycle later, from a register. ``depth`` must cover the credit loop for full throughput:
    from ``take`` to the write, plus :data:`_FIFO_LATENCY`, plus 2 cycles (pop, credit).
    """

    def __init__(self, width, depth):
        self.depth = depth
        self.fifo = SyncFIFOBuffered(width=width, depth=depth)
        self.take = Signal()      # driven by the owner
        self.ok = Signal(init=1)  # a slot is free (a register)
        self.w_en = self.fifo.w_en
        self.w_data = self.fifo.w_data

    def elaborate(self, m, stream, name):
        fifo = self.fifo
        m.submodules[name] = fifo
        credit = Signal(range(self.depth + 1), init=self.depth)
        credit_next = Signal.like(credit)
        pop = Signal()
        m.d.comb += [
            stream.valid.eq(fifo.r_rdy),
            stream.payload.eq(fifo.r_data),
            fifo.r_en.eq(stream.ready),
            credit_next.eq(credit - self.take + pop),
        ]
        m.d.sync += [
            pop.eq(fifo.r_rdy & stream.ready),
            credit.eq(credit_next),
            self.ok.eq(credit_next != 0),
        ]


class DenseLayer(wiring.Component):
    """One fixed-point dense layer of a spec, as a pipelined matrix-vector unit.

    Computes ``y = act(requantize(W @ x + b))`` bit-exactly as :func:`amaranth_nn.golden.run`
    does. ``pe`` output neurons are computed in parallel, each taking ``simd`` inputs per cycle,
    so a vector takes ``ii = ceil(M/pe) * ceil(N/simd)`` cycles, with no bubbles in steady state
    (the next vector loads into the other half of a double buffer while this one computes).

    Weights sit in one ROM per PE (``simd`` weights per word, one word per cycle); biases, with
    the rounding constant ``2**(s-1)`` added, in a second ROM, so that requantization is an
    arithmetic shift (``s <= 0`` is an exact left shift). Saturation and the activation are one
    clamp to the layer's output range. Operands, products and accumulators are registered (so
    that yosys maps the multipliers to DSP blocks), and the ``simd``-input adder tree has a
    register per level. Every width is derived from the contents: the input operand from
    :meth:`~amaranth_nn.spec.NetworkSpec.input_range_of` (unsigned after a ReLU), the weights
    from their values, the accumulator from
    :meth:`~amaranth_nn.spec.NetworkSpec.accumulator_range_of` (partial sums wrap harmlessly
    modulo its width; the final value always fits).

    The pipeline runs free: a sequencer issues one ``(group, beat)`` per cycle when the beat has
    arrived and, at the start of a group, a slot of the output FIFO is free (credit counting);
    control tokens travel with the data, and the sink's ``ready`` drives only the FIFO.

    Timing, for an isolated vector whose input beats are transferred at cycles ``a_j``: the last
    input of output group 0 issues at ``s = max_j(a_j + B - j)`` and output beat ``g`` is
    transferred at ``s + g*B + pipeline_depth`` (``B = ceil(N/simd)``, sink ready); see
    :meth:`output_times`.

    Parameters
    ----------
    spec : NetworkSpec
        The network.
    index : int
        Which layer of ``spec`` to build.
    pe : int
        Output neurons computed in parallel, 1 to ``out_features``.
    simd : int
        Inputs taken per neuron per cycle, 1 to ``in_features``.
    arch : str
        Which FPGA primitives to build, one of :data:`ARCHES` (``"auto"``: registered
        ``MULT18X18D`` and LUT ROMs for an ECP5 platform, portable ``x * w`` and
        :class:`~amaranth.lib.memory.Memory` ROMs otherwise). The pipeline and its timing are
        the same for all.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(Wx), simd)))``
        Input vectors, ``ceil(N/simd)`` beats each; lane ``k`` of beat ``b`` is element
        ``b*simd + k``; lanes past ``N`` on the last beat are ignored.
    o : ``Out(stream.Signature(data.ArrayLayout(signed(Wy), pe)))``
        Output vectors, ``ceil(M/pe)`` beats each, in the same order; lanes past ``M`` are zero.

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec, or ``index``, ``pe`` or ``simd`` is not a positive
        integer (``index`` may be 0).
    ValueError
        If ``index``, ``pe`` or ``simd`` is out of range, or ``arch`` is unknown.
    """

    def __init__(self, spec, index, *, pe, simd, arch="auto"):
        if not isinstance(spec, NetworkSpec):
            raise TypeError(f"Spec must be a NetworkSpec, not {spec!r}")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise TypeError(f"Layer index must be a non-negative integer, not {index!r}")
        if index >= len(spec.layers):
            raise ValueError(f"Layer index must be less than {len(spec.layers)} (the number of "
                             f"layers), not {index}")
        layer = spec.layers[index]
        where = f"layer {index} ({layer.name!r})"
        _check_count("Pe", pe, layer.out_features, f"the out_features of {where}")
        _check_count("Simd", simd, layer.in_features, f"the in_features of {where}")
        if arch not in ARCHES:
            raise ValueError(f"Arch must be one of {', '.join(map(repr, ARCHES))}, "
                             f"not {arch!r}")
        self._arch = arch

        self._spec, self._index, self._layer = spec, index, layer
        self._pe, self._simd = pe, simd
        self._beats = ceil_div(layer.in_features, simd)
        self._groups = ceil_div(layer.out_features, pe)
        self._tree_levels = (simd - 1).bit_length()
        # issue -> memory data -> operands -> products -> tree levels -> accumulator -> clamp
        self._fifo_stage = _MEMORY_STAGES + 4 + self._tree_levels
        # A credit taken when a group starts returns B - 1 + fifo_stage + FIFO latency + 2
        # cycles later; that many cycles' worth of groups must fit for the sequencer never to
        # wait (one group every B cycles).
        self._fifo_depth = max(2, ceil_div(self._beats + self._fifo_stage + _FIFO_LATENCY + 1,
                                           self._beats))

        x_lo, x_hi = spec.input_range_of(index)
        self._x_shape = _operand_shape(x_lo, x_hi)
        w = layer.weights
        self._w_shape = _operand_shape(min(int(w.min()), 0), max(int(w.max()), 0))
        self._rounding = 1 << (layer.shift - 1) if layer.shift > 0 else 0
        acc_lo, acc_hi = spec.accumulator_range_of(index)
        acc_lo, acc_hi = acc_lo + self._rounding, acc_hi + self._rounding
        self._acc_width = signed_width(acc_lo, acc_hi)
        products = [int(v) * int(x) for v in (int(w.min()), int(w.max()), 0)
                    for x in (x_lo, x_hi)]
        self._product_width = min(signed_width(min(products), max(products)), self._acc_width)
        if layer.shift > 0:
            self._scaled_range = (acc_lo >> layer.shift, acc_hi >> layer.shift)
        else:
            self._scaled_range = (acc_lo << -layer.shift, acc_hi << -layer.shift)

        in_width = spec.input_format_of(index).width
        out_width = layer.output_format.width
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(in_width), simd))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(out_width), pe))),
        })

    @property
    def spec(self):
        return self._spec

    @property
    def index(self):
        return self._index

    @property
    def pe(self):
        return self._pe

    @property
    def simd(self):
        return self._simd

    @property
    def arch(self):
        return self._arch

    def arch_for(self, platform=None):
        """The architecture used when elaborated for ``platform``: ``"generic"`` or
        ``"ecp5"``; see :data:`ARCHES`."""
        if self._arch == "auto":
            return "ecp5" if getattr(platform, "family", None) == "ecp5" else "generic"
        return self._arch

    @property
    def in_beats(self):
        """Input beats per vector, ``ceil(N/simd)``."""
        return self._beats

    @property
    def out_beats(self):
        """Output beats per vector, ``ceil(M/pe)``."""
        return self._groups

    @property
    def ii(self):
        """Cycles per vector in steady state, ``ceil(M/pe) * ceil(N/simd)``."""
        return self._beats * self._groups

    @property
    def pipeline_depth(self):
        """Cycles from issuing a group's last weight word to its output beat's transfer.

        ``9 + ceil(log2(simd))``: three cycles of memory read, operand, product and accumulator
        registers, one register per adder tree level, the requantization register, and two
        cycles of output FIFO.
        """
        return self._fifo_stage + _FIFO_LATENCY

    @property
    def accumulator_width(self):
        """Width of the accumulators, from the exact accumulator range and rounding constant."""
        return self._acc_width

    @property
    def multipliers(self):
        """Number of multipliers, ``pe * simd``."""
        return self._pe * self._simd

    def output_times(self, arrivals):
        """Transfer cycles of an isolated vector's output beats (sink always ready).

        Parameters
        ----------
        arrivals : sequence of int
            Transfer cycles of the vector's :attr:`in_beats` input beats.

        Returns
        -------
        list of int
            ``s + g*B + pipeline_depth`` for each output beat ``g``, with
            ``s = max_j(arrivals[j] + B - j)``.
        """
        beats = self._beats
        last_issue = max(a + beats - j for j, a in enumerate(arrivals))
        return [last_issue + g * beats + self.pipeline_depth for g in range(self._groups)]

    def weight_words(self, p):
        """The contents of PE ``p``'s weight ROM: word ``g*B + b`` packs
        ``W[g*pe + p, b*simd + k]`` at lane ``k`` (lane 0 in the low bits, two's complement in
        the weight operand width, zero where the indices pass the matrix)."""
        w, pe, simd = self._layer.weights, self._pe, self._simd
        width = self._w_shape.width
        mask = (1 << width) - 1
        words = []
        for g in range(self._groups):
            row = g * pe + p
            for b in range(self._beats):
                word = 0
                if row < w.shape[0]:
                    for k in range(min(simd, w.shape[1] - b * simd)):
                        word |= (int(w[row, b * simd + k]) & mask) << (k * width)
                words.append(word)
        return words

    def bias_words(self):
        """The bias ROM contents: word ``g`` packs ``bias + rounding`` of neurons ``g*pe + p``
        at lane ``p`` in accumulator width (modulo ``2**width``; zero past the last neuron)."""
        bias, pe, width = self._layer.bias, self._pe, self._acc_width
        mask = (1 << width) - 1
        words = []
        for g in range(self._groups):
            word = 0
            for p in range(pe):
                if g * pe + p < len(bias):
                    word |= ((int(bias[g * pe + p]) + self._rounding) & mask) << (p * width)
            words.append(word)
        return words

    def elaborate(self, platform):
        m = Module()
        pe, simd, beats, groups = self._pe, self._simd, self._beats, self._groups
        layer = self._layer
        x_shape, w_shape = self._x_shape, self._w_shape
        acc_width = self._acc_width
        in_width = len(self.i.payload.as_value()) // simd
        out_width = layer.output_format.width
        arch = self.arch_for(platform)

        # Input double buffer: one simd-lane word per beat, the operand bits only.
        buf = _PingPong(beats)
        buf.elaborate(m)
        m.d.comb += [
            self.i.ready.eq(buf.w_ready),
            buf.w_en.eq(self.i.valid & buf.w_ready),
        ]
        x_mem = m.submodules.x_buffer = Memory(
            shape=unsigned(simd * x_shape.width), depth=buf.depth, init=[])
        x_write = x_mem.write_port()
        raw_in = self.i.payload.as_value()
        m.d.comb += [
            x_write.addr.eq(buf.w_addr),
            x_write.en.eq(buf.w_en),
            x_write.data.eq(Cat(raw_in[k * in_width:k * in_width + x_shape.width]
                                for k in range(simd))),
        ]

        # Sequencer: one (group, beat) per cycle, when the beat has arrived and, at the start of
        # a group, the output FIFO has a free slot reserved for the group's result.
        beat = Signal(range(beats))
        group = Signal(range(groups))
        w_addr = Signal(range(beats * groups))
        queue = _CreditQueue(pe * out_width, self._fifo_depth)
        # Flags of the counters, kept as registers (computed from the next state).
        beat_first = Signal(init=1)
        beat_last = Signal(init=beats == 1)
        group_last = Signal(init=groups == 1)
        go = Signal()
        arrived = buf.ahead(m, go, beat_last, group_last)
        m.d.comb += [
            go.eq(arrived & (~beat_first | queue.ok)),
            queue.take.eq(go & beat_first),
            buf.r_done.eq(go & beat_last & group_last),
        ]
        beat_next = Signal.like(beat)
        group_next = Signal.like(group)
        m.d.comb += [
            beat_next.eq(Mux(go, Mux(beat_last, 0, beat + 1), beat)),
            group_next.eq(Mux(go & beat_last, Mux(group_last, 0, group + 1), group)),
        ]
        m.d.sync += [
            beat.eq(beat_next),
            group.eq(group_next),
            beat_first.eq(beat_next == 0),
            beat_last.eq(beat_next == beats - 1),
            group_last.eq(group_next == groups - 1),
        ]
        with m.If(go):
            m.d.sync += w_addr.eq(Mux(w_addr == beats * groups - 1, 0, w_addr + 1))

        x_read = _read(m, x_mem, buf.r_addr(beat), arch, "x_data")
        w_reads = []
        for p in range(pe):
            w_reads.append(_rom_read(m, self.weight_words(p), simd * w_shape.width, w_addr,
                                     arch, f"weights{p}", copy=p))

        # Control tokens travel with the data through the free-running pipeline.
        stages = self._fifo_stage + 1
        valid = [go] + [Signal(name=f"valid_{k}") for k in range(1, stages)]
        last = [beat_last] + [Signal(name=f"last_{k}") for k in range(1, stages)]
        last_group = [group_last] + [Signal(name=f"last_group_{k}") for k in range(1, stages)]
        # The tokens at acc_stage meet the adder tree output and update the accumulators; the
        # bias ROM is read with the group of the tokens _MEMORY_STAGES earlier.
        acc_stage = _MEMORY_STAGES + 2 + self._tree_levels
        bias_stage = acc_stage - _MEMORY_STAGES
        group_tok = [group] + [Signal(range(groups), name=f"group_{k}")
                               for k in range(1, bias_stage + 1)]
        for k in range(1, stages):
            m.d.sync += [
                valid[k].eq(valid[k - 1]),
                last[k].eq(last[k - 1]),
                last_group[k].eq(last_group[k - 1]),
            ]
        for k in range(1, bias_stage + 1):
            m.d.sync += group_tok[k].eq(group_tok[k - 1])

        # Stage 2: operand registers (the DSP input registers). Stage 3: product registers.
        x_data = [x_read[k * x_shape.width:(k + 1) * x_shape.width] for k in range(simd)]
        w_data = [[w_reads[p][k * w_shape.width:(k + 1) * w_shape.width]
                   for k in range(simd)] for p in range(pe)]
        if x_shape.signed:
            x_data = [x.as_signed() for x in x_data]
        if w_shape.signed:
            w_data = [[w.as_signed() for w in row] for row in w_data]
        # MULT18X18D takes 18-bit signed operands; wider ones are left to the synthesis tool.
        ecp5 = arch == "ecp5" and (_signed_bits(x_shape) <= 18 and _signed_bits(w_shape) <= 18)
        if not ecp5:
            x_ops = [Signal(x_shape, name=f"x_{k}") for k in range(simd)]
            w_ops = [[Signal(w_shape, name=f"w_{p}_{k}") for k in range(simd)]
                     for p in range(pe)]
            for k in range(simd):
                m.d.sync += x_ops[k].eq(x_data[k])
                for p in range(pe):
                    m.d.sync += w_ops[p][k].eq(w_data[p][k])

        # Then one register per adder tree level.
        sums = []
        for p in range(pe):
            level = []
            for k in range(simd):
                prod = Signal(signed(self._product_width), name=f"prod_{p}_{k}")
                if ecp5:
                    _ecp5_multiplier(m, x_data[k], w_data[p][k], prod, f"mult_{p}_{k}")
                else:
                    m.d.sync += prod.eq(x_ops[k] * w_ops[p][k])
                level.append(prod)
            depth = 0
            while len(level) > 1:
                depth += 1
                width = min(self._product_width + depth, acc_width)
                pairs = []
                for n in range(0, len(level), 2):
                    node = Signal(signed(width), name=f"sum_{p}_{depth}_{n // 2}")
                    m.d.sync += node.eq(level[n] + level[n + 1] if n + 1 < len(level)
                                        else level[n])
                    pairs.append(node)
                level = pairs
            sums.append(level[0])

        # Bias ROM, read so that the word is present with the tree output.
        b_read = _rom_read(m, self.bias_words(), pe * acc_width, group_tok[bias_stage], arch,
                           "biases")
        accs = []
        for p in range(pe):
            acc = Signal(signed(acc_width), name=f"acc_{p}")
            bias = b_read[p * acc_width:(p + 1) * acc_width].as_signed()
            # Each PE has its own copy of the `first` token (it selects the bias for a whole
            # accumulator): the copies' reset values are the bits of p, so that yosys does not
            # merge them. They are only used with a valid token, so those values do not matter.
            first_p = beat_first
            for k in range(acc_stage):
                first_p = _delay(m, first_p, 1, f"first{p}_{k + 1}", init=(p >> k) & 1)
            with m.If(valid[acc_stage]):
                m.d.sync += acc.eq(Mux(first_p, bias, acc) + sums[p])
            accs.append(acc)

        # Requantize, saturate and activate: one clamp of the shifted accumulator to the
        # output range, compared in one stage and selected on the way into the FIFO.
        out_lo, out_hi = layer.output_range
        scaled_lo, scaled_hi = self._scaled_range
        shift = layer.shift
        lanes = []
        padded_from = layer.out_features - (groups - 1) * pe
        for p, acc in enumerate(accs):
            scaled = acc >> shift if shift > 0 else acc << -shift
            low = Signal(signed(out_width), name=f"low_{p}")
            over = Signal(name=f"over_{p}")
            under = Signal(name=f"under_{p}")
            m.d.sync += low.eq(scaled)  # truncates or sign-extends
            if scaled_hi > out_hi:
                m.d.sync += over.eq(scaled > out_hi)
            if scaled_lo < out_lo:
                m.d.sync += under.eq(scaled < out_lo)
            y = Signal(out_width, name=f"y_{p}")
            clamped = Mux(over, Const(out_hi, signed(out_width)),
                          Mux(under, Const(out_lo, signed(out_width)), low))
            if p >= padded_from:
                clamped = Mux(last_group[-1], 0, clamped)
            m.d.comb += y.eq(clamped)
            lanes.append(y)

        m.d.comb += [
            queue.w_en.eq(valid[-1] & last[-1]),
            queue.w_data.eq(Cat(lanes)),
        ]
        queue.elaborate(m, self.o, "fifo")
        return m


class WidthConverter(wiring.Component):
    """Regroups vectors of ``length`` elements from ``in_lanes`` to ``out_lanes`` per beat.

    A vector is ``ceil(length/in_lanes)`` input beats and ``ceil(length/out_lanes)`` output
    beats; lane ``k`` of beat ``b`` is element ``b*lanes + k``, input lanes past ``length`` are
    ignored and output lanes past it are zero. The vector is held in a double buffer of
    registers, and output beat ``k`` is issued as soon as the input beats holding its elements
    have arrived, selected through three pipeline registers, and queued in a small output FIFO
    (credit counting, as in :class:`DenseLayer`). For an isolated vector with input beats at
    cycles ``a_j`` (sink ready), output beat ``k`` is transferred at
    ``o_k = max(o_(k-1) + 1, a_(j(k)) + 6)`` (6 is :attr:`delay`), where ``j(k)`` is the input
    beat holding the beat's last element.

    Parameters
    ----------
    shape : Shape
        Shape of one element.
    in_lanes, out_lanes : int
        Elements per input and per output beat, 1 to ``length``.
    length : int
        Elements per vector.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, in_lanes)))``
    o : ``Out(stream.Signature(data.ArrayLayout(shape, out_lanes)))``
    """

    def __init__(self, shape, in_lanes, out_lanes, length):
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise TypeError(f"Length must be a positive integer, not {length!r}")
        _check_count("In lanes", in_lanes, length, "the vector length")
        _check_count("Out lanes", out_lanes, length, "the vector length")
        self._shape = shape
        self._in_lanes, self._out_lanes, self._length = in_lanes, out_lanes, length
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(shape, in_lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(shape, out_lanes))),
        })

    @property
    def in_beats(self):
        return ceil_div(self._length, self._in_lanes)

    @property
    def delay(self):
        """Cycles from the transfer of the input beat that completes an output beat to the
        transfer of that output beat (sink ready): one to see the write, the three pipeline
        registers, and the two of the output FIFO."""
        return 1 + _CONVERTER_STAGES + _FIFO_LATENCY

    @property
    def out_beats(self):
        return ceil_div(self._length, self._out_lanes)

    def _needed_beat(self, k):
        """Input beat holding the last element of output beat ``k``."""
        return (min((k + 1) * self._out_lanes, self._length) - 1) // self._in_lanes

    def output_times(self, arrivals):
        """Transfer cycles of an isolated vector's output beats, given the input beats'."""
        times, previous = [], None
        for k in range(self.out_beats):
            t = arrivals[self._needed_beat(k)] + self.delay
            if previous is not None:
                t = max(t, previous + 1)
            times.append(t)
            previous = t
        return times

    def elaborate(self, platform):
        m = Module()
        a, b, length = self._in_lanes, self._out_lanes, self._length
        width = len(self.i.payload.as_value()) // a
        buf = _PingPong(self.in_beats)
        buf.elaborate(m)
        m.d.comb += [
            self.i.ready.eq(buf.w_ready),
            buf.w_en.eq(self.i.valid & buf.w_ready),
        ]
        banks = [[Signal(width, name=f"bank{n}_{e}") for e in range(length)] for n in range(2)]
        raw_in = self.i.payload.as_value()
        for j in range(self.in_beats):
            for n in range(2):
                with m.If(buf.w_en & (buf.w_beat == j) & (buf.w_bank == n)):
                    for c in range(a):
                        if j * a + c < length:
                            m.d.sync += banks[n][j * a + c].eq(raw_in[c * width:(c + 1) * width])

        # Reader: a sequencer issues one output beat per cycle when its elements have arrived
        # and the output queue has room; the beat is selected from registered (bank, beat)
        # numbers in the next cycle, without any enable, and written into the queue.
        r_beat = Signal(range(self.out_beats))
        needed = Array(Const(self._needed_beat(k), range(self.in_beats))
                       for k in range(self.out_beats))
        queue = _CreditQueue(b * width, _CONVERTER_STAGES + _FIFO_LATENCY + 2)
        go = Signal()
        r_last = r_beat == self.out_beats - 1
        m.d.comb += [
            go.eq(buf.written(needed[r_beat]) & queue.ok),
            queue.take.eq(go),
            buf.r_done.eq(go & r_last),
        ]
        with m.If(go):
            m.d.sync += r_beat.eq(Mux(r_last, 0, r_beat + 1))
        # Stage 1: (bank, beat) registers. Stage 2: the beat's lanes of both banks. Stage 3: the
        # bank's lanes. The banks are read in stage 2, before the writer can reuse a bank that
        # the reader has just finished.
        valid_1, beat_1, bank_1 = Signal(), Signal.like(r_beat), Signal()
        valid_2, bank_2 = Signal(), Signal()
        valid_3, data_3 = Signal(), Signal(b * width)
        m.d.sync += [valid_1.eq(go), beat_1.eq(r_beat), bank_1.eq(buf.r_bank),
                     valid_2.eq(valid_1), bank_2.eq(bank_1), valid_3.eq(valid_2)]
        per_bank = []
        for n in range(2):
            lanes = Signal(b * width, name=f"lanes{n}")
            choices = [Array(banks[n][k * b + c] if k * b + c < length else Const(0, width)
                             for k in range(self.out_beats)) for c in range(b)]
            m.d.sync += lanes.eq(Cat(choice[beat_1] for choice in choices))
            per_bank.append(lanes)
        m.d.sync += data_3.eq(Mux(bank_2, per_bank[1], per_bank[0]))
        m.d.comb += [queue.w_en.eq(valid_3), queue.w_data.eq(data_3)]
        queue.elaborate(m, self.o, "fifo")
        return m
