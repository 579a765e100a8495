"""Segmentation data: image/mask folders read into arrays, and batches that augment image and
mask together.

A data directory holds ``images/`` and ``masks/`` with matching file stems
(``images/cat1.jpg`` + ``masks/cat1.png``). A mask is a single-channel PNG (grey or palette)
whose pixel values are class ids ``0 .. classes - 1``. :func:`load_mask_folder` checks
everything first and raises one ``ValueError`` naming the file and the fix: an image without a
mask, a mask whose size differs from its image's, a class id ``>= classes``, a size not
divisible by 32 (the decoders upsample the 1/32 features five times), images of different sizes.

Everything is NumPy: :class:`SegmentationBatches` is a ``keras.utils.PyDataset``, so the same
pipeline feeds ``model.fit`` on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

import os

import numpy as np

import keras

from ..preprocessing import normalize, read_image

#: Image file extensions read from ``images/``.
IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


def read_mask(path) -> np.ndarray:
    """A mask PNG as an ``(H, W)`` uint8 array of class ids (grey value or palette index).

    Raises:
        ValueError: the file cannot be read or has colour channels (a colour-coded mask must be
            converted to class ids first).

    Example:
        >>> import os, tempfile, numpy as np
        >>> from PIL import Image
        >>> from keras_efficientnet.segmentation.data import read_mask
        >>> path = os.path.join(tempfile.mkdtemp(), "m.png")
        >>> Image.fromarray(np.array([[0, 2], [1, 0]], "uint8")).save(path)
        >>> read_mask(path).tolist()
        [[0, 2], [1, 0]]
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            mode = img.mode
            array = np.asarray(img)
    except Exception as err:
        raise ValueError(f"Cannot read mask {os.fspath(path)!r}: {err}. Masks are single-channel "
                         "PNGs of class ids.") from None
    if mode not in ("L", "P", "1", "I", "I;16"):
        raise ValueError(f"Mask {os.fspath(path)!r} is a {mode} image; masks must be "
                         "single-channel PNGs (grey or palette) whose values are class ids. "
                         "Convert colour-coded masks to class ids first.")
    if array.max(initial=0) > 255:
        raise ValueError(f"Mask {os.fspath(path)!r} has class id {int(array.max())}; at most 256 "
                         "classes (ids 0-255) are supported.")
    return array.astype("uint8")


def _stems(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if os.path.isfile(os.path.join(folder, name)):
            out.setdefault(stem, []).append((ext.lower(), name))
    return out


def find_pairs(data_dir) -> list[tuple[str, str]]:
    """``(image_path, mask_path)`` pairs of a data directory, in file-name order.

    Raises:
        ValueError: no ``images/`` or ``masks/`` folder, no images, or an image without a mask.

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.segmentation.data import find_pairs
        >>> find_pairs(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        ValueError: ...needs an images/ and a masks/ folder...
    """
    data_dir = os.fspath(data_dir)
    image_dir, mask_dir = os.path.join(data_dir, "images"), os.path.join(data_dir, "masks")
    if not (os.path.isdir(image_dir) and os.path.isdir(mask_dir)):
        raise ValueError(f"Segmentation data directory {data_dir!r} needs an images/ and a masks/ "
                         "folder with matching file names (images/a.jpg + masks/a.png).")
    masks = {stem: [n for e, n in files if e == ".png"] for stem, files in _stems(mask_dir).items()}
    pairs, missing = [], []
    for stem, files in _stems(image_dir).items():
        names = [n for e, n in files if e in IMAGE_EXTENSIONS]
        if not names:
            continue
        if not masks.get(stem):
            missing.append(names[0])
            continue
        pairs.append((os.path.join(image_dir, names[0]), os.path.join(mask_dir, masks[stem][0])))
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ValueError(f"Image(s) without a mask in {data_dir!r}: "
                         f"{', '.join('images/' + m for m in missing[:5])}{more}. Add "
                         "masks/<same name>.png for each, or remove the image.")
    if not pairs:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {image_dir!r}.")
    return pairs


def load_mask_folder(data_dir, classes=None):
    """All image/mask pairs of a data directory as arrays, checked.

    Args:
        data_dir: a directory with ``images/`` and ``masks/`` (see the module docstring).
        classes: number of classes; class ids must be ``< classes``. ``None``: the largest id
            found plus one (at least 2).

    Returns:
        ``(images, masks, classes)``: uint8 ``(N, H, W, 3)`` RGB images, uint8 ``(N, H, W)``
        class ids and the number of classes.

    Raises:
        ValueError: naming the file, for an image without a mask, a mask of another size than
            its image, a class id ``>= classes``, a size not divisible by 32, or images whose
            sizes differ from the first one's.

    Example:
        >>> import os, tempfile, numpy as np
        >>> from PIL import Image
        >>> from keras_efficientnet.segmentation.data import load_mask_folder
        >>> root = tempfile.mkdtemp()
        >>> for d in ("images", "masks"):
        ...     os.makedirs(os.path.join(root, d))
        >>> Image.fromarray(np.zeros((32, 64, 3), "uint8")).save(os.path.join(root, "images", "a.jpg"))
        >>> Image.fromarray(np.ones((32, 64), "uint8")).save(os.path.join(root, "masks", "a.png"))
        >>> x, y, classes = load_mask_folder(root)
        >>> x.shape, y.shape, classes
        ((1, 32, 64, 3), (1, 32, 64), 2)
    """
    data_dir = os.fspath(data_dir)
    if classes is not None and int(classes) < 1:
        raise ValueError(f"classes must be at least 1, got {classes}.")
    images, masks, size = [], [], None
    for image_path, mask_path in find_pairs(data_dir):
        rel_i, rel_m = (os.path.relpath(p, data_dir) for p in (image_path, mask_path))
        image, mask = read_image(image_path), read_mask(mask_path)
        h, w = image.shape[:2]
        if mask.shape != (h, w):
            raise ValueError(f"Mask {rel_m} is {mask.shape[1]}x{mask.shape[0]} (WxH) but image "
                             f"{rel_i} is {w}x{h}: a mask must have its image's size.")
        if h % 32 or w % 32:
            fix = (max(32, int(w / 32 + 0.5) * 32), max(32, int(h / 32 + 0.5) * 32))
            raise ValueError(f"Image {rel_i} is {w}x{h} (WxH), not divisible by 32 (the decoders "
                             f"upsample the 1/32 features five times): resize or crop images and "
                             f"masks to e.g. {fix[0]}x{fix[1]}.")
        if size is None:
            size = (h, w)
        elif (h, w) != size:
            raise ValueError(f"Image {rel_i} is {w}x{h} but the first image is {size[1]}x{size[0]}: "
                             "all images of a data set must have one size.")
        top = int(mask.max(initial=0))
        limit = 2 if classes is None else int(classes)
        if classes is not None and top >= max(limit, 2):
            raise ValueError(f"Mask {rel_m} has class id {top}, but there are {limit} classes "
                             f"(ids 0-{max(limit, 2) - 1}): pass classes={top + 1} or fix the mask.")
        images.append(image)
        masks.append(mask)
    masks = np.stack(masks)
    if classes is None:
        classes = max(2, int(masks.max()) + 1)
    return np.stack(images), masks, int(classes)


def split(images, masks, validation_split=0.2, seed=0):
    """A seeded shuffle into ``((x_train, y_train), (x_val, y_val))``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.segmentation.data import split
        >>> (x, y), (xv, yv) = split(np.zeros((10, 32, 32, 3)), np.zeros((10, 32, 32)), 0.2)
        >>> len(x), len(xv)
        (8, 2)
    """
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must lie in [0, 1), got {validation_split}.")
    n = len(images)
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * validation_split))
    if validation_split and (n_val == 0 or n_val == n):
        raise ValueError(f"{n} image(s) cannot be split with validation_split={validation_split}: "
                         "add images or change the split.")
    val, train = order[:n_val], order[n_val:]
    return (images[train], masks[train]), (images[val], masks[val])


class SegmentationBatches(keras.utils.PyDataset):
    """Batches of normalised images and their masks, optionally augmented together.

    Augmentation (training): a random horizontal flip and, with ``crop_size``, a random crop of
    ``crop_size x crop_size`` pixels, both applied to image and mask alike. Images are
    normalised with :func:`keras_efficientnet.preprocessing.normalize` (``preprocessing``, the
    encoder's weight convention) because segmentation models are built without in-graph
    preprocessing. Masks come out as int32 ``(B, H, W)``.

    Args:
        images: uint8 or float ``(N, H, W, 3)`` in 0-255.
        masks: ``(N, H, W)`` class ids.
        batch_size: images per batch.
        augment: flip (and crop) at random.
        crop_size: side of the random crop (a multiple of 32), or ``None``.
        shuffle: reshuffle every epoch.
        preprocessing: the normalisation name (``"imagenet"``, ``"torch"``, ...).
        seed: of the shuffles and augmentation.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.segmentation.data import SegmentationBatches
        >>> batches = SegmentationBatches(np.zeros((5, 64, 64, 3)), np.zeros((5, 64, 64)), 2,
        ...                               augment=True, crop_size=32)
        >>> len(batches), batches[0][0].shape, batches[0][1].shape
        (3, (2, 32, 32, 3), (2, 32, 32))
    """

    def __init__(self, images, masks, batch_size=8, augment=False, crop_size=None, shuffle=None,
                 preprocessing="imagenet", seed=0, **kwargs):
        super().__init__(**kwargs)
        images, masks = np.asarray(images), np.asarray(masks)
        if images.ndim != 4 or masks.shape != images.shape[:3]:
            raise ValueError(f"images must be (N, H, W, 3) and masks (N, H, W) of the same N, H, "
                             f"W; got {images.shape} and {masks.shape}.")
        if len(images) == 0:
            raise ValueError("No images to batch.")
        if crop_size is not None:
            crop_size = int(crop_size)
            if crop_size % 32 or crop_size > min(images.shape[1:3]):
                raise ValueError(f"crop_size must be a multiple of 32 no larger than the images "
                                 f"({images.shape[1]}x{images.shape[2]}), got {crop_size}.")
        self.images, self.masks = images, masks
        self.batch_size = int(batch_size)
        self.augment, self.crop_size = bool(augment), crop_size
        self.shuffle = self.augment if shuffle is None else bool(shuffle)
        self.preprocessing = preprocessing
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(images))
        if self.shuffle:
            self.rng.shuffle(self.order)

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def on_epoch_end(self):
        if self.shuffle:
            self.rng.shuffle(self.order)

    def __getitem__(self, index):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        x, y = self.images[idx].astype("float32"), self.masks[idx].astype("int32")
        if self.crop_size is not None:
            c = self.crop_size
            # training crops at random; evaluation takes the centre
            xs, ys = [], []
            for i in range(len(idx)):
                if self.augment:
                    top = self.rng.integers(0, x.shape[1] - c + 1)
                    left = self.rng.integers(0, x.shape[2] - c + 1)
                else:
                    top, left = (x.shape[1] - c) // 2, (x.shape[2] - c) // 2
                xs.append(x[i, top:top + c, left:left + c])
                ys.append(y[i, top:top + c, left:left + c])
            x, y = np.stack(xs), np.stack(ys)
        if self.augment:
            flip = self.rng.random(len(idx)) < 0.5
            x[flip], y[flip] = x[flip, :, ::-1], y[flip, :, ::-1]
        return normalize(x, self.preprocessing), y
