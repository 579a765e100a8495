"""Every code sample in docs/*.md and every docstring example in keras_efficientnet/ runs.

The docstring examples are collected here and run from tests/test_docstrings.py (a file of
their own, so the test runner's two workers share the samples and the examples).

Markdown: each ```python block of a page runs, in order, in one namespace per page (a later
block may use an earlier one's names), in a temporary working directory with an empty Keras
cache. A block preceded by ``<!-- docs-test: skip (reason) -->`` is skipped; the reason is
reported. Docstrings: the standard library's doctest over every module of the package
(``>>>`` examples), one test per docstring.

The samples run on one backend, TensorFlow (the fastest to build models on CPU here); under
the other backends these tests skip. ``KE_DOCS_DIR`` points the Markdown collector at another
directory (used to prove that a broken sample fails the suite).
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import traceback

import pytest

# (triton is kept out of the process by conftest.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS_DIR = os.environ.get("KE_DOCS_DIR", os.path.join(ROOT, "docs"))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "docs")
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
SAMPLE_BACKEND = "tensorflow"

on_sample_backend = pytest.mark.skipif(
    BACKEND != SAMPLE_BACKEND,
    reason=f"doc samples run once, under KERAS_BACKEND={SAMPLE_BACKEND} (fastest model builds)")

_FENCE = re.compile(r"^```\s*(python|py)\s*$")
_SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*(.*?)\s*-->")

# The generated constructors share one docstring template; one per family runs (the others
# differ only in the name; tests/test_model.py builds every constructor).
CONSTRUCTOR_DOCTESTS = ("EfficientNetB0", "EfficientNetV2B0", "EfficientNetLite0",
                        "EfficientNetEdgeTPUS", "EfficientNetCondConvB0_4E")


# --------------------------------------------------------------------------------------------
# Markdown samples
# --------------------------------------------------------------------------------------------

def markdown_samples(path: str) -> list[tuple[int, str, str | None]]:
    """``(first_line, code, skip_reason)`` of each ```python block of a Markdown file."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    samples, i = [], 0
    while i < len(lines):
        if _FENCE.match(lines[i].strip()):
            prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            skip = _SKIP.search(prev)
            start, body = i + 2, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise ValueError(f"{path}:{start - 1}: unterminated ```python block.")
            reason = (skip.group(1).strip("() ") or "no reason given") if skip else None
            samples.append((start, "\n".join(body) + "\n", reason))
        i += 1
    return samples


def run_markdown_page(path: str) -> list[str]:
    """Run a page's samples in one namespace; returns the skip reasons.

    Raises:
        AssertionError: naming the page and line of the first sample that raised.
    """
    namespace = {"__name__": "__docs__"}
    skipped = []
    for line, code, reason in markdown_samples(path):
        if reason is not None:
            skipped.append(f"{os.path.basename(path)}:{line}: {reason}")
            continue
        try:
            exec(compile(code, f"{path}:{line}", "exec"), namespace)
        except Exception as err:  # noqa: BLE001 - report any failure with its location
            tb = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
            raise AssertionError(f"sample at {path}:{line} failed:\n{code}\n{tb}") from err
    return skipped


def _pages(root: str) -> list[str]:
    pages = []
    for directory, _, files in os.walk(root):
        pages += [os.path.join(directory, f) for f in files if f.endswith(".md")]
    return sorted(pages)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Samples run in an empty directory with an empty Keras cache."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@on_sample_backend
@pytest.mark.parametrize("page", _pages(DOCS_DIR), ids=lambda p: os.path.relpath(p, DOCS_DIR))
def test_markdown_samples(page, sandbox):
    skipped = run_markdown_page(page)
    for reason in skipped:
        print("skipped sample", reason)


# --------------------------------------------------------------------------------------------
# Docstring examples
# --------------------------------------------------------------------------------------------

def _modules(package: str = "keras_efficientnet") -> list[str]:
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        names.append(info.name)
    return sorted(names)


def docstring_tests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module, module_name) if t.examples]


def _collect_doctests():
    if BACKEND != SAMPLE_BACKEND:
        return [pytest.param(None, id="other-backend")]
    params = []
    for module_name in _modules():
        for test in docstring_tests(module_name):
            short = test.name.rsplit(".", 1)[-1]
            marks = []
            if module_name == "keras_efficientnet" and short.startswith("EfficientNet") \
                    and short not in CONSTRUCTOR_DOCTESTS and test.name.count(".") == 1:
                marks = [pytest.mark.skip(reason="generated constructor: same docstring as its "
                                                 "family's first constructor, which runs")]
            params.append(pytest.param(test, id=test.name, marks=marks))
    return params


def run_doctest(test: doctest.DocTest) -> str:
    """Run one docstring's examples; returns doctest's failure report ('' when all pass)."""
    import io
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                                   verbose=False)
    runner.run(test, out=out.write, clear_globs=True)
    return out.getvalue() if runner.failures else ""


# --------------------------------------------------------------------------------------------
# The collector can fail
# --------------------------------------------------------------------------------------------

def test_collector_finds_samples_and_skip_markers():
    samples = markdown_samples(os.path.join(FIXTURES, "broken_page.md"))
    assert [s[2] for s in samples] == [None, None, "needs a GPU"]
    assert "1 + 1" in samples[0][1]


def test_broken_markdown_sample_raises_with_its_location():
    with pytest.raises(AssertionError, match=r"broken_page\.md:\d+ failed"):
        run_markdown_page(os.path.join(FIXTURES, "broken_page.md"))


def test_broken_docstring_example_is_reported():
    def fake():
        """Doc.

        >>> 1 + 1
        3
        """
    test = doctest.DocTestFinder().find(fake, "fake", globs={})[0]
    assert "Expected:\n    3\nGot:\n    2" in run_doctest(test)


@on_sample_backend
def test_suite_fails_on_a_broken_fixture_page():
    """End to end: pytest over the collector, pointed at the fixture pages, exits non-zero."""
    env = dict(os.environ, KE_DOCS_DIR=FIXTURES, KERAS_BACKEND=SAMPLE_BACKEND)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         os.path.join(ROOT, "tests", "test_docs.py"), "-k", "test_markdown_samples"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "broken_page.md" in result.stdout and "ZeroDivisionError" in result.stdout
