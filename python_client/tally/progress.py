"""A small progress bar on stderr for long work (`tally demo`; the benchmarks in bench/ use it too).

On a terminal it redraws one line in place; when stderr is not a terminal
(a log file, CI) it prints one line when the work ends, so logs stay clean.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress(total, "label") as bar: bar.update(done)``."""

    def __init__(self, total: float, label: str, unit: str = "", stream: TextIO | None = None, width: int = 28):
        self.total = max(float(total), 1e-9)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0.0
        self.note = ""  # shown after the bar, e.g. what is pending
        self.started = time.monotonic()
        self._drawn = 0.0
        self._tty = self.stream.isatty()

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(failed=exc[0] is not None)

    def update(self, done: float) -> None:
        """Set how much is done (same unit as ``total``)."""
        self.done = min(float(done), self.total)
        self._draw()

    def advance(self, n: float = 1) -> None:
        """Add ``n`` to what is done."""
        self.update(self.done + n)

    def _line(self) -> str:
        frac = self.done / self.total
        filled = int(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self.started
        count = f"  {self.done:,.0f}/{self.total:,.0f} {self.unit}" if self.unit else ""
        note = f"  {self.note}" if self.note else ""
        return f"  {self.label:<34} [{bar}] {frac:4.0%}{count}  {elapsed:5.1f} s{note}"

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._tty or (not force and now - self._drawn < 0.1):
            return
        self._drawn = now
        self.stream.write("\r" + self._line() + "\x1b[K")
        self.stream.flush()

    def close(self, failed: bool = False) -> None:
        """Finish the line (a terminal) or print it once (a log)."""
        if not failed:
            self.done = self.total
        line = self._line() + (" (failed)" if failed else "")
        self.stream.write(("\r" + line + "\x1b[K\n") if self._tty else (line + "\n"))
        self.stream.flush()
