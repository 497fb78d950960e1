"""The ingest-to-features slice, stage by stage, against the Kaggle notebook's featurizer.

Usage::

    python -m benchmarks.pipeline_benchmark --events 2e6            # simulated, shaped like the real logs
    python -m benchmarks.pipeline_benchmark --events 2e6 --repeat 5 --faulty 0.01
    python -m benchmarks.pipeline_benchmark --events 2e6 --row-order sessions   # rows as in Kaggle's files
    python -m benchmarks.pipeline_benchmark --train ../shared/data/kaggle/Train_Mouse.csv \\
        --test ../shared/data/kaggle/Test_Mouse.csv

Data. With ``--events N`` a training CSV of about N events and a test CSV of
about a third of that are simulated once (``mouse_pipeline.simulate``, fixed
seed) into a temporary folder, shaped like the production logs the issue
describes: few users with long sessions (``--users 10``, ``--sessions 6``
training and ``--test-sessions 2`` test sessions each: about 35,000 events
per session at 2 million events). Every row of a file is shuffled, the
hardest order for the sort; ``--row-order sessions`` keeps each session's
rows together, shuffled within it, as in Kaggle's files (the only real ones
here). ``--train``/``--test`` time real files instead. ``--faulty F`` also writes a copy of the training file in which a
fraction F of the rows carry a fault (a non-number, a spreadsheet-mangled
timestamp or user id, an unknown event code, an empty session, ...), the
rest of the text unchanged.

What is timed, in a fresh child process per run, as the pipeline's assets
run it on events already in memory: the training file's ingestion (its
``parse``, ``validate`` and ``sort`` stages, from
:attr:`~mouse_pipeline.ingest.IngestResult.timings`; the sort itself runs
during ``validate``, on a thread of its own, and ``sort`` is what is left of
it, plus picking the kept rows, building the events frame and, for a faulty file,
the frame of rejected rows with their reasons), the checks of the
training events (every rule of :func:`mouse_pipeline.validation.event_rules`
in one call), the training features, then the test file's ingestion and
features. Writing and reading Parquet (the IO managers' work) is not part of
the slice. A sampling thread records the resident memory of the process
every few milliseconds; each stage reports its peak. ``--faulty`` adds, in
one child process, clean and faulty ingestion of the training file run
alternately (A/B interleaved), to show what the reasons for rejected rows
cost. Then, in the same data, the notebook's featurizer
(:mod:`benchmarks.notebook_featurizer`, a per-record Python loop, CSV reading
not timed) on the training and test events, alternating with the slice runs.

Printed: per stage, events, median wall seconds over ``--repeat`` runs, the
spread (fastest-slowest), events per second, the median CPU seconds of the
process (it uses threads, so it can exceed the wall time; on a shared
machine wall time above CPU time means waiting for a core; the three
ingestion stages share the ingestion's CPU time in proportion to their wall
time), the part of it spent in the kernel (``sys s``: mostly handing out
fresh memory pages, the part of the slice that varies most from run to run
on a virtual machine), and peak resident memory; then the whole slice, its peak memory per million events,
and its speed-up over the notebook's featurizer. Timings on a machine shared
with other work vary from run to run: compare medians, and read the spread
and the load averages printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: Stages of the slice, in the order they run.
STAGES = ("parse train", "validate train", "sort train", "checks train", "features train",
          "parse test", "validate test", "sort test", "features test")


# -------------------------------------------------------------------------------------------------
# Data
# -------------------------------------------------------------------------------------------------


def _actions_for(events: float, users: int, sessions: int, seed: int) -> float:
    """Mean actions per session so that the training file holds about ``events`` events.

    A pilot with the same seed has the same users (their habits are drawn
    first), so its events per action carry over.
    """
    from mouse_pipeline.simulate import simulate

    pilot = simulate(users=users, sessions=sessions, test_sessions=0, actions_per_session=200, seed=seed)
    per_action = len(pilot.train) / (users * sessions * 200)
    return max(2.0, events / (users * sessions) / per_action)


#: Row orders of the simulated files: every row shuffled (the simulator's own order), or each
#: session's rows together, shuffled within it, as in Kaggle's files.
ROW_ORDERS = ("shuffled", "sessions")


def by_session(frame: pd.DataFrame, seed: int = 2) -> pd.DataFrame:
    """``frame`` (rows in any order) with each session's rows together, sessions in random order, rows
    in random order within a session: the order of Kaggle's files (not time order)."""
    # Not at the top: pandas loads pyarrow, which must load after mouse_pipeline in the children that
    # time the slice (see mouse_pipeline.allocation).
    import pandas as pd  # noqa: F811

    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(frame["session_id"], use_na_sentinel=False)  # a missing id: a session too
    session_rank = rng.permutation(len(uniques))[codes]
    shuffled = rng.permutation(len(frame))
    order = shuffled[np.argsort(session_rank[shuffled], kind="stable")]
    return frame.iloc[order].reset_index(drop=True)


def simulate_files(events: float, users: int, sessions: int, test_sessions: int, folder: Path,
                   row_order: str = "shuffled") -> dict[str, Path]:
    """Write a simulated training and test CSV (fixed seed) into ``folder``, rows in ``row_order``
    (:data:`ROW_ORDERS`)."""
    from mouse_pipeline.simulate import simulate

    if row_order not in ROW_ORDERS:
        raise ValueError(f"row_order must be one of {ROW_ORDERS}, not {row_order!r}")
    actions = _actions_for(events, users, sessions, seed=1)
    data = simulate(users=users, sessions=sessions, test_sessions=test_sessions, actions_per_session=actions, seed=1)
    paths = {"train": folder / "train.csv", "test": folder / "test.csv"}
    for kind, frame in (("train", data.train), ("test", data.test)):
        (by_session(frame) if row_order == "sessions" else frame).to_csv(paths[kind], index=False)
    return paths


def write_faulty(clean: Path, share: float, out: Path, seed: int = 3) -> int:
    """Copy ``clean`` with a fault in a share of its rows (text otherwise unchanged); returns their number."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    with clean.open() as handle:
        header = handle.readline().strip().split(",")
    table = pa_csv.read_csv(clean, convert_options=pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in header}, strings_can_be_null=False))
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(rng.random(table.num_rows) < share)
    faults = [("screen_x", "abc"), ("timestamp", "1.65599E+12"), ("event_type", "9"), ("session_id", ""),
              ("user_id", "-2.4162E+18"), ("screen_y", ""), ("timestamp", "1655993031186.5"), ("uid", "")]
    kind = rng.integers(0, len(faults), len(rows))
    for k, (name, value) in enumerate(faults):
        if name not in header:
            continue
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[rows[kind == k]] = True
        column = pc.replace_with_mask(table.column(name).combine_chunks(), pa.array(mask),
                                      pa.array([value] * int(mask.sum()), pa.string()))
        table = table.set_column(header.index(name), name, column)
    pa_csv.write_csv(table, out, pa_csv.WriteOptions(quoting_style="none"))
    return len(rows)


# -------------------------------------------------------------------------------------------------
# Measuring
# -------------------------------------------------------------------------------------------------


class Memory:
    """Resident memory of this process, sampled every ``period`` seconds on a thread."""

    def __init__(self, period: float = 0.005) -> None:
        import psutil

        self._process = psutil.Process()
        self.samples: list[tuple[float, int]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        while not self._done.is_set():
            self.samples.append((time.perf_counter(), self._process.memory_info().rss))
            time.sleep(period)

    def now(self) -> int:
        return self._process.memory_info().rss

    def peak(self, start: float, end: float) -> int:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside) if inside else self.now()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _system_seconds() -> float:
    """CPU seconds this process has spent in the kernel so far."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def run_slice(train: Path, test: Path) -> dict:
    """One run of the slice in this process: seconds, CPU seconds and peak memory per stage."""
    from mouse_pipeline.features import extract_features
    from mouse_pipeline.ingest import read_events
    from mouse_pipeline.validation import event_rules

    memory = Memory()
    out: dict[str, dict] = {"baseline": {"rss": memory.now()}}  # interpreter and libraries, no data yet
    started = time.perf_counter()
    cpu_started, system_started = time.process_time(), _system_seconds()

    def timed(stage: str, events: int, work):
        t0, c0, s0 = time.perf_counter(), time.process_time(), _system_seconds()
        result = work()
        t1 = time.perf_counter()
        out[stage] = {"events": events, "seconds": t1 - t0, "cpu": time.process_time() - c0,
                      "sys": _system_seconds() - s0, "peak": memory.peak(t0, t1)}
        return result

    def ingest(kind: str, path: Path, labelled: bool):
        t0, c0, s0 = time.perf_counter(), time.process_time(), _system_seconds()
        result = read_events(path, labelled=labelled)
        cpu, system = time.process_time() - c0, _system_seconds() - s0
        total = sum(result.timings.values())
        begin = t0
        for stage, seconds in result.timings.items():  # the stages ran one after the other
            out[f"{stage} {kind}"] = {"events": result.rows_read, "seconds": seconds, "cpu": cpu * seconds / total,
                                      "sys": system * seconds / total, "peak": memory.peak(begin, begin + seconds)}
            begin += seconds
        out[f"{kind} rejected"] = {"rows": result.rows_rejected}  # CPU time above: apportioned by wall time
        return result.events

    events = ingest("train", train, labelled=True)
    rules = timed("checks train", len(events), partial(event_rules, events))
    timed("features train", len(events), partial(extract_features, events))
    del events
    test_events = ingest("test", test, labelled=False)
    timed("features test", len(test_events), partial(extract_features, test_events))
    finished = time.perf_counter()
    out["slice"] = {"events": out["parse train"]["events"] + out["parse test"]["events"],
                    "seconds": finished - started, "cpu": time.process_time() - cpu_started,
                    "sys": _system_seconds() - system_started, "peak": memory.peak(started, finished)}
    out["checks"] = {name: rule.passed for name, rule in rules.items()}
    memory.stop()
    return out


def run_notebook(train: Path, test: Path) -> dict:
    """The notebook's featurizer on both files (reading them is not timed)."""
    from benchmarks.notebook_featurizer import featurize_frame, read_rows

    frames = [read_rows(train), read_rows(test)]
    t0, c0 = time.perf_counter(), time.process_time()
    for frame in frames:
        featurize_frame(frame)
    return {"events": sum(len(f) for f in frames), "seconds": time.perf_counter() - t0,
            "cpu": time.process_time() - c0}


def run_faulty(clean: Path, faulty: Path, repeat: int) -> dict:
    """Clean and faulty ingestion of the training file, alternately in one process."""
    from mouse_pipeline.ingest import read_events

    times: dict[str, list[float]] = {"clean": [], "faulty": []}
    rejected = 0
    for i in range(repeat):
        for kind, path in (("clean", clean), ("faulty", faulty)) if i % 2 == 0 else (("faulty", faulty),
                                                                                       ("clean", clean)):
            t0 = time.perf_counter()
            result = read_events(path, labelled=True)
            times[kind].append(time.perf_counter() - t0)
            if kind == "faulty":
                rejected = result.rows_rejected
    return {"times": times, "rejected": rejected, "rows": result.rows_read}


# -------------------------------------------------------------------------------------------------
# Report
# -------------------------------------------------------------------------------------------------


def _child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.pipeline_benchmark", *args], capture_output=True,
                          text=True)
    if done.returncode:
        sys.exit(f"benchmark child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _memory_settings() -> str:
    """Transparent huge page settings, and those of the allocators that ``mouse_pipeline`` makes (see
    :mod:`mouse_pipeline.allocation`): on some VMs, faulting in fresh memory (every stage allocates
    hundreds of MB) is a large part of the slice's CPU time. The children inherit this process's
    environment: a setting shows as the user's when it is there."""
    settings = []
    for name in ("enabled", "defrag"):
        try:
            text = Path(f"/sys/kernel/mm/transparent_hugepage/{name}").read_text().split()
            settings.append(f"{name} {next((w.strip('[]') for w in text if w.startswith('[')), '?')}")
        except OSError:
            settings.append(f"{name} unknown")
    from mouse_pipeline.allocation import MIMALLOC_OPTIONS, glibc_thresholds_chosen, is_glibc

    def chosen(*names: str) -> str | None:
        """The user's settings among ``names`` (a value this package sets itself is not one)."""
        users = [f"{name}={os.environ[name]}" for name in names
                 if name in os.environ and os.environ[name] != MIMALLOC_OPTIONS.get(name)]
        return ", ".join(users) or None

    numpy = chosen("NUMPY_MADVISE_HUGEPAGE") or "small pages"
    arrow = chosen(*MIMALLOC_OPTIONS) or "small pages, freed memory kept 10 s"
    glibc = ("not glibc: its allocator as it is" if not is_glibc() else
             chosen("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES") if glibc_thresholds_chosen()
             else "freed memory kept")
    return (", ".join(settings) + f"; allocators (mouse_pipeline's defaults unless set): numpy {numpy}; "
            f"Arrow (mimalloc) {arrow}; glibc {glibc}")


def _numpy_sort() -> str:
    """Which sort numpy gives 64-bit keys in this process (see :mod:`mouse_pipeline.cpu`)."""
    from mouse_pipeline.cpu import is_amd_zen4, numpy_sort_is_fast

    chosen = os.environ.get("NPY_DISABLE_CPU_FEATURES")
    kind = "SIMD quicksort" if numpy_sort_is_fast() else "radix-then-merge (numpy's own sort is slow here)"
    return (kind + (" on an AMD Zen 4" if is_amd_zen4() else "")
            + (f", NPY_DISABLE_CPU_FEATURES={chosen!r}" if chosen is not None else ""))


def report(train: Path, test: Path, repeat: int, notebook_repeat: int, faulty: Path | None, faulty_rows: int) -> None:
    print(f"training file {train} ({train.stat().st_size / 1e6:,.0f} MB), test file {test} "
          f"({test.stat().st_size / 1e6:,.0f} MB); {os.cpu_count()} CPUs; load average before: {_load()}; "
          f"transparent huge pages: {_memory_settings()}; numpy sort: {_numpy_sort()}", flush=True)
    slices, notebooks = [], []
    for i in range(max(repeat, notebook_repeat)):  # slice and notebook runs alternate
        if i < repeat:
            slices.append(_child(["--phase", "slice", "--train", str(train), "--test", str(test)]))
        if i < notebook_repeat:
            notebooks.append(_child(["--phase", "notebook", "--train", str(train), "--test", str(test)]))

    print(f"\n{'stage':<18} {'events':>11} {'seconds':>8} {'spread':>13} {'events/s':>12} {'CPU s':>7} "
          f"{'sys s':>6} {'peak RSS':>9}   (median of {repeat} runs, each in a fresh process)")
    for stage in (*STAGES, "slice"):
        runs = [s[stage] for s in slices]
        seconds = [r["seconds"] for r in runs]
        med = float(np.median(seconds))
        label = "whole slice" if stage == "slice" else stage
        if stage == "slice":
            print("-" * 97)
        print(f"{label:<18} {runs[0]['events']:>11,} {med:>8.3f} {min(seconds):>6.3f}-{max(seconds):<6.3f} "
              f"{runs[0]['events'] / med:>12,.0f} {np.median([r['cpu'] for r in runs]):>7.2f} "
              f"{np.median([r['sys'] for r in runs]):>6.2f} {np.median([r['peak'] for r in runs]) / 1e9:>7.2f} GB")
    whole = [s["slice"] for s in slices]
    events = whole[0]["events"]
    peak = float(np.median([r["peak"] for r in whole]))
    baseline = float(np.median([s["baseline"]["rss"] for s in slices]))
    slice_seconds = float(np.median([r["seconds"] for r in whole]))
    print(f"\npeak resident memory of the slice: {peak / 1e9:.2f} GB for {events / 1e6:.2f} million events "
          f"= {peak / 1e9 / (events / 1e6):.2f} GB per million events, the process's whole footprint "
          f"(of which {baseline / 1e9:.2f} GB of interpreter and libraries before any data: "
          f"{(peak - baseline) / 1e9 / (events / 1e6):.2f} GB per million events above that)")
    system = [r["sys"] for r in whole]
    print(f"kernel (sys) time of the slice: {np.median(system):.2f} s median, {min(system):.2f}-{max(system):.2f} "
          f"over the runs, of {np.median([r['cpu'] for r in whole]):.2f} s CPU (page faults of fresh memory)")
    print(f"rows rejected: train {slices[0]['train rejected']['rows']:,}, test {slices[0]['test rejected']['rows']:,}; "
          f"checks passed: {slices[0]['checks']}")
    if notebooks:
        nb = float(np.median([r["seconds"] for r in notebooks]))
        spread = f"{min(r['seconds'] for r in notebooks):.2f}-{max(r['seconds'] for r in notebooks):.2f}"
        print(f"\nnotebook featurizer (per-record Python loop; train + test, {notebooks[0]['events']:,} events, "
              f"CSV reading not timed): {nb:.2f} s (spread {spread}, median of {len(notebooks)}), "
              f"{notebooks[0]['events'] / nb:,.0f} events/s")
        print(f"speed-up of the whole slice (ingestion, checks, features of both files) over the notebook's "
              f"featurizer alone: {nb / slice_seconds:.1f}x")
    if faulty is not None:
        result = _child(["--phase", "faulty", "--train", str(train), "--faulty-file", str(faulty),
                         "--repeat", str(max(repeat, 3))])
        clean_s, faulty_s = (float(np.median(result["times"][k])) for k in ("clean", "faulty"))
        print(f"\ningestion of the training file with {faulty_rows:,} faulty rows "
              f"({faulty_rows / result['rows']:.2%}; {result['rejected']:,} rejected with reasons): "
              f"{faulty_s:.3f} s against {clean_s:.3f} s clean, {faulty_s / clean_s - 1:+.0%} "
              f"(median of {len(result['times']['clean'])} alternating runs in one process)")
    print(f"\nload average after: {_load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=float, default=2e6, help="events of the simulated training file")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=6, help="training sessions per simulated user")
    parser.add_argument("--test-sessions", type=int, default=2, help="test sessions per simulated user")
    parser.add_argument("--train", type=Path, help="a real training CSV instead of simulated data")
    parser.add_argument("--test", type=Path, help="a real test CSV (with --train)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the slice; medians are printed")
    parser.add_argument("--notebook-repeat", type=int, default=None,
                        help="runs of the notebook's featurizer (default: --repeat; 0 skips it)")
    parser.add_argument("--faulty", type=float, default=0.0,
                        help="also time ingestion with this share of faulty rows (e.g. 0.01)")
    parser.add_argument("--row-order", choices=ROW_ORDERS, default="shuffled",
                        help="rows of the simulated files: all shuffled (default), or each session's together, "
                             "shuffled within it, as in Kaggle's files")
    parser.add_argument("--keep", type=Path, help="write the simulated files here and keep them")
    parser.add_argument("--phase", choices=["slice", "notebook", "faulty"], help=argparse.SUPPRESS)
    parser.add_argument("--faulty-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "slice":
        print(json.dumps(run_slice(args.train, args.test)))
        return
    if args.phase == "notebook":
        print(json.dumps(run_notebook(args.train, args.test)))
        return
    if args.phase == "faulty":
        print(json.dumps(run_faulty(args.train, args.faulty_file, args.repeat)))
        return
    if (args.train is None) != (args.test is None):
        parser.error("--train and --test go together")
    notebook_repeat = args.repeat if args.notebook_repeat is None else args.notebook_repeat
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.train is None:
            print(f"simulating about {args.events:,.0f} training events ({args.users} users x {args.sessions} "
                  f"sessions, {args.test_sessions} test sessions each) into {folder} ...", flush=True)
            paths = simulate_files(args.events, args.users, args.sessions, args.test_sessions, folder,
                                   args.row_order)
        else:
            paths = {"train": args.train, "test": args.test}
        faulty, faulty_rows = None, 0
        if args.faulty > 0:
            faulty = folder / "train-faulty.csv"
            faulty_rows = write_faulty(paths["train"], args.faulty, faulty)
        report(paths["train"], paths["test"], args.repeat, notebook_repeat, faulty, faulty_rows)


if __name__ == "__main__":
    main()
