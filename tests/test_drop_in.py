"""keras.applications' own user patterns, run against ours: the drop-in claim, proven.

Each test takes code people write against ``keras.applications.EfficientNet*`` (the keras.io
fine-tuning and Grad-CAM recipes, U-Net / FPN encoders that tap expansion activations,
detectors that tap block outputs, plain save / load) and runs it on both libraries, on every
backend. Where we deliberately differ (docs/architecture.md, "Differences from
keras.applications"), the test says so and asserts the difference itself.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_efficientnet as ke
from conftest import BACKEND, max_rel_diff, quick_on, randomize_weights, rotate, save_legacy_h5, to_numpy

KA_VARIANTS = [f"EfficientNetB{i}" for i in range(8)] + [
    f"EfficientNetV2{s}" for s in ("B0", "B1", "B2", "B3", "S", "M", "L")]
EVERYWHERE = ("EfficientNetB0", "EfficientNetV2B0")
#: keras.applications V2 divides its drop-path schedule by the *unscaled* block count, so
#: V2-B1..B3 (the only variants whose depth multiplier changes the count) end above
#: drop_connect_rate; ours rises linearly to it (docs/architecture.md).
KA_DROP_SCHEDULE_DIFFERS = ("EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3")
CONFIG_KEYS = ("filters", "kernel_size", "strides", "padding", "activation", "use_bias", "rate",
               "noise_shape", "axis", "momentum", "epsilon", "target_shape", "scale", "offset",
               "mean", "variance", "units", "depth_multiplier", "data_format")
AUTO_NAMED = re.compile(r"^(input_layer|rescaling|normalization)(_\d+)?$")


def layer_table(model):
    """(class, name, key config) of every layer; Keras' automatic names without their number."""
    rows = []
    for layer in model.layers:
        name = AUTO_NAMED.sub(r"\1", layer.name)
        config = {k: v for k, v in layer.get_config().items() if k in CONFIG_KEYS}
        rows.append((type(layer).__name__, name, config))
    return rows


def pair(name, **kwargs):
    kwargs.setdefault("weights", None)
    return getattr(keras.applications, name)(**kwargs), getattr(ke, name)(**kwargs)


@pytest.mark.parametrize("name", rotate(KA_VARIANTS, EVERYWHERE, among=("tensorflow", "torch")))
def test_same_layers_names_classes_order_and_configs(name):
    for include_top in (True, False):
        ref, ours = pair(name, include_top=include_top, input_shape=(64, 64, 3))
        ref_rows, our_rows = layer_table(ref), layer_table(ours)
        assert [r[:2] for r in our_rows] == [r[:2] for r in ref_rows]
        differ = [(r, o) for r, o in zip(ref_rows, our_rows) if r[2] != o[2]]
        if name in KA_DROP_SCHEDULE_DIFFERS:
            assert differ and all(r[0] == "Dropout" and set(r[2]) == set(o[2])
                                  and r[2]["rate"] > o[2]["rate"] for r, o in differ)
            last_drop = [o for o in our_rows if o[1].endswith("_drop")][-1]
            assert last_drop[2]["rate"] < 0.2 + 1e-9
        else:
            assert differ == []
        # every keras.applications layer name resolves, to a layer of the same class
        for layer in ref.layers:
            if not AUTO_NAMED.match(layer.name):
                assert type(ours.get_layer(layer.name)).__name__ == type(layer).__name__
        # summary totals
        assert ours.count_params() == ref.count_params()
        assert len(ours.trainable_weights) == len(ref.trainable_weights)
        assert len(ours.non_trainable_weights) == len(ref.non_trainable_weights)
        assert ours.name == ref.name
        assert ours.output_shape == ref.output_shape


@pytest.mark.parametrize("name", ["EfficientNetB0", "EfficientNetB3", "EfficientNetV2B0", "EfficientNetV2S"])
def test_signatures_and_defaults(name):
    ref = inspect.signature(getattr(keras.applications, name)).parameters
    ours = inspect.signature(getattr(ke, name)).parameters
    positional = [p for p in ours.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert [(p.name, p.default) for p in positional] == [(p.name, p.default) for p in ref.values()]
    assert all(p.kind == p.KEYWORD_ONLY for p in ours.values() if p.name not in ref)


def test_weights_default_is_imagenet():
    for name in KA_VARIANTS:
        assert inspect.signature(getattr(ke, name)).parameters["weights"].default == "imagenet"
        assert inspect.signature(getattr(keras.applications, name)).parameters["weights"].default \
            == "imagenet"


def test_keras_io_fine_tuning_recipe_unfreezes_the_same_weights():
    """keras.io "Image classification via fine-tuning with EfficientNet": freeze the model,
    then unfreeze the top 20 layers while leaving BatchNormalization layers frozen."""
    def recipe(model):
        model.trainable = False
        model.trainable = True
        for layer in model.layers[:-20]:
            layer.trainable = False
        for layer in model.layers[-20:]:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        return sorted(w.path for w in model.trainable_weights)

    def keras_io_model(module):
        # the recipe's model: the base on an input tensor, then its own head
        inputs = keras.Input((64, 64, 3))
        base = module.EfficientNetB0(include_top=False, input_tensor=inputs, weights=None)
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Dropout(0.2, name="top_dropout")(x)
        outputs = keras.layers.Dense(5, activation="softmax", name="pred")(x)
        return keras.Model(inputs, outputs, name="EfficientNet")

    # 10 weights: pred (2), top_conv, block7a's expand, depthwise and project kernels and its
    # SE convolutions (4); no BatchNorm
    theirs = recipe(keras_io_model(keras.applications))
    assert recipe(keras_io_model(ke)) == theirs
    assert len(theirs) == 10 and not any("bn" in w for w in theirs)
    ref, ours = pair("EfficientNetB0", include_top=False, input_shape=(64, 64, 3))
    assert recipe(ours) == recipe(ref)
    bn = [l.name for l in ours.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bn == [l.name for l in ref.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bn) == 49


#: qubvel segmentation_models' EfficientNet encoder taps, a detector's block outputs.
SEGMENTATION_TAPS = ("block6a_expand_activation", "block4a_expand_activation",
                     "block3a_expand_activation", "block2a_expand_activation")
DETECTION_TAPS = ("block3b_add", "block5c_add", "block7a_project_bn", "top_activation")


@pytest.mark.parametrize("name", ["EfficientNetB0", pytest.param("EfficientNetB4", marks=quick_on("tensorflow"))])
def test_encoder_taps(name, rng):
    ref, ours = pair(name, include_top=False, input_shape=(96, 96, 3))
    ours.set_weights(ref.get_weights())
    taps = SEGMENTATION_TAPS + DETECTION_TAPS
    ref_enc = keras.Model(ref.input, [ref.get_layer(t).output for t in taps])
    our_enc = keras.Model(ours.input, [ours.get_layer(t).output for t in taps])
    x = rng.uniform(0, 255, (1, 96, 96, 3)).astype("float32")
    for t, a, b in zip(taps, ref_enc(x), our_enc(x)):
        assert a.shape == b.shape, t
        assert max_rel_diff(to_numpy(a), to_numpy(b)) < 1e-5, t


@pytest.mark.parametrize("name", ["EfficientNetB0", "EfficientNetV2B0"])
def test_same_outputs_with_preprocessing_through_keras_weights_files(name, rng, tmp_path):
    """A keras.applications model trained from scratch (random weights, adapted
    Normalization statistics) saved with ``save_weights``: ours loads it, in both formats."""
    ref, ours = pair(name, input_shape=(64, 64, 3), classifier_activation=None)
    randomize_weights(ref, seed=3)
    norm = [l for l in ref.layers if isinstance(l, keras.layers.Normalization) and l.weights]
    for layer in norm:  # a model whose input statistics were adapted to its data
        layer.adapt(rng.uniform(0, 255, (16, 8, 8, 3)).astype("float32") / 255.0)
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = to_numpy(ref(x))
    native = str(tmp_path / "ref.weights.h5")
    ref.save_weights(native)
    ours.load_weights(native)
    assert max_rel_diff(expected, to_numpy(ours(x))) < 1e-5
    legacy = save_legacy_h5(ref, str(tmp_path / "ref.h5"))
    again = getattr(ke, name)(weights=legacy, input_shape=(64, 64, 3), classifier_activation=None)
    assert max_rel_diff(expected, to_numpy(again(x))) < 1e-5
    # and ours back into keras.applications
    ours.save_weights(str(tmp_path / "ours.weights.h5"))
    back = getattr(keras.applications, name)(weights=None, input_shape=(64, 64, 3),
                                             classifier_activation=None)
    back.load_weights(str(tmp_path / "ours.weights.h5"))
    assert max_rel_diff(expected, to_numpy(back(x))) < 1e-5


_PLAIN_KERAS_LOAD = """
import sys, numpy as np, keras
assert "keras_efficientnet" not in sys.modules
model = keras.saving.load_model(sys.argv[1])
assert "keras_efficientnet" not in sys.modules
x = np.load(sys.argv[2])
np.save(sys.argv[3], keras.ops.convert_to_numpy(model(x)))
print(sorted({type(l).__module__ for l in model.layers}))
"""


@pytest.mark.parametrize("name", ["EfficientNetB0", pytest.param("EfficientNetV2B0", marks=quick_on("jax"))])
def test_keras_file_loads_with_plain_keras(name, rng, tmp_path):
    """A ``.keras`` file of ours loads in a fresh process that never imports this package
    (same outputs); after ``import keras_efficientnet`` the fast layers come back."""
    model = getattr(ke, name)(weights=None, input_shape=(64, 64, 3))
    randomize_weights(model, seed=1)
    path = str(tmp_path / "m.keras")
    model.save(path)
    x = rng.uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, PYTHONPATH="")
    out = subprocess.run([sys.executable, "-c", _PLAIN_KERAS_LOAD, path, str(tmp_path / "x.npy"),
                          str(tmp_path / "y.npy")], capture_output=True, text=True, env=env,
                         cwd=str(tmp_path), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "keras_efficientnet" not in out.stdout
    expected = to_numpy(model(x))
    assert max_rel_diff(expected, np.load(tmp_path / "y.npy")) < 1e-5
    loaded = keras.saving.load_model(path)
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert max_rel_diff(expected, to_numpy(loaded(x))) < 1e-5


def test_decode_predictions_uses_keras_class_names():
    from keras.src.applications import imagenet_utils

    rows = [[w, name] for w, name in ke.imagenet_class_index()]
    text = json.dumps({str(i): row for i, row in enumerate(rows)})
    # the md5 keras.applications checks its downloaded imagenet_class_index.json against
    assert hashlib.md5(text.encode()).hexdigest() == "c2c37ea517e94d9795004a39431a14cb"
    assert "c2c37ea517e94d9795004a39431a14cb" in inspect.getsource(imagenet_utils)
    preds = np.zeros((1, 1000), "float32")
    preds[0, [2, 0, 817]] = (0.6, 0.3, 0.1)
    assert [r[1] for r in ke.decode_predictions(preds, top=3)[0]] == [
        "great_white_shark", "tench", "sports_car"]


@pytest.mark.parametrize("channels", [1, 4])
def test_other_channel_counts_build_as_in_keras_applications(channels):
    for name in EVERYWHERE:
        ref, ours = pair(name, include_top=False, input_shape=(64, 64, channels))
        assert layer_table(ours) == layer_table(ref)
        assert ours.count_params() == ref.count_params()


def test_mixed_precision_like_keras_applications():
    policy = keras.config.dtype_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        ref, ours = pair("EfficientNetB0", input_shape=(64, 64, 3))
        assert ours.output.dtype == ref.output.dtype
        assert ours.get_layer("predictions").dtype_policy.name == \
            ref.get_layer("predictions").dtype_policy.name
        assert [l.dtype_policy.name for l in ours.layers] == [l.dtype_policy.name for l in ref.layers]
    finally:
        keras.mixed_precision.set_global_policy(policy)


def test_channels_first_builds_everywhere():
    """keras.applications builds channels_first models on any backend (TensorFlow's CPU
    kernels then cannot run them, but users build on CPU to save for a GPU); so do we."""
    before = keras.config.image_data_format()
    try:
        keras.config.set_image_data_format("channels_first")
        ref, ours = pair("EfficientNetB0", include_top=False, input_shape=(3, 64, 64))
        assert layer_table(ours) == layer_table(ref)
        assert ours.output_shape == ref.output_shape == (None, 1280, 2, 2)
    finally:
        keras.config.set_image_data_format(before)


@pytest.mark.parametrize("name", ["EfficientNetB0", "EfficientNetV2B0", "EfficientNetLite0",
                                  pytest.param("EfficientNetCondConvB0_4E", marks=quick_on("tensorflow"))])
def test_blocks_layout_holds_the_same_weights(name, rng):
    """``layout="blocks"`` (one layer per block) and the flat default: one definition of the
    wiring, one naming rule; weights move by flat name, outputs agree."""
    from keras_efficientnet.pretrained.naming import flat_weights

    flat = ke.create_model(name, input_shape=(64, 64, 3), classifier_activation=None)
    blocks = ke.create_model(name, input_shape=(64, 64, 3), classifier_activation=None,
                             layout="blocks", bn_fold="never")
    randomize_weights(flat, seed=5)
    src, dst = flat_weights(flat), flat_weights(blocks)
    assert sorted(src) == sorted(dst)
    assert len(blocks.layers) < len(flat.layers)
    for key, variable in dst.items():
        variable.assign(src[key])
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    assert max_rel_diff(to_numpy(flat(x)), to_numpy(blocks(x))) < 1e-5


def test_keras_io_grad_cam_recipe():
    """keras.io "Grad-CAM class activation visualization": a model returning the last conv
    layer's activations and the predictions, then the class score's gradient with respect to
    those activations, pooled per channel. Same weights, same maps (TensorFlow's tape, as the
    recipe; the model part on every backend)."""
    ref, ours = pair("EfficientNetB0", input_shape=(128, 128, 3), classifier_activation=None)
    randomize_weights(ref, seed=4)
    ours.set_weights(ref.get_weights())
    # an image with structure: a bright square on a dark noisy background
    x = np.random.default_rng(6).uniform(0, 60, (1, 128, 128, 3)).astype("float32")
    x[:, 16:64, 64:112] += 180.0

    def grad_model(model):
        return keras.Model(model.inputs, [model.get_layer("top_activation").output, model.output])

    (conv_ref, pred_ref), (conv_ours, pred_ours) = (
        [to_numpy(t) for t in grad_model(m)(x)] for m in (ref, ours))
    assert conv_ours.shape == conv_ref.shape == (1, 4, 4, 1280)
    assert max_rel_diff(conv_ref, conv_ours) < 1e-5 and max_rel_diff(pred_ref, pred_ours) < 1e-5
    if BACKEND != "tensorflow":
        return
    import tensorflow as tf

    def heatmap(model):
        with tf.GradientTape() as tape:
            conv, preds = grad_model(model)(x)
            score = preds[:, int(np.argmax(pred_ref))]
        grads = tape.gradient(score, conv)
        pooled = tf.reduce_mean(grads, axis=(0, 1, 2))
        return grads.numpy(), (conv[0] @ pooled[..., tf.newaxis]).numpy()

    grads_ref, map_ref = heatmap(ref)
    grads_ours, map_ours = heatmap(ours)
    scale = np.abs(grads_ref).max()
    assert scale > 0 and np.ptp(grads_ref) > 0.5 * scale  # gradients that tell channels apart
    np.testing.assert_allclose(grads_ours / scale, grads_ref / scale, atol=1e-4)
    np.testing.assert_allclose(map_ours, map_ref, rtol=1e-4, atol=1e-4 * np.abs(map_ref).max())
