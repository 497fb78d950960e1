"""Ingestion: the raw CSVs in, clean events and rejected rows out, and the checks on them."""
