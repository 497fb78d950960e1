"""A vectorised simulator of mouse-event logs with stable per-user habits.

Each simulated user has personal traits drawn once from a seeded generator:
screen size and device-pixel ratio, Fitts'-law timing (``a + b*log2(D/W+1)``),
path curvature and overshoot, hand jitter, pause lengths, click dwell, the
browser's mousemove sampling interval, the habit of scrolling with the wheel
versus dragging, and a preferred screen region. A session is a sequence of
actions (move, point-and-click, drag-and-drop, wheel) that follows the event
contract's grammar. ``separation`` scales how far apart users' traits are:
0 makes every user the same person, 1 is a realistic spread. ``same_display``
puts every user on one screen (same size, pixel ratio 1, so integer
coordinates, same sampling interval and the same page layout), so that only
behaviour separates users; ``test_actions_per_session`` makes test sessions
shorter (or longer) than training ones.

Everything is generated with numpy over whole arrays: actions are drawn for
all sessions at once and expanded to events with ``np.repeat``, so 10 million
events take seconds. The same seed gives the same bytes.

Command line::

    python -m mouse_pipeline.simulate --users 200 --sessions 10 --test-sessions 2 --out DIR
    python -m mouse_pipeline.simulate --users 10 --sessions 6 --actions 1500 --test-actions 75 --same-display --out DIR
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mouse_pipeline import contract as c

TRAIN_FILE = "train_events.csv"
TEST_FILE = "test_events.csv"
TRUTH_FILE = "test_truth.csv"
#: Every simulated session id starts with this, so a file tells in-band that it is simulated (real session
#: ids, such as Kaggle's numbers, never do): see :func:`is_simulated_session`.
SIMULATED_SESSION_PREFIX = "sim-"

_SCREENS = np.array(
    [[1280, 720], [1366, 768], [1440, 900], [1536, 864], [1600, 900], [1920, 1080], [2560, 1440]],
    dtype=np.float64,
)
_PIXEL_RATIOS = np.array([1.0, 1.0, 1.25, 1.5, 2.0])
_ACTION_KINDS = ("move", "click", "drag", "wheel")
_T0 = 1_650_000_000_000  # 2022-04-15, epoch ms
#: The one display of ``same_display``: 1920 x 1080 CSS px, pixel ratio 1, 30 ms mousemove sampling.
_SHARED_SCREEN, _SHARED_SAMPLE_MS = np.array([1920.0, 1080.0]), 30.0


@dataclass(frozen=True)
class SimulatedData:
    """Simulator output: a labelled train frame, an unlabelled test frame, the test truth."""

    train: pd.DataFrame
    test: pd.DataFrame
    truth: pd.DataFrame

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write the three CSVs into ``out_dir`` and return their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"train": out / TRAIN_FILE, "test": out / TEST_FILE, "truth": out / TRUTH_FILE}
        self.train.to_csv(paths["train"], index=False)
        self.test.to_csv(paths["test"], index=False)
        self.truth.to_csv(paths["truth"], index=False)
        return paths


def _user_traits(rng: np.random.Generator, n_users: int, separation: float) -> dict[str, np.ndarray]:
    """Per-user traits; ``separation`` shrinks every trait towards a common user."""

    def trait(centre: float, spread: float, log: bool = False) -> np.ndarray:
        z = rng.standard_normal(n_users) * spread * separation
        return centre * np.exp(z) if log else centre + z

    screen_index = rng.integers(0, len(_SCREENS), n_users)
    ratio_index = rng.integers(0, len(_PIXEL_RATIOS), n_users)
    if separation == 0:
        screen_index[:] = 5
        ratio_index[:] = 0
    mix = rng.dirichlet([4.0, 6.0, 1.0, 2.0], n_users)
    mix = (1 - separation) * np.array([0.3, 0.45, 0.08, 0.17]) + separation * mix
    return {
        "screen": _SCREENS[screen_index],
        "pixel_ratio": _PIXEL_RATIOS[ratio_index],
        "fitts_a": trait(120.0, 0.35, log=True),  # ms
        "fitts_b": trait(150.0, 0.35, log=True),  # ms per bit
        "curvature": trait(0.0, 0.12),  # bow of the path, fraction of its length
        "overshoot": trait(0.04, 0.5, log=True),  # fraction of the distance
        "jitter": trait(1.2, 0.5, log=True),  # px
        "pause": trait(600.0, 0.6, log=True),  # ms between actions
        "dwell": trait(90.0, 0.4, log=True),  # ms between press and release
        "sample_ms": np.clip(trait(30.0, 0.25, log=True), 8.0, 50.0),  # mousemove interval
        "wheel_ms": trait(60.0, 0.4, log=True),  # between wheel ticks
        "region": rng.uniform(0.25, 0.75, (n_users, 2)) * separation + 0.5 * (1 - separation),
        "region_spread": np.clip(trait(0.22, 0.3, log=True), 0.05, 0.45),
        "mix": mix,
    }


def _on_one_display(traits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same traits with every device and page trait made common: same screen, pixel ratio 1
    (integer coordinates), same sampling interval, same page layout (target region and spread)."""
    n = len(traits["fitts_a"])
    return {
        **traits,
        "screen": np.tile(_SHARED_SCREEN, (n, 1)),
        "pixel_ratio": np.ones(n),
        "sample_ms": np.full(n, _SHARED_SAMPLE_MS),
        "region": np.full((n, 2), 0.5),
        "region_spread": np.full(n, 0.22),
    }


def _session_actions(
    rng: np.random.Generator, traits: dict[str, np.ndarray], session_user: np.ndarray,
    actions_per_session: float | np.ndarray,
) -> pd.DataFrame:
    """Draw every action of every session at once (``actions_per_session``: a mean, or one per session)."""
    # Sessions of one app hold a similar number of events, whoever the user: a user whose
    # actions produce many events (slow hand, fast sampling) performs fewer of them.
    moves_per_action = (traits["fitts_a"] + traits["fitts_b"] * 4.5) / traits["sample_ms"]
    events_per_action = traits["mix"][:, :3].sum(axis=1) * (moves_per_action + 1) + traits["mix"][:, 3] * 8
    scale = np.median(events_per_action) / events_per_action
    n_actions = np.maximum(rng.poisson(actions_per_session * scale[session_user]), 2)
    session = np.repeat(np.arange(len(session_user)), n_actions)
    user = session_user[session]
    u = rng.random(len(session))
    kind = (u[:, None] > np.cumsum(traits["mix"][user], axis=1)).sum(axis=1)
    screen = traits["screen"][user]
    target = traits["region"][user] + rng.standard_normal((len(session), 2)) * traits[
        "region_spread"
    ][user][:, None]
    target = np.clip(target, 0.01, 0.99) * screen
    first = np.r_[True, session[1:] != session[:-1]]
    start = np.roll(target, 1, axis=0)
    start[first] = rng.uniform(0.1, 0.9, (int(first.sum()), 2)) * screen[first]
    return pd.DataFrame(
        {
            "session": session,
            "user": user,
            "kind": kind,
            "x0": start[:, 0],
            "y0": start[:, 1],
            "x1": target[:, 0],
            "y1": target[:, 1],
        }
    )


def _expand_events(
    rng: np.random.Generator, traits: dict[str, np.ndarray], actions: pd.DataFrame
) -> pd.DataFrame:
    """Expand actions to events (positions, times, event codes), vectorised."""
    user = actions["user"].to_numpy()
    kind = actions["kind"].to_numpy()
    p0 = actions[["x0", "y0"]].to_numpy()
    p1 = actions[["x1", "y1"]].to_numpy()
    distance = np.hypot(*(p1 - p0).T)
    width = 24.0
    movement_ms = traits["fitts_a"][user] + traits["fitts_b"][user] * np.log2(distance / width + 1)
    movement_ms *= rng.lognormal(0.0, 0.15, len(user))
    is_wheel = kind == _ACTION_KINDS.index("wheel")
    n_moves = np.where(is_wheel, 0, np.maximum(np.round(movement_ms / traits["sample_ms"][user]), 1))
    n_wheel = np.where(is_wheel, rng.integers(2, 14, len(user)), 0)
    is_click = kind == _ACTION_KINDS.index("click")
    is_drag = kind == _ACTION_KINDS.index("drag")
    # press (drag starts with 4), moves, then click 5 + release 1, or release 1 for a drag
    n_events = (n_moves + n_wheel + is_drag + 2 * is_click + is_drag).astype(np.int64)

    action = np.repeat(np.arange(len(user)), n_events)
    offset = np.cumsum(n_events) - n_events
    k = np.arange(len(action)) - offset[action]  # index of the event within its action
    kind_e = kind[action]
    user_e = user[action]
    move_index = k - is_drag[action]
    code = np.full(len(action), int(c.EventType.MOVE), dtype=np.int8)
    code[kind_e == _ACTION_KINDS.index("wheel")] = int(c.EventType.WHEEL)
    code[is_drag[action] & (k == 0)] = int(c.EventType.DRAG)
    last = k == n_events[action] - 1
    code[last & (is_drag[action] | is_click[action])] = int(c.EventType.RELEASE)
    code[is_click[action] & (k == n_events[action] - 2)] = int(c.EventType.CLICK)

    # Position along a minimum-jerk path with a personal bow, overshoot and jitter.
    is_move = code == int(c.EventType.MOVE)
    s = np.where(is_move, (move_index + 1) / np.maximum(n_moves[action], 1), 1.0)
    s = np.where(code == int(c.EventType.DRAG), 0.0, s)
    s = np.where(code == int(c.EventType.WHEEL), 1.0, s)
    profile = 10 * s**3 - 15 * s**4 + 6 * s**5
    over = traits["overshoot"][user_e] * np.sin(np.pi * np.clip(s * 1.25 - 0.25, 0, 1))
    delta = p1[action] - p0[action]
    normal = np.stack([-delta[:, 1], delta[:, 0]], axis=1)
    bow = traits["curvature"][user_e] * np.sin(np.pi * s)
    xy = p0[action] + delta * (profile + over * is_move)[:, None] + normal * bow[:, None]
    xy += rng.standard_normal(xy.shape) * (traits["jitter"][user_e] * is_move)[:, None]
    screen = traits["screen"][user_e]
    ratio = traits["pixel_ratio"][user_e][:, None]
    xy = np.clip(np.round(xy * ratio) / ratio, 0, screen - 1)

    # Times: irregular mousemove sampling, wheel ticks, dwell, pauses between actions.
    step = rng.gamma(4.0, traits["sample_ms"][user_e] / 4.0)
    step = np.where(code == int(c.EventType.WHEEL), rng.gamma(3.0, traits["wheel_ms"][user_e] / 3), step)
    step = np.where(code == int(c.EventType.RELEASE), rng.gamma(6.0, traits["dwell"][user_e] / 6), step)
    step = np.where(code == int(c.EventType.CLICK), rng.gamma(3.0, 40.0, len(code)), step)
    pause = rng.gamma(1.5, traits["pause"][user][action] / 1.5)
    step = np.where(k == 0, pause, step)
    return pd.DataFrame(
        {
            "session": actions["session"].to_numpy()[action],
            "step": np.maximum(np.round(step), 1).astype(np.int64),
            "code": code,
            "x": xy[:, 0],
            "y": xy[:, 1],
        }
    )


def _ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random UUID-4-shaped strings, generated as one byte array."""
    raw = rng.integers(0, 16, (n, 32), dtype=np.uint8)
    raw[:, 12] = 4
    hex_digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[raw]
    dash = np.full((n, 1), ord("-"), dtype=np.uint8)
    parts = [hex_digits[:, :8], dash, hex_digits[:, 8:12], dash, hex_digits[:, 12:16], dash,
             hex_digits[:, 16:20], dash, hex_digits[:, 20:]]
    return np.ascontiguousarray(np.hstack(parts)).view("S36").ravel().astype("U36")


def is_simulated_session(session_ids) -> np.ndarray:
    """Whether each of ``session_ids`` is a simulated session id (starts with ``sim-``), as a bool array."""
    ids = pd.Series(np.asarray(session_ids, dtype=object), dtype=object).astype(str)
    return ids.str.startswith(SIMULATED_SESSION_PREFIX).to_numpy(dtype=bool)


def simulate(
    users: int = 20,
    sessions: int = 6,
    test_sessions: int = 2,
    actions_per_session: float = 10.0,
    separation: float = 1.0,
    seed: int = 0,
    test_actions_per_session: float | None = None,
    same_display: bool = False,
) -> SimulatedData:
    """Simulate ``users`` users with ``sessions`` labelled and ``test_sessions`` unlabelled sessions each.

    Parameters
    ----------
    users, sessions, test_sessions:
        Number of users, of training sessions per user, of test sessions per user.
    actions_per_session:
        Mean number of actions per session (Poisson, at least 2); about 4
        events per action on average.
    separation:
        How far apart users' habits are: 0 makes all users identical, 1 is
        a realistic spread, larger values make users easier to tell apart.
    seed:
        Seed of the generator; the same arguments give identical frames.
    test_actions_per_session:
        Mean number of actions of a test session (default: ``actions_per_session``),
        e.g. short test sessions after long enrolment sessions.
    same_display:
        Every user on one display and page (1920 x 1080, pixel ratio 1, integer
        coordinates, 30 ms sampling, same target layout): only behaviour
        separates users. The other traits, and the random draws, are unchanged.

    Returns
    -------
    SimulatedData
        ``train`` has the training columns of the contract, ``test`` the test
        columns (sessions in random order, rows shuffled within the file like
        the real data), ``truth`` maps each test ``session_id`` to its ``user_id``. Session ids are
        UUID-shaped after the ``sim-`` prefix (:data:`SIMULATED_SESSION_PREFIX`); user ids look like
        Kaggle's (large negative integers, kept as text).
    """
    if users < 1 or sessions < 1 or test_sessions < 0:
        raise ValueError("users and sessions must be >= 1 and test_sessions >= 0")
    rng = np.random.default_rng(seed)
    traits = _user_traits(rng, users, separation)
    if same_display:
        traits = _on_one_display(traits)
    per_user = sessions + test_sessions
    session_user = np.repeat(np.arange(users), per_user)
    is_test = np.tile(np.arange(per_user) >= sessions, users)
    test_actions = actions_per_session if test_actions_per_session is None else test_actions_per_session
    actions = _session_actions(rng, traits, session_user, np.where(is_test, test_actions, actions_per_session))
    events = _expand_events(rng, traits, actions)

    session = events["session"].to_numpy()
    starts = np.r_[0, np.flatnonzero(session[1:] != session[:-1]) + 1]  # every session has events
    session_t0 = _T0 + rng.integers(0, 90 * 86_400_000, len(session_user))
    steps = events["step"].to_numpy()
    elapsed = np.cumsum(steps)
    elapsed -= (elapsed - steps)[starts][session]  # restart the clock at each session
    timestamp = session_t0[session] + elapsed

    user_ids = np.array([str(-2416201400000000000 - int(v)) for v in rng.integers(1, 10**10, users)])
    session_ids = np.char.add(SIMULATED_SESSION_PREFIX, _ids(rng, len(session_user)))
    frame = pd.DataFrame(
        {
            c.UID: _ids(rng, len(session)),
            c.SESSION_ID: session_ids[session],
            c.USER_ID: user_ids[session_user[session]],
            c.TIMESTAMP: timestamp.astype(np.int64),
            c.EVENT_TYPE: events["code"].to_numpy(),
            c.SCREEN_X: events["x"].to_numpy(),
            c.SCREEN_Y: events["y"].to_numpy(),
        }
    )
    # Like the real files: rows are not in time order.
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    in_test = frame[c.SESSION_ID].isin(session_ids[is_test]).to_numpy()
    train = frame.loc[~in_test, list(c.TRAIN_COLUMNS)].reset_index(drop=True)
    test = frame.loc[in_test, list(c.TEST_COLUMNS)].reset_index(drop=True)
    truth = pd.DataFrame(
        {c.SESSION_ID: session_ids[is_test], c.USER_ID: user_ids[session_user[is_test]]}
    )
    return SimulatedData(train=train.astype({c.USER_ID: "str"}), test=test, truth=truth)


def main(argv: list[str] | None = None) -> None:
    """Command line: write simulated train, test and truth CSVs into a folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=6, help="training sessions per user")
    parser.add_argument("--test-sessions", type=int, default=2, help="test sessions per user")
    parser.add_argument("--actions", type=float, default=10.0, help="mean actions per session")
    parser.add_argument("--test-actions", type=float, default=None,
                        help="mean actions per test session (default: --actions)")
    parser.add_argument("--same-display", action="store_true",
                        help="every user on one display and page: only behaviour separates users")
    parser.add_argument("--separation", type=float, default=1.0, help="how distinct users are")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    data = simulate(args.users, args.sessions, args.test_sessions, args.actions, args.separation, args.seed,
                    test_actions_per_session=args.test_actions, same_display=args.same_display)
    paths = data.write(args.out)
    print(
        f"wrote {len(data.train):,} training events ({data.train[c.SESSION_ID].nunique()} sessions), "
        f"{len(data.test):,} test events ({len(data.truth)} sessions) to {args.out}"
    )
    for name, path in paths.items():
        print(f"  {name}: {path}")


if __name__ == "__main__":
    main()
