"""Data-parallel training with the same model code on one or many devices.

* JAX: Keras' own distribution API. ``keras.distribution.DataParallel`` replicates the
  variables on every device and splits each batch along its first axis; ``model.fit`` is
  unchanged. :func:`data_parallel` sets it up. On multi-GPU or TPU hosts the devices are found
  automatically (``keras.distribution.list_devices()``); on a CPU host, simulate devices with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set *before* JAX is imported.
* TensorFlow: ``tf.distribute.MirroredStrategy``; build and compile the model inside
  ``strategy.scope()``, then ``fit`` as usual. :func:`data_parallel` returns the strategy. Split
  the CPU into N logical devices with
  ``tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * N)``
  before TensorFlow initialises; on GPUs the strategy uses every visible GPU.
* PyTorch: use ``torchrun`` and ``torch.nn.parallel.DistributedDataParallel`` (outside Keras'
  API); :func:`data_parallel` raises.

The global batch is split over the devices, so keep the global batch size (and the learning
rate scaled to it, :meth:`~keras_efficientnet.training.recipe.Recipe.learning_rate`) the same
as for one device: the loss trajectory is then the same up to float reduction order.
"""

from __future__ import annotations

import contextlib

import keras


def host_device_flag(count: int) -> str:
    """The ``XLA_FLAGS`` value that makes JAX see ``count`` CPU devices.

    Example:
        >>> from keras_efficientnet.training.distribute import host_device_flag
        >>> host_device_flag(2)
        '--xla_force_host_platform_device_count=2'
    """
    return f"--xla_force_host_platform_device_count={int(count)}"


def data_parallel(devices=None):
    """Set up data-parallel training for the current backend.

    Args:
        devices: JAX device strings (``["cpu:0", "cpu:1"]``) or TensorFlow device names;
            default: all devices.

    Returns:
        A context manager: enter it, then build, compile and fit the model inside. On JAX it
        sets ``keras.distribution.DataParallel`` (and restores the previous distribution on
        exit); on TensorFlow it is ``MirroredStrategy().scope()``.

    Raises:
        ValueError: on PyTorch, or when fewer than one device is available.

    Example:
        >>> import keras
        >>> from keras_efficientnet.training.distribute import data_parallel
        >>> if keras.backend.backend() != "torch":
        ...     with data_parallel():
        ...         model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    """
    backend = keras.backend.backend()
    if backend == "jax":
        devices = devices or keras.distribution.list_devices()
        if not devices:
            raise ValueError("No JAX devices found.")
        return _jax_scope(keras.distribution.DataParallel(devices=devices))
    if backend == "tensorflow":
        import tensorflow as tf
        return tf.distribute.MirroredStrategy(devices=devices).scope()
    raise ValueError(f"data_parallel supports the jax and tensorflow backends, not {backend!r}; "
                     "with PyTorch use torchrun + DistributedDataParallel.")


@contextlib.contextmanager
def _jax_scope(distribution):
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    try:
        yield distribution
    finally:
        keras.distribution.set_distribution(previous)
