"""``mouse-pipeline verify``: claims decided by the champion, end to end against a small MLflow store."""

from __future__ import annotations

from dataclasses import asdict

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mouse_pipeline import contract as c
from mouse_pipeline import tracking
from mouse_pipeline.champion import DataIdentity
from mouse_pipeline.claims import settled_at, verify_events
from mouse_pipeline.cli import main as cli_main
from mouse_pipeline.features import FeatureConfig, feature_columns
from mouse_pipeline.fusion import FUSIONS
from mouse_pipeline.outputs import read_manifest
from mouse_pipeline.simulate import SIMULATED_SESSION_PREFIX, simulate
from mouse_pipeline.tracking import Champion
from mouse_pipeline_tests.test_calibration import calibrate, fit_all

NAME = "verify-test-model"


def register(uri: str, tmp_path, data, metrics: dict | None = None) -> str:
    """Train, calibrate and register a model on ``data``; promote it. Returns the version."""
    report, features = calibrate(data.train, n_splits=3)
    model = fit_all(features)
    labels, sessions = features[c.USER_ID].to_numpy(), features[c.SESSION_ID].to_numpy()
    tracking.use_experiment(uri, "verify-test", tmp_path / "artifacts")
    with mlflow.start_run():
        mlflow.log_params({**{f"features.{k}": v for k, v in asdict(FeatureConfig()).items()}, **report.params()})
        mlflow.log_metrics(metrics if metrics is not None else {"cv_macro_f1": 0.9, **report.metrics()})
        _, version = tracking.log_sklearn_model(model, features[feature_columns(features)].head(2), NAME)
    identity = DataIdentity.of(labels, sessions, {s: 0 for s in sessions}, True, "train.csv")
    tracking.gate_champion(MlflowClient(uri), NAME, version, 0.9, identity, 0.02)
    return version


@pytest.fixture(scope="module")
def champion_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    data = simulate(users=4, sessions=4, test_sessions=2, actions_per_session=15, seed=8)
    files = data.write(tmp / "sim")
    uri = tracking.default_tracking_uri(tmp)
    register(uri, tmp, data)
    yield {"uri": uri, "files": files, "data": data, "tmp": tmp}
    mlflow.set_tracking_uri(None)


def write_claims(path, rows) -> str:
    pd.DataFrame(rows, columns=[c.SESSION_ID, "claimed_user_id"]).to_csv(path, index=False)
    return str(path)


def verify(store, claims: str, out, *extra) -> int:
    return cli_main(["verify", str(store["files"]["test"]), "--claims", claims, "--out", str(out),
                     "--tracking-uri", store["uri"], "--model-name", NAME, "--quiet", *extra])


def test_verify_decides_claims_and_keeps_bad_ones_with_the_reason(champion_store, tmp_path, capsys):
    truth = champion_store["data"].truth
    session, owner = truth[c.SESSION_ID].iloc[0], truth[c.USER_ID].iloc[0]
    other = truth.loc[truth[c.USER_ID] != owner, c.USER_ID].iloc[0]
    claims = write_claims(tmp_path / "claims.csv", [
        (session, owner), (session, other), ("no-such-session", owner), (session, "-999"),
        ("=HYPERLINK(\"http://x\")", owner),
    ])
    assert verify(champion_store, claims, tmp_path / "out") == 0
    printed = capsys.readouterr().out
    assert "5 claims decided with verify-test-model version 1" in printed
    decisions = pd.read_csv(tmp_path / "out" / "verification.csv", dtype={"claimed_user_id": str,
                                                                        "problem": str}, keep_default_na=False)
    assert list(decisions[c.SESSION_ID])[:4] == [session, session, "no-such-session", session]
    assert list(decisions["problem"]) == ["", "", "unknown session", "unknown user", "unknown session"]
    assert decisions["accepted"].tolist()[2:] == [False, False, False]
    assert decisions["accepted"].iloc[0] and not decisions["accepted"].iloc[1]
    assert decisions[c.SESSION_ID].iloc[4].startswith("'=")  # formula escaped
    assert {"score_1_actions", "score_5_actions", "score_10_actions", "decided_at_actions",
            "n_actions", "threshold"} <= set(decisions.columns)
    first = decisions.iloc[0]
    assert first["score_1_actions"] != "" and 1 <= float(first["decided_at_actions"]) <= float(first["n_actions"])
    assert decisions.loc[2, "score"] == "" and decisions.loc[2, "decided_at_actions"] == ""
    longer = [col for col in decisions.columns if col.startswith("score_") and col.endswith("_actions")
              and int(col.split("_")[1]) > float(first["n_actions"])]
    assert longer and all(first[col] == "" for col in longer)  # empty where the session is shorter
    manifest = read_manifest(tmp_path / "out")
    assert manifest["files"]["verification.csv"]["rows"] == 5 and manifest["fusion"] in FUSIONS


def test_a_decision_settles_at_the_first_n_from_which_no_prefix_disagrees():
    prefix = np.array([[0.1, 0.9, np.nan], [0.9, 0.1, 0.9], [0.9, 0.9, 0.9]])
    got = settled_at(prefix, np.full(3, 0.5), np.array([True, True, False]), np.array([7.0, 30.0, 30.0]),
                     np.array([1, 5, 10]))
    assert list(got) == [5.0, 10.0, 30.0]  # the last: even the longest prefix disagrees, so the whole session


def test_windowed_champion_scores_prefixes_with_its_own_windows():
    data = simulate(users=4, sessions=4, test_sessions=3, actions_per_session=15, seed=10)
    config = FeatureConfig(window_size=20)
    report, features = calibrate(data.train, config)
    champion = Champion("m", "1", "run", fit_all(features), report.metrics(), {**report.params()}, {}, config)
    claims = data.truth.rename(columns={c.USER_ID: "claimed_user_id"})
    grid = tuple(range(1, 40))
    decisions = verify_events(champion, data.test, claims, action_grid=grid)
    assert (decisions["problem"] == "").all() and decisions["accepted"].mean() > 0.5
    for row in decisions.itertuples(index=False):
        scores = np.array([getattr(row, f"score_{n}_actions") for n in grid])
        assert np.isfinite(scores[: int(row.n_actions)]).all() and np.isnan(scores[int(row.n_actions):]).all()
        assert scores[int(row.n_actions) - 1] == pytest.approx(row.score)  # the prefix of n actions: the session


def test_verify_errors_are_one_line_and_exit_code_2(champion_store, tmp_path, capsys):
    missing = verify(champion_store, str(tmp_path / "nope.csv"), tmp_path / "out")
    err = capsys.readouterr().err.strip().splitlines()
    assert missing == 2 and len(err) == 1 and "nope.csv: claims file not found" in err[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("session,user\nx,y\n")
    assert verify(champion_store, str(bad), tmp_path / "out") == 2
    assert "missing column(s) ['claimed_user_id', 'session_id']" in capsys.readouterr().err
    claims = write_claims(tmp_path / "claims.csv", [("x", "y")])
    no_events = cli_main(["verify", str(tmp_path / "none.csv"), "--claims", claims, "--tracking-uri",
                          champion_store["uri"], "--model-name", NAME, "--quiet"])
    assert no_events == 2 and "none.csv: file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_verify_refuses_an_incomplete_champion(tmp_path, capsys):
    data = simulate(users=3, sessions=3, test_sessions=1, actions_per_session=10, seed=9)
    files = data.write(tmp_path / "sim")
    uri = tracking.default_tracking_uri(tmp_path)
    version = register(uri, tmp_path, data, metrics={"cv_macro_f1": 0.9})  # not calibrated: not promoted
    claims = write_claims(tmp_path / "claims.csv", [("x", "y")])
    command = ["verify", str(files["test"]), "--claims", claims, "--tracking-uri", uri, "--model-name", NAME, "--quiet"]
    capsys.readouterr()
    assert cli_main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model 'verify-test-model' with alias 'champion'" in err[0]
    MlflowClient(uri).set_registered_model_alias(NAME, "champion", version)  # forced onto it
    assert cli_main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lacks verification_threshold, unknown_threshold" in err[0]
    mlflow.set_tracking_uri(None)


def as_real_file(path, out):
    """The simulated events file ``path`` without the ``sim-`` session prefix: a file that looks real."""
    events = pd.read_csv(path, dtype=str)
    events[c.SESSION_ID] = events[c.SESSION_ID].str.removeprefix(SIMULATED_SESSION_PREFIX)
    events.to_csv(out, index=False)
    return out


def test_a_simulated_champion_refuses_a_real_file_unless_told_to_score_anyway(champion_store, tmp_path, capsys):
    real = as_real_file(champion_store["files"]["test"], tmp_path / "Test_Mouse.csv")
    score = ["score", str(real), "--out", str(tmp_path / "scored"), "--tracking-uri", champion_store["uri"],
             "--model-name", NAME, "--quiet"]
    assert cli_main(score) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {real}: verify-test-model version 1 may not score this file")
    assert "trained on simulated data (train.csv): 4 users, 16 sessions" in err[0]
    assert "the file holds real sessions" in err[0]
    assert "--allow-foreign-champion" in err[0] and "MOUSE_TRAIN_CSV and MOUSE_TEST_CSV" in err[0]
    assert not (tmp_path / "scored").exists()
    claims = write_claims(tmp_path / "claims.csv", [("x", "y")])
    verify_real = ["verify", str(real), "--claims", claims, "--out", str(tmp_path / "verified"), "--tracking-uri",
                   champion_store["uri"], "--model-name", NAME, "--quiet"]
    assert cli_main(verify_real) == 2 and "may not score this file" in capsys.readouterr().err

    assert cli_main([*score, "--allow-foreign-champion"]) == 0
    printed = capsys.readouterr()
    assert "warning: scored anyway (--allow-foreign-champion)" in printed.err
    assert "scored with verify-test-model version 1, trained on simulated data (train.csv)" in printed.out
    manifest = read_manifest(tmp_path / "scored")
    assert "the file holds real sessions" in manifest["foreign_champion"]
    assert manifest["training_data"]["data.simulated"] == "true"
    assert cli_main([*verify_real, "--allow-foreign-champion"]) == 0
    manifest = read_manifest(tmp_path / "verified")
    assert "the file holds real sessions" in manifest["foreign_champion"]
    assert manifest["training_data"]["data.simulated"] == "true"


def test_scoring_uses_the_champions_fused_length_aware_verdicts(champion_store, tmp_path):
    assert cli_main(["score", str(champion_store["files"]["test"]), "--out", str(tmp_path / "scored"),
                     "--tracking-uri", champion_store["uri"], "--model-name", NAME, "--quiet"]) == 0
    sessions = pd.read_csv(tmp_path / "scored" / "session_predictions.csv", dtype=str)
    truth = champion_store["data"].truth.set_index(c.SESSION_ID)[c.USER_ID]
    named = sessions[sessions["verdict"] != "unknown"]
    assert len(named) >= len(sessions) / 2
    assert np.mean(named["verdict"].to_numpy() == truth.loc[named[c.SESSION_ID]].to_numpy()) > 0.7


def test_a_reader_that_stops_early_gets_the_files_and_no_traceback(champion_store, tmp_path):
    """``mouse-pipeline score FILE | head``: stdout's reader is gone before the summary is printed."""
    import os
    import subprocess
    import sys

    from mouse_pipeline.cli import BROKEN_PIPE

    out = tmp_path / "out"
    command = [sys.executable, "-m", "mouse_pipeline.cli", "score", str(champion_store["files"]["test"]),
               "--out", str(out), "--tracking-uri", champion_store["uri"], "--model-name", NAME, "--quiet"]
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before the command writes anything
    # Buffered stdout, as in a terminal session: the short summary then fails only when flushed.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    try:
        done = subprocess.run(command, stdout=writer, stderr=subprocess.PIPE, text=True, timeout=300, env=env)
    finally:
        os.close(writer)
    assert done.returncode == BROKEN_PIPE, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert read_manifest(out)["files"]["Predicted_mouse.csv"]["rows"] == len(champion_store["data"].test)
