"""Every docstring example (``>>>``) in keras_efficientnet/ runs: one test per docstring.

The collector, the runner and the sandbox are tests/test_docs.py's (which runs the Markdown
samples); this file only holds the tests, so that ``pytest -n 2 --dist loadfile`` gives the
examples and the samples to different workers.
"""

from __future__ import annotations

import pytest

from test_docs import _collect_doctests, on_sample_backend, run_doctest, sandbox  # noqa: F401


@on_sample_backend
@pytest.mark.parametrize("test", _collect_doctests())
def test_docstring_examples(test, sandbox):  # noqa: F811 (the fixture imported above)
    report = run_doctest(test)
    assert not report, report
