"""Segmentation models against segmentation-models-pytorch 0.6 (the anchor): the same smp model,
random weights with well-conditioned BatchNorm/GroupNorm statistics, converted from its state
dict, gives smp's logits within 1e-4 at 64 px on every backend; plus bad input."""

import numpy as np
import pytest
import torch  # noqa: F401  (before TensorFlow)

import keras

from conftest import BACKEND, max_rel_diff, rotate, to_numpy

smp = pytest.importorskip("segmentation_models_pytorch")

from keras_efficientnet.segmentation import (FPN, Linknet, Unet, convert_smp_state_dict,  # noqa: E402
                                             load_smp_state_dict)

ARCHS = {"unet": ("Unet", Unet), "fpn": ("FPN", FPN), "linknet": ("Linknet", Linknet)}


def smp_model(arch, encoder, classes=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    net = getattr(smp, ARCHS[arch][0])(encoder, encoder_weights=None, classes=classes, **kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return net.eval()


def state_of(net):
    return {k: v.detach().numpy() for k, v in net.state_dict().items()}


def compare(arch, encoder, size=64, **kwargs):
    net = smp_model(arch, encoder, **kwargs.pop("smp_kwargs", {}))
    x = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype("float32")
    with torch.no_grad():
        ref = net(torch.tensor(x)).numpy()
    model = ARCHS[arch][1](encoder, input_shape=(size, size, 3), classes=3, activation=None,
                           **kwargs)
    load_smp_state_dict(model, state_of(net), encoder)
    out = to_numpy(model(np.transpose(x, (0, 2, 3, 1)), training=False))
    return max_rel_diff(ref, np.transpose(out, (0, 3, 1, 2)))


CASES = [("unet", "efficientnet-b0"), ("fpn", "efficientnet-b0"), ("unet", "efficientnet-b3"),
         ("fpn", "efficientnet-b3"), ("unet", "tu-tf_efficientnetv2_b0"),
         ("fpn", "tu-tf_efficientnetv2_b0"), ("unet", "timm-efficientnet-b0"),
         ("fpn", "tu-tf_efficientnet_b0"), ("linknet", "efficientnet-b0"),
         ("unet", "timm-efficientnet-b3")]


@pytest.mark.parametrize("arch,encoder", rotate(CASES, everywhere=[("unet", "efficientnet-b0")]))
def test_smp_parity(arch, encoder):
    assert compare(arch, encoder) < 1e-4


def test_efficientnet_pytorch_static_padding_matters():
    """smp's efficientnet-b3 pads its stride-2 5x5 convolutions for 300 px whatever the input:
    the TF-"same" padding a 64 px input would get gives other logits (so the parity above
    tests the padding table)."""
    from keras_efficientnet.segmentation import encoders

    pads = encoders.encoder_plan("efficientnet-b3").static_pads
    assert pads["block3a_dwconv_pad"] == ((2, 2), (2, 2))
    assert encoders.encoder_plan("efficientnet-b0").static_pads["block3a_dwconv_pad"] == ((1, 2), (1, 2))


@pytest.mark.parametrize("arch", rotate(["unet", "linknet"]))
def test_smp_parity_without_batchnorm_and_scse(arch):
    kwargs = {"decoder_use_batchnorm": False}
    smp_kwargs = {"decoder_use_norm": False}
    if arch == "unet":
        kwargs["decoder_attention_type"] = "scse"
        smp_kwargs["decoder_attention_type"] = "scse"
    assert compare(arch, "efficientnet-b0", smp_kwargs=smp_kwargs, **kwargs) < 1e-4


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow's CPU kernels run NHWC only")
def test_channels_first_matches_smp():
    net = smp_model("unet", "efficientnet-b0")
    x = np.random.default_rng(1).normal(size=(1, 3, 64, 64)).astype("float32")
    with torch.no_grad():
        ref = net(torch.tensor(x)).numpy()
    model = Unet("efficientnet-b0", input_shape=(3, 64, 64), classes=3, activation=None,
                 data_format="channels_first")
    load_smp_state_dict(model, state_of(net), "efficientnet-b0")
    assert max_rel_diff(ref, to_numpy(model(x, training=False))) < 1e-4


def test_saved_model_round_trip(tmp_path):
    model = FPN("EfficientNetB0", input_shape=(64, 64, 3), classes=2, pyramid_channels=32,
                segmentation_channels=32)
    x = np.random.default_rng(2).normal(size=(1, 64, 64, 3)).astype("float32")
    path = str(tmp_path / "fpn.keras")
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(again(x)), to_numpy(model(x)), atol=1e-5)


def test_input_not_divisible_by_32():
    with pytest.raises(ValueError, match="not divisible by 32.*Use e.g. \\(96, 64\\)"):
        Unet("EfficientNetB0", input_shape=(100, 64, 3))


def test_unknown_encoder():
    with pytest.raises(ValueError, match="Unknown encoder 'resnet34'"):
        Unet("resnet34", input_shape=(64, 64, 3))


def test_wrong_architecture_state_dict_names_tensors():
    net = smp_model("fpn", "efficientnet-b0")
    model = Unet("efficientnet-b0", input_shape=(64, 64, 3), classes=3)
    with pytest.raises(ValueError, match="has no place for: decoder.p"):
        convert_smp_state_dict(state_of(net), model, "efficientnet-b0")


def test_wrong_encoder_state_dict():
    net = smp_model("unet", "efficientnet-b0")
    model = Unet("efficientnet-b3", input_shape=(64, 64, 3), classes=3)
    with pytest.raises(ValueError, match="does not fit EfficientNetB3"):
        load_smp_state_dict(model, state_of(net), "efficientnet-b3")
