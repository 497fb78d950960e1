"""Verification assets: calibrated claim decisions, open-set thresholds, EER and AUC."""

from dataclasses import dataclass
from functools import partial
from typing import Literal

import dagster as dg
import mlflow
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline import tracking
from mouse_pipeline.defs.metadata import png_markdown, table_preview
from mouse_pipeline.calibration import VerificationReport, calibrate_verification
from mouse_pipeline.defs.processes import worker_processes_released
from mouse_pipeline.claims import read_claims, verify_events
from mouse_pipeline.defs.features.assets import EnrolledEvents, table_config
from mouse_pipeline.defs.model.assets import TrainedModel
from mouse_pipeline.defs.resources import DATA_POOL, MlflowResource, MouseDataResource, champion_fits_file
from mouse_pipeline.outputs import write_atomic
from mouse_pipeline.scoring import champion_rule
from mouse_pipeline.verification import FUSION_PARAM as VERIFICATION_FUSION_PARAM
from mouse_pipeline.verification import USER_OFFSETS_ARTIFACT

GROUP = "verification"


class VerificationRunConfig(dg.Config):
    """``allow_foreign_champion`` decides claims with a champion trained on other data (refused by default)."""

    allow_foreign_champion: bool = False


class CalibrationRunConfig(dg.Config):
    """Targets and cost of the verification calibration (see
    :func:`mouse_pipeline.calibration.calibrate_verification`)."""

    target_far: float = 0.01
    unknown_target: float = 0.05
    unknown_mode: Literal["global", "per_user"] = "global"
    unknown_groups: int = 5
    open_set_folds: int = 3
    n_resamples: int = 1000
    n_jobs: int = 2


@dataclass
class Calibration:
    """The verification calibration of one trained model, logged to its MLflow run."""

    report: VerificationReport
    run_id: str


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def verification_calibration(
    context: dg.AssetExecutionContext, config: CalibrationRunConfig, user_identifier: TrainedModel,
    enrolled_training_events: EnrolledEvents, mlflow_tracking: MlflowResource, mouse_data: MouseDataResource,
) -> dg.Output:
    """Verification a bank can act on, out of fold with the champion's estimator and feature setting:
    the chosen fusion of window scores, the decision curve (EER and FRR at FAR 1 % after the first N
    actions), 95 % intervals over users, each user's EER, and the ``unknown`` verdict calibrated to a
    target share of known users' sessions, with what it catches of users left out of training. The
    thresholds scoring applies are logged to the model's MLflow run."""
    trained = user_identifier
    settings = trained.selection.settings
    choice = trained.selection.champion.choice
    folds = trained.selection.folds
    events = enrolled_training_events.enrolment.events
    unseen = set(events[c.SESSION_ID].unique()) - set(folds.index)
    if unseen:
        raise dg.Failure(f"enrolled_training_events holds {len(unseen)} session(s) that user_identifier was not "
                         "trained on (it was materialised again since): materialise user_identifier again first")
    client = mlflow_tracking.client()
    if VERIFICATION_FUSION_PARAM in client.get_run(trained.run_id).data.params:
        raise dg.Failure(f"model version {trained.version} (MLflow run {trained.run_id}) is already calibrated, and "
                         "a registered model's thresholds are not changed after the champion gate: materialise "
                         "user_identifier to train and calibrate a new version")
    with worker_processes_released():  # the fold models are fitted on a process pool
        report = calibrate_verification(
            events, trained.feature_config, trained.columns,
            partial(choice.build, settings.random_state), folds, target_far=config.target_far,
            unknown_target=config.unknown_target, unknown_mode=config.unknown_mode,
            unknown_groups=config.unknown_groups, open_set_folds=config.open_set_folds,
            n_resamples=config.n_resamples, seed=settings.random_state, n_jobs=config.n_jobs,
            features=trained.feature_set.table,
        )
    reports = mouse_data.report_dir(trained.version)
    write_atomic(reports / "verification_det.png", lambda tmp: tmp.write_bytes(report.det_png))
    write_atomic(reports / "decision_curve.png", lambda tmp: tmp.write_bytes(report.curve_png))
    curve = report.curve_table()
    mouse_data.write_csv(curve, reports / "decision_curve.csv")
    metrics = report.metrics()
    mlflow_tracking.use_experiment()
    with mlflow.start_run(run_id=trained.run_id):
        mlflow.log_metrics(metrics)
        mlflow.log_params(report.params())
        mlflow.log_artifact(str(reports / "verification_det.png"), "verification")
        mlflow.log_artifact(str(reports / "decision_curve.png"), "verification")
        tracking.log_frame(curve, "verification/decision_curve.csv")
        tracking.log_frame(report.fusions.reset_index(), "verification/fusions.csv")
        tracking.log_frame(report.per_user, "verification/per_user_eer.csv")
        tracking.log_frame(report.unknown.rates.reset_index(), "verification/unknown_modes.csv")
        mlflow.log_text(report.rule.offsets_json(), USER_OFFSETS_ARTIFACT)
    context.log.info(f"verification EER {report.rates.eer:.2%} (AUC {report.rates.auc:.4f}); unknown verdict: "
                     f"{report.unknown.false_rate:.1%} of known users' sessions, "
                     f"{report.unknown.detection_rate:.1%} of unknown users' sessions")
    return dg.Output(
        Calibration(report, trained.run_id),
        metadata={
            "verification_eer": report.rates.eer,
            "verification_eer_ci95": f"{metrics['verification_eer_ci95_low']:.4f} - "
                                     f"{metrics['verification_eer_ci95_high']:.4f}",
            "verification_auc": report.rates.auc,
            "verification_frr_at_far1": report.rates.frr,
            "unknown_false_rate": report.unknown.false_rate,
            "unknown_detection_rate": report.unknown.detection_rate,
            "fusion": report.fusion,
            "unknown_mode": report.rule.unknown_mode,
            "verification_eer_gini": report.gini,
            "decision_curve": table_preview(curve.round(4), rows=20, columns=None),
            "decision_curve_plot": png_markdown(report.curve_png, "decision curve"),
            "error_tradeoff": png_markdown(report.det_png, "error trade-off"),
            "worst_users": table_preview(report.per_user.head(10).round(4), rows=10, columns=None),
            "seconds": dg.MetadataValue.json({k: round(v, 1) for k, v in report.seconds.items()}),
        },
    )


@dg.asset(pool=DATA_POOL, group_name=GROUP, deps=["champion"])
def verification(
    config: VerificationRunConfig, user_identifier: TrainedModel, test_session_features: pd.DataFrame,
    raw_test_events: pd.DataFrame, mouse_data: MouseDataResource, mlflow_tracking: MlflowResource,
) -> dg.MaterializeResult:
    """Decisions on the claims in MOUSE_CLAIMS_CSV (session_id, claimed_user_id) by the champion with its
    calibrated rule, with the score after each of the first N actions and when the decision settled,
    written to ``predictions/verification.csv``; claims naming an unknown session or user are kept,
    rejected, and reported."""
    out = mouse_data.output_dir("predictions") / "verification.csv"
    if not mouse_data.claims_csv:
        out.unlink(missing_ok=True)  # decisions of earlier claims would read as current ones
        return dg.MaterializeResult(metadata={"claims": 0, "note": "no MOUSE_CLAIMS_CSV configured: nothing to "
                                                                   "verify, no verification.csv written"})
    try:
        claims = read_claims(mouse_data.claims_csv)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    champion = mlflow_tracking.champion(user_identifier.identity, config.allow_foreign_champion)
    foreign = champion_fits_file(champion, raw_test_events, mouse_data, config.allow_foreign_champion)
    rule = champion_rule(champion)
    decisions = verify_events(champion, raw_test_events, claims, features=test_session_features,
                              features_config=table_config(test_session_features), rule=rule)
    mouse_data.write_csv(decisions, out)
    problems = decisions[decisions["problem"] != ""]
    return dg.MaterializeResult(
        metadata={
            "claims": len(decisions),
            "accepted": int(decisions["accepted"].sum()),
            "rejected": int((~decisions["accepted"].astype(bool)).sum()),
            "claims_with_problems": len(problems),
            "problems": table_preview(problems, rows=50, columns=None) if len(problems) else "none",
            "fusion": rule.fusion,
            "threshold": float(rule.verification_threshold),
            "model_version": champion.version,
            "model": champion.describe(),
            "foreign_champion": foreign or "no",
            "path": dg.MetadataValue.path(str(out)),
            "preview": table_preview(decisions),
        }
    )
