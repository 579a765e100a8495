"""efficientnet_pytorch / efficientnet-lite-pytorch state dicts -> our flat names.

Both packages (``efficientnet-pytorch`` by Luke Melas-Kyriazi and its Lite fork
``efficientnet-lite-pytorch``) save the same module tree:

===========================================  =========================================
source key                                   our flat name
===========================================  =========================================
``_conv_stem.weight``                        ``stem_conv/kernel``
``_bn0.{weight,bias,running_mean,...}``      ``stem_bn/{gamma,beta,moving_mean,...}``
``_blocks.N._expand_conv.weight``            ``blockSL_expand_conv/kernel``
``_blocks.N._bn0.*``                         ``blockSL_expand_bn/*``
``_blocks.N._depthwise_conv.weight``         ``blockSL_dwconv/kernel``
``_blocks.N._bn1.*``                         ``blockSL_bn/*``
``_blocks.N._se_reduce.{weight,bias}``       ``blockSL_se_reduce/{kernel,bias}``
``_blocks.N._se_expand.{weight,bias}``       ``blockSL_se_expand/{kernel,bias}``
``_blocks.N._project_conv.weight``           ``blockSL_project_conv/kernel``
``_blocks.N._bn2.*``                         ``blockSL_project_bn/*``
``_conv_head.weight`` / ``_bn1.*``           ``top_conv/kernel`` / ``top_bn/*``
``_fc.{weight,bias}``                        ``predictions/{kernel,bias}``
===========================================  =========================================

``N`` counts blocks over the whole network in order, which is the order of
:func:`~keras_efficientnet.specs.resolve`. Convolutions are stored ``(out, in, kh, kw)``
(Keras: ``(kh, kw, in, out)``), depthwise kernels ``(C, 1, kh, kw)`` (Keras ``(kh, kw, C, 1)``)
and the classifier ``(out, in)``. BatchNorm's ``num_batches_tracked`` counters are consumed
on purpose: inference does not use them. The expected keys and shapes come from the spec's
weight manifest (:func:`~keras_efficientnet.specs.manifest.weight_manifest`); this module
only names them (the table) and transposes the shapes. Both packages pad like TensorFlow
(``Conv2dStaticSamePadding``) and use BatchNorm epsilon 1e-3, our ``padding="same"`` specs.
"""

from __future__ import annotations

import zipfile

import numpy as np

from ...specs.manifest import weight_manifest
from .base import Converted, register_format, show_names
from .shapes import TO_KERAS, TORCH_VARIABLES, block_positions, block_role, torch_shape
from .torch_state import read_state_dict

FORMAT = "efficientnet_pytorch"
#: bytes that identify the format inside the pickled key list.
MARKER = b"_conv_stem.weight"
#: legacy (non-zip) torch.save files start with a pickled magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_SNIFF_BYTES = 4 << 20

_CONSUMED_SUFFIX = "num_batches_tracked"

#: variants :func:`infer` considers, in order (names not registered are skipped).
CANDIDATES = tuple([f"EfficientNetB{i}" for i in range(9)] + ["EfficientNetL2"]
                   + [f"EfficientNetLite{i}" for i in range(5)])


def sniff(path: str) -> bool:
    """A ``torch.save`` file (zip or legacy) whose pickled keys include ``_conv_stem.weight``.

    Example:
        >>> from keras_efficientnet.pretrained.registry import get_weights
        >>> from keras_efficientnet.pretrained.offline import packaged_checkpoint
        >>> from keras_efficientnet.pretrained.convert.efficientnet_pytorch import sniff
        >>> sniff(packaged_checkpoint(get_weights("EfficientNetLite0")))
        True
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            pickles = [n for n in zf.namelist() if n.endswith("data.pkl")]
            return bool(pickles) and MARKER in zf.read(pickles[0])
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    return head.startswith(_LEGACY_MAGIC[:4]) and MARKER in head


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Read a state dict as ``{key: float array}`` with the shared reader
    (:func:`~keras_efficientnet.pretrained.convert.torch_state.read_state_dict`:
    ``torch.load(weights_only=True)`` or safetensors, wrapped checkpoints and ``module.``
    prefixes handled as for every PyTorch source).

    Raises:
        ValueError: when torch cannot read the file (truncated, corrupt, or pickling code) or
            the file does not hold a ``{name: tensor}`` mapping.

    Example:
        >>> import os, tempfile, torch
        >>> from keras_efficientnet.pretrained.convert.efficientnet_pytorch import load_state_dict
        >>> path = os.path.join(tempfile.mkdtemp(), "sd.pth")
        >>> torch.save({"_fc.bias": torch.ones(3)}, path)
        >>> load_state_dict(path)["_fc.bias"].tolist()
        [1.0, 1.0, 1.0]
    """
    return read_state_dict(path)


def _conv(a):
    return np.transpose(a, TO_KERAS["conv"])


def _depthwise(a):
    return np.transpose(a, TO_KERAS["depthwise"])


def _dense(a):
    return np.transpose(a, TO_KERAS["dense"])


def _same(a):
    return a


_LAYOUTS = {"conv": _conv, "depthwise": _depthwise, "dense": _dense}
#: the source modules outside the blocks, by our layer name (the table above).
OUTER = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1",
         "predictions": "_fc"}
#: the module inside ``_blocks.N`` for each of our block roles (the table above).
PARTS = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv", "bn": "_bn1",
         "se_reduce": "_se_reduce", "se_expand": "_se_expand", "project_conv": "_project_conv",
         "project_bn": "_bn2"}


def plan(spec, classes: int | None) -> dict[str, tuple[str, tuple, object]]:
    """The mapping a file for ``spec`` must follow: ``{source_key: (flat_name, source_shape,
    layout_fn)}`` (``num_batches_tracked`` excluded; classifier only when ``classes``).

    Raises:
        ValueError: for specs this format cannot describe (fused or CondConv blocks).

    Example:
        >>> from keras_efficientnet.specs import get_spec
        >>> from keras_efficientnet.pretrained.convert.efficientnet_pytorch import plan
        >>> p = plan(get_spec("EfficientNetB0"), classes=1000)
        >>> p["_blocks.1._depthwise_conv.weight"][:2]
        ('block2a_dwconv/kernel', (96, 1, 3, 3))
    """
    positions = block_positions(spec)
    for block, _, _ in positions.values():
        if block.kind != "mb" or block.experts:
            raise ValueError(f"The efficientnet_pytorch format has only MBConv blocks; {spec.name} "
                             f"block {block.name} is {'CondConv' if block.experts else 'fused'}.")
    index = {name: i for i, name in enumerate(positions)}
    out: dict[str, tuple[str, tuple, object]] = {}
    for entry in weight_manifest(spec, classes):
        module = OUTER.get(entry.layer) or f"_blocks.{index[entry.block]}.{PARTS[block_role(entry)]}"
        layout = _LAYOUTS[entry.kind] if len(entry.shape) > 1 else _same
        out[f"{module}.{TORCH_VARIABLES[entry.variable]}"] = (entry.name, torch_shape(entry), layout)
    return out


def _classes(state: dict) -> int | None:
    fc = state.get("_fc.weight")
    return int(fc.shape[0]) if fc is not None and fc.ndim == 2 else None


def _mismatch(state: dict, mapping: dict) -> tuple[list, list, list]:
    keys = {k for k in state if not k.endswith(_CONSUMED_SUFFIX)}
    missing = sorted(set(mapping) - keys)
    unexpected = sorted(keys - set(mapping))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs expected {shape}"
              for k, (_, shape, _) in mapping.items()
              if k in state and tuple(state[k].shape) != shape]
    return missing, unexpected, shapes


def _match(state: dict) -> str | None:
    from ...specs import VARIANTS

    classes = _classes(state)
    for name in CANDIDATES:
        spec = VARIANTS.get(name)
        if spec is None:
            continue
        try:
            mapping = plan(spec, classes)
        except ValueError:
            continue
        if not any(_mismatch(state, mapping)):
            return name
    return None


def infer(path: str) -> dict:
    """The variant (by tensor shapes) and class count of an efficientnet_pytorch state dict.

    Raises:
        ValueError: when the shapes fit none of B0-B7 (B8, L2) and Lite0-4.

    Example:
        >>> from keras_efficientnet.pretrained.registry import get_weights
        >>> from keras_efficientnet.pretrained.offline import packaged_checkpoint
        >>> from keras_efficientnet.pretrained.convert.efficientnet_pytorch import infer
        >>> infer(packaged_checkpoint(get_weights("EfficientNetLite1")))["variant"]
        'EfficientNetLite1'
    """
    state = load_state_dict(path)
    name = _match(state)
    if name is None:
        raise ValueError(f"{path!r} is an efficientnet_pytorch state dict, but its tensor shapes fit "
                         f"none of {', '.join(CANDIDATES)}.")
    return {"variant": name, "classes": _classes(state), "format": FORMAT}


def convert_state_dict(state: dict, spec, source: str = "state dict") -> Converted:
    """Convert an in-memory ``{key: array}`` state dict for a model of ``spec``, strictly.

    Raises:
        ValueError: listing source keys left over, keys missing and shapes that differ.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.specs import get_spec
        >>> from keras_efficientnet.pretrained.convert import efficientnet_pytorch as ep
        >>> spec = get_spec("EfficientNetLite0")
        >>> state = {k: np.zeros(s, "float32") for k, (_, s, _) in ep.plan(spec, 1000).items()}
        >>> ep.convert_state_dict(state, spec).arrays["stem_conv/kernel"].shape
        (3, 3, 3, 32)
    """
    mapping = plan(spec, _classes(state))
    missing, unexpected, shapes = _mismatch(state, mapping)
    if missing or unexpected or shapes:
        show = show_names
        parts = []
        if shapes:
            parts.append(f"shapes differ: {show(shapes)}")
        if missing:
            parts.append(f"missing: {show(missing)}")
        if unexpected:
            parts.append(f"not used by {spec.name}: {show(unexpected)}")
        actual = _match(state)
        hint = (f" The file holds {actual} weights; build {actual} instead." if actual and
                actual != spec.name else " Is it a checkpoint for another variant?")
        raise ValueError(f"{source} does not fit {spec.name} (efficientnet_pytorch format): "
                         + "; ".join(parts) + "." + hint)
    arrays, consumed = {}, {}
    for key, value in state.items():
        if key.endswith(_CONSUMED_SUFFIX):
            consumed[key] = "BatchNorm update counter (unused at inference)"
            continue
        dst, _, layout = mapping[key]
        arrays[dst] = np.ascontiguousarray(layout(value)).astype("float32")
    return Converted(arrays, consumed, source=source, format=FORMAT)


def read(path: str, spec) -> Converted:
    """Read an efficientnet_pytorch ``.pth`` for a model of ``spec``, strictly.

    Raises:
        ValueError: for an unreadable file, or one that does not fit ``spec`` (listing names).

    Example:
        >>> from keras_efficientnet.specs import get_spec
        >>> from keras_efficientnet.pretrained.registry import get_weights
        >>> from keras_efficientnet.pretrained.offline import packaged_checkpoint
        >>> from keras_efficientnet.pretrained.convert.efficientnet_pytorch import read
        >>> path = packaged_checkpoint(get_weights("EfficientNetLite0"))
        >>> read(path, get_spec("EfficientNetLite0")).arrays["block2a_dwconv/kernel"].shape
        (3, 3, 96, 1)
    """
    return convert_state_dict(load_state_dict(path), spec, source=repr(path))


register_format(FORMAT, sniff, read, infer)
