"""The benchmark's baseline and data: the notebook's featurizer computes what its docstring says,
and faulty copies of a file carry exactly the faults they claim."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.notebook_featurizer import featurize_frame, read_rows
from benchmarks.pipeline_benchmark import by_session, run_slice, write_faulty
from mouse_pipeline.features import extract_features
from mouse_pipeline.ingest import read_events


def test_notebook_featurizer_agrees_with_the_pipeline_where_the_notebook_had_no_slip(small_files):
    notebook = featurize_frame(read_rows(small_files["train"]))
    ours = extract_features(read_events(small_files["train"], labelled=True).events).set_index("session_id")
    ours = ours.loc[notebook.index]
    # (Its slope takes the mean of x from y, which changes nothing but rounding: sum(x - mean x) is 0.)
    same = ["center_x", "center_y", "radius", "slope", "narrow", "ev1", "ev2", "ev3", "ev4", "ev5", "stress",
            "chill", "nbpoints"]
    pd.testing.assert_frame_equal(notebook[same], ours[same], check_dtype=False, rtol=1e-7, atol=1e-9)
    # The notebook's slips: its first point is the first row of the file, its click centre 0 without a click.
    assert not np.allclose(notebook["first_x"], ours["first_x"])
    no_click = ours["ev5"] == 0
    assert (notebook.loc[no_click, "center_click_x"] == 0).all()


def test_faulty_copy_has_the_announced_number_of_rejected_rows(tmp_path, small_files):
    faulty = tmp_path / "faulty.csv"
    count = write_faulty(small_files["train"], 0.05, faulty)
    clean = read_events(small_files["train"], labelled=True)
    result = read_events(faulty, labelled=True)
    assert count > 0
    assert result.rows_read == clean.rows_read
    assert result.rows_rejected + result.exact_duplicates == count
    assert result.rows_accepted == clean.rows_accepted - count


def test_one_run_of_the_slice_reports_every_stage(small_files):
    out = run_slice(small_files["train"], small_files["test"])
    for stage in ("parse train", "validate train", "sort train", "checks train", "features train", "parse test",
                  "validate test", "sort test", "features test", "slice"):
        assert out[stage]["seconds"] >= 0 and out[stage]["peak"] > 0, stage
    assert all(out["checks"].values())


def test_rows_by_session_keep_each_sessions_rows_together_and_lose_none(small_files):
    events = pd.read_csv(small_files["train"], dtype=str)
    ordered = by_session(events)
    session = ordered["session_id"].to_numpy()
    runs = 1 + np.count_nonzero(session[1:] != session[:-1])
    assert runs == events["session_id"].nunique()  # one run per session
    pd.testing.assert_frame_equal(ordered.sort_values("uid", ignore_index=True),
                                  events.sort_values("uid", ignore_index=True))
    t = ordered["timestamp"].astype("int64").to_numpy()
    assert (np.diff(t)[session[1:] == session[:-1]] < 0).any()  # not in time order within a session
    pd.testing.assert_frame_equal(by_session(events), ordered)  # deterministic
