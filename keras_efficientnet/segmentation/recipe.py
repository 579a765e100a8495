"""Fine-tuning a segmentation model: ``compile`` with the loss, IoU metrics and optimizer that
suit it, and ``fit`` in two phases (frozen encoder, then the whole network).

:func:`compile_segmentation` reads the model's output (channels, final activation) to choose
the loss mode (one sigmoid channel: binary; ``C`` channels: multi-class) and ``from_logits``,
then calls ``model.compile`` with:

* the loss: ``"dice_ce"`` (:class:`~.losses.DiceCrossentropy`, the default), ``"dice"``,
  ``"dice_focal"``, ``"ce"`` (cross-entropy alone), or any Keras loss;
* the metrics of :func:`~.losses.iou_metrics` (``mean_iou`` and one ``iou_{c}`` per class);
* Keras' ``AdamW`` (no weight decay on biases and normalisation parameters) with the
  classification recipe's linear warm-up + cosine decay
  (:func:`keras_efficientnet.training.schedules.warmup_cosine_decay`, Keras' own
  ``CosineDecay``).

:func:`fit_segmentation` is two calls of ``model.fit``. For the first ``freeze_encoder_epochs``
epochs the encoder is frozen (:func:`freeze_encoder`): its weights do not change and it runs in
inference mode (BatchNorm normalises with its moving statistics and does not update them,
stochastic depth is off), so a freshly initialised decoder learns on the pretrained features
without its large early gradients reaching them. Then the encoder is unfrozen
(:func:`unfreeze_encoder`), the model compiled again (a new optimizer and a new warm-up) and
trained for the remaining epochs. The encoder's BatchNorm layers stay in inference mode in the
second phase too unless ``train_encoder_batchnorm=True``: with the small batches of
segmentation fine-tuning their batch statistics are noisy, and the pretrained moving statistics
are what the pretrained weights expect. Train them (``True``) when the encoder starts from
random weights.

The encoder is every layer of the model but the decoder's and the head's, which
:func:`~.models.Unet`, :func:`~.models.FPN` and :func:`~.models.Linknet` name
``decoder_*``, ``fpn_*`` and ``final_*`` (qubvel's convention); a model saved to ``.keras``
and loaded back keeps the names, so the helpers work on it too.
"""

from __future__ import annotations

import math

import keras

from ..training.schedules import warmup_cosine_decay
from .losses import DiceCrossentropy, DiceFocal, DiceLoss, iou_metrics

#: Name prefixes of the decoder and head layers of this package's segmentation models.
DECODER_PREFIXES = ("decoder_", "fpn_", "final_")
#: The loss names :func:`compile_segmentation` accepts.
LOSSES = ("dice_ce", "dice", "dice_focal", "ce")


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model (a Unet, FPN or Linknet of "
                         f"keras_efficientnet.segmentation), got {type(model).__name__}.")


def encoder_layers(model):
    """The encoder's layers of a segmentation model (all but the decoder and head; the input
    layer excluded), in graph order.

    Raises:
        ValueError: ``model`` has no decoder/head layers (``decoder_*``, ``fpn_*``,
            ``final_*``) or no other layers: it is not a segmentation model of this package.

    Example:
        >>> from keras_efficientnet.segmentation import Unet
        >>> from keras_efficientnet.segmentation.recipe import encoder_layers
        >>> model = Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=2)
        >>> layers = encoder_layers(model)
        >>> layers[0].name, layers[-1].name
        ('stem_conv_pad', 'block7a_project_bn')
    """
    _check_model(model)
    encoder, decoder = [], []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        (decoder if layer.name.startswith(DECODER_PREFIXES) else encoder).append(layer)
    if not encoder or not decoder:
        raise ValueError(f"{model.name!r} is not a segmentation model of "
                         "keras_efficientnet.segmentation: it needs decoder/head layers named "
                         f"{'*, '.join(DECODER_PREFIXES)}* and encoder layers besides them.")
    return encoder


def freeze_encoder(model):
    """Freeze the encoder and run it in inference mode; the decoder and head stay trainable.

    Every encoder layer becomes non-trainable, so Keras runs its BatchNorm layers in inference
    mode (moving statistics, not updated); the encoder's stochastic-depth ``Dropout`` layers are
    switched off (rate 0, the rate kept for :func:`unfreeze_encoder`). Compile the model after
    calling this (Keras collects the trainable variables when it builds the train step).

    Returns:
        ``model`` (changed in place).

    Example:
        >>> from keras_efficientnet.segmentation import Unet
        >>> from keras_efficientnet.segmentation.recipe import freeze_encoder
        >>> model = freeze_encoder(Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=2))
        >>> sorted({w.path.split("_")[0] for w in model.trainable_weights})
        ['decoder', 'final']
    """
    for layer in encoder_layers(model):
        layer.trainable = False
        if isinstance(layer, keras.layers.Dropout) and layer.rate:
            layer._rate_before_freeze = layer.rate
            layer.rate = 0.0
    return model


def unfreeze_encoder(model, train_batchnorm=False):
    """Make the encoder trainable again (undoing :func:`freeze_encoder`).

    Args:
        model: a segmentation model of this package.
        train_batchnorm: also train the encoder's BatchNorm layers (batch statistics in
            training, moving statistics updated). ``False`` keeps them in inference mode, the
            usual choice for a pretrained encoder and small batches.

    Returns:
        ``model`` (changed in place). Compile it afterwards.

    Example:
        >>> from keras_efficientnet.segmentation import Unet
        >>> from keras_efficientnet.segmentation.recipe import freeze_encoder, unfreeze_encoder
        >>> model = freeze_encoder(Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=2))
        >>> model = unfreeze_encoder(model)
        >>> model.get_layer("stem_conv").trainable, model.get_layer("stem_bn").trainable
        (True, False)
    """
    if not isinstance(train_batchnorm, bool):
        raise ValueError(f"train_batchnorm must be True or False, got {train_batchnorm!r}.")
    for layer in encoder_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = train_batchnorm
        else:
            layer.trainable = True
        if isinstance(layer, keras.layers.Dropout) and hasattr(layer, "_rate_before_freeze"):
            layer.rate = layer._rate_before_freeze
            del layer._rate_before_freeze
    return model


def _output_info(model, from_logits):
    """``(classes, mode, from_logits)`` read from the model's output and last layer."""
    shape = model.output_shape
    if isinstance(shape, list) or len(shape) != 4:
        raise ValueError(f"model must have one (N, H, W, C) output, has {shape}.")
    try:
        data_format = model.get_layer("final_conv").data_format
    except ValueError:
        data_format = "channels_last"
    if data_format != "channels_last":
        raise ValueError("The segmentation losses and metrics take channels-last predictions; "
                         "build the model with data_format='channels_last'.")
    classes = int(shape[-1])
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        activation = "softmax"
    else:
        fn = getattr(last, "activation", None)
        activation = keras.activations.serialize(fn) if fn is not None else None
        activation = activation.get("config", activation) if isinstance(activation, dict) else activation
    if activation not in ("softmax", "sigmoid", "linear") and from_logits is None:
        raise ValueError(f"Cannot tell whether {model.name!r} outputs logits or probabilities "
                         f"(last layer {last.name!r}): pass from_logits=True or False.")
    if classes == 1 and activation == "softmax":
        raise ValueError("A softmax over one channel is always 1: build a binary model with "
                         "activation='sigmoid' or None, or use classes >= 2 with softmax.")
    if classes > 1 and activation == "sigmoid":
        raise ValueError(f"The model has {classes} sigmoid channels (multi-label); these losses "
                         "are multi-class (one class per pixel): build it with "
                         "activation='softmax' or None (logits).")
    if from_logits is None:
        from_logits = activation == "linear"
    return classes, "binary" if classes == 1 else "multiclass", bool(from_logits)


def segmentation_loss(loss, mode="multiclass", from_logits=True):
    """A loss object from a name of :data:`LOSSES` (or a Keras loss, returned as is).

    ``"ce"`` is :class:`~.losses.DiceCrossentropy` with ``dice_weight=0``: plain
    cross-entropy that takes the same ``(N, H, W)`` masks.

    Example:
        >>> from keras_efficientnet.segmentation.recipe import segmentation_loss
        >>> type(segmentation_loss("dice_focal", "binary")).__name__
        'DiceFocal'
    """
    if not isinstance(loss, str):
        if isinstance(loss, keras.losses.Loss) or callable(loss):
            return loss
        raise ValueError(f"loss must be one of {LOSSES} or a Keras loss, got {loss!r}.")
    if loss == "dice_ce":
        return DiceCrossentropy(mode, from_logits)
    if loss == "dice":
        return DiceLoss(mode, from_logits)
    if loss == "dice_focal":
        return DiceFocal(mode, from_logits)
    if loss == "ce":
        return DiceCrossentropy(mode, from_logits, dice_weight=0.0, name="crossentropy")
    raise ValueError(f"Unknown loss {loss!r}: use one of {LOSSES} or a keras.losses.Loss.")


def compile_segmentation(model, loss="dice_ce", learning_rate=1e-3, weight_decay=1e-4,
                         total_steps=None, warmup_steps=0, min_lr_fraction=0.0, metrics="iou",
                         from_logits=None, clipnorm=None, **compile_kwargs):
    """``model.compile`` with a segmentation loss, IoU metrics and AdamW on a warm-up + cosine
    schedule.

    Args:
        model: a segmentation model (channels-last ``(N, H, W, C)`` output).
        loss: ``"dice_ce"``, ``"dice"``, ``"dice_focal"``, ``"ce"`` or a Keras loss.
        learning_rate: the peak learning rate.
        weight_decay: AdamW's decoupled weight decay (not applied to biases, BatchNorm and
            GroupNorm parameters).
        total_steps: steps of the run; ``None`` keeps ``learning_rate`` constant.
        warmup_steps: linear warm-up steps (with ``total_steps``).
        min_lr_fraction: final learning rate as a fraction of the peak.
        metrics: ``"iou"`` (:func:`~.losses.iou_metrics`), ``None`` or a list of metrics.
        from_logits: whether the model outputs logits; ``None`` reads it from the last layer
            (linear: logits; softmax/sigmoid: probabilities).
        clipnorm: AdamW's ``global_clipnorm`` (``None``: no clipping).
        **compile_kwargs: passed to ``model.compile`` (``jit_compile``, ``steps_per_execution``).

    Returns:
        ``model``, compiled.

    Raises:
        ValueError: for an unknown loss name, non-positive learning rate, negative weight
            decay, a warm-up longer than the run, or a model output the losses cannot take
            (channels first, softmax over one channel, several sigmoid channels).

    Example:
        >>> from keras_efficientnet.segmentation import Unet
        >>> from keras_efficientnet.segmentation.recipe import compile_segmentation
        >>> model = Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=3, activation=None)
        >>> model = compile_segmentation(model, total_steps=100, warmup_steps=10)
        >>> type(model.loss).__name__, model.loss.from_logits, type(model.optimizer).__name__
        ('DiceCrossentropy', True, 'AdamW')
    """
    _check_model(model)
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}.")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}.")
    if not 0.0 <= min_lr_fraction <= 1.0:
        raise ValueError(f"min_lr_fraction must lie in [0, 1], got {min_lr_fraction}.")
    classes, mode, from_logits = _output_info(model, from_logits)
    loss = segmentation_loss(loss, mode, from_logits)
    if metrics == "iou":
        metrics = iou_metrics(classes, from_logits=from_logits)
    elif metrics is None:
        metrics = []
    elif isinstance(metrics, str):
        raise ValueError(f"metrics must be 'iou', None or a list of metrics, got {metrics!r}.")
    if total_steps is None:
        if warmup_steps:
            raise ValueError("warmup_steps needs total_steps (the length of the run).")
        lr = float(learning_rate)
    else:
        if int(total_steps) < 1 or not 0 <= int(warmup_steps) <= int(total_steps):
            raise ValueError(f"Need total_steps >= 1 and 0 <= warmup_steps <= total_steps, got "
                             f"total_steps={total_steps}, warmup_steps={warmup_steps}.")
        lr = warmup_cosine_decay(float(learning_rate), int(total_steps), int(warmup_steps),
                                 float(min_lr_fraction))
    optimizer = keras.optimizers.AdamW(learning_rate=lr, weight_decay=float(weight_decay),
                                       global_clipnorm=clipnorm)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics), **compile_kwargs)
    return model


def _steps_per_epoch(train, steps_per_epoch, batch_size):
    if steps_per_epoch is not None:
        if int(steps_per_epoch) < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}.")
        return int(steps_per_epoch)
    if isinstance(train, (tuple, list)):
        if len(train) != 2:
            raise ValueError("train as a tuple must be (images, masks).")
        return max(1, math.ceil(len(train[0]) / int(batch_size or 32)))
    cardinality = getattr(train, "cardinality", None)
    if callable(cardinality):  # tf.data.Dataset
        n = int(cardinality())
        if n > 0:
            return n
    else:
        try:
            n = len(train)
        except TypeError:
            n = 0
        if n > 0:
            return n
    raise ValueError(f"Cannot tell how many batches an epoch of {type(train).__name__} has (the "
                     "learning-rate schedule needs it): pass steps_per_epoch.")


def _merge(histories, model):
    """One ``History`` over the phases' epochs; ``.phases`` keeps the phases' own."""
    merged = keras.callbacks.History()
    merged.set_model(model)
    merged.epoch = [e for h in histories for e in h.epoch]
    keys = []
    for h in histories:
        keys += [k for k in h.history if k not in keys]
    merged.history = {k: [v for h in histories for v in h.history.get(k, [math.nan] * len(h.epoch))]
                      for k in keys}
    merged.params = dict(histories[-1].params or {})
    merged.params["epochs"] = len(merged.epoch)
    merged.phases = list(histories)
    return merged


def fit_segmentation(model, train, validation=None, epochs=10, freeze_encoder_epochs=0,
                     learning_rate=1e-3, loss="dice_ce", weight_decay=1e-4, warmup_epochs=1.0,
                     train_encoder_batchnorm=False, steps_per_epoch=None, callbacks=None,
                     verbose="auto", metrics="iou", **fit_kwargs):
    """Fine-tune a segmentation model: a frozen-encoder phase, then the whole network.

    Epochs ``[0, freeze_encoder_epochs)`` train the decoder and head with the encoder frozen
    and in inference mode (:func:`freeze_encoder`); epochs ``[freeze_encoder_epochs, epochs)``
    train everything (:func:`unfreeze_encoder`; encoder BatchNorm trained only with
    ``train_encoder_batchnorm``). Each phase is one ``model.fit`` on a model compiled by
    :func:`compile_segmentation`, with a linear warm-up of ``warmup_epochs`` (at most the
    phase) to ``learning_rate`` and a cosine decay to 0 at the end of the phase; the second
    phase continues the epoch count (``initial_epoch``), so callbacks see one run.

    Args:
        model: a Unet, FPN or Linknet of :mod:`keras_efficientnet.segmentation`.
        train: what ``model.fit`` takes: a :class:`~.data.SegmentationBatches` (or any
            ``PyDataset``), a ``tf.data.Dataset``, or an ``(images, masks)`` tuple of arrays
            (already normalised; pass ``batch_size``).
        validation: ``validation_data`` of ``model.fit``.
        epochs: total epochs, frozen ones included.
        freeze_encoder_epochs: epochs of the frozen phase (0: no frozen phase).
        learning_rate: peak learning rate of each phase.
        loss: see :func:`compile_segmentation`.
        weight_decay: AdamW's weight decay.
        warmup_epochs: warm-up length of each phase, in epochs (may be fractional).
        train_encoder_batchnorm: train the encoder's BatchNorm in the unfrozen phase.
        steps_per_epoch: batches per epoch, when ``len(train)`` does not tell.
        callbacks: Keras callbacks, given to both phases.
        verbose: of ``model.fit``.
        metrics: see :func:`compile_segmentation`.
        **fit_kwargs: more ``model.fit`` arguments (``batch_size``, ``validation_freq``, ...)
            and the :func:`compile_segmentation` options ``min_lr_fraction``, ``clipnorm``,
            ``from_logits``, ``jit_compile``.

    Returns:
        A ``keras.callbacks.History`` over all epochs (``history.history["val_mean_iou"]``,
        ...); ``history.phases`` holds each phase's own ``History``. The model ends with its
        encoder unfrozen (unless every epoch was frozen).

    Raises:
        ValueError: for ``epochs < 1``, ``freeze_encoder_epochs`` outside ``[0, epochs]``,
            a negative ``warmup_epochs``, an unknown epoch length, and the errors of
            :func:`compile_segmentation` and :func:`encoder_layers`.

    Example:
        >>> from keras_efficientnet.segmentation import Unet
        >>> from keras_efficientnet.segmentation.data import SegmentationBatches
        >>> from keras_efficientnet.segmentation.datasets import pasted_objects
        >>> from keras_efficientnet.segmentation.recipe import fit_segmentation
        >>> x, y, names = pasted_objects(4, 64)
        >>> model = Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=3, activation=None,
        ...              decoder_filters=(32, 16, 16, 8, 8))
        >>> history = fit_segmentation(model, SegmentationBatches(x, y, 2), epochs=2,
        ...                            freeze_encoder_epochs=1, verbose=0)
        >>> history.epoch, len(history.history["mean_iou"]), len(history.phases)
        ([0, 1], 2, 2)
    """
    _check_model(model)
    if train is None:
        raise ValueError("train is required: a SegmentationBatches, a tf.data.Dataset or an "
                         "(images, masks) tuple.")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}.")
    if not isinstance(freeze_encoder_epochs, int) or not 0 <= freeze_encoder_epochs <= epochs:
        raise ValueError(f"freeze_encoder_epochs must be an integer in [0, epochs={epochs}], got "
                         f"{freeze_encoder_epochs!r}.")
    if not (isinstance(warmup_epochs, (int, float)) and warmup_epochs >= 0):
        raise ValueError(f"warmup_epochs must be a number >= 0, got {warmup_epochs!r}.")
    if not isinstance(train_encoder_batchnorm, bool):
        raise ValueError(f"train_encoder_batchnorm must be True or False, got "
                         f"{train_encoder_batchnorm!r}.")
    encoder_layers(model)  # a segmentation model of ours, or a ValueError now
    compile_keys = ("min_lr_fraction", "clipnorm", "from_logits", "jit_compile",
                    "steps_per_execution")
    compile_kwargs = {k: fit_kwargs.pop(k) for k in compile_keys if k in fit_kwargs}
    steps = _steps_per_epoch(train, steps_per_epoch, fit_kwargs.get("batch_size"))
    if isinstance(train, (tuple, list)):
        fit_kwargs["x"], fit_kwargs["y"] = train
    else:
        fit_kwargs["x"] = train
    if steps_per_epoch is not None:
        fit_kwargs["steps_per_epoch"] = steps
    phases = [(0, freeze_encoder_epochs, True), (freeze_encoder_epochs, epochs, False)]
    histories = []
    for start, end, frozen in phases:
        if end <= start:
            continue
        if frozen:
            freeze_encoder(model)
        else:
            unfreeze_encoder(model, train_batchnorm=train_encoder_batchnorm)
        total = steps * (end - start)
        warmup = min(total, int(round(warmup_epochs * steps)))
        compile_segmentation(model, loss, learning_rate, weight_decay, total_steps=total,
                             warmup_steps=warmup, metrics=metrics, **compile_kwargs)
        histories.append(model.fit(validation_data=validation, epochs=end, initial_epoch=start,
                                   callbacks=callbacks, verbose=verbose, **fit_kwargs))
    return _merge(histories, model)
