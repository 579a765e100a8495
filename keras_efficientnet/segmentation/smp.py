"""segmentation-models-pytorch (smp 0.6) state dicts -> our segmentation models.

An smp model's state dict has ``encoder.*`` tensors, converted by the encoder's own converter
(``efficientnet-b*``: :mod:`~keras_efficientnet.pretrained.convert.efficientnet_pytorch`;
``timm-efficientnet-b*`` and ``tu-*``: :mod:`~keras_efficientnet.pretrained.convert.timm`),
and ``decoder.*`` / ``segmentation_head.*`` tensors mapped by module prefix:

==========================================  ======================================
smp module                                  our layer
==========================================  ======================================
U-Net ``decoder.blocks.i.conv1.0`` / ``.1``  ``decoder_stage{i}a_conv`` / ``_bn``
U-Net ``decoder.blocks.i.conv2.*``           ``decoder_stage{i}b_*``
U-Net ``decoder.blocks.i.attention{1,2}``    ``decoder_stage{i}_attention{1,2}_*``
FPN ``decoder.p5``, ``decoder.pL.skip_conv``  ``fpn_p5_conv``, ``fpn_pL_skip_conv``
FPN ``decoder.seg_blocks.k.block.j.block``   ``fpn_seg{5-k}_{j}_conv`` / ``_gn``
LinkNet ``decoder.blocks.i.block.{0,1,2}``   ``decoder_stage{i}{a,b,c}_conv|transpose`` / ``_bn``
``segmentation_head.0``                      ``final_conv``
==========================================  ======================================

The encoder's unused head convolution (``conv_head`` / ``_conv_head`` and its BatchNorm), which
smp keeps in its encoders' state dicts, is consumed on purpose: no decoder reads it.
"""

from __future__ import annotations

import numpy as np

from ..pretrained.convert.base import Converted, show_names
from ..pretrained.convert.torch_state import BN_VARIABLES as _BN

FORMAT = "smp"


def architecture_of(state) -> str:
    """``"unet"``, ``"fpn"`` or ``"linknet"`` from an smp state dict's decoder keys.

    Example:
        >>> from keras_efficientnet.segmentation.smp import architecture_of
        >>> architecture_of({"decoder.p5.weight": None})
        'fpn'
    """
    keys = list(state)
    if any(k.startswith("decoder.p5.") for k in keys):
        return "fpn"
    if any(k.startswith("decoder.blocks.0.conv1.") for k in keys):
        return "unet"
    if any(k.startswith("decoder.blocks.0.block.0.") for k in keys):
        return "linknet"
    raise ValueError("The state dict has no U-Net, FPN or LinkNet decoder of smp (no "
                     "decoder.blocks.0.conv1.*, decoder.p5.* or decoder.blocks.0.block.0.* keys).")


def _decoder_prefixes(arch: str) -> dict[str, str]:
    out = {"segmentation_head.0": "final_conv"}
    if arch == "unet":
        for i in range(5):
            s = f"decoder.blocks.{i}"
            for part, letter in (("conv1", "a"), ("conv2", "b")):
                out[f"{s}.{part}.0"] = f"decoder_stage{i}{letter}_conv"
                out[f"{s}.{part}.1"] = f"decoder_stage{i}{letter}_bn"
            for a in (1, 2):
                att = f"{s}.attention{a}.attention"
                out[f"{att}.cSE.1"] = f"decoder_stage{i}_attention{a}_cse_reduce"
                out[f"{att}.cSE.3"] = f"decoder_stage{i}_attention{a}_cse_expand"
                out[f"{att}.sSE.0"] = f"decoder_stage{i}_attention{a}_sse_conv"
    elif arch == "fpn":
        out["decoder.p5"] = "fpn_p5_conv"
        for level in (4, 3, 2):
            out[f"decoder.p{level}.skip_conv"] = f"fpn_p{level}_skip_conv"
        for k, level in enumerate((5, 4, 3, 2)):
            for j in range(max(level - 2, 1)):
                b = f"decoder.seg_blocks.{k}.block.{j}.block"
                out[f"{b}.0"] = f"fpn_seg{level}_{j}_conv"
                out[f"{b}.1"] = f"fpn_seg{level}_{j}_gn"
    else:
        for i in range(5):
            b = f"decoder.blocks.{i}.block"
            out[f"{b}.0.0"] = f"decoder_stage{i}a_conv"
            out[f"{b}.0.1"] = f"decoder_stage{i}a_bn"
            out[f"{b}.1.0"] = f"decoder_stage{i}b_transpose"
            out[f"{b}.1.1"] = f"decoder_stage{i}b_bn"
            out[f"{b}.2.0"] = f"decoder_stage{i}c_conv"
            out[f"{b}.2.1"] = f"decoder_stage{i}c_bn"
    return out


def _layer_param(layer, param: str, value):
    import keras

    if isinstance(layer, keras.layers.BatchNormalization):
        return _BN[param], value
    if isinstance(layer, keras.layers.GroupNormalization):
        return {"weight": "gamma", "bias": "beta"}[param], value
    if param == "bias":
        return "bias", value
    # Conv2d (out, in, kh, kw) and ConvTranspose2d (in, out, kh, kw) both take this permutation
    # to Keras' (kh, kw, in, out) and Conv2DTranspose's (kh, kw, out, in)
    return "kernel", np.transpose(value, (2, 3, 1, 0))


#: The stem convolution of each smp encoder kind, relative to ``encoder.``: efficientnet_pytorch
#: (``efficientnet-b*``), timm (``timm-efficientnet-b*``), timm features_only (``tu-*``).
STEM_KEYS = ("_conv_stem.weight", "conv_stem.weight", "model.conv_stem.weight")


def rgb_stand_in(encoder_state):
    """``(state, stem)``: for an encoder of smp's ``in_channels`` other than 3, a copy of
    ``encoder_state`` whose stem kernel is a zero RGB stand-in (the converters and the variant
    matching know RGB stems) and the real kernel; else ``(encoder_state, None)``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.segmentation.smp import rgb_stand_in
        >>> state, stem = rgb_stand_in({"conv_stem.weight": np.ones((32, 1, 3, 3))})
        >>> state["conv_stem.weight"].shape, stem.shape
        ((32, 3, 3, 3), (32, 1, 3, 3))
    """
    key = next((k for k in STEM_KEYS if k in encoder_state), None)
    stem = encoder_state.get(key)
    if stem is None or np.ndim(stem) != 4 or np.shape(stem)[1] == 3:
        return encoder_state, None
    shape = np.shape(stem)
    return {**encoder_state, key: np.zeros((shape[0], 3) + tuple(shape[2:]), "float32")}, stem


def _encoder_arrays(encoder_state, plan, source):
    from ..pretrained.convert import efficientnet_pytorch as ep
    from ..pretrained.convert import timm as timm_convert
    from ..specs import get_spec

    spec = get_spec(plan.variant)
    consumed = {}
    # the real stem kernel is put back after conversion (Conv2d (out, in, kh, kw) -> Keras
    # (kh, kw, in, out))
    encoder_state, stem = rgb_stand_in(encoder_state)
    if plan.smp_kind == "efficientnet_pytorch":
        converted = ep.convert_state_dict(encoder_state, spec, source=source)
    elif plan.smp_kind in ("timm", "timm_universal"):
        state = dict(encoder_state)
        if plan.smp_kind == "timm_universal":
            state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}
        # features_only encoders (tu-*) have no head convolution
        head = any(k.startswith("conv_head.") for k in state)
        converted = timm_convert.convert_state_dict(state, spec, source=source, head=head)
    else:
        raise ValueError(f"{source}: encoder {plan.variant!r} is not an smp encoder; build the "
                         "model with backbone_name set to the smp encoder name it was trained with "
                         "(efficientnet-b0, timm-efficientnet-b0, tu-tf_efficientnet_b0, ...).")
    arrays = {}
    if stem is not None:
        converted.arrays["stem_conv/kernel"] = np.ascontiguousarray(
            np.transpose(stem, (2, 3, 1, 0))).astype("float32")
    for name, value in converted.arrays.items():
        if name.startswith(("top_conv/", "top_bn/")):
            consumed.setdefault(name, "encoder head convolution, not read by the decoder")
            continue
        arrays[name] = value
    consumed.update(converted.consumed)
    return arrays, consumed


def convert_smp_state_dict(state: dict, model, backbone_name: str,
                           source: str = "smp state dict") -> Converted:
    """Convert an smp ``{key: array}`` state dict for ``model`` (built by :func:`Unet`,
    :func:`FPN` or :func:`Linknet` with the smp encoder name as ``backbone_name``), strictly.

    Raises:
        ValueError: for tensors left over, missing, or of the wrong shape, naming them.

    Example:
        >>> import segmentation_models_pytorch as smp
        >>> from keras_efficientnet.segmentation import Unet, convert_smp_state_dict
        >>> net = smp.Unet("efficientnet-b0", encoder_weights=None, classes=2)
        >>> state = {k: v.numpy() for k, v in net.state_dict().items()}
        >>> model = Unet("efficientnet-b0", input_shape=(64, 64, 3), classes=2)
        >>> convert_smp_state_dict(state, model, "efficientnet-b0").arrays["final_conv/kernel"].shape
        (3, 3, 16, 2)
    """
    from .encoders import encoder_plan

    plan = encoder_plan(backbone_name)
    state = {k: np.asarray(v) for k, v in state.items()}
    arch = architecture_of(state)
    encoder_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    arrays, consumed = _encoder_arrays(encoder_state, plan, source)
    prefixes = _decoder_prefixes(arch)
    layers = {layer.name: layer for layer in model.layers}
    leftover = []
    for key, value in state.items():
        if key.startswith("encoder."):
            continue
        if key.endswith(".num_batches_tracked"):
            consumed[key] = "BatchNorm update counter"
            continue
        prefix, _, param = key.rpartition(".")
        target = prefixes.get(prefix)
        if target and target.startswith("decoder_stage4_attention1") and target not in layers:
            # smp builds this scSE for the last U-Net stage too, which has no skip to attend to
            consumed[key] = "smp's unused attention1 of the last U-Net stage (no skip there)"
            continue
        if target is None or target not in layers:
            leftover.append(key)
            continue
        wname, array = _layer_param(layers[target], param, value)
        arrays[f"{target}/{wname}"] = np.ascontiguousarray(array).astype("float32")
    if leftover:
        raise ValueError(f"{source} holds smp {arch} tensors {model.name!r} has no place for: "
                         f"{show_names(leftover)}. Build the model with the same architecture, "
                         "decoder arguments and attention type as the smp model (an smp "
                         "aux_params classification head is not supported).")
    return Converted(arrays, consumed, source=source, format=FORMAT, head_names=())


def load_smp_state_dict(model, state_or_path, backbone_name: str) -> None:
    """Load an smp state dict (a file or an in-memory mapping) into ``model``, strictly.

    Example:
        >>> import segmentation_models_pytorch as smp
        >>> from keras_efficientnet.segmentation import FPN, load_smp_state_dict
        >>> net = smp.FPN("efficientnet-b0", encoder_weights=None, classes=2)
        >>> model = FPN("efficientnet-b0", input_shape=(64, 64, 3), classes=2)
        >>> load_smp_state_dict(model, {k: v.numpy() for k, v in net.state_dict().items()},
        ...                     "efficientnet-b0")
    """
    from ..pretrained.convert.torch_state import read_state_dict
    from ..pretrained.loading import assign

    if isinstance(state_or_path, dict):
        state, source = state_or_path, "smp state dict"
    else:
        state, source = read_state_dict(str(state_or_path)), repr(str(state_or_path))
    assign(model, convert_smp_state_dict(state, model, backbone_name, source), include_top=True)
