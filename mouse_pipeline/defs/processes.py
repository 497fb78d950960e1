"""Worker processes of a run: released when the work that needed them is done.

Model selection and verification fit models on joblib's process pool (loky). Its
workers stay alive for 300 s after their last task, to be reused. A run that
``dagster dev`` launches is a ``multiprocessing`` child, and such a process, when
it ends, waits for every child process of its own: the run's process and its idle
workers (about 1.4 GB on the simulated data) stayed alive about four and a half
minutes after the run had succeeded. :func:`worker_processes_released` stops the
idle workers as soon as the block that used them ends; the next block starts new
ones (about a second).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def release_worker_processes() -> None:
    """Stop joblib's reusable worker processes now, if there are any (it starts none)."""
    # The module's current executor, without get_reusable_executor(), which would start one.
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)


@contextmanager
def worker_processes_released() -> Iterator[None]:
    """Run a block, then stop the worker processes it started (even when it fails)."""
    try:
        yield
    finally:
        release_worker_processes()
