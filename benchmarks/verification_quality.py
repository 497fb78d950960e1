"""Verification a bank can act on, measured: decision curve, intervals, the ``unknown`` verdict.

Usage::

    python -m benchmarks.verification_quality                       # Kaggle, whole sessions
    python -m benchmarks.verification_quality --window-size 30      # Kaggle, windows of 30 events
    python -m benchmarks.verification_quality --simulate --users 10 --sessions 5 --actions 300 \\
        --test-actions 100                                          # long training, short test sessions

Runs :func:`mouse_pipeline.calibration.calibrate_verification` with the
default model (ExtraTrees, 500 trees) and 6-fold session-grouped folds, and
prints the chosen fusion, the decision curve as a Markdown table (the README's),
the session EER and AUC with their 95 % bootstrap intervals, the worst users
and the Gini of per-user EERs, the ``unknown`` verdict's false and detection
rates, and how long each step took. It then fits the model on every training
session and applies the calibrated rule to the test file: how many test
sessions are named and how many called unknown; with ``--simulate``, where the
truth is known, also the owner-versus-impostor ROC AUC of every test claim
and the share of known users' test sessions called unknown.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mouse_pipeline import contract as c
from mouse_pipeline.calibration import VerificationReport, calibrate_verification
from mouse_pipeline.claims import claim_scores
from mouse_pipeline.error_stats import ClaimScores
from mouse_pipeline.features import FeatureConfig, extract_features, feature_columns
from mouse_pipeline.ingest import read_events
from mouse_pipeline.modelling import SessionPerUserKFold, build_pipeline
from mouse_pipeline.prediction import predict_sessions
from mouse_pipeline.prefixes import action_counts, prefix_events, source_session
from mouse_pipeline.simulate import simulate

KAGGLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kaggle"


def markdown_curve(report: VerificationReport) -> str:
    """The decision curve as a Markdown table (sessions reaching each N; rates out of fold)."""
    lines = ["| actions | sessions | users | EER | FRR at FAR 1% | AUC |", "| --- | --- | --- | --- | --- | --- |"]
    for row in report.curve_table().itertuples(index=False):
        note = "" if row.sessions >= report.min_sessions else " (too few sessions: not logged)"
        rates = "| - | - | - |" if np.isnan(row.eer) else f"| {row.eer:.1%} | {row.frr_at_far1:.1%} | {row.auc:.3f} |"
        lines.append(f"| {row.n_actions}{note} | {row.sessions} | {row.users} {rates}")
    return "\n".join(lines)


def truncate_sessions(events: pd.DataFrame, mean_actions: int, pause_ms: float, seed: int = 0) -> pd.DataFrame:
    """Each session cut to its first 30 % to 100 % of ``mean_actions`` actions (rounded to 10, at least 5)."""
    counts = action_counts(events, pause_ms)
    rng = np.random.default_rng(seed)
    wanted = pd.Series(np.maximum(5, (mean_actions * rng.uniform(0.3, 1.0, len(counts))).round(-1)).astype(int),
                       index=counts.index)
    parts = []
    for n, sessions in wanted.groupby(wanted):
        part = prefix_events(events, int(n), pause_ms, sessions.index)
        parts.append(part.assign(**{c.SESSION_ID: source_session(part[c.SESSION_ID].to_numpy(), int(n))}))
    return pd.concat(parts, ignore_index=True)


def load(args) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series | None]:
    """Training events, test events and (simulated data only) the test truth."""
    if not args.simulate:
        return (read_events(args.train, labelled=True).events, read_events(args.test, labelled=False).events, None)
    data = simulate(args.users, args.sessions, args.test_sessions, args.actions, args.separation, args.seed)
    test = truncate_sessions(data.test, args.test_actions, FeatureConfig().pause_ms) if args.test_actions else data.test
    return data.train, test, data.truth.set_index(c.SESSION_ID)[c.USER_ID].astype(str)


def test_file_results(report: VerificationReport, build, features: pd.DataFrame, test: pd.DataFrame,
                      config: FeatureConfig, truth: pd.Series | None) -> None:
    model = build().fit(features[feature_columns(features)], features[c.USER_ID].to_numpy())
    test_features = extract_features(test, config)
    verdicts = predict_sessions(model, test_features, rule=report.rule, n_actions=action_counts(test, config.pause_ms))
    unknown = int((verdicts["verdict"] == "unknown").sum())
    print(f"\ntest file: {len(verdicts)} sessions, {len(verdicts) - unknown} named, {unknown} called unknown")
    if truth is not None:
        claims = ClaimScores.of(claim_scores(model, test_features, report.rule.fusion), truth)
        named = verdicts[verdicts["verdict"] != "unknown"]
        right = np.mean(named["verdict"].to_numpy() == truth.loc[named[c.SESSION_ID]].to_numpy())
        print(f"  owner-versus-impostor ROC AUC over {claims.genuine.sum()} genuine and {(~claims.genuine).sum()} "
              f"impostor claims: {roc_auc_score(claims.genuine, claims.score):.4f}; known users' test sessions "
              f"called unknown: {unknown / len(verdicts):.1%}; named correctly: {right:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=KAGGLE / "Train_Mouse.csv")
    parser.add_argument("--test", type=Path, default=KAGGLE / "Test_Mouse.csv")
    parser.add_argument("--window-size", type=int, default=0)
    parser.add_argument("--window-unit", choices=["events", "actions"], default="events")
    parser.add_argument("--folds", type=int, default=6)
    parser.add_argument("--trees", type=int, default=500)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--simulate", action="store_true", help="simulated users instead of the Kaggle files")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--test-sessions", type=int, default=6)
    parser.add_argument("--actions", type=float, default=300.0, help="mean actions per simulated session")
    parser.add_argument("--test-actions", type=int, default=0, help="cut test sessions to 30-100%% of this many "
                                                                    "actions (0: as simulated)")
    parser.add_argument("--separation", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    train, test, truth = load(args)
    config = FeatureConfig(window_size=args.window_size, window_unit=args.window_unit)
    started = time.perf_counter()
    features = extract_features(train, config)
    folds = SessionPerUserKFold(args.folds, 0).session_folds(features[c.USER_ID].to_numpy(),
                                                             features[c.SESSION_ID].to_numpy())

    def build():
        return build_pipeline("extra_trees", {"n_estimators": args.trees})

    report = calibrate_verification(train, config, feature_columns(features), build, folds, n_jobs=args.n_jobs,
                                    features=features)
    elapsed = time.perf_counter() - started
    print(f"{features[c.SESSION_ID].nunique()} training sessions of {features[c.USER_ID].nunique()} users, "
          f"{len(features)} feature rows ({config}); calibration {elapsed:.1f} s: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items()))
    print(f"\nfusion: {report.fusion} (out-of-fold EER / AUC of each candidate)\n{report.fusions.round(4)}")
    print(f"\ndecision curve (out of fold):\n{markdown_curve(report)}")
    eer, auc = report.intervals["eer"], report.intervals["auc"]
    print(f"\nsession EER {eer.estimate:.2%} (95% CI {eer.low:.2%} to {eer.high:.2%}), ROC AUC {auc.estimate:.4f} "
          f"({auc.low:.4f} to {auc.high:.4f}); rule at FAR target {report.rates.target_far:.0%}: "
          f"FAR {report.rule_rates[0]:.2%}, FRR {report.rule_rates[1]:.2%}")
    print(f"per-user EER: Gini {report.gini:.2f}, median {report.per_user['eer'].median():.2%}; worst users:\n"
          f"{report.per_user.head(5).round(4).to_string(index=False)}")
    print(f"\nunknown verdict (target {report.unknown.target_rate:.0%} of known users' sessions; "
          f"{report.unknown.groups} groups of users left out):\n{report.unknown.rates.round(3)}")
    test_file_results(report, build, features, test, config, truth)


if __name__ == "__main__":
    main()
