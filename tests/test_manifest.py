"""The per-spec weight manifest (specs/manifest.py) against the graph the factory builds: the
same flat names, shapes and order, in both layouts, for every family; and the counts read
from it against Keras' own ``count_params()``."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_efficientnet as ke
from conftest import rotate
from keras_efficientnet.flops import count_params_spec
from keras_efficientnet.pretrained.naming import flat_weights
from keras_efficientnet.specs import get_spec
from keras_efficientnet.specs.manifest import KINDS, weight_manifest

#: one variant per family / convention the factory handles differently
VARIANTS = ["EfficientNetB0", "EfficientNetV2B0", "EfficientNetCondConvB0_4E", "EfficientNetLite0",
            "EfficientNetB3", "EfficientNetV2S", "EfficientNetEdgeTPUS", "tf_efficientnet_b0",
            "efficientnet_b0", "tv_efficientnet_b0", "tv_efficientnet_v2_s", "efficientnetv2_rw_t",
            "tf_efficientnet_cc_b0_8e", "EfficientNetV2B3"]
EVERYWHERE = ("EfficientNetB0", "EfficientNetV2B0")


def _build(name, **kwargs):
    return ke.create_model(name, weights=None, input_shape=(32, 32, 3), **kwargs)


@pytest.mark.parametrize("name", rotate([n for n in VARIANTS if n in ke.list_models()],
                                        everywhere=EVERYWHERE))
def test_manifest_is_the_built_graph(name):
    spec = get_spec(name)
    model = _build(name, classes=7)
    built = [(n, tuple(v.shape)) for n, v in flat_weights(model).items()]
    listed = [(e.name, e.shape) for e in weight_manifest(spec, classes=7, include_preprocessing=True)]
    assert len(built) > 50
    assert listed == built  # names, shapes and order
    trainable = {e.name for e in weight_manifest(spec, classes=7) if e.trainable}
    by_var = {id(v): n for n, v in flat_weights(model).items()}
    assert {by_var[id(v)] for v in model.trainable_weights} == trainable
    assert count_params_spec(spec, classes=7) == (
        model.count_params(), sum(int(np.prod(v.shape)) for v in model.trainable_weights))


@pytest.mark.parametrize("name", rotate(["EfficientNetB0", "EfficientNetCondConvB0_4E"]))
def test_blocks_layout_has_the_same_manifest(name):
    model = _build(name, include_top=False, layout="blocks", include_preprocessing=False)
    built = {n: tuple(v.shape) for n, v in flat_weights(model).items()}
    assert built == {e.name: e.shape for e in weight_manifest(get_spec(name))}


def test_entries_describe_themselves():
    entries = weight_manifest(get_spec("EfficientNetCondConvB0_4E"), classes=3, include_preprocessing=True)
    assert {e.kind for e in entries} <= set(KINDS)
    assert all(e.name == f"{e.layer}/{e.variable}" for e in entries)
    routing = [e for e in entries if e.kind == "routing"]
    assert routing and all(e.block.startswith("block") for e in routing)
    cc = [e for e in entries if e.block == routing[0].block and e.variable == "kernel"
          and e.kind in ("conv", "depthwise") and "_se_" not in e.layer]
    assert cc and all(e.shape[0] == 4 for e in cc)  # the expert axis leads
    assert [e.variable for e in entries[:3]] == ["mean", "variance", "count"]
    assert not any(e.trainable for e in entries if e.kind == "preprocessing" or "moving" in e.variable)
