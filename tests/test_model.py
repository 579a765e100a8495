"""The layers and the assembled model: serialization, data formats, training, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_efficientnet as ke
from keras_efficientnet import layers as kel
from keras_efficientnet.specs import get_spec
from conftest import BACKEND, max_rel_diff, randomize_weights, save_legacy_h5, to_numpy

TINY = get_spec("EfficientNetB0").replace(name="tiny_b0", width=0.25, depth=0.34)
TINY_V2 = get_spec("EfficientNetV2B0").replace(name="tiny_v2", width=0.25, depth=0.34)


LAYER_CASES = [
    (kel.MBConv, dict(filters=16, kernel_size=5, strides=2, expand_filters=48, se_filters=4,
                      drop_rate=0.1, padding="symmetric", bn_epsilon=1e-5), (2, 9, 9, 8)),
    (kel.MBConv, dict(filters=8, kernel_size=3, strides=1, expand_filters=None, se_filters=2,
                      activation="relu6"), (2, 8, 8, 8)),
    (kel.FusedMBConv, dict(filters=16, kernel_size=3, strides=2, expand_filters=32,
                           padding="symmetric"), (2, 8, 8, 8)),
    (kel.FusedMBConv, dict(filters=8, kernel_size=3, strides=1, se_filters=2), (2, 8, 8, 8)),
    (kel.SqueezeExcite, dict(filters=3, activation="relu", gate_activation="hard_sigmoid"), (2, 5, 5, 8)),
    (kel.StochasticDepth, dict(rate=0.3, seed=3), (2, 4, 4, 8)),
    (kel.Normalize, dict(mean=[1.0, 2.0, 3.0], std=[2.0, 3.0, 4.0]), (2, 4, 4, 3)),
]


@pytest.mark.parametrize("cls,kwargs,shape", LAYER_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_layer_config_round_trip(cls, kwargs, shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer = cls(**kwargs)
    y = to_numpy(layer(x))
    clone = cls.from_config(layer.get_config())
    clone(x)
    assert clone.get_config() == layer.get_config()
    if layer.weights:
        clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(clone(x)), y, atol=1e-6)
    # serialization through the registry, as .keras files do it
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(again) is cls


NO_NCHW_ON_CPU = pytest.mark.skipif(
    BACKEND == "tensorflow", reason="TensorFlow has no NCHW convolution kernels on CPU (its own error: "
    "'Conv2D op currently only supports the NHWC tensor format on the CPU'); keras.applications fails alike")


@NO_NCHW_ON_CPU
@pytest.mark.parametrize("cls,kwargs,shape", LAYER_CASES[:5], ids=lambda v: getattr(v, "__name__", ""))
def test_layers_channels_first(cls, kwargs, shape):
    """The same weights give the same outputs, transposed, in channels_first."""
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    last = cls(**kwargs, data_format="channels_last")
    y_last = to_numpy(last(x))
    first = cls(**kwargs, data_format="channels_first")
    first(np.transpose(x, (0, 3, 1, 2)))
    rng = np.random.default_rng(2)
    values = []
    for w in last.weights:
        v = rng.normal(0.5, 0.2, tuple(w.shape)).astype("float32")
        if "variance" in w.path:
            v = np.abs(v) + 0.5
        values.append(v)
    last.set_weights(values)
    first.set_weights(values)
    y_last = to_numpy(last(x))
    y_first = to_numpy(first(np.transpose(x, (0, 3, 1, 2))))
    np.testing.assert_allclose(np.transpose(y_first, (0, 2, 3, 1)), y_last, atol=1e-4)


def test_symmetric_padding_is_pytorch_padding():
    """padding="symmetric" at stride 2 pads k//2 on every side, as torch.nn.Conv2d(padding=k//2)."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(1, 10, 10, 4)).astype("float32")
    block = kel.MBConv(4, kernel_size=5, strides=2, expand_filters=None, residual=False,
                       padding="symmetric")
    block(x)
    kernel = to_numpy(block.dwconv.kernel)  # (5, 5, 4, 1)
    conv = torch.nn.Conv2d(4, 4, 5, stride=2, padding=2, groups=4, bias=False)
    conv.weight.data = torch.from_numpy(np.transpose(kernel, (2, 3, 0, 1)).copy())
    reference = conv(torch.from_numpy(np.transpose(x, (0, 3, 1, 2)))).detach().numpy()
    got = to_numpy(block.dwconv(block_pad := kel.common.pad_spatial(x, 2, "channels_last")))
    del block_pad
    np.testing.assert_allclose(np.transpose(got, (0, 3, 1, 2)), reference, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_model():
    model = ke.build_efficientnet(TINY, input_shape=(32, 32, 3), classes=10, classifier_activation=None)
    randomize_weights(model, seed=7)
    return model


def test_keras_save_load_round_trip(tiny_model, tmp_path):
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    path = str(tmp_path / "m.keras")
    tiny_model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(tiny_model(x)))
    assert [l.name for l in loaded.layers] == [l.name for l in tiny_model.layers]


@NO_NCHW_ON_CPU
def test_v2_and_channels_first_model():
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    last = ke.build_efficientnet(TINY_V2, input_shape=(32, 32, 3), classes=4)
    randomize_weights(last, seed=3)
    first = ke.build_efficientnet(TINY_V2, input_shape=(3, 32, 32), classes=4,
                                  data_format="channels_first")
    first.set_weights(last.get_weights())
    np.testing.assert_allclose(to_numpy(first(np.transpose(x, (0, 3, 1, 2)))), to_numpy(last(x)),
                               atol=1e-5)


def test_bad_data_format():
    with pytest.raises(ValueError, match="data_format must be"):
        ke.EfficientNetB0(weights=None, data_format="NHWC")
    # channels_first builds on every backend, TensorFlow's CPU included (as keras.applications:
    # users build it there to save it for a GPU); see test_drop_in.test_channels_first_builds_everywhere


def test_weights_file_round_trip_and_flexible_input(tiny_model, tmp_path):
    path = ke.save_weights(tiny_model, str(tmp_path / "tiny.weights.h5"))
    again = ke.build_efficientnet(TINY, weights=path, input_shape=(32, 32, 3), classes=10,
                                  classifier_activation=None)
    x = np.random.default_rng(1).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(to_numpy(again(x)), to_numpy(tiny_model(x)))
    # the same file into a headless model of any input size: classifier left out on purpose
    features = ke.build_efficientnet(TINY, weights=path, include_top=False, pooling="avg")
    assert features.output_shape == (None, 320)
    assert features(np.zeros((1, 48, 40, 3), "float32")).shape == (1, 320)
    # Keras' own save_weights format loads too
    native = str(tmp_path / "native.weights.h5")
    tiny_model.save_weights(native)
    again = ke.build_efficientnet(TINY, weights=native, input_shape=(32, 32, 3), classes=10,
                                  classifier_activation=None)
    np.testing.assert_array_equal(to_numpy(again(x)), to_numpy(tiny_model(x)))


def test_transfer_learning_fit_loss_falls():
    backbone = ke.build_efficientnet(TINY, include_top=False, pooling="avg", input_shape=(32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(3, activation="softmax")(backbone(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 32)
    x = (rng.uniform(0, 60, (32, 32, 32, 3)) + 60 * y[:, None, None, None]).astype("float32")
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_output_dtype_under_mixed_precision_as_keras_applications():
    """Under a mixed policy the classifier computes and returns what keras.applications'
    does (the constructors' graph is keras.applications'); mixed_float16 in test_drop_in."""
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        ref = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        y = model(np.zeros((1, 32, 32, 3), "float32"))
        y_ref = ref(np.zeros((1, 32, 32, 3), "float32"))
    finally:
        keras.config.set_dtype_policy("float32")
    assert keras.backend.standardize_dtype(y.dtype) == keras.backend.standardize_dtype(y_ref.dtype)
    assert model.get_layer("predictions").dtype_policy.name == \
        ref.get_layer("predictions").dtype_policy.name


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["EfficientNetB0", "EfficientNetV2B0", "EfficientNetLite0",
                                  "EfficientNetEdgeTPUS", "tf_efficientnet_cc_b0_4e"])
def test_every_layer_built_at_construction(name):
    """keras.applications' models have no unbuilt (sub)layer after construction; neither may
    ours. An unbuilt sublayer (the stochastic-depth layer, never called in inference) made Keras'
    JAX predict run the whole model eagerly, op by op, before compiling: B0's first predict at
    batch 32 took a minute instead of seconds (benchmarks/run.py first-call latency)."""
    model = ke.create_model(name, weights=None, input_shape=(32, 32, 3))
    if name == "EfficientNetB0":
        reference = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3))
        assert [l.name for l in reference._flatten_layers() if not l.built] == []
    unbuilt = [f"{type(l).__name__} {l.name}" for l in model._flatten_layers() if not l.built]
    assert unbuilt == []


def test_unknown_variant():
    with pytest.raises(ValueError, match="Unknown EfficientNet variant 'EfficientNetB9'"):
        ke.create_model("EfficientNetB9")


def test_imagenet_with_other_class_count():
    with pytest.raises(ValueError, match="1000-class classifier, but classes=10"):
        ke.EfficientNetB0(weights="imagenet", classes=10)


@pytest.mark.parametrize("shape,message", [((16, 16, 3), "too small"), ((64, 64, 1), "3 input channels"),
                                           ((64, 64), "3 dimensions")])
def test_bad_input_shapes(shape, message):
    with pytest.raises(ValueError, match=message):
        ke.EfficientNetB0(weights="imagenet", input_shape=shape)


def test_bad_weights_arguments(tmp_path):
    with pytest.raises(ValueError, match="neither None, a registered weight set"):
        ke.EfficientNetB0(weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="no weight set 'noisy'"):
        ke.EfficientNetB0(weights="noisy")
    with pytest.raises(ValueError, match="pooling"):
        ke.EfficientNetB0(weights=None, include_top=False, pooling="sum")


@pytest.fixture(scope="module")
def b0_file(tmp_path_factory):
    """A keras.applications B0 weights file in its published layout."""
    reference = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3))
    randomize_weights(reference, seed=11)
    return save_legacy_h5(reference, str(tmp_path_factory.mktemp("ka") / "efficientnetb0.h5"))


def test_weights_of_another_variant(b0_file):
    with pytest.raises(ValueError, match=r"does not fit model .*shapes differ|lacks"):
        ke.EfficientNetB1(weights=b0_file, input_shape=(32, 32, 3))


def test_truncated_and_foreign_files(b0_file, tmp_path):
    truncated = tmp_path / "truncated.h5"
    data = open(b0_file, "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        ke.EfficientNetB0(weights=str(truncated), input_shape=(32, 32, 3))
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="not a weights file"):
        ke.EfficientNetB0(weights=str(text), input_shape=(32, 32, 3))
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        ke.EfficientNetB0(weights=str(empty), input_shape=(32, 32, 3))


def test_no_weight_is_skipped(b0_file, tmp_path):
    """A file missing one tensor, or holding one extra, is refused with the names."""
    import h5py
    import shutil
    for edit, message in (("drop", "file lacks: block2a_bn/gamma"), ("add", "model lacks: block9a_bn/gamma")):
        path = str(tmp_path / f"{edit}.h5")
        shutil.copy(b0_file, path)
        with h5py.File(path, "a") as f:
            if edit == "drop":
                group = f["block2a_bn"]
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
                group.attrs["weight_names"] = [n.encode() for n in names if "gamma" not in n]
            else:
                group = f.create_group("block9a_bn")
                group.create_dataset("block9a_bn/gamma:0", data=np.ones(3, "float32"))
                group.attrs["weight_names"] = [b"block9a_bn/gamma:0"]
                layers = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
                f.attrs["layer_names"] = [n.encode() for n in layers + ["block9a_bn"]]
        with pytest.raises(ValueError, match=message):
            ke.EfficientNetB0(weights=path, input_shape=(32, 32, 3))


# --- cross-backend -----------------------------------------------------------------------------

def test_weights_saved_on_another_backend(tmp_path):
    """A model saved under another backend (in a subprocess) gives the same outputs here."""
    # TensorFlow reads PyTorch's files, JAX PyTorch's, PyTorch JAX's (a cold JAX subprocess
    # costs TensorFlow's run two minutes of compiles; PyTorch's runs after JAX's cache is warm).
    other = {"tensorflow": "torch", "jax": "torch", "torch": "jax"}[BACKEND]
    x = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    script = f"""
import numpy as np, keras, keras_efficientnet as ke
from keras_efficientnet.specs import get_spec
spec = get_spec("EfficientNetB0").replace(name="tiny_b0", width=0.25, depth=0.34)
model = ke.build_efficientnet(spec, input_shape=(32, 32, 3), classes=10, classifier_activation=None)
rng = np.random.default_rng(9)
for w in model.weights:
    v = rng.normal(0, 0.3, tuple(w.shape))
    w.assign((np.abs(v) + 0.5 if "variance" in w.path else v).astype("float32"))
ke.save_weights(model, r"{tmp_path / 'w.weights.h5'}")
model.save(r"{tmp_path / 'm.keras'}")
np.save(r"{tmp_path / 'y.npy'}", keras.ops.convert_to_numpy(model(np.load(r"{tmp_path / 'x.npy'}"))))
"""
    env = {**os.environ, "KERAS_BACKEND": other}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    expected = np.load(tmp_path / "y.npy")
    ours = ke.build_efficientnet(TINY, weights=str(tmp_path / "w.weights.h5"), input_shape=(32, 32, 3),
                                 classes=10, classifier_activation=None)
    assert max_rel_diff(expected, to_numpy(ours(x))) <= 1e-5
    loaded = keras.models.load_model(str(tmp_path / "m.keras"))
    assert max_rel_diff(expected, to_numpy(loaded(x))) <= 1e-5
    json.dumps(loaded.get_config())  # the config is plain JSON
