"""Parity with timm: every timm EfficientNet name we build, and its state dicts.

timm builds each reference with random weights and random BatchNorm statistics (running
mean/var, gamma, beta), in eval mode; its state dict goes to a ``.pth`` (or ``.safetensors``)
file, loads into our model by ``weights=path``, and both see the same input (NCHW for timm,
NHWC for us) after preprocessing (our models are built with ``include_preprocessing=False``).
Inputs are 64 px: even sizes make TF "same" padding asymmetric at stride 2, so the padding
convention is exercised. Parameter counts of every timm name are compared without allocating
timm's weights (``device="meta"``) against the converter's table and, for the models built
here, against our Keras models.
"""

from __future__ import annotations

import hashlib
import os
import sys

import keras
import numpy as np
import pytest

# (triton is kept out of the process by conftest.py)

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

import keras_efficientnet as ke  # noqa: E402
from conftest import max_rel_diff, rotate, to_numpy  # noqa: E402
from keras_efficientnet.layers import CondConv2D, CondConvMBConv  # noqa: E402
from keras_efficientnet.pretrained import registry  # noqa: E402
from keras_efficientnet.pretrained.convert import timm as timm_format  # noqa: E402
from keras_efficientnet.pretrained.convert.base import detect_format  # noqa: E402
from keras_efficientnet.specs import get_spec  # noqa: E402
from keras_efficientnet.specs.variants import TIMM_NAMES  # noqa: E402

RES = 64
TOL = 1e-4


def timm_reference(name: str, seed: int = 0):
    """A timm model with random weights and random BatchNorm statistics, in eval mode.

    The statistics are measured on random images and then jittered, and the last BatchNorm of
    every residual branch gets a small gamma: with plain random weights a deep network's
    activations grow block after block until timm's own float32 and float64 outputs differ by
    percents (efficientnetv2_rw_s), and a comparison at 1e-4 would measure that chaos, not the
    conversion. Gamma and beta are otherwise random.
    """
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in norms:
            bn.weight.uniform_(0.5, 1.5, generator=gen)
            bn.bias.normal_(0.0, 0.1, generator=gen)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batch
        for block in model.modules():
            if getattr(block, "has_skip", False):
                last_bn = [m for m in block.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
                last_bn.weight.uniform_(0.05, 0.2, generator=gen)
        model.train()
        model(torch.randn(4, 3, RES, RES, generator=gen))
        model.eval()
        for bn in norms:
            bn.running_var.mul_(torch.empty_like(bn.running_var).uniform_(0.8, 1.25, generator=gen))
            bn.running_var.clamp_(min=1e-2)
            bn.running_mean.add_(0.1 * bn.running_var.sqrt() * torch.randn(
                bn.running_mean.shape, generator=gen))
            bn.momentum = 0.1
    return model


def save_state_dict(model, path):
    state = model.state_dict()
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, str(path))
    return str(path)


def timm_logits(model, x_nchw):
    with torch.no_grad():
        return model(torch.from_numpy(x_nchw)).numpy()


def ours(name, weights, res=RES, **kwargs):
    return ke.create_model(name, weights=weights, input_shape=(res, res, 3),
                           include_preprocessing=False, classifier_activation=None, **kwargs)


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def torch_param_count(model):
    return int(sum(p.numel() for p in model.parameters()))


def keras_home_files(home):
    return [os.path.join(d, f) for d, _, files in os.walk(home) for f in files]


@pytest.fixture(scope="module")
def inputs():
    x = np.random.default_rng(7).normal(size=(2, 3, RES, RES)).astype("float32")
    return x, np.ascontiguousarray(x.transpose(0, 2, 3, 1))


# One per family: V1 timm-native, scaled tf_ B, Lite, EdgeTPU, CondConv, V2 (B0, S), V2 "rw".
# (Lite parity: test_named_weight_set_download_verify_load compares tf_efficientnet_lite0.)
PARITY = [
    ("efficientnet_b0", ".pth"),
    ("tf_efficientnet_b2", ".safetensors"),
    ("tf_efficientnet_es", ".pth"),
    ("tf_efficientnet_cc_b0_4e", ".pth"),
    ("tf_efficientnetv2_b0", ".pth"),
    ("efficientnetv2_rw_s", ".pth"),
]
SLOW_PARITY = [("tf_efficientnetv2_s", ".pth"), ("efficientnet_em", ".pth"),
               ("efficientnet_cc_b1_8e", ".bin"), ("efficientnetv2_rw_t", ".pth"),
               ("efficientnet_lite4", ".pth"), ("tf_efficientnet_el", ".safetensors")]


def _check_parity(name, suffix, tmp_path, inputs):
    x_nchw, x_nhwc = inputs
    reference = timm_reference(name, seed=len(name))
    path = save_state_dict(reference, tmp_path / f"{name}{suffix}")
    expected = timm_logits(reference, x_nchw)
    model = ours(name, path)
    got = to_numpy(model(x_nhwc, training=False))
    assert got.shape == expected.shape == (2, 1000)
    assert np.abs(expected).max() > 1e-2  # the logits are not trivially zero
    assert max_rel_diff(expected, got) < TOL, (name, max_rel_diff(expected, got))
    assert trainable_count(model) == torch_param_count(reference)
    return model, path, expected


# Quick suite: V1, CondConv and V2-B0 on every backend, the others on one backend each.
@pytest.mark.parametrize("name,suffix", rotate(PARITY, everywhere=(
    ("efficientnet_b0", ".pth"), ("tf_efficientnet_cc_b0_4e", ".pth"), ("tf_efficientnetv2_b0", ".pth")),
    among=("tensorflow", "jax", "torch")))
def test_timm_logits_and_params(name, suffix, tmp_path, inputs):
    _check_parity(name, suffix, tmp_path, inputs)


@pytest.mark.slow
@pytest.mark.parametrize("name,suffix", SLOW_PARITY)
def test_timm_logits_and_params_slow(name, suffix, tmp_path, inputs):
    _check_parity(name, suffix, tmp_path, inputs)


def test_padding_convention_matters(tmp_path, inputs):
    """The same tensors under the other convention (symmetric padding, eps 1e-5) give other
    logits: the parity tests above would catch a wrong convention."""
    x_nchw, x_nhwc = inputs
    reference = timm_reference("tf_efficientnet_lite0", seed=3)
    path = save_state_dict(reference, tmp_path / "lite0.pth")
    expected = timm_logits(reference, x_nchw)
    wrong = to_numpy(ours("efficientnet_lite0", path)(x_nhwc, training=False))
    assert max_rel_diff(expected, wrong) > 100 * TOL


def test_every_timm_name_params_and_tensors():
    """For every timm name: timm's parameter count and state-dict names/shapes equal the
    converter's table derived from our spec (timm weights on the meta device: no memory)."""
    assert {"efficientnet_b0", "tf_efficientnet_l2", "tf_efficientnet_cc_b1_8e", "efficientnet_el",
            "tf_efficientnetv2_xl", "efficientnetv2_rw_m", "tf_efficientnet_lite4"} <= set(TIMM_NAMES)
    for name in TIMM_NAMES:
        reference = timm.create_model(name, pretrained=False, device="meta")
        state = {k: tuple(v.shape) for k, v in reference.state_dict().items()
                 if not k.endswith("num_batches_tracked")}
        entries = timm_format.expected_tensors(get_spec(name), classes=1000)
        assert {src: tuple(shape) for src, _, _, shape in entries} == state, name
        bn_stats = sum(int(np.prod(s)) for k, s in state.items()
                       if k.endswith(("running_mean", "running_var")))
        ours_trainable = sum(int(np.prod(shape)) for _, _, _, shape in entries) - bn_stats
        assert ours_trainable == torch_param_count(reference), name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tf_efficientnet_b8", "tf_efficientnet_l2", "tf_efficientnetv2_xl",
                                  "efficientnetv2_l", "efficientnetv2_rw_m"])
def test_big_variant_param_counts(name):
    reference = timm.create_model(name, pretrained=False, device="meta")
    model = ke.create_model(name, input_shape=(64, 64, 3))
    assert trainable_count(model) == torch_param_count(reference)


def test_names_listed_and_constructors():
    names = ke.list_models()
    for name in ("efficientnet_b0", "tf_efficientnet_b0", "tf_efficientnet_lite0", "tf_efficientnet_es",
                 "tf_efficientnet_cc_b0_4e", "tf_efficientnetv2_s", "efficientnetv2_rw_s",
                 "EfficientNetB8", "EfficientNetL2", "EfficientNetEdgeTPUS", "EfficientNetCondConvB0_4E"):
        assert name in names
    assert get_spec("efficientnet_b0").padding == "symmetric" and get_spec("efficientnet_b0").bn_epsilon == 1e-5
    assert get_spec("tf_efficientnet_b0").padding == "same" and get_spec("tf_efficientnet_b0").bn_epsilon == 1e-3
    for constructor in ("EfficientNetB8", "EfficientNetL2", "EfficientNetEdgeTPUS", "EfficientNetEdgeTPUM",
                        "EfficientNetEdgeTPUL", "EfficientNetCondConvB0_4E", "EfficientNetCondConvB0_8E",
                        "EfficientNetCondConvB1_8E"):
        assert callable(getattr(ke, constructor))


# -- the converter's strictness and format detection ------------------------------------------

@pytest.fixture(scope="module")
def lite0_file(tmp_path_factory):
    reference = timm_reference("tf_efficientnet_lite0", seed=11)
    folder = tmp_path_factory.mktemp("timm_lite0")
    return reference, save_state_dict(reference, folder / "tf_efficientnet_lite0.pth")


@pytest.fixture(scope="module")
def lite0_model():
    return ours("tf_efficientnet_lite0", None, res=32)


def _load_fails(model, path, match):
    """Loading ``path`` raises ValueError(match) and leaves the model's weights untouched."""
    from keras_efficientnet.pretrained.loading import load_weights

    before = [to_numpy(w).copy() for w in model.weights]
    with pytest.raises(ValueError, match=match):
        load_weights(model, str(path), get_spec("tf_efficientnet_lite0"))
    assert all(np.array_equal(a, to_numpy(w)) for a, w in zip(before, model.weights))


def test_other_variant_checkpoint_is_rejected(tmp_path, keras_home, lite0_model):
    other = tmp_path / "b0.pth"
    save_state_dict(timm_reference("tf_efficientnet_b0", seed=5), other)
    _load_fails(lite0_model, other, r"not a timm tf_efficientnet_lite0 state dict.*"
                                    r"fit .*tf_efficientnet_b0")
    assert keras_home_files(keras_home) == []


def test_truncated_file_is_rejected(tmp_path, keras_home, lite0_file, lite0_model):
    reference, path = lite0_file
    data = open(path, "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    _load_fails(lite0_model, cut, "truncated")
    st = save_state_dict(reference, tmp_path / "full.safetensors")
    cut_st = tmp_path / "cut.safetensors"
    cut_st.write_bytes(open(st, "rb").read()[:5000])
    _load_fails(lite0_model, cut_st, "truncated")
    # and through a constructor, as users call it
    with pytest.raises(ValueError, match="truncated"):
        ours("tf_efficientnet_lite0", str(cut), res=32)
    assert keras_home_files(keras_home) == []


def test_pickle_that_is_not_a_state_dict(tmp_path, keras_home, lite0_model):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3), {"a": 1}], str(path))
    _load_fails(lite0_model, path, "not a state dict")
    assert keras_home_files(keras_home) == []


def test_unknown_extra_keys(tmp_path, keras_home, lite0_file, lite0_model):
    reference, _ = lite0_file
    state = dict(reference.state_dict())
    state["head.extra.weight"] = torch.zeros(4)
    path = tmp_path / "extra.pth"
    torch.save(state, str(path))
    _load_fails(lite0_model, path, r"no place for: head\.extra\.weight")
    assert keras_home_files(keras_home) == []


def test_wrapped_checkpoint_and_infer(tmp_path, lite0_file):
    reference, path = lite0_file
    wrapped = tmp_path / "train_ckpt.pth"
    torch.save({"epoch": 3, "state_dict": reference.state_dict()}, str(wrapped))
    assert detect_format(str(wrapped)) == "timm"
    info = timm_format.infer(path)
    assert info["variant"] == "tf_efficientnet_lite0" and info["classes"] == 1000
    assert set(info["candidates"]) == {"tf_efficientnet_lite0", "efficientnet_lite0"}


def test_sniff_does_not_take_torchvision_or_efficientnet_pytorch(tmp_path):
    import torchvision
    tv = tmp_path / "tv.pth"
    torch.save(torchvision.models.efficientnet_b0().state_dict(), str(tv))
    assert not timm_format.sniff(str(tv))
    assert detect_format(str(tv)) != "timm"
    ep = tmp_path / "ep.pth"
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3), "_bn0.weight": torch.zeros(32),
                "_blocks.0._depthwise_conv.weight": torch.zeros(32, 1, 3, 3)}, str(ep))
    assert not timm_format.sniff(str(ep))


def test_named_weight_set_download_verify_load(tmp_path, keras_home, lite0_file, inputs, monkeypatch):
    """A registered timm weight set goes through the download-verify-cache path (file:// URL
    with the sha256 prefix in its name, as timm's release files), loads, and matches timm; a
    file whose hash differs is refused and nothing is cached."""
    reference, path = lite0_file
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    good = registry.WeightSet(
        variant="tf_efficientnet_lite0", tag="test_in1k", source="test", format="timm",
        url="file://" + path, hash=sha[:8], hash_algorithm="sha256", preprocessing="inception",
        resolution=224)
    bad = registry.WeightSet(**{**good.__dict__, "tag": "test_bad", "hash": "0" * 8})
    monkeypatch.setitem(registry.REGISTRY, ("tf_efficientnet_lite0", "test_in1k"), good)
    monkeypatch.setitem(registry.REGISTRY, ("tf_efficientnet_lite0", "test_bad"), bad)
    with pytest.raises(ValueError, match="sha256"):
        ours("tf_efficientnet_lite0", "test_bad", res=32)
    assert keras_home_files(keras_home) == []
    model = ours("tf_efficientnet_lite0", "test_in1k")
    x_nchw, x_nhwc = inputs
    assert max_rel_diff(timm_logits(reference, x_nchw), to_numpy(model(x_nhwc))) < TOL
    assert len(keras_home_files(keras_home)) == 1


def test_registry_has_timm_sets():
    ws = registry.get_weights("tf_efficientnet_b0", "ns_jft_in1k")
    assert ws.format == "timm" and ws.hash_algorithm == "sha256" and len(ws.hash) == 8
    assert ws.preprocessing == "imagenet" and ws.top1 == 78.67
    assert registry.get_weights("tf_efficientnet_b0", "ap_in1k").preprocessing == "inception"
    assert registry.get_weights("efficientnet_b0", "ra_in1k").crop == 0.875
    assert registry.get_weights("tf_efficientnetv2_xl", "in21k").classes == 21843
    assert registry.get_weights("EfficientNetB8").tag == "ra_in1k"
    hf_only = registry.get_weights("efficientnet_b5", "sw_in12k_ft_in1k")
    assert hf_only.hash is None and hf_only.url.startswith("https://huggingface.co/timm/")
    # keras.applications stays the default of its variants
    assert registry.get_weights("EfficientNetB0").source == "keras.applications"


# -- the CondConv layer ------------------------------------------------------------------------

def test_condconv2d_mixes_experts_per_example():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 9, 9, 6)).astype("float32")
    routing = rng.uniform(size=(3, 4)).astype("float32")
    for depthwise, strides in ((False, 1), (True, 2)):
        layer = CondConv2D(5, 3, strides=strides, num_experts=4, depthwise=depthwise)
        y = to_numpy(layer(x, routing))
        kernels = to_numpy(layer.kernel)
        for b in range(3):
            kernel = np.tensordot(routing[b], kernels, axes=1)
            op = keras.ops.depthwise_conv if depthwise else keras.ops.conv
            ref = to_numpy(op(x[b:b + 1], kernel, strides=strides, padding="same"))
            np.testing.assert_allclose(y[b:b + 1], ref, atol=1e-5)


def test_condconv_block_config_and_channels_first():
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 8)).astype("float32")
    block = CondConvMBConv(16, kernel_size=5, strides=2, expand_filters=48, se_filters=2,
                           num_experts=3, padding="symmetric")
    y = to_numpy(block(x))
    clone = CondConvMBConv.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    if keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow's CPU Conv2D has no NCHW kernel (channels_first needs a GPU)")
    first = CondConvMBConv(16, kernel_size=5, strides=2, expand_filters=48, se_filters=2,
                           num_experts=3, padding="symmetric", data_format="channels_first")
    first.build((None, 8, 16, 16))
    for a, b in zip(first.weights, block.weights):
        a.assign(b)
    y_first = to_numpy(first(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    np.testing.assert_allclose(y_first.transpose(0, 2, 3, 1), y, atol=1e-5)
