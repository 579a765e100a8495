"""keras-hub's dense-prediction backbones take our encoders: create_feature_extractor's
``pyramid_outputs`` is the attribute keras-hub's RetinaNetBackbone and DeepLabV3Backbone read
from their ``image_encoder``. keras-hub is installed without its dependencies (it pulls the
full tensorflow wheel); the test skips when it is absent."""

import numpy as np
import pytest
import torch  # noqa: F401  (before TensorFlow)

import keras

from conftest import quick_on, to_numpy

from keras_efficientnet import EfficientNetB0
from keras_efficientnet.models.features import create_feature_extractor

keras_hub = pytest.importorskip("keras_hub")


def encoder():
    keras.utils.set_random_seed(0)
    base = EfficientNetB0(include_top=False, weights=None, input_shape=(128, 128, 3))
    return base, create_feature_extractor(base)


@quick_on("tensorflow", "jax")
def test_retinanet_backbone_takes_our_encoder():
    base, fx = encoder()
    assert sorted(fx.pyramid_outputs) == ["P1", "P2", "P3", "P4", "P5"]
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=fx, min_level=3, max_level=7,
                                                  use_p5=False, image_shape=(128, 128, 3))
    x = np.random.default_rng(0).uniform(0, 255, (2, 128, 128, 3)).astype("float32")
    out = backbone.predict_on_batch(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        f"P{level}": (2, 128 // 2 ** level, 128 // 2 ** level, 256) for level in range(3, 8)}
    # keras-hub's feature extractor is our encoder: its P5 is the keras.applications-named tap
    # (the last block's output, as timm's and smp's P5)
    p5 = keras.Model(base.input, base.get_layer("block7a_project_bn").output).predict_on_batch(x)
    inner = backbone.get_layer("backbone").predict_on_batch(x)
    np.testing.assert_allclose(to_numpy(inner["P5"]), to_numpy(p5), rtol=1e-5, atol=1e-5)


@quick_on("torch")
def test_deeplab_v3_backbone_takes_our_encoder():
    _, fx = encoder()
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=fx, spatial_pyramid_pooling_key="P4", upsampling_size=4,
        dilation_rates=[6, 12], low_level_feature_key="P2", image_shape=(128, 128, 3))
    out = backbone.predict_on_batch(np.zeros((1, 128, 128, 3), "float32"))
    assert tuple(out.shape)[:3] == (1, 128, 128)  # upsampled back to the input
