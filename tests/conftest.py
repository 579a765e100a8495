"""Shared test helpers. The backend is chosen per process by KERAS_BACKEND (scripts/test.sh)."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# triton (imported by torch._dynamo, which timm and torchvision import) links an LLVM that
# clashes with TensorFlow's: importing it into a process that holds TensorFlow segfaults.
# These CPU tests need no triton; without it torch reports triton unavailable and carries on.
sys.modules.setdefault("triton", None)


def _jax_compilation_cache():
    """JAX compiles every eager operation once per shape, and the model-building and
    first-call costs of the tests are mostly such compiles (keras.applications' B3 at 32 px:
    98 s to build in a cold process, 20 s with the compiled kernels on disk). A persistent
    cache, shared by the xdist workers, by the modules (which clear JAX's in-memory cache
    below) and by the JAX subprocesses of other backends' tests (set through the environment,
    which JAX reads at import), compiles each kernel once. It is keyed by JAX's own hash of
    program, flags and versions and changes no result. KE_TEST_JAX_CACHE="" turns it off."""
    import tempfile

    cache = os.environ.get("KE_TEST_JAX_CACHE",
                           os.path.join(tempfile.gettempdir(), "keras_efficientnet_test_jax_cache"))
    if cache:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", cache)
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


_jax_compilation_cache()

import h5py
import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()

#: The backends, in the order the quick suite hands out expensive cases (TensorFlow first: its
#: eager model builds and calls are the cheapest).
BACKENDS = ("tensorflow", "torch", "jax")


def quick_on(*backends):
    """Mark for a test (or a ``pytest.param``) whose cost is mostly building, compiling or
    training models: it runs in the quick suite (scripts/test.sh) only under ``backends`` and is
    marked slow elsewhere, so the full command (scripts/test_full.sh) still runs it on every
    backend. Used where the code under test is the same on every backend and the other
    backends' cases of the same test already run that code."""
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise ValueError(f"unknown backends {sorted(unknown)}")
    if BACKEND in backends:
        return pytest.mark.skipif(False, reason="runs here in the quick suite")
    return pytest.mark.slow


def rotate(cases, everywhere=(), among=BACKENDS):
    """``cases`` as ``pytest.param`` objects, each quick on one backend of ``among`` in turn (and on
    every backend for the cases in ``everywhere``): every case runs on some backend in the
    quick suite and on all of them in the full one."""
    params, i = [], 0
    for case in cases:
        values = case if isinstance(case, tuple) else (case,)
        if case in everywhere:
            params.append(pytest.param(*values))
        else:
            params.append(pytest.param(*values, marks=quick_on(among[i % len(among)])))
            i += 1
    return params


def randomize_weights(model, seed: int = 0) -> None:
    """Give every weight of ``model`` random values, BatchNorm statistics included, so that a
    parity check sees every tensor (an untouched moving mean of zeros would hide a swap)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        path = variable.path
        shape = tuple(variable.shape)
        if "normalization" in path or "rescaling" in path:
            continue
        if path.endswith(("moving_variance", "running_var")):
            value = rng.uniform(0.5, 1.5, shape)
        elif path.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        elif path.endswith(("beta", "moving_mean", "bias")):
            value = rng.normal(0, 0.1, shape)
        else:
            fan_in = max(1, int(np.prod(shape[:-1])))
            value = rng.normal(0, 1.0 / np.sqrt(fan_in), shape)
        variable.assign(value.astype(variable.dtype))


def save_legacy_h5(model, path: str) -> str:
    """Save weights in the legacy layout of keras.applications' published files, as tf.keras 2
    wrote them: one group per layer, weight names ending in ':0', and depthwise kernels named
    'depthwise_kernel' (Keras 3 calls them 'kernel')."""
    from keras.src.legacy.saving import legacy_h5_format

    depthwise = {l.name for l in model.layers if isinstance(l, keras.layers.DepthwiseConv2D)}
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    with h5py.File(path, "a") as f:
        for lname in f.attrs["layer_names"]:
            lname = lname.decode() if isinstance(lname, bytes) else lname
            group = f[lname]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            new = []
            for n in names:
                target = n + ":0"
                if lname in depthwise and n.endswith("/kernel"):
                    target = n[: -len("kernel")] + "depthwise_kernel:0"
                f.move(f"{lname}/{n}", f"{lname}/{target}")
                new.append(target.encode())
            group.attrs["weight_names"] = new
    return path


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def max_rel_diff(a, b) -> float:
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(np.abs(a - b).max() / max(1.0, np.abs(a).max()))


@pytest.fixture(scope="module", autouse=True)
def _release_memory_after_module():
    """Free Keras' global state and compiled functions after each test module: one process
    builds hundreds of models, and JAX keeps every compiled executable until told otherwise."""
    yield
    import gc

    keras.backend.clear_session()
    if BACKEND == "jax":
        import jax
        jax.clear_caches()
    gc.collect()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache directory for the test."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home
