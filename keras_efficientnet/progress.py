"""Progress lines on stderr for the slow steps a user would otherwise wait through in silence:
the first-time conversion of a weight set, loading a converted checkpoint, and exports.

Shown when stderr is a terminal; ``KE_PROGRESS=1`` shows them anywhere (a log file gets one
line when a step starts and one when it ends, a terminal one line redrawn in place),
``KE_PROGRESS=0`` hides them. The older ``KE_DOWNLOAD_PROGRESS`` switch is read when
``KE_PROGRESS`` is unset. Everything goes to stderr, so a command's own output on stdout
(``classify``'s labels, ``list``'s table) stays clean for pipes.

Keras' ``keras.utils.Progbar`` is not used: it writes to stdout and draws training metrics,
and these steps need a label, a count and the elapsed time on stderr.

Example:
    >>> import io
    >>> from keras_efficientnet.progress import Progress
    >>> log = io.StringIO()  # a file, not a terminal: a start line and an end line
    >>> with Progress("Converting weights", total=3, stream=log, show=True) as bar:
    ...     for i in range(3):
    ...         bar.update(i + 1)
    >>> print(log.getvalue().splitlines()[0])
    Converting weights (3) ...
"""

from __future__ import annotations

import os
import sys
import threading
import time

ENV = "KE_PROGRESS"
_LEGACY_ENV = "KE_DOWNLOAD_PROGRESS"
_OFF = ("0", "", "false", "no", "off")


def enabled(stream=None, prefer: str | None = None) -> bool:
    """Whether progress lines are shown: the first of ``prefer`` (a step's own switch, such
    as downloads' ``KE_DOWNLOAD_PROGRESS``), ``KE_PROGRESS`` and ``KE_DOWNLOAD_PROGRESS``
    that is set, else whether ``stream`` (default stderr) is a terminal.

    Example:
        >>> import io
        >>> from keras_efficientnet.progress import enabled
        >>> enabled(io.StringIO())  # not a terminal (and KE_PROGRESS unset)
        False
    """
    names = ((prefer,) if prefer else ()) + (ENV, _LEGACY_ENV)
    value = next((os.environ[n] for n in names if n in os.environ), None)
    if value is None:
        stream = sys.stderr if stream is None else stream
        return bool(getattr(stream, "isatty", lambda: False)())
    return value.strip().lower() not in _OFF


class Progress:
    """One step's progress line on stderr: its label, a bar when the total is known, the
    elapsed time, and how the step ended.

    Used as a context manager. With ``total``, call :meth:`update` with the count done; without
    it (an opaque step such as a TFLite conversion), a terminal line shows the running seconds
    (redrawn every ``interval`` seconds by a daemon thread), so a long export never looks hung.
    Nothing is drawn when :func:`enabled` is False; the counts are kept either way.

    Args:
        label: what is happening, e.g. ``"Converting tf_efficientnet_b0 weights"``.
        total: the number of items, or None.
        stream: where to write (default ``sys.stderr``).
        interval: the least seconds between two redraws.
        show: draw (True), stay silent (False), or ask :func:`enabled` (None, default).

    Example:
        >>> import io
        >>> from keras_efficientnet.progress import Progress
        >>> out = io.StringIO()
        >>> with Progress("Loading weights", total=2, stream=out, show=True) as bar:
        ...     bar.update(2)
        >>> out.getvalue().splitlines()[-1].startswith("Loading weights: 2/2 done in ")
        True
    """

    def __init__(self, label: str, total: int | None = None, *, stream=None,
                 interval: float = 0.5, show: bool | None = None):
        self.label = label
        self.total = total
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.show = enabled(self.stream) if show is None else bool(show)
        self.live = self.show and bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = self._last = 0.0
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ drawing
    def _count(self) -> str:
        if not self.total:
            return ""
        width = 24
        filled = int(width * min(self.done, self.total) / self.total)
        bar = "#" * filled + "." * (width - filled) if self.live else ""
        return (f" [{bar}]" if bar else "") + f" {self.done}/{self.total}"

    def _write(self, text: str, end: bool = False) -> None:
        with self._lock:
            if self.live:
                self.stream.write("\r" + text + ("\n" if end else "\x1b[K"))
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def _redraw(self) -> None:
        elapsed = time.monotonic() - self._start
        self._write(f"{self.label}:{self._count()} {elapsed:.0f} s")

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._redraw()

    # ------------------------------------------------------------------ use
    def __enter__(self):
        self._start = self._last = time.monotonic()
        if self.show:
            if self.live:
                self._redraw()
                if self.total is None:  # an opaque step: show that time passes
                    self._thread = threading.Thread(target=self._tick, daemon=True)
                    self._thread.start()
            else:
                self._write(f"{self.label}{' (' + str(self.total) + ')' if self.total else ''} ...")
        return self

    def update(self, done: int) -> None:
        """Record that ``done`` items are finished (redrawn at most every ``interval`` s)."""
        self.done = done
        if self.live and time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            self._redraw()

    def __exit__(self, kind, value, tb):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.show:
            elapsed = time.monotonic() - self._start
            how = "done" if kind is None else "failed"
            count = f" {self.done}/{self.total}" if self.total else ""
            self._write(f"{self.label}:{count} {how} in {elapsed:.1f} s", end=True)
        return False
