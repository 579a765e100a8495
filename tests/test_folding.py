"""BatchNorm folded at inference (``bn_fold``): the same numbers as Keras' own
Conv + BatchNormalization layers and as keras.applications, on every backend; training and
frozen-BatchNorm behaviour; the TensorFlow graph it produces; bad arguments."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_efficientnet as ke
from conftest import BACKEND, max_rel_diff, randomize_weights, save_legacy_h5, to_numpy
from keras_efficientnet.layers import FastBatchNormalization, MBConv, PointwiseConv2D, ShiftedDepthwiseConv2D
from keras_efficientnet.layers.folding import (AUTO_BN_FOLD, can_fold, folded_conv_bn,
                                               resolve_bn_fold)

TOL = 1e-5
CHANNELS_FIRST_OK = BACKEND != "tensorflow"  # TensorFlow's CPU convolutions are NHWC only


def _random_bn(channels, axis, rng):
    bn = keras.layers.BatchNormalization(axis=axis, epsilon=1e-3)
    shape = [1, 5, 5, 5]
    shape[axis] = channels
    bn.build(tuple(shape))
    bn.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
    bn.beta.assign(rng.normal(0, 0.3, channels).astype("float32"))
    bn.moving_mean.assign(rng.normal(0, 0.3, channels).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.2, 2.0, channels).astype("float32"))
    return bn


def _convs(data_format):
    return {
        "conv3x3_s2": keras.layers.Conv2D(6, 3, strides=2, padding="same", use_bias=False,
                                          data_format=data_format),
        "pointwise": PointwiseConv2D(6, 1, use_bias=False, data_format=data_format),
        "depthwise_s1": keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                                     data_format=data_format),
        "depthwise_5x5_s2_valid": keras.layers.DepthwiseConv2D(5, strides=2, padding="valid",
                                                               use_bias=False,
                                                               data_format=data_format),
        "shifted_s2": ShiftedDepthwiseConv2D(3, strides=2, data_format=data_format),
    }


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("kind", list(_convs("channels_last")))
def test_folded_conv_bn_equals_keras_layers(kind, data_format):
    """One folded convolution == Keras' Conv2D/DepthwiseConv2D followed by Keras'
    BatchNormalization in inference mode, for every conv type the blocks use."""
    if data_format == "channels_first" and not CHANNELS_FIRST_OK:
        pytest.skip("TensorFlow's CPU convolutions are NHWC only")
    rng = np.random.default_rng(7)
    channels_last = data_format == "channels_last"
    shape = (2, 11, 11, 4) if channels_last else (2, 4, 11, 11)
    x = rng.normal(0, 1, shape).astype("float32")
    conv = _convs(data_format)[kind]
    conv.build(shape)
    out_channels = conv.compute_output_shape(shape)[-1 if channels_last else 1]
    bn = _random_bn(out_channels, -1 if channels_last else 1, rng)
    expected = to_numpy(bn(to_numpy(conv(x)), training=False))
    got = to_numpy(folded_conv_bn(conv, bn, x))
    assert got.shape == expected.shape
    assert np.abs(expected).max() > 0.1
    assert max_rel_diff(expected, got) <= TOL


def _ka_and_ours(name, bn_fold, tmp_path, res=32, **kwargs):
    """keras.applications ``name`` with random weights and statistics, and ours built from its
    weight file with ``bn_fold`` forced, both from the first layer after preprocessing."""
    if bn_fold == "inference":  # folding inside composite blocks
        kwargs.setdefault("layout", "blocks")
    reference = getattr(keras.applications, name)(
        weights=None, input_shape=(res, res, 3), classifier_activation=None)
    randomize_weights(reference, seed=11)
    start = reference.get_layer("stem_conv_pad" if "V2" not in name else "stem_conv").input
    path = save_legacy_h5(reference, str(tmp_path / f"{name}.h5"))
    ours = getattr(ke, name)(weights=path, input_shape=(res, res, 3), classifier_activation=None,
                             include_preprocessing=False, bn_fold=bn_fold, **kwargs)
    return keras.Model(start, reference.output), ours


@pytest.mark.parametrize("name", ["EfficientNetB0", "EfficientNetV2B0"])
@pytest.mark.parametrize("bn_fold", ["inference", "never"])
def test_models_match_keras_applications_either_way(name, bn_fold, tmp_path):
    """MBConv (B0) and Fused-MBConv (V2-B0) with the BatchNorms folded or not give
    keras.applications' logits on this backend. V2-B0 with ``"never"`` on TensorFlow differs
    from keras.applications only in its BatchNorm kernel (TensorFlow's fused one): with the core
    layer put back it runs keras.applications' very arithmetic (B0 differs in where it pads), so
    equal bit for bit."""
    reference, ours = _ka_and_ours(name, bn_fold, tmp_path)
    x = np.random.default_rng(2).normal(0, 1, (2, 32, 32, 3)).astype("float32")
    expected = to_numpy(reference(x))
    got = to_numpy(ours(x))
    assert np.abs(expected).max() > 1e-2
    assert max_rel_diff(expected, got) <= 1e-4
    assert max_rel_diff(expected, to_numpy(ours.predict_on_batch(x))) <= 1e-4
    if bn_fold == "never" and BACKEND == "tensorflow" and "V2" in name:
        assert not np.array_equal(got, expected)  # the fused kernel rounds differently
        core = keras.models.clone_model(ours, clone_function=_core_batchnorm)
        core.set_weights(ours.get_weights())
        assert not any(isinstance(l, FastBatchNormalization) for l in core.layers)
        np.testing.assert_array_equal(to_numpy(core(x)), expected)


def _core_batchnorm(layer):
    if isinstance(layer, FastBatchNormalization):
        return keras.layers.BatchNormalization.from_config(layer.get_config())
    return layer.__class__.from_config(layer.get_config())


def test_training_mode_does_not_fold(tmp_path):
    """With ``training=True`` the blocks normalise with batch statistics and update the
    moving statistics exactly as without folding; with frozen BatchNorms (Keras runs them in
    inference mode) the folded model still matches keras.applications."""
    no_drop = {"drop_connect_rate": 0.0, "dropout_rate": 0.0}  # deterministic training mode
    reference, folded = _ka_and_ours("EfficientNetB0", "inference", tmp_path, **no_drop)
    for layer in reference.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    plain = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classifier_activation=None,
                              include_preprocessing=False, bn_fold="never", layout="blocks",
                              **no_drop)
    plain.set_weights(folded.get_weights())
    x = np.random.default_rng(3).normal(0, 1, (4, 32, 32, 3)).astype("float32")
    out_folded = to_numpy(folded(x, training=True))
    out_plain = to_numpy(plain(x, training=True))
    out_reference = to_numpy(reference(x, training=True))
    # batch statistics, not the moving ones: far from the inference output
    assert max_rel_diff(out_reference, to_numpy(reference(x, training=False))) > 1e-3
    assert max_rel_diff(out_reference, out_folded) <= 1e-4
    np.testing.assert_array_equal(out_folded, out_plain)
    moving = [w.path for w in folded.non_trainable_weights if "moving_mean" in w.path]
    assert len(moving) > 40
    for a, b in zip(folded.non_trainable_weights, plain.non_trainable_weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))

    for layer in folded.layers + reference.layers:
        for sub in [layer, *layer._flatten_layers(include_self=False)]:
            if isinstance(sub, keras.layers.BatchNormalization):
                sub.trainable = False
    frozen_expected = to_numpy(reference(x, training=True))
    assert max_rel_diff(frozen_expected, to_numpy(reference(x, training=False))) == 0.0
    assert max_rel_diff(frozen_expected, to_numpy(folded(x, training=True))) <= 1e-4


def test_can_fold_conditions():
    conv = keras.layers.Conv2D(4, 3, use_bias=False)
    conv.build((1, 8, 8, 3))
    bn = keras.layers.BatchNormalization()
    bn.build((1, 6, 6, 4))
    assert can_fold(conv, bn, training=False)
    assert can_fold(conv, bn, training=None)
    assert not can_fold(conv, bn, training=True)
    bn.trainable = False
    assert can_fold(conv, bn, training=True)  # Keras runs a frozen BatchNorm in inference mode
    biased = keras.layers.Conv2D(4, 3)
    biased.build((1, 8, 8, 3))
    assert not can_fold(biased, bn, training=False)
    half = keras.layers.Conv2D(4, 3, use_bias=False, dtype="mixed_float16")
    half.build((1, 8, 8, 3))
    assert not can_fold(half, bn, training=False)  # BatchNorm keeps float32 math there


def test_mixed_precision_keeps_batchnorm():
    """Under mixed_float16 the blocks do not fold (Keras computes BatchNorm in float32), so
    the output is the unfolded model's, bit for bit."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        x = np.random.default_rng(4).normal(0, 1, (2, 16, 16, 8)).astype("float32")
        folded = MBConv(8, expand_filters=32, se_filters=2, bn_fold="inference")
        plain = MBConv(8, expand_filters=32, se_filters=2, bn_fold="never")
        folded.build(x.shape)
        plain.build(x.shape)
        plain.set_weights(folded.get_weights())
        np.testing.assert_array_equal(to_numpy(folded(x, training=False)),
                                      to_numpy(plain(x, training=False)))
    finally:
        keras.config.set_dtype_policy(policy)


def test_config_round_trip_and_bad_values(tmp_path):
    block = MBConv(8, expand_filters=16, bn_fold="never")
    assert MBConv.from_config(block.get_config()).bn_fold == "never"
    model = ke.EfficientNetV2B0(weights=None, input_shape=(32, 32, 3), classes=3,
                                bn_fold="inference", layout="blocks")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    blocks = [layer for layer in loaded.layers if hasattr(layer, "bn_fold")]
    assert blocks and all(layer.bn_fold == "inference" for layer in blocks)
    with pytest.raises(ValueError, match="bn_fold"):
        MBConv(8, bn_fold="yes")
    with pytest.raises(ValueError, match="bn_fold"):
        ke.EfficientNetB0(weights=None, bn_fold=True)
    with pytest.raises(ValueError, match="depthwise_impl"):
        ke.EfficientNetB0(weights=None, depthwise_impl="fast")
    # the flat graph runs keras.applications' BatchNorm layers: asking it to fold is an error
    with pytest.raises(ValueError, match="layout='blocks'"):
        ke.EfficientNetB0(weights=None, bn_fold="inference")
    assert resolve_bn_fold("auto") == AUTO_BN_FOLD[BACKEND]


def test_depthwise_impl_reaches_the_blocks():
    model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), depthwise_impl="shifted",
                              layout="blocks")
    dw = [layer.dwconv for layer in model.layers if isinstance(layer, MBConv)]
    assert len(dw) == 16 and all(isinstance(layer, ShiftedDepthwiseConv2D) for layer in dw)
    from keras_efficientnet.layers.depthwise import native_depthwise_class

    for impl, cls in (("shifted", ShiftedDepthwiseConv2D), ("keras", native_depthwise_class())):
        flat = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), depthwise_impl=impl)
        dw = [layer for layer in flat.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
        assert len(dw) == 16 and all(type(layer) is cls for layer in dw)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="inspects a TensorFlow graph")
def test_tensorflow_graph_has_no_batchnorm_arithmetic():
    """Folded, a block's inference graph is convolutions with BiasAdd (what grappler fuses
    into the convolution) and no per-element normalisation (Rsqrt on activations)."""
    import tensorflow as tf

    def op_types(bn_fold):
        block = MBConv(16, expand_filters=64, se_filters=4, bn_fold=bn_fold)
        block.build((1, 8, 8, 16))
        fn = tf.function(lambda x: block(x, training=False))
        graph = fn.get_concrete_function(tf.TensorSpec((1, 8, 8, 16))).graph
        return [op.type for op in graph.get_operations()]

    folded, plain = op_types("inference"), op_types("never")
    # one per folded pair (expand, depthwise, project), beside the SE convs' own two
    assert folded.count("BiasAdd") == plain.count("BiasAdd") + 3 == 5
    assert folded.count("Conv2D") == plain.count("Conv2D")
    assert folded.count("DepthwiseConv2dNative") == plain.count("DepthwiseConv2dNative") == 1
