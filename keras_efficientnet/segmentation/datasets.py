"""An embedded segmentation data set made from the photos scikit-image ships (no download).

:func:`pasted_objects` pastes real object cutouts onto crops of real photos and keeps their
masks: class 1 is the horse silhouette of ``skimage.data.horse()`` filled with a crop of the
cat's fur from ``skimage.data.chelsea()``; class 2 is a coin cut from ``skimage.data.coins()``
(each coin found by Otsu's threshold, hole filling and a roundness test, so its mask follows the
real coin's outline). Backgrounds are random crops of ``astronaut``, ``coffee``, ``rocket``,
``hubble_deep_field``, ``immunohistochemistry`` and ``gravel``/``grass``/``brick`` (grey,
repeated to RGB). Objects are scaled, flipped and placed at random; a later object covers an
earlier one in image and mask alike. The same ``seed`` gives the same arrays.
"""

from __future__ import annotations

import functools

import numpy as np

#: Class names of :func:`pasted_objects`, by class id.
CLASS_NAMES = ("background", "horse", "coin")

_BACKGROUNDS = ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                "gravel", "grass", "brick")


def _skimage_data():
    try:
        import skimage.data
    except ImportError:
        raise ValueError("The embedded segmentation data set is made from scikit-image's bundled "
                         "photos: pip install scikit-image (or pass --data DIR).") from None
    return skimage.data


def _rgb(array):
    array = np.asarray(array)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return array[..., :3].astype("uint8")


@functools.lru_cache(maxsize=1)
def _sources():
    """(backgrounds, horse (image, mask), [coin (image, mask), ...]) as uint8 arrays."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    data = _skimage_data()
    backgrounds = [_rgb(getattr(data, name)()) for name in _BACKGROUNDS]
    horse_mask = ~np.asarray(data.horse(), bool)  # the horse is False in skimage's image
    fur = _rgb(data.chelsea())
    h, w = horse_mask.shape
    fur = np.asarray(_resize(fur[40:260, 60:300], (h, w)))
    horse = (fur, horse_mask)
    coins = np.asarray(data.coins())
    labels = label(ndimage.binary_fill_holes(coins > threshold_otsu(coins)))
    cutouts = []
    for region in regionprops(labels):
        if not 900 <= region.area <= 3200 or region.solidity < 0.9 or region.eccentricity > 0.7:
            continue
        r0, c0, r1, c1 = region.bbox
        cutouts.append((_rgb(coins[r0:r1, c0:c1]), region.image.copy()))
    return backgrounds, horse, cutouts


def _resize(array, size, nearest=False):
    from PIL import Image

    h, w = size
    if array.dtype == bool:
        img = Image.fromarray(array.astype("uint8") * 255)
        return np.asarray(img.resize((w, h), Image.NEAREST)) > 127
    return np.asarray(Image.fromarray(array).resize(
        (w, h), Image.NEAREST if nearest else Image.BILINEAR))


def pasted_objects(count=96, image_size=64, seed=0, max_objects=3, return_instances=False):
    """Images of horses and coins pasted on real photos, with their class-id masks.

    Args:
        count: number of images.
        image_size: side of the square images (a multiple of 32).
        seed: the same seed gives the same images.
        max_objects: each image gets 1 to ``max_objects`` objects.
        return_instances: also return the instance map (the images and masks are the same
            either way).

    Returns:
        ``(images, masks, class_names)``: uint8 ``(count, S, S, 3)``, uint8 ``(count, S, S)``
        with ids into :data:`CLASS_NAMES` (0 background, 1 horse, 2 coin); with
        ``return_instances``, a fourth uint8 ``(count, S, S)`` array numbering each image's
        pasted objects 1, 2, ... in pasting order where they are visible (0 elsewhere).

    Example:
        >>> from keras_efficientnet.segmentation.datasets import pasted_objects
        >>> x, y, names = pasted_objects(4, 64, seed=0)
        >>> x.shape, y.shape, names, sorted(set(y.ravel().tolist()))
        ((4, 64, 64, 3), (4, 64, 64), ('background', 'horse', 'coin'), [0, 1, 2])
    """
    size = int(image_size)
    if size < 32 or size % 32:
        raise ValueError(f"image_size must be a multiple of 32 (the decoders need it), got "
                         f"{image_size}.")
    if int(count) < 1 or int(max_objects) < 1:
        raise ValueError(f"count and max_objects must be positive, got {count}, {max_objects}.")
    backgrounds, horse, coins = _sources()
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), "uint8")
    masks = np.zeros((count, size, size), "uint8")
    instances = np.zeros((count, size, size), "uint8")
    for i in range(count):
        bg = backgrounds[rng.integers(len(backgrounds))]
        side = int(rng.integers(min(bg.shape[:2]) // 3, min(bg.shape[:2]) + 1))
        top, left = rng.integers(0, bg.shape[0] - side + 1), rng.integers(0, bg.shape[1] - side + 1)
        image = _resize(bg[top:top + side, left:left + side], (size, size)).copy()
        mask = masks[i]
        for k in range(int(rng.integers(1, max_objects + 1))):
            cls = int(rng.integers(1, 3))
            obj, obj_mask = horse if cls == 1 else coins[rng.integers(len(coins))]
            scale = rng.uniform(0.35, 0.75) if cls == 1 else rng.uniform(0.2, 0.45)
            h = max(8, int(size * scale))
            w = max(8, int(h * obj.shape[1] / obj.shape[0]))
            if w > size:
                h, w = max(8, h * size // w), size
            obj, obj_mask = _resize(obj, (h, w)), _resize(obj_mask, (h, w))
            if rng.random() < 0.5:
                obj, obj_mask = obj[:, ::-1], obj_mask[:, ::-1]
            r, c = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
            region = image[r:r + h, c:c + w]
            region[obj_mask] = obj[obj_mask]
            mask[r:r + h, c:c + w][obj_mask] = cls
            instances[i, r:r + h, c:c + w][obj_mask] = k + 1
        images[i] = image
    if return_instances:
        return images, masks, CLASS_NAMES, instances
    return images, masks, CLASS_NAMES


def write_mask_folder(directory, images, masks, prefix="img"):
    """Write arrays as an image/mask folder (``images/*.png`` + ``masks/*.png``) that
    :func:`keras_efficientnet.segmentation.data.load_mask_folder` reads back.

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.segmentation.datasets import pasted_objects, write_mask_folder
        >>> from keras_efficientnet.segmentation.data import load_mask_folder
        >>> x, y, _ = pasted_objects(2, 32)
        >>> root = write_mask_folder(tempfile.mkdtemp(), x, y)
        >>> bool((load_mask_folder(root)[1] == y).all())
        True
    """
    import os

    from PIL import Image

    for sub in ("images", "masks"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    for i, (image, mask) in enumerate(zip(images, masks)):
        name = f"{prefix}{i:04d}.png"
        Image.fromarray(np.asarray(image, "uint8")).save(os.path.join(directory, "images", name))
        Image.fromarray(np.asarray(mask, "uint8")).save(os.path.join(directory, "masks", name))
    return os.fspath(directory)
