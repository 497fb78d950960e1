"""mouse-pipeline: who is holding the mouse? Dagster assets from raw mouse events to predictions.

The functional core (``contract``, ``ingest``, ``validation``, ``simulate``,
``features``, ``modelling``, ``evaluation``, ``tracking``, ``prediction``,
``scoring``, ``spark_engine``...) knows nothing of Dagster; the sub-package
``mouse_pipeline.defs`` wires it into assets, one room per stage, and
``mouse_pipeline.definitions`` merges them. ``pipeline_definitions``, the
``Definitions`` object that ``dagster ... -m mouse_pipeline`` finds, is
imported on first access, so that code using only the core (a Spark
executor, say) never imports Dagster.
"""

import os

# MLflow 3 sends usage telemetry from a background thread that, on a machine without
# internet access, keeps a finished process alive for minutes. Opt out unless the user chose.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


# Ordinary pages, and freed memory kept for reuse, for numpy's and Arrow's allocators: before
# anything imports pyarrow (see mouse_pipeline.allocation).
from mouse_pipeline import allocation as _allocation  # noqa: E402

_allocation.configure()

__all__ = ["pipeline_definitions"]


def __getattr__(name: str):
    if name == "pipeline_definitions":
        from mouse_pipeline.definitions import defs

        globals()["pipeline_definitions"] = defs
        return defs
    raise AttributeError(f"module 'mouse_pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:  # Dagster's module loader lists members with dir()
    return sorted({*globals(), "pipeline_definitions"})
