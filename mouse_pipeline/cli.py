"""The ``mouse-pipeline`` command line: score a file with the champion, outside the UI.

Usage::

    mouse-pipeline score FILE.csv [--out DIR] [--data-dir DIR] [--tracking-uri URI]

The tracking URI defaults to ``MLFLOW_TRACKING_URI``, else the SQLite store
in ``MOUSE_DATA_DIR`` (``./data``), as for the pipeline itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mouse_pipeline.ingest import EventFileError
from mouse_pipeline.tracking import default_tracking_uri

MODEL_NAME = "mouse-user-identifier"
STEPS = 5


def _score(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mouse_pipeline.scoring import output_name, score_file

    data_dir = Path(args.data_dir or os.environ.get("MOUSE_DATA_DIR") or "data")
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(data_dir)
    out = Path(args.out) if args.out else data_dir / "predictions" / "scored" / output_name(args.file)
    with tqdm(total=STEPS, desc="scoring", unit="step", file=sys.stderr, disable=args.quiet) as bar:

        def progress(message: str) -> None:
            bar.set_postfix_str(message[:60])
            bar.update(1)

        try:
            result = score_file(args.file, out, uri, args.model_name, progress)
        except (EventFileError, LookupError, ValueError) as exc:
            bar.close()
            print(f"error: {exc}", file=sys.stderr)
            return 2
    sessions = result.sessions
    low = int((sessions["probability"] < args.low_confidence).sum())
    print(f"{result.ingest.rows_accepted:,} rows accepted, {result.ingest.rows_rejected:,} rejected; "
          f"{len(sessions)} sessions scored with {args.model_name} version {result.model_version}; "
          f"{low} below probability {args.low_confidence}")
    with_runner_up = sessions.assign(probability=sessions["probability"].round(3),
                                     runner_up_probability=sessions["runner_up_probability"].round(3))
    print(with_runner_up.to_string(index=False))
    print(f"written: {', '.join(str(p) for p in result.files.values())}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mouse-pipeline", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="predict the user of every session of an events CSV")
    score.add_argument("file", help="unlabelled events CSV (uid, session_id, timestamp, event_type, ...)")
    score.add_argument("--out", help="output folder (default: DATA_DIR/predictions/scored/<file stem>)")
    score.add_argument("--data-dir", help="data folder (default: MOUSE_DATA_DIR or ./data)")
    score.add_argument("--tracking-uri", help="MLflow tracking URI")
    score.add_argument("--model-name", default=MODEL_NAME)
    score.add_argument("--low-confidence", type=float, default=0.5)
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    return _score(args)


if __name__ == "__main__":
    sys.exit(main())
