"""Cutting event streams into actions and measuring each action's kinematics.

An *action* is what the mouse-dynamics literature scores: a movement with
its purpose. Following the event contract's grammar, made robust to real
logs that rarely record a release:

* **move** (``MOVE``): a run of moves, split where the pause between two
  moves exceeds ``pause_ms``;
* **point_click** (``POINT_CLICK``): the move run leading to a click, the
  click, and its release when one follows (without a release, the click ends
  the action); a click with no move before it is a point_click of one point;
* **drag** (``DRAG``): a drag press, the moves after it and the release that
  ends it (or the next non-move event when the release is missing);
* **wheel** (``WHEEL``): a run of wheel events, split at a pause > ``pause_ms``;
* **other** (``OTHER``): a release with no press before it.

Steps between consecutive events of one action give velocity, acceleration,
jerk, angle, angular velocity and curvature. A step with zero elapsed time
(duplicate timestamps) has no velocity, so it produces no infinity: its
distance counts in the path length, and the rates skip it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mouse_pipeline.contract import EventType
from mouse_pipeline.features.grouped import Groups, previous, same_as_previous, step

MOVE, POINT_CLICK, DRAG, WHEEL, OTHER = range(5)
ACTION_NAMES = ("move", "point_click", "drag", "wheel", "other")

#: Turning angle (radians) above which a point counts as a critical point.
CRITICAL_ANGLE = np.pi / 4

_R, _M, _W, _D, _C = (int(e) for e in (EventType.RELEASE, EventType.MOVE, EventType.WHEEL,
                                       EventType.DRAG, EventType.CLICK))


def _last_at_or_before(marks: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows``, the last of the sorted positions ``marks`` at or before it (-1 if none)."""
    return np.r_[-1, marks][np.searchsorted(marks, rows, side="right")]


def action_starts(code: np.ndarray, t: np.ndarray, first_of_segment: np.ndarray, pause_ms: float) -> np.ndarray:
    """Boolean per event: does a new action start here?

    ``code`` and ``t`` are sorted by segment then time; ``first_of_segment``
    marks the first event of each segment (a session or a window).
    """
    is_ = {k: code == k for k in (_R, _M, _W, _D, _C)}
    prev_is = {k: previous(mask, False) for k, mask in is_.items()}
    long_gap = step(t) > pause_ms

    start = first_of_segment.copy()
    start |= is_[_D]  # a press begins a drag
    start |= is_[_W] & (~prev_is[_W] | long_gap)  # a wheel run, split at a long pause
    start |= is_[_M] & (prev_is[_R] | prev_is[_C] | prev_is[_W])  # after a click, release or wheel
    start |= is_[_C] & ~(prev_is[_M] | prev_is[_D])  # a click not preceded by a move
    # A long pause between moves, or a release after anything but a press or move, starts an action
    # unless it happens inside a drag: the last press (4) before it is more recent than the last
    # release/click/wheel and than the segment's start. Both cases are rare, so the drag state is
    # looked up for them only.
    pause_in_moves = is_[_M] & prev_is[_M] & long_gap
    stray_release = is_[_R] & ~(prev_is[_C] | prev_is[_M] | prev_is[_D])
    rows = np.flatnonzero(pause_in_moves | stray_release)
    if len(rows):
        before = rows - 1  # the drag state after the previous event (-1: none)
        last_press = _last_at_or_before(np.flatnonzero(is_[_D]), before)
        last_end = _last_at_or_before(np.flatnonzero(is_[_R] | is_[_C] | is_[_W]), before)
        segment_start = _last_at_or_before(np.flatnonzero(first_of_segment), before)
        in_drag_before = (before >= 0) & (last_press > last_end) & (last_press >= segment_start)
        start[rows] |= ~in_drag_before
    return start


#: Squares of lengths within these bounds neither overflow nor lose precision to underflow.
_SQUARE_MIN, _SQUARE_MAX = 2.0**-960, 2.0**960


def lengths(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Length of each ``(dx, dy)``: ``sqrt(dx**2 + dy**2)``, with ``np.hypot`` only where a square
    would overflow or underflow (never for screen pixels).

    A sixth of ``np.hypot``'s time (glibc's scalar ``hypot``: 23 to 36 ms for 2 million steps here,
    against 4 ms), and no less accurate: for whole or half pixels the sum of squares is exact and its square
    root correctly rounded, where ``hypot`` is one unit in the last place off for about one step in
    160. Elsewhere the two differ by at most one unit in the last place.
    """
    with np.errstate(over="ignore", under="ignore"):  # the risky rows are redone below
        squares = dx * dx
        squares += dy * dy
    risky = (squares > _SQUARE_MAX) | ((squares < _SQUARE_MIN) & ((dx != 0) | (dy != 0)))
    out = np.sqrt(squares, out=squares)
    if risky.any():
        out[risky] = np.hypot(dx[risky], dy[risky])
    return out


@dataclass(frozen=True)
class Steps:
    """Per-event step quantities (from the previous event of the same action).

    Every array has one value per event; ``valid`` says whether the event has
    a previous event in the same pointer action, ``timed`` whether that step
    also took time (dt > 0), so that velocity is defined.
    """

    dx: np.ndarray
    dy: np.ndarray
    dt: np.ndarray
    distance: np.ndarray
    valid: np.ndarray
    timed: np.ndarray
    speed: np.ndarray
    accel: np.ndarray
    accel_valid: np.ndarray
    jerk: np.ndarray
    jerk_valid: np.ndarray
    turn: np.ndarray
    turn_valid: np.ndarray
    angular_velocity: np.ndarray
    curvature: np.ndarray
    curvature_valid: np.ndarray


def step_kinematics(x: np.ndarray, y: np.ndarray, t: np.ndarray, action: np.ndarray,
                    pointer: np.ndarray) -> Steps:
    """Velocity (px/s), acceleration (px/s²), jerk (px/s³), turning angle (rad),
    angular velocity (rad/s) and curvature (rad/px) of every step.

    ``action`` is the action id of each event and ``pointer`` marks events of
    pointer actions (move, point_click, drag); wheel actions have no path.
    Values are 0 where their ``*_valid`` flag is False. Masked values are
    multiplied by their flag rather than chosen with ``np.where``: the same
    numbers, in a fraction of the time (every value is finite).
    """
    same = same_as_previous(action) & pointer
    dx, dy = step(x), step(y)
    dx *= same
    dy *= same
    dt = step(t)
    dt *= same
    dt /= 1000.0  # seconds
    distance = lengths(dx, dy)
    timed = dt > 0  # only steps within an action have a non-zero dt
    safe_dt = dt.copy()
    safe_dt[~timed] = 1.0
    speed = distance / safe_dt
    speed *= timed

    def rate_of(value: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        both = ok & previous(ok, False)  # ``ok`` implies a timed step of the same action
        rate = step(value)
        rate /= safe_dt
        rate *= both
        return rate, both

    accel, accel_valid = rate_of(speed, timed)
    jerk, jerk_valid = rate_of(accel, accel_valid)

    moved = same & (distance > 0)
    turn_valid = moved & previous(moved, False)
    turn = step(np.arctan2(dy, dx))
    # Wrap to [-pi, pi) as (turn + pi) % (2 pi) - pi does, bit for bit (turns lie within
    # (-2 pi, 2 pi), so the remainder is one exact subtraction or one addition), without the
    # slow floating-point remainder. Bit for bit matters: exact 45-degree turns sit right at
    # the critical-point threshold.
    turn += np.pi
    turn -= (2 * np.pi) * (turn >= 2 * np.pi)
    turn += (2 * np.pi) * (turn < 0)
    turn -= np.pi
    turn *= turn_valid
    angular_velocity = turn / safe_dt
    angular_velocity *= timed
    curvature = turn / np.where(turn_valid, distance, 1.0)
    return Steps(dx, dy, dt, distance, same, timed, speed, accel, accel_valid, jerk, jerk_valid,
                 turn, turn_valid, angular_velocity, curvature, turn_valid)


@dataclass(frozen=True)
class Actions:
    """One row per action (all arrays of length ``n``), in stream order."""

    segment: np.ndarray
    kind: np.ndarray
    n_events: np.ndarray
    t_start: np.ndarray
    t_end: np.ndarray
    duration: np.ndarray  # s
    path_length: np.ndarray  # px
    displacement: np.ndarray  # px, start to end
    straightness: np.ndarray  # displacement / path length, 1 for a point
    max_deviation: np.ndarray  # px from the start-end line
    mean_speed: np.ndarray  # px/s, path length / duration
    max_speed: np.ndarray
    mean_abs_accel: np.ndarray  # px/s², over the action's timed steps
    mean_abs_jerk: np.ndarray  # px/s³
    mean_abs_angular_velocity: np.ndarray  # rad/s
    mean_abs_curvature: np.ndarray  # rad/px
    critical_points: np.ndarray
    direction: np.ndarray  # sector 0..7 of the start-to-end direction, -1 if none
    pause_before_click: np.ndarray  # s, -1 if no click
    click_dwell: np.ndarray  # s, -1 if no click followed by a release
    wheel_rate: np.ndarray  # wheel events per s, 0 if not a wheel action

    @property
    def n(self) -> int:
        return len(self.kind)


def measure_actions(
    x: np.ndarray, y: np.ndarray, t: np.ndarray, code: np.ndarray, segment: np.ndarray,
    start: np.ndarray,
) -> tuple[np.ndarray, Actions, Steps]:
    """Number the actions and measure each one.

    Returns the action id of every event, the :class:`Actions` table and the
    per-event :class:`Steps`.
    """
    action = np.cumsum(start, dtype=np.int64) - 1
    n = int(action[-1]) + 1 if len(action) else 0
    first = np.flatnonzero(start)
    actions = Groups(action, n, starts=first)
    last = np.r_[first[1:] - 1, len(code) - 1] if n else first
    count = actions.sizes

    # Which event types each action holds, in one pass (codes outside 1..5 land in bins 0 and 6).
    codes = np.bincount(action * 7 + np.clip(code, 0, 6), minlength=n * 7).reshape(n, 7) > 0
    has = {k: codes[:, k] for k in (_R, _M, _W, _D, _C)}
    kind = np.full(n, OTHER)
    kind[has[_M]] = MOVE
    kind[has[_W] & ~has[_M]] = WHEEL
    kind[has[_C]] = POINT_CLICK
    kind[has[_D]] = DRAG
    pointer_action = (kind == MOVE) | (kind == POINT_CLICK) | (kind == DRAG)
    steps = step_kinematics(x, y, t, action, actions.broadcast(pointer_action))

    duration = (t[last] - t[first]) / 1000.0
    path = actions.total(steps.distance)
    ex, ey = x[last] - x[first], y[last] - y[first]
    displacement = lengths(ex, ey)
    straightness = np.where(path > 0, np.minimum(displacement / np.where(path > 0, path, 1.0), 1.0), 1.0)
    max_deviation = _max_deviation(x, y, action, actions, first, ex, ey, displacement)
    mean_speed = np.where(duration > 0, path / np.where(duration > 0, duration, 1.0), 0.0)
    max_speed = actions.extreme(steps.speed, steps.timed)
    mean_abs_accel = actions.mean(np.abs(steps.accel), steps.accel_valid)
    mean_abs_jerk = actions.mean(np.abs(steps.jerk), steps.jerk_valid)
    mean_abs_angular_velocity = actions.mean(np.abs(steps.angular_velocity), steps.turn_valid & steps.timed)
    mean_abs_curvature = actions.mean(np.abs(steps.curvature), steps.curvature_valid)
    critical = actions.count(steps.turn_valid & (np.abs(steps.turn) > CRITICAL_ANGLE))
    angle = np.arctan2(ey, ex)
    direction = np.where(displacement > 0, np.floor((angle + np.pi / 8) / (np.pi / 4)) % 8, -1).astype(np.int64)
    pause, dwell = _click_timing(t, code, action, start, n)
    wheel_rate = np.where((kind == WHEEL) & (duration > 0), count / np.where(duration > 0, duration, 1.0), 0.0)

    table = Actions(
        segment=segment[first], kind=kind, n_events=count.astype(np.float64), t_start=t[first],
        t_end=t[last], duration=duration, path_length=path, displacement=displacement,
        straightness=straightness, max_deviation=max_deviation, mean_speed=mean_speed,
        max_speed=max_speed, mean_abs_accel=mean_abs_accel, mean_abs_jerk=mean_abs_jerk,
        mean_abs_angular_velocity=mean_abs_angular_velocity, mean_abs_curvature=mean_abs_curvature,
        critical_points=critical, direction=direction,
        pause_before_click=pause, click_dwell=dwell, wheel_rate=wheel_rate,
    )
    return action, table, steps


def _max_deviation(x: np.ndarray, y: np.ndarray, action: np.ndarray, actions: Groups, first: np.ndarray,
                   ex: np.ndarray, ey: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Largest distance (px) of an action's points from its start-end line, or from its start when
    start and end coincide.

    The distance to the line is ``|ex*py - ey*px| / |e|`` with ``|e|`` constant
    per action, so the division is done once per action, after the maximum
    (exactly the same number: rounding is monotonic).
    """
    # Per-action values onto the action's rows: a repeat (actions are runs), not a gather by action id.
    px = x - actions.broadcast(x[first])
    py = y - actions.broadcast(y[first])
    cross = actions.broadcast(ex) * py
    cross -= actions.broadcast(ey) * px
    np.abs(cross, out=cross)
    moved = displacement > 0
    out = actions.extreme(cross) / np.where(moved, displacement, 1.0)
    if not moved.all():  # rare: a closed loop, a single point, a wheel run
        rows = np.flatnonzero(~actions.broadcast(moved))
        loops = Groups(action[rows], actions.n)
        out = np.where(moved, out, loops.extreme(lengths(px[rows], py[rows])))
    return out


def _click_timing(t: np.ndarray, code: np.ndarray, action: np.ndarray, start: np.ndarray,
                  n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per action: the pause before its click (s; the click's gap to the previous event of the
    action) and the click's dwell (s; time to a release that follows in the action); -1 if none.

    Only click events are looked at.
    """
    clicks = np.flatnonzero(code == _C)
    has_prev = ~start[clicks]  # the first event of the stream starts an action
    pause = np.where(has_prev, (t[clicks] - t[np.maximum(clicks - 1, 0)]) / 1000.0, -1.0)
    after = np.minimum(clicks + 1, len(code) - 1)
    released = (clicks + 1 < len(code)) & (action[after] == action[clicks]) & (code[after] == _R)
    dwell = np.where(released, (t[after] - t[clicks]) / 1000.0, -1.0)
    by_action = Groups(action[clicks], n)
    return by_action.extreme(pause, fill=-1.0), by_action.extreme(dwell, fill=-1.0)
