"""``keras-efficientnet train --task segmentation``: fine-tune a U-Net, FPN or LinkNet.

The data is a folder with ``images/`` and ``masks/`` (matching file stems; masks are
single-channel PNGs of class ids, see :mod:`keras_efficientnet.segmentation.data`; an optional
``classes.txt`` names the classes, one per line), or, without ``--data``, the embedded set
:func:`~keras_efficientnet.segmentation.datasets.pasted_objects` (horses and coins pasted on
scikit-image photos; offline). Training is
:func:`~keras_efficientnet.segmentation.recipe.fit_segmentation`: ``--freeze-epochs`` epochs
with the encoder frozen, then the whole network; Dice + cross-entropy (``--loss``), AdamW with
warm-up + cosine, flips (and with ``--crop-size`` random crops) of image and mask together.

Writes to ``--out``: ``model.keras`` (logits out; its ``keras_efficientnet.json`` entry records
the task, class names, input normalisation and size, so ``keras-efficientnet segment --model
out/model.keras`` needs no more flags), ``log.csv``, ``curves.png`` (loss and mean IoU per
epoch) and ``summary.json`` (validation mean IoU and IoU per class, settings, wall time).
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

#: The ``--architecture`` choices and the constructors they name.
ARCHITECTURES = ("unet", "fpn", "linknet")
OUTPUTS = ("curves.png", "log.csv", "model.keras", "summary.json")


def _class_names(data, classes):
    path = os.path.join(data, "classes.txt")
    if not os.path.isfile(path):
        return [f"class {k}" for k in range(classes)]
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) < classes:
        raise ValueError(f"{path} names {len(names)} classes but the masks use ids up to "
                         f"{classes - 1}: give one name per class id, one per line.")
    return names


def _resize(images, masks, size):
    from PIL import Image

    if images.shape[1:3] == (size, size):
        return images, masks
    x = np.stack([np.asarray(Image.fromarray(i).resize((size, size), Image.BILINEAR)) for i in images])
    y = np.stack([np.asarray(Image.fromarray(m).resize((size, size), Image.NEAREST)) for m in masks])
    return x, y


def _preprocessing(variant, weights):
    """The normalisation the encoder's weights expect (a weights file: the variant's own)."""
    from ..pretrained.registry import get_weights
    from ..segmentation.encoders import encoder_plan
    from ..specs import get_spec

    spec = get_spec(encoder_plan(variant).variant)
    if weights is None:
        return spec.preprocessing
    try:
        return get_weights(spec.name, weights).preprocessing
    except ValueError:
        return spec.preprocessing


def train_segmentation(model="EfficientNetLite0", architecture="unet", data=None, epochs=5,
                       batch_size=16, image_size=None, weights="imagenet", out=None,
                       learning_rate=2e-3, warmup_epochs=1.0, freeze_epochs=1, loss="dice_ce",
                       validation_split=0.2, seed=0, steps_per_epoch=None, augment=True,
                       crop_size=None, images=160, verbose=1, overwrite=False) -> dict:
    """Fine-tune a segmentation model and write it, its log, curves and summary to ``out``.

    Args:
        model: the encoder: a variant name (``list_models()``) or an smp encoder name.
        architecture: ``"unet"``, ``"fpn"`` or ``"linknet"``.
        data: an ``images/`` + ``masks/`` folder; ``None``: the embedded pasted-objects set.
        epochs: all epochs, the frozen ones included.
        batch_size: images per step.
        image_size: resize images (bilinear) and masks (nearest) to this square size, a
            multiple of 32; ``None``: the folder's own size (64 for the embedded set).
        weights: the encoder's weights: ``"imagenet"`` (or another registered tag), a file,
            or ``"none"``.
        out: output folder (default ``runs/<architecture>_<model>``).
        learning_rate, warmup_epochs, freeze_epochs, loss: of
            :func:`~keras_efficientnet.segmentation.recipe.fit_segmentation`.
        validation_split: fraction of the images held out (seeded).
        seed: of the split, initialisation, shuffles and augmentation.
        steps_per_epoch: limit the steps of an epoch (quick checks).
        augment: random flips (and crops with ``crop_size``) of the training images.
        crop_size: random square crops of this side (a multiple of 32) in training.
        images: how many embedded images to generate (without ``data``).
        verbose: 0 silent, 1 progress bars, 2 a line per epoch.
        overwrite: replace the outputs of an earlier run in ``out``.

    Returns:
        The summary dict (also written as ``summary.json``).

    Raises:
        ValueError: bad arguments, or data the loader refuses (naming the file and the fix).
        FileExistsError, NotADirectoryError, PermissionError: ``out`` cannot be used; nothing
            in it is touched.

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.commands.train_segmentation import train_segmentation
        >>> s = train_segmentation("EfficientNetB0", weights="none", epochs=1, images=8,
        ...                        batch_size=4, out=tempfile.mkdtemp(), verbose=0)
        >>> s["class_names"], sorted(s["files"])
        (['background', 'horse', 'coin'], ['curves.png', 'log.csv', 'model.keras', 'summary.json'])
    """
    import keras

    from ..saving import write_model_info
    from ..segmentation import models as seg_models
    from ..segmentation.data import SegmentationBatches, load_mask_folder, split
    from ..segmentation.datasets import CLASS_NAMES, pasted_objects
    from ..segmentation.recipe import compile_segmentation, fit_segmentation
    from ..segmentation.encoders import encoder_plan
    from ..validation import prepare_output
    from .outputs import _check_args, _check_out, _finite, plot_history, publish

    architecture = str(architecture).lower()
    if architecture not in ARCHITECTURES:
        raise ValueError(f"--architecture must be one of {', '.join(ARCHITECTURES)}, got "
                         f"{architecture!r}.")
    _check_args(epochs, batch_size, image_size, learning_rate, validation_split)
    if image_size is not None and image_size % 32:
        raise ValueError(f"--image-size must be a multiple of 32 for segmentation (the decoders "
                         f"upsample the 1/32 features five times), got {image_size}; try "
                         f"{max(32, round(image_size / 32) * 32)}.")
    if not isinstance(freeze_epochs, int) or not 0 <= freeze_epochs <= epochs:
        raise ValueError(f"--freeze-epochs must be between 0 and --epochs ({epochs}), got "
                         f"{freeze_epochs}.")
    encoder_plan(model)  # an unknown encoder name is a ValueError before anything is read
    weights = None if weights in (None, "none", "None", "") else weights
    out = os.path.abspath(out or os.path.join("runs", f"{architecture}_{model}"))
    _check_out(out, overwrite)
    keras.utils.set_random_seed(seed)

    if data is None:
        if int(images) < 2:
            raise ValueError(f"--images must be at least 2 (one to train, one to validate), got "
                             f"{images}.")
        x, y, names = pasted_objects(int(images), image_size or 64, seed=seed)
        names = list(names)
    else:
        if not os.path.isdir(data):
            raise ValueError(f"--data {os.fspath(data)!r} is not a folder; give a folder with "
                             "images/ and masks/ (see docs/segmentation.md).")
        x, y, classes = load_mask_folder(data)
        names = _class_names(data, classes)
        if image_size is not None:
            x, y = _resize(x, y, image_size)
    (x_train, y_train), (x_val, y_val) = split(x, y, validation_split, seed)
    preprocessing = _preprocessing(model, weights)
    shape = tuple(int(d) for d in x.shape[1:3]) + (3,)
    build = {"unet": seg_models.Unet, "fpn": seg_models.FPN, "linknet": seg_models.Linknet}
    # a free input size: trained on `shape`, the model segments photos of any size (multiples
    # of 32; `segment` pads them) and exports at a size of the user's choice
    net = build[architecture](model, input_shape=(None, None, 3), classes=len(names),
                              activation=None, encoder_weights=weights)
    train_batches = SegmentationBatches(x_train, y_train, batch_size, augment=augment,
                                        crop_size=crop_size if augment else None,
                                        preprocessing=preprocessing, seed=seed)
    val_batches = SegmentationBatches(x_val, y_val, batch_size, preprocessing=preprocessing)

    prepare_output(out, what="--out", directory=True)
    tmp_dir = tempfile.mkdtemp(prefix=".train-", dir=out)
    try:
        csv_path = os.path.join(tmp_dir, "log.csv")
        start = time.time()
        history = fit_segmentation(
            net, train_batches, val_batches, epochs=epochs, freeze_encoder_epochs=freeze_epochs,
            learning_rate=learning_rate, loss=loss, warmup_epochs=warmup_epochs,
            train_encoder_batchnorm=weights is None, steps_per_epoch=steps_per_epoch,
            callbacks=[keras.callbacks.CSVLogger(csv_path, append=True)], verbose=verbose)
        wall = time.time() - start
        hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        if not all(map(_finite, hist.get("loss", []))):
            raise ValueError(f"Training diverged (loss {hist['loss']}); lower --learning-rate.")
        compile_segmentation(net, loss)
        scores = net.evaluate(val_batches, verbose=0, return_dict=True)
        model_path = os.path.join(tmp_dir, "model.keras")
        net.save(model_path)
        info = {"task": "segmentation", "architecture": architecture, "encoder": model,
                "class_names": names, "preprocessing": preprocessing,
                "image_size": list(shape[:2])}
        write_model_info(model_path, info)
        plot_history(hist, os.path.join(tmp_dir, "curves.png"),
                     f"{architecture} {model} on "
                     f"{'pasted objects' if data is None else os.path.basename(os.path.normpath(data))}",
                     metric="mean_iou")
        summary = {
            **info, "weights": weights or "none", "data": data or "embedded pasted objects",
            "backend": keras.backend.backend(), "epochs": epochs, "freeze_epochs": freeze_epochs,
            "batch_size": batch_size, "learning_rate": learning_rate, "loss": loss,
            "augment": bool(augment), "train_images": len(x_train),
            "validation_images": len(x_val),
            "val_mean_iou": float(scores["mean_iou"]),
            "val_iou": {n: float(scores[f"iou_{k}"]) for k, n in enumerate(names)
                        if f"iou_{k}" in scores},
            "wall_time_s": round(wall, 1), "history": hist, "out": out, "files": list(OUTPUTS),
        }
        publish(tmp_dir, out, summary, OUTPUTS)
    finally:
        import shutil

        shutil.rmtree(tmp_dir, ignore_errors=True)
    return summary
