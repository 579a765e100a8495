"""EfficientDet anchors and box coding as plain NumPy (imports no Keras).

Anchors follow effdet 0.4.1's ``effdet.anchors.Anchors`` (itself automl's): for every level
``min_level..max_level`` with stride ``s = image_size / feat_size`` (per axis), every location
of the ``feat_size`` grid (centres at ``s/2, 3s/2, ...``) carries ``num_scales *
len(aspect_ratios)`` anchors, octave scale major, aspect ratio minor. Anchor ``(octave o,
ratio (ax, ay))`` has size ``anchor_scale * s * 2**(o / num_scales)`` times ``ax`` across and
``ay`` down. The order of the rows is (level, row, column, anchor): the order of
:func:`~keras_efficientnet.detection.build_efficientdet`'s outputs. Boxes are
``(ymin, xmin, ymax, xmax)`` in input pixels, float32.

Box codes are Faster R-CNN's ``(ty, tx, th, tw)`` without scale factors, as effdet trains and
decodes them (``FasterRcnnBoxCoder()`` in its ``AnchorLabeler``, ``decode_box_outputs`` at
inference): ``ty = (yc - yc_a) / h_a``, ``tx = (xc - xc_a) / w_a``, ``th = log(h / h_a)``,
``tw = log(w / w_a)``.
"""

from __future__ import annotations

import numpy as np

from .config import DetectionConfig, feat_sizes, get_config

#: effdet's FasterRcnnBoxCoder epsilon, added to the sizes before encoding.
BOX_CODER_EPS = 1e-7


def _size(image_size):
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be an int or (height, width); got {image_size!r}.") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"image_size must be positive; got {(h, w)}.")
    return h, w


def generate_anchors(min_level: int = 3, max_level: int = 7, num_scales: int = 3,
                     aspect_ratios=((1.0, 1.0), (1.4, 0.7), (0.7, 1.4)), anchor_scale=4.0,
                     image_size=(512, 512)) -> np.ndarray:
    """Every anchor of an EfficientDet, ``(num_anchors, 4)`` ``(ymin, xmin, ymax, xmax)`` pixels.

    Args:
        min_level, max_level: pyramid levels.
        num_scales: octave scales per level (``2**(i / num_scales)``).
        aspect_ratios: ``(x, y)`` multipliers, or plain ratios ``r`` (then
            ``(sqrt(r), 1 / sqrt(r))``).
        anchor_scale: base anchor size over the stride; a float or one per level.
        image_size: the network's input ``(height, width)`` (or an int).

    Example:
        >>> from keras_efficientnet.detection.anchors import generate_anchors
        >>> a = generate_anchors(image_size=128)
        >>> a.shape, a[0].tolist()  # 9 * (16*16 + 8*8 + 4*4 + 2*2 + 1) anchors; P3's first
        ((3069, 4), [-12.0, -12.0, 20.0, 20.0])
    """
    h, w = _size(image_size)
    if not 0 <= min_level <= max_level:
        raise ValueError(f"need 0 <= min_level <= max_level; got {min_level}, {max_level}.")
    if num_scales < 1 or not len(aspect_ratios):
        raise ValueError("num_scales must be >= 1 and aspect_ratios non-empty.")
    levels = max_level - min_level + 1
    if np.ndim(anchor_scale) == 0:
        scales = [float(anchor_scale)] * levels
    else:
        scales = [float(s) for s in anchor_scale]
        if len(scales) != levels:
            raise ValueError(f"anchor_scale has {len(scales)} values for {levels} levels.")
    ratios = []
    for r in aspect_ratios:
        if np.ndim(r) == 0:
            ax = float(np.sqrt(r))
            ratios.append((ax, 1.0 / ax))
        else:
            ratios.append((float(r[0]), float(r[1])))
    sizes = feat_sizes((h, w), max_level)
    out = []
    for level, scale in zip(range(min_level, max_level + 1), scales):
        sy, sx = h / float(sizes[level][0]), w / float(sizes[level][1])
        yv, xv = np.meshgrid(np.arange(sy / 2, h, sy), np.arange(sx / 2, w, sx), indexing="ij")
        yv, xv = yv.reshape(-1, 1), xv.reshape(-1, 1)
        half = np.array([[scale * sy * 2 ** (o / num_scales) * ay / 2.0,
                          scale * sx * 2 ** (o / num_scales) * ax / 2.0]
                         for o in range(num_scales) for ax, ay in ratios])  # (A, 2)
        boxes = np.stack([yv - half[:, 0], xv - half[:, 1], yv + half[:, 0], xv + half[:, 1]], -1)
        out.append(boxes.reshape(-1, 4))
    return np.concatenate(out, 0).astype("float32")


def anchors_for(config, image_size=None) -> np.ndarray:
    """:func:`generate_anchors` with an EfficientDet config's anchor settings.

    Args:
        config: a :class:`~keras_efficientnet.detection.config.DetectionConfig` or its name.
        image_size: input ``(height, width)``; default the config's.

    Example:
        >>> from keras_efficientnet.detection.anchors import anchors_for
        >>> anchors_for("d0", (256, 128)).shape
        (6138, 4)
    """
    config: DetectionConfig = get_config(config)
    return generate_anchors(config.min_level, config.max_level, config.num_scales,
                            config.aspect_ratios, config.anchor_scale,
                            config.image_size if image_size is None else image_size)


def _xp(x):
    """The array module of ``x``: NumPy, or keras.ops for backend tensors."""
    if isinstance(x, (np.ndarray, np.generic, list, tuple, float, int)):
        return np
    from keras import ops  # noqa: PLC0415  (only for tensors: keeps this module Keras-free)
    return ops


def decode_boxes(codes, anchors, xyxy: bool = False):
    """Boxes from ``(ty, tx, th, tw)`` codes relative to ``anchors`` (effdet's
    ``decode_box_outputs``).

    Args:
        codes: ``(..., N, 4)`` box regressions.
        anchors: ``(N, 4)`` ``(ymin, xmin, ymax, xmax)`` (or any shape broadcasting with
            ``codes``, e.g. ``(batch, N, 4)`` anchors gathered per image).
        xyxy: return ``(xmin, ymin, xmax, ymax)`` instead of ``(ymin, xmin, ymax, xmax)``.

    Works on NumPy arrays and on backend tensors (through ``keras.ops``).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection.anchors import decode_boxes
        >>> decode_boxes(np.array([[0.5, 0.0, np.log(2), 0.0]]), np.array([[0, 0, 10, 20.0]])).tolist()
        [[0.0, 0.0, 20.0, 20.0]]
    """
    xp = _xp(codes)
    anchors = xp.asarray(anchors) if xp is np else xp.convert_to_tensor(anchors, dtype=codes.dtype)
    yca, xca = (anchors[..., 0] + anchors[..., 2]) / 2, (anchors[..., 1] + anchors[..., 3]) / 2
    ha, wa = anchors[..., 2] - anchors[..., 0], anchors[..., 3] - anchors[..., 1]
    ty, tx, th, tw = (codes[..., i] for i in range(4))
    h, w = xp.exp(th) * ha, xp.exp(tw) * wa
    yc, xc = ty * ha + yca, tx * wa + xca
    parts = (xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2) if xyxy else \
        (yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2)
    return xp.stack(parts, axis=-1)


def encode_boxes(boxes, anchors, scale_factors=None, eps: float = BOX_CODER_EPS) -> np.ndarray:
    """``(ty, tx, th, tw)`` codes of ``boxes`` relative to matched ``anchors`` (effdet's
    ``FasterRcnnBoxCoder.encode``: ``eps`` added to every height and width).

    Args:
        boxes, anchors: ``(N, 4)`` ``(ymin, xmin, ymax, xmax)``, row ``i`` matched to row ``i``.
        scale_factors: optional 4 multipliers of ``(ty, tx, th, tw)`` (effdet uses none).
        eps: added to the sizes (effdet: 1e-7).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection.anchors import encode_boxes
        >>> encode_boxes(np.array([[0, 0, 20, 20.0]]), np.array([[0, 0, 10, 20.0]]), eps=0)
        array([[0.5       , 0.        , 0.6931472, 0.        ]], dtype=float32)
    """
    boxes, anchors = np.asarray(boxes, "float32"), np.asarray(anchors, "float32")
    if boxes.shape[-1] != 4 or anchors.shape != boxes.shape:
        raise ValueError(f"boxes and anchors must both be (N, 4); got {boxes.shape} and {anchors.shape}.")

    def centre_size(b):
        h, w = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        return b[:, 0] + h / 2, b[:, 1] + w / 2, h + eps, w + eps

    yca, xca, ha, wa = centre_size(anchors)
    yc, xc, h, w = centre_size(boxes)
    codes = np.stack([(yc - yca) / ha, (xc - xca) / wa, np.log(h / ha), np.log(w / wa)], -1)
    if scale_factors is not None:
        if len(scale_factors) != 4 or min(scale_factors) <= 0:
            raise ValueError(f"scale_factors must be 4 positive numbers; got {scale_factors!r}.")
        codes = codes * np.asarray(scale_factors, "float32")
    return codes.astype("float32")
