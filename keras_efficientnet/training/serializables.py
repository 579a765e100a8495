"""Import the modules that register this package's serializable training objects
(schedules, losses, optimizers) with Keras; ``import keras_efficientnet`` imports it."""

from . import losses, optimizers, schedules  # noqa: F401
