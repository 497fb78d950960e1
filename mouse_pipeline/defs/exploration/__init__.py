"""Exploration: the notebook's look at the data."""
