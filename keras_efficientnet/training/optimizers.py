"""Optimizers: RMSprop with a warmed-up weight EMA, and the RMSprop epsilon conventions.

RMSprop epsilon conventions. TensorFlow 1's ``RMSPropOptimizer`` (used by the paper) computes
``lr * g / sqrt(ms + eps)``: epsilon *inside* the square root. Keras 3's ``RMSprop`` does the
same (``keras/src/optimizers/rmsprop.py``: ``increment = lr * g / sqrt(velocity + epsilon)``,
and its momentum buffer accumulates that increment, as TF1's does), so the paper's 0.001 is
passed unchanged. PyTorch's ``torch.optim.RMSprop`` puts epsilon *outside*
(``g / (sqrt(v) + eps)``); a PyTorch epsilon ``e`` corresponds to about ``e**2`` here
(:func:`torch_rmsprop_epsilon`). Two small remaining differences: TF1 starts the mean square at
1.0 while Keras starts it at 0 (only the first few steps differ), and the paper's weight decay is
an L2 term in the loss while Keras' ``weight_decay`` is decoupled (``w -= lr * wd * w``).

Weight EMA. The paper evaluates an exponential moving average of the weights (decay 0.9999),
kept as TensorFlow's ``ExponentialMovingAverage`` with ``num_updates=global_step`` does: the
decay used at step ``t`` is ``min(decay, (1 + t) / (10 + t))``, so early in training the average
follows the weights closely instead of staying at the initialisation. Keras' built-in
``use_ema`` uses the fixed decay from the first step (and ``fit`` ends by overwriting the weights
with the average), which after a short fine-tune returns almost the initial weights;
:class:`RMSpropEMA` adds the warm-up and is what :meth:`Recipe.optimizer` returns.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class RMSpropEMA(keras.optimizers.RMSprop):
    """Keras ``RMSprop`` whose weight EMA warms up like TensorFlow's ``ExponentialMovingAverage``.

    With ``use_ema=True`` the average is updated after every step ``t`` (0-based) with the decay
    ``min(ema_momentum, (1 + t) / (10 + t))`` (``ema_warmup=True``) or ``ema_momentum``
    (``ema_warmup=False``, Keras' behaviour); the first step copies the weights. As with any
    Keras optimizer, ``fit`` ends by writing the average into the model
    (``finalize_variable_values``).

    Args:
        ema_warmup: use the warm-up decay.
        **kwargs: ``keras.optimizers.RMSprop`` arguments.

    Example:
        >>> from keras_efficientnet.training.optimizers import RMSpropEMA
        >>> opt = RMSpropEMA(1e-3, use_ema=True, ema_momentum=0.9999)
        >>> [round(opt.ema_decay(t), 4) for t in (1, 10, 1000)]
        [0.1818, 0.55, 0.9911]
    """

    def __init__(self, *args, ema_warmup: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema_warmup = bool(ema_warmup)

    def ema_decay(self, step):
        """The EMA decay used after step ``step`` (0-based; a number or a tensor)."""
        if not self.ema_warmup:
            return self.ema_momentum
        if isinstance(step, (int, float)):
            return min(self.ema_momentum, (1.0 + step) / (10.0 + step))
        step = keras.ops.cast(step, "float32")
        return keras.ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))

    def _update_model_variables_moving_average(self, trainable_variables):
        # Keras calls this after each update step, before ``iterations`` is incremented.
        if not self.use_ema:
            return
        first = keras.ops.equal(self.iterations, 0)
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is None:
                continue
            decay = keras.ops.cast(self.ema_decay(self.iterations), var.dtype)
            decay = keras.ops.where(first, keras.ops.zeros_like(decay), decay)
            average.assign(decay * average + (1 - decay) * var)

    def get_config(self):
        return {**super().get_config(), "ema_warmup": self.ema_warmup}


def torch_rmsprop_epsilon(eps_outside_sqrt: float) -> float:
    """Convert a PyTorch-style RMSprop epsilon (outside the square root) to Keras' (inside).

    ``g / (sqrt(v) + e)`` and ``g / sqrt(v + e**2)`` agree where ``v`` is small compared to
    ``e**2`` (where epsilon matters) and both become ``g / sqrt(v)`` where it is large.

    Example:
        >>> from keras_efficientnet.training.optimizers import torch_rmsprop_epsilon
        >>> torch_rmsprop_epsilon(0.1)
        0.010000000000000002
    """
    return float(eps_outside_sqrt) ** 2
