"""EfficientDet training targets as plain NumPy (imports no Keras).

:func:`assign_targets` labels every anchor of one image the way effdet 0.4.1's
``AnchorLabeler.label_anchors`` does (itself automl's / the TF object detection API's
``TargetAssigner`` with an ``ArgMaxMatcher`` and ``FasterRcnnBoxCoder``):

1. IoU of every ground-truth box with every anchor (no ``+1`` pixel convention; an IoU whose
   intersection is 0 is exactly 0).
2. Each anchor takes the box it overlaps most (the first box on ties). It is positive when
   that IoU is ``>= match_threshold``, negative (background) when it is
   ``< unmatched_threshold``, ignored in between.
3. Low-quality matches (effdet's ``force_match_for_each_row=True``): each box also claims the
   anchor it overlaps most (the first anchor on ties), whatever the IoU, so that every box has
   at least one positive anchor. When several boxes claim the same anchor, the first box wins.
4. A positive anchor gets its box's class and the ``(ty, tx, th, tw)`` code of the box
   relative to the anchor (:func:`~keras_efficientnet.detection.anchors.encode_boxes`);
   every other anchor gets box target ``0``.

effdet's ``AnchorLabeler`` uses ``match_threshold = unmatched_threshold = 0.5``, so no anchor
is ever ignored there; these are the defaults here.

Class convention. ``classes`` are 0-based indices of the class net's outputs
(``0 .. num_classes - 1``), the indices :class:`~keras_efficientnet.detection.DetectionPostProcess`
reports with its default ``class_offset=0``. effdet's data pipeline instead hands the
labeler 1-based labels (its COCO parser maps category ids to ``1 .. num_classes``) and the
labeler subtracts 1; pass ``class_offset=1`` to feed such labels unchanged. A raw class of
``-1`` marks a padding row (as effdet's collate pads) and is dropped, as effdet's
``filter_valid`` drops labels ``<= -1``.

Class targets, one ``int32`` per anchor:

* ``c >= 0``: positive, matched to a box of class ``c``;
* ``-1``: negative (background), as effdet's labeler encodes it (its unmatched anchors take
  label 0, minus 1);
* ``-2``: ignored (neither class nor box loss) — effdet's ``DetectionLoss`` skips targets of
  ``-2``. Only produced when ``unmatched_threshold < match_threshold`` (effdet's labeler
  would give these anchors ``-1``, background; the matcher itself marks them ignored).

Boxes are ``(ymin, xmin, ymax, xmax)`` in input pixels, the anchors' frame.
"""

from __future__ import annotations

import numpy as np

from .anchors import BOX_CODER_EPS, encode_boxes

#: raw class id of a padding row (effdet's collate fills with -1).
PAD_CLASS = -1
#: class target of an ignored anchor (effdet's DetectionLoss skips it).
IGNORE = -2
#: class target of a negative (background) anchor.
BACKGROUND = -1


def box_iou(boxes1, boxes2) -> np.ndarray:
    """Pairwise IoU of two sets of ``(ymin, xmin, ymax, xmax)`` boxes, float32, as effdet's
    ``IouSimilarity`` (an IoU with zero intersection is exactly 0).

    Args:
        boxes1: ``(N, 4)``; boxes2: ``(M, 4)``.

    Returns:
        ``(N, M)`` float32.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection.targets import box_iou
        >>> box_iou(np.array([[0, 0, 10, 10.0]]), np.array([[0, 5, 10, 15.0], [20, 20, 30, 30]]))
        array([[0.33333334, 0.        ]], dtype=float32)
    """
    a = np.asarray(boxes1, "float32").reshape(-1, 4)
    b = np.asarray(boxes2, "float32").reshape(-1, 4)
    heights = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    widths = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(heights, np.float32(0)) * np.maximum(widths, np.float32(0))
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(inter == 0, np.float32(0), inter / np.where(inter == 0, 1, union))
    return iou.astype("float32")


def _image_size(image_size):
    if isinstance(image_size, (int, np.integer)):
        image_size = (image_size, image_size)
    try:
        h, w = (float(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be an int or (height, width) in pixels; got "
                         f"{image_size!r}.") from None
    if not (h > 0 and w > 0):
        raise ValueError(f"image_size must be positive; got {image_size!r}.")
    return h, w


def _check_thresholds(match_threshold, unmatched_threshold):
    if unmatched_threshold is None:
        unmatched_threshold = match_threshold
    for name, v in (("match_threshold", match_threshold), ("unmatched_threshold", unmatched_threshold)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                or not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"{name} must be an IoU in [0, 1]; got {v!r}.")
    if unmatched_threshold > match_threshold:
        raise ValueError(f"unmatched_threshold ({unmatched_threshold}) must be <= match_threshold "
                         f"({match_threshold}): anchors between the two are ignored.")
    return float(match_threshold), float(unmatched_threshold)


def _check_common(num_classes, class_offset, anchors, match_threshold, unmatched_threshold):
    """The checks :func:`assign_targets` and :func:`assign_targets_batch` share; returns
    ``(anchors as float32, match_threshold, unmatched_threshold)``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}.")
    if isinstance(class_offset, bool) or not isinstance(class_offset, (int, np.integer)):
        raise ValueError(f"class_offset must be an integer; got {class_offset!r}.")
    match_threshold, unmatched_threshold = _check_thresholds(match_threshold, unmatched_threshold)
    anchors = np.asarray(anchors, "float32")
    if anchors.ndim != 2 or anchors.shape[1] != 4 or not len(anchors):
        raise ValueError(f"anchors must be (A, 4) (ymin, xmin, ymax, xmax), e.g. anchors_for(config, "
                         f"image_size); got shape {anchors.shape}.")
    return anchors, match_threshold, unmatched_threshold


def _clean(boxes, classes, num_classes, image_size, class_offset, tolerance, where=""):
    """Validated ``(boxes (N, 4) float32, 0-based classes (N,) int64)`` with padding rows
    dropped."""
    boxes = np.asarray(boxes, dtype="float64")
    classes = np.asarray(classes)
    if boxes.size == 0 and boxes.ndim <= 2:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}boxes must be (N, 4) (ymin, xmin, ymax, xmax) pixels; got shape "
                         f"{boxes.shape}.")
    if classes.ndim == 2 and classes.shape[1] == 1:
        classes = classes[:, 0]
    if classes.ndim != 1 or classes.shape[0] != boxes.shape[0]:
        raise ValueError(f"{where}classes must be (N,) with one id per box; got shape {classes.shape} "
                         f"for {boxes.shape[0]} boxes.")
    if classes.size and not (np.issubdtype(classes.dtype, np.integer)
                             or np.all(np.mod(classes, 1) == 0)):
        raise ValueError(f"{where}class ids must be integers; got {classes[np.mod(classes, 1) != 0][:3]}.")
    classes = classes.astype("int64")
    keep = classes != PAD_CLASS
    boxes, classes = boxes[keep], classes[keep] - class_offset
    rows = np.flatnonzero(keep)
    bad = (classes < 0) | (classes >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{where}box {rows[i]} has class id {classes[i] + class_offset}, outside "
            f"{class_offset}..{num_classes - 1 + class_offset} (num_classes={num_classes}, "
            f"class_offset={class_offset}; -1 marks padding). Use 0-based ids of the class net "
            f"or class_offset=1 for effdet's 1-based labels.")
    if not np.all(np.isfinite(boxes)):
        i = int(np.flatnonzero(~np.isfinite(boxes).all(1))[0])
        raise ValueError(f"{where}box {rows[i]} is not finite: {boxes[i].tolist()}.")
    for lo, hi, axis in ((0, 2, "y"), (1, 3, "x")):
        bad = boxes[:, hi] <= boxes[:, lo]
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{where}box {rows[i]} {boxes[i].tolist()} has {axis}max <= {axis}min: boxes must be "
                f"(ymin, xmin, ymax, xmax) with a positive size (convert (x, y, x, y) or "
                f"(x, y, w, h) boxes; drop empty ones).")
    h, w = image_size
    outside = (boxes[:, 0] < -tolerance) | (boxes[:, 1] < -tolerance) | \
        (boxes[:, 2] > h + tolerance) | (boxes[:, 3] > w + tolerance)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"{where}box {rows[i]} {boxes[i].tolist()} lies outside the {h:g}x{w:g} image: boxes are "
            f"(ymin, xmin, ymax, xmax) in the pixels of the network input; scale them with the "
            f"image and clip them to [0, height] x [0, width].")
    return boxes.astype("float32"), classes


def _match(iou, match_threshold, unmatched_threshold):
    """effdet's ArgMaxMatcher with force_match_for_each_row: per anchor, the matched box index,
    -1 (negative) or -2 (ignored)."""
    num_boxes, num_anchors = iou.shape
    if num_boxes == 0:
        return np.full((num_anchors,), -1, "int64")
    best = iou.max(axis=0)
    matches = iou.argmax(axis=0).astype("int64")
    matches[best < unmatched_threshold] = -1
    matches[(best >= unmatched_threshold) & (best < match_threshold)] = -2
    # every box keeps its best anchor; the first box wins an anchor several boxes claim
    claimed = iou.argmax(axis=1)
    anchors_, first_box = np.unique(claimed, return_index=True)
    matches[anchors_] = first_box
    return matches


def assign_targets(boxes, classes, anchors, *, num_classes: int, image_size,
                   match_threshold: float = 0.5, unmatched_threshold: float | None = None,
                   class_offset: int = 0, tolerance: float = 1e-3):
    """Class and box targets of every anchor for one image (effdet's
    ``AnchorLabeler.label_anchors``; see the module docstring for the rules).

    Args:
        boxes: ``(N, 4)`` ground-truth ``(ymin, xmin, ymax, xmax)`` in input pixels (``N`` may
            be 0: every anchor is then negative).
        classes: ``(N,)`` integer class ids (``-1``: padding row, dropped).
        anchors: ``(A, 4)`` anchors, e.g. :func:`~keras_efficientnet.detection.anchors_for`.
        num_classes: classes of the class net.
        image_size: the network input ``(height, width)`` (or an int); boxes must lie inside.
        match_threshold: IoU from which an anchor is positive (effdet: 0.5).
        unmatched_threshold: IoU below which an anchor is negative; anchors in between are
            ignored (default: ``match_threshold``, effdet's, so none is ignored).
        class_offset: subtracted from ``classes`` (1 for effdet's 1-based labels).
        tolerance: pixels a box may stick out of the image (rounding of resized boxes).

    Returns:
        ``(class_targets (A,) int32, box_targets (A, 4) float32, num_positives int)``:
        class index per positive anchor, ``-1`` negative, ``-2`` ignored; box codes
        ``(ty, tx, th, tw)`` for positive anchors and 0 elsewhere; the number of positive
        anchors.

    Raises:
        ValueError: for boxes outside the image, of non-positive size or not finite, class ids
            out of range, mismatched shapes or thresholds outside ``[0, 1]``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection import anchors_for, assign_targets
        >>> anchors = anchors_for("d0", 128)
        >>> cls, box, n = assign_targets([[10, 20, 60, 90]], [2], anchors, num_classes=3,
        ...                              image_size=128)
        >>> cls.shape, box.shape, n, sorted(set(cls.tolist()))
        ((3069,), (3069, 4), 35, [-1, 2])
        >>> assign_targets(np.zeros((0, 4)), [], anchors, num_classes=3, image_size=128)[2]
        0
    """
    anchors, match_threshold, unmatched_threshold = _check_common(
        num_classes, class_offset, anchors, match_threshold, unmatched_threshold)
    boxes, classes = _clean(boxes, classes, int(num_classes), _image_size(image_size),
                            int(class_offset), float(tolerance))
    return _assign(boxes, classes, anchors, match_threshold, unmatched_threshold)


def _assign(boxes, classes, anchors, match_threshold, unmatched_threshold):
    matches = _match(box_iou(boxes, anchors), match_threshold, unmatched_threshold)
    positive = matches >= 0
    class_targets = np.where(matches == -2, IGNORE, BACKGROUND).astype("int32")
    box_targets = np.zeros((len(anchors), 4), "float32")
    if positive.any():
        class_targets[positive] = classes[matches[positive]]
        box_targets[positive] = encode_boxes(boxes[matches[positive]], anchors[positive],
                                             eps=BOX_CODER_EPS)
    return class_targets, box_targets, int(positive.sum())


def assign_targets_batch(boxes, classes, anchors, *, num_classes: int, image_size,
                         match_threshold: float = 0.5, unmatched_threshold: float | None = None,
                         class_offset: int = 0, tolerance: float = 1e-3):
    """:func:`assign_targets` for a batch (effdet's ``AnchorLabeler.batch_label_anchors``).

    Args:
        boxes: per image ``(N_i, 4)`` boxes: a list (ragged) or a padded ``(B, N, 4)`` array.
        classes: per image ``(N_i,)`` class ids: a list or a ``(B, N)`` array with ``-1`` in
            the padding rows (whose boxes are not looked at).
        anchors, num_classes, image_size, match_threshold, unmatched_threshold, class_offset,
            tolerance: as :func:`assign_targets` (one image size for the whole batch).

    Returns:
        ``(class_targets (B, A) int32, box_targets (B, A, 4) float32, num_positives (B,)
        int32)``; the ``y_true`` of :class:`~keras_efficientnet.detection.EfficientDetLoss` is
        ``{"classes": class_targets, "boxes": box_targets}``.

    Raises:
        ValueError: as :func:`assign_targets`, naming the image; or when ``boxes`` and
            ``classes`` hold different numbers of images.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection import anchors_for, assign_targets_batch
        >>> boxes = np.array([[[10, 20, 60, 90], [0, 0, 0, 0]], [[0, 0, 0, 0], [0, 0, 0, 0]]])
        >>> classes = np.array([[0, -1], [-1, -1]])  # image 1 has one box, image 2 none
        >>> cls, box, n = assign_targets_batch(boxes, classes, anchors_for("d0", 128),
        ...                                    num_classes=1, image_size=128)
        >>> cls.shape, box.shape, n.tolist()
        ((2, 3069), (2, 3069, 4), [35, 0])
    """
    if len(boxes) != len(classes):
        raise ValueError(f"boxes hold {len(boxes)} images and classes {len(classes)}; give one "
                         f"(boxes, classes) pair per image.")
    anchors, match_threshold, unmatched_threshold = _check_common(
        num_classes, class_offset, anchors, match_threshold, unmatched_threshold)
    size = _image_size(image_size)
    cls_out, box_out, pos_out = [], [], []
    for i, (b, c) in enumerate(zip(boxes, classes)):
        b, c = _clean(b, c, int(num_classes), size, int(class_offset), float(tolerance),
                      where=f"image {i}: ")
        ct, bt, n = _assign(b, c, anchors, match_threshold, unmatched_threshold)
        cls_out.append(ct)
        box_out.append(bt)
        pos_out.append(n)
    if not cls_out:
        return (np.zeros((0, len(anchors)), "int32"), np.zeros((0, len(anchors), 4), "float32"),
                np.zeros((0,), "int32"))
    return np.stack(cls_out), np.stack(box_out), np.asarray(pos_out, "int32")
