"""Segmentation training pieces: Dice / Dice+CE / Dice+focal losses and IoU metrics against
independent numpy computations on hand-made masks and against segmentation-models-pytorch's own
``DiceLoss``; the image/mask folder loader and its errors; the embedded data set; a tiny fit."""

import os

import numpy as np
import pytest
import torch  # noqa: F401  (before TensorFlow)

import keras

from conftest import to_numpy

from keras_efficientnet.segmentation import losses as L  # noqa: E402


def hand_masks():
    """Two 4x4 masks of three classes (class 2 only in the second) and fixed logits."""
    t = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]],
                  [[2, 2, 0, 0], [2, 2, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]]], "int32")
    logits = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32") * 2
    return t, logits


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_dice_loss(t, p, smooth=0.0, eps=1e-7):
    """Per class over the batch: 1 - (|pt| + s) / ((|p| + |t|) / 2 + s), zero for classes absent
    from t."""
    c = p.shape[-1]
    onehot = np.eye(c)[t] if c > 1 else t[..., None].astype("float64")
    losses = []
    for k in range(c):
        pk, tk = p[..., k].astype("float64"), onehot[..., k]
        score = ((pk * tk).sum() + smooth) / max((pk.sum() + tk.sum()) / 2 + smooth, eps)
        losses.append((1 - score) if tk.sum() > 0 else 0.0)
    return float(np.mean(losses))


def test_dice_multiclass_matches_numpy():
    t, logits = hand_masks()
    ref = np_dice_loss(t, np_softmax(logits))
    assert abs(float(to_numpy(L.DiceLoss()(t, logits))) - ref) < 1e-6
    smoothed = np_dice_loss(t, np_softmax(logits), smooth=1.0)
    assert abs(float(to_numpy(L.DiceLoss(smooth=1.0)(t, logits))) - smoothed) < 1e-6
    # probabilities in, from_logits=False; (N, H, W, 1) masks read the same
    got = L.DiceLoss(from_logits=False)(t[..., None], np_softmax(logits))
    assert abs(float(to_numpy(got)) - ref) < 1e-6
    # a perfect prediction scores 0; a class absent from the masks adds nothing
    perfect = np.eye(3, dtype="float32")[t] * 40 - 20
    assert float(to_numpy(L.DiceLoss()(t, perfect))) < 1e-6
    absent = np.where(t == 2, 0, t)
    assert abs(float(to_numpy(L.DiceLoss()(absent, logits)))
               - np_dice_loss(absent, np_softmax(logits))) < 1e-6


def test_dice_binary_matches_numpy():
    t, logits = hand_masks()
    t = (t == 1).astype("int32")
    x = logits[..., :1]
    prob = 1 / (1 + np.exp(-x))
    ref = np_dice_loss(t, prob)
    assert abs(float(to_numpy(L.DiceLoss("binary")(t, x))) - ref) < 1e-6
    assert abs(float(to_numpy(L.DiceLoss("binary", from_logits=False)(t, prob))) - ref) < 1e-6
    with pytest.raises(ValueError, match="one output channel"):
        L.DiceLoss("binary")(t, logits)
    with pytest.raises(ValueError, match="mode must be"):
        L.DiceLoss("multilabel")


@pytest.mark.parametrize("mode", ["multiclass", "binary"])
def test_dice_matches_smp(mode):
    smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")
    t, logits = hand_masks()
    if mode == "binary":
        t, logits = (t == 1).astype("int64"), logits[..., :1]
    ref = smp_losses.DiceLoss(mode, from_logits=True, smooth=0.5)(
        torch.tensor(np.transpose(logits, (0, 3, 1, 2))),
        torch.tensor(t[:, None] if mode == "binary" else t).long())
    got = L.DiceLoss(mode, smooth=0.5)(t, logits)
    assert abs(float(to_numpy(got)) - float(ref)) < 1e-6


def test_dice_crossentropy_and_focal_match_numpy():
    t, logits = hand_masks()
    p = np_softmax(logits.astype("float64"))
    onehot = np.eye(3)[t]
    ce = float(np.mean(-np.log((p * onehot).sum(-1))))
    dice = np_dice_loss(t, p)
    got = L.DiceCrossentropy(dice_weight=0.3, ce_weight=2.0)(t, logits)
    assert abs(float(to_numpy(got)) - (0.3 * dice + 2.0 * ce)) < 1e-5
    focal = float(np.mean((0.25 * (1 - p) ** 2 * -np.log(p) * onehot).sum(-1)))
    got = L.DiceFocal(alpha=0.25, gamma=2.0)(t, logits)
    assert abs(float(to_numpy(got)) - (dice + focal)) < 1e-5
    # binary: sigmoid cross-entropy and class-balanced binary focal
    tb = (t == 1).astype("float64")
    q = 1 / (1 + np.exp(-logits[..., 0].astype("float64")))
    bce = float(np.mean(-(tb * np.log(q) + (1 - tb) * np.log(1 - q))))
    got = L.DiceCrossentropy("binary")(t == 1, logits[..., :1])
    assert abs(float(to_numpy(got)) - (np_dice_loss(tb.astype(int), q[..., None]) + bce)) < 1e-5
    pt = np.where(tb == 1, q, 1 - q)
    at = np.where(tb == 1, 0.25, 0.75)
    bfocal = float(np.mean(at * (1 - pt) ** 2 * -np.log(pt)))
    got = L.DiceFocal("binary")(t == 1, logits[..., :1])
    assert abs(float(to_numpy(got)) - (np_dice_loss(tb.astype(int), q[..., None]) + bfocal)) < 1e-5


def np_iou(t, pred, c):
    inter = np.sum((t == c) & (pred == c))
    union = np.sum((t == c) | (pred == c))
    return inter / union if union else np.nan


def test_iou_metrics_match_numpy():
    t, logits = hand_masks()
    pred = logits.argmax(-1)
    metrics = L.iou_metrics(3)
    for m in metrics:
        m.update_state(t, logits)
    per_class = [np_iou(t, pred, c) for c in range(3)]
    assert [m.name for m in metrics] == ["mean_iou", "iou_0", "iou_1", "iou_2"]
    assert abs(float(to_numpy(metrics[0].result())) - np.nanmean(per_class)) < 1e-6
    for c in range(3):
        assert abs(float(to_numpy(metrics[1 + c].result())) - per_class[c]) < 1e-6
    # binary: logits thresholded at 0
    tb, x = (t == 1).astype("int32"), logits[..., :1]
    mean_iou, fg = L.iou_metrics(1)
    for m in (mean_iou, fg):
        m.update_state(tb, x)
    pb = (x[..., 0] >= 0).astype(int)
    ref = [np_iou(tb, pb, 0), np_iou(tb, pb, 1)]
    assert abs(float(to_numpy(mean_iou.result())) - np.mean(ref)) < 1e-6
    assert abs(float(to_numpy(fg.result())) - ref[1]) < 1e-6


def test_losses_and_metrics_round_trip_in_keras_file(tmp_path):
    import keras_efficientnet  # noqa: F401  (registers the losses)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    model.compile(loss=L.DiceFocal(dice_weight=0.5, gamma=1.5), metrics=L.iou_metrics(3))
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, L.DiceFocal)
    assert (loaded.loss.dice_weight, loaded.loss.gamma) == (0.5, 1.5)
    for cls in (L.DiceLoss, L.DiceCrossentropy):
        cfg = keras.saving.serialize_keras_object(cls("binary", smooth=1.0))
        back = keras.saving.deserialize_keras_object(cfg)
        assert type(back) is cls and back.mode == "binary" and back.smooth == 1.0


# --------------------------------------------------------------------------------------------
# image/mask folders
# --------------------------------------------------------------------------------------------

def write_pair(root, stem, size=(64, 96), mask_size=None, top_id=2, image_ext=".jpg"):
    from PIL import Image
    h, w = size
    rng = np.random.default_rng(len(stem))
    for d in ("images", "masks"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype="uint8")).save(
        os.path.join(root, "images", stem + image_ext))
    mh, mw = mask_size or size
    mask = np.zeros((mh, mw), "uint8")
    mask[: mh // 2, : mw // 2] = top_id
    mask[mh // 2:, mw // 2:] = 1
    Image.fromarray(mask).save(os.path.join(root, "masks", stem + ".png"))
    return mask


def test_mask_folder_reads_pairs(tmp_path):
    from keras_efficientnet.segmentation.data import load_mask_folder
    root = str(tmp_path)
    m_a = write_pair(root, "a")
    m_b = write_pair(root, "b", image_ext=".png")
    x, y, classes = load_mask_folder(root)
    assert x.shape == (2, 64, 96, 3) and x.dtype == np.uint8 and classes == 3
    np.testing.assert_array_equal(y, np.stack([m_a, m_b]))
    assert load_mask_folder(root, classes=5)[2] == 5


@pytest.mark.parametrize("problem,message", [
    ("no_mask", r"without a mask.*images/c\.jpg"),
    ("mask_size", r"Mask masks/c\.png is 96x32.*image images/c\.jpg is 96x64"),
    ("class_id", r"Mask masks/c\.png has class id 7, but there are 3 classes"),
    ("not_32", r"Image images/c\.jpg is 80x64.*not divisible by 32.*96x64"),
    ("other_size", r"Image images/c\.jpg is 64x64 but the first image is 96x64"),
    ("no_folders", r"needs an images/ and a masks/ folder"),
    ("rgb_mask", r"masks/c\.png.*RGB image.*class ids"),
])
def test_mask_folder_errors_name_the_file(tmp_path, problem, message):
    from PIL import Image
    from keras_efficientnet.segmentation.data import load_mask_folder
    root = str(tmp_path)
    if problem == "no_folders":
        with pytest.raises(ValueError, match=message):
            load_mask_folder(root)
        return
    write_pair(root, "a")
    kwargs = {"no_mask": {}, "mask_size": {"mask_size": (32, 96)}, "class_id": {"top_id": 7},
              "not_32": {"size": (64, 80)}, "other_size": {"size": (64, 64)},
              "rgb_mask": {}}[problem]
    write_pair(root, "c", **kwargs)
    if problem == "no_mask":
        os.remove(os.path.join(root, "masks", "c.png"))
    if problem == "rgb_mask":
        Image.fromarray(np.zeros((64, 96, 3), "uint8")).save(os.path.join(root, "masks", "c.png"))
    with pytest.raises(ValueError, match=message):
        load_mask_folder(root, classes=3 if problem == "class_id" else None)


def test_batches_move_image_and_mask_together():
    from keras_efficientnet.preprocessing import normalize
    from keras_efficientnet.segmentation.data import SegmentationBatches
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 3, (6, 64, 64)).astype("uint8")
    # the image's red channel encodes the mask, so any misaligned flip or crop shows
    images = np.repeat(masks[..., None] * 50.0, 3, axis=-1)
    batches = SegmentationBatches(images, masks, 4, augment=True, crop_size=32, seed=1)
    seen_flip = False
    for epoch in range(3):
        for i in range(len(batches)):
            x, y = batches[i]
            assert x.shape[1:] == (32, 32, 3) and y.dtype == np.int32
            back = normalize(np.repeat(y[..., None] * 50.0, 3, axis=-1))
            np.testing.assert_allclose(x, back, atol=1e-5)
            seen_flip = seen_flip or not any(
                (y[j] == m[r:r + 32, c:c + 32]).all() for j in range(len(y)) for m in masks
                for r in range(33) for c in range(33))
        batches.on_epoch_end()
    assert seen_flip
    with pytest.raises(ValueError, match="multiple of 32"):
        SegmentationBatches(images, masks, crop_size=48)


def test_embedded_set_is_deterministic_and_has_every_class():
    from keras_efficientnet.segmentation.datasets import CLASS_NAMES, pasted_objects
    x, y, names = pasted_objects(8, 64, seed=3)
    x2, y2, _ = pasted_objects(8, 64, seed=3)
    x3, _, _ = pasted_objects(8, 64, seed=4)
    assert names == CLASS_NAMES and x.dtype == np.uint8 and y.max() == 2
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, x3)
    fractions = [(y == c).mean() for c in range(3)]
    assert all(0.02 < f < 0.95 for f in fractions), fractions
    with pytest.raises(ValueError, match="multiple of 32"):
        pasted_objects(2, 48)
