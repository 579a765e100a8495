"""``torchscript()``: Keras' PyTorch computation traced and frozen, checked against the Keras
model it came from (random weights with random BatchNorm statistics, so every tensor counts) and
against timm for a converted timm model; refusals on other backends and for other sizes."""

from __future__ import annotations

import numpy as np
import pytest

import keras_efficientnet as ke
from conftest import BACKEND, randomize_weights

torch_only = pytest.mark.skipif(BACKEND != "torch", reason="traces Keras' PyTorch backend")


def test_other_backends_refuse():
    if BACKEND == "torch":
        pytest.skip("the refusal is for the other backends")
    model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"needs KERAS_BACKEND=torch.*export\("):
        ke.torchscript(model)


def _logits_model(name, size=64, seed=0, **kwargs):
    model = ke.create_model(name, weights=None, input_shape=(size, size, 3),
                            classifier_activation=None, **kwargs)
    randomize_weights(model, seed=seed)
    return model


def _converted(name, tmp_path, seed):
    """A timm model with well-conditioned random weights (test_timm_parity's fixture: random
    statistics that keep activations from growing block after block) and ours loaded from it."""
    from test_timm_parity import RES, save_state_dict, timm_reference

    reference = timm_reference(name, seed=seed)
    path = save_state_dict(reference, tmp_path / f"{name}.pth")
    ours = ke.create_model(name, weights=path, input_shape=(RES, RES, 3),
                           include_preprocessing=False, classifier_activation=None)
    return reference, ours, RES


@torch_only
@pytest.mark.parametrize("name", ["tf_efficientnet_b0", "tf_efficientnetv2_b0",
                                  "tf_efficientnet_lite0"])
def test_trace_equals_the_keras_model_and_timm(name, tmp_path):
    import io

    import torch
    from test_timm_parity import timm_logits

    reference, model, res = _converted(name, tmp_path, seed=len(name))
    fast = ke.torchscript(model)
    assert fast.max_abs_diff is not None
    x = np.random.default_rng(5).normal(size=(3, res, res, 3)).astype("float32")  # other batch
    expected = np.asarray(model.predict_on_batch(x))
    got = fast(x)
    assert isinstance(got, torch.Tensor)
    scale = float(np.abs(expected).max())
    assert np.abs(expected[0] - expected[1]).max() > 1e-2 * scale  # the logits follow the input
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-5 * scale)
    theirs = timm_logits(reference, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(got.numpy(), theirs, rtol=0, atol=1e-4 * scale)
    # the frozen graph holds no Keras: saved and loaded as plain TorchScript it still computes it
    buffer = io.BytesIO()
    torch.jit.save(fast.script, buffer)
    buffer.seek(0)
    with torch.no_grad():
        again = torch.jit.load(buffer)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(again, got.numpy())


@torch_only
def test_channels_first_and_dense_outputs():
    import torch

    channels_last = _logits_model("EfficientNetB0", seed=3)
    model = ke.create_model("EfficientNetB0", weights=None, input_shape=(3, 64, 64),
                            classifier_activation=None, data_format="channels_first")
    model.set_weights(channels_last.get_weights())
    fast = ke.torchscript(model)
    x = np.random.default_rng(6).uniform(0, 255, (2, 3, 64, 64)).astype("float32")
    expected = np.asarray(channels_last.predict_on_batch(np.ascontiguousarray(x.transpose(0, 2, 3, 1))))
    with torch.no_grad():
        np.testing.assert_allclose(fast(torch.from_numpy(x)).numpy(), expected, rtol=0,
                                   atol=1e-5 * np.abs(expected).max())
    unet = ke.segmentation.Unet("EfficientNetB0", input_shape=(None, None, 3), classes=2,
                                activation=None)
    randomize_weights(unet, seed=4)
    with pytest.raises(ValueError, match=r"free dimensions.*input_shape="):
        ke.torchscript(unet)
    fast = ke.torchscript(unet, input_shape=(64, 96, 3))
    x = np.random.default_rng(7).normal(0, 1, (1, 64, 96, 3)).astype("float32")
    expected = np.asarray(unet.predict_on_batch(x))
    np.testing.assert_allclose(fast(x).numpy(), expected, rtol=0,
                               atol=1e-5 * max(1.0, np.abs(expected).max()))


@torch_only
def test_other_sizes_and_bad_arguments_refused():
    model = ke.EfficientNetB0(weights=None, input_shape=(64, 64, 3))
    fast = ke.torchscript(model, verify=False)
    assert fast.max_abs_diff is None
    with pytest.raises(ValueError, match=r"recorded for inputs of shape \(batch, 64, 64, 3\), "
                                         r"got \(1, 96, 96, 3\)"):
        fast(np.zeros((1, 96, 96, 3), "float32"))
    with pytest.raises(ValueError, match=r"does not fit the model's input"):
        ke.torchscript(model, input_shape=(96, 96, 3))
    free = ke.EfficientNetB0(weights=None, include_top=False, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"positive integers"):
        ke.torchscript(free, input_shape=(0, 64, 3))


def _kinds(fast):
    return [node.kind() for node in fast.script.graph.nodes()]


@torch_only
def test_optimized_trace_writes_in_place_only_where_nothing_else_reads():
    """The default trace folds the BatchNorms and rewrites activations and bias adds to write
    into their input; a tensor the model also returns (a tapped BatchNorm output) or the
    caller's input must come out untouched, and ``optimize=False`` keeps the graph as traced."""
    import keras
    import torch

    model = _logits_model("EfficientNetB0", seed=8)
    taps = ["block1a_bn", "block1a_activation", "block2a_expand_activation"]
    tapped = keras.Model(model.input, [model.get_layer(n).output for n in taps] + [model.output])
    fast, plain = ke.torchscript(tapped), ke.torchscript(tapped, optimize=False)
    kinds, plain_kinds = _kinds(fast), _kinds(plain)
    assert kinds.count("aten::silu_") >= 40 and kinds.count("aten::add_") >= 40
    assert "aten::batch_norm" in plain_kinds and "aten::batch_norm" not in kinds  # folded
    assert not any(k.endswith("_") and k.startswith("aten::") for k in plain_kinds)
    x = np.random.default_rng(9).uniform(0, 255, (3, 64, 64, 3)).astype("float32")
    xt = torch.from_numpy(x.copy())
    expected = [np.asarray(keras.ops.convert_to_numpy(t)) for t in tapped(x, training=False)]
    for traced in (fast, plain):
        got = traced(xt)
        assert len(got) == len(expected)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g.numpy(), e, rtol=0, atol=1e-5 * max(1.0, np.abs(e).max()))
    # the tapped BatchNorm output is also the SiLU's input: it must not be activated in place
    assert float(np.asarray(expected[0]).min()) < -0.3
    np.testing.assert_array_equal(xt.numpy(), x)


@torch_only
def test_graph_input_is_never_overwritten():
    import keras
    import torch

    inputs = keras.Input((4, 4, 2))
    relu = keras.layers.Activation("relu")(inputs)  # its input is the caller's tensor
    conv = keras.layers.Conv2D(2, 1, use_bias=False)(relu)
    model = keras.Model(inputs, [keras.layers.Activation("sigmoid")(conv), relu])
    fast = ke.torchscript(model)
    assert "aten::sigmoid_" in _kinds(fast) and "aten::relu" in _kinds(fast)
    x = np.random.default_rng(10).normal(size=(2, 4, 4, 2)).astype("float32")
    assert (x < 0).any()
    xt = torch.from_numpy(x.copy())
    got = fast(xt)
    for e, g in zip(model(x), got):
        np.testing.assert_allclose(g.numpy(), keras.ops.convert_to_numpy(e), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(xt.numpy(), x)


@torch_only
def test_a_write_that_cannot_broadcast_falls_back_to_the_plain_trace():
    import keras

    inputs = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(1, 1, use_bias=False)(inputs)
    # a per-channel constant broadcast *up* onto a one-channel tensor: add_ cannot hold it
    wide = keras.layers.Lambda(lambda t: keras.ops.add(
        t, keras.ops.convert_to_tensor(np.arange(3, dtype="float32"))))(conv)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(wide))
    fast = ke.torchscript(model)
    assert not any(k.endswith("_") for k in _kinds(fast) if k.startswith("aten::"))
    x = np.random.default_rng(11).normal(size=(2, 4, 4, 1)).astype("float32")
    got = fast(x)
    assert tuple(got.shape) == (2, 4, 4, 3)
    np.testing.assert_allclose(got.numpy(), keras.ops.convert_to_numpy(model(x)), rtol=0,
                               atol=1e-6)
