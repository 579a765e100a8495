"""Parity with keras.applications: parameter counts and logits, every variant it has.

keras.applications builds each reference with random weights and random BatchNorm
statistics; they are written in the legacy .h5 layout of its published files and loaded into
our model by ``weights=path``. Inputs enter after the references' preprocessing layers (our
models are built with ``include_preprocessing=False``), at 32 px so every variant stays fast.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_efficientnet as ke
from conftest import max_rel_diff, randomize_weights, rotate, save_legacy_h5, to_numpy

RES = 32
KA_VARIANTS = [f"EfficientNetB{i}" for i in range(8)] + [
    f"EfficientNetV2{s}" for s in ("B0", "B1", "B2", "B3", "S", "M", "L")]
#: Quick suite: these on every backend, the larger ones (whose blocks are the same layers,
#: repeated) each on TensorFlow or PyTorch in turn; the full suite runs all on all.
EVERY_BACKEND = ("EfficientNetB0", "EfficientNetB1", "EfficientNetV2B0", "EfficientNetV2B1",
                 "EfficientNetV2S")


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def non_trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.non_trainable_weights))


def first_layer_after_preprocessing(ka_model, name):
    # V1 pads explicitly before the stem conv; V2 convolves with padding="same".
    return ka_model.get_layer("stem_conv_pad" if "V2" not in name else "stem_conv")


@pytest.mark.parametrize("name", rotate(KA_VARIANTS, EVERY_BACKEND, among=("tensorflow", "torch")))
def test_keras_applications_parity(name, tmp_path):
    reference = getattr(keras.applications, name)(
        weights=None, include_top=True, input_shape=(RES, RES, 3), classifier_activation=None)
    randomize_weights(reference, seed=KA_VARIANTS.index(name))
    start = first_layer_after_preprocessing(reference, name).input
    ref_top = keras.Model(start, reference.output)
    ref_notop = keras.Model(start, reference.get_layer("top_activation").output)
    reference_notop = keras.Model(reference.input, reference.get_layer("top_activation").output)
    top_file = save_legacy_h5(reference, str(tmp_path / "top.h5"))
    notop_file = save_legacy_h5(reference_notop, str(tmp_path / "notop.h5"))

    ours = getattr(ke, name)(weights=top_file, input_shape=(RES, RES, 3), classifier_activation=None,
                             include_preprocessing=False)
    ours_notop = getattr(ke, name)(weights=notop_file, include_top=False, input_shape=(RES, RES, 3),
                                   include_preprocessing=False)

    # Parameter counts: trainable exactly; non-trainable differ only by the 7 statistics of
    # keras.applications V1's Normalization layer (our preprocessing has no weights).
    preprocessing_stats = 7 if "V2" not in name else 0
    for ka_model, our_model in ((reference, ours), (reference_notop, ours_notop)):
        assert trainable_count(our_model) == trainable_count(ka_model)
        assert non_trainable_count(our_model) == non_trainable_count(ka_model) - preprocessing_stats

    x = np.random.default_rng(0).normal(0, 1, (2, RES, RES, 3)).astype("float32")
    expected = to_numpy(ref_top(x))
    got = to_numpy(ours(x))
    assert np.abs(expected).max() > 1e-2  # random weights give non-trivial logits
    assert max_rel_diff(expected, got) <= 1e-4
    assert max_rel_diff(to_numpy(ref_notop(x)), to_numpy(ours_notop(x))) <= 1e-4


def test_v2_xl_parameter_count():
    """V2-XL is not in keras.applications; automl's EfficientNetV2 publishes 208.9M."""
    model = ke.EfficientNetV2XL(weights=None, input_shape=(RES, RES, 3))
    assert round(model.count_params() / 1e6, 1) == 208.9


def test_preprocessing_matches_keras_applications(tmp_path):
    """With preprocessing in the graph, our 0-255 input path equals keras.applications' V2-B0
    (ImageNet mean/std) and V2-S (x/128 - 1) preprocessing."""
    rng = np.random.default_rng(3)
    pixels = rng.uniform(0, 255, (2, RES, RES, 3)).astype("float32")
    for name in ("EfficientNetV2B0", "EfficientNetV2S"):
        reference = getattr(keras.applications, name)(weights=None, input_shape=(RES, RES, 3),
                                                      classifier_activation=None)
        randomize_weights(reference, seed=5)
        path = save_legacy_h5(reference, str(tmp_path / f"{name}.h5"))
        ours = getattr(ke, name)(weights=path, input_shape=(RES, RES, 3), classifier_activation=None)
        assert max_rel_diff(to_numpy(reference(pixels)), to_numpy(ours(pixels))) <= 1e-4


def test_v1_preprocessing_is_imagenet_mean_std():
    """keras.applications V1 with ImageNet weights computes (x/255 - mean) / std (its Normalization
    layer with the published statistics, then a Rescaling by 1/sqrt(std)). Our layer must give
    the same numbers; the reference's arithmetic is reproduced here with its own layers."""
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    from keras_efficientnet.models.factory import preprocessing_layer, set_preprocessing

    pixels = np.random.default_rng(4).uniform(0, 255, (1, RES, RES, 3)).astype("float32")
    reference = keras.Sequential([
        keras.layers.Rescaling(1.0 / 255.0),
        keras.layers.Normalization(mean=mean, variance=std),  # published files store std here
        keras.layers.Rescaling([1.0 / np.sqrt(s) for s in std]),
    ])
    # ours: keras.applications' Rescaling + Normalization, with ImageNet statistics (as the
    # imagenet weights set them; variance = std**2, so no third layer is needed)
    model = ke.EfficientNetB0(weights=None, input_shape=(RES, RES, 3))
    set_preprocessing(model, "imagenet")
    ours = keras.Model(model.input, preprocessing_layer(model).output)
    np.testing.assert_allclose(to_numpy(ours(pixels)), to_numpy(reference(pixels)), atol=1e-5)
