"""timm EfficientNet / EfficientNetV2 state dicts -> our flat names.

timm (``timm/models/efficientnet.py``) names a network's tensors ``conv_stem``, ``bn1``,
``blocks.<stage>.<block>.<part>``, ``conv_head``, ``bn2`` and ``classifier``. The parts of a
block depend on its kind:

=====================  =========================================================  ============
timm block             parts (in order)                                           our block
=====================  =========================================================  ============
DepthwiseSeparable     conv_dw, bn1, se, conv_pw, bn2                             mb, e1
InvertedResidual       conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3              mb
CondConvResidual       routing_fn + the InvertedResidual parts (CondConv kernels)  mb, x<N>
EdgeResidual           conv_exp, bn1, se, conv_pwl, bn2                           fu (expands)
ConvBnAct              conv, bn1                                                  fu, e1
=====================  =========================================================  ============

``se`` holds ``conv_reduce`` and ``conv_expand`` (with biases). Layouts: convolutions OIHW ->
HWIO, depthwise ``(C, 1, k, k)`` -> ``(k, k, C, 1)``, linear ``(out, in)`` -> ``(in, out)``,
CondConv experts ``(N, O*I*k*k)`` -> ``(N, k, k, I, O)``. BatchNorm ``num_batches_tracked``
counters are consumed on purpose (training bookkeeping, no inference meaning).

The expected tensors are read from the spec's weight manifest
(:func:`~keras_efficientnet.specs.manifest.weight_manifest`): which layers exist and their
shapes come from it, and this module only names them (the table above, by the role of a
weight's layer in its block) and transposes the shapes to timm's layouts. The conversion is
strict: a tensor the spec does not expect, one it expects but the file lacks, or one of
another shape raises ``ValueError`` naming them (a checkpoint of another variant fails here,
before any model weight changes).

Files: ``.pth`` / ``.pt`` / ``.bin`` / ``.ckpt`` (``torch.load(weights_only=True)``) and
``.safetensors``, read by the shared reader (``torch_state.py``): a training checkpoint's EMA
weights are preferred as timm's ``load_checkpoint`` does, then ``state_dict`` / ``model``;
DataParallel's ``module.`` prefix is removed.
"""

from __future__ import annotations

import os

import numpy as np

from ...specs.manifest import weight_manifest
from .base import Converted, register_format, show_names
from .shapes import HEAD_NAMES, TO_KERAS, TORCH_VARIABLES, block_positions, block_role, torch_shape
from .torch_state import SAFETENSORS_SUFFIXES, read_state_dict

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """The tensors of a torch or safetensors file as ``{name: float32 numpy array}``, read by
    the shared reader (:func:`~keras_efficientnet.pretrained.convert.torch_state.read_state_dict`:
    EMA weights preferred as timm does, ``module.`` removed, the declared ``arch`` kept).

    Raises:
        ValueError: for a file that cannot be read (truncated, corrupt) or that holds no
            state dict (a pickle of something else).

    Example:
        >>> import os, tempfile, torch
        >>> from keras_efficientnet.pretrained.convert.timm import load_state_dict
        >>> path = os.path.join(tempfile.mkdtemp(), "w.pth")
        >>> torch.save({"conv_stem.weight": torch.zeros(8, 3, 3, 3)}, path)
        >>> load_state_dict(path)["conv_stem.weight"].shape
        (8, 3, 3, 3)
    """
    return read_state_dict(path)


def _is_timm(keys) -> bool:
    return "conv_stem.weight" in keys and any(k.startswith("blocks.0.0.") for k in keys)


def sniff(path: str) -> bool:
    """A torch or safetensors file whose keys are timm's EfficientNet names.

    torchvision (``features.0.0.weight``) and efficientnet_pytorch (``_conv_stem.weight``)
    state dicts have other names, so they are not taken for timm files.
    """
    if not path.lower().endswith(TORCH_SUFFIXES + SAFETENSORS_SUFFIXES):
        return False
    return _is_timm(load_state_dict(path))


# -- the expected tensors of a spec ----------------------------------------------------------

_SE = {"se_reduce": "se.conv_reduce", "se_expand": "se.conv_expand"}
_INVERTED = {"expand_conv": "conv_pw", "expand_bn": "bn1", "dwconv": "conv_dw", "bn": "bn2", **_SE,
             "project_conv": "conv_pwl", "project_bn": "bn3"}
#: timm's module for each of our block roles (:func:`~.shapes.block_role`), by timm block class.
PARTS = {
    "DepthwiseSeparable": {"dwconv": "conv_dw", "bn": "bn1", **_SE, "project_conv": "conv_pw",
                           "project_bn": "bn2"},
    "InvertedResidual": _INVERTED,
    "CondConvResidual": {"routing": "routing_fn", **_INVERTED},
    "EdgeResidual": {"expand_conv": "conv_exp", "expand_bn": "bn1", **_SE, "project_conv": "conv_pwl",
                     "project_bn": "bn2"},
    "ConvBnAct": {"project_conv": "conv", "project_bn": "bn1"},
}
#: timm's modules outside the blocks, by our layer name.
OUTER = {"stem_conv": "conv_stem", "stem_bn": "bn1", "top_conv": "conv_head", "top_bn": "bn2",
         "predictions": "classifier"}


def _timm_block(block) -> str:
    """The timm block class of a resolved block (the table of the module docstring)."""
    if block.kind == "mb" and block.hidden_channels is None:
        if block.experts:
            raise ValueError(f"{block.name}: timm has no CondConv depthwise-separable block.")
        return "DepthwiseSeparable"
    if block.kind == "mb":
        return "CondConvResidual" if block.experts else "InvertedResidual"
    return "EdgeResidual" if block.hidden_channels is not None else "ConvBnAct"


def _layout(entry):
    """How :func:`_to_keras` turns the timm tensor of a manifest entry into ours."""
    shape = entry.shape
    if len(shape) == 5:  # CondConv experts (N, k, k, I, O), stored (N, O*I*k*k)
        _, k, _, cin, cout = shape
        return ("cc_dw", cin, k) if entry.kind == "depthwise" else ("cc_conv", cout, cin, k)
    if len(shape) < 4:
        return {1: "vec", 2: "dense"}[len(shape)]
    return "dw" if entry.kind == "depthwise" else "conv"


def _module(entry, positions) -> str:
    if entry.layer in OUTER:
        return OUTER[entry.layer]
    block, stage, index = positions[entry.block]
    kind = _timm_block(block)
    role = block_role(entry)
    if role not in PARTS[kind]:
        what = "squeeze-excitation" if role.startswith("se_") else role
        raise ValueError(f"{entry.block}: timm's {kind} block has no {what}.")
    return f"blocks.{stage}.{index}.{PARTS[kind][role]}"


def expected_tensors(spec, classes: int | None = 1000, head: bool = True) -> list[tuple]:
    """Every tensor a timm state dict of ``spec`` holds: ``(timm name, our flat name, layout,
    timm shape)``, with the classifier when ``classes`` is given. ``head=False`` leaves out the
    head convolution (``conv_head``, ``bn2``) and the classifier: the tensors of a
    ``features_only`` backbone (smp's ``tu-*`` encoders, effdet's backbones).

    The weights and their shapes are the spec's manifest
    (:func:`~keras_efficientnet.specs.manifest.weight_manifest`), in its order; only their
    timm names (:data:`PARTS`, :data:`OUTER`) and layouts are decided here.

    Example:
        >>> from keras_efficientnet.specs import get_spec
        >>> from keras_efficientnet.pretrained.convert.timm import expected_tensors
        >>> entries = expected_tensors(get_spec("efficientnet_b0"))
        >>> entries[0][:2], len(entries)
        (('conv_stem.weight', 'stem_conv/kernel'), 311)
    """
    positions = block_positions(spec)
    return [(f"{_module(e, positions)}.{TORCH_VARIABLES[e.variable]}", e.name, _layout(e), torch_shape(e))
            for e in weight_manifest(spec, classes if head else None) if head or e.block != "top"]


_PERMUTATIONS = {"conv": TO_KERAS["conv"], "dw": TO_KERAS["depthwise"], "dense": TO_KERAS["dense"]}


def _to_keras(array, layout):
    if layout == "vec":
        return array
    if layout in _PERMUTATIONS:
        return np.transpose(array, _PERMUTATIONS[layout])
    if layout[0] == "cc_conv":
        _, out, inp, k = layout
        return np.transpose(array.reshape(-1, out, inp, k, k), (0, 3, 4, 2, 1))
    if layout[0] == "cc_dw":
        _, channels, k = layout
        return np.transpose(array.reshape(-1, channels, 1, k, k), (0, 3, 4, 1, 2))
    raise ValueError(f"Unknown layout {layout!r}.")


def _classes(state) -> int | None:
    weight = state.get("classifier.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else None


_show = show_names


def convert_state_dict(state: dict, spec, source: str = "<state dict>", head: bool = True) -> Converted:
    """Convert a timm state dict (``{name: array}``) for a model of ``spec``, strictly;
    ``head=False`` for a ``features_only`` backbone without ``conv_head``/``bn2``/classifier
    (see :func:`expected_tensors`).

    Raises:
        ValueError: listing tensors the spec does not expect, expected tensors that are
            missing, and tensors of the wrong shape.

    Example:
        >>> import timm, torch
        >>> from keras_efficientnet.specs import get_spec
        >>> from keras_efficientnet.pretrained.convert.timm import convert_state_dict
        >>> sd = {k: v.numpy() for k, v in timm.create_model("efficientnet_lite0").state_dict().items()}
        >>> conv = convert_state_dict(sd, get_spec("efficientnet_lite0"))
        >>> conv.arrays["block2a_dwconv/kernel"].shape
        (3, 3, 96, 1)
    """
    entries = expected_tensors(spec, _classes(state) if head else None, head=head)
    consumed = {k: "BatchNorm update counter (training bookkeeping)"
                for k in state if k.endswith(".num_batches_tracked")}
    expected = {e[0] for e in entries}
    unexpected = set(state) - expected - set(consumed)
    missing = expected - set(state)
    wrong = [f"{name} {tuple(state[name].shape)} (expected {shape})"
             for name, _, _, shape in entries
             if name in state and tuple(state[name].shape) != tuple(shape)]
    if unexpected or missing or wrong:
        parts = []
        if wrong:
            parts.append(f"shapes differ: {_show(wrong)}")
        if missing:
            parts.append(f"missing tensors: {_show(missing)}")
        if unexpected:
            parts.append(f"tensors {spec.name} has no place for: {_show(unexpected)}")
        hint = ""
        try:
            guesses = candidates(state)
        except Exception:  # the hint is best effort; the error above is the message
            guesses = []
        if guesses:
            hint = f" The tensors fit {', '.join(guesses[:6])}."
        raise ValueError(f"{source} is not a timm {spec.name} state dict: " + "; ".join(parts)
                         + f".{hint} Build the matching variant, or check the file.")
    arrays = {dst: _to_keras(np.asarray(state[src]), layout) for src, dst, layout, _ in entries}
    return Converted(arrays, consumed, source=source, format="timm", head_names=HEAD_NAMES)


def read(path: str, spec) -> Converted:
    """Read a timm checkpoint file for a model of ``spec`` (see :func:`convert_state_dict`).

    Refuses a file whose conventions (padding, BatchNorm epsilon) are not the spec's: see
    :func:`check_conventions`.
    """
    state = load_state_dict(path)
    check_conventions(path, state, spec)
    return convert_state_dict(state, spec, source=path)


# -- which conventions a file was trained with ---------------------------------------------

def _conventions(spec) -> tuple[str, float]:
    return spec.padding, float(spec.bn_epsilon)


def _describe(spec) -> str:
    kind = "TensorFlow port" if spec.padding == "same" else "PyTorch-native"
    return f"{kind}: padding={spec.padding!r}, BatchNorm epsilon {spec.bn_epsilon:g}"


def _known(name):
    from ...specs.variants import VARIANTS

    if not isinstance(name, str):
        return None
    name = name.split(".")[0].strip()
    if name.startswith("timm/"):
        name = name[len("timm/"):]
    return name if name in VARIANTS else None


def _hf_cache_repo(path: str):
    """(variant, how) when ``path`` is a file of a ``timm/<arch>.<tag>`` repository in the
    Hugging Face cache (``.../models--timm--<arch>.<tag>/snapshots/<commit>/<file>``: the
    repository it was published in names its network), else None."""
    parts = os.path.abspath(path).split(os.sep)
    if len(parts) >= 4 and parts[-3] == "snapshots" and parts[-4].startswith("models--timm--"):
        arch = _known(parts[-4][len("models--timm--"):])
        if arch:
            return arch, f"its Hugging Face hub repository timm/{parts[-4][len('models--timm--'):]}"
    return None


def _cheap_evidence(path: str):
    """(variant, how) from what the file or its cache record says outright, or None."""
    declared = _known(getattr(read_state_dict(path), "arch", None))
    if declared:
        return declared, "its 'arch' entry"
    try:
        from ..cache import read_record

        record = read_record(path) or {}
    except Exception:  # the record is a hint; a broken one says nothing
        record = {}
    upstream = _known(record.get("upstream"))
    if upstream:
        return upstream, f"its download record (weight set {record.get('weight_set')})"
    hub_repo = _hf_cache_repo(path)
    if hub_repo:
        return hub_repo
    if os.path.basename(path) in ("model.safetensors", "pytorch_model.bin"):
        config = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
        if os.path.isfile(config):
            import json

            try:
                with open(config) as f:
                    arch = _known(json.load(f).get("architecture"))
            except (OSError, ValueError, AttributeError):
                arch = None
            if arch:
                return arch, f"the hub config {config!r}"
    return None


def _hash_evidence(path: str, names) -> tuple[str, str] | None:
    from ..registry import TIMM_WEIGHTS
    from ..cache import file_hash

    rows = [r for r in TIMM_WEIGHTS if r[3] and r[0] in names]
    if not rows:
        return None
    digest = file_hash(path, "sha256")
    for arch, tag, _, sha, *_ in rows:
        if digest.startswith(sha):
            return arch, f"its sha256, that of timm's published {arch}.{tag} file"
    return None


def _name_evidence(path: str, names) -> tuple[str, str] | None:
    from ..registry import TIMM_KERAS_TWINS

    base = os.path.basename(path).lower()
    options = {n.lower(): n for n in names}
    options.update({TIMM_KERAS_TWINS[n].lower(): TIMM_KERAS_TWINS[n] for n in names
                    if n in TIMM_KERAS_TWINS})
    for key in sorted(options, key=len, reverse=True):
        if base.startswith(key) and (len(base) == len(key) or not base[len(key)].isalnum()):
            return options[key], f"its file name {os.path.basename(path)!r}"
    return None


def _split_by_conventions(names) -> dict:
    from ...specs import get_spec

    groups: dict = {}
    for name in names:
        groups.setdefault(_conventions(get_spec(name)), []).append(name)
    return groups


def file_variant(path: str, state: dict | None = None):
    """Which variant a timm file says it is, and how it says so: ``(variant, how)`` or None.

    Looked for in order: the checkpoint's own ``arch`` entry (timm's training checkpoints,
    safetensors metadata), the download record of a registered weight set, a Hugging Face hub
    ``config.json`` next to ``model.safetensors``, the file's sha256 among timm's published
    files, and finally its name (``efficientnet_b0_ra-3dd342df.pth``,
    ``tf_efficientnet_b0.pth``). Only the last three need the tensors to fit several
    variants; they choose among those.

    Example:
        >>> import os, tempfile, torch, timm
        >>> from keras_efficientnet.pretrained.convert.timm import file_variant
        >>> sd = timm.create_model("efficientnet_lite0").state_dict()
        >>> path = os.path.join(tempfile.mkdtemp(), "checkpoint.pth")
        >>> torch.save({"arch": "efficientnet_lite0", "state_dict": sd}, path)
        >>> file_variant(path)
        ('efficientnet_lite0', "its 'arch' entry")
    """
    state = load_state_dict(path) if state is None else state
    found = _cheap_evidence(path)
    if found:
        return found
    names = candidates(state)
    return _hash_evidence(path, names) or _name_evidence(path, names)


def _ambiguity_message(path: str, groups: dict, spec_name: str | None) -> str:
    tf = next((n for conv, ns in groups.items() if conv[0] == "same" for n in ns
               if n.startswith("tf_")), None) or next(
        n for conv, ns in groups.items() if conv[0] == "same" for n in ns)
    native = next(n for conv, ns in groups.items() if conv[0] != "same" for n in ns)
    subject = f"loaded into {spec_name!r}" if spec_name else "built"
    return (f"{path!r} is a timm state dict whose tensors fit both {native} (PyTorch-native: "
            f"symmetric padding, BatchNorm epsilon 1e-5) and {tf} (TensorFlow port: 'same' "
            "padding, epsilon 1e-3), and nothing in the file says which it is; "
            f"{subject} under the wrong convention its logits would be silently a few percent off. "
            f"Say which: keras_efficientnet.create_model({tf!r}, weights=path) for a tf_ "
            f"(TensorFlow-ported) checkpoint, or keras_efficientnet.create_model({native!r}, "
            "weights=path) for one trained in PyTorch.")


def check_conventions(path: str, state: dict, spec) -> None:
    """Refuse to load a timm file into a spec of other conventions than the file's.

    timm's ``efficientnet_b0`` (trained in PyTorch: symmetric padding, BatchNorm epsilon
    1e-5) and ``tf_efficientnet_b0`` (ported from TensorFlow: "same" padding, 1e-3) have the
    same tensors. When the file says which it is (:func:`file_variant`), a spec of the other
    conventions is refused; when it does not, a spec named after a timm variant is taken at
    its word, and any other spec (``EfficientNetB0``, a custom spec) is refused with the
    ``create_model`` calls to use.

    Raises:
        ValueError: naming the file, both conventions and the call to use.

    Example:
        >>> import os, tempfile, torch, timm
        >>> from keras_efficientnet.specs import get_spec
        >>> from keras_efficientnet.pretrained.convert.timm import check_conventions, load_state_dict
        >>> path = os.path.join(tempfile.mkdtemp(), "efficientnet_lite0_ra.pth")
        >>> torch.save(timm.create_model("efficientnet_lite0").state_dict(), path)
        >>> check_conventions(path, load_state_dict(path), get_spec("tf_efficientnet_lite0"))
        Traceback (most recent call last):
        ...
        ValueError: ... is a timm efficientnet_lite0 checkpoint (PyTorch-native...
    """
    from ...specs import get_spec
    from ...specs.variants import TIMM_NAMES

    evidence = _cheap_evidence(path)
    if evidence is None:
        names = candidates(state)
        groups = _split_by_conventions(names)
        if len(groups) < 2:
            return
        evidence = _hash_evidence(path, names) or _name_evidence(path, names)
        if evidence is None:
            if spec.name in TIMM_NAMES:
                return  # the caller named the timm variant, and with it the conventions
            raise ValueError(_ambiguity_message(path, groups, spec.name))
    variant, how = evidence
    theirs = get_spec(variant)
    if _conventions(theirs) != _conventions(spec):
        raise ValueError(f"{path!r} is a timm {variant} checkpoint ({_describe(theirs)}; from "
                         f"{how}), but {spec.name!r} uses {_describe(spec)}: its outputs would "
                         f"not match timm's. Use keras_efficientnet.create_model({variant!r}, "
                         "weights=path) or keras_efficientnet.from_checkpoint(path).")


def candidates(state: dict, head: bool = True) -> list[str]:
    """The timm variant names whose tensors (names and shapes) are exactly ``state``'s;
    ``head=False`` for a ``features_only`` backbone (see :func:`expected_tensors`).

    Names that differ only in conventions the tensors do not record (padding, BatchNorm
    epsilon: ``efficientnet_b0`` and ``tf_efficientnet_b0``) all match.
    """
    from ...specs.variants import TIMM_NAMES, VARIANTS

    have = {k: tuple(v.shape) for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    classes = _classes(state) if head else None
    stem = have.get("conv_stem.weight")
    found = []
    for name in TIMM_NAMES:
        try:
            entries = expected_tensors(VARIANTS[name], classes, head=head)
        except ValueError:
            continue
        if entries[0][3] != stem or len(entries) != len(have):
            continue
        if all(have.get(src) == tuple(shape) for src, _, _, shape in entries):
            found.append(name)
    return found


def infer(path: str) -> dict:
    """Which variant a timm checkpoint holds: ``{"variant", "candidates", "classes"}``.

    When the tensors fit variants of different conventions (``efficientnet_b0`` and
    ``tf_efficientnet_b0``), the file must say which (:func:`file_variant`); among variants of
    the same conventions the TF-port name (``tf_...``) is preferred. When they fit both and
    nothing in the file tells them apart, ``variant`` is None and ``ambiguous`` holds the
    message naming the ``create_model`` calls to use (``from_checkpoint`` raises it).

    Raises:
        ValueError: when no variant we can build has exactly these tensors.

    Example:
        >>> import os, tempfile, torch, timm
        >>> from keras_efficientnet.pretrained.convert.timm import infer
        >>> path = os.path.join(tempfile.mkdtemp(), "tf_efficientnet_lite0.pth")
        >>> torch.save(timm.create_model("tf_efficientnet_lite0").state_dict(), path)
        >>> infer(path)["variant"]
        'tf_efficientnet_lite0'
    """
    state = load_state_dict(path)
    found = candidates(state)
    if not found:
        raise ValueError(f"{path!r} is a timm state dict, but of no EfficientNet variant this "
                         "package builds (pruned, GroupNorm, or another architecture?).")
    groups = _split_by_conventions(found)
    evidence = _cheap_evidence(path)
    if evidence is None and len(groups) > 1:
        evidence = _hash_evidence(path, found) or _name_evidence(path, found)
        if evidence is None:  # inspect_checkpoint reports it; from_checkpoint refuses it
            return {"variant": None, "candidates": found, "classes": _classes(state),
                    "ambiguous": _ambiguity_message(path, groups, None)}
    if evidence is not None:
        from ...specs import get_spec

        same = [n for n in found if _conventions(get_spec(n)) == _conventions(get_spec(evidence[0]))]
        variant = evidence[0] if evidence[0] in found or not same else sorted(
            same, key=lambda n: (not n.startswith("tf_"), found.index(n)))[0]
        return {"variant": variant, "candidates": found, "classes": _classes(state),
                "evidence": evidence[1]}
    preferred = sorted(found, key=lambda n: (not n.startswith("tf_"), found.index(n)))
    return {"variant": preferred[0], "candidates": found, "classes": _classes(state)}


register_format("timm", sniff, read, infer)
