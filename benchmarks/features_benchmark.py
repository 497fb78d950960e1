"""Feature-extraction throughput and peak memory on simulated data.

Usage::

    python -m benchmarks.features_benchmark              # 1 million and 10 million events
    python -m benchmarks.features_benchmark --events 2e6

For each size, one child process simulates the events and stores them as
Parquet (without the uid column, which features do not read); a second,
fresh child process loads them (sorted by session and time, as ingestion
delivers them) and runs :func:`extract_features` while a sampler records
its resident memory. Printed: events, sessions, windows,
seconds and events per second (median of ``--repeat`` runs; CSV parsing
excluded) and the peak resident memory of the extracting process (input
frame included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ACTIONS_PER_SESSION = 30.0
SESSIONS_PER_USER = 10


def generate(n_events: int, path: Path) -> None:
    from mouse_pipeline import contract as c
    import numpy as np

    from mouse_pipeline.simulate import simulate

    pilot = simulate(users=50, sessions=SESSIONS_PER_USER, test_sessions=0,
                     actions_per_session=ACTIONS_PER_SESSION, seed=1)
    per_user = len(pilot.train) / 50
    users = max(1, int(np.ceil(n_events / per_user * 1.15)))  # a margin, then cut to size
    data = simulate(users=users, sessions=SESSIONS_PER_USER, test_sessions=0,
                    actions_per_session=ACTIONS_PER_SESSION, seed=1)
    # Feature extraction receives events as ingestion leaves them: sorted by session and time.
    events = data.train.drop(columns=[c.UID]).sort_values([c.SESSION_ID, c.TIMESTAMP], kind="stable")
    session_end = np.flatnonzero(np.r_[events[c.SESSION_ID].to_numpy()[1:] != events[c.SESSION_ID].to_numpy()[:-1], True])
    keep = session_end[np.searchsorted(session_end, n_events - 1)] + 1 if n_events < len(events) else len(events)
    events.iloc[:keep].to_parquet(path, index=False)  # whole sessions, at least n_events


def extract(path: Path, window_size: int, threads: int | None, repeat: int) -> dict:
    import numpy as np
    import pandas as pd
    import psutil

    from mouse_pipeline.features import FeatureConfig, extract_features

    process = psutil.Process()
    events = pd.read_parquet(path)
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        table = extract_features(events, FeatureConfig(window_size=window_size), threads=threads)
        runs.append(time.perf_counter() - started)
    seconds = float(np.median(runs))
    done.set()
    sampler.join()
    return {
        "events": len(events),
        "sessions": int(table["session_id"].nunique()),
        "rows": len(table),
        "seconds": seconds,
        "fastest_seconds": min(runs),
        "events_per_second": len(events) / seconds,
        "input_rss_gb": baseline / 1e9,
        "peak_rss_gb": max(peak[0], process.memory_info().rss) / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--window-size", type=int, default=0, help="events per window (0: sessions)")
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default: CPUs)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median is printed")
    parser.add_argument("--phase", choices=["generate", "extract"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "generate":
        generate(int(args.events[0]), args.path)
        return
    if args.phase == "extract":
        print(json.dumps(extract(args.path, args.window_size, args.threads, args.repeat)))
        return
    print(f"{'events':>12} {'sessions':>9} {'rows':>9} {'seconds':>8} {'events/s':>12} {'peak RSS':>9}"
          f"   (median of {args.repeat} runs)")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.events:
            path = Path(tmp) / f"events-{int(n)}.parquet"
            base = [sys.executable, "-m", "benchmarks.features_benchmark", "--path", str(path)]
            subprocess.run([*base, "--phase", "generate", "--events", str(int(n))], check=True)
            extra = ["--repeat", str(args.repeat)] + (["--threads", str(args.threads)] if args.threads else [])
            out = subprocess.run([*base, "--phase", "extract", "--window-size", str(args.window_size), *extra],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{r['events']:>12,} {r['sessions']:>9,} {r['rows']:>9,} {r['seconds']:>8.2f} "
                  f"{r['events_per_second']:>12,.0f} {r['peak_rss_gb']:>7.2f} GB "
                  f"(input frame {r['input_rss_gb']:.2f} GB)", flush=True)


if __name__ == "__main__":
    main()
