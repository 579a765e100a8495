"""Public constructors, generated from the variant table.

Each constructor has keras.applications' signature (its positional arguments, order and
defaults, ``weights="imagenet"`` where a default weight set is registered), then this
package's extras as keyword-only arguments. They are thin: all the work is in
:func:`~keras_efficientnet.models.factory.build_efficientnet`.
"""

from __future__ import annotations

import inspect
import os

import keras

from ..specs import VARIANTS, compound_spec, get_spec
from ..specs.naming import default_model_name
from .factory import DEFAULT_LAYOUT, build_efficientnet, set_preprocessing

_DOC = """Instantiate the {name} architecture{extra}.

Default input: {res}x{res} RGB, 0-255 pixels (normalised in the graph as the weights expect:
{pre}). With ``include_top=False`` the input size is free (``(None, None, 3)``).

Args:
    include_top: whether to include the pooling, dropout and ``predictions`` classifier.
    weights: ``None`` (random initialisation), ``"imagenet"`` (default: {default_weights}),
        another registered weight-set tag, or the path of a weights file (keras.applications ``.h5``, this package's
        ``.weights.h5``, or any supported checkpoint; the format is read from the file).
    input_tensor: optional Keras tensor to use as the model's input.
    input_shape: optional shape tuple, e.g. ``({res}, {res}, 3)``.
    pooling: ``None``, ``"avg"`` or ``"max"``: global pooling when ``include_top=False``.
    classes: number of classes of the classifier.
    classifier_activation: activation of the classifier; ``None`` returns logits.
    include_preprocessing: take 0-255 pixels and normalise them in the graph, as
        keras.applications (keyword-only in V1 constructors, which keras.applications gives
        no such argument).
    name: the model's name (default {default_name}).
    drop_connect_rate: final stochastic-depth rate (default 0.2).
    dropout_rate: dropout before the classifier (default {dropout}).
    data_format: ``"channels_last"`` or ``"channels_first"`` (default: Keras' setting);
        a ``channels_first`` model builds on TensorFlow's CPU (to be saved for a GPU, as
        with keras.applications) but does not run there (its CPU convolutions are NHWC only).
    depthwise_impl: ``"auto"`` (default), ``"keras"`` or ``"shifted"``: how MBConv blocks
        compute the depthwise convolution (same weights; see ``MBConv``).
    bn_fold: ``"auto"``, ``"inference"`` or ``"never"``: with ``layout="blocks"``, fold each
        block's BatchNorms into their convolutions during inference (same weights and
        training; outputs equal up to float rounding).
    layout: ``"flat"`` (default: keras.applications' graph, layer for layer) or
        ``"blocks"`` (one composite layer per block; same weights and outputs).

Returns:
    A ``keras.Model``. Its ``pretrained_cfg`` attribute (timm's name) is a dict of the input
    the weights expect and where they come from: ``input_size``, ``crop_pct``,
    ``interpolation``, ``mean``/``std``, ``num_classes``, ``source``, ... (see
    :func:`~keras_efficientnet.pretrained.registry.pretrained_cfg`; ``source`` is ``None``
    for random weights and the path for a weights file).

Example:
    >>> import numpy as np
    >>> import keras_efficientnet as ke
    >>> model = ke.{name}(weights=None, input_shape=(64, 64, 3), classes=5)
    >>> model.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0).shape
    (1, 5)
    >>> model.pretrained_cfg["input_size"], model.pretrained_cfg["source"]
    ((3, {res}, {res}), None)
"""


def _default_weights(variant: str):
    from ..pretrained.registry import has_weights

    return "imagenet" if has_weights(variant, "imagenet") else None


def _make_constructor(variant: str):
    """A constructor with keras.applications' signature: its positional arguments in its
    order and with its defaults (``weights="imagenet"``, ``name="efficientnetb0"``), then this
    package's extras as keyword-only arguments."""
    spec = VARIANTS[variant]
    default_name = default_model_name(variant)
    default_weights = _default_weights(variant)  # keras.applications: "imagenet"

    def build(arguments):
        """The constructor's own arguments (from its ``locals()``), by name, to the factory."""
        names = inspect.signature(constructor).parameters
        return build_efficientnet(get_spec(variant), **{k: arguments[k] for k in names})

    if spec.family == "v2":
        def constructor(include_top=True, weights=default_weights, input_tensor=None,
                        input_shape=None, pooling=None, classes=1000,
                        classifier_activation="softmax", include_preprocessing=True,
                        name=default_name, *, drop_connect_rate=None, dropout_rate=None,
                        data_format=None, depthwise_impl="auto", bn_fold="auto", layout=DEFAULT_LAYOUT):
            return build(locals())
    else:
        def constructor(include_top=True, weights=default_weights, input_tensor=None,
                        input_shape=None, pooling=None, classes=1000,
                        classifier_activation="softmax", name=default_name, *,
                        include_preprocessing=True, drop_connect_rate=None, dropout_rate=None,
                        data_format=None, depthwise_impl="auto", bn_fold="auto", layout=DEFAULT_LAYOUT):
            return build(locals())

    constructor.__name__ = constructor.__qualname__ = variant
    constructor.__doc__ = _DOC.format(name=variant, res=spec.resolution, pre=spec.preprocessing,
                                      dropout=spec.dropout, extra="",
                                      default_weights=repr(default_weights),
                                      default_name=repr(default_name))
    constructor.__module__ = "keras_efficientnet"
    return constructor


#: Public constructor names, in table order.
CONSTRUCTORS = {name: _make_constructor(name) for name in VARIANTS if name.startswith("EfficientNet")}
globals().update(CONSTRUCTORS)


def EfficientNet(phi: float = 0, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15,
                 include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                 classes=1000, classifier_activation="softmax", include_preprocessing=True,
                 name=None, drop_connect_rate=None, dropout_rate=None, data_format=None,
                 depthwise_impl="auto", bn_fold="auto", layout=DEFAULT_LAYOUT):
    """Any compound-scaled EfficientNet from the B0 base.

    Depth is multiplied by ``alpha**phi``, width by ``beta**phi`` and the default resolution is
    ``224 * gamma**phi`` (rounded to a multiple of 8). ``phi=0`` is B0's architecture. Only
    ``weights=None`` or a file path apply: no weights are published for arbitrary ``phi``.

    Args:
        phi: compound coefficient (>= 0, may be fractional).
        alpha, beta, gamma: depth, width and resolution bases (paper: 1.2, 1.1, 1.15).
        Other arguments: as for :func:`EfficientNetB0`.

    Returns:
        A ``keras.Model``.

    Example:
        >>> import keras_efficientnet as ke
        >>> model = ke.EfficientNet(phi=0.5, weights=None, include_top=False, pooling="avg")
        >>> model.output_shape
        (None, 1344)
    """
    from ..validation import validate_model_args

    validate_model_args(check_variant=False, phi=phi, weights=weights, input_shape=input_shape,
                        classes=classes, include_top=include_top, pooling=pooling,
                        classifier_activation=classifier_activation, dropout_rate=dropout_rate,
                        drop_connect_rate=drop_connect_rate)
    spec = compound_spec(phi, alpha, beta, gamma)
    return build_efficientnet(
        spec, include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, include_preprocessing=include_preprocessing,
        name=name, drop_connect_rate=drop_connect_rate, dropout_rate=dropout_rate,
        data_format=data_format, depthwise_impl=depthwise_impl, bn_fold=bn_fold, layout=layout)


def list_models(pattern=None, pretrained: bool = False, include_tags: bool = False) -> list[str]:
    """Names of the variants, optionally filtered, in table order.

    ``pattern`` follows timm's ``list_models``: a shell wildcard (``"*b0*"``, ``"tf_*v2_?"``,
    matched case-insensitively with :mod:`fnmatch`) or a list of them; a pattern without
    wildcards matches as a case-insensitive substring (``"V2"``). timm's own names
    (``tf_efficientnet_b0``, ``efficientnetv2_rw_s``, ...) are variants too.

    Args:
        pattern: ``None`` (all), a wildcard or substring, or a list of them (any may match).
        pretrained: only variants with at least one registered weight set.
        include_tags: list ``"variant.tag"`` for every weight set instead of variant names
            (timm's ``include_tags``; implies ``pretrained``). Such a name is accepted by
            :func:`create_model`.

    Example:
        >>> import keras_efficientnet as ke
        >>> ke.list_models("V2")[:3]
        ['EfficientNetV2B0', 'EfficientNetV2B1', 'EfficientNetV2B2']
        >>> ke.list_models("*v2_b0*")
        ['tf_efficientnetv2_b0']
        >>> ke.list_models("tf_efficientnet_b0*", include_tags=True)[:2]
        ['tf_efficientnet_b0.aa_in1k', 'tf_efficientnet_b0.ap_in1k']
    """
    import fnmatch

    from ..pretrained.registry import list_weights

    if pattern is None:
        patterns = None
    elif isinstance(pattern, str):
        patterns = [pattern]
    elif isinstance(pattern, (list, tuple)) and all(isinstance(p, str) for p in pattern):
        patterns = list(pattern)
    else:
        raise ValueError(f"pattern must be None, a string or a list of strings, got {pattern!r}.")

    def matches(name):
        if patterns is None:
            return True
        low = name.lower()
        for p in patterns:
            p = p.lower()
            if any(c in p for c in "*?[") and fnmatch.fnmatchcase(low, p):
                return True
            if not any(c in p for c in "*?[") and p in low:
                return True
        return False

    if include_tags:
        sets = list_weights()
        order = {name: i for i, name in enumerate(VARIANTS)}
        sets.sort(key=lambda w: (order.get(w.variant, len(order)), w.tag))
        return [w.key for w in sets if w.tag != "imagenet" or w.source == "keras.applications"
                if matches(w.key)]
    with_weights = {w.variant for w in list_weights()} if pretrained else None
    return [n for n in VARIANTS if matches(n) and (with_weights is None or n in with_weights)]


_UNSET = object()
_POOLS = ("avg", "max", "")


def _split_name(name):
    """``"variant.tag"`` -> ``(variant, tag)``; a plain variant name -> ``(name, None)``."""
    if not isinstance(name, str):
        raise ValueError(f"The variant must be a name from keras_efficientnet.list_models() "
                         f"(a str such as 'EfficientNetB0' or 'tf_efficientnet_b0.ns_jft_in1k'), "
                         f"got {name!r} ({type(name).__name__}).")
    if name in VARIANTS or "." not in name:
        return name, None
    variant, tag = name.split(".", 1)
    return variant, tag


def _timm_head(kwargs, num_classes, global_pool):
    """Map timm's ``num_classes`` / ``global_pool`` onto include_top / classes / pooling."""
    for theirs, ours in (("num_classes", "classes"), ("num_classes", "include_top"),
                         ("global_pool", "pooling"), ("global_pool", "include_top")):
        given = num_classes if theirs == "num_classes" else global_pool
        if given is not None and ours in kwargs:
            raise ValueError(f"Pass {theirs}= (timm's convention) or {ours}= (keras.applications'), "
                             f"not both: got {theirs}={given!r} and {ours}={kwargs[ours]!r}.")
    if global_pool is not None and global_pool not in _POOLS:
        raise ValueError(f"global_pool must be 'avg', 'max' or '' (no pooling: the feature map), "
                         f"got {global_pool!r}.")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 0):
        raise ValueError(f"num_classes must be an integer >= 0 (0: no classifier), got {num_classes!r}.")
    if num_classes == 0:
        kwargs["include_top"] = False
        kwargs["pooling"] = {"avg": "avg", "max": "max", "": None, None: "avg"}[global_pool]
    elif global_pool == "" or global_pool == "max":
        if num_classes is not None or kwargs.get("include_top", True):
            raise ValueError(f"global_pool={global_pool!r} needs num_classes=0: the classifier of "
                             "these models follows global average pooling. Build "
                             f"num_classes=0, global_pool={global_pool!r} and put your own head on it.")
        kwargs["pooling"] = global_pool or None
    elif global_pool == "avg" and kwargs.get("include_top", True) is False:
        kwargs["pooling"] = "avg"
    if num_classes:
        kwargs["include_top"] = True
        kwargs["classes"] = num_classes


def _rename(kwargs, theirs, ours, value):
    if value is None:
        return
    if ours in kwargs:
        raise ValueError(f"Pass {theirs}= (timm's name) or {ours}= (this package's), not both.")
    kwargs[ours] = value


def _set_attr(model, name, value):
    object.__setattr__(model, name, value)  # plain attribute: not tracked as model state


def create_model(name: str, pretrained=None, *, weights=_UNSET, num_classes: int | None = None,
                 global_pool: str | None = None, features_only: bool = False, out_indices=None,
                 drop_rate: float | None = None, drop_path_rate: float | None = None, **kwargs):
    """Build any variant by name, with keras.applications' or timm's arguments.

    ``create_model("EfficientNetB3", weights=None)`` takes every constructor argument;
    timm's ``create_model`` arguments are mapped onto them:

    * ``pretrained=True`` -> ``weights="imagenet"`` (the variant's default weight set, or the
      ``tag`` of a ``"variant.tag"`` name such as ``"tf_efficientnet_b0.ns_jft_in1k"``);
      ``pretrained=False`` -> ``weights=None``. With ``num_classes`` differing from the
      weight set's classifier, the backbone is pretrained and the new classifier random
      (timm's fine-tuning convention).
    * ``num_classes=0`` -> no classifier: pooled features (``include_top=False``,
      ``pooling="avg"``); ``num_classes=N`` -> a classifier of width N.
    * ``global_pool="avg"``, ``"max"`` or ``""`` (no pooling: the feature map); ``"max"`` and
      ``""`` need ``num_classes=0``.
    * ``features_only=True`` (+ ``out_indices``, default ``(0, 1, 2, 3, 4)``): a model with a
      list of outputs, timm's five levels at reductions 2, 4, 8, 16 and 32 (see
      :func:`~keras_efficientnet.create_feature_extractor`); its ``feature_info`` has
      timm's ``channels()`` and ``reduction()``.
    * ``drop_rate`` -> ``dropout_rate`` (before the classifier); ``drop_path_rate`` ->
      ``drop_connect_rate`` (stochastic depth).

    Every model gets a ``pretrained_cfg`` attribute (a dict: input size, crop, interpolation,
    mean/std, weight source, classes; see
    :func:`~keras_efficientnet.pretrained.registry.pretrained_cfg`).

    Args:
        name: a name from :func:`list_models`, or ``"variant.tag"`` of a weight set.
        pretrained: timm's switch (``True``/``False``); pass it or ``weights``, not both.
        weights: as for the constructors (default ``None``).
        num_classes: timm's classifier width (0: no classifier).
        global_pool: ``"avg"``, ``"max"`` or ``""``.
        features_only: return the multi-scale feature model.
        out_indices: which levels ``features_only`` returns (indices into the five).
        drop_rate: dropout before the classifier.
        drop_path_rate: final stochastic-depth rate.
        **kwargs: any constructor argument.

    Raises:
        ValueError: for unknown names or weight sets, and for arguments given both in timm's
            and keras.applications' spelling (``num_classes`` and ``classes``, ...).

    Example:
        >>> import keras_efficientnet as ke
        >>> ke.create_model("EfficientNetV2B0", include_top=False, pooling="avg").output_shape
        (None, 1280)
        >>> ke.create_model("tf_efficientnet_b0", num_classes=0).output_shape
        (None, 1280)
        >>> fx = ke.create_model("tf_efficientnet_b0", features_only=True, out_indices=(3, 4))
        >>> fx.feature_info.channels(), fx.feature_info.reduction()
        ([112, 320], [16, 32])
    """
    from ..pretrained.registry import get_weights, has_weights, pretrained_cfg
    from .features import create_feature_extractor

    variant, tag = _split_name(name)
    if pretrained is not None and weights is not _UNSET:
        raise ValueError(f"Pass pretrained= (timm's convention) or weights=, not both: got "
                         f"pretrained={pretrained!r} and weights={weights!r}.")
    if pretrained is not None and not isinstance(pretrained, bool):
        raise ValueError(f"pretrained must be True or False, got {pretrained!r}; pass a weight-set "
                         "tag or file as weights=.")
    if weights is _UNSET:
        weights = (tag or "imagenet") if pretrained else None
    elif tag is not None and weights is not None and weights != tag:
        raise ValueError(f"The name {name!r} names weight set {tag!r} but weights={weights!r}.")
    if features_only and (num_classes not in (None, 0) or global_pool not in (None, "")):
        raise ValueError("features_only=True returns feature maps: leave num_classes and "
                         "global_pool unset.")
    if out_indices is not None and not features_only:
        raise ValueError("out_indices selects the levels of features_only=True; pass both.")
    _rename(kwargs, "drop_rate", "dropout_rate", drop_rate)
    _rename(kwargs, "drop_path_rate", "drop_connect_rate", drop_path_rate)

    spec_name = get_spec(variant).name
    registered = isinstance(weights, str) and has_weights(spec_name, weights)
    if features_only:
        for key in ("include_top", "pooling", "classes", "classifier_activation"):
            if key in kwargs:
                raise ValueError(f"features_only=True builds no classifier and no pooling: drop {key}=.")
        from .features import FeatureInfoList, _select, feature_info
        indices = (0, 1, 2, 3, 4) if out_indices is None else out_indices
        chosen = FeatureInfoList(_select(feature_info(variant), None, indices))
        fx = create_feature_extractor(variant, out_indices=indices, weights=weights,
                                      input_shape=kwargs.pop("input_shape", (None, None, 3)),
                                      **kwargs)
        model = keras.Model(fx.inputs, [fx.output[f.name] for f in chosen], name=fx.name)
        _set_attr(model, "feature_info", chosen)
    else:
        _timm_head(kwargs, num_classes, global_pool)
        include_top = kwargs.get("include_top", True)
        weight_set = get_weights(spec_name, weights) if registered else None
        if weight_set is not None and include_top and "classes" not in kwargs:
            kwargs["classes"] = weight_set.classes  # timm: the weight set's classifier
        if weight_set is not None and include_top and kwargs["classes"] != weight_set.classes \
                and num_classes is not None:
            # timm's fine-tuning convention: pretrained backbone, new random classifier
            spec = get_spec(variant)
            spec = spec.replace(preprocessing=weight_set.preprocessing)  # as the weights expect
            model = build_efficientnet(spec, weights=None, **kwargs)
            backbone_kwargs = {k: v for k, v in kwargs.items()
                               if k not in ("include_top", "classes", "classifier_activation",
                                            "pooling", "name", "input_shape", "input_tensor")}
            backbone = build_efficientnet(variant, weights=weights, include_top=False,
                                          input_shape=model.input_shape[1:], **backbone_kwargs)
            # the backbone's layers are the model's first layers, in order (automatic names
            # such as the input normalisation's differ between two builds)
            for source, target in zip(backbone.layers, model.layers):
                if type(source) is not type(target):
                    raise AssertionError(f"backbone layer {source.name} vs {target.name}")
                if source.weights:
                    target.set_weights(source.get_weights())
            set_preprocessing(model, weight_set.preprocessing)  # finalises the input statistics
        else:
            model = build_efficientnet(variant, weights=weights, **kwargs)
    if weights is None or registered:
        cfg = pretrained_cfg(spec_name, weights if registered else (tag or "imagenet"))
    else:  # a weights file: the spec's input conventions, the file as source
        cfg = pretrained_cfg(spec_name, None)
        cfg["source"] = os.fspath(weights)
    _set_attr(model, "pretrained_cfg", cfg)
    return model
