"""EfficientDet's training loss in ``keras.ops`` (TensorFlow, JAX and PyTorch alike).

The loss of effdet 0.4.1's ``DetectionLoss`` (``effdet/loss.py``, automl's ``detection_loss``)
with its defaults (effdet's model config: ``alpha=0.25, gamma=1.5, delta=0.1,
box_loss_weight=50, label_smoothing=0``, the non-legacy focal loss):

* ``N = sum over the batch of num_positives + 1`` (the ``+ 1`` keeps an image without boxes
  finite);
* class loss: the sigmoid focal loss of every (anchor, class) logit against the one-hot class
  target (all zeros for a negative anchor), ``alpha_t * (1 - p_t)**gamma * BCE``, the focal
  factors computed before label smoothing, the cross entropy against the smoothed targets
  ``t * (1 - s) + s / 2``; anchors with class target ``-2`` (ignored) contribute nothing; the
  sum is divided by ``N``;
* box loss: Huber (``0.5 * min(|e|, delta)**2 + delta * (|e| - min(|e|, delta))``, not
  divided by ``delta``) of the box codes against the targets, only where a target component
  is non-zero (effdet's mask, so negatives — whose targets are 0 — never count), summed and
  divided by ``4 * N``;
* total: ``class_loss + box_loss_weight * box_loss``.

Inputs are the Keras model's raw outputs in its layout: ``classes`` logits ``(B, A, C)`` and
``boxes`` codes ``(B, A, 4)``, anchors in (level, row, column, anchor) order — the order of
:func:`~keras_efficientnet.detection.anchors_for` and of the targets of
:func:`~keras_efficientnet.detection.assign_targets_batch`.
"""

from __future__ import annotations

import keras
from keras import ops

from .targets import IGNORE


def _float(x):
    x = ops.convert_to_tensor(x)
    return x if x.dtype == "float32" else ops.cast(x, "float32")


def focal_loss(logits, targets, alpha: float = 0.25, gamma: float = 1.5,
               label_smoothing: float = 0.0):
    """Element-wise sigmoid focal loss (effdet's ``new_focal_loss`` before normalisation).

    Args:
        logits: class logits, any shape.
        targets: the same shape, 0/1 (one-hot) targets.
        alpha: weight of the positives (``1 - alpha`` of the negatives).
        gamma: focusing exponent.
        label_smoothing: ``s``: the cross entropy is against ``t * (1 - s) + s / 2``.

    Returns:
        The unreduced loss, float32, ``logits``' shape.

    Example:
        >>> from keras import ops
        >>> from keras_efficientnet.detection.losses import focal_loss
        >>> [round(float(v), 5) for v in ops.convert_to_numpy(focal_loss([0.0, 0.0], [1.0, 0.0]))]
        [0.06127, 0.1838]
    """
    logits, targets = _float(logits), _float(targets)
    prob = ops.sigmoid(logits)
    p_t = targets * prob + (1.0 - targets) * (1.0 - prob)
    alpha_t = targets * alpha + (1.0 - targets) * (1.0 - alpha)
    modulator = ops.power(1.0 - p_t, gamma)
    if label_smoothing > 0:
        targets = targets * (1.0 - label_smoothing) + 0.5 * label_smoothing
    # stable binary cross entropy with logits
    ce = ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))
    return alpha_t * modulator * ce


def huber_loss(predictions, targets, delta: float = 0.1):
    """Element-wise Huber loss as effdet's (``0.5 * q**2 + delta * (|e| - q)``, ``q =
    min(|e|, delta)``; not divided by ``delta``).

    Args:
        predictions, targets: tensors of one shape.
        delta: where the loss turns from quadratic to linear.

    Returns:
        The unreduced loss, float32.

    Example:
        >>> from keras import ops
        >>> from keras_efficientnet.detection.losses import huber_loss
        >>> [round(float(v), 4) for v in ops.convert_to_numpy(huber_loss([0.05, 1.0], [0.0, 0.0]))]
        [0.0013, 0.095]
    """
    err = ops.abs(_float(predictions) - _float(targets))
    quadratic = ops.minimum(err, delta)
    return 0.5 * quadratic * quadratic + delta * (err - quadratic)


def _per_image(class_outputs, box_outputs, class_targets, box_targets, num_positives,
               alpha, gamma, delta, box_loss_weight, label_smoothing):
    """Per-image ``(class, box)`` loss sums divided by the batch normaliser: shape (B,) each."""
    class_outputs, box_outputs, box_targets = _float(class_outputs), _float(box_outputs), \
        _float(box_targets)
    class_targets = ops.cast(class_targets, "int32")
    num_classes = class_outputs.shape[-1]
    if num_positives is None:
        num_positives = ops.sum(ops.cast(class_targets >= 0, "float32"), axis=-1)
    normaliser = ops.sum(_float(num_positives)) + 1.0
    positive = ops.cast(class_targets >= 0, "float32")
    one_hot = ops.one_hot(ops.maximum(class_targets, 0), num_classes, dtype="float32") * positive[..., None]
    cls = focal_loss(class_outputs, one_hot, alpha, gamma, label_smoothing)
    keep = ops.cast(class_targets != IGNORE, "float32")
    cls = ops.sum(ops.sum(cls, axis=-1) * keep, axis=-1) / normaliser
    mask = ops.cast(box_targets != 0.0, "float32")
    box = ops.sum(ops.reshape(huber_loss(box_outputs, box_targets, delta) * mask,
                              (ops.shape(mask)[0], -1)), axis=-1) / (4.0 * normaliser)
    return cls, box


def _check(alpha, gamma, delta, box_loss_weight, label_smoothing):
    for name, v, lo, hi in (("alpha", alpha, 0.0, 1.0), ("gamma", gamma, 0.0, float("inf")),
                            ("delta", delta, 1e-12, float("inf")),
                            ("box_loss_weight", box_loss_weight, 0.0, float("inf")),
                            ("label_smoothing", label_smoothing, 0.0, 1.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= float(v) <= hi:
            raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}]; got {v!r}.")


def detection_loss(class_outputs, box_outputs, class_targets, box_targets, num_positives=None,
                   alpha: float = 0.25, gamma: float = 1.5, delta: float = 0.1,
                   box_loss_weight: float = 50.0, label_smoothing: float = 0.0):
    """effdet's ``DetectionLoss`` on the Keras model's raw outputs: ``(total, class_loss,
    box_loss)`` scalars for the batch.

    Args:
        class_outputs: ``(B, A, C)`` class logits (the model's ``"classes"`` output).
        box_outputs: ``(B, A, 4)`` box codes (the model's ``"boxes"`` output).
        class_targets: ``(B, A)`` int targets of
            :func:`~keras_efficientnet.detection.assign_targets_batch` (``c >= 0`` positive,
            ``-1`` negative, ``-2`` ignored).
        box_targets: ``(B, A, 4)`` box code targets (0 for non-positive anchors).
        num_positives: ``(B,)`` positives per image (default: counted from ``class_targets``).
        alpha, gamma: focal loss (effdet: 0.25, 1.5).
        delta: Huber threshold (effdet: 0.1).
        box_loss_weight: weight of the box loss in the total (effdet: 50).
        label_smoothing: of the class targets in the cross entropy (effdet: 0).

    Returns:
        ``(total, class_loss, box_loss)`` float32 scalars, ``total = class_loss +
        box_loss_weight * box_loss``.

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> from keras_efficientnet.detection import anchors_for, assign_targets_batch, detection_loss
        >>> cls_t, box_t, n = assign_targets_batch([[[10, 20, 60, 90]]], [[0]], anchors_for("d0", 128),
        ...                                        num_classes=2, image_size=128)
        >>> logits, codes = np.zeros((1, 3069, 2), "float32"), np.zeros((1, 3069, 4), "float32")
        >>> [round(float(ops.convert_to_numpy(v)), 3) for v in
        ...  detection_loss(logits, codes, cls_t, box_t, n)]
        [31.782, 31.219, 0.011]
    """
    _check(alpha, gamma, delta, box_loss_weight, label_smoothing)
    cls, box = _per_image(class_outputs, box_outputs, class_targets, box_targets, num_positives,
                          alpha, gamma, delta, box_loss_weight, label_smoothing)
    cls, box = ops.sum(cls), ops.sum(box)
    return cls + box_loss_weight * box, cls, box


def _pair(value, what):
    if isinstance(value, dict):
        missing = {"classes", "boxes"} - set(value)
        if missing:
            raise ValueError(f"{what} must hold 'classes' and 'boxes'; missing {sorted(missing)}.")
        return value["classes"], value["boxes"], value.get("num_positives")
    if isinstance(value, (list, tuple)) and len(value) in (2, 3):
        return value[0], value[1], value[2] if len(value) == 3 else None
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) == 3 and shape[-1] is not None:
        # packed: y_true (B, A, 1 + 4) = class target then box targets; y_pred (B, A, C + 4) =
        # logits then box codes (one tensor, for model.fit with a single-output model)
        if what == "y_true" and shape[-1] == 5:
            return value[..., 0], value[..., 1:], None
        if what == "y_pred" and shape[-1] > 4:
            return value[..., :-4], value[..., -4:], None
    raise ValueError(f"{what} must be a dict {{'classes': ..., 'boxes': ...}}, a (classes, boxes) "
                     f"pair or one packed (B, A, {'5' if what == 'y_true' else 'C + 4'}) tensor "
                     f"(see EfficientDetLoss); got {type(value).__name__} of shape {shape}.")


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class EfficientDetLoss(keras.losses.Loss):
    """effdet's detection loss (focal class loss + weighted Huber box loss, normalised by the
    batch's positives + 1) as a ``keras.losses.Loss``.

    ``y_pred`` is the EfficientDet's output dict ``{"classes": (B, A, C) logits, "boxes":
    (B, A, 4)}``; ``y_true`` is ``{"classes": (B, A) class targets, "boxes": (B, A, 4) box
    targets}`` from :func:`~keras_efficientnet.detection.assign_targets_batch` (optionally with
    ``"num_positives"``; pairs ``(classes, boxes)`` work too). ``model.fit`` hands a loss each
    output of a dict-output model separately, so for ``compile(loss=EfficientDetLoss())`` give
    the model one output, ``concatenate([classes, boxes], axis=-1)`` ``(B, A, C + 4)``, and
    the targets packed as ``concatenate([class_targets[..., None], box_targets], axis=-1)``
    ``(B, A, 5)``: both layouts are recognised. The loss of each image is its
    share of effdet's batch total, so with the default ``reduction="sum"`` the value is
    effdet's total loss, and ``sample_weight`` weighs images. :func:`detection_loss` also
    returns the class and box parts.

    Args:
        alpha, gamma: focal loss (effdet: 0.25, 1.5).
        delta: Huber threshold (effdet: 0.1).
        box_loss_weight: weight of the box loss (effdet: 50).
        label_smoothing: of the class targets (effdet: 0).
        reduction, name, dtype: as ``keras.losses.Loss`` (default ``"sum"``).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection import EfficientDetLoss, anchors_for, assign_targets_batch
        >>> cls_t, box_t, _ = assign_targets_batch([[[10, 20, 60, 90]]], [[0]], anchors_for("d0", 128),
        ...                                        num_classes=2, image_size=128)
        >>> y_pred = {"classes": np.zeros((1, 3069, 2), "float32"), "boxes": np.zeros((1, 3069, 4), "float32")}
        >>> loss = EfficientDetLoss()
        >>> round(float(loss({"classes": cls_t, "boxes": box_t}, y_pred)), 3)
        31.782
        >>> packed_true = np.concatenate([cls_t[..., None], box_t], -1)  # (1, 3069, 5)
        >>> packed_pred = np.concatenate([y_pred["classes"], y_pred["boxes"]], -1)  # (1, 3069, 6)
        >>> round(float(loss(packed_true, packed_pred)), 3)
        31.782
    """

    def __init__(self, alpha: float = 0.25, gamma: float = 1.5, delta: float = 0.1,
                 box_loss_weight: float = 50.0, label_smoothing: float = 0.0,
                 reduction: str = "sum", name: str = "efficientdet_loss", dtype=None):
        _check(alpha, gamma, delta, box_loss_weight, label_smoothing)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha, self.gamma, self.delta = float(alpha), float(gamma), float(delta)
        self.box_loss_weight, self.label_smoothing = float(box_loss_weight), float(label_smoothing)

    def call(self, y_true, y_pred):
        cls_t, box_t, num_pos = _pair(y_true, "y_true")
        cls_p, box_p, _ = _pair(y_pred, "y_pred")
        cls, box = _per_image(cls_p, box_p, cls_t, box_t, num_pos, self.alpha, self.gamma,
                              self.delta, self.box_loss_weight, self.label_smoothing)
        return cls + self.box_loss_weight * box

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, gamma=self.gamma, delta=self.delta,
                      box_loss_weight=self.box_loss_weight, label_smoothing=self.label_smoothing)
        return config
