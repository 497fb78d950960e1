"""Training batches: landed files become dynamic partitions, processed once, read by training."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.definitions import build_definitions
from mouse_pipeline.defs import file_cursor
from mouse_pipeline.defs.batches.partitions import TRAINING_BATCHES
from mouse_pipeline.defs.resources import MouseDataResource
from mouse_pipeline.features import extract_features
from mouse_pipeline_tests.conftest import materialized, pipeline_resources, run_assets, step_failure


def evaluate(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None,
             resources: dict) -> dg.SensorResult | dg.SkipReason:
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))
    for request in getattr(result, "dynamic_partitions_requests", None) or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_landing_sensor_registers_each_new_batch_once_settled(tmp_path, monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(file_cursor, "clock", lambda: now[0])
    landing = tmp_path / "landing"
    res = pipeline_resources(tmp_path)
    res["mouse_data"] = MouseDataResource(data_dir=str(tmp_path / "data"), landing_dir=str(landing))
    defs = build_definitions(res)
    sensor = defs.resolve_sensor_def("landing_sensor")
    instance = dg.DagsterInstance.ephemeral()
    assert landing.is_dir()  # made when the definitions load
    landing.rmdir()
    assert isinstance(sensor(dg.build_sensor_context(instance=instance, resources=res)), dg.SkipReason)  # no dir

    def tick(cursor, seconds):
        now[0] += seconds
        return evaluate(sensor, instance, cursor, res)

    landing.mkdir()
    (landing / "2026-11-01.csv").write_text("a\n")
    (landing / "2026-11-02.csv").write_text("b\n")
    (landing / "not a key.csv").write_text("c\n")
    (landing / "notes.txt").write_text("not a batch\n")
    (landing / "2026-11-03.csv.part").write_text("still being written\n")
    seen = tick(None, 0)
    assert not seen.run_requests  # not settled yet
    first = tick(seen.cursor, 61)  # two sensor intervals (30 s each)
    assert [r.partition_key for r in first.run_requests] == ["2026-11-01.csv", "2026-11-02.csv"]
    staged = first.run_requests[0].run_config["ops"]["process_training_batch"]["config"]["csv_path"]
    assert Path(staged).read_text() == "a\n"
    assert list(first.dynamic_partitions_requests[0].partition_keys) == ["2026-11-01.csv", "2026-11-02.csv"]
    assert set(instance.get_dynamic_partitions(TRAINING_BATCHES.name)) == {"2026-11-01.csv", "2026-11-02.csv"}

    again = tick(first.cursor, 61)
    assert not again.run_requests and not again.dynamic_partitions_requests

    (landing / "2026-11-02.csv").write_text("b, corrected\n")  # same batch, new content: processed again
    os.utime(landing / "2026-11-01.csv")  # touched, unchanged: not
    changed = tick(tick(again.cursor, 0).cursor, 61)
    assert [r.partition_key for r in changed.run_requests] == ["2026-11-02.csv"]
    assert not changed.dynamic_partitions_requests  # already a partition


#: The training file, the test file (for the length of sessions to be scored), enrolment and the features.
TRAINING_FEATURES = ("key:raw_train_events or key:raw_test_events or key:enrolled_training_events or "
                     "key:train_session_features")


def split_last_session_per_user(train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events of all but each user's last session, events of each user's last session)."""
    last = train.groupby(c.USER_ID)[c.SESSION_ID].max()
    in_batch = train[c.SESSION_ID].isin(last)
    return train[~in_batch], train[in_batch]


def test_a_batch_is_validated_and_featurised_in_its_partition_and_joins_training(tmp_path, small_simulation):
    base, batch = split_last_session_per_user(small_simulation.train)
    files = small_simulation.write(tmp_path / "sim")
    base.to_csv(files["train"], index=False)
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    lines = batch.to_csv(index=False).splitlines()
    (landing / "batch-1.csv").write_text("\n".join([*lines, "bad,row,with,too,few"]) + "\n")

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TRAINING_BATCHES.name, ["batch-1.csv"])
    batch_defs = build_definitions(pipeline_resources(tmp_path, files["train"], files["test"]))
    job = batch_defs.resolve_job_def("ingest_training_batch")
    result = job.execute_in_process(partition_key="batch-1.csv", instance=instance)
    assert result.success
    assert materialized(result) == {"batch_events", "rejected_batch_events", "batch_session_features"}
    assert all(e.passed for e in result.get_asset_check_evaluations())
    rejected = pd.read_parquet(tmp_path / "data" / "tables" / "rejected_batch_events" / "batch-1.csv.parquet")
    assert rejected["line_number"].tolist() == [len(lines) + 1]  # kept, with its line
    on_disk = pd.read_csv(tmp_path / "data" / "rejected_batches" / "batch-1.csv")
    assert on_disk["line_number"].tolist() == [len(lines) + 1] and "reason" in on_disk
    assert (tmp_path / "data" / "tables" / "batch_session_features" / "batch-1.csv.parquet").exists()
    assert instance.get_materialized_partitions(dg.AssetKey("batch_session_features")) == {"batch-1.csv"}

    main = build_definitions(pipeline_resources(tmp_path, files["train"], files["test"]))
    trained_on = run_assets(main, TRAINING_FEATURES, instance=instance)
    assert trained_on.success
    meta = trained_on.asset_materializations_for_node("enrolled_training_events")[0].metadata
    assert meta["batches"].value == 1 and meta["batch_sessions"].value == batch[c.SESSION_ID].nunique()
    # Every feature setting compared is computed on the file's and the batch's events together.
    whole, *windows = trained_on.output_for_node("train_session_features")
    assert whole.config.window_size == 0 and windows
    assert set(whole.table[c.SESSION_ID]) == set(small_simulation.train[c.SESSION_ID])
    expected = extract_features(small_simulation.train)
    together = whole.table.sort_values([c.SESSION_ID, "window"], ignore_index=True)
    pd.testing.assert_frame_equal(together, expected, check_dtype=False, rtol=1e-9, atol=1e-12)
    for fs in windows:
        assert set(fs.table[c.SESSION_ID]) == set(small_simulation.train[c.SESSION_ID])


def test_a_batch_failing_a_blocking_check_is_not_featurised_nor_trained_on(tmp_path, small_simulation):
    batch = small_simulation.train.copy()
    batch.loc[batch.index[::2], c.USER_ID] = "someone-else"  # sessions with two users
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    batch.to_csv(landing / "mixed.csv", index=False)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TRAINING_BATCHES.name, ["mixed.csv"])
    job = build_definitions(pipeline_resources(tmp_path)).resolve_job_def("ingest_training_batch")
    result = job.execute_in_process(partition_key="mixed.csv", instance=instance, raise_on_error=False)
    assert not result.success
    logged = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    checks = {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
              for e in logged}  # reported before the step failed
    assert checks == {"one_user_per_session": False, "no_nulls": True, "event_grammar": True}
    assert "mixed.csv" in instance.get_materialized_partitions(dg.AssetKey("batch_events"))
    assert "mixed.csv" not in instance.get_materialized_partitions(dg.AssetKey("batch_session_features"))

    main = build_definitions(pipeline_resources(tmp_path))
    trained_on = run_assets(main, TRAINING_FEATURES, instance=instance)
    assert trained_on.success
    meta = trained_on.asset_materializations_for_node("enrolled_training_events")[0].metadata
    assert meta["batches"].value == 0 and meta["batches_left_out"].value == "none"


def test_a_session_in_two_batches_blocks_training(tmp_path, small_simulation):
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    session = small_simulation.train[small_simulation.train[c.SESSION_ID] ==
                                     small_simulation.train[c.SESSION_ID].iloc[0]]
    session.iloc[: len(session) // 2].to_csv(landing / "part-1.csv", index=False)
    session.iloc[len(session) // 2:].to_csv(landing / "part-2.csv", index=False)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TRAINING_BATCHES.name, ["part-1.csv", "part-2.csv"])
    job = build_definitions(pipeline_resources(tmp_path)).resolve_job_def("ingest_training_batch")
    for key in ("part-1.csv", "part-2.csv"):
        assert job.execute_in_process(partition_key=key, instance=instance).success

    result = run_assets(build_definitions(pipeline_resources(tmp_path)), TRAINING_FEATURES, instance=instance)
    assert not result.success
    message = step_failure(result)
    session = session[c.SESSION_ID].iloc[0]
    assert f"{session} in batch part-1.csv and batch part-2.csv" in message
    assert "train_session_features" not in materialized(result)  # nothing mixed


def test_a_batch_corrected_into_a_bad_one_is_left_out_and_named(tmp_path, small_simulation):
    base, batch = split_last_session_per_user(small_simulation.train)
    files = small_simulation.write(tmp_path / "sim")
    base.to_csv(files["train"], index=False)
    landing = tmp_path / "data" / "landing"
    landing.mkdir(parents=True)
    batch.to_csv(landing / "late.csv", index=False)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TRAINING_BATCHES.name, ["late.csv"])
    defs = build_definitions(pipeline_resources(tmp_path, files["train"], files["test"]))
    job = defs.resolve_job_def("ingest_training_batch")
    assert job.execute_in_process(partition_key="late.csv", instance=instance).success

    broken = batch.copy()
    broken.loc[broken.index[::2], c.USER_ID] = "someone-else"
    broken.to_csv(landing / "late.csv", index=False)  # the new content fails one_user_per_session
    assert not job.execute_in_process(partition_key="late.csv", instance=instance, raise_on_error=False).success

    trained_on = run_assets(defs, TRAINING_FEATURES, instance=instance)
    assert trained_on.success
    meta = trained_on.asset_materializations_for_node("enrolled_training_events")[0].metadata
    assert meta["batches"].value == 0 and meta["batches_left_out"].value == "late.csv"
    enrolled = trained_on.output_for_node("enrolled_training_events").enrolment
    assert set(enrolled.recorded_session) == set(base[c.SESSION_ID])  # the old events of the batch are gone
