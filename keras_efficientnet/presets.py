"""Preset folders: a model with everything needed to use it, in keras-hub's layout.

A preset is a folder that holds, as keras-hub's presets do:

* ``config.json``: the model's Keras config (what ``model.save`` writes into a ``.keras``
  archive under the same name), so any model travels: a fine-tuned classifier with a new
  head, a pruned or BatchNorm-fused model, a U-Net or an EfficientDet;
* ``model.weights.h5``: its weights, in Keras' own format (``model.save_weights``);
* ``metadata.json``: keras-hub's keys (``keras_version``, ``parameter_count``,
  ``date_saved``, ``tasks``) and ours under ``"keras_efficientnet"``: the task, the class
  names, the variant, the input size, crop and interpolation it was evaluated with, the
  normalisation it applies in the graph and where its weights came from.

:func:`save_preset` writes one (``keras-efficientnet train`` writes ``preset/`` beside
``model.keras``) and :func:`from_preset` reads it back on any backend. :func:`from_preset`
also reads a preset that keras-hub 0.32 saved for its ``EfficientNetBackbone`` or
``EfficientNetImageClassifier`` (``task.save_to_preset(dir)``): the variant is recognised
from the backbone config, the weights are read from keras-hub's ``model.weights.h5`` and
``task.weights.h5`` without keras-hub installed, and the normalisation from its
``image_converter.json``.

Where the formats differ: keras-hub splits a task into a backbone (``config.json``,
``model.weights.h5``) and a head (``task.json``, ``task.weights.h5``) and keeps the
preprocessing outside the model (``preprocessor.json``); our preset is one functional model
whose graph normalises 0-255 pixels itself (as keras.applications'), so it has no
``task.json`` or ``preprocessor.json``, and keras-hub cannot load our presets.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import shutil
import tempfile

log = logging.getLogger("keras_efficientnet")

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
METADATA = "metadata.json"
#: keras-hub's head files (read only).
TASK_CONFIG, TASK_WEIGHTS, IMAGE_CONVERTER = "task.json", "task.weights.h5", "image_converter.json"


def _json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path!r} is missing: a preset folder holds {CONFIG}, {WEIGHTS} and "
                         f"{METADATA} (written by save_preset or keras-hub's save_to_preset)."
                         ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path!r} is not valid JSON ({err}); the preset is damaged.") from None


def is_preset(path) -> bool:
    """Whether ``path`` is a folder holding a preset (``config.json`` and ``model.weights.h5``).

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.presets import is_preset
        >>> is_preset(tempfile.mkdtemp())
        False
    """
    path = os.fspath(path)
    return (os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG))
            and os.path.isfile(os.path.join(path, WEIGHTS)))


def model_info(model) -> dict:
    """What :func:`save_preset` records about ``model`` besides its graph and weights: task,
    variant, class names, input size, crop, interpolation, in-graph normalisation, weight
    source. Read from the attributes :func:`from_preset` and
    :func:`~keras_efficientnet.create_model` set (``preset_info``, ``pretrained_cfg``); a
    plain Keras model gets its input size only.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.presets import model_info
        >>> info = model_info(ke.create_model("EfficientNetB0", weights=None, input_shape=(64, 64, 3)))
        >>> info["variant"], info["image_size"], info["preprocessing"]
        ('EfficientNetB0', [64, 64], 'imagenet')
    """
    info = dict(getattr(model, "preset_info", None) or {})
    cfg = getattr(model, "pretrained_cfg", None) or {}
    for key, cfg_key in (("variant", "variant"), ("crop_pct", "crop_pct"),
                         ("interpolation", "interpolation"), ("preprocessing", "preprocessing"),
                         ("mean", "mean"), ("std", "std"), ("source", "source"), ("tag", "tag")):
        if key not in info and cfg.get(cfg_key) is not None:
            value = cfg[cfg_key]
            info[key] = list(value) if isinstance(value, tuple) else value
    shape = tuple(model.input_shape[1:3]) if len(model.input_shape) == 4 else ()
    if shape and all(d is not None for d in shape):
        info["image_size"] = [int(d) for d in shape]
    info.setdefault("task", "classification" if _has_classifier(model) else None)
    return info


def _has_classifier(model) -> bool:
    """Whether ``model`` ends in a classifier: one flat output whose last weighted layer is a
    ``Dense`` (after it only activations and dropout); a pooled feature extractor is not."""
    import keras

    if isinstance(model.output_shape, list) or len(model.output_shape) != 2:
        return False
    passive = (keras.layers.Activation, keras.layers.Dropout, keras.layers.Softmax)
    for layer in reversed(getattr(model, "layers", [])):
        if isinstance(layer, passive):
            continue
        return isinstance(layer, keras.layers.Dense)
    return False


def save_preset(model, preset_dir, class_names=None, task=None, overwrite: bool = False) -> str:
    """Write ``model`` as a preset folder (``config.json``, ``model.weights.h5``,
    ``metadata.json``); :func:`from_preset` reads it on any backend.

    The folder is written beside ``preset_dir`` and moved there when complete: a failed save
    leaves nothing behind, and an existing preset is replaced only with ``overwrite=True``.
    The name follows keras-hub's layout rather than its method name (``save_to_preset`` is a
    method of keras-hub's models; ours are plain ``keras.Model`` objects, so this is a
    function, like ``keras.saving.save_model``).

    Args:
        model: any Keras model (built by this package or not).
        preset_dir: the folder to write; it must not exist, or be empty, unless ``overwrite``.
        class_names: the names of the classifier's outputs, in order (default: the ones the
            model was loaded with, if any). Their number must equal the output width.
        task: ``"classification"``, ``"segmentation"``, ``"detection"`` or None (default:
            recorded, else ``"classification"`` for a model with one flat output).
        overwrite: replace an existing preset.

    Returns:
        ``preset_dir`` as an absolute path.

    Raises:
        ValueError: ``class_names`` that do not fit the output, or an unknown ``task``.
        FileExistsError: ``preset_dir`` holds files and ``overwrite`` is False.
        NotADirectoryError: ``preset_dir`` is a file.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> import keras_efficientnet as ke
        >>> model = ke.create_model("EfficientNetB0", weights=None, input_shape=(64, 64, 3),
        ...                         classes=2)
        >>> path = ke.save_preset(model, os.path.join(tempfile.mkdtemp(), "cats_dogs"),
        ...                       class_names=["cat", "dog"])
        >>> sorted(os.listdir(path))
        ['config.json', 'metadata.json', 'model.weights.h5']
        >>> again = ke.from_preset(path)
        >>> again.class_names
        ('cat', 'dog')
        >>> x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
        >>> bool(np.allclose(model.predict(x, verbose=0), again.predict(x, verbose=0), atol=1e-6))
        True
    """
    import keras

    from . import __version__
    from .validation import place_output, prepare_output

    if os.path.isfile(os.fspath(preset_dir)):
        raise NotADirectoryError(f"Preset folder {os.fspath(preset_dir)!r} is a file; choose "
                                 "another path (nothing was written).")
    # the folder itself is the target: a non-empty one is refused unless overwrite=True
    path = prepare_output(preset_dir, overwrite=overwrite, what="preset")
    info = model_info(model)
    if task is not None:
        if task not in ("classification", "segmentation", "detection"):
            raise ValueError(f"task must be 'classification', 'segmentation' or 'detection', "
                             f"got {task!r}.")
        info["task"] = task
    if class_names is None:
        class_names = getattr(model, "class_names", None) or info.get("class_names")
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        width = model.output_shape[-1] if not isinstance(model.output_shape, list) else None
        if info.get("task") == "classification" and width is not None and len(class_names) != width:
            raise ValueError(f"class_names has {len(class_names)} names but the model has "
                             f"{width} outputs; give one name per output, in order.")
        info["class_names"] = class_names
    metadata = {
        "keras_version": keras.__version__,
        "keras_efficientnet_version": __version__,
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "tasks": [info["task"]] if info.get("task") else [],
        "keras_efficientnet": info,
    }
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.partial-", dir=parent)
    try:
        with open(os.path.join(tmp, CONFIG), "w", encoding="utf-8") as f:
            json.dump(keras.saving.serialize_keras_object(model), f, indent=1)
        model.save_weights(os.path.join(tmp, WEIGHTS))
        with open(os.path.join(tmp, METADATA), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=1)
        place_output(tmp, path, overwrite=overwrite, what="preset")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_preset_info(preset_dir) -> dict:
    """The ``keras_efficientnet`` part of a preset's ``metadata.json`` (``{}`` for a keras-hub
    preset or a folder without it).

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.presets import read_preset_info
        >>> read_preset_info(tempfile.mkdtemp())
        {}
    """
    path = os.path.join(os.fspath(preset_dir), METADATA)
    if not os.path.isfile(path):
        return {}
    meta = _json(path)
    info = meta.get("keras_efficientnet") if isinstance(meta, dict) else None
    return dict(info) if isinstance(info, dict) else {}


def from_preset(preset, input_shape=None, **kwargs):
    """Load a preset folder as a ``keras.Model`` on the current backend.

    Reads the folders :func:`save_preset` (and ``keras-efficientnet train``) write, and those
    keras-hub 0.32 writes for ``EfficientNetBackbone`` / ``EfficientNetImageClassifier``
    (B0-B7 and Lite0; keras-hub's ES/EM/EL and V2-rw networks are not timm's, so those are
    refused with the reason). A registered variant
    name is accepted too: ``from_preset("EfficientNetB0")`` is ``create_model(name,
    pretrained=True, **kwargs)``.

    The model gets ``class_names`` (a tuple, or None), ``preset_info`` (the recorded task,
    input size, crop, interpolation, normalisation, source) and, for keras-hub presets,
    ``pretrained_cfg`` attributes.

    Args:
        preset: a preset folder, or a variant name.
        input_shape: build the model for another input size (our presets: the config's input
            layer is changed; the weights do not depend on it).
        **kwargs: for a keras-hub preset, :func:`~keras_efficientnet.create_model` arguments
            (``classifier_activation``, ``include_top``, ...); for a variant name, any.

    Raises:
        ValueError: a folder that is not a preset, a damaged file, a keras-hub backbone config
            that matches none of our variants, or weights that do not fit.

    Example:
        >>> import os, tempfile
        >>> import keras_efficientnet as ke
        >>> path = ke.save_preset(ke.create_model("EfficientNetLite0", weights=None, classes=3),
        ...                       os.path.join(tempfile.mkdtemp(), "p"), class_names="abc")
        >>> model = ke.from_preset(path, input_shape=(96, 96, 3))
        >>> model.input_shape, model.class_names
        ((None, 96, 96, 3), ('a', 'b', 'c'))
    """
    preset = os.fspath(preset)
    if not os.path.exists(preset):
        from .specs import VARIANTS

        if preset in VARIANTS or "/" not in preset and os.sep not in preset:
            from .models.constructors import create_model

            if preset not in VARIANTS:
                from .specs import get_spec

                get_spec(preset)  # "Unknown EfficientNet variant ... Did you mean ..."
            if input_shape is not None:
                kwargs["input_shape"] = input_shape
            kwargs.setdefault("pretrained", True)
            return create_model(preset, **kwargs)
        raise ValueError(f"Preset {preset!r}: no such folder.")
    if not os.path.isdir(preset):
        raise ValueError(f"Preset {preset!r} is a file; a preset is a folder with {CONFIG} and "
                         f"{WEIGHTS}. Load a .keras file with keras.saving.load_model or "
                         "ke.from_checkpoint.")
    config = _json(os.path.join(preset, CONFIG))
    if not os.path.isfile(os.path.join(preset, WEIGHTS)):
        raise ValueError(f"Preset {preset!r} has no {WEIGHTS}.")
    if isinstance(config, dict) and str(config.get("module", "")).startswith("keras_hub"):
        return _from_keras_hub(preset, config, input_shape, **kwargs)
    if kwargs:
        raise ValueError(f"from_preset of our own preset takes only input_shape; got "
                         f"{sorted(kwargs)} (the model is rebuilt exactly as saved).")
    return _from_own(preset, config, input_shape)


def is_keras_file(path) -> bool:
    """Whether ``path`` is a ``.keras`` archive (a zip file with a ``config.json``).

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.presets import is_keras_file
        >>> is_keras_file(os.path.join(tempfile.mkdtemp(), "missing.keras"))
        False
    """
    import zipfile

    path = os.fspath(path)
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return CONFIG in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def load_saved(path, input_shape=None, **kwargs):
    """A model someone saved, with what it knows about itself: a preset folder (ours or
    keras-hub's, through :func:`from_preset`) or a ``.keras`` file (``model.save``, or the
    ``model.keras`` of ``keras-efficientnet train``, whose class names, image size and
    variant it carries). The model gets ``class_names`` and ``preset_info`` attributes.

    Args:
        path: a preset folder or a ``.keras`` file.
        input_shape: rebuild the model for another input size (the weights do not depend on
            it); a functional model with one input only.
        **kwargs: keras-hub presets only: :func:`~keras_efficientnet.create_model` arguments.

    Raises:
        ValueError: a path that is neither, a damaged file, or arguments it cannot take.

    Example:
        >>> import os, tempfile
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.presets import load_saved
        >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
        >>> ke.create_model("EfficientNetB0", weights=None, input_shape=(64, 64, 3), classes=2).save(path)
        >>> model = load_saved(path, input_shape=(96, 96, 3))
        >>> model.input_shape, model.preset_info["task"]
        ((None, 96, 96, 3), 'classification')
    """
    import keras

    import keras_efficientnet

    path = os.fspath(path)
    if os.path.isdir(path):
        return from_preset(path, input_shape=input_shape, **kwargs)
    if not os.path.exists(path):
        raise ValueError(f"{path!r}: no such file or folder.")
    if not is_keras_file(path):
        raise ValueError(f"{path!r} is not a .keras file (a zip archive with config.json, as "
                         "model.save writes) nor a preset folder; truncated, or another format?")
    if kwargs:
        raise ValueError(f"A .keras file is loaded as saved; only input_shape= may be given, "
                         f"got {sorted(kwargs)}.")
    from .saving import read_model_info

    keras_efficientnet._load()  # registers our layers, schedules and losses
    try:
        model = keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, EOFError, TypeError, KeyError) as err:
        raise ValueError(f"{path!r} cannot be loaded as a Keras model (damaged, or saved by "
                         f"code this process lacks?): {' '.join(str(err).split())[:300]}"
                         ) from None
    info = read_model_info(path)
    if info.get("model") and not info.get("variant"):
        info["variant"] = info["model"]
    if input_shape is not None:
        model = rebuild_at(model, input_shape)
    found = model_info(model)
    found.update(info)
    if model.input_shape[1:3] and None not in model.input_shape[1:3]:
        found["image_size"] = [int(d) for d in model.input_shape[1:3]]
    found.setdefault("source", os.path.abspath(path))
    _attach(model, found)
    return model


def _from_own(preset, config, input_shape):
    import keras

    import keras_efficientnet

    keras_efficientnet._load()  # registers our layers, schedules and losses

    info = read_preset_info(preset)
    if input_shape is not None:
        config = _with_input_shape(config, input_shape)
    try:
        model = keras.saving.deserialize_keras_object(config)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"Preset {preset!r}: {CONFIG} does not describe a Keras model this "
                         f"installation can build: {' '.join(str(err).split())[:300]}") from None
    try:
        model.load_weights(os.path.join(preset, WEIGHTS))
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"Preset {preset!r}: {WEIGHTS} does not fit {CONFIG} (damaged, or "
                         f"from another model): {' '.join(str(err).split())[:300]}") from None
    if input_shape is not None:
        info["image_size"] = [int(d) for d in model.input_shape[1:3] if d is not None] or None
    _attach(model, info)
    return model


def rebuild_at(model, input_shape):
    """``model`` rebuilt from its config for ``input_shape``, with the same weights (they do
    not depend on the input size); ``model`` itself when it already takes that shape.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.presets import rebuild_at
        >>> model = ke.create_model("EfficientNetB0", weights=None, input_shape=(64, 64, 3))
        >>> rebuild_at(model, (96, 96, 3)).input_shape
        (None, 96, 96, 3)
    """
    import keras

    if tuple(model.input_shape[1:]) == tuple(input_shape):
        return model
    config = _with_input_shape(keras.saving.serialize_keras_object(model), input_shape)
    rebuilt = keras.saving.deserialize_keras_object(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _with_input_shape(config, input_shape):
    config = json.loads(json.dumps(config))
    layers = config.get("config", {}).get("layers", [])
    inputs = [layer for layer in layers if layer.get("class_name") == "InputLayer"]
    if len(inputs) != 1:
        raise ValueError("input_shape= can only be changed for a functional model with one "
                         f"input; this preset has {len(inputs)}.")
    shape = [None if d is None else int(d) for d in input_shape]
    inputs[0]["config"]["batch_shape"] = [None] + shape
    return config


def _attach(model, info):
    names = info.get("class_names")
    object.__setattr__(model, "class_names", tuple(names) if names else None)
    object.__setattr__(model, "preset_info", info)


# keras-hub presets -------------------------------------------------------------------------

#: keras-hub EfficientNetBackbone block types per stage -> timm variant, keyed on
#: (block types, activation, width coefficient, depth coefficients).
_V1 = ("v1",) * 7
_EDGE = ("fused",) * 3 + ("unfused",) * 3
_RW_T = ("cba",) + ("fused",) * 2 + ("unfused",) * 3
_COMPOUND = {(1.0, 1.0): "b0", (1.0, 1.1): "b1", (1.1, 1.2): "b2", (1.2, 1.4): "b3",
             (1.4, 1.8): "b4", (1.6, 2.2): "b5", (1.8, 2.6): "b6", (2.0, 3.1): "b7"}


#: keras-hub presets whose network is timm's (checked against timm on the same weights); the
#: ES/EM/EL and V2-rw presets are recognised but refused (see _from_keras_hub).
KERAS_HUB_READ = frozenset({*(f"efficientnet_b{i}" for i in range(8)), "efficientnet_lite0"})


def keras_hub_variant(backbone_config: dict) -> str:
    """Our variant name for a keras-hub ``EfficientNetBackbone`` config (its timm model).

    Raises:
        ValueError: a config that matches none of the timm variants keras-hub converts.

    Example:
        >>> from keras_efficientnet.presets import keras_hub_variant
        >>> keras_hub_variant({"stackwise_block_types": ["v1"] * 7, "activation": "swish",
        ...                    "stackwise_width_coefficients": [1.2] * 7,
        ...                    "stackwise_depth_coefficients": [1.4] * 7,
        ...                    "stackwise_squeeze_and_excite_ratios": [0.25] * 7})
        'efficientnet_b3'
    """
    c = backbone_config
    types = tuple(c.get("stackwise_block_types") or ())
    act = c.get("activation")
    widths = c.get("stackwise_width_coefficients") or [1.0] * len(types)
    depths = c.get("stackwise_depth_coefficients") or [1.0] * len(types)
    se = tuple(float(r or 0) for r in (c.get("stackwise_squeeze_and_excite_ratios") or ()))
    found = None
    if len(set(widths)) == 1:
        w, ds = round(float(widths[0]), 3), tuple(round(float(d), 3) for d in depths)
        d = ds[0] if len(set(ds)) == 1 else None
        if types == _V1 and act in ("swish", "silu") and set(se) == {0.25} and (w, d) in _COMPOUND:
            found = f"efficientnet_{_COMPOUND[(w, d)]}"
        elif types == _V1 and act == "relu6" and set(se) == {0.0} and (w, d) == (1.0, 1.0):
            found = "efficientnet_lite0"
        elif types == _EDGE and act == "relu" and set(se) == {0.0}:
            found = {(1.0, 1.0): "efficientnet_es", (1.0, 1.1): "efficientnet_em",
                     (1.2, 1.4): "efficientnet_el"}.get((w, d))
        elif types == _EDGE and act in ("swish", "silu"):
            found = {(1.0, 1.0): "efficientnetv2_rw_s",
                     (1.2, None): "efficientnetv2_rw_m" if ds == (1.2,) * 4 + (1.6,) * 2 else None,
                     }.get((w, d))
        elif types == _RW_T and act in ("swish", "silu") and (w, d) == (0.8, 0.9):
            found = "efficientnetv2_rw_t"
    if found is None:
        raise ValueError(
            "This keras-hub EfficientNetBackbone config matches none of the timm models keras-hub "
            f"converts (block types {list(types)}, activation {act!r}, width {widths[:1]}, depth "
            f"{depths}); from_preset reads keras-hub's EfficientNet B0-B7 and Lite0 presets.")
    return found


def _split_key(key):
    base, _, index = key.rpartition("_")
    return (base, int(index)) if base and index.isdigit() else (key, 0)


def _read_vars(group):
    return [group["vars"][str(i)][()] for i in range(len(group["vars"]))] if "vars" in group else []


def _keras_hub_arrays(path):
    """The weight arrays of a keras-hub ``*.weights.h5`` file: a layer kind (``conv2d``,
    ``depthwise_conv2d``, ``batch_normalization``, ``dense``) mapped to its layers' variable
    lists in graph order. keras-hub builds B0-B7 and Lite0 (the presets read) from plain
    layers; a layer whose weights sit in sub-layers (the composite blocks of the refused
    EdgeTPU and V2-rw presets) is refused."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path!r} is not a readable Keras weights file ({err}).") from None
    with handle:
        if "layers" not in handle:
            raise ValueError(f"{path!r} holds no layers; it is not a keras-hub weights file.")
        top = {}
        for key in handle["layers"]:
            kind, index = _split_key(key)
            group = handle["layers"][key]
            nested = [part for part in group if part != "vars" and isinstance(group[part], h5py.Group)
                      and _read_vars(group[part])]
            if nested:
                raise ValueError(f"{path!r}: layer {key} keeps its weights in sub-layers "
                                 f"({', '.join(nested)}); from_preset reads keras-hub's "
                                 "B0-B7 and Lite0 presets, built from plain layers.")
            values = _read_vars(group)
            if values:
                top.setdefault(kind, []).append((index, values))
    return {kind: [v for _, v in sorted(items, key=lambda t: t[0])] for kind, items in top.items()}


def _kind(layer):
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return "depthwise_conv2d"
    if isinstance(layer, keras.layers.Conv2D):
        return "conv2d"
    if isinstance(layer, keras.layers.BatchNormalization):
        return "batch_normalization"
    if isinstance(layer, keras.layers.Dense):
        return "dense"
    return None


def _load_keras_hub_weights(model, preset, has_head):
    """Set ``model``'s weights from keras-hub's files: layer by layer in graph order, per kind;
    every shape is checked and every array must be used."""
    top = _keras_hub_arrays(os.path.join(preset, WEIGHTS))
    if has_head:
        top["dense"] = _keras_hub_arrays(os.path.join(preset, TASK_WEIGHTS)).get("dense", [])
    queues = {kind: list(values) for kind, values in top.items()}
    assigned = 0
    for layer in model.layers:
        kind = _kind(layer)
        if not layer.weights or kind is None:
            continue
        name = layer.name
        if not queues.get(kind):
            raise ValueError(f"{preset!r}: keras-hub's weights have no {kind} left for "
                             f"{name}; the preset does not fit the recognised variant.")
        values = queues[kind].pop(0)
        expected = [tuple(w.shape) for w in layer.weights]
        if [tuple(v.shape) for v in values] != expected:
            raise ValueError(f"{preset!r}: keras-hub weights {[v.shape for v in values]} do not "
                             f"fit {name} {expected}; the preset does not fit the recognised "
                             "variant.")
        layer.set_weights(values)
        assigned += 1
    left = sum(len(v) for v in queues.values())
    if left:
        raise ValueError(f"{preset!r}: {left} keras-hub weight groups were not used; the preset "
                         "does not fit the recognised variant.")
    return assigned


def _converter_normalisation(preset):
    """``(mean, std, image_size, interpolation)`` on the 0-1 scale from keras-hub's image
    converter (None when the preset has none)."""
    path = os.path.join(preset, IMAGE_CONVERTER)
    if not os.path.isfile(path):
        return None
    cfg = _json(path).get("config", {})
    scale, offset = cfg.get("scale"), cfg.get("offset")
    if scale is None:
        scale = 1.0
    if offset is None:
        offset = 0.0
    scale = [float(s) for s in (scale if isinstance(scale, list) else [scale] * 3)]
    offset = [float(o) for o in (offset if isinstance(offset, list) else [offset] * 3)]
    std = [1.0 / (255.0 * s) for s in scale]
    mean = [-o * sd for o, sd in zip(offset, std)]
    size = cfg.get("image_size")
    return mean, std, (tuple(int(d) for d in size) if size else None), cfg.get("interpolation")


def _from_keras_hub(preset, config, input_shape, **kwargs):
    import keras

    from .models.constructors import create_model
    from .specs import PREPROCESSINGS, get_spec

    if config.get("class_name") != "EfficientNetBackbone":
        raise ValueError(f"Preset {preset!r} is a keras-hub {config.get('class_name')}; "
                         "from_preset reads keras-hub's EfficientNetBackbone presets only.")
    backbone = config.get("config", {})
    variant = keras_hub_variant(backbone)
    if variant not in KERAS_HUB_READ:
        raise ValueError(
            f"Preset {preset!r} is keras-hub's {variant}. keras-hub 0.32 builds that network "
            "differently from timm's (its outputs differ from timm's on the same weights by as "
            "much as the outputs themselves), and ours is timm's, so its weights would give a "
            "different model. from_preset reads keras-hub's "
            f"{', '.join(sorted(KERAS_HUB_READ))} presets; for {variant}, load timm's weights: "
            f"ke.create_model({variant!r}, pretrained=True).")
    spec = get_spec(variant)
    head = None
    if os.path.isfile(os.path.join(preset, TASK_CONFIG)):
        task = _json(os.path.join(preset, TASK_CONFIG))
        if task.get("class_name") != "EfficientNetImageClassifier":
            raise ValueError(f"Preset {preset!r}: task {task.get('class_name')!r} is not read; "
                             "only EfficientNetImageClassifier heads are.")
        head = task.get("config", {})
        if not os.path.isfile(os.path.join(preset, TASK_WEIGHTS)):
            raise ValueError(f"Preset {preset!r} has {TASK_CONFIG} but no {TASK_WEIGHTS}.")
    replace = {}
    for ours, theirs in (("bn_epsilon", "batch_norm_epsilon"), ("bn_momentum", "batch_norm_momentum")):
        if backbone.get(theirs) is not None and not math.isclose(
                float(backbone[theirs]), float(getattr(spec, ours)), rel_tol=1e-6):
            replace[ours] = float(backbone[theirs])
    norm = _converter_normalisation(preset)
    wrap = None
    if norm is not None:
        mean, std = norm[0], norm[1]
        matched = [name for name, p in PREPROCESSINGS.items()
                   if all(math.isclose(m, pm / 255.0, abs_tol=1e-5) for m, pm in zip(mean, p.mean))
                   and all(math.isclose(s, ps / 255.0, abs_tol=1e-5) for s, ps in zip(std, p.std))]
        if matched:
            if spec.preprocessing not in matched:
                replace["preprocessing"] = matched[0]
        else:
            wrap = (mean, std)
    if replace:
        spec = spec.replace(**replace)
    size = norm[2] if norm is not None and norm[2] else (spec.resolution, spec.resolution)
    if input_shape is None:
        input_shape = (*size, 3)
    include_top = kwargs.pop("include_top", head is not None)
    if include_top and head is None:
        raise ValueError(f"Preset {preset!r} is a backbone without a classifier (no {TASK_CONFIG}); "
                         "pass include_top=False.")
    args = dict(weights=None, input_shape=tuple(input_shape), include_top=include_top)
    if include_top:
        if head.get("pooling", "avg") != "avg":
            raise ValueError(f"Preset {preset!r}: pooling {head.get('pooling')!r} is not read; our "
                             "classifier pools by average, as keras-hub's default.")
        args.update(classes=int(head["num_classes"]),
                    classifier_activation=head.get("activation"),
                    dropout_rate=float(head.get("dropout") or 0.0))
    args.update(kwargs)
    if wrap is not None:
        args["include_preprocessing"] = False
    if replace:  # keras-hub's BatchNorm constants or normalisation differ from the variant's
        from .models.factory import build_efficientnet
        from .pretrained.registry import pretrained_cfg

        model = build_efficientnet(spec, **args)
        object.__setattr__(model, "pretrained_cfg", pretrained_cfg(variant, None))
    else:
        model = create_model(variant, **args)
    _load_keras_hub_weights(model, preset, include_top)
    if wrap is None:
        from .models.factory import set_preprocessing

        set_preprocessing(model, spec.preprocessing)
    if wrap is not None:  # a normalisation no variant has: in front of the model, on 0-255
        inputs = keras.Input(model.input_shape[1:])
        scale = [1.0 / (255.0 * s) for s in wrap[1]]
        offset = [-m / s for m, s in zip(*wrap)]
        x = keras.layers.Rescaling(scale=scale, offset=offset, name="keras_hub_rescaling")(inputs)
        model = keras.Model(inputs, model(x), name=model.name)
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg.update(source=f"keras-hub preset {os.path.abspath(preset)}", variant=variant,
               input_size=(3, *size))
    if norm is not None:
        cfg.update(mean=tuple(norm[0]), std=tuple(norm[1]),
                   interpolation=norm[3] or cfg.get("interpolation"))
    object.__setattr__(model, "pretrained_cfg", cfg)
    info = {"task": "classification" if include_top else None, "variant": variant,
            "image_size": list(size), "source": cfg["source"],
            "interpolation": cfg.get("interpolation"), "format": "keras-hub"}
    _attach(model, info)
    log.info("from_preset: %s is a keras-hub %s preset (%s).", preset, variant,
             "with its classifier" if include_top else "backbone")
    return model
