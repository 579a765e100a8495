"""BatchNorm folding: an inference copy of a model with every BatchNorm inside its convs."""

from __future__ import annotations

import numpy as np


def _walk(layer, prefix, out):
    """``{flat prefix: layer}`` for every leaf layer, named as pretrained.naming does."""
    children = list(layer._flatten_layers(include_self=False, recursive=False))
    if not children:
        out[prefix] = layer
    for child in children:
        _walk(child, f"{prefix}_{child.name}", out)


def _leaves(model):
    out = {}
    for layer in model.layers:
        _walk(layer, layer.name, out)
    return out


def _conv_partner(prefix, bn, leaves, producers):
    """Flat prefix of the convolution whose output ``bn`` normalises."""
    if prefix in producers:  # a model-level BatchNorm: follow the graph
        return producers[prefix]
    # inside a block: expand_bn <- expand_conv, project_bn <- project_conv, bn <- dwconv
    head, _, last = prefix.rpartition("_")
    candidates = [prefix[:-3] + "_conv"] if prefix.endswith("_bn") else []
    if last == "bn":
        candidates += [f"{head}_dwconv", f"{head}_dwconv2"]
    for name in candidates:
        if name in leaves:
            return name
    raise ValueError(f"Cannot fold BatchNorm {prefix!r}: no convolution feeds it "
                     f"(looked for {candidates}).")


def _scaled_kernel(kernel, scale, where):
    channels = scale.shape[0]
    if kernel.shape[-1] == 1 and kernel.ndim >= 4 and kernel.shape[-2] == channels and channels > 1:
        return kernel * scale[:, None]  # depthwise (..., k, k, C, 1)
    if kernel.shape[-1] == channels:
        return kernel * scale  # conv (..., k, k, in, out)
    raise ValueError(f"Cannot fold a {channels}-channel BatchNorm into {where} of shape "
                     f"{kernel.shape}.")


def fuse_batchnorm(model):
    """An inference copy of ``model`` with every BatchNorm folded into the preceding conv.

    For each convolution followed by a BatchNorm, the kernel is multiplied per output channel
    by ``gamma / sqrt(moving_variance + epsilon)`` and the BatchNorm becomes a
    :class:`~keras_efficientnet.layers.channel_bias.ChannelBias` (same name) holding
    ``beta - moving_mean * scale``. That covers the stem, expansion, depthwise, projection,
    Fused-MBConv and top convolutions. The copy computes the same outputs in inference mode
    with one add where each BatchNorm was; it has no BatchNorm left, so it is for inference and
    export only (training it would train without normalisation). The folded weights are
    computed in NumPy (float64) from the flat weights of ``model``, which is not modified.

    Args:
        model: a functional Keras model built by this package (or any functional model whose
            BatchNorms each follow a convolution).

    Returns:
        A new ``keras.Model`` with the same inputs, outputs and layer names.

    Raises:
        ValueError: a BatchNorm that does not directly follow a convolution.

    Example:
        >>> import numpy as np
        >>> import keras_efficientnet as ke
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        >>> fused = ke.fuse_batchnorm(model)
        >>> x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
        >>> bool(np.allclose(fused.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5))
        True
    """
    import keras

    from ..layers.channel_bias import ChannelBias
    from ..layers.mbconv import _InvertedResidualBase
    from ..pretrained.naming import finalize_preprocessing, flat_weights

    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise ValueError("fuse_batchnorm needs a functional keras.Model (as the constructors build).")

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            axis = layer.axis[0] if isinstance(layer.axis, (list, tuple)) else layer.axis
            data_format = "channels_first" if axis == 1 else "channels_last"
            return ChannelBias(data_format=data_format, name=layer.name)
        if isinstance(layer, _InvertedResidualBase):
            return type(layer).from_config({**config, "fused_bn": True})
        return type(layer).from_config(config)

    leaves = _leaves(model)
    producers = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            parent = layer.input._keras_history[0]
            producers[layer.name] = parent.name

    source = {k: np.asarray(keras.ops.convert_to_numpy(v), "float64")
              for k, v in flat_weights(model).items()}
    target = dict(source)
    for prefix, layer in leaves.items():
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        conv = _conv_partner(prefix, layer, leaves, producers)
        mean = source.pop(f"{prefix}/moving_mean")
        var = source.pop(f"{prefix}/moving_variance")
        gamma = source.pop(f"{prefix}/gamma", np.ones_like(mean))
        beta = source.pop(f"{prefix}/beta", np.zeros_like(mean))
        for key in ("moving_mean", "moving_variance", "gamma", "beta"):
            target.pop(f"{prefix}/{key}", None)
        scale = gamma / np.sqrt(var + layer.epsilon)
        bias = beta - mean * scale
        kernels = [k for k in source if k.startswith(conv + "/") and
                   k.split("/")[-1] in ("kernel", "depthwise_kernel")]
        if not kernels:
            raise ValueError(f"Cannot fold BatchNorm {prefix!r}: {conv!r} has no kernel.")
        for key in kernels:
            target[key] = _scaled_kernel(source[key], scale, key)
        if f"{conv}/bias" in source:
            target[f"{conv}/bias"] = source[f"{conv}/bias"] * scale
        target[f"{prefix}/bias"] = bias

    input_tensors = None
    input_layers = [l for l in model.layers if isinstance(l, keras.layers.InputLayer)]
    if len(model.inputs) == 1 and len(input_layers) == 1:  # keep the input's name
        input_tensors = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype,
                                    name=input_layers[0].name)
    fused = keras.models.clone_model(model, input_tensors=input_tensors, clone_function=clone)
    variables = flat_weights(fused)
    missing = sorted(set(variables) - set(target))
    unused = sorted(set(target) - set(variables))
    if missing or unused:
        raise ValueError(f"fuse_batchnorm: weights do not line up (missing {missing[:5]}, "
                         f"unused {unused[:5]}).")
    for name, variable in variables.items():
        if tuple(variable.shape) != target[name].shape:
            raise ValueError(f"fuse_batchnorm: {name} has shape {tuple(variable.shape)}, folded "
                             f"value {target[name].shape}.")
        variable.assign(target[name].astype(variable.dtype))
    finalize_preprocessing(fused)
    return fused
