"""The segmentation fine-tuning recipe: a tiny U-Net learns on the embedded set (loss falls,
mean IoU rises over the untrained model); the frozen phase leaves every encoder weight and
BatchNorm statistic unchanged and runs the encoder in inference mode, the unfrozen phase
changes the encoder; bad arguments raise ValueError."""

import numpy as np
import pytest
import torch  # noqa: F401  (before TensorFlow)

import keras

from conftest import quick_on, to_numpy

from keras_efficientnet.segmentation import Unet
from keras_efficientnet.segmentation import recipe as R
from keras_efficientnet.segmentation.data import SegmentationBatches
from keras_efficientnet.segmentation.datasets import pasted_objects


def tiny_unet(**kwargs):
    keras.utils.set_random_seed(0)
    return Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=3, activation=None,
                decoder_filters=(32, 16, 16, 8, 8), **kwargs)


@pytest.fixture(scope="module")
def data():
    x, y, _ = pasted_objects(8, 64, seed=0)
    return SegmentationBatches(x, y, 4)


@pytest.mark.parametrize("case", [pytest.param("learn", marks=quick_on("tensorflow", "jax"))])
def test_fit_lowers_loss_and_raises_iou(data, case):
    model = tiny_unet()
    R.compile_segmentation(model)
    before = model.evaluate(data, verbose=0, return_dict=True)
    history = R.fit_segmentation(model, data, epochs=10, freeze_encoder_epochs=2,
                                 learning_rate=3e-3, verbose=0)
    assert history.epoch == list(range(10)) and len(history.phases) == 2
    assert history.history["loss"][-1] < history.history["loss"][0]
    R.compile_segmentation(model)
    after = model.evaluate(data, verbose=0, return_dict=True)
    assert after["loss"] < 0.8 * before["loss"], (before, after)
    assert after["mean_iou"] > before["mean_iou"] + 0.1, (before, after)


def encoder_values(model):
    return {w.path: to_numpy(w).copy() for layer in R.encoder_layers(model)
            for w in layer.weights}


class Snapshot(keras.callbacks.Callback):
    """Encoder and decoder weights at the end of the first epoch."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.encoder = encoder_values(self.model)
            self.decoder = {w.path: to_numpy(w).copy() for w in self.model.weights
                            if w.path.startswith("decoder")}


@pytest.mark.parametrize("train_bn", [
    pytest.param(False, marks=quick_on("torch")), pytest.param(True, marks=quick_on("jax"))])
def test_frozen_phase_keeps_encoder_then_unfrozen_changes_it(data, train_bn):
    model = tiny_unet()
    start = encoder_values(model)
    decoder_start = {w.path: to_numpy(w).copy() for w in model.weights
                     if w.path.startswith("decoder")}
    snap = Snapshot()
    R.fit_segmentation(model, data, epochs=2, freeze_encoder_epochs=1, callbacks=[snap],
                       train_encoder_batchnorm=train_bn, verbose=0)
    # phase 1: every encoder variable (kernels, BN gamma/beta and moving statistics) unchanged
    assert start.keys() == snap.encoder.keys()
    for path, value in start.items():
        np.testing.assert_array_equal(snap.encoder[path], value, err_msg=path)
    assert any(not np.array_equal(decoder_start[p], v) for p, v in snap.decoder.items())
    # phase 2: the encoder's kernels move; its BN statistics only with train_batchnorm
    end = encoder_values(model)
    kernels = [p for p in start if p.endswith("kernel")]
    stats = [p for p in start if p.endswith(("moving_mean", "moving_variance"))]
    assert kernels and stats
    changed = [p for p in kernels if not np.array_equal(end[p], start[p])]
    assert len(changed) == len(kernels), sorted(set(kernels) - set(changed))[:5]
    stats_changed = [p for p in stats if not np.array_equal(end[p], start[p])]
    if train_bn:
        assert len(stats_changed) == len(stats)
    else:
        assert stats_changed == []
    # stochastic depth restored after the frozen phase
    assert model.get_layer("block2b_drop").rate > 0


@quick_on("tensorflow")
def test_frozen_encoder_runs_in_inference_mode():
    model = R.freeze_encoder(tiny_unet())
    taps = keras.Model(model.input, model.get_layer("block7a_project_bn").output)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(to_numpy(taps(x, training=True)),
                                  to_numpy(taps(x, training=False)))
    assert model.get_layer("block2b_drop").rate == 0
    assert {w.path.split("_")[0] for w in model.trainable_weights} == {"decoder", "final"}
    R.unfreeze_encoder(model)
    assert model.get_layer("block2b_drop").rate > 0
    assert model.get_layer("stem_conv").trainable and not model.get_layer("stem_bn").trainable
    R.unfreeze_encoder(model, train_batchnorm=True)
    assert model.get_layer("stem_bn").trainable


@quick_on("tensorflow")
def test_compile_reads_the_output_and_schedules():
    model = tiny_unet()
    R.compile_segmentation(model, loss="dice_focal", total_steps=100, warmup_steps=10,
                           learning_rate=0.01)
    assert model.loss.mode == "multiclass" and model.loss.from_logits

    schedule = model.optimizer._learning_rate
    assert [round(float(schedule(s)), 5) for s in (0, 5, 10, 55, 100)] == \
        [0.0, 0.005, 0.01, 0.005, 0.0]

    binary = Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=1)  # sigmoid
    R.compile_segmentation(binary, loss="ce")
    assert binary.loss.mode == "binary" and not binary.loss.from_logits
    assert binary.loss.dice_weight == 0.0



def test_errors(data):
    model = tiny_unet()
    with pytest.raises(ValueError, match="Unknown loss"):
        R.compile_segmentation(model, loss="jaccard")
    with pytest.raises(ValueError, match="learning_rate"):
        R.compile_segmentation(model, learning_rate=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        R.compile_segmentation(model, total_steps=5, warmup_steps=6)
    with pytest.raises(ValueError, match="freeze_encoder_epochs"):
        R.fit_segmentation(model, data, epochs=2, freeze_encoder_epochs=3)
    with pytest.raises(ValueError, match="epochs"):
        R.fit_segmentation(model, data, epochs=0)
    with pytest.raises(ValueError, match="train_encoder_batchnorm"):
        R.fit_segmentation(model, data, epochs=1, train_encoder_batchnorm="yes")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        R.fit_segmentation(model, (b for b in [data[0]]), epochs=1)
    with pytest.raises(ValueError, match="multi-label"):
        R.compile_segmentation(Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=3))
    with pytest.raises(ValueError, match="one channel"):
        R.compile_segmentation(Unet("EfficientNetB0", input_shape=(64, 64, 3), classes=1,
                                    activation="softmax"))
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 1)])
    with pytest.raises(ValueError, match="not a segmentation model"):
        R.freeze_encoder(plain)
