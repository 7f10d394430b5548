"""A one-line progress bar with the time left, written to stderr."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Callable as ``progress(done, total, message)``; redraws at most ten times a second."""

    def __init__(self, *, width: int = 30) -> None:
        self.width = width
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.phase = ""
        self.phase_started = self.started
        self.interactive = sys.stderr.isatty()

    def __call__(self, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if message != self.phase:
            self.phase, self.phase_started = message, now
            if not self.interactive:
                sys.stderr.write(f"{message}{'.' if total and done >= total else '...'}\n")
        if not self.interactive or (now - self.last_draw < 0.1 and done < total):
            return
        self.last_draw = now
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        bar = "#" * filled + "." * (self.width - filled)
        sys.stderr.write(f"\r[{bar}] {fraction:4.0%} {message[:40]:<40} {self._time_left(fraction, now)}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.interactive:
            sys.stderr.write("\n")

    def _time_left(self, fraction: float, now: float) -> str:
        elapsed = now - self.started
        if fraction <= 0.02 or elapsed < 1.0:
            return "estimating time left"
        left = elapsed * (1.0 - fraction) / fraction
        return f"about {left:.0f} s left" if left < 120 else f"about {left / 60:.0f} min left"
