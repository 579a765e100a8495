"""ShiftedDepthwiseConv2D and NativeDepthwiseConv2D equal keras.layers.DepthwiseConv2D, and
PointwiseConv2D equals keras.layers.Conv2D (forward and gradients); MBConv / whole models give
the same outputs with either depthwise implementation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import BACKEND, randomize_weights, to_numpy

from keras_efficientnet.layers import MBConv, PointwiseConv2D, ShiftedDepthwiseConv2D
from keras_efficientnet.layers.depthwise import (NativeDepthwiseConv2D, native_depthwise_class,
                                                 resolve_depthwise_impl)

TOL = 1e-5


def _value_and_grads(layer, x, w):
    """Output, d(sum(out*w))/dx and d(...)/dkernel of ``layer`` at ``x`` on this backend."""
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        kernel = layer.trainable_variables[0].value

        def f(kernel, x):
            return layer.stateless_call([kernel], [], x)[0]

        def loss(k, x):
            out = f(k, x)
            return jnp.sum(out * w), out

        (_, out), (gk, gx) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
            kernel, jnp.asarray(x))
        return np.asarray(out), np.asarray(gx), np.asarray(gk)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = layer(xt)
            loss = tf.reduce_sum(out * w)
        gx, gk = tape.gradient(loss, [xt, layer.trainable_variables[0].value])
        return out.numpy(), gx.numpy(), gk.numpy()
    import torch

    xt = torch.tensor(x, requires_grad=True)
    out = layer(xt)
    (out * torch.tensor(w)).sum().backward()
    kernel = layer.trainable_variables[0].value
    return (out.detach().cpu().numpy(), xt.grad.cpu().numpy(), kernel.grad.cpu().numpy())


def _assert_same_function(ref, ours, x, w):
    """``ours`` computes ``ref``'s output and gradients (input and kernel) at ``x`` (TOL)."""
    r_out, r_gx, r_gk = _value_and_grads(ref, x, w)
    o_out, o_gx, o_gk = _value_and_grads(ours, x, w)
    assert o_out.shape == r_out.shape
    assert _rel(o_out, r_out) < TOL
    assert _rel(o_gx, r_gx) < TOL
    assert _rel(o_gk, r_gk) < TOL


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(1e-12, np.max(np.abs(b))))


CASES = [  # kernel, strides, padding, data_format, size (odd sizes exercise "same" at stride 2)
    (3, 1, "same", "channels_last", 9),
    (3, 2, "same", "channels_last", 10),
    (5, 2, "same", "channels_last", 11),
    (5, 1, "valid", "channels_last", 10),
    (3, 2, "valid", "channels_last", 11),
    (3, 2, "same", "channels_first", 9),
    (5, 1, "same", "channels_first", 8),
    # the stride-2 input gradient on JAX is computed per phase: every parity of k and size
    (5, 2, "same", "channels_first", 12),
    (4, 2, "same", "channels_last", 9),
    (1, 2, "same", "channels_last", 7),
    (5, 2, "valid", "channels_last", 13),
]


@pytest.mark.parametrize("kernel,strides,padding,data_format,size", CASES)
def test_equals_keras_depthwise_forward_and_grad(kernel, strides, padding, data_format, size):
    rng = np.random.default_rng(kernel * 100 + strides * 10 + size)
    channels = 6
    shape = (2, size, size, channels) if data_format == "channels_last" else (2, channels, size, size)
    x = rng.normal(size=shape).astype("float32")
    ref = keras.layers.DepthwiseConv2D(kernel, strides=strides, padding=padding, use_bias=False,
                                       data_format=data_format)
    ours = ShiftedDepthwiseConv2D(kernel, strides=strides, padding=padding, data_format=data_format)
    ref.build(shape)
    ours.build(shape)
    assert [tuple(v.shape) for v in ours.weights] == [tuple(v.shape) for v in ref.weights]
    assert [v.name for v in ours.weights] == [v.name for v in ref.weights]
    ours.set_weights(ref.get_weights())
    out_shape = ref.compute_output_shape(shape)
    assert ours.compute_output_shape(shape) == out_shape
    w = rng.normal(size=out_shape).astype("float32")
    r_out, r_gx, r_gk = _value_and_grads(ref, x, w)
    o_out, o_gx, o_gk = _value_and_grads(ours, x, w)
    assert o_out.shape == r_out.shape == out_shape
    assert _rel(o_out, r_out) < TOL
    assert _rel(o_gx, r_gx) < TOL
    assert _rel(o_gk, r_gk) < TOL


@pytest.mark.parametrize("kernel,strides,padding,data_format,size", CASES)
def test_native_equals_keras_depthwise_forward_and_grad(kernel, strides, padding, data_format, size):
    """NativeDepthwiseConv2D (torch's conv2d on the channels-last memory, where it applies) is
    keras' DepthwiseConv2D: outputs and gradients, with a depth multiplier and a bias."""
    rng = np.random.default_rng(kernel * 100 + strides * 10 + size + 1)
    channels = 6
    shape = (2, size, size, channels) if data_format == "channels_last" else (2, channels, size, size)
    x = rng.normal(size=shape).astype("float32")
    # a bias too, except on JAX, whose gradient helper differentiates the kernel alone (the
    # layer is the core computation there)
    kwargs = dict(strides=strides, padding=padding, data_format=data_format, depth_multiplier=2,
                  use_bias=BACKEND != "jax")
    ref = keras.layers.DepthwiseConv2D(kernel, **kwargs)
    ours = NativeDepthwiseConv2D(kernel, **kwargs)
    ref.build(shape)
    ours.build(shape)
    ours.set_weights([rng.normal(size=v.shape).astype("float32") for v in ref.weights])
    ref.set_weights(ours.get_weights())
    direct = ours._torch_padding(x) is not None
    assert direct == (BACKEND == "torch" and data_format == "channels_last"
                      and (padding == "valid" or (strides == 1 and kernel % 2 == 1)))
    _assert_same_function(ref, ours, x, rng.normal(size=ref.compute_output_shape(shape)).astype("float32"))
    config = keras.saving.serialize_keras_object(ours)
    assert (config["module"], config["class_name"]) == ("keras.layers", "DepthwiseConv2D")


@pytest.mark.skipif(BACKEND != "jax", reason="the hand-written gradient is JAX's")
def test_jax_gradient_is_hand_written():
    """On JAX the layer's gradient is the custom VJP of layers/depthwise_jax.py (one fused pass
    for the kernel gradient, a correlation for the input gradient), not autodiff's k*k
    reductions; the values are checked against Keras' DepthwiseConv2D above."""
    import jax

    layer = ShiftedDepthwiseConv2D(3, strides=2)
    layer.build((1, 8, 8, 4))
    x = np.ones((1, 8, 8, 4), "float32")
    jaxpr = str(jax.make_jaxpr(lambda k: layer.depthwise_op(x, k))(layer.kernel.value))
    assert "custom_vjp_call" in jaxpr


@pytest.mark.parametrize("kernel,strides,data_format,padding", [
    (1, 1, "channels_last", "same"),   # the matmul path on JAX and PyTorch
    (3, 1, "channels_last", "same"), (3, 2, "channels_last", "valid"),  # torch's conv2d, direct
    (1, 2, "channels_last", "same"), (1, 1, "channels_first", "same")])  # Keras' own path
def test_pointwise_equals_keras_conv_forward_and_grad(kernel, strides, data_format, padding):
    """PointwiseConv2D is keras' Conv2D: same variables, outputs and gradients (1e-5)."""
    if data_format == "channels_first" and BACKEND == "tensorflow":
        pytest.skip("TensorFlow's CPU Conv2D has no NCHW kernel")
    rng = np.random.default_rng(kernel * 10 + strides)
    shape = (2, 7, 7, 12) if data_format == "channels_last" else (2, 12, 7, 7)
    x = rng.normal(size=shape).astype("float32")
    ref = keras.layers.Conv2D(20, kernel, strides=strides, padding=padding, use_bias=False,
                              data_format=data_format)
    ours = PointwiseConv2D(20, kernel, strides=strides, padding=padding, use_bias=False,
                           data_format=data_format)
    ref.build(shape)
    ours.build(shape)
    assert isinstance(ours, keras.layers.Conv2D)
    assert [(v.name, tuple(v.shape)) for v in ours.weights] == \
        [(v.name, tuple(v.shape)) for v in ref.weights]
    ours.set_weights(ref.get_weights())
    assert ours._as_matmul() == (BACKEND in ("jax", "torch") and kernel == 1 and strides == 1
                                 and data_format == "channels_last")
    assert (ours._torch_padding(x) is not None) == (
        BACKEND == "torch" and data_format == "channels_last"
        and (padding == "valid" or strides == 1))
    _assert_same_function(ref, ours, x, rng.normal(size=ref.compute_output_shape(shape)).astype("float32"))
    restored = PointwiseConv2D.from_config(ours.get_config())
    assert restored.get_config() == ours.get_config()


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="strides"):
        ShiftedDepthwiseConv2D(3, strides=3)
    with pytest.raises(ValueError, match="padding"):
        ShiftedDepthwiseConv2D(3, padding="causal")
    with pytest.raises(ValueError, match="depthwise_impl"):
        MBConv(8, depthwise_impl="fast")
    assert resolve_depthwise_impl("shifted") == "shifted"
    assert resolve_depthwise_impl("auto") in ("keras", "shifted")


@pytest.mark.parametrize("padding", ["same"])  # "symmetric": the tiny model below
def test_mbconv_same_outputs_and_config(padding):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 12, 12, 8)).astype("float32")
    blocks = {}
    for impl in ("keras", "shifted"):
        block = MBConv(16, kernel_size=5, strides=2, expand_filters=24, se_filters=2,
                       padding=padding, depthwise_impl=impl, name="block2a")
        block(x)
        blocks[impl] = block
    expected = {"keras": native_depthwise_class(), "shifted": ShiftedDepthwiseConv2D}
    for impl, block in blocks.items():
        assert type(block.dwconv) is expected[impl]
    randomize_weights(blocks["shifted"], seed=2)  # BN statistics included, variances > 0
    blocks["keras"].set_weights(blocks["shifted"].get_weights())
    a = to_numpy(blocks["keras"](x, training=False))
    b = to_numpy(blocks["shifted"](x, training=False))
    assert _rel(b, a) < TOL
    config = blocks["shifted"].get_config()
    assert config["depthwise_impl"] == "shifted"
    assert MBConv.from_config(config).depthwise_impl == "shifted"
    assert MBConv(8).get_config()["depthwise_impl"] == "auto"


@pytest.fixture(scope="module")
def tiny_models():
    from keras_efficientnet import build_efficientnet
    from keras_efficientnet.specs import ModelSpec
    from keras_efficientnet.specs.blocks import parse_blocks

    # A tiny network with MBConv blocks at stride 1 and 2, kernels 3 and 5, and a Fused-MBConv.
    spec = ModelSpec(name="TinyDepthwise", stem=16, head=64, padding="symmetric",
                     blocks=parse_blocks(["mb_r1_k3_s1_e1_c16_se0.25", "mb_r2_k5_s2_e4_c24_se0.25",
                                          "fu_r1_k3_s2_e2_c32"]))
    base = build_efficientnet(spec, input_shape=(32, 32, 3), classes=7)
    randomize_weights(base, seed=3)
    models = {impl: build_efficientnet(spec, input_shape=(32, 32, 3), classes=7,
                                       depthwise_impl=impl) for impl in ("keras", "shifted")}
    return models, base


def test_model_same_weights_and_outputs(tiny_models, tmp_path):
    from keras_efficientnet.pretrained.naming import flat_weights

    models, base = tiny_models
    names = {impl: sorted(flat_weights(m)) for impl, m in models.items()}
    assert names["keras"] == names["shifted"] == sorted(flat_weights(base))
    assert "block2a_dwconv/kernel" in names["shifted"]
    assert type(models["shifted"].get_layer("block2a_dwconv")) is ShiftedDepthwiseConv2D
    assert type(models["keras"].get_layer("block2a_dwconv")) is native_depthwise_class()
    # Weights saved from the keras-impl model load into the shifted-impl one unchanged.
    path = str(tmp_path / "w.weights.h5")
    base.save_weights(path)
    models["keras"].load_weights(path)
    models["shifted"].load_weights(path)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    ref = to_numpy(base(x, training=False))
    for impl, model in models.items():
        assert _rel(to_numpy(model(x, training=False)), ref) < TOL, impl
