"""Load any supported checkpoint without saying what it is: :func:`from_checkpoint`.

The file's format is detected from its content, the format's ``infer`` hook names the variant
(and with it the conventions: padding, BatchNorm epsilon, preprocessing) and the classifier
width from the tensors, and the model is built through
:func:`~keras_efficientnet.create_model` with ``weights=path``, so the usual strict loading
applies. This module only orchestrates; building is the factory's job.
"""

from __future__ import annotations

import logging
import os

from ..pretrained.convert.base import detect_format, infer_checkpoint
from ..pretrained.loading import _is_keras_native  # noqa: F401  (registers the formats)

log = logging.getLogger("keras_efficientnet")


def inspect_checkpoint(path) -> dict:
    """What a checkpoint file holds, without building a model.

    Returns:
        ``{"format": ..., "variant": ..., "classes": n or None, ...}``; ``classes`` is None
        when the file has no classifier. ``variant`` is None when the tensors fit variants of
        different conventions and nothing in the file says which; then ``candidates`` lists
        them and ``ambiguous`` says how to choose. For a segmentation-models-pytorch
        checkpoint, :func:`keras_efficientnet.segmentation.inspect_checkpoint`'s dict
        (``"format": "smp"``).

    Raises:
        ValueError: for a missing, corrupt or unsupported file, or one whose variant cannot
            be told from its tensors.

    Example:
        >>> import os, tempfile
        >>> import keras_efficientnet as ke
        >>> model = ke.create_model("tv_efficientnet_b0", input_shape=(32, 32, 3), classes=3)
        >>> path = ke.save_weights(model, os.path.join(tempfile.mkdtemp(), "m.h5"),
        ...                        variant="tv_efficientnet_b0")
        >>> info = ke.inspect_checkpoint(path)
        >>> info["format"], info["variant"], info["classes"]
        ('keras_efficientnet_h5', 'tv_efficientnet_b0', 3)
    """
    from ..segmentation import checkpoint as smp_checkpoint

    path = os.fspath(path)
    if smp_checkpoint.is_smp_checkpoint(path):
        return smp_checkpoint.inspect_checkpoint(path)
    fmt = detect_format(path)
    info = dict(infer_checkpoint(path, fmt))
    info["format"] = fmt
    return info


def from_checkpoint(path, **kwargs):
    """Build the model a checkpoint file holds and load it: the file says what it is.

    Supported: preset folders (:func:`keras_efficientnet.save_preset`, ``keras-efficientnet
    train``'s ``preset/``, keras-hub's EfficientNet presets) and ``.keras`` files, with their
    class names (see :func:`keras_efficientnet.presets.load_saved`); torchvision and timm
    state dicts, efficientnet_pytorch files, keras.applications
    ``.h5`` weights and files written by :func:`keras_efficientnet.save_weights` (any format
    registered with an ``infer`` hook), and segmentation-models-pytorch U-Net, FPN and LinkNet
    checkpoints (a ``save_pretrained`` folder or a state-dict file: the segmentation model
    is built by :func:`keras_efficientnet.segmentation.from_checkpoint`). The variant, and with it the padding, BatchNorm
    epsilon and in-graph preprocessing, and the classifier's width come from the file.

    Args:
        path: the checkpoint file.
        **kwargs: any :func:`~keras_efficientnet.create_model` argument except ``weights``
            (for an smp checkpoint: the arguments of
            :func:`keras_efficientnet.segmentation.from_checkpoint`).
            ``classes`` may be given, but must equal the file's classifier width.
            ``include_top=False`` drops the file's classifier on purpose (logged at INFO on
            the ``"keras_efficientnet"`` logger). Without ``include_top``, the model has a
            classifier exactly when the file has one.

    Returns:
        A ``keras.Model`` with the file's weights.

    Raises:
        ValueError: for an unreadable or unsupported file, ``classes`` that differ from the
            file's classifier, ``include_top=True`` for a file without a classifier, or a file
            that does not fit the inferred model.

    Example:
        >>> import os, tempfile
        >>> import torch, torchvision
        >>> import keras_efficientnet as ke
        >>> net = torchvision.models.efficientnet_b0(num_classes=7)
        >>> path = os.path.join(tempfile.mkdtemp(), "b0.pth")
        >>> torch.save(net.state_dict(), path)
        >>> model = ke.from_checkpoint(path, input_shape=(64, 64, 3))
        >>> model.name, model.output_shape
        ('tv_efficientnet_b0', (None, 7))
    """
    from ..segmentation import checkpoint as smp_checkpoint
    from .constructors import create_model

    from .. import presets

    path = os.fspath(path)
    if smp_checkpoint.is_smp_checkpoint(path):
        return smp_checkpoint.from_checkpoint(path, **kwargs)
    if presets.is_preset(path) or presets.is_keras_file(path):
        return presets.load_saved(path, **kwargs)
    if "weights" in kwargs:
        raise ValueError("from_checkpoint loads the weights of `path`; do not pass weights=. "
                         "Use create_model(name, weights=...) to load other weights.")
    info = inspect_checkpoint(path)
    variant, file_classes = info["variant"], info.get("classes")
    if variant is None:
        raise ValueError(info.get("ambiguous") or f"{path!r}: cannot tell which variant it holds "
                         f"(candidates: {info.get('candidates')}); use create_model(name, weights=path).")
    include_top = kwargs.pop("include_top", None)
    classes = kwargs.pop("classes", None)
    if include_top is None:
        include_top = file_classes is not None
    if include_top:
        if file_classes is None:
            raise ValueError(f"{path!r} ({info['format']}, {variant}) has no classifier, so "
                             "include_top=True cannot be loaded from it. Pass include_top=False "
                             "(optionally with pooling='avg') and add your own head.")
        if classes is not None and int(classes) != file_classes:
            raise ValueError(f"classes={classes} disagrees with the checkpoint's classifier, which "
                             f"has {file_classes} classes ({path!r}). Pass classes={file_classes}, "
                             "or include_top=False to drop that classifier.")
        classes = file_classes
    elif file_classes is not None:
        log.info("from_checkpoint: include_top=False, so the %d-class classifier in %s is not "
                 "loaded.", file_classes, path)
    log.info("from_checkpoint: %s is a %s checkpoint of %s (%s classes).", path, info["format"],
             variant, file_classes)
    return create_model(variant, weights=path, include_top=include_top,
                        classes=1000 if classes is None else int(classes), **kwargs)
