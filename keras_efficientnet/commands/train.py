"""``keras-efficientnet train``: fine-tune an EfficientNet on class folders (or offline digits).

Writes to ``--out``: ``model.keras`` (the trained model), ``log.csv`` (Keras' CSVLogger),
``curves.png`` (loss and accuracy per epoch) and ``summary.json`` (final validation accuracy,
wall time, backend, settings). ``model.keras`` carries the class names and image size in its
``keras_efficientnet.json`` entry (:mod:`keras_efficientnet.saving`).

With ``--task segmentation`` it trains a U-Net, FPN or LinkNet on image/mask folders (or the
embedded pasted-objects set) instead: :mod:`keras_efficientnet.commands.train_segmentation`.

With ``--teacher`` the model is trained by knowledge distillation
(:class:`~keras_efficientnet.training.Distiller`) from a trained teacher: a ``.keras`` file
(e.g. the ``model.keras`` of an earlier ``keras-efficientnet train`` run on the same data) or
a variant name together with ``--teacher-weights`` (a ``.weights.h5`` of that variant with a
head for the same classes). A softmax teacher or student is used through its logits. The loss
is ``alpha * CE + (1 - alpha) * T^2 * KL`` (``--alpha``, ``--temperature``); label smoothing
does not apply. ``model.keras`` is still the plain student, with its softmax classifier.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

from .outputs import _check_args, _check_out, _finite, plot_history, publish  # noqa: F401  (used here and by tests)


def add_parser(subparsers):
    """Register the ``train`` sub-command.

    Example:
        >>> import argparse
        >>> from keras_efficientnet.commands import train
        >>> sub = argparse.ArgumentParser().add_subparsers()
        >>> train.add_parser(sub).get_default("epochs")
        5
    """
    p = subparsers.add_parser(
        "train", help="fine-tune a model on image folders (or the built-in digits)",
        description="Fine-tune an EfficientNet. Images go in one sub-directory per class; without "
                    "--data the model is fine-tuned on scikit-learn's digits (offline). With "
                    "--task segmentation: a U-Net/FPN/LinkNet on images/ + masks/ folders (or the "
                    "embedded pasted-objects set).")
    p.add_argument("--model", default="EfficientNetLite0", help="variant name (see: keras-efficientnet "
                   "list)")
    p.add_argument("--data", default=None, help="directory with one sub-directory of images per class "
                   "(default: scikit-learn's digits, offline)")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training images")
    p.add_argument("--batch-size", type=int, default=32, help="images per training step")
    p.add_argument("--image-size", type=int, default=None,
                   help="training image size (default: 64 for digits, the variant's resolution else)")
    p.add_argument("--weights", default="imagenet",
                   help="'imagenet' (default), 'none' for random initialisation, or a weights file")
    p.add_argument("--out", default=None, help="output directory (default: runs/<model>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of an earlier run in --out (default: refuse)")
    p.add_argument("--learning-rate", "--lr", type=float, default=1e-3, dest="learning_rate",
                   help="peak learning rate (Adam, warm-up then cosine decay)")
    p.add_argument("--warmup-epochs", type=float, default=0.0,
                   help="epochs of linear learning-rate warm-up before the cosine decay")
    p.add_argument("--trainable", choices=("all", "head"), default="all",
                   help="'all': fine-tune every layer (BatchNorm frozen); 'head': train only the classifier")
    p.add_argument("--unfreeze-blocks", type=int, default=None,
                   help="train the classifier, top_conv and the last N blocks only (BatchNorm "
                        "frozen; default: all blocks)")
    p.add_argument("--label-smoothing", type=float, default=0.1,
                   help="label smoothing of the cross-entropy (0 for none)")
    p.add_argument("--dropout", type=float, default=None, help="classifier dropout (default: the variant's)")
    p.add_argument("--validation-split", type=float, default=0.2,
                   help="fraction of the images held out for validation")
    p.add_argument("--mixed-precision", choices=("bfloat16", "float16"), default=None,
                   help="train under keras' mixed_bfloat16 / mixed_float16 policy (default: "
                        "float32)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed (split, shuffling, initialisation, augmentation)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="limit steps per epoch (quick checks; default: all images)")
    p.add_argument("--teacher", default=None, metavar="MODEL_OR_PATH",
                   help="distil from this trained teacher: a .keras file, or a variant name with "
                        "--teacher-weights (default: no distillation)")
    p.add_argument("--teacher-weights", default=None,
                   help="weights file of a variant-name --teacher (same classes and image size; "
                        "default: none)")
    p.add_argument("--temperature", type=float, default=4.0, help="distillation temperature")
    p.add_argument("--alpha", type=float, default=0.1,
                   help="weight of the hard-label loss in distillation (0..1)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="random flips, shifts and zooms of --data training images (Keras core "
                        "layers; --no-augment to switch off; never applied to the digits)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    seg = p.add_argument_group(
        "segmentation (--task segmentation; see docs/segmentation.md)",
        "--data is a folder with images/ and masks/ (class-id PNGs, matching names; optional "
        "classes.txt); without --data, the embedded pasted-objects set (offline). --model is "
        "the encoder. Writes model.keras (with its class names and normalisation), log.csv, "
        "curves.png (loss, mean IoU) and summary.json.")
    seg.add_argument("--task", choices=("classification", "segmentation", "detection"),
                     default="classification",
                     help="what to train (default classification; detection: an EfficientDet "
                          "on COCO-format --data, see docs/detection.md)")
    seg.add_argument("--architecture", choices=("unet", "fpn", "linknet"), default="unet",
                     help="segmentation decoder (default unet)")
    seg.add_argument("--freeze-epochs", type=int, default=1,
                     help="first epochs with the encoder frozen (default 1)")
    seg.add_argument("--loss", choices=("dice_ce", "dice", "dice_focal", "ce"), default="dice_ce",
                     help="segmentation loss (default dice_ce: Dice + cross-entropy)")
    seg.add_argument("--crop-size", type=int, default=None,
                     help="random square training crops of this side (a multiple of 32)")
    seg.add_argument("--images", type=int, default=None,
                     help="images of the embedded set to generate (without --data; default 160 "
                          "for segmentation, 96 for detection)")
    dist = p.add_argument_group(
        "multi-process training (JAX; see docs/distributed.md)",
        "--num-processes N alone starts N local workers; on a cluster give every host "
        "--coordinator HOST:PORT --process-id K --num-processes N (or Keras' "
        "KERAS_DISTRIBUTION_* variables). --batch-size is the global batch. Checkpoints go to "
        "--out/checkpoint; rerunning the same command resumes from the last one.")
    dist.add_argument("--num-processes", type=int, default=None, help="processes in the job")
    dist.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                      help="address of process 0's coordination service")
    dist.add_argument("--process-id", type=int, default=None, help="this process (0..N-1)")
    dist.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                      help="checkpoint every STEPS steps as well as at each epoch end")
    dist.add_argument("--connect-timeout", type=float, default=120.0, metavar="SECONDS",
                      help="give up joining the job after this long (default 120)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run the command from parsed arguments; returns the exit status."""
    if getattr(args, "task", "classification") == "segmentation":
        return run_segmentation(args)
    if getattr(args, "task", "classification") == "detection":
        return run_detection(args)
    kwargs = dict(model=args.model, data=args.data, epochs=args.epochs, batch_size=args.batch_size,
                    image_size=args.image_size, weights=args.weights, out=args.out,
                    learning_rate=args.learning_rate, warmup_epochs=args.warmup_epochs,
                    trainable=args.trainable, unfreeze_blocks=args.unfreeze_blocks,
                    label_smoothing=args.label_smoothing, dropout=args.dropout,
                    validation_split=args.validation_split, mixed_precision=args.mixed_precision,
                    seed=args.seed, steps_per_epoch=args.steps_per_epoch,
                    teacher=args.teacher, teacher_weights=args.teacher_weights,
                    temperature=args.temperature, alpha=args.alpha,
                    verbose=0 if args.quiet else 1, overwrite=args.overwrite,
                    augment=args.augment,
                    num_processes=args.num_processes, coordinator=args.coordinator,
                    process_id=args.process_id, checkpoint_every=args.checkpoint_every,
                    connect_timeout=args.connect_timeout)
    from ..training import multiprocess

    if multiprocess.wants_launcher(args.num_processes, args.coordinator, args.process_id):
        return launch_train(kwargs)
    summary = train(**kwargs)
    epochs = summary['epochs']
    print(f"validation accuracy {summary['val_accuracy']:.4f} after {epochs} "
          f"epoch{'s' if epochs != 1 else ''} "
          f"({summary['wall_time_s']:.0f} s); wrote {summary['out']}")
    return 0


def _refuse_unused(args, task, segmentation_flags=None):
    given = {"--teacher": args.teacher is not None, "--num-processes": args.num_processes is not None,
             "--coordinator": args.coordinator is not None,
             "--process-id": args.process_id is not None,
             "--unfreeze-blocks": args.unfreeze_blocks is not None,
             "--trainable head": args.trainable != "all", "--dropout": args.dropout is not None,
             "--mixed-precision": args.mixed_precision is not None}
    for flags, only in ((given, "classification"), (segmentation_flags or {}, "segmentation")):
        unused = [flag for flag, on in flags.items() if on]
        if unused:
            raise ValueError(f"{', '.join(unused)} apply to {only} only, not --task {task}; "
                             "leave them out.")


def run_segmentation(args) -> int:
    """``train --task segmentation``: :func:`~.train_segmentation.train_segmentation` from
    parsed arguments; refuses the classification-only options it would ignore."""
    _refuse_unused(args, "segmentation")
    from .train_segmentation import train_segmentation

    summary = train_segmentation(
        model=args.model, architecture=args.architecture, data=args.data, epochs=args.epochs,
        batch_size=args.batch_size, image_size=args.image_size, weights=args.weights,
        out=args.out, learning_rate=args.learning_rate, warmup_epochs=args.warmup_epochs,
        freeze_epochs=args.freeze_epochs, loss=args.loss,
        validation_split=args.validation_split, seed=args.seed,
        steps_per_epoch=args.steps_per_epoch, augment=args.augment, crop_size=args.crop_size,
        images=160 if args.images is None else args.images, verbose=0 if args.quiet else 1,
        overwrite=args.overwrite)
    epochs = summary["epochs"]
    print(f"validation mean IoU {summary['val_mean_iou']:.4f} after {epochs} "
          f"epoch{'s' if epochs != 1 else ''} ({summary['wall_time_s']:.0f} s); wrote "
          f"{summary['out']}")
    return 0


def run_detection(args) -> int:
    """``train --task detection``: :func:`~.train_detection.train_detection` from parsed
    arguments; refuses the options it would ignore."""
    _refuse_unused(args, "detection", {"--architecture": args.architecture != "unet",
                                       "--freeze-epochs": args.freeze_epochs != 1,
                                       "--loss": args.loss != "dice_ce",
                                       "--crop-size": args.crop_size is not None})
    from .train_detection import train_detection

    model = "EfficientDetLite0" if args.model == "EfficientNetLite0" else args.model
    summary = train_detection(
        model=model, data=args.data, epochs=args.epochs, batch_size=args.batch_size,
        image_size=args.image_size, weights=args.weights, out=args.out,
        learning_rate=args.learning_rate, warmup_epochs=args.warmup_epochs,
        validation_split=args.validation_split, seed=args.seed,
        steps_per_epoch=args.steps_per_epoch, augment=args.augment,
        images=96 if args.images is None else args.images, verbose=0 if args.quiet else 1,
        overwrite=args.overwrite)
    epochs = summary["epochs"]
    print(f"validation COCO AP {summary['coco']['AP']:.4f} (AP50 {summary['coco']['AP50']:.4f}) "
          f"after {epochs} epoch{'s' if epochs != 1 else ''} ({summary['wall_time_s']:.0f} s); "
          f"wrote {summary['out']}")
    return 0


OUTPUTS = ("curves.png", "log.csv", "model.keras", "preset", "summary.json")


def _check_split(data, validation_split: float) -> None:
    """Enough images for one validation and one training image (Keras' own error for a
    split that leaves one side empty is "No images found")."""
    from ..training.data import check_image_folder

    classes, count = check_image_folder(data)
    n_val = int(validation_split * count)
    if n_val < 1 or count - n_val < 1:
        raise ValueError(f"{os.fspath(data)!r} holds {count} images in {len(classes)} classes; "
                         f"--validation-split {validation_split:g} leaves {n_val} for validation "
                         f"and {count - n_val} for training, but both need at least one. Add "
                         f"images (at least {max(2, math.ceil(1 / validation_split - 1e-9))} in all) or "
                         "change --validation-split.")


def train(model="EfficientNetLite0", data=None, epochs=5, batch_size=32, image_size=None,
          weights="imagenet", out=None, learning_rate=1e-3, warmup_epochs=0.0, trainable="all",
          unfreeze_blocks=None, label_smoothing=0.1, dropout=None, validation_split=0.2,
          mixed_precision=None, seed=0, steps_per_epoch=None, teacher=None, teacher_weights=None,
          temperature=4.0, alpha=0.1, verbose=1, overwrite=False, augment=True,
          num_processes=None, coordinator=None, process_id=None, checkpoint_every=None,
          connect_timeout=120.0) -> dict:
    """Fine-tune a variant and write the model, CSV log, curves and summary to ``out``.

    ``out`` is checked before anything is built: a file in its place, a folder that cannot
    be written, or the outputs of an earlier run there (unless ``overwrite=True``) are an
    ``OSError`` naming the path. A data folder too small to split (fewer than one validation
    and one training image) is a ``ValueError`` saying so. The outputs are written to a
    temporary folder inside ``out`` and moved into place at the end.

    With ``num_processes`` (and, beyond one process, ``coordinator`` and ``process_id``, or
    Keras' ``KERAS_DISTRIBUTION_*`` variables) this process takes part in multi-process
    data-parallel training (:mod:`keras_efficientnet.training.multiprocess`): ``batch_size``
    is the global batch, each process trains on its slice of it, only process 0 writes to
    ``out``, and checkpoints in ``out/checkpoint`` (every ``checkpoint_every`` steps and at each
    epoch end) are resumed by the next run with the same settings.

    Raises:
        ValueError: bad arguments, data or weights (a truncated weights file is named).
        FileExistsError, NotADirectoryError, PermissionError: ``out`` cannot be used.

    Returns:
        The summary dict (also written as ``summary.json``).

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.commands.train import train
        >>> s = train(model="EfficientNetB0", weights="none", epochs=1, image_size=32,
        ...           steps_per_epoch=2, out=tempfile.mkdtemp(), verbose=0)
        >>> sorted(s["files"])
        ['curves.png', 'log.csv', 'model.keras', 'preset', 'summary.json']
    """
    import keras

    from ..models.factory import build_efficientnet
    from ..specs import get_spec
    from ..training import data as data_lib
    from ..training.finetune import freeze_backbone, reset_classifier, unfreeze_top
    from ..training.losses import SparseCategoricalCrossentropyWithSmoothing
    from ..training.schedules import warmup_cosine_decay

    spec = get_spec(model)
    _check_args(epochs, batch_size, image_size, learning_rate, validation_split)
    if trainable not in ("all", "head"):
        raise ValueError(f"trainable must be 'all' or 'head', got {trainable!r}.")
    weights = None if weights in (None, "none", "None", "") else weights
    out = os.path.abspath(out or os.path.join("runs", spec.name))
    from ..training import multiprocess as mp

    cluster = mp.Cluster.resolve(num_processes, coordinator, process_id)
    if cluster is not None:
        cluster.local_batch(batch_size)
        if teacher is not None:
            raise ValueError("--teacher (distillation) is not available with --num-processes yet.")
    chief = cluster is None or cluster.is_chief
    if chief:
        _check_out(out, overwrite, OUTPUTS)
    if data is not None:
        _check_split(data, validation_split)
    if cluster is not None:
        mp.initialize(cluster, timeout=connect_timeout)
    keras.utils.set_random_seed(seed)

    if data is None:
        size = image_size or 64
        (x, y), (xv, yv), class_names = data_lib.digits(size, validation_split, seed)
        train_data, val_data = (x, y), (xv, yv)
        n_train, n_val = len(y), len(yv)
    else:
        size = image_size or spec.resolution
        train_ds, val_ds, class_names = data_lib.image_folder(data, size, batch_size,
                                                              validation_split, seed)
        # the true counts: Keras' datasets list their files (not batches x batch size)
        n_train, n_val = len(train_ds.file_paths), len(val_ds.file_paths)
        listed_train, listed_val = train_ds, val_ds  # with their file lists (before mapping)
        if augment and cluster is None:
            from ..training.augment import folder_augmentation
            aug = folder_augmentation(seed=seed)
            train_ds = train_ds.map(lambda x, y: (aug(x, training=True), y))
        train_data, val_data = train_ds, val_ds
    steps = steps_per_epoch or max(1, -(-n_train // batch_size))
    if cluster is not None:
        steps = min(steps, -(-n_train // batch_size))
        if data is None:
            n_train = len(y)
            load, val_load, n_val = mp.array_loader(x, y), mp.array_loader(xv, yv), len(yv)
        else:
            load, n_train = mp.folder_loader(listed_train, data, class_names, size)
            val_load, n_val = mp.folder_loader(listed_val, data, class_names, size)
            steps = min(steps_per_epoch or n_train, -(-n_train // batch_size))

    previous_policy = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy(f"mixed_{mixed_precision}")
    scope = mp.distribution(cluster)
    scope.__enter__()
    try:
        backbone = build_efficientnet(spec, include_top=False, weights=weights,
                                      input_shape=(size, size, 3))
        net = reset_classifier(backbone, len(class_names),
                               dropout_rate=spec.dropout if dropout is None else dropout)
        if trainable == "head":
            freeze_backbone(net)
        elif unfreeze_blocks is not None:
            unfreeze_top(net, n_blocks=unfreeze_blocks)
        else:
            unfreeze_top(net)  # everything trainable, BatchNorm frozen
        schedule = warmup_cosine_decay(learning_rate, steps * epochs,
                                       min(steps * epochs, int(round(warmup_epochs * steps))))
        if teacher is not None:
            from ..training.distill import Distiller, logits_model
            teacher_net = load_teacher(teacher, teacher_weights, size, len(class_names))
            trainer = Distiller(logits_model(net), logits_model(teacher_net),
                                temperature=temperature, alpha=alpha)
            trainer.compile(optimizer=keras.optimizers.Adam(schedule), metrics=["accuracy"])
        else:
            trainer = net
            net.compile(optimizer=keras.optimizers.Adam(schedule),
                        loss=SparseCategoricalCrossentropyWithSmoothing(len(class_names),
                                                                        label_smoothing),
                        # the padded last batch of a sharded epoch has zero sample weights,
                        # which Keras applies to weighted_metrics only
                        **{"metrics" if cluster is None else "weighted_metrics": ["accuracy"]})
        from ..validation import prepare_output

        if chief:
            prepare_output(out, what="--out", directory=True)
            tmp_dir = tempfile.mkdtemp(prefix=".train-", dir=out)
        else:
            tmp_dir = cluster.path("outputs")
            os.makedirs(tmp_dir, exist_ok=True)
        csv_path = os.path.join(tmp_dir, "log.csv")
        start = time.time()
        fit_kw = dict(epochs=epochs, validation_data=val_data, verbose=verbose,
                      callbacks=[keras.callbacks.CSVLogger(csv_path)], steps_per_epoch=steps_per_epoch)
        if cluster is not None:
            hist = mp.train_job(trainer, cluster, load, n_train, val_load, n_val, batch_size,
                                epochs, steps, seed, os.path.join(out, "checkpoint"),
                                checkpoint_every, settings=dict(
                                    model=spec.name, weights=str(weights), data=str(data),
                                    image_size=size, epochs=epochs, batch_size=batch_size,
                                    learning_rate=learning_rate, warmup_epochs=warmup_epochs,
                                    trainable=trainable, unfreeze_blocks=unfreeze_blocks,
                                    label_smoothing=label_smoothing, dropout=dropout,
                                    validation_split=validation_split,
                                    mixed_precision=mixed_precision, seed=seed, steps=steps),
                                verbose=verbose if chief else 0)
            if chief:
                mp.write_csv(hist, csv_path)
        elif data is None:
            history = trainer.fit(train_data[0], train_data[1], batch_size=batch_size,
                                  shuffle=True, **fit_kw)
        else:
            history = trainer.fit(train_data.repeat() if steps_per_epoch else train_data, **fit_kw)
        wall = time.time() - start
        if cluster is None:
            hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        if not all(map(_finite, hist.get("loss", []))):
            raise ValueError(f"Training diverged (loss {hist['loss']}); lower --learning-rate.")
        from ..presets import save_preset
        from ..saving import write_model_info

        # how the images were fed: image_dataset_from_directory squashes the whole image,
        # bilinear (the digits are resized bilinearly too); classify repeats it
        info = {"task": "classification", "model": spec.name, "variant": spec.name,
                "class_names": list(class_names), "preprocessing": "in-graph",
                "image_size": [size, size], "resize": "squash", "crop_pct": 1.0,
                "interpolation": "bilinear",
                "source": f"keras-efficientnet train ({weights or 'random'} start)"}
        object.__setattr__(net, "preset_info", info)
        # every process saves (the model file and the preset's weights): reading replicated
        # variables is collective under keras.distribution, and a chief saving alone waits
        # for peers that already stopped until JAX's 300 s shutdown barrier aborts the job
        net.save(os.path.join(tmp_dir, "model.keras"))
        if not chief:
            import shutil
            shutil.rmtree(os.path.join(tmp_dir, "preset"), ignore_errors=True)
        save_preset(net, os.path.join(tmp_dir, "preset"), class_names=class_names)
        if not chief:
            return {"process_id": cluster.process_id, "epochs": epochs, "out": out,
                    "history": hist}
        write_model_info(os.path.join(tmp_dir, "model.keras"), info)  # the chief's file only
        plot_history(hist, os.path.join(tmp_dir, "curves.png"), f"{spec.name} on "
              f"{'digits' if data is None else os.path.basename(os.path.normpath(data))}")
        summary = {
            "model": spec.name, "weights": weights or "none", "data": data or "sklearn digits",
            "backend": keras.backend.backend(), "image_size": size, "epochs": epochs,
            "batch_size": batch_size, "learning_rate": learning_rate, "trainable": trainable,
            "unfreeze_blocks": unfreeze_blocks, "mixed_precision": mixed_precision,
            "classes": class_names, "train_images": n_train, "validation_images": n_val,
            "augment": bool(augment and data is not None and cluster is None),
            "teacher": None if teacher is None else str(teacher),
            **({"temperature": temperature, "alpha": alpha} if teacher is not None else {}),
            "val_accuracy": hist.get("val_accuracy", [float("nan")])[-1],
            "best_val_accuracy": max(hist.get("val_accuracy", [float("nan")])),
            "wall_time_s": round(wall, 1), "history": hist, "out": out,
            "files": list(OUTPUTS),
        }
        if cluster is not None:
            summary.update(num_processes=cluster.num_processes, process_id=0,
                           steps=int(keras.ops.convert_to_numpy(trainer.optimizer.iterations)))
        publish(tmp_dir, out, summary, summary["files"])
        os.rmdir(tmp_dir)
    finally:
        scope.__exit__(None, None, None)
        keras.config.set_dtype_policy(previous_policy)
        if cluster is not None:
            cluster.cleanup()
        if "tmp_dir" in locals() and os.path.isdir(tmp_dir):
            import shutil
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return summary


def load_teacher(teacher, teacher_weights, image_size: int, classes: int):
    """The teacher of ``--teacher``: a ``.keras`` file, or a variant name + weights file.

    Raises:
        ValueError: a missing file, a variant name without ``--teacher-weights``, a teacher
            whose input size or class count differs from the student's.

    Example:
        >>> from keras_efficientnet.commands.train import load_teacher
        >>> load_teacher("EfficientNetB0", None, 32, 10)
        Traceback (most recent call last):
        ...
        ValueError: A variant-name --teacher (EfficientNetB0) needs --teacher-weights: a trained teacher, not random weights.
    """
    import keras

    from ..models.factory import build_efficientnet
    from ..specs import get_spec
    from ..training.finetune import reset_classifier

    teacher = str(teacher)
    if teacher.endswith(".keras") or os.path.exists(teacher):
        if not os.path.exists(teacher):
            raise ValueError(f"--teacher {teacher!r}: no such file.")
        try:
            model = keras.saving.load_model(teacher, compile=False)
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(f"--teacher {teacher!r} cannot be loaded as a Keras model (truncated "
                             f"or not a .keras file?): {str(err)[:200]}") from None
    else:
        if not teacher_weights:
            raise ValueError(f"A variant-name --teacher ({teacher}) needs --teacher-weights: a "
                             "trained teacher, not random weights.")
        if not os.path.exists(teacher_weights):
            raise ValueError(f"--teacher-weights {teacher_weights!r}: no such file.")
        base = build_efficientnet(get_spec(teacher), include_top=False, weights=None,
                                  input_shape=(image_size, image_size, 3))
        model = reset_classifier(base, classes)
        try:
            model.load_weights(teacher_weights)
        except OSError as err:
            raise ValueError(f"--teacher-weights {teacher_weights!r} cannot be read (truncated or "
                             f"corrupt?): {str(err)[:200]}") from None
        except ValueError as err:
            raise ValueError(f"--teacher-weights {teacher_weights!r} does not fit {teacher} with "
                             f"{classes} classes: {str(err)[:300]}") from None
    spatial = tuple(model.input_shape[1:3])
    if all(d is not None for d in spatial) and spatial != (image_size, image_size):
        raise ValueError(f"The teacher takes {spatial} images but the student is trained on "
                         f"{(image_size, image_size)}; pass --image-size {spatial[0]}.")
    if model.output_shape[-1] != classes:
        raise ValueError(f"The teacher predicts {model.output_shape[-1]} classes but the data "
                         f"has {classes}; the teacher must be trained on the same classes.")
    return model


# --------------------------------------------------------------------------- several processes

def launch_train(train_kwargs: dict, **kwargs) -> int:
    """Check the arguments, then run ``train(**train_kwargs)`` in
    ``train_kwargs["num_processes"]`` local workers
    (:func:`~keras_efficientnet.training.multiprocess.launch_local`).

    Raises:
        ValueError: on a backend without multi-process training, a global batch the workers
            cannot split evenly, or any argument ``train`` would refuse; before any worker starts.

    Example:
        >>> from keras_efficientnet.commands.train import launch_train
        >>> try:
        ...     launch_train({"num_processes": 2, "batch_size": 3})
        ... except ValueError:
        ...     print("refused before starting workers")
        refused before starting workers
    """
    from ..specs import get_spec
    from ..training import multiprocess as mp

    mp.check_backend()
    kw = dict(train_kwargs)
    spec = get_spec(kw.get("model", "EfficientNetLite0"))
    n = int(kw["num_processes"])
    mp.Cluster(n, 0, "127.0.0.1:0").local_batch(int(kw.get("batch_size", 32)))
    if kw.get("teacher") is not None:
        raise ValueError("--teacher (distillation) is not available with --num-processes yet.")
    _check_args(kw.get("epochs", 5), kw.get("batch_size", 32), kw.get("image_size"),
                    kw.get("learning_rate", 1e-3), kw.get("validation_split", 0.2))
    kw["out"] = os.path.abspath(kw.get("out") or os.path.join("runs", spec.name))
    _check_out(kw["out"], kw.get("overwrite", False), OUTPUTS)
    if kw.get("data") is not None:
        _check_split(kw["data"], kw.get("validation_split", 0.2))
    return mp.launch_local(kw, n, **kwargs)


def worker_main() -> int:
    """Entry point of a worker started by
    :func:`~keras_efficientnet.training.multiprocess.launch_local`: runs ``train`` with the
    keyword arguments in ``KE_TRAIN_KWARGS`` and prints errors as the CLI does.

    Returns:
        The exit status: 0, or 2 after a one-line error on stderr.

    Example:
        >>> from keras_efficientnet.commands import train as command
        >>> callable(command.worker_main)  # run as python -m keras_efficientnet.commands.train
        True
    """
    import signal

    from ..cli import EXPECTED_ERRORS, _one_line

    kwargs = json.loads(os.environ["KE_TRAIN_KWARGS"])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        summary = train(**kwargs)
    except EXPECTED_ERRORS as err:
        if os.environ.get("KE_DEBUG", "") not in ("", "0"):
            raise
        print(f"keras-efficientnet train: error: {_one_line(err)}", file=sys.stderr, flush=True)
        return 2
    if summary.get("process_id", 0) == 0:
        epochs = summary["epochs"]
        print(f"validation accuracy {summary['val_accuracy']:.4f} after {epochs} "
              f"epoch{'s' if epochs != 1 else ''} ({summary['wall_time_s']:.0f} s); "
              f"wrote {summary['out']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
