"""FastBatchNormalization: keras' BatchNormalization with TensorFlow's fused inference kernel.

Checked against the core layer with the same weights: outputs, gradients in inference mode
(Grad-CAM and frozen-BatchNorm fine-tuning differentiate through it), training-mode updates,
and the cases that must stay the core computation."""

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
    if BACKEND == "tensorflow":  # the fused kernel really runs (it rounds differently)
        assert not np.array_equal(got, expected)


def test_training_mode_is_the_core_computation():
    fast, core, x = _pair()
    np.testing.assert_array_equal(to_numpy(fast(x, training=True)), to_numpy(core(x, training=True)))
    np.testing.assert_array_equal(to_numpy(fast.moving_mean), to_numpy(core.moving_mean))
    np.testing.assert_array_equal(to_numpy(fast.moving_variance), to_numpy(core.moving_variance))


def test_frozen_layer_in_training_uses_moving_statistics():
    fast, core, x = _pair()
    fast.trainable = core.trainable = False
    np.testing.assert_allclose(to_numpy(fast(x, training=True)), to_numpy(core(x, training=True)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the fused kernel is TensorFlow's")
def test_inference_gradients_match_the_core_layer():
    import tensorflow as tf

    fast, core, x = _pair()
    grads = []
    for layer in (fast, core):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(tf.sin(layer(xt, training=False)))
        grads.append([g.numpy() for g in tape.gradient(loss, [xt, layer.gamma, layer.beta])])
    for got, expected in zip(*grads):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_channels_first_and_mixed_precision_fall_back_to_the_core_layer():
    fast, core, x = _pair(axis=1)
    np.testing.assert_array_equal(to_numpy(fast(x, training=False)), to_numpy(core(x, training=False)))
    half = FastBatchNormalization(dtype="mixed_float16")
    assert not half._fused_inference(keras.ops.ones((1, 2, 2, 3), "float16"), False, None)
