"""The Spark engine gives the pandas engine's features, value for value, and keeps bad rows."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline import spark_engine
from mouse_pipeline.definitions import build_definitions
from mouse_pipeline.simulate import simulate
from mouse_pipeline.features import FeatureConfig, extract_features
from mouse_pipeline.ingest import read_events
from mouse_pipeline.defs.resources import FeatureEngineResource, SparkResource
from mouse_pipeline_tests.conftest import materialized, pipeline_resources, run_assets

CONFIGS = [FeatureConfig(), FeatureConfig(window_size=50), FeatureConfig(window_size=5, window_unit="actions",
                                                                           pause_ms=500)]


def assert_same_features(pandas_table: pd.DataFrame, spark_table: pd.DataFrame) -> None:
    """Same rows, columns and order; every feature equal to 1e-9 (relative)."""
    assert list(spark_table.columns) == list(pandas_table.columns)
    pd.testing.assert_frame_equal(spark_table, pandas_table, check_dtype=False, rtol=1e-9, atol=1e-12)


def test_engine_and_format_names_are_checked():
    assert spark_engine.check_engine("spark") == "spark"
    with pytest.raises(ValueError, match="unknown feature engine 'dask'.*pandas, spark"):
        spark_engine.check_engine("dask")
    assert spark_engine.file_format("s3a://bucket/events.parquet/") == "parquet"
    assert spark_engine.file_format("events.CSV") == "csv"
    with pytest.raises(ValueError, match="events.json: cannot tell the format"):
        spark_engine.file_format("events.json")
    with pytest.raises(ValueError, match="MOUSE_ENGINE"):
        assert FeatureEngineResource(engine="dask").uses_spark


def test_feature_names_are_those_of_the_pandas_engine(small_simulation):
    table = extract_features(small_simulation.train)
    assert list(spark_engine.feature_names()) == [col for col in table.columns if col not in
                                                   (c.SESSION_ID, "window", c.USER_ID)]


@pytest.mark.parametrize("config", CONFIGS, ids=["sessions", "windows-of-50-events", "windows-of-5-actions"])
def test_spark_features_equal_pandas_features_on_simulated_data(spark_session, tmp_path, small_files, config):
    for kind, labelled in (("train", True), ("test", False)):
        events = read_events(small_files[kind], labelled=labelled).events
        events.to_parquet(tmp_path / f"{kind}.parquet")
        written = spark_engine.features_to_parquet(spark_session, str(tmp_path / f"{kind}.parquet"),
                                                   str(tmp_path / f"{kind}-features.parquet"), config)
        assert written.rows_read == written.rows_accepted == len(events) and written.rejected is None
        assert_same_features(extract_features(events, config), spark_engine.read_feature_table(written.features))


@pytest.mark.parametrize("events_per_group", [0, 1_000, 10**9], ids=["a-group-per-session", "small-groups",
                                                                    "one-group"])
def test_grouping_of_sessions_does_not_change_features(spark_session, small_simulation, events_per_group):
    events = small_simulation.train
    spark_events = spark_session.createDataFrame(events.drop(columns=[c.UID]))
    grouped = spark_engine.session_features(spark_events, FeatureConfig(window_size=30), events_per_group)
    table = grouped.toPandas().sort_values([c.SESSION_ID, "window"], ignore_index=True)
    assert_same_features(extract_features(events, FeatureConfig(window_size=30)), table)


@pytest.mark.kaggle
def test_spark_features_equal_pandas_features_on_the_kaggle_training_file(spark_session, tmp_path, kaggle_train):
    ingested = read_events(kaggle_train, labelled=True)
    expected = extract_features(ingested.events)
    # Straight from the CSV: Spark parses it with the contract's schema.
    written = spark_engine.features_to_parquet(spark_session, str(kaggle_train), str(tmp_path / "f.parquet"))
    assert (written.rows_read, written.rows_accepted, written.rows_rejected) == (
        ingested.rows_read, ingested.rows_accepted, ingested.rows_rejected)
    spark_table = spark_engine.read_feature_table(written.features)
    assert len(spark_table) == 120
    assert_same_features(expected, spark_table)


def test_spark_reader_rejects_the_rows_pandas_rejects_with_the_same_reasons(spark_session, tmp_path, small_files):
    lines = small_files["train"].read_text().splitlines()
    header, rows = lines[0], lines[1:]
    uid, session, user, t, code, x, y = rows[0].split(",")
    bad = [
        ",".join([uid + "a", session, user, t, code, x, "oops"]),  # unparseable y
        ",".join([uid + "b", session, user, t, "9", x, y]),  # unknown event code
        ",".join([uid + "c", session, user, "5", code, x, y]),  # a timestamp in seconds since 1970
        ",".join([uid + "d", "", user, t, code, x, y]),  # no session
        ",".join([uid + "e", session, "-2.4162E+18", "1.65599E+12", code, x, y]),  # saved by a spreadsheet
        ",".join([uid + "f", session, user, t, code]),  # a malformed line
        ",".join([uid, session, user, t, code, x, "1"]),  # the first row's uid, other content
        ",".join(["\t=1+1", session, user, t, code, x, y]),  # a neutralised formula: accepted, tab kept
        rows[3],  # an exact duplicate of a good row
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([header, *rows, *bad]) + "\n")

    ingested = read_events(path, labelled=True)
    written = spark_engine.features_to_parquet(spark_session, str(path), str(tmp_path / "f.parquet"))
    assert written.rows_read == len(rows) + len(bad) == ingested.rows_read
    assert (written.rows_rejected, written.exact_duplicates) == (7, 1) == (
        ingested.rows_rejected, ingested.exact_duplicates)
    spark_reasons = sorted(pd.read_parquet(written.rejected)[spark_engine.REASON])
    # Spark has no line numbers: a reused uid's reason does not say where the uid was first seen.
    pandas_reasons = sorted(ingested.rejected["reason"].str.replace(r" \(first on line \d+\)", "", regex=True))
    assert spark_reasons == pandas_reasons
    assert "user_id '-2.4162E+18' is in scientific notation (precision lost, e.g. saved by a spreadsheet); " \
           "timestamp '1.65599E+12' is in scientific notation (precision lost, e.g. saved by a spreadsheet)" \
           in spark_reasons
    assert "malformed line: expected 7 fields, found 5" in spark_reasons
    rejected = pd.read_parquet(written.rejected).set_index(c.UID)
    assert rejected.loc[uid + "a", c.SCREEN_Y] == "oops"  # raw values kept
    assert rejected.loc[uid + "f", spark_engine.CORRUPT_RECORD].endswith(f",{t},{code}")
    assert_same_features(extract_features(ingested.events), spark_engine.read_feature_table(written.features))


def test_spark_reader_checks_parquet_columns_as_typed(spark_session, tmp_path):
    events = pd.DataFrame({c.SESSION_ID: ["s", "s", " s "], c.TIMESTAMP: [1655993031186, 5, 1655993031187],
                           c.EVENT_TYPE: [2, 2, 7], c.SCREEN_X: [1.0, 2.0, np.nan], c.SCREEN_Y: [1.0, 2.0, 3.0]})
    events.to_parquet(tmp_path / "events.parquet")
    read = spark_engine.read_events(spark_session, str(tmp_path / "events.parquet"), labelled=False)
    assert read.counts() == (3, 1, 2)
    reasons = sorted(row[spark_engine.REASON] for row in read.rejected.collect())
    assert reasons == ["event_type '7' is not one of [1, 2, 3, 4, 5]; screen_x '' is not a finite number",
                       "impossible timestamp '5' (expected epoch milliseconds in 2000..2099)"]


def test_spark_reader_names_a_parquet_file_without_the_contract_columns(spark_session, tmp_path):
    pd.DataFrame({"session_id": ["a"], "timestamp": [1]}).to_parquet(tmp_path / "thin.parquet")
    with pytest.raises(ValueError, match=r"thin.parquet: Parquet events lack column\(s\) \['event_type'"):
        spark_engine.read_events(spark_session, str(tmp_path / "thin.parquet"), labelled=False)


def test_spark_engine_in_dagster_gives_the_pandas_engine_features(spark_session, tmp_path):
    """Every candidate feature setting of training (with the chunks of held-out sessions, since the test
    sessions are much shorter), and the test features in the chosen one."""
    files = simulate(users=4, sessions=3, test_sessions=1, actions_per_session=40, test_actions_per_session=8,
                     seed=5).write(tmp_path / "sim")
    selection = "+key:test_session_features"
    outputs = {}
    for engine in ("pandas", "spark"):
        res = pipeline_resources(tmp_path / engine, files["train"], files["test"], engine=engine)
        res["spark"] = SparkResource(master="local[2]")
        result = run_assets(build_definitions(res), selection)
        assert result.success
        assert {"train_session_features", "test_session_features"} <= materialized(result)
        feature_sets = result.output_for_node("train_session_features")
        assert feature_sets[0].chunk_events > 0 and all(fs.scoring is not fs.table for fs in feature_sets)
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert checks["train_features_one_row_per_window_all_finite"].passed
        outputs[engine] = [*(fs.table for fs in feature_sets), *(fs.scoring for fs in feature_sets),
                           result.output_for_node("test_session_features")]
        meta = [e for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == "train_session_features"][0].materialization.metadata
        assert meta["engine"].value == engine and meta["feature_settings"].value == len(feature_sets) > 1
    assert len(outputs["pandas"]) == len(outputs["spark"])
    for pandas_table, spark_table in zip(*outputs.values()):
        assert_same_features(pandas_table, spark_table)
    assert spark_session.sparkContext._jsc is not None  # the resource left the shared session running


def test_pandas_engine_never_starts_spark(monkeypatch, tmp_path, small_files):
    def refuse(*args, **kwargs):
        raise AssertionError("the pandas engine started Spark")

    monkeypatch.setattr(spark_engine, "start_session", refuse)
    res = pipeline_resources(tmp_path, small_files["train"], small_files["test"])
    res["spark"] = SparkResource(master="spark://nowhere:7077")
    result = run_assets(build_definitions(res), "+key:test_session_features")
    assert result.success
    table = result.output_for_node("test_session_features")
    assert np.isfinite(table.select_dtypes("number").to_numpy()).all()


def test_spark_resource_is_lazy():
    resource = SparkResource(master="spark://nowhere:7077")
    assert not resource.started  # built, configured, nothing started
    with dg.build_resources({"spark": resource}) as built:
        assert not built.spark.started


def test_features_command_writes_the_same_parquet_with_either_engine(spark_session, tmp_path, small_files, capsys):
    from mouse_pipeline.cli import main

    lines = small_files["train"].read_text().splitlines()
    bad = tmp_path / "with-a-bad-row.csv"
    bad.write_text("\n".join([*lines, lines[1].rsplit(",", 1)[0] + ",oops"]) + "\n")
    assert main(["features", str(bad), "--out", str(tmp_path / "pandas.parquet"), "--window-size", "40"]) == 0
    assert main(["features", str(bad), "--out", str(tmp_path / "spark.parquet"), "--window-size", "40",
                 "--engine", "spark"]) == 0
    printed = capsys.readouterr().out
    assert printed.count(f"{len(lines):,} rows read: {len(lines) - 1:,} accepted, 1 rejected") == 2
    assert pd.read_csv(tmp_path / "pandas.rejected.csv")["line_number"].tolist() == [len(lines) + 1]
    assert len(pd.read_parquet(tmp_path / "spark.rejected.parquet")) == 1
    assert_same_features(pd.read_parquet(tmp_path / "pandas.parquet"),
                         spark_engine.read_feature_table(str(tmp_path / "spark.parquet")))
    assert main(["features", str(tmp_path / "nope.json"), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "nope.json: cannot tell the format" in capsys.readouterr().err


def test_spark_engine_without_pyspark_fails_with_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # as if the spark extra were not installed
    with pytest.raises(dg.Failure, match=r"pip install 'mouse-pipeline\[spark\]'"):
        SparkResource().session()
