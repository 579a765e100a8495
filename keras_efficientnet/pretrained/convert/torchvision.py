"""torchvision EfficientNet state dicts (``torchvision.models.efficientnet_*``) -> our flat names.

torchvision keeps the network in ``features`` (a Sequential): ``features.0`` is the stem
(``.0`` conv, ``.1`` BatchNorm), ``features.<stage>.<i>.block.<j>`` the blocks, the last
``features`` entry the head conv, and ``classifier`` the classifier, either
``Sequential(Dropout, Linear)`` (keys ``classifier.1.*``, torchvision's own) or a bare
``Linear`` (``classifier.*``) when a user replaced it. Inside a block the units come in order:
MBConv ``[expand], depthwise, SE (fc1, fc2), project``; Fused-MBConv ``expand, project`` or a
single conv. Every unit is ``.0`` conv + ``.1`` BatchNorm.

The expected keys come from the spec's weight manifest
(:func:`~keras_efficientnet.specs.manifest.weight_manifest`): which layers exist, in which
order, is read from it, and this module only names them (:data:`UNITS`: a weight's role in
its block -> unit and name) and permutes their layouts.

What is accepted: a file written by ``torch.save(model.state_dict())`` (read with
``torch.load(weights_only=True)``, so nothing but tensors is unpickled); a checkpoint dict
holding that state dict under ``"state_dict"`` or ``"model"`` (other entries, such as an epoch
number, are ignored; a checkpoint that pickles arbitrary objects, e.g. argparse namespaces,
is refused by ``weights_only``: save ``model.state_dict()`` alone); keys prefixed ``module.``
by ``DataParallel``/``DistributedDataParallel``. Conversion is strict: every tensor is used
(``num_batches_tracked`` is consumed on purpose: Keras' BatchNormalization has no step
counter), every weight found, and leftovers or missing keys are listed in the error.

A torchvision file fits only models with torchvision's conventions: read into a spec whose
architecture, padding, BatchNorm epsilon or activations differ (keras.applications'
``EfficientNetB0``, timm's ``efficientnet_b7``, ...) it raises an error naming the
``tv_efficientnet_*`` variant to use instead.
"""

from __future__ import annotations

import os

import numpy as np

from ...specs import VARIANTS, get_spec, resolve
from ...specs.manifest import weight_manifest
from .base import Converted, register_format, show_names
from .shapes import TORCH_VARIABLES, block_positions, block_role, expected_shapes, keras_permutation
from .torch_state import read_state_dict

FORMAT = "torchvision"
#: our block role -> (the unit of ``features.<stage>.<i>.block`` it is in, its name there);
#: a block's units are numbered in the order its weights come in the manifest.
UNITS = {"expand_conv": ("expand", "0"), "expand_bn": ("expand", "1"), "dwconv": ("dw", "0"),
         "bn": ("dw", "1"), "se_reduce": ("se", "fc1"), "se_expand": ("se", "fc2"),
         "project_conv": ("project", "0"), "project_bn": ("project", "1")}
#: spec fields that change what a torchvision network computes from the same tensors.
CONVENTIONS = ("padding", "bn_epsilon", "activation", "se_gate")
BN_COUNTER = "num_batches_tracked"
CONSUMED_REASON = "BatchNorm step counter (training only; Keras BatchNormalization has none)"


def tv_variants() -> list[str]:
    """Names of the registered torchvision variants (``tv_efficientnet_*``).

    Example:
        >>> from keras_efficientnet.pretrained.convert.torchvision import tv_variants
        >>> tv_variants()[:2]
        ['tv_efficientnet_b0', 'tv_efficientnet_b1']
    """
    return [name for name in VARIANTS if name.startswith("tv_")]


# --------------------------------------------------------------------------- file reading

def _looks_like_torch_file(path: str) -> bool:
    with open(path, "rb") as f:
        magic = f.read(4)
    # torch.save writes a zip archive; files from torch < 1.6 are a pickle (protocol 2 marker).
    return magic == b"PK\x03\x04" or magic[:1] == b"\x80"


def load_state_dict(path: str) -> dict:
    """The tensors of a checkpoint file as ``{key: numpy array}``, read by the shared reader
    (:func:`~keras_efficientnet.pretrained.convert.torch_state.read_state_dict`: wrapped
    checkpoints, ``module.`` prefixes and safetensors handled as for every PyTorch source).

    Raises:
        ValueError: when the file is not a readable PyTorch state dict.

    Example:
        >>> import os, tempfile, torch
        >>> from keras_efficientnet.pretrained.convert.torchvision import load_state_dict
        >>> path = os.path.join(tempfile.mkdtemp(), "tv.pth")
        >>> torch.save({"model": {"features.0.0.weight": torch.zeros(32, 3, 3, 3)}}, path)
        >>> load_state_dict(path)["features.0.0.weight"].shape
        (32, 3, 3, 3)
    """
    return read_state_dict(path)


def is_torchvision_keys(keys) -> bool:
    """Whether state-dict keys are torchvision's EfficientNet layout.

    timm (``conv_stem.weight``, ``blocks.0.0...``) and efficientnet_pytorch
    (``_conv_stem.weight``) use other names, so they are never claimed.

    Example:
        >>> from keras_efficientnet.pretrained.convert.torchvision import is_torchvision_keys
        >>> is_torchvision_keys(["features.0.0.weight", "features.1.0.block.0.0.weight"])
        True
        >>> is_torchvision_keys(["conv_stem.weight", "blocks.0.0.conv_dw.weight"])
        False
    """
    keys = set(keys)
    return "features.0.0.weight" in keys and "features.1.0.block.0.0.weight" in keys


def sniff(path: str) -> bool:
    """A PyTorch file holding a torchvision EfficientNet state dict."""
    if not (path.lower().endswith(".safetensors") or _looks_like_torch_file(path)):
        return False
    return is_torchvision_keys(load_state_dict(path))


# --------------------------------------------------------------------------- the key map

def head_prefix(keys) -> str | None:
    """``"classifier.1"`` (torchvision's Sequential), ``"classifier"`` (a bare Linear) or None.

    Example:
        >>> from keras_efficientnet.pretrained.convert.torchvision import head_prefix
        >>> head_prefix(["classifier.1.weight", "classifier.1.bias"]), head_prefix(["classifier.weight"])
        ('classifier.1', 'classifier')
    """
    keys = set(keys)
    for prefix in ("classifier.1", "classifier"):
        if f"{prefix}.weight" in keys:
            return prefix
    return None


def key_map(spec, head: str | None = "classifier.1") -> dict[str, tuple[str, tuple | None]]:
    """``{torchvision_key: (our_flat_name, permutation or None)}`` for a spec's model.

    BatchNorm ``num_batches_tracked`` keys are not listed (they have no target).

    Args:
        spec: the spec (or variant name) whose model receives the weights.
        head: torchvision's classifier prefix, or None for no classifier.

    Raises:
        ValueError: for a spec with CondConv blocks (torchvision has none).

    Example:
        >>> from keras_efficientnet.pretrained.convert.torchvision import key_map
        >>> m = key_map("tv_efficientnet_b0")
        >>> m["features.1.0.block.0.0.weight"]
        ('block1a_dwconv/kernel', (2, 3, 0, 1))
        >>> m["features.2.0.block.2.fc1.bias"], m["classifier.1.weight"][0]
        (('block2a_se_reduce/bias', None), 'predictions/kernel')
    """
    spec = get_spec(spec)
    positions = block_positions(spec)
    top = f"features.{len(spec.blocks) + 1}"
    outer = {"stem_conv": "features.0.0", "stem_bn": "features.0.1", "top_conv": f"{top}.0",
             "top_bn": f"{top}.1", "predictions": head}
    units: dict[str, list] = {}  # block -> its units, in the order the manifest lists them
    out: dict[str, tuple[str, tuple | None]] = {}
    for entry in weight_manifest(spec, 1 if head else None):
        module = outer.get(entry.layer)
        if module is None:
            if block_role(entry) not in UNITS:
                raise ValueError(f"torchvision has no CondConv blocks; {spec.name} block "
                                 f"{entry.block} is one.")
            unit, part = UNITS[block_role(entry)]
            seen = units.setdefault(entry.block, [])
            if unit not in seen:
                seen.append(unit)
            _, stage, index = positions[entry.block]
            module = f"features.{stage + 1}.{index}.block.{seen.index(unit)}.{part}"
        out[f"{module}.{TORCH_VARIABLES[entry.variable]}"] = (entry.name, keras_permutation(entry))
    return out


def _permuted(shape, perm):
    return tuple(shape) if perm is None else tuple(shape[i] for i in perm)


def _fits(shapes: dict, spec) -> bool:
    """Whether torchvision ``{key: shape}`` (head and counters excluded) is ``spec``'s body."""
    try:
        mapping = key_map(spec, head=None)
        expected = expected_shapes(spec)
    except ValueError:
        return False
    if set(mapping) != set(shapes):
        return False
    return all(_permuted(shapes[k], perm) == expected[name] for k, (name, perm) in mapping.items())


def _body_shapes(state) -> dict:
    head = head_prefix(state)
    return {k: tuple(v.shape) for k, v in state.items()
            if not k.endswith(BN_COUNTER) and not (head and k.startswith(f"{head}."))}


def variant_of(state) -> str | None:
    """The ``tv_efficientnet_*`` variant whose tensors a torchvision state dict holds, or None.

    Example:
        >>> import torch, torchvision
        >>> from keras_efficientnet.pretrained.convert.torchvision import variant_of
        >>> with torch.device("meta"):
        ...     state = torchvision.models.efficientnet_b3(num_classes=4).state_dict()
        >>> variant_of(state)
        'tv_efficientnet_b3'
    """
    shapes = _body_shapes(state)
    for name in tv_variants():
        if _fits(shapes, name):
            return name
    return None


def _classes(state, head) -> int | None:
    return None if head is None else int(state[f"{head}.weight"].shape[0])


def infer(path: str) -> dict:
    """Variant, conventions and class count of a torchvision file, read from its tensor shapes.

    Returns:
        ``{"variant", "classes", "format", "head", "padding", "bn_epsilon"}``.

    Raises:
        ValueError: when the tensors fit no ``tv_efficientnet_*`` variant.
    """
    state = load_state_dict(path)
    variant = variant_of(state)
    if variant is None:
        raise ValueError(f"{path!r} is a torchvision EfficientNet state dict, but its tensors fit none "
                         f"of {', '.join(tv_variants())} (a custom width or depth?). Build the model "
                         "from a ModelSpec with padding='symmetric' and torchvision's BatchNorm "
                         "epsilon, and pass weights=path.")
    head = head_prefix(state)
    spec = get_spec(variant)
    return {"variant": variant, "classes": _classes(state, head), "format": FORMAT, "head": head,
            "padding": spec.padding, "bn_epsilon": spec.bn_epsilon}


# --------------------------------------------------------------------------- conversion

def _signature(spec):
    """What a network computes given its tensors: architecture and conventions."""
    resolved = resolve(spec)
    blocks = tuple((b.kind, b.in_channels, b.out_channels, b.hidden_channels, b.kernel, b.stride,
                    b.se_channels, b.activation, b.skip, b.experts) for b in resolved.blocks)
    return (resolved.stem_channels, resolved.head_channels, blocks,
            tuple(getattr(spec, f) for f in CONVENTIONS))


def check_conventions(spec, variant: str, source: str) -> None:
    """Refuse to load a torchvision checkpoint of ``variant`` into a model of a different network.

    Raises:
        ValueError: naming the variant to use, and the first convention that differs.
    """
    target = get_spec(variant)
    if _signature(spec) == _signature(target):
        return
    differences = [f"{f}={getattr(spec, f)!r} (torchvision: {getattr(target, f)!r})"
                   for f in CONVENTIONS if getattr(spec, f) != getattr(target, f)]
    detail = "; ".join(differences) if differences else "a different architecture"
    raise ValueError(
        f"{source} is a torchvision checkpoint of {variant}, but the model being loaded is "
        f"{spec.name!r}, which differs: {detail}. Its outputs would not match torchvision's. Use "
        f"keras_efficientnet.create_model({variant!r}, weights=path) or "
        "keras_efficientnet.from_checkpoint(path).")


def convert(state: dict, spec, source: str = "state dict") -> Converted:
    """Convert a torchvision state dict (``{key: tensor or array}``) for a model of ``spec``.

    Raises:
        ValueError: listing leftover and missing keys, when the state dict does not fit.
    """
    spec = get_spec(spec)
    variant = variant_of(state)
    if variant is not None:
        check_conventions(spec, variant, source)
    elif spec.padding != "symmetric":
        raise ValueError(f"{source} is a torchvision checkpoint; torchvision pads symmetrically, but "
                         f"{spec.name!r} uses padding={spec.padding!r}. Build a spec with "
                         "padding='symmetric' (or use a tv_efficientnet_* variant).")
    head = head_prefix(state)
    mapping = key_map(spec, head)
    arrays, consumed, missing = {}, {}, []
    left = dict(state)
    for key, (name, perm) in mapping.items():
        if key not in left:
            missing.append(key)
            continue
        raw = left.pop(key)
        value = np.asarray(raw)
        if perm is not None:
            if value.ndim != len(perm):
                raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}; a "
                                 f"{len(perm)}-D tensor was expected for {name}.")
            value = np.ascontiguousarray(np.transpose(value, perm))
        arrays[name] = value
        if key.endswith(".running_var"):
            counter = key[: -len("running_var")] + BN_COUNTER
            if counter in left:
                left.pop(counter)
                consumed[counter] = CONSUMED_REASON
    if missing or left:
        show = show_names
        parts = []
        if missing:
            parts.append(f"keys the model needs are missing: {show(missing)}")
        if left:
            parts.append(f"keys with no place in the model are left over: {show(left)}")
        raise ValueError(f"{source} does not fit {spec.name!r} as a torchvision state dict: "
                         + "; ".join(parts) + ".")
    return Converted(arrays, consumed, source=source, format=FORMAT)


def read(path: str, spec) -> Converted:
    """Read a torchvision state-dict file for a model of ``spec`` (strict; see the module doc)."""
    return convert(load_state_dict(path), spec, source=repr(os.fspath(path)))


register_format(FORMAT, sniff, read, infer)
