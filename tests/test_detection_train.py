"""Detection training: letterboxing and the packed targets (decoded back to the ground truth
with the anchor coder, so the x/y order and the scale are checked end to end), Keras'
box-aware augmentation moving boxes with the pixels they cover, the class net's prior
initialisation, a short fine-tune that learns (loss falls, COCO recall and AP rise), the
``train --task detection`` and ``detect`` commands end to end (outputs, a fresh process
loading the model, drawn boxes) and their one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch  # noqa: F401  (before TensorFlow)

import keras

from conftest import quick_on

from keras_efficientnet.detection import (anchors_for, build_efficientdet, decode_boxes,
                                          get_config, load_coco, pasted_boxes, write_coco)
from keras_efficientnet.detection import recipe as R
from keras_efficientnet.detection.targets import box_iou

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_letterbox_scales_boxes_and_pads_bottom_right():
    image = np.full((60, 120, 3), 255, "uint8")
    out, boxes, scale = R.letterbox(image, 128, [[12, 6, 60, 30]])
    assert scale == pytest.approx(128 / 120)
    np.testing.assert_allclose(boxes, [[12 * scale, 6 * scale, 60 * scale, 30 * scale]], rtol=1e-6)
    assert (out[:64] == 255).all()  # the photo: 60 * 128/120 = 64 rows
    assert (out[64:] == np.asarray(R.MEAN_PIXEL, "uint8")).all()  # padding below
    with pytest.raises(ValueError, match="RGB"):
        R.letterbox(np.zeros((8, 8)), 128)


def test_packed_targets_decode_back_to_the_ground_truth():
    data = pasted_boxes(3, 128, seed=1)
    # one image resized on the way in: the targets must be in letterboxed pixels
    big = np.asarray(np.kron(data.images[0], np.ones((2, 2, 1))), "uint8")  # 256 x 256
    images = [big, data.images[1], data.images[2]]
    boxes = [data.boxes[0] * 2, data.boxes[1], data.boxes[2]]
    batches = R.DetectionBatches(images, boxes, data.classes, "lite0", 128, num_classes=2,
                                 batch_size=3)
    x, y = batches[0]
    assert x.shape == (3, 128, 128, 3) and x.dtype == np.float32
    anchors = anchors_for("lite0", 128)
    expected = [data.boxes[0], data.boxes[1], data.boxes[2]]
    for i in range(3):
        positive = y[i, :, 0] >= 0
        assert positive.any()
        decoded = decode_boxes(y[i, positive, 1:], anchors[positive])  # (ymin, xmin, ymax, xmax)
        decoded = np.asarray(decoded)[:, [1, 0, 3, 2]]  # to x1, y1, x2, y2
        best = box_iou(decoded, expected[i]).max(axis=1)
        assert best.min() > 0.999, best.min()
        # each positive anchor's class is the class of the box it decodes to
        match = box_iou(decoded, expected[i]).argmax(axis=1)
        np.testing.assert_array_equal(y[i, positive, 0].astype(int), data.classes[i][match])


def test_augmentation_moves_boxes_with_the_pixels():
    """White rectangles on black: after Keras' flip and zoom each kept box still frames a
    white region (to 2 px), and a box pushed out of the picture is dropped."""
    rng = np.random.default_rng(0)
    images, boxes = [], []
    for _ in range(8):
        image = np.zeros((128, 128, 3), "uint8")
        x1, y1 = rng.integers(8, 60, size=2)
        w, h = rng.integers(20, 50, size=2)
        image[y1:y1 + h, x1:x1 + w] = 255
        images.append(image)
        boxes.append(np.array([[x1, y1, x1 + w, y1 + h]], "float32"))
    classes = [np.array([0], "int32")] * 8
    batches = R.DetectionBatches(images, boxes, classes, "lite0", 128, num_classes=1,
                                 batch_size=8, augment=True, zoom=(-0.3, 0.3), seed=3)
    moved = 0
    for _ in range(3):
        x, got_boxes, _ = batches.batch(0)
        for image, b, original in zip(x, got_boxes, boxes):
            white = np.argwhere(image[..., 0] > 200)
            if not len(b):
                continue
            (x1, y1, x2, y2), = b
            top, left = white.min(axis=0)
            bottom, right = white.max(axis=0) + 1
            assert abs(x1 - left) <= 2 and abs(x2 - right) <= 2, (b, left, right)
            assert abs(y1 - top) <= 2 and abs(y2 - bottom) <= 2, (b, top, bottom)
            moved += not np.allclose(b, original[0], atol=1)
        batches.on_epoch_end()
    assert moved >= 8  # the boxes did move (flips and zooms happened)


def test_class_net_starts_at_the_prior_probability():
    keras.utils.set_random_seed(0)
    model = build_efficientdet("lite0", num_classes=3, input_shape=(128, 128, 3))
    out = model.predict_on_batch(np.random.default_rng(0).uniform(0, 255, (2, 128, 128, 3)))
    probability = 1 / (1 + np.exp(-np.asarray(out["classes"], "float64")))
    assert abs(probability.mean() - 0.01) < 0.002, probability.mean()


@pytest.mark.parametrize("case", [pytest.param("learn", marks=quick_on("tensorflow"))])
def test_fine_tune_lowers_loss_and_raises_coco_ap(case):
    keras.utils.set_random_seed(0)
    data = pasted_boxes(8, 128, seed=0)
    gt = load_coco(write_coco(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"det{os.getpid()}"),
                              *data))
    # the user's path: the offline ImageNet Lite0 encoder (train_detection's backbone_for)
    config = get_config("lite0").replace(backbone="EfficientNetLite0", num_classes=2)
    det = build_efficientdet(config, input_shape=(128, 128, 3), backbone_weights="imagenet")
    before = R.evaluate_detection(det, gt, 128, config)
    batches = R.DetectionBatches(data.images, data.boxes, data.classes, "lite0", 128, 2, 2,
                                 augment=False, shuffle=True)
    # 24 epochs: at 12 the loss ended just under 0.6 of its start on one CI machine and at 0.648
    # on an AMD EPYC one (same seed, same code): a bound at the edge of the float noise. At 24 it
    # ends at 0.46 of its start on the EPYC machine; the bound is unchanged
    history = R.fit_detection(det, batches, epochs=24, learning_rate=5e-3, warmup_epochs=1,
                              verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < 0.6 * loss[0], loss
    after = R.evaluate_detection(det, gt, 128, config)
    # 96 steps: the untrained model finds nothing, the trained one a third of the objects
    # (the 25-epoch run of docs/detection.md reaches AP50 0.41)
    assert after["AR100"] > before["AR100"] + 0.1, (before, after)
    assert after["AP50"] > before["AP50"], (before, after)


def cli(*args, timeout=900):
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "keras_efficientnet", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("case", [pytest.param("cli", marks=quick_on("torch"))])
def test_train_then_detect_commands(tmp_path, case):
    out = tmp_path / "run"
    r = cli("train", "--task", "detection", "--weights", "none", "--epochs", "1", "--images", "6",
            "--batch-size", "3", "--image-size", "128", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "validation COCO AP" in r.stdout
    assert sorted(os.listdir(out)) == ["curves.png", "detections.png", "log.csv", "model.keras",
                                       "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "detection" and summary["class_names"] == ["horse", "coin"]
    assert set(summary["coco"]) >= {"AP", "AP50", "AR100"} and summary["validation_images"] == 1
    # a photo of another size, through the detect command (a fresh process loads the model)
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.fromarray(pasted_boxes(1, 256, seed=5).images[0][:200]).save(photo)
    r = cli("detect", str(photo), "--model", str(out / "model.keras"), "--out",
            str(tmp_path / "drawn"), "--score-threshold", "0.0", "--max-detections", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "3 detections" in r.stdout, r.stdout
    drawn = np.asarray(Image.open(tmp_path / "drawn" / "photo_boxes.png"))
    assert drawn.shape == (200, 256, 3)
    assert not np.array_equal(drawn, np.asarray(Image.open(photo).convert("RGB")))
    for line in r.stdout.splitlines()[1:]:  # boxes inside the photo
        x1, y1, x2, y2 = (float(v) for v in line.split("[")[1].rstrip("]").split(","))
        assert 0 <= x1 <= x2 <= 256 and 0 <= y1 <= y2 <= 200, line
    # a second run refuses to replace the drawing
    r = cli("detect", str(photo), "--model", str(out / "model.keras"), "--out",
            str(tmp_path / "drawn"))
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr


@quick_on("jax")
@pytest.mark.parametrize("args,message", [
    (["train", "--task", "detection", "--data", "/no/such/folder"], "does not exist"),
    (["train", "--task", "detection", "--image-size", "200"], "multiple of 128"),
    (["train", "--task", "detection", "--model", "EfficientNetB3"], "not an EfficientDet"),
    (["train", "--task", "detection", "--architecture", "fpn"], "segmentation only, not --task detection"),
    (["detect", "x.png", "--model", "EfficientDetD0"], "no such file"),
])
def test_command_errors_are_one_line(tmp_path, args, message):
    r = cli(*args, "--out", str(tmp_path / "o"), timeout=300)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message.lower() in r.stderr.lower() and "Traceback" not in r.stderr, r.stderr


def test_detect_refuses_a_name_without_weights_and_a_classifier_file(tmp_path):
    from keras_efficientnet.commands.detect import load_detector

    with pytest.raises(ValueError, match="--weights"):
        load_detector("EfficientDetD0")
    from keras_efficientnet.saving import write_model_info

    path = str(tmp_path / "clf.keras")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(path)
    write_model_info(path, {"task": "classification"})
    with pytest.raises(ValueError, match="not a detection model"):
        load_detector(path)


def test_bad_data_for_the_batches():
    data = pasted_boxes(2, 128)
    with pytest.raises(ValueError, match="one \\(boxes, classes\\) pair per image"):
        R.DetectionBatches(data.images, data.boxes[:1], data.classes, "lite0", 128, 2)
    with pytest.raises(ValueError, match="no images"):
        R.DetectionBatches([], [], [], "lite0", 128, 2)
    with pytest.raises(ValueError, match="val_coco needs"):
        det = build_efficientdet("lite0", num_classes=2, input_shape=(128, 128, 3))
        R.fit_detection(det, R.DetectionBatches(data.images, data.boxes, data.classes, "lite0",
                                                128, 2), val_coco=object())
