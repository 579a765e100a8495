"""Keras layers of EfficientDet that core Keras has not got: BiFPN's weighted fusion."""

from __future__ import annotations

import keras
from keras import ops

from ..layers.common import serializable

WEIGHT_METHODS = ("fastattn", "sum", "attn")


@serializable
class WeightedFusion(keras.layers.Layer):
    """BiFPN's combination of same-shaped feature maps.

    ``"fastattn"`` (fast normalised fusion, EfficientDet paper eq. 3):
    ``sum_i relu(w_i) * x_i / (sum_j relu(w_j) + epsilon)`` with one learned ``w_i`` per
    input, initialised to 1; ``"attn"``: softmax-weighted; ``"sum"``: a plain sum (no weights).

    Args:
        weight_method: ``"fastattn"``, ``"attn"`` or ``"sum"``.
        epsilon: added to the weight sum (effdet and automl: 1e-4).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection.layers import WeightedFusion
        >>> a, b = np.ones((1, 2, 2, 3), "float32"), 3 * np.ones((1, 2, 2, 3), "float32")
        >>> float(WeightedFusion()([a, b])[0, 0, 0, 0])  # (1 + 3) / (2 + 1e-4)
        1.99990...
    """

    def __init__(self, weight_method: str = "fastattn", epsilon: float = 1e-4, **kwargs):
        super().__init__(**kwargs)
        if weight_method not in WEIGHT_METHODS:
            raise ValueError(f"weight_method must be one of {WEIGHT_METHODS}; got {weight_method!r}.")
        self.weight_method = weight_method
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not isinstance(input_shape[0], (list, tuple)):
            raise ValueError("WeightedFusion takes a list of feature maps.")
        shapes = {tuple(s) for s in input_shape}
        if len(shapes) != 1:
            raise ValueError(f"WeightedFusion needs inputs of one shape; got {sorted(shapes, key=str)}.")
        if self.weight_method != "sum":
            self.edge_weights = self.add_weight(name="edge_weights", shape=(len(input_shape),),
                                                initializer="ones")

    def call(self, inputs):
        if self.weight_method == "sum":
            out = inputs[0]
            for x in inputs[1:]:
                out = out + x
            return out
        w = ops.cast(self.edge_weights, inputs[0].dtype)
        if self.weight_method == "attn":
            w = ops.softmax(w)
            out = inputs[0] * w[0]
            for i in range(1, len(inputs)):
                out = out + inputs[i] * w[i]
            return out
        w = ops.relu(w)
        total = ops.sum(w) + self.epsilon
        out = inputs[0] * w[0] / total
        for i in range(1, len(inputs)):
            out = out + inputs[i] * w[i] / total
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(weight_method=self.weight_method, epsilon=self.epsilon)
        return config
