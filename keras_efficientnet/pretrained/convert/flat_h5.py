"""This package's own weights file: one h5 dataset per flat weight name.

Written by :func:`keras_efficientnet.save_weights`. The layout does not depend on how Keras
nests objects, so a file saved on one backend or Keras version loads on any other, and a
model with a different classifier or without one can take what fits.
"""

from __future__ import annotations

import h5py
import numpy as np

from .base import Converted, register_format

FORMAT_ATTR = "keras_efficientnet_format"
FORMAT_VERSION = 1


def sniff(path: str) -> bool:
    """An h5 file written by :func:`write`."""
    if not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as f:
        return FORMAT_ATTR in f.attrs


def write(path: str, arrays: dict, variant: str | None = None) -> None:
    """Write ``{flat_name: array}`` to ``path`` (the caller makes it atomic)."""
    with h5py.File(path, "w") as f:
        f.attrs[FORMAT_ATTR] = FORMAT_VERSION
        if variant:
            f.attrs["variant"] = variant
        group = f.create_group("weights")
        for name, value in arrays.items():
            group.create_dataset(name.replace("/", "|"), data=np.asarray(value))


def read(path: str, spec=None) -> Converted:
    """Read a file written by :func:`write`."""
    try:
        with h5py.File(path, "r") as f:
            version = int(f.attrs[FORMAT_ATTR])
            if version > FORMAT_VERSION:
                raise ValueError(f"{path!r} was written by a newer keras_efficientnet "
                                 f"(format {version}); upgrade the package.")
            arrays = {k.replace("|", "/"): np.asarray(v) for k, v in f["weights"].items()}
    except (OSError, KeyError) as err:
        raise ValueError(f"Could not read {path!r} (truncated or corrupt?): {err}") from None
    return Converted(arrays, {}, source=path, format="keras_efficientnet_h5")


def variant_of(path: str) -> str | None:
    """The variant recorded in a file written by :func:`write`, if any."""
    with h5py.File(path, "r") as f:
        value = f.attrs.get("variant")
    return value.decode() if isinstance(value, bytes) else value


def infer(path: str) -> dict:
    """The variant recorded in the file (or, when none was, the one variant whose weights
    have these names and shapes) and the classifier width."""
    from ...specs import VARIANTS
    from .shapes import classes_of, match_variants

    shapes = {k: tuple(v.shape) for k, v in read(path).arrays.items()}
    variant = variant_of(path)
    if variant is not None:
        if variant not in VARIANTS:
            raise ValueError(f"{path!r} records variant {variant!r}, which is not registered; "
                             "register its spec with keras_efficientnet.specs.register_variant.")
        return {"variant": variant, "classes": classes_of(shapes)}
    found = match_variants(shapes, list(VARIANTS))
    if len(found) != 1:
        which = f"several variants ({', '.join(found)})" if found else "no registered variant"
        raise ValueError(f"{path!r} does not record its variant and its weights fit {which}. "
                         "Pass the variant: create_model(name, weights=path), or save with "
                         "save_weights(model, path, variant=name).")
    return {"variant": found[0], "classes": classes_of(shapes)}


register_format("keras_efficientnet_h5", sniff, read, infer)
