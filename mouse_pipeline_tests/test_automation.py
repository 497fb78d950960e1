"""Jobs, schedule, inbox sensor, scoring command, exploration plots and the web server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline.cli import main as cli_main
from mouse_pipeline.definitions import build_definitions
from mouse_pipeline.defs.features.assets import table_config
from mouse_pipeline.defs import file_cursor
from mouse_pipeline.defs.prediction.inbox import inbox_sensor
from mouse_pipeline.defs.resources import MouseDataResource
from mouse_pipeline.outputs import read_manifest
from mouse_pipeline.defs.retrain import retrain_schedule
from mouse_pipeline.settings import Settings
from mouse_pipeline.tracking import load_champion, use_experiment
from mouse_pipeline_tests.conftest import (
    ALL_ASSETS,
    BATCH_ASSETS,
    EXPLORATION_ASSETS,
    FAST_CONFIG,
    FAST_RUN_CONFIG,
    materialized,
    pipeline_resources,
    run_assets,
    step_failure,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_simulation):
    """A data folder with a champion trained by the ``retrain`` job on small simulated data."""
    tmp = tmp_path_factory.mktemp("trained")
    files = small_simulation.write(tmp / "sim")
    res = pipeline_resources(tmp, files["train"], files["test"])
    defs = build_definitions(res)
    result = defs.resolve_job_def("retrain").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config=FAST_CONFIG,
    )
    assert result.success
    return {"tmp": tmp, "files": files, "resources": res, "defs": defs, "result": result}


def test_retrain_job_covers_ingestion_to_predictions(trained):
    assert materialized(trained["result"]) == ALL_ASSETS
    assert (trained["tmp"] / "data" / "predictions" / "latest" / "Predicted_mouse.csv").exists()
    assert not (trained["tmp"] / "data" / "predictions" / "verification.csv").exists()  # no claims given


def test_test_features_and_predictions_use_the_feature_setting_model_selection_chose(trained):
    """The test file is featurised as the trained model chose (not by a resource setting), and the
    champion scores every window of it."""
    model = trained["result"].output_for_node("user_identifier")
    test = trained["result"].output_for_node("test_session_features")
    assert table_config(test) == model.feature_config
    champion = load_champion(trained["resources"]["mlflow_tracking"].uri(), "mouse-user-identifier")
    assert champion.feature_config == model.feature_config  # the features.* params of the run: what score uses
    assert len(model.selection.table) > 1 and model.selection.table["feature_setting"].nunique() > 1  # auto
    sessions = trained["result"].output_for_node("predictions").set_index(c.SESSION_ID)["n_windows"]
    windows = test.groupby(c.SESSION_ID).size()
    assert sessions.sort_index().tolist() == windows.sort_index().tolist()


def test_schedule_is_weekly_stopped_by_default_and_configurable(monkeypatch, trained):
    schedule = trained["defs"].resolve_schedule_def("weekly_retrain")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "retrain"
    monkeypatch.setenv("MOUSE_RETRAIN_CRON", "0 * * * *")
    monkeypatch.setenv("MOUSE_RETRAIN_SCHEDULE", "on")
    configured = retrain_schedule(Settings.from_env())
    assert configured.cron_schedule == "0 * * * *"
    assert configured.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.build_schedule_context(scheduled_execution_time=pd.Timestamp("2026-11-30 03:00")) as context:
        requests = list(configured.evaluate_tick(context).run_requests or [])
    assert len(requests) == 1


class Clock:
    """The sensors' clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(file_cursor, "clock", fake)
    return fake


def evaluate(sensor, resources, cursor=None):
    context = dg.build_sensor_context(cursor=cursor, resources=resources)
    data = sensor.evaluate_tick(context)
    return list(data.run_requests or []), data.cursor


def test_inbox_sensor_one_run_per_new_or_changed_file_once_settled(tmp_path, small_files, clock):
    inbox = tmp_path / "inbox"
    resources = {"mouse_data": MouseDataResource(data_dir=str(tmp_path / "data"), inbox_dir=str(inbox))}

    def tick(cursor=None, seconds=0.0):
        clock.now += seconds
        return evaluate(inbox_sensor, resources, cursor)

    requests, cursor = tick()
    assert requests == []
    inbox.mkdir()
    (inbox / "batch one.csv").write_bytes(small_files["test"].read_bytes())
    (inbox / "notes.txt").write_text("not a csv")
    requests, cursor = tick(cursor)
    assert requests == []  # seen, not settled yet
    requests, cursor = tick(cursor, 31)  # unchanged for two sensor intervals (15 s each)
    assert len(requests) == 1
    config = requests[0].run_config["ops"]["score_csv"]["config"]
    assert config["source_name"] == "batch one.csv" and config["output_name"].startswith("batch_one-")
    staged = Path(config["csv_path"])
    assert staged.read_bytes() == small_files["test"].read_bytes() and staged.name.startswith(config["sha256"])
    assert tick(cursor, 60)[0] == []  # unchanged: no run
    os.utime(inbox / "batch one.csv")  # touched, same content: no run
    requests_touched, cursor = tick(cursor, 31)
    assert tick(cursor, 31)[0] == [] and requests_touched == []
    with (inbox / "batch one.csv").open("a") as handle:
        handle.write("extra-uid,extra-session,1655993031186,2,1.0,1.0\n")
    changed, cursor = tick(cursor)
    assert changed == []
    changed, cursor = tick(cursor, 31)
    assert len(changed) == 1 and changed[0].run_key != requests[0].run_key
    (inbox / "second.csv.part").write_bytes(small_files["test"].read_bytes())  # still being written
    assert tick(cursor, 31)[0] == [] and tick(cursor, 62)[0] == []
    (inbox / "second.csv.part").rename(inbox / "second.csv")  # the writer's rename convention
    _, cursor = tick(cursor)
    second, cursor = tick(cursor, 31)
    assert [r.tags["inbox_file"] for r in second] == ["second.csv"]


def test_a_file_growing_across_ticks_gives_one_run_after_it_settles(tmp_path, small_files, clock):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    resources = {"mouse_data": MouseDataResource(data_dir=str(tmp_path / "data"), inbox_dir=str(inbox))}
    content = small_files["test"].read_bytes()
    chunks = [content[i:i + len(content) // 6] for i in range(0, len(content), len(content) // 6)]
    cursor, runs = None, []
    for chunk in chunks:  # a slow copy: a chunk every 15 s
        with (inbox / "slow.csv").open("ab") as handle:
            handle.write(chunk)
        clock.now += 15
        requests, cursor = evaluate(inbox_sensor, resources, cursor)
        runs += requests
    for _ in range(4):  # then it stays unchanged
        clock.now += 15
        requests, cursor = evaluate(inbox_sensor, resources, cursor)
        runs += requests
    assert len(runs) == 1
    staged = Path(runs[0].run_config["ops"]["score_csv"]["config"]["csv_path"])
    assert staged.read_bytes() == content  # the complete file, not a partial one


def test_score_job_writes_predictions_and_fails_clearly_on_a_bad_file(trained, tmp_path):
    job = trained["defs"].resolve_job_def("score_new_sessions")
    config = {"ops": {"score_csv": {"config": {"csv_path": str(trained["files"]["test"]), "output_name": "t1"}}}}
    result = job.execute_in_process(run_config=config, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    out = trained["tmp"] / "data" / "predictions" / "inbox" / "t1"
    rows = pd.read_csv(out / "Predicted_mouse.csv")
    assert len(rows) == len(pd.read_csv(trained["files"]["test"]))
    bad = tmp_path / "bad.csv"
    bad.write_text("uid,session_id,when\n1,2,3\n")
    config["ops"]["score_csv"]["config"]["csv_path"] = str(bad)
    failed = job.execute_in_process(run_config=config, instance=dg.DagsterInstance.ephemeral(),
                                    raise_on_error=False)
    assert not failed.success
    assert "bad.csv: missing column(s)" in step_failure(failed)


def test_score_job_refuses_a_file_of_other_data_unless_its_config_allows(trained, tmp_path):
    events = pd.read_csv(trained["files"]["test"], dtype=str)
    events[c.SESSION_ID] = events[c.SESSION_ID].str.removeprefix("sim-")  # looks like a real file now
    real = tmp_path / "real.csv"
    events.to_csv(real, index=False)
    job = trained["defs"].resolve_job_def("score_new_sessions")
    config = {"csv_path": str(real), "output_name": "real"}
    failed = job.execute_in_process(run_config={"ops": {"score_csv": {"config": config}}},
                                    instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not failed.success
    message = step_failure(failed)
    assert "may not score this file" in message and "trained on simulated data" in message
    assert "allow_foreign_champion" in message
    out = trained["tmp"] / "data" / "predictions" / "inbox" / "real"
    assert not out.exists()
    allowed = job.execute_in_process(run_config={"ops": {"score_csv": {"config": {
        **config, "allow_foreign_champion": True}}}}, instance=dg.DagsterInstance.ephemeral())
    assert allowed.success
    assert "the file holds real sessions" in read_manifest(out)["foreign_champion"]


def test_score_job_scores_exactly_the_staged_bytes_or_refuses(trained, tmp_path):
    job = trained["defs"].resolve_job_def("score_new_sessions")
    staged, sha256 = file_cursor.stage_copy(trained["files"]["test"], tmp_path / "staging")
    config = {"csv_path": str(staged), "sha256": sha256, "source_name": "day 1.csv", "output_name": "day_1-x"}
    result = job.execute_in_process(run_config={"ops": {"score_csv": {"config": config}}},
                                    instance=dg.DagsterInstance.ephemeral())
    assert result.success and not staged.exists()  # the run's copy is removed once used
    manifest = read_manifest(trained["tmp"] / "data" / "predictions" / "inbox" / "day_1-x")
    assert manifest["source"] == "day 1.csv" and manifest["sha256"] == sha256
    tampered, digest = file_cursor.stage_copy(trained["files"]["test"], tmp_path / "staging")
    with tampered.open("a") as handle:
        handle.write("x,y,1655993031186,2,1.0,1.0\n")
    failed = job.execute_in_process(run_config={"ops": {"score_csv": {"config": {**config, "csv_path": str(tampered),
                                                                                 "sha256": digest}}}},
                                    instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not failed.success and "is not the" in step_failure(failed) and "the sensor saw" in step_failure(failed)


def test_scoring_command_end_to_end(trained, capsys, tmp_path):
    uri = trained["resources"]["mlflow_tracking"].uri()
    code = cli_main(["score", str(trained["files"]["test"]), "--out", str(tmp_path / "out"),
                     "--tracking-uri", uri, "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    sessions = pd.read_csv(tmp_path / "out" / "session_predictions.csv")
    assert len(sessions) == 6
    assert "6 sessions scored with mouse-user-identifier version" in printed
    assert all(s in printed for s in sessions[c.SESSION_ID])


def test_scoring_command_errors_are_clear(trained, capsys, tmp_path):
    missing = cli_main(["score", str(tmp_path / "nope.csv"), "--tracking-uri",
                        trained["resources"]["mlflow_tracking"].uri(), "--quiet"])
    assert missing == 2 and "nope.csv: file not found" in capsys.readouterr().err
    no_store = cli_main(["score", str(trained["files"]["test"]), "--tracking-uri",
                         f"sqlite:///{tmp_path}/nowhere.db", "--quiet"])
    assert no_store == 2 and "nowhere.db: no MLflow store here" in capsys.readouterr().err
    assert not (tmp_path / "nowhere.db").exists()  # not silently created as an empty registry
    use_experiment(f"sqlite:///{tmp_path}/empty.db", "nothing", tmp_path / "artifacts")
    capsys.readouterr()
    no_model = cli_main(["score", str(trained["files"]["test"]), "--tracking-uri",
                         f"sqlite:///{tmp_path}/empty.db", "--quiet"])
    assert no_model == 2 and "no model 'mouse-user-identifier' with alias 'champion'" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (b"", "the MLflow store is empty (0 bytes)"),
    (b"this is not a database" * 100, "not a usable MLflow store"),
])
def test_a_damaged_mlflow_store_is_one_line_and_exit_code_2(trained, capsys, tmp_path, damage, message):
    store = tmp_path / "mlflow.db"
    store.write_bytes(damage)
    code = cli_main(["score", str(trained["files"]["test"]), "--tracking-uri", f"sqlite:///{store}", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and str(store) in err[0]
    assert store.read_bytes() == damage  # never silently re-created


def test_exploration_assets_write_plots_per_user(tmp_path, small_files):
    defs = build_definitions(pipeline_resources(tmp_path, small_files["train"], small_files["test"]))
    result = run_assets(defs, "key:raw_train_events or group:exploration")
    assert result.success
    plots = sorted((tmp_path / "data" / "exploration" / "plots").glob("*.png"))
    assert len(plots) == 12  # trajectories and timelines for each of 6 users
    assert (tmp_path / "data" / "exploration" / "profile_event_mix.csv").exists()
    again = run_assets(defs, "key:user_plots")
    assert again.success
    assert sorted((tmp_path / "data" / "exploration" / "plots").glob("*.png")) == plots  # replaced, not piled up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webserver_serves_the_whole_pipeline_in_one_code_location(tmp_path):
    port = free_port()
    env = {**os.environ, "MOUSE_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path)}
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-w", str(workspace), "-h", "127.0.0.1",
         "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workspace.parent,
    )
    try:
        query = json.dumps({"query": "{ assetNodes { assetKey { path } isMaterializable isExecutable isPartitioned "
                                     "repository { location { name } } } }"}).encode()
        nodes = None
        deadline = time.time() + 90
        while time.time() < deadline and nodes is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    nodes = json.load(response)["data"]["assetNodes"]
            except (OSError, KeyError, TypeError):
                time.sleep(1)
        assert nodes is not None, "the web server did not answer in time"
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert set(by_key) == ALL_ASSETS | EXPLORATION_ASSETS | BATCH_ASSETS
        assert {n["repository"]["location"]["name"] for n in nodes} == {"mouse_pipeline"}
        # What the Lineage page's "Materialize all" launches: executable assets, none partitioned.
        launched = {key for key, n in by_key.items() if n["isExecutable"]}
        assert launched == ALL_ASSETS | EXPLORATION_ASSETS
        assert not any(by_key[key]["isPartitioned"] for key in launched)
        assert all(by_key[key]["isPartitioned"] for key in BATCH_ASSETS)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_two_concurrent_runs_on_one_fresh_data_folder_both_end_consistent(tmp_path, small_files):
    """No shared in-flight values, no race creating the MLflow store: each run predicts with its own data."""
    # The runs keep their history in a Dagster home of this test's own, never the caller's
    # DAGSTER_HOME. It is created before the runs, as `dagster dev` would: two processes creating
    # one fresh SQLite run store at once stamp its schema twice, which Dagster cannot open again.
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dg.DagsterInstance.from_config(str(home)).dispose()
    env = {**os.environ, "MOUSE_DATA_DIR": str(tmp_path / "data"), "MOUSE_TRAIN_CSV": str(small_files["train"]),
           "MOUSE_TEST_CSV": str(small_files["test"]), "DAGSTER_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "dagster_dg_cli.cli", "launch", "-m", "mouse_pipeline", "--assets",
               "* and not group:exploration", "--config-json", json.dumps(FAST_RUN_CONFIG)]
    runs = [subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(2)]
    outputs = [run.communicate(timeout=600)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    predictions = tmp_path / "data" / "predictions"
    folders = [p for p in (predictions / "runs").iterdir() if p.is_dir()]
    assert len(folders) == 2
    versions = {read_manifest(folder)["model_version"] for folder in folders}  # each folder is whole
    assert versions <= {"1", "2"}
    assert read_manifest(predictions / "latest")["files"]["Predicted_mouse.csv"]["rows"] == len(
        pd.read_csv(small_files["test"]))


def test_the_instance_settings_queue_runs_of_one_folder_and_fail_killed_runs(tmp_path):
    import shutil

    from dagster._core.launcher import WorkerStatus

    from mouse_pipeline.defs.run_launcher import LocalRunLauncher, worker_status

    shutil.copy(Path(__file__).resolve().parents[1] / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        assert instance.run_monitoring_enabled
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        instance.dispose()
    assert worker_status(os.getpid()).status == WorkerStatus.RUNNING
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert worker_status(finished.pid).status == WorkerStatus.FAILED
