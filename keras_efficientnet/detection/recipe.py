"""Training recipe for EfficientDet: letterboxed batches with their anchor targets, augmentation
that moves the boxes with the pixels, EMA weights, warm-up cosine, and COCO evaluation.

* :func:`letterbox` resizes an image so its longer side is the network's input size and pads
  the bottom and right with the mean pixel (effdet's ``ResizePad``); boxes scale with it, and
  the returned scale maps detections back to the original pixels.
* :class:`DetectionBatches` is a ``keras.utils.PyDataset`` of ``(images, packed targets)``:
  images 0-255 float32 (the models normalise in the graph), targets ``(B, A, 5)`` = class
  target and 4 box codes per anchor (:func:`~keras_efficientnet.detection.assign_targets_batch`),
  the layout :class:`~keras_efficientnet.detection.EfficientDetLoss` takes. With ``augment``
  it applies Keras' own box-aware layers (``RandomFlip`` and ``RandomZoom`` with
  ``bounding_box_format="xyxy"``), then drops boxes pushed out of the image.
* :func:`training_model` gives the model ``model.fit`` trains: the detector's two outputs
  concatenated into one ``(B, A, C + 4)`` tensor (the layers are shared, so training it trains
  the detector).
* :func:`fit_detection` compiles and fits: AdamW with a linear warm-up and cosine decay
  (Keras' ``CosineDecay``), gradient clipping by global norm 10 (effdet's), Keras' optimizer EMA
  (``use_ema``; validation runs on the EMA weights through ``keras.callbacks.SwapEMAWeights``,
  and the model ends with them), the encoder's BatchNorm frozen when it is pretrained.
* :func:`detect_images` and :func:`evaluate_detection` run the detector with
  :class:`~keras_efficientnet.detection.DetectionPostProcess` on letterboxed images and score
  the detections (in original pixels) with pycocotools (:func:`~.data.coco_map`).
"""

from __future__ import annotations

import math

import keras
import numpy as np

#: ImageNet's mean pixel (0-255): the letterbox padding, which the models normalise to ~0.
MEAN_PIXEL = (124, 116, 104)
#: boxes narrower or lower than this (input pixels) after augmentation are dropped.
MIN_BOX_SIDE = 2.0


def letterbox(image, size: int, boxes=None):
    """Resize ``image`` so its longer side is ``size`` (bilinear), pad to ``size x size`` at
    the bottom and right with :data:`MEAN_PIXEL`; scale ``boxes`` with it.

    Args:
        image: ``(H, W, 3)`` uint8 (or 0-255 float) pixels.
        size: the square network input side.
        boxes: optional ``(N, 4)`` pixel ``[x1, y1, x2, y2]``.

    Returns:
        ``(image (size, size, 3) uint8, boxes scaled (or None), scale)``: input pixels per
        original pixel is ``scale``; divide detections by it to get original pixels.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection.recipe import letterbox
        >>> out, boxes, scale = letterbox(np.zeros((100, 200, 3), "uint8"), 128, [[0, 0, 100, 50]])
        >>> out.shape, boxes.tolist(), scale
        ((128, 128, 3), [[0.0, 0.0, 64.0, 32.0]], 0.64)
    """
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"letterbox takes (height, width, 3) RGB images; got shape {image.shape}.")
    h, w = image.shape[:2]
    scale = float(size) / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(np.clip(image, 0, 255).astype("uint8")).resize(
        (nw, nh), Image.BILINEAR))
    out = np.empty((size, size, 3), "uint8")
    out[...] = np.asarray(MEAN_PIXEL, "uint8")
    out[:nh, :nw] = resized
    if boxes is not None:
        boxes = np.asarray(boxes, "float32").reshape(-1, 4) * np.float32(scale)
    return out, boxes, scale


def _pad(boxes, classes):
    n = max([len(b) for b in boxes] + [1])
    out_b = np.zeros((len(boxes), n, 4), "float32")
    out_c = np.full((len(boxes), n), -1.0, "float32")
    for i, (b, c) in enumerate(zip(boxes, classes)):
        out_b[i, :len(b)] = b
        out_c[i, :len(c)] = c
    return out_b, out_c


def _clean(boxes, labels, size):
    """Per image: the boxes (clipped to the image) and labels left after augmentation."""
    out_b, out_c = [], []
    for b, c in zip(np.asarray(boxes, "float32"), np.asarray(labels)):
        b = np.clip(b, 0.0, float(size))
        keep = (c >= 0) & (b[:, 2] - b[:, 0] >= MIN_BOX_SIDE) & (b[:, 3] - b[:, 1] >= MIN_BOX_SIDE)
        out_b.append(b[keep])
        out_c.append(c[keep].astype("int32"))
    return out_b, out_c


def _as_list(boxes, classes, count):
    boxes = [np.asarray(b, "float32").reshape(-1, 4) for b in boxes]
    classes = [np.asarray(c).reshape(-1).astype("int32") for c in classes]
    if not len(boxes) == len(classes) == count:
        raise ValueError(f"got {count} images, {len(boxes)} box arrays and {len(classes)} class "
                         "arrays; give one (boxes, classes) pair per image.")
    for i, (b, c) in enumerate(zip(boxes, classes)):
        if len(b) != len(c):
            raise ValueError(f"image {i}: {len(b)} boxes but {len(c)} class ids.")
    return boxes, classes


class DetectionBatches(keras.utils.PyDataset):
    """Batches of letterboxed images and packed anchor targets for ``model.fit``.

    Args:
        images: a list of ``(H, W, 3)`` uint8 images (any sizes) or an array of them.
        boxes: per image ``(n_i, 4)`` pixel ``[x1, y1, x2, y2]`` of the original image.
        classes: per image ``(n_i,)`` class ids ``0..num_classes-1``.
        config: the EfficientDet config (a name or ``DetectionConfig``): its anchors.
        image_size: the square network input side (a multiple of ``2**max_level``).
        num_classes: classes of the class net.
        batch_size: images per batch.
        augment: random horizontal flips and zooms (Keras layers), boxes moved with them.
        zoom: ``RandomZoom``'s factor range (fraction of the side; -0.2 zooms in 20%).
        shuffle: reshuffle every epoch (default: ``augment``).
        seed: of the shuffles and augmentation.
        **kwargs: of ``keras.utils.PyDataset`` (``workers``, ...).

    Example:
        >>> from keras_efficientnet.detection.data import pasted_boxes
        >>> from keras_efficientnet.detection.recipe import DetectionBatches
        >>> data = pasted_boxes(4, 128)
        >>> batches = DetectionBatches(data.images, data.boxes, data.classes, "lite0", 128,
        ...                            num_classes=2, batch_size=2)
        >>> x, y = batches[0]
        >>> len(batches), x.shape, y.shape
        (2, (2, 128, 128, 3), (2, 3069, 5))
    """

    def __init__(self, images, boxes, classes, config, image_size, num_classes, batch_size=8,
                 augment=False, zoom=(-0.2, 0.2), shuffle=None, seed=0, **kwargs):
        from .anchors import anchors_for

        super().__init__(**kwargs)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        count = len(images)
        if count == 0:
            raise ValueError("DetectionBatches got no images.")
        boxes, classes = _as_list(boxes, classes, count)
        self.size, self.num_classes = int(image_size), int(num_classes)
        self.anchors = anchors_for(config, self.size)
        letterboxed = [letterbox(im, self.size, b) for im, b in zip(images, boxes)]
        self.images = np.stack([lb[0] for lb in letterboxed])
        self.boxes = [lb[1] for lb in letterboxed]
        self.classes = classes
        self.scales = np.asarray([lb[2] for lb in letterboxed], "float32")
        self.batch_size, self.augment = int(batch_size), bool(augment)
        self.shuffle = self.augment if shuffle is None else bool(shuffle)
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(count) if self.shuffle else np.arange(count)
        if self.augment:
            fill = float(np.mean(MEAN_PIXEL))
            self.flip = keras.layers.RandomFlip("horizontal", bounding_box_format="xyxy",
                                                seed=seed)
            self.zoom = keras.layers.RandomZoom(tuple(zoom), bounding_box_format="xyxy",
                                                fill_mode="constant", fill_value=fill,
                                                seed=seed + 1)

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def on_epoch_end(self):
        if self.shuffle:
            self.order = self.rng.permutation(len(self.images))

    def _augment(self, x, boxes, classes):
        from keras import ops

        b, c = _pad(boxes, classes)
        data = {"images": x, "bounding_boxes": {"boxes": b, "labels": c}}
        data = self.zoom(self.flip(data, training=True), training=True)
        x = ops.convert_to_numpy(data["images"]).astype("float32")
        boxes, classes = _clean(ops.convert_to_numpy(data["bounding_boxes"]["boxes"]),
                                ops.convert_to_numpy(data["bounding_boxes"]["labels"]),
                                self.size)
        return x, boxes, classes

    def batch(self, index):
        """``(images, boxes, classes)`` of batch ``index`` after augmentation."""
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.images[idx].astype("float32")
        boxes = [self.boxes[i] for i in idx]
        classes = [self.classes[i] for i in idx]
        if self.augment:
            x, boxes, classes = self._augment(x, boxes, classes)
        return x, boxes, classes

    def __getitem__(self, index):
        from .targets import assign_targets_batch

        x, boxes, classes = self.batch(index)
        yxyx = [b[:, [1, 0, 3, 2]] for b in boxes]
        cls_t, box_t, _ = assign_targets_batch(
            yxyx, classes, self.anchors, num_classes=self.num_classes, image_size=self.size,
            tolerance=0.5)
        return x, np.concatenate([cls_t[..., None].astype("float32"), box_t], axis=-1)


def training_model(detector):
    """The single-output model ``fit`` trains: ``concatenate([classes, boxes])`` of
    ``detector``'s outputs, ``(B, A, C + 4)``; its layers are the detector's.

    Example:
        >>> from keras_efficientnet.detection import build_efficientdet
        >>> from keras_efficientnet.detection.recipe import training_model
        >>> det = build_efficientdet("lite0", num_classes=2, input_shape=(128, 128, 3))
        >>> tuple(training_model(det).output.shape)
        (None, 3069, 6)
    """

    out = detector.output
    if not isinstance(out, dict) or not {"classes", "boxes"} <= set(out):
        raise ValueError("training_model takes an EfficientDet with raw {'classes', 'boxes'} "
                         "outputs (built without include_postprocess).")
    packed = keras.layers.Concatenate(axis=-1, name="packed_outputs", dtype="float32")(
        [out["classes"], out["boxes"]])
    return keras.Model(detector.input, packed, name=f"{detector.name}_train")


def auto_ema_momentum(total_steps: int) -> float:
    """An EMA momentum whose horizon is about a tenth of the run, within ``[0.9, 0.9998]``
    (effdet's 0.9998 is for runs of hundreds of thousands of steps; on a short fine-tune it
    would keep the weights near their start).

    Example:
        >>> from keras_efficientnet.detection.recipe import auto_ema_momentum
        >>> auto_ema_momentum(200), auto_ema_momentum(10 ** 6)
        (0.95, 0.9998)
    """
    return float(min(0.9998, max(0.9, 1.0 - 10.0 / max(1, int(total_steps)))))


def freeze_encoder_batchnorm(detector) -> int:
    """Freeze (inference mode) the BatchNorm layers of the encoder part of ``detector`` (the
    layers named like keras.applications' ``stem_bn``, ``block*_bn``, ``top_bn``); the BiFPN
    and head BatchNorms keep training. Returns how many were frozen.

    Example:
        >>> from keras_efficientnet.detection import build_efficientdet
        >>> from keras_efficientnet.detection.recipe import freeze_encoder_batchnorm
        >>> det = build_efficientdet("lite0", num_classes=2, input_shape=(128, 128, 3))
        >>> freeze_encoder_batchnorm(det) > 0
        True
    """

    count = 0
    for layer in detector.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and (
                layer.name.startswith(("stem_", "block", "top_"))):
            layer.trainable = False
            count += 1
    return count


def fit_detection(detector, train_batches, val_batches=None, epochs: int = 10,
                  learning_rate: float = 1e-3, warmup_epochs: float = 1.0,
                  weight_decay: float = 1e-4, ema_momentum="auto", clipnorm: float = 10.0,
                  freeze_encoder_bn: bool = True, steps_per_epoch=None, callbacks=None,
                  val_coco=None, image_size=None, config=None, verbose=1):
    """Train ``detector`` (raw outputs) on :class:`DetectionBatches` with the EfficientDet
    loss, AdamW, warm-up cosine, gradient clipping and EMA weights.

    Args:
        detector: a model from :func:`~keras_efficientnet.detection.build_efficientdet`.
        train_batches, val_batches: :class:`DetectionBatches` (validation optional).
        epochs: passes over ``train_batches``.
        learning_rate: AdamW's peak rate.
        warmup_epochs: epochs of linear warm-up before the cosine decay (Keras' ``CosineDecay``).
        weight_decay: AdamW's decoupled weight decay.
        ema_momentum: ``"auto"`` (:func:`auto_ema_momentum`), a float, or ``None`` for no EMA.
        clipnorm: global gradient-norm clip (effdet: 10; ``None`` for none).
        freeze_encoder_bn: keep the encoder's BatchNorm in inference mode
            (:func:`freeze_encoder_batchnorm`; for pretrained encoders and small batches).
        steps_per_epoch: limit the steps of an epoch.
        callbacks: more Keras callbacks (they see the EMA weights at epoch ends).
        val_coco: a :class:`~keras_efficientnet.detection.CocoData` to score with COCO mAP at
            every epoch end (``val_AP``, ``val_AP50`` in the history; needs ``image_size``
            and ``config``).
        image_size, config: the input side and the detector's config, for ``val_coco``.
        verbose: as ``model.fit``.

    Returns:
        The ``keras.callbacks.History``; the detector ends with the EMA weights.

    Example:
        >>> from keras_efficientnet.detection import build_efficientdet
        >>> from keras_efficientnet.detection.data import pasted_boxes
        >>> from keras_efficientnet.detection.recipe import DetectionBatches, fit_detection
        >>> data = pasted_boxes(4, 128)
        >>> det = build_efficientdet("lite0", num_classes=2, input_shape=(128, 128, 3))
        >>> batches = DetectionBatches(data.images, data.boxes, data.classes, "lite0", 128, 2, 2)
        >>> history = fit_detection(det, batches, epochs=1, verbose=0)
        >>> sorted(history.history)
        ['loss']
    """

    from ..training.schedules import warmup_cosine_decay
    from .losses import EfficientDetLoss

    if int(epochs) < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}.")
    steps = int(steps_per_epoch or len(train_batches))
    total = steps * int(epochs)
    warmup = min(total, int(round(float(warmup_epochs) * steps)))
    if ema_momentum == "auto":
        ema_momentum = auto_ema_momentum(total)
    if ema_momentum is not None and not 0.0 < float(ema_momentum) < 1.0:
        raise ValueError(f"ema_momentum must be 'auto', None or in (0, 1); got {ema_momentum!r}.")
    if freeze_encoder_bn:
        freeze_encoder_batchnorm(detector)
    model = training_model(detector)
    optimizer = keras.optimizers.AdamW(
        learning_rate=warmup_cosine_decay(float(learning_rate), total, warmup),
        weight_decay=float(weight_decay), global_clipnorm=clipnorm,
        use_ema=ema_momentum is not None,
        ema_momentum=0.99 if ema_momentum is None else float(ema_momentum))
    model.compile(optimizer=optimizer, loss=EfficientDetLoss())
    callbacks = list(callbacks or [])
    if val_coco is not None:
        if image_size is None or config is None:
            raise ValueError("val_coco needs image_size and config (the detector's input side "
                             "and config).")
        callbacks.insert(0, CocoMapCallback(detector, val_coco, image_size, config))
    if ema_momentum is not None:  # EMA weights in the model for validation and epoch ends
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    return model.fit(train_batches, validation_data=val_batches, epochs=int(epochs),
                     steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose)


def detect_images(detector, images, image_size: int, config, score_threshold: float = 0.001,
                  max_detections: int = 100, batch_size: int = 8, class_offset: int = 0):
    """Detections of a raw-output ``detector`` on images of any size, in original pixels.

    Each image is letterboxed to ``image_size``; :class:`~.postprocess.DetectionPostProcess`
    decodes, clips to the image and runs per-class NMS; boxes are divided by the letterbox
    scale.

    Args:
        detector: a raw ``{"classes", "boxes"}`` EfficientDet accepting ``image_size`` inputs.
        images: a list of ``(H, W, 3)`` images (0-255).
        image_size: the square input side.
        config: the detector's config (its anchors and NMS settings).
        score_threshold: drop detections below it (COCO evaluation: 0.001).
        max_detections: per image.
        batch_size: images per forward pass.
        class_offset: added to the 0-based class ids.

    Returns:
        One ``(boxes (n, 4) xyxy, scores (n,), classes (n,))`` per image.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.detection import build_efficientdet
        >>> from keras_efficientnet.detection.recipe import detect_images
        >>> det = build_efficientdet("lite0", num_classes=2, input_shape=(128, 128, 3))
        >>> (boxes, scores, classes), = detect_images(det, [np.zeros((90, 120, 3), "uint8")], 128, "lite0")
        >>> boxes.shape[1], bool((boxes[:, 2] <= 120.001).all())
        (4, True)
    """
    from keras import ops

    from .postprocess import DetectionPostProcess

    post = DetectionPostProcess.from_detection_config(
        config, (int(image_size), int(image_size)), score_threshold=score_threshold,
        max_detections=int(max_detections), class_offset=int(class_offset))
    results = []
    for start in range(0, len(images), int(batch_size)):
        chunk = images[start:start + int(batch_size)]
        boxed = [letterbox(im, int(image_size)) for im in chunk]
        x = np.stack([b[0] for b in boxed]).astype("float32")
        scale = np.asarray([b[2] for b in boxed], "float32")
        sizes = np.asarray([np.shape(im)[:2] for im in chunk], "float32")
        raw = detector.predict_on_batch(x)
        out = post(raw, image_scale=1.0 / scale, image_size=sizes)
        out = {k: ops.convert_to_numpy(v) for k, v in out.items()}
        for i in range(len(chunk)):
            n = int(out["num_detections"][i])
            results.append((out["boxes"][i, :n], out["confidence"][i, :n], out["classes"][i, :n]))
    return results


def evaluate_detection(detector, gt, image_size: int, config, batch_size: int = 8) -> dict:
    """COCO box mAP (pycocotools) of ``detector`` on ``gt`` (a
    :class:`~keras_efficientnet.detection.CocoData` or a COCO folder/file).

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.detection import build_efficientdet, pasted_boxes, write_coco
        >>> from keras_efficientnet.detection.recipe import evaluate_detection
        >>> det = build_efficientdet("lite0", num_classes=2, input_shape=(128, 128, 3))
        >>> gt = write_coco(tempfile.mkdtemp(), *pasted_boxes(2, 128))
        >>> 0.0 <= evaluate_detection(det, gt, 128, "lite0")["AP"] <= 1.0
        True
    """
    from .data import CocoData, coco_map, load_coco

    if not isinstance(gt, CocoData):
        gt = load_coco(gt)
    return coco_map(gt, detect_images(detector, gt.images, image_size, config, batch_size=batch_size))


class CocoMapCallback(keras.callbacks.Callback):
    """Adds the validation COCO mAP (pycocotools) to the epoch logs as ``val_AP`` and
    ``val_AP50``. Put it after ``keras.callbacks.SwapEMAWeights(swap_on_epoch=True)`` (as
    :func:`fit_detection` does) to score the EMA weights.

    Args:
        detector: the raw-output EfficientDet being trained.
        gt: a :class:`~keras_efficientnet.detection.CocoData` (original-size images and boxes).
        image_size, config: as :func:`detect_images`.

    Example:
        >>> from keras_efficientnet.detection import build_efficientdet, load_coco, pasted_boxes, write_coco
        >>> from keras_efficientnet.detection.recipe import CocoMapCallback
        >>> import tempfile
        >>> det = build_efficientdet("lite0", num_classes=2, input_shape=(128, 128, 3))
        >>> gt = load_coco(write_coco(tempfile.mkdtemp(), *pasted_boxes(2, 128)))
        >>> logs = {}
        >>> CocoMapCallback(det, gt, 128, "lite0").on_epoch_end(0, logs)
        >>> sorted(logs)
        ['val_AP', 'val_AP50']
    """

    def __init__(self, detector, gt, image_size, config):
        super().__init__()
        self.detector, self.gt, self.image_size, self.config = detector, gt, image_size, config

    def on_epoch_end(self, epoch, logs=None):
        scores = evaluate_detection(self.detector, self.gt, self.image_size, self.config)
        if logs is not None:
            logs["val_AP"], logs["val_AP50"] = scores["AP"], scores["AP50"]
