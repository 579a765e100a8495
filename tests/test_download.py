"""weights="imagenet" through the real download code, served from 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import threading

import keras
import numpy as np
import pytest

import keras_efficientnet as ke
from keras_efficientnet.pretrained import registry
from conftest import randomize_weights, save_legacy_h5, to_numpy


@contextlib.contextmanager
def serve(directory):
    """A static file server on an ephemeral port of 127.0.0.1."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """keras.applications-layout B0 files (with and without classifier) at 32 px."""
    folder = tmp_path_factory.mktemp("published")
    reference = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3),
                                                  classifier_activation=None)
    randomize_weights(reference, seed=2)
    save_legacy_h5(reference, str(folder / "efficientnetb0.h5"))
    notop = keras.Model(reference.input, reference.get_layer("top_activation").output)
    save_legacy_h5(notop, str(folder / "efficientnetb0_notop.h5"))
    start = reference.get_layer("stem_conv_pad").input
    return folder, keras.Model(start, reference.output)


def md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


@pytest.fixture
def served_weights(published, monkeypatch, keras_home):
    folder, reference = published
    with serve(folder) as url:
        real = registry.get_weights("EfficientNetB0")
        fake = registry.WeightSet(**{**real.__dict__, "url": f"{url}/efficientnetb0.h5",
                                     "url_notop": f"{url}/efficientnetb0_notop.h5",
                                     "hash": md5(folder / "efficientnetb0.h5"),
                                     "hash_notop": md5(folder / "efficientnetb0_notop.h5")})
        monkeypatch.setitem(registry.REGISTRY, ("EfficientNetB0", "imagenet"), fake)
        yield fake, reference


def test_imagenet_download_verify_cache_load(served_weights, keras_home):
    fake, reference = served_weights
    model = ke.EfficientNetB0(weights="imagenet", input_shape=(32, 32, 3), classifier_activation=None,
                              include_preprocessing=False)
    cached = keras_home / "models" / "efficientnetb0.h5"
    assert cached.exists() and md5(cached) == fake.hash
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(reference(x)), atol=1e-4)
    # the notop file for include_top=False
    ke.EfficientNetB0(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    assert (keras_home / "models" / "efficientnetb0_notop.h5").exists()
    # second build uses the cache: the server is not needed any more
    registry.REGISTRY[("EfficientNetB0", "imagenet")] = registry.WeightSet(
        **{**fake.__dict__, "url": "http://127.0.0.1:9/efficientnetb0.h5"})
    ke.EfficientNetB0(weights="imagenet", input_shape=(32, 32, 3))


def test_wrong_hash_is_refused_and_nothing_cached(served_weights, keras_home, monkeypatch):
    fake, _ = served_weights
    bad = registry.WeightSet(**{**fake.__dict__, "hash": "0" * 32})
    monkeypatch.setitem(registry.REGISTRY, ("EfficientNetB0", "imagenet"), bad)
    with pytest.raises(ValueError, match="md5 .* but 0{32} was expected"):
        ke.EfficientNetB0(weights="imagenet", input_shape=(32, 32, 3))
    leftovers = [os.path.join(d, f) for d, _, files in os.walk(keras_home) for f in files]
    assert leftovers == []
    assert not [d for d in os.listdir(keras_home / "models") if d.startswith(".partial")]


def test_failed_download_leaves_nothing(served_weights, keras_home, monkeypatch):
    fake, _ = served_weights
    missing = registry.WeightSet(**{**fake.__dict__, "url": fake.url.replace("efficientnetb0.h5", "nope.h5")})
    monkeypatch.setitem(registry.REGISTRY, ("EfficientNetB0", "imagenet"), missing)
    with pytest.raises(ValueError, match="Could not download"):
        ke.EfficientNetB0(weights="imagenet", input_shape=(32, 32, 3))
    assert [f for _, _, files in os.walk(keras_home) for f in files] == []


def test_corrupt_cached_file_is_replaced(served_weights, keras_home):
    fake, _ = served_weights
    models = keras_home / "models"
    models.mkdir(exist_ok=True)
    (models / "efficientnetb0.h5").write_bytes(b"garbage")
    ke.EfficientNetB0(weights="imagenet", input_shape=(32, 32, 3))
    assert md5(models / "efficientnetb0.h5") == fake.hash


def test_registry_matches_keras_applications_urls():
    """Our registry names the files keras.applications publishes, with its hashes."""
    from keras.src.applications import efficientnet, efficientnet_v2
    for i in range(8):
        ws = registry.get_weights(f"EfficientNetB{i}")
        assert ws.url == f"{efficientnet.BASE_WEIGHTS_PATH}efficientnetb{i}.h5"
        assert (ws.hash, ws.hash_notop) == efficientnet.WEIGHTS_HASHES[f"b{i}"]
    for key, suffix in [("B0", "b0"), ("B1", "b1"), ("B2", "b2"), ("B3", "b3"), ("S", "-s"), ("M", "-m"), ("L", "-l")]:
        ws = registry.get_weights(f"EfficientNetV2{key}")
        stem = f"efficientnetv2-{suffix.strip('-')}"
        assert ws.url == f"{efficientnet_v2.BASE_WEIGHTS_PATH}{stem}.h5"
        assert ws.url_notop == f"{efficientnet_v2.BASE_WEIGHTS_PATH}{stem}_notop.h5"
        assert (ws.hash, ws.hash_notop) == efficientnet_v2.WEIGHTS_HASHES[suffix]
