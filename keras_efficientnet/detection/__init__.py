"""EfficientDet: BiFPN, class and box nets, anchors, box coding and NMS post-processing."""

from .anchors import anchors_for, decode_boxes, encode_boxes, generate_anchors  # noqa: F401
from .config import DetectionConfig, get_config, list_configs, scaled_config  # noqa: F401
from .layers import WeightedFusion  # noqa: F401
from .model import bifpn, build_efficientdet, head, load_effdet_weights  # noqa: F401
