"""Training: fine-tuning helpers, the EfficientNet recipe, datasets, data-parallel helpers."""

from .finetune import freeze_backbone, reset_classifier, set_dropout, unfreeze_top
from .recipe import (NVIDIA, PAPER, PROGRESSIVE, ProgressiveConfig, Recipe, Stage, WarmupCosineDecay,
                     apply_stage, augmenter, drop_path_schedule, progressive_stages)

__all__ = ["freeze_backbone", "reset_classifier", "set_dropout", "unfreeze_top", "NVIDIA", "PAPER",
           "PROGRESSIVE", "ProgressiveConfig", "Recipe", "Stage", "WarmupCosineDecay", "apply_stage",
           "augmenter", "drop_path_schedule", "progressive_stages"]
