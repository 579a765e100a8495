"""The variant table: name -> :class:`~keras_efficientnet.specs.model.ModelSpec`.

Facts from the EfficientNet (Tan & Le, 2019) and EfficientNetV2 (Tan & Le, 2021) papers, as
published in keras.applications and google/automl. Imports no Keras.
"""

from __future__ import annotations

from .model import ModelSpec
from .scaling import compound_coefficients

#: EfficientNet-B0 stages (paper, table 1).
V1_BLOCKS = (
    "mb_r1_k3_s1_e1_c16_se0.25",
    "mb_r2_k3_s2_e6_c24_se0.25",
    "mb_r2_k5_s2_e6_c40_se0.25",
    "mb_r3_k3_s2_e6_c80_se0.25",
    "mb_r3_k5_s1_e6_c112_se0.25",
    "mb_r4_k5_s2_e6_c192_se0.25",
    "mb_r1_k3_s1_e6_c320_se0.25",
)

#: EfficientNetV2 stages (paper table 4 for S; automl effnetv2_configs for the others).
V2_BLOCKS = {
    "b": ("fu_r1_k3_s1_e1_c16", "fu_r2_k3_s2_e4_c32", "fu_r2_k3_s2_e4_c48",
          "mb_r3_k3_s2_e4_c96_se0.25", "mb_r5_k3_s1_e6_c112_se0.25", "mb_r8_k3_s2_e6_c192_se0.25"),
    "s": ("fu_r2_k3_s1_e1_c24", "fu_r4_k3_s2_e4_c48", "fu_r4_k3_s2_e4_c64",
          "mb_r6_k3_s2_e4_c128_se0.25", "mb_r9_k3_s1_e6_c160_se0.25", "mb_r15_k3_s2_e6_c256_se0.25"),
    "m": ("fu_r3_k3_s1_e1_c24", "fu_r5_k3_s2_e4_c48", "fu_r5_k3_s2_e4_c80",
          "mb_r7_k3_s2_e4_c160_se0.25", "mb_r14_k3_s1_e6_c176_se0.25", "mb_r18_k3_s2_e6_c304_se0.25",
          "mb_r5_k3_s1_e6_c512_se0.25"),
    "l": ("fu_r4_k3_s1_e1_c32", "fu_r7_k3_s2_e4_c64", "fu_r7_k3_s2_e4_c96",
          "mb_r10_k3_s2_e4_c192_se0.25", "mb_r19_k3_s1_e6_c224_se0.25", "mb_r25_k3_s2_e6_c384_se0.25",
          "mb_r7_k3_s1_e6_c640_se0.25"),
    "xl": ("fu_r4_k3_s1_e1_c32", "fu_r8_k3_s2_e4_c64", "fu_r8_k3_s2_e4_c96",
           "mb_r16_k3_s2_e4_c192_se0.25", "mb_r24_k3_s1_e6_c256_se0.25", "mb_r32_k3_s2_e6_c512_se0.25",
           "mb_r8_k3_s1_e6_c640_se0.25"),
}

#: Stem width of each V2 table (the first stage's input width).
V2_STEM = {"b": 32, "s": 24, "m": 24, "l": 32, "xl": 32}

# (width, depth, resolution, dropout) of B0-B7 (paper; keras.applications).
_V1_SCALING = {
    "B0": (1.0, 1.0, 224, 0.2), "B1": (1.0, 1.1, 240, 0.2), "B2": (1.1, 1.2, 260, 0.3),
    "B3": (1.2, 1.4, 300, 0.3), "B4": (1.4, 1.8, 380, 0.4), "B5": (1.6, 2.2, 456, 0.4),
    "B6": (1.8, 2.6, 528, 0.5), "B7": (2.0, 3.1, 600, 0.5),
}

# (table, width, depth, resolution, preprocessing) of the V2 variants (keras.applications;
# XL from automl).
_V2_SCALING = {
    "B0": ("b", 1.0, 1.0, 224, "imagenet"), "B1": ("b", 1.0, 1.1, 240, "imagenet"),
    "B2": ("b", 1.1, 1.2, 260, "imagenet"), "B3": ("b", 1.2, 1.4, 300, "imagenet"),
    "S": ("s", 1.0, 1.0, 384, "x/128-1"), "M": ("m", 1.0, 1.0, 480, "x/128-1"),
    "L": ("l", 1.0, 1.0, 480, "x/128-1"), "XL": ("xl", 1.0, 1.0, 512, "x/128-1"),
}

VARIANTS: dict[str, ModelSpec] = {}

for _key, (_w, _d, _r, _drop) in _V1_SCALING.items():
    VARIANTS[f"EfficientNet{_key}"] = ModelSpec(
        name=f"EfficientNet{_key}", blocks=V1_BLOCKS, width=_w, depth=_d, resolution=_r,
        dropout=_drop, family="v1")

for _key, (_table, _w, _d, _r, _pre) in _V2_SCALING.items():
    VARIANTS[f"EfficientNetV2{_key}"] = ModelSpec(
        name=f"EfficientNetV2{_key}", blocks=V2_BLOCKS[_table], width=_w, depth=_d, resolution=_r,
        dropout=0.2, stem=V2_STEM[_table],
        round_limit=0.0, bn_momentum=0.9, preprocessing=_pre, family="v2")


# EfficientNet-Lite (TF "efficientnet-lite" release; timm tf_efficientnet_lite*): B0's stages
# without SE, ReLU6, stem and head widths fixed, first and last stages not depth-scaled.
# Resolutions as tensorflow/tpu efficientnet/lite/efficientnet_lite_builder.py (and
# efficientnet-lite-pytorch): Lite3 280, Lite4 300 (timm evaluates its ports at 300 and 380).
V1_LITE_BLOCKS = tuple(b.replace("_se0.25", "") for b in V1_BLOCKS)
_LITE_SCALING = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3),
                 3: (1.2, 1.4, 280, 0.3), 4: (1.4, 1.8, 300, 0.3)}
for _i, (_w, _d, _r, _drop) in _LITE_SCALING.items():
    VARIANTS[f"EfficientNetLite{_i}"] = ModelSpec(
        name=f"EfficientNetLite{_i}", blocks=V1_LITE_BLOCKS, width=_w, depth=_d, resolution=_r,
        dropout=_drop, activation="relu6", scale_stem=False, scale_head=False,
        fix_first_last=True, preprocessing="lite", family="lite")


# torchvision's EfficientNets (torchvision/models/efficientnet.py, torchvision 0.29), under the
# prefix "tv_" (the bare timm-style names mean timm's networks). torchvision uses the same stage
# tables and the same rules as ours: channels rounded by make_divisible(divisor 8, 0.9 limit),
# repeats by ceil, SE width max(1, block input // 4), head 4 x the last stage's width (= 1280 x
# width, rounded) for B0-B7 and 1280 for V2, stochastic depth 0.2 * block / total blocks. So
# each one is the keras.applications spec of the same size with PyTorch's conventions:
# symmetric padding and BatchNorm epsilon/momentum as torchvision sets them per builder.
#   - B0-B4: nn.BatchNorm2d defaults, eps 1e-5, momentum 0.1 (Keras 0.9). The same network as
#     timm's efficientnet_b0..b4 (same tensors, padding, epsilon and momentum).
#   - B5-B7: eps 1e-3, momentum 0.01 (Keras 0.99). timm's efficientnet_b5..b7 have the same
#     tensors but eps 1e-5, so they are different networks for the same weights.
#   - V2-S/M/L: eps 1e-3, momentum 0.1; stage widths, stem and head (1280) equal ours. timm's
#     efficientnetv2_* use eps 1e-5 and its tf_efficientnetv2_* use "same" padding: neither
#     equals these.
# resolution is the evaluation crop of torchvision's published weights (B2: 288, not 260);
# preprocessing is ImageNet mean/std, except V2-L whose weights expect mean = std = 0.5.
# name suffix: (base spec, bn_epsilon, Keras bn_momentum, resolution, dropout, preprocessing)
_TORCHVISION = {
    "b0": ("EfficientNetB0", 1e-5, 0.9, 224, 0.2, "imagenet"),
    "b1": ("EfficientNetB1", 1e-5, 0.9, 240, 0.2, "imagenet"),
    "b2": ("EfficientNetB2", 1e-5, 0.9, 288, 0.3, "imagenet"),
    "b3": ("EfficientNetB3", 1e-5, 0.9, 300, 0.3, "imagenet"),
    "b4": ("EfficientNetB4", 1e-5, 0.9, 380, 0.4, "imagenet"),
    "b5": ("EfficientNetB5", 1e-3, 0.99, 456, 0.4, "imagenet"),
    "b6": ("EfficientNetB6", 1e-3, 0.99, 528, 0.5, "imagenet"),
    "b7": ("EfficientNetB7", 1e-3, 0.99, 600, 0.5, "imagenet"),
    "v2_s": ("EfficientNetV2S", 1e-3, 0.9, 384, 0.2, "imagenet"),
    "v2_m": ("EfficientNetV2M", 1e-3, 0.9, 480, 0.3, "imagenet"),
    "v2_l": ("EfficientNetV2L", 1e-3, 0.9, 480, 0.4, "inception"),
}
for _key, (_base, _eps, _mom, _r, _drop, _pre) in _TORCHVISION.items():
    VARIANTS[f"tv_efficientnet_{_key}"] = VARIANTS[_base].replace(
        name=f"tv_efficientnet_{_key}", padding="symmetric", bn_epsilon=_eps, bn_momentum=_mom,
        resolution=_r, dropout=_drop, drop_path=0.2, round_limit=0.9, preprocessing=_pre)


# ---------------------------------------------------------------------------------------------
# EdgeTPU, CondConv, B8/L2, and every timm EfficientNet / EfficientNetV2 name we can build.
# Facts from timm 1.0 (timm/models/efficientnet.py: _gen_efficientnet, _gen_efficientnet_edge,
# _gen_efficientnet_condconv, _gen_efficientnet_lite, _gen_efficientnetv2_*) and the TF
# reference (tensorflow/tpu efficientnet, edgetpu, condconv). Weight-source conventions are
# fields: timm's "tf_" ports use TF "same" padding and BatchNorm eps 1e-3; timm-native
# networks use PyTorch's symmetric padding and eps 1e-5 (momentum 0.1, Keras 0.9).
# ---------------------------------------------------------------------------------------------

#: EfficientNet-EdgeTPU stages (timm arch_def: "er" blocks = our "fu" with an expansion conv;
#: the first block expands 24 channels, not the stem's 32: timm's ``fc24``). ReLU, no SE.
EDGETPU_BLOCKS = (
    "fu_r1_k3_s1_e4_c24_fc24_noskip",
    "fu_r2_k3_s2_e8_c32",
    "fu_r4_k3_s2_e8_c48",
    "mb_r5_k5_s2_e8_c96",
    "mb_r4_k5_s1_e8_c144",
    "mb_r2_k5_s2_e8_c192",
)


def _condconv_blocks(experts: int) -> tuple[str, ...]:
    """B0's stages with CondConv (``experts`` kernels) in the last three stages."""
    return V1_BLOCKS[:4] + tuple(f"{b}_x{experts}" for b in V1_BLOCKS[4:])


#: timm's efficientnetv2_rw_s/m stages: the first stage keeps a 3x3 expansion conv at e1 and a
#: 1x1 projection (timm ``er_r2_k3_s1_e1_c24``), the last stage is 272 wide.
V2_RW_BLOCKS = ("fu_r2_k3_s1_e1_c24_fx",) + V2_BLOCKS["s"][1:-1] + ("mb_r15_k3_s2_e6_c272_se0.25",)

_TF = dict(padding="same", bn_epsilon=1e-3, bn_momentum=0.99)
_PT = dict(padding="symmetric", bn_epsilon=1e-5, bn_momentum=0.9)

# (width, depth, resolution, dropout) of the TF reference's EdgeTPU and CondConv variants.
_EDGETPU_SCALING = {"s": (1.0, 1.0, 224, 0.2), "m": (1.0, 1.1, 240, 0.2), "l": (1.2, 1.4, 300, 0.3)}
_CONDCONV = {"b0_4e": (4, 1.0, 1.0, 224, 0.2), "b0_8e": (8, 1.0, 1.0, 224, 0.2),
             "b1_8e": (8, 1.0, 1.1, 240, 0.2)}
_V1_SCALING_TIMM = dict(_V1_SCALING, B8=(2.2, 3.6, 672, 0.5), L2=(4.3, 5.3, 800, 0.5))


def _edgetpu(name, key, preprocessing, conventions):
    w, d, r, drop = _EDGETPU_SCALING[key]
    return ModelSpec(name=name, blocks=EDGETPU_BLOCKS, width=w, depth=d, resolution=r,
                     dropout=drop, activation="relu", preprocessing=preprocessing,
                     family="edgetpu", **conventions)


def _condconv(name, key, preprocessing, conventions):
    experts, w, d, r, drop = _CONDCONV[key]
    return ModelSpec(name=name, blocks=_condconv_blocks(experts), width=w, depth=d, resolution=r,
                     dropout=drop, preprocessing=preprocessing, family="condconv", **conventions)


# Keras-style constructors (TF conventions, like keras.applications): B8, L2, EdgeTPU, CondConv.
for _key in ("B8", "L2"):
    _w, _d, _r, _drop = _V1_SCALING_TIMM[_key]
    VARIANTS[f"EfficientNet{_key}"] = ModelSpec(
        name=f"EfficientNet{_key}", blocks=V1_BLOCKS, width=_w, depth=_d, resolution=_r,
        dropout=_drop, family="v1")
for _key in _EDGETPU_SCALING:
    _n = f"EfficientNetEdgeTPU{_key.upper()}"
    VARIANTS[_n] = _edgetpu(_n, _key, "inception", _TF)
for _key in _CONDCONV:
    _n = f"EfficientNetCondConv{_key.upper()}"
    VARIANTS[_n] = _condconv(_n, _key, "inception", _TF)

# timm names. B0-B8, L2.
for _key, (_w, _d, _r, _drop) in _V1_SCALING_TIMM.items():
    for _prefix, _conv in (("efficientnet_", _PT), ("tf_efficientnet_", _TF)):
        _n = f"{_prefix}{_key.lower()}"
        VARIANTS[_n] = ModelSpec(name=_n, blocks=V1_BLOCKS, width=_w, depth=_d, resolution=_r,
                                 dropout=_drop, family="v1", **_conv)
# Lite0-4 (timm-native weights use ImageNet mean/std, the TF ports mean = std = 0.5).
for _i in _LITE_SCALING:
    for _prefix, _conv, _pre in (("efficientnet_", _PT, "imagenet"), ("tf_efficientnet_", _TF, "inception")):
        _n = f"{_prefix}lite{_i}"
        VARIANTS[_n] = VARIANTS[f"EfficientNetLite{_i}"].replace(name=_n, preprocessing=_pre, **_conv)
# EdgeTPU S/M/L.
for _key in _EDGETPU_SCALING:
    VARIANTS[f"efficientnet_e{_key}"] = _edgetpu(f"efficientnet_e{_key}", _key, "imagenet", _PT)
    VARIANTS[f"tf_efficientnet_e{_key}"] = _edgetpu(f"tf_efficientnet_e{_key}", _key, "inception", _TF)
# CondConv.
for _key in _CONDCONV:
    VARIANTS[f"efficientnet_cc_{_key}"] = _condconv(f"efficientnet_cc_{_key}", _key, "imagenet", _PT)
    VARIANTS[f"tf_efficientnet_cc_{_key}"] = _condconv(f"tf_efficientnet_cc_{_key}", _key, "inception", _TF)
# EfficientNetV2: the official tables (B0-B3 round channels without the 0.9 limit, S/M/L/XL
# with it; equal at width 1.0).
for _key, (_table, _w, _d, _r, _pre) in _V2_SCALING.items():
    _base = VARIANTS[f"EfficientNetV2{_key}"]
    _limit = 0.0 if _table == "b" else 0.9
    _pre = "imagenet" if _table == "b" else "inception"
    VARIANTS[f"tf_efficientnetv2_{_key.lower()}"] = _base.replace(
        name=f"tf_efficientnetv2_{_key.lower()}", round_limit=_limit, preprocessing=_pre, **_TF)
    if _table != "b":
        VARIANTS[f"efficientnetv2_{_key.lower()}"] = _base.replace(
            name=f"efficientnetv2_{_key.lower()}", round_limit=_limit, preprocessing="imagenet", **_PT)
# timm's own V2 variants: rw_t is the official S table scaled (0.8 wide, 0.9 deep); rw_s and
# rw_m use the "rw" table (fused e1 first stage with expansion, 272-wide last stage, 1792 head);
# rw_m scales depth per stage.
_V2_RW = {
    "rw_t": dict(blocks=V2_BLOCKS["s"], width=0.8, depth=0.9, resolution=224, head=1280),
    "rw_s": dict(blocks=V2_RW_BLOCKS, width=1.0, depth=1.0, resolution=288, head=1792),
    "rw_m": dict(blocks=V2_RW_BLOCKS, width=1.2, depth=1.0, resolution=320, head=1792,
                 stage_depth=(1.2,) * 4 + (1.6,) * 2),
}
for _key, _fields in _V2_RW.items():
    _n = f"efficientnetv2_{_key}"
    VARIANTS[_n] = ModelSpec(name=_n, stem=24, round_limit=0.9, dropout=0.2, family="v2",
                             preprocessing="imagenet", **_fields, **_PT)

#: timm's names (lower case), for :func:`list_models` filters and converters.
TIMM_NAMES = tuple(n for n in VARIANTS if n.startswith(("efficientnet", "tf_efficientnet")))


def register_variant(spec: ModelSpec, *aliases: str, overwrite: bool = False) -> ModelSpec:
    """Add a spec to the variant table under its name (and optional aliases).

    Example:
        >>> from keras_efficientnet.specs import get_spec, register_variant
        >>> tiny = get_spec("EfficientNetB0").replace(name="my_tiny_b0", width=0.5)
        >>> register_variant(tiny).name
        'my_tiny_b0'
    """
    for key in (spec.name, *aliases):
        if key in VARIANTS and not overwrite and VARIANTS[key] != spec:
            raise ValueError(f"A different variant is already registered as {key!r}.")
        VARIANTS[key] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    """The spec registered under ``name``.

    Raises:
        ValueError: for an unknown name, listing the close matches.

    Example:
        >>> from keras_efficientnet.specs import get_spec
        >>> get_spec("EfficientNetV2S").resolution
        384
    """
    if isinstance(name, ModelSpec):
        return name
    if name in VARIANTS:
        return VARIANTS[name]
    import difflib
    close = difflib.get_close_matches(name, list(VARIANTS), n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"Unknown EfficientNet variant {name!r}.{hint} "
                     f"keras_efficientnet.list_models() lists all {len(VARIANTS)} names.")


def compound_spec(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15,
                  name: str | None = None, **changes) -> ModelSpec:
    """A compound-scaled EfficientNet from the B0 base (depth ``alpha**phi``, width
    ``beta**phi``, resolution ``224 * gamma**phi``).

    Example:
        >>> from keras_efficientnet.specs import compound_spec
        >>> spec = compound_spec(2)
        >>> round(spec.width, 2), round(spec.depth, 2), spec.resolution
        (1.21, 1.44, 296)
    """
    width, depth, resolution = compound_coefficients(phi, alpha, beta, gamma)
    base = VARIANTS["EfficientNetB0"]
    label = name or f"efficientnet_phi{phi:g}"
    return base.replace(name=label, width=width, depth=depth, resolution=resolution, **changes)
