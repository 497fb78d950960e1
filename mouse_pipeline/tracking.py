"""MLflow tracking and registry: runs, logged models, and the champion gate.

Plain functions over an explicit tracking URI, so that tests can point them
at a temporary SQLite store and Dagster resources only pass settings in.
"""

from __future__ import annotations

import fcntl
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlflow
import mlflow.sklearn
import pandas as pd
import skops.io as skops_io
import yaml
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from mouse_pipeline.champion import Contender, DataIdentity, GateDecision, decide
from mouse_pipeline.features import FeatureConfig
from mouse_pipeline.outputs import file_sha256


CHAMPION = "champion"
#: Experiment tag the MLflow UI reads to choose its view; this value opens the runs (model training).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def default_tracking_uri(data_dir: str | Path) -> str:
    """A SQLite store inside the data folder."""
    return f"sqlite:///{(Path(data_dir).resolve() / 'mlflow.db').as_posix()}"


class StoreError(LookupError):
    """The MLflow store cannot be used: missing when a model is expected, empty, or corrupt."""


def redact_uri(uri: str) -> str:
    """``uri`` without user-info: ``http://user:secret@host/x`` becomes ``http://***@host/x``."""
    parts = urlsplit(uri)
    if not parts.netloc or "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _sqlite_path(tracking_uri: str) -> Path | None:
    return Path(tracking_uri[len("sqlite:///"):]) if tracking_uri.startswith("sqlite:///") else None


@contextmanager
def open_store(tracking_uri: str, must_exist: bool = False) -> Iterator[MlflowClient]:
    """A client of the store at ``tracking_uri``, checked first, and created under a lock.

    A SQLite store that is empty (0 bytes: truncated), not a database, or
    missing when ``must_exist`` (a model is expected) raises :class:`StoreError`
    naming the file, instead of being silently re-created as an empty registry.
    Two processes creating the same new SQLite store wait for each other
    (``<store>.lock``), so neither sees half-made tables.
    """
    path = _sqlite_path(tracking_uri)
    if path is None:
        yield MlflowClient(tracking_uri)
        return
    if path.exists() and path.stat().st_size == 0:
        raise StoreError(f"{path}: the MLflow store is empty (0 bytes), so it was truncated; restore it from a backup, "
                         "or delete it to start a new registry (every registered model is then lost)")
    if not path.exists() and must_exist:
        raise StoreError(f"{path}: no MLflow store here, so no registered model; point MLFLOW_TRACKING_URI (or "
                         "--tracking-uri) at the store that holds the model, or train one first")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            client = MlflowClient(tracking_uri)
            client.search_experiments(max_results=1)  # creates or migrates the tables while holding the lock
        except (MlflowException, SQLAlchemyError) as exc:
            raise StoreError(f"{path}: not a usable MLflow store ({str(exc).splitlines()[0][:200]}); restore it "
                             "from a backup, or move it away to start a new registry") from exc
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    yield client


def use_experiment(tracking_uri: str, experiment: str, artifact_root: str | Path | None = None) -> str:
    """Point MLflow at ``tracking_uri`` and make sure ``experiment`` exists; return its id.

    A new experiment stores its artifacts under ``artifact_root`` when given
    (else MLflow's default next to the working directory). Two runs creating
    the store or the experiment at once both succeed (see :func:`open_store`).
    """
    mlflow.set_tracking_uri(tracking_uri)
    with open_store(tracking_uri) as client:
        found = client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = Path(artifact_root).resolve().as_uri() if artifact_root else None
        try:
            experiment_id = client.create_experiment(experiment, artifact_location=location)
        except MlflowException:  # created meanwhile by a concurrent run
            found = client.get_experiment_by_name(experiment)
            if found is None:
                raise
            experiment_id = found.experiment_id
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


#: The only types, beyond those skops trusts by itself, that a stored model may contain: loading never
#: runs code from anywhere else. A new estimator with other types is refused when it is logged.
TRUSTED_TYPES: tuple[str, ...] = (
    "mouse_pipeline.modelling.signed_log1p",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",  # a dict of the fitted networks of an MLP seed bag (VotingClassifier)
)
MODEL_SHA256_TAG = "model_sha256"


def untrusted_types(pipeline) -> list[str]:
    """Types in ``pipeline`` that skops would not load with :data:`TRUSTED_TYPES`."""
    found = skops_io.get_untrusted_types(data=skops_io.dumps(pipeline))
    return sorted(set(found) - set(TRUSTED_TYPES))


def log_sklearn_model(pipeline, example: pd.DataFrame, registered_name: str | None) -> tuple[str, str | None]:
    """Log a fitted pipeline with a signature and an input example, serialised with skops; register it,
    and tag the version with the sha256 of the stored model file (``model_sha256``).

    Returns the model URI and the registered version (None when not registered).
    Raises ValueError when the pipeline holds a type outside :data:`TRUSTED_TYPES`.
    """
    unknown = untrusted_types(pipeline)
    if unknown:
        raise ValueError(f"the model holds types that loading would have to trust: {unknown}; add them to "
                         "mouse_pipeline.tracking.TRUSTED_TYPES if they are safe")
    signature = infer_signature(example, pipeline.predict_proba(example))
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=list(TRUSTED_TYPES),
        signature=signature,
        input_example=example,
        registered_model_name=registered_name,
    )
    version = None if info.registered_model_version is None else str(info.registered_model_version)
    if version is not None:
        stored = _model_file(Path(mlflow.artifacts.download_artifacts(info.model_uri)))
        MlflowClient().set_model_version_tag(registered_name, version, MODEL_SHA256_TAG, file_sha256(stored))
    return info.model_uri, version


def _model_file(folder: Path) -> Path:
    """The serialised model inside an MLflow model folder (skops format only)."""
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["sklearn"]
    if flavor.get("serialization_format") != "skops":
        raise StoreError(f"{folder}: the model is stored as {flavor.get('serialization_format')}, which can run code "
                         "when loaded; only skops models are loaded: retrain to register a skops model")
    return folder / flavor["pickled_model"]


def load_verified_model(name: str, version) -> object:
    """Load a registered version's pipeline: the file must have the sha256 recorded at registration, and
    skops loads it trusting only :data:`TRUSTED_TYPES`."""
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}"))
    path = _model_file(folder)
    expected = (version.tags or {}).get(MODEL_SHA256_TAG)
    actual = file_sha256(path)
    if expected != actual:
        raise StoreError(f"{path}: sha256 {actual[:12]}… is not the {str(expected)[:12]}… recorded when version "
                         f"{version.version} was registered; the model file was changed, refusing to load it")
    try:
        return skops_io.load(path, trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # skops raises UntrustedTypesFoundException, or fails on a damaged file
        raise StoreError(f"{path}: cannot be loaded safely ({str(exc).splitlines()[0][:200]})") from exc


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
REQUIRED_METRICS: tuple[str, ...] = ("cv_macro_f1", "verification_threshold", "unknown_threshold",
                                     "unknown_false_rate")


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

    Raises a LookupError with a one-line message when the registry has no such model
    (:class:`StoreError` when the store is missing, empty or corrupt, or the model file was changed;
    :class:`IncompleteModel` when the version lacks what scoring needs).
    """
    mlflow.set_tracking_uri(tracking_uri)
    with open_store(tracking_uri, must_exist=True) as client:
        version = champion_version(client, name, alias)
    if version is None:
        raise LookupError(
            f"no model '{name}' with alias '{alias}' in the MLflow registry at {redact_uri(tracking_uri)}: "
            "train one first (materialise user_identifier)"
        )
    run = client.get_run(version.run_id)
    missing = missing_for_scoring(run.data.metrics)
    if missing:
        raise IncompleteModel(
            f"champion version {version.version} of '{name}' lacks {', '.join(missing)} in its run {version.run_id}: "
            "it cannot score; retrain (materialise user_identifier through champion) or move the alias to a "
            "complete version")
    pipeline = load_verified_model(name, version)
    return Champion(
        name=name, version=str(version.version), run_id=version.run_id, pipeline=pipeline,
        metrics=dict(run.data.metrics), params=dict(run.data.params), tags=dict(version.tags or {}),
        feature_config=feature_config_of(run.data.params),
    )
