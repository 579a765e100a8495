"""The ``keras-efficientnet`` command.

Each sub-command lives in :mod:`keras_efficientnet.commands` as a module with
``add_parser(subparsers)`` (which sets ``func`` on its parser) and is listed in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command modules under keras_efficientnet.commands, in help order.
COMMANDS = ["classify", "train", "export"]


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
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"keras_efficientnet.commands.{name}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Entry point; returns the exit status. Bad input prints one line, not a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"keras-efficientnet {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
