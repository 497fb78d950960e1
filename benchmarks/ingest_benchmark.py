"""CSV ingestion throughput: how fast :func:`read_events` turns a large CSV into clean events.

Usage::

    python -m benchmarks.ingest_benchmark [--rows 2e6]

Writes a simulated training CSV of about ``--rows`` rows (in the contract's
schema, rows shuffled like the real files) into a temporary folder, then
times ``read_events`` on it: parsing, validation of every row, the split into
accepted and rejected rows, and the sort by (session_id, timestamp).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mouse_pipeline.ingest import read_events
from mouse_pipeline.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=2e6)
    args = parser.parse_args()
    pilot = len(simulate(users=20, sessions=10, test_sessions=0, actions_per_session=30, seed=2).train) / 20
    users = max(1, int(np.ceil(args.rows / pilot * 1.15)))
    data = simulate(users=users, sessions=10, test_sessions=0, actions_per_session=30, seed=2)
    rows = data.train.iloc[: int(args.rows)]  # rows are shuffled: any prefix is a fair sample
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.csv"
        rows.to_csv(path, index=False)
        size_mb = path.stat().st_size / 1e6
        started = time.perf_counter()
        result = read_events(path, labelled=True)
        seconds = time.perf_counter() - started
    print(f"{result.rows_read:,} rows ({size_mb:,.0f} MB) read, validated and sorted in {seconds:.2f} s: "
          f"{result.rows_read / seconds:,.0f} rows/s; accepted {result.rows_accepted:,}, "
          f"rejected {result.rows_rejected:,}")


if __name__ == "__main__":
    main()
