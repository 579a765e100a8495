"""Input preprocessing and ImageNet label decoding.

Models normalise their inputs in the graph (``include_preprocessing=True``), so
:func:`preprocess_input` is the identity, as in keras.applications. The ImageNet class names
(WordNet ids, short names and descriptions) ship with the package, so decoding works offline.
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np

from .specs.model import PREPROCESSINGS


def preprocess_input(x, data_format=None):
    """The identity: EfficientNet models here take 0-255 pixels and normalise in the graph.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet import preprocess_input
        >>> float(preprocess_input(np.array([255.0])).max())
        255.0
    """
    del data_format
    return x


def normalize(images, preprocessing: str = "imagenet", data_format: str = "channels_last"):
    """Apply a weight source's normalisation in NumPy, for models built with
    ``include_preprocessing=False``.

    Args:
        images: 0-255 pixels, channels on the last (or first) axis.
        preprocessing: a name from ``keras_efficientnet.specs.PREPROCESSINGS``.
        data_format: where the channel axis is.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.preprocessing import normalize
        >>> normalize(np.full((1, 1, 1, 3), 127.0), "lite")[0, 0, 0].tolist()
        [0.0, 0.0, 0.0]
    """
    pre = PREPROCESSINGS[preprocessing]
    shape = (1,) * (np.ndim(images) - 1) + (3,) if data_format == "channels_last" else (3, 1, 1)
    mean = np.reshape(np.asarray(pre.mean, "float32"), shape)
    std = np.reshape(np.asarray(pre.std, "float32"), shape)
    return ((np.asarray(images, "float32") - mean) / std).astype("float32")


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> list[tuple[str, str, str]]:
    """The 1000 ImageNet-1k classes as ``(wordnet_id, short_name, description)``.

    Example:
        >>> from keras_efficientnet.preprocessing import imagenet_classes
        >>> imagenet_classes()[967][1]
        'espresso'
    """
    path = os.path.join(os.path.dirname(__file__), "data", "imagenet_classes.json")
    with open(path) as f:
        return [tuple(row) for row in json.load(f)]


def decode_predictions(preds, top: int = 5):
    """Top ImageNet classes for each row of ``preds``, offline.

    Args:
        preds: ``(batch, 1000)`` probabilities or logits.
        top: how many classes per row.

    Returns:
        For each row, a list of ``(wordnet_id, name, score)`` tuples, best first (the format
        of ``keras.applications.imagenet_utils.decode_predictions``).

    Raises:
        ValueError: when ``preds`` is not ``(batch, 1000)``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet import decode_predictions
        >>> p = np.zeros((1, 1000)); p[0, 281] = 1.0
        >>> decode_predictions(p, top=1)[0][0][:2]
        ('n02123045', 'tabby')
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(f"decode_predictions expects a batch of 1000 ImageNet scores, shape "
                         f"(batch, 1000); got {preds.shape}.")
    classes = imagenet_classes()
    out = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        out.append([(classes[i][0], classes[i][1], float(row[i])) for i in best])
    return out
