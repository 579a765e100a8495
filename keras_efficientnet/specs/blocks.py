"""Block specifications: one stage of an EfficientNet as a frozen dataclass.

A stage is written as a compact string such as ``"mb_r2_k3_s2_e6_c24_se0.25"`` and decoded
once into a :class:`BlockSpec`. ``format_block`` writes the string back, so every table in
``variants.py`` can be checked by a round trip. This module imports no Keras.

Tokens (joined by ``_``; the first names the block kind):

=========  ==============================================================
``mb``     MBConv: optional 1x1 expansion, depthwise kxk, SE, 1x1 projection
``fu``     Fused-MBConv: kxk expansion conv (or a single kxk conv at e1), SE, 1x1 projection
``r<N>``   repeats in the stage (before depth scaling)
``k<N>``   kernel size
``s<N>``   stride of the first block in the stage
``e<X>``   expansion ratio (``mid = in * X``)
``c<N>``   output channels (before width scaling)
``se<X>``  squeeze-excitation ratio, relative to the block's input channels
``a<S>``   activation override for this stage (``relu``, ``relu6``, ``swish`` ...)
``x<N>``   CondConv experts (0 = plain convolutions)
``fc<N>``  hidden width = ``fc`` (width-scaled) * expansion instead of input * expansion
           (timm's ``fc``: EdgeTPU's first block expands 24, not the stem's 32, channels)
``noskip`` no residual connection even where shapes allow one
``fx``     keep the expansion conv even at ``e1`` (a fused block with a kxk expansion and
           a 1x1 projection, as timm's ``er_..._e1`` in ``efficientnetv2_rw_*``)
=========  ==============================================================
"""

from __future__ import annotations

import dataclasses
import re

BLOCK_KINDS = ("mb", "fu")


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One stage of blocks, before width and depth scaling.

    Args:
        kind: ``"mb"`` (MBConv) or ``"fu"`` (Fused-MBConv).
        repeats: number of blocks in the stage.
        kernel: depthwise (``mb``) or fused (``fu``) kernel size.
        stride: stride of the first block; the others use 1.
        expand: expansion ratio of the hidden width over the input width.
        out: output channels before width scaling.
        se: squeeze-excitation ratio of the block's input channels; 0 disables SE.
        activation: activation override for the stage, or None for the model's.
        experts: number of CondConv experts; 0 for ordinary convolutions.
        skip: whether a residual connection is used where stride and widths allow it.
        expand_in: when > 0, the hidden width is ``expand_in`` (width-scaled) times
            ``expand`` instead of the block input times ``expand``.
        force_expand: build the expansion conv even when ``expand == 1``.

    Example:
        >>> from keras_efficientnet.specs.blocks import BlockSpec, format_block
        >>> format_block(BlockSpec("mb", repeats=2, kernel=3, stride=2, expand=6, out=24, se=0.25))
        'mb_r2_k3_s2_e6_c24_se0.25'
    """

    kind: str
    repeats: int
    kernel: int
    stride: int
    expand: float
    out: int
    se: float = 0.0
    activation: str | None = None
    experts: int = 0
    skip: bool = True
    expand_in: int = 0
    force_expand: bool = False

    def __post_init__(self):
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"Unknown block kind {self.kind!r}; expected one of {BLOCK_KINDS}.")
        for field in ("repeats", "kernel", "stride", "out"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BlockSpec.{field} must be a positive integer, got {value!r}.")
        if self.expand <= 0:
            raise ValueError(f"BlockSpec.expand must be positive, got {self.expand!r}.")
        if not 0.0 <= self.se <= 1.0:
            raise ValueError(f"BlockSpec.se must lie in [0, 1], got {self.se!r}.")
        if self.experts < 0:
            raise ValueError(f"BlockSpec.experts must be >= 0, got {self.experts!r}.")
        if self.expand_in < 0:
            raise ValueError(f"BlockSpec.expand_in must be >= 0, got {self.expand_in!r}.")


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _format_number(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


_TOKEN = re.compile(r"^(se|fc|r|k|s|e|c|a|x)(.+)$")
#: tokens without a value: token -> (field, value)
_FLAGS = {"noskip": ("skip", False), "fx": ("force_expand", True)}


def parse_block(text: str) -> BlockSpec:
    """Decode a block string into a :class:`BlockSpec`.

    Args:
        text: a string such as ``"fu_r2_k3_s2_e4_c48"``.

    Returns:
        The decoded ``BlockSpec``.

    Raises:
        ValueError: for an unknown kind or token, or a missing required token.

    Example:
        >>> from keras_efficientnet.specs.blocks import parse_block
        >>> parse_block("fu_r2_k3_s2_e4_c48").expand
        4
    """
    parts = text.strip().split("_")
    kind, tokens = parts[0], parts[1:]
    fields: dict = {"kind": kind}
    names = {"r": "repeats", "k": "kernel", "s": "stride", "e": "expand", "c": "out",
             "se": "se", "a": "activation", "x": "experts", "fc": "expand_in"}
    for token in tokens:
        if token in _FLAGS:
            field, value = _FLAGS[token]
            fields[field] = value
            continue
        match = _TOKEN.match(token)
        if not match:
            raise ValueError(f"Unknown token {token!r} in block string {text!r}.")
        key, value = match.groups()
        if key == "a":
            fields["activation"] = value
        else:
            try:
                number = _number(value)
            except ValueError:
                raise ValueError(f"Token {token!r} in block string {text!r} is not a number.") from None
            if key in ("r", "k", "s", "c", "x", "fc"):
                if not float(number).is_integer():
                    raise ValueError(f"Token {token!r} in {text!r} must be an integer.")
                number = int(number)
            fields[names[key]] = number
    missing = [names[k] for k in "rksec" if names[k] not in fields]
    if missing:
        raise ValueError(f"Block string {text!r} lacks {', '.join(missing)}.")
    return BlockSpec(**fields)


def format_block(block: BlockSpec) -> str:
    """Encode a :class:`BlockSpec` as its compact string (inverse of :func:`parse_block`).

    Example:
        >>> from keras_efficientnet.specs.blocks import parse_block, format_block
        >>> format_block(parse_block("mb_r1_k3_s1_e1_c16_se0.25"))
        'mb_r1_k3_s1_e1_c16_se0.25'
    """
    parts = [block.kind, f"r{block.repeats}", f"k{block.kernel}", f"s{block.stride}",
             f"e{_format_number(block.expand)}", f"c{block.out}"]
    if block.se:
        parts.append(f"se{_format_number(block.se)}")
    if block.activation:
        parts.append(f"a{block.activation}")
    if block.experts:
        parts.append(f"x{block.experts}")
    if block.expand_in:
        parts.append(f"fc{block.expand_in}")
    if not block.skip:
        parts.append("noskip")
    if block.force_expand:
        parts.append("fx")
    return "_".join(parts)


def parse_blocks(texts) -> tuple[BlockSpec, ...]:
    """Decode a sequence of block strings (one per stage).

    Example:
        >>> from keras_efficientnet.specs.blocks import parse_blocks
        >>> len(parse_blocks(["mb_r1_k3_s1_e1_c16", "mb_r2_k3_s2_e6_c24"]))
        2
    """
    return tuple(parse_block(t) for t in texts)
