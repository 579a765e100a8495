"""Width, depth and resolution scaling: the one rounding helper and its companions.

Pure Python; imports no Keras.
"""

from __future__ import annotations

import math

#: Compound-scaling constants of the EfficientNet paper (Tan & Le, 2019, eq. 3).
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None,
                   round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``.

    The result is at least ``min_value`` (default ``divisor``). When rounding down would lose
    more than ``1 - round_limit`` of ``value`` the result is bumped up one step. EfficientNet
    (V1, Lite, EdgeTPU) uses ``round_limit=0.9``; EfficientNetV2 uses ``0.0`` (no bump).

    Args:
        value: the unrounded channel count.
        divisor: the multiple to round to.
        min_value: the smallest allowed result; ``divisor`` when None.
        round_limit: the fraction of ``value`` below which the result is bumped up.

    Returns:
        The rounded channel count.

    Example:
        >>> from keras_efficientnet.specs.scaling import make_divisible
        >>> make_divisible(32 * 1.1), make_divisible(1280 * 1.8), make_divisible(20, round_limit=0.0)
        (32, 2304, 24)
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return int(rounded)


def scale_width(channels: int, width: float, divisor: int = 8, min_value: int | None = None,
                round_limit: float = 0.9) -> int:
    """Scale a channel count by the width multiplier and round it with :func:`make_divisible`.

    Example:
        >>> from keras_efficientnet.specs.scaling import scale_width
        >>> scale_width(40, 1.4)
        56
    """
    return make_divisible(channels * width, divisor, min_value, round_limit)


def scale_depth(repeats: int, depth: float) -> int:
    """Scale a stage's block count by the depth multiplier, rounding up.

    Example:
        >>> from keras_efficientnet.specs.scaling import scale_depth
        >>> scale_depth(4, 3.1)
        13
    """
    return int(math.ceil(depth * repeats))


def compound_coefficients(phi: float, alpha: float = ALPHA, beta: float = BETA,
                          gamma: float = GAMMA, base_resolution: int = 224) -> tuple[float, float, int]:
    """Width, depth and resolution for compound coefficient ``phi``.

    Depth is ``alpha ** phi``, width ``beta ** phi`` and resolution
    ``base_resolution * gamma ** phi`` rounded to a multiple of 8 (so strides divide it).

    Returns:
        ``(width, depth, resolution)``.

    Example:
        >>> from keras_efficientnet.specs.scaling import compound_coefficients
        >>> compound_coefficients(0)
        (1.0, 1.0, 224)
        >>> w, d, r = compound_coefficients(1); round(w, 3), round(d, 3), r
        (1.1, 1.2, 256)
    """
    if phi < 0:
        raise ValueError(f"phi must be >= 0, got {phi}.")
    width, depth = beta ** phi, alpha ** phi
    resolution = int(round(base_resolution * gamma ** phi / 8) * 8)
    return width, depth, resolution


def drop_path_rates(num_blocks: int, rate: float) -> list[float]:
    """Stochastic-depth (drop-path) rate for each block, rising linearly from 0.

    Block ``i`` of ``num_blocks`` (counted after depth scaling) drops its residual branch
    with probability ``rate * i / num_blocks``.

    Example:
        >>> from keras_efficientnet.specs.scaling import drop_path_rates
        >>> [round(r, 3) for r in drop_path_rates(4, 0.2)]
        [0.0, 0.05, 0.1, 0.15]
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop_connect_rate must lie in [0, 1), got {rate}.")
    return [rate * i / num_blocks for i in range(num_blocks)]
