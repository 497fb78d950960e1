"""Files for people and programs: atomic writes, consistent result folders, no formula injection."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from mouse_pipeline import outputs


def test_an_interrupted_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "Predicted_mouse.csv"
    outputs.write_csv(pd.DataFrame({"user_id": ["a", "b"]}), path)
    before = path.read_bytes()

    def killed_halfway(tmp):
        tmp.write_text("user_id\nc\n")  # a partial file that would still read as valid CSV
        raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        outputs.write_atomic(path, killed_halfway)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["Predicted_mouse.csv"]  # no temporary left behind


def test_temporaries_of_killed_writers_are_removed_on_the_next_run(tmp_path):
    stale = tmp_path / ".raw_test_events.parquet.tmp-4242-abcd1234"
    stale.write_bytes(b"x" * 100)
    fresh = tmp_path / ".other.csv.tmp-4243-abcd1234"
    fresh.write_bytes(b"y")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert outputs.remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and fresh.exists()  # a writer may still be busy with a recent one


def test_formula_cells_are_escaped_and_numbers_are_not():
    frame = pd.DataFrame({
        "session_id": ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1)", "\t=1+1", "\rA", "ok", "-x"],
        "user_id": ["-2416201411472988629", "+44", "-1.5e3", "7", "=1", "u", "-"],
        "probability": [0.5, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7],
    })
    escaped = outputs.escape_formulas(frame)
    assert escaped["session_id"].tolist() == ["'" + v for v in frame["session_id"][:5]] + ["ok", "'-x"]
    assert escaped["user_id"].tolist() == ["-2416201411472988629", "+44", "-1.5e3", "7", "'=1", "u", "'-"]
    assert escaped["probability"].tolist() == frame["probability"].tolist()


def test_escaping_can_be_turned_off_for_machine_consumers(tmp_path):
    frame = pd.DataFrame({"session_id": ["=1+1"]})
    outputs.write_csv(frame, tmp_path / "raw.csv", escape=False)
    outputs.write_csv(frame, tmp_path / "safe.csv")
    assert (tmp_path / "raw.csv").read_text().splitlines()[1] == "=1+1"
    assert (tmp_path / "safe.csv").read_text().splitlines()[1] == "'=1+1"


def test_published_results_belong_together_and_latest_moves_atomically(tmp_path):
    first = outputs.publish_folder(tmp_path, "run-1", {"a.csv": pd.DataFrame({"x": [1, 2]})}, {"model": "v1"})
    assert (tmp_path / "latest").resolve() == first.resolve()
    assert outputs.read_manifest(tmp_path / "latest")["files"]["a.csv"]["rows"] == 2
    second = outputs.publish_folder(tmp_path, "run-2", {"a.csv": pd.DataFrame({"x": [3]})}, {"model": "v2"})
    assert (tmp_path / "latest").resolve() == second.resolve() and first.exists()
    assert outputs.read_manifest(tmp_path / "latest")["model"] == "v2"
    (second / "a.csv").write_text("x\n9\n")
    with pytest.raises(ValueError, match="not the file the manifest lists"):
        outputs.read_manifest(tmp_path / "latest")
    for i in range(3, 8):
        outputs.publish_folder(tmp_path, f"run-{i}", {"a.csv": pd.DataFrame({"x": [i]})}, {}, keep=3)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run-5", "run-6", "run-7"]


def test_file_sha256(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    assert outputs.file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_prune_oldest_keeps_the_newest_entries_and_the_current_one(tmp_path):
    for age, name in enumerate(["e.parquet", "d", "c.parquet", "b", "a.parquet"]):  # a is the oldest
        path = tmp_path / name
        if "." in name:
            path.write_text(name)
        else:
            path.mkdir()
            (path / "part-0.parquet").write_text(name)
        os.utime(path, (time.time() - 10 * age, time.time() - 10 * age))
    (tmp_path / ".e.parquet.tmp-1").write_text("being written")  # hidden: never counted or deleted
    deleted = outputs.prune_oldest(tmp_path, keep=2, current=tmp_path / "b")
    assert sorted(p.name for p in deleted) == ["a.parquet", "c.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".e.parquet.tmp-1", "b", "d", "e.parquet"]
    assert outputs.prune_oldest(tmp_path / "missing", keep=1) == []


def test_spark_outputs_of_old_runs_are_deleted(tmp_path):
    import dagster as dg

    from mouse_pipeline.defs.features.assets import SPARK_RUNS_KEPT, spark_output, spark_run_output
    from mouse_pipeline.defs.resources import MouseDataResource

    data = MouseDataResource(data_dir=str(tmp_path / "data"))
    key = dg.AssetKey("test_session_features")
    for k in range(5):
        path = spark_run_output(data, key, f"run-{k}")
        path.mkdir(parents=True)
        os.utime(path, (time.time() - 100 + k, time.time() - 100 + k))
    kept = sorted(p.name for p in path.parent.iterdir())
    assert len(kept) == SPARK_RUNS_KEPT and kept[-1] == "run-4.parquet"
    # Per-batch outputs are not run outputs: they are never pruned.
    for k in range(5):
        spark_output(data, dg.AssetKey("batch_session_features"), f"batch-{k}").mkdir(parents=True)
    assert len(list((tmp_path / "data" / "spark" / "batch_session_features").iterdir())) == 5
