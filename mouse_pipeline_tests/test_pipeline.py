"""The Dagster shell: definitions, the ingestion slice, blocking checks, and the whole graph."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mouse_pipeline import contract as c
from mouse_pipeline.definitions import build_definitions
from mouse_pipeline.defs.resources import build_resources
from mouse_pipeline.outputs import read_manifest
from mouse_pipeline.settings import Settings, settings_table
from mouse_pipeline.simulate import simulate
from mouse_pipeline_tests.conftest import (
    ALL_ASSETS,
    BATCH_ASSETS,
    EXPLORATION_ASSETS,
    FAST_CONFIG,
    FAST_SELECTION,
    materialized,
    pipeline_resources,
    run_assets,
    step_failure,
)


def test_definitions_hold_every_asset_check_and_resource(monkeypatch, tmp_path):
    monkeypatch.setenv("MOUSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MOUSE_WINDOW_SIZE", "25")
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ALL_ASSETS | EXPLORATION_ASSETS | BATCH_ASSETS
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"retrain", "score_new_sessions", "ingest_training_batch"}
    assert [s.name for s in defs.schedules] == ["weekly_retrain"]
    assert {s.name for s in defs.sensors} == {"inbox_sensor", "landing_sensor"}
    checks = {k.name for k in graph.asset_check_keys}
    assert {"one_user_per_session", "no_nulls", "enough_events_per_user", "users_balanced",
            "event_grammar"} <= checks
    assert build_resources()["feature_engine"].window_size == 25
    assert build_resources()["feature_engine"].plan().pinned.window_size == 25
    assert build_resources()["mouse_data"].data_dir == str(tmp_path)


def test_materialize_all_selects_only_unpartitioned_assets_of_one_location(tmp_path):
    """The UI's "Materialize all" takes every executable asset: none may ask for a partition."""
    graph = build_definitions(pipeline_resources(tmp_path)).resolve_asset_graph()
    executable = {k.to_user_string() for k in graph.executable_asset_keys}
    assert executable == ALL_ASSETS | EXPLORATION_ASSETS
    assert all(graph.get(k).partitions_def is None for k in graph.executable_asset_keys)
    for key in BATCH_ASSETS:  # the batches are partitioned, materialised by their own job only
        node = graph.get(dg.AssetKey(key))
        assert node.partitions_def is not None and not node.is_executable


def test_inbox_and_landing_folders_exist_once_the_definitions_load(tmp_path):
    build_definitions(pipeline_resources(tmp_path))
    assert (tmp_path / "data" / "inbox").is_dir() and (tmp_path / "data" / "landing").is_dir()


def test_package_exposes_its_definitions_to_dagster():
    import mouse_pipeline

    assert isinstance(mouse_pipeline.pipeline_definitions, dg.Definitions)
    assert "pipeline_definitions" in dir(mouse_pipeline)


def test_ingestion_slice_on_simulated_default_data(tmp_path):
    defs = build_definitions(pipeline_resources(tmp_path))
    result = run_assets(defs, "group:ingestion")
    assert result.success
    assert {"raw_train_events", "raw_test_events", "rejected_events"} <= materialized(result)
    assert (tmp_path / "data" / "simulated" / "train_events.csv").exists()
    events = result.output_for_node("train_events", "raw_train_events")
    assert events[c.SESSION_ID].nunique() == 120 and events[c.USER_ID].nunique() == 20
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["one_user_per_session"] and checks["no_nulls"] and checks["enough_events_per_user"]
    rejected = pd.read_csv(tmp_path / "data" / "rejected_events.csv")
    assert rejected.empty and "reason" in rejected.columns


def test_bad_rows_reach_rejected_events_and_bad_files_fail_clearly(tmp_path, small_files):
    lines = small_files["train"].read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",oops"
    bad_train = tmp_path / "bad_train.csv"
    bad_train.write_text("\n".join(lines) + "\n")
    defs = build_definitions(pipeline_resources(tmp_path, bad_train, small_files["test"]))
    result = run_assets(defs, "+key:rejected_events")
    assert result.success
    rejected = pd.read_csv(tmp_path / "data" / "rejected_events.csv")
    assert rejected["line_number"].tolist() == [6]
    assert "screen_y 'oops'" in rejected["reason"][0]

    missing = build_definitions(pipeline_resources(tmp_path, tmp_path / "nope.csv", small_files["test"]))
    failed = run_assets(missing, "key:raw_train_events")
    assert not failed.success
    assert "nope.csv: file not found" in step_failure(failed)


def test_failing_blocking_check_stops_downstream_assets(tmp_path, small_simulation):
    train = small_simulation.train.copy()
    one_session = train[c.SESSION_ID] == train[c.SESSION_ID].iloc[0]
    train.loc[one_session & (np.arange(len(train)) % 2 == 0), c.USER_ID] = "-1"  # two users, one session
    paths = small_simulation.write(tmp_path / "sim")
    train.to_csv(paths["train"], index=False)
    defs = build_definitions(pipeline_resources(tmp_path, paths["train"], paths["test"]))
    result = run_assets(defs, "key:raw_train_events or key:enrolled_training_events")
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["one_user_per_session"].passed
    assert "raw_train_events" in materialized(result)
    assert "enrolled_training_events" not in materialized(result)


# The whole graph, run once on small simulated data with claims, then examined piece by piece. ----


@pytest.fixture(scope="module")
def whole_graph(tmp_path_factory, small_simulation):
    tmp = tmp_path_factory.mktemp("whole_graph")
    files = small_simulation.write(tmp / "sim")
    truth = small_simulation.truth
    claims = pd.concat([
        truth.rename(columns={c.USER_ID: "claimed_user_id"}),  # genuine claims
        pd.DataFrame({c.SESSION_ID: [truth[c.SESSION_ID][0], "no-such-session"],
                      "claimed_user_id": ["no-such-user", truth[c.USER_ID][0]]}),
    ])
    claims.to_csv(tmp / "claims.csv", index=False)
    res = pipeline_resources(tmp, files["train"], files["test"], tmp / "claims.csv", window_size=40)
    defs = build_definitions(res)
    instance = dg.DagsterInstance.ephemeral()
    result = run_assets(defs, "* and not group:exploration", FAST_CONFIG, instance)
    return {"tmp": tmp, "files": files, "claims": claims, "resources": res, "defs": defs, "instance": instance,
            "result": result, "client": MlflowClient(res["mlflow_tracking"].uri()),
            "out": tmp / "data" / "predictions"}


def test_whole_graph_materialises_every_asset_and_passes_its_checks(whole_graph):
    result = whole_graph["result"]
    assert result.success
    assert materialized(result) == ALL_ASSETS
    assert all(e.passed for e in result.get_asset_check_evaluations() if e.check_name != "users_balanced")


def test_reports_are_kept_per_version_and_champion_points_at_the_serving_one(whole_graph):
    reports = whole_graph["tmp"] / "data" / "reports"
    version_1 = reports / "versions" / "1"
    assert {"model_card.md", "confusion_matrix.png", "per_user_report.csv", "confusion_matrix.csv",
            "decision_curve.png", "decision_curve.csv", "verification_det.png"} <= {p.name for p in version_1.iterdir()}
    assert (reports / "champion").is_symlink() and (reports / "champion").resolve() == version_1.resolve()
    assert "Model version 1 " in (reports / "champion" / "model_card.md").read_text()
    meta = whole_graph["result"].asset_materializations_for_node("champion")[0].metadata
    assert Path(meta["champion_reports"].value).resolve() == version_1.resolve()


def test_predictions_label_every_test_row_in_file_order(whole_graph, small_simulation):
    rows = pd.read_csv(whole_graph["out"] / "latest" / "Predicted_mouse.csv", dtype={c.USER_ID: str})
    sessions = pd.read_csv(whole_graph["out"] / "latest" / "session_predictions.csv",
                           dtype={c.USER_ID: str, "verdict": str})
    test = pd.read_csv(whole_graph["files"]["test"])
    assert list(rows.columns) == list(c.TRAIN_COLUMNS)
    assert list(rows[c.UID]) == list(test[c.UID])  # every test row, original order
    assert len(sessions) == test[c.SESSION_ID].nunique() == sessions[c.SESSION_ID].nunique()
    assert set(rows[c.USER_ID]) <= set(small_simulation.train[c.USER_ID])
    assert set(sessions["verdict"]) <= set(sessions[c.USER_ID]) | {"unknown"}
    manifest = read_manifest(whole_graph["out"] / "latest")
    assert manifest["files"]["Predicted_mouse.csv"]["rows"] == len(rows)
    assert manifest["model_version"] == "1" and (sessions["model_version"] == 1).all()
    assert manifest["training_data"]["data.source"] == "train_events.csv"


def test_training_run_records_scores_settings_data_and_artifacts(whole_graph):
    trained = whole_graph["result"].output_for_node("user_identifier")
    client = whole_graph["client"]
    champion = client.get_model_version_by_alias("mouse-user-identifier", "champion")
    assert str(champion.version) == trained.version == "1"
    run_data = client.get_run(trained.run_id).data
    for metric in ("cv_macro_f1", "cv_accuracy", "cv_top3_accuracy", "train_macro_f1"):
        assert metric in run_data.metrics
    assert run_data.tags["dagster_run_id"] == whole_graph["result"].run_id
    assert len(run_data.params["train_file_sha256"]) == 64
    assert run_data.params["selection.mlp_hidden_layer_sizes"] == "((24,),)"
    assert run_data.params["features.window_size"] == "40"  # pinned by the resource: the only setting
    for metric in ("best_mlp_cv_macro_f1", "cv_macro_f1_behaviour_only", "cv_macro_f1_environment_only",
                   "cv_macro_f1_ci_low", "cv_macro_f1_ci_high"):
        assert 0 <= run_data.metrics[metric] <= 1, metric
    artifacts = {a.path for a in client.list_artifacts(trained.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/per_user_report.csv"} <= artifacts
    top = {a.path for a in client.list_artifacts(trained.run_id)}
    assert {"candidates.csv", "model_card.md", "features.json"} <= top


def test_calibration_logs_error_rates_and_thresholds_to_the_models_run(whole_graph):
    trained = whole_graph["result"].output_for_node("user_identifier")
    client = whole_graph["client"]
    metrics = client.get_run(trained.run_id).data.metrics
    for metric in ("verification_eer", "verification_auc", "verification_far", "verification_frr",
                   "verification_eer_ci95_low", "verification_eer_ci95_high", "unknown_false_rate",
                   "unknown_detection_rate", "unknown_threshold"):
        assert 0 <= metrics[metric] <= 1, metric
    assert {"verification/verification_det.png", "verification/decision_curve.png",
            "verification/decision_curve.csv"} <= {a.path for a in client.list_artifacts(trained.run_id, "verification")}


def test_claims_are_decided_and_bad_claims_kept_with_their_problem(whole_graph):
    decisions = pd.read_csv(whole_graph["out"] / "verification.csv", dtype={"claimed_user_id": str},
                            keep_default_na=False)
    assert len(decisions) == len(whole_graph["claims"])
    assert list(decisions["problem"][-2:]) == ["unknown user", "unknown session"]
    assert not decisions["accepted"][-2:].any()
    assert decisions["accepted"][:-2].mean() >= 0.5  # genuine claims on separable simulated users


def test_registered_champion_reloads_and_predicts_like_the_model_in_memory(whole_graph):
    trained = whole_graph["result"].output_for_node("user_identifier")
    mlflow.set_tracking_uri(whole_graph["resources"]["mlflow_tracking"].uri())
    try:
        loaded = mlflow.sklearn.load_model("models:/mouse-user-identifier@champion")
    finally:
        mlflow.set_tracking_uri(None)
    columns = list(trained.pipeline.feature_names_in_)
    features = whole_graph["result"].output_for_node("test_session_features")[columns]
    np.testing.assert_allclose(loaded.predict_proba(features), trained.pipeline.predict_proba(features))


#: Model selection with one useless candidate: an MLP of one unit, one iteration, heavy regularisation.
USELESS = {"mlp_hidden_layer_sizes": [[1]], "mlp_max_iter": 1, "mlp_alpha": [100.0], "mlp_bins": 0,
           "extra_trees_max_features": [], "feature_selection": "none"}


def with_selection(resources: dict, **selection) -> dict:
    """``resources`` with a fast model selection changed by ``selection``."""
    from mouse_pipeline.defs.resources import ModelSelectionResource

    return {**resources, "model_selection": ModelSelectionResource(**{**FAST_SELECTION, **selection})}


def test_a_much_worse_model_is_registered_without_the_champion_alias(whole_graph):
    worse = build_definitions(with_selection(whole_graph["resources"], **USELESS))
    again = run_assets(worse, "key:enrolled_training_events or key:train_session_features or key:user_identifier "
                       "or key:verification_calibration or key:model_card or key:champion", FAST_CONFIG,
                       whole_graph["instance"])
    assert again.success
    gate = again.output_for_node("champion")
    assert gate.version == "2" and not gate.promoted
    client = whole_graph["client"]
    assert str(client.get_model_version_by_alias("mouse-user-identifier", "champion").version) == "1"
    meta = again.asset_materializations_for_node("champion")[0].metadata
    assert meta["decision"].value == "not promoted" and meta["serving_version"].value == "1"
    # The challenger's reports are kept under its version; the champion's stay where users look.
    reports = whole_graph["tmp"] / "data" / "reports"
    assert "Model version 2 " in (reports / "versions" / "2" / "model_card.md").read_text()
    assert (reports / "champion").resolve() == (reports / "versions" / "1").resolve()


def test_a_calibrated_version_is_not_calibrated_again(whole_graph):
    """A registered version's thresholds are fixed once the gate has seen them."""
    again = run_assets(whole_graph["defs"], "key:verification_calibration", FAST_CONFIG, whole_graph["instance"])
    assert not again.success
    assert "is already calibrated" in step_failure(again)


def test_readme_settings_table_is_the_settings_module_table():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert settings_table() in readme, "README's settings table differs: paste `python -m mouse_pipeline.settings`"


def test_settings_are_read_from_the_environment_once(monkeypatch):
    monkeypatch.setenv("MOUSE_WINDOW_SIZE", "12")
    monkeypatch.setenv("MOUSE_RETRAIN_SCHEDULE", "on")
    settings = Settings.from_env()
    assert settings.window_size == "12" and settings.schedule_on
    assert settings.feature_plan().pinned.window_size == 12
    monkeypatch.setenv("MOUSE_WINDOW_SIZE", "ten")
    with pytest.raises(ValueError, match="MOUSE_WINDOW_SIZE='ten'"):
        Settings.from_env()


def test_a_champion_of_other_data_is_handed_over_or_refused_never_served(tmp_path, small_simulation):
    """Simulated data, then other users in the same data folder: their model takes over; a useless model
    of the new data is not promoted, and predictions refuse the old champion instead of naming its users."""
    first = small_simulation.write(tmp_path / "first")
    other = simulate(users=5, sessions=4, test_sessions=1, actions_per_session=8, seed=99).write(tmp_path / "other")
    instance = dg.DagsterInstance.ephemeral()
    assert run_assets(build_definitions(pipeline_resources(tmp_path, first["train"], first["test"])),
                      "* and not group:exploration", FAST_CONFIG, instance).success
    defs = build_definitions(pipeline_resources(tmp_path, other["train"], other["test"]))

    useless = build_definitions(with_selection(pipeline_resources(tmp_path, other["train"], other["test"]), **USELESS))
    refused = run_assets(useless, "* and not group:exploration", FAST_CONFIG, instance)
    assert not refused.success
    gate = refused.output_for_node("champion")
    assert not gate.promoted and "failed validation" in gate.message
    assert "does not belong to the current data" in step_failure(refused)
    assert "other users" in step_failure(refused)

    handed_over = run_assets(defs, "* and not group:exploration", FAST_CONFIG, instance)
    assert handed_over.success
    gate = handed_over.output_for_node("champion")
    assert gate.promoted and gate.handover and "does not belong to the current data" in gate.message
    rows = pd.read_csv(tmp_path / "data" / "predictions" / "latest" / "Predicted_mouse.csv", dtype={c.USER_ID: str})
    assert set(rows[c.USER_ID]) <= set(pd.read_csv(other["train"], dtype={c.USER_ID: str})[c.USER_ID])


@pytest.mark.parametrize("stored, asset", [("tables/raw_train_events", "raw_train_events"),
                                           ("storage/train_session_features", "train_session_features")])
def test_a_corrupt_stored_value_fails_with_one_line_naming_the_file_and_the_asset(tmp_path, small_files, stored,
                                                                                   asset):
    defs = build_definitions(pipeline_resources(tmp_path, small_files["train"], small_files["test"]))
    instance = dg.DagsterInstance.ephemeral()
    assert run_assets(defs, "+key:train_session_features", instance=instance).success
    path = next((tmp_path / "data" / stored).iterdir())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated, as by a full disk or a kill
    failed = run_assets(defs, "key:enrolled_training_events or key:user_identifier", FAST_CONFIG, instance)
    assert not failed.success
    message = step_failure(failed).splitlines()[0]
    assert str(path) in message and f"materialise {asset} again" in message


def test_model_card_is_logged_and_its_numbers_are_the_runs_metrics(whole_graph):
    trained = whole_graph["result"].output_for_node("user_identifier")
    card = whole_graph["result"].output_for_node("model_card")
    client = whole_graph["client"]
    metrics = client.get_run(trained.run_id).data.metrics
    assert card.metrics and all(metrics[name] == pytest.approx(value) for name, value in card.metrics.items())
    text = Path(client.download_artifacts(trained.run_id, "model_card.md", str(whole_graph["tmp"]))).read_text()
    assert text == card.markdown
    for section in ("## Data", "## Chosen settings and why", "## Scores", "## Hand or machine",
                    "most important features", "## Verification", "## What these numbers promise"):
        assert section in text
    meta = whole_graph["result"].asset_materializations_for_node("model_card")[0].metadata
    assert meta["model_card"].value == card.markdown


def test_one_session_per_user_trains_end_to_end_and_a_user_with_too_few_events_is_left_out(tmp_path):
    """Enrolment from one session: every user validated on time blocks of it; a user below the minimum
    is named and left out, the rest train, predict, and say how they were validated."""
    data = simulate(users=5, sessions=1, test_sessions=1, actions_per_session=40, seed=8)
    tiny = data.train[data.train[c.USER_ID] == data.train[c.USER_ID].iloc[0]].head(30).assign(
        **{c.USER_ID: "9999", c.SESSION_ID: "sim-tiny"})
    tiny[c.UID] = [f"tiny-{i}" for i in range(len(tiny))]
    files = data.write(tmp_path / "sim")
    pd.concat([data.train, tiny], ignore_index=True).to_csv(files["train"], index=False)
    defs = build_definitions(pipeline_resources(tmp_path, files["train"], files["test"]))
    result = run_assets(defs, "* and not group:exploration", FAST_CONFIG)
    assert result.success, step_failure(result)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["enough_events_per_user"].passed  # a warning, not a block
    enrolled = result.asset_materializations_for_node("enrolled_training_events")[0].metadata
    assert enrolled["users_left_out"].value == 1 and "9999" in enrolled["left_out"].value
    assert enrolled["users_validated_by_blocks"].value == 5
    card = result.output_for_node("model_card").markdown
    assert "5 users with a single session by held-out **blocks within one session**" in card
    assert "`9999`: 30 events, fewer than the 100 needed" in card
    sessions = pd.read_csv(tmp_path / "data" / "predictions" / "latest" / "session_predictions.csv", dtype=str)
    assert len(sessions) == 5 and "9999" not in set(sessions[c.USER_ID])


def test_feature_families_reach_model_selection_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MOUSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MOUSE_FEATURE_FAMILIES", "behaviour")
    monkeypatch.setenv("MOUSE_MIN_EVENTS_PER_USER", "250")
    res = build_resources()
    settings = res["model_selection"].settings(res["feature_engine"], res["validation_limits"])
    assert settings.families == "behaviour" and settings.min_events_per_user == 250
    assert res["feature_engine"].plan().pinned is None  # MOUSE_WINDOW_SIZE unset: auto
    monkeypatch.setenv("MOUSE_FEATURE_FAMILIES", "hands")
    with pytest.raises(ValueError, match="hands"):
        Settings.from_env()


def test_the_data_identity_names_recorded_sessions_whatever_the_blocks(tmp_path):
    """One-session users are cut in blocks as long as the test file's sessions: another test file changes the
    blocks (and so the folds the model was scored on), never the identity of the training data."""
    data = simulate(users=4, sessions=1, test_sessions=1, actions_per_session=40, seed=8)
    short = simulate(users=4, sessions=1, test_sessions=1, actions_per_session=40, test_actions_per_session=10,
                     seed=8)
    files = data.write(tmp_path / "long")
    short_test = short.write(tmp_path / "short")["test"]
    identities = []
    for test in (files["test"], short_test):
        defs = build_definitions(pipeline_resources(tmp_path / test.parent.name, files["train"], test))
        result = run_assets(defs, "+key:user_identifier")
        assert result.success
        identities.append(result.output_for_node("user_identifier").identity)
    first, second = identities
    assert first.n_sessions == second.n_sessions == 4  # recorded sessions, not blocks
    assert (first.users_sha256, first.sessions_sha256) == (second.users_sha256, second.sessions_sha256)
    assert first.folds_sha256 != second.folds_sha256  # scored on other blocks: not comparable, stated so
