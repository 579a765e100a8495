"""Fine-tuning helpers: freeze the backbone, unfreeze the top blocks, replace the classifier.

BatchNormalization stays frozen throughout. In Keras 3 a ``BatchNormalization`` layer whose
``trainable`` is False runs in inference mode (it normalises with its moving statistics and
does not update them) whatever ``training`` says, so freezing it keeps the ImageNet statistics
that the pretrained weights were trained against; a small fine-tuning batch would otherwise
overwrite them. In the default flat graph a block is the run of layers named ``block6a_...``
(keras.applications' names); in a ``layout="blocks"`` model it is one composite layer, whose
``trainable`` propagates to its sublayers, so the helpers set the block first and then
re-freeze its BatchNorm sublayers. Both layouts give the same trainable weights.

After changing ``trainable`` call ``model.compile(...)`` (or ``fit`` on a freshly compiled
model): Keras collects the trainable variables when the train function is built.
"""

from __future__ import annotations

import re

import keras

#: keras.applications' block naming (``block6a``, ``block7b`` ...): the factory's stable names;
#: a flat graph's layers are ``block6a_expand_conv``, ...
_BLOCK_NAME = re.compile(r"^(block\d+[a-z]+)(?:_|$)")
#: The last layer of the backbone built by the factory.
_BACKBONE_END = "top_activation"


def _walk(layer):
    """``layer`` and all its nested sublayers."""
    yield layer
    for sub in getattr(layer, "_layers", []):
        yield from _walk(sub)


def _freeze_batchnorm(layer) -> None:
    for sub in _walk(layer):
        if isinstance(sub, keras.layers.BatchNormalization):
            sub.trainable = False


def _backbone_layers(model):
    """The layers of ``model`` up to ``top_activation`` (in graph order); a nested backbone
    model (``base = EfficientNetB0(include_top=False); keras.Sequential([base, ...])``)
    counts as one layer."""
    layers = list(model.layers)
    for i, layer in enumerate(layers):
        if layer.name == _BACKBONE_END:
            return layers[: i + 1]
    nested = [l for l in layers if isinstance(l, keras.Model) and _has_layer(l, _BACKBONE_END)]
    if nested:
        return nested
    raise ValueError(f"{model.name!r} has no layer {_BACKBONE_END!r}: it is not (and does not "
                     "contain) an EfficientNet built by keras_efficientnet.")


def _has_layer(model, name) -> bool:
    try:
        model.get_layer(name)
        return True
    except ValueError:
        return False


def _group_blocks(layers):
    """``[(block name, [its layers])]`` in graph order: one composite layer per block, or a
    flat graph's run of ``block6a_*`` layers."""
    groups: dict = {}
    for layer in layers:
        match = _BLOCK_NAME.match(layer.name)
        if match:
            groups.setdefault(match.group(1), []).append(layer)
    return list(groups.items())


def _blocks(model):
    """The blocks of the (possibly nested) backbone, in order, as ``[(name, layers)]``, and
    the model that owns them."""
    for layer in _backbone_layers(model):
        if isinstance(layer, keras.Model) and layer is not model:
            return _group_blocks(layer.layers), layer
    return _group_blocks(model.layers), model


def freeze_backbone(model):
    """Make every backbone layer non-trainable, leaving the head (everything after
    ``top_activation``) trainable; BatchNorm runs in inference mode.

    Args:
        model: an EfficientNet from this package, or a model containing one.

    Returns:
        ``model`` (changed in place).

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.finetune import freeze_backbone
        >>> model = freeze_backbone(ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3))
        >>> [w.path for w in model.trainable_weights]
        ['predictions/kernel', 'predictions/bias']
    """
    backbone = _backbone_layers(model)
    for layer in model.layers:
        layer.trainable = True
    for layer in backbone:
        layer.trainable = False
    return model


def unfreeze_top(model, n_blocks: int | None = None, from_block: str | None = None,
                 head_conv: bool = True):
    """Make the top of the backbone trainable again, BatchNorm layers excepted.

    The backbone is first frozen as by :func:`freeze_backbone`. Then the last ``n_blocks``
    blocks (or every block from ``from_block`` on) and, with ``head_conv``, ``top_conv``
    become trainable. With neither ``n_blocks`` nor ``from_block`` the whole backbone is
    unfrozen. Every BatchNormalization layer, including those inside the blocks, stays frozen
    (inference mode, statistics kept).

    Args:
        model: an EfficientNet from this package, or a model containing one.
        n_blocks: how many of the last blocks to unfreeze (0 for none).
        from_block: a block name such as ``"block6a"``; that block and all later ones.
        head_conv: also unfreeze ``top_conv``.

    Returns:
        ``model`` (changed in place).

    Raises:
        ValueError: for both or invalid ``n_blocks``/``from_block``.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.finetune import unfreeze_top
        >>> model = unfreeze_top(ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3), n_blocks=1)
        >>> sorted({w.path.split("_")[0] for w in model.trainable_weights})
        ['block7a', 'predictions/bias', 'predictions/kernel', 'top']
    """
    if n_blocks is not None and from_block is not None:
        raise ValueError("Pass n_blocks or from_block, not both.")
    freeze_backbone(model)
    blocks, owner = _blocks(model)
    if n_blocks is None and from_block is None:
        chosen = list(_backbone_layers(model))
    elif from_block is not None:
        names = [name for name, _ in blocks]
        if from_block not in names:
            raise ValueError(f"No block {from_block!r}; blocks are {names[0]}..{names[-1]}.")
        chosen = [l for _, group in blocks[names.index(from_block):] for l in group]
    else:
        if not 0 <= int(n_blocks) <= len(blocks):
            raise ValueError(f"n_blocks must lie in [0, {len(blocks)}], got {n_blocks}.")
        chosen = [l for _, group in blocks[len(blocks) - int(n_blocks):] for l in group]
    if owner is not model and chosen:
        owner.trainable = True  # a nested model: open it, then close what stays frozen
        for layer in owner.layers:
            layer.trainable = False
    if head_conv or (n_blocks is None and from_block is None):
        chosen = list(chosen) + [owner.get_layer("top_conv")]
    for layer in chosen:
        layer.trainable = True
    for layer in _backbone_layers(model):
        _freeze_batchnorm(layer)
    return model


def reset_classifier(model, num_classes: int, activation="softmax", dropout_rate: float | None = None,
                     pooling: str = "avg", kernel_initializer="zeros", name: str | None = None):
    """A new model with the same backbone (shared layers and weights) and a fresh head.

    Args:
        model: an EfficientNet from this package (with or without its classifier).
        num_classes: width of the new ``predictions`` layer; 0 returns the pooled features.
        activation: activation of the new classifier (``None`` for logits).
        dropout_rate: dropout before the classifier (default: the old head's rate, or 0).
        pooling: global pooling to add when ``model`` has none (``"avg"`` or ``"max"``).
        kernel_initializer: of the new classifier. Zeros (the default) start fine-tuning from
            uniform predictions: the ImageNet initializer's large logits on a few classes make
            the first steps' gradients, which reach the pretrained backbone, needlessly large.
        name: name of the new model (default: ``model.name``).

    Returns:
        A ``keras.Model``. Under a mixed-precision policy the classifier computes in float32.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.finetune import reset_classifier
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3))
        >>> new = reset_classifier(model, 10)
        >>> new.output_shape, new.get_layer("top_conv") is model.get_layer("top_conv")
        ((None, 10), True)
    """
    if int(num_classes) < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}.")
    names = {l.name for l in model.layers}
    if _BACKBONE_END not in names:
        raise ValueError(f"{model.name!r} has no {_BACKBONE_END!r} layer: reset_classifier needs an "
                         "EfficientNet built by keras_efficientnet.")
    if "avg_pool" in names:
        x = model.get_layer("avg_pool").output
    elif "max_pool" in names:
        x = model.get_layer("max_pool").output
    else:
        features = model.get_layer(_BACKBONE_END)
        data_format = model.get_layer("top_conv").data_format
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}.")
        pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
        x = pool(data_format=data_format, name=f"{pooling}_pool")(features.output)
    if dropout_rate is None:
        dropout_rate = model.get_layer("top_dropout").rate if "top_dropout" in names else 0.0
    if num_classes:
        if dropout_rate > 0:
            x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
        policy = keras.config.dtype_policy()
        head_dtype = "float32" if policy.compute_dtype != policy.variable_dtype else None
        x = keras.layers.Dense(int(num_classes), activation=activation, dtype=head_dtype,
                               kernel_initializer=kernel_initializer, name="predictions")(x)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, x, name=name or model.name)


def set_dropout(model, rate: float, layer_name: str = "top_dropout"):
    """Change the classifier's dropout rate in place (for progressive learning).

    The compiled train function is discarded so the next ``fit`` traces the new rate.

    Args:
        model: a model with a ``Dropout`` layer named ``layer_name``.
        rate: the new rate, in ``[0, 1)``.
        layer_name: the dropout layer's name.

    Returns:
        ``model``.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.finetune import set_dropout
        >>> model = set_dropout(ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=2), 0.4)
        >>> model.get_layer("top_dropout").rate
        0.4
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must lie in [0, 1), got {rate}.")
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise ValueError(f"{model.name!r} has no dropout layer {layer_name!r}; build it with "
                         "dropout_rate > 0 to change the rate later.") from None
    layer.rate = float(rate)
    model.train_function = None
    return model
