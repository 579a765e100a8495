"""Losses: cross-entropy with label smoothing on integer labels."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy with label smoothing on integer labels (Keras' sparse loss has none).

    Args:
        num_classes: number of classes (width of the one-hot encoding).
        label_smoothing: the smoothing ``eps``: targets ``(1 - eps) * one_hot + eps / K``.
        from_logits: whether predictions are logits.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.training.losses import SparseCategoricalCrossentropyWithSmoothing
        >>> loss = SparseCategoricalCrossentropyWithSmoothing(2, 0.1)
        >>> round(float(loss(np.array([0]), np.array([[0.5, 0.5]], "float32"))), 4)
        0.6931
    """

    def __init__(self, num_classes: int, label_smoothing: float = 0.1, from_logits: bool = False,
                 name: str = "sparse_categorical_crossentropy_with_smoothing", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        ops = keras.ops
        y = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes,
                        dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(y, y_pred, from_logits=self.from_logits,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing, "from_logits": self.from_logits}
