"""Datasets for training: the offline digits set and class-folder image directories.

:func:`digits` turns scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes,
no download) into upscaled RGB images in 0-255, which is what the models' in-graph
preprocessing expects. :func:`image_folder` wraps ``keras.utils.image_dataset_from_directory``
and checks the directory first, so bad input gives one clear ``ValueError``.
"""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np

#: File extensions image_dataset_from_directory reads.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def digits(image_size: int = 32, validation_split: float = 0.2, seed: int = 0):
    """scikit-learn's digits as RGB images, split into training and validation sets.

    The 8x8 images (values 0-16) are scaled to 0-255, resized bilinearly to
    ``image_size`` and repeated over 3 channels. The split is stratified-free but seeded.

    Args:
        image_size: output height and width.
        validation_split: fraction held out for validation.
        seed: seed of the shuffle before splitting.

    Returns:
        ``((x_train, y_train), (x_val, y_val), class_names)``; images float32
        ``(N, image_size, image_size, 3)``, labels int32.

    Example:
        >>> from keras_efficientnet.training.data import digits
        >>> (x, y), (xv, yv), names = digits(32)
        >>> x.shape, xv.shape, len(names), float(x.max()) <= 255.0
        ((1438, 32, 32, 3), (359, 32, 32, 3), 10, True)
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError("The built-in digits dataset needs scikit-learn: pip install scikit-learn "
                         "(or pass a data directory).") from None
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must lie in (0, 1), got {validation_split}.")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}.")
    data = load_digits()
    images = data.images.astype("float32") * (255.0 / 16.0)
    images = _resize(images, int(image_size))
    images = np.repeat(images[..., None], 3, axis=-1)
    labels = data.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(labels))
    images, labels = images[order], labels[order]
    n_val = int(round(len(labels) * validation_split))
    names = [str(i) for i in range(10)]
    return (images[n_val:], labels[n_val:]), (images[:n_val], labels[:n_val]), names


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of ``(N, h, w)`` images (half-pixel centres, edge clamped), in numpy."""
    n, h, w = images.shape

    def weights(src, dst):
        pos = (np.arange(dst) + 0.5) * src / dst - 0.5
        lo = np.clip(np.floor(pos).astype(int), 0, src - 1)
        hi = np.clip(lo + 1, 0, src - 1)
        frac = np.clip(pos - np.floor(pos), 0.0, 1.0)
        frac = np.where(pos < 0, 0.0, frac)
        m = np.zeros((dst, src), "float32")
        m[np.arange(dst), lo] += 1.0 - frac
        m[np.arange(dst), hi] += frac
        return m

    rows, cols = weights(h, size), weights(w, size)
    return np.einsum("ih,nhw,jw->nij", rows, images, cols).astype("float32")


def check_image_folder(data_dir) -> tuple[list[str], int]:
    """Check a class-folder dataset before reading it.

    Raises ``ValueError`` when the directory does not exist, has fewer than two class
    sub-directories with images, or holds images that cannot be decoded (all are listed, up
    to ten). Decoding uses Pillow when installed (header and data check), else TensorFlow.

    Returns:
        ``(class_names, number_of_images)``.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.training.data import check_image_folder
        >>> check_image_folder(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        ValueError: ...has no class sub-directories...
    """
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise ValueError(f"Data directory {data_dir!r} does not exist. Pass a directory with one "
                         "sub-directory of images per class.")
    classes = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
    if not classes:
        raise ValueError(f"Data directory {data_dir!r} has no class sub-directories: put the images "
                         "of each class in their own sub-directory (data/cats/*.jpg, data/dogs/*.jpg).")
    files, with_images = [], []
    for name in classes:
        found = []
        for root, _, fnames in os.walk(os.path.join(data_dir, name)):
            found += [os.path.join(root, f) for f in sorted(fnames)
                      if f.lower().endswith(IMAGE_EXTENSIONS)]
        if found:
            with_images.append(name)
        files += found
    if not files:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {data_dir!r}.")
    if len(with_images) < 2:
        raise ValueError(f"{data_dir!r} has images of only one class ({with_images[0]!r}); training a "
                         "classifier needs at least two class sub-directories with images.")
    bad = [(f, err) for f in files for err in [_decode_error(f)] if err]
    if bad:
        listing = "; ".join(f"{os.path.relpath(f, data_dir)} ({err})" for f, err in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise ValueError(f"{len(bad)} unreadable image file(s) in {data_dir!r}: {listing}{more}. "
                         "Fix or remove them.")
    return with_images, len(files)


def _decode_error(path: str) -> str | None:
    try:
        from PIL import Image
    except ImportError:
        Image = None
    try:
        if Image is not None:
            with Image.open(path) as img:
                img.load()
        else:  # pragma: no cover - Pillow is normally present
            import tensorflow as tf
            tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    except Exception as err:  # any decoder failure means the file is unusable
        return type(err).__name__ if not str(err) else str(err).splitlines()[0][:80]
    return None


def image_folder(data_dir, image_size: int, batch_size: int = 32, validation_split: float = 0.2,
                 seed: int = 0):
    """Training and validation ``tf.data`` datasets from class folders (checked first).

    Images are resized to ``image_size`` and kept in 0-255 (the models normalise in-graph);
    labels are integers.

    Returns:
        ``(train_ds, val_ds, class_names)``.

    Example:
        >>> import os, tempfile, numpy as np
        >>> from PIL import Image
        >>> from keras_efficientnet.training.data import image_folder
        >>> root = tempfile.mkdtemp()
        >>> for c in ("a", "b"):
        ...     os.makedirs(os.path.join(root, c))
        ...     for i in range(5):
        ...         Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(os.path.join(root, c, f"{i}.png"))
        >>> train, val, names = image_folder(root, 32, batch_size=4)
        >>> names
        ['a', 'b']
    """
    import keras

    check_image_folder(data_dir)
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must lie in (0, 1), got {validation_split}.")
    common = dict(labels="inferred", label_mode="int", image_size=(image_size, image_size),
                  batch_size=batch_size, seed=seed, validation_split=validation_split, verbose=False)
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints file counts regardless of verbose
        train = keras.utils.image_dataset_from_directory(os.fspath(data_dir), subset="training",
                                                         **common)
        val = keras.utils.image_dataset_from_directory(os.fspath(data_dir), subset="validation",
                                                       **common)
    return train, val, list(train.class_names)
