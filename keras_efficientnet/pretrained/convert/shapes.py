"""The weights a spec's model has, computed from the spec alone (no Keras, no model built).

:func:`expected_shapes` lists every flat weight name (see
:mod:`keras_efficientnet.pretrained.naming`; Keras 3 names a depthwise kernel ``kernel``) of the model the factory builds for a spec, with
its Keras-layout shape. Converters use it to say which variant a checkpoint holds
(:func:`match_variants`) without building any model.
"""

from __future__ import annotations

from ...specs import get_spec, resolve
from ...specs.naming import dwconv_name

BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
HEAD_NAMES = ("predictions/kernel", "predictions/bias")


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
    resolved = resolve(get_spec(spec))
    out: dict[str, tuple[int, ...]] = {}

    def conv(name, kernel, cin, cout, bias=False):
        out[f"{name}/kernel"] = (kernel, kernel, cin, cout)
        if bias:
            out[f"{name}/bias"] = (cout,)

    def bn(name, channels):
        for variable in BN_VARIABLES:
            out[f"{name}/{variable}"] = (channels,)

    def se(prefix, channels, squeezed):
        if squeezed:
            conv(f"{prefix}_se_reduce", 1, channels, squeezed, bias=True)
            conv(f"{prefix}_se_expand", 1, squeezed, channels, bias=True)

    conv("stem_conv", 3, 3, resolved.stem_channels)
    bn("stem_bn", resolved.stem_channels)
    for block in resolved.blocks:
        if block.experts:
            raise ValueError(f"{block.name} is a CondConv block; expected_shapes does not cover it.")
        p, cin, hidden, cout = block.name, block.in_channels, block.hidden_channels, block.out_channels
        if block.kind == "mb":
            width = cin
            if hidden is not None:
                conv(f"{p}_expand_conv", 1, cin, hidden)
                bn(f"{p}_expand_bn", hidden)
                width = hidden
            out[f"{p}_{dwconv_name(resolved.spec)}/kernel"] = (block.kernel, block.kernel, width, 1)
            bn(f"{p}_bn", width)
            se(p, width, block.se_channels)
            conv(f"{p}_project_conv", 1, width, cout)
        elif hidden is not None:  # fused, with expansion
            conv(f"{p}_expand_conv", block.kernel, cin, hidden)
            bn(f"{p}_expand_bn", hidden)
            se(p, hidden, block.se_channels)
            conv(f"{p}_project_conv", 1, hidden, cout)
        else:  # fused, a single convolution
            se(p, cin, block.se_channels)
            conv(f"{p}_project_conv", block.kernel, cin, cout)
        bn(f"{p}_project_bn", cout)
    conv("top_conv", 1, resolved.blocks[-1].out_channels, resolved.head_channels)
    bn("top_bn", resolved.head_channels)
    if classes:
        out["predictions/kernel"] = (resolved.head_channels, int(classes))
        out["predictions/bias"] = (int(classes),)
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
