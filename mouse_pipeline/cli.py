"""The ``mouse-pipeline`` command line: scoring and featurising files outside the UI.

Usage::

    mouse-pipeline score FILE.csv [--out DIR] [--data-dir DIR] [--tracking-uri URI] [--allow-foreign-champion]
    mouse-pipeline verify FILE.csv --claims CLAIMS.csv [--out DIR] [--data-dir DIR] [--tracking-uri URI]
        [--allow-foreign-champion]
    mouse-pipeline features INPUT [INPUT ...] --out FEATURES.parquet [--engine pandas|spark] [--master URL]

Defaults come from the pipeline's settings (:mod:`mouse_pipeline.settings`):
the tracking URI is ``MLFLOW_TRACKING_URI``, else the SQLite store in
``MOUSE_DATA_DIR`` (``./data``), as for the pipeline itself. ``verify``
decides claims with the champion (verdict, score after the first N actions,
and when the decision settled: :mod:`mouse_pipeline.claims`). ``features``
runs either engine on CSV or Parquet event files; with ``--engine spark`` it
is what a cluster job (``spark-submit``) calls.

``score`` and ``verify`` refuse (exit code 2) a champion trained on other
data than the file: simulated data for a real file, or real data for a
simulated one (:func:`mouse_pipeline.scoring.check_champion_fits`), unless
``--allow-foreign-champion``; their summary names the model version and its
training data.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mouse_pipeline.features import FeatureConfig
from mouse_pipeline.ingest import EventFileError
from mouse_pipeline.settings import DEFAULT_LOW_CONFIDENCE, Settings

STEPS = 4


def _settings_for(args: argparse.Namespace, settings: Settings) -> Settings:
    return settings.with_overrides(data_dir=args.data_dir, tracking_uri=args.tracking_uri, model_name=args.model_name)


def _with_champion(args: argparse.Namespace, settings: Settings, desc: str, folder: str, compute):
    """Load the champion, run ``compute(champion, progress)`` under a progress bar and write the result's
    files (``tables()``, ``info()``) into ``--out`` (default ``DATA_DIR/predictions/<folder>/<file stem>``).

    Returns (result, output folder), or the exit code 2 after one line on stderr for a bad file, store or
    champion.
    """
    from tqdm import tqdm

    from mouse_pipeline.outputs import write_result_files
    from mouse_pipeline.scoring import output_name
    from mouse_pipeline.tracking import load_champion

    settings = _settings_for(args, settings)
    out = Path(args.out) if args.out else settings.root / "predictions" / folder / output_name(args.file)
    with tqdm(total=STEPS, desc=desc, unit="step", file=sys.stderr, disable=args.quiet) as bar:

        def progress(message: str) -> None:
            bar.set_postfix_str(message[:60])
            bar.update(1)

        try:
            progress("loading the champion model")
            result = compute(load_champion(settings.mlflow_uri, settings.model_name), progress)
            write_result_files(out, result.tables(), result.info(), escape=settings.escape_csv_formulas)
            progress(f"wrote the files to {out}")
        except (EventFileError, LookupError, ValueError) as exc:
            bar.close()
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return result, out


#: Exit status when stdout's reader went away (128 + SIGPIPE, as for a process the signal ends).
BROKEN_PIPE = 141


def _warn_if_foreign(result) -> None:
    """One line on stderr when ``--allow-foreign-champion`` let a champion of other data score the file."""
    if result.foreign_champion:
        print(f"warning: scored anyway (--allow-foreign-champion): {result.foreign_champion}", file=sys.stderr)


def _written(result, out: Path) -> str:
    from mouse_pipeline.outputs import MANIFEST

    return f"written: {', '.join(str(out / name) for name in [*result.tables(), MANIFEST])}"


def _score(args: argparse.Namespace, settings: Settings) -> int:
    from mouse_pipeline.scoring import score_file

    done = _with_champion(args, settings, "scoring", "scored", lambda champion, progress: score_file(
        args.file, champion, progress, allow_foreign_champion=args.allow_foreign_champion))
    if isinstance(done, int):
        return done
    result, out = done
    _warn_if_foreign(result)
    sessions = result.sessions
    low = int((sessions["probability"] < args.low_confidence).sum())
    print(f"{_rows(result.ingest)}; {len(sessions)} sessions scored with {result.scored.champion.describe()}; "
          f"{low} below probability {args.low_confidence}")
    with_runner_up = sessions.assign(probability=sessions["probability"].round(3),
                                     runner_up_probability=sessions["runner_up_probability"].round(3))
    print(with_runner_up.to_string(index=False))
    print(_written(result, out))
    return 0


def _rows(ingest) -> str:
    """Row accounting of a file read: read = accepted + rejected + exact duplicates."""
    return (f"{ingest.rows_read:,} rows read: {ingest.rows_accepted:,} accepted, {ingest.rows_rejected:,} rejected, "
            f"{ingest.exact_duplicates:,} exact duplicates dropped")


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    from mouse_pipeline.claims import verify_file

    done = _with_champion(args, settings, "verifying", "verified", lambda champion, progress: verify_file(
        args.file, args.claims, champion, progress, allow_foreign_champion=args.allow_foreign_champion))
    if isinstance(done, int):
        return done
    result, out = done
    _warn_if_foreign(result)
    d = result.decisions
    print(f"{_rows(result.ingest)}; {len(d)} claims decided with {result.champion.describe()}: {int(d['accepted'].sum())} accepted, "
          f"{int((~d['accepted']).sum())} rejected, {int((d['problem'] != '').sum())} with a problem")
    shown = ["session_id", "claimed_user_id", "n_actions", "score", "threshold", "accepted", "decided_at_actions",
             "problem"]
    print(d[shown].round({"score": 3, "threshold": 3}).to_string(index=False))
    print(_written(result, out))
    return 0


def _features(args: argparse.Namespace, settings: Settings) -> int:
    config = FeatureConfig(args.window_size, args.window_unit, args.pause_ms)
    try:
        if args.engine == "spark":
            from mouse_pipeline.spark_engine import features_to_parquet, start_session

            spark = start_session(args.master or settings.spark_master, "mouse-pipeline-features")
            written = features_to_parquet(spark, args.inputs, args.out, config)
            counts = (written.rows_read, written.rows_accepted, written.rows_rejected, written.exact_duplicates)
            rejected = written.rejected
        else:
            counts, rejected = _pandas_features(args.inputs, args.out, config)
    except (EventFileError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    read, accepted, rejected_rows, duplicates = counts
    print(f"{read:,} rows read: {accepted:,} accepted, {rejected_rows:,} rejected, {duplicates:,} exact duplicates")
    print(f"features ({args.engine} engine): {args.out}" + (f"; rejected rows: {rejected}" if rejected else ""))
    return 0


def _pandas_features(inputs: list[str], out: str, config) -> tuple[tuple[int, int, int, int], str | None]:
    """The pandas engine over CSV (validated by :func:`read_events`) or Parquet (already clean) files."""
    import pandas as pd

    from mouse_pipeline import contract as c
    from mouse_pipeline.features import extract_features
    from mouse_pipeline.ingest import read_events
    from mouse_pipeline.spark_engine import file_format

    frames, rejected_frames, counts = [], [], [0, 0, 0, 0]
    for path in inputs:
        if file_format(path) == "parquet":
            events = pd.read_parquet(path)
            frames.append(events)
            counts[0] += len(events)
            counts[1] += len(events)
            continue
        labelled = c.USER_ID in pd.read_csv(path, nrows=0).columns
        result = read_events(path, labelled=labelled)
        frames.append(result.events)
        rejected_frames.append(result.rejected)
        for i, key in enumerate(("rows_read", "rows_accepted", "rows_rejected", "exact_duplicates")):
            counts[i] += result.counts()[key]
    extract_features(pd.concat(frames, ignore_index=True), config).to_parquet(out, index=False)
    rejected_path = None
    if counts[2]:
        rejected_path = str(Path(out).with_suffix("")) + ".rejected.csv"
        pd.concat(rejected_frames, ignore_index=True).to_csv(rejected_path, index=False)
    return tuple(counts), rejected_path


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    features = FeatureConfig()
    parser = argparse.ArgumentParser(prog="mouse-pipeline", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="predict the user of every session of an events CSV")
    _champion_arguments(score, settings, "scored")
    score.add_argument("--low-confidence", type=float, default=DEFAULT_LOW_CONFIDENCE)
    verify = commands.add_parser("verify", help="decide claims (session_id, claimed_user_id) about an events CSV")
    _champion_arguments(verify, settings, "verified")
    verify.add_argument("--claims", required=True, help="claims CSV: session_id, claimed_user_id")
    feats = commands.add_parser("features", help="features of event files (CSV or Parquet) into a Parquet file")
    feats.add_argument("inputs", nargs="+", help="event files: *.csv or *.parquet (local or any path Spark reads)")
    feats.add_argument("--out", required=True, help="output: a Parquet file (pandas) or folder (spark)")
    feats.add_argument("--engine", choices=["pandas", "spark"], default=settings.engine)
    feats.add_argument("--master", help="Spark master (default: MOUSE_SPARK_MASTER, else local[*])")
    feats.add_argument("--window-size", type=int, default=features.window_size)
    feats.add_argument("--window-unit", choices=["events", "actions"], default=features.window_unit)
    feats.add_argument("--pause-ms", type=float, default=features.pause_ms)
    args = parser.parse_args(argv)
    try:
        status = {"score": _score, "verify": _verify, "features": _features}[args.command](args, settings)
        sys.stdout.flush()  # a short summary is still buffered: a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:
        # Whoever read the summary stopped early (``mouse-pipeline score FILE | head``): the files are
        # already written. Stop as Unix tools stop on SIGPIPE, without a traceback, and keep Python's
        # final flush of stdout from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return BROKEN_PIPE


def _champion_arguments(command: argparse.ArgumentParser, settings: Settings, folder: str) -> None:
    """The arguments of a command that scores a file with the champion."""
    command.add_argument("file", help="unlabelled events CSV (uid, session_id, timestamp, event_type, ...)")
    command.add_argument("--out", help=f"output folder (default: DATA_DIR/predictions/{folder}/<file stem>)")
    command.add_argument("--data-dir", help="data folder (default: MOUSE_DATA_DIR or ./data)")
    command.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else the data "
                                                "folder's store)")
    command.add_argument("--model-name",
                         help=f"registered model (default: MOUSE_MODEL_NAME or {settings.model_name})")
    command.add_argument("--allow-foreign-champion", action="store_true",
                         help="use the champion even when it was trained on other data than the file (simulated "
                              "data for a real file, or real data for a simulated one); refused by default")
    command.add_argument("--quiet", action="store_true", help="no progress bar")


if __name__ == "__main__":
    sys.exit(main())
