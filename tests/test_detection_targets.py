"""EfficientDet training targets and loss against effdet 0.4.1's own objects (no mocks):
``AnchorLabeler.label_anchors`` / ``batch_label_anchors`` (and its ``TargetAssigner`` with
an ``ArgMaxMatcher`` that ignores anchors between two thresholds) for the targets,
``effdet.loss.DetectionLoss`` for the loss, on the raw outputs in our layout re-laid out
into effdet's per-level NCHW tensors. The loss runs on the KERAS_BACKEND of the process."""

from __future__ import annotations

import torch  # noqa: F401  (before TensorFlow)

import numpy as np
import pytest

from conftest import max_rel_diff, to_numpy

effdet = pytest.importorskip("effdet")

from effdet.anchors import AnchorLabeler, Anchors  # noqa: E402
from effdet.loss import DetectionLoss  # noqa: E402
from effdet.object_detection import (ArgMaxMatcher, BoxList, FasterRcnnBoxCoder,  # noqa: E402
                                     IouSimilarity, TargetAssigner)

from keras_efficientnet.detection import (EfficientDetLoss, anchors_for, assign_targets,  # noqa: E402
                                          assign_targets_batch, box_iou, detection_loss)
from keras_efficientnet.detection.config import feat_sizes  # noqa: E402

NAME = "tf_efficientdet_d0"
CLASSES = 5


def effdet_config(size, **changes):
    cfg = effdet.get_efficientdet_config(NAME)
    cfg.image_size = (size, size)
    cfg.num_classes = CLASSES
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg


def random_boxes(rng, size, n):
    """``n`` boxes inside a ``size`` px image: a mix of tiny (no anchor reaches IoU 0.5: only
    the forced low-quality match), medium and large ones, plus an exact duplicate with another
    class (two boxes claiming the same anchor) and a box equal to an anchor."""
    out = []
    for i in range(n):
        side = [rng.uniform(3, 10), rng.uniform(16, 64), rng.uniform(64, size * 0.9)][i % 3]
        h, w = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
        h, w = min(h, size - 1.0), min(w, size - 1.0)
        y, x = rng.uniform(0, size - h), rng.uniform(0, size - w)
        out.append([y, x, y + h, x + w])
    boxes = np.asarray(out, "float32")
    boxes = np.concatenate([boxes, boxes[1:2], [[4.0, 4.0, 36.0, 36.0]]]).astype("float32")
    classes = rng.integers(0, CLASSES, len(boxes))
    classes[-2] = (classes[1] + 1) % CLASSES  # the duplicate has another class
    return boxes, classes


def flat_effdet(levels, last):
    """effdet's per-level (H, W, k) targets, flattened in our anchor order."""
    return torch.cat([t.reshape(-1, last) if last > 1 else t.reshape(-1) for t in levels]).numpy()


def effdet_labels(size, boxes, classes):
    labeler = AnchorLabeler(Anchors.from_config(effdet_config(size)), CLASSES, match_threshold=0.5)
    cls, box, num = labeler.label_anchors(torch.from_numpy(boxes), torch.from_numpy(classes + 1))
    return flat_effdet(cls, 1), flat_effdet(box, 4), float(num)


# --------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,n", [(0, 6), (1, 12), (2, 30)])
def test_targets_match_effdet_label_anchors(seed, n):
    size = 256
    rng = np.random.default_rng(seed)
    boxes, classes = random_boxes(rng, size, n)
    anchors = anchors_for(NAME, size)
    ref_cls, ref_box, ref_num = effdet_labels(size, boxes, classes)
    # the cases the test is there for do occur: forced low-quality matches, boxes with
    # several positive anchors, two boxes claiming one anchor
    iou = box_iou(boxes, anchors)
    assert (iou.max(1) < 0.5).any() and ref_num > len(boxes)
    assert len(set(ref_cls[ref_cls >= 0].tolist())) > 1
    for kwargs, cls_in in (({}, classes), ({"class_offset": 1}, classes + 1)):
        cls, box, num = assign_targets(boxes, cls_in, anchors, num_classes=CLASSES, image_size=size,
                                       **kwargs)
        assert cls.dtype == np.int32 and box.dtype == np.float32
        np.testing.assert_array_equal(cls, ref_cls)
        np.testing.assert_allclose(box, ref_box, rtol=0, atol=1e-5)
        assert num == ref_num


def test_first_box_wins_an_anchor_two_boxes_claim():
    size = 128
    anchors = anchors_for(NAME, size)
    inside = np.flatnonzero((anchors.min(1) >= 0) & (anchors[:, 2] <= size) & (anchors[:, 3] <= size))
    box = anchors[inside[0]][None]  # a box equal to an anchor
    boxes = np.concatenate([box, box]).astype("float32")
    for classes in (np.array([1, 3]), np.array([3, 1])):
        ref_cls, ref_box, ref_num = effdet_labels(size, boxes, classes)
        cls, bt, num = assign_targets(boxes, classes, anchors, num_classes=CLASSES, image_size=size)
        np.testing.assert_array_equal(cls, ref_cls)
        np.testing.assert_allclose(bt, ref_box, rtol=0, atol=1e-5)
        assert num == ref_num and set(cls[cls >= 0].tolist()) == {classes[0]}


def test_image_without_boxes_is_all_negative():
    size = 128
    anchors = anchors_for(NAME, size)
    ref_cls, ref_box, ref_num = effdet_labels(size, np.zeros((0, 4), "float32"), np.zeros((0,), "int64"))
    cls, box, num = assign_targets(np.zeros((0, 4)), [], anchors, num_classes=CLASSES, image_size=size)
    np.testing.assert_array_equal(cls, ref_cls)
    np.testing.assert_array_equal(box, ref_box)
    assert num == ref_num == 0 and (cls == -1).all()


def test_batch_matches_effdet_batch_label_anchors_padded_and_ragged():
    size = 128
    rng = np.random.default_rng(3)
    per_image = [random_boxes(rng, size, 4), random_boxes(rng, size, 9),
                 (np.zeros((0, 4), "float32"), np.zeros((0,), "int64"))]
    longest = max(len(b) for b, _ in per_image)
    pad_boxes = np.full((3, longest, 4), -1.0, "float32")
    pad_cls = np.full((3, longest), -1, "int64")
    for i, (b, c) in enumerate(per_image):
        pad_boxes[i, :len(b)], pad_cls[i, :len(c)] = b, c + 1  # effdet: 1-based, -1 padding
    labeler = AnchorLabeler(Anchors.from_config(effdet_config(size)), CLASSES, match_threshold=0.5)
    ref_cls, ref_box, ref_num = labeler.batch_label_anchors(torch.from_numpy(pad_boxes),
                                                            torch.from_numpy(pad_cls))
    ref_cls = torch.cat([t.reshape(3, -1) for t in ref_cls], 1).numpy()
    ref_box = torch.cat([t.reshape(3, -1, 4) for t in ref_box], 1).numpy()
    anchors = anchors_for(NAME, size)
    padded = assign_targets_batch(pad_boxes, pad_cls, anchors, num_classes=CLASSES, image_size=size,
                                  class_offset=1)
    ragged = assign_targets_batch([b for b, _ in per_image], [c for _, c in per_image], anchors,
                                  num_classes=CLASSES, image_size=size)
    for cls, box, num in (padded, ragged):
        np.testing.assert_array_equal(cls, ref_cls)
        np.testing.assert_allclose(box, ref_box, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(num, ref_num.numpy())
    assert ref_num.numpy()[2] == 0 and ref_num.numpy()[:2].min() > 0


def test_ignored_anchors_match_effdet_argmax_matcher():
    """Between unmatched_threshold and match_threshold effdet's matcher ignores anchors (-2);
    ours marks their class target -2 (effdet's labeler, which never uses two thresholds,
    would give them its background label)."""
    size = 256
    rng = np.random.default_rng(4)
    boxes, classes = random_boxes(rng, size, 15)
    anchors = anchors_for(NAME, size)
    assigner = TargetAssigner(IouSimilarity(),
                              ArgMaxMatcher(0.5, unmatched_threshold=0.4,
                                            negatives_lower_than_unmatched=True,
                                            force_match_for_each_row=True),
                              FasterRcnnBoxCoder())
    ref_cls, ref_box, match = assigner.assign(BoxList(torch.from_numpy(anchors)),
                                              BoxList(torch.from_numpy(boxes)),
                                              torch.from_numpy(classes + 1))
    matches = match.match_results.numpy()
    assert (matches == -2).sum() > 0
    cls, box, num = assign_targets(boxes, classes, anchors, num_classes=CLASSES, image_size=size,
                                   unmatched_threshold=0.4)
    np.testing.assert_array_equal(cls == -2, matches == -2)
    np.testing.assert_array_equal(cls == -1, matches == -1)
    np.testing.assert_array_equal(cls[matches >= 0], (ref_cls.numpy() - 1)[matches >= 0])
    np.testing.assert_allclose(box, ref_box.numpy(), rtol=0, atol=1e-5)
    assert num == (matches >= 0).sum()


# --------------------------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------------------------

def to_effdet_levels(flat, size, k):
    """Our (B, A, k) -> effdet's per-level (B, 9 * k, H, W) tensors."""
    out, start = [], 0
    sizes = feat_sizes((size, size), 7)
    for level in range(3, 8):
        h, w = sizes[level]
        n = h * w * 9
        t = torch.from_numpy(np.ascontiguousarray(flat[:, start:start + n]))
        out.append(t.reshape(flat.shape[0], h, w, 9 * k).permute(0, 3, 1, 2))
        start += n
    assert start == flat.shape[1]
    return out


def to_effdet_targets(flat, size, k):
    """Our (B, A[, 4]) targets -> effdet's per-level (B, H, W, 9[*4])."""
    out, start = [], 0
    sizes = feat_sizes((size, size), 7)
    for level in range(3, 8):
        h, w = sizes[level]
        n = h * w * 9
        out.append(torch.from_numpy(np.ascontiguousarray(flat[:, start:start + n])).reshape(
            flat.shape[0], h, w, 9 * k if k > 1 else 9))
        start += n
    return out


def loss_case(seed, size=128, batch=3, ignore=False):
    rng = np.random.default_rng(seed)
    per_image = [random_boxes(rng, size, 3 + 4 * i) for i in range(batch - 1)]
    per_image.append((np.zeros((0, 4), "float32"), np.zeros((0,), "int64")))
    anchors = anchors_for(NAME, size)
    cls_t, box_t, num = assign_targets_batch([b for b, _ in per_image], [c for _, c in per_image],
                                             anchors, num_classes=CLASSES, image_size=size)
    if ignore:  # some negatives and positives set to ignore, as effdet's loss allows
        cls_t = cls_t.copy()
        cls_t[:, ::7] = -2
    a = len(anchors)
    logits = (rng.standard_normal((batch, a, CLASSES)) * 2).astype("float32")
    codes = (box_t + rng.standard_normal((batch, a, 4)) * 0.15).astype("float32")
    return cls_t, box_t, num, logits, codes


def effdet_loss(cfg, size, cls_t, box_t, num, logits, codes):
    loss = DetectionLoss(cfg)
    out = loss(to_effdet_levels(logits, size, CLASSES), to_effdet_levels(codes, size, 4),
               [t.long() for t in to_effdet_targets(cls_t.astype("int64"), size, 1)],
               to_effdet_targets(box_t, size, 4), torch.from_numpy(num.astype("float32")))
    return [float(v) for v in out]


@pytest.mark.parametrize("changes,ignore", [
    ({}, False),
    ({}, True),
    ({"alpha": 0.4, "gamma": 2.0, "delta": 0.05, "box_loss_weight": 20.0, "label_smoothing": 0.1}, False),
])
def test_loss_matches_effdet_detection_loss(changes, ignore):
    size = 128
    cfg = effdet_config(size, **changes)
    assert not cfg.legacy_focal
    cls_t, box_t, num, logits, codes = loss_case(5, size, ignore=ignore)
    ref = effdet_loss(cfg, size, cls_t, box_t, num, logits, codes)
    kwargs = dict(alpha=cfg.alpha, gamma=cfg.gamma, delta=cfg.delta,
                  box_loss_weight=cfg.box_loss_weight, label_smoothing=cfg.label_smoothing)
    ours = [float(to_numpy(v)) for v in detection_loss(logits, codes, cls_t, box_t, num, **kwargs)]
    for o, r in zip(ours, ref):
        assert abs(o - r) <= 1e-5 * abs(r), (ours, ref)
    # num_positives counted from the targets; the Loss class gives the total
    counted = [float(to_numpy(v)) for v in detection_loss(logits, codes, cls_t, box_t, **kwargs)]
    if not ignore:
        assert max_rel_diff(counted, ref) <= 1e-5
    y_true = {"classes": cls_t, "boxes": box_t}
    if ignore:  # positives set to -2 still count in effdet's num_positives
        y_true["num_positives"] = num
    total = float(to_numpy(EfficientDetLoss(**kwargs)(y_true, {"classes": logits, "boxes": codes})))
    assert abs(total - ref[0]) <= 1e-5 * abs(ref[0])
    assert ref[1] > 0 and ref[2] > 0


def test_ignored_targets_change_effdet_loss():
    """The -2 case above is not vacuous: effdet's loss (and ours) does change with it."""
    size = 128
    cfg = effdet_config(size)
    plain = effdet_loss(cfg, size, *loss_case(5, size))
    ignored = effdet_loss(cfg, size, *loss_case(5, size, ignore=True))
    assert abs(plain[1] - ignored[1]) > 1e-3 * plain[1]


def test_default_config_matches_effdet_defaults():
    cfg = effdet.get_efficientdet_config(NAME)
    loss = EfficientDetLoss()
    assert (loss.alpha, loss.gamma, loss.delta, loss.box_loss_weight, loss.label_smoothing) == \
        (cfg.alpha, cfg.gamma, cfg.delta, cfg.box_loss_weight, cfg.label_smoothing)
    assert EfficientDetLoss.from_config(EfficientDetLoss(gamma=2.0).get_config()).gamma == 2.0


# --------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------

ANCHORS = anchors_for(NAME, 128)


def _assign(boxes, classes, **kwargs):
    kwargs.setdefault("num_classes", CLASSES)
    kwargs.setdefault("image_size", 128)
    return assign_targets(boxes, classes, ANCHORS, **kwargs)


@pytest.mark.parametrize("boxes,classes,kwargs,match", [
    ([[10, 10, 140, 50]], [0], {}, r"box 0 .* lies outside the 128x128 image.*clip"),
    ([[-5, 10, 40, 50]], [0], {}, r"outside the 128x128 image"),
    ([[10, 10, 40, 50], [10, 10, 40, 50]], [0, 1], {"image_size": (128, 40)},
     r"box 0 .* outside the 128x40 image"),
    ([[40, 10, 10, 50]], [0], {}, r"box 0 .* ymax <= ymin.*\(ymin, xmin, ymax, xmax\)"),
    ([[10, 10, 40, 50], [10, 50, 40, 10]], [0, 1], {}, r"box 1 .* xmax <= xmin"),
    ([[10, 10, 10, 50]], [0], {}, r"ymax <= ymin.*drop empty ones"),
    ([[10, 10, 40, float("nan")]], [0], {}, r"box 0 is not finite"),
    ([[10, 10, 40, 50]], [5], {}, r"box 0 has class id 5, outside 0\.\.4 \(num_classes=5"),
    ([[10, 10, 40, 50]], [-3], {}, r"class id -3, outside 0\.\.4.*-1 marks padding"),
    ([[10, 10, 40, 50]], [0], {"class_offset": 1}, r"class id 0, outside 1\.\.5.*class_offset=1"),
    ([[10, 10, 40, 50]], [0.5], {}, r"class ids must be integers"),
    ([[10, 10, 40]], [0], {}, r"boxes must be \(N, 4\)"),
    ([[10, 10, 40, 50]], [0, 1], {}, r"classes must be \(N,\) with one id per box"),
    ([[10, 10, 40, 50]], [0], {"num_classes": 0}, r"num_classes must be a positive integer"),
    ([[10, 10, 40, 50]], [0], {"match_threshold": 1.5}, r"match_threshold must be an IoU in \[0, 1\]"),
    ([[10, 10, 40, 50]], [0], {"unmatched_threshold": 0.6}, r"unmatched_threshold \(0.6\) must be <= "),
    ([[10, 10, 40, 50]], [0], {"image_size": (0, 128)}, r"image_size must be positive"),
])
def test_bad_inputs_raise(boxes, classes, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _assign(np.asarray(boxes, "float32"), np.asarray(classes), **kwargs)


def test_bad_anchors_and_batches_raise():
    with pytest.raises(ValueError, match=r"anchors must be \(A, 4\).*anchors_for"):
        assign_targets([[1, 1, 5, 5]], [0], ANCHORS[:, :3], num_classes=2, image_size=128)
    with pytest.raises(ValueError, match=r"boxes hold 2 images and classes 1"):
        assign_targets_batch([np.zeros((0, 4))] * 2, [[]], ANCHORS, num_classes=2, image_size=128)
    with pytest.raises(ValueError, match=r"image 1: box 0 .* outside the 128x128 image"):
        assign_targets_batch([[[1, 1, 5, 5]], [[1, 1, 500, 5]]], [[0], [0]], ANCHORS,
                             num_classes=2, image_size=128)
    # padding rows are not validated (effdet's collate pads boxes with -1)
    cls, _, num = assign_targets_batch([[[1, 1, 5, 5], [-1, -1, -1, -1]]], [[0, -1]], ANCHORS,
                                       num_classes=2, image_size=128)
    assert num[0] >= 1 and set(cls[0].tolist()) == {-1, 0}


def test_bad_loss_inputs_raise():
    with pytest.raises(ValueError, match=r"y_true must hold 'classes' and 'boxes'; missing \['boxes'\]"):
        EfficientDetLoss()({"classes": np.zeros((1, 3), "int32")},
                           {"classes": np.zeros((1, 3, 2), "float32"), "boxes": np.zeros((1, 3, 4), "float32")})
    with pytest.raises(ValueError, match=r"gamma must be a number in \[0, inf\]"):
        EfficientDetLoss(gamma=-1.0)
    with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1\]"):
        detection_loss(np.zeros((1, 3, 2)), np.zeros((1, 3, 4)), np.zeros((1, 3)), np.zeros((1, 3, 4)),
                       label_smoothing=2.0)


def test_fit_with_packed_outputs_trains_on_the_effdet_loss():
    """model.fit gives a dict-output model's outputs to a loss one by one; a single packed
    output (logits then box codes) with packed targets (class then box targets) works, and
    the value Keras reports is detection_loss's."""
    import keras

    size = 128
    cls_t, box_t, num, logits, codes = loss_case(6, size, batch=2)
    a = cls_t.shape[1]
    inputs = keras.Input((3,))
    packed = keras.layers.Reshape((a, CLASSES + 4))(
        keras.layers.Dense(a * (CLASSES + 4), kernel_initializer="zeros")(inputs))
    model = keras.Model(inputs, packed)
    model.compile(keras.optimizers.SGD(0.0), loss=EfficientDetLoss())
    y = np.concatenate([cls_t[..., None].astype("float32"), box_t], -1)
    x = np.ones((2, 3), "float32")
    seen = model.evaluate(x, y, batch_size=2, verbose=0)
    zeros = np.zeros((2, a, CLASSES), "float32"), np.zeros((2, a, 4), "float32")
    ref = effdet_loss(effdet_config(size), size, cls_t, box_t, num, *zeros)
    assert abs(seen - ref[0]) <= 1e-5 * ref[0]
    model.compile(keras.optimizers.SGD(1e-3), loss=EfficientDetLoss())
    history = model.fit(x, y, batch_size=2, epochs=3, verbose=0).history["loss"]
    assert history[-1] < history[0]
    with pytest.raises(ValueError, match=r"y_pred must be a dict .* or one packed \(B, A, C \+ 4\)"):
        EfficientDetLoss()(y, np.zeros((2, a, 3), "float32"))
