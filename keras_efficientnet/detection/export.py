"""Export an EfficientDet with its post-processing (decoding, clipping, per-class NMS) inside,
and check the artifact's detections against the Keras model's.

:func:`export_detector` writes a TensorFlow SavedModel, a TFLite file (TFLite built-in ops
only: no Flex delegate needed) or an ONNX file (tf2onnx) whose outputs are the final
``boxes``, ``confidence``, ``classes`` and ``num_detections`` of
:class:`~keras_efficientnet.detection.DetectionPostProcess`; then it runs the artifact in its
own runtime (TensorFlow, the TFLite interpreter, onnxruntime) on the verification images and
compares detection by detection. It runs under ``KERAS_BACKEND=tensorflow`` (the converters
are TensorFlow's); a model trained on another backend is saved as ``.keras`` and exported from
a TensorFlow process.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

import keras
import numpy as np

from ..progress import Progress

FORMATS = ("saved_model", "tflite", "onnx")
OUTPUT_NAMES = ("boxes", "confidence", "classes", "num_detections")


@dataclasses.dataclass
class DetectionExportResult:
    """What :func:`export_detector` wrote and how its detections compare with Keras'.

    Attributes:
        path, format: the artifact.
        size_bytes: its size on disk.
        num_images: verification images.
        same_count: every image has the same number of detections.
        same_classes: the detections' classes are equal, in order.
        max_box_diff: largest coordinate difference (input pixels) over the detections.
        max_score_diff: largest confidence difference.
    """

    path: str
    format: str
    size_bytes: int
    num_images: int = 0
    same_count: bool | None = None
    same_classes: bool | None = None
    max_box_diff: float | None = None
    max_score_diff: float | None = None

    def summary(self) -> str:
        """One line: format, size, agreement."""
        text = f"{self.format} -> {self.path} size {self.size_bytes / 1e6:.2f} MB"
        if self.max_box_diff is not None:
            text += (f"; vs Keras on {self.num_images} images: same detections "
                     f"{self.same_count and self.same_classes}, max box diff "
                     f"{self.max_box_diff:.3g} px, max score diff {self.max_score_diff:.3g}")
        return text


def with_postprocess(model, config=None, **postprocess_kwargs):
    """``model`` if it already ends in :class:`DetectionPostProcess`, else the model with the
    post-processing of ``config`` (default: the one named like the model) appended.

    Example:
        >>> from keras_efficientnet.detection import build_efficientdet
        >>> from keras_efficientnet.detection.export import with_postprocess
        >>> raw = build_efficientdet("lite0", num_classes=2, input_shape=(128, 128, 3))
        >>> sorted(with_postprocess(raw).output)
        ['boxes', 'classes', 'confidence', 'num_detections']
    """
    from .config import get_config
    from .postprocess import DetectionPostProcess

    try:
        out = model.output
    except (AttributeError, ValueError):  # a model that was never built or called
        out = None
    if isinstance(out, dict) and set(OUTPUT_NAMES) <= set(out):
        return model
    if not isinstance(out, dict) or not {"classes", "boxes"} <= set(out):
        raise ValueError("export_detector takes an EfficientDet: raw {'classes', 'boxes'} outputs "
                         "or ones ending in DetectionPostProcess.")
    shape = tuple(model.input.shape[1:3])
    if None in shape:
        raise ValueError(f"export_detector needs a fixed input size; the model takes {shape}.")
    config = get_config(config if config is not None else model.name)
    post = DetectionPostProcess.from_detection_config(config, shape, name="postprocess",
                                                      **postprocess_kwargs)
    return keras.Model(model.input, post(model.output), name=model.name)


def _run(path, format, x):
    if format == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(path)  # kept: its variables die with it
        out = loaded.serve(x)
        return {k: np.asarray(v) for k, v in out.items()}
    if format == "tflite":
        import tensorflow as tf

        interpreter = tf.lite.Interpreter(model_path=path)
        runner = interpreter.get_signature_runner()
        name = next(iter(runner.get_input_details()))
        rows = [runner(**{name: x[i:i + 1]}) for i in range(len(x))]  # exported for batch 1
        return {k: np.concatenate([np.asarray(r[k]) for r in rows]) for k in rows[0]}
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    values = session.run(None, {session.get_inputs()[0].name: x})
    return {o.name: np.asarray(v) for o, v in zip(session.get_outputs(), values)}


def _compare(got, expected):
    same_count = bool(np.array_equal(got["num_detections"], expected["num_detections"]))
    same_classes, box, score = True, 0.0, 0.0
    for i, n in enumerate(np.asarray(expected["num_detections"]).astype(int)):
        m = min(n, int(got["num_detections"][i]))
        same_classes &= bool(np.array_equal(got["classes"][i, :m], expected["classes"][i, :m]))
        if m:
            box = max(box, float(np.abs(got["boxes"][i, :m] - expected["boxes"][i, :m]).max()))
            score = max(score, float(np.abs(got["confidence"][i, :m]
                                            - expected["confidence"][i, :m]).max()))
    return same_count, same_classes, box, score


def export_detector(model, path, format="saved_model", images=None, config=None,
                    overwrite=False, verify=True) -> DetectionExportResult:
    """Export an EfficientDet with NMS inside and verify the artifact's detections.

    Args:
        model: an EfficientDet (raw outputs, or with ``include_postprocess=True``).
        path: the SavedModel folder, ``.tflite`` or ``.onnx`` file to write.
        format: ``"saved_model"``, ``"tflite"`` or ``"onnx"``.
        images: ``(N, H, W, 3)`` 0-255 images at the model's input size to verify on
            (default: 2 random images).
        config: the detector's config (for a raw model; default: named like the model).
        overwrite: replace an existing ``path`` (default: refuse; nothing is touched).
        verify: run the artifact and compare with the Keras detections.

    Returns:
        A :class:`DetectionExportResult`.

    Raises:
        ValueError: another backend than TensorFlow, an unknown format, an existing ``path``
            without ``overwrite``, or a model that is not an EfficientDet.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.detection import EfficientDetLite0
        >>> from keras_efficientnet.detection.export import export_detector
        >>> model = EfficientDetLite0(num_classes=2, input_shape=(128, 128, 3))
        >>> result = export_detector(model, os.path.join(tempfile.mkdtemp(), "det.tflite"), "tflite")
        >>> result.same_count and result.same_classes and result.max_box_diff < 0.05
        True
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}.")
    if keras.backend.backend() != "tensorflow":
        raise ValueError("export_detector runs under KERAS_BACKEND=tensorflow (the SavedModel, "
                         "TFLite and ONNX converters are TensorFlow's); save the model as .keras "
                         "and export it from a TensorFlow process.")
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path) and not overwrite:
        raise ValueError(f"{path!r} exists; pass overwrite=True or choose another path (nothing "
                         "was changed).")
    full = with_postprocess(model, config)
    h, w = full.input.shape[1:3]
    if images is None:
        images = np.random.default_rng(0).uniform(0, 255, (2, h, w, 3))
    x = np.asarray(images, "float32")
    if x.ndim != 4 or x.shape[1:] != (h, w, 3):
        raise ValueError(f"images must be (N, {h}, {w}, 3) at the model's input size; got "
                         f"{x.shape}.")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        with Progress(f"Exporting {model.name} with NMS to {format}"):
            saved = os.path.join(work, "saved_model")
            full.export(saved, format="tf_saved_model", verbose=False)
            if format == "saved_model":
                artifact = saved
            elif format == "tflite":
                import tensorflow as tf

                artifact = os.path.join(work, "model.tflite")
                with open(artifact, "wb") as f:
                    f.write(tf.lite.TFLiteConverter.from_saved_model(saved).convert())
            else:
                from ..export import _constant_normalization

                artifact = os.path.join(work, "model.onnx")
                # tf2onnx turns a Normalization layer's captured statistics into unfed inputs
                onnx_model = _constant_normalization(full)
                onnx_model(x[:1], training=False)  # Keras' ONNX export needs one call first
                onnx_model.export(artifact, format="onnx", verbose=False)
        result = DetectionExportResult(path, format, 0)
        if verify:
            with Progress(f"Verifying the {format} detector on {len(x)} images"):
                expected = {k: np.asarray(v) for k, v in full.predict_on_batch(x).items()}
                got = _run(artifact, format, x)
            result.num_images = len(x)
            (result.same_count, result.same_classes, result.max_box_diff,
             result.max_score_diff) = _compare(got, expected)
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        os.replace(artifact, path)
        result.size_bytes = (sum(os.path.getsize(os.path.join(d, f))
                                 for d, _, fs in os.walk(path) for f in fs)
                             if os.path.isdir(path) else os.path.getsize(path))
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
