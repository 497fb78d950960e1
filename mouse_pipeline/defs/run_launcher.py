"""A run launcher that tells Dagster's run monitoring when a local run's process has died.

Dagster's default launcher starts each run in a local process but cannot say
whether that process is still alive, so a run killed by the operating system
(or by ``kill -9``) stays ``STARTED`` for ever. :class:`LocalRunLauncher` is
that launcher plus a health check: the process id the run recorded when it
started must still exist. With ``run_monitoring`` enabled in
``dagster_home/dagster.yaml``, the daemon then marks such runs failed.
"""

import os

from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun


class LocalRunLauncher(DefaultRunLauncher):
    """Dagster's default launcher, with a health check of the run's local process."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        records = self._instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START, limit=1).records
        pid = records[0].event_log_entry.dagster_event.pid if records else None
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run has not recorded its process yet")
        return worker_status(pid)


def worker_status(pid: int) -> CheckRunHealthResult:
    """RUNNING while process ``pid`` exists on this machine, FAILED once it is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's process {pid} is gone (killed or crashed)")
    except PermissionError:  # exists, owned by another user
        pass
    return CheckRunHealthResult(WorkerStatus.RUNNING, f"process {pid} is alive")
