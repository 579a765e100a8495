"""``keras-efficientnet segment IMAGE... --model MODEL``: masks from a segmentation model.

Runs a saved U-Net, FPN or LinkNet (a ``.keras`` file, e.g. one trained with
:mod:`keras_efficientnet.segmentation`) on image files and writes, for each image, a mask
the size of the image (``<name>_mask.png``: one byte per pixel, the class index) and an
overlay of the classes on the photo (``<name>_overlay.png``), and prints the share of each
class. Images are normalised as the encoder expects (``--preprocessing``, the name passed to
:class:`~keras_efficientnet.segmentation.data.SegmentationBatches`). A model with a fixed input
size gets each image resized to it and its mask resized back (nearest); a model with a free
input size gets the image padded to a multiple of 32 (or resized to ``--size``) and the mask
cropped back, so no pixel is resampled. Multi-channel outputs are arg-maxed; a one-channel
output is a binary mask at ``--threshold`` (a sigmoid is applied first if the model ends in
logits). Existing output files are refused unless ``--overwrite``.
"""

from __future__ import annotations

import os

import numpy as np

#: colours of classes 1, 2, ... in overlays (class 0, the background, is left as it is).
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60),
                    (250, 190, 212), (0, 128, 128), (220, 190, 255)], dtype="float32")


def add_parser(subparsers):
    """Register the ``segment`` sub-command.

    Example:
        >>> import argparse
        >>> from keras_efficientnet.commands import segment
        >>> sub = argparse.ArgumentParser().add_subparsers()
        >>> segment.add_parser(sub).get_default("out")
        'masks'
    """
    parser = subparsers.add_parser(
        "segment", help="write class masks and overlays of images with a segmentation model",
        description="Run a saved segmentation model (U-Net, FPN or LinkNet .keras file) on "
                    "images; write a mask (class index per pixel) and an overlay per image "
                    "into --out and print each class's share of the image.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format PIL reads)")
    parser.add_argument("--model", required=True,
                        help="a .keras file of a segmentation model (U-Net, FPN, LinkNet)")
    parser.add_argument("--out", default="masks", help="folder for the mask and overlay files")
    parser.add_argument("--preprocessing", default=None,
                        help="the input normalisation the model was trained with (a name of "
                             "keras_efficientnet.specs.PREPROCESSINGS; default: the one "
                             "recorded in a model written by `train --task segmentation`, "
                             "else imagenet)")
    parser.add_argument("--size", type=int, default=None,
                        help="resize images to SIZE x SIZE for a model with a free input size "
                             "(a multiple of 32; default: pad to a multiple of 32, no resize)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability above which a one-channel model's pixel is foreground")
    parser.add_argument("--class-names", default=None,
                        help="comma-separated class names for the printout (default: the "
                             "model's recorded names, else class 0, 1, ...)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing mask/overlay files in --out")
    parser.set_defaults(func=run)
    return parser


def _check_args(args):
    if args.size is not None and (args.size < 32 or args.size % 32):
        raise ValueError(f"--size must be a positive multiple of 32 (the encoder's stride), got "
                         f"{args.size}; try {max(32, round(args.size / 32) * 32)}.")
    if not 0.0 < args.threshold < 1.0:
        raise ValueError(f"--threshold must lie strictly between 0 and 1, got {args.threshold}.")
    from ..specs import PREPROCESSINGS

    if args.preprocessing is not None and args.preprocessing not in PREPROCESSINGS:
        raise ValueError(f"Unknown --preprocessing {args.preprocessing!r}; choose one of "
                         f"{', '.join(sorted(PREPROCESSINGS))}.")


def load_segmentation_model(path):
    """A saved segmentation model and whether its output is already a probability.

    Returns:
        ``(model, probabilities)``: ``probabilities`` is False when the model ends in logits
        (a linear ``final_activation`` or no activation layer).

    Raises:
        ValueError: when the file is missing, not a Keras model, or not a dense-prediction
            model (its output must be ``(batch, H, W, classes)``).

    Example:
        >>> import os, tempfile
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.commands.segment import load_segmentation_model
        >>> path = os.path.join(tempfile.mkdtemp(), "unet.keras")
        >>> ke.segmentation.Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=2,
        ...                      activation="softmax").save(path)
        >>> model, probabilities = load_segmentation_model(path)
        >>> model.output_shape, probabilities
        ((None, 64, 64, 2), True)
    """
    import keras

    import keras_efficientnet  # noqa: F401  (registers the package's layers for loading)

    if not os.path.isfile(path):
        raise ValueError(f"--model {path!r} is not a file; pass the .keras file of a "
                         "segmentation model (keras_efficientnet.segmentation.Unet(...).save(...)).")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a file that is not a model
        raise ValueError(f"Could not load {path!r} as a Keras model "
                         f"({type(err).__name__}: {' '.join(str(err).split())[:200]}).") from None
    shape = model.output_shape
    if not isinstance(shape, tuple) or len(shape) != 4:
        raise ValueError(f"{path!r} is not a segmentation model: its output shape is {shape}, "
                         "not (batch, height, width, classes). Use `keras-efficientnet classify` "
                         "for classifiers.")
    if model.input_shape[-1] != 3:
        raise ValueError(f"{path!r} takes input of shape {model.input_shape}; this command feeds "
                         "channels_last RGB images (batch, height, width, 3).")
    last = model.layers[-1]
    activation = None
    if isinstance(last, keras.layers.Softmax):
        activation = "softmax"
    elif isinstance(last, keras.layers.Activation):
        activation = last.get_config().get("activation")
    return model, activation in ("softmax", "sigmoid")


def _fit_to_model(image, model_hw, size):
    """``(input, undo)``: the image as the model takes it and a function mapping the model's
    class-index map back to the image's own size."""
    from PIL import Image

    height, width = image.shape[:2]
    if model_hw[0] is not None and model_hw[1] is not None:
        target = (int(model_hw[0]), int(model_hw[1]))
    elif size is not None:
        target = (size, size)
    else:
        ph, pw = -height % 32, -width % 32
        padded = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(height, width) > 32
                        else "edge")
        return padded.astype("float32"), lambda mask: mask[:height, :width]
    resized = Image.fromarray(image.astype("uint8")).resize((target[1], target[0]), Image.BILINEAR)

    def undo(mask):
        return np.asarray(Image.fromarray(mask.astype("uint8")).resize((width, height),
                                                                       Image.NEAREST))

    return np.asarray(resized, dtype="float32"), undo


def segment_image(model, image, preprocessing="imagenet", probabilities=True, threshold=0.5,
                  size=None) -> np.ndarray:
    """The class-index mask of one image, at the image's own size.

    Args:
        model: a segmentation model with ``(batch, H, W, classes)`` output.
        image: ``(H, W, 3)`` array, 0-255.
        preprocessing: the normalisation the model was trained with.
        probabilities: whether the model's output is already probabilities (else logits).
        threshold: the foreground probability of a one-channel model.
        size: side to resize to for a model with a free input size (None: pad to 32).

    Returns:
        ``(H, W)`` uint8 class indices.

    Example:
        >>> import numpy as np
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.commands.segment import segment_image
        >>> unet = ke.segmentation.Unet("EfficientNetB0", classes=3, activation="softmax")
        >>> segment_image(unet, np.zeros((50, 70, 3), "uint8")).shape
        (50, 70)
    """
    from ..preprocessing import normalize

    x, undo = _fit_to_model(np.asarray(image), model.input_shape[1:3], size)
    out = np.asarray(model.predict_on_batch(normalize(x[None], preprocessing)), dtype="float32")[0]
    if out.shape[-1] == 1:
        p = out[..., 0] if probabilities else 1.0 / (1.0 + np.exp(-out[..., 0]))
        mask = (p >= threshold).astype("uint8")
    else:
        mask = out.argmax(-1).astype("uint8")
    return undo(mask)


def overlay(image, mask, alpha=0.5) -> np.ndarray:
    """The image with every non-zero class painted in its palette colour at ``alpha``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.commands.segment import overlay
        >>> overlay(np.zeros((2, 2, 3), "uint8"), np.array([[0, 1], [0, 0]], "uint8"))[0, 1].tolist()
        [115, 12, 38]
    """
    image = np.asarray(image, dtype="float32")
    out = image.copy()
    fg = mask > 0
    colours = PALETTE[(mask.astype(int) - 1) % len(PALETTE)]
    out[fg] = (1 - alpha) * image[fg] + alpha * colours[fg]
    return np.clip(np.round(out), 0, 255).astype("uint8")


def _write_png(array, path):
    from PIL import Image

    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        Image.fromarray(array).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def run(args) -> int:
    """Segment ``args.images`` with ``args.model``; write masks and overlays into ``args.out``.

    Example:
        >>> from keras_efficientnet.cli import main
        >>> main(["segment", "no_such_image.png", "--model", "no_such_model.keras"])  # exit 2
        2
    """
    from .classify import load_image

    _check_args(args)
    names = args.class_names.split(",") if args.class_names else None
    images = [(path, load_image(path)) for path in args.images]
    stems = [os.path.splitext(os.path.basename(path))[0] for path, _ in images]
    if len(set(stems)) != len(stems):
        raise ValueError("Two images have the same file name; their masks would overwrite each "
                         "other in --out. Segment them in separate runs (different --out).")
    targets = [(os.path.join(args.out, f"{s}_mask.png"), os.path.join(args.out, f"{s}_overlay.png"))
               for s in stems]
    existing = [p for pair in targets for p in pair if os.path.exists(p)]
    if existing and not args.overwrite:
        raise ValueError(f"{existing[0]!r} exists ({len(existing)} output file(s) would be "
                         "replaced); pass --overwrite or choose another --out.")
    model, probabilities = load_segmentation_model(args.model)
    from ..saving import read_model_info
    from ..specs import PREPROCESSINGS

    info = read_model_info(args.model)
    preprocessing = args.preprocessing or info.get("preprocessing", "imagenet")
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(f"{args.model!r} records the normalisation {preprocessing!r}, which is "
                         f"not one of {', '.join(sorted(PREPROCESSINGS))}; pass --preprocessing.")
    classes = model.output_shape[-1]
    if names is None and isinstance(info.get("class_names"), list):
        names = [str(n) for n in info["class_names"]]
        if len(names) != max(2, classes):
            names = None
    if names is not None and len(names) != max(2, classes):
        raise ValueError(f"--class-names gives {len(names)} names; the model has "
                         f"{max(2, classes)} classes.")
    os.makedirs(args.out, exist_ok=True)
    for (path, image), (mask_path, overlay_path) in zip(images, targets):
        mask = segment_image(model, image, preprocessing, probabilities, args.threshold,
                             args.size)
        _write_png(mask, mask_path)
        _write_png(overlay(image, mask), overlay_path)
        counts = np.bincount(mask.ravel(), minlength=max(2, classes)) / mask.size
        shares = ", ".join(f"{names[k] if names else f'class {k}'} {100 * c:.1f}%"
                           for k, c in enumerate(counts) if c > 0)
        print(f"{path}: {image.shape[1]}x{image.shape[0]} -> {mask_path}; {shares}")
    return 0
