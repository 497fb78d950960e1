"""Feature families: what each feature column measures, the hand or the machine.

Every column :func:`~mouse_pipeline.features.extract_features` returns
belongs to exactly one *family*, and every family to one *kind*:

* ``behaviour``, how the person moves: ``kinematics`` (speed, acceleration,
  jerk, turning), ``actions`` (what the actions are and how they are shaped:
  duration, path, straightness, direction, click pauses and dwell, wheel
  runs), ``timing`` (gaps between events, session pace and length),
  ``transitions`` (the event mix and which event follows which) and
  ``idle_gaps`` (pauses between actions);
* ``environment``, what the device and the page impose: ``screen`` (extent
  and position of the area used, its shape), ``pixel_grid`` (the display's
  device-pixel ratio seen in fractional CSS coordinates),
  ``fractional_coordinates``, ``sampling`` (the browser's mousemove interval,
  duplicate timestamps) and ``first_position`` (where a session starts).

A fraud team needs to know whether a model recognises the hand or the
machine: selecting ``behaviour`` trains on the first kind only (see
:func:`select_columns`), and the training run reports both ablations.

:func:`feature_family` raises for a column no rule covers, so a new feature
cannot be added without saying which family it belongs to (a test runs it on
every column).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

BEHAVIOUR: Final = "behaviour"
ENVIRONMENT: Final = "environment"
KINDS: Final[tuple[str, ...]] = (BEHAVIOUR, ENVIRONMENT)

#: Every family and its kind, in reporting order.
FAMILIES: Final[dict[str, str]] = {
    "kinematics": BEHAVIOUR,
    "actions": BEHAVIOUR,
    "timing": BEHAVIOUR,
    "transitions": BEHAVIOUR,
    "idle_gaps": BEHAVIOUR,
    "screen": ENVIRONMENT,
    "pixel_grid": ENVIRONMENT,
    "fractional_coordinates": ENVIRONMENT,
    "sampling": ENVIRONMENT,
    "first_position": ENVIRONMENT,
}

#: Value of the family setting (``MOUSE_FEATURE_FAMILIES``) that keeps every column.
ALL: Final = "all"

# Ordered rules: the first pattern that matches a column names its family.
_RULES: Final[tuple[tuple[str, str], ...]] = (
    (r"first_[xy]", "first_position"),
    (r"pixel_grid_.+_ratio", "pixel_grid"),
    (r"fractional_coordinate_ratio", "fractional_coordinates"),
    (r"move_interval_ms_.+|duplicate_timestamp_ratio|stress", "sampling"),
    (r"center_(click_)?[xy]|radius|slope|narrow|[xy]_(max|min|range)", "screen"),
    (r"(speed|vx|vy|accel|jerk|angular_velocity|curvature)_(mean|std|q\d\d)", "kinematics"),
    (r"idle_.+|long_pause_ratio", "idle_gaps"),
    (r"event_gap_ms_.+|duration_s|events_per_s|chill|nbpoints", "timing"),
    (r"ev[1-5]|transition_[1-5]_[1-5]", "transitions"),
    (r"n_actions|action_.+|direction_[0-7]_ratio|pause_before_click_.+|click_(dwell_mean|release_ratio)"
     r"|wheel_(run|rate)_mean", "actions"),
)
_COMPILED: Final = tuple((re.compile(pattern), family) for pattern, family in _RULES)


def feature_family(column: str) -> str:
    """The family of a feature column; KeyError for a column no rule covers."""
    for pattern, family in _COMPILED:
        if pattern.fullmatch(column):
            return family
    raise KeyError(f"feature column {column!r} belongs to no family: add a rule to mouse_pipeline.features.families")


def family_kind(family: str) -> str:
    """``behaviour`` or ``environment``."""
    return FAMILIES[family]


def parse_families(setting: str | Iterable[str]) -> tuple[str, ...]:
    """The families a setting selects, in :data:`FAMILIES` order.

    ``setting`` is ``"all"``, or a comma-separated list (or an iterable) of
    family names and kinds: ``"behaviour"``, ``"environment"``,
    ``"kinematics,timing"``, ``"behaviour,pixel_grid"``. An unknown name is a
    ValueError listing the valid ones.
    """
    names = [s.strip() for s in (setting.split(",") if isinstance(setting, str) else setting)]
    names = [n for n in names if n]
    if not names or ALL in names:
        return tuple(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES and n not in KINDS]
    if unknown:
        raise ValueError(f"unknown feature famil{'y' if len(unknown) == 1 else 'ies'} {unknown}: choose "
                         f"'{ALL}', a kind ({', '.join(KINDS)}) or families ({', '.join(FAMILIES)})")
    wanted = {f for n in names for f in ([n] if n in FAMILIES else [f for f, k in FAMILIES.items() if k == n])}
    return tuple(f for f in FAMILIES if f in wanted)


def select_columns(columns: Sequence[str], families: str | Iterable[str] = ALL) -> list[str]:
    """The columns of ``columns`` (in their order) whose family ``families`` selects."""
    chosen = set(parse_families(families))
    return [col for col in columns if feature_family(col) in chosen]


def family_table(columns: Sequence[str]) -> dict[str, list[str]]:
    """Columns by family (only families with columns), in :data:`FAMILIES` order."""
    by_family: dict[str, list[str]] = {f: [] for f in FAMILIES}
    for col in columns:
        by_family[feature_family(col)].append(col)
    return {f: cols for f, cols in by_family.items() if cols}
