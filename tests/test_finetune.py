"""Fine-tuning: frozen BatchNorm keeps its statistics through fit, unfrozen blocks change, a new
head keeps the backbone; mixed precision trains without NaNs."""

import re

import keras
import numpy as np
import pytest

from conftest import BACKEND, quick_on, randomize_weights, to_numpy
from keras_efficientnet import build_efficientnet, get_spec
from keras_efficientnet.training.finetune import (freeze_backbone, reset_classifier, set_dropout,
                                                  unfreeze_top)

SPEC = get_spec("EfficientNetB0").replace(width=0.25, depth=0.1)  # 7 blocks
X = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
Y = np.arange(8) % 3


def _model(**kw):
    model = build_efficientnet(SPEC, input_shape=(32, 32, 3), classes=3, **kw)
    randomize_weights(model, seed=1)
    return model


def _snapshot(model):
    return {v.path: to_numpy(v).copy() for v in model.weights}


def _fit(model, steps=2):
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  run_eagerly=BACKEND == "jax")  # eager: skips a slow XLA compile for 2 steps
    model.fit(X, Y, batch_size=4, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)


def _owner(path):
    """The block (``block6a``) or top-level layer (``top_conv``) a weight belongs to."""
    first = path.split("/")[0]
    match = re.match(r"(block\d+[a-z]+)_", first)
    return match.group(1) if match else first


def _changed(before, model):
    return {v.path for v in model.weights if not np.array_equal(before[v.path], to_numpy(v))}


@pytest.fixture(scope="module")
def model():
    return _model()


def test_freeze_backbone_keeps_batchnorm_statistics(model):
    freeze_backbone(model)
    assert {w.path.split("/")[0] for w in model.trainable_weights} == {"predictions"}
    before = _snapshot(model)
    _fit(model)
    changed = _changed(before, model)
    assert changed == {"predictions/kernel", "predictions/bias"}
    # BatchNorm in inference mode: training=True gives the inference output (no dropout here)
    quiet = _model(dropout_rate=0.0, drop_connect_rate=0.0)
    freeze_backbone(quiet)
    np.testing.assert_allclose(to_numpy(quiet(X[:2], training=True)),
                               to_numpy(quiet(X[:2], training=False)), rtol=1e-5, atol=1e-6)


def test_unfreeze_top_blocks_change_batchnorm_stays(model):
    unfreeze_top(model, n_blocks=2)
    before = _snapshot(model)
    _fit(model)
    changed = _changed(before, model)
    blocks = sorted({_owner(p) for p in changed})
    assert blocks == ["block6a", "block7a", "predictions", "top_conv"], blocks
    for block in ("block6a", "block7a"):  # their convs changed, their BatchNorms did not
        assert any(p.startswith(f"{block}_dwconv/") for p in changed)
        assert not [p for p in changed if p.startswith(block) and "bn/" in p]
    assert not [p for p in changed if "moving_" in p or "gamma" in p or "beta" in p]


def test_unfreeze_from_block_and_all():
    model = _model()
    unfreeze_top(model, from_block="block5a", head_conv=False)
    trainable = {_owner(w.path) for w in model.trainable_weights}
    assert trainable == {"block5a", "block6a", "block7a", "predictions"}
    assert all("bn" not in w.path for w in model.trainable_weights)
    unfreeze_top(model)  # everything except BatchNorm
    n_bn = sum(1 for w in model.weights if "bn/" in w.path)
    n_norm = sum(1 for w in model.weights if w.path.startswith("normalization"))
    assert n_norm == 3  # the input Normalization's mean, variance and count: never trained
    assert len(model.non_trainable_weights) == n_bn + n_norm
    with pytest.raises(ValueError, match="No block"):
        unfreeze_top(model, from_block="block9z")
    with pytest.raises(ValueError, match="n_blocks"):
        unfreeze_top(model, n_blocks=99)


def test_nested_backbone():
    base = build_efficientnet(SPEC, include_top=False, input_shape=(32, 32, 3))
    outer = keras.Sequential([keras.Input((32, 32, 3)), base,
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    freeze_backbone(outer)
    assert len(outer.trainable_weights) == 2
    unfreeze_top(outer, n_blocks=1)
    assert {_owner(w.path) for w in outer.trainable_weights} >= {"block7a", "top_conv"}
    assert all("bn" not in w.path for w in outer.trainable_weights)


def test_reset_classifier_keeps_backbone(model):
    new = reset_classifier(model, 5, dropout_rate=0.0)
    assert new.output_shape == (None, 5)
    assert new.get_layer("block3a_dwconv") is model.get_layer("block3a_dwconv")
    pooled_old = keras.Model(model.input, model.get_layer("avg_pool").output)
    pooled_new = keras.Model(new.input, new.get_layer("avg_pool").output)
    np.testing.assert_allclose(to_numpy(pooled_old(X[:2])), to_numpy(pooled_new(X[:2])), rtol=1e-6)
    notop = build_efficientnet(SPEC, include_top=False, input_shape=(None, None, 3))
    assert reset_classifier(notop, 0).output_shape == (None, notop.output_shape[-1])
    assert reset_classifier(notop, 4, pooling="max").get_layer("max_pool") is not None
    assert set_dropout(reset_classifier(notop, 4, dropout_rate=0.1), 0.3).get_layer(
        "top_dropout").rate == 0.3


# Quick suite: bfloat16 on TensorFlow and PyTorch (on JAX, 5 minutes of eager bfloat16 ops).
@pytest.mark.parametrize("policy", [pytest.param("mixed_bfloat16", marks=quick_on("tensorflow", "torch")),
                                    pytest.param("mixed_float16", marks=pytest.mark.slow)])
def test_mixed_precision_trains(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = build_efficientnet(SPEC, input_shape=(32, 32, 3), classes=3, drop_connect_rate=0.2)
        assert model.get_layer("block2a_expand_conv").compute_dtype == policy.split("_")[1]
        optimizer = keras.optimizers.Adam(1e-3)
        if policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      run_eagerly=BACKEND == "jax")
        history = model.fit(X, Y, batch_size=4, epochs=1, steps_per_epoch=2, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        out = model(X[:2], training=False)
        # the classifier's dtype policy, as keras.applications' (tests/test_drop_in.py)
        assert keras.backend.standardize_dtype(out.dtype) == \
            model.get_layer("predictions").compute_dtype
        assert np.all(np.isfinite(to_numpy(out)))
        assert all(np.all(np.isfinite(to_numpy(w))) for w in model.weights)
        # variables stay float32 (the input Normalization's sample count is an integer)
        assert all(w.dtype == "float32" for w in model.weights if not w.path.endswith("/count"))
    finally:
        keras.config.set_dtype_policy(previous)
