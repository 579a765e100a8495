"""EfficientDet configurations as plain data (imports no Keras).

The facts follow effdet 0.4.1 (``effdet/config/model_config.py``, itself a port of
google/automl's ``hparams_config.py``): the TensorFlow-ported ``tf_efficientdet_d0..d7``,
``d7x`` and ``lite0..lite4`` models. Every one uses TF "same" padding, BatchNorm
``eps=1e-3`` (momentum 0.01, Keras' 0.99), max-pool downsampling and nearest upsampling,
separable convolutions in the BiFPN and the heads, BatchNorm after the resampling 1x1
convolutions, and the "redundant" bias of convolutions followed by BatchNorm that the TF
checkpoints carry.

Scaling with the compound coefficient ``phi`` (paper, Table 1): BiFPN width
``64 * 1.35**phi`` (as published: 64, 88, 112, 160, 224, 288, 384, 384), BiFPN depth
``3 + phi`` (at most 8), head depth ``3 + phi // 3``, input ``512 + 128 * phi``.
:func:`scaled_config` applies those rules to a ``phi`` the table has not got.

The FPN topology (:func:`fpn_nodes`) is BiFPN's: a top-down path from ``P{max-1}`` to
``P{min}``, then a bottom-up path from ``P{min+1}`` to ``P{max}``; each node combines its
inputs with fast normalised fusion (``"fastattn"``) or a plain sum (``"sum"``: D6, D7, D7x
and the Lite models).
"""

from __future__ import annotations

import dataclasses
import math

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class DetectionConfig:
    """One EfficientDet.

    Attributes:
        name: effdet's model name (``"tf_efficientdet_d0"``).
        backbone: the registered encoder variant (timm's name: ``"tf_efficientnet_b0"``).
        image_size: default input ``(height, width)``.
        fpn_channels: BiFPN width.
        fpn_cell_repeats: number of BiFPN cells.
        box_class_repeats: separable convolutions before each head's prediction.
        min_level, max_level: pyramid levels (``P3``..``P7``; D7x goes to ``P8``).
        weight_method: ``"fastattn"`` (fast normalised fusion) or ``"sum"``.
        act_type: ``"swish"`` or ``"relu6"``.
        num_classes: classes of the published COCO weights (90 ids).
        num_scales, aspect_ratios, anchor_scale: anchors (``num_scales * len(aspect_ratios)``
            per location; ratios as ``(x, y)`` multipliers).
        redundant_bias: convolutions followed by BatchNorm carry a bias.
        separable_conv, apply_resample_bn: as effdet.
        mean, std: input normalisation (fractions of 255).
        phi: the compound coefficient (None when the model is not on the scaling rule).
        max_detection_points: candidates kept before NMS; max_det_per_image: detections after.
    """

    name: str
    backbone: str
    image_size: tuple[int, int]
    fpn_channels: int
    fpn_cell_repeats: int
    box_class_repeats: int
    min_level: int = 3
    max_level: int = 7
    weight_method: str = "fastattn"
    act_type: str = "swish"
    num_classes: int = 90
    num_scales: int = 3
    aspect_ratios: tuple = ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))
    anchor_scale: float = 4.0
    redundant_bias: bool = True
    separable_conv: bool = True
    apply_resample_bn: bool = True
    bn_epsilon: float = 1e-3
    bn_momentum: float = 0.99
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    phi: int | None = None
    max_detection_points: int = 5000
    max_det_per_image: int = 100
    iou_threshold: float = 0.5
    # training defaults (effdet's DetectionLoss)
    alpha: float = 0.25
    gamma: float = 1.5
    delta: float = 0.1
    box_loss_weight: float = 50.0

    @property
    def num_levels(self) -> int:
        return self.max_level - self.min_level + 1

    @property
    def num_anchors(self) -> int:
        """Anchors per location."""
        return self.num_scales * len(self.aspect_ratios)

    def replace(self, **changes) -> "DetectionConfig":
        """A copy with some fields changed.

        Example:
            >>> from keras_efficientnet.detection.config import get_config
            >>> get_config("tf_efficientdet_d0").replace(num_classes=3).num_classes
            3
        """
        return dataclasses.replace(self, **changes)


_LITE = dict(weight_method="sum", act_type="relu6", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

#: effdet's table: name -> (backbone, image size, fpn channels, cell repeats, head repeats, extra).
_TABLE = {
    "tf_efficientdet_d0": ("tf_efficientnet_b0", 512, 64, 3, 3, dict(phi=0)),
    "tf_efficientdet_d1": ("tf_efficientnet_b1", 640, 88, 4, 3, dict(phi=1)),
    "tf_efficientdet_d2": ("tf_efficientnet_b2", 768, 112, 5, 3, dict(phi=2)),
    "tf_efficientdet_d3": ("tf_efficientnet_b3", 896, 160, 6, 4, dict(phi=3)),
    "tf_efficientdet_d4": ("tf_efficientnet_b4", 1024, 224, 7, 4, dict(phi=4)),
    "tf_efficientdet_d5": ("tf_efficientnet_b5", 1280, 288, 7, 4, dict(phi=5)),
    "tf_efficientdet_d6": ("tf_efficientnet_b6", 1280, 384, 8, 5, dict(phi=6, weight_method="sum")),
    "tf_efficientdet_d7": ("tf_efficientnet_b6", 1536, 384, 8, 5,
                           dict(phi=7, weight_method="sum", anchor_scale=5.0)),
    "tf_efficientdet_d7x": ("tf_efficientnet_b7", 1536, 384, 8, 5,
                            dict(weight_method="sum", max_level=8)),
    "tf_efficientdet_lite0": ("tf_efficientnet_lite0", 320, 64, 3, 3, dict(anchor_scale=3.0, **_LITE)),
    "tf_efficientdet_lite1": ("tf_efficientnet_lite1", 384, 88, 4, 3, dict(anchor_scale=3.0, **_LITE)),
    "tf_efficientdet_lite2": ("tf_efficientnet_lite2", 448, 112, 5, 3, dict(anchor_scale=3.0, **_LITE)),
    "tf_efficientdet_lite3": ("tf_efficientnet_lite3", 512, 160, 6, 4, dict(**_LITE)),
    "tf_efficientdet_lite3x": ("tf_efficientnet_lite3", 640, 200, 6, 4, dict(anchor_scale=3.0, **_LITE)),
    "tf_efficientdet_lite4": ("tf_efficientnet_lite4", 640, 224, 7, 4, dict(**_LITE)),
}

CONFIGS: dict[str, DetectionConfig] = {
    name: DetectionConfig(name=name, backbone=b, image_size=(s, s), fpn_channels=c,
                          fpn_cell_repeats=r, box_class_repeats=h, **extra)
    for name, (b, s, c, r, h, extra) in _TABLE.items()
}

#: short aliases: "d0" .. "d7x", "lite0" .. "lite4".
ALIASES = {name[len("tf_efficientdet_"):]: name for name in CONFIGS}


def list_configs() -> list[str]:
    """The EfficientDet names the table holds.

    Example:
        >>> from keras_efficientnet.detection.config import list_configs
        >>> list_configs()[:3]
        ['tf_efficientdet_d0', 'tf_efficientdet_d1', 'tf_efficientdet_d2']
    """
    return list(CONFIGS)


def get_config(name) -> DetectionConfig:
    """The configuration of an EfficientDet by name (``"tf_efficientdet_d3"``, ``"d3"``,
    ``"EfficientDetD3"``), or the config itself.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).

    Example:
        >>> from keras_efficientnet.detection.config import get_config
        >>> c = get_config("d3")
        >>> c.backbone, c.fpn_channels, c.fpn_cell_repeats, c.box_class_repeats, c.image_size
        ('tf_efficientnet_b3', 160, 6, 4, (896, 896))
    """
    if isinstance(name, DetectionConfig):
        return name
    if not isinstance(name, str):
        raise ValueError(f"An EfficientDet name must be a string; got {name!r}.")
    key = name.strip()
    low = key.lower()
    if low.startswith("efficientdet") and not low.startswith("efficientdet_"):
        low = low[len("efficientdet"):]
    if low in CONFIGS:
        return CONFIGS[low]
    if low in ALIASES:
        return CONFIGS[ALIASES[low]]
    raise ValueError(f"Unknown EfficientDet {name!r}. Known: {', '.join(CONFIGS)} "
                     f"(or the short forms {', '.join(ALIASES)}).")


def scaled_config(phi: int, backbone: str | None = None, **changes) -> DetectionConfig:
    """An EfficientDet from the compound-scaling rule: the published table for
    ``phi`` 0-7, the paper's formulas (width rounded to a multiple of 8) beyond.

    Args:
        phi: compound coefficient (``>= 0``).
        backbone: the encoder variant (default: ``tf_efficientnet_b{min(phi, 7)}``, as the
            paper's; D7 uses B6).
        **changes: any other :class:`DetectionConfig` field.

    Example:
        >>> from keras_efficientnet.detection.config import scaled_config
        >>> c = scaled_config(8)
        >>> c.fpn_channels, c.fpn_cell_repeats, c.box_class_repeats, c.image_size
        (712, 8, 5, (1536, 1536))
    """
    if not isinstance(phi, int) or isinstance(phi, bool) or phi < 0:
        raise ValueError(f"phi must be an integer >= 0; got {phi!r}.")
    if phi <= 7:
        base = CONFIGS[f"tf_efficientdet_d{phi}"]
    else:
        width = int(math.ceil(64 * 1.35 ** phi / 8) * 8)
        size = min(512 + 128 * phi, 1536)
        base = DetectionConfig(name=f"efficientdet_phi{phi}", backbone="tf_efficientnet_b7",
                               image_size=(size, size), fpn_channels=width,
                               fpn_cell_repeats=min(3 + phi, 8),
                               box_class_repeats=3 + phi // 3, weight_method="sum", phi=phi)
    if backbone is not None:
        base = base.replace(backbone=backbone)
    return base.replace(**changes) if changes else base


def feat_sizes(image_size, max_level: int) -> list[tuple[int, int]]:
    """Feature size of every level 0..max_level, as effdet computes it (ceil halving).

    Example:
        >>> from keras_efficientnet.detection.config import feat_sizes
        >>> feat_sizes((128, 128), 7)[3:]
        [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    """
    h, w = int(image_size[0]), int(image_size[1])
    out = [(h, w)]
    for _ in range(max_level):
        h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        out.append((h, w))
    return out


def fpn_nodes(min_level: int, max_level: int) -> list[dict]:
    """BiFPN nodes in order: ``{"level": k, "inputs": [node ids]}``, where ids
    ``0..num_levels-1`` are the cell's inputs ``P{min}..P{max}`` and node ``i`` gets id
    ``num_levels + i``.

    Example:
        >>> from keras_efficientnet.detection.config import fpn_nodes
        >>> fpn_nodes(3, 7)[:2], fpn_nodes(3, 7)[-1]
        ([{'level': 6, 'inputs': [3, 4]}, {'level': 5, 'inputs': [2, 5]}], {'level': 7, 'inputs': [4, 11]})
    """
    num_levels = max_level - min_level + 1
    ids = {min_level + i: [i] for i in range(num_levels)}
    nodes, next_id = [], num_levels
    for level in range(max_level - 1, min_level - 1, -1):
        nodes.append({"level": level, "inputs": [ids[level][-1], ids[level + 1][-1]]})
        ids[level].append(next_id)
        next_id += 1
    for level in range(min_level + 1, max_level + 1):
        nodes.append({"level": level, "inputs": ids[level] + [ids[level - 1][-1]]})
        ids[level].append(next_id)
        next_id += 1
    return nodes
