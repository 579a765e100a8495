"""keras.applications' legacy ``.h5`` weights (the files it publishes) -> our flat names.

A legacy file has an attribute ``layer_names`` and, per layer group, ``weight_names`` such as
``block2a_dwconv/depthwise_kernel:0``. Our flat names are the same strings without ``:0``,
except for depthwise kernels, which Keras 3 names ``kernel`` (tf.keras 2, which wrote the
published files, said ``depthwise_kernel``). The V1 files also carry the statistics of the
input ``normalization`` layer: they are read as ``normalization/mean`` etc. (whatever number
Keras appended to the layer's name). keras.applications' published ImageNet files store the
standard deviations where the variance belongs and correct that with an extra ``Rescaling``
layer when ``weights="imagenet"``; this reader squares them instead, so the one graph (no
extra layer) normalises as those weights expect. A file saved from a model trained from
scratch keeps its statistics as they are.
"""

from __future__ import annotations

import h5py
import numpy as np

from .base import Converted, register_format

#: keras.applications name fragment -> ours.
RENAMES = {"/depthwise_kernel": "/kernel"}
#: keras.applications' published V1 files: ImageNet mean, and the standard deviations where
#: the variance belongs.
KA_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


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
                    if key.split("/")[0].startswith("rescaling"):
                        continue
                    if key.split("/")[0].startswith("normalization"):
                        key = "normalization/" + key.split("/", 1)[1]
                    for old, new in RENAMES.items():
                        key = key.replace(old, new)
                    if key in arrays:
                        raise ValueError(f"{path!r} holds the weight {key!r} twice.")
                    arrays[key] = data
        _fix_imagenet_variance(arrays, consumed)
    except (OSError, KeyError) as err:
        raise ValueError(f"Could not read {path!r} as a keras.applications h5 weights file "
                         f"(truncated or corrupt?): {err}") from None
    return Converted(arrays, consumed, source=path, format="keras_h5")


def _fix_imagenet_variance(arrays, consumed):
    mean, var = arrays.get("normalization/mean"), arrays.get("normalization/variance")
    if mean is None or var is None or np.shape(var) != (3,):
        return
    if np.allclose(mean, KA_IMAGENET_STATS[0], atol=1e-6) and \
            np.allclose(var, KA_IMAGENET_STATS[1], atol=1e-6):
        arrays["normalization/variance"] = np.square(np.asarray(var, "float32"))
        consumed["normalization/variance"] = ("keras.applications' ImageNet standard deviations, "
                                              "squared into the variance")


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
