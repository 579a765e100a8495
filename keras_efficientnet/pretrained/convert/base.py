"""What all converters share: the result type and format detection by file content."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np


@dataclasses.dataclass
class Converted:
    """Arrays under our flat names, plus what the source held that has no model weight.

    Attributes:
        arrays: ``{flat_name: array}`` in Keras layout.
        consumed: ``{source_name: reason}`` for source entries deliberately used without a
            target weight (preprocessing statistics reproduced by the graph, ...).
        source: a short description of the file, for error messages.
        format: the detected format name.
        head_names: flat names of the classifier weights (droppable for include_top=False).
    """

    arrays: dict[str, np.ndarray]
    consumed: dict[str, str]
    source: str
    format: str
    head_names: tuple[str, ...] = ("predictions/kernel", "predictions/bias")


def show_names(items, limit: int = 8) -> str:
    """A sorted, comma-separated list of at most ``limit`` names, with the total when cut:
    how every converter lists missing, left-over or mis-shaped tensors in its errors.

    Example:
        >>> from keras_efficientnet.pretrained.convert.base import show_names
        >>> show_names(["b", "a", "c"], limit=2)
        'a, b ... (3 in all)'
    """
    items = sorted(items)
    more = f" ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# name -> (sniff(path) -> bool, read(path, spec) -> Converted)
_FORMATS: dict[str, tuple[Callable, Callable]] = {}
# name -> infer(path) -> dict (at least {"variant": str, "classes": int | None}); for from_checkpoint
_INFER: dict[str, Callable] = {}


def register_format(name: str, sniff: Callable, read: Callable, infer: Callable | None = None) -> None:
    """Register a checkpoint format: ``sniff(path)`` says whether a file is in it,
    ``read(path, spec)`` converts it, and the optional ``infer(path)`` names the variant and
    class count the file holds. Later registrations are tried first."""
    _FORMATS.pop(name, None)
    _FORMATS[name] = (sniff, read)
    if infer is not None:
        _INFER[name] = infer
    # move to the front so that specific formats registered later win over generic ones
    items = list(_FORMATS.items())
    _FORMATS.clear()
    _FORMATS.update([items[-1]] + items[:-1])


def _keras_native_hint(path: str) -> str | None:
    """What to do with a Keras-native file no converter reads (None for other files)."""
    if path.lower().endswith(".keras"):
        return (f"{path!r} is a Keras model file (.keras): load it with "
                "keras.saving.load_model(path), or pass it as weights= to a model of the same "
                "architecture.")
    try:
        import h5py

        if not h5py.is_hdf5(path):
            return None
        with h5py.File(path, "r") as f:
            native = ("layers" in f or "vars" in f) and "layer_names" not in f.attrs
    except OSError:
        return None
    if not native:
        return None
    return (f"{path!r} is a Keras weights file written by model.save_weights; it is valid, but it "
            "does not record which variant it holds. Build the model and load it: "
            "create_model(name, weights=path) (or model.load_weights(path)); save with "
            "keras_efficientnet.save_weights(model, path, variant=name) to make it self-describing.")


def detect_format(path: str) -> str:
    """The registered format of the file at ``path``.

    Raises:
        ValueError: when the path is a folder, the file is missing, empty, a Keras-native file
            (which no converter reads: the message says how to load it), or in no known format.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.pretrained.convert.base import detect_format
        >>> detect_format(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        ValueError: Weights path ... is a folder, not a weights file...
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        inside = sorted(os.listdir(path))
        hint = ""
        if "saved_model.pb" in inside:
            hint = " (it is a TensorFlow SavedModel, which holds no loadable weights file)"
        elif any(f.endswith((".h5", ".pth", ".pt", ".bin", ".safetensors")) for f in inside):
            files = [f for f in inside if f.endswith((".h5", ".pth", ".pt", ".bin", ".safetensors"))]
            hint = f" (it holds {', '.join(files[:4])}: pass one of those files)"
        raise ValueError(f"Weights path {path!r} is a folder, not a weights file{hint}. Pass the "
                         "path of a file, a registered weight set name such as 'imagenet', or None.")
    if not os.path.isfile(path):
        raise ValueError(f"Weights file {path!r} does not exist. Pass weights=None, a registered "
                         "weight set name such as 'imagenet', or the path of a weights file.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"Weights file {path!r} is empty.")
    errors = []
    for name, (sniff, _) in _FORMATS.items():
        try:
            if sniff(path):
                return name
        except Exception as err:  # a sniffer that cannot read the file just says no
            errors.append(f"{name}: {type(err).__name__}: {err}")
    hint = _keras_native_hint(path)
    if hint:
        raise ValueError(hint)
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise ValueError(f"{path!r} is not a weights file in any supported format "
                     f"({', '.join(sorted(_FORMATS))}); it may be truncated or corrupt{detail}.")


def infer_checkpoint(path: str, fmt: str | None = None) -> dict:
    """What the file holds: ``{"variant": name, "classes": n or None, ...}``.

    Raises:
        ValueError: when the format cannot say which variant a file is.
    """
    fmt = fmt or detect_format(path)
    if fmt not in _INFER:
        raise ValueError(f"{path!r} is a {fmt} file, but that format does not record its variant; "
                         "build the model yourself and pass weights=path.")
    return _INFER[fmt](path)


def read_checkpoint(path: str, spec, fmt: str | None = None) -> Converted:
    """Convert the file at ``path`` for a model of ``spec``."""
    fmt = fmt or detect_format(path)
    return _FORMATS[fmt][1](path, spec)
