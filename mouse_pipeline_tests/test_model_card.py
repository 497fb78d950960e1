"""The model card: its numbers are the metrics dict's, and it says what it does not promise."""

from __future__ import annotations

import pandas as pd
import pytest

from mouse_pipeline.features.families import FAMILIES
from mouse_pipeline.model_card import card_metrics, permutation_importance, render_model_card
from mouse_pipeline.simulate import simulate
from mouse_pipeline_tests.test_selection import run_selection


@pytest.fixture(scope="module")
def card_inputs():
    """Two users with one session (validated by blocks) among four with three sessions."""
    single = simulate(users=2, sessions=1, test_sessions=0, actions_per_session=40, seed=21).train
    several = simulate(users=4, sessions=3, test_sessions=0, actions_per_session=12, seed=22).train
    enrolment, feature_sets, result = run_selection(pd.concat([single, several], ignore_index=True))
    champion_set = next(fs for fs in feature_sets if fs.config == result.feature_config)
    return enrolment, result, permutation_importance(result, champion_set)


def test_card_numbers_are_exactly_the_metrics(card_inputs):
    enrolment, result, importance = card_inputs
    card = render_model_card(result, enrolment, importance)
    assert card.metrics == card_metrics(result, enrolment)
    m = card.metrics
    assert m["cv_macro_f1"] == result.champion.cv.scores["macro_f1"]
    assert m["best_mlp_cv_macro_f1"] == result.best_mlp.cv.scores["macro_f1"]
    assert m["cv_macro_f1_behaviour_only"] == result.ablation["behaviour"].cv.scores["macro_f1"]
    assert m["cv_macro_f1_ci_low"] <= m["cv_macro_f1"] <= m["cv_macro_f1_ci_high"]
    assert (m["users"], m["sessions"], m["users_validated_by_blocks"]) == (6, 14, 2)
    for key in ("cv_macro_f1", "cv_accuracy", "cv_top3_accuracy", "cv_macro_f1_ci_low", "cv_macro_f1_ci_high",
                "best_mlp_cv_macro_f1", "cv_macro_f1_behaviour_only", "cv_macro_f1_environment_only"):
        assert f"{m[key]:.3f}" in card.markdown, key
    assert (f"{m['users']:.0f} users enrolled, {m['sessions']:.0f} recorded sessions, {m['events']:,.0f} events"
            in card.markdown)


def test_card_says_how_users_were_validated_and_what_is_not_promised(card_inputs):
    enrolment, result, importance = card_inputs
    markdown = render_model_card(result, enrolment, importance).markdown
    for heading in ("## Data", "## Chosen settings and why", "## Scores", "## Hand or machine",
                    "most important features", "## What these numbers promise"):
        assert heading in markdown
    assert "blocks within one session" in markdown and "Block-validated users" in markdown
    assert "Closed set" in markdown and "bootstrap" in markdown
    assert result.champion.choice.candidate.name in markdown


def test_permutation_importance_covers_every_column_and_family(card_inputs):
    _, result, importance = card_inputs
    columns = importance[~importance["feature"].str.startswith("family:")]
    families = importance[importance["feature"].str.startswith("family:")]
    assert sorted(columns["feature"]) == sorted(result.champion.choice.columns)
    assert set(families["family"]) <= set(FAMILIES) and len(families) >= 2
    assert columns["importance"].is_monotonic_decreasing
    assert set(importance["kind"]) <= {"behaviour", "environment"}


def test_the_card_says_hand_or_machine_only_beyond_a_margin():
    from mouse_pipeline.model_card import hand_or_machine

    assert hand_or_machine(0.676, 0.757) == "More the machine than the hand"  # Kaggle
    assert hand_or_machine(0.987, 0.129) == "Mostly the hand"
    assert hand_or_machine(0.906, 0.886) == "The machine as much as the hand"  # within the margin
