"""Exported EfficientDets with NMS inside (SavedModel, TFLite with built-in ops only, ONNX)
give the Keras model's detections, run in their own runtimes; existing paths are refused
untouched. The exporters are TensorFlow's, so this runs under KERAS_BACKEND=tensorflow."""

import os

import numpy as np
import pytest
import torch  # noqa: F401  (before TensorFlow)

import keras

from conftest import BACKEND

from keras_efficientnet.detection import EfficientDetD0
from keras_efficientnet.detection.export import export_detector

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow",
                                reason="the SavedModel/TFLite/ONNX converters are TensorFlow's")


@pytest.fixture(scope="module")
def model_and_images():
    """D0 with effdet's head initialisation plus N(0, 0.05) on the two prediction kernels:
    scores spread over (0, 1) and box codes of order 0.5 (well conditioned, no ties), as a
    trained model's are; the bare prior initialisation gives nearly equal scores and fully
    random weights give box codes whose exp() reaches 1e5 px."""
    keras.utils.set_random_seed(0)
    model = EfficientDetD0(num_classes=3, input_shape=(128, 128, 3))
    rng = np.random.default_rng(0)
    for name in ("class_net_predict", "box_net_predict"):
        layer = model.get_layer(name)
        depthwise, pointwise, bias = layer.get_weights()
        layer.set_weights([depthwise, pointwise + rng.normal(0, 0.05, pointwise.shape), bias])
    images = rng.uniform(0, 255, (3, 128, 128, 3)).astype("float32")
    return model, images


@pytest.mark.parametrize("fmt,name", [("saved_model", "det_sm"), ("tflite", "det.tflite"),
                                      ("onnx", "det.onnx")])
def test_exported_detections_equal_keras(model_and_images, tmp_path, fmt, name):
    model, images = model_and_images
    result = export_detector(model, tmp_path / name, fmt, images=images)
    assert os.path.exists(tmp_path / name) and result.size_bytes > 1e6
    assert result.num_images == 3
    assert result.same_count and result.same_classes, result.summary()
    assert result.max_box_diff < 1e-2 and result.max_score_diff < 1e-4, result.summary()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".export-")] == []


def test_export_refuses_an_existing_path_and_bad_arguments(model_and_images, tmp_path):
    model, images = model_and_images
    keep = tmp_path / "mine.tflite"
    keep.write_bytes(b"user data")
    with pytest.raises(ValueError, match="exists"):
        export_detector(model, keep, "tflite")
    assert keep.read_bytes() == b"user data"
    with pytest.raises(ValueError, match="format must be one of"):
        export_detector(model, tmp_path / "x.pb", "coreml")
    with pytest.raises(ValueError, match="input size"):
        export_detector(model, tmp_path / "y.tflite", "tflite", images=images[:, :64])
    with pytest.raises(ValueError, match="EfficientDet"):
        clf = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        export_detector(clf, tmp_path / "z.tflite", "tflite")
