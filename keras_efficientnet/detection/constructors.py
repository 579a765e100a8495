"""``EfficientDetD0()`` .. ``EfficientDetD7X()``, ``EfficientDetLite0()`` .. ``Lite4()``.

Each builds the named effdet model (:func:`~keras_efficientnet.detection.build_efficientdet`),
optionally loads an effdet checkpoint file, and optionally appends
:class:`~keras_efficientnet.detection.DetectionPostProcess` for final detections.
"""

from __future__ import annotations

import os

import keras

from .config import get_config
from .model import build_efficientdet, load_effdet_weights
from .postprocess import DetectionPostProcess

__all__ = []


def efficientdet(config, num_classes: int = 90, input_shape=None, weights=None,
                 include_postprocess: bool = False, include_preprocessing: bool = True,
                 postprocess_kwargs=None, name=None):
    """Build an EfficientDet by config name (what the ``EfficientDet*`` constructors call).

    Args:
        config: a name (``"d0"``, ``"tf_efficientdet_lite2"``) or a ``DetectionConfig``.
        num_classes: classes of the class net (effdet's default: 90 COCO ids).
        input_shape: ``(H, W, 3)``, both divisible by ``2**max_level`` (default: the
            config's image size).
        weights: None (random) or the path of an effdet ``.pth``/``.safetensors`` state dict
            of this model (loaded strictly through the effdet converter).
        include_postprocess: append :class:`DetectionPostProcess` (outputs ``boxes``,
            ``confidence``, ``classes``, ``num_detections``) instead of the raw
            ``{"classes", "boxes"}``.
        include_preprocessing: take 0-255 pixels (False: normalised inputs, as effdet).
        postprocess_kwargs: arguments overriding the post-process layer's (e.g.
            ``{"class_offset": 1}``).
        name: model name (default: the config's).

    Example:
        >>> from keras_efficientnet.detection.constructors import efficientdet
        >>> efficientdet("lite0", num_classes=2, input_shape=(128, 128, 3)).name
        'tf_efficientdet_lite0'
    """
    c = get_config(config)
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)) or not str(weights).endswith(
                (".pth", ".pt", ".bin", ".safetensors")):
            raise ValueError(f"weights must be None or the path of an effdet .pth/.safetensors "
                             f"file; got {weights!r}. Hub downloads of EfficientDet weights are "
                             "not available: download the effdet checkpoint and pass its path.")
        if not os.path.isfile(weights):
            raise ValueError(f"weights file {os.fspath(weights)!r} does not exist.")
    if not isinstance(include_postprocess, bool):
        raise ValueError(f"include_postprocess must be True or False; got {include_postprocess!r}.")
    if postprocess_kwargs is not None and not isinstance(postprocess_kwargs, dict):
        raise ValueError(f"postprocess_kwargs must be a dict or None; got {postprocess_kwargs!r}.")
    model = build_efficientdet(c, num_classes=num_classes, input_shape=input_shape,
                               include_preprocessing=include_preprocessing, name=c.name)
    if weights is not None:
        load_effdet_weights(model, weights, c)
    if not include_postprocess:
        if name:
            model.name = name
        return model
    shape = tuple(model.input.shape[1:])
    image_size = shape[:2] if keras.config.image_data_format() == "channels_last" else shape[1:]
    post = DetectionPostProcess.from_detection_config(c, image_size, name="postprocess",
                                                      **(postprocess_kwargs or {}))
    return keras.Model(model.input, post(model.output), name=name or c.name)


_DOC = '''Build {title} (effdet's ``{config}``{extra}).

    Args:
        num_classes: classes of the class net (effdet's default: 90 COCO ids).
        input_shape: ``(H, W, 3)``, both divisible by ``{step}`` (default:
            ``{size}``).
        weights: None (random) or the path of an effdet ``{config}`` ``.pth``/``.safetensors``
            file; anything else is a ValueError (hub downloads are not available).
        include_postprocess: append :class:`~keras_efficientnet.detection.DetectionPostProcess`
            (final ``boxes`` xyxy pixels, ``confidence``, 0-based ``classes``,
            ``num_detections``); False gives the raw ``{{"classes", "boxes"}}`` outputs.
        **kwargs: ``include_preprocessing``, ``postprocess_kwargs``, ``name`` (see
            :func:`~keras_efficientnet.detection.constructors.efficientdet`).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection import {title}
        >>> model = {title}(num_classes=3, input_shape=({ex}, {ex}, 3), include_postprocess=True)
        >>> out = model(np.zeros((1, {ex}, {ex}, 3), "float32"))
        >>> tuple(out["boxes"].shape), tuple(out["classes"].shape)
        ((1, 100, 4), (1, 100))
    '''


def _make(title, config):
    c = get_config(config)

    def constructor(num_classes: int = 90, input_shape=None, weights=None,
                    include_postprocess: bool = False, **kwargs):
        return efficientdet(c, num_classes=num_classes, input_shape=input_shape, weights=weights,
                            include_postprocess=include_postprocess, **kwargs)

    constructor.__name__ = constructor.__qualname__ = title
    constructor.__module__ = __name__
    step = 2 ** c.max_level
    constructor.__doc__ = _DOC.format(
        title=title, config=c.name, step=step, size=(*c.image_size, 3), ex=max(128, step),
        extra=", " + c.backbone + " encoder")
    globals()[title] = constructor
    __all__.append(title)
    return constructor


for _i in range(8):
    _make(f"EfficientDetD{_i}", f"tf_efficientdet_d{_i}")
_make("EfficientDetD7X", "tf_efficientdet_d7x")
for _i in range(5):
    _make(f"EfficientDetLite{_i}", f"tf_efficientdet_lite{_i}")
