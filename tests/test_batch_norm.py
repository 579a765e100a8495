"""FastBatchNormalization: keras' BatchNormalization with TensorFlow's fused kernels.

Checked against the core layer with the same weights: outputs and gradients in inference mode
(Grad-CAM and frozen-BatchNorm fine-tuning differentiate through it) and in training mode,
the moving-statistics update (the fused kernel's variance carries Bessel's correction, the
core layer's does not), and the cases that must stay the core computation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import BACKEND, to_numpy
from keras_efficientnet.layers import FastBatchNormalization


def _pair(channels=6, axis=-1, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    fast = FastBatchNormalization(axis=axis, epsilon=1e-3, **kwargs)
    core = keras.layers.BatchNormalization(axis=axis, epsilon=1e-3, **kwargs)
    shape = (2, 5, 5, channels) if axis == -1 else (2, channels, 5, 5)
    fast.build(shape)
    core.build(shape)
    values = {"gamma": rng.uniform(0.5, 2, channels), "beta": rng.normal(size=channels),
              "moving_mean": rng.normal(size=channels),
              "moving_variance": rng.uniform(0.5, 2, channels)}
    core.set_weights([values[w.path.split("/")[-1]].astype("float32") for w in core.weights])
    fast.set_weights(core.get_weights())
    x = rng.normal(size=shape).astype("float32") * 3
    return fast, core, x


def test_is_a_batchnormalization_that_saves_as_the_core_layer():
    fast, _, _ = _pair()
    assert isinstance(fast, keras.layers.BatchNormalization)
    config = keras.saving.serialize_keras_object(fast)
    assert (config["module"], config["class_name"]) == ("keras.layers", "BatchNormalization")


@pytest.mark.parametrize("kwargs", [{}, {"scale": False}, {"center": False}])
def test_inference_matches_the_core_layer(kwargs):
    fast, core, x = _pair(**kwargs)
    expected = to_numpy(core(x, training=False))
    got = to_numpy(fast(x, training=False))
    assert np.abs(expected).max() > 1
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if BACKEND != "jax":  # the fused kernel really runs (it rounds differently)
        assert not np.array_equal(got, expected)


@pytest.mark.parametrize("shape", [(2, 5, 5, 6), (1, 1, 1, 6), (3, 2, 7, 6)])
def test_training_mode_matches_the_core_layer(shape):
    fast, core, _ = _pair()
    x = np.random.default_rng(1).normal(2.0, 3.0, size=shape).astype("float32")
    before = to_numpy(core.moving_variance).copy()
    for _ in range(2):  # twice: the second step starts from updated statistics
        got, expected = to_numpy(fast(x, training=True)), to_numpy(core(x, training=True))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    if shape[0] * shape[1] * shape[2] > 1:
        assert np.abs(expected).max() > 1
    np.testing.assert_allclose(to_numpy(fast.moving_mean), to_numpy(core.moving_mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(fast.moving_variance), to_numpy(core.moving_variance),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(to_numpy(core.moving_variance), before)  # the update happened


def test_frozen_layer_in_training_uses_moving_statistics():
    fast, core, x = _pair()
    fast.trainable = core.trainable = False
    np.testing.assert_allclose(to_numpy(fast(x, training=True)), to_numpy(core(x, training=True)),
                               rtol=1e-5, atol=1e-5)


def _gradients(layer, x, training):
    """d sum(sin(layer(x))) / d (x, gamma, beta), by the backend's own autodiff."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(tf.sin(layer(xt, training=training)))
        return [g.numpy() for g in tape.gradient(loss, [xt, layer.gamma, layer.beta])]
    import torch

    xt = torch.tensor(x, requires_grad=True)
    loss = torch.sin(layer(xt, training=training)).sum()
    params = [layer.gamma.value, layer.beta.value]
    return [g.detach().numpy() for g in torch.autograd.grad(loss, [xt, *params])]


@pytest.mark.skipif(BACKEND == "jax", reason="on JAX the layer is the core computation")
@pytest.mark.parametrize("training", [False, True])
def test_gradients_match_the_core_layer(training):
    """Inference-mode gradients: Grad-CAM and frozen-BatchNorm fine-tuning; training mode:
    every fit step."""
    fast, core, x = _pair()
    for got, expected in zip(_gradients(fast, x, training), _gradients(core, x, training)):
        assert np.abs(expected).max() > 1e-2
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="a TensorFlow graph")
def test_tensorflow_runs_the_fused_kernel_in_training():
    import tensorflow as tf

    fast, _, x = _pair()
    graph = tf.function(lambda t: fast(t, training=True)).get_concrete_function(
        tf.TensorSpec(x.shape, "float32")).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}


def test_channels_first_and_mixed_precision_fall_back_to_the_core_layer():
    fast, core, x = _pair(axis=1)
    np.testing.assert_array_equal(to_numpy(fast(x, training=False)), to_numpy(core(x, training=False)))
    half = FastBatchNormalization(dtype="mixed_float16")
    assert not half._fused(keras.ops.ones((1, 2, 2, 3), "float16"), None)
    if BACKEND == "tensorflow":  # the only backend that accepts synchronized=True
        synced = FastBatchNormalization(synchronized=True)
        assert not synced._fused(keras.ops.ones((1, 2, 2, 3)), None)
