"""effdet (rwightman's efficientdet-pytorch) state dicts -> our EfficientDet flat names.

effdet's ``EfficientDet`` holds ``backbone.*`` (a timm ``features_only`` EfficientNet: timm's
names without ``conv_head``/``bn2``/``classifier``, converted by the timm table), ``fpn.*``
and ``class_net.*`` / ``box_net.*``. The rest maps by name onto the layers of
:mod:`keras_efficientnet.detection.model`:

===============================================================  ===============================
effdet                                                           ours
===============================================================  ===============================
``fpn.resample.{i}.conv.{conv,bn}``                              ``fpn_p{min+i}_resample_{conv,bn}``
``fpn.cell.{r}.fnode.{n}.combine.resample.{j}.conv.{conv,bn}``   ``fpn_cell{r}_node{n}_in{j}_{conv,bn}``
``fpn.cell.{r}.fnode.{n}.combine.edge_weights``                  ``fpn_cell{r}_node{n}_fusion``
``fpn.cell.{r}.fnode.{n}.after_combine.conv.{conv_dw,conv_pw}``  ``fpn_cell{r}_node{n}_conv``
``fpn.cell.{r}.fnode.{n}.after_combine.conv.bn``                 ``fpn_cell{r}_node{n}_bn``
``{class,box}_net.conv_rep.{k}.{conv_dw,conv_pw}``               ``{class,box}_net_conv{k}``
``{class,box}_net.bn_rep.{k}.{level}.bn`` (or level first)       ``{class,box}_net_bn{k}_p{min+level}``
``{class,box}_net.predict.{conv_dw,conv_pw}``                    ``{class,box}_net_predict``
===============================================================  ===============================

Layouts: convolutions OIHW -> HWIO, depthwise ``(C, 1, k, k)`` -> ``(k, k, C, 1)``.
"""

from __future__ import annotations

import re

import numpy as np

from .base import Converted, show_names
from .torch_state import BN_VARIABLES as BN, read_state_dict
from . import timm as _timm

CONV = {"weight": "kernel", "bias": "bias"}
SEP = {("conv_dw", "weight"): "depthwise_kernel", ("conv_pw", "weight"): "pointwise_kernel",
       ("conv_pw", "bias"): "bias"}

_RULES = [
    (re.compile(r"fpn\.resample\.(\d+)\.conv\.conv\.(weight|bias)$"),
     lambda m, lv: f"fpn_p{lv + int(m[1])}_resample_conv/{CONV[m[2]]}"),
    (re.compile(r"fpn\.resample\.(\d+)\.conv\.bn\.(\w+)$"),
     lambda m, lv: f"fpn_p{lv + int(m[1])}_resample_bn/{BN[m[2]]}"),
    (re.compile(r"fpn\.cell\.(\d+)\.fnode\.(\d+)\.combine\.resample\.(\d+)\.conv\.conv\.(weight|bias)$"),
     lambda m, lv: f"fpn_cell{m[1]}_node{m[2]}_in{m[3]}_conv/{CONV[m[4]]}"),
    (re.compile(r"fpn\.cell\.(\d+)\.fnode\.(\d+)\.combine\.resample\.(\d+)\.conv\.bn\.(\w+)$"),
     lambda m, lv: f"fpn_cell{m[1]}_node{m[2]}_in{m[3]}_bn/{BN[m[4]]}"),
    (re.compile(r"fpn\.cell\.(\d+)\.fnode\.(\d+)\.combine\.edge_weights$"),
     lambda m, lv: f"fpn_cell{m[1]}_node{m[2]}_fusion/edge_weights"),
    (re.compile(r"fpn\.cell\.(\d+)\.fnode\.(\d+)\.after_combine\.conv\.(conv_dw|conv_pw)\.(weight|bias)$"),
     lambda m, lv: f"fpn_cell{m[1]}_node{m[2]}_conv/{SEP[(m[3], m[4])]}"),
    (re.compile(r"fpn\.cell\.(\d+)\.fnode\.(\d+)\.after_combine\.conv\.bn\.(\w+)$"),
     lambda m, lv: f"fpn_cell{m[1]}_node{m[2]}_bn/{BN[m[3]]}"),
    (re.compile(r"(class|box)_net\.conv_rep\.(\d+)\.(conv_dw|conv_pw)\.(weight|bias)$"),
     lambda m, lv: f"{m[1]}_net_conv{m[2]}/{SEP[(m[3], m[4])]}"),
    (re.compile(r"(class|box)_net\.bn_rep\.(\d+)\.(\d+)\.bn\.(\w+)$"),  # repeat first
     lambda m, lv: f"{m[1]}_net_bn{m[2]}_p{lv + int(m[3])}/{BN[m[4]]}"),
    (re.compile(r"(class|box)_net\.bn_rep\.(\d+)\.(\d+)\.(weight|bias|running_mean|running_var)$"),
     lambda m, lv: f"{m[1]}_net_bn{m[3]}_p{lv + int(m[2])}/{BN[m[4]]}"),  # level first
    (re.compile(r"(class|box)_net\.predict\.(conv_dw|conv_pw)\.(weight|bias)$"),
     lambda m, lv: f"{m[1]}_net_predict/{SEP[(m[2], m[3])]}"),
]


def _layout(key, array):
    if array.ndim == 4:
        if ".conv_dw." in key:
            return np.transpose(array, (2, 3, 0, 1))
        return np.transpose(array, (2, 3, 1, 0))
    return array


def is_effdet(keys) -> bool:
    """Whether state-dict keys are an effdet EfficientDet's."""
    keys = set(keys)
    return (any(k.startswith("backbone.") for k in keys)
            and any(k.startswith("fpn.cell.") for k in keys)
            and any(k.startswith("class_net.") for k in keys))


def convert_state_dict(state: dict, config, source: str = "<state dict>") -> Converted:
    """Convert an effdet ``EfficientDet`` state dict for the model of ``config``.

    Args:
        state: ``{name: array}`` (as :func:`read_state_dict` returns).
        config: the :class:`~keras_efficientnet.detection.config.DetectionConfig` (or name).

    Returns:
        :class:`Converted` with every weight under our flat names.

    Raises:
        ValueError: for tensors with no place in our model, or a backbone that is not
            ``config.backbone``'s.

    Example:
        >>> import torch, effdet
        >>> from keras_efficientnet.pretrained.convert.effdet import convert_state_dict
        >>> cfg = effdet.get_efficientdet_config("tf_efficientdet_d0")
        >>> net = effdet.EfficientDet(cfg, pretrained_backbone=False)
        >>> sd = {k: v.numpy() for k, v in net.state_dict().items()}
        >>> convert_state_dict(sd, "d0").arrays["class_net_predict/pointwise_kernel"].shape
        (1, 1, 64, 810)
    """
    from ...detection.config import get_config
    from ...specs import get_spec

    config = get_config(config)
    consumed = {k: "BatchNorm update counter (training bookkeeping)"
                for k in state if k.endswith(".num_batches_tracked")}
    backbone = {k[len("backbone."):]: v for k, v in state.items()
                if k.startswith("backbone.") and k not in consumed}
    arrays, unknown = {}, []
    for key, value in state.items():
        if key in consumed or key.startswith("backbone."):
            continue
        for pattern, target in _RULES:
            m = pattern.match(key)
            if m:
                arrays[target(m, config.min_level)] = _layout(key, np.asarray(value))
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{source}: tensors with no place in an EfficientDet: {show_names(unknown)}. "
                         "Is it an effdet EfficientDet state dict?")
    try:  # the backbone is a timm features_only network: the timm table, strictly
        converted = _timm.convert_state_dict(backbone, get_spec(config.backbone),
                                             source="backbone", head=False)
    except ValueError as err:
        raise ValueError(f"{source}: the backbone is not {config.backbone} (as {config.name} "
                         f"needs): {err}") from None
    arrays.update(converted.arrays)
    consumed.update(converted.consumed)
    return Converted(arrays, consumed, source=source, format="effdet", head_names=())


def read(path: str, config) -> Converted:
    """Read an effdet checkpoint file for ``config`` (see :func:`convert_state_dict`)."""
    state = read_state_dict(path)
    return convert_state_dict(dict(state), config, source=path)
