"""The Dagster shell: assets, checks and resources that wire the functional core together."""
