"""MLflow: the champion gate, and a registered model that reloads and predicts the same."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.dummy import DummyClassifier

from mouse_pipeline import tracking
from mouse_pipeline.champion import DataIdentity, may_score
from mouse_pipeline.cli import main as cli_main
from mouse_pipeline.features import FeatureConfig

NAME = "gate-test-model"


@pytest.fixture()
def store(tmp_path):
    uri = tracking.default_tracking_uri(tmp_path)
    tracking.use_experiment(uri, "gate-test", tmp_path / "artifacts")
    yield uri
    mlflow.set_tracking_uri(None)


def register(score: float, X: pd.DataFrame, y: np.ndarray, calibrated: bool = True) -> str:
    model = DummyClassifier(strategy="prior").fit(X, y)
    with mlflow.start_run():
        mlflow.log_metric("cv_macro_f1", score)
        _, version = tracking.log_sklearn_model(model, X.head(2), NAME)
        if calibrated:
            mlflow.log_metrics({"verification_threshold": 0.5, "unknown_threshold": 0.2, "unknown_false_rate": 0.05})
    return version


def identity(users=("u1", "u2"), simulated=False, shift=0) -> DataIdentity:
    sessions = [f"s{i + shift}" for i in range(4)]
    return DataIdentity.of([users[i % len(users)] for i in range(4)], sessions,
                           {s: i % 2 for i, s in enumerate(sessions)}, simulated, "train.csv")


def test_gate_keeps_a_better_champion_of_the_same_data_and_promotes_one_within_tolerance(store):
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    y = np.array(["u1", "u2", "u1", "u2"])
    client = MlflowClient(store)
    same = identity()
    first = tracking.gate_champion(client, NAME, register(0.80, X, y), 0.80, same, tolerance=0.02)
    assert first.promoted and first.previous_version is None
    within = tracking.gate_champion(client, NAME, register(0.79, X, y), 0.79, same, tolerance=0.02)
    assert within.promoted and within.previous_version == "1" and not within.handover
    worse = tracking.gate_champion(client, NAME, register(0.70, X, y), 0.70, same, tolerance=0.02)
    assert not worse.promoted
    assert "stays registered without the champion alias" in worse.message
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    tags = client.get_model_version(NAME, "3").tags
    assert tags["champion_gate"] == "rejected" and tags["data.sessions_sha256"] == same.sessions_sha256
    assert worse.evidence()["passed"].tolist() == [True, True, True, False]


def test_a_champion_of_other_data_never_stays_over_a_valid_model_of_the_current_data(store):
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    y = np.array(["u1", "u2", "u1", "u2"])
    client = MlflowClient(store)
    simulated = identity(users=("sim-a", "sim-b"), simulated=True)
    assert tracking.gate_champion(client, NAME, register(0.97, X, y), 0.97, simulated, tolerance=0.02).promoted
    real = identity()
    handover = tracking.gate_champion(client, NAME, register(0.60, X, y), 0.60, real, tolerance=0.02)
    assert handover.promoted and handover.handover
    assert "does not belong to the current data" in handover.message and "simulated" in handover.message
    other_sessions = identity(shift=10)  # same users, other sessions: scores are not comparable
    again = tracking.gate_champion(client, NAME, register(0.55, X, y), 0.55, other_sessions, tolerance=0.02)
    assert again.promoted and again.handover and "other sessions" in again.message
    guessing = tracking.gate_champion(client, NAME, register(0.30, X, y), 0.30, identity(shift=20), tolerance=0.02)
    assert not guessing.promoted and "failed validation" in guessing.message
    champion = tracking.load_champion(store, NAME)
    assert champion.version == again.version and champion.identity == other_sessions
    # Back to simulated data (the data settings missing from a process's environment): said so.
    back = tracking.gate_champion(client, NAME, register(0.97, X, y), 0.97, simulated, tolerance=0.02)
    assert back.promoted and back.handover and "trained on real data and the current data is simulated" in back.message
    assert "MOUSE_TRAIN_CSV" in back.message


def test_a_model_of_other_users_says_whose():
    from mouse_pipeline.champion import belongs_to

    fits, why = belongs_to(identity(users=("a", "b")), identity(users=("c", "d")))
    assert not fits and why == "the model knows other users (its 2 users are not the 2 users of the current data)"


def sessions_frame(*ids: str) -> pd.DataFrame:
    return pd.DataFrame({"session_id": list(ids), "timestamp": range(len(ids))})


def test_a_champion_scores_only_files_of_its_own_kind_of_data():
    simulated = identity(users=("sim-a", "sim-b"), simulated=True)
    real = identity()
    kaggle = sessions_frame("1", "2", "2", "120")
    sim = sessions_frame("sim-1", "sim-2", "sim-2")
    assert may_score(simulated, sim) == (True, "") and may_score(real, kaggle) == (True, "")
    fits, why = may_score(simulated, kaggle)
    assert not fits and simulated.describe() in why and "the file holds real sessions" in why
    assert "none of its 3 session ids starts with 'sim-'" in why
    fits, why = may_score(real, sim)
    assert not fits and real.describe() in why and "the file holds simulated sessions" in why
    mixed = sessions_frame("sim-1", "2", "3")
    assert "1 of its 3 session ids start with 'sim-'" in may_score(real, mixed)[1]
    assert "2 of its 3 session ids lack 'sim-'" in may_score(simulated, mixed)[1]
    assert may_score(None, kaggle) == (True, "")  # a version from before identities: not judged


def test_data_whose_sessions_are_all_simulated_is_simulated_wherever_its_file_came_from():
    sessions = ["sim-1", "sim-2", "sim-3", "sim-4"]
    in_band = DataIdentity.of(["u1", "u2", "u1", "u2"], sessions, {s: 0 for s in sessions}, False, "train.csv")
    assert in_band.simulated  # e.g. simulator output given as MOUSE_TRAIN_CSV
    assert not identity().simulated


def test_registered_model_reloads_and_predicts_the_same(store, tmp_path):
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": np.linspace(0, 1, 20), "b": np.linspace(1, 0, 20) ** 2})
    y = np.array(["u1", "u2"] * 10)
    model = LogisticRegression().fit(X, y)
    with mlflow.start_run():
        mlflow.log_metrics({"cv_macro_f1": 0.5, "verification_threshold": 0.5, "unknown_threshold": 0.2,
                            "unknown_false_rate": 0.05})
        _, version = tracking.log_sklearn_model(model, X.head(3), NAME)
    tracking.gate_champion(MlflowClient(store), NAME, version, 0.5, identity(), 0.0)
    champion = tracking.load_champion(store, NAME)
    assert champion.version == version and champion.metrics["cv_macro_f1"] == 0.5
    assert champion.feature_config == FeatureConfig()  # no features.* params: the defaults
    np.testing.assert_allclose(champion.pipeline.predict_proba(X), model.predict_proba(X))


def test_an_uncalibrated_version_is_never_promoted_nor_used_to_score(store):
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    y = np.array(["u1", "u2", "u1", "u2"])
    client = MlflowClient(store)
    decision = tracking.gate_champion(client, NAME, register(0.9, X, y, calibrated=False), 0.9, identity(), 0.02)
    assert not decision.promoted and "unknown_threshold" in decision.message
    client.set_registered_model_alias(NAME, "champion", decision.version)  # forced by hand, or a kill mid-way
    with pytest.raises(tracking.IncompleteModel, match="lacks verification_threshold, unknown_threshold"):
        tracking.load_champion(store, NAME)


def test_score_refuses_an_incomplete_champion_with_one_line_and_exit_code_2(store, small_files, capsys):
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    y = np.array(["u1", "u2", "u1", "u2"])
    client = MlflowClient(store)
    version = register(0.9, X, y, calibrated=False)
    client.set_registered_model_alias(NAME, "champion", version)
    capsys.readouterr()  # what registering printed
    code = cli_main(["score", str(small_files["test"]), "--tracking-uri", store, "--model-name", NAME, "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "lacks verification_threshold, unknown_threshold" in err[0]


def test_missing_champion_is_a_clear_error(store):
    with pytest.raises(LookupError, match="no model 'nothing-here' with alias 'champion'"):
        tracking.load_champion(store, "nothing-here")


def test_experiment_opens_on_its_training_runs_in_the_mlflow_ui(store, tmp_path):
    experiment_id = tracking.use_experiment(store, "kind-check", tmp_path / "artifacts")
    tags = MlflowClient(store).get_experiment(experiment_id).tags
    assert tags[tracking.EXPERIMENT_KIND_TAG] == tracking.MODEL_TRAINING == "custom_model_development"


def test_a_tampered_model_file_is_refused(store):
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    y = np.array(["u1", "u2", "u1", "u2"])
    client = MlflowClient(store)
    version = register(0.9, X, y)
    assert tracking.gate_champion(client, NAME, version, 0.9, identity(), 0.02).promoted
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/{version}"))
    model_file = folder / "model.skops"
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(tracking.StoreError, match="was changed, refusing to load it"):
        tracking.load_champion(store, NAME)


def test_models_are_stored_with_skops_and_hold_only_trusted_types(small_simulation):
    from mouse_pipeline.modelling import build_pipeline
    from mouse_pipeline.selection_settings import SelectionSettings

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 4)), columns=list("abcd"))
    y = np.array(["u1", "u2", "u3"] * 20)
    settings = SelectionSettings(mlp_hidden_layer_sizes=((5,),), mlp_alpha=(0.1,), mlp_max_iter=20, mlp_seeds=2,
                                 extra_trees_n_estimators=5)
    for candidate in settings.estimators():
        fitted = build_pipeline(candidate.family, candidate.params, 0, candidate.feature_selection).fit(X, y)
        assert tracking.untrusted_types(fitted) == [], candidate.name


def test_tracking_uris_lose_their_password_wherever_shown(monkeypatch, tmp_path):
    assert tracking.redact_uri("http://alice:s3cret@mlflow.bank:5000/x") == "http://***@mlflow.bank:5000/x"
    assert tracking.redact_uri("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
    from mouse_pipeline.defs.resources import build_resources
    from mouse_pipeline.settings import Settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cret@mlflow.bank:5000")
    monkeypatch.setenv("MOUSE_DATA_DIR", str(tmp_path))
    resource = build_resources(Settings.from_env())["mlflow_tracking"]
    assert isinstance(resource.tracking_uri, dg.EnvVar)  # Dagster resolves it at run time; the UI shows its name
    assert resource.tracking_uri.env_var_name == "MLFLOW_TRACKING_URI"
