"""FLOP (multiply-add) counting: published figures, an independent counter, model vs spec."""

import os

import pytest

import keras_efficientnet as ke
from keras_efficientnet.flops import count_flops, count_flops_spec, count_params_spec

# Published multiply-adds (papers: EfficientNet table 2, EfficientNetV2 table 7), rounded.
PUBLISHED = [("EfficientNetB0", 224, 0.39e9), ("EfficientNetB7", 600, 37e9),
             ("EfficientNetV2S", 384, 8.8e9)]


@pytest.mark.parametrize("name,resolution,published", PUBLISHED)
def test_published_figures_within_5_percent(name, resolution, published):
    macs = count_flops_spec(name, resolution)
    assert abs(macs - published) / published < 0.05, (name, macs)


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "torch",
                    reason="backend-independent (pure torch); run once, under the torch backend "
                           "(torch's triton import crashes a process that holds TensorFlow)")
@pytest.mark.parametrize("timm_name,ours,resolution", [
    ("tf_efficientnet_b0", "EfficientNetB0", 224),
    ("tf_efficientnetv2_s", "EfficientNetV2S", 384),
    ("tf_efficientnet_lite0", "EfficientNetLite0", 224),
    ("tf_efficientnet_b3", "EfficientNetB3", 300),
    ("tf_efficientnet_es", "tf_efficientnet_es", 224),
    ("tf_efficientnet_cc_b0_4e", "tf_efficientnet_cc_b0_4e", 224),
])
def test_spec_count_equals_torch_flop_counter_on_timm(timm_name, ours, resolution):
    """torch's FlopCounterMode on timm's model (meta device: nothing is computed) counts
    2 FLOPs per multiply-add of convolutions and linear layers: exactly our convention."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = timm.create_model(timm_name).eval()
        x = torch.empty(1, 3, resolution, resolution)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    assert count_flops_spec(ours, resolution) == counter.get_total_flops() // 2


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "torch",
                    reason="backend-independent (pure torch); run once, under the torch backend")
def test_spec_count_equals_torch_flop_counter_for_every_timm_name():
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from torch.utils.flop_counter import FlopCounterMode

    wrong = []
    for name in [n for n in ke.list_models() if n in set(timm.list_models())]:
        resolution = ke.get_spec(name).resolution
        with torch.device("meta"):
            model = timm.create_model(name).eval()
            x = torch.empty(1, 3, resolution, resolution)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
        if count_flops_spec(name) != counter.get_total_flops() // 2:
            wrong.append(name)
    assert not wrong


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "torch",
                    reason="backend-independent (pure torch); run once, under the torch backend")
@pytest.mark.parametrize("subset", [
    pytest.param("fast", id="one-per-kind"),
    pytest.param("all", id="every-timm-name", marks=pytest.mark.slow),
])
def test_trainable_params_equal_timm(subset):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    names = [n for n in ke.list_models() if n in set(timm.list_models())]
    assert len(names) > 40
    if subset == "fast":
        names = ["tf_efficientnet_b2", "efficientnet_lite1", "tf_efficientnet_el",
                 "tf_efficientnet_cc_b1_8e", "tf_efficientnetv2_b3", "efficientnetv2_rw_s"]
    wrong = []
    for name in names:
        with torch.device("meta"):
            model = timm.create_model(name)
        theirs = sum(p.numel() for p in model.parameters())
        if count_params_spec(name)[1] != theirs:
            wrong.append((name, theirs, count_params_spec(name)[1]))
    assert not wrong


# count_flops reads only layer shapes, identical on every backend; building models is slowest
# under JAX, so the model-reading checks run under TensorFlow and PyTorch.
needs_fast_build = pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") == "jax",
                                      reason="shape-only check, run under tensorflow and torch "
                                             "(model builds are slowest under JAX)")


@pytest.fixture(scope="module")
def small_b0():
    return ke.EfficientNetB0(weights=None, input_shape=(64, 64, 3), classes=10)


@needs_fast_build
def test_model_count_equals_spec_count_v1(small_b0):
    total, per_layer = count_flops(small_b0, by_layer=True)
    assert total == count_flops_spec("EfficientNetB0", 64, classes=10)
    assert small_b0.count_params() == count_params_spec("EfficientNetB0", classes=10)[0]
    names = [name for name, _ in per_layer]
    assert "stem_conv" in names and "predictions" in names
    assert "block2a_dwconv" in names and "block2a_se_reduce" in names


@pytest.mark.parametrize("name", ["EfficientNetB0", "EfficientNetV2B0"])
def test_blocks_layout_counts_the_same(name):
    """The composite layout walks its blocks' sublayers (SE on the pooled tensor) and must
    give the flat graph's count."""
    blocks = ke.create_model(name, input_shape=(64, 64, 3), classes=10, layout="blocks")
    assert count_flops(blocks) == count_flops_spec(name, 64, classes=10)


@needs_fast_build
def test_model_count_equals_spec_count_v2_no_top():
    model = ke.EfficientNetV2B0(weights=None, include_top=False, input_shape=(96, 96, 3), pooling="avg")
    assert count_flops(model) == count_flops_spec("EfficientNetV2B0", 96, include_top=False)


@needs_fast_build
@pytest.mark.parametrize("name", ["EfficientNetCondConvB0_4E", "tf_efficientnet_es"])
def test_model_counts_equal_spec_counts_condconv_edgetpu(name):
    model = ke.create_model(name, input_shape=(64, 64, 3))
    assert count_flops(model) == count_flops_spec(name, 64)
    trainable = sum(_size(w) for w in model.trainable_weights)
    assert (model.count_params(), trainable) == count_params_spec(name)


def _size(variable):
    size = 1
    for dim in variable.shape:
        size *= int(dim)
    return size


@needs_fast_build
def test_unknown_input_size_is_a_value_error():
    shallow = ke.get_spec("EfficientNetB0").replace(name="shallow", depth=0.1, width=0.25)
    model = ke.build_efficientnet(shallow, include_top=False)
    with pytest.raises(ValueError, match="fixed input size"):
        count_flops(model)


def test_bad_resolution_is_a_value_error():
    with pytest.raises(ValueError, match="positive"):
        count_flops_spec("EfficientNetB0", -3)
