"""Training: fine-tuning helpers, the EfficientNet recipe, datasets, data-parallel helpers,
and compression (distillation, magnitude pruning, structured channel pruning)."""

from .channel_prune import prune_channels, select_channels, zero_channels
from .distill import Distiller, distillation_loss, precompute_teacher_logits
from .finetune import freeze_backbone, reset_classifier, set_dropout, unfreeze_top
from .prune import (ConstantSparsity, MagnitudePruning, PolynomialDecay, sparsity_report,
                    strip_pruning)
from .recipe import (NVIDIA, PAPER, PROGRESSIVE, ProgressiveConfig, Recipe, Stage, WarmupCosineDecay,
                     apply_stage, augmenter, drop_path_schedule, progressive_stages)

__all__ = ["freeze_backbone", "reset_classifier", "set_dropout", "unfreeze_top", "NVIDIA", "PAPER",
           "PROGRESSIVE", "ProgressiveConfig", "Recipe", "Stage", "WarmupCosineDecay", "apply_stage",
           "augmenter", "drop_path_schedule", "progressive_stages", "Distiller",
           "distillation_loss", "precompute_teacher_logits", "ConstantSparsity", "PolynomialDecay",
           "MagnitudePruning", "strip_pruning", "sparsity_report", "prune_channels",
           "select_channels", "zero_channels"]
