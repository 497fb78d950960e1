"""Asset checks on labelled events; the ERROR ones block everything downstream.

:func:`labelled_event_checks` builds the same checks for the training file's
events and for each training batch's events.
"""

import dagster as dg
import pandas as pd

from mouse_pipeline import validation
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.resources import ValidationLimitsResource


def _result(rule: validation.RuleResult, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    metadata = {**rule.summary, "offenders": len(rule.offenders)}
    if len(rule.offenders):
        metadata["offending"] = table_preview(rule.offenders, rows=25, columns=None)
    return dg.AssetCheckResult(passed=rule.passed, severity=severity, metadata=metadata)


def labelled_event_checks(asset: str, whole_training_set: bool = True,
                          partitions_def: dg.PartitionsDefinition | None = None) -> list[dg.AssetChecksDefinition]:
    """Checks of the labelled events of ``asset``.

    ``whole_training_set`` adds the checks that only make sense on all the
    training data at once (enough sessions per user, balance); a batch of a
    few sessions is judged on its rows alone. ``partitions_def`` (that of a
    partitioned ``asset``) makes each check run on, and load, one partition.
    """

    @dg.asset_check(asset=asset, partitions_def=partitions_def, name="one_user_per_session", blocking=True,
                    description="Every session belongs to exactly one user.")
    def one_user_per_session(events: pd.DataFrame) -> dg.AssetCheckResult:
        return _result(validation.one_user_per_session(events), dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(asset=asset, partitions_def=partitions_def, name="no_nulls", blocking=True,
                    description="No missing or blank value in any column.")
    def no_nulls(events: pd.DataFrame) -> dg.AssetCheckResult:
        return _result(validation.no_nulls(events), dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(asset=asset, partitions_def=partitions_def, name="enough_sessions_per_user", blocking=True,
                    description="Every user has enough sessions to be cross-validated (at least 2).")
    def enough_sessions_per_user(events: pd.DataFrame, validation_limits: ValidationLimitsResource) -> dg.AssetCheckResult:
        rule = validation.enough_sessions_per_user(events, validation_limits.min_sessions_per_user)
        return _result(rule, dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(asset=asset, partitions_def=partitions_def, name="users_balanced",
                    description="Sessions and events per user are balanced (smallest/largest >= min ratio); warns.")
    def users_balanced(events: pd.DataFrame, validation_limits: ValidationLimitsResource) -> dg.AssetCheckResult:
        rule = validation.users_balanced(events, validation_limits.min_balance_ratio)
        return _result(rule, dg.AssetCheckSeverity.WARN)

    @dg.asset_check(asset=asset, partitions_def=partitions_def, name="event_grammar",
                    description="Counts clicks without release, drags without release and releases without press; "
                                "warns.")
    def event_grammar(events: pd.DataFrame) -> dg.AssetCheckResult:
        return _result(validation.grammar_deviations(events), dg.AssetCheckSeverity.WARN)

    if whole_training_set:
        return [one_user_per_session, no_nulls, enough_sessions_per_user, users_balanced, event_grammar]
    return [one_user_per_session, no_nulls, event_grammar]


TRAIN_EVENT_CHECKS = labelled_event_checks("raw_train_events")
