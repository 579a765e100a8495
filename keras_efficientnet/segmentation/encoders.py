"""Which encoder a segmentation model runs, and which of its layers the decoder taps.

Three tap conventions exist for the same networks, and a converted checkpoint only gives the
same logits with the right one:

* ``"default"``: this package's :func:`~keras_efficientnet.models.features.feature_info`
  (timm's ``features_only`` levels: the last block at each reduction; smp's ``tu-*`` encoders).
* smp's ``timm-efficientnet-b*``: the stem activation for the stride-2 level, then the ends of
  stages 2, 3, 5 and 7.
* smp's ``efficientnet-b*`` (lukemelas' efficientnet_pytorch): the stem activation, then the
  blocks at smp's ``out_indexes`` table; and every stride-2 convolution padded as
  efficientnet_pytorch's static "same" padding computed for the variant's native image size.
"""

from __future__ import annotations

import dataclasses
import math

from ..specs import get_spec, resolve
from ..specs.naming import block_output

#: smp 0.6 ``efficientnet-b*``: (our variant, smp's ``out_indexes``, efficientnet_pytorch image size).
SMP_EFFICIENTNET = {
    "efficientnet-b0": ("EfficientNetB0", (2, 4, 8, 15), 224),
    "efficientnet-b1": ("EfficientNetB1", (4, 7, 15, 22), 240),
    "efficientnet-b2": ("EfficientNetB2", (4, 7, 15, 22), 260),
    "efficientnet-b3": ("EfficientNetB3", (4, 7, 17, 25), 300),
    "efficientnet-b4": ("EfficientNetB4", (5, 9, 21, 31), 380),
    "efficientnet-b5": ("EfficientNetB5", (7, 12, 26, 38), 456),
    "efficientnet-b6": ("EfficientNetB6", (8, 14, 30, 44), 528),
    "efficientnet-b7": ("EfficientNetB7", (10, 17, 37, 54), 600),
}


@dataclasses.dataclass(frozen=True)
class EncoderPlan:
    """How to build and tap an encoder.

    Attributes:
        variant: our registered variant name.
        taps: the flat layer names of the five features, reductions 2, 4, 8, 16, 32.
        static_pads: ``{ZeroPadding2D layer name: ((top, bottom), (left, right))}`` to impose
            (efficientnet_pytorch's static padding), empty for none.
        smp_kind: ``"efficientnet_pytorch"``, ``"timm"``, ``"timm_universal"`` or ``""``.
    """

    variant: str
    taps: tuple
    static_pads: dict = dataclasses.field(default_factory=dict)
    smp_kind: str = ""


def _static_pad(size: int, kernel: int) -> tuple[int, int]:
    total = max((math.ceil(size / 2) - 1) * 2 + kernel - size, 0)
    return total // 2, total - total // 2


def _efficientnet_pytorch_pads(spec, image_size: int) -> dict:
    pads, size = {}, image_size
    p = _static_pad(size, 3)
    pads["stem_conv_pad"] = (p, p)
    size = math.ceil(size / 2)
    for block in resolve(spec).blocks:
        if block.stride == 2:
            p = _static_pad(size, block.kernel)
            pads[f"{block.name}_dwconv_pad"] = (p, p)
            size = math.ceil(size / 2)
    return pads


def encoder_plan(name: str, encoder_features="default") -> EncoderPlan:
    """Resolve an encoder name (ours, timm's, or smp's) to an :class:`EncoderPlan`.

    Args:
        name: a variant of this package (``"EfficientNetB0"``, ``"efficientnet_b0"``,
            ``"tf_efficientnetv2_b0"``), an smp encoder name (``"efficientnet-b3"``,
            ``"timm-efficientnet-b0"``, ``"tu-tf_efficientnet_b0"``).
        encoder_features: ``"default"`` or five layer names (qubvel's ``encoder_features``)
            overriding the taps.

    Example:
        >>> from keras_efficientnet.segmentation.encoders import encoder_plan
        >>> plan = encoder_plan("efficientnet-b0")
        >>> plan.variant, plan.taps[3], plan.smp_kind
        ('EfficientNetB0', 'block5a_project_bn', 'efficientnet_pytorch')
    """
    from ..models.features import feature_info

    if not isinstance(name, str):
        raise ValueError(f"backbone_name must be a string, got {name!r}.")
    kind, pads = "", {}
    if name in SMP_EFFICIENTNET:
        variant, indexes, image_size = SMP_EFFICIENTNET[name]
        spec = get_spec(variant)
        blocks = resolve(spec).blocks
        taps = ["stem_activation"] + [block_output(blocks[i]) for i in indexes]
        pads = _efficientnet_pytorch_pads(spec, image_size)
        kind = "efficientnet_pytorch"
    elif name.startswith("timm-efficientnet-b"):
        variant = "efficientnet_b" + name[len("timm-efficientnet-b"):]
        spec = _get(variant, name)
        blocks = resolve(spec).blocks
        ends = {}
        for block in blocks:
            ends[block.stage] = block
        taps = ["stem_activation"] + [block_output(ends[s]) for s in (1, 2, 4, 6)]
        kind = "timm"
    else:
        variant = name[3:] if name.startswith("tu-") else name
        spec = _get(variant, name)
        taps = [f.layer for f in feature_info(spec)]
        kind = "timm_universal" if name.startswith("tu-") else ""
        variant = spec.name
    if encoder_features not in (None, "default"):
        taps = list(encoder_features)
        if len(taps) != 5:
            raise ValueError(f"encoder_features must name 5 layers (reductions 2 to 32), got "
                             f"{len(taps)}: {taps}.")
    return EncoderPlan(variant, tuple(taps), pads, kind)


def _get(variant, name):
    try:
        return get_spec(variant)
    except (KeyError, ValueError):
        raise ValueError(f"Unknown encoder {name!r}: use a name of keras_efficientnet.list_models() "
                         "or an smp EfficientNet encoder name (efficientnet-b0..b7, "
                         "timm-efficientnet-b0..b8, tu-<timm name>).") from None
