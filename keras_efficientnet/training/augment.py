"""Augmentation from Keras core layers: ``RandAugment``, ``MixUp``, ``CutMix``
(:func:`augmenter`), and the light default of ``keras-efficientnet train`` on folders
(:func:`folder_augmentation`)."""

from __future__ import annotations

import keras

#: Keras' RandAugment takes a normalised ``factor`` in [0, 1]; the papers quote magnitudes on a
#: 0-30 scale (EfficientNetV2-L uses 25). We map ``factor = magnitude / 30`` linearly.
RANDAUG_MAX_MAGNITUDE = 30.0


def augmenter(num_classes: int, randaugment_magnitude: float = 0.0, randaugment_ops: int = 2,
              mixup_alpha: float = 0.0, cutmix: float = 0.0, seed: int | None = None,
              value_range=(0, 255)):
    """A batch function ``(images, labels) -> (images, one_hot_labels)`` for ``tf.data.map``.

    Applies Keras core layers: ``keras.layers.RandAugment`` (``factor = magnitude / 30``),
    then ``keras.layers.MixUp`` and/or ``keras.layers.CutMix`` (which mix labels, hence the
    one-hot output). Integer labels are one-hot encoded.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.training.augment import augmenter
        >>> fn = augmenter(3, randaugment_magnitude=10, mixup_alpha=0.2, seed=0)
        >>> images, labels = fn(np.full((4, 32, 32, 3), 128.0, "float32"), np.array([0, 1, 2, 0]))
        >>> tuple(images.shape), tuple(labels.shape)
        ((4, 32, 32, 3), (4, 3))
    """
    layers = []
    if randaugment_magnitude > 0:
        factor = min(1.0, randaugment_magnitude / RANDAUG_MAX_MAGNITUDE)
        layers.append(keras.layers.RandAugment(value_range=value_range, num_ops=randaugment_ops,
                                               factor=factor, seed=seed))
    mixers = []
    if mixup_alpha > 0:
        mixers.append(keras.layers.MixUp(alpha=mixup_alpha, seed=seed))
    if cutmix > 0:
        mixers.append(keras.layers.CutMix(factor=cutmix, seed=seed))

    def apply(images, labels):
        ops = keras.ops
        if len(labels.shape) == 1 or (len(labels.shape) == 2 and labels.shape[-1] == 1):
            labels = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"), num_classes)
        labels = ops.cast(labels, "float32")
        for layer in layers:
            images = layer(images, training=True)
        for layer in mixers:
            out = layer({"images": images, "labels": labels}, training=True)
            images, labels = out["images"], out["labels"]
        return images, labels

    return apply


def folder_augmentation(seed: int | None = None, flip: bool = True, translate: float = 0.1,
                        zoom: float = 0.1):
    """The default augmentation of ``keras-efficientnet train --data``: Keras core layers
    (random horizontal flip, translation and zoom) in a ``keras.Sequential``, for 0-255 images.

    Apply it to training batches only, in the ``tf.data`` pipeline:
    ``ds.map(lambda x, y: (aug(x, training=True), y))``.

    Args:
        seed: random seed of the layers.
        flip: random horizontal flips.
        translate: largest shift, as a fraction of height and width (0 for none).
        zoom: largest zoom in or out, as a fraction (0 for none).

    Returns:
        A ``keras.Sequential`` (the identity outside training).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.training.augment import folder_augmentation
        >>> aug = folder_augmentation(seed=0)
        >>> tuple(aug(np.full((2, 32, 32, 3), 100.0, "float32"), training=True).shape)
        (2, 32, 32, 3)
    """
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if translate > 0:
        layers.append(keras.layers.RandomTranslation(translate, translate, fill_mode="reflect",
                                                     seed=seed))
    if zoom > 0:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="reflect", seed=seed))
    return keras.Sequential(layers, name="folder_augmentation")
