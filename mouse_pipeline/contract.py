"""The mouse-event contract: every other module imports its names from here.

A mouse-event log is a CSV with one row per event:

=============  =========  ==========================================================
column         dtype      meaning
=============  =========  ==========================================================
``uid``        str        unique id of the event
``session_id`` str        id of the session the event belongs to
``user_id``    str        who produced the session (training files only); kept as a
                          string because ids such as -2416201411472988629 do not fit
                          in a float64 (a float parse merges users)
``timestamp``  int64      epoch milliseconds
``event_type`` int8       1 release, 2 move, 3 wheel, 4 drag, 5 click
``screen_x``   float64    horizontal screen coordinate in CSS pixels
``screen_y``   float64    vertical screen coordinate (y grows downwards)
=============  =========  ==========================================================

The textbook grammar of the event stream (sorted by time within a session):

* click  = ``5`` then ``1`` (press, release);
* drag   = ``4``, moves, ``1`` (press, moves while held, release);
* wheel  = a run of ``3``;
* move   = a run of ``2``.

Real logs bend the grammar (the Kaggle data almost never records a release),
so parsers and feature code must tolerate it; the ``event_grammar`` check
counts the deviations.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class EventType(IntEnum):
    """Event codes of the ``event_type`` column."""

    RELEASE = 1
    MOVE = 2
    WHEEL = 3
    DRAG = 4
    CLICK = 5


EVENT_NAMES: Final[dict[int, str]] = {int(e): e.name.lower() for e in EventType}
EVENT_CODES: Final[tuple[int, ...]] = tuple(int(e) for e in EventType)

UID: Final = "uid"
SESSION_ID: Final = "session_id"
USER_ID: Final = "user_id"
TIMESTAMP: Final = "timestamp"
EVENT_TYPE: Final = "event_type"
SCREEN_X: Final = "screen_x"
SCREEN_Y: Final = "screen_y"

#: Columns of a labelled (training) file, in the notebook's order.
TRAIN_COLUMNS: Final[tuple[str, ...]] = (
    UID,
    SESSION_ID,
    USER_ID,
    TIMESTAMP,
    EVENT_TYPE,
    SCREEN_X,
    SCREEN_Y,
)
#: Columns of an unlabelled (test) file.
TEST_COLUMNS: Final[tuple[str, ...]] = tuple(c for c in TRAIN_COLUMNS if c != USER_ID)

#: Column added by ingestion: the 1-based physical line of the row in its file.
SOURCE_LINE: Final = "source_line"

#: dtypes of the clean event frame.
DTYPES: Final[dict[str, str]] = {
    UID: "str",
    SESSION_ID: "str",
    USER_ID: "str",
    TIMESTAMP: "int64",
    EVENT_TYPE: "int8",
    SCREEN_X: "float64",
    SCREEN_Y: "float64",
    SOURCE_LINE: "int64",
}

#: Plausible range of epoch-millisecond timestamps: 2000-01-01 to 2100-01-01 UTC.
#: A value outside it is an "impossible timestamp" (seconds instead of
#: milliseconds, a zero, a sentinel).
MIN_TIMESTAMP_MS: Final[int] = 946_684_800_000
MAX_TIMESTAMP_MS: Final[int] = 4_102_444_800_000


def expected_columns(labelled: bool) -> tuple[str, ...]:
    """Columns a file must have: with ``user_id`` when it is labelled (training)."""
    return TRAIN_COLUMNS if labelled else TEST_COLUMNS
