"""TFLite's integer-quantization arithmetic done at compile time, so the device needs no float: fixed-point
multipliers (QuantizeMultiplier), fused activation ranges, and 256-entry tables for element-wise ops, each
computed with the same float32/float64 steps as TFLite so the results match bit for bit."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def round_half_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(int32 multiplier, exponent) with real = multiplier * 2^(exponent - 31), as TFLite's QuantizeMultiplier."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    fixed = int(round_half_away(fraction * (1 << 31)))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def activation_range(activation: str | None, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for int8 outputs."""

    def q(value: float) -> int:
        return zero_point + int(round_half_away(float(np.float32(value) / np.float32(scale))))

    low, high = -128, 127
    if activation == "RELU":
        low = max(low, q(0.0))
    elif activation == "RELU6":
        low, high = max(low, q(0.0)), min(high, q(6.0))
    elif activation == "RELU_N1_TO_1":
        low, high = max(low, q(-1.0)), min(high, q(1.0))
    elif activation is not None:
        raise ValueError(f"fused activation {activation} is not supported")
    return low, high


def round_half_away_f32(x: np.ndarray) -> np.ndarray:
    """std::round on float32 values: the fractional part is exact, so no 0.49999997 + 0.5 surprise."""
    whole = np.trunc(x)
    fraction = x - whole
    return whole + (fraction >= 0.5) - (fraction <= -0.5)


def lookup_table(in_scale, in_zero: int, out_scale, out_zero: int, fn: Callable[[np.ndarray], np.ndarray]):
    """TFLite's LUTPopulate: dequantize every int8, transform in float32, requantize with rounding, clamp."""
    values = np.arange(-128, 128, dtype=np.int32)
    dequantized = np.float32(in_scale) * (values - in_zero).astype(np.float32)
    transformed = fn(dequantized.astype(np.float32)).astype(np.float32)
    inverse = np.float32(1.0) / np.float32(out_scale)
    scaled = (transformed * inverse).astype(np.float32)
    return np.clip(round_half_away_f32(scaled).astype(np.int64) + out_zero, -128, 127).astype(np.int8)
