"""Unstructured magnitude pruning during training, on TensorFlow, JAX and PyTorch.

:class:`MagnitudePruning` is a ``keras.callbacks.Callback``: no wrapper layers, no change to
the model. It keeps one binary mask per pruned kernel and, after every training batch,
assigns ``kernel * mask``, so whatever the optimizer step did to a pruned weight (Adam's
momentum moves it) is undone before the next forward pass. At the steps where the schedule
says so, the mask is recomputed from the weights' magnitudes: the smallest
``ceil(sparsity * size)`` weights of each kernel are zeroed. Masks are monotone: a weight once
pruned stays pruned (its magnitude counts as below every other), so the sparsity schedule must
not decrease.

Which layers (``layer_types``):

* ``"pointwise"``: 1x1 ``Conv2D`` (MBConv expansion / projection, squeeze-excitation, ``top_conv``).
* ``"depthwise"``: ``DepthwiseConv2D`` and :class:`~keras_efficientnet.layers.ShiftedDepthwiseConv2D`.
* ``"conv"``: k x k ``Conv2D`` with k > 1 (Fused-MBConv expansion); not in the default set.
* ``"dense"``: ``Dense`` layers other than the classifier (e.g. an added head).

The stem (``stem_conv``) and the classifier (``predictions``) are left dense unless
``include_stem`` / ``include_classifier``. CondConv kernels (:class:`~keras_efficientnet.layers.CondConv2D`)
hold stacked experts mixed per example; they cannot be pruned: ``"condconv"`` in
``layer_types`` is a ``ValueError``, and CondConv layers are never selected by the other types.

Biases are not pruned. Pruning zeroes weights but does not make the dense model smaller or
faster by itself: the zeros only pay off compressed on disk (see :func:`sparsity_report` and
the compression guide) or with a sparse runtime. :func:`strip_pruning` returns a plain copy.
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = ["ConstantSparsity", "PolynomialDecay", "MagnitudePruning", "strip_pruning",
           "sparsity_report", "SparsityReport", "prunable_layers", "LAYER_TYPES"]

#: The layer types magnitude pruning can select.
LAYER_TYPES = ("pointwise", "depthwise", "conv", "dense")
#: Layer types that exist in these models but cannot be pruned.
UNPRUNABLE_TYPES = ("condconv",)
STEM, CLASSIFIER = "stem_conv", "predictions"


def _check_sparsity(value, what="sparsity"):
    if not (isinstance(value, (int, float, np.floating, np.integer)) and 0.0 <= float(value) < 1.0):
        raise ValueError(f"{what} must lie in [0, 1), got {value!r}.")
    return float(value)


def _check_steps(begin_step, frequency):
    if int(begin_step) < 0:
        raise ValueError(f"begin_step must be >= 0, got {begin_step}.")
    if int(frequency) < 1:
        raise ValueError(f"frequency must be >= 1, got {frequency}.")


class ConstantSparsity:
    """The same target sparsity from ``begin_step`` on, re-applied every ``frequency`` steps.

    Steps count optimizer steps (training batches) seen by the callback, from 0.

    Args:
        sparsity: fraction of zeros per pruned kernel, in ``[0, 1)``.
        begin_step: first step at which the masks are computed.
        frequency: masks are recomputed every ``frequency`` steps after ``begin_step``
            (between updates they are still applied after every batch).

    Example:
        >>> from keras_efficientnet.training.prune import ConstantSparsity
        >>> s = ConstantSparsity(0.5, begin_step=10, frequency=5)
        >>> s(0), s(10), s(12), s(15)
        ((False, 0.0), (True, 0.5), (False, 0.5), (True, 0.5))
    """

    def __init__(self, sparsity: float, begin_step: int = 0, frequency: int = 100):
        self.target = _check_sparsity(sparsity)
        _check_steps(begin_step, frequency)
        self.begin_step, self.frequency = int(begin_step), int(frequency)

    def sparsity(self, step: int) -> float:
        """The target sparsity at ``step``."""
        return self.target if step >= self.begin_step else 0.0

    def __call__(self, step: int):
        """``(update_masks_now, sparsity)`` at ``step``."""
        update = step >= self.begin_step and (step - self.begin_step) % self.frequency == 0
        return update, self.sparsity(step)

    def get_config(self):
        return {"sparsity": self.target, "begin_step": self.begin_step, "frequency": self.frequency}


class PolynomialDecay:
    """Sparsity rising from ``initial`` to ``final`` between ``begin_step`` and ``end_step``.

    ``s(t) = final + (initial - final) * (1 - (t - begin) / (end - begin)) ** power`` (Zhu &
    Gupta, 2017): fast pruning early, slower as the network has less to lose. Masks are updated
    every ``frequency`` steps in ``[begin_step, end_step]`` and at ``end_step`` itself; after
    ``end_step`` the sparsity stays ``final``.

    Args:
        initial_sparsity: sparsity at ``begin_step``, in ``[0, 1)``.
        final_sparsity: sparsity from ``end_step`` on, in ``[initial_sparsity, 1)``.
        begin_step: first update step.
        end_step: step at which ``final_sparsity`` is reached (> ``begin_step``).
        power: exponent of the decay (3 as in the paper).
        frequency: steps between mask updates.

    Example:
        >>> from keras_efficientnet.training.prune import PolynomialDecay
        >>> s = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=10, power=1, frequency=5)
        >>> [s(t) for t in (0, 5, 7, 10, 20)]
        [(True, 0.0), (True, 0.4), (False, 0.56), (True, 0.8), (False, 0.8)]
    """

    def __init__(self, initial_sparsity: float, final_sparsity: float, begin_step: int,
                 end_step: int, power: float = 3.0, frequency: int = 100):
        self.initial = _check_sparsity(initial_sparsity, "initial_sparsity")
        self.final = _check_sparsity(final_sparsity, "final_sparsity")
        if self.final < self.initial:
            raise ValueError(f"final_sparsity ({final_sparsity}) must not be below initial_sparsity "
                             f"({initial_sparsity}): masks only ever add zeros.")
        _check_steps(begin_step, frequency)
        if int(end_step) <= int(begin_step):
            raise ValueError(f"end_step ({end_step}) must be greater than begin_step ({begin_step}).")
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}.")
        self.begin_step, self.end_step = int(begin_step), int(end_step)
        self.power, self.frequency = float(power), int(frequency)

    def sparsity(self, step: int) -> float:
        """The target sparsity at ``step``."""
        if step < self.begin_step:
            return 0.0
        t = min(1.0, (step - self.begin_step) / (self.end_step - self.begin_step))
        value = self.final + (self.initial - self.final) * (1.0 - t) ** self.power
        return round(value, 10)

    def __call__(self, step: int):
        """``(update_masks_now, sparsity)`` at ``step``."""
        update = self.begin_step <= step <= self.end_step and (
            (step - self.begin_step) % self.frequency == 0 or step == self.end_step)
        return update, self.sparsity(step)

    def get_config(self):
        return {"initial_sparsity": self.initial, "final_sparsity": self.final,
                "begin_step": self.begin_step, "end_step": self.end_step, "power": self.power,
                "frequency": self.frequency}


def _walk(layer, seen=None):
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    for sub in getattr(layer, "_layers", []):
        yield from _walk(sub, seen)


def layer_type(layer) -> str | None:
    """The pruning type of a layer (see the module docstring), or None for layers without a
    prunable kernel (BatchNorm, activations, blocks themselves ...).

    Example:
        >>> import keras
        >>> from keras_efficientnet.training.prune import layer_type
        >>> layer_type(keras.layers.Conv2D(8, 1)), layer_type(keras.layers.Dense(3))
        ('pointwise', 'dense')
    """
    from ..layers.condconv import CondConv2D
    from ..layers.depthwise import ShiftedDepthwiseConv2D

    if isinstance(layer, CondConv2D):
        return "condconv"
    if isinstance(layer, (keras.layers.DepthwiseConv2D, ShiftedDepthwiseConv2D)):
        return "depthwise"
    if isinstance(layer, keras.layers.Conv2D):
        return "pointwise" if tuple(layer.kernel_size) == (1, 1) else "conv"
    if isinstance(layer, keras.layers.Dense):
        return "dense"
    return None


def _check_layer_types(layer_types):
    if isinstance(layer_types, str):
        layer_types = (layer_types,)
    layer_types = tuple(layer_types)
    for t in layer_types:
        if t in UNPRUNABLE_TYPES:
            raise ValueError(f"Layers of type {t!r} cannot be pruned (CondConv kernels stack "
                             f"experts mixed per example); choose from {LAYER_TYPES}.")
        if t not in LAYER_TYPES:
            raise ValueError(f"Unknown layer type {t!r}; the prunable types are {LAYER_TYPES}.")
    return layer_types


def _kernel_name(layer, variable, flat: dict) -> str:
    """The kernel's flat weight name without ``/kernel`` (``block2a_expand_conv``, the same in
    both layouts), else its variable path without it (a layer of a nested model)."""
    path = flat.get(id(variable), variable.path)
    return path[: -len("/kernel")] if path.endswith("/kernel") else layer.name


def prunable_layers(model, layer_types=("pointwise", "depthwise", "dense"),
                    include_stem: bool = False, include_classifier: bool = False):
    """The ``(name, type, layer)`` triples that :class:`MagnitudePruning` would prune.

    ``name`` is the kernel's flat weight name without ``/kernel`` (``block2a_expand_conv``).

    Args:
        model: a Keras model (nested models and block sublayers are searched).
        layer_types: any of ``"pointwise"``, ``"depthwise"``, ``"conv"``, ``"dense"``.
        include_stem: also prune ``stem_conv`` (whatever ``layer_types`` says).
        include_classifier: also prune the ``predictions`` classifier.

    Raises:
        ValueError: an unknown or unprunable layer type.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.prune import prunable_layers
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        >>> [n for n, t, _ in prunable_layers(model, ["depthwise"])][:2]
        ['block1a_dwconv', 'block2a_dwconv']
    """
    from ..pretrained.naming import flat_weights

    layer_types = _check_layer_types(layer_types)
    try:
        flat = {id(v): n for n, v in flat_weights(model).items()}
    except ValueError:  # two weights of a hand-built model share a flat name
        flat = {}
    chosen = []
    for layer in _walk(model):
        kind = layer_type(layer)
        if kind is None or kind in UNPRUNABLE_TYPES or getattr(layer, "kernel", None) is None:
            continue
        if layer.name == STEM:
            take = include_stem
        elif layer.name == CLASSIFIER:
            take = include_classifier
        else:
            take = kind in layer_types
        if take:
            chosen.append((_kernel_name(layer, layer.kernel, flat), kind, layer))
    return chosen


def _magnitude_mask(weights: np.ndarray, old_mask: np.ndarray | None, sparsity: float) -> np.ndarray:
    """Zero the ``ceil(sparsity * size)`` smallest magnitudes; previously pruned ones first."""
    magnitude = np.abs(weights).astype("float64").ravel()
    if old_mask is not None:
        magnitude[~old_mask.ravel()] = -1.0  # always among the smallest: masks are monotone
    k = int(math.ceil(sparsity * magnitude.size - 1e-9))
    mask = np.ones(magnitude.size, bool)
    if k > 0:
        mask[np.argsort(magnitude, kind="stable")[:k]] = False
    mask = mask.reshape(weights.shape)
    return mask if old_mask is None else mask & old_mask


class MagnitudePruning(keras.callbacks.Callback):
    """Prune the smallest-magnitude weights during ``fit`` (TensorFlow, JAX, PyTorch).

    Add it to ``model.fit(..., callbacks=[MagnitudePruning(...)])``. After every training
    batch the masks are applied to the kernels (on JAX the trainer's state is synced into the
    variables first, so the next step starts from the masked weights); at the schedule's update
    steps the masks are first recomputed from the magnitudes. Masks only ever gain zeros. The
    same callback object can be passed to several ``fit`` calls: its step counter and masks
    carry over. ``steps_per_execution > 1`` applies the masks between executions only. With a
    :class:`~keras_efficientnet.training.Distiller` the student is pruned (not the teacher).

    Args:
        schedule: a :class:`ConstantSparsity` or :class:`PolynomialDecay`, or a float (constant
            sparsity from step 0, updated every 100 steps).
        layer_types: which layers to prune: ``"pointwise"``, ``"depthwise"``, ``"conv"``,
            ``"dense"`` (see the module docstring).
        include_stem: prune ``stem_conv`` too.
        include_classifier: prune the ``predictions`` classifier too.

    Attributes:
        step: optimizer steps seen so far.
        masks: ``{name: boolean ndarray}`` (``True`` = kept).

    Raises:
        ValueError: sparsity outside ``[0, 1)``, unknown or unprunable layer types, a model with
            nothing to prune.

    Example:
        >>> import numpy as np, keras
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.prune import MagnitudePruning, ConstantSparsity
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        >>> pruning = MagnitudePruning(ConstantSparsity(0.5, begin_step=0, frequency=1))
        >>> images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3))
        >>> _ = model.fit(images, np.array([0, 1, 2, 0]), batch_size=2, verbose=0,
        ...               callbacks=[pruning])
        >>> kernel = model.get_layer("block2a_expand_conv").kernel
        >>> float(np.mean(keras.ops.convert_to_numpy(kernel) == 0)) >= 0.5
        True
    """

    def __init__(self, schedule=0.5, layer_types=("pointwise", "depthwise", "dense"),
                 include_stem: bool = False, include_classifier: bool = False):
        super().__init__()
        if not hasattr(schedule, "__call__") or isinstance(schedule, (int, float)):
            schedule = ConstantSparsity(_check_sparsity(schedule))
        self.schedule = schedule
        self.layer_types = _check_layer_types(layer_types)
        self.include_stem = bool(include_stem)
        self.include_classifier = bool(include_classifier)
        self.step = 0
        self.masks: dict[str, np.ndarray] = {}
        self._targets = None
        self._tensors = {}

    # -- model access ------------------------------------------------------------------------
    def _select(self):
        # With a Distiller, prune its student, never the (frozen) teacher.
        target = getattr(self.model, "student", None)
        target = self.model if target is None else target
        layers = prunable_layers(target, self.layer_types, self.include_stem,
                                 self.include_classifier)
        if not layers:
            raise ValueError(f"{self.model.name!r} has no layers of types {self.layer_types} to "
                             "prune.")
        self._targets = [(name, layer.kernel) for name, _, layer in layers]

    def _sync(self):
        # JAX: fit keeps the state outside the variables between steps; bring it in.
        if keras.backend.backend() == "jax" and hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()

    def update_masks(self, sparsity: float) -> None:
        """Recompute every mask at ``sparsity`` from the current magnitudes (monotone)."""
        for name, kernel in self._targets:
            w = keras.ops.convert_to_numpy(kernel)
            self.masks[name] = _magnitude_mask(w, self.masks.get(name), sparsity)
            self._tensors[name] = keras.ops.convert_to_tensor(self.masks[name], dtype=kernel.dtype)

    def apply_masks(self) -> None:
        """Assign ``kernel * mask`` to every pruned kernel."""
        for name, kernel in self._targets:
            if name in self._tensors:
                kernel.assign(keras.ops.multiply(kernel.value, self._tensors[name]))

    def _advance(self):
        update, sparsity = self.schedule(self.step)
        if update:
            self.update_masks(sparsity)
        self.apply_masks()

    # -- callback hooks ----------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if self._targets is None:
            self._select()
        self._sync()
        self._advance()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self._sync()
        self._advance()

    def on_train_end(self, logs=None):
        self._sync()
        self.apply_masks()


def strip_pruning(model, pruning: MagnitudePruning | None = None):
    """A plain copy of a pruned model: same architecture, the masked weights, nothing else.

    The callback adds no layers, so this is the model rebuilt from its config + the weights
    (uncompiled: unlike ``keras.models.clone_model`` no optimizer comes along, so a saved file
    holds the weights only); with ``pruning`` the masks are applied once more first (in case
    the weights were touched after ``fit``). The copy saves, loads and exports like any model
    of its variant.

    Args:
        model: the model trained with :class:`MagnitudePruning`.
        pruning: optionally the callback, whose masks are applied before copying.

    Returns:
        A new ``keras.Model``.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.prune import strip_pruning
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
        >>> strip_pruning(model).count_params() == model.count_params()
        True
    """
    if pruning is not None and pruning._targets is not None:
        pruning._sync()
        pruning.apply_masks()
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


class SparsityReport(list):
    """Rows of :func:`sparsity_report` (dicts: ``name``, ``type``, ``params``, ``zeros``,
    ``sparsity``); ``str()`` gives a table with a total line."""

    @property
    def total(self) -> dict:
        params = sum(r["params"] for r in self)
        zeros = sum(r["zeros"] for r in self)
        return {"name": "total", "type": "", "params": params, "zeros": zeros,
                "sparsity": zeros / params if params else 0.0}

    def __str__(self) -> str:
        rows = list(self) + [self.total]
        width = max([len("layer")] + [len(r["name"]) for r in rows])
        lines = [f"{'layer':<{width}}  {'type':<9}  {'params':>10}  {'zeros':>10}  sparsity"]
        for r in rows:
            lines.append(f"{r['name']:<{width}}  {r['type']:<9}  {r['params']:>10,}  "
                         f"{r['zeros']:>10,}  {r['sparsity']:8.2%}")
        return "\n".join(lines)


def sparsity_report(model, layer_types=LAYER_TYPES) -> SparsityReport:
    """Zeros per kernel of every layer of the given types (the stem is a ``"conv"``, the
    classifier a ``"dense"`` layer).

    Args:
        model: any Keras model.
        layer_types: which kinds of layers to list (default: all prunable kinds).

    Returns:
        A :class:`SparsityReport` (a list of row dicts; print it for a table).

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.prune import sparsity_report
        >>> report = sparsity_report(ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3))
        >>> report[0]["name"], report[0]["sparsity"]
        ('stem_conv', 0.0)
    """
    layer_types = _check_layer_types(layer_types)
    rows = SparsityReport()
    for name, kind, layer in prunable_layers(model, LAYER_TYPES, include_stem=True,
                                             include_classifier=True):
        if kind not in layer_types:
            continue
        w = keras.ops.convert_to_numpy(layer.kernel)
        zeros = int(np.count_nonzero(w == 0))
        rows.append({"name": name, "type": kind, "params": int(w.size), "zeros": zeros,
                     "sparsity": zeros / w.size if w.size else 0.0})
    return rows
