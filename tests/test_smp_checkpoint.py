"""smp checkpoints a user trained load with ``from_checkpoint`` (the segmentation one and the
package's top-level one): smp 0.6's own ``save_pretrained`` folders, bare ``torch.save`` state
dicts and Lightning-style training checkpoints, with nothing said about the model; the loaded
model gives smp's logits within 1e-4 (the anchor's forward pass, random weights with
well-conditioned BatchNorm statistics). Plus what cannot be told from a file, and bad input."""

import json
import os

import numpy as np
import pytest
import torch

from conftest import max_rel_diff, rotate, to_numpy

smp = pytest.importorskip("segmentation_models_pytorch")

import keras_efficientnet as ke  # noqa: E402
from keras_efficientnet import segmentation as seg  # noqa: E402
from test_segmentation import smp_model  # noqa: E402

SIZE = 64


def smp_logits(net, x_nhwc):
    with torch.no_grad():
        out = net(torch.tensor(np.transpose(x_nhwc, (0, 3, 1, 2)))).numpy()
    return np.transpose(out, (0, 2, 3, 1))


def check_parity(model, net, channels=3):
    x = np.random.default_rng(1).normal(size=(1, SIZE, SIZE, channels)).astype("float32")
    ref = smp_logits(net, x)
    out = to_numpy(model(x, training=False))
    assert out.shape == ref.shape
    assert np.abs(ref).max() > 1e-2  # a live output, not zeros
    assert max_rel_diff(ref, out) < 1e-4


CASES = [
    # (smp class, encoder, smp kwargs, how it is saved)
    ("unet", "efficientnet-b0", {"decoder_attention_type": "scse", "classes": 4}, "pth"),
    ("fpn", "timm-efficientnet-b1", {"decoder_merge_policy": "cat", "classes": 2}, "pretrained"),
    ("linknet", "efficientnet-b3", {"classes": 3}, "lightning"),
    ("unet", "tu-tf_efficientnetv2_b0", {"decoder_channels": (64, 32, 32, 16, 8),
                                          "classes": 2}, "pretrained"),
    ("fpn", "efficientnet-b0", {"decoder_pyramid_channels": 64,
                                "decoder_segmentation_channels": 32, "classes": 5},
     "safetensors"),
    ("unet", "timm-efficientnet-b0", {"decoder_use_norm": False, "in_channels": 1,
                                      "classes": 1}, "pth"),
]


def save(net, how, tmp_path):
    if how == "pretrained":
        folder = str(tmp_path / "smp_model")
        net.save_pretrained(folder)
        return folder
    state = net.state_dict()
    if how == "pth":
        path = str(tmp_path / "model.pth")
        torch.save(state, path)
    elif how == "safetensors":
        from safetensors.torch import save_file

        path = str(tmp_path / "model.safetensors")
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:  # PyTorch Lightning: {"state_dict": {"model.<key>": ...}} plus a loss module's tensor
        path = str(tmp_path / "epoch=3.ckpt")
        wrapped = {f"model.{k}": v for k, v in state.items()}
        wrapped["criterion.pos_weight"] = torch.ones(1)
        torch.save({"epoch": 3, "global_step": 120, "state_dict": wrapped}, path)
    return path


@pytest.mark.parametrize("arch,encoder,kwargs,how",
                         rotate(CASES, everywhere=[CASES[0]]))
def test_from_checkpoint_matches_smp(arch, encoder, kwargs, how, tmp_path):
    kwargs = dict(kwargs)
    classes = kwargs.pop("classes")
    net = smp_model(arch, encoder, classes=classes, **kwargs)
    path = save(net, how, tmp_path)
    backbone = encoder if (encoder.startswith("tu-") and how != "pretrained") else None
    info = ke.inspect_checkpoint(path) if backbone is None else seg.inspect_checkpoint(path, backbone)
    assert (info["format"], info["architecture"], info["encoder"], info["classes"]) == (
        "smp", arch, encoder, classes)
    channels = kwargs.get("in_channels", 3)
    model = ke.from_checkpoint(path, input_shape=(SIZE, SIZE, channels), backbone_name=backbone)
    assert model.name == f"{arch}_{encoder}".replace("-", "_")
    check_parity(model, net, channels)


def test_free_size_default_and_activation(tmp_path):
    net = smp_model("unet", "efficientnet-b0", classes=2)
    path = save(net, "pth", tmp_path)
    model = seg.from_checkpoint(path)
    assert model.input_shape == (None, None, None, 3)
    check_parity(model, net)  # "auto": smp's default activation, logits
    soft = seg.from_checkpoint(path, input_shape=(SIZE, SIZE, 3), activation="softmax")
    x = np.random.default_rng(1).normal(size=(1, SIZE, SIZE, 3)).astype("float32")
    ref = smp_logits(net, x)
    ref = np.exp(ref - ref.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    assert max_rel_diff(ref, to_numpy(soft(x, training=False))) < 1e-4


def test_pretrained_folder_activation_is_kept(tmp_path):
    net = smp_model("fpn", "efficientnet-b0", classes=3, activation="sigmoid")
    folder = save(net, "pretrained", tmp_path)
    model = seg.from_checkpoint(folder, input_shape=(SIZE, SIZE, 3))
    check_parity(model, net)
    out = to_numpy(model(np.zeros((1, SIZE, SIZE, 3), "float32"), training=False))
    assert out.min() >= 0 and out.max() <= 1


def test_tu_encoder_without_config_names_the_choices(tmp_path):
    net = smp.Unet("tu-tf_efficientnet_b0", encoder_weights=None, classes=2)
    path = save(net, "pth", tmp_path)
    with pytest.raises(ValueError, match=r"'tu-efficientnet_b0'.*'tu-tf_efficientnet_b0'.*"
                                         r"backbone_name"):
        ke.from_checkpoint(path)
    info = seg.inspect_checkpoint(path, backbone_name="tu-tf_efficientnet_b0")
    assert info["encoder"] == "tu-tf_efficientnet_b0"


def test_wrong_backbone_name_is_refused_by_the_tensors(tmp_path):
    path = save(smp.Unet("efficientnet-b0", encoder_weights=None, classes=2), "pth", tmp_path)
    with pytest.raises(ValueError, match="encoder|tensor|shape"):
        seg.from_checkpoint(path, input_shape=(SIZE, SIZE, 3), backbone_name="efficientnet-b1")


@pytest.mark.parametrize("case", ["aux", "depth", "psp", "channels", "interp"])
def test_unsupported_smp_models_say_what(case, tmp_path):
    if case == "aux":
        net = smp.Unet("efficientnet-b0", encoder_weights=None, classes=2,
                       aux_params={"classes": 3})
        path, match = save(net, "pth", tmp_path), "aux_params"
    elif case == "depth":
        net = smp.Unet("efficientnet-b0", encoder_weights=None, classes=2, encoder_depth=4,
                       decoder_channels=(64, 32, 16, 8))
        path, match = save(net, "pretrained", tmp_path), "encoder_depth=4"
    elif case == "psp":
        net = smp.PSPNet("efficientnet-b0", encoder_weights=None, classes=2)
        path, match = save(net, "pretrained", tmp_path), "PSPNet"
    elif case == "interp":
        net = smp.Unet("efficientnet-b0", encoder_weights=None, classes=2,
                       decoder_interpolation="bilinear")
        path, match = save(net, "pretrained", tmp_path), "decoder_interpolation='bilinear'"
    else:
        net = smp.Unet("efficientnet-b0", encoder_weights=None, classes=2, in_channels=4)
        path, match = save(net, "pth", tmp_path), "4-channel"
    kwargs = {"input_shape": (SIZE, SIZE, 3)} if case == "channels" else {}
    with pytest.raises(ValueError, match=match):
        ke.from_checkpoint(path, **kwargs)


def test_bad_files_are_clear(tmp_path):
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_model_class": "Unet",
                                                    "encoder_name": "efficientnet-b0"}))
    with pytest.raises(ValueError, match="no model.safetensors"):
        ke.from_checkpoint(str(folder))
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError):  # not smp any more: the generic message names the folder
        ke.from_checkpoint(str(folder))
    with pytest.raises(ValueError, match="does not exist"):
        seg.from_checkpoint(str(tmp_path / "missing.pth"))
    classifier = str(tmp_path / "classifier.pth")
    torch.save({"conv.weight": torch.ones(2, 3, 1, 1)}, classifier)
    with pytest.raises(ValueError, match="segmentation_head"):
        seg.from_checkpoint(classifier)
    full = save(smp.Unet("efficientnet-b0", encoder_weights=None, classes=2), "pth", tmp_path)
    truncated = str(tmp_path / "truncated.pth")
    with open(full, "rb") as f, open(truncated, "wb") as g:
        g.write(f.read()[:5000])
    with pytest.raises(ValueError, match="truncated"):
        ke.from_checkpoint(truncated)
    assert os.path.getsize(full) > 5000  # nothing deleted
