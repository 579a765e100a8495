"""Architecture as data: block strings, scaling rules and the variant table (no Keras)."""

from .blocks import BlockSpec, format_block, parse_block, parse_blocks
from .model import (IMAGENET, PREPROCESSINGS, ModelSpec, Preprocessing, ResolvedBlock, ResolvedModel,
                    block_letter, resolve)
from .scaling import compound_coefficients, drop_path_rates, make_divisible, scale_depth, scale_width
from .variants import VARIANTS, compound_spec, get_spec, register_variant

__all__ = [
    "BlockSpec", "format_block", "parse_block", "parse_blocks", "IMAGENET", "PREPROCESSINGS",
    "ModelSpec", "Preprocessing", "ResolvedBlock", "ResolvedModel", "block_letter", "resolve",
    "compound_coefficients", "drop_path_rates", "make_divisible", "scale_depth", "scale_width",
    "VARIANTS", "compound_spec", "get_spec", "register_variant",
]
