"""Segmentation: a trained U-Net to float and full-integer (int8) TFLite, measured offline.

    keras-efficientnet train --task segmentation --epochs 12 --freeze-epochs 2 \
        --image-size 96 --images 320 --batch-size 16 --learning-rate 2e-3 --out runs/seg
    KERAS_BACKEND=tensorflow python examples/segment_export_int8.py runs/seg/model.keras

Reads the size, normalisation and class names the ``train`` command recorded in the model,
regenerates the same seeded validation split of the embedded set, exports the model with
:func:`keras_efficientnet.export` (int8 calibrated on 64 training images; the free-size model
is fixed to the training size), and prints, for Keras, float TFLite and int8 TFLite, the
validation IoU per class and the share of pixels whose class agrees with Keras'.
"""

import argparse
import json
import os
import tempfile

import numpy as np

import keras

from keras_efficientnet.export import export, run_artifact
from keras_efficientnet.preprocessing import normalize
from keras_efficientnet.saving import read_model_info
from keras_efficientnet.segmentation.data import split
from keras_efficientnet.segmentation.datasets import pasted_objects

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model", help="model.keras written by keras-efficientnet train --task segmentation")
parser.add_argument("--images", type=int, default=320, help="--images of the training run")
parser.add_argument("--json", default=None, help="also write the numbers to this file")
args = parser.parse_args()

info = read_model_info(args.model)
size, prep, names = info["image_size"][0], info["preprocessing"], info["class_names"]
model = keras.saving.load_model(args.model, compile=False)
x, y, _ = pasted_objects(args.images, size, seed=0)
(x_train, _), (x_val, y_val) = split(x, y, 0.2, seed=0)
rep = normalize(x_train[:64].astype("float32"), prep)
val = normalize(x_val.astype("float32"), prep)


def iou(pred):
    k = len(names)
    cm = np.bincount(k * y_val.ravel().astype(int) + pred.ravel(), minlength=k * k).reshape(k, k)
    tp = np.diag(cm)
    per_class = tp / np.maximum(cm.sum(0) + cm.sum(1) - tp, 1)
    return {n: round(float(v), 4) for n, v in zip(names, per_class)}, round(float(per_class.mean()), 4)


keras_pred = np.asarray(model.predict(val, verbose=0)).argmax(-1)
rows = {"keras": {"iou": iou(keras_pred), "pixel_agreement": 1.0}}
work = tempfile.mkdtemp()
for quantize in (None, "int8"):
    result = export(model, os.path.join(work, f"unet_{quantize or 'float'}.tflite"),
                    format="tflite", quantize=quantize, representative_data=rep, verify_data=val)
    pred = run_artifact(result.path, "tflite", val).argmax(-1)
    rows[f"tflite {quantize or 'float32'}"] = {
        "iou": iou(pred), "pixel_agreement": round(float(np.mean(pred == keras_pred)), 4),
        "size_mb": round(result.size_bytes / 1e6, 2)}
for name, row in rows.items():
    per_class, mean = row["iou"]
    print(f"{name:14s} mean IoU {mean:.4f} {per_class}  pixels agreeing with Keras "
          f"{100 * row['pixel_agreement']:.2f}%" + (f"  {row['size_mb']} MB" if "size_mb" in row else ""))
if args.json:
    with open(args.json, "w") as f:
        json.dump({"model": args.model, "validation_images": len(x_val), **rows}, f, indent=1)
