"""``keras-efficientnet export --model NAME --format FMT --output PATH``: deployable artifacts.

Builds the variant (with ``--weights``), exports it with :func:`keras_efficientnet.export`,
which loads the artifact in its own runtime and compares it with the Keras model, and prints
the route taken, the file size and the measured agreement.
"""

from __future__ import annotations

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
    parser.add_argument("--model", required=True, help="variant name from list_models()")
    parser.add_argument("--weights", default=None,
                        help="registered weight set ('imagenet') or weights file (default: random)")
    parser.add_argument("--format", default="saved_model", choices=FORMATS)
    parser.add_argument("--quantize", default=None, choices=quantizations,
                        help="TFLite quantization (default float32)")
    parser.add_argument("--representative-data", default=None, metavar="DIR",
                        help="folder of typical input images: calibrates int8, and is what the "
                             "artifact is verified on")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input height and width (default: the variant's resolution)")
    parser.add_argument("--fuse-batchnorm", action="store_true",
                        help="fold BatchNorm into the convolutions before exporting")
    parser.add_argument("--output", required=True, help="artifact path (.tflite / .onnx / a directory)")
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
        ...       "--format", "onnx"])  # not a .onnx path: one line on stderr, exit status 2
        2
    """
    from .. import export, fuse_batchnorm
    from ..models.constructors import create_model, list_models

    if args.model not in list_models():
        raise ValueError(f"Unknown model {args.model!r}; choose one of: {', '.join(list_models())}.")
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
    kwargs = {}
    if args.image_size:
        kwargs["input_shape"] = (args.image_size, args.image_size, 3)
    model = create_model(args.model, weights=args.weights, **kwargs)
    if args.fuse_batchnorm:
        model = fuse_batchnorm(model)
    result = export(model, output, format=args.format, quantize=args.quantize,
                    representative_data=args.representative_data, overwrite=args.overwrite)
    print(result.summary())
    return 0
