"""The sliding-window generator's plan: every fact of :class:`~amaranth_nn.sliding.SlidingWindow`
in plain Python.

A sample of ``spatial`` positions of ``channels`` elements streams in, position by position, in
beats of ``in_lanes`` lanes; the window of every output position streams out in beats of
``out_lanes`` lanes, in one of two orders (``"window"`` for a convolution, ``"kernel"`` for a
pool; see :class:`WindowPlan`). The line buffer is a circular buffer of elements in a padded
linear layout, split into ``banks`` memories so that the lanes of any beat, in or out, lie in
distinct banks.
"""

from functools import cached_property
from math import prod
from numbers import Integral

from amaranth.hdl import Shape

from .lanes import ceil_div
from .plan import FIFO_LATENCY, check_count
from .windows import output_spatial

__all__ = ["ORDERS", "ROOM_LAG", "WINDOW_STAGES", "WindowPlan"]

#: The two window orders.
ORDERS = ("window", "kernel")

#: Registers from issuing a window beat to its lanes on the way into the output FIFO: the lane
#: offsets, the lane addresses, the banks' addresses, the bank read and its copy, and the
#: rotated, masked lanes.
WINDOW_STAGES = 6

#: Cycles from a window's last issue until the writer's room counts the reader's base past it
#: (the base's step delayed, the step registers, the slack and the writer's ready).
ROOM_LAG = 3


def _axes(name, value, axes, minimum=1):
    """``value`` as a tuple of ``axes`` integers of at least ``minimum``."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value,) * axes
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer or a tuple of {axes}, not {value!r}") \
            from None
    if len(items) != axes or not all(isinstance(v, Integral) and not isinstance(v, bool)
                                     for v in items):
        raise TypeError(f"{name} must be an integer or a tuple of {axes}, not {value!r}")
    items = tuple(int(v) for v in items)
    if any(v < minimum for v in items):
        raise ValueError(f"{name} must be at least {minimum} in every axis, not {list(items)}")
    return items


class WindowPlan:
    """A sliding-window generator over one sample at a time.

    In 2-D the input is ``H x W`` positions (1-D is ``H = 1``) of ``C`` channels, each position
    ``ceil(C/in_lanes)`` beats (lane ``k`` of beat ``b`` is channel ``b*in_lanes + k``). For
    each output position (row-major) the window goes out as :attr:`beats_per_window` beats of
    ``out_lanes`` lanes, zero in the padding and past the end:

    - ``order="window"``: lane ``j`` of beat ``b`` is window element ``e = b*out_lanes + j``,
      ``e = (ky*kw + kx)*C + c`` (:mod:`amaranth_nn.windows`), zero past ``K*C``;
      ``ceil(K*C/out_lanes)`` beats;
    - ``order="kernel"``: ``G = ceil(C/out_lanes)`` beats per kernel position; beat ``b`` is
      kernel position ``b // G``, lane ``j`` channel ``(b % G)*out_lanes + j``; ``K*G`` beats.

    Parameters
    ----------
    shape : shape-like
        Shape of one element (``signed(width)``).
    spatial : tuple of int
        ``(L,)`` or ``(H, W)``.
    channels : int
    kernel, stride, padding : int or tuple of int
        One per axis (an int for all); ``padding < kernel`` and the kernel fits the padded
        input.
    in_lanes : int
        1 to ``channels``.
    out_lanes : int
        1 to ``K*C`` (window order) or to ``channels`` (kernel order).
    order : str
        ``"window"`` or ``"kernel"``.

    Raises
    ------
    TypeError
        For an argument of the wrong type.
    ValueError
        For one out of range.
    """

    def __init__(self, shape, spatial, channels, kernel, stride, padding, in_lanes, out_lanes,
                 order="window"):
        self.shape = Shape.cast(shape)
        if not isinstance(spatial, (tuple, list)) or len(spatial) not in (1, 2):
            raise TypeError(f"Spatial must be (L,) or (H, W), not {spatial!r}")
        axes = len(spatial)
        spatial = _axes("Spatial", spatial, axes)
        if not isinstance(channels, Integral) or isinstance(channels, bool):
            raise TypeError(f"Channels must be an integer, not {channels!r}")
        channels = int(channels)
        if channels < 1:
            raise ValueError(f"Channels must be a positive integer, not {channels}")
        kernel = _axes("Kernel", kernel, axes)
        stride = _axes("Stride", stride, axes)
        padding = _axes("Padding", padding, axes, minimum=0)
        if any(p >= k for p, k in zip(padding, kernel, strict=True)):
            raise ValueError(f"Padding must be smaller than the kernel, not {list(padding)} for "
                             f"the kernel {list(kernel)}")
        if any(n + 2 * p < k for n, k, p in zip(spatial, kernel, padding, strict=True)):
            raise ValueError(f"Kernel {list(kernel)} does not fit the input {list(spatial)} "
                             f"with padding {list(padding)}")
        if order not in ORDERS:
            raise ValueError(f"Order must be 'window' or 'kernel', not {order!r}")
        check_count("In lanes", in_lanes, channels, "the channels")
        limit = prod(kernel) * channels if order == "window" else channels
        check_count("Out lanes", out_lanes, limit,
                    "the window's elements" if order == "window" else "the channels")
        self.spatial, self.channels = spatial, channels
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.in_lanes, self.out_lanes, self.order = in_lanes, out_lanes, order

    # The 2-D view: 1-D is one row.

    @property
    def grid(self):
        """``(H, W)``: ``(1, L)`` in 1-D."""
        return self.spatial if len(self.spatial) == 2 else (1, *self.spatial)

    @property
    def kernel2(self):
        """``(kh, kw)``: ``(1, k)`` in 1-D."""
        return self.kernel if len(self.kernel) == 2 else (1, *self.kernel)

    @property
    def stride2(self):
        """``(sy, sx)``: ``(1, s)`` in 1-D."""
        return self.stride if len(self.stride) == 2 else (1, *self.stride)

    @property
    def padding2(self):
        """``(py, px)``: ``(0, p)`` in 1-D."""
        return self.padding if len(self.padding) == 2 else (0, *self.padding)

    @property
    def spatial_out(self):
        """Output positions along each axis."""
        return output_spatial(self.spatial, self.kernel, self.stride, self.padding)

    @property
    def grid_out(self):
        """``(OH, OW)``: ``(1, L')`` in 1-D."""
        out = self.spatial_out
        return out if len(out) == 2 else (1, *out)

    @property
    def positions_in(self):
        return prod(self.spatial)

    @property
    def positions_out(self):
        return prod(self.spatial_out)

    @property
    def window(self):
        """Kernel positions per window, ``K``."""
        return prod(self.kernel)

    @property
    def window_size(self):
        """Elements per window, ``K*C``."""
        return self.window * self.channels

    @property
    def beats_per_position(self):
        """Input beats per position, ``ceil(C/in_lanes)``."""
        return ceil_div(self.channels, self.in_lanes)

    @property
    def groups(self):
        """Beats per kernel position in kernel order, ``G = ceil(C/out_lanes)``."""
        return ceil_div(self.channels, self.out_lanes)

    @property
    def beats_per_window(self):
        """Output beats per window: ``ceil(K*C/out_lanes)`` or ``K*G``."""
        if self.order == "window":
            return ceil_div(self.window_size, self.out_lanes)
        return self.window * self.groups

    @property
    def in_beats(self):
        """Input beats per sample, ``positions_in * ceil(C/in_lanes)``."""
        return self.positions_in * self.beats_per_position

    @property
    def out_beats(self):
        """Output beats per sample, ``positions_out * beats_per_window``."""
        return self.positions_out * self.beats_per_window

    @property
    def ii(self):
        """Cycles per sample in steady state: one beat per cycle on the busier side,
        ``max(out_beats, in_beats)``."""
        return max(self.out_beats, self.in_beats)

    # The line buffer.

    @property
    def banks(self):
        """Memories of the line buffer: the power of two at least ``max(in_lanes,
        out_lanes)``."""
        return 1 << (max(self.in_lanes, self.out_lanes) - 1).bit_length()

    @cached_property
    def row_stride(self):
        """``R``: the padded layout's row stride, the least ``R >= (W + 2*px)*C`` with
        ``R = kw*C (mod banks)``, so that element ``e`` of a window sits at an offset equal to
        ``e`` modulo the banks."""
        (_, width), (_, kw), (_, px) = self.grid, self.kernel2, self.padding2
        least = (width + 2 * px) * self.channels
        return least + (kw * self.channels - least) % self.banks

    @property
    def sample_stride(self):
        """Elements of the padded layout per sample, ``(H + 2*py) * R``."""
        return (self.grid[0] + 2 * self.padding2[0]) * self.row_stride

    @cached_property
    def capacity(self):
        """Elements of the circular buffer: the least power of two (a multiple of
        :attr:`banks`) with which, samples streaming in back to back, every window issues as
        early as :attr:`ii` allows (:meth:`schedule`): the writer, which waits while its next
        position would overwrite what the reader's window still needs, never holds back a window
        (in 1-D a few positions, not a sample; in 2-D a few rows)."""
        (_, ow), (sy, sx), c = self.grid_out, self.stride2, self.channels
        # The least capacity without a deadlock: each window's span, plus a position.
        least = max(self._address(self.needed(oy, ox)) + 2 * c
                    - (oy * sy * self.row_stride + ox * sx * c)
                    for oy in range(self.grid_out[0]) for ox in range(ow))
        capacity = max(self.banks, 1 << (least - 1).bit_length())
        while not self._keeps_pace(capacity):
            capacity *= 2
        return capacity

    def _address(self, position):
        """Padded address of raster position ``position``, counted on into the next samples."""
        sample, index = divmod(position, self.positions_in)
        iy, ix = divmod(index, self.grid[1])
        py, px = self.padding2
        return sample * self.sample_stride + (iy + py) * self.row_stride + (ix + px) * self.channels

    def schedule(self, capacity, samples):
        """Start cycles of the input positions and issue cycles of the windows of ``samples``
        samples streaming in back to back (a source valid on every cycle, a sink always
        ready), with a line buffer of ``capacity`` elements.

        Position ``p`` starts at ``s_p = max(s_(p-1) + bpp, l_(m-1) + ROOM_LAG)``, where ``m``
        is the first window whose base leaves room for it (``base >= address(p) + C -
        capacity``); window ``w`` issues at ``i_w = max(i_(w-1) + bpw, s_(p_w) + bpp - 1 +
        issue_delay)`` (``p_w`` its last needed position) and leaves at ``l_w = i_w + bpw -
        1``. Returns ``(starts, issues)``.
        """
        (oh, ow), (sy, sx), c, r = self.grid_out, self.stride2, self.channels, self.row_stride
        bpp, bpw, count = self.beats_per_position, self.beats_per_window, oh * ow
        needed = [s * self.positions_in + self.needed(oy, ox) for s in range(samples)
                  for oy in range(oh) for ox in range(ow)]
        bases = [s * self.sample_stride + oy * sy * r + ox * sx * c for s in range(samples)
                 for oy in range(oh) for ox in range(ow)]
        starts, issues, leaves, w, m = [], [], [], 0, 0
        for p in range(samples * self.positions_in):
            start = starts[-1] + bpp if starts else 0
            # The first window whose base leaves room for position p (later for a later p).
            floor = self._address(p) + c - capacity
            while m < len(bases) and bases[m] < floor:
                m += 1
            if m > 0:
                if m - 1 >= len(leaves):
                    return None  # the writer waits for a window that waits for it
                start = max(start, leaves[m - 1] + ROOM_LAG)
            starts.append(start)
            while w < samples * count and needed[w] <= p:
                issue = starts[p] + bpp - 1 + self.issue_delay
                issue = max(issues[-1] + bpw, issue) if issues else issue
                issues.append(issue)
                leaves.append(issue + bpw - 1)
                w += 1
        return starts, issues

    def _keeps_pace(self, capacity):
        """Whether, over enough back-to-back samples to wrap the buffer twice, every window
        issues when it would with an unbounded buffer."""
        samples = 2 * capacity // self.sample_stride + 3
        unbounded = self.schedule(1 << 62, samples)
        bounded = self.schedule(capacity, samples)
        if bounded is None:
            return False
        return bounded[1] == unbounded[1]

    @property
    def bank_depth(self):
        return self.capacity // self.banks

    @property
    def line_buffer_shape(self):
        """``(depth, width)`` of each bank."""
        return self.bank_depth, self.shape.width

    @property
    def memory_bits(self):
        """Bits of the line buffer, ``capacity * width``."""
        return self.capacity * self.shape.width

    @property
    def register_bits(self):
        """Flip-flops of the output FIFO's entries (the bulk of the generator's registers)."""
        return self.fifo_depth * self.out_lanes * self.shape.width

    # Addresses and masks.

    def element(self, beat, lane):
        """``(ky, kx, c)`` of lane ``lane`` of window beat ``beat``, or ``None`` past the end."""
        kw = self.kernel2[1]
        if self.order == "window":
            e = beat * self.out_lanes + lane
            if e >= self.window_size:
                return None
            k, c = divmod(e, self.channels)
        else:
            k, g = divmod(beat, self.groups)
            c = g * self.out_lanes + lane
            if c >= self.channels:
                return None
        return k // kw, k % kw, c

    def offset(self, beat, lane):
        """Offset of lane ``lane`` of window beat ``beat`` from the window's base in the padded
        layout, ``ky*R + kx*C + c``; past the end, an offset that keeps the lanes in distinct
        banks."""
        element = self.element(beat, lane)
        if element is None:
            return self.offset(beat, 0) + lane
        ky, kx, c = element
        return ky * self.row_stride + kx * self.channels + c

    def steps(self):
        """The window base's steps: to the next window in a row, to the next row's first
        window, and to the next sample's first window."""
        (oh, ow), (sy, sx) = self.grid_out, self.stride2
        c, r = self.channels, self.row_stride
        return (sx * c, sy * r - (ow - 1) * sx * c,
                self.sample_stride - (oh - 1) * sy * r - (ow - 1) * sx * c)

    def position_steps(self):
        """The writer's steps: to the next position in a row, to the next row, and to the
        next sample's first position."""
        height, width = self.grid
        c, r = self.channels, self.row_stride
        return (c, r - (width - 1) * c,
                self.sample_stride - (height - 1) * r - (width - 1) * c)

    @property
    def first_address(self):
        """Padded address of the first input position, ``py*R + px*C``."""
        return self.padding2[0] * self.row_stride + self.padding2[1] * self.channels

    def needed_row(self, oy):
        """``row * W`` of the last input row that output row ``oy`` needs."""
        (height, width), kh, sy, py = self.grid, self.kernel2[0], self.stride2[0], \
            self.padding2[0]
        return min(oy * sy - py + kh - 1, height - 1) * width

    def needed_col(self, ox):
        """The last input column that output column ``ox`` needs."""
        width, kw, sx, px = self.grid[1], self.kernel2[1], self.stride2[1], self.padding2[1]
        return min(ox * sx - px + kw - 1, width - 1)

    def needed(self, oy, ox):
        """Raster index of the last input position the window of ``(oy, ox)`` needs."""
        return self.needed_row(oy) + self.needed_col(ox)

    def row_valid(self, oy):
        """Bit ``ky``: whether kernel row ``ky`` of output row ``oy`` lies inside the input."""
        height, (kh, _), (sy, _), (py, _) = self.grid[0], self.kernel2, self.stride2, \
            self.padding2
        return sum(1 << ky for ky in range(kh) if 0 <= oy * sy - py + ky < height)

    def col_valid(self, ox):
        """Bit ``kx``: whether kernel column ``kx`` of output column ``ox`` lies inside."""
        width, (_, kw), (_, sx), (_, px) = self.grid[1], self.kernel2, self.stride2, \
            self.padding2
        return sum(1 << kx for kx in range(kw) if 0 <= ox * sx - px + kx < width)

    # Timing.

    @property
    def fifo_depth(self):
        """Output FIFO entries: the credit loop (issue to write, the FIFO's latency, pop and
        credit), so that a ready sink sees one beat per cycle."""
        return WINDOW_STAGES + FIFO_LATENCY + 2

    @property
    def issue_delay(self):
        """Cycles from the transfer of the input beat that completes a position to the first
        cycle a window needing it can issue: the input register, the write and the count."""
        return 2

    @property
    def depth(self):
        """Cycles from issuing a window beat to its transfer (sink ready)."""
        return WINDOW_STAGES + FIFO_LATENCY

    def window_positions(self):
        """For every output beat of a sample, the raster index of the input position its
        window needs last."""
        (oh, ow) = self.grid_out
        return [self.needed(oy, ox) for oy in range(oh) for ox in range(ow)
                for _ in range(self.beats_per_window)]

    def output_times(self, arrivals):
        """Transfer cycles of an isolated sample's output beats, sink always ready.

        Parameters
        ----------
        arrivals : sequence of int
            Transfer cycles of the sample's :attr:`in_beats` input beats (as accepted: the
            generator may hold its input back when its buffer is full).

        Returns
        -------
        list of int
            Beat ``n`` issues at ``i_n = max(i_(n-1) + 1, a(p_n) + issue_delay)``, where
            ``a(p)`` is the transfer of the last beat of input position ``p`` and ``p_n`` the
            last position the beat's window needs; it is transferred at ``i_n + depth``.
        """
        arrivals = list(arrivals)
        per = self.beats_per_position
        issue, times = None, []
        for position in self.window_positions():
            ready = arrivals[position * per + per - 1] + self.issue_delay
            issue = ready if issue is None else max(issue + 1, ready)
            times.append(issue + self.depth)
        return times

    def __repr__(self):
        return (f"WindowPlan({'x'.join(map(str, self.spatial))}x{self.channels}, kernel "
                f"{list(self.kernel)}, stride {list(self.stride)}, padding "
                f"{list(self.padding)}, lanes {self.in_lanes} -> {self.out_lanes}, "
                f"{self.order} order)")
