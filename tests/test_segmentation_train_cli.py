"""``keras-efficientnet train --task segmentation`` end to end: the user's CLI path train ->
segment -> export, and its bad input.

References: the validation mean IoU the command reports is recomputed here from the saved
model's own predictions with a NumPy confusion matrix (not Keras' metric); the ``segment``
masks are checked against the saved model's arg-max on the normalisation the model recorded;
the exported ONNX file runs in onnxruntime against the saved model.
"""

from __future__ import annotations

import csv
import json
import os

import keras
import numpy as np
import pytest

from keras_efficientnet.cli import main
from keras_efficientnet.preprocessing import normalize

IMAGES = 10  # the embedded set: 8 to train, 2 to validate


def _numpy_mean_iou(labels, predictions, classes):
    """Mean over classes present in either of ``tp / (tp + fp + fn)`` (Keras' MeanIoU rule:
    classes with an empty union are left out)."""
    cm = np.bincount(classes * labels.ravel() + predictions.ravel(),
                     minlength=classes * classes).reshape(classes, classes).astype("float64")
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("segtrain") / "run"
    status = main(["train", "--task", "segmentation", "--model", "EfficientNetB0",
                   "--weights", "none", "--epochs", "2", "--freeze-epochs", "1",
                   "--images", str(IMAGES), "--batch-size", "4", "--out", str(out), "--quiet"])
    assert status == 0
    return out


def test_train_writes_outputs_and_true_iou(trained):
    from keras_efficientnet.saving import read_model_info
    from keras_efficientnet.segmentation.data import split
    from keras_efficientnet.segmentation.datasets import pasted_objects

    assert sorted(os.listdir(trained)) == ["curves.png", "log.csv", "model.keras", "summary.json"]
    summary = json.loads((trained / "summary.json").read_text())
    with open(trained / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]  # both phases in one log
    assert {"loss", "mean_iou", "val_mean_iou"} <= set(rows[0])
    info = read_model_info(trained / "model.keras")
    assert info == {"task": "segmentation", "architecture": "unet", "encoder": "EfficientNetB0",
                    "class_names": ["background", "horse", "coin"],
                    "preprocessing": "imagenet", "image_size": [64, 64]}
    assert summary["train_images"] == 8 and summary["validation_images"] == 2
    # the reported IoU is the saved model's, on the seeded validation split
    x, y, names = pasted_objects(IMAGES, 64, seed=0)
    _, (x_val, y_val) = split(x, y, 0.2, seed=0)
    model = keras.saving.load_model(trained / "model.keras", compile=False)
    logits = np.asarray(model.predict(normalize(x_val.astype("float32"), "imagenet"), verbose=0))
    expected = _numpy_mean_iou(y_val.astype("int64"), logits.argmax(-1), len(names))
    assert abs(summary["val_mean_iou"] - expected) < 1e-5
    assert 0.0 < expected < 1.0


def test_segment_and_export_the_trained_model(trained, tmp_path, capsys):
    """segment uses the recorded normalisation and class names without flags; the exported
    ONNX file gives the saved model's logits."""
    import skimage.data
    from PIL import Image

    from keras_efficientnet.export import run_artifact

    photo = np.asarray(skimage.data.chelsea())[40:168, 60:252]  # 128 x 192
    image = str(tmp_path / "cat.png")
    Image.fromarray(photo).save(image)
    model_path = str(trained / "model.keras")
    capsys.readouterr()
    assert main(["segment", image, "--model", model_path, "--out", str(tmp_path / "m")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    model = keras.saving.load_model(model_path, compile=False)
    logits = np.asarray(model.predict_on_batch(normalize(photo[None].astype("float32"),
                                                         "imagenet")))[0]
    mask = np.asarray(Image.open(tmp_path / "m" / "cat_mask.png"))
    top2 = np.sort(logits, -1)
    clear = (top2[..., -1] - top2[..., -2]) > 1e-4
    assert clear.mean() > 0.9
    assert (mask == logits.argmax(-1))[clear].all()
    for k, name in enumerate(("background", "horse", "coin")):
        share = 100 * np.mean(mask == k)
        if share > 0:
            assert f"{name} {share:.1f}%" in line

    onnx_path = str(tmp_path / "unet.onnx")
    assert main(["export", "--model", model_path, "--format", "onnx", "--output", onnx_path]) == 0
    x = normalize(np.stack([photo[:64, :64], photo[64:, 128:]]).astype("float32"), "imagenet")
    expected = np.asarray(model.predict_on_batch(x))
    got = run_artifact(onnx_path, "onnx", x)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, atol=1e-4 * scale, rtol=0)


def _folder(root, sizes=((64, 64),), mask_value=1, with_mask=True):
    from PIL import Image

    for d in ("images", "masks"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(np.full((h, w, 3), 100, "uint8")).save(os.path.join(root, "images", f"a{i}.png"))
        if with_mask:
            Image.fromarray(np.full((h, w), mask_value, "uint8")).save(
                os.path.join(root, "masks", f"a{i}.png"))
    return str(root)


@pytest.mark.parametrize("case,extra,pattern", [
    ("not divisible", ["--data", "SIZES"], r"not divisible by 32"),
    ("missing mask", ["--data", "NOMASK"], r"a0"),
    ("size", ["--image-size", "48"], r"multiple of 32"),
    ("freeze", ["--freeze-epochs", "9"], r"--freeze-epochs"),
    ("classification flag", ["--teacher", "x.keras"], r"classification only"),
    ("no folder", ["--data", "MISSING"], r"not a folder"),
])
def test_bad_segmentation_input_is_one_line(tmp_path, capsys, case, extra, pattern):
    import re

    paths = {"SIZES": lambda: _folder(tmp_path / "s", sizes=((64, 64), (50, 64))),
             "NOMASK": lambda: _folder(tmp_path / "n", with_mask=False),
             "MISSING": lambda: str(tmp_path / "missing")}
    extra = [paths[a]() if a in paths else a for a in extra]
    out = tmp_path / "out"
    status = main(["train", "--task", "segmentation", "--model", "EfficientNetB0",
                   "--weights", "none", "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.search(pattern, err), err
    assert not out.exists() or not os.listdir(out)  # nothing written


def test_existing_outputs_are_kept(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_bytes(b"precious")
    status = main(["train", "--task", "segmentation", "--model", "EfficientNetB0",
                   "--weights", "none", "--out", str(out), "--quiet"])
    assert status == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "model.keras").read_bytes() == b"precious"


def test_int8_tflite_of_the_trained_model(trained, tmp_path):
    """Full-integer TFLite of the free-size trained U-Net: calibrated on its training images,
    fixed to their size, and its per-pixel classes agree with the Keras model's."""
    from keras_efficientnet.export import export, run_artifact
    from keras_efficientnet.segmentation.data import split
    from keras_efficientnet.segmentation.datasets import pasted_objects

    x, y, _ = pasted_objects(IMAGES, 64, seed=0)
    (x_train, _), (x_val, _) = split(x, y, 0.2, seed=0)
    model = keras.saving.load_model(trained / "model.keras", compile=False)
    assert model.input_shape == (None, None, None, 3)
    rep = normalize(x_train.astype("float32"), "imagenet")
    val = normalize(x_val.astype("float32"), "imagenet")
    result = export(model, str(tmp_path / "unet_int8.tflite"), format="tflite", quantize="int8",
                    representative_data=rep, verify_data=val)
    got = run_artifact(result.path, "tflite", val)
    expected = np.asarray(model.predict_on_batch(val))
    assert got.shape == expected.shape == (2, 64, 64, 3)
    agreement = float(np.mean(got.argmax(-1) == expected.argmax(-1)))
    assert result.pixel_agreement == agreement
    assert agreement > 0.9, agreement
