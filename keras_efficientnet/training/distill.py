"""Knowledge distillation (Hinton et al., 2015): a student learns from labels and a teacher.

The loss of :func:`distillation_loss` is::

    alpha * CE(labels, student) + (1 - alpha) * T**2 * KL(softmax(teacher / T) || softmax(student / T))

:class:`Distiller` is a ``keras.Model`` that wraps a student and a frozen teacher and trains
the student with that loss through plain ``compile`` / ``fit`` on TensorFlow, JAX and PyTorch.
The teacher is called with ``training=False`` and made non-trainable, so its weights and its
BatchNorm statistics never change. Both networks must output **logits**: build them with
``classifier_activation=None``.

Two ways to feed the teacher's side:

* ``fit(x, labels)``: the teacher runs on every batch (needed with random augmentation).
* ``fit(x, {"labels": labels, "teacher_logits": logits})`` with
  ``logits = precompute_teacher_logits(teacher, x)``: the teacher runs once over a fixed data
  set; the ``Distiller`` then needs no teacher at all (``teacher=None``).

What to keep afterwards is ``distiller.student``: an ordinary model of its variant, saved and
loaded like any other (the ``Distiller`` itself is not meant to be serialized).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = ["Distiller", "distillation_loss", "precompute_teacher_logits", "check_logits_model",
           "logits_model"]

LABELS = "labels"
TEACHER_LOGITS = "teacher_logits"


def distillation_loss(labels, student_logits, teacher_logits, temperature: float = 4.0,
                      alpha: float = 0.1, sample_weight=None):
    """The distillation loss, averaged over the batch.

    ``alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(p_teacher || p_student)`` with
    ``p = softmax(logits / T)``; the ``T^2`` keeps the soft term's gradients on the scale of the
    hard term's as ``T`` changes. Computed in float32 with ``keras.ops`` (any backend).

    Args:
        labels: integer class ids ``(N,)`` or one-hot / soft targets ``(N, C)``.
        student_logits: ``(N, C)`` logits of the student.
        teacher_logits: ``(N, C)`` logits of the teacher.
        temperature: softening temperature ``T > 0``.
        alpha: weight of the hard-label cross-entropy, in ``[0, 1]``.
        sample_weight: optional ``(N,)`` weights; the result is their weighted mean.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: for ``temperature <= 0`` or ``alpha`` outside ``[0, 1]``.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.training.distill import distillation_loss
        >>> logits = np.array([[2.0, 0.0, -1.0]], "float32")
        >>> float(distillation_loss(np.array([0]), logits, logits, temperature=2.0, alpha=0.0))
        0.0
    """
    _check_hyper(temperature, alpha)
    s = ops.cast(student_logits, "float32")
    t = ops.stop_gradient(ops.cast(teacher_logits, "float32"))
    log_p = ops.log_softmax(s, axis=-1)
    if len(labels.shape) == len(s.shape):
        targets = ops.cast(labels, "float32")
    else:
        targets = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"), s.shape[-1])
    ce = -ops.sum(targets * log_p, axis=-1)
    log_ps = ops.log_softmax(s / temperature, axis=-1)
    log_pt = ops.log_softmax(t / temperature, axis=-1)
    kl = ops.sum(ops.exp(log_pt) * (log_pt - log_ps), axis=-1)
    per_sample = alpha * ce + (1.0 - alpha) * (temperature ** 2) * kl
    if sample_weight is None:
        return ops.mean(per_sample)
    w = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
    return ops.sum(per_sample * w) / ops.maximum(ops.sum(w), 1e-12)


def _check_hyper(temperature, alpha):
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}.")


def _output_activation(model):
    """The activation applied by the model's last layer (``None`` if it has none)."""
    layer = model.layers[-1]
    if isinstance(layer, keras.Model):
        return _output_activation(layer)
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", None) if callable(act) else act


def check_logits_model(model, role: str = "model") -> int:
    """Check that ``model`` outputs ``(N, classes)`` logits; return ``classes``.

    Args:
        model: a classifier (built with ``classifier_activation=None``).
        role: how to call it in the error message (``"student"``, ``"teacher"``).

    Returns:
        The number of classes.

    Raises:
        ValueError: the output is not 2-D, or its last layer applies softmax/sigmoid.

    Example:
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.distill import check_logits_model
        >>> check_logits_model(ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=4,
        ...                                      classifier_activation=None))
        4
    """
    shape = model.output_shape
    if isinstance(shape, list) or len(shape) != 2:
        raise ValueError(f"The {role} must output (batch, classes) logits; its output shape is "
                         f"{shape}. Build it with include_top=True.")
    name = _output_activation(model)
    if name in ("softmax", "sigmoid", "log_softmax"):
        raise ValueError(f"The {role} {model.name!r} ends in a {name} activation; distillation "
                         "needs logits. Build it with classifier_activation=None.")
    return int(shape[-1])


class _DenseLogits(keras.layers.Layer):
    """A softmax ``Dense`` layer's pre-activation output, computed with *its* variables."""

    def __init__(self, dense, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense

    def call(self, x):
        kernel = ops.cast(self.dense.kernel, x.dtype)
        y = ops.matmul(x, kernel)
        return y + ops.cast(self.dense.bias, x.dtype) if self.dense.use_bias else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dense.units)


def logits_model(model):
    """``model`` itself if it outputs logits; for a classifier ending in a softmax ``Dense``
    (the default ``classifier_activation``), a view that outputs its logits.

    The view shares every layer and variable with ``model`` (training the view trains
    ``model``); it is for distillation only and is not meant to be saved.

    Args:
        model: a classifier.

    Returns:
        A ``keras.Model`` that outputs logits.

    Raises:
        ValueError: a softmax/sigmoid output that is not a ``Dense`` layer's activation.

    Example:
        >>> import numpy as np, keras
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.distill import logits_model
        >>> model = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)  # softmax output
        >>> x = np.zeros((1, 32, 32, 3), "float32")
        >>> z = keras.ops.convert_to_numpy(logits_model(model)(x))
        >>> p = keras.ops.convert_to_numpy(model(x))
        >>> bool(np.allclose(np.exp(z) / np.exp(z).sum(), p, atol=1e-5))
        True
    """
    last = model.layers[-1]
    if _output_activation(model) == "softmax" and isinstance(last, keras.layers.Dense):
        out = _DenseLogits(last, name=f"{last.name}_logits", dtype=last.dtype_policy)(last.input)
        view = keras.Model(model.inputs, out, name=f"{model.name}_logits")
        check_logits_model(view, "model")
        return view
    check_logits_model(model, "model")
    return model


def precompute_teacher_logits(teacher, x, batch_size: int = 32):
    """Run the teacher once (inference mode) over a fixed data set and return its logits.

    Feed them to :class:`Distiller` as ``y={"labels": y, "teacher_logits": logits}``; the
    distiller then never calls the teacher (it can be built with ``teacher=None``). Only valid
    when every epoch sees the same ``x`` (no random augmentation).

    Args:
        teacher: a model that outputs logits.
        x: the images, as the teacher takes them.
        batch_size: inference batch size.

    Returns:
        A float32 NumPy array ``(N, classes)``.

    Example:
        >>> import numpy as np
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training.distill import precompute_teacher_logits
        >>> teacher = ke.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3,
        ...                             classifier_activation=None)
        >>> precompute_teacher_logits(teacher, np.zeros((5, 32, 32, 3), "float32")).shape
        (5, 3)
    """
    check_logits_model(teacher, "teacher")
    x = np.asarray(x)
    out = [keras.ops.convert_to_numpy(teacher(x[i:i + batch_size], training=False))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype("float32")


class Distiller(keras.Model):
    """Train ``student`` from labels and a frozen ``teacher`` with :func:`distillation_loss`.

    ``compile`` it with an optimizer (and metrics; they see the labels and the student's
    logits) but no loss, then ``fit(x, y)`` (teacher runs every step) or
    ``fit(x, {"labels": y, "teacher_logits": t})`` (precomputed, see
    :func:`precompute_teacher_logits`). ``predict`` / ``__call__`` return the student's logits.
    The teacher is set ``trainable=False`` and always called with ``training=False``, so its
    weights and BatchNorm moving statistics stay bit-identical. Save ``distiller.student``.

    Args:
        student: the model to train; outputs logits (``classifier_activation=None``).
        teacher: the trained teacher, outputs logits over the same classes; ``None`` when all
            data comes with precomputed ``teacher_logits``.
        temperature: softening temperature ``T > 0`` (default 4).
        alpha: weight of the hard-label cross-entropy in ``[0, 1]`` (default 0.1).

    Raises:
        ValueError: softmax outputs, a class-count mismatch (both counts named), bad
            ``temperature`` / ``alpha``, or ``compile(loss=...)``.

    Example:
        >>> import numpy as np, keras
        >>> import keras_efficientnet as ke
        >>> from keras_efficientnet.training import Distiller
        >>> kw = dict(input_shape=(32, 32, 3), classes=3, classifier_activation=None)
        >>> distiller = Distiller(ke.EfficientNetB0(weights=None, **kw),
        ...                       ke.EfficientNetB0(weights=None, **kw), temperature=4.0, alpha=0.1)
        >>> distiller.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
        >>> x, y = np.zeros((4, 32, 32, 3), "float32"), np.arange(4) % 3
        >>> history = distiller.fit(x, y, batch_size=2, epochs=1, verbose=0)
        >>> distiller.student.output_shape
        (None, 3)
    """

    def __init__(self, student, teacher=None, temperature: float = 4.0, alpha: float = 0.1,
                 **kwargs):
        kwargs.setdefault("name", "distiller")
        super().__init__(**kwargs)
        _check_hyper(temperature, alpha)
        classes = check_logits_model(student, "student")
        if teacher is not None:
            teacher_classes = check_logits_model(teacher, "teacher")
            if teacher_classes != classes:
                raise ValueError(f"The teacher predicts {teacher_classes} classes but the student "
                                 f"{classes}; both must share the same classes.")
            teacher.trainable = False
        self.student = student
        self.teacher = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.classes = classes

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Like ``keras.Model.compile`` without ``loss`` (the distillation loss is fixed)."""
        if loss is not None:
            raise ValueError("Distiller computes its own loss (distillation_loss); do not pass "
                             "loss= to compile().")
        super().compile(optimizer=optimizer, **kwargs)

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def _split_targets(self, y):
        if isinstance(y, dict):
            unknown = set(y) - {LABELS, TEACHER_LOGITS}
            if LABELS not in y or unknown:
                raise ValueError(f"Distiller targets as a dict need the keys {LABELS!r} and "
                                 f"optionally {TEACHER_LOGITS!r}; got {sorted(y)}.")
            return y[LABELS], y.get(TEACHER_LOGITS)
        return y, None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels, teacher_logits = self._split_targets(y)
        if teacher_logits is None:
            if self.teacher is None:
                raise ValueError("This Distiller has no teacher: pass y={'labels': ..., "
                                 "'teacher_logits': ...} (see precompute_teacher_logits).")
            teacher_logits = self.teacher(x, training=False)
        loss = distillation_loss(labels, y_pred, teacher_logits, self.temperature, self.alpha,
                                 sample_weight)
        extra = [ops.cast(l, "float32") for l in self.losses]  # e.g. kernel regularizers
        return loss + ops.sum(ops.stack(extra)) if extra else loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = self._split_targets(y)
        return super().compute_metrics(x, labels, y_pred, sample_weight)

    def get_config(self):
        # Not meant to be saved: save `distiller.student`, an ordinary model of its variant.
        return {"name": self.name, "temperature": self.temperature, "alpha": self.alpha}
