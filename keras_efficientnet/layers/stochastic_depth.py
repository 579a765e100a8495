"""Per-sample stochastic depth (drop path)."""

from __future__ import annotations

import keras

from .common import serializable


@serializable
class StochasticDepth(keras.layers.Layer):
    """Drops a residual branch for whole samples during training.

    Each sample's branch is zeroed with probability ``rate`` and otherwise scaled by
    ``1 / (1 - rate)``, so the expected value is unchanged; at inference the layer is the
    identity. (keras.applications writes this as ``Dropout`` with ``noise_shape``.)

    Args:
        rate: probability of dropping the branch, in ``[0, 1)``.
        seed: optional seed for the random draws.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.layers import StochasticDepth
        >>> layer = StochasticDepth(0.5, seed=1)
        >>> x = np.ones((4, 2, 2, 3), "float32")
        >>> bool(np.all(np.asarray(layer(x, training=False)) == 1.0))
        True
        >>> y = np.asarray(layer(x, training=True))
        >>> sorted(set(np.unique(y).tolist())) in ([0.0, 2.0], [0.0], [2.0])
        True
    """

    def __init__(self, rate: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"StochasticDepth rate must lie in [0, 1), got {rate}.")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if rate > 0 else None
        self.supports_masking = True
        # No weights to create, and in inference the layer is never called: mark it built now
        # (as keras.layers.Dropout does). An unbuilt sublayer makes Keras' JAX predict run the
        # whole model eagerly once, op by op, before compiling (a minute for B0 at batch 32).
        if hasattr(self, "_build_at_init"):
            self._build_at_init()
        else:  # pragma: no cover - older Keras
            self.built = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (keras.ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = keras.ops.floor(keep + noise)
        return inputs * (mask / keep)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
