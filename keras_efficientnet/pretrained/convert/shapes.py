"""The weights a spec's model has, computed from the spec alone (no Keras, no model built).

:func:`expected_shapes` lists every flat weight name of the model the factory builds for a
spec, with its Keras-layout shape, read from the spec's weight manifest
(:func:`keras_efficientnet.specs.manifest.weight_manifest`). Converters use it to say which
variant a checkpoint holds (:func:`match_variants`) without building any model; the PyTorch
converters list a file's tensors from it, adding only their naming rule (:func:`torch_shape`,
:data:`TORCH_VARIABLES`, :func:`block_role`, :func:`block_positions` are shared).
"""

from __future__ import annotations

from ...specs import get_spec, resolve
from ...specs.manifest import weight_manifest
from .torch_state import BN_VARIABLES

HEAD_NAMES = ("predictions/kernel", "predictions/bias")
#: our variable names -> the PyTorch parameter (or buffer) names they are stored under.
TORCH_VARIABLES = {"kernel": "weight", "bias": "bias", **{v: k for k, v in BN_VARIABLES.items()}}


def expected_shapes(spec, classes: int | None = None) -> dict[str, tuple[int, ...]]:
    """``{flat_name: shape}`` of the model built from ``spec`` (channels_last layouts).

    Args:
        spec: a :class:`~keras_efficientnet.specs.ModelSpec` or variant name.
        classes: classifier width; None leaves the classifier out (``include_top=False``).

    Example:
        >>> from keras_efficientnet.pretrained.convert.shapes import expected_shapes
        >>> shapes = expected_shapes("EfficientNetB0", classes=10)
        >>> shapes["block2a_dwconv/kernel"], shapes["predictions/kernel"]
        ((3, 3, 96, 1), (1280, 10))
    """
    return {e.name: e.shape for e in weight_manifest(get_spec(spec), classes)}


#: ``np.transpose`` axes from PyTorch's layout to Keras', by kind of weight: convolutions
#: OIHW -> HWIO, depthwise ``(C, 1, k, k)`` -> ``(k, k, C, 1)``, linear ``(out, in)`` -> ``(in, out)``.
TO_KERAS = {"conv": (2, 3, 1, 0), "depthwise": (2, 3, 0, 1), "dense": (1, 0)}


def keras_permutation(entry):
    """The :data:`TO_KERAS` axes for a (non-CondConv) manifest entry; None for a vector."""
    if len(entry.shape) < 2:
        return None
    if entry.kind == "depthwise":
        return TO_KERAS["depthwise"]
    return TO_KERAS["conv" if len(entry.shape) == 4 else "dense"]


def torch_shape(entry) -> tuple[int, ...]:
    """The shape PyTorch stores a manifest entry in: the inverse of the converters' layout
    transform. Convolutions HWIO -> OIHW, depthwise ``(k, k, C, 1)`` -> ``(C, 1, k, k)``,
    dense and routing ``(in, out)`` -> ``(out, in)``, CondConv experts ``(N, k, k, I, O)`` ->
    ``(N, O*I*k*k)``; vectors unchanged.

    Example:
        >>> from keras_efficientnet.specs import get_spec
        >>> from keras_efficientnet.specs.manifest import weight_manifest
        >>> from keras_efficientnet.pretrained.convert.shapes import torch_shape
        >>> [torch_shape(e) for e in weight_manifest(get_spec("EfficientNetB0"))[5:7]]
        [(32, 1, 3, 3), (32,)]
    """
    s = entry.shape
    if len(s) == 5:
        n, kh, kw, cin, cout = s
        return (n, cout * cin * kh * kw)
    perm = keras_permutation(entry)
    if perm is None:
        return tuple(s)
    out = [0] * len(s)
    for keras_axis, torch_axis in enumerate(perm):  # keras.shape[j] == torch.shape[perm[j]]
        out[torch_axis] = s[keras_axis]
    return tuple(out)


def block_role(entry) -> str:
    """A manifest entry's role in its block: its layer name without ``"<block>_"``
    (``expand_conv``, ``se_reduce``, ...), the depthwise layer ``dwconv`` in every family."""
    return "dwconv" if entry.kind == "depthwise" else entry.layer[len(entry.block) + 1:]


def block_positions(spec) -> dict:
    """``{block name: (resolved block, stage, index within the stage)}``, in network order."""
    out, count = {}, {}
    for block in resolve(spec).blocks:
        index = count.get(block.stage, 0)
        count[block.stage] = index + 1
        out[block.name] = (block, block.stage, index)
    return out


def classes_of(shapes: dict) -> int | None:
    """The classifier width of ``{flat_name: shape}``, or None when it has no classifier.

    Example:
        >>> from keras_efficientnet.pretrained.convert.shapes import classes_of
        >>> classes_of({"predictions/kernel": (1280, 7)}), classes_of({})
        (7, None)
    """
    shape = shapes.get("predictions/kernel")
    return None if shape is None else int(shape[-1])


def match_variants(shapes: dict, candidates) -> list[str]:
    """The candidate variants whose model has exactly these weights (classifier aside).

    Args:
        shapes: ``{flat_name: shape}`` of a checkpoint, converted to our names.
        candidates: variant names (or specs) to try, in order of preference.

    Returns:
        The names that fit, in the candidates' order (duplicated specs listed once).

    Example:
        >>> from keras_efficientnet.pretrained.convert.shapes import expected_shapes, match_variants
        >>> shapes = expected_shapes("EfficientNetB3", classes=5)
        >>> match_variants(shapes, ["EfficientNetB0", "EfficientNetB3"])
        ['EfficientNetB3']
    """
    body = {k: tuple(v) for k, v in shapes.items()
            if k not in HEAD_NAMES and not k.startswith("normalization/")}
    found, seen = [], []
    for candidate in candidates:
        spec = get_spec(candidate)
        if any(spec is s for s in seen):
            continue
        seen.append(spec)
        try:
            if expected_shapes(spec) == body:
                found.append(spec.name)
        except ValueError:
            continue
    return found
