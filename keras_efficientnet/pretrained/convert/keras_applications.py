"""keras.applications' legacy ``.h5`` weights (the files it publishes) -> our flat names.

A legacy file has an attribute ``layer_names`` and, per layer group, ``weight_names`` such as
``block2a_dwconv/depthwise_kernel:0``. Our flat names are the same strings without ``:0``,
except for depthwise kernels, which Keras 3 names ``kernel`` (tf.keras 2, which wrote the
published files, said ``depthwise_kernel``), and V2's depthwise layer, which keras.applications
names ``dwconv2``. The V1 files also
carry the statistics of a ``normalization`` layer; the in-graph preprocessing reproduces them,
so they are consumed on purpose.
"""

from __future__ import annotations

import h5py
import numpy as np

from .base import Converted, register_format

#: keras.applications name fragment -> ours.
RENAMES = {"_dwconv2/": "_dwconv/", "/depthwise_kernel": "/kernel"}
#: layers of the preprocessing stack, reproduced by ``Normalize``.
PREPROCESSING_LAYERS = ("normalization", "rescaling")


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def sniff(path: str) -> bool:
    """A legacy Keras h5 weights file (``layer_names`` attribute at the top, or under
    ``model_weights`` for a whole saved model)."""
    if not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        return "layer_names" in group.attrs


def read(path: str, spec=None) -> Converted:
    """Read every weight of a legacy h5 file under our flat names."""
    arrays, consumed = {}, {}
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            for layer in (_text(n) for n in group.attrs["layer_names"]):
                g = group[layer]
                for wname in (_text(n) for n in g.attrs.get("weight_names", [])):
                    data = np.asarray(g[wname])
                    key = wname[:-2] if wname.endswith(":0") else wname
                    if "/" not in key:
                        key = f"{layer}/{key}"
                    if key.split("/")[0].startswith(PREPROCESSING_LAYERS):
                        consumed[key] = "input normalisation statistics (reproduced by the preprocessing layer)"
                        continue
                    for old, new in RENAMES.items():
                        key = key.replace(old, new)
                    if key in arrays:
                        raise ValueError(f"{path!r} holds the weight {key!r} twice.")
                    arrays[key] = data
    except (OSError, KeyError) as err:
        raise ValueError(f"Could not read {path!r} as a keras.applications h5 weights file "
                         f"(truncated or corrupt?): {err}") from None
    return Converted(arrays, consumed, source=path, format="keras_h5")


def infer(path: str) -> dict:
    """The keras.applications variant and classifier width of a legacy h5 file, read from
    its weight names and shapes."""
    from ...specs import VARIANTS
    from .shapes import classes_of, match_variants

    shapes = {k: tuple(v.shape) for k, v in read(path).arrays.items()}
    found = match_variants(shapes, [n for n in VARIANTS if n.startswith("EfficientNet")])
    if not found:
        raise ValueError(f"{path!r} is a Keras h5 weights file, but its weights fit no "
                         "keras.applications-style variant (EfficientNetB0-B7, V2, Lite). Build "
                         "the model yourself and pass weights=path.")
    return {"variant": found[0], "classes": classes_of(shapes)}


register_format("keras_h5", sniff, read, infer)
