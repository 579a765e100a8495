"""Segmentation losses and metrics: soft Dice, Dice + cross-entropy, Dice + focal, IoU.

Masks are class ids: ``(N, H, W)`` or ``(N, H, W, 1)`` integers in ``[0, classes)`` for a
multi-class model (``classes`` output channels, softmax), ``0``/``1`` for a binary model (one
output channel, sigmoid). Predictions are channels-last ``(N, H, W, C)``, logits or
probabilities (``from_logits``).

The Dice score is computed as segmentation-models-pytorch's ``DiceLoss`` computes it: per class,
summed over the whole batch and every pixel, ``(|p t| + smooth) / ((|p| + |t|) / 2 + smooth)``
(denominator floored at ``eps``; with ``smooth=0`` the usual ``2 |p t| / (|p| + |t|)``); a class absent from the batch's masks contributes zero loss but still
counts in the mean over classes. The cross-entropy and focal terms are Keras' own losses.

Metrics are Keras' own: :func:`iou_metrics` returns a ``keras.metrics.MeanIoU`` and one
``keras.metrics.IoU`` per class (``target_class_ids=[c]``), both with ``sparse_y_pred=False``
so they take the arg-max of the model's output, or ``keras.metrics.BinaryIoU`` for a binary
model (threshold ``0`` on logits, ``0.5`` on probabilities). No subclass is needed, so they
save and load in ``.keras`` files as they are.
"""

from __future__ import annotations

import keras

MODES = ("multiclass", "binary")


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}: 'multiclass' for a softmax "
                         "model with one channel per class, 'binary' for one sigmoid channel.")
    return mode


def _sparse_mask(y_true):
    """Integer class ids ``(N, H, W)`` from ``(N, H, W)`` or ``(N, H, W, 1)``."""
    ops = keras.ops
    if len(y_true.shape) == 4:
        y_true = ops.squeeze(y_true, axis=-1)
    return ops.cast(y_true, "int32")


def dice_score(y_true, y_pred, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7):
    """Soft Dice score per class over the batch, and which classes occur in ``y_true``.

    Args:
        y_true: class-id masks ``(N, H, W)`` or ``(N, H, W, 1)``.
        y_pred: ``(N, H, W, C)`` logits or probabilities (``C == 1`` for ``mode="binary"``).
        mode: ``"multiclass"`` (softmax over channels) or ``"binary"`` (sigmoid).
        from_logits: whether ``y_pred`` are logits.
        smooth: added to numerator and denominator of ``|p t| / ((|p| + |t|) / 2)`` (smp's
            convention).
        eps: lower bound of the score's denominator.

    Returns:
        ``(scores, present)``: float tensors of shape ``(C,)``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.segmentation.losses import dice_score
        >>> t = np.array([[[0, 1], [1, 1]]])
        >>> p = np.eye(2, dtype="float32")[np.array([[[0, 1], [0, 1]]])]
        >>> s, present = dice_score(t, p, from_logits=False)
        >>> [round(float(v), 3) for v in s]
        [0.667, 0.8]
    """
    ops = keras.ops
    _check_mode(mode)
    y_pred = ops.convert_to_tensor(y_pred)
    if not keras.backend.standardize_dtype(y_pred.dtype).startswith(("float", "bfloat")):
        y_pred = ops.cast(y_pred, "float32")
    y_true = _sparse_mask(ops.convert_to_tensor(y_true))
    channels = y_pred.shape[-1]
    if mode == "binary":
        if channels != 1:
            raise ValueError(f"mode='binary' needs one output channel, the predictions have "
                             f"{channels}; use mode='multiclass' for a softmax model.")
        prob = ops.sigmoid(y_pred) if from_logits else y_pred
        target = ops.cast(y_true, prob.dtype)[..., None]
    else:
        prob = ops.softmax(y_pred, axis=-1) if from_logits else y_pred
        target = ops.one_hot(y_true, channels, dtype=prob.dtype)
    prob = ops.reshape(prob, (-1, channels))
    target = ops.reshape(target, (-1, channels))
    intersection = ops.sum(prob * target, axis=0)
    cardinality = ops.sum(prob + target, axis=0)
    scores = (intersection + smooth) / ops.maximum(0.5 * cardinality + smooth, eps)
    present = ops.cast(ops.sum(target, axis=0) > 0, prob.dtype)
    return scores, present


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss, ``mean_c (1 - dice_c)`` over the classes present in the batch's masks.

    Computes what ``segmentation_models_pytorch.losses.DiceLoss(mode, from_logits=...)``
    computes (channels last here): the score of each class is taken over the whole batch, a
    class no mask contains adds zero, the mean runs over all ``C`` channels.

    Args:
        mode: ``"multiclass"`` (``C`` softmax channels) or ``"binary"`` (one sigmoid channel).
        from_logits: whether predictions are logits.
        smooth: added to numerator and denominator of the score.
        eps: lower bound of the score's denominator.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.segmentation.losses import DiceLoss
        >>> t = np.array([[[0, 1], [1, 1]]])
        >>> p = np.eye(2, dtype="float32")[np.array([[[0, 1], [0, 1]]])]
        >>> round(float(DiceLoss(from_logits=False)(t, p)), 4)
        0.2667
    """

    def __init__(self, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7,
                 name="dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.mode = _check_mode(mode)
        self.from_logits = bool(from_logits)
        self.smooth = float(smooth)
        self.eps = float(eps)

    def call(self, y_true, y_pred):
        scores, present = dice_score(y_true, y_pred, self.mode, self.from_logits, self.smooth,
                                     self.eps)
        return keras.ops.mean((1.0 - scores) * present)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "from_logits": self.from_logits,
                "smooth": self.smooth, "eps": self.eps}


def _sum_terms(dice, other, y_true, y_pred, dice_weight, other_weight):
    return dice_weight * dice(y_true, y_pred) + other_weight * other(y_true, y_pred)


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class DiceCrossentropy(keras.losses.Loss):
    """``dice_weight * DiceLoss + ce_weight * cross-entropy`` (mean over pixels).

    The cross-entropy is Keras' ``SparseCategoricalCrossentropy`` (multi-class) or
    ``BinaryCrossentropy`` (binary) on the same predictions.

    Args:
        mode: ``"multiclass"`` or ``"binary"``.
        from_logits: whether predictions are logits.
        dice_weight, ce_weight: weights of the two terms.
        smooth: the Dice ``smooth``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.segmentation.losses import DiceCrossentropy
        >>> t = np.zeros((1, 2, 2), "int32")
        >>> p = np.zeros((1, 2, 2, 2), "float32")
        >>> round(float(DiceCrossentropy()(t, p)), 4)  # 0.5 * (1 - 2/3) + ln 2
        0.8598
    """

    def __init__(self, mode="multiclass", from_logits=True, dice_weight=1.0, ce_weight=1.0,
                 smooth=0.0, name="dice_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.mode = _check_mode(mode)
        self.from_logits = bool(from_logits)
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)
        self.smooth = float(smooth)
        self._dice = DiceLoss(mode, from_logits, smooth)
        if mode == "binary":
            self._ce = keras.losses.BinaryCrossentropy(from_logits=from_logits)
        else:
            self._ce = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)

    def call(self, y_true, y_pred):
        if self.mode == "binary":
            y_true = keras.ops.cast(y_true, y_pred.dtype)
            if len(y_true.shape) == 3:
                y_true = y_true[..., None]
        elif len(y_true.shape) == 4:
            y_true = keras.ops.squeeze(y_true, axis=-1)
        return (self.dice_weight * self._dice(y_true, y_pred)
                + self.ce_weight * self._ce(y_true, y_pred))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "from_logits": self.from_logits,
                "dice_weight": self.dice_weight, "ce_weight": self.ce_weight,
                "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class DiceFocal(keras.losses.Loss):
    """``dice_weight * DiceLoss + focal_weight * focal cross-entropy`` (mean over pixels).

    The focal term is Keras' ``CategoricalFocalCrossentropy`` on one-hot masks (multi-class) or
    ``BinaryFocalCrossentropy`` (binary), with ``alpha`` and ``gamma`` passed through.

    Args:
        mode: ``"multiclass"`` or ``"binary"``.
        from_logits: whether predictions are logits.
        dice_weight, focal_weight: weights of the two terms.
        alpha, gamma: of the focal loss (Keras' defaults: 0.25, 2.0).
        smooth: the Dice ``smooth``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.segmentation.losses import DiceFocal
        >>> t = np.zeros((1, 2, 2), "int32")
        >>> p = np.zeros((1, 2, 2, 2), "float32")
        >>> round(float(DiceFocal()(t, p)), 4)  # 0.5 * (1 - 2/3) + 0.25 * 0.5**2 * ln 2
        0.21
    """

    def __init__(self, mode="multiclass", from_logits=True, dice_weight=1.0, focal_weight=1.0,
                 alpha=0.25, gamma=2.0, smooth=0.0, name="dice_focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.mode = _check_mode(mode)
        self.from_logits = bool(from_logits)
        self.dice_weight = float(dice_weight)
        self.focal_weight = float(focal_weight)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.smooth = float(smooth)
        self._dice = DiceLoss(mode, from_logits, smooth)
        cls = (keras.losses.BinaryFocalCrossentropy if mode == "binary"
               else keras.losses.CategoricalFocalCrossentropy)
        kw = {"apply_class_balancing": True} if mode == "binary" else {}
        self._focal = cls(alpha=alpha, gamma=gamma, from_logits=from_logits, **kw)

    def call(self, y_true, y_pred):
        ops = keras.ops
        if self.mode == "binary":
            target = ops.cast(y_true, y_pred.dtype)
            if len(target.shape) == 3:
                target = target[..., None]
        else:
            target = ops.one_hot(_sparse_mask(y_true), y_pred.shape[-1], dtype=y_pred.dtype)
        return (self.dice_weight * self._dice(y_true, y_pred)
                + self.focal_weight * self._focal(target, y_pred))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "from_logits": self.from_logits,
                "dice_weight": self.dice_weight, "focal_weight": self.focal_weight,
                "alpha": self.alpha, "gamma": self.gamma, "smooth": self.smooth}


def iou_metrics(classes, from_logits=True, per_class=True, ignore_class=None):
    """Keras IoU metrics for a segmentation model's output.

    Multi-class (``classes >= 2``): ``keras.metrics.MeanIoU`` named ``mean_iou`` and, with
    ``per_class``, a ``keras.metrics.IoU`` per class named ``iou_{c}``; both arg-max the
    predictions (``sparse_y_pred=False``), so logits and probabilities score alike.
    Binary (``classes == 1``, one sigmoid channel): ``keras.metrics.BinaryIoU`` over both classes
    (``mean_iou``) and, with ``per_class``, of the foreground (``iou_1``); the threshold is ``0``
    for logits, ``0.5`` for probabilities.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.segmentation.losses import iou_metrics
        >>> m = iou_metrics(2)
        >>> [x.name for x in m]
        ['mean_iou', 'iou_0', 'iou_1']
        >>> t = np.array([[[0, 1], [1, 1]]])
        >>> p = np.eye(2, dtype="float32")[np.array([[[0, 1], [0, 1]]])]
        >>> _ = m[0].update_state(t, p)
        >>> round(float(m[0].result()), 4)  # (1/2 + 2/3) / 2
        0.5833
    """
    classes = int(classes)
    if classes < 1:
        raise ValueError(f"classes must be at least 1, got {classes}.")
    if classes == 1:
        threshold = 0.0 if from_logits else 0.5
        metrics = [keras.metrics.BinaryIoU([0, 1], threshold=threshold, name="mean_iou")]
        if per_class:
            metrics.append(keras.metrics.BinaryIoU([1], threshold=threshold, name="iou_1"))
        return metrics
    metrics = [keras.metrics.MeanIoU(classes, name="mean_iou", ignore_class=ignore_class,
                                     sparse_y_pred=False)]
    if per_class:
        metrics += [keras.metrics.IoU(classes, [c], name=f"iou_{c}", ignore_class=ignore_class,
                                      sparse_y_pred=False) for c in range(classes)]
    return metrics
