"""Argument and path checks at the API boundary: one place, clear messages.

:func:`validate_model_args` checks the arguments of the model constructors
(:func:`~keras_efficientnet.create_model`, ``EfficientNetB0(...)``,
:func:`~keras_efficientnet.EfficientNet`) before anything is built, so a wrong type, a value out
of range or a NaN is a ``ValueError`` naming the argument instead of a traceback from deep
inside Keras (or, worse, a silently truncated value).

:func:`prepare_output` checks where a file or folder is about to be written: it refuses to
replace an existing target unless asked (``overwrite=True``), and turns a missing,
unwritable or file-blocked folder into one clear ``OSError`` (``FileExistsError``,
``NotADirectoryError``, ``PermissionError``, ``FileNotFoundError``) naming the path.
"""

from __future__ import annotations

import math
import numbers
import os

__all__ = ["validate_model_args", "prepare_output", "check_int", "check_fraction",
           "file_mode", "describe_path"]


def _name(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int``, or a ``ValueError`` naming ``name``.

    Booleans, floats (even ``64.0``) and strings are refused: a fractional size would
    otherwise be truncated silently.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        minimum: smallest allowed value (inclusive), or None.
        maximum: largest allowed value (inclusive), or None.

    Returns:
        The value as a Python ``int``.

    Raises:
        ValueError: for a non-integer or a value out of range.

    Example:
        >>> from keras_efficientnet.validation import check_int
        >>> check_int("classes", 10, minimum=1)
        10
        >>> check_int("classes", 2.5)
        Traceback (most recent call last):
        ...
        ValueError: classes must be an integer, got 2.5 (float).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {_name(value)}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}.")
    return value


def check_fraction(name: str, value, allow_none: bool = True, upper_inclusive: bool = False):
    """A finite real number in ``[0, 1)`` (or ``[0, 1]``), or a ``ValueError`` naming ``name``.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        allow_none: whether None passes (meaning "the default").
        upper_inclusive: allow exactly 1.

    Returns:
        The value as a ``float`` (or None).

    Raises:
        ValueError: for a non-number, NaN, infinity or a value out of range.

    Example:
        >>> from keras_efficientnet.validation import check_fraction
        >>> check_fraction("dropout_rate", 0.2)
        0.2
        >>> check_fraction("dropout_rate", -0.5)
        Traceback (most recent call last):
        ...
        ValueError: dropout_rate must lie in [0, 1), got -0.5.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in [0, 1{']' if upper_inclusive else ')'}, "
                         f"got {_name(value)}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}.")
    if value < 0 or value > 1 or (value == 1 and not upper_inclusive):
        raise ValueError(f"{name} must lie in [0, 1{']' if upper_inclusive else ')'}, got {value}.")
    return value


def validate_model_args(variant=None, *, weights=None, input_shape=None, classes=1000,
                        include_top=True, pooling=None, classifier_activation="softmax",
                        dropout_rate=None, drop_connect_rate=None, phi=None,
                        check_variant=True) -> None:
    """Check the arguments of a model constructor; raise a ``ValueError`` naming the first bad one.

    Call it first thing in the model factory: every check is about the argument alone
    (type, range, NaN), so it needs no model and costs nothing.

    Args:
        variant: a variant name (``str``) or a ``ModelSpec``; not checked when
            ``check_variant=False`` (the compound-scaled :func:`~keras_efficientnet.EfficientNet`
            has no name).
        weights: None, a registered weight-set name (``str``) or a file path
            (``str`` / ``os.PathLike``).
        input_shape: None or a 3-tuple of positive integers or None (``(H, W, C)`` or
            ``(C, H, W)``).
        classes: a positive integer.
        include_top: a bool.
        pooling: None, ``"avg"`` or ``"max"``.
        classifier_activation: None, a Keras activation name or a callable.
        dropout_rate: None or a number in ``[0, 1)``.
        drop_connect_rate: None or a number in ``[0, 1)``.
        phi: None or a finite number ``>= 0`` (the compound coefficient).
        check_variant: whether ``variant`` is checked.

    Raises:
        ValueError: naming the argument, the value given and what is allowed.

    Example:
        >>> from keras_efficientnet.validation import validate_model_args
        >>> validate_model_args("EfficientNetB0", input_shape=(64, 64, 3), classes=10)
        >>> validate_model_args("EfficientNetB0", input_shape=(64.7, 64, 3))
        Traceback (most recent call last):
        ...
        ValueError: input_shape[0] must be an integer or None, got 64.7 (float).
    """
    if check_variant:
        from .specs.model import ModelSpec

        if not isinstance(variant, (str, ModelSpec)):
            raise ValueError(f"The variant must be a name from keras_efficientnet.list_models() "
                             f"(a str) or a ModelSpec, got {_name(variant)}.")
        if isinstance(variant, str) and not variant.strip():
            raise ValueError("The variant name is empty; pass a name from "
                             "keras_efficientnet.list_models(), e.g. 'EfficientNetB0'.")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be None, a registered weight-set name such as 'imagenet', "
                         f"or the path of a weights file; got {_name(weights)}.")
    if isinstance(weights, str) and not weights.strip():
        raise ValueError("weights is an empty string; pass None, 'imagenet' or a file path.")
    if input_shape is not None:
        if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
            raise ValueError(f"input_shape must be a tuple of 3 integers such as (224, 224, 3), "
                             f"got {_name(input_shape)}.")
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must have 3 dimensions (height, width, channels), got "
                             f"{tuple(input_shape)!r}.")
        for i, dim in enumerate(input_shape):
            if dim is None:
                continue
            if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
                raise ValueError(f"input_shape[{i}] must be an integer or None, got {_name(dim)}.")
            if int(dim) < 1:
                raise ValueError(f"input_shape[{i}] must be positive, got {int(dim)}.")
    if type(include_top).__name__ not in ("bool", "bool_"):
        raise ValueError(f"include_top must be True or False, got {_name(include_top)}.")
    if include_top or classes is not None:
        check_int("classes", classes, minimum=1)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {_name(pooling)}.")
    if classifier_activation is not None and not (isinstance(classifier_activation, str)
                                                  or callable(classifier_activation)):
        raise ValueError(f"classifier_activation must be None, an activation name such as "
                         f"'softmax', or a callable; got {_name(classifier_activation)}.")
    check_fraction("dropout_rate", dropout_rate)
    check_fraction("drop_connect_rate", drop_connect_rate)
    if phi is not None:
        if isinstance(phi, bool) or not isinstance(phi, numbers.Real):
            raise ValueError(f"phi must be a number >= 0, got {_name(phi)}.")
        if not math.isfinite(float(phi)) or float(phi) < 0:
            raise ValueError(f"phi must be a finite number >= 0, got {float(phi)}.")


def describe_path(path: str) -> str:
    """A few words on what is at ``path``, for messages (``"a file of 12 bytes"``, ...).

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.validation import describe_path
        >>> describe_path(tempfile.mkdtemp())
        'an empty folder'
    """
    if os.path.isdir(path):
        try:
            n = len(os.listdir(path))
        except OSError:
            return "a folder"
        return "an empty folder" if n == 0 else f"a folder holding {n} entr{'y' if n == 1 else 'ies'}"
    if os.path.lexists(path):
        try:
            return f"a file of {os.path.getsize(path)} bytes"
        except OSError:
            return "a file"
    return "nothing"


def _nearest_existing(path: str) -> str:
    probe = path
    while probe and not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return probe


def prepare_output(path, overwrite: bool = False, what: str = "output",
                   create_parents: bool = True, directory: bool = False,
                   check_only: bool = False) -> str:
    """Check that ``path`` may be written, creating its folder; return it as an absolute path.

    Nothing that exists is touched: an existing file, or a non-empty folder, at ``path`` is
    refused unless ``overwrite=True`` (the caller then replaces it atomically). An empty folder
    holds nothing to lose and passes.

    Args:
        path: where the file or folder will be.
        overwrite: allow an existing target (the caller replaces it).
        what: what is being written, for messages (``"export"``, ``"weights file"``).
        create_parents: create missing parent folders (else a missing folder is an error).
        directory: the target is a folder (``path`` itself may then be an existing folder to
            write into; only a file there is refused).
        check_only: check, but create nothing (a missing folder passes when the nearest
            existing one is writable).

    Returns:
        The absolute path.

    Raises:
        FileExistsError: the target exists and ``overwrite`` is False.
        NotADirectoryError: a file stands where a folder of the path should be.
        FileNotFoundError: the folder is missing and ``create_parents`` is False.
        PermissionError: the folder cannot be written.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.validation import prepare_output
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "b0.weights.h5")
        >>> prepare_output(path) == path
        True
        >>> _ = open(path, "w").write("keep me")
        >>> prepare_output(path, what="weights file")
        Traceback (most recent call last):
        ...
        FileExistsError: weights file target ... already exists (a file of 7 bytes); ...
    """
    path = os.path.abspath(os.fspath(path))
    if directory:
        if os.path.lexists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"{what} folder {path!r} is a file, not a folder; choose "
                                     "another path or remove the file.")
        folder = path
    else:
        if os.path.isdir(path) and not os.path.islink(path) and os.listdir(path) and not overwrite:
            raise FileExistsError(f"{what} target {path!r} already exists ({describe_path(path)}); "
                                  "nothing was written. Pass overwrite=True (command line: "
                                  "--overwrite) to replace it, or choose another path.")
        if os.path.lexists(path) and not os.path.isdir(path) and not overwrite:
            raise FileExistsError(f"{what} target {path!r} already exists ({describe_path(path)}); "
                                  "nothing was written. Pass overwrite=True (command line: "
                                  "--overwrite) to replace it, or choose another path.")
        folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        blocker = _nearest_existing(folder)
        if blocker and os.path.lexists(blocker) and not os.path.isdir(blocker):
            raise NotADirectoryError(f"Cannot write {what} {path!r}: {blocker!r} is a file, not a "
                                     "folder. Choose another path or move that file.")
        if not create_parents:
            raise FileNotFoundError(f"Cannot write {what} {path!r}: the folder {folder!r} does "
                                    "not exist. Create it first or choose another path.")
        if check_only:
            if blocker and not os.access(blocker, os.W_OK | os.X_OK):
                raise PermissionError(f"Cannot write {what} {path!r}: the folder {blocker!r} is "
                                      "not writable, so its sub-folders cannot be created.")
            return path
        try:
            os.makedirs(folder, exist_ok=True)
        except PermissionError:
            raise PermissionError(f"Cannot write {what} {path!r}: no permission to create the "
                                  f"folder {folder!r} (in {blocker!r}).") from None
        except OSError as err:
            raise type(err)(f"Cannot write {what} {path!r}: could not create the folder "
                            f"{folder!r} ({err.strerror or err}).") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"Cannot write {what} {path!r}: the folder {folder!r} is not "
                              "writable. Choose another path or fix its permissions.")
    return path


def file_mode(base: int = 0o666) -> int:
    """``base`` with the process umask applied: the mode ``open()`` would give a new file.

    Files made through ``tempfile.mkstemp`` get 0600 whatever the umask; they are given this
    mode before they are moved into place.

    Example:
        >>> import os
        >>> from keras_efficientnet.validation import file_mode
        >>> old = os.umask(0o022); mode = file_mode(); _ = os.umask(old)
        >>> oct(mode)
        '0o644'
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return base & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc: read it the only portable way (and restore it)
    os.umask(mask)
    return base & ~mask


def place_output(tmp_path, path, overwrite: bool = False, what: str = "output") -> None:
    """Move a finished file or folder ``tmp_path`` to ``path``.

    Without ``overwrite`` an existing file or non-empty folder at ``path`` is left alone and
    refused (``FileExistsError``; an empty folder holds nothing and is replaced). With it, the
    old target is renamed aside, the new one renamed in, and only then the old one deleted;
    if the second rename fails, the old target is put back. A file replaces a file in one
    atomic rename.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.validation import place_output
        >>> root = tempfile.mkdtemp()
        >>> new, target = os.path.join(root, "new"), os.path.join(root, "run")
        >>> os.makedirs(new); os.makedirs(target)
        >>> _ = open(os.path.join(target, "old.txt"), "w").write("old")
        >>> place_output(new, target, overwrite=True, what="preset")
        >>> sorted(os.listdir(root)), os.listdir(target)
        (['run'], [])
    """
    import shutil
    import tempfile

    if os.path.lexists(path):
        empty_dir = os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)
        if not overwrite and not empty_dir:
            raise FileExistsError(f"{what} target {path!r} already exists ({describe_path(path)}); "
                                  "it was left untouched. Pass overwrite=True (command line: "
                                  "--overwrite) to replace it, or choose another path.")
        if os.path.isfile(path) and os.path.isfile(tmp_path) and not os.path.islink(path):
            os.replace(tmp_path, path)
            return
        old = tempfile.mkdtemp(prefix=f".{what.replace(' ', '-')}-old-",
                               dir=os.path.dirname(os.path.abspath(path)))
        aside = os.path.join(old, "previous")
        os.replace(path, aside)
        try:
            os.replace(tmp_path, path)
        except BaseException:
            os.replace(aside, path)
            shutil.rmtree(old, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    os.replace(tmp_path, path)
