"""Verification assets: calibrated claim decisions, open-set thresholds, EER and AUC."""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd

from mouse_pipeline import tracking
from mouse_pipeline.defs.metadata import png_markdown, table_preview
from mouse_pipeline.defs.model.assets import TrainedModel
from mouse_pipeline.defs.resources import DATA_POOL, FeatureEngineResource, MlflowResource, MouseDataResource
from mouse_pipeline.modelling import FeatureMatrix
from mouse_pipeline.outputs import write_atomic
from mouse_pipeline.prediction import session_probabilities_of
from mouse_pipeline.scoring import features_for
from mouse_pipeline.verification import (
    ErrorRates,
    det_curve_png,
    error_rates,
    genuine_and_impostor_scores,
    leave_one_user_out_scores,
    verify_claims,
)

GROUP = "verification"


class VerificationRunConfig(dg.Config):
    """``allow_foreign_champion`` decides claims with a champion trained on other data (refused by default)."""

    allow_foreign_champion: bool = False


class CalibrationRunConfig(dg.Config):
    """Target false-accept rates and the cost of the leave-one-user-out evaluation."""

    target_far: float = 0.01
    unknown_target_far: float = 0.05
    open_set_folds: int = 2
    n_jobs: int = 2


@dataclass
class Calibration:
    """Verification and open-set error rates of one trained model, with their thresholds."""

    verification: ErrorRates
    open_set: ErrorRates
    run_id: str


def _rates_metadata(prefix: str, rates: ErrorRates) -> dict:
    return {
        f"{prefix}_eer": rates.eer, f"{prefix}_auc": rates.auc, f"{prefix}_threshold": rates.threshold,
        f"{prefix}_far": rates.far, f"{prefix}_frr": rates.frr, f"{prefix}_target_far": rates.target_far,
    }


@dg.asset(pool=DATA_POOL, group_name=GROUP)
def verification_calibration(
    context: dg.AssetExecutionContext, config: CalibrationRunConfig, user_identifier: TrainedModel,
    feature_matrix: FeatureMatrix, mlflow_tracking: MlflowResource, mouse_data: MouseDataResource,
) -> dg.Output:
    """Thresholds for verification (every out-of-fold session against its true user and every
    other user) and for unknown users (leave-one-user-out), with EER, ROC AUC and the
    false-accept / false-reject rates there; logged to the model's MLflow run."""
    cv = user_identifier.cross_validation
    genuine, impostor = genuine_and_impostor_scores(cv.session_proba, cv.truth)
    verification = error_rates(genuine, impostor, config.target_far)
    m = feature_matrix
    known, unknown = leave_one_user_out_scores(
        lambda: user_identifier.cross_validation.candidate.build(0), m.train, m.labels, m.sessions,
        n_splits=config.open_set_folds, n_jobs=config.n_jobs,
    )
    open_set = error_rates(known, unknown, config.unknown_target_far)
    png = det_curve_png({"verification": verification, "unknown user": open_set})
    reports = mouse_data.output_dir("reports")
    write_atomic(reports / "verification_det.png", lambda tmp: tmp.write_bytes(png))

    metrics = {**_rates_metadata("verification", verification), **_rates_metadata("unknown", open_set)}
    mlflow_tracking.use_experiment()
    with mlflow.start_run(run_id=user_identifier.run_id):
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(reports / "verification_det.png"), "verification")
        tracking.log_frame(verification.curve, "verification/verification_curve.csv")
        tracking.log_frame(open_set.curve, "verification/unknown_user_curve.csv")
    context.log.info(f"verification EER {verification.eer:.2%}, unknown-user EER {open_set.eer:.2%}")
    return dg.Output(
        Calibration(verification, open_set, user_identifier.run_id),
        metadata={**metrics, "genuine_scores": len(genuine), "impostor_scores": len(impostor),
                  "known_sessions_scored": len(known), "unknown_sessions_scored": len(unknown),
                  "error_tradeoff": png_markdown(png, "error trade-off")},
    )


@dg.asset(pool=DATA_POOL, group_name=GROUP, deps=["champion"])
def verification(
    config: VerificationRunConfig, user_identifier: TrainedModel, test_session_features: pd.DataFrame,
    raw_test_events: pd.DataFrame, mouse_data: MouseDataResource, mlflow_tracking: MlflowResource,
    feature_engine: FeatureEngineResource,
) -> dg.MaterializeResult:
    """Decisions on the claims in MOUSE_CLAIMS_CSV (session_id, claimed_user_id) by the champion
    at its calibrated threshold, written to ``predictions/verification.csv``; claims naming an
    unknown session or user are kept, rejected, and reported."""
    out = mouse_data.output_dir("predictions") / "verification.csv"
    if not mouse_data.claims_csv:
        out.unlink(missing_ok=True)  # decisions of earlier claims would read as current ones
        return dg.MaterializeResult(metadata={"claims": 0, "note": "no MOUSE_CLAIMS_CSV configured: nothing to "
                                                                   "verify, no verification.csv written"})
    claims = read_claims(Path(mouse_data.claims_csv))
    champion = mlflow_tracking.champion(user_identifier.identity, config.allow_foreign_champion)
    threshold = champion.metrics.get("verification_threshold")
    if threshold is None:
        raise dg.Failure(f"champion version {champion.version} has no calibrated verification threshold: "
                         "materialise verification_calibration for it")
    features = features_for(champion, raw_test_events, test_session_features, feature_engine.config())
    decisions = verify_claims(session_probabilities_of(champion.pipeline, features), claims, threshold)
    mouse_data.write_csv(decisions, out)
    problems = decisions[decisions["problem"] != ""]
    return dg.MaterializeResult(
        metadata={
            "claims": len(decisions),
            "accepted": int(decisions["accepted"].sum()),
            "rejected": int((~decisions["accepted"]).sum()),
            "claims_with_problems": len(problems),
            "problems": table_preview(problems, rows=50, columns=None) if len(problems) else "none",
            "threshold": float(threshold),
            "model_version": champion.version,
            "model": champion.describe(),
            "path": dg.MetadataValue.path(str(out)),
            "preview": table_preview(decisions),
        }
    )


def read_claims(path: Path) -> pd.DataFrame:
    """Read a claims CSV (session_id, claimed_user_id as text); clear errors naming the file."""
    if not path.is_file():
        raise dg.Failure(f"{path}: claims file not found")
    claims = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"session_id", "claimed_user_id"} - set(claims.columns)
    if missing:
        raise dg.Failure(f"{path}: missing column(s) {sorted(missing)}; a claims file needs "
                         "session_id and claimed_user_id")
    return claims
