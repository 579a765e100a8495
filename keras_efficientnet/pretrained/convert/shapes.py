"""The weights a spec's model has, computed from the spec alone (no Keras, no model built).

:func:`expected_shapes` lists every flat weight name of the model the factory builds for a
spec, with its Keras-layout shape, read from the spec's weight manifest
(:func:`keras_efficientnet.specs.manifest.weight_manifest`). Converters use it to say which
variant a checkpoint holds (:func:`match_variants`) without building any model.
"""

from __future__ import annotations

from ...specs import get_spec
from ...specs.manifest import weight_manifest

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
    return {e.name: e.shape for e in weight_manifest(get_spec(spec), classes)}


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
