"""Export B0 and Lite0 to every format and record the measured agreement and size.

Writes ``docs/results/deployment.json`` (the figures of docs/deployment.md). Lite0 uses its
ImageNet weights (the offline package) when installed; B0 uses random weights with random
BatchNorm statistics (no B0 weights can be fetched offline), so its figures measure the export
path, not accuracy. Every artifact is verified by :func:`keras_efficientnet.export` on the six
scikit-image / scikit-learn sample photos (224 px, centre crop), plus top-1 agreement.

Usage::

    KERAS_BACKEND=tensorflow python examples/export_all.py [--out docs/results/deployment.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import keras
import numpy as np

import keras_efficientnet as ke
from keras_efficientnet.export import EXTENSIONS

JOBS = [("saved_model", None), ("tflite", None), ("tflite", "float16"),
        ("tflite", "dynamic_int8"), ("tflite", "int8"), ("onnx", None), ("openvino", None)]


def sample_photos(size=224):
    """The six sample photos, centre-cropped and resized (0-255 float32)."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    from keras_efficientnet.commands.classify import center_crop_resize

    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(),
              *load_sample_images().images]
    return np.stack([center_crop_resize(p, size) for p in photos]).astype("float32")


def calibration_set(photos):
    """The photos plus horizontal flips and two off-centre crops."""
    from PIL import Image

    size = photos.shape[1]
    out = [photos, photos[:, :, ::-1]]
    for offset in (0, size // 8):
        crop = photos[:, offset:offset + size * 7 // 8, size // 8 - offset:size - offset]
        out.append(np.stack([np.asarray(Image.fromarray(c.astype("uint8")).resize((size, size)),
                                        "float32") for c in crop]))
    return np.concatenate(out)


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        shape = tuple(v.shape)
        if v.path.endswith(("moving_variance", "gamma")):
            value = rng.uniform(0.5, 1.5, shape)
        elif v.path.endswith(("beta", "moving_mean", "bias")):
            value = rng.normal(0, 0.1, shape)
        else:
            value = rng.normal(0, 1.0 / np.sqrt(max(1, int(np.prod(shape[:-1])))), shape)
        v.assign(value.astype(v.dtype))


def models():
    b0 = ke.EfficientNetB0(weights=None, classifier_activation=None)
    randomize(b0)
    yield "EfficientNetB0", "random (seeded), random BN statistics", b0
    try:
        lite0 = ke.EfficientNetLite0(weights="imagenet", classifier_activation=None)
        yield "EfficientNetLite0", "imagenet", lite0
    except ValueError as err:
        print(f"skipping EfficientNetLite0 imagenet: {err}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs",
                                                      "results", "deployment.json"))
    parser.add_argument("--markdown", action="store_true",
                        help="print the table of an existing results file and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(args.out))
        return
    photos = sample_photos()
    calib = calibration_set(photos)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name, weights, model in models():
            candidates = [(model, False)] + [(ke.fuse_batchnorm(model), True)]
            for net, fused in candidates:
                jobs = JOBS if not fused else [("tflite", None)]
                for fmt, quantize in jobs:
                    path = os.path.join(work, f"{name}{'_fused' if fused else ''}_{quantize or 'f32'}"
                                              + ("" if fmt == "saved_model" else EXTENSIONS[fmt]))
                    start = time.time()
                    result = ke.export(net, path, format=fmt, quantize=quantize,
                                       representative_data=calib if quantize == "int8" else None,
                                       verify_data=photos)
                    # agreement of the artifact with the UNFUSED Keras model
                    from keras_efficientnet.export import run_artifact
                    got = run_artifact(path, fmt, photos)
                    ref = keras.ops.convert_to_numpy(model(photos, training=False))
                    row = {"model": name, "weights": weights, "fused_batchnorm": fused,
                           "format": fmt, "quantize": quantize or "float32",
                           "size_bytes": result.size_bytes, "route": result.route,
                           "max_abs_diff": float(np.abs(got - ref).max()),
                           "mean_abs_diff": float(np.abs(got - ref).mean()),
                           "top1_agreement": f"{int((got.argmax(-1) == ref.argmax(-1)).sum())}/{len(ref)}",
                           "max_abs_logit": float(np.abs(ref).max()),
                           "export_seconds": round(time.time() - start, 1)}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                    write(args.out, rows)  # after every row: a long run keeps what it measured
    write(args.out, rows)
    print(f"wrote {args.out}")


def markdown(path):
    """The results file as the Markdown table of docs/deployment.md."""
    with open(path) as f:
        results = json.load(f)
    lines = ["| model | format | quantize | BN folded | size (MB) | max abs diff | mean abs diff "
             "| top-1 agreement | route |", "| --- | --- | --- | --- | ---: | ---: | ---: | --- | --- |"]
    for r in results["rows"]:
        lines.append(f"| {r['model']} | {r['format']} | {r['quantize']} | "
                     f"{'yes' if r['fused_batchnorm'] else 'no'} | {r['size_bytes'] / 1e6:.2f} | "
                     f"{r['max_abs_diff']:.2g} | {r['mean_abs_diff']:.2g} | {r['top1_agreement']} | "
                     f"{r['route']} |")
    versions = ", ".join(f"{k} {results[k]}" for k in ("keras", "tensorflow") if k in results)
    lines.append(f"\nBackend {results['backend']}; {versions}; max |logit|: " + ", ".join(
        sorted({f"{r['model']} {r['max_abs_logit']:.3g}" for r in results["rows"]})) + ".")
    return "\n".join(lines)


def write(path, rows):
    """Write the results atomically."""
    out = {"backend": keras.backend.backend(), "keras": keras.__version__,
           "python": platform.python_version(), "inputs": "6 sample photos, 224x224, 0-255",
           "rows": rows}
    try:
        import tensorflow as tf
        out["tensorflow"] = tf.__version__
    except ImportError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
