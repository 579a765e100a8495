"""The one PyTorch state-dict reader, shared by every converter of a PyTorch source (timm,
torchvision, efficientnet_pytorch, and the segmentation and detection converters).

What it accepts, the same for every source:

* ``.safetensors`` files (read with ``safetensors``; the ``arch`` / ``architecture`` metadata
  entry is kept as :attr:`StateDict.arch`);
* files written by ``torch.save`` (zip archives, and the legacy pickle format of torch < 1.6),
  read with ``torch.load(weights_only=True)`` only, so nothing but tensors and plain containers
  is ever unpickled;
* a training checkpoint that wraps the state dict. As timm's ``load_checkpoint`` does by
  default, the exponential moving average is preferred when the file has one
  (``state_dict_ema``, then ``model_ema``), then ``state_dict``, then ``model``; a top-level
  ``arch`` string (timm's train script writes one) is kept as :attr:`StateDict.arch`;
* the ``module.`` prefix of ``DataParallel`` / ``DistributedDataParallel`` (and of timm's
  ``ModelEmaV1``), removed when every key carries it;
* an in-memory mapping of names to ``torch.Tensor`` or NumPy arrays (``model.state_dict()``).

Floating tensors come back as float32 NumPy arrays (bfloat16, float16 and float64 included:
Keras weights are float32), integer tensors (``num_batches_tracked``) as integer arrays.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

SAFETENSORS_SUFFIXES = (".safetensors",)
#: wrappers of training checkpoints, in the order they are preferred (timm's default order:
#: the EMA weights first).
WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")
PREFIX = "module."
#: torch BatchNorm parameter and buffer names -> Keras BatchNormalization variable names, for
#: every converter of a PyTorch source.
BN_VARIABLES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                "running_var": "moving_variance"}

_CACHE: dict = {}


class StateDict(dict):
    """``{name: numpy array}`` read from a PyTorch source, with where it came from.

    Attributes:
        source: the file path, or ``"state dict"`` for an in-memory mapping.
        arch: the architecture name the file declares (a timm checkpoint's ``arch``, safetensors
            ``arch``/``architecture`` metadata), else ``None``.
        wrapper: the checkpoint key the tensors were found under (``"state_dict_ema"``, ...),
            or ``None`` for a bare state dict.
    """

    source: str = "state dict"
    arch: str | None = None
    wrapper: str | None = None


def _fingerprint(path):
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _is_tensor(value) -> bool:
    if isinstance(value, np.ndarray):
        return True
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        return False
    return isinstance(value, torch.Tensor)


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        array = value
    else:
        tensor = value.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()  # bfloat16 has no NumPy dtype; Keras weights are float32
        array = tensor.numpy()
    if np.issubdtype(array.dtype, np.floating) and array.dtype != np.float32:
        array = array.astype(np.float32)
    return array


def _unwrap(obj, source: str):
    """(state dict, wrapper key) inside what ``torch.load`` returned."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source!r} holds a {type(obj).__name__}, not a state dict (a mapping of "
                         "tensor names to tensors); save model.state_dict() instead.")
    if any(_is_tensor(v) for v in obj.values()):
        return obj, None
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(_is_tensor(v) for v in inner.values()):
            return inner, key
    raise ValueError(f"{source!r} holds no tensors: not a state dict (a mapping of tensor names to "
                     f"tensors, or a checkpoint with one under {', '.join(WRAPPER_KEYS)}); save "
                     "model.state_dict() instead.")


def _finish(state: Mapping, source: str, arch=None, wrapper=None) -> StateDict:
    bad = [str(k) for k, v in state.items() if _is_tensor(v) and not isinstance(k, str)]
    if bad:
        raise ValueError(f"{source!r} is not a state dict: the keys {', '.join(bad[:5])} are not "
                         "strings.")
    tensors = {k: v for k, v in state.items() if _is_tensor(v)}
    if tensors and all(k.startswith(PREFIX) for k in tensors):
        tensors = {k[len(PREFIX):]: v for k, v in tensors.items()}
    out = StateDict((k, _to_numpy(v)) for k, v in tensors.items())
    out.source, out.arch, out.wrapper = source, arch if isinstance(arch, str) else None, wrapper
    return out


def _read_safetensors(path: str) -> StateDict:
    try:
        from safetensors import safe_open
        from safetensors.numpy import load_file
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError(f"Reading {path!r} needs the safetensors package: pip install "
                         "safetensors.") from None
    try:
        raw = load_file(path)
        with safe_open(path, "np") as f:
            meta = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise ValueError(f"Could not read {path!r} as a safetensors file (truncated or corrupt?): "
                         f"{type(err).__name__}: {err}") from None
    return _finish(raw, path, meta.get("arch") or meta.get("architecture"))


def _torch_load(path: str):
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError(f"Reading {path!r} (a PyTorch checkpoint) needs PyTorch: "
                         "pip install torch.") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or unsafe files
        raise ValueError(
            f"Could not read {path!r} with torch.load(weights_only=True) (truncated or corrupt, or "
            f"it pickles objects other than tensors; save model.state_dict() alone): "
            f"{type(err).__name__}: {str(err)[:300]}") from None


def read_state_dict(source) -> StateDict:
    """The tensors of a PyTorch checkpoint as ``{name: numpy array}``.

    Args:
        source: a ``.pth``/``.pt``/``.bin``/``.ckpt``/``.safetensors`` path, or a mapping of
            names to tensors or arrays (``model.state_dict()``).

    Returns:
        A :class:`StateDict` (a dict, plus ``source``, ``arch`` and ``wrapper``).

    Raises:
        ValueError: for a file that cannot be read (truncated, corrupt, pickling code), or that
            holds no state dict.

    Example:
        >>> import os, tempfile, torch
        >>> from keras_efficientnet.pretrained.convert.torch_state import read_state_dict
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.pth")
        >>> sd = {"module.conv.weight": torch.ones(4, 3, 1, 1)}
        >>> torch.save({"epoch": 3, "state_dict": sd, "state_dict_ema": sd, "arch": "efficientnet_b0"}, path)
        >>> state = read_state_dict(path)
        >>> list(state), state["conv.weight"].shape, state.wrapper, state.arch
        (['conv.weight'], (4, 3, 1, 1), 'state_dict_ema', 'efficientnet_b0')
    """
    if isinstance(source, Mapping):
        state, wrapper = _unwrap(source, "state dict")
        return _finish(state, "state dict", source.get("arch"), wrapper)
    path = os.fspath(source)
    key = _fingerprint(path)
    if key in _CACHE:
        return _CACHE[key]
    if path.lower().endswith(SAFETENSORS_SUFFIXES):
        state = _read_safetensors(path)
    else:
        obj = _torch_load(path)
        inner, wrapper = _unwrap(obj, path)
        state = _finish(inner, path, obj.get("arch"), wrapper)
    _CACHE.clear()  # one file at a time: a B7 state dict is 260 MB
    _CACHE[key] = state
    return state
