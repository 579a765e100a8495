"""Deployment (issue 5): exports checked in their own runtimes, BatchNorm folding, bad input.

References we did not write: TensorFlow's SavedModel loader, the TFLite interpreter,
onnxruntime, and the Keras model itself on the current backend (the artifact is compared with
the model on the backend it was built on, so on jax/torch the TensorFlow-subprocess route is
checked against the jax/torch computation).

Budget: a TFLite conversion takes tens of seconds, so the float32 matrix (3 formats x B0, V2-B0,
Lite0) uses ONE artifact per format holding the three networks side by side (one input, the
three logit vectors concatenated); each network's slice is compared with that network alone.
The real-photo checks (float16 / int8 Lite0 at 224 px) and the >2048-channel int8 check run on
the tensorflow backend only: a TFLite file is produced by the TensorFlow converter on every
backend (natively or in the TensorFlow subprocess), so the artifact does not depend on the
backend; the cross-backend route itself is covered by the float32 matrix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_efficientnet as ke
from keras_efficientnet.export import EXTENSIONS, NATIVE_ROUTES, _keras_outputs as _out, export, run_artifact
from conftest import BACKEND, quick_on, randomize_weights

SIZE = 64
VARIANTS = ("EfficientNetB0", "EfficientNetV2B0", "EfficientNetLite0")
CLASSES = 10
ATOL = 1e-4
tf_only = pytest.mark.skipif(BACKEND != "tensorflow", reason=(
    "TFLite files come from the TensorFlow converter on every backend (natively or via the "
    "TensorFlow subprocess), so these artifact checks run once, on the tensorflow backend"))


@pytest.fixture(scope="module")
def nets():
    out = {}
    for i, name in enumerate(VARIANTS):
        model = ke.create_model(name, input_shape=(SIZE, SIZE, 3), classes=CLASSES,
                                classifier_activation=None)
        randomize_weights(model, seed=i)
        out[name] = model
    return out


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def side_by_side(nets):
    """One model: the three networks on the same input, logits concatenated."""
    inp = keras.Input((SIZE, SIZE, 3))
    out = keras.layers.Concatenate(name="logits")([nets[n](inp) for n in VARIANTS])
    return keras.Model(inp, out, name="side_by_side")


# ----------------------------------------------------------------------------- fuse_batchnorm


@pytest.mark.parametrize("name", VARIANTS)
def test_fused_model_matches(nets, images, name):
    model = nets[name]
    fused = ke.fuse_batchnorm(model)
    bn = lambda m: [l for l in m._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert bn(model) and not bn(fused)
    assert len(fused.weights) < len(model.weights)  # 4 BN variables -> 1 bias each
    expected = _out(model, images)
    got = _out(fused, images)
    assert np.abs(expected).max() > 0.1  # random BN statistics: logits far from zero
    np.testing.assert_array_less(np.abs(got - expected).max(), ATOL)
    assert [l.name for l in fused.layers] == [l.name for l in model.layers]


def test_fused_model_saves_and_exports_config(nets, tmp_path, images):
    fused = ke.fuse_batchnorm(nets["EfficientNetLite0"])
    path = tmp_path / "fused.keras"
    fused.save(path)
    again = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(_out(again, images), _out(fused, images), atol=1e-6)


# ----------------------------------------------------------------------------- float32 matrix


# Quick suite: every format natively on TensorFlow; on JAX its own native route (SavedModel
# through jax2tf); the TensorFlow-subprocess route (every format on PyTorch, TFLite and ONNX on
# JAX) once, for ONNX on PyTorch. The full suite runs every format on every backend.
# quick suite: SavedModel from JAX and ONNX from PyTorch; TensorFlow's own SavedModel and ONNX
# routes run in tests/test_detection_export.py (both), test_end_to_end_cli.py and the CLI test
# below (ONNX); scripts/test_full.sh runs every format on every backend
@pytest.mark.parametrize("fmt", [pytest.param("saved_model", marks=quick_on("jax")),
                                 pytest.param("tflite", marks=quick_on("tensorflow")),
                                 pytest.param("onnx", marks=quick_on("torch")),
                                 pytest.param("openvino", marks=quick_on("tensorflow"))])
def test_float32_export_matches_each_network(side_by_side, nets, images, tmp_path, fmt):
    path = str(tmp_path / ("model" if fmt == "saved_model" else f"model{EXTENSIONS[fmt]}"))
    result = export(side_by_side, path, format=fmt, verify_data=images)
    native = fmt in NATIVE_ROUTES[BACKEND]
    assert result.route.startswith("native" if native else "tensorflow subprocess"), result.route
    assert os.path.exists(path) and result.size_bytes > 1e6
    assert result.max_abs_diff < ATOL
    got = run_artifact(path, fmt, images)
    for i, name in enumerate(VARIANTS):
        expected = _out(nets[name], images)
        part = got[:, i * CLASSES:(i + 1) * CLASSES]
        assert np.abs(expected).max() > 0.1
        assert np.abs(part - expected).max() < ATOL, (name, fmt, np.abs(part - expected).max())
    if fmt in ("saved_model", "openvino"):  # dynamic batch dimension
        assert run_artifact(path, fmt, np.concatenate([images, images])).shape == (6, 3 * CLASSES)
    if fmt == "openvino":  # the graph and its weights, and only the model's own output
        import openvino as ov

        assert os.path.getsize(str(tmp_path / "model.bin")) > 1e6
        assert len(ov.Core().read_model(path).outputs) == 1
    left = [f for f in os.listdir(tmp_path) if f.startswith(".export")]
    assert not left, left


def test_fused_model_exports(nets, images, tmp_path):
    """The fused copy is usable before export (ONNX here; native or via the subprocess)."""
    fmt = "onnx"
    model = nets["EfficientNetB0"]
    fused = ke.fuse_batchnorm(model)
    path = str(tmp_path / ("fused" if fmt == "saved_model" else "fused.onnx"))
    result = export(fused, path, format=fmt, verify_data=images)
    got = run_artifact(path, fmt, images)
    assert result.max_abs_diff < ATOL
    assert np.abs(got - _out(model, images)).max() < ATOL


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, message", [
    (dict(format="coreml"), "Unknown export format"),
    (dict(format="onnx", quantize="int8"), "does not support quantize"),
    (dict(format="saved_model", quantize="float16"), "does not support quantize"),
    (dict(format="tflite", quantize="int4"), "does not support quantize"),
    (dict(format="tflite", quantize="int8"), "representative_data"),
])
def test_bad_arguments(nets, tmp_path, kwargs, message):
    path = tmp_path / "out.tflite"
    with pytest.raises(ValueError, match=message):
        export(nets["EfficientNetLite0"], str(path), **kwargs)
    assert os.listdir(tmp_path) == []


def test_openvino_weights_file_is_not_overwritten(nets, tmp_path):
    """An OpenVINO IR is two files: a user's ``model.bin`` beside a new ``model.xml`` is
    refused like the ``.xml`` itself, before any work, and kept byte for byte."""
    (tmp_path / "model.bin").write_bytes(b"someone else's weights")
    with pytest.raises(FileExistsError, match="model.bin"):
        export(nets["EfficientNetLite0"], str(tmp_path / "model.xml"), format="openvino")
    assert os.listdir(tmp_path) == ["model.bin"]
    assert (tmp_path / "model.bin").read_bytes() == b"someone else's weights"
    with pytest.raises(ValueError, match="must end with '.xml'"):
        export(nets["EfficientNetLite0"], str(tmp_path / "model.ir"), format="openvino")


def test_empty_representative_folder(nets, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    path = tmp_path / "out.tflite"
    with pytest.raises(ValueError, match="holds no images"):
        export(nets["EfficientNetLite0"], str(path), format="tflite", quantize="int8",
               representative_data=str(folder))
    assert sorted(os.listdir(tmp_path)) == ["images"]


def test_failed_export_leaves_nothing(nets, tmp_path, monkeypatch):
    import keras_efficientnet.export as _  # noqa: F401
    module = sys.modules["keras_efficientnet.export"]

    def broken(model, path, *args):
        with open(path, "wb") as f:
            f.write(b"half")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(module, "_export_native", broken)
    monkeypatch.setattr(module, "_export_subprocess", lambda m, p, *a: broken(m, p))
    path = tmp_path / "out.onnx"
    with pytest.raises(RuntimeError, match="converter crashed"):
        export(nets["EfficientNetLite0"], str(path), format="onnx")
    assert os.listdir(tmp_path) == []


def test_cli_bad_input(tmp_path, capsys):
    from keras_efficientnet import cli

    out = tmp_path / "x.onnx"
    code = cli.main(["export", "--model", "EfficientNetB0", "--format", "onnx", "--quantize",
                     "int8", "--output", str(out)])
    assert code == 2 and "does not support quantize" in capsys.readouterr().err
    code = cli.main(["export", "--model", "EfficientNetB99", "--format", "onnx", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Unknown model" in err and "Did you mean" in err
    assert len(err) < 300  # a hint, not the 97 names
    code = cli.main(["export", "--model", "EfficientNetB0", "--format", "onnx", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "random weights" in err and "--random-weights" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_cli_export_prints_agreement(tmp_path, capsys, monkeypatch):
    from keras_efficientnet import cli

    monkeypatch.setenv("KE_PROGRESS", "1")  # as in a log: a start and an end line per step
    out = tmp_path / "b0.onnx"
    code = cli.main(["export", "--model", "EfficientNetB0", "--image-size", "64", "--format",
                     "onnx", "--output", str(out), "--random-weights"])
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0 and out.exists() and "max abs diff" in printed and "MB" in printed
    steps = captured.err.splitlines()
    for step in ("Exporting efficientnetb0 to onnx", "Verifying the onnx artifact on 2 images"):
        lines = [line for line in steps if line.startswith(step)]
        assert len(lines) == 2 and lines[0].endswith("...") and " done in " in lines[1], steps
    assert "Exporting" not in printed  # progress on stderr: stdout stays the result


# ----------------------------------------------------------------------------- real photos


def _sample_photos(size):
    from skimage import data
    from sklearn.datasets import load_sample_images

    from keras_efficientnet.commands.classify import center_crop_resize

    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(),
              *load_sample_images().images]
    return np.stack([center_crop_resize(p, size) for p in photos]).astype("float32")


def _augment(photos):
    """Flips and off-centre crops of the calibration photos."""
    from PIL import Image

    out = [photos[:, :, ::-1]]
    size = photos.shape[1]
    for offset in (0, size // 8):
        crop = photos[:, offset:offset + size * 7 // 8, size // 8 - offset:size - offset]
        out.append(np.stack([np.asarray(Image.fromarray(c.astype("uint8")).resize((size, size)),
                                        "float32") for c in crop]))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def lite0_imagenet():
    try:
        return ke.EfficientNetLite0(weights="imagenet", classifier_activation=None)
    except ValueError as err:  # the offline weights package is missing
        pytest.skip(f"EfficientNetLite0 ImageNet weights unavailable: {err}")


@tf_only
def test_quantized_tflite_on_real_photos(lite0_imagenet, tmp_path):
    photos = _sample_photos(224)
    logits = _out(lite0_imagenet, photos)
    top1 = logits.argmax(-1)
    assert len(set(top1.tolist())) >= 5  # the photos really are told apart

    f32 = export(lite0_imagenet, str(tmp_path / "f32.tflite"), format="tflite",
                 verify_data=photos)
    assert f32.max_abs_diff < ATOL * max(1.0, np.abs(logits).max())

    f16 = export(lite0_imagenet, str(tmp_path / "f16.tflite"), format="tflite",
                 quantize="float16", verify_data=photos)
    got16 = run_artifact(tmp_path / "f16.tflite", "tflite", photos)
    np.testing.assert_array_equal(got16.argmax(-1), top1)
    assert f16.size_bytes < 0.6 * f32.size_bytes

    int8 = export(lite0_imagenet, str(tmp_path / "int8.tflite"), format="tflite", quantize="int8",
                  representative_data=np.concatenate([photos, _augment(photos)]),
                  verify_data=photos)
    got8 = run_artifact(tmp_path / "int8.tflite", "tflite", photos)
    assert int(np.sum(got8.argmax(-1) == top1)) >= 5, (got8.argmax(-1), top1)
    assert int8.size_bytes <= 0.30 * f32.size_bytes, (int8.size_bytes, f32.size_bytes)


# ----------------------------------------------------------------------------- >2048 channels


@tf_only
def test_int8_wide_depthwise_completes(tmp_path):
    """B7's last block (640 -> 3840 expanded channels, 3x3 depthwise) at 8x8: int8 converts and
    the interpreter returns (it used to hang: an int8 depthwise kernel overran its buffer for
    more than 2048 output channels). The run is in a child process with a time limit, so a
    regression fails instead of hanging the suite."""
    spec = ke.get_spec("EfficientNetB7")
    blocks = [b for b in __import__("keras_efficientnet.specs", fromlist=["resolve"])
              .resolve(spec).blocks]
    last = blocks[-1]
    assert last.hidden_channels > 2048
    inp = keras.Input((8, 8, last.in_channels))
    x = ke.layers.MBConv(last.out_channels, kernel_size=last.kernel, strides=1,
                         expand_filters=last.hidden_channels, se_filters=last.se_channels,
                         name="block7d")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(CLASSES)(x))
    randomize_weights(model, seed=3)
    rng = np.random.default_rng(0)
    data = rng.normal(0, 1, (8, 8, 8, last.in_channels)).astype("float32")
    path = tmp_path / "wide_int8.tflite"
    export(model, str(path), format="tflite", quantize="int8", representative_data=data,
           verify=False)
    np.save(tmp_path / "x.npy", data[:2])
    script = textwrap.dedent(f"""
        import time
        import numpy as np
        from keras_efficientnet.export import run_artifact
        x = np.load({str(tmp_path / 'x.npy')!r})
        start = time.time()
        y = run_artifact({str(path)!r}, "tflite", x)
        print(time.time() - start)
        np.save({str(tmp_path / 'y.npy')!r}, y)
    """)
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    # generous limit: importing TensorFlow alone can take minutes on a loaded machine; the
    # interpreter run itself is timed inside the child (a hang never returns)
    proc = subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=900,
                          capture_output=True, text=True)
    assert float(proc.stdout.strip().splitlines()[-1]) < 60
    got = np.load(tmp_path / "y.npy")
    expected = _out(model, data[:2])
    assert got.shape == expected.shape and np.isfinite(got).all()
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.95
