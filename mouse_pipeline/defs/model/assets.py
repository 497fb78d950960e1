"""Model assets: the scaled feature matrix, the trained user identifier (tracked in MLflow)
and its out-of-fold evaluation."""

import json
from dataclasses import asdict, dataclass

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.pipeline import Pipeline

from mouse_pipeline import tracking
from mouse_pipeline.champion import DataIdentity
from mouse_pipeline.defs.metadata import png_markdown, table_preview
from mouse_pipeline.defs.resources import DATA_POOL, FeatureEngineResource, MlflowResource, MouseDataResource
from mouse_pipeline.evaluation import (
    confusion_heatmap_png,
    evaluation_report,
    session_probabilities,
    session_scores,
)
from mouse_pipeline.outputs import file_sha256, write_atomic
from mouse_pipeline.modelling import (
    CrossValidation,
    FeatureMatrix,
    SessionPerUserKFold,
    TrainingSettings,
    build_feature_matrix,
    fit_final,
    select_model,
)

GROUP = "model"
_TRAINING = TrainingSettings()


class TrainingRunConfig(dg.Config):
    """Hyperparameters of the MLP grid searched in session-grouped cross-validation (defaults:
    :class:`~mouse_pipeline.modelling.TrainingSettings`)."""

    hidden_layer_sizes: list[list[int]] = Field(default_factory=lambda: [list(h) for h in _TRAINING.hidden_layer_sizes])
    alpha: list[float] = Field(default_factory=lambda: list(_TRAINING.alpha))
    learning_rate_init: float = _TRAINING.learning_rate_init
    max_iter: int = _TRAINING.max_iter
    early_stopping: bool = _TRAINING.early_stopping
    random_state: int = _TRAINING.random_state
    n_splits: int = _TRAINING.n_splits
    compare_estimators: list[str] = Field(default_factory=lambda: list(_TRAINING.compare))
    n_jobs: int = 2

    def settings(self) -> TrainingSettings:
        return TrainingSettings(
            hidden_layer_sizes=tuple(tuple(h) for h in self.hidden_layer_sizes),
            alpha=tuple(self.alpha),
            learning_rate_init=self.learning_rate_init,
            max_iter=self.max_iter,
            early_stopping=self.early_stopping,
            random_state=self.random_state,
            n_splits=self.n_splits,
            compare=tuple(self.compare_estimators),
        )


@dataclass
class TrainedModel:
    """The champion candidate of one training run, fitted on all rows, and its records."""

    pipeline: Pipeline
    cross_validation: CrossValidation
    candidates: pd.DataFrame
    train_scores: dict[str, float]
    run_id: str
    version: str | None
    identity: DataIdentity


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def feature_matrix(train_session_features: pd.DataFrame, test_session_features: pd.DataFrame) -> dg.Output:
    """Training and test features on one column order, scaled by a train-only fit."""
    matrix = build_feature_matrix(train_session_features, test_session_features)
    scaled = pd.DataFrame(matrix.train_scaled, columns=matrix.columns)
    return dg.Output(
        matrix,
        metadata={
            "features": len(matrix.columns),
            "train_rows": len(matrix.train),
            "test_rows": len(matrix.test),
            "users": len(np.unique(matrix.labels)),
            "columns": dg.MetadataValue.json(matrix.columns),
            "scaled_preview": table_preview(scaled.round(3)),
            "test_scaled_abs_max": float(np.abs(matrix.test_scaled).max()) if len(matrix.test) else 0.0,
        },
    )


def _latest_metadata(context: dg.AssetExecutionContext, key: str) -> dict:
    event = context.instance.get_latest_materialization_event(dg.AssetKey(key))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


@dg.asset(pool=DATA_POOL, group_name=GROUP, deps=["raw_train_events"])
def user_identifier(
    context: dg.AssetExecutionContext,
    config: TrainingRunConfig,
    feature_matrix: FeatureMatrix,
    mlflow_tracking: MlflowResource,
    mouse_data: MouseDataResource,
    feature_engine: FeatureEngineResource,
) -> dg.Output:
    """The user-identification model: scaler + MLP pipeline (or a compared estimator when it
    cross-validates better), chosen by session-level macro-F1, logged and registered in MLflow;
    it takes the champion alias only if not worse than the current champion."""
    settings = config.settings()
    m = feature_matrix
    results = select_model(m.train, m.labels, m.sessions, settings, n_jobs=config.n_jobs)
    best = results[0]
    pipeline = fit_final(best.candidate, m.train, m.labels, settings.random_state)
    train_proba = session_probabilities(pipeline.predict_proba(m.train), pipeline.classes_, m.sessions)
    truth = pd.Series(m.labels, index=m.sessions).groupby(level=0).first()
    train_scores = session_scores(truth, train_proba)
    candidates = pd.DataFrame(
        [{"candidate": r.candidate.name, "family": r.candidate.family,
          **{f"cv_{k}": v for k, v in r.scores.items()}} for r in results]
    )

    files = mouse_data.event_files()
    folds = SessionPerUserKFold(settings.n_splits, settings.random_state).session_folds(m.labels, m.sessions)
    identity = DataIdentity.of(m.labels, m.sessions, folds, files.simulated, files.train.name)
    ingest = _latest_metadata(context, "raw_train_events")
    mlflow_tracking.use_experiment()
    logged = tracking.log_training_run(
        run_name=f"train-{context.run_id[:8]}",
        tags={"dagster_run_id": context.run_id, **identity.tags()},
        params={
            **{f"settings.{k}": v for k, v in asdict(settings).items()},
            **{f"features.{k}": v for k, v in asdict(feature_engine.config()).items()},
            "champion_candidate": best.candidate.name,
            "champion_family": best.candidate.family,
            **{f"model.{k}": v for k, v in best.candidate.params.items()},
            "n_features": len(m.columns),
            "train_file": files.train.name,
            "train_file_sha256": file_sha256(files.train),
            "simulated_data": identity.simulated,
            "train_rows": len(m.train),
            "train_sessions": len(truth),
            "train_users": len(pipeline.classes_),
            **{f"ingest.{k}": ingest[k] for k in ("rows_read", "rows_accepted", "rows_rejected",
                                                  "exact_duplicates") if k in ingest},
        },
        metrics={
            **{f"cv_{k}": v for k, v in best.scores.items()},
            **{f"train_{k}": v for k, v in train_scores.items()},
            "overfit_gap_macro_f1": train_scores["macro_f1"] - best.scores["macro_f1"],
            **{f"cv_macro_f1.{r.candidate.name}": r.scores["macro_f1"] for r in results},
        },
        tables={"candidates.csv": candidates},
        texts={"features.json": json.dumps(m.columns, indent=1)},
        pipeline=pipeline,
        example=m.train.head(5),
        registered_name=mlflow_tracking.registered_model_name,
    )
    context.log.info(f"registered as version {logged.version} of {mlflow_tracking.registered_model_name}; the "
                     "champion asset decides on its promotion once it is calibrated")
    trained = TrainedModel(pipeline, best, candidates, train_scores, logged.run_id, logged.version, identity)
    return dg.Output(
        trained,
        metadata={
            "cv_macro_f1": best.scores["macro_f1"],
            "cv_accuracy": best.scores["accuracy"],
            "cv_top3_accuracy": best.scores["top3_accuracy"],
            "train_macro_f1": train_scores["macro_f1"],
            "candidate": best.candidate.name,
            "candidates": table_preview(candidates.round(4), rows=50, columns=None),
            "mlflow_run_id": logged.run_id,
            "mlflow_tracking_uri": tracking.redact_uri(mlflow_tracking.uri()),
            "model_version": logged.version or "",
            "training_data": identity.describe(),
        },
    )


@dg.asset(pool=DATA_POOL, group_name=GROUP, deps=["verification_calibration"])
def champion(context: dg.AssetExecutionContext, user_identifier: TrainedModel,
             mlflow_tracking: MlflowResource) -> dg.Output:
    """The champion gate, run last: once the new version's run holds everything scoring needs (the
    calibrated thresholds included), it takes the ``champion`` alias if it passes validation and either
    the current champion belongs to other data (handover) or it scores within tolerance of it on the
    same folds. The decision and its evidence go to this asset's metadata and to MLflow."""
    client = mlflow_tracking.client()
    gate = tracking.gate_champion(client, mlflow_tracking.registered_model_name, user_identifier.version,
                                  user_identifier.cross_validation.scores["macro_f1"], user_identifier.identity,
                                  mlflow_tracking.champion_tolerance)
    tracking.log_gate(client, user_identifier.run_id, gate)
    context.log.info(gate.message)
    serving = gate.version if gate.promoted else gate.previous_version
    return dg.Output(
        gate,
        metadata={
            "decision": "promoted" if gate.promoted else "not promoted",
            "message": gate.message,
            "handover": gate.handover,
            "challenger_version": gate.version,
            "serving_version": serving or "none",
            "cv_macro_f1": gate.score,
            "previous_cv_macro_f1": gate.previous_score if gate.previous_score is not None else "none",
            "evidence": table_preview(gate.evidence(), rows=10, columns=None),
            "training_data": user_identifier.identity.describe(),
        },
    )


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def model_evaluation(
    user_identifier: TrainedModel, mlflow_tracking: MlflowResource, mouse_data: MouseDataResource
) -> dg.Output:
    """Out-of-fold, session-level evaluation of the trained model: macro-F1, accuracy, top-3,
    F1 per user, confusion matrix, and the train-versus-CV over-fitting gap."""
    cv = user_identifier.cross_validation
    report = evaluation_report(cv.truth, cv.session_proba)
    png = confusion_heatmap_png(report.confusion)
    reports = mouse_data.output_dir("reports")
    write_atomic(reports / "confusion_matrix.png", lambda tmp: tmp.write_bytes(png))
    mouse_data.write_csv(report.per_user, reports / "per_user_report.csv")
    mouse_data.write_csv(report.confusion.reset_index(), reports / "confusion_matrix.csv")
    gap = user_identifier.train_scores["macro_f1"] - report.scores["macro_f1"]

    mlflow_tracking.use_experiment()
    with mlflow.start_run(run_id=user_identifier.run_id):
        mlflow.log_artifact(str(reports / "confusion_matrix.png"), "evaluation")
        tracking.log_frame(report.per_user, "evaluation/per_user_report.csv")
        tracking.log_frame(report.confusion.reset_index(), "evaluation/confusion_matrix.csv")

    return dg.Output(
        report,
        metadata={
            "cv_macro_f1": report.scores["macro_f1"],
            "cv_accuracy": report.scores["accuracy"],
            "cv_top3_accuracy": report.scores["top3_accuracy"],
            "train_macro_f1": user_identifier.train_scores["macro_f1"],
            "overfit_gap_macro_f1": gap,
            "worst_user_f1": float(report.per_user["f1-score"].iloc[:-1].min()),  # the last row: macro average
            "per_user": table_preview(report.per_user.round(3), rows=100, columns=None),
            "confusion_matrix": png_markdown(png, "confusion matrix"),
            "report_dir": dg.MetadataValue.path(str(reports)),
        },
    )
