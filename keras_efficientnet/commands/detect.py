"""``keras-efficientnet detect IMAGE... --model MODEL``: boxes from an EfficientDet.

Runs a detector on image files and writes each image with its boxes drawn
(``<name>_boxes.png`` in ``--out``) and prints the detections. ``--model`` is a ``.keras``
file written by ``keras-efficientnet train --task detection`` (its recorded config, class names
and input size are used), or an EfficientDet name (``EfficientDetD0``, ``lite0``, ...) with
``--weights`` an effdet checkpoint file (COCO's 90 ids, named with :data:`COCO_NAMES`). Images
of any size are letterboxed to the input size and the boxes mapped back to the image's pixels
(:func:`~keras_efficientnet.detection.recipe.detect_images`). Existing output files are refused
unless ``--overwrite``.
"""

from __future__ import annotations

import os

import numpy as np

#: COCO's category names by effdet class index (index k is COCO id k + 1; "" for the ids COCO
#: 2017 does not use).
COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "", "backpack",
    "umbrella", "", "", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "couch", "potted plant", "bed", "", "dining table", "", "", "toilet", "",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster",
    "sink", "refrigerator", "", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush")
#: box colours by class (RGB).
COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128))


def draw_detections(image, boxes, scores, classes, class_names=None, ground_truth=None):
    """``image`` with its detections drawn: a box and ``name score`` per detection (coloured by
    class) and, optionally, the ground-truth boxes dashed in white.

    Args:
        image: ``(H, W, 3)`` uint8.
        boxes, scores, classes: the detections (pixel ``[x1, y1, x2, y2]``).
        class_names: names by class id (default ``class k``).
        ground_truth: optional ``(N, 4)`` boxes to draw for comparison.

    Returns:
        A ``(H, W, 3)`` uint8 array.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.commands.detect import draw_detections
        >>> out = draw_detections(np.zeros((64, 64, 3), "uint8"), [[8, 8, 40, 40]], [0.9], [0], ["horse"])
        >>> out.shape, int(out[8, 20].max()) > 0
        ((64, 64, 3), True)
    """
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(np.asarray(image, "uint8")).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(max(canvas.size) / 200))
    for x1, y1, x2, y2 in np.asarray(ground_truth if ground_truth is not None else [],
                                     "float32").reshape(-1, 4):
        for k in range(int(x1), int(x2), 6):  # dashed: PIL has no dash style
            draw.line([(k, y1), (min(k + 3, x2), y1)], fill=(255, 255, 255), width=1)
            draw.line([(k, y2), (min(k + 3, x2), y2)], fill=(255, 255, 255), width=1)
        for k in range(int(y1), int(y2), 6):
            draw.line([(x1, k), (x1, min(k + 3, y2))], fill=(255, 255, 255), width=1)
            draw.line([(x2, k), (x2, min(k + 3, y2))], fill=(255, 255, 255), width=1)
    for (x1, y1, x2, y2), s, c in zip(np.asarray(boxes, "float32").reshape(-1, 4),
                                      np.asarray(scores).ravel(), np.asarray(classes).ravel()):
        colour = COLOURS[int(c) % len(COLOURS)]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        name = class_names[int(c)] if class_names is not None and int(c) < len(class_names) \
            else f"class {int(c)}"
        label = f"{name or f'class {int(c)}'} {float(s):.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), label)
        ty = y1 - (bottom - top) - 2 if y1 - (bottom - top) - 2 >= 0 else y1
        draw.rectangle([x1, ty, x1 + (right - left) + 2, ty + (bottom - top) + 2], fill=colour)
        draw.text((x1 + 1, ty), label, fill=(255, 255, 255))
    return np.asarray(canvas)


def draw_detections_grid(detector, gt, image_size, config, class_names, path, count=6,
                         score_threshold=0.3):
    """A PNG of up to ``count`` images of ``gt`` (a
    :class:`~keras_efficientnet.detection.CocoData`) with ``detector``'s detections above
    ``score_threshold`` and the ground truth (dashed), side by side.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.detection import build_efficientdet, load_coco, pasted_boxes, write_coco
        >>> from keras_efficientnet.commands.detect import draw_detections_grid
        >>> det = build_efficientdet("lite0", num_classes=2, input_shape=(128, 128, 3))
        >>> gt = load_coco(write_coco(tempfile.mkdtemp(), *pasted_boxes(2, 128)))
        >>> path = os.path.join(tempfile.mkdtemp(), "d.png")
        >>> draw_detections_grid(det, gt, 128, "lite0", ["horse", "coin"], path)
        >>> os.path.getsize(path) > 0
        True
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..detection.recipe import detect_images

    images = list(gt.images[:count])
    found = detect_images(detector, images, image_size, config, score_threshold=score_threshold)
    cols = min(3, len(images))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, truth, (b, s, c) in zip(axes.ravel(), images, gt.boxes, found):
        ax.imshow(draw_detections(image, b, s, c, class_names, ground_truth=truth))
    fig.suptitle(f"detections (score >= {score_threshold}); ground truth dashed", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_parser(subparsers):
    """Register the ``detect`` sub-command.

    Example:
        >>> import argparse
        >>> from keras_efficientnet.commands import detect
        >>> sub = argparse.ArgumentParser().add_subparsers()
        >>> detect.add_parser(sub).get_default("score_threshold")
        0.3
    """
    parser = subparsers.add_parser(
        "detect", help="draw an EfficientDet's boxes on images",
        description="Run an EfficientDet on images; write each image with its boxes into --out "
                    "and print the detections.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format PIL reads)")
    parser.add_argument("--model", required=True,
                        help="a .keras file from `train --task detection`, or an EfficientDet "
                             "name (EfficientDetD0, lite0, ...) with --weights")
    parser.add_argument("--weights", default=None,
                        help="an effdet .pth/.safetensors checkpoint for a --model name (COCO "
                             "classes)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input side for a --model name (default: the config's, rounded up "
                             "to a multiple of 128)")
    parser.add_argument("--out", default="detections", help="folder for the drawn images")
    parser.add_argument("--score-threshold", type=float, default=0.3,
                        help="draw and print detections scoring at least this")
    parser.add_argument("--max-detections", type=int, default=100, help="per image")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files (default: refuse)")
    parser.set_defaults(func=run)
    return parser


def detection_config(model):
    """The EfficientDet config a ``--model`` value names: a constructor name
    (``EfficientDetLite0``), a config name (``tf_efficientdet_d0``) or a short one (``d0``).

    Example:
        >>> from keras_efficientnet.commands.detect import detection_config
        >>> detection_config("EfficientDetLite0").name, detection_config("d1").name
        ('tf_efficientdet_lite0', 'tf_efficientdet_d1')
    """
    from ..detection.config import get_config, list_configs

    text = str(model)
    key = text[len("EfficientDet"):].lower() if text.startswith("EfficientDet") else text
    try:
        return get_config(key)
    except ValueError:
        raise ValueError(f"--model {text!r} is not an EfficientDet; choose one of EfficientDetD0 .. "
                         f"EfficientDetD7X, EfficientDetLite0 .. Lite4, or a config name "
                         f"({', '.join(list_configs()[:4])}, ...).") from None


def load_detector(model, weights=None, image_size=None):
    """``(detector, config, image_size, class_names)`` for a ``--model`` value.

    Raises:
        ValueError: a missing or non-detection file, an unknown name, or a name without
            ``--weights``.

    Example:
        >>> from keras_efficientnet.commands.detect import load_detector
        >>> load_detector("EfficientDetD0")
        Traceback (most recent call last):
        ...
        ValueError: --model EfficientDetD0 is a name: give its effdet checkpoint with --weights (random weights detect nothing), or a .keras file from `train --task detection`.
    """
    import keras

    import keras_efficientnet  # noqa: F401  (registers the package's layers for loading)
    from ..detection.config import get_config
    from ..detection.constructors import efficientdet
    from ..saving import read_model_info

    path = os.fspath(model)
    if path.endswith(".keras") or os.path.sep in path:
        if not os.path.isfile(path):
            raise ValueError(f"--model {path!r} is not a file; pass a .keras file written by "
                             "`keras-efficientnet train --task detection`.")
        info = read_model_info(path)
        if info.get("task") != "detection":
            raise ValueError(f"{path!r} is not a detection model written by `train --task "
                             f"detection` (its recorded task is {info.get('task')!r}).")
        try:
            det = keras.saving.load_model(path, compile=False)
        except Exception as err:  # Keras raises many types for a broken file
            raise ValueError(f"Could not load {path!r} as a Keras model ({type(err).__name__}: "
                             f"{' '.join(str(err).split())[:200]}).") from None
        config = get_config(info["config"]).replace(num_classes=len(info["class_names"]),
                                                    backbone=info.get("backbone"))
        if weights is not None or image_size is not None:
            raise ValueError("--weights and --image-size apply to a --model name, not to a "
                             ".keras file (it records its own).")
        return det, config, int(info["image_size"][0]), list(info["class_names"])
    config = detection_config(path)
    if weights is None:
        raise ValueError(f"--model {path} is a name: give its effdet checkpoint with --weights "
                         "(random weights detect nothing), or a .keras file from `train --task "
                         "detection`.")
    step = 2 ** config.max_level
    size = int(image_size or -(-max(config.image_size) // step) * step)
    if size % step:
        raise ValueError(f"--image-size must be a multiple of {step} for {config.name}; got {size}.")
    det = efficientdet(config, input_shape=(size, size, 3), weights=weights)
    return det, config, size, list(COCO_NAMES)


def run(args) -> int:
    """Detect objects in ``args.images`` with ``args.model``; write drawn images into ``args.out``.

    Example:
        >>> from keras_efficientnet.cli import main
        >>> main(["detect", "no_such_image.png", "--model", "no_such_model.keras"])  # exit 2
        2
    """
    from ..detection.recipe import detect_images
    from .classify import load_image
    from .segment import _write_png

    if not 0.0 <= args.score_threshold <= 1.0:
        raise ValueError(f"--score-threshold must lie in [0, 1], got {args.score_threshold}.")
    if args.max_detections < 1:
        raise ValueError(f"--max-detections must be at least 1, got {args.max_detections}.")
    images = [(path, load_image(path)) for path in args.images]
    stems = [os.path.splitext(os.path.basename(path))[0] for path, _ in images]
    if len(set(stems)) != len(stems):
        raise ValueError("Two images have the same file name; their drawings would overwrite "
                         "each other in --out. Run them separately (different --out).")
    targets = [os.path.join(args.out, f"{s}_boxes.png") for s in stems]
    existing = [p for p in targets if os.path.exists(p)]
    if existing and not args.overwrite:
        raise ValueError(f"{existing[0]!r} exists ({len(existing)} output file(s) would be "
                         "replaced); pass --overwrite or choose another --out.")
    det, config, size, names = load_detector(args.model, args.weights, args.image_size)
    found = detect_images(det, [im for _, im in images], size, config,
                          score_threshold=args.score_threshold,
                          max_detections=args.max_detections)
    os.makedirs(args.out, exist_ok=True)
    for (path, image), target, (boxes, scores, classes) in zip(images, targets, found):
        _write_png(draw_detections(image, boxes, scores, classes, names), target)
        print(f"{path}: {image.shape[1]}x{image.shape[0]}, {len(boxes)} detection"
              f"{'s' if len(boxes) != 1 else ''} -> {target}")
        for (x1, y1, x2, y2), s, c in zip(boxes, scores, classes):
            name = names[int(c)] if int(c) < len(names) and names[int(c)] else f"class {int(c)}"
            print(f"  {name:<14} {float(s):.3f}  [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]")
    return 0
