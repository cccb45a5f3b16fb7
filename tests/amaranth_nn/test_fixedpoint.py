"""Fixed-point formats and the integer operations, against plain Python-int arithmetic."""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amaranth_nn.fixedpoint import Activation, QFormat, quantize, requantize, signed_width


def ref_requantize(acc, shift, fmt):
    """The contract in plain Python ints."""
    y = (acc + (1 << (shift - 1))) >> shift if shift > 0 else acc << -shift
    return min(max(y, fmt.min), fmt.max)


class TestQFormat:
    def test_range(self):
        assert (QFormat(8, 4).min, QFormat(8, 4).max) == (-128, 127)
        assert (QFormat(2, 9).min, QFormat(2, 9).max) == (-2, 1)
        assert (QFormat(62, 0).min, QFormat(62, 0).max) == (-(1 << 61), (1 << 61) - 1)

    def test_str_and_dict(self):
        assert str(QFormat(8, -3)) == "Q(8, -3)"
        assert QFormat(8, 12).to_dict() == {"width": 8, "frac": 12}

    @pytest.mark.parametrize("width", [1, 63, 8.0, True, "8"])
    def test_bad_width(self, width):
        with pytest.raises(ValueError, match=re.escape(
                f"Width must be an integer from 2 to 62, not {width!r}")):
            QFormat(width, 0)

    def test_bad_frac(self):
        with pytest.raises(ValueError, match=re.escape(
                "Fractional bits must be an integer, not 1.5")):
            QFormat(8, 1.5)


class TestQuantize:
    def test_ties_round_half_to_even(self):
        fmt = QFormat(8, 0)
        values = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, -3.5]
        assert quantize(values, fmt).tolist() == [0, 2, 2, 0, -2, -2, 4, -4]

    def test_ties_with_fraction_bits(self):
        # 0.125 * 2**2 = 0.5 -> 0; 0.375 * 4 = 1.5 -> 2; -0.625 * 4 = -2.5 -> -2
        assert quantize([0.125, 0.375, -0.625], QFormat(8, 2)).tolist() == [0, 2, -2]

    def test_saturation_both_sides(self):
        fmt = QFormat(8, 4)
        assert quantize([7.9375, 7.97, 1e300, -8.0, -8.04, -1e300], fmt).tolist() == \
            [127, 127, 127, -128, -128, -128]

    def test_frac_beyond_width(self):
        fmt = QFormat(4, 10)  # range [-8, 7] * 2**-10
        assert quantize([3 / 1024, 7 / 1024, 9 / 1024, -8 / 1024], fmt).tolist() == \
            [3, 7, 7, -8]

    def test_negative_frac(self):
        assert quantize([8, 12, -20, 1000], QFormat(6, -2)).tolist() == [2, 3, -5, 31]

    def test_wide_format_stays_exact(self):
        fmt = QFormat(62, 0)
        assert quantize([2.0 ** 70, -2.0 ** 70], fmt).tolist() == [fmt.max, fmt.min]
        assert quantize([2.0 ** 52 + 1], fmt).tolist() == [2 ** 52 + 1]

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_non_finite(self, value):
        with pytest.raises(ValueError, match=re.escape(
                f"Cannot quantize {value} at index (1,) to Q(8, 4): value is not finite")):
            quantize([0.0, value], QFormat(8, 4))

    def test_non_finite_scalar(self):
        with pytest.raises(ValueError, match=re.escape(
                "Cannot quantize nan to Q(8, 4): value is not finite")):
            quantize(math.nan, QFormat(8, 4))

    @settings(max_examples=200, deadline=None)
    @given(st.integers(2, 32), st.integers(-8, 40),
           st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20))
    def test_against_python(self, width, frac, values):
        fmt = QFormat(width, frac)
        expected = [min(max(round(v * 2 ** frac), fmt.min), fmt.max) for v in values]
        assert quantize(values, fmt).tolist() == expected


class TestRequantize:
    def test_ties_round_half_up(self):
        fmt = QFormat(8, 0)
        # acc / 4: 0.5 -> 1, -0.5 -> 0, 1.5 -> 2, -1.5 -> -1, 0.25 -> 0, -0.75 -> -1
        acc = np.array([2, -2, 6, -6, 1, -3])
        assert requantize(acc, 2, fmt).tolist() == [1, 0, 2, -1, 0, -1]

    def test_saturation_both_sides(self):
        fmt = QFormat(8, 0)
        acc = np.array([127 * 16 + 7, 127 * 16 + 8, -128 * 16 - 8, -128 * 16 - 9])
        assert requantize(acc, 4, fmt).tolist() == [127, 127, -128, -128]

    def test_left_shift_exact_and_saturating(self):
        fmt = QFormat(8, 0)
        acc = np.array([3, -4, 31, 32, -32, -33, 0])
        assert requantize(acc, -2, fmt).tolist() == [12, -16, 124, 127, -128, -128, 0]
        assert requantize(np.array([5, -5]), 0, fmt).tolist() == [5, -5]

    def test_left_shift_beyond_64_bits(self):
        fmt = QFormat(16, 0)
        assert requantize(np.array([1, -1, 0]), -70, fmt).tolist() == [32767, -32768, 0]

    def test_wide_accumulator(self):
        fmt = QFormat(32, 0)
        acc = np.array([(1 << 70) + 5, -(1 << 70), (1 << 40) + (1 << 9)], dtype=object)
        assert requantize(acc, 10, fmt).tolist() == [fmt.max, fmt.min, (1 << 30) + 1]

    def test_large_shift_on_int64(self):
        fmt = QFormat(8, 0)
        acc = np.array([(1 << 61) + 3, -(1 << 61), 1 << 60])
        assert requantize(acc, 62, fmt).tolist() == [1, 0, 0]

    @settings(max_examples=300, deadline=None)
    @given(st.integers(2, 32), st.integers(-40, 70),
           st.lists(st.integers(-(1 << 80), 1 << 80), min_size=1, max_size=10))
    def test_against_python(self, width, shift, accs):
        fmt = QFormat(width, 0)
        expected = [ref_requantize(a, shift, fmt) for a in accs]
        assert requantize(np.array(accs, dtype=object), shift, fmt).tolist() == expected
        small = [a >> 20 for a in accs]
        expected = [ref_requantize(a, shift, fmt) for a in small]
        assert requantize(np.array(small, dtype=np.int64), shift, fmt).tolist() == expected


class TestActivation:
    def test_apply(self):
        y = np.array([-128, -5, 0, 5, 127])
        assert Activation.identity().apply(y).tolist() == [-128, -5, 0, 5, 127]
        assert Activation.relu().apply(y).tolist() == [0, 0, 0, 5, 127]
        assert Activation.hardtanh(-16, 16).apply(y).tolist() == [-16, -5, 0, 5, 16]

    def test_output_range(self):
        fmt = QFormat(8, 4)
        assert Activation.identity().output_range(fmt) == (-128, 127)
        assert Activation.relu().output_range(fmt) == (0, 127)
        assert Activation.hardtanh(-16, 16).output_range(fmt) == (-16, 16)

    def test_errors(self):
        with pytest.raises(ValueError, match=re.escape(
                "Activation must be one of identity, relu, hardtanh, not 'gelu'")):
            Activation("gelu")
        with pytest.raises(ValueError, match=re.escape(
                "Hardtanh bounds must have lo <= hi, not [3, -3]")):
            Activation.hardtanh(3, -3)
        with pytest.raises(ValueError, match=re.escape(
                "Hardtanh bound 'hi' must be an integer, not None")):
            Activation("hardtanh", 1)
        with pytest.raises(ValueError, match=re.escape("Activation 'relu' takes no bounds")):
            Activation("relu", 0, 1)


def test_signed_width():
    assert signed_width(0, 0) == 1
    assert signed_width(-1, 0) == 1
    assert signed_width(0, 1) == 2
    assert signed_width(-128, 127) == 8
    assert signed_width(-129, 0) == 9
    assert signed_width(0, 128) == 9
    assert signed_width(-(1 << 70), 1) == 71
    with pytest.raises(ValueError, match=re.escape("Range must have lo <= hi, not [1, 0]")):
        signed_width(1, 0)
