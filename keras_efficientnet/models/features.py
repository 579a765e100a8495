"""Multi-scale features (``P1``..``P5``) for detection and segmentation heads.

Everything is derived from :func:`keras_efficientnet.specs.resolve`: the stem halves the input,
each block multiplies the running reduction by its stride, and the feature of reduction ``2**k``
is the output of the *last* block that runs at that reduction (timm's and keras-hub's choice:
``P1`` of EfficientNet-B0 is ``block1a``, ``P5`` is ``block7a``). In the default flat graph
that output is keras.applications' layer ``block1a_project_bn``, ``block2b_add``, ...; in a
``layout="blocks"`` model it is the block layer itself. When no block runs at a reduction (a
network whose first block already has stride 2) the stem's activation is used.

:func:`expansion_taps` lists the other convention, qubvel segmentation_models' encoder taps
on keras.applications models: the expansion activation of the first block of each
downsampling stage (``block2a_expand_activation``, ``block3a_...``, ``block4a_...``,
``block6a_...``), then ``top_activation``.
"""

from __future__ import annotations

import dataclasses
import math

import keras

from ..specs import ModelSpec, VARIANTS, get_spec, resolve
from ..specs.naming import block_output, default_model_name


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
    """One pyramid level.

    Attributes:
        name: ``"P1"``..``"P5"`` (``P{k}`` has reduction ``2**k``).
        level: ``k``.
        reduction: input size / feature size (the stride), ``2**k``.
        channels: channels of the feature.
        layer: name of the flat graph's layer whose output is the feature.
        stage: 0-based stage of that block (-1 for the stem).
        block_index: 0-based index of that block among all blocks (-1 for the stem).
        block: the block's name (the layer of a ``layout="blocks"`` model).
    """

    name: str
    level: int
    reduction: int
    channels: int
    layer: str
    stage: int
    block_index: int
    block: str = ""


class FeatureInfoList(list):
    """A list of :class:`FeatureInfo` with timm's ``feature_info`` accessors, as carried by
    ``create_model(..., features_only=True).feature_info``.

    Example:
        >>> from keras_efficientnet.models.features import FeatureInfoList, feature_info
        >>> info = FeatureInfoList(feature_info("EfficientNetB0"))
        >>> info.channels(), info.reduction()
        ([16, 24, 40, 112, 320], [2, 4, 8, 16, 32])
    """

    def channels(self, idx=None):
        """Channels of every level (or of level ``idx``)."""
        return self._get("channels", idx)

    def reduction(self, idx=None):
        """Reduction (stride) of every level (or of level ``idx``)."""
        return self._get("reduction", idx)

    def module_name(self, idx=None):
        """Name of the flat graph's layer of every level (or of level ``idx``)."""
        return self._get("layer", idx)

    def _get(self, field, idx):
        if idx is None:
            return [getattr(f, field) for f in self]
        if isinstance(idx, (list, tuple)):
            return [getattr(self[i], field) for i in idx]
        return getattr(self[idx], field)


def feature_info(spec_or_name, drop_connect_rate: float | None = None) -> list[FeatureInfo]:
    """The pyramid levels of a network, finest first.

    Args:
        spec_or_name: a :class:`~keras_efficientnet.specs.ModelSpec` or a variant name.
        drop_connect_rate: ignored for the result (kept for symmetry with the factory).

    Returns:
        A list of :class:`FeatureInfo`, one per reduction (2, 4, 8, 16, 32 for every
        published variant).

    Example:
        >>> from keras_efficientnet.models.features import feature_info
        >>> [(f.name, f.reduction, f.channels, f.layer) for f in feature_info("EfficientNetB0")]
        ... # doctest: +NORMALIZE_WHITESPACE
        [('P1', 2, 16, 'block1a_project_bn'), ('P2', 4, 24, 'block2b_add'),
         ('P3', 8, 40, 'block3b_add'), ('P4', 16, 112, 'block5c_add'),
         ('P5', 32, 320, 'block7a_project_bn')]
    """
    spec = spec_or_name if isinstance(spec_or_name, ModelSpec) else get_spec(spec_or_name)
    resolved = resolve(spec)
    last = {2: FeatureInfo("P1", 1, 2, resolved.stem_channels, "stem_activation", -1, -1,
                           "stem_activation")}
    reduction = 2
    for block in resolved.blocks:
        reduction *= block.stride
        level = int(round(math.log2(reduction)))
        last[reduction] = FeatureInfo(f"P{level}", level, reduction, block.out_channels,
                                      block_output(block), block.stage, block.index, block.name)
    return [last[r] for r in sorted(last)]


def expansion_taps(spec_or_name) -> list[tuple[str, int]]:
    """keras.applications-style encoder taps: ``(layer name, reduction)`` of the expansion
    activation of every block that downsamples (at the resolution before its stride), then
    ``top_activation`` at the final reduction; the layers qubvel segmentation_models' U-Net
    encoders read from keras.applications' EfficientNets.

    Example:
        >>> from keras_efficientnet.models.features import expansion_taps
        >>> expansion_taps("EfficientNetB0")  # doctest: +NORMALIZE_WHITESPACE
        [('block2a_expand_activation', 2), ('block3a_expand_activation', 4),
         ('block4a_expand_activation', 8), ('block6a_expand_activation', 16),
         ('top_activation', 32)]
    """
    spec = spec_or_name if isinstance(spec_or_name, ModelSpec) else get_spec(spec_or_name)
    taps, reduction = [], 2
    for block in resolve(spec).blocks:
        if block.stride == 2 and block.hidden_channels is not None:
            taps.append((f"{block.name}_expand_activation", reduction))
        reduction *= block.stride
    return taps + [("top_activation", reduction)]


def _spec_of(model, spec):
    if spec is not None:
        return spec if isinstance(spec, ModelSpec) else get_spec(spec)
    by_lower = {name.lower(): s for name, s in VARIANTS.items()}
    by_lower.update({default_model_name(name): s for name, s in VARIANTS.items()})
    found = by_lower.get(model.name.lower())
    if found is None:
        raise ValueError(f"Cannot tell which EfficientNet the model {model.name!r} is. Pass its spec: "
                         "create_feature_extractor(model, spec=...) with the ModelSpec or variant "
                         "name it was built from.")
    return found


def _select(infos, out_names, out_indices):
    if out_names is not None and out_indices is not None:
        raise ValueError("Pass out_names or out_indices, not both.")
    by_name = {f.name: f for f in infos}
    if out_names is not None:
        out_names = [out_names] if isinstance(out_names, str) else list(out_names)
        unknown = [n for n in out_names if n not in by_name]
        if unknown:
            raise ValueError(f"Unknown feature names {unknown}; this model has {list(by_name)}.")
        return [by_name[n] for n in out_names]
    if out_indices is not None:
        out_indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        bad = [i for i in out_indices if not -len(infos) <= i < len(infos)]
        if bad:
            raise ValueError(f"out_indices {bad} out of range for {len(infos)} levels "
                             f"({[f.name for f in infos]}).")
        return [infos[i] for i in out_indices]
    return list(infos)


def create_feature_extractor(model_or_name, out_names=None, out_indices=None, spec=None,
                             input_shape=(None, None, 3), weights=None, name=None, **kwargs):
    """A model returning a dict of pyramid features ``{"P1": ..., "P5": ...}``.

    Given a built model, the extractor reuses its layers (same weights, shared: training one
    trains the other) and its input. Given a variant name or spec, it first builds the
    backbone with ``include_top=False`` and ``input_shape`` (free size by default).

    Args:
        model_or_name: a model from this package, a variant name, or a ``ModelSpec``.
        out_names: the levels to return, e.g. ``("P3", "P4", "P5")`` (default: all).
        out_indices: alternatively, their positions in :func:`feature_info` (``(2, 3, 4)``).
        spec: the spec a custom-built model came from (found from the model's name for the
            published variants).
        input_shape: input shape when building from a name or spec.
        weights: weights when building from a name or spec (``None``, ``"imagenet"``, a path).
        name: the extractor's name.
        **kwargs: other :func:`~keras_efficientnet.build_efficientnet` arguments when building.

    Returns:
        A ``keras.Model`` with dict outputs keyed by level name. Its ``pyramid_outputs``
        attribute holds the same dict, as keras-hub backbones have it, so the extractor can be
        the ``image_encoder`` of keras-hub's ``RetinaNetBackbone`` or ``DeepLabV3Backbone``
        (``tests/test_keras_hub.py``).

    Raises:
        ValueError: for unknown levels, or a model whose layers do not match the spec.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.models.features import create_feature_extractor
        >>> fx = create_feature_extractor("EfficientNetB0", out_names=("P3", "P5"))
        >>> out = fx.predict(np.zeros((1, 64, 96, 3), "float32"), verbose=0)
        >>> {k: v.shape for k, v in out.items()}
        {'P3': (1, 8, 12, 40), 'P5': (1, 2, 3, 320)}
    """
    if isinstance(model_or_name, keras.Model):
        model = model_or_name
        spec = _spec_of(model, spec)
    else:
        from .factory import build_efficientnet
        spec = model_or_name if isinstance(model_or_name, ModelSpec) else get_spec(model_or_name)
        model = build_efficientnet(spec, include_top=False, weights=weights,
                                   input_shape=input_shape, **kwargs)
    chosen = _select(feature_info(spec), out_names, out_indices)
    data_format = keras.config.image_data_format()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            data_format = layer.data_format
            break
    axis = -1 if data_format == "channels_last" else 1
    outputs = {}
    for info in chosen:
        try:
            names = {l.name for l in model.layers}
            layer = model.get_layer(info.layer if info.layer in names or info.block not in names
                                    else info.block)
        except ValueError:
            raise ValueError(f"The model {model.name!r} has no layer {info.layer!r} (feature "
                             f"{info.name}); it was not built from this spec. Pass spec=.") from None
        shape = layer.output.shape
        if shape[axis] != info.channels:
            raise ValueError(f"Layer {info.layer!r} of {model.name!r} has {shape[axis]} channels but "
                             f"the spec says {info.channels}: the model was built from another "
                             "spec. Pass spec=.")
        outputs[info.name] = layer.output
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    extractor = keras.Model(inputs, outputs, name=name or f"{model.name}_features")
    # keras-hub's backbone attribute: its RetinaNet and DeepLabV3 take any keras.Model with
    # `pyramid_outputs` {"P2": tensor, ...} as their image_encoder
    extractor.pyramid_outputs = dict(outputs)
    return extractor
