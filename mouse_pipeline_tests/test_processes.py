"""A run's process ends as soon as its work is done: joblib's idle workers are released."""

from __future__ import annotations

import psutil

from mouse_pipeline.defs.processes import release_worker_processes, worker_processes_released


def _workers() -> list[psutil.Process]:
    """This process's loky worker processes (a child whose command line runs loky's worker)."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any("popen_loky" in part for part in child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


def _fit_on_workers() -> None:
    from joblib import Parallel, delayed

    assert sum(Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(8))) == 28


def test_idle_workers_are_gone_when_the_block_ends():
    """Left alone, loky keeps its workers 300 s for reuse, and a run that ``dagster dev`` launched
    (a multiprocessing child, which joins its children when it ends) waited for them: the run's
    process stayed alive about 4.5 min after the run succeeded."""
    release_worker_processes()
    _fit_on_workers()
    kept = _workers()
    assert kept  # what the block below must not leave behind
    release_worker_processes()
    with worker_processes_released():
        _fit_on_workers()
        assert _workers()
    psutil.wait_procs(kept, timeout=10)
    assert _workers() == []
    _fit_on_workers()  # the next block starts new workers
    release_worker_processes()
    assert _workers() == []


def test_workers_are_released_when_the_block_fails_and_none_are_started_when_there_are_none():
    try:
        with worker_processes_released():
            _fit_on_workers()
            raise RuntimeError("a failed fit")
    except RuntimeError:
        pass
    assert _workers() == []
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    release_worker_processes()
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before
