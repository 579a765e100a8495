"""Flat weight names: one string per variable, independent of how layers nest.

A variable's flat name is the chain of layer names from the model down to the layer that
owns it, joined by ``_``, then ``/`` and the variable name: the ``kernel`` of the
``expand_conv`` sublayer of block ``block2a`` is ``block2a_expand_conv/kernel``. These are
exactly the names keras.applications' ``.h5`` files use, and the names every converter in
:mod:`keras_efficientnet.pretrained.convert` maps its source onto. In the default flat graph
the chain is just the layer's name; in the ``layout="blocks"`` model it runs through the
block layer (``block2a`` > ``expand_conv``) and gives the same string.

The input ``Normalization`` layer's statistics (V1 graphs) are named
``normalization/mean``, ``normalization/variance`` and ``normalization/count`` whatever name
Keras gave the layer (keras.applications leaves it to Keras' automatic names). They are
optional in every file: a file without them leaves the statistics the factory set from the
weight source's convention.
"""

from __future__ import annotations

import keras

#: Flat names of the input normalisation statistics, optional in weight files.
PREPROCESSING_WEIGHTS = ("normalization/mean", "normalization/variance", "normalization/count")


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
        if isinstance(layer, keras.layers.Normalization) and layer.weights:
            for variable in layer.weights:
                out[f"normalization/{variable.name}"] = variable
            continue
        visit(layer, layer.name)
    return out


def reconcile_preprocessing(targets: dict, arrays: dict) -> None:
    """Make the input normalisation statistics optional on both sides, in place: a file
    without them leaves the model's (set by the factory from the weight source's convention),
    and a model without a ``Normalization`` layer (``include_preprocessing=False``) ignores
    the file's."""
    for name in PREPROCESSING_WEIGHTS:
        if name not in arrays:
            targets.pop(name, None)
        elif name not in targets:
            arrays.pop(name)


def finalize_preprocessing(model) -> None:
    """Let every ``Normalization`` layer (nested models' included) pick up statistics assigned
    to its variables: ``set_weights`` and variable assignment leave the constants it computes
    with stale until ``finalize_state``."""
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Normalization) and layer.weights:
            layer.finalize_state()
