"""Stage timings for a reading: one helper so every pipeline reports milliseconds the same way."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Timer:
    """``with timer("decode"): ...`` adds that stage's wall time in ms (stages may repeat: they add up)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage] = self.ms.get(stage, 0.0) + (time.perf_counter() - t0) * 1e3

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.ms.items()}
