"""Import the modules that register this package's serializable training objects
(schedules, losses, optimizers, the segmentation losses) with Keras; ``import
keras_efficientnet`` imports it."""

from . import losses, optimizers, schedules  # noqa: F401
from ..segmentation import losses as segmentation_losses  # noqa: F401
