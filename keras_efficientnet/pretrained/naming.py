"""Flat weight names: one string per variable, independent of how layers nest.

A variable's flat name is the chain of layer names from the model down to the layer that
owns it, joined by ``_``, then ``/`` and the variable name: the ``kernel`` of the
``expand_conv`` sublayer of block ``block2a`` is ``block2a_expand_conv/kernel``. These are
exactly the names keras.applications' ``.h5`` files use, and the names every converter in
:mod:`keras_efficientnet.pretrained.convert` maps its source onto.
"""

from __future__ import annotations


def _children(layer):
    return list(layer._flatten_layers(include_self=False, recursive=False))


def flat_weights(model) -> dict:
    """``{flat_name: variable}`` for every weight of ``model`` (trainable or not).

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.pretrained.naming import flat_weights
        >>> names = flat_weights(ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3)))
        >>> "block2a_se_reduce/kernel" in names, "predictions/bias" in names
        (True, True)
    """
    out = {}

    def visit(layer, prefix):
        children = _children(layer)
        if not children:
            for variable in layer.weights:
                key = f"{prefix}/{variable.name}"
                if key in out:
                    raise ValueError(f"Two weights share the flat name {key!r}.")
                out[key] = variable
            return
        for child in children:
            visit(child, f"{prefix}_{child.name}")

    for layer in model.layers:
        visit(layer, layer.name)
    return out
