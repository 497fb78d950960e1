"""Features: one row per session or window of the training and test events."""
