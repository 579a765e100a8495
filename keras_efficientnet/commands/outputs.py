"""Checks and outputs shared by the ``train`` commands (classification and segmentation)."""

from __future__ import annotations

import os


def _check_args(epochs, batch_size, image_size, learning_rate, validation_split):
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}.")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}.")
    if image_size is not None and image_size < 32:
        raise ValueError(f"--image-size must be at least 32 (EfficientNets downsample 32x), got {image_size}.")
    if learning_rate <= 0:
        raise ValueError(f"--learning-rate must be positive, got {learning_rate}.")
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"--validation-split must lie in (0, 1), got {validation_split}.")


def _check_out(out: str, overwrite: bool,
               outputs=("curves.png", "log.csv", "model.keras", "summary.json")) -> None:
    """Fail before training when ``out`` cannot take the outputs."""
    from ..validation import prepare_output

    prepare_output(out, what="--out", directory=True, check_only=True)
    if os.path.isdir(out):
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(f"--out folder {out!r} is not writable; choose another folder.")
        existing = [f for f in outputs if os.path.lexists(os.path.join(out, f))]
        if existing and not overwrite:
            raise FileExistsError(f"--out folder {out!r} already holds the outputs of a run "
                                  f"({', '.join(existing)}); they were left untouched. Pass "
                                  "--overwrite (overwrite=True) to replace them, or choose "
                                  "another --out.")


def publish(tmp_dir: str, out: str, summary: dict, outputs) -> None:
    """Write ``summary`` as ``summary.json`` into the run's private ``tmp_dir``, then move each
    of ``outputs`` (``summary.json`` among them) into ``out``: every file or folder arrives
    whole (:func:`~keras_efficientnet.validation.place_output`: a file in one ``os.replace``,
    a folder of an earlier run moved aside first), and a run that fails before this leaves
    ``out`` as it was.

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.commands.outputs import publish
        >>> out = tempfile.mkdtemp(); tmp = tempfile.mkdtemp(dir=out)
        >>> publish(tmp, out, {"loss": 1.0}, ["summary.json"])
        >>> "summary.json" in os.listdir(out), os.listdir(tmp)
        (True, [])
    """
    import json

    with open(os.path.join(tmp_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    from ..validation import place_output

    for fname in outputs:  # --overwrite was checked before training (_check_out)
        place_output(os.path.join(tmp_dir, fname), os.path.join(out, fname), overwrite=True,
                     what="run output")


def _finite(v) -> bool:
    return v == v and abs(v) != float("inf")


def plot_history(history: dict, path: str, title: str = "", metric: str = "accuracy") -> None:
    """Plot loss and ``metric`` curves (train and validation) of a Keras history to a PNG.

    Args:
        history: ``History.history``: ``{"loss": [...], "val_loss": [...], ...}``.
        path: output file.
        title: figure title.
        metric: the history key of the second panel (``"accuracy"``, ``"mean_iou"``, ...).

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.commands.train import plot_history
        >>> path = os.path.join(tempfile.mkdtemp(), "c.png")
        >>> plot_history({"loss": [1.0, 0.5], "val_accuracy": [0.6, 0.8]}, path)
        >>> os.path.getsize(path) > 0
        True
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key in zip(axes, ("loss", metric)):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            if prefix + key in history:
                vals = history[prefix + key]
                ax.plot(range(1, len(vals) + 1), vals, style, label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no 0.5 epochs
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
