"""Inference without Keras' per-layer Python overhead on the PyTorch backend: :func:`torchscript`.

On ``KERAS_BACKEND=torch`` a Keras model call runs every layer's Python ``__call__`` (input
checks, dtype policies, name scopes, layout permutes) around each PyTorch kernel; for an
EfficientNet-B0 that overhead is over half of a batch-1 call. :func:`torchscript` records the
model's inference computation once with ``torch.jit.trace`` (the Keras layers run as usual
while tracing, so the recorded graph is exactly what they compute), freezes it (weights become
constants) and returns it wrapped in a small ``torch.nn.Module`` that checks the input size
(and hands a ``channels_first`` model its NCHW input in PyTorch's channels-last memory format,
the layout oneDNN's CPU convolutions run fastest in).

What a trace cannot know, it refuses rather than guesses: the graph is recorded for one image
size (the padding of strided "same" convolutions is computed from the size at trace time), so
another height or width is a ``ValueError``; the batch size is free.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["torchscript", "TracedModel"]


def _torch():
    import keras

    if keras.backend.backend() != "torch":
        raise ValueError(
            f"torchscript() traces Keras' PyTorch computation and needs KERAS_BACKEND=torch "
            f"(this process runs {keras.backend.backend()!r}). On TensorFlow or JAX, use "
            "keras_efficientnet.export(model, path, format='onnx' or 'openvino') for a fast "
            "inference artifact.")
    import torch

    return torch


@functools.lru_cache(maxsize=None)
def _module_class():
    torch = _torch()

    class TracedModel(torch.nn.Module):
        """A frozen TorchScript trace of a Keras model's inference, for one image size.

        ``traced(x)`` takes a ``torch.Tensor`` or NumPy array laid out as the Keras model's
        input (``(batch, H, W, C)`` for channels_last models) and returns what the model returns
        (tensors), computed without Keras. ``traced.script`` is the TorchScript module itself
        (``torch.jit.save(traced.script, path)`` writes a file that loads with ``torch.jit.load``
        and no Keras at all; the loaded module does not check the image size).
        """

        def __init__(self, script, input_shape, max_abs_diff, channels_first=False):
            super().__init__()
            self.script = script
            self.input_shape = tuple(input_shape)  # without the batch axis
            self.max_abs_diff = max_abs_diff
            self.channels_first = channels_first

        def forward(self, x):
            if not isinstance(x, torch.Tensor):
                x = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype="float32")))
            if tuple(x.shape[1:]) != self.input_shape:
                raise ValueError(
                    f"This trace was recorded for inputs of shape (batch, "
                    f"{', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}. Trace the "
                    "model again for this size: torchscript(model, input_shape=...).")
            if self.channels_first and x.ndim == 4:
                # NCHW values in channels-last memory: oneDNN's fast convolution layout, no copy
                # per convolution (the values, and so the results, are the same)
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                return self.script(x)

    return TracedModel


def __getattr__(name):
    if name == "TracedModel":  # the class needs torch, which is imported only on demand
        return _module_class()
    raise AttributeError(name)


def _folded(model):
    """``model`` with its BatchNorms folded into the convolutions, or ``model`` itself where
    :func:`~keras_efficientnet.fuse_batchnorm` cannot fold it (a BatchNorm after something
    other than a convolution, a subclassed model...)."""
    from .models.fuse import fuse_batchnorm

    import keras

    if not any(isinstance(layer, keras.layers.BatchNormalization)
               for layer in model._flatten_layers(include_self=False)):
        return model
    try:
        return fuse_batchnorm(model)
    except (ValueError, TypeError, KeyError):
        return model


# Ops that always return a newly allocated tensor.
_FRESH = frozenset({
    "aten::_convolution", "aten::conv2d", "aten::convolution", "aten::matmul", "aten::mm",
    "aten::addmm", "aten::linear", "aten::add", "aten::sub", "aten::subtract", "aten::mul",
    "aten::multiply", "aten::div", "aten::divide", "aten::silu", "aten::sigmoid", "aten::relu",
    "aten::hardtanh", "aten::hardswish", "aten::hardsigmoid", "aten::batch_norm", "aten::pad",
    "aten::constant_pad_nd", "aten::mean", "aten::cat"})
# Ops that read a tensor and keep nothing of its memory: an earlier one may share the input.
_READERS = _FRESH | {"aten::size", "aten::dim", "aten::numel", "prim::shape", "aten::sum",
                     "aten::amax", "aten::max", "aten::min", "aten::softmax"}
_UNARY_IN_PLACE = {"aten::silu": "aten::silu_", "aten::sigmoid": "aten::sigmoid_",
                   "aten::relu": "aten::relu_", "aten::hardtanh": "aten::hardtanh_",
                   "aten::hardswish": "aten::hardswish_", "aten::hardsigmoid": "aten::hardsigmoid_"}
_BINARY_IN_PLACE = {"aten::add": "aten::add_", "aten::mul": "aten::mul_",
                    "aten::multiply": "aten::mul_"}
# Ops whose output may share memory with their first input: views, a no-op ``to``, and the
# in-place ops this rewrite writes (they return their input).
_ALIASING = frozenset({
    "aten::to", "aten::permute", "aten::reshape", "aten::view", "aten::contiguous",
    "aten::_unsafe_view", "aten::transpose", "aten::squeeze", "aten::unsqueeze", "aten::flatten",
    "aten::expand", "aten::slice", "aten::select", "aten::detach", "aten::alias",
    *_UNARY_IN_PLACE.values(), *_BINARY_IN_PLACE.values()})


def _writable(value, node) -> bool:
    """Whether ``node`` may overwrite ``value``: it (and every tensor it is a view of) was
    allocated inside the graph, and every other node reading any of them comes earlier and is
    one known to return fresh memory (so none can hold a view: ``split``, ``chunk``... refuse)."""
    link = None
    while True:
        for use in value.uses():
            user = use.user
            if user is node or user is link:
                continue
            if user.kind() not in _READERS or not user.isBefore(node):
                return False  # read afterwards (or returned), or maybe viewed (split, ...)
        producer = value.node()
        if producer.kind() in _FRESH:
            return True
        if producer.kind() not in _ALIASING:
            return False  # a graph input, a constant (a weight), or an op we do not know
        link, value = producer, producer.inputsAt(0)


def _channel_constant(value) -> bool:
    """A constant tensor holding one value per channel (shape ``(C,)`` or ``(1, ..., 1, C)``):
    added to or multiplied into a tensor whose last axis is C, it never enlarges the result."""
    if value.node().kind() != "prim::Constant":
        return False
    tensor = value.toIValue()
    import torch

    return (isinstance(tensor, torch.Tensor) and tensor.ndim >= 1 and tensor.is_floating_point()
            and tensor.numel() == tensor.shape[-1])


def _write_in_place(graph) -> int:
    """Rewrite ``graph`` (a frozen inference trace) so elementwise activations, and adds or
    multiplies of a per-channel constant (a folded BatchNorm's bias), write into their input
    where :func:`_writable` says nothing else needs it. PyTorch's CPU allocator hands a large
    tensor back to the OS when it is freed, so each fresh activation-sized output costs page
    faults on its first write (measured: a 51 MB SiLU 16 ms out of place, 3 ms in place; timm's
    modules use ``inplace=True`` activations for the same reason). Returns how many nodes were
    rewritten; the values computed are unchanged (the same kernels, other output buffers)."""
    count = 0
    for node in list(graph.nodes()):
        kind = node.kind()
        inputs = list(node.inputs())
        if kind in _UNARY_IN_PLACE:
            if len(inputs) != 1 and kind not in ("aten::hardtanh",):
                continue
            if not _writable(inputs[0], node):
                continue
            new_kind, new_inputs = _UNARY_IN_PLACE[kind], inputs
        elif kind in _BINARY_IN_PLACE:
            first, second = inputs[0], inputs[1]
            alpha_one = (len(inputs) == 2 or (inputs[2].node().kind() == "prim::Constant"
                                              and inputs[2].toIValue() == 1))
            if _channel_constant(second) and _writable(first, node):
                new_inputs = inputs
            elif alpha_one and _channel_constant(first) and _writable(second, node):
                new_inputs = [second, first] + inputs[2:]  # x + b == b + x when alpha is 1
            else:
                continue
            new_kind = _BINARY_IN_PLACE[kind]
        else:
            continue
        new = graph.create(new_kind, new_inputs, 1)
        new.insertBefore(node)
        new.output().setType(node.output().type())
        node.output().replaceAllUsesWith(new.output())
        node.destroy()
        count += 1
    return count


def torchscript(model, input_shape=None, verify: bool = True, atol: float = 1e-4,
                optimize: bool = True):
    """Trace ``model``'s inference into a frozen TorchScript graph (PyTorch backend only).

    Args:
        model: a Keras model with one input (an EfficientNet, a feature extractor, a U-Net, an
            EfficientDet...).
        input_shape: the input shape without the batch axis; needed when the model's own input
            has free height or width (``(None, None, 3)``).
        verify: run the trace and the Keras model on the same random 0-255 images (batch 2) and
            refuse the trace if any output differs by more than ``atol * (1 + max |output|)``.
        atol: the verification tolerance.
        optimize: trace an inference copy with every BatchNorm folded into its convolution
            (:func:`~keras_efficientnet.fuse_batchnorm`; models it cannot fold are traced as
            they are) and rewrite the frozen graph so activations and per-channel bias adds
            write into their input where nothing else reads it (:func:`_write_in_place`):
            fewer fresh full-size tensors, which on CPU cost page faults. ``False`` traces the
            model exactly as given. The verification is against ``model`` either way.

    Returns:
        A ``TracedModel`` (a ``torch.nn.Module``): call it with a batch laid out as the model's
        input; ``.max_abs_diff`` is the measured difference (None without ``verify``).

    Raises:
        ValueError: on another backend, for a model with several inputs, for a free input size
            without ``input_shape``, or when the trace does not reproduce the model.

    Example:
        >>> import numpy as np
        >>> import keras
        >>> import keras_efficientnet as ke
        >>> if keras.backend.backend() == "torch":
        ...     model = ke.EfficientNetB0(weights=None, input_shape=(64, 64, 3))
        ...     fast = ke.torchscript(model)
        ...     print(tuple(fast(np.zeros((3, 64, 64, 3), "float32")).shape))
        ... else:
        ...     print((3, 1000))
        (3, 1000)
    """
    torch = _torch()
    if len(model.inputs) != 1:
        raise ValueError(f"torchscript() traces models with one input; this one has "
                         f"{len(model.inputs)}.")
    shape = tuple(model.inputs[0].shape[1:])
    if input_shape is not None:
        input_shape = tuple(input_shape)
        if len(input_shape) != len(shape) or any(
                m is not None and m != i for m, i in zip(shape, input_shape)):
            raise ValueError(f"input_shape {input_shape} does not fit the model's input "
                             f"{shape} (without the batch axis).")
        shape = input_shape
    if any(d is None for d in shape):
        raise ValueError(f"The model's input shape {shape} has free dimensions; pass the size "
                         "to trace for, e.g. torchscript(model, input_shape=(224, 224, 3)).")
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape):
        raise ValueError(f"input_shape must hold positive integers, got {shape}.")

    class _Inference(torch.nn.Module):
        def __init__(self, keras_model):
            super().__init__()
            self.keras_model = keras_model

        def forward(self, x):
            return self.keras_model(x, training=False)

    rng = np.random.default_rng(0)
    example = torch.from_numpy(rng.uniform(0, 255, (2, *shape)).astype("float32"))
    probe = torch.from_numpy(rng.uniform(0, 255, (2, *shape)).astype("float32"))
    wrapper = _Inference(model).eval()
    float32 = all(getattr(layer, "compute_dtype", "float32") == "float32"
                  for layer in model._flatten_layers(include_self=True))
    attempts = [True, False] if optimize and float32 else [False]
    expected = None  # the Keras model's outputs on the probe, computed once for every attempt
    for optimized in attempts:
        script = _trace(_Inference(_folded(model) if optimized else model).eval(), example,
                        optimized)
        diff = None
        if not (verify or optimized):
            break
        try:  # the probe run: an in-place write that cannot broadcast fails here, not later
            with torch.no_grad():
                got = torch.utils._pytree.tree_leaves(script(probe))
        except RuntimeError:
            if optimized:
                continue
            raise
        if not verify:
            break
        if expected is None:
            with torch.no_grad():
                expected = torch.utils._pytree.tree_leaves(wrapper(probe))
        if len(expected) != len(got):
            raise ValueError(f"The trace returns {len(got)} outputs, the model {len(expected)}.")
        diff, failure = 0.0, None
        for e, g in zip(expected, got):
            d = float((e - g).abs().max())
            bound = atol * (1.0 + float(e.abs().max()))
            if not d <= bound:
                failure = (f"The trace does not reproduce the model: max abs diff {d:.3g} > "
                           f"{bound:.3g}. The model's computation depends on something a trace "
                           "cannot record (Python control flow on values); run it through "
                           "Keras instead.")
                break
            diff = max(diff, d)
        if failure is None:
            break
        if not optimized:
            raise ValueError(failure)
    channels_first = any(getattr(layer, "data_format", None) == "channels_first"
                         for layer in model.layers)
    return _module_class()(script, shape, diff, channels_first)


def _trace(module, example, optimized: bool):
    """Trace and freeze ``module`` on ``example``; with ``optimized``, rewrite the frozen graph
    in place (:func:`_write_in_place`) before it first runs (the executor keeps its plan)."""
    import warnings

    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # sizes fixed at trace time
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.9+: "trace is deprecated"
        script = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False,
                                                  strict=False).eval())
    if optimized:
        _write_in_place(script.graph)
    return script
