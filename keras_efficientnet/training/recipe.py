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

The pieces live one module per concern: :mod:`.schedules` (warm-up + cosine decay as Keras'
own ``CosineDecay``), :mod:`.losses`, :mod:`.optimizers` (``RMSpropEMA``, the epsilon
conventions), :mod:`.augment` (``augmenter``); their names stay importable from here.

Also here: stochastic-depth rates per block (:func:`drop_path_schedule`) and EfficientNetV2's
progressive learning (:func:`progressive_stages`, :func:`apply_stage`).
"""

from __future__ import annotations

import dataclasses

import keras

from ..specs import ModelSpec, get_spec, resolve
# the pieces live in their own modules; re-exported so that `from .recipe import X` keeps working
from .augment import RANDAUG_MAX_MAGNITUDE, augmenter  # noqa: F401
from .losses import SparseCategoricalCrossentropyWithSmoothing  # noqa: F401
from .optimizers import RMSpropEMA, torch_rmsprop_epsilon  # noqa: F401
from .schedules import WarmupCosineDecay, warmup_cosine_decay  # noqa: F401

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
        """This recipe's warm-up + cosine schedule for a batch size and epoch length: Keras'
        ``CosineDecay`` (:func:`~keras_efficientnet.training.schedules.warmup_cosine_decay`).

        Example:
            >>> from keras_efficientnet.training.recipe import PAPER
            >>> s = PAPER.schedule(256, steps_per_epoch=100, epochs=20)
            >>> s.warmup_steps, s.warmup_steps + s.decay_steps, round(float(s(500)), 3)
            (500, 2000, 0.016)
        """
        epochs = self.epochs if epochs is None else int(epochs)
        total = max(1, int(steps_per_epoch) * epochs)
        warmup = min(total, int(round(self.warmup_epochs * steps_per_epoch)))
        return warmup_cosine_decay(self.learning_rate(batch_size), total, warmup,
                                   self.min_lr_fraction)

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
