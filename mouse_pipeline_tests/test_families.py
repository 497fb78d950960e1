"""Feature families: every column has one, and selecting a kind removes exactly the other kind."""

from __future__ import annotations

import pytest

from mouse_pipeline.features import FeatureConfig, extract_features, feature_columns
from mouse_pipeline.features.families import (
    BEHAVIOUR,
    ENVIRONMENT,
    FAMILIES,
    family_kind,
    family_table,
    feature_family,
    parse_families,
    select_columns,
)


@pytest.fixture(scope="module")
def columns(small_simulation) -> list[str]:
    return feature_columns(extract_features(small_simulation.train, FeatureConfig(window_size=5,
                                                                                  window_unit="actions")))


def test_every_feature_column_has_a_family_and_every_family_has_columns(columns):
    table = family_table(columns)
    assert list(table) == list(FAMILIES)  # no empty family, reporting order kept
    assert sum(len(cols) for cols in table.values()) == len(columns)


def test_behaviour_only_removes_exactly_the_environment_columns(columns):
    behaviour = select_columns(columns, "behaviour")
    environment = [col for col in columns if family_kind(feature_family(col)) == ENVIRONMENT]
    assert behaviour == [col for col in columns if col not in environment]  # order kept
    assert select_columns(columns, ENVIRONMENT) == environment
    assert select_columns(columns, "all") == columns
    assert set(select_columns(columns, "behaviour,environment")) == set(columns)


def test_known_device_traits_are_environment_and_hand_traits_behaviour():
    for col in ("x_range", "pixel_grid_1.5_ratio", "fractional_coordinate_ratio", "move_interval_ms_q50",
                "first_x", "center_click_y", "stress"):
        assert family_kind(feature_family(col)) == ENVIRONMENT, col
    for col in ("speed_q50", "action_straightness_mean", "idle_log_s_q90", "transition_2_5", "chill",
                "click_dwell_mean", "direction_3_ratio"):
        assert family_kind(feature_family(col)) == BEHAVIOUR, col


def test_families_setting_parses_kinds_names_and_rejects_unknown_names():
    assert parse_families("all") == tuple(FAMILIES)
    assert parse_families("") == tuple(FAMILIES)
    assert parse_families("timing, screen") == ("timing", "screen")
    assert parse_families("environment") == tuple(f for f, k in FAMILIES.items() if k == ENVIRONMENT)
    with pytest.raises(ValueError, match="unknown feature family \\['speeds'\\]"):
        parse_families("speeds")
    with pytest.raises(KeyError, match="belongs to no family"):
        feature_family("brand_new_feature")
