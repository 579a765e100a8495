"""The local weight cache: where files live, their hashes and download records, and the
clean-up of partial downloads a killed process left behind.

Used by the downloader and loader (:mod:`keras_efficientnet.pretrained.loading`) and by the
offline Lite weights (:mod:`keras_efficientnet.pretrained.offline`); imports neither, so
neither imports the other for these helpers. Files whose source publishes only a hash prefix,
or no hash, get a *record* at first download (size and full sha256, in an extended attribute
of the file or a ``<file>.download.json`` next to it) that every later use checks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time

from ..validation import file_mode

log = logging.getLogger("keras_efficientnet")

#: seconds after which a partial download folder is taken for abandoned.
ENV_PARTIAL_AGE = "KE_PARTIAL_MAX_AGE"
#: where download records are kept: "auto" (extended attribute, else sidecar), "sidecar".
ENV_RECORDS = "KE_CACHE_RECORDS"
DEFAULT_PARTIAL_AGE = 6 * 3600.0
PARTIAL_PREFIX = ".partial-"
RECORD_XATTR = "user.keras_efficientnet.record"
RECORD_SUFFIX = ".download.json"


def _env_float(name, default):
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number.") from None


def keras_home() -> str:
    """The Keras cache root: ``$KERAS_HOME`` or ``~/.keras``.

    Example:
        >>> import os
        >>> from keras_efficientnet.pretrained.cache import keras_home
        >>> os.environ["KERAS_HOME"] = "/tmp/kh"
        >>> keras_home()
        '/tmp/kh'
    """
    return os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))


def cache_dir(subdir: str = "models", writable: bool = True) -> str:
    """Where downloaded and converted weights are kept (created when missing).

    Args:
        subdir: the sub-folder of the Keras cache root.
        writable: also require that the folder can be written.

    Raises:
        NotADirectoryError: a file stands where the folder should be.
        PermissionError: the folder cannot be created or written.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.pretrained.cache import cache_dir
        >>> os.environ["KERAS_HOME"] = tempfile.mkdtemp()
        >>> os.path.basename(cache_dir())
        'models'
    """
    home = keras_home()
    path = os.path.join(home, subdir)
    hint = "Set KERAS_HOME to a writable folder (it is where Keras caches weights)"
    if os.path.lexists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"The Keras cache folder {path!r} is a file, not a folder. "
                                 f"Move that file away, or: {hint}.")
    if not os.path.isdir(path):
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            kind = PermissionError if isinstance(err, PermissionError) else type(err)
            raise kind(f"Cannot create the Keras cache folder {path!r} "
                       f"({err.strerror or err}). {hint}.") from None
    if writable and not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"The Keras cache folder {path!r} is not writable. {hint}.")
    return path


def file_hash(path: str, algorithm: str = "md5") -> str:
    """Hex digest of a file (``md5`` or ``sha256``).

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.pretrained.cache import file_hash
        >>> path = os.path.join(tempfile.mkdtemp(), "x"); _ = open(path, "wb").write(b"abc")
        >>> file_hash(path)
        '900150983cd24fb0d6963f7d28e17f72'
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_full_hash(expected, algorithm) -> bool:
    return bool(expected) and len(expected) == 2 * hashlib.new(algorithm).digest_size


def _digest_matches(actual, expected, algorithm):
    if not expected:
        return True
    return actual == expected or (algorithm == "sha256" and actual.startswith(expected))


def _hash_matches(path, expected, algorithm):
    if not expected:
        return True
    return _digest_matches(file_hash(path, algorithm), expected, algorithm)


# -- download records ----------------------------------------------------------------------

def _use_xattr() -> bool:
    return os.environ.get(ENV_RECORDS, "auto") != "sidecar" and hasattr(os, "setxattr")


def read_record(path: str) -> dict | None:
    """The download record of a cached file (``{"size", "sha256", ...}``), or None.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.pretrained.cache import read_record, write_record
        >>> path = os.path.join(tempfile.mkdtemp(), "w.bin"); _ = open(path, "wb").write(b"abc")
        >>> write_record(path, {"url": "file:///w.bin"})["size"]
        3
        >>> read_record(path)["sha256"][:8]
        'ba7816bf'
    """
    raw = None
    if hasattr(os, "getxattr"):
        try:
            raw = os.getxattr(path, RECORD_XATTR)
        except OSError:
            raw = None
    if raw is None and os.path.isfile(path + RECORD_SUFFIX):
        try:
            with open(path + RECORD_SUFFIX, "rb") as f:
                raw = f.read()
        except OSError:
            raw = None
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "sha256" in record else None


def write_record(path: str, extra: dict | None = None, sha256: str | None = None) -> dict:
    """Record ``path``'s size and sha256 (plus ``extra``) so later uses can verify it.

    Kept in an extended attribute of the file where the file system has them (the record then
    moves with the file), else in ``<path>.download.json``. Best effort: a read-only cache
    keeps no record.

    Returns:
        The record.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.pretrained.cache import write_record
        >>> path = os.path.join(tempfile.mkdtemp(), "w.bin"); _ = open(path, "wb").write(b"")
        >>> write_record(path)["size"]
        0
    """
    record = {"size": os.path.getsize(path), "sha256": sha256 or file_hash(path, "sha256"),
              "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(extra or {})}
    data = json.dumps(record, sort_keys=True).encode()
    if _use_xattr():
        try:
            os.setxattr(path, RECORD_XATTR, data)
            return record
        except OSError:
            pass
    try:
        fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=os.path.dirname(os.path.abspath(path)))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path + RECORD_SUFFIX)
    except OSError:
        log.debug("Could not record %s (read-only cache?).", path)
    return record


def remove_cached(path: str) -> None:
    """Delete a cached file and its record (a file that failed to load).

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.pretrained.cache import remove_cached
        >>> path = os.path.join(tempfile.mkdtemp(), "w.bin"); _ = open(path, "wb").write(b"x")
        >>> remove_cached(path); os.path.exists(path)
        False
    """
    for target in (path, path + RECORD_SUFFIX):
        try:
            os.remove(target)
        except FileNotFoundError:
            pass


def _cached_problem(path, expected_hash, algorithm, record) -> str | None:
    """Why a cached file cannot be used (None when it can)."""
    size = os.path.getsize(path)
    if record is not None and record.get("size") != size:
        return f"has {size} bytes but {record.get('size')} were recorded at download"
    if expected_hash:
        actual = file_hash(path, algorithm)
        if not _digest_matches(actual, expected_hash, algorithm):
            return f"has {algorithm} {actual}, not the expected {expected_hash}"
    if record is not None and not _is_full_hash(expected_hash, "sha256" if algorithm == "sha256" else algorithm):
        actual = file_hash(path, "sha256")
        if actual != record["sha256"]:
            return f"has sha256 {actual}, not the {record['sha256']} recorded at download"
    return None


# -- partial files --------------------------------------------------------------------------

def _newest_mtime(path) -> float:
    newest = os.lstat(path).st_mtime
    if os.path.isdir(path):
        for d, _, files in os.walk(path):
            for f in files:
                try:
                    newest = max(newest, os.lstat(os.path.join(d, f)).st_mtime)
                except OSError:
                    pass
    return newest


def remove_stale_partials(folder: str, max_age: float | None = None) -> list[str]:
    """Remove the ``.partial-*`` staging entries of ``folder`` untouched for ``max_age`` seconds.

    A download or conversion that was killed leaves its staging folder behind; one that is
    still running keeps writing to it, so its newest modification time stays recent.

    Args:
        folder: a cache folder.
        max_age: seconds (default ``KE_PARTIAL_MAX_AGE`` or 6 hours).

    Returns:
        The removed paths.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.pretrained.cache import remove_stale_partials
        >>> folder = tempfile.mkdtemp(); os.mkdir(os.path.join(folder, ".partial-x"))
        >>> [os.path.basename(p) for p in remove_stale_partials(folder, max_age=-1)]
        ['.partial-x']
    """
    max_age = _env_float(ENV_PARTIAL_AGE, DEFAULT_PARTIAL_AGE) if max_age is None else max_age
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        if not name.startswith(PARTIAL_PREFIX):
            continue
        path = os.path.join(folder, name)
        try:
            if now - _newest_mtime(path) <= max_age:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError:
            continue
        removed.append(path)
        log.info("Removed %s, left by an interrupted download or conversion.", path)
    return removed


# -- one HTTP(S) / file transfer ------------------------------------------------------------
