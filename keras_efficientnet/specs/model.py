"""The model specification and its resolution into concrete blocks.

:class:`ModelSpec` describes a whole network as data: the unscaled stages, the scaling
multipliers, and the conventions that differ between weight sources (padding, BatchNorm
epsilon and momentum, rounding, activation). :func:`resolve` turns it into the list of
concrete blocks (names, channels, strides, drop-path rates) that the factory assembles, and
that feature extraction, FLOP counting and weight converters read. Imports no Keras.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from .blocks import BlockSpec, format_block, parse_blocks
from .scaling import drop_path_rates, make_divisible, scale_depth, scale_width

PADDINGS = ("same", "symmetric")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Input normalisation of a weight source, in 0-255 pixel units: ``(x - mean) / std``.

    Example:
        >>> from keras_efficientnet.specs.model import IMAGENET
        >>> [round(m, 3) for m in IMAGENET.mean]
        [123.675, 116.28, 103.53]
    """

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


#: torchvision / keras.applications V1 convention: ImageNet mean and standard deviation.
IMAGENET = Preprocessing("imagenet", (0.485 * 255, 0.456 * 255, 0.406 * 255),
                         (0.229 * 255, 0.224 * 255, 0.225 * 255))
#: keras.applications V2 S/M/L: ``x / 128 - 1``.
HALF_RANGE = Preprocessing("x/128-1", (128.0,) * 3, (128.0,) * 3)
#: TensorFlow "inception" convention used by many timm TF ports: ``x / 127.5 - 1``.
INCEPTION = Preprocessing("inception", (127.5,) * 3, (127.5,) * 3)
#: EfficientNet-Lite TF ports: ``(x - 127) / 128``.
LITE = Preprocessing("lite", (127.0,) * 3, (128.0,) * 3)
PREPROCESSINGS = {p.name: p for p in (IMAGENET, HALF_RANGE, INCEPTION, LITE)}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything that defines one EfficientNet network (not its weights).

    Args:
        name: variant name, e.g. ``"efficientnet_b0"``.
        blocks: the unscaled stages (see :mod:`keras_efficientnet.specs.blocks`).
        width: channel multiplier.
        depth: block-count multiplier.
        resolution: default input size (square).
        dropout: dropout rate before the classifier.
        drop_path: final stochastic-depth rate (rises linearly over the blocks).
        stem: stem channels before width scaling.
        head: head (``top_conv``) channels before width scaling.
        activation: activation of the network (``swish``, ``relu``, ``relu6`` ...).
        divisor: channel rounding divisor.
        round_limit: see :func:`~keras_efficientnet.specs.scaling.make_divisible`.
        scale_stem: whether the stem width is scaled (False for Lite).
        scale_head: whether the head width is scaled (False for Lite).
        fix_first_last: keep the first and last stages' repeats unscaled (Lite).
        padding: ``"same"`` (TensorFlow, asymmetric at stride 2) or ``"symmetric"``
            (PyTorch, ``k // 2`` on every side).
        bn_epsilon: BatchNormalization epsilon.
        bn_momentum: BatchNormalization momentum (Keras convention).
        se_gate: gating activation of squeeze-excitation.
        preprocessing: name of the input normalisation the default weights expect.
        family: ``"v1"`` or ``"v2"``; only selects keras.applications weight names.
        channel_overrides: per-block hidden (expanded) widths, ``{block_name: channels}``;
            how a structurally pruned model is described and rebuilt.
        stage_depth: per-stage depth multipliers (one per stage) used instead of ``depth``;
            empty for the usual single multiplier (timm's ``efficientnetv2_rw_m``).

    Example:
        >>> from keras_efficientnet.specs import get_spec
        >>> spec = get_spec("EfficientNetB0")
        >>> spec.width, spec.depth, spec.resolution
        (1.0, 1.0, 224)
    """

    name: str
    blocks: tuple[BlockSpec, ...]
    width: float = 1.0
    depth: float = 1.0
    resolution: int = 224
    dropout: float = 0.2
    drop_path: float = 0.2
    stem: int = 32
    head: int = 1280
    activation: str = "swish"
    divisor: int = 8
    round_limit: float = 0.9
    scale_stem: bool = True
    scale_head: bool = True
    fix_first_last: bool = False
    padding: str = "same"
    bn_epsilon: float = 1e-3
    bn_momentum: float = 0.99
    se_gate: str = "sigmoid"
    preprocessing: str = "imagenet"
    family: str = "v1"
    channel_overrides: Mapping[str, int] = dataclasses.field(default_factory=dict)
    stage_depth: tuple[float, ...] = ()

    def __post_init__(self):
        if isinstance(self.blocks, (list, tuple)) and self.blocks and isinstance(self.blocks[0], str):
            object.__setattr__(self, "blocks", parse_blocks(self.blocks))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "channel_overrides", dict(self.channel_overrides))
        object.__setattr__(self, "stage_depth", tuple(float(d) for d in self.stage_depth))
        if self.stage_depth and len(self.stage_depth) != len(self.blocks):
            raise ValueError(f"stage_depth has {len(self.stage_depth)} multipliers for "
                             f"{len(self.blocks)} stages.")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}.")
        if self.preprocessing not in PREPROCESSINGS:
            raise ValueError(f"Unknown preprocessing {self.preprocessing!r}; "
                             f"expected one of {sorted(PREPROCESSINGS)}.")
        if self.width <= 0 or self.depth <= 0:
            raise ValueError("width and depth multipliers must be positive.")

    def __hash__(self):
        return hash((self.name, self.block_strings(), self.width, self.depth, self.stage_depth,
                     tuple(sorted(self.channel_overrides.items()))))

    def block_strings(self) -> tuple[str, ...]:
        """The stages as compact strings.

        Example:
            >>> from keras_efficientnet.specs import get_spec
            >>> get_spec("EfficientNetB0").block_strings()[0]
            'mb_r1_k3_s1_e1_c16_se0.25'
        """
        return tuple(format_block(b) for b in self.blocks)

    def replace(self, **changes) -> "ModelSpec":
        """A copy with some fields changed.

        Example:
            >>> from keras_efficientnet.specs import get_spec
            >>> get_spec("EfficientNetB0").replace(bn_epsilon=1e-5).bn_epsilon
            1e-05
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """A JSON-friendly dict (blocks as strings); :meth:`from_dict` inverts it.

        Example:
            >>> from keras_efficientnet.specs import get_spec
            >>> from keras_efficientnet.specs.model import ModelSpec
            >>> spec = get_spec("EfficientNetV2S")
            >>> ModelSpec.from_dict(spec.to_dict()) == spec
            True
        """
        data = dataclasses.asdict(self)
        data["blocks"] = list(self.block_strings())
        data["channel_overrides"] = dict(self.channel_overrides)
        data["stage_depth"] = list(self.stage_depth)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["blocks"] = parse_blocks(data["blocks"])
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class ResolvedBlock:
    """One concrete block after scaling: what the factory builds.

    Attributes:
        name: layer name, ``block{stage}{letter}`` as in keras.applications.
        index: position among all blocks (0-based).
        stage: 0-based stage index.
        kind: ``"mb"`` or ``"fu"``.
        in_channels, out_channels: block widths.
        hidden_channels: width after expansion (``None`` when the block has no expansion conv).
        kernel, stride: of the depthwise (``mb``) or fused (``fu``) convolution.
        se_channels: squeeze-excitation bottleneck width; 0 for no SE.
        activation: the block's activation.
        drop_path: stochastic-depth rate.
        skip: whether the block adds its input to its output.
        experts: CondConv experts (0 for none).
    """

    name: str
    index: int
    stage: int
    kind: str
    in_channels: int
    out_channels: int
    hidden_channels: int | None
    kernel: int
    stride: int
    se_channels: int
    activation: str
    drop_path: float
    skip: bool
    experts: int = 0


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """A resolved spec: stem width, concrete blocks, head width."""

    spec: ModelSpec
    stem_channels: int
    blocks: tuple[ResolvedBlock, ...]
    head_channels: int

    def stage_ends(self) -> list[ResolvedBlock]:
        """The last block of every stage.

        Example:
            >>> from keras_efficientnet.specs import get_spec, resolve
            >>> [b.name for b in resolve(get_spec("EfficientNetB0")).stage_ends()][:3]
            ['block1a', 'block2b', 'block3b']
        """
        ends = {}
        for block in self.blocks:
            ends[block.stage] = block
        return [ends[k] for k in sorted(ends)]


def block_letter(index: int) -> str:
    """``a``..``z``, then ``aa``, ``ab``... for stages with more than 26 blocks.

    Example:
        >>> from keras_efficientnet.specs.model import block_letter
        >>> block_letter(0), block_letter(25), block_letter(26)
        ('a', 'z', 'aa')
    """
    letters = ""
    index += 1
    while index > 0:
        index, rem = divmod(index - 1, 26)
        letters = chr(97 + rem) + letters
    return letters


def resolve(spec: ModelSpec, drop_path: float | None = None) -> ResolvedModel:
    """Apply width and depth scaling to a spec and list its concrete blocks.

    Args:
        spec: the model specification.
        drop_path: overrides ``spec.drop_path`` when given.

    Returns:
        A :class:`ResolvedModel`.

    Example:
        >>> from keras_efficientnet.specs import get_spec, resolve
        >>> r = resolve(get_spec("EfficientNetB0"))
        >>> r.stem_channels, len(r.blocks), r.head_channels
        (32, 16, 1280)
        >>> r.blocks[1].name, r.blocks[1].hidden_channels, r.blocks[1].se_channels
        ('block2a', 96, 4)
    """
    def width(channels):
        return scale_width(channels, spec.width, spec.divisor, None, spec.round_limit)

    stem = width(spec.stem) if spec.scale_stem else spec.stem
    head = width(spec.head) if spec.scale_head else spec.head
    repeats = []
    last = len(spec.blocks) - 1
    for i, block in enumerate(spec.blocks):
        fixed = spec.fix_first_last and i in (0, last)
        depth = spec.stage_depth[i] if spec.stage_depth else spec.depth
        repeats.append(block.repeats if fixed else scale_depth(block.repeats, depth))
    total = sum(repeats)
    rates = drop_path_rates(total, spec.drop_path if drop_path is None else drop_path)

    blocks = []
    in_ch = stem
    index = 0
    for stage, (block, count) in enumerate(zip(spec.blocks, repeats)):
        out_ch = width(block.out)
        for j in range(count):
            name = f"block{stage + 1}{block_letter(j)}"
            stride = block.stride if j == 0 else 1
            if block.expand_in:
                product = width(block.expand_in) * block.expand
                hidden = make_divisible(product, spec.divisor)
            else:
                product = in_ch * block.expand
                hidden = int(product) if float(product).is_integer() else make_divisible(product, spec.divisor)
            has_expand = block.expand != 1 or block.force_expand
            if name in spec.channel_overrides:
                if not has_expand:
                    raise ValueError(f"Block {name} has no expansion conv; its width cannot be overridden.")
                hidden = int(spec.channel_overrides[name])
            se_ch = max(1, int(in_ch * block.se)) if block.se > 0 else 0
            blocks.append(ResolvedBlock(
                name=name, index=index, stage=stage, kind=block.kind, in_channels=in_ch,
                out_channels=out_ch, hidden_channels=hidden if has_expand else None,
                kernel=block.kernel, stride=stride, se_channels=se_ch,
                activation=block.activation or spec.activation, drop_path=rates[index],
                skip=block.skip and stride == 1 and in_ch == out_ch, experts=block.experts))
            in_ch = out_ch
            index += 1
    unknown = set(spec.channel_overrides) - {b.name for b in blocks}
    if unknown:
        raise ValueError(f"channel_overrides name blocks this model does not have: {sorted(unknown)}.")
    return ResolvedModel(spec, stem, tuple(blocks), head)
