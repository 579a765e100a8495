"""MkDocs hooks for the documentation build.

1. The team's docstrings title their doctests ``Example:`` (singular). griffe's Google parser
   knows only ``Examples:`` as a section and renders ``Example:`` as an admonition of Markdown,
   where doctest output such as ``['a', 'b']`` reads as a broken link. We register the
   singular title as the same section kind, so examples render as code.

2. Report Google-style ``a, b, c: description`` argument entries without failing.

Several docstrings document arguments that share a meaning on one line
(``alpha, beta, gamma: ...``), which griffe's Google parser reports as a WARNING (and
``mkdocs build --strict`` would abort on). Those entries are readable as written, so this hook
lowers exactly that message to INFO and lists them at the end of the build. Every other
warning (broken links, missing references, unknown objects) still fails the strict build.
"""

import logging

PATTERN = "Failed to get 'name: description' pair"
_seen: list[str] = []


class _Demote(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        if record.levelno == logging.WARNING and PATTERN in message:
            _seen.append(message)
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _register_example_section():
    from griffe._internal.docstrings import google
    from griffe._internal.enumerations import DocstringSectionKind

    google._section_kind.setdefault("example", DocstringSectionKind.examples)


def on_startup(command, dirty):
    _register_example_section()
    for name in ("mkdocs.plugins.griffe", "griffe", "mkdocs.plugins.mkdocstrings_handlers",
                 "mkdocs.plugins.mkdocstrings"):
        logging.getLogger(name).addFilter(_Demote())


def on_post_build(config):
    if _seen:
        logging.getLogger("mkdocs").info("%d multi-name docstring entries kept as written "
                                         "(scripts/mkdocs_hooks.py)", len(_seen))
