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


def _small_pages_for_numpy() -> None:
    """Ask numpy not to request transparent huge pages for its large arrays (unless the user chose,
    with ``NUMPY_MADVISE_HUGEPAGE``).

    Where the kernel defragments memory for huge pages on request (the common
    ``madvise`` setting of ``/sys/kernel/mm/transparent_hugepage/defrag``),
    every fresh array of a few MB can stall while the kernel compacts memory:
    ingestion of 2 million events spent more time in the kernel than in its
    own code, and ran about 20% slower in a fresh process
    (``python -m benchmarks.pipeline_benchmark`` prints the setting). The
    pipeline's arrays are written once and read a few times, where huge pages
    gain little.
    """
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        try:  # numpy 1.x
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:  # another numpy: its default stays
            return
    try:
        _set_madvise_hugepage(False)
    except (TypeError, ValueError, RuntimeError):  # a numpy whose private switch changed: its default stays
        return


_small_pages_for_numpy()

__all__ = ["pipeline_definitions"]


def __getattr__(name: str):
    if name == "pipeline_definitions":
        from mouse_pipeline.definitions import defs

        globals()["pipeline_definitions"] = defs
        return defs
    raise AttributeError(f"module 'mouse_pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:  # Dagster's module loader lists members with dir()
    return sorted({*globals(), "pipeline_definitions"})
