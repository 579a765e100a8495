"""GPTQ weight rounding for int8 export (issue 22): ``keras_efficientnet.quantize``.

References we did not write: Keras' own layers (the input moments ``X^T X`` are checked against
the squared outputs of the very layer they belong to), the TFLite converter (the int8 filters it
writes must be exactly our rounded, BatchNorm-folded kernels: it did not round them again), and
real ImageNet weights on real photos (GPTQ keeps the float top-1 more often than the converter's
nearest rounding).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_efficientnet as ke
from keras_efficientnet.quantize import _input_moments, _quantizable, quantize_weights
from conftest import BACKEND, quick_on, randomize_weights, to_numpy

tf_only = pytest.mark.skipif(BACKEND != "tensorflow", reason=(
    "the TFLite converter runs on TensorFlow (other backends reach it through the same "
    "TensorFlow subprocess, tested in test_export)"))


def _kernel_rows(layer):
    """Kernel as (output channels, inputs)."""
    kernel = to_numpy(layer.kernel).astype("float64")
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return kernel[..., 0].reshape(-1, kernel.shape[2]).T
    return kernel.reshape(-1, kernel.shape[-1]).T


# --------------------------------------------------------------------------- input moments


def _layers():
    cases = [
        ("conv3x3_same_s2_odd", (9, 9, 3), lambda: keras.layers.Conv2D(4, 3, 2, "same", use_bias=False)),
        ("conv3x3_same_s2_even", (8, 10, 3), lambda: keras.layers.Conv2D(4, 3, 2, "same", use_bias=False)),
        ("conv5x5_valid", (9, 9, 2), lambda: keras.layers.Conv2D(3, 5, 1, "valid", use_bias=False)),
        ("conv1x1_s2", (7, 7, 5), lambda: keras.layers.Conv2D(6, 1, 2, use_bias=False)),
        ("dw3x3_same_s2", (9, 8, 4), lambda: keras.layers.DepthwiseConv2D(3, 2, "same", use_bias=False)),
        ("dw5x5_same", (7, 7, 3), lambda: keras.layers.DepthwiseConv2D(5, 1, "same", use_bias=False)),
        ("dense", (6,), lambda: keras.layers.Dense(4, use_bias=False)),
    ]
    if BACKEND != "tensorflow":  # TensorFlow's CPU convolutions take channels_last only
        cases.append(("conv3x3_same_channels_first", (3, 9, 8), lambda: keras.layers.Conv2D(
            4, 3, 2, "same", use_bias=False, data_format="channels_first")))
    return cases


@pytest.mark.parametrize("name,shape,make", _layers(), ids=[c[0] for c in _layers()])
def test_moments_match_the_layer(name, shape, make):
    """For every output channel c, w_c^T (X^T X) w_c must equal the sum of the squares of that
    channel's outputs as Keras computes them (padding, stride, window order, layout)."""
    rng = np.random.default_rng(0)
    inputs = keras.Input(shape)
    layer = make()
    model = keras.Model(inputs, layer(inputs))
    x = rng.normal(0, 1, (3, *shape)).astype("float32")
    moment = _input_moments(model, [layer], x, batch_size=2)[layer.name]
    y = to_numpy(model(x)).astype("float64")
    if getattr(layer, "data_format", None) == "channels_first":
        y = np.moveaxis(y, 1, -1)
    energy = (y ** 2).reshape(-1, y.shape[-1]).sum(0)
    rows = _kernel_rows(layer)
    if moment.ndim == 3:  # depthwise: one moment per channel
        predicted = np.einsum("ci,cij,cj->c", rows, moment, rows)
    else:
        predicted = np.einsum("ci,ij,cj->c", rows, moment, rows)
    np.testing.assert_allclose(predicted, energy, rtol=1e-4)


# ------------------------------------------------------------------------------ the grid


@pytest.fixture(scope="module")
def small_b0():
    model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=5,
                              classifier_activation=None)
    randomize_weights(model, seed=1)
    return model


@pytest.fixture(scope="module")
def calibration():
    return np.random.default_rng(3).uniform(0, 255, (8, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize("method", ["gptq", "nearest"])
def test_kernels_on_the_int8_grid(small_b0, calibration, method):
    before = [to_numpy(w).copy() for w in small_b0.weights]
    rounded = quantize_weights(small_b0, calibration, method=method)
    for w, b in zip(small_b0.weights, before):  # the caller's model is not touched
        np.testing.assert_array_equal(to_numpy(w), b)
    layers = [l for l in rounded.layers if _quantizable(l)]
    # stem, SE and 1x1 convolutions, depthwise 3x3 and 5x5, the classifier
    for kind in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense):
        assert any(isinstance(l, kind) for l in layers), kind
    assert len(layers) > 60
    for layer in layers:
        rows = _kernel_rows(layer)
        scale = np.abs(rows).max(1, keepdims=True) / 127
        steps = rows / scale
        assert np.abs(steps - np.round(steps)).max() < 1e-3, layer.name
        assert np.allclose(np.abs(steps).max(1), 127), layer.name  # the converter's own scale
    original = {w.path: to_numpy(w) for w in small_b0.weights}
    for w in rounded.weights:  # only the kernels moved
        if not w.path.endswith("/kernel") and "depthwise_kernel" not in w.path:
            np.testing.assert_array_equal(to_numpy(w), original[w.path])


def test_gptq_output_closer_than_nearest(small_b0, calibration):
    """On held-out inputs, the model whose kernels GPTQ rounded (4 bits, where rounding shows)
    is closer to the float model than the nearest-rounded one."""
    held_out = np.random.default_rng(4).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    expected = to_numpy(small_b0(held_out))
    errors = {}
    for method in ("gptq", "nearest"):
        got = to_numpy(quantize_weights(small_b0, calibration, bits=4, method=method)(held_out))
        errors[method] = float(np.sqrt(np.mean((got - expected) ** 2)))
    assert errors["gptq"] < 0.8 * errors["nearest"], errors


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="adaround"), "method"),
    (dict(bits=1), "bits"),
    (dict(bits=8.0), "bits"),
    (dict(damp=0), "damp"),
    (dict(block_size=0), "block_size"),
])
def test_bad_arguments(small_b0, calibration, kwargs, match):
    with pytest.raises(ValueError, match=match):
        quantize_weights(small_b0, calibration, **kwargs)


def test_bad_calibration_data(small_b0):
    for data in (np.zeros((0, 32, 32, 3)), np.zeros((2, 16, 16, 3)), np.zeros((32, 32, 3))):
        with pytest.raises(ValueError, match="calibration_data"):
            quantize_weights(small_b0, data)


def test_export_rejects_unknown_rounding(tmp_path, small_b0):
    with pytest.raises(ValueError, match="weight_rounding"):
        ke.export(small_b0, str(tmp_path / "m.tflite"), format="tflite", quantize="int8",
                  representative_data=np.zeros((2, 32, 32, 3)), weight_rounding="round")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------- the TFLite file


@tf_only
def test_int8_tflite_holds_our_rounding(tmp_path):
    """Every int8 filter of the exported file holds exactly the integer codes of one of our
    GPTQ-rounded, BatchNorm-folded kernels (the converter folded and re-scaled, but did not
    round again)."""
    import tensorflow as tf

    model = ke.EfficientNetLite0(weights=None, input_shape=(32, 32, 3), classes=5,
                                 classifier_activation=None)
    randomize_weights(model, seed=2)
    data = np.random.default_rng(5).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    path = tmp_path / "lite0_int8.tflite"
    result = ke.export(model, str(path), format="tflite", quantize="int8",
                       representative_data=data)
    assert result.weight_rounding == "gptq" and "gptq weight rounding" in result.summary()
    folded = ke.fuse_batchnorm(quantize_weights(model, data))
    ours = [_kernel_rows(l) for l in folded.layers if _quantizable(l)]

    interpreter = tf.lite.Interpreter(model_path=str(path))
    filters = []
    for detail in interpreter.get_tensor_details():
        q = detail["quantization_parameters"]
        if detail["dtype"] == np.int8 and len(q["scales"]) > 1:  # per-channel: a filter
            codes = interpreter.get_tensor(detail["index"]).astype("int64")
            axis = q["quantized_dimension"]
            filters.append(np.moveaxis(codes, axis, 0).reshape(codes.shape[axis], -1))
    assert len(filters) == len(ours), (len(filters), len(ours))

    def same(rows, codes):
        """The file's integer codes are ours, channel by channel: BatchNorm folding and the
        stem's input scaling multiply a channel by one factor (a negative one flips it), and
        TFLite orders a filter's inputs its own way, so each channel's codes are compared
        sorted."""
        if codes.shape[0] != rows.shape[0] or codes.size != rows.size:
            return False
        ours = np.sort(np.round(rows / (np.abs(rows).max(1, keepdims=True) / 127)), 1)
        return bool(np.all(np.all(ours == np.sort(codes, 1), 1) |
                           np.all(ours == np.sort(-codes, 1), 1)))

    for i, rows in enumerate(ours):
        assert any(same(rows, codes) for codes in filters), f"quantizable layer {i} not in the file"


@quick_on("tensorflow")
def test_gptq_keeps_more_real_top1_than_nearest():
    """Lite0's ImageNet weights on crops of real photos: with only the weights rounded to 8 bits,
    GPTQ changes the float top-1 on fewer crops than nearest rounding."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        import int8_agreement
    finally:
        sys.path.pop(0)
    try:
        model = ke.EfficientNetLite0(weights="imagenet")
    except ValueError as err:
        pytest.skip(f"EfficientNetLite0 ImageNet weights unavailable: {err}")
    rows = int8_agreement.weights_only(model, "EfficientNetLite0", 8, calibration=32, crops=96)
    agreement = {r["weight_rounding"]: r["top1_agreement"] for r in rows}
    assert agreement["gptq"] > agreement["nearest"] + 0.02, agreement


@pytest.mark.skipif(BACKEND == "tensorflow", reason="the TensorFlow subprocess route")
@quick_on("torch")
def test_int8_export_through_the_subprocess(tmp_path):
    """On JAX / PyTorch the rounded copy is what the TensorFlow subprocess converts; the
    artifact is verified against the caller's float model."""
    model = ke.EfficientNetLite0(weights=None, input_shape=(32, 32, 3), classes=5,
                                 classifier_activation=None)
    randomize_weights(model, seed=2)
    data = np.random.default_rng(5).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    result = ke.export(model, str(tmp_path / "lite0_int8.tflite"), format="tflite",
                       quantize="int8", representative_data=data)
    assert result.route.startswith("tensorflow subprocess") and result.weight_rounding == "gptq"
    expected = to_numpy(model(data))
    from keras_efficientnet.export import run_artifact

    got = run_artifact(tmp_path / "lite0_int8.tflite", "tflite", data)
    spread = expected.max() - expected.min()
    assert np.abs(got - expected).max() < 0.1 * spread, (np.abs(got - expected).max(), spread)
