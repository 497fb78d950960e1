"""The checks of labelled events, computed once from the events in memory and reported per check.

Each :class:`EventRule` names a rule of :mod:`mouse_pipeline.validation`, its
description and whether it blocks; all rules of an asset are computed in one
pass (:func:`mouse_pipeline.validation.event_rules`). :func:`rule_check_specs` declares them on
an ingestion asset (``check_specs`` of the multi-asset, so the rules run on
the frame just read, never reloading it), :func:`rule_check_results` reports
them; the training-batch job reports the same rules with
:func:`rule_evaluations`. A failing blocking rule (severity ERROR) stops
everything downstream.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from mouse_pipeline import validation
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.resources import ValidationLimitsResource


@dataclass(frozen=True)
class EventRule:
    """One rule of :data:`mouse_pipeline.validation.EVENT_RULES` as a Dagster check: what it says and
    whether it blocks (severity ERROR) or warns."""

    name: str
    description: str
    blocking: bool

    @property
    def severity(self) -> dg.AssetCheckSeverity:
        return dg.AssetCheckSeverity.ERROR if self.blocking else dg.AssetCheckSeverity.WARN


ONE_USER_PER_SESSION = EventRule("one_user_per_session", "Every session belongs to exactly one user.", True)
NO_NULLS = EventRule("no_nulls", "No missing or blank value in any column.", True)
ENOUGH_EVENTS_PER_USER = EventRule(
    "enough_events_per_user", "Every user has enough events to be enrolled (MOUSE_MIN_EVENTS_PER_USER, in any number "
    "of sessions); warns, naming the users that training leaves out.", False)
USERS_BALANCED = EventRule(
    "users_balanced", "Sessions and events per user are balanced (smallest/largest >= min ratio); warns.", False)
EVENT_GRAMMAR = EventRule(
    "event_grammar", "Warns when more than a share of sessions (default 5 %) depart from the event grammar as "
    "the log's dialect reads it (a log that never records releases is its own dialect); the metadata says which "
    "deviations occur and how often.", False)

#: Rules of the whole training set; a training batch of a few sessions is judged by BATCH_RULES alone.
TRAIN_RULES: tuple[EventRule, ...] = (ONE_USER_PER_SESSION, NO_NULLS, ENOUGH_EVENTS_PER_USER, USERS_BALANCED,
                                      EVENT_GRAMMAR)
BATCH_RULES: tuple[EventRule, ...] = (ONE_USER_PER_SESSION, NO_NULLS, EVENT_GRAMMAR)


def rule_check_specs(asset: str, rules: tuple[EventRule, ...]) -> list[dg.AssetCheckSpec]:
    """The checks of ``rules`` on ``asset``, for an asset's ``check_specs``."""
    return [dg.AssetCheckSpec(rule.name, asset=asset, description=rule.description, blocking=rule.blocking)
            for rule in rules]


def _metadata(result: validation.RuleResult) -> dict:
    metadata = {**result.summary, "offenders": len(result.offenders)}
    if len(result.offenders):
        metadata["offending"] = table_preview(result.offenders, rows=25, columns=None)
    return metadata


def _evaluated(rules: tuple[EventRule, ...], events: pd.DataFrame,
               limits: ValidationLimitsResource) -> Iterator[tuple[EventRule, validation.RuleResult]]:
    """Every rule of ``rules`` computed in one pass over the events (:func:`validation.event_rules`)."""
    if not rules:
        return
    results = validation.event_rules(events, limits.rule_settings(), names=[rule.name for rule in rules])
    for rule in rules:
        yield rule, results[rule.name]


def rule_check_results(context: dg.AssetExecutionContext, asset: str, rules: tuple[EventRule, ...],
                       events: pd.DataFrame, limits: ValidationLimitsResource) -> Iterator[dg.AssetCheckResult]:
    """Results of the selected checks of ``rules`` on ``asset``, from the events in memory."""
    selected = {key.name for key in context.op_execution_context.selected_asset_check_keys
                if key.asset_key == dg.AssetKey(asset)}
    chosen = tuple(rule for rule in rules if rule.name in selected)
    for rule, result in _evaluated(chosen, events, limits):
        yield dg.AssetCheckResult(asset_key=asset, check_name=rule.name, passed=result.passed,
                                  severity=rule.severity, metadata=_metadata(result))


def rule_evaluations(asset: str, rules: tuple[EventRule, ...], events: pd.DataFrame,
                     limits: ValidationLimitsResource, partition: str | None = None) -> list[dg.AssetCheckEvaluation]:
    """Evaluations of ``rules`` on the events of ``asset`` (one ``partition``), for an op to log."""
    return [
        dg.AssetCheckEvaluation(asset_key=dg.AssetKey(asset), check_name=rule.name, passed=result.passed,
                                severity=rule.severity, metadata=_metadata(result), blocking=rule.blocking,
                                partition=partition)
        for rule, result in _evaluated(rules, events, limits)
    ]
