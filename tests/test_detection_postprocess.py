"""EfficientDet post-processing against code we did not write: effdet 0.4.1's own
``_post_process`` + ``_batch_detection`` (DetBenchPredict's steps: top-5000 candidates, sigmoid,
anchor decoding, clipping to the original image, per-class NMS through torchvision, top 100,
rescaling) on the same raw outputs, and ``batched_nms`` against ``torchvision.ops.batched_nms``.

The raw outputs are random but shaped to exercise every step: many candidates with high,
distinct scores on overlapping anchors (so NMS removes boxes), boxes reaching past the
original image (so clipping matters), a non-square original image (so width and height
cannot be swapped unnoticed) and a different scale per image.
"""

from __future__ import annotations

import numpy as np
import pytest

import torch  # noqa: F401  (before TensorFlow: torchvision after TensorFlow crashes)
import torchvision

from keras import ops

from keras_efficientnet.detection import DetectionPostProcess
from keras_efficientnet.detection.postprocess import batched_nms

SIZE = 128
LEVELS = range(3, 8)
ANCHORS = 9
CLASSES = 6


def _raw(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    n = sum((SIZE // 2 ** level) ** 2 * ANCHORS for level in LEVELS)
    logits = rng.normal(-3.0, 2.0, (batch, n, CLASSES)).astype("float32")
    codes = rng.normal(0.0, 0.4, (batch, n, 4)).astype("float32")
    return logits, codes


def _effdet(logits, codes, scale=None, size_wh=None):
    """effdet's own DetBenchPredict steps on flat raw outputs; without ``scale``/``size_wh``
    (no img_info) boxes stay in input pixels, unclipped."""
    from effdet import get_efficientdet_config
    from effdet.anchors import Anchors
    from effdet.bench import _batch_detection, _post_process

    config = get_efficientdet_config("tf_efficientdet_d0")
    config.image_size = (SIZE, SIZE)
    anchors = Anchors.from_config(config)
    cls_levels, box_levels, start = [], [], 0
    batch = logits.shape[0]
    for level in LEVELS:
        side = SIZE // 2 ** level
        count = side * side * ANCHORS
        for src, out, width in ((logits, cls_levels, CLASSES), (codes, box_levels, 4)):
            part = src[:, start:start + count].reshape(batch, side, side, ANCHORS * width)
            out.append(torch.from_numpy(np.ascontiguousarray(part.transpose(0, 3, 1, 2))))
        start += count
    assert start == logits.shape[1]
    cls_top, box_top, indices, classes = _post_process(
        cls_levels, box_levels, num_levels=len(LEVELS), num_classes=CLASSES,
        max_detection_points=5000)
    det = _batch_detection(batch, cls_top, box_top, anchors.boxes, indices, classes,
                           None if scale is None else torch.tensor(scale, dtype=torch.float32),
                           None if size_wh is None else torch.tensor(size_wh, dtype=torch.float32),
                           max_det_per_image=100)
    return det.numpy()


def test_detections_equal_effdet():
    logits, codes = _raw()
    heights_widths = np.array([[300.0, 200.0], [150.0, 260.0]], "float32")  # (h, w)
    scale = heights_widths.max(axis=1) / SIZE  # original pixels per input pixel
    expected = _effdet(logits, codes, scale, heights_widths[:, ::-1].copy())  # effdet: (w, h)
    post = DetectionPostProcess.from_detection_config("d0", (SIZE, SIZE), class_offset=1)
    out = {k: ops.convert_to_numpy(v) for k, v in post(
        {"classes": logits, "boxes": codes}, image_scale=scale, image_size=heights_widths).items()}
    assert out["boxes"].shape == (2, 100, 4)
    for i in range(2):
        n = int(out["num_detections"][i])
        real = expected[i][expected[i][:, 4] > 0]
        assert n == len(real) == 100  # enough candidates survive to fill every slot
        np.testing.assert_allclose(out["boxes"][i, :n], real[:, :4], atol=2e-3, rtol=1e-5)
        np.testing.assert_allclose(out["confidence"][i, :n], real[:, 4], atol=1e-6, rtol=1e-5)
        np.testing.assert_array_equal(out["classes"][i, :n], real[:, 5].astype(int))
        # clipping to the original image really happened (boxes reach its right/bottom edges)
        h, w = heights_widths[i]
        assert out["boxes"][i, :n, 2].max() == pytest.approx(w, abs=1e-3)
        assert out["boxes"][i, :n, 3].max() == pytest.approx(h, abs=1e-3)


def test_nms_suppresses_like_torchvision():
    rng = np.random.default_rng(3)
    k = 300
    centres = rng.uniform(0, 40, (k, 2))
    sizes = rng.uniform(5, 40, (k, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], -1).astype("float32")
    scores = rng.uniform(0, 1, k).astype("float32")
    classes = rng.integers(0, 3, k)
    reference = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                            torch.from_numpy(classes), 0.5).numpy()
    assert 30 < len(reference) < k - 30  # overlaps suppress a good share, not all
    idx, valid = batched_nms(boxes[None], scores[None], classes[None], iou_threshold=0.5,
                             max_detections=k)
    idx, valid = ops.convert_to_numpy(idx)[0], ops.convert_to_numpy(valid)[0]
    np.testing.assert_array_equal(idx[valid], reference)
    assert not valid[len(reference):].any()
    # a smaller budget keeps the same first boxes
    idx5, valid5 = batched_nms(boxes[None], scores[None], classes[None], max_detections=5)
    np.testing.assert_array_equal(ops.convert_to_numpy(idx5)[0], reference[:5])
    assert ops.convert_to_numpy(valid5).all()


@pytest.mark.parametrize("kwargs,message", [
    (dict(iou_threshold=1.5), r"iou_threshold must be a number in \[0, 1\]"),
    (dict(max_detections=0), r"max_detections"),
    (dict(score_threshold="high"), r"score_threshold must be a number or None"),
    (dict(class_offset=0.5), r"class_offset must be an integer"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DetectionPostProcess.from_detection_config("d0", (SIZE, SIZE), **kwargs)


def _assert_same_detections(boxes, scores, classes, expected, score_tol=1e-5, box_tol=1e-3):
    """Detections equal up to the order of ties: two detections whose scores differ by less
    than the two models' rounding (random weights give such near-ties) may come out in either
    order, so each of ours is paired one-to-one with an unused expected detection of the same
    class, a score within ``score_tol`` and a box within ``box_tol`` pixels (8e-5 seen)."""
    unused = list(range(len(expected)))
    for k in range(len(boxes)):
        match = [j for j in unused
                 if abs(expected[j, 4] - scores[k]) <= score_tol
                 and int(expected[j, 5]) == int(classes[k])
                 and np.max(np.abs(expected[j, :4] - boxes[k])) <= box_tol]
        assert match, (f"detection {k} (class {classes[k]}, score {scores[k]:.6f}, box "
                       f"{boxes[k]}) has no equal in effdet's; nearest by score: "
                       f"{expected[np.argmin(np.abs(expected[:, 4] - scores[k]))]}")
        unused.remove(match[0])


def _assert_well_conditioned(net, cfg, x, expected):
    """The fixture has no near-tie that float32 rounding could flip: effdet's own detections
    from its float64 raw outputs (rounded to float32 for the post-process) are the same
    detections, in the same order, as from its float32 ones. Random weights give flat scores
    (100 detections within ~0.02) and anchor-sized boxes, so an NMS IoU or a score order can
    sit within 1e-6 of a tie; such a fixture would make any two correct implementations
    disagree, so it is refused here rather than tolerated below."""
    import copy

    from test_detection import effdet_outputs

    cls, box = effdet_outputs(copy.deepcopy(net).double(), cfg, x.astype("float64"))
    exact = _effdet(cls.astype("float32"), box.astype("float32"))
    np.testing.assert_array_equal(exact[..., 5], expected[..., 5])
    np.testing.assert_allclose(exact[..., :4], expected[..., :4], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(exact[..., 4], expected[..., 4], atol=1e-6)


def test_end_to_end_equals_effdet_detbenchpredict(tmp_path):
    """The user path: an effdet checkpoint file -> ``EfficientDetD0(weights=...,
    include_postprocess=True)`` gives effdet's ``DetBenchPredict`` detections."""
    import effdet
    from test_detection import effdet_net

    import keras_efficientnet as ke

    net, cfg = effdet_net("tf_efficientdet_d0", SIZE, seed=4, num_classes=CLASSES)
    path = str(tmp_path / "d0.pth")
    torch.save(net.state_dict(), path)
    bench = effdet.DetBenchPredict(net).eval()
    x = np.random.default_rng(9).normal(size=(2, 3, SIZE, SIZE)).astype("float32")
    with torch.no_grad():
        expected = bench(torch.from_numpy(x)).numpy()  # no img_info: input-pixel boxes
    _assert_well_conditioned(net, cfg, x, expected)
    model = ke.detection.EfficientDetD0(num_classes=CLASSES, input_shape=(SIZE, SIZE, 3),
                                        weights=path, include_postprocess=True,
                                        include_preprocessing=False,
                                        postprocess_kwargs={"class_offset": 1})
    out = {k: ops.convert_to_numpy(v) for k, v in
           model(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), training=False).items()}
    for i in range(2):
        real = expected[i][expected[i][:, 4] > 0]
        n = int(out["num_detections"][i])
        assert n == len(real) == 100
        # raw outputs agree to ~1e-5 (test_detection), so scores and boxes do to about that
        np.testing.assert_allclose(out["confidence"][i, :n], real[:, 4], atol=1e-5)
        _assert_same_detections(out["boxes"][i, :n], out["confidence"][i, :n],
                                out["classes"][i, :n], real)
