"""The Dagster shell: definitions, the ingestion slice, blocking checks, and the whole graph."""

from __future__ import annotations

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from mouse_pipeline import contract as c
from mouse_pipeline.definitions import build_definitions
from mouse_pipeline.orchestration.resources import (
    FeatureSettings, MlflowTracking, MouseDataResource, ValidationSettings, resources_from_env,
)

ALL_ASSETS = {
    "raw_train_events", "raw_test_events", "rejected_train_events", "rejected_test_events",
    "rejected_events", "train_session_features", "test_session_features", "feature_matrix",
    "user_identifier", "model_evaluation", "predictions", "verification_calibration", "verification",
}  # what the retrain job materialises
EXPLORATION_ASSETS = {"event_profile", "user_plots"}
FAST_TRAINING = {"hidden_layer_sizes": [[24]], "alpha": [0.01], "max_iter": 400, "n_splits": 4,
                 "compare_estimators": [], "n_jobs": 1}
FAST_CONFIG = {"ops": {"user_identifier": {"config": FAST_TRAINING},
                       "verification_calibration": {"config": {"n_jobs": 1}}}}


def resources(tmp_path, train="", test="", claims="", **feature):
    data_dir = str(tmp_path / "data")
    return {
        "mouse_data": MouseDataResource(data_dir=data_dir, train_csv=str(train), test_csv=str(test),
                                        claims_csv=str(claims)),
        "feature_settings": FeatureSettings(**feature),
        "validation_settings": ValidationSettings(),
        "mlflow_tracking": MlflowTracking(data_dir=data_dir, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"),
    }


def run(defs: dg.Definitions, selection: str, run_config: dict | None = None, instance=None):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        asset_selection=list(dg.AssetSelection.from_string(selection).resolve(defs.resolve_asset_graph())),
        run_config=run_config or {},
        raise_on_error=False,
    )


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_definitions_hold_every_asset_check_and_resource(monkeypatch, tmp_path):
    monkeypatch.setenv("MOUSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MOUSE_WINDOW_SIZE", "25")
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == (
        ALL_ASSETS | EXPLORATION_ASSETS | {"batch_session_features"})
    # The batches' features are materialised by the other code location: here only a partitioned spec.
    batch_features = graph.get(dg.AssetKey("batch_session_features"))
    assert not batch_features.is_executable and batch_features.partitions_def is not None
    assert all(graph.get(k).partitions_def is None for k in graph.executable_asset_keys)
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"retrain", "score_new_sessions"}
    assert [s.name for s in defs.schedules] == ["weekly_retrain"]
    assert [s.name for s in defs.sensors] == ["inbox_sensor"]
    checks = {k.name for k in graph.asset_check_keys}
    assert {"one_user_per_session", "no_nulls", "enough_sessions_per_user", "users_balanced",
            "event_grammar"} <= checks
    assert resources_from_env()["feature_settings"].window_size == 25
    assert resources_from_env()["mouse_data"].data_dir == str(tmp_path)


def test_package_exposes_defs():
    import mouse_pipeline

    assert isinstance(mouse_pipeline.defs, dg.Definitions)


def test_ingestion_slice_on_simulated_default_data(tmp_path):
    defs = build_definitions(resources(tmp_path))
    result = run(defs, "group:ingestion")
    assert result.success
    assert {"raw_train_events", "raw_test_events", "rejected_events"} <= materialized(result)
    assert (tmp_path / "data" / "simulated" / "train_events.csv").exists()
    events = result.output_for_node("train_events", "raw_train_events")
    assert events[c.SESSION_ID].nunique() == 120 and events[c.USER_ID].nunique() == 20
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["one_user_per_session"] and checks["no_nulls"] and checks["enough_sessions_per_user"]
    rejected = pd.read_csv(tmp_path / "data" / "rejected_events.csv")
    assert rejected.empty and "reason" in rejected.columns


def test_bad_rows_reach_rejected_events_and_bad_files_fail_clearly(tmp_path, small_files):
    lines = small_files["train"].read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",oops"
    bad_train = tmp_path / "bad_train.csv"
    bad_train.write_text("\n".join(lines) + "\n")
    defs = build_definitions(resources(tmp_path, bad_train, small_files["test"]))
    result = run(defs, "+key:rejected_events")
    assert result.success
    rejected = pd.read_csv(tmp_path / "data" / "rejected_events.csv")
    assert rejected["line_number"].tolist() == [6]
    assert "screen_y 'oops'" in rejected["reason"][0]

    missing = build_definitions(resources(tmp_path, tmp_path / "nope.csv", small_files["test"]))
    failed = run(missing, "key:raw_train_events")
    assert not failed.success
    failure = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "nope.csv: file not found" in str(failure.event_specific_data.error)


def test_failing_blocking_check_stops_downstream_assets(tmp_path, small_simulation):
    train = small_simulation.train.copy()
    one_session = train[c.SESSION_ID] == train[c.SESSION_ID].iloc[0]
    train.loc[one_session & (np.arange(len(train)) % 2 == 0), c.USER_ID] = "-1"  # two users, one session
    paths = small_simulation.write(tmp_path / "sim")
    train.to_csv(paths["train"], index=False)
    defs = build_definitions(resources(tmp_path, paths["train"], paths["test"]))
    result = run(defs, "key:raw_train_events or key:train_session_features")
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["one_user_per_session"].passed
    assert "raw_train_events" in materialized(result)
    assert "train_session_features" not in materialized(result)


def test_whole_graph_end_to_end_with_a_temporary_mlflow_store(tmp_path, small_files, small_simulation):
    truth = small_simulation.truth
    claims = pd.concat([
        truth.rename(columns={c.USER_ID: "claimed_user_id"}),  # genuine claims
        pd.DataFrame({c.SESSION_ID: [truth[c.SESSION_ID][0], "no-such-session"],
                      "claimed_user_id": ["no-such-user", truth[c.USER_ID][0]]}),
    ])
    claims.to_csv(tmp_path / "claims.csv", index=False)
    res = resources(tmp_path, small_files["train"], small_files["test"], tmp_path / "claims.csv", window_size=40)
    defs = build_definitions(res)
    instance = dg.DagsterInstance.ephemeral()
    config = FAST_CONFIG
    result = run(defs, "* and not group:exploration", config, instance)
    assert result.success
    assert materialized(result) == ALL_ASSETS
    assert all(e.passed for e in result.get_asset_check_evaluations() if e.check_name != "users_balanced")

    out = tmp_path / "data" / "predictions"
    rows = pd.read_csv(out / "Predicted_mouse.csv", dtype={c.USER_ID: str})
    sessions = pd.read_csv(out / "session_predictions.csv", dtype={c.USER_ID: str})
    test = pd.read_csv(small_files["test"])
    assert list(rows.columns) == list(c.TRAIN_COLUMNS)
    assert list(rows[c.UID]) == list(test[c.UID])  # every test row, original order
    assert len(sessions) == test[c.SESSION_ID].nunique() == sessions[c.SESSION_ID].nunique()
    assert set(rows[c.USER_ID]) <= set(small_simulation.train[c.USER_ID])

    trained = result.output_for_node("user_identifier")
    client = MlflowClient(res["mlflow_tracking"].uri())
    champion = client.get_model_version_by_alias("mouse-user-identifier", "champion")
    assert str(champion.version) == trained.version == "1"
    run_data = client.get_run(trained.run_id).data
    for metric in ("cv_macro_f1", "cv_accuracy", "cv_top3_accuracy", "train_macro_f1"):
        assert metric in run_data.metrics
    assert run_data.tags["dagster_run_id"] == result.run_id
    assert len(run_data.params["train_file_sha256"]) == 64
    assert run_data.params["settings.hidden_layer_sizes"] == "((24,),)"
    artifacts = {a.path for a in client.list_artifacts(trained.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/per_user_report.csv"} <= artifacts
    for metric in ("verification_eer", "verification_auc", "verification_far", "verification_frr",
                   "unknown_eer", "unknown_auc", "unknown_threshold"):
        assert 0 <= run_data.metrics[metric] <= 1
    assert "verification/verification_det.png" in {a.path for a in client.list_artifacts(trained.run_id, "verification")}

    decisions = pd.read_csv(out / "verification.csv", dtype={"claimed_user_id": str}, keep_default_na=False)
    assert len(decisions) == len(claims)
    assert list(decisions["problem"][-2:]) == ["unknown user", "unknown session"]
    assert not decisions["accepted"][-2:].any()
    assert decisions["accepted"][:-2].mean() >= 0.5  # genuine claims on separable simulated users
    assert set(sessions["verdict"]) <= set(sessions[c.USER_ID]) | {"unknown"}

    # The registered champion reloads and predicts exactly as the pipeline in memory.
    mlflow.set_tracking_uri(res["mlflow_tracking"].uri())
    loaded = mlflow.sklearn.load_model("models:/mouse-user-identifier@champion")
    X = trained.pipeline.feature_names_in_
    features = result.output_for_node("test_session_features")[list(X)]
    np.testing.assert_allclose(loaded.predict_proba(features), trained.pipeline.predict_proba(features))

    # A much worse model is registered but does not take the champion alias.
    worse = {"ops": {"user_identifier": {"config": {**FAST_TRAINING, "hidden_layer_sizes": [[1]],
                                                     "max_iter": 1, "alpha": [100.0]}}}}  # noqa: E501
    again = run(defs, "key:user_identifier", worse, instance)
    assert again.success
    demoted = again.output_for_node("user_identifier")
    assert demoted.version == "2" and not demoted.gate.promoted
    assert str(client.get_model_version_by_alias("mouse-user-identifier", "champion").version) == "1"
    meta = [e for e in again.get_asset_materialization_events()][0].materialization.metadata
    assert meta["champion"].value is False
    mlflow.set_tracking_uri(None)
