"""Events in, one feature row per session or window out.

:func:`extract_features` is the one entry point that training, test and
scoring data all go through. It sorts the events once, cuts sessions into
windows (optional), segments actions, measures kinematics, and aggregates
everything per segment with grouped numpy reductions: no Python loop per
event, action or session.

Each feature family of :mod:`mouse_pipeline.features.families` has its own
function here (``_kinematics``, ``_actions``, ``_timing``, ``_transitions``,
``_idle_gaps``, ``_screen``, ``_pixel_grid``, ``_fractional_coordinates``,
``_sampling``); the notebook's 17 features, which span several families
(``first_position`` among them), come from
:func:`~mouse_pipeline.features.notebook.notebook_features`. They all read one
:class:`_Chunk` of sorted arrays, actions and steps computed once.

Precision: features are float64. Quantiles rank values at float32 precision
(see :meth:`Groups.quantiles`), so a quantile may differ from numpy's by a
relative 6e-8; everything else is computed in float64.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.features.actions import (
    ACTION_NAMES, DRAG, MOVE, POINT_CLICK, WHEEL, Actions, Steps, action_starts, measure_actions,
)
from mouse_pipeline.features.grouped import Groups, previous, same_as_previous, step
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


def _segments(se: SegmentedEvents, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment id of each event, the window number of each segment and the first row of each segment."""
    session_starts = se.session_starts()
    if config.window_size <= 0:  # a segment per session
        return se.session, np.zeros(se.n_sessions, dtype=np.int64), session_starts
    session_start = np.zeros(se.n_events, dtype=bool)
    session_start[session_starts] = True
    if config.window_unit == "actions":
        unit = np.cumsum(action_starts(se.code, se.t, session_start, config.pause_ms)) - 1
        unit_rank = unit - unit[session_starts][se.session]
        unit_count = Groups(se.session, se.n_sessions, session_starts).extreme(unit_rank) + 1
    else:
        unit_rank = se.rank()
        unit_count = np.bincount(se.session, minlength=se.n_sessions)
    window = window_index(unit_rank, unit_count[se.session].astype(np.int64), config.window_size)
    new = session_start | ~same_as_previous(window)
    segment = np.cumsum(new) - 1
    return segment, window[new], np.flatnonzero(new)


def _stats(name: str, values: np.ndarray, groups: Groups, mask: np.ndarray | None,
           qs: tuple[float, ...] = _Q3, spread: bool = True) -> dict[str, np.ndarray]:
    """Mean, standard deviation (if ``spread``) and quantiles of values per group."""
    return _described(name, *groups.moments(values, mask), groups.quantiles(values, qs, mask), qs, spread)


def _described(name: str, mean: np.ndarray, spread_values: np.ndarray, quantiles: np.ndarray,
               qs: tuple[float, ...], spread: bool = True) -> dict[str, np.ndarray]:
    out = {f"{name}_mean": mean}
    if spread:
        out[f"{name}_std"] = spread_values
    for q, column in zip(qs, quantiles.T):
        out[f"{name}_q{round(q * 100):02d}"] = column
    return out


@dataclass(frozen=True)
class _Chunk:
    """What the feature families read: one chunk of whole sessions, sorted by segment then time.

    ``t`` is in milliseconds as float64 (epoch milliseconds are exact below
    2**53); ``gap`` is the time since the previous event (ms), meaningful
    where ``inner`` (not the first event of its segment).
    """

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    code: np.ndarray
    segment: np.ndarray
    segments: Groups
    first_of_segment: np.ndarray
    config: FeatureConfig
    acts: Actions
    steps: Steps

    @property
    def n(self) -> int:
        return self.segments.n

    @cached_property
    def inner(self) -> np.ndarray:
        return ~self.first_of_segment

    @cached_property
    def gap(self) -> np.ndarray:
        return step(self.t)

    @cached_property
    def action_segments(self) -> Groups:
        return Groups(self.acts.segment, self.n)

    @cached_property
    def gap_quantiles(self) -> tuple[np.ndarray, np.ndarray]:
        """Quantiles of the gaps between events and of the mousemove sampling interval, one sort."""
        sampled = self.inner & (self.code == int(c.EventType.MOVE)) & (previous(self.code, 0) == int(c.EventType.MOVE))
        sampled &= self.gap <= self.config.pause_ms
        return self.segments.quantiles(self.gap, QUANTILES, self.inner, subset=sampled) + (sampled,)


def _kinematics(ch: _Chunk) -> dict[str, np.ndarray]:
    """Speed, velocity components, acceleration, jerk, angular velocity and curvature of the steps."""
    steps, segments = ch.steps, ch.segments
    out = _stats("speed", steps.speed, segments, steps.timed, QUANTILES)
    safe_dt = np.where(steps.timed, steps.dt, 1.0)
    out["vx_mean"], out["vx_std"] = segments.moments(steps.dx / safe_dt, steps.timed)
    out["vy_mean"], out["vy_std"] = segments.moments(steps.dy / safe_dt, steps.timed)
    # Higher derivatives per event: mean and spread here; their per-action means get
    # quantiles among the action features (sorting actions is far cheaper than sorting events).
    out["accel_mean"], out["accel_std"] = segments.moments(np.abs(steps.accel), steps.accel_valid)
    out["jerk_mean"], out["jerk_std"] = segments.moments(np.abs(steps.jerk), steps.jerk_valid)
    out["angular_velocity_mean"], out["angular_velocity_std"] = segments.moments(
        np.abs(steps.angular_velocity), steps.turn_valid & steps.timed)
    out["curvature_mean"], out["curvature_std"] = segments.moments(np.abs(steps.curvature), steps.curvature_valid)
    return out


def _timing(ch: _Chunk, nbpoints: np.ndarray) -> dict[str, np.ndarray]:
    """Gaps between consecutive events (ms), and the segment's duration and pace."""
    gaps, _, _ = ch.gap_quantiles
    mean = ch.segments.mean(ch.gap, ch.inner)
    out = _described("event_gap_ms", mean, mean, gaps, QUANTILES, spread=False)
    starts = ch.segments.starts
    ends = np.r_[starts[1:], len(ch.t)] - 1
    duration = ch.t[ends] - ch.t[starts]  # events are in time order within a segment
    out["duration_s"] = duration / 1000.0
    out["events_per_s"] = nbpoints / np.maximum(duration / 1000.0, 1e-3)
    return out


def _sampling(ch: _Chunk) -> dict[str, np.ndarray]:
    """The browser's mousemove interval (gaps between consecutive moves up to ``pause_ms``) and
    the share of repeated timestamps."""
    _, intervals, sampled = ch.gap_quantiles
    out = _described("move_interval_ms", *ch.segments.moments(ch.gap, sampled), intervals, QUANTILES)
    out["duplicate_timestamp_ratio"] = ch.segments.mean(ch.gap == 0, ch.inner)
    return out


_ACTION_STATS = ("duration", "path_length", "straightness", "max_deviation", "mean_speed", "max_speed",
                 "mean_abs_accel", "mean_abs_jerk", "mean_abs_angular_velocity", "mean_abs_curvature",
                 "critical_points", "n_events")


def _actions(ch: _Chunk) -> dict[str, np.ndarray]:
    """What the actions are (kinds, directions) and how they are shaped, per segment."""
    acts, groups = ch.acts, ch.action_segments
    kind = acts.kind
    n_actions = groups.count()
    out = {"n_actions": n_actions}
    for k, name in enumerate(ACTION_NAMES):
        out[f"action_{name}_ratio"] = groups.count(kind == k) / n_actions
    pointer = (kind == MOVE) | (kind == POINT_CLICK) | (kind == DRAG)
    # Every action measure at once: one 2-D reduction and one sort for all of them.
    table = np.column_stack([getattr(acts, name) for name in _ACTION_STATS]).astype(np.float64, copy=False)
    means, spreads = groups.moments(table, pointer)
    quantiles = groups.quantiles(table, _Q3, pointer)
    for j, name in enumerate(_ACTION_STATS):
        out.update(_described(f"action_{name}", means[:, j], spreads[:, j], quantiles[:, j], _Q3))
    directed = pointer & (acts.direction >= 0)
    n_directed = np.maximum(groups.count(directed), 1)
    for sector in range(8):
        out[f"direction_{sector}_ratio"] = groups.count(directed & (acts.direction == sector)) / n_directed
    clicked = acts.pause_before_click >= 0
    out.update(_stats("pause_before_click", acts.pause_before_click, groups, clicked, spread=False))
    dwelled = acts.click_dwell >= 0
    out["click_dwell_mean"] = groups.mean(acts.click_dwell, dwelled)
    n_clicks = ch.segments.count(ch.code == int(c.EventType.CLICK))
    out["click_release_ratio"] = groups.count(dwelled) / np.maximum(n_clicks, 1)
    wheel = kind == WHEEL
    out["wheel_run_mean"] = groups.mean(acts.n_events, wheel)
    out["wheel_rate_mean"] = groups.mean(acts.wheel_rate, wheel)
    return out


def _idle_gaps(ch: _Chunk) -> dict[str, np.ndarray]:
    """Idle time between consecutive actions of a segment (s)."""
    acts, groups = ch.acts, ch.action_segments
    follows = same_as_previous(acts.segment)
    idle = np.r_[0.0, acts.t_start[1:] - acts.t_end[:-1]] / 1000.0
    out = _stats("idle_log_s", np.log1p(np.maximum(idle, 0.0)), groups, follows, spread=False)
    out["idle_max_log_s"] = np.log1p(groups.extreme(idle, follows))
    out["long_pause_ratio"] = groups.mean(idle > ch.config.pause_ms / 1000.0, follows)
    return out


def _transitions(ch: _Chunk) -> dict[str, np.ndarray]:
    """Share of consecutive event pairs (from, to) within a segment, per pair of event types."""
    code = ch.code.astype(np.int64)
    pair = (previous(code, 1) - 1) * 5 + (code - 1)
    inner = ch.inner
    n_pairs = np.maximum(ch.segments.count(inner), 1)
    counts = np.bincount(ch.segment[inner] * 25 + pair[inner], minlength=ch.n * 25).reshape(ch.n, 25)
    return {f"transition_{a}_{b}": counts[:, (a - 1) * 5 + (b - 1)] / n_pairs
            for a in c.EVENT_CODES for b in c.EVENT_CODES}


def _screen(ch: _Chunk) -> dict[str, np.ndarray]:
    """Extent of the screen area used."""
    out = {}
    for name, v in (("x", ch.x), ("y", ch.y)):
        hi, lo = ch.segments.extreme(v), ch.segments.extreme(v, largest=False)
        out[f"{name}_max"], out[f"{name}_min"], out[f"{name}_range"] = hi, lo, hi - lo
    return out


def _fractional_coordinates(ch: _Chunk) -> dict[str, np.ndarray]:
    """Share of events with a fractional coordinate (scaled displays report CSS pixels)."""
    fractional = (ch.x != np.floor(ch.x)) | (ch.y != np.floor(ch.y))
    return {"fractional_coordinate_ratio": ch.segments.mean(fractional)}


def _pixel_grid(ch: _Chunk) -> dict[str, np.ndarray]:
    """Share of x coordinates on the grid of each candidate device-pixel ratio.

    A display with ratio r reports CSS pixels on a grid of 1/r device
    pixels. An integer x is on every grid, so only fractional ones are
    tested.
    """
    rows = np.flatnonzero(ch.x != np.floor(ch.x))
    fraction = ch.x[rows] - np.floor(ch.x[rows])
    off_grid = Groups(ch.segment[rows], ch.n)
    n = ch.segments.count()
    out = {}
    for ratio in PIXEL_RATIOS:
        scaled = fraction * ratio
        off = np.abs(scaled - np.round(scaled)) >= 0.02
        out[f"pixel_grid_{ratio:g}_ratio"] = (n - off_grid.count(off)) / n
    return out


def extract_features(
    events: pd.DataFrame, config: FeatureConfig = FeatureConfig(), chunk_events: int = 200_000,
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
        pool: numpy releases the GIL, and intermediate arrays stay small
        (200,000 events: a few tens of MB per thread, and few enough Python
        calls per event that two threads rarely wait for each other).
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
    segment, windows, starts = _segments(se, config)
    n = len(starts)
    first_of_segment = np.zeros(se.n_events, dtype=bool)
    first_of_segment[starts] = True
    # Epoch milliseconds are exact in float64 (below 2**53); codes stay int8 (cheap comparisons).
    x, y, t, code = se.x, se.y, se.t.astype(np.float64), se.code.astype(np.int8, copy=False)
    segments = Groups(segment, n, starts)
    start = action_starts(code, t, first_of_segment, config.pause_ms)
    _, acts, steps = measure_actions(x, y, t, code, segment, start)
    ch = _Chunk(x=x, y=y, t=t, code=code, segment=segment, segments=segments,
                first_of_segment=first_of_segment, config=config, acts=acts, steps=steps)

    out: dict[str, np.ndarray] = notebook_features(x, y, t, code, segments)
    out.update(_kinematics(ch))
    out.update(_timing(ch, out["nbpoints"]))
    out.update(_sampling(ch))
    out.update(_actions(ch))
    out.update(_idle_gaps(ch))
    out.update(_transitions(ch))
    out.update(_screen(ch))
    out.update(_fractional_coordinates(ch))
    out.update(_pixel_grid(ch))

    table = pd.DataFrame({c.SESSION_ID: se.session_ids[se.session[starts]], WINDOW: windows})
    if se.session_users is not None:
        table[c.USER_ID] = se.session_users[se.session[starts]]
    features = pd.DataFrame(np.column_stack(list(out.values())).astype(np.float64, copy=False), columns=list(out))
    return pd.concat([table, features], axis=1)
