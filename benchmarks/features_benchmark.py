"""Feature-extraction throughput and peak memory on simulated data, on either engine.

Usage::

    python -m benchmarks.features_benchmark              # 1 million and 10 million events, pandas
    python -m benchmarks.features_benchmark --events 2e6
    python -m benchmarks.features_benchmark --events 1e7 --engines pandas spark --spark-master 'local[2]'

For each size, one child process simulates the events and stores them as
Parquet (without the uid column, which features do not read); then, for each
engine, a fresh child process featurises them while a sampler records the
resident memory of that process and all its children (for Spark: the
driver, its JVM and the Python workers).

* pandas: loads the Parquet file (sorted by session and time, as ingestion
  delivers it) and runs :func:`extract_features`.
* spark: starts a session on ``--spark-master`` (time printed apart), then
  does what the ``spark`` engine of the feature assets does:
  :func:`~mouse_pipeline.spark_engine.features_to_parquet` (executors read the
  Parquet events, featurise each session, write Parquet; plus the row counts)
  and reads the feature table back.

Printed: events, sessions, windows, seconds and events per second (median of
``--repeat`` runs; CSV parsing excluded) and the peak resident memory.
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
    import numpy as np

    from mouse_pipeline import contract as c
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


def tree_rss() -> int:
    """Resident memory of this process and all its descendants (bytes)."""
    import psutil

    process = psutil.Process()
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def extract(path: Path, window_size: int, threads: int | None, repeat: int, engine: str, master: str,
            events_per_group: int) -> dict:
    import numpy as np
    import pandas as pd

    from mouse_pipeline.features import FeatureConfig, extract_features

    config = FeatureConfig(window_size=window_size)
    startup = 0.0
    if engine == "spark":
        from mouse_pipeline.spark_engine import (
            features_to_parquet,
            read_feature_table,
            start_session,
        )

        started = time.perf_counter()
        spark = start_session(master, "features-benchmark", {"spark.driver.memory": "4g"})
        spark.range(1).count()  # the JVM is up and answering
        startup = time.perf_counter() - started
        n_events = pd.read_parquet(path, columns=["timestamp"]).shape[0]
    else:
        events = pd.read_parquet(path)
        n_events = len(events)
    baseline = tree_rss()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    runs = []
    for i in range(repeat):
        started = time.perf_counter()
        if engine == "spark":
            out = str(path.with_name(f"features-{i}.parquet"))
            written = features_to_parquet(spark, str(path), out, config, events_per_group=events_per_group)
            table = read_feature_table(written.features)
        else:
            table = extract_features(events, config, threads=threads)
        runs.append(time.perf_counter() - started)
    seconds = float(np.median(runs))
    done.set()
    sampler.join()
    return {
        "engine": engine if engine == "pandas" else f"spark {master}",
        "events": n_events,
        "sessions": int(table["session_id"].nunique()),
        "rows": len(table),
        "seconds": seconds,
        "fastest_seconds": min(runs),
        "startup_seconds": startup,
        "events_per_second": n_events / seconds,
        "input_rss_gb": baseline / 1e9,
        "peak_rss_gb": max(peak[0], tree_rss()) / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--window-size", type=int, default=0, help="events per window (0: sessions)")
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default: CPUs)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median is printed")
    parser.add_argument("--engines", nargs="+", choices=["pandas", "spark"], default=["pandas"])
    parser.add_argument("--spark-master", default="local[2]", help="Spark master of the spark engine")
    parser.add_argument("--events-per-group", type=int, default=200_000,
                        help="spark engine: events per applyInPandas call (0: one call per session)")
    parser.add_argument("--engine", default="pandas", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["generate", "extract"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "generate":
        generate(int(args.events[0]), args.path)
        return
    if args.phase == "extract":
        print(json.dumps(extract(args.path, args.window_size, args.threads, args.repeat, args.engine,
                                 args.spark_master, args.events_per_group)))
        return
    print(f"{'engine':>15} {'events':>12} {'sessions':>9} {'rows':>9} {'seconds':>8} {'events/s':>12} "
          f"{'peak RSS':>9}   (median of {args.repeat} runs)")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.events:
            path = Path(tmp) / f"events-{int(n)}.parquet"
            base = [sys.executable, "-m", "benchmarks.features_benchmark", "--path", str(path)]
            subprocess.run([*base, "--phase", "generate", "--events", str(int(n))], check=True)
            extra = ["--repeat", str(args.repeat), "--spark-master", args.spark_master,
                     "--events-per-group", str(args.events_per_group)]
            extra += ["--threads", str(args.threads)] if args.threads else []
            for engine in args.engines:
                done = subprocess.run([*base, "--phase", "extract", "--engine", engine,
                                       "--window-size", str(args.window_size), *extra], capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"{engine} engine failed:\n{done.stderr[-3000:]}")
                out = done.stdout
                r = json.loads(out.strip().splitlines()[-1])
                note = (f"session start {r['startup_seconds']:.1f} s apart" if engine == "spark"
                        else f"input frame {r['input_rss_gb']:.2f} GB")
                print(f"{r['engine']:>15} {r['events']:>12,} {r['sessions']:>9,} {r['rows']:>9,} "
                      f"{r['seconds']:>8.2f} {r['events_per_second']:>12,.0f} {r['peak_rss_gb']:>7.2f} GB "
                      f"({note})", flush=True)


if __name__ == "__main__":
    main()
