"""Layers the segmentation decoders need beyond Keras' core ones."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class BilinearUpsample2D(keras.layers.Layer):
    """Bilinear upsampling by an integer factor with ``align_corners=True`` (PyTorch's
    ``nn.Upsample(mode="bilinear", align_corners=True)``, which smp's FPN uses; Keras'
    ``UpSampling2D`` samples at half-pixel centres instead).

    Output pixel ``i`` of ``n * scale`` samples input position ``i * (n - 1) / (n * scale - 1)``.

    Args:
        scale: the integer upsampling factor.
        data_format: ``"channels_last"`` or ``"channels_first"`` (default: Keras' setting).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.segmentation.layers import BilinearUpsample2D
        >>> x = np.array([0.0, 3.0], "float32").reshape(1, 1, 2, 1)
        >>> y = BilinearUpsample2D(2, data_format="channels_last")(np.repeat(x, 2, axis=1))
        >>> np.asarray(y)[0, 0, :, 0].round(3).tolist()
        [0.0, 1.0, 2.0, 3.0]
    """

    def __init__(self, scale: int = 2, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        self.data_format = data_format or keras.config.image_data_format()

    def _axis(self, x, axis):
        n = ops.shape(x)[axis]
        m = n * self.scale
        pos = ops.cast(ops.arange(m), "float32") * (ops.cast(n, "float32") - 1.0) \
            / ops.maximum(ops.cast(m, "float32") - 1.0, 1.0)
        lo = ops.cast(ops.floor(pos), "int32")
        lo = ops.minimum(lo, n - 1)
        hi = ops.minimum(lo + 1, n - 1)
        frac = pos - ops.cast(lo, "float32")
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        frac = ops.cast(ops.reshape(frac, shape), x.dtype)
        a = ops.take(x, lo, axis=axis)
        b = ops.take(x, hi, axis=axis)
        return a + (b - a) * frac

    def call(self, x):
        h, w = (1, 2) if self.data_format == "channels_last" else (2, 3)
        return self._axis(self._axis(x, h), w)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis in ((1, 2) if self.data_format == "channels_last" else (2, 3)):
            if shape[axis] is not None:
                shape[axis] = shape[axis] * self.scale
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "data_format": self.data_format}
