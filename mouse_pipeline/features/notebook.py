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
from mouse_pipeline.features.grouped import Groups, same_as_previous, step

NOTEBOOK_FEATURES: tuple[str, ...] = (
    "center_x", "center_y", "center_click_x", "center_click_y", "first_x", "first_y",
    "radius", "slope", "narrow", "ev1", "ev2", "ev3", "ev4", "ev5", "stress", "chill",
    "nbpoints",
)


def notebook_features(
    x: np.ndarray, y: np.ndarray, t: np.ndarray, code: np.ndarray, segments: Groups
) -> dict[str, np.ndarray]:
    """The 17 notebook features per segment (arrays sorted by segment, then time)."""
    n = segments.count()
    # Events of each type per segment, in one pass (codes outside 1..5 land in bins 0 and 6).
    per_type = np.bincount(segments.ids * 7 + np.clip(code, 0, 6), minlength=segments.n * 7).reshape(-1, 7)
    cx, cy = segments.mean(x), segments.mean(y)
    click = code == int(EventType.CLICK)
    has_click = per_type[:, int(EventType.CLICK)] > 0

    dx, dy = x - segments.broadcast(cx), y - segments.broadcast(cy)
    dx2, dy2 = dx * dx, dy * dy
    var_x, var_y, cov = segments.mean(dx2), segments.mean(dy2), segments.mean(dx * dy)
    scale = np.maximum(var_x + var_y, 1e-300)
    flat_x = var_x <= 1e-12 * scale
    slope = np.where(flat_x, 0.0, cov / np.where(flat_x, 1.0, var_x))
    # Eigenvalues of [[var_x, cov], [cov, var_y]].
    half_trace = (var_x + var_y) / 2
    root = np.sqrt(np.maximum(((var_x - var_y) / 2) ** 2 + cov**2, 0.0))
    large, small = half_trace + root, np.maximum(half_trace - root, 0.0)
    narrow = np.where(large > 0, small / np.where(large > 0, large, 1.0), 0.0)

    moves = np.flatnonzero(code == int(EventType.MOVE))
    move_segments = Groups(segments.ids[moves], segments.n)
    between = same_as_previous(move_segments.ids)
    gaps = step(t[moves])

    dx2 += dy2
    out = {
        "center_x": cx,
        "center_y": cy,
        "center_click_x": np.where(has_click, segments.mean(x, click), cx),
        "center_click_y": np.where(has_click, segments.mean(y, click), cy),
        "first_x": segments.first(x),
        "first_y": segments.first(y),
        "radius": np.sqrt(segments.extreme(dx2)),
        "slope": slope,
        "narrow": narrow,
    }
    for k in EVENT_CODES:
        out[f"ev{k}"] = per_type[:, k] / n
    out["stress"] = move_segments.extreme(gaps, between, largest=False)
    out["chill"] = move_segments.extreme(gaps, between)
    out["nbpoints"] = n
    return out
