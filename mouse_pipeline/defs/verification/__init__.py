"""Verification: calibrated thresholds and decisions on claims."""
