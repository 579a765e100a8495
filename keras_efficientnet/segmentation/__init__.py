"""Semantic segmentation on EfficientNet encoders: U-Net, FPN and LinkNet computing what
segmentation-models-pytorch computes, and its state dicts and checkpoints converted (:mod:`.smp`, :func:`from_checkpoint`)."""

from .checkpoint import from_checkpoint, inspect_checkpoint
from .encoders import encoder_plan
from .layers import BilinearUpsample2D
from .losses import DiceCrossentropy, DiceFocal, DiceLoss, dice_score, iou_metrics
from .recipe import (compile_segmentation, encoder_layers, fit_segmentation, freeze_encoder,
                     unfreeze_encoder)
from .models import FPN, Linknet, Unet, fpn_decoder, linknet_decoder, unet_decoder
from .smp import convert_smp_state_dict, load_smp_state_dict

__all__ = ["Unet", "FPN", "Linknet", "unet_decoder", "fpn_decoder", "linknet_decoder",
           "BilinearUpsample2D", "encoder_plan", "convert_smp_state_dict", "load_smp_state_dict",
           "DiceLoss", "DiceCrossentropy", "DiceFocal", "dice_score", "iou_metrics",
           "compile_segmentation", "fit_segmentation", "freeze_encoder", "unfreeze_encoder",
           "encoder_layers", "from_checkpoint", "inspect_checkpoint"]
