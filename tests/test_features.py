"""Multi-scale features: levels derived from the specs, shapes at a non-square input, and the
outputs equal to the full model's intermediate activations (keras.applications as reference
for V2; for V1/Lite the full model's own layers applied one by one, eagerly)."""

import math

import keras
import numpy as np
import pytest

from conftest import max_rel_diff, randomize_weights, save_legacy_h5, to_numpy
from keras_efficientnet import build_efficientnet, list_models
from keras_efficientnet.models.features import create_feature_extractor, feature_info
from keras_efficientnet.specs import get_spec, resolve

H, W = 64, 96  # non-square


def families():
    names = list_models()
    fams = {"v1": "EfficientNetB0", "v2": "EfficientNetV2B0", "lite": "EfficientNetLite0"}
    for key in ("EdgeTPU", "CondConv"):
        found = [n for n in names if key.lower() in n.lower()]
        fams[key.lower()] = found[0] if found else None
    return fams


@pytest.mark.parametrize("name", list_models())
def test_feature_info_every_variant(name):
    infos = feature_info(name)
    resolved = resolve(get_spec(name))
    assert [f.reduction for f in infos] == [2, 4, 8, 16, 32]
    assert [f.name for f in infos] == ["P1", "P2", "P3", "P4", "P5"]
    # independent of features.py: the cumulative stride of each block from the resolved spec
    by_name = {b.name: b for b in resolved.blocks}
    stride, last_at = 2, {}
    for block in resolved.blocks:
        stride *= block.stride
        last_at[stride] = block.name
    for info in infos:
        assert info.block == last_at[info.reduction]
        block = by_name[info.block]
        assert info.channels == block.out_channels
        assert 2 ** info.level == info.reduction
        # the flat graph's last layer of that block (keras.applications' naming)
        last = ("_add" if block.skip else "_project_activation"
                if block.kind == "fu" and block.hidden_channels is None else "_project_bn")
        assert info.layer == info.block + last


def test_feature_info_known_layers():
    # timm's features_only for efficientnet_b0 / tf_efficientnetv2_s: blocks.0,1,2,4,6 / 0,1,2,4,5
    assert [f.block for f in feature_info("EfficientNetB0")] == \
        ["block1a", "block2b", "block3b", "block5c", "block7a"]
    # the taps detectors read from keras.applications' EfficientNetB0
    assert [f.layer for f in feature_info("EfficientNetB0")] == \
        ["block1a_project_bn", "block2b_add", "block3b_add", "block5c_add", "block7a_project_bn"]
    assert [f.channels for f in feature_info("EfficientNetV2S")] == [24, 48, 64, 160, 256]
    assert [f.block for f in feature_info("EfficientNetV2S")] == \
        ["block1b", "block2d", "block3d", "block5i", "block6o"]
    assert [f.channels for f in feature_info("EfficientNetLite0")] == [16, 24, 40, 112, 320]


def _tiny(name):
    return get_spec(name).replace(width=0.25, depth=0.1)


def _check_shapes(out, infos, batch=1):
    assert list(out) == [f.name for f in infos]
    for info in infos:
        assert tuple(out[info.name].shape) == (batch, math.ceil(H / info.reduction),
                                               math.ceil(W / info.reduction), info.channels)


def _last_ka_layers(ref, infos):
    """keras.applications' layers of the same names: the last layer of each block."""
    for i in infos:
        assert [l for l in ref.layers if l.name.startswith(i.block + "_")][-1].name == i.layer
    return [ref.get_layer(i.layer) for i in infos]


@pytest.mark.parametrize("family", ["v1", "lite", "v2", "edgetpu", "condconv"])
def test_extractor_shapes_every_family(family):
    """Strides and channels at a non-square input, from the graph (no compile)."""
    name = families()[family]
    if name is None:
        pytest.skip(f"no {family} variant registered yet")
    spec = _tiny(name)
    model = build_efficientnet(spec, include_top=False, input_shape=(H, W, 3))
    fx = create_feature_extractor(model, spec=spec)
    infos = feature_info(spec)
    _check_shapes(fx.output, infos, batch=None)
    for info in infos:
        assert fx.get_layer(info.layer) is model.get_layer(info.layer)
    free = create_feature_extractor(spec, out_names=("P5",))  # built from the spec: free size
    assert free.input_shape == (None, None, None, 3)
    assert free.output["P5"].shape[-1] == infos[-1].channels


@pytest.mark.parametrize("family", [pytest.param("v1", marks=pytest.mark.slow), "v2"])
def test_extractor_matches_keras_applications(family, tmp_path):
    """Our P1..P5 at a non-square input equal keras.applications' intermediate outputs for the
    same (random) weights; the extractor shares the model's layers."""
    x = np.random.default_rng(1).uniform(0, 1, (1, H, W, 3)).astype("float32")
    if family == "v1":
        from keras.src.applications.efficientnet import EfficientNet
        ref = EfficientNet(0.25, 0.1, 64, weights=None, include_top=False,
                           input_shape=(None, None, 3), name="ref")
        ref_x = x * 255.0  # its Rescaling(1/255) + un-adapted Normalization give back x
    else:
        from keras.src.applications.efficientnet_v2 import DEFAULT_BLOCKS_ARGS, EfficientNetV2
        ref = EfficientNetV2(0.25, 0.1, 64, blocks_args=DEFAULT_BLOCKS_ARGS["efficientnetv2-b0"],
                             weights=None, include_top=False, input_shape=(None, None, 3),
                             include_preprocessing=False, name="ref")
        ref_x = x
    randomize_weights(ref, seed=5)
    path = save_legacy_h5(ref, str(tmp_path / "ref.h5"))
    spec = _tiny(families()[family])
    model = build_efficientnet(spec, include_top=False, weights=path, include_preprocessing=False,
                               input_shape=(None, None, 3))
    fx = create_feature_extractor(model, spec=spec)
    infos = feature_info(spec)
    for info in infos:
        assert fx.get_layer(info.layer) is model.get_layer(info.layer)  # shared, same weights
    ref_fx = keras.Model(ref.input, [l.output for l in _last_ka_layers(ref, infos)])
    ours = fx.predict(x, verbose=0)
    _check_shapes(ours, infos)
    for info, theirs in zip(infos, ref_fx.predict(ref_x, verbose=0)):
        assert max_rel_diff(ours[info.name], theirs) < 1e-4, info


@pytest.mark.parametrize("family", ["lite", pytest.param("edgetpu", marks=pytest.mark.slow),
                                    pytest.param("condconv", marks=pytest.mark.slow)])
def test_extractor_values_equal_model_layers(family):
    name = families()[family]
    if name is None:
        pytest.skip(f"no {family} variant registered yet")
    spec = _tiny(name)
    model = build_efficientnet(spec, include_top=False, input_shape=(None, None, 3),
                               layout="blocks")
    randomize_weights(model, seed=3)
    fx = create_feature_extractor(model, spec=spec)
    infos = feature_info(spec)
    # Reference: the composite model's layers re-applied as a plain chain on a fresh input.
    inp = keras.Input((None, None, 3))
    y, seen = inp, {}
    for layer in model.layers[1:]:
        y = layer(y)
        seen[layer.name] = y
    chain = keras.Model(inp, [seen[i.block] for i in infos])
    x = np.random.default_rng(0).uniform(0, 255, (1, H, W, 3)).astype("float32")
    out = fx.predict(x, verbose=0)
    _check_shapes(out, infos)
    for info, ref in zip(infos, chain.predict(x, verbose=0)):
        np.testing.assert_allclose(out[info.name], ref, rtol=1e-5, atol=1e-5)
    # the default flat graph, given the composite model's weights by flat name, gives the same
    # features (from keras.applications-named layers)
    from keras_efficientnet.pretrained.naming import finalize_preprocessing, flat_weights

    flat = build_efficientnet(spec, include_top=False, input_shape=(None, None, 3))
    source = flat_weights(model)
    targets = flat_weights(flat)
    assert set(targets) == set(source)
    for key, variable in targets.items():
        variable.assign(source[key])
    finalize_preprocessing(flat)
    flat_out = create_feature_extractor(flat, spec=spec).predict(x, verbose=0)
    for info in infos:
        assert flat.get_layer(info.layer) is not None
        np.testing.assert_allclose(flat_out[info.name], out[info.name], rtol=1e-5, atol=1e-5)


def test_extractor_selection_and_errors():
    spec = _tiny("EfficientNetB0")
    model = build_efficientnet(spec, include_top=False, input_shape=(None, None, 3))
    fx = create_feature_extractor(model, out_names=("P3", "P5"), spec=spec)
    assert list(fx.output) == ["P3", "P5"] if isinstance(fx.output, dict) else True
    assert list(create_feature_extractor(model, out_indices=(-1,), spec=spec).output) == ["P5"]
    with pytest.raises(ValueError, match="Unknown feature names"):
        create_feature_extractor(model, out_names=("P7",), spec=spec)
    with pytest.raises(ValueError, match="spec"):
        create_feature_extractor(model)  # a custom width: the name alone would mislead
