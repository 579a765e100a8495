"""Input preprocessing and ImageNet label decoding.

Models normalise their inputs in the graph (``include_preprocessing=True``), so
:func:`preprocess_input` is the identity, as in keras.applications. The ImageNet class names
(WordNet ids, short names and descriptions) ship with the package, so decoding works offline.
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np

from .specs.model import PREPROCESSINGS


def preprocess_input(x, data_format=None):
    """The identity: EfficientNet models here take 0-255 pixels and normalise in the graph.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet import preprocess_input
        >>> float(preprocess_input(np.array([255.0])).max())
        255.0
    """
    del data_format
    return x


def normalize(images, preprocessing: str = "imagenet", data_format: str = "channels_last"):
    """Apply a weight source's normalisation in NumPy, for models built with
    ``include_preprocessing=False``.

    Args:
        images: 0-255 pixels, channels on the last (or first) axis.
        preprocessing: a name from ``keras_efficientnet.specs.PREPROCESSINGS``.
        data_format: where the channel axis is.

    Raises:
        ValueError: an unknown preprocessing or data format, or images without exactly 3
            channels (a grey image is not broadcast to RGB silently).

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.preprocessing import normalize
        >>> normalize(np.full((1, 1, 1, 3), 127.0), "lite")[0, 0, 0].tolist()
        [0.0, 0.0, 0.0]
    """
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(f"Unknown preprocessing {preprocessing!r}; choose one of "
                         f"{', '.join(sorted(PREPROCESSINGS))}.")
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got "
                         f"{data_format!r}.")
    pre = PREPROCESSINGS[preprocessing]
    images = np.asarray(images)
    axis = -1 if data_format == "channels_last" else (0 if images.ndim == 3 else 1)
    if images.ndim < 3 or images.shape[axis] != 3:
        got = images.shape[axis] if images.ndim >= 3 else None
        raise ValueError(
            f"normalize expects RGB images with 3 channels on the {data_format.split('_')[1]} "
            f"axis, got shape {images.shape}" + (f" ({got} channel{'s' if got != 1 else ''})"
                                                 if got is not None else "") +
            ". Convert grey images to RGB first (np.repeat(x, 3, axis=-1)); nothing is broadcast "
            "silently.")
    shape = (1,) * (np.ndim(images) - 1) + (3,) if data_format == "channels_last" else (3, 1, 1)
    mean = np.reshape(np.asarray(pre.mean, "float32"), shape)
    std = np.reshape(np.asarray(pre.std, "float32"), shape)
    return ((np.asarray(images, "float32") - mean) / std).astype("float32")


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> list[tuple[str, str, str]]:
    """The 1000 ImageNet-1k classes as ``(wordnet_id, short_name, description)``.

    Example:
        >>> from keras_efficientnet.preprocessing import imagenet_classes
        >>> imagenet_classes()[967][1]
        'espresso'
    """
    path = os.path.join(os.path.dirname(__file__), "data", "imagenet_classes.json")
    with open(path) as f:
        return [tuple(row) for row in json.load(f)]


@functools.lru_cache(maxsize=1)
def imagenet_class_index() -> list[tuple[str, str]]:
    """keras.applications' ImageNet class index: ``(wordnet_id, name)`` per class, offline.

    The names are keras' (``great_white_shark``, the first synonym with underscores), the
    file keras downloads as ``imagenet_class_index.json``: written back in its layout this
    list has the md5 keras checks that file against (``tests/test_drop_in.py``).

    Example:
        >>> from keras_efficientnet import imagenet_class_index
        >>> imagenet_class_index()[2]
        ('n01484850', 'great_white_shark')
    """
    return [(wnid, long.split(",")[0].strip().replace(" ", "_"))
            for wnid, _, long in imagenet_classes()]


def decode_predictions(preds, top: int = 5):
    """Top ImageNet classes for each row of ``preds``, offline.

    Args:
        preds: ``(batch, 1000)`` probabilities or logits.
        top: how many classes per row (1 to 1000).

    Returns:
        For each row, a list of ``(wordnet_id, name, score)`` tuples, best first: the format
        and the class names of ``keras.applications.imagenet_utils.decode_predictions``
        (:func:`imagenet_class_index`).

    Raises:
        ValueError: when ``preds`` is not ``(batch, 1000)`` or ``top`` is not an integer in
            1..1000.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet import decode_predictions
        >>> p = np.zeros((1, 1000)); p[0, 281] = 1.0
        >>> decode_predictions(p, top=1)[0][0][:2]
        ('n02123045', 'tabby')
    """
    from .validation import check_int

    top = check_int("top", top, minimum=1, maximum=1000)
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(f"decode_predictions expects a batch of 1000 ImageNet scores, shape "
                         f"(batch, 1000); got {preds.shape}.")
    classes = imagenet_class_index()
    out = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        out.append([(classes[i][0], classes[i][1], float(row[i])) for i in best])
    return out


def image_to_rgb(image) -> np.ndarray:
    """A PIL image as an ``(H, W, 3)`` uint8 RGB array, scaled by its real bit depth.

    Pillow's ``convert("RGB")`` clips 16-bit and 32-bit grey images (modes ``I;16``, ``I``)
    and float images (``F``) to 255, turning nearly every pixel white; here they are scaled:
    16-bit by 65535, ``I`` by its bit depth, ``F`` as 0-1 when its values lie there (else
    0-255). Palette, grey, grey+alpha, CMYK and RGBA images go through Pillow's conversion
    (alpha dropped).

    Example:
        >>> import numpy as np
        >>> from PIL import Image
        >>> from keras_efficientnet.preprocessing import image_to_rgb
        >>> img = Image.fromarray(np.full((2, 2), 32768, "uint16"))
        >>> int(image_to_rgb(img)[0, 0, 0])
        128
    """
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        array = np.asarray(image).astype("float64")
        if mode.startswith("I;16"):
            scale = 65535.0
        elif mode == "I":
            peak = float(array.max()) if array.size else 0.0
            scale = 65535.0 if peak <= 65535 else float(2 ** 32 - 1)
        else:
            peak = float(np.nanmax(array)) if array.size else 0.0
            scale = 1.0 if peak <= 1.0 else 255.0
        grey = np.clip(np.round(np.nan_to_num(array) * (255.0 / scale)), 0, 255).astype("uint8")
        return np.repeat(grey[..., None], 3, axis=-1)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))


def read_image(path) -> np.ndarray:
    """An image file as an ``(H, W, 3)`` uint8 RGB array (see :func:`image_to_rgb`).

    Images with more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (decompression bombs: a small
    file that decodes to gigabytes) are refused from their header, before decoding.

    Raises:
        ValueError: a missing file, a file Pillow cannot read, or an image over the pixel
            limit.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> from keras_efficientnet.preprocessing import read_image
        >>> path = os.path.join(tempfile.mkdtemp(), "p.png")
        >>> Image.fromarray(np.zeros((4, 5), "uint8")).convert("P").save(path)
        >>> read_image(path).shape
        (4, 5, 3)
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"cannot read image {path!r}: it is a folder")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if limit and width * height > limit:
                    raise ValueError(
                        f"cannot read image {path!r}: it is {width}x{height} = {width * height:,} "
                        f"pixels, over the limit of {limit:,} (a decompression bomb?). Resize "
                        "it first, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file.")
                img.load()
                return image_to_rgb(img)
    except FileNotFoundError:
        raise ValueError(f"cannot read image {path!r}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(f"cannot read image {path!r}: refused as a possible decompression bomb "
                         f"({err}). Resize it first, or raise PIL.Image.MAX_IMAGE_PIXELS if you "
                         "trust the file.") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot read image {path!r}: not an image file PIL understands, or "
                         f"truncated ({type(err).__name__})") from None
