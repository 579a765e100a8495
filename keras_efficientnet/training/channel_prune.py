"""Structured channel pruning: a genuinely smaller EfficientNet with the kept weights sliced in.

In every MBConv / Fused-MBConv block that has an expansion conv, :func:`prune_channels` ranks
the expanded (hidden) channels, keeps the best ``round(hidden * (1 - fraction))`` (rounded half
up, at least 1) and rebuilds the network with
:func:`~keras_efficientnet.models.factory.build_efficientnet` from the spec with
``channel_overrides={block: kept}``. The result is an ordinary model of that spec: it saves,
loads, exports and is benchmarked like any variant, and ``pruned_spec`` rebuilds it.

Ranking (``criterion``):

* ``"bn_gamma"``: ``|gamma|`` of the expansion BatchNorm (``expand_bn``), Liu et al. 2017
  ("network slimming"). Needs unfused BatchNorm.
* ``"l1"``: the L1 norm of each output channel of the expansion kernel (``expand_conv``),
  Li et al. 2017.

What is sliced for a block with kept hidden channels ``K`` (all other weights, and blocks
without an expansion conv, are copied unchanged, by name):

=================  =========================================================
MBConv             ``expand_conv`` out-channels, ``expand_bn``, ``dwconv`` channels, ``bn``,
                   ``se_reduce`` in-channels, ``se_expand`` out-channels + bias,
                   ``project_conv`` in-channels
Fused-MBConv       ``expand_conv`` (k x k) out-channels, ``expand_bn``, ``se_reduce`` in,
                   ``se_expand`` out + bias, ``project_conv`` in-channels
=================  =========================================================

A dropped hidden channel reaches the rest of the network only through two kernels: the
squeeze-excitation reduction (its mean over space) and the projection. :func:`zero_channels`
zeroes exactly those input rows in the *original* model, which makes it compute the same
function as the pruned one (up to float summation order): the proof that slicing is right.
CondConv blocks are not pruned (their experts are mixed per example; they are copied as is).
"""

from __future__ import annotations

import keras
import numpy as np

from ..specs import ModelSpec, get_spec, resolve

__all__ = ["prune_channels", "select_channels", "zero_channels", "CRITERIA"]

CRITERIA = ("bn_gamma", "l1")


def _check(fraction, criterion):
    if not (isinstance(fraction, (int, float, np.floating)) and 0.0 <= float(fraction) < 1.0):
        raise ValueError(f"fraction must lie in [0, 1), got {fraction!r}.")
    if criterion not in CRITERIA:
        raise ValueError(f"Unknown criterion {criterion!r}; choose from {CRITERIA}.")


def _weights(model) -> dict:
    """``{flat name: variable}`` of ``model``: the same names in the flat graph and in a
    ``layout="blocks"`` model (:func:`keras_efficientnet.pretrained.naming.flat_weights`)."""
    from ..pretrained.naming import flat_weights

    return flat_weights(model)


def _prunable_blocks(model, spec, weights=None):
    """``(resolved_block, {part: variable})`` for each block with an expansion conv (CondConv
    excluded); parts are the flat names without the block prefix (``expand_conv/kernel``)."""
    weights = _weights(model) if weights is None else weights
    out = []
    for block in resolve(spec).blocks:
        if block.hidden_channels is None or block.experts:
            continue
        prefix = block.name + "_"
        parts = {n[len(prefix):]: v for n, v in weights.items() if n.startswith(prefix)}
        kernel = parts.get("expand_conv/kernel")
        if kernel is None:
            raise ValueError(f"The model has no block {block.name!r} with an expansion conv "
                             f"({prefix}expand_conv): it does not match the spec {spec.name!r}.")
        if kernel.shape[-1] != block.hidden_channels:
            raise ValueError(f"{block.name}: the model has {kernel.shape[-1]} hidden channels, the "
                             f"spec {block.hidden_channels}; pass the spec the model was built from.")
        out.append((block, parts))
    return out


def keep_count(hidden: int, fraction: float) -> int:
    """Channels kept out of ``hidden``: ``round(hidden * (1 - fraction))``, half up, >= 1.

    Example:
        >>> from keras_efficientnet.training.channel_prune import keep_count
        >>> keep_count(96, 0.3), keep_count(16, 0.3), keep_count(5, 0.9)
        (67, 11, 1)
    """
    return max(1, int(np.floor(hidden * (1.0 - fraction) + 0.5)))


def select_channels(model, spec, fraction: float = 0.3, criterion: str = "bn_gamma") -> dict:
    """The hidden channels each block keeps: ``{block_name: sorted int array}``.

    Args:
        model: an EfficientNet built from ``spec`` (any classifier head).
        spec: its :class:`~keras_efficientnet.specs.ModelSpec` (or variant name).
        fraction: share of each block's hidden channels to remove, in ``[0, 1)``.
        criterion: ``"bn_gamma"`` or ``"l1"`` (see the module docstring).

    Returns:
        ``{block_name: indices}`` for every block with an expansion conv.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.channel_prune import select_channels
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        >>> kept = select_channels(model, "EfficientNetB0", 0.3, "l1")
        >>> len(kept["block2a"])
        67
    """
    spec = spec if isinstance(spec, ModelSpec) else get_spec(spec)
    _check(fraction, criterion)
    kept = {}
    for block, parts in _prunable_blocks(model, spec):
        if criterion == "bn_gamma":
            gamma = parts.get("expand_bn/gamma")
            if gamma is None:
                raise ValueError(f"{block.name}_expand_bn has no gamma (BatchNorm fused or "
                                 "scale=False); use criterion='l1'.")
            score = np.abs(keras.ops.convert_to_numpy(gamma))
        else:
            w = keras.ops.convert_to_numpy(parts["expand_conv/kernel"])
            score = np.abs(w).reshape(-1, w.shape[-1]).sum(axis=0)
        n = keep_count(block.hidden_channels, float(fraction))
        order = np.argsort(-score, kind="stable")  # best first; ties keep the lower index
        kept[block.name] = np.sort(order[:n])
    return kept


def zero_channels(model, kept: dict) -> None:
    """Make dropped hidden channels contribute nothing, in place, without changing shapes.

    For each block, the input rows of ``se_reduce`` and ``project_conv`` that belong to
    channels not in ``kept[block]`` are set to zero. Those are the only paths by which a hidden
    channel reaches anything outside itself, so afterwards ``model`` computes what the model of
    :func:`prune_channels` (with the same ``kept``) computes.

    Args:
        model: the unpruned model.
        kept: from :func:`select_channels`.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.channel_prune import select_channels, zero_channels
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        >>> zero_channels(model, select_channels(model, "EfficientNetB0", 0.5))
    """
    weights = _weights(model)
    for name, keep in kept.items():
        if f"{name}_expand_conv/kernel" not in weights:
            raise ValueError(f"The model has no block {name!r} with an expansion conv.")
        hidden = weights[f"{name}_expand_conv/kernel"].shape[-1]
        drop = np.setdiff1d(np.arange(hidden), keep)
        targets = [weights[f"{name}_project_conv/kernel"]]
        if f"{name}_se_reduce/kernel" in weights:
            targets.append(weights[f"{name}_se_reduce/kernel"])
        for kernel in targets:
            w = keras.ops.convert_to_numpy(kernel).copy()
            w[:, :, drop, :] = 0.0
            kernel.assign(w)


def _head_settings(model):
    """The build_efficientnet arguments that reproduce ``model``'s input, head, layout and
    computation options."""
    from ..layers import FusedMBConv, MBConv
    from ..layers.depthwise import ShiftedDepthwiseConv2D

    names = {l.name for l in model.layers}
    kw = {"input_shape": tuple(model.input_shape[1:]),
          "include_preprocessing": any(isinstance(l, keras.layers.Rescaling)
                                       for l in model.layers[:4]),
          "name": model.name}
    if "top_conv" in names:
        kw["data_format"] = model.get_layer("top_conv").data_format
    blocks = [l for l in model.layers if isinstance(l, (MBConv, FusedMBConv))]
    kw["layout"] = "blocks" if blocks else "flat"
    for layer in blocks:  # the blocks' computation options carry over
        for option in ("depthwise_impl", "bn_fold"):  # depthwise_impl: MBConv blocks only
            if option not in kw and hasattr(layer, option):
                kw[option] = getattr(layer, option)
    if not blocks:
        depthwise = [l for l in model.layers if isinstance(l, keras.layers.DepthwiseConv2D)]
        if depthwise:
            kw["depthwise_impl"] = ("shifted" if isinstance(depthwise[0], ShiftedDepthwiseConv2D)
                                    else "keras")
    if "predictions" in names:
        head = model.get_layer("predictions")
        act = getattr(head.activation, "__name__", None)
        kw.update(include_top=True, classes=int(head.units),
                  classifier_activation=None if act in (None, "linear") else act,
                  dropout_rate=model.get_layer("top_dropout").rate if "top_dropout" in names else 0.0)
    else:
        kw.update(include_top=False,
                  pooling="avg" if "avg_pool" in names else "max" if "max_pool" in names else None)
    return kw


def _drop_connect(model, spec):
    """The model's final stochastic-depth rate, read back from its first block that has one
    (block ``i`` of ``n`` drops with ``rate * i / n``)."""
    blocks = resolve(spec).blocks
    names = {l.name for l in model.layers}
    for i, block in enumerate(blocks[1:], start=1):
        if f"{block.name}_drop" in names:
            return float(model.get_layer(f"{block.name}_drop").rate) * len(blocks) / i
        if block.name in names and hasattr(model.get_layer(block.name), "drop_rate"):
            rate = float(model.get_layer(block.name).drop_rate)
            if rate > 0:
                return rate * len(blocks) / i
    return None


def _slice_to(old: np.ndarray, shape, keep: np.ndarray, hidden: int, where: str) -> np.ndarray:
    out = old
    for axis, (a, b) in enumerate(zip(old.shape, shape)):
        if a != b:
            if a != hidden or b != len(keep):
                raise ValueError(f"{where}: cannot slice shape {old.shape} to {tuple(shape)}.")
            out = np.take(out, keep, axis=axis)
    return out


def prune_channels(model, spec, fraction: float = 0.3, criterion: str = "bn_gamma",
                   kept: dict | None = None, **build_kwargs):
    """Remove ``fraction`` of every block's expanded channels; return the smaller model.

    Args:
        model: an EfficientNet built from ``spec`` (a classifier head from
            :func:`~keras_efficientnet.training.reset_classifier` is fine).
        spec: its :class:`~keras_efficientnet.specs.ModelSpec` or variant name; existing
            ``channel_overrides`` are kept and refined.
        fraction: share of hidden channels to remove per block, in ``[0, 1)``.
        criterion: ``"bn_gamma"`` (``|gamma|`` of ``expand_bn``) or ``"l1"`` (L1 norm of the
            ``expand_conv`` output channels).
        kept: the channels to keep, ``{block: indices}``, instead of ranking (from
            :func:`select_channels`).
        **build_kwargs: override what is read from ``model`` and passed to
            ``build_efficientnet`` (``input_shape``, ``classes``, ``classifier_activation``,
            ``include_top``, ``dropout_rate``, ``drop_connect_rate``, ``name`` ...).

    Returns:
        ``(pruned_model, pruned_spec)``: ``build_efficientnet(pruned_spec, ...)`` builds the
        same architecture again.

    Raises:
        ValueError: ``fraction`` outside ``[0, 1)``, an unknown criterion, a model that does
            not match the spec.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training import prune_channels
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        >>> small, small_spec = prune_channels(model, "EfficientNetB0", fraction=0.3)
        >>> small_spec.channel_overrides["block2a"], small.count_params() < model.count_params()
        (67, True)
    """
    from ..models.factory import build_efficientnet
    from ..pretrained import naming

    spec = spec if isinstance(spec, ModelSpec) else get_spec(spec)
    _check(fraction, criterion)
    if kept is None:
        kept = select_channels(model, spec, fraction, criterion)
    hidden = {b.name: b.hidden_channels for b, _ in _prunable_blocks(model, spec)}
    unknown = set(kept) - set(hidden)
    if unknown:
        raise ValueError(f"kept names blocks without an expansion conv: {sorted(unknown)}.")
    overrides = dict(spec.channel_overrides)
    overrides.update({name: int(len(idx)) for name, idx in kept.items()})
    pruned_spec = spec.replace(channel_overrides=overrides)

    kw = _head_settings(model)
    rate = _drop_connect(model, spec)
    if rate is not None:
        kw["drop_connect_rate"] = min(rate, 0.999)
    kw.update(build_kwargs)
    pruned = build_efficientnet(pruned_spec, weights=None, **kw)

    old_weights = _weights(model)
    for flat_name, var in _weights(pruned).items():
        if flat_name not in old_weights:
            raise ValueError(f"The model has no weight {flat_name!r} to copy into the pruned model.")
        old = keras.ops.convert_to_numpy(old_weights[flat_name])
        block = flat_name.split("_", 1)[0]
        if block in kept and tuple(old.shape) != tuple(var.shape):
            old = _slice_to(old, var.shape, np.asarray(kept[block]), hidden[block], flat_name)
        var.assign(old)
    naming.finalize_preprocessing(pruned)
    return pruned, pruned_spec
