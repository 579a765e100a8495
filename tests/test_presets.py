"""Preset folders: ours round-trip on every backend with their class names and information,
bad folders get a ValueError, and keras-hub 0.32's own EfficientNet presets (saved by
keras-hub with random weights and random BatchNorm statistics) load with keras-hub's outputs.
The keras-hub cases skip when keras-hub is absent (it is installed without its dependencies,
see .ci/run)."""

import json
import os

import numpy as np
import pytest
import torch  # noqa: F401  (before TensorFlow)

import keras

from conftest import randomize_weights, rotate, to_numpy

import keras_efficientnet as ke
from keras_efficientnet.presets import model_info, read_preset_info

X = np.random.default_rng(7).uniform(0, 255, (2, 64, 64, 3)).astype("float32")


def small_classifier(classes=3):
    model = ke.create_model("EfficientNetB0", weights=None, input_shape=(64, 64, 3),
                            classes=classes)
    randomize_weights(model)
    return model


def test_round_trip_keeps_outputs_names_and_info(tmp_path):
    model = small_classifier()
    path = ke.save_preset(model, tmp_path / "pets", class_names=["cat", "dog", "fox"])
    assert sorted(os.listdir(path)) == ["config.json", "metadata.json", "model.weights.h5"]
    meta = json.load(open(os.path.join(path, "metadata.json")))
    # keras-hub's metadata keys, then ours
    assert {"keras_version", "parameter_count", "date_saved", "tasks"} <= set(meta)
    assert meta["parameter_count"] == model.count_params()
    info = read_preset_info(path)
    assert info["class_names"] == ["cat", "dog", "fox"]
    assert info["task"] == "classification" and info["image_size"] == [64, 64]
    assert info["variant"] == model.pretrained_cfg["variant"]

    again = ke.from_preset(path)
    assert again.class_names == ("cat", "dog", "fox")
    assert [l.name for l in again.layers] == [l.name for l in model.layers]
    want = to_numpy(model(X, training=False))
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(to_numpy(again(X, training=False)), want, rtol=1e-6, atol=1e-6)
    # a saved-and-reloaded model keeps what it knows: saving it again needs no class names
    path2 = ke.save_preset(again, tmp_path / "pets2")
    assert read_preset_info(path2)["class_names"] == ["cat", "dog", "fox"]
    assert model_info(again)["class_names"] == ["cat", "dog", "fox"]


def test_input_shape_rebuilds_with_the_same_weights(tmp_path):
    model = ke.create_model("EfficientNetB0", weights=None, include_top=False, pooling="avg",
                            input_shape=(64, 64, 3))
    randomize_weights(model, seed=3)
    path = ke.save_preset(model, tmp_path / "p")
    bigger = ke.from_preset(path, input_shape=(96, 96, 3))
    assert bigger.input_shape == (None, 96, 96, 3)
    assert read_preset_info(path)["task"] is None and bigger.class_names is None
    x = np.random.default_rng(1).uniform(0, 255, (1, 96, 96, 3)).astype("float32")
    model96 = ke.create_model("EfficientNetB0", weights=None, include_top=False, pooling="avg",
                              input_shape=(96, 96, 3))
    model96.set_weights(model.get_weights())
    np.testing.assert_allclose(to_numpy(bigger(x)), to_numpy(model96(x)), rtol=1e-5, atol=1e-5)


def test_existing_preset_is_kept_unless_overwrite(tmp_path):
    first, second = small_classifier(2), small_classifier(2)
    randomize_weights(second, seed=9)
    path = ke.save_preset(first, tmp_path / "p", class_names=["a", "b"])
    before = sorted(os.listdir(path))
    with pytest.raises(FileExistsError):
        ke.save_preset(second, path, class_names=["c", "d"])
    assert sorted(os.listdir(path)) == before
    assert ke.from_preset(path).class_names == ("a", "b")
    ke.save_preset(second, path, class_names=["c", "d"], overwrite=True)
    loaded = ke.from_preset(path)
    assert loaded.class_names == ("c", "d")
    np.testing.assert_allclose(to_numpy(loaded(X)), to_numpy(second(X)), rtol=1e-6, atol=1e-6)
    # nothing of the replaced preset or of the partial folder is left beside it
    assert sorted(os.listdir(tmp_path)) == ["p"]


def test_bad_arguments_write_nothing(tmp_path):
    model = small_classifier(3)
    with pytest.raises(ValueError, match="3 outputs"):
        ke.save_preset(model, tmp_path / "p", class_names=["only", "two"])
    with pytest.raises(ValueError, match="task must be"):
        ke.save_preset(model, tmp_path / "p", task="ranking")
    assert not (tmp_path / "p").exists()
    assert os.listdir(tmp_path) == []


def test_damaged_or_missing_files_give_value_errors(tmp_path):
    path = ke.save_preset(small_classifier(2), tmp_path / "p")
    with pytest.raises(ValueError, match="no such folder"):
        ke.from_preset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="is a file"):
        ke.from_preset(os.path.join(path, "config.json"))
    with pytest.raises(ValueError, match="takes only input_shape"):
        ke.from_preset(path, classes=5)

    weights = os.path.join(path, "model.weights.h5")
    data = open(weights, "rb").read()
    open(weights, "wb").write(data[: len(data) // 3])
    with pytest.raises(ValueError, match="model.weights.h5"):
        ke.from_preset(path)
    os.remove(weights)
    with pytest.raises(ValueError, match="no model.weights.h5"):
        ke.from_preset(path)

    open(os.path.join(path, "config.json"), "w").write("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ke.from_preset(path)
    os.remove(os.path.join(path, "config.json"))
    with pytest.raises(ValueError, match="missing"):
        ke.from_preset(path)


def test_weights_of_another_model_are_refused(tmp_path):
    path = ke.save_preset(small_classifier(2), tmp_path / "p")
    other = ke.create_model("EfficientNetB1", weights=None, input_shape=(64, 64, 3), classes=2)
    other.save_weights(os.path.join(tmp_path, "other.weights.h5"))
    os.replace(os.path.join(tmp_path, "other.weights.h5"), os.path.join(path, "model.weights.h5"))
    with pytest.raises(ValueError, match="does not fit"):
        ke.from_preset(path)


def test_unknown_variant_name_is_a_value_error():
    with pytest.raises(ValueError, match="Unknown"):
        ke.from_preset("EfficientNetB99")


# keras-hub's own presets --------------------------------------------------------------------

def keras_hub_preset(arch, path, classes=10, head=True):
    """Save keras-hub's converted timm ``arch`` (random weights, random BatchNorm statistics,
    a 64 px ImageNet-normalising image converter) with keras-hub's ``save_to_preset``; return
    keras-hub's output for ``X`` (0-255 pixels through its converter's scale and offset)."""
    keras_hub = pytest.importorskip("keras_hub")
    from keras_hub.src.utils.timm.convert_efficientnet import convert_backbone_config

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.EfficientNetBackbone(
        **convert_backbone_config({"architecture": arch}))
    rng = np.random.default_rng(0)
    for v in backbone.weights:
        if v.path.endswith("moving_variance"):
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
        elif v.path.endswith(("moving_mean", "beta")):
            v.assign(rng.uniform(-0.1, 0.1, v.shape).astype("float32"))
        elif v.path.endswith("gamma"):
            v.assign(rng.uniform(0.8, 1.2, v.shape).astype("float32"))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    scale, offset = (1 / (255 * std)).tolist(), (-mean / std).tolist()
    if head:
        converter = keras_hub.layers.EfficientNetImageConverter(
            image_size=(64, 64), scale=scale, offset=offset, interpolation="bicubic")
        model = keras_hub.models.EfficientNetImageClassifier(
            backbone, classes, preprocessor=keras_hub.models.EfficientNetImageClassifierPreprocessor(
                image_converter=converter))
    else:
        model = backbone
    model.save_to_preset(str(path))
    x = X * np.array(scale, "float32") + np.array(offset, "float32")
    return to_numpy(model(x))


@pytest.mark.parametrize("arch", rotate(["efficientnet_b0", "efficientnet_lite0",
                                         "efficientnet_b3"], everywhere=("efficientnet_b0",)))
def test_keras_hub_classifier_preset_loads_with_keras_hubs_outputs(tmp_path, arch):
    want = keras_hub_preset(arch, tmp_path / "hub")
    assert sorted(os.listdir(tmp_path / "hub")) == [
        "config.json", "image_converter.json", "metadata.json", "model.weights.h5",
        "preprocessor.json", "task.json", "task.weights.h5"]
    ours = ke.from_preset(tmp_path / "hub")
    assert ours.input_shape == (None, 64, 64, 3) and ours.output_shape == (None, 10)
    assert ours.preset_info["variant"] == arch and ours.preset_info["format"] == "keras-hub"
    assert np.abs(want).max() > 1e-2  # keras-hub's logits are not all near zero
    np.testing.assert_allclose(to_numpy(ours(X, training=False)), want, rtol=0, atol=1e-4)
    # and it travels on as our own preset
    again = ke.from_preset(ke.save_preset(ours, tmp_path / "ours"))
    np.testing.assert_allclose(to_numpy(again(X)), want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("arch", rotate(["efficientnet_b0"]))
def test_keras_hub_backbone_preset_loads_as_a_headless_model(tmp_path, arch):
    keras_hub_preset(arch, tmp_path / "hub", head=False)
    with pytest.raises(ValueError, match="include_top=False"):
        ke.from_preset(tmp_path / "hub", include_top=True)
    ours = ke.from_preset(tmp_path / "hub", input_shape=(64, 64, 3))
    assert ours.class_names is None and ours.preset_info["task"] is None
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(str(tmp_path / "hub"))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    # without an image converter the preset records no normalisation: ours keeps the variant's
    want = to_numpy(backbone(((X / 255.0 - mean) / std).astype("float32")))
    assert want.shape == (2, 2, 2, 1280) and np.abs(want).max() > 1e-2
    np.testing.assert_allclose(to_numpy(ours(X, training=False)), want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("arch", rotate(["efficientnet_es", "efficientnetv2_rw_t"]))
def test_keras_hub_presets_whose_network_is_not_timms_are_refused(tmp_path, arch):
    keras_hub_preset(arch, tmp_path / "hub")
    with pytest.raises(ValueError, match="differently from timm"):
        ke.from_preset(tmp_path / "hub")


def test_from_checkpoint_reads_presets_keras_files_and_save_weights_files(tmp_path):
    model = small_classifier(3)
    want = to_numpy(model(X, training=False))
    preset = ke.save_preset(model, tmp_path / "p", class_names=["a", "b", "c"])
    keras_file = str(tmp_path / "m.keras")
    model.save(keras_file)
    weights = ke.save_weights(model, str(tmp_path / "m.weights.h5"))  # records its variant
    assert ke.inspect_checkpoint(weights)["variant"] == model.pretrained_cfg["variant"]
    for path, names in ((preset, ("a", "b", "c")), (keras_file, None), (weights, None)):
        loaded = ke.from_checkpoint(path, input_shape=(64, 64, 3))
        assert getattr(loaded, "class_names", None) == names, path
        np.testing.assert_allclose(to_numpy(loaded(X, training=False)), want, rtol=1e-5,
                                   atol=1e-5, err_msg=path)
    with pytest.raises(ValueError, match="only input_shape"):
        ke.from_checkpoint(keras_file, classes=3)
