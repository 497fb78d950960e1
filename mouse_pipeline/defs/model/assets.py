"""Model assets: model selection over feature settings x estimators (the user identifier, tracked in
MLflow), its out-of-fold evaluation, the scaled feature matrix of the chosen setting, the model card and
the champion gate."""

import json
from dataclasses import asdict, dataclass

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mouse_pipeline import contract as c
from mouse_pipeline import tracking
from mouse_pipeline.champion import DataIdentity
from mouse_pipeline.defs.features.assets import EnrolledEvents
from mouse_pipeline.defs.metadata import png_markdown, table_preview
from mouse_pipeline.defs.processes import worker_processes_released
from mouse_pipeline.defs.resources import DATA_POOL, MlflowResource, MouseDataResource
from mouse_pipeline.evaluation import confusion_heatmap_png, evaluation_report, session_scores, session_truth
from mouse_pipeline.features import FeatureConfig
from mouse_pipeline.model_card import card_metrics, permutation_importance, render_model_card
from mouse_pipeline.modelling import CrossValidation, build_feature_matrix
from mouse_pipeline.outputs import file_sha256, write_atomic
from mouse_pipeline.prediction import session_probabilities_of
from mouse_pipeline.selection import FeatureSet, SelectionResult, recorded_folds, select, setting_name

GROUP = "model"
#: Candidate rows shown in the Dagster metadata (all of them go to MLflow).
_SHOWN_CANDIDATES = 30


@dataclass
class TrainedModel:
    """The champion of one model selection, fitted on every training row, and its records."""

    pipeline: Pipeline
    selection: SelectionResult
    feature_set: FeatureSet
    train_scores: dict[str, float]
    run_id: str
    version: str | None
    identity: DataIdentity

    @property
    def cross_validation(self) -> CrossValidation:
        return self.selection.champion.cv

    @property
    def feature_config(self) -> FeatureConfig:
        return self.selection.feature_config

    @property
    def columns(self) -> list[str]:
        return list(self.selection.champion.choice.columns)


def _latest_metadata(context: dg.AssetExecutionContext, key: str) -> dict:
    event = context.instance.get_latest_materialization_event(dg.AssetKey(key))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def _candidates_shown(table: pd.DataFrame) -> pd.DataFrame:
    columns = ["rank", "feature_setting", "estimator", "cv_macro_f1", "cv_accuracy", "cv_log_loss", "folds_scored",
               "round_reached", "rows", "columns", "seconds", "note"]
    return table[columns].head(_SHOWN_CANDIDATES).round(4)


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def user_identifier(
    context: dg.AssetExecutionContext,
    enrolled_training_events: EnrolledEvents,
    train_session_features: list[FeatureSet],
    mlflow_tracking: MlflowResource,
    mouse_data: MouseDataResource,
) -> dg.Output:
    """The user-identification model. Model selection races every (feature setting x estimator)
    candidate (MLPs, ExtraTrees, HistGradientBoosting; see ``train_session_features``) in one
    session-grouped CV at session level, by successive halving over folds; the champion is fitted on
    every row of its setting, logged with the candidate table, the best MLP and the hand-or-machine
    ablation, and registered in MLflow. The ``champion`` asset decides on its promotion."""
    enrolment, settings = enrolled_training_events.enrolment, enrolled_training_events.settings
    with worker_processes_released():  # model selection fits on a process pool
        result = select(train_session_features, settings, enrolment.recorded_session)
    chosen = next(fs for fs in train_session_features if fs.config == result.feature_config)
    pipeline = result.fit(chosen.table)
    columns = list(result.champion.choice.columns)
    train_proba = session_probabilities_of(pipeline, chosen.table)
    train_scores = session_scores(session_truth(chosen.table).loc[train_proba.index], train_proba)
    cv = result.champion.cv
    metrics = card_metrics(result, enrolment)
    for line in enrolment.messages():
        context.log.info(line)

    files = mouse_data.event_files()
    # The data's identity names recorded sessions (not the blocks of one-session users), and the folds
    # they were scored on, so that a champion is compared only with a model scored the same way.
    recorded = enrolment.recorded_session
    rows = chosen.table
    identity = DataIdentity.of(rows[c.USER_ID].astype(str), recorded.loc[rows[c.SESSION_ID].astype(str)],
                               recorded_folds(result.folds, recorded, result.chunk_events), files.simulated,
                               files.train.name)
    ingest = _latest_metadata(context, "raw_train_events")
    candidate = result.champion.choice.candidate
    mlflow_tracking.use_experiment()
    logged = tracking.log_training_run(
        run_name=f"train-{context.run_id[:8]}",
        tags={"dagster_run_id": context.run_id, **identity.tags()},
        params={
            **{f"selection.{k}": v for k, v in settings.as_params().items()},
            **{f"features.{k}": v for k, v in asdict(result.feature_config).items()},
            "features.families": settings.families,
            "champion_candidate": candidate.name,
            "champion_family": candidate.family,
            "champion_feature_setting": setting_name(result.feature_config),
            "best_mlp": result.best_mlp.choice.name if result.best_mlp else "none",
            **{f"model.{k}": v for k, v in candidate.params.items()},
            "model.feature_selection": candidate.feature_selection,
            "n_features": len(columns),
            "train_file": files.train.name,
            "train_file_sha256": file_sha256(files.train),
            "simulated_data": identity.simulated,
            "training_batches": ", ".join(enrolled_training_events.batches) or "none",
            "train_rows": len(chosen.table),
            **{f"ingest.{k}": ingest[k] for k in ("rows_read", "rows_accepted", "rows_rejected",
                                                  "exact_duplicates") if k in ingest},
        },
        metrics={
            **metrics,
            **{f"train_{k}": v for k, v in train_scores.items()},
            "overfit_gap_macro_f1": train_scores["macro_f1"] - cv.scores["macro_f1"],
        },
        tables={"candidates.csv": result.table, "enrolment/users.csv": enrolment.users,
                "enrolment/left_out.csv": enrolment.left_out},
        texts={"features.json": json.dumps(columns, indent=1)},
        pipeline=pipeline,
        example=chosen.table[columns].head(5),
        registered_name=mlflow_tracking.registered_model_name,
    )
    context.log.info(f"champion of the selection: {result.champion.choice.name}, cv macro-F1 "
                     f"{cv.scores['macro_f1']:.3f}; registered as version {logged.version} of "
                     f"{mlflow_tracking.registered_model_name} (the champion asset decides on its promotion)")
    trained = TrainedModel(pipeline, result, chosen, train_scores, logged.run_id, logged.version, identity)
    best_mlp = result.best_mlp
    return dg.Output(
        trained,
        metadata={
            "cv_macro_f1": cv.scores["macro_f1"],
            "cv_macro_f1_ci95": f"{metrics['cv_macro_f1_ci_low']:.3f} - {metrics['cv_macro_f1_ci_high']:.3f}",
            "cv_accuracy": cv.scores["accuracy"],
            "cv_top3_accuracy": cv.scores["top3_accuracy"],
            "train_macro_f1": train_scores["macro_f1"],
            "champion": result.champion.choice.name,
            "feature_setting": setting_name(result.feature_config),
            "best_mlp": best_mlp.choice.name if best_mlp else "none",
            "best_mlp_cv_macro_f1": best_mlp.cv.scores["macro_f1"] if best_mlp else float("nan"),
            **{f"cv_macro_f1_{kind}_only": scored.cv.scores["macro_f1"] for kind, scored in result.ablation.items()},
            "candidates_scored": len(result.table),
            "selection_seconds": round(result.seconds, 1),
            "users_validated_by_blocks": enrolment.users_validated_by_blocks,
            "candidates": table_preview(_candidates_shown(result.table), rows=_SHOWN_CANDIDATES, columns=None),
            "mlflow_run_id": logged.run_id,
            "mlflow_tracking_uri": tracking.redact_uri(mlflow_tracking.uri()),
            "model_version": logged.version or "",
            "training_data": identity.describe(),
        },
    )


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def feature_matrix(user_identifier: TrainedModel, test_session_features: pd.DataFrame) -> dg.Output:
    """Training and test rows of the chosen feature setting on one column order, scaled by a train-only
    fit (signed log, then standard scaling: what the model's own pipeline does first)."""
    matrix = build_feature_matrix(user_identifier.feature_set.table, test_session_features)
    scaled = pd.DataFrame(matrix.train_scaled, columns=matrix.columns)
    return dg.Output(
        matrix,
        metadata={
            "feature_setting": setting_name(user_identifier.feature_config),
            "features": len(matrix.columns),
            "model_columns": len(user_identifier.columns),
            "train_rows": len(matrix.train),
            "test_rows": len(matrix.test),
            "users": len(np.unique(matrix.labels)),
            "columns": dg.MetadataValue.json(matrix.columns),
            "scaled_preview": table_preview(scaled.round(3)),
            "test_scaled_abs_max": float(np.abs(matrix.test_scaled).max()) if len(matrix.test) else 0.0,
        },
    )


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def model_card(context: dg.AssetExecutionContext, user_identifier: TrainedModel,
               enrolled_training_events: EnrolledEvents, verification_calibration,
               mlflow_tracking: MlflowResource, mouse_data: MouseDataResource) -> dg.Output:
    """The model card (model_card.md in MLflow and here): the data and how users were validated, the
    chosen settings and why, scores with 95 % intervals, the hand-or-machine ablation, the 20 most
    important features by session-level permutation importance, verification error and its spread over
    users, and what the numbers do and do not promise."""
    importance = permutation_importance(user_identifier.selection, user_identifier.feature_set)
    report = verification_calibration.report
    trained_on = (f"Model version {user_identifier.version} of {mlflow_tracking.registered_model_name} (MLflow "
                  f"run `{user_identifier.run_id}`), trained on {user_identifier.identity.describe()}.")
    card = render_model_card(user_identifier.selection, enrolled_training_events.enrolment, importance,
                             verification=report.metrics(), per_user=report.per_user, trained_on=trained_on)
    out = mouse_data.report_dir(user_identifier.version) / "model_card.md"
    write_atomic(out, lambda tmp: tmp.write_text(card.markdown, encoding="utf-8"))
    mlflow_tracking.use_experiment()
    with mlflow.start_run(run_id=user_identifier.run_id):
        mlflow.log_text(card.markdown, "model_card.md")
        tracking.log_frame(importance, "model_card/permutation_importance.csv")
    context.log.info(f"model card written to {out} and to MLflow run {user_identifier.run_id}")
    return dg.Output(card, metadata={
        "model_card": dg.MetadataValue.md(card.markdown),
        "path": dg.MetadataValue.path(str(out)),
        "top_feature": str(importance["feature"].iloc[0]),
        "mlflow_run_id": user_identifier.run_id,
    })


@dg.asset(pool=DATA_POOL, group_name=GROUP, deps=["model_card", "model_evaluation"])
def champion(context: dg.AssetExecutionContext, user_identifier: TrainedModel,
             mlflow_tracking: MlflowResource, mouse_data: MouseDataResource) -> dg.Output:
    """The champion gate, run last: once the new version's run holds everything scoring needs (the
    calibrated thresholds included), it takes the ``champion`` alias if it passes validation and either
    the current champion belongs to other data (handover) or it scores within tolerance of it on the
    same folds. The decision and its evidence go to this asset's metadata and to MLflow, and
    ``reports/champion`` points at the reports of the version that serves."""
    client = mlflow_tracking.client()
    gate = tracking.gate_champion(client, mlflow_tracking.registered_model_name, user_identifier.version,
                                  user_identifier.cross_validation.scores["macro_f1"], user_identifier.identity,
                                  mlflow_tracking.champion_tolerance)
    tracking.log_gate(client, user_identifier.run_id, gate)
    context.log.info(gate.message)
    serving = gate.version if gate.promoted else gate.previous_version
    champion_reports = mouse_data.point_champion_reports(serving) if serving else None
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
            "champion_reports": dg.MetadataValue.path(str(champion_reports) if champion_reports else "none"),
            "challenger_reports": dg.MetadataValue.path(str(mouse_data.report_dir(user_identifier.version))),
        },
    )


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def model_evaluation(
    user_identifier: TrainedModel, mlflow_tracking: MlflowResource, mouse_data: MouseDataResource
) -> dg.Output:
    """Out-of-fold evaluation of the trained model per held-out session (or per chunk of it, when the
    sessions to be scored are much shorter than the training sessions): macro-F1, accuracy, top-3, F1
    per user, confusion matrix, and the train-versus-CV over-fitting gap."""
    cv = user_identifier.cross_validation
    report = evaluation_report(cv.truth, cv.session_proba)
    png = confusion_heatmap_png(report.confusion)
    reports = mouse_data.report_dir(user_identifier.version)
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
