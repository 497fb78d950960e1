"""Asset checks on the training events; the ERROR ones block everything downstream."""


import dagster as dg
import pandas as pd

from mouse_pipeline import validation
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.resources import ValidationSettings

ASSET = "raw_train_events"


def _result(rule: validation.RuleResult, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    metadata = {**rule.summary, "offenders": len(rule.offenders)}
    if len(rule.offenders):
        metadata["offending"] = table_preview(rule.offenders, rows=25, columns=None)
    return dg.AssetCheckResult(passed=rule.passed, severity=severity, metadata=metadata)


@dg.asset_check(asset=ASSET, blocking=True, description="Every session belongs to exactly one user.")
def one_user_per_session(raw_train_events: pd.DataFrame) -> dg.AssetCheckResult:
    return _result(validation.one_user_per_session(raw_train_events), dg.AssetCheckSeverity.ERROR)


@dg.asset_check(asset=ASSET, blocking=True, description="No missing or blank value in any column.")
def no_nulls(raw_train_events: pd.DataFrame) -> dg.AssetCheckResult:
    return _result(validation.no_nulls(raw_train_events), dg.AssetCheckSeverity.ERROR)


@dg.asset_check(
    asset=ASSET, blocking=True,
    description="Every user has enough sessions to be cross-validated (at least 2).",
)
def enough_sessions_per_user(
    raw_train_events: pd.DataFrame, validation_settings: ValidationSettings
) -> dg.AssetCheckResult:
    rule = validation.enough_sessions_per_user(raw_train_events, validation_settings.min_sessions_per_user)
    return _result(rule, dg.AssetCheckSeverity.ERROR)


@dg.asset_check(
    asset=ASSET,
    description="Sessions and events per user are balanced (smallest/largest >= min ratio); warns.",
)
def users_balanced(raw_train_events: pd.DataFrame, validation_settings: ValidationSettings) -> dg.AssetCheckResult:
    rule = validation.users_balanced(raw_train_events, validation_settings.min_balance_ratio)
    return _result(rule, dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset=ASSET,
    description="Counts clicks without release, drags without release and releases without press; warns.",
)
def event_grammar(raw_train_events: pd.DataFrame) -> dg.AssetCheckResult:
    return _result(validation.grammar_deviations(raw_train_events), dg.AssetCheckSeverity.WARN)


TRAIN_EVENT_CHECKS = [one_user_per_session, no_nulls, enough_sessions_per_user, users_balanced, event_grammar]
