"""MLflow tracking and registry: runs, logged models, and the champion gate.

Plain functions over an explicit tracking URI, so that tests can point them
at a temporary SQLite store and Dagster resources only pass settings in.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from mouse_pipeline.champion import Contender, DataIdentity, GateDecision, decide
from mouse_pipeline.features import FeatureConfig


CHAMPION = "champion"
#: Experiment tag the MLflow UI reads to choose its view; this value opens the runs (model training).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def default_tracking_uri(data_dir: str | Path) -> str:
    """A SQLite store inside the data folder."""
    return f"sqlite:///{(Path(data_dir).resolve() / 'mlflow.db').as_posix()}"


def use_experiment(tracking_uri: str, experiment: str, artifact_root: str | Path | None = None) -> str:
    """Point MLflow at ``tracking_uri`` and make sure ``experiment`` exists; return its id.

    A new experiment stores its artifacts under ``artifact_root`` when given
    (else MLflow's default next to the working directory).
    """
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = Path(artifact_root).resolve().as_uri() if artifact_root else None
        experiment_id = client.create_experiment(experiment, artifact_location=location)
    if found is None or found.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
        # The MLflow UI (3.x) opens an experiment without this tag in its GenAI view (traces), hiding runs.
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def log_frame(frame: pd.DataFrame, artifact_file: str) -> None:
    """Log a DataFrame as a CSV artifact of the active run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(artifact_file).parent) if "/" in artifact_file else None)


def log_sklearn_model(pipeline, example: pd.DataFrame, registered_name: str | None) -> tuple[str, str | None]:
    """Log a fitted pipeline with a signature and an input example; register it.

    Returns the model URI and the registered version (None when not registered).
    Serialised with cloudpickle: MLflow 3's default (skops) rejects the
    optimiser objects inside a fitted MLPClassifier.
    """
    signature = infer_signature(example, pipeline.predict_proba(example))
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        signature=signature,
        input_example=example,
        registered_model_name=registered_name,
    )
    version = None if info.registered_model_version is None else str(info.registered_model_version)
    return info.model_uri, version


@dataclass(frozen=True)
class LoggedModel:
    """Where :func:`log_training_run` put a trained model."""

    run_id: str
    model_uri: str
    version: str | None


def log_training_run(
    *, run_name: str, tags: dict[str, str], params: dict, metrics: dict[str, float],
    tables: dict[str, pd.DataFrame], texts: dict[str, str], pipeline, example: pd.DataFrame,
    registered_name: str | None,
) -> LoggedModel:
    """One MLflow run for one training: params, metrics, CSV tables and text artifacts, the model
    (with signature and input example), registered as a new version of ``registered_name``.

    The active experiment must be set (:func:`use_experiment`).
    """
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        for artifact_file, frame in tables.items():
            log_frame(frame, artifact_file)
        for artifact_file, text in texts.items():
            mlflow.log_text(text, artifact_file)
        model_uri, version = log_sklearn_model(pipeline, example, registered_name)
    return LoggedModel(run.info.run_id, model_uri, version)


def champion_version(client: MlflowClient, name: str, alias: str = CHAMPION):
    """The model version holding ``alias``, or None."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


#: Metrics of a model's run without which scoring cannot use it (the calibrated thresholds included).
REQUIRED_METRICS: tuple[str, ...] = ("cv_macro_f1", "verification_threshold", "unknown_threshold")


class IncompleteModel(LookupError):
    """A registered version lacks something scoring needs."""


def missing_for_scoring(metrics: dict[str, float]) -> tuple[str, ...]:
    """The :data:`REQUIRED_METRICS` a run lacks."""
    return tuple(m for m in REQUIRED_METRICS if m not in metrics)


def gate_champion(
    client: MlflowClient, name: str, version: str, score: float, identity: DataIdentity | None, tolerance: float,
    min_macro_f1: float | None = None, metric: str = "cv_macro_f1", alias: str = CHAMPION,
) -> GateDecision:
    """Run the champion gate (:func:`mouse_pipeline.champion.decide`) for ``version`` and record it.

    Call it last, once everything scoring needs has been logged to the version's run: a version whose
    run lacks any of :data:`REQUIRED_METRICS` is never promoted. The version is tagged with its
    training-data identity (``data.*``), the decision (``champion_gate``: promoted or rejected) and its
    reason; it takes ``alias`` when promoted. The champion's score is its run's ``metric``.
    """
    for key, value in (identity.tags() if identity else {}).items():
        client.set_model_version_tag(name, version, key, value)
    missing = missing_for_scoring(client.get_run(client.get_model_version(name, version).run_id).data.metrics)
    current = champion_version(client, name, alias)
    champion = None
    if current is not None:
        previous_score = client.get_run(current.run_id).data.metrics.get(metric, float("nan"))
        champion = Contender(str(current.version), previous_score, DataIdentity.from_tags(current.tags or {}))
    decision = decide(Contender(str(version), score, identity, missing), champion, tolerance, min_macro_f1, metric)
    if decision.promoted:
        client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "champion_gate", "promoted" if decision.promoted else "rejected")
    client.set_model_version_tag(name, version, "champion_gate.reason", decision.message[:4000])
    client.set_model_version_tag(name, version, metric, f"{score:.6f}")
    return decision


def log_gate(client: MlflowClient, run_id: str, decision: GateDecision) -> None:
    """The gate's decision on the challenger's run: tags and the evidence as ``champion_gate.json``."""
    client.set_tag(run_id, "champion_gate", "promoted" if decision.promoted else "rejected")
    client.set_tag(run_id, "champion_gate.reason", decision.message[:4000])
    client.set_tag(run_id, "champion_gate.handover", str(decision.handover).lower())
    client.log_text(run_id, json.dumps(decision.record(), indent=1, default=str), "champion_gate.json")


@dataclass(frozen=True)
class Champion:
    """The registered model holding the champion alias, with what scoring needs to use it.

    ``metrics`` and ``params`` are those of the version's MLflow run;
    ``feature_config`` the feature settings it was trained with (its
    ``features.*`` params), so that data is featurised exactly as in training.
    """

    name: str
    version: str
    run_id: str
    pipeline: object
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    feature_config: FeatureConfig

    @property
    def identity(self) -> DataIdentity | None:
        """What the champion was trained on (None for a version registered before identities were kept)."""
        return DataIdentity.from_tags(self.tags)

    @property
    def unknown_threshold(self) -> float | None:
        """The calibrated open-set threshold (None before calibration)."""
        return self.metrics.get("unknown_threshold")

    def describe(self) -> str:
        """One line naming the model version and its training data."""
        identity = self.identity
        data = identity.describe() if identity else "data of unknown identity"
        return f"{self.name} version {self.version}, trained on {data}"


def feature_config_of(params: dict[str, str]) -> FeatureConfig:
    """The feature settings recorded in a training run's ``features.*`` params (defaults where absent)."""
    defaults = FeatureConfig()
    return FeatureConfig(
        window_size=int(params.get("features.window_size", defaults.window_size)),
        window_unit=params.get("features.window_unit", defaults.window_unit),  # type: ignore[arg-type]
        pause_ms=float(params.get("features.pause_ms", defaults.pause_ms)),
    )


def load_champion(tracking_uri: str, name: str, alias: str = CHAMPION) -> Champion:
    """The model version holding ``alias`` (default ``champion``), its pipeline and its run's records.

    Raises LookupError with a clear message when the registry has no such model.
    """
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    version = champion_version(client, name, alias)
    if version is None:
        raise LookupError(
            f"no model '{name}' with alias '{alias}' in the MLflow registry at {tracking_uri}: "
            "train one first (materialise user_identifier)"
        )
    run = client.get_run(version.run_id)
    missing = missing_for_scoring(run.data.metrics)
    if missing:
        raise IncompleteModel(
            f"champion version {version.version} of '{name}' lacks {', '.join(missing)} in its run {version.run_id}: "
            "it cannot score; retrain (materialise user_identifier through champion) or move the alias to a "
            "complete version")
    pipeline = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    return Champion(
        name=name, version=str(version.version), run_id=version.run_id, pipeline=pipeline,
        metrics=dict(run.data.metrics), params=dict(run.data.params), tags=dict(version.tags or {}),
        feature_config=feature_config_of(run.data.params),
    )
