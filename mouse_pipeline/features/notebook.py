"""The notebook's 17 session features, reproduced with its slips fixed.

Each feature is computed per segment (a session or a window) over the
segment's events in time order. Every value is defined and finite for every
segment, a one-event segment included.

=================  ===========================================================
feature            definition (and the fix over the notebook)
=================  ===========================================================
center_x/y         mean position of all events (px)
center_click_x/y   mean position of the clicks; the notebook gave 0 when a
                   session had no click, which reads as "clicked in the
                   corner": here it falls back to the segment's centre
first_x/y          position of the first event in time (rows were not in
                   time order in the notebook's input; here they are sorted)
radius             largest distance of an event from the centre (px)
slope              least-squares slope of y on x, ``cov(x, y) / var(x)``; the
                   notebook subtracted the mean of x from y, and divided by
                   zero when x is constant: then the slope is 0 here
narrow             PCA narrowness, smaller over larger eigenvalue of the
                   position covariance (0: points on a line, 1: round); 0 for
                   a single point
ev1..ev5           fraction of events of each type (release .. click)
stress             shortest time between successive moves (ms); the notebook
                   crashed with fewer than two moves: then 0
chill              longest time between successive moves (ms); 0 likewise
nbpoints           number of events
=================  ===========================================================
"""

from __future__ import annotations

import numpy as np

from mouse_pipeline.contract import EVENT_CODES, EventType
from mouse_pipeline.features import grouped

NOTEBOOK_FEATURES: tuple[str, ...] = (
    "center_x", "center_y", "center_click_x", "center_click_y", "first_x", "first_y",
    "radius", "slope", "narrow", "ev1", "ev2", "ev3", "ev4", "ev5", "stress", "chill",
    "nbpoints",
)


def notebook_features(
    x: np.ndarray, y: np.ndarray, t: np.ndarray, code: np.ndarray, segment: np.ndarray,
    n_segments: int,
) -> dict[str, np.ndarray]:
    """The 17 notebook features per segment (arrays sorted by segment, then time)."""
    n = grouped.count(segment, n_segments)
    cx = grouped.mean(x, segment, n_segments)
    cy = grouped.mean(y, segment, n_segments)
    click = code == int(EventType.CLICK)
    has_click = grouped.count(segment, n_segments, click) > 0
    first = grouped.starts_of(segment, n_segments)

    dx, dy = x - cx[segment], y - cy[segment]
    var_x = grouped.mean(dx * dx, segment, n_segments)
    var_y = grouped.mean(dy * dy, segment, n_segments)
    cov = grouped.mean(dx * dy, segment, n_segments)
    scale = np.maximum(var_x + var_y, 1e-300)
    flat_x = var_x <= 1e-12 * scale
    slope = np.where(flat_x, 0.0, cov / np.where(flat_x, 1.0, var_x))
    # Eigenvalues of [[var_x, cov], [cov, var_y]].
    half_trace = (var_x + var_y) / 2
    root = np.sqrt(np.maximum(((var_x - var_y) / 2) ** 2 + cov**2, 0.0))
    large, small = half_trace + root, np.maximum(half_trace - root, 0.0)
    narrow = np.where(large > 0, small / np.where(large > 0, large, 1.0), 0.0)

    moves = code == int(EventType.MOVE)
    t_moves, seg_moves = t[moves], segment[moves]
    between = np.r_[False, seg_moves[1:] == seg_moves[:-1]]
    gaps = np.r_[0.0, np.diff(t_moves)]

    out = {
        "center_x": cx,
        "center_y": cy,
        "center_click_x": np.where(has_click, grouped.mean(x, segment, n_segments, click), cx),
        "center_click_y": np.where(has_click, grouped.mean(y, segment, n_segments, click), cy),
        "first_x": x[first],
        "first_y": y[first],
        "radius": np.sqrt(grouped.extreme(dx * dx + dy * dy, segment, n_segments)),
        "slope": slope,
        "narrow": narrow,
    }
    for k in EVENT_CODES:
        out[f"ev{k}"] = grouped.count(segment, n_segments, code == k) / n
    out["stress"] = grouped.extreme(gaps, seg_moves, n_segments, between, largest=False)
    out["chill"] = grouped.extreme(gaps, seg_moves, n_segments, between)
    out["nbpoints"] = n
    return out
