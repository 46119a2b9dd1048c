"""Progress lines of a training run, timed from its start (stderr; the result goes to stdout)."""

from __future__ import annotations

import sys
import time


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def log(self, message: str) -> None:
        print(f"[{self.seconds:6.1f} s] {message}", file=sys.stderr, flush=True)
