"""EfficientDet anchors and box coding against effdet 0.4.1's Anchors, decode_box_outputs and
FasterRcnnBoxCoder."""

from __future__ import annotations

import torch  # noqa: F401  (before TensorFlow)

import numpy as np
import pytest

effdet = pytest.importorskip("effdet")

from effdet.object_detection import BoxList, FasterRcnnBoxCoder  # noqa: E402

from keras_efficientnet.detection.anchors import (anchors_for, decode_boxes, encode_boxes,  # noqa: E402
                                                  generate_anchors)


@pytest.mark.parametrize("name,size", [("tf_efficientdet_d0", None), ("tf_efficientdet_d0", (256, 128)),
                                       ("tf_efficientdet_d3", (384, 384)),
                                       ("tf_efficientdet_d7x", (512, 256)),
                                       ("tf_efficientdet_lite0", None)])
def test_anchors_match_effdet(name, size):
    cfg = effdet.get_efficientdet_config(name)
    if size:
        cfg.image_size = size
    ref = effdet.anchors.Anchors.from_config(cfg).boxes.numpy()
    ours = anchors_for(name, size)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_plain_ratios_and_per_level_scales():
    ref = effdet.anchors.Anchors(3, 5, 2, [1.0, 2.0], [3.0, 4.0, 5.0], (128, 96)).boxes.numpy()
    ours = generate_anchors(3, 5, 2, [1.0, 2.0], [3.0, 4.0, 5.0], (128, 96))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_anchor_errors():
    with pytest.raises(ValueError, match="image_size"):
        generate_anchors(image_size="big")
    with pytest.raises(ValueError, match="2 values for 5 levels"):
        generate_anchors(anchor_scale=[1.0, 2.0])
    with pytest.raises(ValueError, match="min_level"):
        generate_anchors(min_level=5, max_level=3)


@pytest.mark.parametrize("xyxy", [False, True])
def test_decode_matches_effdet(xyxy, rng):
    anchors = anchors_for("d0", (128, 128))
    codes = rng.normal(scale=0.5, size=(len(anchors), 4)).astype("float32")
    ref = effdet.anchors.decode_box_outputs(torch.from_numpy(codes), torch.from_numpy(anchors),
                                            output_xyxy=xyxy).numpy()
    np.testing.assert_allclose(decode_boxes(codes, anchors, xyxy=xyxy), ref, rtol=1e-6, atol=1e-4)
    import keras
    from conftest import to_numpy
    batched = decode_boxes(keras.ops.convert_to_tensor(np.stack([codes, codes])), anchors, xyxy=xyxy)
    np.testing.assert_allclose(to_numpy(batched)[1], ref, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("scale_factors", [None, [10.0, 10.0, 5.0, 5.0]])
def test_encode_matches_effdet_and_inverts_decode(scale_factors, rng):
    anchors = anchors_for("d0", (128, 128))
    centre = rng.uniform(0, 128, size=(len(anchors), 2))
    size = rng.uniform(4, 100, size=(len(anchors), 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1).astype("float32")
    coder = FasterRcnnBoxCoder(scale_factors=scale_factors)
    ref = coder.encode(BoxList(torch.from_numpy(boxes)), BoxList(torch.from_numpy(anchors))).numpy()
    ours = encode_boxes(boxes, anchors, scale_factors=scale_factors)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    if scale_factors is None:
        back = decode_boxes(encode_boxes(boxes, anchors, eps=0.0), anchors)
        np.testing.assert_allclose(back, boxes, rtol=0, atol=1e-3)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        encode_boxes(boxes[:, :3], anchors)
