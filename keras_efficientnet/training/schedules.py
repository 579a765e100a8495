"""Learning-rate schedules: linear warm-up then cosine decay, as Keras' own ``CosineDecay``.

``warmup_cosine_decay(peak, total_steps, warmup_steps, alpha)`` returns
``keras.optimizers.schedules.CosineDecay(0.0, total_steps - warmup_steps, alpha,
warmup_target=peak, warmup_steps=warmup_steps)``: a core Keras object, so a ``.keras`` file
compiled with it loads without this package. :class:`WarmupCosineDecay` (this package's former
schedule, the same rates) stays registered so that older files load.
"""

from __future__ import annotations

import math

import keras


def warmup_cosine_decay(peak: float, total_steps: int, warmup_steps: int = 0, alpha: float = 0.0):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to
    ``peak * alpha`` at ``total_steps``: Keras' ``CosineDecay`` with ``warmup_target``.

    ``lr(s) = peak * s / warmup_steps`` for ``s < warmup_steps``, else
    ``peak * (alpha + (1 - alpha) * (1 + cos(pi * t)) / 2)`` with
    ``t = min(1, (s - warmup_steps) / (total_steps - warmup_steps))``. When the whole run is
    warm-up (``warmup_steps == total_steps``) the decay lasts one step after it.

    Args:
        peak: the learning rate at the end of warm-up.
        total_steps: steps of the whole run.
        warmup_steps: steps of linear warm-up (0 for none).
        alpha: final rate as a fraction of ``peak``.

    Returns:
        A ``keras.optimizers.schedules.CosineDecay``.

    Raises:
        ValueError: unless ``0 <= warmup_steps <= total_steps`` and ``total_steps > 0``.

    Example:
        >>> from keras_efficientnet.training.schedules import warmup_cosine_decay
        >>> lr = warmup_cosine_decay(0.1, total_steps=100, warmup_steps=10)
        >>> [round(float(lr(s)), 4) for s in (0, 5, 10, 55, 100)]
        [0.0, 0.05, 0.1, 0.05, 0.0]
    """
    if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"Need 0 <= warmup_steps <= total_steps and total_steps > 0, got "
                         f"warmup_steps={warmup_steps}, total_steps={total_steps}.")
    return keras.optimizers.schedules.CosineDecay(
        0.0, max(1, int(total_steps) - int(warmup_steps)), alpha=float(alpha),
        warmup_target=float(peak), warmup_steps=int(warmup_steps))


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to
    ``peak * alpha`` at ``total_steps`` (constant afterwards).

    Kept so that files saved before 0.1 still load; new code gets the same rates from
    Keras' own schedule through :func:`warmup_cosine_decay` (a test proves them equal).

    ``lr(s) = peak * s / warmup_steps`` for ``s < warmup_steps``, else
    ``peak * (alpha + (1 - alpha) * (1 + cos(pi * t)) / 2)`` with
    ``t = min(1, (s - warmup_steps) / (total_steps - warmup_steps))``.

    Args:
        peak: the learning rate at the end of warm-up.
        total_steps: steps of the whole run.
        warmup_steps: steps of linear warm-up (0 for none).
        alpha: final rate as a fraction of ``peak``.

    Example:
        >>> from keras_efficientnet.training.schedules import WarmupCosineDecay
        >>> lr = WarmupCosineDecay(0.1, total_steps=100, warmup_steps=10)
        >>> [round(float(lr(s)), 4) for s in (0, 5, 10, 55, 100)]
        [0.0, 0.05, 0.1, 0.05, 0.0]
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0, alpha: float = 0.0):
        if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"Need 0 <= warmup_steps <= total_steps and total_steps > 0, got "
                             f"warmup_steps={warmup_steps}, total_steps={total_steps}.")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.alpha = float(alpha)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        decay = float(max(self.total_steps - self.warmup_steps, 1))
        t = ops.clip((step - self.warmup_steps) / decay, 0.0, 1.0)
        cosine = self.peak * (self.alpha + (1.0 - self.alpha) * 0.5 * (1.0 + ops.cos(math.pi * t)))
        warmup = self.peak * step / warm
        return ops.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "alpha": self.alpha}
