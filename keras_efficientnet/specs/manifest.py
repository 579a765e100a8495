"""The per-spec weight manifest: every weight of the model a spec describes, computed from the
spec alone (no Keras, no model built).

One :class:`WeightEntry` per variable, in the order the factory creates them: its one flat
name (``block2a_expand_conv/kernel``: the layer name keras.applications uses, then the
variable; the same in ``layout="flat"`` and ``layout="blocks"``), its shape in Keras' layout
(channels-last kernels), the layer and block it belongs to, what kind of weight it is and
whether it is trained. Parameter counts (:func:`keras_efficientnet.flops.count_params_spec`),
converters' expected shapes
(:func:`keras_efficientnet.pretrained.convert.shapes.expected_shapes`) and the PyTorch
converters' expected tensors (timm, torchvision, efficientnet_pytorch) are read from it;
tests/test_manifest.py checks it against the built graph for every variant.
"""

from __future__ import annotations

import dataclasses

from .model import ModelSpec, resolve
from .naming import dwconv_name

#: BatchNormalization's variables, in Keras' order; the last two are not trained.
BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
#: Kinds of weight (``WeightEntry.kind``).
KINDS = ("conv", "depthwise", "bias", "bn", "dense", "routing", "preprocessing")


@dataclasses.dataclass(frozen=True)
class WeightEntry:
    """One weight of a spec's model.

    Attributes:
        name: the flat name, ``"<layer>/<variable>"``.
        shape: Keras-layout shape (CondConv kernels lead with the expert axis).
        layer: the keras.applications-style layer name (``block2a_se_reduce``).
        variable: ``kernel``, ``bias``, ``gamma``, ``beta``, ``moving_mean``,
            ``moving_variance``, ``mean``, ``variance`` or ``count``.
        kind: one of :data:`KINDS`.
        block: the block name (``block2a``), or ``stem``, ``top``, ``predictions``,
            ``preprocessing``.
        trainable: whether training changes it (BatchNorm moving statistics and the input
            normalisation's statistics are not trained).
    """

    name: str
    shape: tuple
    layer: str
    variable: str
    kind: str
    block: str
    trainable: bool = True

    @property
    def size(self) -> int:
        """Number of values."""
        n = 1
        for d in self.shape:
            n *= int(d)
        return n


def weight_manifest(spec: ModelSpec, classes: int | None = None,
                    include_preprocessing: bool = False) -> list[WeightEntry]:
    """Every weight of the model ``build_efficientnet(spec)`` builds, from the spec alone.

    Args:
        spec: a resolved-able :class:`~keras_efficientnet.specs.ModelSpec`.
        classes: classifier width; None leaves the classifier out (``include_top=False``).
        include_preprocessing: include the input ``Normalization`` statistics of V1-family
            graphs (mean, variance and sample count for 3 channels), which count in Keras'
            ``count_params()`` as in keras.applications'.

    Returns:
        The :class:`WeightEntry` list, in the order the factory creates the variables.

    Example:
        >>> from keras_efficientnet.specs import get_spec
        >>> from keras_efficientnet.specs.manifest import weight_manifest
        >>> entries = weight_manifest(get_spec("EfficientNetB0"), classes=10)
        >>> entries[0].name, entries[0].shape, entries[-1].name
        ('stem_conv/kernel', (3, 3, 3, 32), 'predictions/bias')
        >>> sum(e.size for e in entries if e.trainable)
        4020358
    """
    resolved = resolve(spec)
    out: list[WeightEntry] = []

    def add(layer, variable, shape, kind, block, trainable=True):
        out.append(WeightEntry(f"{layer}/{variable}", tuple(int(d) for d in shape), layer, variable,
                               kind, block, trainable))

    def conv(layer, block, kernel, cin, cout, bias=False, experts=0):
        shape = (kernel, kernel, cin, cout)
        add(layer, "kernel", (experts, *shape) if experts else shape, "conv", block)
        if bias:
            add(layer, "bias", (cout,), "bias", block)

    def bn(layer, block, channels):
        for variable in BN_VARIABLES:
            add(layer, variable, (channels,), "bn", block, trainable=not variable.startswith("moving"))

    def se(block, channels, squeezed):
        if squeezed:
            conv(f"{block}_se_reduce", block, 1, channels, squeezed, bias=True)
            conv(f"{block}_se_expand", block, 1, squeezed, channels, bias=True)

    if include_preprocessing and spec.family != "v2":
        for variable, shape in (("mean", (3,)), ("variance", (3,)), ("count", ())):
            add("normalization", variable, shape, "preprocessing", "preprocessing", trainable=False)
    conv("stem_conv", "stem", 3, 3, resolved.stem_channels)
    bn("stem_bn", "stem", resolved.stem_channels)
    dw = dwconv_name(spec)
    for block in resolved.blocks:
        p, cin, hidden, cout = block.name, block.in_channels, block.hidden_channels, block.out_channels
        experts = int(block.experts or 0)
        if block.kind == "mb":
            if experts:
                add(f"{p}_routing", "kernel", (cin, experts), "routing", p)
                add(f"{p}_routing", "bias", (experts,), "routing", p)
            width = cin
            if hidden is not None:
                conv(f"{p}_expand_conv", p, 1, cin, hidden, experts=experts)
                bn(f"{p}_expand_bn", p, hidden)
                width = hidden
            shape = (block.kernel, block.kernel, width, 1)
            add(f"{p}_{dw}", "kernel", (experts, *shape) if experts else shape, "depthwise", p)
            bn(f"{p}_bn", p, width)
            se(p, width, block.se_channels)
            conv(f"{p}_project_conv", p, 1, width, cout, experts=experts)
        elif hidden is not None:  # fused, with expansion
            conv(f"{p}_expand_conv", p, block.kernel, cin, hidden)
            bn(f"{p}_expand_bn", p, hidden)
            se(p, hidden, block.se_channels)
            conv(f"{p}_project_conv", p, 1, hidden, cout)
        else:  # fused, a single convolution
            se(p, cin, block.se_channels)
            conv(f"{p}_project_conv", p, block.kernel, cin, cout)
        bn(f"{p}_project_bn", p, cout)
    conv("top_conv", "top", 1, resolved.blocks[-1].out_channels, resolved.head_channels)
    bn("top_bn", "top", resolved.head_channels)
    if classes:
        add("predictions", "kernel", (resolved.head_channels, int(classes)), "dense", "predictions")
        add("predictions", "bias", (int(classes),), "dense", "predictions")
    return out
