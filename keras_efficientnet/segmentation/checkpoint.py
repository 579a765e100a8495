"""Load a segmentation-models-pytorch checkpoint without saying what it is.

Three shapes of smp checkpoint are read, each strictly (every tensor placed, none missing):

* a folder written by smp's ``model.save_pretrained(dir)`` (``config.json`` with
  ``_model_class`` and the constructor arguments, next to ``model.safetensors``);
* a ``torch.save(model.state_dict())`` file (``.pth``, ``.pt``, ``.bin``, ``.ckpt``) or a
  ``.safetensors`` file;
* a training checkpoint holding the state dict under ``state_dict`` (PyTorch Lightning, timm's
  train script) and with the model under a prefix (``model.encoder...``, ``net.encoder...``);
  tensors outside that prefix (a loss module's, a metric's) are left out and logged.

Without a config, the architecture, classes, decoder widths, normalisation, attention and
merge policy are read from the tensors, and the encoder from its tensor names and shapes:
``_conv_stem`` names efficientnet_pytorch's ``efficientnet-b*``, ``conv_stem`` smp's
``timm-efficientnet-b*`` and ``model.conv_stem`` a ``tu-*`` encoder. A ``tu-`` encoder's
tensors cannot say whether it is the TensorFlow port (``tu-tf_efficientnet_b0``: "same"
padding) or the PyTorch-native model (``tu-efficientnet_b0``); then ``backbone_name`` must be
given, and the error says so.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

log = logging.getLogger("keras_efficientnet")

#: smp model classes we build, by their ``_model_class`` name.
ARCHITECTURES = {"Unet": "unet", "FPN": "fpn", "Linknet": "linknet"}
_NO_NORM = (False, None, "identity")
_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def _read_config(folder):
    path = os.path.join(folder, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path!r} is not a readable smp config (JSON): {err}.") from None
    if not isinstance(config, dict) or "_model_class" not in config or "encoder_name" not in config:
        raise ValueError(f"{path!r} is not an smp save_pretrained config: it has no _model_class "
                         "and encoder_name.")
    return config


def _weights_in(folder):
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise ValueError(f"smp folder {folder!r} has config.json but no model.safetensors (or "
                     "pytorch_model.bin): copy the whole folder smp's save_pretrained wrote.")


def _model_part(state, source):
    """The smp model's tensors of ``state``, without a training wrapper's prefix."""
    if "segmentation_head.0.weight" in state:
        return dict(state)
    heads = [k for k in state if k.endswith("segmentation_head.0.weight")]
    if len(heads) != 1:
        raise ValueError(f"{source} is not a segmentation-models-pytorch state dict: no "
                         "segmentation_head.0.weight tensor" +
                         (f" (several: {', '.join(heads)})." if heads else "."))
    prefix = heads[0][:-len("segmentation_head.0.weight")]
    inside = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    others = sorted(k for k in state if not k.startswith(prefix))
    if others:
        log.info("%s: the smp model is under %r; %d other tensors (%s...) are not part of it and "
                 "are not loaded.", source, prefix, len(others), others[0])
    return inside


def _is_smp_state(state) -> bool:
    return any(k.endswith("segmentation_head.0.weight") for k in state) and any(
        ".encoder." in f".{k}" for k in state)


def is_smp_checkpoint(path) -> bool:
    """Whether ``path`` is an smp folder (``save_pretrained``) or a state-dict file of an smp
    model; False for anything else, including unreadable files.

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.segmentation.checkpoint import is_smp_checkpoint
        >>> is_smp_checkpoint(tempfile.mkdtemp())
        False
    """
    from ..pretrained.convert.torch_state import read_state_dict

    path = os.fspath(path)
    if os.path.isdir(path):
        try:
            with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError):
            return False
        return isinstance(config, dict) and "_model_class" in config and "encoder_name" in config
    if not (os.path.isfile(path) and path.lower().endswith(_SUFFIXES)):
        return False
    try:
        return _is_smp_state(read_state_dict(path))
    except ValueError:
        return False


def _encoder_name(state, source):
    """The smp encoder name the ``encoder.*`` tensors belong to."""
    from ..pretrained.convert import efficientnet_pytorch as ep
    from ..pretrained.convert import timm as timm_convert
    from .encoders import SMP_EFFICIENTNET
    from .smp import rgb_stand_in

    enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    enc, _ = rgb_stand_in(enc)  # in_channels=1, 4, ...: matched as RGB
    if "_conv_stem.weight" in enc:
        variant = ep._match({k: v for k, v in enc.items() if not k.startswith("_fc.")})
        name = {v[0]: k for k, v in SMP_EFFICIENTNET.items()}.get(variant)
        if name is None:
            raise ValueError(f"{source}: the encoder is an efficientnet_pytorch network "
                             f"({variant or 'of no known variant'}), but smp's efficientnet-b* "
                             "encoders are B0-B7 only.")
        return name
    if "conv_stem.weight" in enc:
        found = [n for n in timm_convert.candidates(enc) if n.startswith("efficientnet_b")]
        if not found:
            raise ValueError(f"{source}: the encoder has timm tensor names, but fits no smp "
                             "timm-efficientnet-b* encoder (smp's timm-efficientnet-lite* and -l2 "
                             "are not supported here); pass backbone_name.")
        return "timm-efficientnet-" + found[0][len("efficientnet_"):]
    if "model.conv_stem.weight" in enc:
        inner = {k[len("model."):]: v for k, v in enc.items() if k.startswith("model.")}
        found = timm_convert.candidates(inner, head=False)
        if not found:
            raise ValueError(f"{source}: the tu-* encoder fits no timm EfficientNet variant this "
                             "package builds.")
        groups = timm_convert._split_by_conventions(found)
        if len(groups) > 1:
            names = ", ".join(f"'tu-{n}'" for n in found)
            raise ValueError(f"{source}: the tu-* encoder's tensors fit {names}, which differ in "
                             "padding and BatchNorm epsilon, and nothing in the file says which it "
                             "was; pass backbone_name= one of them (the encoder_name the smp model "
                             "was built with). smp's save_pretrained folder records it.")
        return "tu-" + sorted(found, key=lambda n: (not n.startswith("tf_"), n))[0]
    raise ValueError(f"{source}: the smp encoder is not an EfficientNet (no encoder._conv_stem, "
                     "encoder.conv_stem or encoder.model.conv_stem tensor).")


def _shape(state, key):
    value = state.get(key)
    return None if value is None else tuple(np.shape(value))


def _from_tensors(state, source):
    """smp constructor arguments read back from the tensors."""
    from .smp import architecture_of

    arch = architecture_of(state)
    head = _shape(state, "segmentation_head.0.weight")
    config = {"_model_class": {v: k for k, v in ARCHITECTURES.items()}[arch], "classes": head[0]}
    if any(k.startswith("classification_head.") for k in state):
        config["aux_params"] = {"classes": _shape(state, "classification_head.3.weight")}
    if arch == "unet":
        blocks = sorted({int(k.split(".")[2]) for k in state if k.startswith("decoder.blocks.")})
        config["decoder_channels"] = [_shape(state, f"decoder.blocks.{i}.conv1.0.weight")[0]
                                      for i in blocks]
        config["encoder_depth"] = len(blocks)
        norm = "decoder.blocks.0.conv1.1.weight" in state
        bn = "decoder.blocks.0.conv1.1.running_mean" in state
        config["decoder_use_norm"] = "batchnorm" if bn else ("other norm" if norm else False)
        config["decoder_attention_type"] = (
            "scse" if "decoder.blocks.0.attention1.attention.cSE.1.weight" in state else None)
    elif arch == "fpn":
        seg = _shape(state, "decoder.seg_blocks.0.block.0.block.0.weight")[0]
        config["decoder_pyramid_channels"] = _shape(state, "decoder.p5.weight")[0]
        config["decoder_segmentation_channels"] = seg
        config["decoder_merge_policy"] = "cat" if head[1] == 4 * seg and seg != head[1] else "add"
    else:
        config["decoder_use_norm"] = ("batchnorm" if "decoder.blocks.0.block.0.1.running_mean"
                                      in state else False)
    config["in_channels"] = _stem_channels(state)
    return config


def _stem_channels(state):
    from .smp import STEM_KEYS

    for key in STEM_KEYS:
        if f"encoder.{key}" in state:
            return int(np.shape(state[f"encoder.{key}"])[1])
    return 3


def _read(path, backbone_name=None):
    """(config, model state dict, source text) of an smp checkpoint."""
    from ..pretrained.convert.torch_state import read_state_dict

    path = os.fspath(path)
    source = repr(path)
    if os.path.isdir(path):
        config = _read_config(path)
        if config["_model_class"] not in ARCHITECTURES:
            raise ValueError(f"{source} is an smp {config['_model_class']}; this package builds "
                             f"smp's {', '.join(ARCHITECTURES)} only.")
        weights = _weights_in(path)
        state = dict(read_state_dict(weights))
        if not _is_smp_state(state):
            raise ValueError(f"{weights!r} does not hold an smp model's tensors.")
        state = _model_part(state, source)
        found = _from_tensors(state, source)
        config = {**found, **config}
    else:
        if not os.path.isfile(path):
            raise ValueError(f"smp checkpoint {path!r} does not exist: pass the folder smp's "
                             "save_pretrained wrote or a state-dict file.")
        state = _model_part(read_state_dict(path), source)
        config = _from_tensors(state, source)
    config["encoder_name"] = (backbone_name or config.get("encoder_name")
                              or _encoder_name(state, source))
    return config, state, source


def _check(config, source):
    if config.get("aux_params"):
        raise ValueError(f"{source} has an smp aux_params classification head, which is not "
                         "supported; load the segmentation part by removing the "
                         "classification_head.* tensors, or train without aux_params.")
    if config.get("encoder_depth", 5) != 5:
        raise ValueError(f"{source}: encoder_depth={config['encoder_depth']}; only smp's default "
                         "encoder_depth=5 is supported.")
    if config.get("decoder_interpolation", "nearest") != "nearest":
        raise ValueError(f"{source}: decoder_interpolation={config['decoder_interpolation']!r}; "
                         "only smp's default 'nearest' is supported.")
    norm = config.get("decoder_use_norm", config.get("decoder_use_batchnorm", "batchnorm"))
    if norm not in _NO_NORM and norm not in (True, "batchnorm", "inplace"):
        raise ValueError(f"{source}: decoder_use_norm={norm!r}; only 'batchnorm' (smp's "
                         "default) or none is supported.")
    return norm not in _NO_NORM


def inspect_checkpoint(path, backbone_name=None) -> dict:
    """What an smp checkpoint holds, without building a model.

    Returns:
        ``{"format": "smp", "architecture", "encoder", "classes", "in_channels", "config"}``;
        ``config`` is the smp constructor arguments (from ``config.json``, or read back from
        the tensors).

    Raises:
        ValueError: for a file that is not an smp checkpoint, or whose encoder cannot be told
            from its tensors (a ``tu-*`` encoder: pass ``backbone_name``).

    Example:
        >>> import os, tempfile, torch
        >>> import segmentation_models_pytorch as smp
        >>> from keras_efficientnet.segmentation import inspect_checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), "unet.pth")
        >>> torch.save(smp.Unet("efficientnet-b0", encoder_weights=None, classes=4).state_dict(), path)
        >>> info = inspect_checkpoint(path)
        >>> info["architecture"], info["encoder"], info["classes"]
        ('unet', 'efficientnet-b0', 4)
    """
    config, _, _ = _read(path, backbone_name)
    return {"format": "smp", "architecture": ARCHITECTURES.get(config["_model_class"],
                                                               config["_model_class"]),
            "encoder": config["encoder_name"], "classes": int(config["classes"]),
            "in_channels": int(config.get("in_channels", 3)), "config": config}


def from_checkpoint(path, input_shape=None, backbone_name=None, activation="auto",
                    encoder_freeze=False, data_format=None):
    """Build the U-Net, FPN or LinkNet an smp checkpoint holds and load it, strictly.

    Args:
        path: a folder written by smp's ``save_pretrained``, or a state-dict / training
            checkpoint file (``.pth``, ``.pt``, ``.bin``, ``.ckpt``, ``.safetensors``).
        input_shape: ``(H, W, C)``; default ``(None, None, in_channels)``: any size divisible
            by 32.
        backbone_name: the smp encoder name; needed only for a ``tu-*`` encoder without a
            ``config.json`` (its tensors do not record padding and BatchNorm epsilon).
        activation: ``"auto"`` (the smp model's own: its config's ``activation``, or logits),
            or any :func:`~keras_efficientnet.segmentation.Unet` ``activation``.
        encoder_freeze: make the encoder layers non-trainable.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        A ``keras.Model`` giving smp's outputs for the same (NHWC) input.

    Raises:
        ValueError: for a file that is not an smp checkpoint, an smp model or option this
            package does not build (naming it), or tensors that do not fit.

    Example:
        >>> import os, tempfile, torch
        >>> import segmentation_models_pytorch as smp
        >>> from keras_efficientnet.segmentation import from_checkpoint
        >>> folder = tempfile.mkdtemp()
        >>> smp.FPN("timm-efficientnet-b0", encoder_weights=None, classes=2).save_pretrained(folder)
        >>> model = from_checkpoint(folder, input_shape=(64, 64, 3))
        >>> model.name, model.output_shape
        ('fpn_timm_efficientnet_b0', (None, 64, 64, 2))
    """
    from ..pretrained.loading import assign
    from .models import FPN, Linknet, Unet
    from .smp import convert_smp_state_dict

    config, state, source = _read(path, backbone_name)
    use_norm = _check(config, source)
    in_channels = int(config.get("in_channels", 3))
    if input_shape is None:
        input_shape = ((in_channels, None, None) if data_format == "channels_first"
                       else (None, None, in_channels))
    channels = input_shape[0] if data_format == "channels_first" else input_shape[-1]
    if channels is not None and int(channels) != in_channels:
        raise ValueError(f"input_shape {tuple(input_shape)} has {channels} channels, but {source} "
                         f"was trained on {in_channels}-channel images (its stem convolution).")
    if activation == "auto":
        activation = config.get("activation")
    if isinstance(activation, str) and activation not in ("sigmoid", "softmax", "linear"):
        raise ValueError(f"{source}: activation={activation!r} is not supported; use None "
                         "(logits), 'sigmoid' or 'softmax'.")
    encoder = config["encoder_name"]
    common = dict(input_shape=tuple(input_shape), classes=int(config["classes"]),
                  activation=activation, encoder_freeze=encoder_freeze, data_format=data_format)
    kind = ARCHITECTURES[config["_model_class"]]
    if kind == "unet":
        model = Unet(encoder, decoder_filters=tuple(config["decoder_channels"]),
                     decoder_use_batchnorm=use_norm,
                     decoder_attention_type=config.get("decoder_attention_type"), **common)
    elif kind == "fpn":
        model = FPN(encoder, pyramid_channels=int(config["decoder_pyramid_channels"]),
                    segmentation_channels=int(config["decoder_segmentation_channels"]),
                    pyramid_dropout=float(config.get("decoder_dropout", 0.2)),
                    merge_policy=config.get("decoder_merge_policy", "add"),
                    upsampling=int(config.get("upsampling", 4)), **common)
    else:
        model = Linknet(encoder, decoder_use_batchnorm=use_norm, **common)
    log.info("from_checkpoint: %s is an smp %s with encoder %s (%d classes).", source,
             config["_model_class"], encoder, config["classes"])
    assign(model, convert_smp_state_dict(state, model, encoder, source), include_top=True)
    return model
