"""Exploring the events the way the notebook did: a data profile, trajectories and timelines.

Plots are drawn per user (one figure per user, a panel per session); the
events of a panel are drawn with one vectorised ``quiver`` or ``scatter``
call, never a loop per event. File names are derived from the user id, so a
rerun replaces the figures instead of piling them up.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.figures import png_bytes, pyplot
from mouse_pipeline.outputs import write_atomic

#: Colour of each (from, to) event transition in trajectory plots; other pairs are grey.
TRANSITION_COLOURS = {
    (2, 2): "tab:blue",  # move -> move
    (2, 5): "tab:red",  # move -> click
    (5, 2): "tab:orange",  # click -> move
    (2, 3): "tab:green",  # move -> wheel
    (3, 3): "tab:olive",  # wheel -> wheel
    (3, 2): "tab:cyan",  # wheel -> move
    (4, 2): "tab:purple",  # drag -> move
    (5, 1): "tab:pink",  # click -> release
}
MAX_SESSIONS_PER_FIGURE = 6


def data_profile(events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Events per session, session durations and the event mix per user.

    Returns frames ``sessions`` (one row per session: user, events, duration),
    ``summary`` (describe() of events and duration) and ``event_mix`` (share of
    each event type per user).
    """
    grouped = events.groupby(c.SESSION_ID, sort=True)
    sessions = pd.DataFrame(
        {
            c.USER_ID: grouped[c.USER_ID].first() if c.USER_ID in events else "",
            "events": grouped.size(),
            "duration_s": (grouped[c.TIMESTAMP].max() - grouped[c.TIMESTAMP].min()) / 1000.0,
        }
    ).reset_index()
    names = events[c.EVENT_TYPE].map(c.EVENT_NAMES)
    key = events[c.USER_ID] if c.USER_ID in events else pd.Series("all", index=events.index)
    mix = pd.crosstab(key, names, normalize="index").reindex(columns=list(c.EVENT_NAMES.values()), fill_value=0)
    mix.index.name = c.USER_ID
    summary = sessions[["events", "duration_s"]].describe().T
    return {"sessions": sessions, "summary": summary, "event_mix": mix.reset_index()}


def _panels(n: int):
    plt = pyplot()
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=70, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def trajectories_png(user_events: pd.DataFrame, title: str) -> bytes:
    """Per-session trajectories of one user: an arrow per step, coloured by event transition."""
    sessions = sorted(user_events[c.SESSION_ID].unique())[:MAX_SESSIONS_PER_FIGURE]
    fig, axes = _panels(len(sessions))
    for ax, session in zip(axes, sessions):
        e = user_events[user_events[c.SESSION_ID] == session].sort_values(c.TIMESTAMP, kind="stable")
        x, y, code = e[c.SCREEN_X].to_numpy(), e[c.SCREEN_Y].to_numpy(), e[c.EVENT_TYPE].to_numpy()
        pairs = list(zip(code[:-1], code[1:]))
        colours = [TRANSITION_COLOURS.get((int(a), int(b)), "lightgrey") for a, b in pairs]
        ax.quiver(x[:-1], y[:-1], np.diff(x), np.diff(y), color=colours, angles="xy", scale_units="xy",
                  scale=1, width=0.004)
        ax.scatter(x[:1], y[:1], marker="o", color="black", s=12)
        ax.invert_yaxis()  # screen coordinates grow downwards
        ax.set_title(f"session {session[:8]}", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.88, wspace=0.25, hspace=0.35)
    return png_bytes(fig)


def timelines_png(user_events: pd.DataFrame, title: str) -> bytes:
    """Event type over time for each session of one user: linear (left) and log-log (right)."""
    plt = pyplot()
    sessions = sorted(user_events[c.SESSION_ID].unique())[:MAX_SESSIONS_PER_FIGURE]
    fig, (linear, loglog) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=70)
    for offset, session in enumerate(sessions):
        e = user_events[user_events[c.SESSION_ID] == session]
        t = np.sort(e[c.TIMESTAMP].to_numpy())
        code = e.sort_values(c.TIMESTAMP, kind="stable")[c.EVENT_TYPE].to_numpy()
        elapsed = (t - t[0]) / 1000.0
        linear.scatter(elapsed, code + 0.08 * offset, s=3, label=session[:8])
        loglog.scatter(elapsed + 1e-3, code + 0.08 * offset, s=3)
    loglog.set_xscale("log")
    loglog.set_yscale("log")
    for ax in (linear, loglog):
        ax.set_yticks(list(c.EVENT_NAMES), list(c.EVENT_NAMES.values()), fontsize=7)
        ax.set_xlabel("seconds since session start", fontsize=7)
    loglog.minorticks_off()
    loglog.set_title("log-log", fontsize=8)
    linear.set_title("linear", fontsize=8)
    linear.legend(fontsize=5, markerscale=2)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.85, wspace=0.3)
    return png_bytes(fig)


def plot_file_stem(user_id: str) -> str:
    """A filesystem-safe, deterministic name part for a user."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(user_id))


def write_user_plots(events: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write ``trajectories_<user>.png`` and ``timelines_<user>.png`` for every user.

    Files of users no longer present are removed, so the folder always
    matches the data it was drawn from.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for user, user_events in events.groupby(c.USER_ID, sort=True):
        stem = plot_file_stem(user)
        for kind, draw in (("trajectories", trajectories_png), ("timelines", timelines_png)):
            path = out / f"{kind}_{stem}.png"
            png = draw(user_events, f"user {user}: {kind}")
            write_atomic(path, lambda tmp, png=png: tmp.write_bytes(png))
            written.append(path)
    for stale in set(out.glob("*.png")) - set(written):
        stale.unlink()
    return written
