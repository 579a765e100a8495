"""Deployment: SavedModel, TFLite (LiteRT), ONNX and OpenVINO exports, each verified in its own
runtime.

Routes (which process produces which format):

============  =====================  =====================  ==========================
format        tensorflow backend     jax backend            torch backend
============  =====================  =====================  ==========================
saved_model   native (Keras export)  native (jax2tf)        TensorFlow subprocess
tflite        native (TF converter)  TensorFlow subprocess  TensorFlow subprocess
onnx          native (tf2onnx)       TensorFlow subprocess  TensorFlow subprocess
openvino      native (ov.convert)    TensorFlow subprocess  TensorFlow subprocess
============  =====================  =====================  ==========================

"TensorFlow subprocess" means: the model is saved as a ``.keras`` file (architecture + weights),
reloaded by a child Python process with ``KERAS_BACKEND=tensorflow`` and exported there. The
artifact is then verified in the calling process against the original model on its own backend.
Keras cannot write a SavedModel from torch (``torch.export`` rejects the dynamic batch spec),
LiteRT from torch needs the ``litert-torch`` package and from JAX is not offered at all,
ONNX from JAX needs ``jax2onnx``, and Keras' ``torch.onnx`` route fails on these models
("Cannot insert a Tensor that requires grad as a constant"); the subprocess route needs none
of these. OpenVINO cannot convert JAX's exported function (``XlaCallModule`` has no conversion
rule), and Keras' ``torch.jit.trace`` route fails on models holding models (the same "requires
grad as a constant" error), hence the subprocess there; an OpenVINO artifact is the IR pair ``name.xml`` (the graph,
the path you give) and ``name.bin`` (the weights) beside it. OpenVINO's TensorFlow frontend turns
the ``IdentityN`` of every swish's custom gradient into an extra model output; only the Keras
model's own outputs are kept.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

logger = logging.getLogger("keras_efficientnet.export")

FORMATS = ("saved_model", "tflite", "onnx", "openvino")


def __getattr__(name):  # ``fuse_batchnorm`` stays importable from here without importing Keras first
    if name == "fuse_batchnorm":
        from .models.fuse import fuse_batchnorm
        return fuse_batchnorm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
#: quantizations each format supports (None = float32).
QUANTIZATIONS = {"saved_model": (None,), "onnx": (None,), "openvino": (None,),
                 "tflite": (None, "float16", "dynamic_int8", "int8")}
#: formats Keras produces in-process on each backend.
NATIVE_ROUTES = {"tensorflow": ("saved_model", "tflite", "onnx", "openvino"),
                 "jax": ("saved_model",), "torch": ()}
#: the file name ending each file format's path must have.
EXTENSIONS = {"tflite": ".tflite", "onnx": ".onnx", "openvino": ".xml"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

__all__ = ["export", "ExportResult", "run_artifact", "load_images", "fuse_batchnorm", "FORMATS",
           "QUANTIZATIONS", "NATIVE_ROUTES"]


@dataclasses.dataclass
class ExportResult:
    """What :func:`export` wrote and how well the artifact agrees with the Keras model.

    Attributes:
        path: the artifact (a directory for ``saved_model``, a file otherwise).
        format: ``"saved_model"``, ``"tflite"``, ``"onnx"`` or ``"openvino"``.
        quantize: the quantization (None for float32).
        route: ``"native (<backend>)"`` or ``"tensorflow subprocess (from <backend>)"``.
        size_bytes: artifact size on disk.
        max_abs_diff: max |artifact - Keras| over the verification outputs (None if not verified).
        mean_abs_diff: mean |artifact - Keras|.
        top1_agreement: fraction of verification inputs with the same arg-max class.
        pixel_agreement: for a dense-prediction model (``(N, H, W, C)`` output, e.g. a U-Net),
            the fraction of output pixels with the same class (arg-max over ``C``; the sign of
            the logit, i.e. a 0.5 probability, for one channel).
        num_samples: number of verification inputs.
        weight_rounding: for int8, how the kernels were rounded (``"gptq"`` or ``"nearest"``).
    """

    path: str
    format: str
    quantize: str | None
    route: str
    size_bytes: int
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    top1_agreement: float | None = None
    pixel_agreement: float | None = None
    num_samples: int = 0
    weight_rounding: str | None = None

    def summary(self) -> str:
        """One line: format, size and measured agreement."""
        quantize = self.quantize and self.quantize + (
            f" ({self.weight_rounding} weight rounding)" if self.weight_rounding else "")
        text = (f"{self.format}{'/' + quantize if quantize else ''} -> {self.path} "
                f"[{self.route}] size {self.size_bytes / 1e6:.2f} MB")
        if self.max_abs_diff is not None:
            text += (f"; vs Keras on {self.num_samples} inputs: max abs diff "
                     f"{self.max_abs_diff:.3g}, mean abs diff {self.mean_abs_diff:.3g}")
            if self.top1_agreement is not None:
                text += f", top-1 agreement {self.top1_agreement:.0%}"
            if self.pixel_agreement is not None:
                text += f", pixel agreement {self.pixel_agreement:.2%}"
        return text


# ---------------------------------------------------------------------------------------------
# inputs


def _channels_last(shape) -> bool:
    return not (shape[1] in (1, 3) and shape[-1] not in (1, 3))


def _spatial(model):
    shape = tuple(model.input_shape)
    return (shape[1], shape[2]) if _channels_last(shape) else (shape[2], shape[3])


def fix_input_size(model, size):
    """A copy of a functional ``model`` whose input has the fixed spatial ``size``, same weights.

    For a model built with a free input size (``(None, None, 3)``, e.g. a U-Net of
    :mod:`keras_efficientnet.segmentation`) that has to be exported or served at one size.
    A model whose size is already fixed must be given that size.

    Raises:
        ValueError: ``model`` has a different fixed size, or is not a functional image model.

    Example:
        >>> from keras_efficientnet.segmentation import Unet
        >>> from keras_efficientnet.export import fix_input_size
        >>> fix_input_size(Unet("EfficientNetB0", classes=2), (64, 96)).output_shape
        (None, 64, 96, 2)
    """
    import keras

    h, w = (int(v) for v in size)
    shape = tuple(model.input_shape)
    if len(shape) != 4:
        raise ValueError(f"fix_input_size needs an image model with 4-D input, got {shape}.")
    spatial = _spatial(model)
    if all(d is not None for d in spatial):
        if tuple(spatial) != (h, w):
            raise ValueError(f"The model takes {spatial[0]}x{spatial[1]} images, not {h}x{w}.")
        return model
    new = (h, w, shape[3]) if _channels_last(shape) else (shape[1], h, w)
    try:
        clone = keras.models.clone_model(model, input_tensors=keras.Input(new, name=model.inputs[0].name))
    except Exception as err:
        raise ValueError(f"Cannot give {model.name!r} a fixed input size ({type(err).__name__}: "
                         f"{str(err)[:200]}); build it with input_shape={new}.") from None
    clone.set_weights(model.get_weights())
    return clone


def _image_size(model, images=None):
    shape = tuple(model.input_shape)
    if len(shape) != 4:
        raise ValueError(f"export needs an image model with 4-D input, got input_shape={shape}.")
    last = _channels_last(shape)
    h, w = (shape[1], shape[2]) if last else (shape[2], shape[3])
    if (h is None or w is None) and images is not None:
        h, w = images.shape[1:3]
    return (h or 224, w or 224), last


def load_images(source, size=None) -> np.ndarray:
    """Images as a float32 ``(N, H, W, 3)`` array of 0-255 pixels.

    Args:
        source: an array ``(N, H, W, C)`` (or one ``(H, W, C)`` image) of 0-255 pixels, or a
            folder of image files (jpg, png, bmp, gif, webp, tiff).
        size: optional ``(height, width)`` every image is resized to (bilinear).

    Returns:
        A float32 array.

    Raises:
        ValueError: the folder holds no image, the path does not exist, or the array is not a
            batch of images.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.export import load_images
        >>> load_images(np.zeros((2, 40, 50, 3), "uint8"), size=(32, 32)).shape
        (2, 32, 32, 3)
    """
    from PIL import Image

    if isinstance(source, (str, os.PathLike)):
        folder = os.fspath(source)
        if not os.path.isdir(folder):
            raise ValueError(f"representative data {folder!r} is not a folder; pass a folder of "
                             "images or an array of 0-255 images.")
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise ValueError(f"The folder {folder!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                             "put a few typical input images in it.")
        from .preprocessing import read_image

        images = []
        for name in files:
            img = Image.fromarray(read_image(os.path.join(folder, name)))
            if size is not None:
                img = img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
            images.append(np.asarray(img, "float32"))
        if size is None and len({i.shape for i in images}) > 1:
            raise ValueError(f"The images in {folder!r} have different sizes; pass size=(h, w).")
        return np.stack(images)
    array = np.asarray(source)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[0] == 0:
        raise ValueError(f"representative data must be a non-empty (N, H, W, C) array of images or "
                         f"a folder, got an array of shape {array.shape}.")
    array = array.astype("float32")
    if size is not None and tuple(array.shape[1:3]) != tuple(size):
        if array.shape[-1] != 3:
            raise ValueError(f"representative data of shape {array.shape} does not match the "
                             f"model's input size {tuple(size)} (only RGB images are resized).")
        array = np.stack([np.asarray(Image.fromarray(np.clip(a, 0, 255).astype("uint8")).resize(
            (int(size[1]), int(size[0])), Image.BILINEAR), "float32") for a in array])
    return array


def _ends_in_logits(model) -> bool:
    import keras

    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return False
    activation = getattr(last, "activation", None)
    return activation is None or getattr(activation, "__name__", "") == "linear"


def _pixel_agreement(got, expected, logits=True) -> float:
    """Share of pixels of two ``(N, H, W, C)`` outputs with the same class."""
    if expected.shape[-1] == 1:
        cut = 0.0 if logits else 0.5
        return float(np.mean((got[..., 0] > cut) == (expected[..., 0] > cut)))
    return float(np.mean(got.argmax(-1) == expected.argmax(-1)))


def _to_layout(images, channels_last):
    return images if channels_last else np.transpose(images, (0, 3, 1, 2))


# ---------------------------------------------------------------------------------------------
# runtimes


def _companions(path, format):
    """The files an artifact at ``path`` consists of besides ``path`` itself."""
    return [os.path.splitext(path)[0] + ".bin"] if format == "openvino" else []


def _artifact_size(path, format=None) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path) + sum(os.path.getsize(p) for p in _companions(path, format))


def run_artifact(path, format, inputs) -> np.ndarray:
    """Run an exported artifact in its own runtime.

    SavedModel: ``tf.saved_model.load`` (the ``serve`` endpoint); TFLite: the LiteRT interpreter
    (``ai_edge_litert`` if installed, else ``tf.lite.Interpreter``), resized to the batch;
    ONNX: onnxruntime on CPU; OpenVINO: the OpenVINO runtime on CPU (the ``.xml`` path), in
    float32 (``INFERENCE_PRECISION_HINT="f32"``; OpenVINO's own default on CPUs with bfloat16
    instructions is bfloat16, about 1e-2 from float32 on random-weight models).

    Args:
        path: the artifact.
        format: ``"saved_model"``, ``"tflite"``, ``"onnx"`` or ``"openvino"``.
        inputs: a float32 batch, in the model's input layout.

    Returns:
        The first output as a NumPy array.

    Example:
        >>> import numpy as np, tempfile, os
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.export import export, run_artifact
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        >>> path = os.path.join(tempfile.mkdtemp(), "b0.onnx")
        >>> _ = export(model, path, format="onnx")  # doctest: +SKIP
        >>> run_artifact(path, "onnx", np.zeros((2, 32, 32, 3), "float32")).shape  # doctest: +SKIP
        (2, 3)
    """
    x = np.ascontiguousarray(np.asarray(inputs, "float32"))
    if format == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(os.fspath(path))
        fn = loaded.serve if hasattr(loaded, "serve") else loaded.signatures["serving_default"]
        out = fn(tf.constant(x))
        if isinstance(out, dict):
            out = list(out.values())[0]
        return np.asarray(out)
    if format == "tflite":
        interpreter = _tflite_interpreter(os.fspath(path))
        inp = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(inp["index"], x.shape)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        feed = x
        if inp["dtype"] != np.float32:  # integer input: quantize with the tensor's parameters
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            feed = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], feed)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype("float32") - zero) * scale
        return np.asarray(y)
    if format == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])
    if format == "openvino":
        import openvino as ov

        # f32: on CPUs with AVX512-BF16 or AMX the plugin otherwise computes in bfloat16
        compiled = ov.Core().compile_model(os.fspath(path), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32"})
        return np.asarray(compiled(x)[compiled.outputs[0]])
    raise ValueError(f"Unknown format {format!r}; expected one of {FORMATS}.")


def _tflite_interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=path)
    return Interpreter(model_path=path)


# ---------------------------------------------------------------------------------------------
# native exporters (run on the current backend)


def _converter_kwargs(quantize, representative):
    import tensorflow as tf

    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize is None:
        return {"target_spec": {"supported_ops": builtins}}
    if quantize == "float16":
        return {"optimizations": [tf.lite.Optimize.DEFAULT],
                "target_spec": {"supported_ops": builtins, "supported_types": [tf.float16]}}
    if quantize == "dynamic_int8":
        return {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_ops": builtins}}

    def dataset():
        for image in representative:
            yield [image[None].astype("float32")]

    # Full integer: every op int8 (float input/output with a quantize/dequantize at the edges).
    # Per-channel weight quantization is the converter's default for conv/depthwise kernels.
    return {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": dataset,
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}}


def _constant_normalization(model):
    """``model`` with every ``keras.layers.Normalization`` (keras.applications' input
    normalisation, nested models included) replaced by :class:`~keras_efficientnet.layers.Normalize`
    holding the same statistics as constants; every other layer is shared, not copied.

    Keras' ONNX route (tf2onnx) turns the tensors a ``Normalization`` layer captures into
    graph inputs that no caller feeds (onnxruntime: "Required inputs ... normalization/Sub/y:0
    are missing"); keras.applications' own models fail the same way. Constants export cleanly
    and compute the same ``(x - mean) / max(sqrt(variance), epsilon)``.
    """
    import keras

    from .layers.normalize import Normalize

    def contains(m):
        return any(isinstance(l, keras.layers.Normalization) or
                   (isinstance(l, keras.Model) and contains(l)) for l in m.layers)

    if not isinstance(model, keras.Model) or not contains(model):
        return model

    def swap(layer):
        if isinstance(layer, keras.layers.Normalization):
            axis = layer.axis[0] if isinstance(layer.axis, (list, tuple)) else layer.axis
            mean = np.ravel(keras.ops.convert_to_numpy(layer.mean)).astype("float64")
            var = np.ravel(keras.ops.convert_to_numpy(layer.variance)).astype("float64")
            std = np.maximum(np.sqrt(var), keras.backend.epsilon())
            return Normalize(mean=mean.tolist(), std=std.tolist(),
                             data_format="channels_first" if axis == 1 else "channels_last",
                             name=layer.name)
        if isinstance(layer, keras.Model) and contains(layer):
            return _constant_normalization(layer)
        return layer

    return keras.models.clone_model(model, clone_function=swap)


def _export_native(model, path, format, quantize, representative):
    if format == "saved_model":
        model.export(path, format="tf_saved_model", verbose=False)
    elif format == "onnx":
        model = _constant_normalization(model)
        if not getattr(model, "_called", True):  # Keras' ONNX export needs one call first
            shape = [1] + [64 if d is None else d for d in model.input_shape[1:]]
            model(np.zeros(shape, "float32"), training=False)
        model.export(path, format="onnx", verbose=False)
    elif format == "tflite":
        model.export(path, format="litert", verbose=False,
                     **_converter_kwargs(quantize, representative))
    elif format == "openvino":
        _export_openvino(model, path)
    if not os.path.exists(path):
        raise RuntimeError(f"Keras' {format} export wrote nothing at {path}.")


def _export_openvino(model, path):
    """Keras' OpenVINO export, keeping only the Keras model's own outputs."""
    import warnings

    try:
        import openvino as ov
    except ImportError as err:
        raise ImportError("format='openvino' needs the openvino package: pip install openvino") from err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.export(path, format="openvino", verbose=False)
    ir = ov.Core().read_model(path)
    count = len(model.outputs)
    if len(ir.outputs) > count:  # TensorFlow's swish IdentityN outputs (module docstring)
        results = [ir.get_results()[i] for i in range(count)]
        pruned = ov.Model(results, ir.get_parameters(), ir.get_friendly_name())
        # OpenVINO maps the .bin it read: write beside it, then rename over it
        stem = os.path.splitext(path)[0]
        ov.save_model(pruned, stem + ".pruned.xml", compress_to_fp16=False)
        del ir, pruned, results
        os.replace(stem + ".pruned.bin", stem + ".bin")
        os.replace(stem + ".pruned.xml", path)


_WORKER = "from keras_efficientnet.export import _worker_main; _worker_main()"


def _worker_main():
    """Child-process entry of the TensorFlow route: argv[1] is a JSON job."""
    job = json.loads(sys.argv[1])
    import keras

    import keras_efficientnet  # noqa: F401  (registers the layers for loading)

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("the export worker must run with KERAS_BACKEND=tensorflow")
    model = keras.saving.load_model(job["model"], compile=False)
    representative = np.load(job["representative"]) if job["representative"] else None
    _export_native(model, job["output"], job["format"], job["quantize"], representative)


def _export_subprocess(model, path, format, quantize, representative, work):
    model_file = os.path.join(work, "model.keras")
    model.save(model_file)
    rep_file = None
    if representative is not None:
        rep_file = os.path.join(work, "representative.npy")
        np.save(rep_file, representative)
    job = {"model": model_file, "output": path, "format": format, "quantize": quantize,
           "representative": rep_file}
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    proc = subprocess.run([sys.executable, "-c", _WORKER, json.dumps(job)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(path):
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"The TensorFlow export subprocess failed (exit {proc.returncode}):\n{tail}")


# ---------------------------------------------------------------------------------------------
# the public entry point


def _keras_outputs(model, images):
    """The model's inference outputs (one jit-compiled call on JAX, where eager op-by-op
    execution compiles every op separately)."""
    import keras

    if keras.backend.backend() == "jax":
        return np.asarray(model.predict(images, batch_size=len(images), verbose=0))
    return keras.ops.convert_to_numpy(model(images, training=False))


def _check_arguments(format, quantize):
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}.")
    if quantize not in QUANTIZATIONS[format]:
        allowed = ", ".join("None" if q is None else repr(q) for q in QUANTIZATIONS[format])
        raise ValueError(f"Format {format!r} does not support quantize={quantize!r}; it supports "
                         f"{allowed}. Quantized models are exported with format='tflite'.")


def _place(tmp_artifact, path, overwrite=False):
    """Move the finished artifact to ``path``: :func:`keras_efficientnet.validation.place_output`
    (refused without ``overwrite``; else the old one goes only once the new one is in)."""
    from .validation import place_output

    place_output(tmp_artifact, path, overwrite=overwrite, what="export")


def export(model, path, format="saved_model", quantize=None, representative_data=None,
           verify=True, verify_data=None, max_verify=8, overwrite=False, weight_rounding="gptq"):
    """Export ``model`` for deployment and check the artifact against the model.

    The artifact is written to a temporary path next to ``path`` and moved there only when the
    export (and the verification run) succeeded, so a failure leaves nothing behind. An
    existing file or non-empty folder at ``path`` is refused before any work is done, unless
    ``overwrite=True``; it is then replaced only once the new artifact is complete (renamed
    aside, the new one renamed in, the old one deleted last). After the
    export, the artifact is loaded in its own runtime (``tf.saved_model.load``, the LiteRT
    interpreter, onnxruntime, OpenVINO) and run on the same inputs as the Keras model; the measured
    agreement is returned and logged.

    Which backend produces which format natively, and which go through a TensorFlow
    subprocess that rebuilds the model from its ``.keras`` file, is listed in this module's
    docstring; the route taken is logged (WARNING) and recorded in the result.

    Args:
        model: a Keras image model (e.g. an EfficientNet, or ``fuse_batchnorm(model)``).
        path: output path: a directory for ``"saved_model"``, a ``.tflite`` / ``.onnx`` file,
            the ``.xml`` file of an OpenVINO IR (its ``.bin`` is written beside it).
        format: ``"saved_model"`` (dynamic batch dimension), ``"tflite"``, ``"onnx"`` or
            ``"openvino"``.
        quantize: TFLite only: None (float32), ``"float16"`` (float16 weights),
            ``"dynamic_int8"`` (int8 weights, float activations) or ``"int8"`` (full integer,
            calibrated on ``representative_data``; float input and output).
        representative_data: images as the model takes them (0-255 pixels for models with
            in-graph preprocessing): an ``(N, H, W, 3)`` array or a folder of image files,
            resized to the model's input size. Required for ``"int8"``; used to verify otherwise.
        verify: run the artifact in its runtime and measure the agreement.
        verify_data: images to verify on (default: ``representative_data`` or random images).
        max_verify: at most this many images are used to verify.
        overwrite: replace an existing artifact at ``path`` (default: refuse).
        weight_rounding: for ``quantize="int8"``: ``"gptq"`` (default) rounds every kernel to
            its int8 grid so that each layer's output error on ``representative_data`` is
            smallest (:func:`~keras_efficientnet.quantize.quantize_weights`; a copy of the
            model, which is not changed), ``"nearest"`` leaves the rounding to the converter
            (each weight to its nearest grid point). Other quantizations ignore it.

    Returns:
        An :class:`ExportResult` (path, route, size, max/mean abs diff, top-1 agreement).

    Raises:
        ValueError: unknown format, a quantization the format does not support, int8 without
            representative data, a representative-data folder without images.
        RuntimeError: the exporter failed (nothing is left at ``path``).
        FileExistsError: ``path`` exists and ``overwrite`` is False (nothing is changed).
        NotADirectoryError, PermissionError: ``path``'s folder is blocked by a file or is not
            writable.

    Example:
        >>> import os, tempfile
        >>> import keras_efficientnet as ke
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        >>> path = os.path.join(tempfile.mkdtemp(), "b0.onnx")
        >>> result = ke.export(model, path, format="onnx")  # doctest: +SKIP
        >>> result.max_abs_diff < 1e-4  # doctest: +SKIP
        True
    """
    import keras

    from .progress import Progress
    from .validation import check_int, prepare_output

    _check_arguments(format, quantize)
    from .quantize import METHODS

    if weight_rounding not in METHODS:
        raise ValueError(f"weight_rounding must be one of {METHODS}, got {weight_rounding!r}.")
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file or folder path, got {path!r}.")
    path = os.fspath(path)
    if format != "saved_model" and not path.endswith(EXTENSIONS[format]):
        raise ValueError(f"A {format} artifact's path must end with '{EXTENSIONS[format]}', "
                         f"got {path!r}.")
    max_verify = check_int("max_verify", max_verify, minimum=1)
    if format != "saved_model" and os.path.isdir(path):
        raise IsADirectoryError(f"export target {path!r} is a folder, but a {format} artifact is "
                                "a file; choose a file path.")
    target = prepare_output(path, overwrite=overwrite, what="export")
    companions = [prepare_output(p, overwrite=overwrite, what="export")
                  for p in _companions(target, format)]
    if quantize == "int8" and representative_data is None:
        raise ValueError("quantize='int8' calibrates on representative_data: pass an array of "
                         "0-255 images or a folder of typical input images.")
    sample = next((np.asarray(d) for d in (representative_data, verify_data)
                   if d is not None and not isinstance(d, (str, os.PathLike))), None)
    size, channels_last = _image_size(model, sample if sample is None or sample.ndim == 4 else None)
    if format == "tflite" and None in _spatial(model):
        # TFLite's converter loses the channel count of a free-size decoder's upsampling and
        # then refuses its convolutions: give the artifact the fixed size it will run at
        logger.warning("The model takes any image size; the %s artifact takes %sx%s (the size "
                       "of the representative/verification data, else 224).", format, *size)
        model = fix_input_size(model, size)
    representative = None
    if representative_data is not None:
        representative = _to_layout(load_images(representative_data, size), channels_last)
    if verify_data is not None:
        check = _to_layout(load_images(verify_data, size), channels_last)
    elif representative is not None:
        check = representative
    else:
        rng = np.random.default_rng(0)
        channels = model.input_shape[-1 if channels_last else 1] or 3
        check = _to_layout(rng.uniform(0, 255, (2, *size, channels)).astype("float32"),
                           channels_last)
    check = check[:max_verify]

    exported = model
    if quantize == "int8" and weight_rounding == "gptq":
        from .quantize import quantize_weights

        with Progress(f"Rounding {model.name}'s weights to int8 (GPTQ, {len(representative)} "
                      "calibration images)"):
            exported = quantize_weights(model, representative)
    backend = keras.backend.backend()
    work = tempfile.mkdtemp(prefix=".export-", dir=os.path.dirname(target))
    try:
        tmp_artifact = os.path.join(work, os.path.basename(target.rstrip(os.sep)) or "artifact")
        what = format + (f" ({quantize})" if quantize else "")
        if backend in NATIVE_ROUTES and format in NATIVE_ROUTES[backend]:
            route = f"native ({backend})"
            with Progress(f"Exporting {model.name} to {what}"):
                _export_native(exported, tmp_artifact, format, quantize, representative)
        else:
            route = f"tensorflow subprocess (from {backend})"
            logger.warning("Keras cannot produce %s on the %s backend in this process: rebuilding "
                           "the model on TensorFlow in a subprocess from its .keras file.",
                           format, backend)
            with Progress(f"Exporting {model.name} to {what} (in a TensorFlow subprocess)"):
                _export_subprocess(exported, tmp_artifact, format, quantize, representative, work)
        result = ExportResult(path=path, format=format, quantize=quantize, route=route,
                              size_bytes=_artifact_size(tmp_artifact, format),
                              weight_rounding=weight_rounding if quantize == "int8" else None)
        if verify:
            with Progress(f"Verifying the {format} artifact on {len(check)} images"):
                expected = _keras_outputs(model, check)
                got = run_artifact(tmp_artifact, format, check)
            if got.shape != expected.shape:
                raise RuntimeError(f"The {format} artifact returns shape {got.shape}, the Keras "
                                   f"model {expected.shape}.")
            diff = np.abs(got.astype("float64") - expected.astype("float64"))
            result.max_abs_diff = float(diff.max())
            result.mean_abs_diff = float(diff.mean())
            result.num_samples = len(check)
            if expected.ndim == 2 and expected.shape[-1] > 1:
                result.top1_agreement = float(np.mean(got.argmax(-1) == expected.argmax(-1)))
            elif expected.ndim == 4 and channels_last:
                result.pixel_agreement = _pixel_agreement(got, expected, _ends_in_logits(model))
        for tmp_part, part in zip(_companions(tmp_artifact, format), companions):
            _place(tmp_part, part, overwrite=overwrite)  # the weights before the graph
        _place(tmp_artifact, target, overwrite=overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("%s", result.summary())
    return result


if __name__ == "__main__":  # pragma: no cover
    _worker_main()
