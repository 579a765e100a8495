"""Multiply-add (MAC) counts of EfficientNets, from layer shapes or straight from a spec.

What is counted, per image: one multiply-add per weight use in every convolution (standard,
grouped, depthwise, the squeeze-excitation 1x1 convolutions on the pooled tensor) and every
dense layer. Not counted: biases, BatchNorm, activations, pooling, the SE rescale, residual
additions and input normalisation (together well under 2% of the total). This is the
convention behind the papers' "FLOPs" (EfficientNet-B0: 0.39 G at 224) and timm's "GMACs";
multiply by 2 for floating-point operations in the strict sense.

:func:`count_flops` reads a built Keras model; :func:`count_flops_spec` computes the same number
from :func:`~keras_efficientnet.specs.resolve` without building anything (fast enough to
tabulate every variant).
"""

from __future__ import annotations

import math

from .specs import get_spec, resolve

__all__ = ["count_flops", "count_flops_spec", "count_params_spec"]


def _ceil_div(size: int, stride: int) -> int:
    return -(-int(size) // int(stride))


# ---------------------------------------------------------------------------------------------
# From a spec (no Keras)
# ---------------------------------------------------------------------------------------------

def count_flops_spec(spec, resolution: int | None = None, include_top: bool = True,
                     classes: int = 1000) -> int:
    """Multiply-adds of one forward pass of one image, computed from the spec alone.

    Args:
        spec: a :class:`~keras_efficientnet.specs.ModelSpec` or a variant name.
        resolution: square input size; the spec's default resolution when None.
        include_top: count the classifier (``top_conv`` is always counted).
        classes: classifier width.

    Returns:
        The number of multiply-adds (an ``int``).

    Example:
        >>> from keras_efficientnet.flops import count_flops_spec
        >>> round(count_flops_spec("EfficientNetB0") / 1e9, 2)
        0.39
    """
    spec = get_spec(spec)
    size = int(resolution or spec.resolution)
    if size < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution}.")
    model = resolve(spec)
    size = _ceil_div(size, 2)
    macs = size * size * 9 * 3 * model.stem_channels
    for block in model.blocks:
        out_size = _ceil_div(size, block.stride)
        k2 = block.kernel * block.kernel
        cin, cout, hidden = block.in_channels, block.out_channels, block.hidden_channels
        experts = max(int(getattr(block, "experts", 0) or 0), 0)
        if block.kind == "fu":
            if hidden is None:
                macs += out_size * out_size * k2 * cin * cout
                width = cin   # SE (if any) runs on the block input, before the conv
            else:
                macs += out_size * out_size * k2 * cin * hidden
                macs += out_size * out_size * hidden * cout
                width = hidden
        else:
            width = cin if hidden is None else hidden
            if hidden is not None:
                macs += size * size * cin * hidden
            macs += out_size * out_size * k2 * width
            macs += out_size * out_size * width * cout
        if block.se_channels:
            macs += 2 * width * block.se_channels
        if experts:
            # CondConv: routing (a dense layer from the pooled block input to the experts)
            # and mixing the experts' kernels into one per example.
            kernels = (cin * hidden if hidden is not None else 0) + k2 * width + width * cout
            macs += cin * experts + experts * kernels
        size = out_size
    macs += size * size * model.blocks[-1].out_channels * model.head_channels
    if include_top:
        macs += model.head_channels * int(classes)
    return int(macs)


def count_params_spec(spec, include_top: bool = True, classes: int = 1000,
                      include_preprocessing: bool = True) -> tuple[int, int]:
    """Parameter counts of the model a spec describes, without building it.

    Returns both conventions: ``total`` is what Keras' ``model.count_params()`` reports
    (including BatchNorm moving means and variances, which are not trained); ``trainable``
    is what timm and keras-hub report. ``total`` also counts the input ``Normalization``
    layer's mean, variance and sample count of V1-family graphs (7 numbers for 3 channels;
    keras.applications' ``count_params()`` includes them), unless ``include_preprocessing``
    is False.

    Args:
        spec: a :class:`~keras_efficientnet.specs.ModelSpec` or a variant name.
        include_top: count the classifier.
        classes: classifier width.
        include_preprocessing: the model normalises its input in the graph.

    Returns:
        ``(total, trainable)``.

    Example:
        >>> from keras_efficientnet.flops import count_params_spec
        >>> count_params_spec("EfficientNetB0")
        (5330571, 5288548)
    """
    from .specs.manifest import weight_manifest

    entries = weight_manifest(get_spec(spec), int(classes) if include_top else None,
                              include_preprocessing=include_preprocessing)
    return (sum(e.size for e in entries),
            sum(e.size for e in entries if e.trainable))


# ---------------------------------------------------------------------------------------------
# From a built model
# ---------------------------------------------------------------------------------------------

def _layer_format(layer):
    fmt = getattr(layer, "data_format", None)
    return fmt if fmt in ("channels_last", "channels_first") else "channels_last"


def _spatial(shape, data_format):
    dims = shape[1:3] if data_format == "channels_last" else shape[2:4]
    return tuple(dims)


def _conv_kernel(layer):
    """The kernel of a convolution-like layer (Keras' Conv2D / DepthwiseConv2D, or any layer
    holding a ``depthwise_kernel`` or ``kernel`` of rank 4, or rank 5 for CondConv's stacked
    experts, and a ``strides``), or None."""
    for attr in ("depthwise_kernel", "kernel"):
        var = getattr(layer, attr, None)
        if var is not None and len(var.shape) in (4, 5) and hasattr(layer, "strides"):
            return var
    return None


def _strides(layer):
    strides = layer.strides
    return tuple(strides) if isinstance(strides, (tuple, list)) else (int(strides),) * 2


def _leaf_macs(layer, out_hw):
    """MACs of a weighted leaf layer whose output has spatial size ``out_hw``, or None."""
    import keras

    kernel = _conv_kernel(layer)
    if kernel is not None:
        # Conv2D: (kh, kw, C / groups, out); depthwise: (kh, kw, C, multiplier).
        shape = tuple(kernel.shape)
        if len(shape) == 5:
            # CondConv (experts, kh, kw, C, out): one convolution with the mixed kernel, plus
            # mixing the experts into it (the convention of the CondConv paper and timm).
            return out_hw[0] * out_hw[1] * math.prod(shape[1:]) + math.prod(shape)
        return out_hw[0] * out_hw[1] * math.prod(shape)
    if isinstance(layer, keras.layers.Dense):
        return math.prod(layer.kernel.shape)
    return None


def _has_weights(layer) -> bool:
    return bool(getattr(layer, "_trainable_variables", None) or getattr(layer, "weights", None))


def _nested_macs(layer, in_hw, out_hw, found, prefix=""):
    """Walk a composite layer's sublayers in creation order, tracking the spatial size."""
    import keras

    from .layers import SqueezeExcite

    if isinstance(layer, SqueezeExcite) or getattr(layer, "name", "") == "se":
        total = 0
        for sub in layer._layers:
            macs = _leaf_macs(sub, (1, 1))
            total += macs or 0
            found.append((f"{prefix}{layer.name}/{sub.name}", macs or 0))
        return total
    total = 0
    hw = in_hw
    for sub in layer._layers:
        if sub.name in ("se_reduce", "se_expand"):  # a block's SE: on the pooled tensor
            macs = _leaf_macs(sub, (1, 1))
            found.append((f"{prefix}{layer.name}/{sub.name}", macs))
            total += macs
        elif _conv_kernel(sub) is not None:
            strides = _strides(sub)
            hw = (_ceil_div(hw[0], strides[0]), _ceil_div(hw[1], strides[1]))
            macs = _leaf_macs(sub, hw)
            found.append((f"{prefix}{layer.name}/{sub.name}", macs))
            total += macs
        elif isinstance(sub, keras.layers.Dense):
            macs = _leaf_macs(sub, hw)
            found.append((f"{prefix}{layer.name}/{sub.name}", macs))
            total += macs
        elif getattr(sub, "_layers", None):
            total += _nested_macs(sub, hw, hw, found, f"{prefix}{layer.name}/")
        elif _has_weights(sub) and not isinstance(sub, keras.layers.BatchNormalization):
            raise ValueError(f"count_flops does not know how to count layer {prefix}{layer.name}/{sub.name} "
                             f"({type(sub).__name__}); use count_flops_spec for spec-built models.")
    if out_hw is not None and hw != out_hw:
        raise ValueError(f"count_flops lost track of the spatial size inside {layer.name}: "
                         f"reached {hw}, the layer outputs {out_hw}.")
    return total


def count_flops(model, by_layer: bool = False):
    """Multiply-adds of one forward pass of one image through a built Keras model.

    Computed from the layer shapes (see the module docstring for what is counted), so it
    works for any functional model of Conv2D / DepthwiseConv2D / Dense layers and this
    package's blocks. The model's input must have a fixed spatial size: build it with
    ``input_shape=(H, W, 3)``.

    Args:
        model: a functional ``keras.Model``.
        by_layer: also return the list of ``(layer_path, macs)`` pairs.

    Returns:
        The number of multiply-adds (``int``), or ``(total, per_layer)`` when ``by_layer``.

    Raises:
        ValueError: when the input size is not fixed, or a weighted layer is of a kind the
            counter does not know.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.flops import count_flops, count_flops_spec
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(64, 64, 3), classes=10)
        >>> count_flops(model) == count_flops_spec("EfficientNetB0", 64, classes=10)
        True
    """
    import keras

    found: list[tuple[str, int]] = []
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            inputs = layer.input
            if isinstance(inputs, (list, tuple)):  # Add, Multiply: no weights, any input
                inputs = inputs[0]
            in_shape = tuple(inputs.shape)
            out_shape = tuple(layer.output.shape)
        except (AttributeError, ValueError) as err:
            raise ValueError(f"count_flops needs layers called once in a functional model; "
                             f"{layer.name}: {err}") from err
        fmt = _layer_format(layer)
        if len(out_shape) == 4:
            out_hw = _spatial(out_shape, fmt)
            in_hw = _spatial(in_shape, fmt) if len(in_shape) == 4 else out_hw
            if None in out_hw or None in in_hw:
                raise ValueError(f"count_flops needs a fixed input size, but {layer.name} has "
                                 f"output shape {out_shape}. Build the model with "
                                 "input_shape=(H, W, 3), or use count_flops_spec(spec, resolution).")
        else:
            in_hw = out_hw = (1, 1)
        macs = _leaf_macs(layer, out_hw)
        if macs is not None:
            found.append((layer.name, macs))
            total += macs
        elif getattr(layer, "_layers", None):
            total += _nested_macs(layer, in_hw, out_hw if len(out_shape) == 4 else None, found)
        elif _has_weights(layer) and not isinstance(
                layer, (keras.layers.BatchNormalization, keras.layers.Normalization)) \
                and type(layer).__name__ != "Normalize":
            raise ValueError(f"count_flops does not know how to count layer {layer.name} "
                             f"({type(layer).__name__}).")
    total = int(total)
    return (total, found) if by_layer else total
