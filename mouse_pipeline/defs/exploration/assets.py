"""Exploration assets: the notebook's look at the data, for people in the Dagster UI."""

import dagster as dg
import pandas as pd

from mouse_pipeline.exploration import data_profile, write_user_plots
from mouse_pipeline.defs.metadata import png_markdown, table_preview
from mouse_pipeline.defs.resources import DATA_POOL, MouseDataResource

GROUP = "exploration"
PLOTS_SHOWN = 2


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def event_profile(raw_train_events: pd.DataFrame, mouse_data: MouseDataResource) -> dg.MaterializeResult:
    """Events per session, session durations and the event mix per user of the training data;
    written as CSVs under ``<data_dir>/exploration/``."""
    profile = data_profile(raw_train_events)
    out = mouse_data.output_dir("exploration")
    for name, frame in profile.items():
        table = frame.rename_axis("measure").reset_index() if name == "summary" else frame
        mouse_data.write_csv(table, out / f"profile_{name}.csv")
    sessions = profile["sessions"]
    return dg.MaterializeResult(
        metadata={
            "sessions": len(sessions),
            "events_per_session_median": float(sessions["events"].median()),
            "session_duration_median_s": float(sessions["duration_s"].median()),
            "session_duration_max_s": float(sessions["duration_s"].max()),
            "summary": dg.MetadataValue.md(profile["summary"].round(2).to_markdown()),
            "event_mix_per_user": table_preview(profile["event_mix"].round(3), rows=50, columns=None),
            "folder": dg.MetadataValue.path(str(out)),
        }
    )


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def user_plots(raw_train_events: pd.DataFrame, mouse_data: MouseDataResource) -> dg.MaterializeResult:
    """Per user: session trajectories (arrows coloured by event transition, as the notebook drew
    them) and timelines (event type over time, linear and log-log), as PNG files under
    ``<data_dir>/exploration/plots/`` with names derived from the user id."""
    paths = write_user_plots(raw_train_events, mouse_data.output_dir("exploration") / "plots")
    shown = {f"{path.stem}": png_markdown(path.read_bytes(), path.stem) for path in paths[: 2 * PLOTS_SHOWN]}
    return dg.MaterializeResult(
        metadata={"plots": len(paths), "folder": dg.MetadataValue.path(str(paths[0].parent)), **shown}
    )
