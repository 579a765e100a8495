"""EfficientDet post-processing: raw class logits and box codes -> final detections.

The steps are effdet 0.4.1's ``DetBenchPredict`` (``_post_process`` then
``generate_detections``), in ``keras.ops`` so they run on every backend and inside a model:

1. top-``max_detection_points`` (effdet: 5000) of all ``anchors x classes`` logits of an image;
2. ``sigmoid`` of those logits as scores; their anchors' box codes decoded
   (:func:`~keras_efficientnet.detection.anchors.decode_boxes`) to ``(xmin, ymin, xmax, ymax)``
   input pixels;
3. when an original ``image_size`` is given, boxes clipped to ``image_size / image_scale``;
4. greedy non-maximum suppression per class (a box is dropped when its IoU with a kept,
   higher-scoring box of the same class is above ``iou_threshold``, 0.5), keeping the first
   ``max_detections`` (100) in score order;
5. boxes multiplied by ``image_scale`` (input pixels -> original-image pixels).

Keras has no NMS op, so step 4 is a fixed-size loop (``keras.ops.fori_loop``) of
``max_detections`` steps, each taking the best remaining candidate and suppressing its
same-class overlaps: exactly greedy NMS (the first ``k`` boxes greedy NMS keeps depend only
on higher-scoring boxes), with static shapes, so it compiles under XLA, JAX and TorchScript-free
PyTorch alike.

Outputs (keras-hub's ``NonMaxSuppression`` convention): ``"boxes"`` ``(batch, max_detections,
4)`` xyxy, ``"confidence"`` ``(batch, max_detections)``, ``"classes"`` ``(batch,
max_detections)`` int32 and ``"num_detections"`` ``(batch,)`` int32; rows past
``num_detections`` are padding (boxes and confidence 0, classes -1). Class ids are 0-based
(the class net's output index) plus ``class_offset``: effdet reports ``index + 1`` (COCO ids
with background 0), ``class_offset=1`` gives its ids.
"""

from __future__ import annotations

import numpy as np

import keras
from keras import ops

from ..layers.common import serializable
from .anchors import decode_boxes, generate_anchors
from .config import get_config

_SUPPRESSED = -2.0  # below every sigmoid score (and any score threshold)


def _positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def _iou_one_to_many(box, boxes):
    """IoU of ``box`` ``(B, 1, 4)`` with ``boxes`` ``(B, K, 4)`` (xyxy), as torchvision's NMS
    computes it: ``inter / (area_a + area_b - inter)``."""
    area_a = (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1])
    area_b = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    w = ops.maximum(ops.minimum(box[..., 2], boxes[..., 2]) - ops.maximum(box[..., 0], boxes[..., 0]), 0.0)
    h = ops.maximum(ops.minimum(box[..., 3], boxes[..., 3]) - ops.maximum(box[..., 1], boxes[..., 1]), 0.0)
    inter = w * h
    return inter / (area_a + area_b - inter)


def _argmax(x):
    """``argmax(x, axis=1)`` as int32. On TensorFlow the plain ``tf.argmax``: Keras' float
    ``ops.argmax`` adds a negative-zero fix built on ``BitwiseAnd``, an op TFLite does not
    have, which kept the NMS loop out of TFLite (scores here are never -0.0)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.argmax(x, axis=1, output_type=tf.int32)
    return ops.cast(ops.argmax(x, axis=1), "int32")


def batched_nms(boxes, scores, classes, iou_threshold: float = 0.5, max_detections: int = 100,
                score_threshold=None):
    """Greedy per-class NMS with a fixed output size, in ``keras.ops``.

    Args:
        boxes: ``(B, K, 4)`` ``(xmin, ymin, xmax, ymax)``.
        scores: ``(B, K)``.
        classes: ``(B, K)`` integer class of each box (boxes of different classes never
            suppress each other).
        iou_threshold: a box is dropped when its IoU with a kept box is above this.
        max_detections: boxes kept per image (the highest-scoring survivors).
        score_threshold: boxes scoring below it are never kept (None: no threshold).

    Returns:
        ``(indices, valid)``: ``(B, max_detections)`` int32 indices into ``K`` of the kept boxes
        in decreasing score order, and a bool mask of the real ones (the rest are padding,
        index 0).

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> from keras_efficientnet.detection.postprocess import batched_nms
        >>> boxes = np.array([[[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]]], "float32")
        >>> idx, valid = batched_nms(boxes, np.array([[0.9, 0.8, 0.7, 0.6]], "float32"),
        ...                          np.array([[0, 0, 1, 0]]), max_detections=4)
        >>> ops.convert_to_numpy(idx).tolist(), ops.convert_to_numpy(valid).tolist()
        ([[0, 2, 3, 0]], [[True, True, True, False]])
    """
    max_detections = _positive_int("max_detections", max_detections)
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1]; got {iou_threshold!r}.")
    boxes = ops.convert_to_tensor(boxes)
    scores = ops.cast(ops.convert_to_tensor(scores), boxes.dtype)
    classes = ops.cast(ops.convert_to_tensor(classes), "int32")
    if len(boxes.shape) != 3 or boxes.shape[-1] != 4 or len(scores.shape) != 2:
        raise ValueError(f"boxes must be (batch, K, 4) and scores (batch, K); got "
                         f"{tuple(boxes.shape)} and {tuple(scores.shape)}.")
    k = scores.shape[1]
    live = scores if score_threshold is None else \
        ops.where(scores >= float(score_threshold), scores, _SUPPRESSED)
    positions = ops.arange(k, dtype="int32")[None, :]
    slots = ops.arange(max_detections, dtype="int32")[None, :]
    batch = ops.shape(scores)[0]
    indices = ops.zeros((batch, max_detections), "int32")
    valid = ops.zeros((batch, max_detections), "bool")

    def step(i, state):
        live, indices, valid = state
        best = _argmax(live)  # (B,)
        best_score = ops.take_along_axis(live, best[:, None], axis=1)[:, 0]
        ok = best_score > _SUPPRESSED / 2
        best_box = ops.take_along_axis(boxes, ops.repeat(best[:, None, None], 4, axis=2), axis=1)
        best_class = ops.take_along_axis(classes, best[:, None], axis=1)
        iou = _iou_one_to_many(best_box, boxes)
        drop = ops.logical_or(ops.logical_and(iou > iou_threshold, classes == best_class),
                              positions == best[:, None])
        live = ops.where(ops.logical_and(drop, ok[:, None]), _SUPPRESSED, live)
        here = slots == i
        indices = ops.where(ops.logical_and(here, ok[:, None]), best[:, None], indices)
        valid = ops.logical_or(valid, ops.logical_and(here, ok[:, None]))
        return live, indices, valid

    _, indices, valid = ops.fori_loop(0, max_detections, step, (live, indices, valid))
    return indices, valid


@serializable
class DetectionPostProcess(keras.layers.Layer):
    """Final detections from an EfficientDet's ``{"classes", "boxes"}`` outputs, as effdet's
    ``DetBenchPredict`` computes them (see the module docstring for the steps).

    Args:
        image_size: the network's input ``(height, width)`` (or an int): the anchors'.
        min_level, max_level, num_scales, aspect_ratios, anchor_scale: the anchors
            (:func:`~keras_efficientnet.detection.anchors.generate_anchors`); use
            :meth:`from_detection_config` to take them from an EfficientDet config.
        max_detection_points: candidates (anchor, class pairs) kept before NMS (effdet: 5000).
        max_detections: detections per image (effdet: 100).
        iou_threshold: per-class NMS IoU threshold (effdet: 0.5).
        score_threshold: drop candidates scoring below it (None, effdet's: keep all).
        class_offset: added to the 0-based class indices (1 gives effdet's ids).

    Call arguments:
        inputs: ``{"classes": (B, N, C) logits, "boxes": (B, N, 4) codes}``.
        image_scale: optional ``(B,)`` (or scalar) original-image pixels per input pixel;
            boxes are multiplied by it (effdet's ``img_scale``).
        image_size: optional ``(B, 2)`` original ``(height, width)``: boxes are clipped to
            ``image_size / image_scale`` input pixels before NMS (effdet's ``img_size``, which
            effdet gives as ``(width, height)``).

    Returns:
        ``{"boxes", "confidence", "classes", "num_detections"}`` (padding rows: 0, 0, -1).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection import DetectionPostProcess
        >>> post = DetectionPostProcess.from_detection_config("d0", (128, 128), max_detections=5)
        >>> rng = np.random.default_rng(0)
        >>> raw = {"classes": rng.normal(size=(1, 3069, 3)).astype("float32") - 6,
        ...        "boxes": rng.normal(scale=0.1, size=(1, 3069, 4)).astype("float32")}
        >>> out = post(raw)
        >>> {k: tuple(v.shape) for k, v in out.items()}
        {'boxes': (1, 5, 4), 'confidence': (1, 5), 'classes': (1, 5), 'num_detections': (1,)}
    """

    def __init__(self, image_size=(512, 512), min_level: int = 3, max_level: int = 7,
                 num_scales: int = 3, aspect_ratios=((1.0, 1.0), (1.4, 0.7), (0.7, 1.4)),
                 anchor_scale=4.0, max_detection_points: int = 5000, max_detections: int = 100,
                 iou_threshold: float = 0.5, score_threshold=None, class_offset: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.anchors = generate_anchors(min_level, max_level, num_scales, aspect_ratios,
                                        anchor_scale, image_size)  # validates the anchor args
        self.image_size = tuple(int(v) for v in ((image_size, image_size) if isinstance(image_size, int)
                                                 else image_size))
        self.min_level, self.max_level, self.num_scales = int(min_level), int(max_level), int(num_scales)
        self.aspect_ratios = [list(r) if np.ndim(r) else float(r) for r in aspect_ratios]
        self.anchor_scale = anchor_scale if np.ndim(anchor_scale) == 0 else list(anchor_scale)
        self.max_detection_points = _positive_int("max_detection_points", max_detection_points)
        self.max_detections = _positive_int("max_detections", max_detections)
        if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) \
                or not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be a number in [0, 1]; got {iou_threshold!r}.")
        self.iou_threshold = float(iou_threshold)
        if score_threshold is not None and (isinstance(score_threshold, bool)
                                            or not isinstance(score_threshold, (int, float))):
            raise ValueError(f"score_threshold must be a number or None; got {score_threshold!r}.")
        self.score_threshold = None if score_threshold is None else float(score_threshold)
        if not isinstance(class_offset, (int, np.integer)) or isinstance(class_offset, bool):
            raise ValueError(f"class_offset must be an integer; got {class_offset!r}.")
        self.class_offset = int(class_offset)

    @classmethod
    def from_detection_config(cls, config, image_size=None, **kwargs):
        """The layer for an EfficientDet config (a name or ``DetectionConfig``): its anchors,
        ``max_detection_points``, ``max_det_per_image`` and ``iou_threshold``; ``image_size``
        defaults to the config's; ``kwargs`` override any argument.

        Example:
            >>> from keras_efficientnet.detection import DetectionPostProcess
            >>> DetectionPostProcess.from_detection_config("d0", (128, 128)).anchors.shape
            (3069, 4)
        """
        c = get_config(config)
        args = dict(image_size=c.image_size if image_size is None else image_size,
                    min_level=c.min_level, max_level=c.max_level, num_scales=c.num_scales,
                    aspect_ratios=c.aspect_ratios, anchor_scale=c.anchor_scale,
                    max_detection_points=c.max_detection_points,
                    max_detections=c.max_det_per_image, iou_threshold=c.iou_threshold)
        args.update(kwargs)
        return cls(**args)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=list(self.image_size), min_level=self.min_level,
                      max_level=self.max_level, num_scales=self.num_scales,
                      aspect_ratios=self.aspect_ratios, anchor_scale=self.anchor_scale,
                      max_detection_points=self.max_detection_points,
                      max_detections=self.max_detections, iou_threshold=self.iou_threshold,
                      score_threshold=self.score_threshold, class_offset=self.class_offset)
        return config

    def _check(self, logits, codes):
        n = len(self.anchors)
        if len(logits.shape) != 3 or len(codes.shape) != 3 or codes.shape[-1] != 4 \
                or logits.shape[1] != n or codes.shape[1] != n:
            raise ValueError(f"DetectionPostProcess for {self.image_size} inputs needs classes "
                             f"(batch, {n}, num_classes) and boxes (batch, {n}, 4); got "
                             f"{tuple(logits.shape)} and {tuple(codes.shape)}. Is image_size the "
                             "model's input size?")

    def call(self, inputs, image_scale=None, image_size=None):
        if not isinstance(inputs, dict) or not {"classes", "boxes"} <= set(inputs):
            raise ValueError('DetectionPostProcess takes the {"classes", "boxes"} dict of an '
                             f"EfficientDet; got {type(inputs).__name__}.")
        logits = ops.cast(inputs["classes"], "float32")
        codes = ops.cast(inputs["boxes"], "float32")
        self._check(logits, codes)
        num_classes = logits.shape[-1]
        k = min(self.max_detection_points, len(self.anchors) * num_classes)
        flat = ops.reshape(logits, (-1, len(self.anchors) * num_classes))
        top_logits, top = ops.top_k(flat, k, sorted=True)
        top = ops.cast(top, "int32")
        anchor_idx = top // num_classes
        classes = top % num_classes
        top_codes = ops.take_along_axis(codes, ops.repeat(anchor_idx[..., None], 4, axis=2), axis=1)
        anchors = ops.take(ops.convert_to_tensor(self.anchors), anchor_idx, axis=0)
        boxes = decode_boxes(top_codes, anchors, xyxy=True)
        scores = ops.sigmoid(top_logits)
        scale = None
        if image_scale is not None:
            scale = ops.reshape(ops.cast(image_scale, "float32"), (-1, 1, 1))
        if image_size is not None:
            size = ops.cast(image_size, "float32")
            if len(size.shape) != 2 or size.shape[-1] != 2:
                raise ValueError(f"image_size must be (batch, 2) (height, width); got {tuple(size.shape)}.")
            limit = ops.stack([size[:, 1], size[:, 0], size[:, 1], size[:, 0]], axis=-1)[:, None, :]
            if scale is not None:
                limit = limit / scale
            boxes = ops.minimum(ops.maximum(boxes, 0.0), limit)
        keep, valid = batched_nms(boxes, scores, classes, self.iou_threshold, self.max_detections,
                                  self.score_threshold)
        out_boxes = ops.take_along_axis(boxes, ops.repeat(keep[..., None], 4, axis=2), axis=1)
        if scale is not None:
            out_boxes = out_boxes * scale
        out_scores = ops.take_along_axis(scores, keep, axis=1)
        out_classes = ops.take_along_axis(classes, keep, axis=1) + self.class_offset
        return {"boxes": ops.where(valid[..., None], out_boxes, 0.0),
                "confidence": ops.where(valid, out_scores, 0.0),
                "classes": ops.where(valid, out_classes, -1),
                "num_detections": ops.sum(ops.cast(valid, "int32"), axis=1)}

    def compute_output_spec(self, inputs, image_scale=None, image_size=None):
        b, m = inputs["classes"].shape[0], self.max_detections
        return {"boxes": keras.KerasTensor((b, m, 4), "float32"),
                "confidence": keras.KerasTensor((b, m), "float32"),
                "classes": keras.KerasTensor((b, m), "int32"),
                "num_detections": keras.KerasTensor((b,), "int32")}
