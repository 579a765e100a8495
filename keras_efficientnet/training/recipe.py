"""The EfficientNet training recipe, as data (:class:`Recipe`) and as code.

Two recipes are provided:

* :data:`PAPER` - Tan & Le (2019): RMSprop (decay/rho 0.9, momentum 0.9, epsilon 0.001),
  learning rate 0.016 per 256 images (0.256 at batch 4096), 5 warm-up epochs, weight decay
  1e-5, label smoothing 0.1, stochastic depth 0.2, EMA of the weights with decay 0.9999,
  350 epochs. The paper decays the rate by 0.97 every 2.4 epochs; like most re-implementations
  we use the cosine decay, which reaches the same accuracy without the extra two knobs.
* :data:`NVIDIA` - NVIDIA DeepLearningExamples: learning rate 0.08 per 4096 images,
  epsilon 0.01, weight decay 1e-5, otherwise as above.

The learning rate scales linearly with the batch size: ``lr = base_lr * batch / base_batch``.

RMSprop epsilon conventions. TensorFlow 1's ``RMSPropOptimizer`` (used by the paper) computes
``lr * g / sqrt(ms + eps)``: epsilon *inside* the square root. Keras 3's ``RMSprop`` does the
same (``keras/src/optimizers/rmsprop.py``: ``increment = lr * g / sqrt(velocity + epsilon)``,
and its momentum buffer accumulates that increment, as TF1's does), so the paper's 0.001 is
passed unchanged. PyTorch's ``torch.optim.RMSprop`` puts epsilon *outside*
(``g / (sqrt(v) + eps)``); a PyTorch epsilon ``e`` corresponds to about ``e**2`` here
(:func:`torch_rmsprop_epsilon`). Two small remaining differences: TF1 starts the mean square at
1.0 while Keras starts it at 0 (only the first few steps differ), and the paper's weight decay is
an L2 term in the loss while Keras' ``weight_decay`` is decoupled (``w -= lr * wd * w``).

Weight EMA. The paper evaluates an exponential moving average of the weights (decay 0.9999),
kept as TensorFlow's ``ExponentialMovingAverage`` with ``num_updates=global_step`` does: the
decay used at step ``t`` is ``min(decay, (1 + t) / (10 + t))``, so early in training the average
follows the weights closely instead of staying at the initialisation. Keras' built-in
``use_ema`` uses the fixed decay from the first step (and ``fit`` ends by overwriting the weights
with the average), which after a short fine-tune returns almost the initial weights;
:class:`RMSpropEMA` adds the warm-up and is what :meth:`Recipe.optimizer` returns.

Also here: stochastic-depth rates per block (:func:`drop_path_schedule`), augmentation from
Keras core layers (``RandAugment``, ``MixUp``, ``CutMix``: :func:`augmenter`), and
EfficientNetV2's progressive learning (:func:`progressive_stages`, :func:`apply_stage`).
"""

from __future__ import annotations

import dataclasses
import math

import keras

from ..specs import ModelSpec, get_spec, resolve

#: Keras' RandAugment takes a normalised ``factor`` in [0, 1]; the papers quote magnitudes on a
#: 0-30 scale (EfficientNetV2-L uses 25). We map ``factor = magnitude / 30`` linearly.
RANDAUG_MAX_MAGNITUDE = 30.0


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to
    ``peak * alpha`` at ``total_steps`` (constant afterwards).

    ``lr(s) = peak * s / warmup_steps`` for ``s < warmup_steps``, else
    ``peak * (alpha + (1 - alpha) * (1 + cos(pi * t)) / 2)`` with
    ``t = min(1, (s - warmup_steps) / (total_steps - warmup_steps))``.

    Args:
        peak: the learning rate at the end of warm-up.
        total_steps: steps of the whole run.
        warmup_steps: steps of linear warm-up (0 for none).
        alpha: final rate as a fraction of ``peak``.

    Example:
        >>> from keras_efficientnet.training.recipe import WarmupCosineDecay
        >>> lr = WarmupCosineDecay(0.1, total_steps=100, warmup_steps=10)
        >>> [round(float(lr(s)), 4) for s in (0, 5, 10, 55, 100)]
        [0.0, 0.05, 0.1, 0.05, 0.0]
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0, alpha: float = 0.0):
        if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"Need 0 <= warmup_steps <= total_steps and total_steps > 0, got "
                             f"warmup_steps={warmup_steps}, total_steps={total_steps}.")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.alpha = float(alpha)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        decay = float(max(self.total_steps - self.warmup_steps, 1))
        t = ops.clip((step - self.warmup_steps) / decay, 0.0, 1.0)
        cosine = self.peak * (self.alpha + (1.0 - self.alpha) * 0.5 * (1.0 + ops.cos(math.pi * t)))
        warmup = self.peak * step / warm
        return ops.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy with label smoothing on integer labels (Keras' sparse loss has none).

    Args:
        num_classes: number of classes (width of the one-hot encoding).
        label_smoothing: the smoothing ``eps``: targets ``(1 - eps) * one_hot + eps / K``.
        from_logits: whether predictions are logits.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.training.recipe import SparseCategoricalCrossentropyWithSmoothing
        >>> loss = SparseCategoricalCrossentropyWithSmoothing(2, 0.1)
        >>> round(float(loss(np.array([0]), np.array([[0.5, 0.5]], "float32"))), 4)
        0.6931
    """

    def __init__(self, num_classes: int, label_smoothing: float = 0.1, from_logits: bool = False,
                 name: str = "sparse_categorical_crossentropy_with_smoothing", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        ops = keras.ops
        y = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes,
                        dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(y, y_pred, from_logits=self.from_logits,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="keras_efficientnet")
class RMSpropEMA(keras.optimizers.RMSprop):
    """Keras ``RMSprop`` whose weight EMA warms up like TensorFlow's ``ExponentialMovingAverage``.

    With ``use_ema=True`` the average is updated after every step ``t`` (0-based) with the decay
    ``min(ema_momentum, (1 + t) / (10 + t))`` (``ema_warmup=True``) or ``ema_momentum``
    (``ema_warmup=False``, Keras' behaviour); the first step copies the weights. As with any
    Keras optimizer, ``fit`` ends by writing the average into the model
    (``finalize_variable_values``).

    Args:
        ema_warmup: use the warm-up decay.
        **kwargs: ``keras.optimizers.RMSprop`` arguments.

    Example:
        >>> from keras_efficientnet.training.recipe import RMSpropEMA
        >>> opt = RMSpropEMA(1e-3, use_ema=True, ema_momentum=0.9999)
        >>> [round(opt.ema_decay(t), 4) for t in (1, 10, 1000)]
        [0.1818, 0.55, 0.9911]
    """

    def __init__(self, *args, ema_warmup: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema_warmup = bool(ema_warmup)

    def ema_decay(self, step):
        """The EMA decay used after step ``step`` (0-based; a number or a tensor)."""
        if not self.ema_warmup:
            return self.ema_momentum
        if isinstance(step, (int, float)):
            return min(self.ema_momentum, (1.0 + step) / (10.0 + step))
        step = keras.ops.cast(step, "float32")
        return keras.ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))

    def _update_model_variables_moving_average(self, trainable_variables):
        # Keras calls this after each update step, before ``iterations`` is incremented.
        if not self.use_ema:
            return
        first = keras.ops.equal(self.iterations, 0)
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is None:
                continue
            decay = keras.ops.cast(self.ema_decay(self.iterations), var.dtype)
            decay = keras.ops.where(first, keras.ops.zeros_like(decay), decay)
            average.assign(decay * average + (1 - decay) * var)

    def get_config(self):
        return {**super().get_config(), "ema_warmup": self.ema_warmup}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe. Use :meth:`replace` to change fields.

    Attributes:
        name: label.
        base_learning_rate: peak learning rate for ``base_batch_size`` images per step.
        base_batch_size: the batch size ``base_learning_rate`` refers to.
        rho: RMSprop decay of the mean square.
        momentum: RMSprop momentum.
        epsilon: RMSprop epsilon, TF/Keras convention (inside the square root).
        weight_decay: Keras' decoupled weight decay.
        epochs: training length.
        warmup_epochs: linear warm-up length.
        min_lr_fraction: final learning rate as a fraction of the peak.
        label_smoothing: of the categorical cross-entropy.
        drop_path: final stochastic-depth rate (blocks get linearly increasing rates).
        dropout: dropout before the classifier.
        ema_momentum: decay of the exponential moving average of the weights (0: no EMA).
        ema_warmup: warm the EMA decay up as ``min(ema_momentum, (1 + t) / (10 + t))``
            (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``), see
            :class:`RMSpropEMA`.
        randaugment_magnitude: 0 for no RandAugment.
        randaugment_ops: operations per image.
        mixup_alpha: 0 for no MixUp.
        cutmix: CutMix ``factor``; 0 for no CutMix.

    Example:
        >>> from keras_efficientnet.training.recipe import PAPER
        >>> round(PAPER.learning_rate(4096), 3)
        0.256
    """

    name: str
    base_learning_rate: float = 0.016
    base_batch_size: int = 256
    rho: float = 0.9
    momentum: float = 0.9
    epsilon: float = 1e-3
    weight_decay: float = 1e-5
    epochs: int = 350
    warmup_epochs: float = 5.0
    min_lr_fraction: float = 0.0
    label_smoothing: float = 0.1
    drop_path: float = 0.2
    dropout: float = 0.2
    ema_momentum: float = 0.9999
    ema_warmup: bool = True
    randaugment_magnitude: float = 0.0
    randaugment_ops: int = 2
    mixup_alpha: float = 0.0
    cutmix: float = 0.0

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed.

        Example:
            >>> from keras_efficientnet.training.recipe import PAPER
            >>> PAPER.replace(epochs=10).epochs
            10
        """
        return dataclasses.replace(self, **changes)

    def learning_rate(self, batch_size: int) -> float:
        """The peak learning rate for ``batch_size``: linear scaling.

        Example:
            >>> from keras_efficientnet.training.recipe import NVIDIA
            >>> NVIDIA.learning_rate(1024)
            0.02
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        return self.base_learning_rate * batch_size / self.base_batch_size

    def schedule(self, batch_size: int, steps_per_epoch: int, epochs: int | None = None):
        """The :class:`WarmupCosineDecay` of this recipe for a batch size and epoch length.

        Example:
            >>> from keras_efficientnet.training.recipe import PAPER
            >>> s = PAPER.schedule(256, steps_per_epoch=100, epochs=20)
            >>> s.warmup_steps, s.total_steps, round(float(s(500)), 3)
            (500, 2000, 0.016)
        """
        epochs = self.epochs if epochs is None else int(epochs)
        total = max(1, int(steps_per_epoch) * epochs)
        warmup = min(total, int(round(self.warmup_epochs * steps_per_epoch)))
        return WarmupCosineDecay(self.learning_rate(batch_size), total, warmup, self.min_lr_fraction)

    def optimizer(self, batch_size: int, steps_per_epoch: int, epochs: int | None = None):
        """RMSprop with this recipe's schedule, weight decay and EMA (:class:`RMSpropEMA`).

        Example:
            >>> from keras_efficientnet.training.recipe import PAPER
            >>> opt = PAPER.optimizer(256, steps_per_epoch=10, epochs=2)
            >>> opt.rho, opt.momentum, opt.epsilon, opt.use_ema, opt.ema_momentum
            (0.9, 0.9, 0.001, True, 0.9999)
        """
        return RMSpropEMA(
            learning_rate=self.schedule(batch_size, steps_per_epoch, epochs), rho=self.rho,
            momentum=self.momentum, epsilon=self.epsilon,
            weight_decay=self.weight_decay or None, use_ema=self.ema_momentum > 0,
            ema_momentum=self.ema_momentum if self.ema_momentum > 0 else 0.99,
            ema_warmup=self.ema_warmup)

    def loss(self):
        """Categorical cross-entropy with label smoothing (one-hot or mixed labels).

        Example:
            >>> from keras_efficientnet.training.recipe import PAPER
            >>> PAPER.loss().label_smoothing
            0.1
        """
        return keras.losses.CategoricalCrossentropy(label_smoothing=self.label_smoothing)

    def compile(self, model, batch_size: int, steps_per_epoch: int, epochs: int | None = None,
                metrics=("accuracy",)):
        """``model.compile`` with this recipe's optimizer and loss; returns ``model``."""
        model.compile(optimizer=self.optimizer(batch_size, steps_per_epoch, epochs),
                      loss=self.loss(), metrics=list(metrics))
        return model


#: Tan & Le (2019), the EfficientNet paper.
PAPER = Recipe("paper")
#: NVIDIA DeepLearningExamples' EfficientNet recipe.
NVIDIA = Recipe("nvidia", base_learning_rate=0.08, base_batch_size=4096, epsilon=0.01,
                weight_decay=1e-5)
RECIPES = {r.name: r for r in (PAPER, NVIDIA)}


def torch_rmsprop_epsilon(eps_outside_sqrt: float) -> float:
    """Convert a PyTorch-style RMSprop epsilon (outside the square root) to Keras' (inside).

    ``g / (sqrt(v) + e)`` and ``g / sqrt(v + e**2)`` agree where ``v`` is small compared to
    ``e**2`` (where epsilon matters) and both become ``g / sqrt(v)`` where it is large.

    Example:
        >>> from keras_efficientnet.training.recipe import torch_rmsprop_epsilon
        >>> torch_rmsprop_epsilon(0.1)
        0.010000000000000002
    """
    return float(eps_outside_sqrt) ** 2


def drop_path_schedule(spec, rate: float | None = None) -> list[tuple[str, float]]:
    """Stochastic-depth rate of every block, after depth scaling: ``rate * i / num_blocks``.

    Args:
        spec: a ``ModelSpec`` or variant name.
        rate: the final rate (default: the spec's ``drop_path``).

    Returns:
        ``[(block_name, rate), ...]`` in block order.

    Example:
        >>> from keras_efficientnet.training.recipe import drop_path_schedule
        >>> drop_path_schedule("EfficientNetB0", 0.16)[:3]
        [('block1a', 0.0), ('block2a', 0.01), ('block2b', 0.02)]
    """
    spec = spec if isinstance(spec, ModelSpec) else get_spec(spec)
    return [(b.name, b.drop_path) for b in resolve(spec, drop_path=rate).blocks]


def augmenter(num_classes: int, randaugment_magnitude: float = 0.0, randaugment_ops: int = 2,
              mixup_alpha: float = 0.0, cutmix: float = 0.0, seed: int | None = None,
              value_range=(0, 255)):
    """A batch function ``(images, labels) -> (images, one_hot_labels)`` for ``tf.data.map``.

    Applies Keras core layers: ``keras.layers.RandAugment`` (``factor = magnitude / 30``),
    then ``keras.layers.MixUp`` and/or ``keras.layers.CutMix`` (which mix labels, hence the
    one-hot output). Integer labels are one-hot encoded.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.training.recipe import augmenter
        >>> fn = augmenter(3, randaugment_magnitude=10, mixup_alpha=0.2, seed=0)
        >>> images, labels = fn(np.full((4, 32, 32, 3), 128.0, "float32"), np.array([0, 1, 2, 0]))
        >>> tuple(images.shape), tuple(labels.shape)
        ((4, 32, 32, 3), (4, 3))
    """
    layers = []
    if randaugment_magnitude > 0:
        factor = min(1.0, randaugment_magnitude / RANDAUG_MAX_MAGNITUDE)
        layers.append(keras.layers.RandAugment(value_range=value_range, num_ops=randaugment_ops,
                                               factor=factor, seed=seed))
    mixers = []
    if mixup_alpha > 0:
        mixers.append(keras.layers.MixUp(alpha=mixup_alpha, seed=seed))
    if cutmix > 0:
        mixers.append(keras.layers.CutMix(factor=cutmix, seed=seed))

    def apply(images, labels):
        ops = keras.ops
        if len(labels.shape) == 1 or (len(labels.shape) == 2 and labels.shape[-1] == 1):
            labels = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"), num_classes)
        labels = ops.cast(labels, "float32")
        for layer in layers:
            images = layer(images, training=True)
        for layer in mixers:
            out = layer({"images": images, "labels": labels}, training=True)
            images, labels = out["images"], out["labels"]
        return images, labels

    return apply


@dataclasses.dataclass(frozen=True)
class ProgressiveConfig:
    """EfficientNetV2 progressive learning: ranges from the first to the last stage.

    Attributes:
        min_size, max_size: training image size of the first and last stage.
        eval_size: evaluation image size.
        dropout: (first, last) classifier dropout.
        randaugment: (first, last) RandAugment magnitude.
        mixup: (first, last) MixUp alpha.
        num_stages: number of stages (the paper uses 4).
    """

    min_size: int
    max_size: int
    eval_size: int
    dropout: tuple[float, float]
    randaugment: tuple[float, float]
    mixup: tuple[float, float]
    num_stages: int = 4


#: EfficientNetV2 paper, table 6 (ImageNet settings; S/M/L).
PROGRESSIVE = {
    "EfficientNetV2S": ProgressiveConfig(128, 300, 384, (0.1, 0.3), (5, 15), (0.0, 0.0)),
    "EfficientNetV2M": ProgressiveConfig(128, 380, 480, (0.1, 0.4), (5, 20), (0.0, 0.2)),
    "EfficientNetV2L": ProgressiveConfig(128, 380, 480, (0.1, 0.5), (5, 25), (0.0, 0.4)),
}


@dataclasses.dataclass(frozen=True)
class Stage:
    """Settings of one progressive-learning stage (epochs ``[start_epoch, end_epoch)``)."""

    index: int
    start_epoch: int
    end_epoch: int
    image_size: int
    dropout: float
    randaugment_magnitude: float
    mixup_alpha: float


def progressive_stages(config, epochs: int) -> list[Stage]:
    """Split ``epochs`` into stages whose size and regularisation rise linearly.

    Stage ``i`` of ``M`` uses ``value = first + (last - first) * i / (M - 1)`` for the image size
    (rounded down to an integer), dropout, RandAugment magnitude and MixUp alpha.

    Args:
        config: a :class:`ProgressiveConfig` or a key of :data:`PROGRESSIVE`.
        epochs: total training epochs (at least ``num_stages``).

    Example:
        >>> from keras_efficientnet.training.recipe import progressive_stages
        >>> [(s.start_epoch, s.image_size, s.dropout) for s in progressive_stages("EfficientNetV2S", 8)]
        [(0, 128, 0.1), (2, 185, 0.167), (4, 242, 0.233), (6, 300, 0.3)]
    """
    if isinstance(config, str):
        if config not in PROGRESSIVE:
            raise ValueError(f"No progressive settings for {config!r}; have {sorted(PROGRESSIVE)}.")
        config = PROGRESSIVE[config]
    m = int(config.num_stages)
    if m < 1 or epochs < m:
        raise ValueError(f"Need at least one epoch per stage: epochs={epochs}, stages={m}.")

    def lerp(pair, i):
        first, last = pair
        return first + (last - first) * (i / (m - 1) if m > 1 else 1.0)

    stages = []
    for i in range(m):
        start, end = epochs * i // m, epochs * (i + 1) // m
        stages.append(Stage(i, start, end, int(lerp((config.min_size, config.max_size), i)),
                            round(lerp(config.dropout, i), 3),
                            round(lerp(config.randaugment, i), 3), round(lerp(config.mixup, i), 3)))
    return stages


def apply_stage(model, stage: Stage):
    """Prepare ``model`` for a stage: set its classifier dropout (and drop the traced train
    function so the next ``fit`` uses it). The image size and augmentation live in the data
    pipeline: resize to ``stage.image_size`` and use :func:`augmenter` with the stage's values.
    The model must accept that size (``input_shape=(None, None, 3)``).

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.recipe import apply_stage, progressive_stages
        >>> model = ke.EfficientNetV2B0(weights=None, input_shape=(None, None, 3), classes=2)
        >>> stage = progressive_stages("EfficientNetV2S", 4)[-1]
        >>> apply_stage(model, stage).get_layer("top_dropout").rate
        0.3
    """
    from .finetune import set_dropout
    shape = model.input_shape
    for dim in shape[1:3] if shape[-1] in (1, 3) else shape[2:4]:
        if dim is not None and dim != stage.image_size:
            raise ValueError(f"The model's input is fixed at {shape[1:]}, but stage {stage.index} "
                             f"trains at {stage.image_size} px: build it with "
                             "input_shape=(None, None, 3).")
    return set_dropout(model, stage.dropout)
