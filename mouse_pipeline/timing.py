"""Wall-clock seconds of consecutive steps, for the timings that ingestion and calibration report."""

from __future__ import annotations

import time


class LapClock:
    """Seconds of each step since the previous lap (or since the clock was made), by step name."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step] = now - self._last
        self._last = now
