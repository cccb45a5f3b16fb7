"""Target primitives: how multipliers and memories are built for each FPGA architecture.

An engine asks its :class:`Target` for four things, and gets the same timing from every
target: an array of registered multipliers (products two cycles after the operands), a ROM read
and a RAM read (data in a register :data:`~amaranth_nn.plan.MEMORY_STAGES` cycles after the
address), and a simple dual-port RAM of its own (:meth:`Target.ram`: the read data in a
register :data:`RAM_READ_STAGES` cycles after the read address). Adding an architecture means
adding a :class:`Target` subclass here.

- :class:`GenericTarget`: ``x * w`` between registers, which yosys maps to DSP48E1 (xc7),
  SB_MAC16 (iCE40, ``synth_ice40 -dsp``) and MULT18X18D (ECP5); ROMs are
  :class:`~amaranth.lib.memory.Memory` (block RAM from
  :data:`~amaranth_nn.plan.BLOCK_ROM_BITS` up), with the read stages on the address but the
  last (the multipliers' input registers take the data's).
- :class:`ICE40Target`: the generic primitives, but a one-stage LUT ROM is its logic with a
  register after it (4-input LUTs).
- :class:`ECP5Target`: ``MULT18X18D`` instances with their input and output registers, ROMs as
  LUT logic between registers (block RAM from :data:`ECP5_BLOCK_ROM_BITS`), and RAMs as LUT
  RAM below :data:`~amaranth_nn.plan.BLOCK_ROM_BITS`, ``DP16KD`` instances with their output
  register from there. nextpnr times yosys' inferred MULT18X18D as
  combinational between fabric registers and DP16KD block RAM with a 5.8 ns clock-to-output,
  which limits a design to about 110-150 MHz; this style reaches 200 MHz and more.

:func:`resolve_target` turns an ``arch`` argument (one of :data:`ARCHES`, or a Target) into the
target for a platform.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Const, Instance, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib.memory import Memory

from .lut_multiplier import lut_products
from .plan import BLOCK_ROM_BITS, MEMORY_STAGES
from .plumbing import CreditQueue, delay

__all__ = ["ARCHES", "ECP5_BLOCK_ROM_BITS", "ECP5_RAM_PIECE_WORDS", "ECP5_ROM_SPLIT_BITS",
           "ECP5_ROM_HIGH_BITS",
           "ICE40_QUEUE_BLOCK_BITS", "RAM_READ_STAGES",
           "RamPorts", "Target", "GenericTarget", "ICE40Target", "ECP5Target", "check_arch",
           "ice40_queue_in_block_ram", "resolve_target"]

#: Signed operand width of the ECP5 multiplier block.
ECP5_OPERAND_BITS = 18

#: Registers from a :meth:`Target.ram` read address to its data: the synchronous read and an
#: output register.
RAM_READ_STAGES = 2

#: ROMs of at least this many bits go to block RAM on ECP5 (``DP16KD``, inferred by yosys);
#: smaller ones are LUT logic. A LUT ROM of 32 kbit is some 2000 LUT4 of deep multiplexer trees,
#: where a ``DP16KD`` holds 18 kbit; every ROM of the embedded models at any folding is at most
#: 16 kbit, and stays in LUTs (their 200 MHz timing).
ECP5_BLOCK_ROM_BITS = 32768

#: A LUT ROM of :meth:`ECP5Target.read_rom` with more address bits than this plus one, read in
#: two stages or more after its address register, registers the words that its low address
#: bits select (a LUT6 of 4-input LUTs and two multiplexer levels): the first data register
#: moves into the multiplexer tree. Past 9 address bits, after all but the top 3, so that the
#: second stage is one 8-way select (a slice's LUT4s and its PFUMX and L6MUX) rather than 16
#: or more: the digits model's 1024-word ROM at target II 1024 went from 196.3 to 203.6 MHz
#: at placer seed 1 (206.2 and 210.1 at seeds 2 and 3), with fewer LUT4s and flip-flops.
ECP5_ROM_SPLIT_BITS = 6

#: The most address bits that the second stage of a split LUT ROM selects by.
ECP5_ROM_HIGH_BITS = 3

#: Words of each piece of a LUT RAM that :meth:`ECP5Target.read_ram` reads into a register of
#: its own (one ``DPR16X4`` deep, no multiplexer), for a memory of more than twice as many
#: words. With 32-word pieces (two deep and a ``PFUMX``), and 64-word RAMs read whole, the
#: digits model's input buffer read was its slowest path at target II 1024 (192.5 MHz at
#: placer seed 1; 196.3 with 16-word pieces, ``python bench/bench_gateware.py --no-xilinx``).
ECP5_RAM_PIECE_WORDS = 16

#: On iCE40, which has no LUT RAM, an output queue's memory of at least this many bits (and more
#: than 4 words) is block RAM, where yosys would build up to 72 bits from flip-flops: a window
#: generator's 9 x 8 bits at one lane, with its read register, is 80 flip-flops and 68 LUT4,
#: or one SB_RAM40_4K with 22 flip-flops and 13 LUT4 (yosys ``synth_ice40`` of the memory alone).
ICE40_QUEUE_BLOCK_BITS = 64


def ice40_queue_in_block_ram(depth, width):
    """Whether an output queue's memory of ``depth`` x ``width`` is block RAM on iCE40
    (:data:`ICE40_QUEUE_BLOCK_BITS`)."""
    return depth > 4 and depth * width >= ICE40_QUEUE_BLOCK_BITS


#: ``(words, data bits)`` of the ECP5 ``DP16KD`` block RAM's port widths, deepest first.
DP16KD_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18))


@dataclass(frozen=True)
class RamPorts:
    """The ports of a :meth:`Target.ram`: a write of ``w_data`` at ``w_addr`` when ``w_en``,
    and the word at ``r_addr``, in ``r_data`` :data:`RAM_READ_STAGES` cycles later. A word
    read in the cycle it is written may read either value (block RAM ports collide)."""

    w_addr: Value
    w_data: Value
    w_en: Value
    r_addr: Value
    r_data: Value


class Target:
    """How one architecture builds the primitives of an engine (see the module docs)."""

    #: The ``arch`` name of the target.
    name = None

    #: Whether a flag that a cycle's events decide through an adder is computed for each
    #: outcome from registers (fast, the ECP5's 200 MHz), or as the adder then a comparison
    #: (fewer cells, the iCE40's choice; the same cycles either way).
    precomputed_flags = True

    #: Whether the dense engine registers the products again in the fabric before its adder
    #: tree where the tree's levels leave room for it (``DenseLayer._adder_tree``; the same
    #: cycles): a multiplier block's output then goes to a register, not into a carry chain.
    registered_products = False

    #: Whether the dense engine's restarting accumulators take the bias from a register of
    #: each PE's own, the bias word read a cycle earlier (``DenseLayer._bias``; the same
    #: cycles): the one word's register then need not sit between the bias ROM's logic and
    #: every PE's accumulator (on ECP5 1.9 ns of routing from it into a conv engine's
    #: accumulator).
    bias_per_pe = False

    def multiply(self, m, plan, xs, ws, name="mult"):
        """``products[p][k] = xs[k] * ws[p][k]``, in registers two cycles later: from logic
        (:func:`~amaranth_nn.lut_multiplier.lut_products`) when the plan says
        ``lut_multipliers``, else from the target's :meth:`dsp_products`.

        Parameters
        ----------
        m : Module
        plan : DensePlan or ScalePlan
            Gives the operand shapes (``x_shape``, ``w_shape``), the product width and
            ``lut_multipliers``.
        xs : list of Value
            ``simd`` input operands, shared by every PE.
        ws : list of list of Value
            ``pe`` rows of ``simd`` weight operands.

        Returns
        -------
        list of list of Signal
            The products, ``signed(plan.product_width)``.
        """
        if plan.lut_multipliers:
            return lut_products(m, plan, xs, ws, name)
        return self.dsp_products(m, plan, xs, ws, name)

    def dsp_products(self, m, plan, xs, ws, name="mult"):
        """:meth:`multiply` with the target's multiplier blocks."""
        raise NotImplementedError

    def read_rom(self, m, rom, addr, copy=0, stages=MEMORY_STAGES):
        """Read ``rom`` (a :class:`~amaranth_nn.plan.Rom`) at ``addr``; returns the word
        ``stages`` cycles later (by default :data:`~amaranth_nn.plan.MEMORY_STAGES`), in a
        register, or for one stage possibly as a LUT ROM's logic after an address register.
        ``copy`` numbers ROMs that share an address, so that a target may give each its own
        address register."""
        raise NotImplementedError

    def read_ram(self, m, memory, addr, name):
        """Read ``memory`` (a :class:`~amaranth.lib.memory.Memory` of ``m``) at ``addr``; the
        data is in a register :data:`~amaranth_nn.plan.MEMORY_STAGES` cycles later. The
        memory may be read in the next cycle, so the word read may be that of a write in this
        one (the dense engine's reader releases its bank of the double buffer with its last
        read, and the writer writes it from the next cycle on)."""
        raise NotImplementedError

    def ram(self, m, width, depth, name):
        """A RAM of ``depth`` words of ``width`` bits with one write and one read port, in
        ``m``; returns its :class:`RamPorts`, to be driven and read by the caller."""
        return self._memory_ram(m, width, depth, name, None)

    def queue(self, shape, depth):
        """A :class:`~amaranth_nn.plumbing.CreditQueue` of ``depth`` entries of ``shape``,
        its memory where the target keeps queues (:meth:`queue_attrs`)."""
        return CreditQueue(shape, depth,
                           attrs=self.queue_attrs(max(1, depth - 1), Shape.cast(shape).width))

    def queue_attrs(self, depth, width):
        """Attributes of a queue's memory of ``depth`` x ``width``: none, for the synthesis
        tool to choose."""
        return None

    @staticmethod
    def _rom_read(m, rom, addr, domain, attrs=None):
        """A read port at ``addr`` of ``rom`` as a :class:`~amaranth.lib.memory.Memory` of
        ``m`` with ``attrs``: its data a cycle after the address (``domain="sync"``) or at
        once (``"comb"``)."""
        memory = Memory(shape=unsigned(rom.width), depth=rom.depth, init=rom.words, attrs=attrs)
        m.submodules[rom.name] = memory
        port = memory.read_port(domain=domain)
        m.d.comb += port.addr.eq(addr)
        return port.data

    @staticmethod
    def _memory_ram(m, width, depth, name, attrs):
        """:meth:`ram` as a :class:`~amaranth.lib.memory.Memory` with ``attrs``: an
        asynchronous read between registers (block RAM takes the first as its synchronous
        read)."""
        memory = Memory(shape=unsigned(width), depth=depth, init=[], attrs=attrs)
        m.submodules[name] = memory
        write = memory.write_port()
        read = memory.read_port(domain="comb")
        return RamPorts(write.addr, write.data, write.en, read.addr,
                        delay(m, read.data, RAM_READ_STAGES, f"{name}_data"))


class GenericTarget(Target):
    """Portable primitives for the synthesis tool to map (see the module docs)."""

    name = "generic"

    def dsp_products(self, m, plan, xs, ws, name="mult"):
        x_ops = [Signal(plan.x_shape, name=f"x_{k}") for k in range(len(xs))]
        w_ops = [[Signal(plan.w_shape, name=f"w_{p}_{k}") for k in range(len(row))]
                 for p, row in enumerate(ws)]
        products = []
        for p, row in enumerate(ws):
            products.append([])
            for k in range(len(row)):
                m.d.sync += w_ops[p][k].eq(row[k])
                prod = Signal(signed(plan.product_width), name=f"prod_{p}_{k}")
                m.d.sync += prod.eq(x_ops[k] * w_ops[p][k])
                products[p].append(prod)
        m.d.sync += [x_op.eq(x) for x_op, x in zip(x_ops, xs, strict=True)]
        return products

    def read_rom(self, m, rom, addr, copy=0, stages=MEMORY_STAGES):
        """The synchronous read and, for two stages or more, one data register after it; the
        stages before those delay the address, which is narrower than a word (a weight word
        is ``simd`` lanes, and the DSP48E1's two input registers take the data register and
        the operand's, so no weight bit has a flip-flop in the fabric). One stage of a LUT ROM
        is an address register and the ROM's logic, which a 6-input LUT merges with the
        logic that uses the word (the dense engine's held bias word and accumulator)."""
        attrs = {"rom_style": "block"} if rom.block_ram else None
        if stages == 1 and not rom.block_ram:
            return self._rom_read(m, rom, delay(m, addr, 1, f"{rom.name}_addr"), "comb", attrs)
        data = self._rom_read(m, rom, delay(m, addr, max(stages - 2, 0), f"{rom.name}_addr"),
                              "sync", attrs)
        return delay(m, data, min(stages - 1, 1), f"{rom.name}_data")

    def read_ram(self, m, memory, addr, name):
        """As :meth:`read_rom`: an address register, the synchronous read (a LUT RAM's read
        register) and one data register; the ``simd``-lane input word is wider than its
        address, and the multipliers' input registers take the data register and the
        operand's."""
        port = memory.read_port(domain="sync")
        m.d.comb += port.addr.eq(delay(m, addr, MEMORY_STAGES - 2, f"{name}_addr"))
        return delay(m, port.data, 1, name)


class ICE40Target(GenericTarget):
    """Lattice iCE40: the generic primitives, but a one-stage LUT ROM is its logic with a
    register after it. With 4-input LUTs the generic form (an address register, then the
    ROM's logic merged with the logic that uses the word) made the dense engine's held bias
    word and accumulator the network's slowest path: 51.7 against 62.6 MHz for the digits
    model at the iCEBreaker's pick (``python bench/bench_ice40.py``)."""

    name = "ice40"
    precomputed_flags = False

    def queue_attrs(self, depth, width):
        """Block RAM for a queue memory of :data:`ICE40_QUEUE_BLOCK_BITS` or more."""
        return {"ram_style": "block"} if ice40_queue_in_block_ram(depth, width) else None

    def read_rom(self, m, rom, addr, copy=0, stages=MEMORY_STAGES):
        if stages > 1 or rom.block_ram:
            return super().read_rom(m, rom, addr, copy, stages)
        return self._rom_read(m, rom, addr, "sync")


class ECP5Target(GenericTarget):
    """Lattice ECP5: registered ``MULT18X18D`` blocks and LUT ROMs (see the module docs).

    Parameters
    ----------
    model_multipliers : bool
        Build a behavioural model of the registered MULT18X18D (input registers, signed 18x18
        product, output register) and of the DP16KD of :meth:`ram` instead of the instances,
        which yosys cannot simulate; for simulating everything else of this target.
    """

    name = "ecp5"
    registered_products = True
    bias_per_pe = True

    def __init__(self, *, model_multipliers=False):
        self.model_multipliers = bool(model_multipliers)

    def dsp_products(self, m, plan, xs, ws, name="mult"):
        x_bits = plan.x_shape.width + (not plan.x_shape.signed)
        w_bits = plan.w_shape.width + (not plan.w_shape.signed)
        if max(x_bits, w_bits) > ECP5_OPERAND_BITS:
            return super().dsp_products(m, plan, xs, ws, name)  # wider ones: the synthesis tool's
        products = []
        for p, row in enumerate(ws):
            products.append([])
            for k, w in enumerate(row):
                prod = Signal(signed(plan.product_width), name=f"prod_{p}_{k}")
                self._multiplier(m, xs[k], w, prod, f"{name}_{p}_{k}")
                products[p].append(prod)
        return products

    def _multiplier(self, m, a, b, product, name):
        """``product <= a * b`` two cycles later; ``a`` and ``b`` fit in 18 signed bits."""
        a18, b18, p36 = Signal(signed(18)), Signal(signed(18)), Signal(signed(36))
        m.d.comb += [a18.eq(a), b18.eq(b), product.eq(p36)]
        if self.model_multipliers:
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

    def read_rom(self, m, rom, addr, copy=0, stages=MEMORY_STAGES):
        """A tree of multiplexers between constants, which yosys reduces to LUT logic of the
        address bits, with a register after it and, for two stages or more, its own address
        register before it: yosys has no distributed ROM mapping for ECP5 (its inferred LUT
        ROMs go through a subtractor). The address register's reset value is ``copy`` (modulo
        the depth), so that ROMs read at the same address get separate registers (yosys merges
        identical flip-flops), which divides the address fanout; the address during reset does
        not matter, as no valid token is in the pipeline then. With more than
        :data:`ECP5_ROM_SPLIT_BITS` ``+ 1`` address bits and two data registers or more, the
        first data register is inside the tree: the words the low address bits select, then
        the rest of the tree selected by the high address bits a cycle later (the same cycles;
        ``mnist1d``'s ``layer7``, 400 words, 172.6 -> 197.2 MHz alone at seed 1).

        A ROM of :data:`ECP5_BLOCK_ROM_BITS` or more (with two stages or more) is a block RAM
        instead: a synchronous read, which yosys maps to ``DP16KD`` with the words as its
        initial contents, and a register after it (the block's 5.8 ns clock-to-output then
        has a cycle of its own)."""
        if rom.bits >= ECP5_BLOCK_ROM_BITS and stages > 1:
            data = self._rom_read(m, rom, addr, "sync", {"ram_style": "block"})
            return delay(m, data, stages - 1, f"{rom.name}_data")
        if stages > 1:
            addr = delay(m, addr, 1, f"{rom.name}_addr", init=copy % (1 << len(addr)))
            stages -= 1
        words = [Const(word, rom.width) for word in rom.words]
        low = max(ECP5_ROM_SPLIT_BITS, len(addr) - ECP5_ROM_HIGH_BITS)
        if stages < 2 or len(addr) <= ECP5_ROM_SPLIT_BITS + 1:
            return delay(m, _mux_tree(words, addr), stages, f"{rom.name}_data")
        # The first data register inside the tree: the words selected by the low address bits,
        # then the rest of the tree selected by the high address bits a cycle later.
        parts = [delay(m, _mux_tree(words[n:n + (1 << low)], addr[:low]), 1,
                       f"{rom.name}_part{n >> low}")
                 for n in range(0, len(words), 1 << low)]
        high = delay(m, addr[low:], 1, f"{rom.name}_high", init=copy % (1 << len(addr[low:])))
        return delay(m, _mux_tree(parts, high), stages - 1, f"{rom.name}_data")

    def ram(self, m, width, depth, name):
        """LUT RAM below :data:`~amaranth_nn.plan.BLOCK_ROM_BITS` bits (read in pieces as
        :meth:`read_ram` reads, past twice :data:`ECP5_RAM_PIECE_WORDS` words: ``mnist1d``'s
        128-word pooling line buffer was the network's slowest path); from there ``DP16KD``
        blocks with their output register (yosys maps block RAM without it, and its 5.8 ns
        clock-to-output leaves little of a 200 MHz cycle), each a slice of the word's bits at
        the narrowest port width that holds ``depth`` words (deeper RAMs are left to yosys)."""
        if width * depth < BLOCK_ROM_BITS:
            if depth <= 2 * ECP5_RAM_PIECE_WORDS:
                return self._memory_ram(m, width, depth, name, {"ram_style": "distributed"})
            # Deeper LUT RAM (a window generator's bank): read in pieces, as read_ram does.
            memory = Memory(shape=unsigned(width), depth=depth, init=[],
                            attrs={"ram_style": "distributed"})
            m.submodules[name] = memory
            write = memory.write_port()
            r_addr = Signal(range(depth), name=f"{name}_r_addr")
            return RamPorts(write.addr, write.data, write.en, r_addr,
                            _read_in_pieces(m, memory, r_addr, name, RAM_READ_STAGES))
        shape = next(((d, w) for d, w in reversed(DP16KD_SHAPES) if depth <= d), None)
        if self.model_multipliers or shape is None:
            return self._memory_ram(m, width, depth, name, None)
        words, bits = shape
        abits = (words - 1).bit_length()
        w_addr, r_addr = Signal(range(depth), name=f"{name}_w_addr"), \
            Signal(range(depth), name=f"{name}_r_addr")
        w_data, r_data = Signal(width, name=f"{name}_w_data"), Signal(width, name=f"{name}_r_data")
        w_en = Signal(name=f"{name}_w_en")
        for n, low in enumerate(range(0, width, bits)):
            ports = {}
            for k in range(14):
                # The word address is in the top address bits; the low ones are unused (or
                # byte enables, kept high).
                a = k - (14 - abits)
                ports[f"i_ADA{k}"] = w_addr[a] if 0 <= a < len(w_addr) else Const(k < 2, 1)
                ports[f"i_ADB{k}"] = r_addr[a] if 0 <= a < len(r_addr) else Const(0, 1)
            for k in range(18):
                ports[f"i_DIA{k}"] = w_data[low + k] if k < bits and low + k < width \
                    else Const(0, 1)
                ports[f"i_DIB{k}"] = Const(0, 1)
                if k < bits and low + k < width:
                    ports[f"o_DOB{k}"] = r_data[low + k]
            for k in range(3):
                ports[f"i_CSA{k}"] = ports[f"i_CSB{k}"] = Const(0, 1)
            m.submodules[f"{name}_{n}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=bits, p_DATA_WIDTH_B=bits, p_REGMODE_A="NOREG",
                p_REGMODE_B="OUTREG", p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000", p_WRITEMODE_A="NORMAL",
                p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                i_CLKA=ClockSignal(), i_CEA=Const(1, 1), i_OCEA=Const(1, 1), i_WEA=w_en,
                i_RSTA=Const(0, 1), i_CLKB=ClockSignal(), i_CEB=Const(1, 1),
                i_OCEB=Const(1, 1), i_WEB=Const(0, 1), i_RSTB=Const(0, 1), **ports)
        return RamPorts(w_addr, w_data, w_en, r_addr, r_data)

    def read_ram(self, m, memory, addr, name):
        """An asynchronous read port followed by registers, so that yosys keeps the register
        on the data (LUT RAM between two flip-flops) instead of moving it to the address. A
        memory of fewer than :data:`~amaranth_nn.plan.BLOCK_ROM_BITS` bits with no style of its
        own is marked for LUT RAM (yosys would take block RAM, without its output register).
        A LUT RAM of more than twice :data:`ECP5_RAM_PIECE_WORDS` words is read as pieces of
        its own, written by the memory's write port: each piece's read in a register, the
        pieces selected by the high address bits a cycle later (the same cycles; ``mnist1d``'s
        ``layer7``, 128 words, was the network's slowest path at placer seed 2, 178.9 MHz). A
        larger one is yosys' block RAM, without the ``DP16KD``'s output register: its 5.8 ns
        clock-to-output is the slowest path of a 256-128-64-10 MLP's ULX3S build (131.1 MHz).
        :meth:`ram`'s ``DP16KD`` instances have the register, but at most 18 bits a port: a
        64 x 64-bit buffer took 4 of them where yosys takes 2."""
        if memory.shape.width * memory.depth < BLOCK_ROM_BITS:
            memory.attrs.setdefault("ram_style", "distributed")
        addr = delay(m, addr, 1, f"{name}_addr")
        words = ECP5_RAM_PIECE_WORDS
        if (memory.attrs.get("ram_style") != "distributed" or memory.depth <= 2 * words
                or len(memory.write_ports) != 1 or MEMORY_STAGES < 3):
            port = memory.read_port(domain="comb")
            m.d.comb += port.addr.eq(addr)
            return delay(m, port.data, MEMORY_STAGES - 1, name)
        return _read_in_pieces(m, memory, addr, name, MEMORY_STAGES - 1)


def _read_in_pieces(m, memory, addr, name, stages):
    """The word of a LUT RAM ``memory`` at ``addr``, ``stages`` (at least 2) registers later,
    read as pieces of :data:`ECP5_RAM_PIECE_WORDS` words: each piece read into a register,
    written by the memory's one write port, then the pieces selected by the high address bits
    a cycle later. The memory itself keeps its write port and no read port (synthesis removes
    it)."""
    write = memory.write_ports[0]
    words = ECP5_RAM_PIECE_WORDS
    low = (words - 1).bit_length()
    parts = []
    for n, start in enumerate(range(0, memory.depth, words)):
        piece = Memory(shape=memory.shape, depth=min(words, memory.depth - start), init=[],
                       attrs={"ram_style": "distributed"})
        m.submodules[f"{name}_piece{n}"] = piece
        piece_write, piece_read = piece.write_port(), piece.read_port(domain="comb")
        m.d.comb += [
            piece_write.addr.eq(write.addr[:low]),
            piece_write.data.eq(write.data),
            piece_write.en.eq(write.en & (write.addr[low:] == n)),
            piece_read.addr.eq(addr[:low]),
        ]
        parts.append(delay(m, piece_read.data, 1, f"{name}_part{n}"))
    high = delay(m, addr[low:], 1, f"{name}_high")
    return delay(m, _mux_tree(parts, high), stages - 1, name)


def _mux_tree(values, addr):
    """``values[addr]``: a tree of multiplexers by the bits of ``addr``, low bits first (an
    address past the values selects one of them)."""
    bit = 0
    while len(values) > 1:
        values = [Mux(addr[bit], values[n + 1], values[n]) if n + 1 < len(values) else values[n]
                  for n in range(0, len(values), 2)]
        bit += 1
    return values[0]


#: Every target by its ``arch`` name.
_TARGETS = {target.name: target for target in (GenericTarget, ECP5Target, ICE40Target)}

#: The ``arch`` names: ``"generic"``, ``"ecp5"`` and ``"ice40"`` select a target, and
#: ``"auto"`` picks :class:`ECP5Target` for a platform whose ``family`` is ``"ecp5"``,
#: :class:`ICE40Target` for one whose ``family`` is ``"iCE40"``, and :class:`GenericTarget`
#: otherwise (including simulation).
ARCHES = ("auto", *_TARGETS)

#: The ``arch`` that ``"auto"`` takes by the platform's ``family``.
_AUTO = {"ecp5": "ecp5", "iCE40": "ice40"}


def check_arch(arch):
    """``arch`` if it is one of :data:`ARCHES` or a :class:`Target`.

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        For anything else.
    """
    if isinstance(arch, Target):
        return arch
    if isinstance(arch, str):
        if arch not in ARCHES:
            raise ValueError(f"Arch must be one of {', '.join(map(repr, ARCHES))}, not {arch!r}")
        return arch
    raise TypeError(f"Arch must be one of {', '.join(map(repr, ARCHES))} or a Target, not "
                    f"{arch!r}")


def resolve_target(arch, platform=None):
    """The :class:`Target` that ``arch`` means when elaborating for ``platform``."""
    if isinstance(arch, Target):
        return arch
    if arch == "auto":
        arch = _AUTO.get(getattr(platform, "family", None), "generic")
    return _TARGETS.get(arch, GenericTarget)()
