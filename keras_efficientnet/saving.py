"""What a trained model needs besides its weights, stored inside its ``.keras`` file.

A ``.keras`` file is a zip archive (``config.json``, ``metadata.json``,
``model.weights.h5``); Keras reads those three entries and ignores others. The commands that
train a model (``keras-efficientnet train``) add one more, ``keras_efficientnet.json``: the
task, the class names, the input normalisation the model was trained with, the image size and
the variant, so the commands that use the model (``segment``) need no flags to repeat them.
The entry travels with the file; a model saved again by ``model.save`` loses it (write it again
with :func:`write_model_info`).
"""

from __future__ import annotations

import json
import os
import zipfile

#: The archive entry that holds the information.
ENTRY = "keras_efficientnet.json"


def write_model_info(path, info: dict) -> None:
    """Add (or replace) the ``keras_efficientnet.json`` entry of a saved ``.keras`` file.

    Args:
        path: a ``.keras`` file written by ``model.save``.
        info: JSON-serialisable values (``task``, ``class_names``, ``preprocessing``, ...).

    Raises:
        ValueError: ``path`` is not a ``.keras`` (zip) file, or ``info`` is not serialisable.

    Example:
        >>> import os, tempfile, keras
        >>> from keras_efficientnet.saving import read_model_info, write_model_info
        >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
        >>> keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(path)
        >>> write_model_info(path, {"task": "classification", "class_names": ["a", "b"]})
        >>> read_model_info(path)["class_names"]
        ['a', 'b']
    """
    path = os.fspath(path)
    try:
        text = json.dumps(info, indent=1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Model information must be JSON-serialisable: {err}.") from None
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a .keras file (a zip archive written by model.save).")
    # rewrite into a temporary file beside it, then replace: a crash leaves the original whole
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w") as dst:
            for item in src.infolist():
                if item.filename != ENTRY:
                    dst.writestr(item, src.read(item.filename))
            dst.writestr(ENTRY, text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_model_info(path) -> dict:
    """The ``keras_efficientnet.json`` entry of a ``.keras`` file, or ``{}`` when it has none
    (a model saved by plain ``model.save``, or a file that is not a zip archive).

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.saving import read_model_info
        >>> read_model_info(os.path.join(tempfile.mkdtemp(), "missing.keras"))
        {}
    """
    path = os.fspath(path)
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return {}
    try:
        with zipfile.ZipFile(path) as archive:
            if ENTRY not in archive.namelist():
                return {}
            info = json.loads(archive.read(ENTRY).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}
