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
V1_LITE_BLOCKS = tuple(b.replace("_se0.25", "") for b in V1_BLOCKS)
_LITE_SCALING = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3),
                 3: (1.2, 1.4, 300, 0.3), 4: (1.4, 1.8, 380, 0.3)}
for _i, (_w, _d, _r, _drop) in _LITE_SCALING.items():
    VARIANTS[f"EfficientNetLite{_i}"] = ModelSpec(
        name=f"EfficientNetLite{_i}", blocks=V1_LITE_BLOCKS, width=_w, depth=_d, resolution=_r,
        dropout=_drop, activation="relu6", scale_stem=False, scale_head=False,
        fix_first_last=True, preprocessing="lite", family="lite")


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
