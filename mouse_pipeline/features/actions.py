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
from mouse_pipeline.features.grouped import Groups

MOVE, POINT_CLICK, DRAG, WHEEL, OTHER = range(5)
ACTION_NAMES = ("move", "point_click", "drag", "wheel", "other")

#: Turning angle (radians) above which a point counts as a critical point.
CRITICAL_ANGLE = np.pi / 4

_R, _M, _W, _D, _C = (int(e) for e in (EventType.RELEASE, EventType.MOVE, EventType.WHEEL,
                                       EventType.DRAG, EventType.CLICK))


def action_starts(code: np.ndarray, t: np.ndarray, first_of_segment: np.ndarray, pause_ms: float) -> np.ndarray:
    """Boolean per event: does a new action start here?

    ``code`` and ``t`` are sorted by segment then time; ``first_of_segment``
    marks the first event of each segment (a session or a window).
    """
    prev = np.r_[0, code[:-1]]
    gap = np.r_[0.0, np.diff(t)]
    prev_is = {k: prev == k for k in (_R, _M, _W, _D, _C)}
    is_ = {k: code == k for k in (_R, _M, _W, _D, _C)}
    # Inside a drag: the last press (4) is more recent than the last release/click/wheel.
    idx = np.arange(len(code))
    last_press = np.maximum.accumulate(np.where(is_[_D], idx, -1))
    last_end = np.maximum.accumulate(np.where(is_[_R] | is_[_C] | is_[_W], idx, -1))
    last_segment_start = np.maximum.accumulate(np.where(first_of_segment, idx, -1))
    in_drag = (last_press > last_end) & (last_press >= last_segment_start)
    in_drag_before = np.r_[False, in_drag[:-1]]

    start = first_of_segment.copy()
    long_gap = gap > pause_ms
    start |= is_[_D]  # a press begins a drag
    start |= is_[_W] & (~prev_is[_W] | long_gap)  # a wheel run, split at a long pause
    start |= is_[_M] & (prev_is[_R] | prev_is[_C] | prev_is[_W])  # after a click, release or wheel
    start |= is_[_M] & prev_is[_M] & long_gap & ~in_drag_before
    start |= is_[_C] & ~(prev_is[_M] | prev_is[_D])  # a click not preceded by a move
    start |= is_[_R] & ~(prev_is[_C] | prev_is[_M] | prev_is[_D]) & ~in_drag_before
    return start


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
    """
    same = np.r_[False, action[1:] == action[:-1]] & pointer
    dx = np.where(same, np.r_[0.0, np.diff(x)], 0.0)
    dy = np.where(same, np.r_[0.0, np.diff(y)], 0.0)
    dt = np.where(same, np.r_[0.0, np.diff(t)], 0.0) / 1000.0  # seconds
    distance = np.hypot(dx, dy)
    timed = same & (dt > 0)
    safe_dt = np.where(timed, dt, 1.0)
    speed = np.where(timed, distance / safe_dt, 0.0)

    def rate_of(value: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        both = ok & np.r_[False, ok[:-1]] & same & timed
        return np.where(both, np.r_[0.0, np.diff(value)] / safe_dt, 0.0), both

    accel, accel_valid = rate_of(speed, timed)
    jerk, jerk_valid = rate_of(accel, accel_valid)

    moved = same & (distance > 0)
    angle = np.arctan2(dy, dx)
    turn_valid = moved & np.r_[False, moved[:-1]]
    turn = np.where(turn_valid, np.r_[0.0, np.diff(angle)], 0.0)
    turn = (turn + np.pi) % (2 * np.pi) - np.pi  # wrap to [-pi, pi)
    angular_velocity = np.where(turn_valid & timed, turn / safe_dt, 0.0)
    curvature = np.where(turn_valid, turn / np.where(turn_valid, distance, 1.0), 0.0)
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
    action = np.cumsum(start) - 1
    n = int(action[-1]) + 1 if len(action) else 0
    actions = Groups(action, n)
    first = actions.starts
    last = np.r_[first[1:] - 1, len(code) - 1] if n else first
    count = actions.sizes

    has = {k: actions.count(code == k) > 0 for k in (_R, _M, _W, _D, _C)}
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
    displacement = np.hypot(ex, ey)
    straightness = np.where(path > 0, np.minimum(displacement / np.where(path > 0, path, 1.0), 1.0), 1.0)
    # Distance of each point from its action's start-end line (from the start if they coincide).
    px, py = x - actions.broadcast(x[first]), y - actions.broadcast(y[first])
    ux, uy, norm = actions.broadcast(ex), actions.broadcast(ey), actions.broadcast(displacement)
    off_line = np.where(norm > 0, np.abs(ux * py - uy * px) / np.where(norm > 0, norm, 1.0), np.hypot(px, py))
    max_deviation = actions.extreme(off_line)
    mean_speed = np.where(duration > 0, path / np.where(duration > 0, duration, 1.0), 0.0)
    max_speed = actions.extreme(steps.speed, steps.timed)
    mean_abs_accel = actions.mean(np.abs(steps.accel), steps.accel_valid)
    mean_abs_jerk = actions.mean(np.abs(steps.jerk), steps.jerk_valid)
    mean_abs_angular_velocity = actions.mean(np.abs(steps.angular_velocity), steps.turn_valid & steps.timed)
    mean_abs_curvature = actions.mean(np.abs(steps.curvature), steps.curvature_valid)
    critical = actions.count(steps.turn_valid & (np.abs(steps.turn) > CRITICAL_ANGLE))
    angle = np.arctan2(ey, ex)
    direction = np.where(displacement > 0, np.floor((angle + np.pi / 8) / (np.pi / 4)) % 8, -1).astype(np.int64)

    prev_t = np.r_[t[0] if len(t) else 0.0, t[:-1]]
    next_code = np.r_[code[1:], 0]
    next_t = np.r_[t[1:], 0.0]
    same_next = np.r_[action[1:] == action[:-1], False]
    is_click = code == _C
    has_prev = ~start
    pause = actions.extreme(np.where(is_click & has_prev, (t - prev_t) / 1000.0, -1.0), fill=-1.0)
    dwell_event = is_click & same_next & (next_code == _R)
    dwell = actions.extreme(np.where(dwell_event, (next_t - t) / 1000.0, -1.0), fill=-1.0)
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
