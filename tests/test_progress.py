"""keras_efficientnet.progress: the progress lines of long steps, on a terminal and in a log."""

from __future__ import annotations

import io
import re
import time

import pytest

from keras_efficientnet.progress import Progress, enabled


@pytest.fixture(autouse=True)
def no_switches(monkeypatch):
    """Each test starts with neither switch set (as a user's shell usually is)."""
    for key in ("KE_PROGRESS", "KE_DOWNLOAD_PROGRESS"):
        monkeypatch.delenv(key, raising=False)


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self):
        return True


def test_terminal_redraws_one_line_while_an_opaque_step_runs():
    tty = Terminal()
    with Progress("Exporting model to tflite", stream=tty, interval=0.05):
        time.sleep(0.4)  # a converter that reports nothing
    text = tty.getvalue()
    draws = text.split("\r")[1:]
    assert len(draws) >= 4, text  # the heartbeat redrew the elapsed time in place
    assert all(d.startswith("Exporting model to tflite: ") for d in draws)
    assert text.count("\n") == 1 and re.search(r"done in 0\.\d s\n$", text), text


def test_counted_step_draws_a_bar_and_a_failure_says_so():
    tty = Terminal()
    with pytest.raises(RuntimeError):
        with Progress("Loading weights", total=4, stream=tty, interval=0) as bar:
            bar.update(2)
            raise RuntimeError("disk full")
    draws = tty.getvalue().split("\r")
    assert any("[############............] 2/4" in d for d in draws), draws
    assert re.match(r"Loading weights: 2/4 failed in \d+\.\d s\n$", draws[-1]), draws[-1]


@pytest.mark.parametrize("env, tty, expected", [
    ({}, False, False), ({}, True, True),
    ({"KE_PROGRESS": "1"}, False, True), ({"KE_PROGRESS": "0"}, True, False),
    ({"KE_DOWNLOAD_PROGRESS": "0"}, True, False),  # the older switch, when KE_PROGRESS is unset
    ({"KE_PROGRESS": "1", "KE_DOWNLOAD_PROGRESS": "0"}, False, True),
])
def test_switches(monkeypatch, env, tty, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    stream = Terminal() if tty else io.StringIO()
    assert enabled(stream) is expected
    with Progress("Step", stream=stream):
        pass
    assert bool(stream.getvalue()) is expected


@pytest.mark.parametrize("env, expected", [
    ({}, False), ({"KE_PROGRESS": "1"}, True),
    ({"KE_PROGRESS": "1", "KE_DOWNLOAD_PROGRESS": "0"}, False),  # a step's own switch wins
    ({"KE_PROGRESS": "0", "KE_DOWNLOAD_PROGRESS": "1"}, True),
])
def test_a_steps_own_switch_comes_first(monkeypatch, env, expected):
    """Downloads ask ``enabled(prefer="KE_DOWNLOAD_PROGRESS")``: their switch, then the
    general one."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert enabled(io.StringIO(), prefer="KE_DOWNLOAD_PROGRESS") is expected
