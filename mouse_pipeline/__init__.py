"""mouse-pipeline: who is holding the mouse? Dagster assets from raw mouse events to predictions.

The functional core (``contract``, ``ingest``, ``validation``, ``simulate``,
``features``, ``modelling``, ``evaluation``, ``tracking``, ``prediction``)
knows nothing of Dagster; ``mouse_pipeline.defs`` wires it into assets, and
``defs`` is the ``Definitions`` object that ``dagster ... -m mouse_pipeline``
finds (importing the package therefore imports Dagster too).
"""

import os

# MLflow 3 sends usage telemetry from a background thread that, on a machine without
# internet access, keeps a finished process alive for minutes. Opt out unless the user chose.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mouse_pipeline.definitions import defs  # noqa: E402

__all__ = ["defs"]
