"""The training recipe: learning-rate formula, RMSprop settings, weight EMA, drop-path schedule,
progressive learning, augmentation, and data-parallel fit on 2 host devices (JAX DataParallel,
TensorFlow MirroredStrategy)."""

import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from conftest import BACKEND, quick_on, to_numpy
from keras_efficientnet import build_efficientnet, get_spec
from keras_efficientnet.layers import StochasticDepth
from keras_efficientnet.specs import resolve
from keras_efficientnet.training.recipe import (NVIDIA, PAPER, WarmupCosineDecay, apply_stage,
                                                augmenter, drop_path_schedule, progressive_stages)
from keras_efficientnet.training.schedules import warmup_cosine_decay


@pytest.mark.parametrize("total,warmup,alpha", [(100, 10, 0.0), (37, 0, 0.1), (50, 49, 0.2),
                                                (1000, 250, 0.05)])
def test_keras_cosine_decay_equals_former_schedule(total, warmup, alpha):
    # Keras' CosineDecay(warmup_target=, warmup_steps=) replaces the package's own schedule:
    # the same rates at every step of the run and past its end (the former class is the
    # reference: it was the package's schedule before, with its own closed-form code).
    ours = warmup_cosine_decay(0.3, total, warmup, alpha)
    former = WarmupCosineDecay(0.3, total, warmup, alpha)
    assert isinstance(ours, keras.optimizers.schedules.CosineDecay)
    steps = list(range(0, total + 5))
    got = np.array([float(ours(s)) for s in steps])
    want = np.array([float(former(s)) for s in steps])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # and the closed form, in float64
    t = np.clip((np.array(steps, "float64") - warmup) / (total - warmup), 0, 1)
    closed = np.where(np.array(steps) < warmup, 0.3 * np.array(steps) / max(warmup, 1),
                      0.3 * (alpha + (1 - alpha) * 0.5 * (1 + np.cos(np.pi * t))))
    np.testing.assert_allclose(got, closed, rtol=1e-5, atol=1e-7)


def test_former_schedule_still_deserialises():
    # a .keras file saved before the switch names keras_efficientnet>WarmupCosineDecay
    config = keras.optimizers.schedules.serialize(WarmupCosineDecay(0.1, 100, 10))
    assert config["registered_name"] == "keras_efficientnet>WarmupCosineDecay"
    restored = keras.optimizers.schedules.deserialize(config)
    assert float(restored(55)) == pytest.approx(0.05, rel=1e-5)


@pytest.mark.parametrize("recipe,batch", [(PAPER, 512), (NVIDIA, 1024)])
def test_learning_rate_formula(recipe, batch):
    steps_per_epoch, epochs = 50, 20
    schedule = recipe.schedule(batch, steps_per_epoch, epochs)
    peak = recipe.base_learning_rate * batch / recipe.base_batch_size
    warm = int(recipe.warmup_epochs * steps_per_epoch)
    total = steps_per_epoch * epochs
    assert math.isclose(float(schedule(warm)), peak, rel_tol=1e-6)  # end of warm-up
    assert math.isclose(float(schedule(warm // 2)), peak * (warm // 2) / warm, rel_tol=1e-6)
    mid = (warm + total) // 2
    expected_mid = peak * 0.5 * (1 + math.cos(math.pi * (mid - warm) / (total - warm)))
    assert math.isclose(float(schedule(mid)), expected_mid, rel_tol=1e-5)
    assert float(schedule(total)) == pytest.approx(peak * recipe.min_lr_fraction, abs=1e-9)
    assert (PAPER.learning_rate(4096), NVIDIA.learning_rate(4096)) == pytest.approx((0.256, 0.08))
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(restored(mid)) == pytest.approx(float(schedule(mid)))


def test_optimizer_settings():
    opt = NVIDIA.optimizer(256, steps_per_epoch=10, epochs=3)
    assert isinstance(opt, keras.optimizers.RMSprop)
    assert (opt.rho, opt.momentum, opt.epsilon, opt.weight_decay) == (0.9, 0.9, 0.01, 1e-5)
    assert opt.use_ema and opt.ema_momentum == 0.9999
    assert PAPER.loss().label_smoothing == 0.1
    # Keras' RMSprop puts epsilon inside the sqrt, like TF1 (the paper): one step by hand
    var = keras.Variable(np.ones(3, "float32"))
    rms = keras.optimizers.RMSprop(0.1, rho=0.9, momentum=0.0, epsilon=1e-3)
    g = np.array([0.1, 0.01, 0.0], "float32")
    rms.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    ms = 0.1 * g ** 2
    np.testing.assert_allclose(to_numpy(var), 1 - 0.1 * g / np.sqrt(ms + 1e-3), rtol=1e-5)


@pytest.mark.parametrize("warmup", [True, pytest.param(False, marks=quick_on("torch"))])
def test_weight_ema_matches_numpy(warmup):
    """The recipe's EMA equals an EMA computed in NumPy over the recorded weight trajectory:
    first step copies the weights, then decay min(m, (1 + t) / (10 + t)) (TF's
    ExponentialMovingAverage with num_updates) or the fixed m (Keras' own rule)."""
    momentum = 0.9
    model = build_efficientnet(get_spec("EfficientNetB0").replace(width=0.25, depth=0.1),
                               input_shape=(32, 32, 3), classes=3, dropout_rate=0.0,
                               drop_connect_rate=0.0)
    recipe = PAPER.replace(ema_momentum=momentum, ema_warmup=warmup, label_smoothing=0.0,
                           base_learning_rate=0.05, base_batch_size=8, warmup_epochs=0)
    model.compile(optimizer=recipe.optimizer(8, steps_per_epoch=6, epochs=1),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 3
    trajectory = []
    for _ in range(6):
        model.train_on_batch(x, y)
        trajectory.append([to_numpy(v).astype("float64") for v in model.trainable_variables])
    average = trajectory[0]
    for t, weights in enumerate(trajectory[1:], start=1):
        decay = min(momentum, (1 + t) / (10 + t)) if warmup else momentum
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights)]
    assert not np.allclose(trajectory[-1][0], trajectory[0][0])  # the weights moved
    model.optimizer.finalize_variable_values(model.trainable_variables)
    for v, expected, last in zip(model.trainable_variables, average, trajectory[-1]):
        np.testing.assert_allclose(to_numpy(v), expected, rtol=1e-5, atol=1e-6, err_msg=v.path)
    # warm-up: the average of 6 steps stays close to the recent weights, not the first ones
    kernel = [i for i, v in enumerate(model.trainable_variables) if v.path.endswith("stem_conv/kernel")][0]
    moved = np.abs(trajectory[-1][kernel] - trajectory[0][kernel]).sum()
    gap = np.abs(average[kernel] - trajectory[-1][kernel]).sum()
    assert (gap < 0.5 * moved) == warmup, (gap, moved)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
    assert restored.ema_warmup == warmup


def test_drop_path_rates_linear_after_depth_scaling():
    spec = get_spec("EfficientNetB0").replace(width=0.25, depth=1.5)  # 16 -> 26 blocks
    rates = drop_path_schedule(spec, 0.3)
    n = len(resolve(spec).blocks)
    assert n == 26 and len(rates) == n
    np.testing.assert_allclose([r for _, r in rates], [0.3 * i / n for i in range(n)])
    model = build_efficientnet(spec, include_top=False, input_shape=(32, 32, 3),
                               drop_connect_rate=0.3)
    built = {l.name: l.drop.rate for l in model.layers if getattr(l, "drop", None) is not None}
    assert all(isinstance(model.get_layer(b).drop, StochasticDepth) for b in built)
    assert built == {name: pytest.approx(rate) for name, rate in rates if name in built}


def test_progressive_stages_change_size_and_regularisation():
    stages = progressive_stages("EfficientNetV2S", epochs=12)
    assert [s.image_size for s in stages] == [128, 185, 242, 300]
    assert [s.start_epoch for s in stages] == [0, 3, 6, 9] and stages[-1].end_epoch == 12
    assert stages[0].dropout == 0.1 and stages[-1].dropout == 0.3
    assert [s.randaugment_magnitude for s in stages] == pytest.approx([5, 8.333, 11.667, 15], abs=1e-3)
    assert [s.mixup_alpha for s in progressive_stages("EfficientNetV2L", 4)] == \
        pytest.approx([0, 0.133, 0.267, 0.4], abs=1e-3)
    # one model, trained at the stages' sizes: its dropout follows, its input size is free
    model = build_efficientnet(get_spec("EfficientNetV2B0").replace(width=0.25, depth=0.1),
                               input_shape=(None, None, 3), classes=2)
    small = progressive_stages(_tiny_config(), 2)
    for stage in small:
        apply_stage(model, stage)
        assert model.get_layer("top_dropout").rate == stage.dropout
        x = np.zeros((2, stage.image_size, stage.image_size, 3), "float32")
        assert tuple(model(x, training=False).shape) == (2, 2)
    assert small[0].image_size != small[1].image_size
    fixed = build_efficientnet(get_spec("EfficientNetV2B0").replace(width=0.25, depth=0.1),
                               input_shape=(32, 32, 3), classes=2)
    with pytest.raises(ValueError, match="None, None"):
        apply_stage(fixed, small[1])


def _tiny_config():
    from keras_efficientnet.training.recipe import ProgressiveConfig
    return ProgressiveConfig(32, 48, 48, (0.1, 0.3), (5, 15), (0.0, 0.2), num_stages=2)


def test_augmenter_mixes_labels():
    fn = augmenter(4, randaugment_magnitude=9, mixup_alpha=0.4, cutmix=1.0, seed=0)
    images = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    out, labels = fn(images, np.array([0, 1, 2, 3, 0, 1]))
    labels = to_numpy(labels)
    assert tuple(out.shape) == images.shape and labels.shape == (6, 4)
    np.testing.assert_allclose(labels.sum(-1), 1.0, rtol=1e-5)
    assert (labels.max(-1) < 1.0).any()  # mixed


DP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np, keras
    from keras_efficientnet import build_efficientnet, get_spec
    from keras_efficientnet.training.distribute import data_parallel
    assert len(keras.distribution.list_devices()) == 2, keras.distribution.list_devices()
    spec = get_spec("EfficientNetB0").replace(width=0.25, depth=0.1)
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = np.arange(16) % 3

    class Losses(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = []
        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(float(logs["loss"]))

    def run(init=None):
        model = build_efficientnet(spec, input_shape=(32, 32, 3), classes=3, dropout_rate=0.0,
                                   drop_connect_rate=0.0)
        if init is not None:
            model.set_weights(init)
        start = [w.copy() for w in model.get_weights()]
        # a small step keeps training stable: at lr 0.05 the loss climbed and the float
        # reduction-order differences between 1 and 2 devices grew past 1e-4 within 4 steps
        model.compile(optimizer=keras.optimizers.SGD(0.002), loss="sparse_categorical_crossentropy")
        cb = Losses()
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
        return start, cb.seen

    init, single = run()
    with data_parallel() as dist:
        _, parallel = run(init)
        mesh = [int(d) for d in dist.device_mesh.shape]
    print(json.dumps({"single": single, "parallel": parallel, "mesh": mesh}))
""")


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution.DataParallel runs on JAX")
def test_data_parallel_jax_matches_single_device(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               TF_CPP_MIN_LOG_LEVEL="3")
    script = tmp_path / "dp.py"
    script.write_text(DP_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=os.path.dirname(__file__))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["mesh"] == [2]
    assert len(result["single"]) == 4
    np.testing.assert_allclose(result["parallel"], result["single"], rtol=1e-4)
    assert result["single"][-1] != result["single"][0]  # it trained


MIRRORED_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_efficientnet import build_efficientnet, get_spec
    from keras_efficientnet.training import unfreeze_top
    from keras_efficientnet.training.distribute import data_parallel
    spec = get_spec("EfficientNetB0").replace(width=0.25, depth=0.1)
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = np.arange(16) % 3

    class Losses(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = []
        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(float(logs["loss"]))

    def run(init=None):
        model = build_efficientnet(spec, input_shape=(32, 32, 3), classes=3, dropout_rate=0.0,
                                   drop_connect_rate=0.0)
        # fine-tuning setting: BatchNorm frozen (per-replica batch statistics would differ)
        unfreeze_top(model)
        if init is not None:
            model.set_weights(init)
        start = [w.copy() for w in model.get_weights()]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        cb = Losses()
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
        return start, cb.seen, model.get_weights()

    init, single, w_single = run()
    with data_parallel():
        _, parallel, w_parallel = run(init)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
    print(json.dumps({"single": single, "parallel": parallel, "replicas": replicas,
                      "moved": max(float(np.abs(a - b).max()) for a, b in zip(w_single, init)),
                      "diff": max(float(np.abs(a - b).max()) for a, b in zip(w_single, w_parallel))}))
""")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute.MirroredStrategy is TensorFlow's")
def test_mirrored_strategy_matches_single_device(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=os.path.dirname(__file__))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert len(result["single"]) == 4
    np.testing.assert_allclose(result["parallel"], result["single"], rtol=1e-5)
    assert result["moved"] > 1e-3  # it trained
    assert result["diff"] < 1e-5 * max(1.0, result["moved"]) * 10
