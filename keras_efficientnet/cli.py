"""The ``keras-efficientnet`` command.

Each sub-command lives in :mod:`keras_efficientnet.commands` as a module with
``add_parser(subparsers)`` (which sets ``func`` on its parser) and is listed in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command modules under keras_efficientnet.commands, in help order.
COMMANDS = ["classify", "segment", "detect", "train", "export", "list"]


#: errors that bad input, a bad environment or the user cause: one line and exit status 2.
EXPECTED_ERRORS = (ValueError, OSError, RuntimeError, ImportError, MemoryError, KeyboardInterrupt)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command.

    Example:
        >>> from keras_efficientnet.cli import build_parser
        >>> build_parser().prog
        'keras-efficientnet'
    """
    parser = argparse.ArgumentParser(
        prog="keras-efficientnet",
        description="EfficientNets for Keras 3. Set KERAS_BACKEND to tensorflow, jax or torch.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also KE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"keras_efficientnet.commands.{name}").add_parser(sub)
    for command in sub.choices.values():  # --debug after the sub-command works too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the full traceback of an error")
        _show_defaults(command)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default: X)`` to every option's help that does not state its default."""
    for action in parser._actions:
        if not action.option_strings or action.help in (None, argparse.SUPPRESS):
            continue
        if action.default in (None, False, argparse.SUPPRESS) or "default" in action.help:
            continue
        action.help += " (default: %(default)s)"


def _one_line(err: BaseException) -> str:
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (Ctrl-C); nothing half-written was left in place"
    text = " ".join(str(err).split()) or type(err).__name__
    filename = getattr(err, "filename", None)
    if isinstance(err, OSError) and filename and str(filename) not in text:
        text = f"{text}: {filename!r}"
    if isinstance(err, (ImportError, MemoryError)) or type(err) in (OSError, RuntimeError):
        text = f"{type(err).__name__}: {text}"
    return text


def main(argv=None) -> int:
    """Entry point; returns the exit status.

    Every expected error (bad input, a missing or unwritable path, a failed download, a
    missing optional dependency, Ctrl-C) prints one line on stderr and returns 2; ``--debug``
    (or ``KE_DEBUG=1``) shows the traceback instead.

    Example:
        >>> from keras_efficientnet.cli import main
        >>> main(["classify", "--top", "0"])  # one line on stderr, exit status 2
        2
    """
    import os

    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("KE_DEBUG", "") not in ("", "0")
    try:
        import keras_efficientnet

        keras_efficientnet._load()  # Keras loads only now: --help and bad arguments stay fast
        return int(args.func(args) or 0)
    except EXPECTED_ERRORS as err:
        if debug:
            raise
        print(f"keras-efficientnet {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
