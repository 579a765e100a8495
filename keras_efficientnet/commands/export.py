"""``keras-efficientnet export --model NAME --format FMT --output PATH``: deployable artifacts.

Builds the variant (with ``--weights``), exports it with :func:`keras_efficientnet.export`,
which loads the artifact in its own runtime and compares it with the Keras model, and prints
the route taken, the file size and the measured agreement.
"""

from __future__ import annotations

import difflib
import os
import sys

from ..export import FORMATS, QUANTIZATIONS


def add_parser(subparsers):
    """Register the ``export`` sub-command.

    Example:
        >>> import argparse
        >>> from keras_efficientnet.commands import export
        >>> sub = argparse.ArgumentParser().add_subparsers()
        >>> export.add_parser(sub).get_default("format")
        'saved_model'
    """
    quantizations = [q for q in QUANTIZATIONS["tflite"] if q]
    parser = subparsers.add_parser(
        "export", help="export a model to SavedModel, TFLite or ONNX and verify it",
        description="Export an EfficientNet to SavedModel, TFLite (float32, float16, dynamic-range "
                    "or full-integer int8) or ONNX. The artifact is run in its own runtime and "
                    "compared with the Keras model; the agreement and the size are printed.")
    parser.add_argument("--model", required=True,
                        help="variant name (see: keras-efficientnet list), a .keras file or a "
                             "preset folder (the model.keras or preset/ of keras-efficientnet "
                             "train)")
    parser.add_argument("--weights", default=None,
                        help="registered weight set ('imagenet') or weights file of a variant "
                             "--model (required unless --random-weights)")
    parser.add_argument("--random-weights", action="store_true",
                        help="export a variant with random initialisation (for testing a "
                             "deployment path; its predictions mean nothing)")
    parser.add_argument("--format", default="saved_model", choices=FORMATS,
                        help="artifact format")
    parser.add_argument("--quantize", default=None, choices=quantizations,
                        help="TFLite quantization (default float32)")
    parser.add_argument("--weight-rounding", default="gptq", choices=("gptq", "nearest"),
                        help="int8: round each kernel to its grid minimising the layer's output "
                             "error on the representative data (gptq, default), or each weight "
                             "to its nearest grid point (nearest)")
    parser.add_argument("--representative-data", default=None, metavar="DIR",
                        help="folder of typical input images: calibrates int8, and is what the "
                             "artifact is verified on")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input height and width (default: the variant's resolution)")
    parser.add_argument("--fuse-batchnorm", action="store_true",
                        help="fold BatchNorm into the convolutions before exporting")
    parser.add_argument("--output", required=True, help="artifact path: a directory (saved_model), .tflite, .onnx, or "
                             "the .xml of an OpenVINO IR (its .bin goes beside it)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --output (default: refuse; the old artifact is "
                             "removed only once the new one is complete)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    """Build, export, verify and print; returns 0.

    An existing ``--output`` (a file, or a non-empty folder) is refused before the model is
    built, unless ``--overwrite``.

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.cli import main
        >>> main(["export", "--model", "EfficientNetB0", "--output", tempfile.mkdtemp(prefix="x"),
        ...       "--format", "onnx", "--random-weights"])  # not a .onnx path: exit status 2
        2
    """
    from .. import export, fuse_batchnorm
    from ..models.constructors import create_model, list_models

    from_file = args.model.endswith(".keras") or os.path.exists(args.model)
    if not from_file:
        if args.model not in list_models():
            close = difflib.get_close_matches(args.model, list_models(), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"Unknown model {args.model!r}: not a variant name nor an existing "
                             f"file.{hint} Run keras-efficientnet list for the names.")
    elif args.weights is not None or args.random_weights:
        raise ValueError(f"--model {args.model!r} is a file that holds its weights; do not pass "
                         "--weights or --random-weights with it.")
    # bad format/quantize combinations fail before any model is built
    from ..export import _check_arguments

    from ..validation import prepare_output

    _check_arguments(args.format, args.quantize)
    output = args.output
    if args.format != "saved_model" and not output.endswith(f".{args.format}"):
        raise ValueError(f"--output of a {args.format} artifact must end with '.{args.format}', "
                         f"got {output!r}.")
    prepare_output(output, overwrite=args.overwrite, what="export", check_only=True)  # before building
    if args.image_size is not None and args.image_size < 32:
        raise ValueError(f"--image-size must be at least 32, got {args.image_size}.")
    if not from_file and args.weights is None and not args.random_weights:
        raise ValueError(f"--model {args.model} without --weights would export random "
                         "weights; pass --weights imagenet (or a weights file), or "
                         "--random-weights if that is what you want.")
    kwargs = {}
    if args.image_size:
        kwargs["input_shape"] = (args.image_size, args.image_size, 3)
    if from_file:
        model = load_model_file(args.model, args.image_size)
    else:
        model = create_model(args.model, weights=args.weights, **kwargs)
        if args.weights is None:
            print(f"note: exporting {args.model} with random weights (--random-weights)",
                  file=sys.stderr)
    if args.fuse_batchnorm:
        model = fuse_batchnorm(model)
    result = export(model, output, format=args.format, quantize=args.quantize,
                    representative_data=args.representative_data, overwrite=args.overwrite,
                    weight_rounding=args.weight_rounding)
    print(result.summary())
    return 0


def load_model_file(path: str, image_size=None):
    """A saved model for export: a ``.keras`` file (e.g. ``keras-efficientnet train``'s
    ``model.keras``) or a preset folder (its ``preset/``, :func:`~keras_efficientnet.save_preset`,
    or keras-hub's), loaded without optimizer state. A fixed-size classifier is rebuilt at
    ``image_size``; a free-size model (a U-Net) gets that size fixed for the converters.

    Raises:
        ValueError: a missing or unreadable file, or an ``image_size`` the model cannot take.

    Example:
        >>> from keras_efficientnet.commands.export import load_model_file
        >>> load_model_file("no_such_model.keras")
        Traceback (most recent call last):
        ...
        ValueError: --model 'no_such_model.keras': no such file or folder.
    """
    from ..presets import load_saved, rebuild_at

    if not os.path.exists(path):
        raise ValueError(f"--model {path!r}: no such file or folder.")
    try:
        model = load_saved(path)
        spatial = tuple(model.input_shape[1:3])
        if image_size and None not in spatial:
            model = rebuild_at(model, (image_size, image_size, model.input_shape[-1]))
    except ValueError as err:
        raise ValueError(f"--model {path!r}: {err}") from None
    if image_size and None in spatial:  # a free-size model (e.g. a U-Net) exported at one size
        from ..export import fix_input_size

        model = fix_input_size(model, (image_size, image_size))
    return model
