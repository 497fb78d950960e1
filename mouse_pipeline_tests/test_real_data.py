"""The newcomer path on the real Kaggle files: simulated quick start, then the real data in the same folder."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline.cli import main as cli_main
from mouse_pipeline.definitions import build_definitions
from mouse_pipeline_tests.conftest import FAST_CONFIG, pipeline_resources, run_assets

pytestmark = pytest.mark.kaggle


def test_quick_start_then_kaggle_in_the_same_folder_predicts_kaggle_users(tmp_path, kaggle_train, kaggle_test,
                                                                          capsys):
    instance = dg.DagsterInstance.ephemeral()
    quick_start = run_assets(build_definitions(pipeline_resources(tmp_path)), "* and not group:exploration",
                             FAST_CONFIG, instance)
    assert quick_start.success  # a simulated champion now exists in tmp_path
    res = pipeline_resources(tmp_path, kaggle_train, kaggle_test)
    score = ["score", str(kaggle_test), "--out", str(tmp_path / "scored"), "--quiet",
             "--tracking-uri", res["mlflow_tracking"].uri()]
    assert cli_main(score) == 2  # the simulated champion never names users of the real file
    err = capsys.readouterr().err
    assert "trained on simulated data (train_events.csv)" in err and "the file holds real sessions" in err

    real = run_assets(build_definitions(res), "* and not group:exploration", FAST_CONFIG, instance)
    assert real.success
    gate = real.output_for_node("champion")
    assert gate.promoted and gate.handover and "simulated" in gate.message
    kaggle_users = set(pd.read_csv(kaggle_train, usecols=[c.USER_ID], dtype=str)[c.USER_ID])
    rows = pd.read_csv(tmp_path / "data" / "predictions" / "latest" / "Predicted_mouse.csv", dtype={c.USER_ID: str})
    assert len(rows) == 4102 and set(rows[c.USER_ID]) <= kaggle_users

    assert cli_main(score) == 0
    scored = pd.read_csv(tmp_path / "scored" / "session_predictions.csv", dtype={c.USER_ID: str})
    assert len(scored) == 40 and set(scored[c.USER_ID]) <= kaggle_users
    assert "real data (Train_Mouse.csv): 20 users, 120 sessions" in capsys.readouterr().out
