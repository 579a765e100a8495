"""EfficientDet against effdet 0.4.1 (rwightman's efficientdet-pytorch): the config table,
the converter, and class/box outputs of effdet models with random weights (BatchNorm
statistics well conditioned) on every backend."""

from __future__ import annotations

import torch  # noqa: F401  (before TensorFlow)

import numpy as np
import pytest

import keras

from conftest import quick_on, to_numpy

effdet = pytest.importorskip("effdet")

from keras_efficientnet.detection import (WeightedFusion, build_efficientdet, get_config,  # noqa: E402
                                          list_configs, load_effdet_weights)
from keras_efficientnet.detection.config import feat_sizes, fpn_nodes  # noqa: E402
from keras_efficientnet.pretrained.convert.effdet import convert_state_dict  # noqa: E402


def effdet_net(name, size, seed=0, num_classes=None):
    """An effdet EfficientDet at ``size`` px with every weight random (fusion weights and
    BatchNorm affine and statistics included) and random prediction biases.

    Every weight follows from ``seed``: effdet initialises its convolutions from torch's
    global generator, whose state otherwise depends on which tests ran before (a fixture that
    changed with the test order once put an NMS near-tie into the full-suite run only), so the
    construction runs on a forked, seeded generator and leaves the global one as it was."""
    cfg = effdet.get_efficientdet_config(name)
    cfg.image_size = (size, size)
    if num_classes:
        cfg.num_classes = num_classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = effdet.EfficientDet(cfg, pretrained_backbone=False).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if n.endswith("edge_weights"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif n.endswith("predict.conv_pw.bias"):
                p.copy_(torch.randn(p.shape, generator=g))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return net, cfg


def effdet_outputs(net, cfg, x_nchw):
    with torch.no_grad():
        cls, box = net(torch.from_numpy(x_nchw))
    b, c = x_nchw.shape[0], cfg.num_classes
    cls = torch.cat([t.permute(0, 2, 3, 1).reshape(b, -1, c) for t in cls], 1).numpy()
    box = torch.cat([t.permute(0, 2, 3, 1).reshape(b, -1, 4) for t in box], 1).numpy()
    return cls, box


@pytest.mark.parametrize("name", list_configs())
def test_config_table_matches_effdet(name):
    ref = effdet.get_efficientdet_config(name)
    ours = get_config(name)
    assert ours.backbone == ref.backbone_name
    assert ours.image_size == tuple(ref.image_size)
    assert (ours.fpn_channels, ours.fpn_cell_repeats, ours.box_class_repeats) == \
        (ref.fpn_channels, ref.fpn_cell_repeats, ref.box_class_repeats)
    assert (ours.min_level, ours.max_level, ours.num_scales) == (ref.min_level, ref.max_level, ref.num_scales)
    assert [tuple(a) for a in ref.aspect_ratios] == list(ours.aspect_ratios)
    assert ours.anchor_scale == ref.anchor_scale and ours.num_classes == ref.num_classes
    assert ours.redundant_bias == ref.redundant_bias and ours.separable_conv == ref.separable_conv
    assert ours.apply_resample_bn == ref.apply_resample_bn
    assert ref.pad_type == "same" and ref.downsample_type == "max" and ref.upsample_type == "nearest"
    assert not ref.conv_bn_relu_pattern and not ref.head_bn_level_first
    assert ours.act_type == ref.act_type and ours.bn_epsilon == ref.norm_kwargs["eps"]
    assert ours.bn_momentum == pytest.approx(1 - ref.norm_kwargs["momentum"])
    method = {"bifpn_sum": "sum", None: "fastattn", "bifpn_fa": "fastattn"}[ref.fpn_name]
    assert ours.weight_method == method
    fpn = effdet.config.get_fpn_config(ref.fpn_name, ref.min_level, ref.max_level)
    assert [{"level": n["feat_level"], "inputs": list(n["inputs_offsets"])} for n in fpn.nodes] == \
        fpn_nodes(ours.min_level, ours.max_level)
    assert (ours.max_detection_points, ours.max_det_per_image) == \
        (ref.max_detection_points, ref.max_det_per_image)
    assert tuple(ref.get("mean", ours.mean)) == ours.mean
    assert feat_sizes((100, 60), 7) == [tuple(s) for s in effdet.anchors.get_feat_sizes((100, 60), 7)]


def test_names_and_errors():
    assert get_config("EfficientDetD3") is get_config("d3") is get_config("tf_efficientdet_d3")
    with pytest.raises(ValueError, match="Unknown EfficientDet 'd9'"):
        get_config("d9")
    with pytest.raises(ValueError, match="divisible by 128"):
        build_efficientdet("d0", input_shape=(100, 128, 3))
    with pytest.raises(ValueError, match="num_classes"):
        build_efficientdet("d0", num_classes=0, input_shape=(128, 128, 3))


def test_weighted_fusion(rng):
    a, b, c = (rng.normal(size=(2, 3, 3, 4)).astype("float32") for _ in range(3))
    layer = WeightedFusion()
    out = layer([a, b, c])
    w = np.array([0.7, -0.2, 1.3], "float32")
    layer.edge_weights.assign(w)
    r = np.maximum(w, 0)
    expect = (a * r[0] + b * r[1] + c * r[2]) / (r.sum() + 1e-4)
    np.testing.assert_allclose(to_numpy(layer([a, b, c])), expect, rtol=1e-5, atol=1e-6)
    assert out.shape == a.shape
    np.testing.assert_allclose(to_numpy(WeightedFusion("sum")([a, b])), a + b, rtol=1e-6)
    clone = WeightedFusion.from_config(layer.get_config())
    assert clone.weight_method == "fastattn" and clone.epsilon == 1e-4
    with pytest.raises(ValueError, match="weight_method"):
        WeightedFusion("max")


def test_converter_rejects_other_files():
    net, _ = effdet_net("tf_efficientdet_d0", 128)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match="the backbone is not tf_efficientnet_b1"):
        convert_state_dict(state, "d1")
    bad = dict(state, **{"fpn.extra.weight": np.zeros(3, "float32")})
    with pytest.raises(ValueError, match="no place in an EfficientDet: fpn.extra.weight"):
        convert_state_dict(bad, "d0")
    model = build_efficientdet("d0", num_classes=5, input_shape=(128, 128, 3))
    with pytest.raises(ValueError, match="shapes differ for class_net_predict"):
        load_effdet_weights(model, net.state_dict())


#: D0 everywhere; D7 (the largest, B6 encoder, 384-wide BiFPN) on TensorFlow and D3 on PyTorch
#: and JAX in the quick suite, so every backend checks D0 and one other; all on all in the full.
PARITY = ["tf_efficientdet_d0",
          pytest.param("tf_efficientdet_d7", marks=quick_on("tensorflow")),
          pytest.param("tf_efficientdet_d3", marks=quick_on("torch", "jax"))]


@pytest.mark.parametrize("name", PARITY)
def test_effdet_parity(name):
    """Class and box outputs of effdet's model and ours, same random weights, 128 px."""
    size = 128
    net, cfg = effdet_net(name, size)
    x = np.random.default_rng(1).normal(size=(2, 3, size, size)).astype("float32")
    ref_cls, ref_box = effdet_outputs(net, cfg, x)
    assert ref_cls.std() > 0.3 and ref_box.std() > 0.02  # outputs that depend on the input
    model = build_efficientdet(name, input_shape=(size, size, 3), include_preprocessing=False)
    load_effdet_weights(model, net.state_dict())
    out = model(x.transpose(0, 2, 3, 1), training=False)
    np.testing.assert_allclose(to_numpy(out["classes"]), ref_cls, rtol=0, atol=1e-4)
    np.testing.assert_allclose(to_numpy(out["boxes"]), ref_box, rtol=0, atol=1e-4)
