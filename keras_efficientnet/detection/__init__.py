"""EfficientDet: BiFPN, class and box nets, anchors, box coding, NMS post-processing, training
targets and loss, detection data (an embedded box set, COCO files, COCO mAP), and the
``EfficientDetD0()``..``EfficientDetD7X()``, ``EfficientDetLite0()``..``Lite4()`` constructors."""

from .anchors import anchors_for, decode_boxes, encode_boxes, generate_anchors  # noqa: F401
from .config import DetectionConfig, get_config, list_configs, scaled_config  # noqa: F401
from .layers import WeightedFusion  # noqa: F401
from .model import bifpn, build_efficientdet, head, load_effdet_weights  # noqa: F401
from .postprocess import DetectionPostProcess, batched_nms  # noqa: F401
from .targets import assign_targets, assign_targets_batch, box_iou  # noqa: F401
from .data import CocoData, DetectionSet, coco_map, load_coco, pasted_boxes, write_coco  # noqa: F401
from .losses import EfficientDetLoss, detection_loss, focal_loss, huber_loss  # noqa: F401
from .constructors import *  # noqa: F401,F403  (EfficientDetD0 .. EfficientDetD7X, EfficientDetLite0 .. 4)
from .constructors import efficientdet  # noqa: F401
