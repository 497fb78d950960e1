"""Events in, one feature row per session or window out.

:func:`extract_features` is the one entry point that training, test and
scoring data all go through. It sorts the events once, cuts sessions into
windows (optional), segments actions, measures kinematics, and aggregates
everything per segment with grouped numpy reductions: no Python loop per
event, action or session.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.features.grouped import Groups
from mouse_pipeline.features.actions import (
    ACTION_NAMES, DRAG, MOVE, POINT_CLICK, WHEEL, action_starts, measure_actions,
)
from mouse_pipeline.features.notebook import notebook_features
from mouse_pipeline.features.segments import SegmentedEvents, sort_events, window_index

#: Columns of a feature table that identify a row rather than describe it.
WINDOW = "window"
ID_COLUMNS: tuple[str, ...] = (c.SESSION_ID, WINDOW, c.USER_ID)

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
_Q3 = (0.1, 0.5, 0.9)
#: Device-pixel ratios whose coordinate grid is tested (see ``pixel_grid_*`` features).
PIXEL_RATIOS = (1.25, 1.5, 1.75, 2.0)


@dataclass(frozen=True)
class FeatureConfig:
    """How sessions are cut and actions segmented.

    Attributes
    ----------
    window_size:
        Units per window; 0 (the default) gives one row per session. A
        session shorter than two windows stays one window; the last window
        of a longer session takes the remainder.
    window_unit:
        ``"events"`` or ``"actions"``: what ``window_size`` counts.
    pause_ms:
        A pause longer than this (ms) splits a move or a wheel run into two
        actions, and counts as an idle gap.
    """

    window_size: int = 0
    window_unit: Literal["events", "actions"] = "events"
    pause_ms: float = 2000.0

    def __post_init__(self) -> None:
        if self.window_unit not in ("events", "actions"):
            raise ValueError(f"window_unit must be 'events' or 'actions', not {self.window_unit!r}")
        if self.pause_ms <= 0:
            raise ValueError("pause_ms must be positive")


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The feature columns of a feature table, in order (identity columns excluded)."""
    return [col for col in table.columns if col not in ID_COLUMNS]


def _segments(se: SegmentedEvents, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Segment id of each event and the window number of each segment."""
    session_start = se.rank == 0
    if config.window_size > 0 and config.window_unit == "actions":
        unit = np.cumsum(action_starts(se.code, se.t, session_start, config.pause_ms)) - 1
        unit_rank = unit - unit[np.flatnonzero(session_start)][se.session]
        unit_count = Groups(se.session, se.n_sessions).extreme(unit_rank) + 1
    else:
        unit_rank = se.rank
        unit_count = np.bincount(se.session, minlength=se.n_sessions)
    window = window_index(unit_rank, unit_count[se.session].astype(np.int64), config.window_size)
    new = session_start | np.r_[True, window[1:] != window[:-1]]
    segment = np.cumsum(new) - 1
    return segment, window[new]


def _stats(out: dict, name: str, values: np.ndarray, groups: Groups, mask: np.ndarray | None,
           qs: tuple[float, ...] = _Q3, spread: bool = True) -> None:
    """Mean, standard deviation (if ``spread``) and quantiles of values per group."""
    mean, spread_values = groups.moments(values, mask)
    out[f"{name}_mean"] = mean
    if spread:
        out[f"{name}_std"] = spread_values
    for q, column in zip(qs, groups.quantiles(values, qs, mask).T):
        out[f"{name}_q{round(q * 100):02d}"] = column


def extract_features(
    events: pd.DataFrame, config: FeatureConfig = FeatureConfig(), chunk_events: int = 100_000,
    threads: int | None = None,
) -> pd.DataFrame:
    """Behavioural features of every session (or window) of ``events``.

    Parameters
    ----------
    events:
        Events with the contract's columns (``user_id`` optional); any row
        order: they are sorted by ``(session_id, timestamp)`` here.
    config:
        Windows and action segmentation.
    chunk_events:
        After the sort, whole sessions are grouped into chunks of about this
        many events, featurised independently (a session never spans two
        chunks, so the result does not depend on the chunking) on a thread
        pool: numpy releases the GIL, and intermediate arrays stay small.
    threads:
        Worker threads (default: the number of CPUs).

    Returns
    -------
    pandas.DataFrame
        One row per segment, sorted by ``session_id`` then ``window``:
        ``session_id``, ``window``, ``user_id`` (labelled input only), then
        the notebook's 17 features and the kinematic, timing, action, gap,
        transition and screen features (all float64 and finite).
    """
    se = sort_events(events)
    if se.n_events == 0:
        raise ValueError("no events to featurise")
    bounds = chunk_bounds(se.session, max(chunk_events, 1))
    if len(bounds) == 2:
        table = _featurise(se, config)
    else:
        with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
            chunks = zip(bounds[:-1], bounds[1:])
            table = pd.concat(list(pool.map(lambda b: _featurise(se.slice(*b), config), chunks)), ignore_index=True)
    if not table[c.SESSION_ID].is_monotonic_increasing:  # sessions came in input order
        table = table.sort_values([c.SESSION_ID, WINDOW], kind="stable", ignore_index=True)
    return table


def chunk_bounds(session: np.ndarray, chunk_events: int) -> np.ndarray:
    """Row bounds of chunks of about ``chunk_events`` rows that never split a session."""
    boundaries = np.r_[np.flatnonzero(np.r_[True, session[1:] != session[:-1]]), len(session)]
    wanted = np.arange(chunk_events, len(session), chunk_events)
    cuts = boundaries[np.searchsorted(boundaries, wanted)]  # first session start at or after each
    return np.unique(np.r_[0, cuts, len(session)]).astype(np.int64)


def _featurise(se: SegmentedEvents, config: FeatureConfig) -> pd.DataFrame:
    """Features of sorted events (one chunk of whole sessions)."""
    segment, windows = _segments(se, config)
    n = int(segment[-1]) + 1
    first_of_segment = np.r_[True, segment[1:] != segment[:-1]]
    # Epoch milliseconds are exact in float64 (below 2**53); codes as int64 for arithmetic.
    x, y, t, code = se.x, se.y, se.t.astype(np.float64), se.code.astype(np.int64)

    segments = Groups(segment, n)
    out: dict[str, np.ndarray] = notebook_features(x, y, t, code, segments)

    start = action_starts(code, t, first_of_segment, config.pause_ms)
    action, acts, steps = measure_actions(x, y, t, code, segment, start)

    # Event-level kinematics.
    timed = steps.timed
    _stats(out, "speed", steps.speed, segments, timed, QUANTILES)
    safe_dt = np.where(timed, steps.dt, 1.0)
    out["vx_mean"], out["vx_std"] = segments.moments(steps.dx / safe_dt, timed)
    out["vy_mean"], out["vy_std"] = segments.moments(steps.dy / safe_dt, timed)
    # Higher derivatives per event: mean and spread here; their per-action means get
    # quantiles below (sorting actions is far cheaper than sorting events).
    out["accel_mean"], out["accel_std"] = segments.moments(np.abs(steps.accel), steps.accel_valid)
    out["jerk_mean"], out["jerk_std"] = segments.moments(np.abs(steps.jerk), steps.jerk_valid)
    out["angular_velocity_mean"], out["angular_velocity_std"] = segments.moments(
        np.abs(steps.angular_velocity), steps.turn_valid & timed)
    out["curvature_mean"], out["curvature_std"] = segments.moments(np.abs(steps.curvature), steps.curvature_valid)

    # Timing: gaps between consecutive events, and the mousemove sampling interval.
    gap = np.r_[0.0, np.diff(t)]
    inner = ~first_of_segment
    _stats(out, "event_gap_ms", gap, segments, inner, QUANTILES, spread=False)
    sampled = inner & (code == int(c.EventType.MOVE)) & (np.r_[0, code[:-1]] == int(c.EventType.MOVE))
    _stats(out, "move_interval_ms", gap, segments, sampled & (gap <= config.pause_ms), QUANTILES)
    out["duplicate_timestamp_ratio"] = segments.mean((gap == 0).astype(float), inner)
    duration = segments.extreme(t) - segments.extreme(t, largest=False)
    out["duration_s"] = duration / 1000.0
    out["events_per_s"] = out["nbpoints"] / np.maximum(duration / 1000.0, 1e-3)

    # Actions, aggregated per segment.
    a_seg, kind = acts.segment, acts.kind
    action_segments = Groups(a_seg, n)
    n_actions = action_segments.count()
    out["n_actions"] = n_actions
    for k, name in enumerate(ACTION_NAMES):
        out[f"action_{name}_ratio"] = action_segments.count(kind == k) / n_actions
    pointer = (kind == MOVE) | (kind == POINT_CLICK) | (kind == DRAG)
    for name in ("duration", "path_length", "straightness", "max_deviation", "mean_speed",
                 "max_speed", "mean_abs_accel", "mean_abs_jerk", "mean_abs_angular_velocity",
                 "mean_abs_curvature", "critical_points", "n_events"):
        _stats(out, f"action_{name}", getattr(acts, name), action_segments, pointer)
    directed = pointer & (acts.direction >= 0)
    n_directed = np.maximum(action_segments.count(directed), 1)
    for sector in range(8):
        out[f"direction_{sector}_ratio"] = action_segments.count(directed & (acts.direction == sector)) / n_directed
    clicked = acts.pause_before_click >= 0
    _stats(out, "pause_before_click", acts.pause_before_click, action_segments, clicked, spread=False)
    dwelled = acts.click_dwell >= 0
    out["click_dwell_mean"] = action_segments.mean(acts.click_dwell, dwelled)
    n_clicks = segments.count(code == int(c.EventType.CLICK))
    out["click_release_ratio"] = action_segments.count(dwelled) / np.maximum(n_clicks, 1)
    wheel = kind == WHEEL
    out["wheel_run_mean"] = action_segments.mean(acts.n_events, wheel)
    out["wheel_rate_mean"] = action_segments.mean(acts.wheel_rate, wheel)

    # Idle gaps between consecutive actions of a segment (s).
    follows = np.r_[False, a_seg[1:] == a_seg[:-1]]
    idle = np.r_[0.0, acts.t_start[1:] - acts.t_end[:-1]] / 1000.0
    _stats(out, "idle_log_s", np.log1p(np.maximum(idle, 0.0)), action_segments, follows, spread=False)
    out["idle_max_log_s"] = np.log1p(action_segments.extreme(idle, follows))
    out["long_pause_ratio"] = action_segments.mean((idle > config.pause_ms / 1000.0).astype(float), follows)

    # Event-type transitions: share of consecutive pairs (from, to) within a segment.
    pair = (np.r_[0, code[:-1]] - 1) * 5 + (code - 1)
    n_pairs = np.maximum(segments.count(inner), 1)
    counts = np.bincount(segment[inner] * 25 + pair[inner], minlength=n * 25).reshape(n, 25)
    for a in c.EVENT_CODES:
        for b in c.EVENT_CODES:
            out[f"transition_{a}_{b}"] = counts[:, (a - 1) * 5 + (b - 1)] / n_pairs

    # Extent of the screen used, and the display's coordinate grid.
    for name, v in (("x", x), ("y", y)):
        hi, lo = segments.extreme(v), segments.extreme(v, largest=False)
        out[f"{name}_max"], out[f"{name}_min"], out[f"{name}_range"] = hi, lo, hi - lo
    fraction_x = x - np.floor(x)
    fractional = (fraction_x != 0) | (y != np.floor(y))
    out["fractional_coordinate_ratio"] = segments.mean(fractional.astype(float))
    # Scaled displays report CSS pixels on a grid of 1/ratio device pixels: the share of
    # x coordinates on each candidate grid tells the device-pixel ratio.
    for ratio in PIXEL_RATIOS:
        scaled = fraction_x * ratio
        on_grid = np.abs(scaled - np.round(scaled)) < 0.02
        out[f"pixel_grid_{ratio:g}_ratio"] = segments.mean(on_grid.astype(float))

    first_rows = np.flatnonzero(first_of_segment)
    table = pd.DataFrame({c.SESSION_ID: se.session_ids[se.session[first_rows]], WINDOW: windows})
    if se.session_users is not None:
        table[c.USER_ID] = se.session_users[se.session[first_rows]]
    features = pd.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in out.items()})
    table = pd.concat([table, features], axis=1)
    return table
