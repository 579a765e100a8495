"""Segmentation models shipped: ``export()`` of a U-Net/FPN checked in each runtime, and the
``keras-efficientnet segment`` command (masks at the photo's size, equal to the Keras model's
own arg-max; bad input is one line and exit status 2; existing files are kept).

References: the exported artifacts run in their own runtimes (TFLite interpreter, onnxruntime,
OpenVINO) against the Keras model on the current backend; the command's masks against the
model's prediction computed here from the same normalised pixels.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

import keras_efficientnet as ke
from keras_efficientnet.cli import main
from keras_efficientnet.export import EXTENSIONS, export, run_artifact
from keras_efficientnet.preprocessing import normalize
from conftest import BACKEND, quick_on, randomize_weights


def _unet(classes=3, activation="softmax", input_shape=(64, 64, 3), seed=0, arch="Unet"):
    model = getattr(ke.segmentation, arch)("EfficientNetB0", input_shape=input_shape,
                                           classes=classes, activation=activation)
    randomize_weights(model, seed=seed)
    return model


def _centre(model, images):
    """Shift the random head's biases so that each class's logit averages 0 over ``images``:
    a random decoder varies little across the image next to its random biases (one class would
    win everywhere), and a mask of one class could not show a misplaced pixel."""
    head = model.get_layer("final_conv")
    logits = np.asarray(keras.Model(model.input, head.output).predict_on_batch(images))
    kernel, bias = head.get_weights()
    head.set_weights([kernel, bias - logits.mean(axis=(0, 1, 2))])


@pytest.fixture(scope="module")
def photo():
    import skimage.data

    return np.asarray(skimage.data.chelsea())[40:190, 60:260]  # 150 x 200, not a multiple of 32


# ------------------------------------------------------------------------------------ export

@pytest.mark.parametrize("fmt,arch", [
    pytest.param("onnx", "Unet"),
    pytest.param("tflite", "FPN", marks=quick_on("tensorflow")),
    pytest.param("openvino", "Unet", marks=quick_on("torch")),
    pytest.param("saved_model", "Unet", marks=quick_on("jax")),
])
def test_segmentation_model_exports(tmp_path, fmt, arch):
    model = _unet(classes=3, activation=None, arch=arch, seed=1)
    rng = np.random.default_rng(3)
    x = normalize(rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32"), "imagenet")
    path = str(tmp_path / f"seg{EXTENSIONS.get(fmt, '')}")  # saved_model: a folder
    result = export(model, path, format=fmt, verify_data=x)
    expected = np.asarray(model.predict_on_batch(x))
    got = run_artifact(result.path, fmt, x)
    assert got.shape == expected.shape == (2, 64, 64, 3)
    scale = float(np.abs(expected).max())
    assert scale > 0.1  # the random head is not silent
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, scale), rtol=0)
    # per-pixel classes agree wherever the top two logits are not within rounding of each other
    top2 = np.sort(expected, -1)
    clear = (top2[..., -1] - top2[..., -2]) > 1e-3
    assert clear.mean() > 0.9
    assert (got.argmax(-1) == expected.argmax(-1))[clear].all()
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4 * max(1.0, scale)
    assert result.pixel_agreement == float(np.mean(got.argmax(-1) == expected.argmax(-1)))


# -------------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def saved_unet(tmp_path_factory, photo):
    model = _unet(classes=3, activation="softmax", input_shape=(None, None, 3), seed=2)
    padded = np.pad(photo, ((0, 10), (0, 24), (0, 0)), mode="reflect").astype("float32")
    _centre(model, normalize(padded[None], "imagenet"))
    path = str(tmp_path_factory.mktemp("seg") / "unet.keras")
    model.save(path)
    return model, path


def _write(photo, folder, name="cat.png"):
    from PIL import Image

    path = os.path.join(folder, name)
    Image.fromarray(photo).save(path)
    return path


def _mask(path):
    from PIL import Image

    return np.asarray(Image.open(path))


def test_segment_writes_masks_equal_to_the_model(tmp_path, photo, saved_unet, capsys):
    model, model_path = saved_unet
    image = _write(photo, tmp_path)
    out = tmp_path / "out"
    assert main(["segment", image, "--model", model_path, "--out", str(out),
                 "--class-names", "bg,cat,other"]) == 0
    mask = _mask(out / "cat_mask.png")
    assert mask.shape == photo.shape[:2] and mask.dtype == np.uint8
    # the model's own arg-max on the photo padded to 160 x 224 (reflect), cropped back
    padded = np.pad(photo, ((0, 10), (0, 24), (0, 0)), mode="reflect").astype("float32")
    probs = np.asarray(model.predict_on_batch(normalize(padded[None], "imagenet")))[0]
    expected = probs.argmax(-1)[:150, :200]
    top2 = np.sort(probs[:150, :200], -1)
    clear = (top2[..., -1] - top2[..., -2]) > 1e-4
    assert (mask == expected)[clear].all()
    assert len(np.unique(mask)) > 1  # the random model's mask is not one class
    overlay = _mask(out / "cat_overlay.png")
    assert overlay.shape == photo.shape
    bg = mask == 0
    np.testing.assert_array_equal(overlay[bg], photo[bg])  # background left as it is
    assert (overlay[~bg] != photo[~bg]).any(axis=-1).mean() > 0.9
    line = capsys.readouterr().out.strip().splitlines()[-1]
    shares = {k: 100 * np.mean(mask == i) for i, k in enumerate(("bg", "cat", "other"))}
    for name, share in shares.items():
        if share > 0:
            assert f"{name} {share:.1f}%" in line


def test_segment_fixed_size_model_resizes_back(tmp_path, photo):
    from PIL import Image

    model = _unet(classes=1, activation=None, input_shape=(64, 64, 3), seed=4)
    x = np.asarray(Image.fromarray(photo).resize((64, 64), Image.BILINEAR), "float32")
    _centre(model, normalize(x[None], "imagenet"))
    model_path = str(tmp_path / "binary.keras")
    model.save(model_path)
    image = _write(photo, tmp_path)
    assert main(["segment", image, "--model", model_path, "--out", str(tmp_path / "o"),
                 "--threshold", "0.5"]) == 0
    mask = _mask(tmp_path / "o" / "cat_mask.png")
    assert mask.shape == photo.shape[:2] and set(np.unique(mask)) <= {0, 1}
    logits = np.asarray(model.predict_on_batch(normalize(x[None], "imagenet")))[0, ..., 0]
    small = (logits >= 0).astype("uint8")  # sigmoid(logit) >= 0.5 <=> logit >= 0
    expected = np.asarray(Image.fromarray(small).resize((200, 150), Image.NEAREST))
    assert 0 < expected.mean() < 1
    clear = np.asarray(Image.fromarray((np.abs(logits) > 1e-4).astype("uint8")).resize(
        (200, 150), Image.NEAREST)).astype(bool)
    assert (mask == expected)[clear].all()


def _one_line_error(capsys, argv, pattern):
    import re

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert re.search(pattern, err[0]), err[0]


def test_segment_keeps_existing_files(tmp_path, photo, saved_unet, capsys):
    _, model_path = saved_unet
    image = _write(photo, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat_mask.png").write_bytes(b"mine")
    _one_line_error(capsys, ["segment", image, "--model", model_path, "--out", str(out)],
                    r"cat_mask\.png.*exists.*--overwrite")
    assert (out / "cat_mask.png").read_bytes() == b"mine"
    assert sorted(os.listdir(out)) == ["cat_mask.png"]
    assert main(["segment", image, "--model", model_path, "--out", str(out), "--overwrite"]) == 0
    assert _mask(out / "cat_mask.png").shape == photo.shape[:2]


@pytest.mark.parametrize("extra,pattern", [
    (["--size", "50"], r"--size must be a positive multiple of 32.*try 64"),
    (["--threshold", "1.5"], r"--threshold must lie strictly between 0 and 1"),
    (["--preprocessing", "nope"], r"Unknown --preprocessing 'nope'"),
    (["--class-names", "a,b"], r"--class-names gives 2 names; the model has 3 classes"),
])
def test_segment_bad_arguments(tmp_path, photo, saved_unet, capsys, extra, pattern):
    _, model_path = saved_unet
    image = _write(photo, tmp_path)
    _one_line_error(capsys, ["segment", image, "--model", model_path, "--out",
                             str(tmp_path / "o"), *extra], pattern)
    assert not (tmp_path / "o" / "cat_mask.png").exists()


def test_segment_refuses_a_classifier_and_missing_files(tmp_path, photo, capsys):
    classifier = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=4)
    path = str(tmp_path / "clf.keras")
    classifier.save(path)
    image = _write(photo, tmp_path)
    _one_line_error(capsys, ["segment", image, "--model", path], r"not a segmentation model")
    _one_line_error(capsys, ["segment", image, "--model", str(tmp_path / "none.keras")],
                    r"is not a file")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip")
    _one_line_error(capsys, ["segment", image, "--model", str(junk)], r"Could not load")
    _one_line_error(capsys, ["segment", str(tmp_path / "missing.png"), "--model", path],
                    r"missing\.png")
