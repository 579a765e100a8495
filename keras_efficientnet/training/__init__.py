"""Training: fine-tuning helpers, the EfficientNet recipe, datasets, data-parallel helpers,
and compression (distillation, magnitude pruning, structured channel pruning)."""

from .channel_prune import prune_channels, select_channels, zero_channels
from .distill import Distiller, distillation_loss, precompute_teacher_logits
from .finetune import freeze_backbone, reset_classifier, set_dropout, unfreeze_top
from .prune import (ConstantSparsity, MagnitudePruning, PolynomialDecay, sparsity_report,
                    strip_pruning)
from .augment import augmenter, folder_augmentation
from .recipe import (NVIDIA, PAPER, PROGRESSIVE, ProgressiveConfig, Recipe, Stage, apply_stage,
                     drop_path_schedule, progressive_stages)
from .schedules import WarmupCosineDecay, warmup_cosine_decay

__all__ = ["freeze_backbone", "reset_classifier", "set_dropout", "unfreeze_top", "NVIDIA", "PAPER",
           "PROGRESSIVE", "ProgressiveConfig", "Recipe", "Stage", "WarmupCosineDecay", "apply_stage",
           "augmenter", "folder_augmentation", "warmup_cosine_decay", "drop_path_schedule", "progressive_stages", "Distiller",
           "distillation_loss", "precompute_teacher_logits", "ConstantSparsity", "PolynomialDecay",
           "MagnitudePruning", "strip_pruning", "sparsity_report", "prune_channels",
           "select_channels", "zero_channels"]
