"""The Kaggle notebook's featurizer, ported as written: the baseline the pipeline is measured against.

The notebook ("mouse dynamics for user authentication", Spark MLlib) turned
each session's events into 17 features with plain Python: it went over the
records one by one, appending each to accumulators of its session, then
computed each session's features from those accumulators. This module is that
algorithm in plain Python instead of Spark: :func:`featurize` takes the rows
of a CSV in file order and loops over them, one Python iteration per record,
then once over each session's points. Nothing is vectorised; that is the
point of the baseline.

The features are those described in :mod:`mouse_pipeline.features.notebook`,
computed the notebook's way, slips included where they do not crash:

* ``first_x/y`` is the first row of the session in file order (the rows are
  not in time order);
* ``center_click_x/y`` is 0 for a session without a click;
* ``slope`` subtracts the mean of x from y (``sum((x-mx)*(y-mx)) / sum((x-mx)**2)``),
  harmless but for rounding since ``sum(x-mx)`` is 0, and is NaN, numpy's
  0/0, when x is constant;
* ``stress`` and ``chill`` (shortest and longest time between successive
  moves, in time order) crashed the notebook on a session with fewer than two
  moves: they are 0 here, so that the benchmark runs through;
* ``narrow`` is the smaller over the larger eigenvalue of the session's
  position covariance (``np.linalg.eigvalsh``, once per session).

Only timing depends on this module; the pipeline's own features are
:func:`mouse_pipeline.features.extract_features`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = ("center_x", "center_y", "center_click_x", "center_click_y", "first_x", "first_y", "radius",
            "slope", "narrow", "ev1", "ev2", "ev3", "ev4", "ev5", "stress", "chill", "nbpoints")


class _Session:
    """What the notebook accumulated per session while going over the records."""

    __slots__ = ("xs", "ys", "click_xs", "click_ys", "counts", "move_times", "first")

    def __init__(self) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.click_xs: list[float] = []
        self.click_ys: list[float] = []
        self.counts = [0, 0, 0, 0, 0, 0]
        self.move_times: list[int] = []
        self.first: tuple[float, float] | None = None


def _session_features(s: _Session) -> dict[str, float]:
    n = len(s.xs)
    cx, cy = sum(s.xs) / n, sum(s.ys) / n
    click_x = sum(s.click_xs) / len(s.click_xs) if s.click_xs else 0.0
    click_y = sum(s.click_ys) / len(s.click_ys) if s.click_ys else 0.0
    radius = 0.0
    sxy = sxx = 0.0
    for x, y in zip(s.xs, s.ys):
        radius = max(radius, math.sqrt((x - cx) ** 2 + (y - cy) ** 2))
        sxy += (x - cx) * (y - cx)  # the notebook's slip: the mean of x taken from y
        sxx += (x - cx) ** 2
    slope = sxy / sxx if sxx else math.nan
    if n > 1:
        small, large = np.linalg.eigvalsh(np.cov(np.array([s.xs, s.ys]), bias=True))
        narrow = small / large if large > 0 else 0.0
    else:
        narrow = 0.0
    times = sorted(s.move_times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    return {
        "center_x": cx, "center_y": cy, "center_click_x": click_x, "center_click_y": click_y,
        "first_x": s.first[0], "first_y": s.first[1], "radius": radius, "slope": slope, "narrow": narrow,
        **{f"ev{k}": s.counts[k] / n for k in range(1, 6)},
        "stress": float(min(gaps)) if gaps else 0.0, "chill": float(max(gaps)) if gaps else 0.0,
        "nbpoints": float(n),
    }


def featurize(rows: Iterable[tuple]) -> dict[str, dict[str, float]]:
    """The notebook's 17 features of every session, from rows in file order.

    ``rows`` yields ``(session_id, timestamp, event_type, screen_x, screen_y)``
    per record (ints and floats). Returns ``{session_id: {feature: value}}``.
    """
    sessions: dict[str, _Session] = {}
    for session_id, timestamp, event_type, x, y in rows:  # one Python iteration per record
        s = sessions.get(session_id)
        if s is None:
            s = sessions[session_id] = _Session()
        if s.first is None:
            s.first = (x, y)
        s.xs.append(x)
        s.ys.append(y)
        s.counts[event_type] += 1
        if event_type == 5:
            s.click_xs.append(x)
            s.click_ys.append(y)
        elif event_type == 2:
            s.move_times.append(timestamp)
    return {session_id: _session_features(s) for session_id, s in sessions.items()}


def read_rows(path: str | Path) -> pd.DataFrame:
    """The columns :func:`featurize` reads, from a clean CSV in file order (reading is not timed)."""
    frame = pd.read_csv(path, usecols=["session_id", "timestamp", "event_type", "screen_x", "screen_y"],
                        dtype={"session_id": str}, engine="pyarrow")
    return frame[["session_id", "timestamp", "event_type", "screen_x", "screen_y"]]


def featurize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`featurize` over a frame's rows, as a table with one row per session."""
    features = featurize(frame.itertuples(index=False, name=None))
    return pd.DataFrame.from_dict(features, orient="index", columns=list(FEATURES)).rename_axis("session_id")
